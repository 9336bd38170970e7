/* Small-M products with Q8_0 weights (decoding: M = number of beams): each
 * weight row is read from memory once for all M activation rows, the output
 * rows split across the OpenMP threads in dynamically handed-out blocks.
 * Activations stay float32: int8 weights are widened to f32, scaled by their
 * block's f16 scale and multiplied in f32, so the result is an f32 product
 * with the dequantized weight (no second quantization of the activations).
 * Two implementations chosen at run time: AVX-512 and portable C; the AVX-512
 * code uses function-level target attributes so the build needs no -march.
 * Also: Q8_0 quantization and row dequantization (to bf16 / f32) for the
 * tiled large-M path and for tests and the benchmark. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c")))
#define INLINE static inline __attribute__((always_inline))
#endif

static inline float block_scale(const uint8_t *blk) {
  uint16_t h;
  memcpy(&h, blk, 2);
  return vb_half_to_float(h);
}

/* ---- quantization ---- */

void vb_quantize_q8_0(const float *x, int64_t n, void *out) {
  uint8_t *o = out;
  int64_t nb = n / VB_Q8_BLOCK;
#pragma omp parallel for schedule(static) if (nb > 4096)
  for (int64_t b = 0; b < nb; b++) {
    const float *v = x + b * VB_Q8_BLOCK;
    uint8_t *blk = o + b * VB_Q8_BLOCK_BYTES;
    float amax = 0;
    for (int j = 0; j < VB_Q8_BLOCK; j++) amax = fabsf(v[j]) > amax ? fabsf(v[j]) : amax;
    float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    uint16_t h = vb_float_to_half(d);
    memcpy(blk, &h, 2);
    for (int j = 0; j < VB_Q8_BLOCK; j++) {
      float q = roundf(v[j] * id);
      q = q > 127 ? 127 : q < -127 ? -127 : q;
      blk[2 + j] = (uint8_t)(int8_t)q;
    }
  }
}

/* ---- dequantization of whole rows ---- */

#if defined(__x86_64__)
TGT_512 static void rows_to_bf16_avx512(const uint8_t *W, int K, int r0, int r1, uint16_t *dst) {
  size_t rb = vb_q8_row_bytes(K);
  int nb = K / VB_Q8_BLOCK;
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = W + (size_t)r * rb;
    uint16_t *d = dst + (size_t)(r - r0) * K;
    for (int b = 0; b < nb; b++) {
      const uint8_t *blk = row + (size_t)b * VB_Q8_BLOCK_BYTES;
      uint16_t h;
      memcpy(&h, blk, 2);
      __m512 s = _mm512_set1_ps(_cvtsh_ss(h));
      for (int half = 0; half < 2; half++) {
        __m512 f = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2 + 16 * half)))), s);
        _mm256_storeu_si256((__m256i *)(d + 32 * b + 16 * half), vb_bf16x16_rne(f));
      }
    }
  }
}

#endif

void vb_q8_rows_to_bf16(const void *W, int K, int r0, int r1, uint16_t *dst) {
#if defined(__x86_64__)
  if (vb_gemv_q8_has_avx512()) {
    rows_to_bf16_avx512(W, K, r0, r1, dst);
    return;
  }
#endif
  size_t rb = vb_q8_row_bytes(K);
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = (const uint8_t *)W + (size_t)r * rb;
    for (int b = 0; b < K / VB_Q8_BLOCK; b++) {
      const uint8_t *blk = row + (size_t)b * VB_Q8_BLOCK_BYTES;
      float d = block_scale(blk);
      for (int j = 0; j < VB_Q8_BLOCK; j++)
        dst[(size_t)(r - r0) * K + VB_Q8_BLOCK * b + j] = vb_float_to_bf16(d * (float)(int8_t)blk[2 + j]);
    }
  }
}

void vb_q8_rows_to_f32(const void *W, int K, int r0, int r1, float *dst) {
  size_t rb = vb_q8_row_bytes(K);
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = (const uint8_t *)W + (size_t)r * rb;
    for (int b = 0; b < K / VB_Q8_BLOCK; b++) {
      const uint8_t *blk = row + (size_t)b * VB_Q8_BLOCK_BYTES;
      float d = block_scale(blk);
      for (int j = 0; j < VB_Q8_BLOCK; j++)
        dst[(size_t)(r - r0) * K + VB_Q8_BLOCK * b + j] = d * (float)(int8_t)blk[2 + j];
    }
  }
}

