/* Register peaks of the CPU's product paths for vblip-bench: loops of
 * independent multiply-adds from registers (no memory traffic), all threads.
 * The tile kinds (AMX-BF16, AMX-INT8, AVX512-VNNI, AVX-VNNI) come from the
 * library (tile_gemm.h); VDPBF16PS, which only oneDNN's non-AMX bf16 kernels
 * use, and AVX-512 f32 FMA (the f32 rows' sgemm) are measured here. */
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
  for (int i = 0; i < 12; i++) /* distinct: identical chains could be merged */
    acc[i] = _mm512_set1_ps((float)i);
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

/* VFMADD231PS on 12 chains with distinct starting values (identical chains
 * would be merged by the compiler), the operand kept opaque */
__attribute__((target("avx512f"))) static long fma_loop(double ms) {
  __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0x1p-30f);
  __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2),
         c3 = _mm512_set1_ps(3), c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5),
         c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7), c8 = _mm512_set1_ps(8),
         c9 = _mm512_set1_ps(9), c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
  long n = 0;
  double t0 = vb_now_ms();
  do {
    for (int it = 0; it < 1024; it++) {
      __asm__ volatile("" : "+v"(b));
      c0 = _mm512_fmadd_ps(a, b, c0), c1 = _mm512_fmadd_ps(a, b, c1);
      c2 = _mm512_fmadd_ps(a, b, c2), c3 = _mm512_fmadd_ps(a, b, c3);
      c4 = _mm512_fmadd_ps(a, b, c4), c5 = _mm512_fmadd_ps(a, b, c5);
      c6 = _mm512_fmadd_ps(a, b, c6), c7 = _mm512_fmadd_ps(a, b, c7);
      c8 = _mm512_fmadd_ps(a, b, c8), c9 = _mm512_fmadd_ps(a, b, c9);
      c10 = _mm512_fmadd_ps(a, b, c10), c11 = _mm512_fmadd_ps(a, b, c11);
    }
    n += 1024 * 12;
  } while (vb_now_ms() - t0 < ms);
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                           _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return n;
}
#endif

double bench_peak_fma_f32(double ms) {
#if defined(__x86_64__)
  if (!vb_cpu_has_avx512()) return 0;
  double ops = 0, t0 = vb_now_ms();
#pragma omp parallel reduction(+ : ops)
  ops += (double)fma_loop(ms) * 16 * 2; /* 16 lanes, 2 flops */
  return ops / ((vb_now_ms() - t0) / 1e3) / 1e12;
#else
  (void)ms;
  return 0;
#endif
}

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
