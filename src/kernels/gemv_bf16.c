/* Small-M products with bf16 weights (decoding: M = number of beams): each
 * weight row is read from memory once for all M activation rows, the output
 * rows split across the OpenMP threads. Three implementations chosen at run
 * time: AVX512-BF16 dot products, AVX-512F widening, and portable C. The
 * AVX-512 code is compiled with function-level target attributes so the build
 * needs no -march flag. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#include "kernels/gemm_internal.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))
#endif

static inline float bf16f(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

#if defined(__x86_64__)
TGT_BF16 static void cvt_row_bf16(const float *x, int K, uint16_t *dst, int ld) {
  int k = 0;
  for (; k + 16 <= K; k += 16)
    _mm256_storeu_si256((__m256i *)(dst + k), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + k)));
  for (; k < K; k++) dst[k] = vb_float_to_bf16(x[k]);
  for (; k < ld; k++) dst[k] = 0;
}
#endif

void vb_f32_to_bf16_rows(const float *x, int M, int K, uint16_t *dst, int ld) {
#if defined(__x86_64__)
  int fast = vb_cpu()->avx512_bf16;
#endif
#pragma omp parallel for if ((size_t)M * K > 65536) schedule(static)
  for (int m = 0; m < M; m++) {
    const float *xr = x + (size_t)m * K;
    uint16_t *d = dst + (size_t)m * ld;
#if defined(__x86_64__)
    if (fast) {
      cvt_row_bf16(xr, K, d, ld);
      continue;
    }
#endif
    int k = 0;
    for (; k < K; k++) d[k] = vb_float_to_bf16(xr[k]);
    for (; k < ld; k++) d[k] = 0;
  }
}

/* ---- portable C ---- */

void vb_gemv_bf16_c(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                    float *y) {
#pragma omp parallel for schedule(static) if ((size_t)N * K > 32768)
  for (int n = 0; n < N; n++) {
    const uint16_t *w = W + (size_t)n * K;
    float acc[VB_BF16_GEMV_MAX_M + 1][8];
    for (int m0 = 0; m0 < M; m0 += VB_BF16_GEMV_MAX_M + 1) {
      int mc = M - m0 < VB_BF16_GEMV_MAX_M + 1 ? M - m0 : VB_BF16_GEMV_MAX_M + 1;
      memset(acc, 0, sizeof acc);
      int k = 0;
      for (; k + 8 <= K; k += 8) {
        float wf[8];
        for (int j = 0; j < 8; j++) wf[j] = bf16f(w[k + j]);
        for (int m = 0; m < mc; m++) {
          const float *xr = x + (size_t)(m0 + m) * K + k;
          for (int j = 0; j < 8; j++) acc[m][j] += wf[j] * xr[j];
        }
      }
      for (int m = 0; m < mc; m++) {
        const float *xr = x + (size_t)(m0 + m) * K;
        float s = 0;
        for (int j = 0; j < 8; j++) s += acc[m][j];
        for (int kk = k; kk < K; kk++) s += bf16f(w[kk]) * xr[kk];
        y[(size_t)(m0 + m) * N + n] = s + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

#if defined(__x86_64__)
/* ---- AVX-512 kernels ----
 * Four weight rows are streamed side by side against up to 4 activation rows:
 * with a single activation row (greedy decoding) that still gives four
 * independent accumulator chains and four memory streams, which is what it
 * takes to read the weights at the speed of a plain read loop (measured on the
 * project machine: 2 rows x 1 activation ran at ~0.72 of the read loop's
 * speed, 4 rows at ~0.99). The row loop is VB_GEMV_ROW_LOOP (gemm_internal.h). */

/* AVX-512F: bf16 weights widened to f32 (a shift), f32 activations padded with
 * zeros to a multiple of 16. */
INLINE TGT_512 __m512 widen16(const uint16_t *p, __mmask16 mk) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, p)), 16));
}

INLINE TGT_512 void wide_block(const uint16_t *w[VB_GEMV_ROWS], int K, const float *xp, size_t ldx,
                                const int mc, float r[4][4]) {
  __m512 acc[4][VB_GEMV_ROWS];
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 f[VB_GEMV_ROWS];
    for (int j = 0; j < VB_GEMV_ROWS; j++) {
      _mm_prefetch((const char *)(w[j] + k) + VB_GEMV_PREFETCH_BYTES, _MM_HINT_T0);
      f[j] = widen16(w[j] + k, (__mmask16)0xffff);
    }
    for (int m = 0; m < mc; m++) {
      __m512 xv = _mm512_loadu_ps(xp + m * ldx + k);
      for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_fmadd_ps(f[j], xv, acc[m][j]);
    }
  }
  if (k < K) {
    __mmask16 mk = (__mmask16)((1u << (K - k)) - 1);
    for (int m = 0; m < mc; m++) {
      __m512 xv = _mm512_loadu_ps(xp + m * ldx + k);
      for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_fmadd_ps(widen16(w[j] + k, mk), xv, acc[m][j]);
    }
  }
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < VB_GEMV_ROWS; j++) r[m][j] = _mm512_reduce_add_ps(acc[m][j]);
}

