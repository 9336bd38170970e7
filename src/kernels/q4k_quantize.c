/* GGUF Q4_K quantization (vblip convert --type q4_k, --dtype q4_k): the
 * search for each 32-value sub-block's scale and min, in portable C and with
 * AVX-512, which writes the same bytes.
 *
 * Per sub-block the search tries 12 grid spacings (one least-squares fit
 * each) and then, with the super-block's f16 d and dmin fixed, the 3 x 3
 * nearest 6-bit (sc, m): 22 passes over the 32 values with a rounding each,
 * which made the portable search ~6x slower than Q4_0's quantizer. The
 * AVX-512 search puts the candidates of a step in the lanes of a vector: a
 * sub-block's 12 trials side by side, and the first fits and the (sc, m)
 * candidates of the 8 sub-blocks of a super-block side by side (its values
 * transposed). Each lane adds its 32 terms in the portable loop's order with
 * the same float operations (no FMA contraction in this file), so every sum,
 * comparison and byte is the same (tests/test_q4k_quantize.c
 * checks that against a plain copy of the search). */
#pragma GCC optimize("fp-contract=off")
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/q4_kernels.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#endif
#define TRIALS 12 /* grid spacings 13.5, 13.75, ... 16.25 steps over the range */

/* ---- portable C ---- */

/* Squared error of x ~ a q - b over a sub-block with q = round((x + b) / a)
 * clamped to 0..15 (all 0 when a is 0); q written when wanted. */
static float sub_error(const float *x, float a, float b, uint8_t *q) {
  float ia = a > 0 ? 1.0f / a : 0.0f, err = 0;
  for (int j = 0; j < 32; j++) {
    float r = a > 0 ? rintf((x[j] + b) * ia) : 0.0f;
    r = r < 0 ? 0 : r > 15 ? 15 : r;
    float e = a * r - b - x[j];
    err += e * e;
    if (q) q[j] = (uint8_t)r;
  }
  return err;
}

/* The least-squares refit of trial t from the sums of its rounded q (sq,
 * sqq, sqx) and of x (sx, sxx); the best fit so far replaced when its
 * squared error is smaller. */
static void refit(float sq, float sqq, float sqx, float sx, float sxx, float *best, float *best_a,
                  float *best_b) {
  float den = 32 * sqq - sq * sq;
  if (den <= 0) return;
  float a = (32 * sqx - sq * sx) / den, b = (a * sq - sx) / 32;
  if (b < 0) b = 0, a = sqq > 0 ? sqx / sqq : 0;
  if (!(a > 0)) return;
  /* the fit's squared error on these q, in closed form */
  float e = a * a * sqq + 32 * b * b + sxx - 2 * a * sqx + 2 * b * sx - 2 * a * b * sq;
  if (e < *best) *best = e, *best_a = a, *best_b = b;
}

/* The float fit of one sub-block: the grid from min(x, 0) to max(x) split
 * in 15 steps and a few spacings around it; for each, q rounded on that grid
 * and (a, b) refitted by least squares on those q (b >= 0, a >= 0); the fit
 * with the smallest squared error wins. */
static void fit_sub(const float *x, float *pa, float *pb) {
  float lo = 0, hi = -INFINITY;
  for (int j = 0; j < 32; j++) {
    lo = x[j] < lo ? x[j] : lo;
    hi = x[j] > hi ? x[j] : hi;
  }
  if (!(hi > lo)) { /* constant sub-block, at most 0 */
    *pa = 0, *pb = -lo;
    return;
  }
  float best_a = (hi - lo) / 15, best_b = -lo, best = sub_error(x, best_a, best_b, NULL);
  float sx = 0, sxx = 0;
  for (int j = 0; j < 32; j++)
    sx += x[j], sxx += x[j] * x[j];
  for (int t = 0; t < TRIALS; t++) {
    float steps = 13.5f + 0.25f * (float)t, ia = steps / (hi - lo);
    float sq = 0, sqq = 0, sqx = 0;
    for (int j = 0; j < 32; j++) {
      float r = rintf((x[j] - lo) * ia);
      r = r < 0 ? 0 : r > 15 ? 15 : r;
      sq += r, sqq += r * r, sqx += r * x[j];
    }
    refit(sq, sqq, sqx, sx, sxx, &best, &best_a, &best_b);
  }
  *pa = best_a, *pb = best_b;
}

