/* GGUF Q4_K weights: dequantization of row tiles (the large-M path of
 * gemm_q8.c) and the few-row products of decoding (the quantizer is in
 * q4k_quantize.c).
 *
 * A super-block of 256 values has one f16 pair (d, dmin) and per 32-value
 * sub-block s a 6-bit scale sc[s] and min m[s]: value = d sc[s] q - dmin m[s]
 * (runtime/dtype.h has the byte layout). With the activations in int8 per
 * 32 values (scale d_a, as for Q4_0) a sub-block's product is
 *   d sc[s] d_a sum_j q_j a_j - dmin m[s] d_a sum_j a_j,
 * the first an integer sum of 4-bit x 8-bit products (VPDPBUSD / VPMADDUBSW,
 * q the unsigned operand), the second the activations' per-32 sums, the same
 * for every weight row (vb_q4_acts keeps c = 8 d_a sum a; c / 8 here). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/q4_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif
#define PREFETCH 4096 /* bytes ahead along a weight row (as gemv_q4.c) */
#define MB 4          /* activation rows per pass over a weight row */
#define SB VB_Q4K_BLOCK
#define SBB VB_Q4K_BLOCK_BYTES

/* Quantization (vb_quantize_q4_k) is in q4k_quantize.c. */

/* ---- dequantization of row tiles ---- */

void vb_q4k_rows_to_f32(const void *W, int K, int r0, int r1, float *dst) {
  size_t rb = vb_q4k_row_bytes(K);
  for (int r = r0; r < r1; r++)
    for (int b = 0; b < K / SB; b++)
      vb_q4k_block_to_f32((const uint8_t *)W + (size_t)r * rb + (size_t)b * SBB,
                          dst + (size_t)(r - r0) * K + (size_t)b * SB);
}

#if defined(__x86_64__)
/* The scale bytes as 16 bytes sc[0..7], m[0..7] (defined below). */
static inline void scale_bytes(const uint8_t *s12, uint32_t out[4]);

/* 256 values of a super-block to bf16 (round to nearest even, as
 * vb_float_to_bf16 on the f32 values: the same d sc q - dmin m in f32). */
TGT_VNNI static void block_to_bf16_avx512(const uint8_t *blk, uint16_t *o) {
  uint32_t sm[4];
  scale_bytes(blk + 4, sm);
  uint16_t h[2];
  memcpy(h, blk, 4);
  float d = _cvtsh_ss(h[0]), dmin = _cvtsh_ss(h[1]);
  const uint8_t *b8 = (const uint8_t *)sm;
  const __m128i low = _mm_set1_epi8(15);
  for (int c = 0; c < 4; c++)
    for (int half = 0; half < 2; half++) {
      __m128i q[2] = {_mm_loadu_si128((const __m128i *)(blk + 16 + 32 * c)),
                      _mm_loadu_si128((const __m128i *)(blk + 16 + 32 * c + 16))};
      int s = 2 * c + half;
      __m512 sc = _mm512_set1_ps(d * (float)b8[s]), mn = _mm512_set1_ps(dmin * (float)b8[8 + s]);
      for (int i = 0; i < 2; i++) {
        __m128i v = half ? _mm_and_si128(_mm_srli_epi16(q[i], 4), low) : _mm_and_si128(q[i], low);
        __m512 f =
            _mm512_sub_ps(_mm512_mul_ps(sc, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v))), mn);
        _mm256_storeu_si256((__m256i *)(o + 64 * c + 32 * half + 16 * i), vb_bf16x16_rne(f));
      }
    }
}

#endif

void vb_q4k_rows_to_bf16(const void *W, int K, int r0, int r1, uint16_t *dst) {
  size_t rb = vb_q4k_row_bytes(K);
#if defined(__x86_64__)
  if (vb_gemv_q4_has_vnni()) {
    for (int r = r0; r < r1; r++)
      for (int b = 0; b < K / SB; b++)
        block_to_bf16_avx512((const uint8_t *)W + (size_t)r * rb + (size_t)b * SBB,
                             dst + (size_t)(r - r0) * K + (size_t)b * SB);
    return;
  }
#endif
  float v[SB];
  for (int r = r0; r < r1; r++)
    for (int b = 0; b < K / SB; b++) {
      vb_q4k_block_to_f32((const uint8_t *)W + (size_t)r * rb + (size_t)b * SBB, v);
      uint16_t *o = dst + (size_t)(r - r0) * K + (size_t)b * SB;
      for (int j = 0; j < SB; j++)
        o[j] = vb_float_to_bf16(v[j]);
    }
}

/* ---- portable C ---- */

static inline float half_at(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return vb_half_to_float(h);
}

