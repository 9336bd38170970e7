/* Q4_0 weights: quantization (convert), dequantization of row tiles (the
 * large-M path of gemm_q8.c) and the few-row products of decoding.
 *
 * Decoding reads each weight byte once, so its speed is the memory's: the
 * work per 18-byte block must stay below what one core can do while 18 bytes
 * arrive. Widening nibbles to f32 (as gemv_q8.c does for int8) costs more
 * than that; instead the activations are quantized to int8 per 32-value block
 * (d_a = max|x| / 127) and each block's product is an integer sum:
 *   sum_j d (q_j - 8) d_a a_j = d (d_a sum_j q_j a_j - 8 d_a sum_j a_j),
 * with q_j the unsigned nibble (VPDPBUSD's and VPMADDUBSW's unsigned operand)
 * and the last term (c below) the same for every weight row. */
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
#define INLINE static inline __attribute__((always_inline))
#endif
/* bytes ahead along a weight row (as gemv_q8.c) */
#define PREFETCH 4096
#define MB 4 /* activation rows per pass over a weight row */

static inline float half_at(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return vb_half_to_float(h);
}

/* ---- quantization ---- */

void vb_quantize_q4_0(const float *x, int64_t n, void *out) {
  uint8_t *o = out;
  int64_t nb = n / VB_Q4_BLOCK;
#pragma omp parallel for schedule(static) if (nb > 4096)
  for (int64_t b = 0; b < nb; b++) {
    const float *v = x + b * VB_Q4_BLOCK;
    uint8_t *blk = o + b * VB_Q4_BLOCK_BYTES;
    float big = 0; /* the value of largest magnitude, with its sign */
    for (int j = 0; j < VB_Q4_BLOCK; j++)
      if (fabsf(v[j]) > fabsf(big)) big = v[j];
    uint16_t h = vb_float_to_half(big / -8.0f);
    memcpy(blk, &h, 2);
    float d = vb_half_to_float(h), id = d != 0 ? 1.0f / d : 0.0f;
    uint8_t q[VB_Q4_BLOCK];
    for (int j = 0; j < VB_Q4_BLOCK; j++) {
      float r = roundf(v[j] * id) + 8;
      q[j] = (uint8_t)(r < 0 ? 0 : r > 15 ? 15 : r);
    }
    for (int j = 0; j < 16; j++)
      blk[2 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
  }
}

/* ---- dequantization of row tiles ---- */

void vb_q4_rows_to_f32(const void *W, int K, int r0, int r1, float *dst) {
  size_t rb = vb_q4_row_bytes(K);
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = (const uint8_t *)W + (size_t)r * rb;
    float *o = dst + (size_t)(r - r0) * K;
    for (int b = 0; b < K / VB_Q4_BLOCK; b++) {
      const uint8_t *blk = row + (size_t)b * VB_Q4_BLOCK_BYTES;
      float d = half_at(blk);
      for (int j = 0; j < 16; j++) {
        o[32 * b + j] = d * (float)((blk[2 + j] & 15) - 8);
        o[32 * b + j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
      }
    }
  }
}

#if defined(__x86_64__)
TGT_VNNI static void rows_to_bf16_avx512(const uint8_t *W, int K, int r0, int r1, uint16_t *dst) {
  size_t rb = vb_q4_row_bytes(K);
  const __m512i eight = _mm512_set1_epi32(8);
  for (int r = r0; r < r1; r++) {
    const uint8_t *row = W + (size_t)r * rb;
    uint16_t *d = dst + (size_t)(r - r0) * K;
    for (int b = 0; b < K / VB_Q4_BLOCK; b++) {
      const uint8_t *blk = row + (size_t)b * VB_Q4_BLOCK_BYTES;
      uint16_t h;
      memcpy(&h, blk, 2);
      __m512 s = _mm512_set1_ps(_cvtsh_ss(h));
      __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
      __m128i nib[2] = {_mm_and_si128(q, _mm_set1_epi8(15)),
                        _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(15))};
      for (int half = 0; half < 2; half++) {
        __m512 f = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(nib[half]), eight)), s);
        _mm256_storeu_si256((__m256i *)(d + 32 * b + 16 * half), vb_bf16x16_rne(f));
      }
    }
  }
}