TGT_512 static void wide_rows(const uint16_t *W, int n0, int n1, int N, int K, const float *xp,
                              size_t ldx, int M, const float *bias, float *y) {
  VB_GEMV_ROW_LOOP(wide_block, uint16_t, float, W, n0, n1, N, K, xp, ldx, M, bias, y)
}

/* AVX512-BF16: VDPBF16PS on bf16 activations padded with zeros to a multiple of 32. */
INLINE TGT_BF16 void dp_block(const uint16_t *w[VB_GEMV_ROWS], int K, const uint16_t *xp, size_t ldx,
                               const int mc, float r[4][4]) {
  __m512 acc[4][VB_GEMV_ROWS];
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 32 <= K; k += 32) {
    __m512i v[VB_GEMV_ROWS];
    for (int j = 0; j < VB_GEMV_ROWS; j++) {
      _mm_prefetch((const char *)(w[j] + k) + VB_GEMV_PREFETCH_BYTES, _MM_HINT_T0);
      v[j] = _mm512_loadu_si512((const void *)(w[j] + k));
    }
    for (int m = 0; m < mc; m++) {
      __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(xp + m * ldx + k));
      for (int j = 0; j < VB_GEMV_ROWS; j++) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], xv, (__m512bh)v[j]);
    }
  }
  if (k < K) {
    __mmask32 mk = (__mmask32)((1u << (K - k)) - 1);
    for (int m = 0; m < mc; m++) {
      __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(xp + m * ldx + k));
      for (int j = 0; j < VB_GEMV_ROWS; j++)
        acc[m][j] = _mm512_dpbf16_ps(acc[m][j], xv, (__m512bh)_mm512_maskz_loadu_epi16(mk, w[j] + k));
    }
  }
  for (int m = 0; m < mc; m++)
    for (int j = 0; j < VB_GEMV_ROWS; j++) r[m][j] = _mm512_reduce_add_ps(acc[m][j]);
}

TGT_BF16 static void dp_rows(const uint16_t *W, int n0, int n1, int N, int K, const uint16_t *xp,
                             size_t ldx, int M, const float *bias, float *y) {
  VB_GEMV_ROW_LOOP(dp_block, uint16_t, uint16_t, W, n0, n1, N, K, xp, ldx, M, bias, y)
}

/* the calling thread's padded copy of the activations, reused across calls */
static __thread void *tls_x;
static __thread size_t tls_x_cap;

int vb_gemv_bf16_avx512(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                        float *y) {
  size_t ldx = ((size_t)K + 15) & ~(size_t)15;
  float *xp = vb_tls_scratch_grow(&tls_x, &tls_x_cap, (size_t)M * ldx * sizeof(float));
  if (!xp) return -1;
  for (int m = 0; m < M; m++) {
    memcpy(xp + m * ldx, x + (size_t)m * K, (size_t)K * sizeof(float));
    memset(xp + m * ldx + K, 0, (ldx - K) * sizeof(float));
  }
  VB_GEMV_FOR_ROW_BLOCKS(N, wide_rows(W, n0, n1, N, K, xp, ldx, M, bias, y));
  return 0;
}

int vb_gemv_bf16_avx512bf16(const uint16_t *W, int N, int K, const float *x, int M,
                            const float *bias, float *y) {
  size_t ldx = ((size_t)K + 31) & ~(size_t)31;
  uint16_t *xp = vb_tls_scratch_grow(&tls_x, &tls_x_cap, (size_t)M * ldx * sizeof(uint16_t));
  if (!xp) return -1;
  vb_f32_to_bf16_rows(x, M, K, xp, (int)ldx);
  VB_GEMV_FOR_ROW_BLOCKS(N, dp_rows(W, n0, n1, N, K, xp, ldx, M, bias, y));
  return 0;
}

#endif /* x86-64 */

int vb_gemv_bf16(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                 float *y) {
#if defined(__x86_64__)
  const vb_cpu_features *f = vb_cpu();
  if (f->avx512_bf16) return vb_gemv_bf16_avx512bf16(W, N, K, x, M, bias, y);
  if (vb_cpu_has_avx512()) return vb_gemv_bf16_avx512(W, N, K, x, M, bias, y);
#endif
  vb_gemv_bf16_c(W, N, K, x, M, bias, y);
  return 0;
}