/* d and dmin from the sub-blocks' fits (the largest a and b over 63), and
 * the nearest 6-bit steps of each fit: the centres of the (sc, m) search. */
static void super_scales(const float a[8], const float b[8], uint16_t *hd, uint16_t *hm, float *d,
                         float *dmin, int s0[8], int m0[8]) {
  float amax = 0, bmax = 0;
  for (int s = 0; s < 8; s++) {
    amax = a[s] > amax ? a[s] : amax;
    bmax = b[s] > bmax ? b[s] : bmax;
  }
  *hd = vb_float_to_half(amax / 63), *hm = vb_float_to_half(bmax / 63);
  *d = vb_half_to_float(*hd), *dmin = vb_half_to_float(*hm);
  for (int s = 0; s < 8; s++) {
    s0[s] = *d > 0 ? (int)lrintf(a[s] / *d) : 0;
    m0[s] = *dmin > 0 ? (int)lrintf(b[s] / *dmin) : 0;
  }
}

static void write_block(uint16_t hd, uint16_t hm, const uint8_t sc[8], const uint8_t mn[8],
                        const uint8_t q[256], uint8_t *o) {
  memcpy(o, &hd, 2);
  memcpy(o + 2, &hm, 2);
  for (int s = 0; s < 4; s++) {
    o[4 + s] = (uint8_t)(sc[s] | (sc[s + 4] >> 4) << 6);
    o[8 + s] = (uint8_t)(mn[s] | (mn[s + 4] >> 4) << 6);
    o[12 + s] = (uint8_t)((sc[s + 4] & 15) | (mn[s + 4] & 15) << 4);
  }
  for (int c = 0; c < 4; c++)
    for (int l = 0; l < 32; l++)
      o[16 + 32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
}

static void quantize_block_c(const float *x, uint8_t *o) {
  float a[8], b[8], d, dmin;
  int s0[8], m0[8];
  uint16_t hd, hm;
  for (int s = 0; s < 8; s++)
    fit_sub(x + 32 * s, &a[s], &b[s]);
  super_scales(a, b, &hd, &hm, &d, &dmin, s0, m0);
  uint8_t sc[8], mn[8], q[256];
  for (int s = 0; s < 8; s++) {
    float best = INFINITY;
    sc[s] = mn[s] = 0;
    for (int i = s0[s] - 1; i <= s0[s] + 1; i++)
      for (int k = m0[s] - 1; k <= m0[s] + 1; k++) {
        if (i < 0 || i > 63 || k < 0 || k > 63) continue;
        float e = sub_error(x + 32 * s, d * (float)i, dmin * (float)k, NULL);
        if (e < best) best = e, sc[s] = (uint8_t)i, mn[s] = (uint8_t)k;
      }
    sub_error(x + 32 * s, d * sc[s], dmin * mn[s], q + 32 * s);
  }
  write_block(hd, hm, sc, mn, q, o);
}

#if defined(__x86_64__)
/* ---- AVX-512: the candidates of a step in lanes ---- */

/* rintf and the clamp r < 0 ? 0 : r > 15 ? 15 : r, lane by lane (VMINPS /
 * VMAXPS return their second operand on a NaN, as the ternaries do). */
TGT_512 static inline __m512 round_clamp(__m512 v) {
  __m512 r = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_max_ps(_mm512_setzero_ps(), _mm512_min_ps(_mm512_set1_ps(15.0f), r));
}

/* sub_error for 16 (a, b) pairs at once, lane l on sub-block l % 8 of a
 * super-block given transposed (xt[8 j + s] = x[32 s + j]). */
TGT_512 static __m512 sub_errors16(const float *xt, __m512 a, __m512 b) {
  __mmask16 pos = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_GT_OQ);
  __m512 ia = _mm512_maskz_div_ps(pos, _mm512_set1_ps(1.0f), a), err = _mm512_setzero_ps();
  for (int j = 0; j < 32; j++) {
    __m512 xj = _mm512_broadcast_f32x8(_mm256_loadu_ps(xt + 8 * j));
    __m512 r = _mm512_maskz_mov_ps(pos, round_clamp(_mm512_mul_ps(_mm512_add_ps(xj, b), ia)));
    __m512 e = _mm512_sub_ps(_mm512_sub_ps(_mm512_mul_ps(a, r), b), xj);
    err = _mm512_add_ps(err, _mm512_mul_ps(e, e));
  }
  return err;
}

