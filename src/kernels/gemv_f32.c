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
#define GEMV_ROWS 4
#define PREFETCH_BYTES 1024

INLINE TGT_512 void f32_block(const float *w[GEMV_ROWS], int K, const float *x, size_t ldx,
                               const int mc, float r[4][4]) {
  __m512 acc[4][GEMV_ROWS];
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < GEMV_ROWS; j++) acc[m][j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 f[GEMV_ROWS];
    for (int j = 0; j < GEMV_ROWS; j++) {
      _mm_prefetch((const char *)(w[j] + k) + PREFETCH_BYTES, _MM_HINT_T0);
      f[j] = _mm512_loadu_ps(w[j] + k);
    }
    for (int m = 0; m < mc; m++) {
      __m512 xv = _mm512_loadu_ps(x + m * ldx + k);
      for (int j = 0; j < GEMV_ROWS; j++) acc[m][j] = _mm512_fmadd_ps(f[j], xv, acc[m][j]);
    }
  }
  if (k < K) {
    __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
    for (int m = 0; m < mc; m++) {
      __m512 xv = _mm512_maskz_loadu_ps(mk, x + m * ldx + k);
      for (int j = 0; j < GEMV_ROWS; j++)
        acc[m][j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, w[j] + k), xv, acc[m][j]);
    }
  }
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < GEMV_ROWS; j++) r[m][j] = _mm512_reduce_add_ps(acc[m][j]);
}

TGT_512 static void f32_rows(const float *W, int n0, int n1, int N, int K, const float *x, int M,
                             const float *bias, float *y) {
  for (int n = n0; n < n1; n += GEMV_ROWS) {
    const float *w[GEMV_ROWS];
    for (int j = 0; j < GEMV_ROWS; j++) w[j] = W + (size_t)(n + j < n1 ? n + j : n1 - 1) * K;
    int nr = n1 - n < GEMV_ROWS ? n1 - n : GEMV_ROWS;
    for (int m0 = 0; m0 < M; m0 += 4) {
      float r[4][4] = {{0}};
      const float *xb = x + (size_t)m0 * K;
      switch (M - m0 < 4 ? M - m0 : 4) {
      case 1: f32_block(w, K, xb, (size_t)K, 1, r); break;
      case 2: f32_block(w, K, xb, (size_t)K, 2, r); break;
      case 3: f32_block(w, K, xb, (size_t)K, 3, r); break;
      default: f32_block(w, K, xb, (size_t)K, 4, r); break;
      }
      vb_gemv_store_block(y, N, n, nr, m0, M, bias, (const float(*)[4])r);
    }
  }
}

int vb_gemv_f32(const float *W, int N, int K, const float *x, int M, const float *bias, float *y) {
  if (!vb_cpu_has_avx512()) return -1;
  int bs = vb_gemv_block_rows(N, omp_get_max_threads());
  int nblk = (N + bs - 1) / bs;
#pragma omp parallel for schedule(dynamic, 1) if (nblk > 1)
  for (int blk = 0; blk < nblk; blk++) {
    int n0 = blk * bs, n1 = n0 + bs < N ? n0 + bs : N;
    f32_rows(W, n0, n1, N, K, x, M, bias, y);
  }
  return 0;
}