#endif

void vb_q4_rows_to_bf16(const void *W, int K, int r0, int r1, uint16_t *dst) {
#if defined(__x86_64__)
  if (vb_gemv_q4_has_vnni()) {
    rows_to_bf16_avx512(W, K, r0, r1, dst);
    return;
  }
#endif
  float row[512];
  for (int r = r0; r < r1; r++)
    for (int k0 = 0; k0 < K; k0 += 512) { /* 512: a multiple of the block */
      int kc = K - k0 < 512 ? K - k0 : 512;
      const uint8_t *blk =
          (const uint8_t *)W + (size_t)r * vb_q4_row_bytes(K) + vb_q4_row_bytes(k0);
      vb_q4_rows_to_f32(blk, kc, 0, 1, row);
      for (int j = 0; j < kc; j++)
        dst[(size_t)(r - r0) * K + k0 + j] = vb_float_to_bf16(row[j]);
    }
}

/* ---- the quantized activations ---- */

static __thread void *tls_acts;
static __thread size_t tls_acts_cap;

int vb_q4_quantize_acts(const float *x, int M, int K, int pad_blocks, vb_q4_acts *a) {
  int nb = K / VB_Q4_BLOCK, nbp = (nb + pad_blocks - 1) / pad_blocks * pad_blocks;
  a->qstride = (size_t)nbp * VB_Q4_BLOCK;
  a->bstride = (size_t)nbp;
  size_t qbytes = (size_t)M * a->qstride, fbytes = (size_t)M * nbp * sizeof(float);
  uint8_t *p = vb_tls_scratch_grow(&tls_acts, &tls_acts_cap, qbytes + 2 * fbytes + 64);
  if (!p)
    return vb_error("out of memory for the quantized activations of a %d-row Q4_0 product", M);
  a->da = (float *)p;
  a->c = (float *)(p + fbytes);
  a->q = (int8_t *)(p + 2 * fbytes);
  for (int m = 0; m < M; m++) {
    const float *xr = x + (size_t)m * K;
    int8_t *q = a->q + m * a->qstride;
    float *da = a->da + m * a->bstride, *c = a->c + m * a->bstride;
    for (int b = 0; b < nbp; b++) {
      if (b >= nb) {
        memset(q + 32 * b, 0, 32);
        da[b] = c[b] = 0;
        continue;
      }
      const float *v = xr + 32 * b;
      float amax = 0;
      for (int j = 0; j < 32; j++)
        amax = fabsf(v[j]) > amax ? fabsf(v[j]) : amax;
      float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
      int sum = 0;
      for (int j = 0; j < 32; j++) {
        int r = (int)lrintf(v[j] * id);
        r = r > 127 ? 127 : r < -127 ? -127 : r;
        q[32 * b + j] = (int8_t)r;
        sum += r;
      }
      da[b] = d;
      c[b] = 8.0f * d * (float)sum;
    }
  }
  return 0;
}

/* ---- portable C ---- */

int vb_gemv_q4_c(const void *Wv, int N, int K, const float *x, int M, const float *bias, float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  const uint8_t *W = Wv;
  size_t rb = vb_q4_row_bytes(K);
  int nb = K / VB_Q4_BLOCK;
#pragma omp parallel for schedule(dynamic, 64) if ((size_t)N * K > 32768)
  for (int n = 0; n < N; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m = 0; m < M; m++) {
      const int8_t *q = a.q + m * a.qstride;
      const float *da = a.da + m * a.bstride, *c = a.c + m * a.bstride;
      float acc = 0;
      for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * VB_Q4_BLOCK_BYTES;
        int dot = 0;
        for (int j = 0; j < 16; j++)
          dot += (blk[2 + j] & 15) * q[32 * b + j] + (blk[2 + j] >> 4) * q[32 * b + j + 16];
        acc += half_at(blk) * (da[b] * (float)dot - c[b]);
      }
      y[(size_t)m * N + n] = acc + (bias ? bias[n] : 0.0f);
    }
  }
  return 0;
}

#if defined(__x86_64__)
/* ---- AVX2: one block per VPMADDUBSW ---- */