int vb_gemv_q4k_c(const void *Wv, int N, int K, const float *x, int M, const float *bias,
                  float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  const uint8_t *W = Wv;
  size_t rb = vb_q4k_row_bytes(K);
  int nsb = K / SB;
#pragma omp parallel for schedule(dynamic, 64) if ((size_t)N * K > 32768)
  for (int n = 0; n < N; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m = 0; m < M; m++) {
      const int8_t *q8 = a.q + m * a.qstride;
      const float *da = a.da + m * a.bstride, *c = a.c + m * a.bstride;
      float acc = 0;
      for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = row + (size_t)sb * SBB;
        float d = half_at(blk), dmin = half_at(blk + 2);
        uint8_t sc[8], mn[8];
        vb_q4k_scales(blk + 4, sc, mn);
        for (int s = 0; s < 8; s++) {
          const uint8_t *qs = blk + 16 + 32 * (s / 2);
          const int8_t *av = q8 + SB * sb + 32 * s;
          int dot = 0, shift = 4 * (s & 1);
          for (int j = 0; j < 32; j++)
            dot += (qs[j] >> shift & 15) * av[j];
          int b = 8 * sb + s;
          acc += d * (float)sc[s] * (da[b] * (float)dot) - dmin * (float)mn[s] * (0.125f * c[b]);
        }
      }
      y[(size_t)m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
  return 0;
}

#if defined(__x86_64__)
/* The 6-bit scales and mins of a super-block as 16 bytes: sc[0..7], m[0..7]. */
static inline void scale_bytes(const uint8_t *s12, uint32_t out[4]) {
  uint32_t s0, s1, s2;
  memcpy(&s0, s12, 4);
  memcpy(&s1, s12 + 4, 4);
  memcpy(&s2, s12 + 8, 4);
  out[0] = s0 & 0x3f3f3f3fu;
  out[1] = (s2 & 0x0f0f0f0fu) | ((s0 >> 2) & 0x30303030u); /* bits 6-7 of s0's bytes to 4-5 */
  out[2] = s1 & 0x3f3f3f3fu;
  out[3] = ((s2 >> 4) & 0x0f0f0f0fu) | ((s1 >> 2) & 0x30303030u);
}

/* ---- AVX2: one sub-block per VPMADDUBSW ---- */

TGT_AVX2 static void q4k_rows_avx2(const uint8_t *W, int n0, int n1, int N, int K,
                                   const vb_q4_acts *a, int M, const float *bias, float *y) {
  size_t rb = vb_q4k_row_bytes(K);
  int nsb = K / SB;
  const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  const __m256 eighth = _mm256_set1_ps(0.125f);
  for (int n = n0; n < n1; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m0 = 0; m0 < M; m0 += MB) {
      int mc = M - m0 < MB ? M - m0 : MB;
      __m256 acc[MB], accm[MB];
      for (int m = 0; m < mc; m++)
        acc[m] = accm[m] = _mm256_setzero_ps();
      for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = row + (size_t)sb * SBB;
        _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)blk + PREFETCH + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)blk + PREFETCH + 128, _MM_HINT_T0);
        uint32_t sm[4];
        scale_bytes(blk + 4, sm);
        __m128i bytes = _mm_loadu_si128((const __m128i *)sm);
        uint16_t h[2];
        memcpy(h, blk, 4);
        __m256 ws = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)),
                                  _mm256_set1_ps(_cvtsh_ss(h[0])));
        __m256 wm =
            _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))),
                          _mm256_set1_ps(_cvtsh_ss(h[1])));
        float wsf[8];
        _mm256_storeu_ps(wsf, ws);
        for (int c = 0; c < 4; c++) {
          __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
          __m256i w[2] = {_mm256_and_si256(q, low), _mm256_and_si256(_mm256_srli_epi16(q, 4), low)};
          for (int m = 0; m < mc; m++) {
            size_t r = (size_t)(m0 + m);
            const int8_t *av = a->q + r * a->qstride + (size_t)SB * sb + 64 * c;
            const float *da = a->da + r * a->bstride + 8 * (size_t)sb + 2 * c;
            for (int hh = 0; hh < 2; hh++) {
              __m256i x8 = _mm256_loadu_si256((const __m256i *)(av + 32 * hh));
              __m256 f =
                  _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w[hh], x8), ones));
              acc[m] = _mm256_fmadd_ps(f, _mm256_set1_ps(wsf[2 * c + hh] * da[hh]), acc[m]);
            }
          }
        }
        for (int m = 0; m < mc; m++) {
          size_t r = (size_t)(m0 + m);
          __m256 c8 =
              _mm256_mul_ps(_mm256_loadu_ps(a->c + r * a->bstride + 8 * (size_t)sb), eighth);
          accm[m] = _mm256_fmadd_ps(wm, c8, accm[m]);
        }
      }
      for (int m = 0; m < mc; m++) {
        __m256 t = _mm256_sub_ps(acc[m], accm[m]);
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        y[(size_t)(m0 + m) * N + n] = _mm_cvtss_f32(s) + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

int vb_gemv_q4k_avx2(const void *W, int N, int K, const float *x, int M, const float *bias,
                     float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  VB_GEMV_FOR_ROW_BLOCKS(N, q4k_rows_avx2(W, n0, n1, N, K, &a, M, bias, y));
  return 0;
}

/* ---- AVX512-VNNI: two sub-blocks (one 32-byte run of q) per VPDPBUSD ---- */

/* Per activation row and super-block, LANES floats: for each 32-byte run c
 * of q, 16 lanes of the activation scales of sub-blocks 2c (lanes 0-7) and
 * 2c+1 (lanes 8-15); then 16 lanes 0 (lanes 0-7) and c / 8 of sub-blocks
 * 0-7 (lanes 8-15), against the [d sc, dmin m] vector of the weights. */
#define LANES 80
static __thread void *tls_lanes;
static __thread size_t tls_lanes_cap;

TGT_VNNI static void q4k_rows_vnni(const uint8_t *W, int n0, int n1, int N, int K,
                                   const vb_q4_acts *a, const float *lanes, int M,
                                   const float *bias, float *y) {
  size_t rb = vb_q4k_row_bytes(K);
  int nsb = K / SB;
  size_t lstride = (size_t)nsb * LANES;
  const __m256i low = _mm256_set1_epi8(15);
  /* lanes of the [d sc0..7, dmin m0..7] vector that scale run c's two sub-blocks */
  __m512i pick[4];
  for (int c = 0; c < 4; c++)
    pick[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * c)),
                                 _mm256_set1_epi32(2 * c + 1), 1);
  for (int n = n0; n < n1; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m0 = 0; m0 < M; m0 += MB) {
      int mc = M - m0 < MB ? M - m0 : MB;
      __m512 acc[MB][2];
      for (int m = 0; m < mc; m++)
        acc[m][0] = acc[m][1] = _mm512_setzero_ps();
      for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *blk = row + (size_t)sb * SBB;
        _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);
        _mm_prefetch((const char *)blk + PREFETCH + 64, _MM_HINT_T0);
        _mm_prefetch((const char *)blk + PREFETCH + 128, _MM_HINT_T0);
        uint32_t sm[4];
        scale_bytes(blk + 4, sm);
        uint16_t h[2];
        memcpy(h, blk, 4);
        __m512 dd = _mm512_cvtph_ps(
            _mm256_set_m128i(_mm_set1_epi16((short)h[1]), _mm_set1_epi16((short)h[0])));
        __m512 v = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)sm))), dd);
        for (int c = 0; c < 4; c++) {
          __m256i q = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * c));
          __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(q, low)),
                                         _mm256_and_si256(_mm256_srli_epi16(q, 4), low), 1);
          __m512 ws = _mm512_permutexvar_ps(pick[c], v);
          for (int m = 0; m < mc; m++) {
            size_t r = (size_t)(m0 + m);
            __m512i av = _mm512_loadu_si512(
                (const void *)(a->q + r * a->qstride + (size_t)SB * sb + 64 * c));
            __m512 f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av));
            __m512 t = _mm512_mul_ps(
                f, _mm512_loadu_ps(lanes + r * lstride + (size_t)LANES * sb + 16 * c));
            acc[m][c & 1] = _mm512_fmadd_ps(t, ws, acc[m][c & 1]);
          }
        }
        for (int m = 0; m < mc; m++) {
          size_t r = (size_t)(m0 + m);
          __m512 cz = _mm512_loadu_ps(lanes + r * lstride + (size_t)LANES * sb + 64);
          acc[m][0] = _mm512_fnmadd_ps(v, cz, acc[m][0]);
        }
      }
      for (int m = 0; m < mc; m++)
        y[(size_t)(m0 + m) * N + n] =
            _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1])) + (bias ? bias[n] : 0.0f);
    }
  }
}

