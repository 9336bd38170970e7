/* Register peaks of the CPU's product paths for vblip-bench: loops of
 * independent multiply-adds from registers (no memory traffic), all threads.
 * The tile kinds (AMX-BF16, AMX-INT8, AVX512-VNNI, AVX-VNNI) come from the
 * library (tile_gemm.h); VDPBF16PS (oneDNN's non-AMX bf16 kernels) and the
 * AVX-512 f32 FMA (the f32 rows' sgemm) from the loops the library's bf16
 * probe times (runtime/cpu.h), here for `ms` on every thread. */
#include <omp.h>

#include "bench.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static double all_threads(double (*loop)(int), double ms) {
  if (loop(1) == 0) return 0; /* the CPU lacks the instruction */
  double flops = 0, t0 = vb_now_ms();
#pragma omp parallel reduction(+ : flops)
  {
    double start = vb_now_ms();
    do
      flops += loop(16);
    while (vb_now_ms() - start < ms);
  }
  return flops / ((vb_now_ms() - t0) / 1e3) / 1e12;
}

double bench_peak_fma_f32(double ms) {
  return all_threads(vb_cpu_fma_f32_loop, ms);
}

double bench_peak_vdpbf16ps(double ms) {
  return all_threads(vb_cpu_vdpbf16ps_loop, ms);
}