TGT_AVX2 static void q4_rows_avx2(const uint8_t *W, int n0, int n1, int N, int K,
                                  const vb_q4_acts *a, int M, const float *bias, float *y) {
  size_t rb = vb_q4_row_bytes(K);
  int nb = K / VB_Q4_BLOCK;
  const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
  for (int n = n0; n < n1; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m0 = 0; m0 < M; m0 += MB) {
      int mc = M - m0 < MB ? M - m0 : MB;
      __m256 acc[MB];
      for (int m = 0; m < mc; m++)
        acc[m] = _mm256_setzero_ps();
      for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * VB_Q4_BLOCK_BYTES;
        if ((b & 3) == 0) _mm_prefetch((const char *)blk + PREFETCH, _MM_HINT_T0);
        __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
        __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low);
        uint16_t h;
        memcpy(&h, blk, 2);
        __m256 dw = _mm256_set1_ps(_cvtsh_ss(h));
        for (int m = 0; m < mc; m++) {
          const vb_q4_acts *A = a;
          size_t r = (size_t)(m0 + m);
          __m256i av =
              _mm256_loadu_si256((const __m256i *)(A->q + r * A->qstride + 32 * (size_t)b));
          __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(w, av), ones));
          /* 8 lanes share the block: c / 8 each */
          __m256 t = _mm256_fmsub_ps(f, _mm256_set1_ps(A->da[r * A->bstride + b]),
                                     _mm256_set1_ps(0.125f * A->c[r * A->bstride + b]));
          acc[m] = _mm256_fmadd_ps(t, dw, acc[m]);
        }
      }
      for (int m = 0; m < mc; m++) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        y[(size_t)(m0 + m) * N + n] = _mm_cvtss_f32(s) + (bias ? bias[n] : 0.0f);
      }
    }
  }
}

int vb_gemv_q4_avx2(const void *W, int N, int K, const float *x, int M, const float *bias,
                    float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  VB_GEMV_FOR_ROW_BLOCKS(N, q4_rows_avx2(W, n0, n1, N, K, &a, M, bias, y));
  return 0;
}

/* ---- AVX512-VNNI: two blocks per VPDPBUSD ---- */

/* Lane vectors of the activation scales: for block pair p, lanes 0-7 hold
 * block 2p's value and lanes 8-15 block 2p+1's (c divided among its 8 lanes). */
static __thread void *tls_lanes;
static __thread size_t tls_lanes_cap;

INLINE TGT_VNNI __m512i pair_weights(const uint8_t *p0, int two) {
  __m128i q0 = _mm_loadu_si128((const __m128i *)(p0 + 2));
  __m128i q1 =
      two ? _mm_loadu_si128((const __m128i *)(p0 + VB_Q4_BLOCK_BYTES + 2)) : _mm_setzero_si128();
  __m256i q = _mm256_set_m128i(q1, q0);
  __m256i low = _mm256_and_si256(q, _mm256_set1_epi8(15));
  __m256i high = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(15));
  /* [low0 low1 high0 high1] -> [low0 high0 low1 high1]: block 2p's values 0-31, then 2p+1's */
  __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
  return _mm512_shuffle_i64x2(w, w, _MM_SHUFFLE(3, 1, 2, 0));
}

INLINE TGT_VNNI __m512 pair_scales(const uint8_t *p0, int two) {
  uint16_t h0, h1 = 0;
  memcpy(&h0, p0, 2);
  if (two) memcpy(&h1, p0 + VB_Q4_BLOCK_BYTES, 2);
  return _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16((short)h1), _mm_set1_epi16((short)h0)));
}