/* ---- portable C ---- */

#define CMAX (VB_Q8_GEMV_MAX_M + 1)

void vb_gemv_q8_c(const void *Wv, int N, int K, const float *x, int M, const float *bias, float *y) {
  const uint8_t *W = Wv;
  size_t rb = vb_q8_row_bytes(K);
  int nb = K / VB_Q8_BLOCK;
#pragma omp parallel for schedule(dynamic, 64) if ((size_t)N * K > 32768)
  for (int n = 0; n < N; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m0 = 0; m0 < M; m0 += CMAX) {
      int mc = M - m0 < CMAX ? M - m0 : CMAX;
      float acc[CMAX];
      for (int m = 0; m < mc; m++) acc[m] = 0;
      for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * VB_Q8_BLOCK_BYTES;
        float d = block_scale(blk), wf[VB_Q8_BLOCK];
        for (int j = 0; j < VB_Q8_BLOCK; j++) wf[j] = (float)(int8_t)blk[2 + j];
        for (int m = 0; m < mc; m++) {
          const float *xr = x + (size_t)(m0 + m) * K + VB_Q8_BLOCK * b;
          float s[8] = {0};
          for (int j = 0; j < VB_Q8_BLOCK; j += 8)
            for (int t = 0; t < 8; t++) s[t] += wf[j + t] * xr[j + t];
          acc[m] += d * (((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
        }
      }
      for (int m = 0; m < mc; m++) y[(size_t)(m0 + m) * N + n] = acc[m] + (bias ? bias[n] : 0.0f);
    }
  }
}

#if defined(__x86_64__)
/* ---- AVX-512 ---- */

/* Software prefetch distance in bytes along a weight row (measured on the
 * project machine: one row streamed at a time with this prefetch reads about
 * as fast as the bf16 kernel, 2-row interleaving without it at half that). */
#define PREFETCH 4096

/* Two weight rows (w1 may equal w0 when only one is left) against mc <= 4
 * activation rows; separate accumulators for each half of a block keep four
 * independent FMA chains even with one activation row. */
INLINE TGT_512 void q8_block(const uint8_t *w0, const uint8_t *w1, int nb, const float *x, size_t ldx,
                              const int mc, float r[4][4]) {
  __m512 a0l[4], a0h[4], a1l[4], a1h[4];
  for (int m = 0; m < mc; m++) a0l[m] = a0h[m] = a1l[m] = a1h[m] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *p0 = w0 + (size_t)b * VB_Q8_BLOCK_BYTES, *p1 = w1 + (size_t)b * VB_Q8_BLOCK_BYTES;
    if ((b & 1) == 0) {
      _mm_prefetch((const char *)p0 + PREFETCH, _MM_HINT_T0);
      _mm_prefetch((const char *)p1 + PREFETCH, _MM_HINT_T0);
    }
    uint16_t h0, h1;
    memcpy(&h0, p0, 2);
    memcpy(&h1, p1, 2);
    __m512 d0 = _mm512_set1_ps(_cvtsh_ss(h0)), d1 = _mm512_set1_ps(_cvtsh_ss(h1));
    __m512 f0l = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p0 + 2)))), d0);
    __m512 f0h = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p0 + 18)))), d0);
    __m512 f1l = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p1 + 2)))), d1);
    __m512 f1h = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p1 + 18)))), d1);
    const float *xb = x + (size_t)b * VB_Q8_BLOCK;
    for (int m = 0; m < mc; m++) {
      __m512 xl = _mm512_loadu_ps(xb + m * ldx), xh = _mm512_loadu_ps(xb + m * ldx + 16);
      a0l[m] = _mm512_fmadd_ps(f0l, xl, a0l[m]);
      a0h[m] = _mm512_fmadd_ps(f0h, xh, a0h[m]);
      a1l[m] = _mm512_fmadd_ps(f1l, xl, a1l[m]);
      a1h[m] = _mm512_fmadd_ps(f1h, xh, a1h[m]);
    }
  }
  for (int m = 0; m < mc; m++) {
    r[m][0] = _mm512_reduce_add_ps(_mm512_add_ps(a0l[m], a0h[m]));
    r[m][1] = _mm512_reduce_add_ps(_mm512_add_ps(a1l[m], a1h[m]));
  }
}

/* One weight row against one activation row (M = 1, greedy decoding): two
 * blocks per step, four independent accumulators, a single memory stream. */