/* fit_sub's 12 trials for a sub-block whose range is lo .. hi (hi > lo),
 * from the first fit (best_a, best_b) and its error best: the trials in lanes
 * 0..11, lane 12 summing x (r = 1) and lane 13 x^2 (r = x), in the portable
 * loop's order. */
TGT_512 static void trials_avx512(const float *x, float lo, float hi, float best, float *pa,
                                  float *pb) {
  float best_a = *pa, best_b = *pb;
  const __m512 t = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  __m512 steps = _mm512_add_ps(_mm512_set1_ps(13.5f), _mm512_mul_ps(_mm512_set1_ps(0.25f), t));
  __m512 ia = _mm512_div_ps(steps, _mm512_set1_ps(hi - lo)), vlo = _mm512_set1_ps(lo);
  __m512 sq = _mm512_setzero_ps(), sqq = sq, sqx = sq;
  for (int j = 0; j < 32; j++) {
    __m512 xj = _mm512_set1_ps(x[j]);
    __m512 r = round_clamp(_mm512_mul_ps(_mm512_sub_ps(xj, vlo), ia));
    r = _mm512_mask_mov_ps(r, 1 << 12, _mm512_set1_ps(1.0f));
    r = _mm512_mask_mov_ps(r, 1 << 13, xj);
    sq = _mm512_add_ps(sq, r);
    sqq = _mm512_add_ps(sqq, _mm512_mul_ps(r, r));
    sqx = _mm512_add_ps(sqx, _mm512_mul_ps(r, xj));
  }
  float vq[16], vqq[16], vqx[16];
  _mm512_storeu_ps(vq, sq), _mm512_storeu_ps(vqq, sqq), _mm512_storeu_ps(vqx, sqx);
  for (int k = 0; k < TRIALS; k++)
    refit(vq[k], vqq[k], vqx[k], vqx[12], vqx[13], &best, &best_a, &best_b);
  *pa = best_a, *pb = best_b;
}

/* The portable block's steps with the sub-blocks side by side where a step
 * computes an error for each: fit_sub's first fit (8 lanes) and the 3 x 3
 * (sc, m) candidates (two per sub-block in each of 5 passes). */
