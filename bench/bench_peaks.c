/* Register peaks of the CPU's product paths for vblip-bench: loops of
 * independent multiply-adds from registers (no memory traffic), all threads.
 * The tile kinds (AMX-BF16, AMX-INT8, AVX512-VNNI, AVX-VNNI) come from the
 * library (tile_gemm.h); VDPBF16PS, which only oneDNN's non-AMX bf16 kernels
 * use, is measured here. */
#include <omp.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bf16"))) static long vdpbf16ps_loop(double ms) {
  __m512 acc[12];
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x3f003f00);
  for (int i = 0; i < 12; i++)
    acc[i] = _mm512_setzero_ps();
  long n = 0;
  double t0 = vb_now_ms();
  do {
    for (int it = 0; it < 1024; it++)
      for (int i = 0; i < 12; i++)
        acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    n += 1024 * 12;
  } while (vb_now_ms() - t0 < ms);
  __m512 s = acc[0];
  for (int i = 1; i < 12; i++)
    s = _mm512_add_ps(s, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return n;
}
#endif

double bench_peak_vdpbf16ps(double ms) {
#if defined(__x86_64__)
  if (!vb_cpu()->avx512_bf16) return 0;
  double ops = 0, t0 = vb_now_ms();
#pragma omp parallel reduction(+ : ops)
  ops += (double)vdpbf16ps_loop(ms) * 32 * 2; /* 16 lanes x 2 products, 2 flops each */
  return ops / ((vb_now_ms() - t0) / 1e3) / 1e12;
#else
  (void)ms;
  return 0;
#endif
}