INLINE TGT_512 float q8_dot1(const uint8_t *w, int nb, const float *x) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int b = 0;
  for (; b + 2 <= nb; b += 2) {
    const uint8_t *p = w + (size_t)b * VB_Q8_BLOCK_BYTES;
    _mm_prefetch((const char *)p + PREFETCH, _MM_HINT_T0);
    uint16_t h0, h1;
    memcpy(&h0, p, 2);
    memcpy(&h1, p + 34, 2);
    __m512 d0 = _mm512_set1_ps(_cvtsh_ss(h0)), d1 = _mm512_set1_ps(_cvtsh_ss(h1));
    const float *xb = x + (size_t)b * VB_Q8_BLOCK;
    __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2))));
    __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18))));
    __m512 f2 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 36))));
    __m512 f3 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 52))));
    a0 = _mm512_fmadd_ps(_mm512_mul_ps(f0, d0), _mm512_loadu_ps(xb), a0);
    a1 = _mm512_fmadd_ps(_mm512_mul_ps(f1, d0), _mm512_loadu_ps(xb + 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_mul_ps(f2, d1), _mm512_loadu_ps(xb + 32), a2);
    a3 = _mm512_fmadd_ps(_mm512_mul_ps(f3, d1), _mm512_loadu_ps(xb + 48), a3);
  }
  for (; b < nb; b++) {
    const uint8_t *p = w + (size_t)b * VB_Q8_BLOCK_BYTES;
    uint16_t h0;
    memcpy(&h0, p, 2);
    __m512 d0 = _mm512_set1_ps(_cvtsh_ss(h0));
    const float *xb = x + (size_t)b * VB_Q8_BLOCK;
    __m512 f0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 2))));
    __m512 f1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 18))));
    a0 = _mm512_fmadd_ps(_mm512_mul_ps(f0, d0), _mm512_loadu_ps(xb), a0);
    a1 = _mm512_fmadd_ps(_mm512_mul_ps(f1, d0), _mm512_loadu_ps(xb + 16), a1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

TGT_512 static void q8_rows(const uint8_t *W, int n0, int n1, int N, int K, const float *x, int M,
                            const float *bias, float *y) {
  size_t rb = vb_q8_row_bytes(K);
  int nb = K / VB_Q8_BLOCK;
  if (M == 1) {
    for (int n = n0; n < n1; n++) y[n] = q8_dot1(W + (size_t)n * rb, nb, x) + (bias ? bias[n] : 0.0f);
    return;
  }
  for (int n = n0; n < n1; n += 2) {
    int two = n + 1 < n1;
    const uint8_t *w0 = W + (size_t)n * rb, *w1 = two ? w0 + rb : w0;
    for (int m0 = 0; m0 < M; m0 += 4) {
      float r[4][4] = {{0}};
      const float *xb = x + (size_t)m0 * K;
      switch (M - m0 < 4 ? M - m0 : 4) {
      case 1: q8_block(w0, w1, nb, xb, (size_t)K, 1, r); break;
      case 2: q8_block(w0, w1, nb, xb, (size_t)K, 2, r); break;
      case 3: q8_block(w0, w1, nb, xb, (size_t)K, 3, r); break;
      default: q8_block(w0, w1, nb, xb, (size_t)K, 4, r); break;
      }
      vb_gemv_store_block(y, N, n, 1 + two, m0, M, bias, (const float(*)[4])r);
    }
  }
}

void vb_gemv_q8_avx512(const void *W, int N, int K, const float *x, int M, const float *bias,
                       float *y) {
  VB_GEMV_FOR_ROW_BLOCKS(N, q8_rows(W, n0, n1, N, K, x, M, bias, y));
}

#endif /* x86-64 */

int vb_gemv_q8_has_avx512(void) {
#if defined(__x86_64__)
  /* F16C (the block scales) comes with every AVX-512 CPU so far; checked anyway */
  return vb_cpu_has_avx512() && __builtin_cpu_supports("f16c");
#else
  return 0;
#endif
}

void vb_gemv_q8(const void *W, int N, int K, const float *x, int M, const float *bias, float *y) {
#if defined(__x86_64__)
  if (vb_gemv_q8_has_avx512()) {
    vb_gemv_q8_avx512(W, N, K, x, M, bias, y);
    return;
  }
#endif
  vb_gemv_q8_c(W, N, K, x, M, bias, y);
}
