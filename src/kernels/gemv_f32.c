/* Small-M products with f32 weights (decoding with f32 compute, and the OPT
 * vocabulary head, which stays f32 in every compute type): the same
 * four-rows-at-a-time streaming as gemv_bf16.c. oneDNN's sgemm handles these
 * shapes at ~1.25x the time of a plain read of the weight on the project
 * machine; this reads it at close to that speed. AVX-512 only: without it
 * vb_gemv_f32 returns -1 and the caller uses sgemm. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#define TGT_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define INLINE static inline __attribute__((always_inline))

INLINE TGT_512 void f32_block(const float *w[VB_GEMV_ROWS], int K, const float *x, size_t ldx,
                               const int mc, float r[4][4]) {
  __m512 acc[4][VB_GEMV_ROWS];
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 f[VB_GEMV_ROWS];
    for (int j = 0; j < VB_GEMV_ROWS; j++) {
      _mm_prefetch((const char *)(w[j] + k) + VB_GEMV_PREFETCH_BYTES, _MM_HINT_T0);
      f[j] = _mm512_loadu_ps(w[j] + k);
    }
    for (int m = 0; m < mc; m++) {
      __m512 xv = _mm512_loadu_ps(x + m * ldx + k);
      for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_fmadd_ps(f[j], xv, acc[m][j]);
    }
  }
  if (k < K) {
    __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
    for (int m = 0; m < mc; m++) {
      __m512 xv = _mm512_maskz_loadu_ps(mk, x + m * ldx + k);
      for (int j = 0; j < VB_GEMV_ROWS; j++)
        acc[m][j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w[j] + k), xv, acc[m][j]);
    }
  }
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < VB_GEMV_ROWS; j++) r[m][j] = _mm512_reduce_add_ps(acc[m][j]);
}

TGT_512 static void f32_rows(const float *W, int n0, int n1, int N, int K, const float *x, int M,
                             const float *bias, float *y) {
  VB_GEMV_ROW_LOOP(f32_block, float, float, W, n0, n1, N, K, x, (size_t)K, M, bias, y)
}

int vb_gemv_f32(const float *W, int N, int K, const float *x, int M, const float *bias, float *y) {
  if (!vb_cpu_has_avx512()) return -1;
  VB_GEMV_FOR_ROW_BLOCKS(N, f32_rows(W, n0, n1, N, K, x, M, bias, y));
  return 0;
}