TGT_512 static void quantize_block_avx512(const float *x, uint8_t *o) {
  float xt[256];
  for (int s = 0; s < 8; s++)
    for (int j = 0; j < 32; j++)
      xt[8 * j + s] = x[32 * s + j];
  float lo[8], hi[8], a[8], b[8], fa[16] = {0}, fb[16] = {0}, fe[16], d, dmin;
  for (int s = 0; s < 8; s++) {
    __m512 x0 = _mm512_loadu_ps(x + 32 * s), x1 = _mm512_loadu_ps(x + 32 * s + 16);
    /* lo: +0 or a negative value per lane (never -0), as the portable loop;
     * hi's zero sign does not matter (only hi > lo and hi - lo are used) */
    lo[s] = _mm512_reduce_min_ps(_mm512_min_ps(x1, _mm512_min_ps(x0, _mm512_setzero_ps())));
    hi[s] = _mm512_reduce_max_ps(_mm512_max_ps(x0, x1));
    if (hi[s] > lo[s]) fa[s] = (hi[s] - lo[s]) / 15, fb[s] = -lo[s];
  }
  _mm512_storeu_ps(fe, sub_errors16(xt, _mm512_loadu_ps(fa), _mm512_loadu_ps(fb)));
  for (int s = 0; s < 8; s++) {
    if (!(hi[s] > lo[s])) { /* constant sub-block, at most 0 */
      a[s] = 0, b[s] = -lo[s];
      continue;
    }
    a[s] = fa[s], b[s] = fb[s];
    trials_avx512(x + 32 * s, lo[s], hi[s], fe[s], &a[s], &b[s]);
  }
  int s0[8], m0[8];
  uint16_t hd, hm;
  super_scales(a, b, &hd, &hm, &d, &dmin, s0, m0);
  /* candidate c = 3 (i - s0 + 1) + (k - m0 + 1) of sub-block s in lane
   * 8 (c % 2) + s of pass c / 2: the portable loop's order is c's */
  float ca[5][16] = {{0}}, cb[5][16] = {{0}}, err[5][16];
  for (int s = 0; s < 8; s++)
    for (int c = 0; c < 9; c++) {
      int i = s0[s] - 1 + c / 3, k = m0[s] - 1 + c % 3;
      ca[c / 2][8 * (c % 2) + s] = d * (float)i;
      cb[c / 2][8 * (c % 2) + s] = dmin * (float)k;
    }
  for (int p = 0; p < 5; p++)
    _mm512_storeu_ps(err[p], sub_errors16(xt, _mm512_loadu_ps(ca[p]), _mm512_loadu_ps(cb[p])));
  uint8_t sc[8], mn[8], q[256];
  for (int s = 0; s < 8; s++) {
    float best = INFINITY;
    sc[s] = mn[s] = 0;
    for (int c = 0; c < 9; c++) {
      int i = s0[s] - 1 + c / 3, k = m0[s] - 1 + c % 3;
      if (i < 0 || i > 63 || k < 0 || k > 63) continue;
      float e = err[c / 2][8 * (c % 2) + s];
      if (e < best) best = e, sc[s] = (uint8_t)i, mn[s] = (uint8_t)k;
    }
    /* q for the chosen pair: no sum, so the 32 values side by side */
    float qa = d * sc[s], qb = dmin * mn[s];
    __m512 vb = _mm512_set1_ps(qb), ia = _mm512_set1_ps(qa > 0 ? 1.0f / qa : 0.0f);
    for (int h = 0; h < 2; h++) {
      __m512 r = _mm512_setzero_ps();
      if (qa > 0)
        r = round_clamp(_mm512_mul_ps(_mm512_add_ps(_mm512_loadu_ps(x + 32 * s + 16 * h), vb), ia));
      _mm_storeu_si128((__m128i *)(q + 32 * s + 16 * h),
                       _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
    }
  }
  write_block(hd, hm, sc, mn, q, o);
}

#endif /* x86-64 */

void vb_quantize_q4_k(const float *x, int64_t n, void *out) {
  int64_t nb = n / VB_Q4K_BLOCK;
#if defined(__x86_64__)
  int avx512 = vb_cpu_has_avx512();
#endif
#pragma omp parallel for schedule(static) if (nb > 256)
  for (int64_t b = 0; b < nb; b++) {
#if defined(__x86_64__)
    if (avx512) {
      quantize_block_avx512(x + b * VB_Q4K_BLOCK, (uint8_t *)out + b * VB_Q4K_BLOCK_BYTES);
      continue;
    }
#endif
    quantize_block_c(x + b * VB_Q4K_BLOCK, (uint8_t *)out + b * VB_Q4K_BLOCK_BYTES);
  }
}