int vb_gemv_q4k_vnni(const void *W, int N, int K, const float *x, int M, const float *bias,
                     float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  int nsb = K / SB;
  size_t lstride = (size_t)nsb * LANES;
  float *lanes =
      vb_tls_scratch_grow(&tls_lanes, &tls_lanes_cap, (size_t)M * lstride * sizeof(float) + 64);
  if (!lanes)
    return vb_error("out of memory for the activation scales of a %d-row Q4_K product", M);
  for (int m = 0; m < M; m++)
    for (int sb = 0; sb < nsb; sb++) {
      float *l = lanes + (size_t)m * lstride + (size_t)LANES * sb;
      const float *da = a.da + m * a.bstride + 8 * sb, *c = a.c + m * a.bstride + 8 * sb;
      for (int s = 0; s < 8; s++)
        for (int i = 0; i < 8; i++)
          l[16 * (s / 2) + 8 * (s & 1) + i] = da[s];
      for (int s = 0; s < 8; s++) {
        l[64 + s] = 0;
        l[72 + s] = 0.125f * c[s];
      }
    }
  VB_GEMV_FOR_ROW_BLOCKS(N, q4k_rows_vnni(W, n0, n1, N, K, &a, lanes, M, bias, y));
  return 0;
}

#endif /* x86-64 */

/* ---- dispatch ---- */

int vb_gemv_q4k(const void *W, int N, int K, const float *x, int M, const float *bias, float *y) {
#if defined(__x86_64__)
  if (vb_gemv_q4_has_vnni()) return vb_gemv_q4k_vnni(W, N, K, x, M, bias, y);
  if (vb_gemv_q4_has_avx2()) return vb_gemv_q4k_avx2(W, N, K, x, M, bias, y);
#endif
  return vb_gemv_q4k_c(W, N, K, x, M, bias, y);
}