TGT_VNNI static void q4_rows_vnni(const uint8_t *W, int n0, int n1, int N, int K,
                                  const vb_q4_acts *a, const float *lanes, int M, const float *bias,
                                  float *y) {
  size_t rb = vb_q4_row_bytes(K);
  int nb = K / VB_Q4_BLOCK, np = (nb + 1) / 2;
  size_t lstride = (size_t)np * 16; /* floats per activation row, per kind (scale, c) */
  for (int n = n0; n < n1; n++) {
    const uint8_t *row = W + (size_t)n * rb;
    for (int m0 = 0; m0 < M; m0 += MB) {
      int mc = M - m0 < MB ? M - m0 : MB;
      /* two accumulators per activation row: independent FMA chains */
      __m512 acc[MB][2];
      for (int m = 0; m < mc; m++)
        acc[m][0] = acc[m][1] = _mm512_setzero_ps();
      for (int p = 0; p < np; p++) {
        const uint8_t *p0 = row + (size_t)(2 * p) * VB_Q4_BLOCK_BYTES;
        if ((p & 1) == 0) _mm_prefetch((const char *)p0 + PREFETCH, _MM_HINT_T0);
        int two = 2 * p + 1 < nb;
        __m512i w = pair_weights(p0, two);
        __m512 dw = pair_scales(p0, two);
        for (int m = 0; m < mc; m++) {
          size_t r = (size_t)(m0 + m);
          __m512i av = _mm512_loadu_si512((const void *)(a->q + r * a->qstride + 64 * (size_t)p));
          __m512 f = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av));
          const float *ls = lanes + r * 2 * lstride + 16 * (size_t)p;
          __m512 t = _mm512_fmsub_ps(f, _mm512_loadu_ps(ls), _mm512_loadu_ps(ls + lstride));
          acc[m][p & 1] = _mm512_fmadd_ps(t, dw, acc[m][p & 1]);
        }
      }
      for (int m = 0; m < mc; m++)
        y[(size_t)(m0 + m) * N + n] =
            _mm512_reduce_add_ps(_mm512_add_ps(acc[m][0], acc[m][1])) + (bias ? bias[n] : 0.0f);
    }
  }
}

int vb_gemv_q4_vnni(const void *W, int N, int K, const float *x, int M, const float *bias,
                    float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 2, &a) != 0) return -1;
  int np = (K / VB_Q4_BLOCK + 1) / 2;
  size_t lstride = (size_t)np * 16;
  float *lanes =
      vb_tls_scratch_grow(&tls_lanes, &tls_lanes_cap, (size_t)M * 2 * lstride * sizeof(float));
  if (!lanes)
    return vb_error("out of memory for the activation scales of a %d-row Q4_0 product", M);
  for (int m = 0; m < M; m++)
    for (int b = 0; b < 2 * np; b++)
      for (int l = 0; l < 8; l++) {
        lanes[(size_t)m * 2 * lstride + 8 * (size_t)b + l] = a.da[m * a.bstride + b];
        lanes[(size_t)m * 2 * lstride + lstride + 8 * (size_t)b + l] =
            0.125f * a.c[m * a.bstride + b];
      }
  VB_GEMV_FOR_ROW_BLOCKS(N, q4_rows_vnni(W, n0, n1, N, K, &a, lanes, M, bias, y));
  return 0;
}

#endif /* x86-64 */

/* ---- dispatch ---- */

int vb_gemv_q4_has_vnni(void) {
#if defined(__x86_64__)
  const vb_cpu_features *f = vb_cpu();
  return vb_cpu_has_avx512() && f->avx512dq && f->avx512_vnni && f->fma &&
         __builtin_cpu_supports("f16c");
#else
  return 0;
#endif
}

int vb_gemv_q4_has_avx2(void) {
#if defined(__x86_64__)
  const vb_cpu_features *f = vb_cpu();
  return f->avx2 && f->fma && __builtin_cpu_supports("f16c");
#else
  return 0;
#endif
}

const char *vb_gemv_q4_path(void) {
  return vb_gemv_q4_has_vnni() ? "avx512-vnni" : vb_gemv_q4_has_avx2() ? "avx2" : "c";
}

int vb_gemv_q4(const void *W, int N, int K, const float *x, int M, const float *bias, float *y) {
#if defined(__x86_64__)
  if (vb_gemv_q4_has_vnni()) return vb_gemv_q4_vnni(W, N, K, x, M, bias, y);
  if (vb_gemv_q4_has_avx2()) return vb_gemv_q4_avx2(W, N, K, x, M, bias, y);
#endif
  return vb_gemv_q4_c(W, N, K, x, M, bias, y);
}
