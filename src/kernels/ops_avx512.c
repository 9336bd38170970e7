/* AVX-512 versions of the transcendental element-wise operations that show up
 * in the vision encoder's profile (GELU over 2056x6144 values per layer and
 * frame batch, softmax over 257-wide score rows): libm's scalar erff/expf took
 * about a fifth of the encoder's non-matmul time. exp: range reduction to
 * 2^n * e^r with |r| <= ln2/2 and a degree-6 polynomial (max error ~2 ulp);
 * GELU: piecewise polynomials of the normal CDF (gelu512.h). ops.c picks
 * these at run time. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/gelu512.h"
#include "kernels/kernels.h"

#define TGT_512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

INLINE TGT_512 __m512 exp512(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-104.0f));
  __m512 n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  __m512 p = _mm512_set1_ps(1.3981999507e-3f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n); /* p * 2^n, flushing to 0 below the range */
}

TGT_512 void vb_gelu_erf_avx512(float *x, size_t n) {
#pragma omp parallel for if (n > 65536) schedule(static)
  for (size_t i = 0; i < n / 16; i++)
    _mm512_storeu_ps(x + 16 * i, vb_gelu512(_mm512_loadu_ps(x + 16 * i)));
  for (size_t i = n / 16 * 16; i < n; i++)
    x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* The same without a parallel region: the tile products' output stage calls it
 * per row of a block (a few hundred values), where entering even an if(0)
 * OpenMP region per call showed up in the profile. */
TGT_512 void vb_gelu_erf_serial_avx512(float *x, size_t n) {
  for (size_t i = 0; i < n / 16; i++)
    _mm512_storeu_ps(x + 16 * i, vb_gelu512(_mm512_loadu_ps(x + 16 * i)));
  for (size_t i = n / 16 * 16; i < n; i++)
    x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

/* A softmax's first passes: the row's max, then x = exp(x - max) in place and
 * their sum; returns the sum's reciprocal, or 0 for a fully masked row (every
 * value -inf: its probabilities are zeros rather than NaN). */
INLINE TGT_512 float softmax_exp(float *x, int n) {
  __m512 mv = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= n; i += 16)
    mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + i));
  float mx = _mm512_reduce_max_ps(mv);
  for (; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) return 0;
  __m512 m = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
  for (i = 0; i + 16 <= n; i += 16) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    _mm512_storeu_ps(x + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (i < n) {
    __mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), m));
    _mm512_mask_storeu_ps(x + i, mk, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mk, e));
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

TGT_512 void vb_softmax_row_avx512(float *x, int n) {
  float r = softmax_exp(x, n);
  if (r == 0) {
    memset(x, 0, n * sizeof(float));
    return;
  }
  __m512 inv = _mm512_set1_ps(r);
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  for (; i < n; i++)
    x[i] *= r;
}

/* vb_softmax_row_avx512's values rounded to bf16 in its last pass: the same
 * max, exponentials, sum and products, then VCVTNEPS2BF16 straight into dst
 * (what rounding the f32 row afterwards gives) instead of a store of the f32
 * probabilities and a second pass over them; x keeps the exponentials.
 * dst[n, np) is zeroed (attention's padded keys). */
#define SOFTMAX_REG_VECTORS 17 /* rows of up to 272: the exponentials stay in registers */

/* vb_softmax_row_bf16_avx512 (below) for n <= 16 * SOFTMAX_REG_VECTORS (ViT-g's
 * 257 keys) with the row held in registers: one load of x, no store of the
 * exponentials and no reload; the same operations in the same order, so the
 * same values (13% less time per 257-wide row, single thread). */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
softmax_row_bf16_regs(const float *x, int n, int np, uint16_t *dst) {
  __m512 v[SOFTMAX_REG_VECTORS];
#pragma GCC unroll 17
  for (int j = 0; j < SOFTMAX_REG_VECTORS; j++)
    v[j] = _mm512_setzero_ps();
  int nf = n / 16, rem = n % 16;
  __mmask16 mk = (__mmask16)((1u << rem) - 1);
  __m512 mv = _mm512_set1_ps(-INFINITY);
#pragma GCC unroll 17
  for (int j = 0; j < SOFTMAX_REG_VECTORS; j++)
    if (j < nf) {
      v[j] = _mm512_loadu_ps(x + 16 * j);
      mv = _mm512_max_ps(mv, v[j]);
    }
  float mx = _mm512_reduce_max_ps(mv);
  for (int i = 16 * nf; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) {
    memset(dst, 0, (size_t)np * sizeof *dst);
    return;
  }
  __m512 m = _mm512_set1_ps(mx), sum = _mm512_setzero_ps(), et = sum;
#pragma GCC unroll 17
  for (int j = 0; j < SOFTMAX_REG_VECTORS; j++)
    if (j < nf) {
      v[j] = exp512(_mm512_sub_ps(v[j], m));
      sum = _mm512_add_ps(sum, v[j]);
    }
  if (rem) {
    et = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + 16 * nf), m));
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mk, et));
  }
  __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
#pragma GCC unroll 17
  for (int j = 0; j < SOFTMAX_REG_VECTORS; j++)
    if (j < nf)
      _mm256_storeu_si256((__m256i *)(dst + 16 * j),
                          (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(v[j], inv)));
  if (rem)
    _mm256_mask_storeu_epi16(dst + 16 * nf, mk,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(et, inv)));
  for (int i = n; i < np; i++)
    dst[i] = 0;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void
vb_softmax_row_bf16_avx512(float *x, int n, int np, uint16_t *dst) {
  if (n <= 16 * SOFTMAX_REG_VECTORS) {
    softmax_row_bf16_regs(x, n, np, dst);
    return;
  }
  float r = softmax_exp(x, n);
  if (r == 0) {
    memset(dst, 0, (size_t)np * sizeof *dst);
    return;
  }
  int i = n / 16 * 16;
  __mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
  __m512 inv = _mm512_set1_ps(r);
  for (i = 0; i + 16 <= n; i += 16)
    _mm256_storeu_si256((__m256i *)(dst + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(x + i), inv)));
  if (i < n) {
    __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), inv);
    _mm256_mask_storeu_epi16(dst + i, mk, (__m256i)_mm512_cvtneps_pbh(p));
  }
  for (i = n; i < np; i++)
    dst[i] = 0;
}

/* Layer norm of one row: two passes with the sums in double (8 lanes at a
 * time) as in ops.c's portable version, which stays stable for ViT-g's large
 * activations. */
TGT_512 void vb_layernorm_row_avx512(const float *x, float *y, int n, const float *w,
                                     const float *b, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(
        s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  for (; i < n; i++)
    mean += x[i];
  mean /= n;
  __m512d m = _mm512_set1_pd(mean), v0 = _mm512_setzero_pd(), v1 = v0;
  for (i = 0; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), m);
    __m512d d1 = _mm512_sub_pd(
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), m);
    v0 = _mm512_fmadd_pd(d0, d0, v0);
    v1 = _mm512_fmadd_pd(d1, d1, v1);
  }
  double var = _mm512_reduce_add_pd(_mm512_add_pd(v0, v1));
  for (; i < n; i++)
    var += (x[i] - mean) * (x[i] - mean);
  var /= n;
  float inv = (float)(1.0 / sqrt(var + eps)), mf = (float)mean;
  __m512 iv = _mm512_set1_ps(inv), mv = _mm512_set1_ps(mf);
  for (i = 0; i + 16 <= n; i += 16) {
    __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv), iv);
    if (w) t = _mm512_mul_ps(t, _mm512_loadu_ps(w + i));
    if (b) t = _mm512_add_ps(t, _mm512_loadu_ps(b + i));
    _mm512_storeu_ps(y + i, t);
  }
  for (; i < n; i++) {
    float t = (x[i] - mf) * inv;
    y[i] = t * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
  }
}

/* Dot product with four independent accumulators (decoding attention: one
 * query row against each cached key, head_dim values at a time). */
TGT_512 float vb_dot_avx512(const float *a, const float *b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    __mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a + i), _mm512_maskz_loadu_ps(mk, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* y += a * x */
TGT_512 void vb_axpy_avx512(float *y, float a, const float *x, int n) {
  __m512 av = _mm512_set1_ps(a);
  int i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    __mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(
        y + i, mk,
        _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(mk, x + i), _mm512_maskz_loadu_ps(mk, y + i)));
  }
}

/* GELU, tanh form (T5 v1.1 / Flan-T5's gelu_new): 0.5 x (1 + tanh(u)) =
 * x e / (e + 1) with e = exp(2u), u = sqrt(2/pi) (x + 0.044715 x^3): no
 * cancellation for negative x, and exp's clamp keeps e finite, so large
 * positive x gives x. */
TGT_512 void vb_gelu_tanh_avx512(float *x, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), c0 = _mm512_set1_ps(0.7978845608028654f),
               c1 = _mm512_set1_ps(0.044715f), two = _mm512_set1_ps(2.0f);
#pragma omp parallel for if (n > 65536) schedule(static)
  for (size_t i = 0; i < n / 16; i++) {
    __m512 v = _mm512_loadu_ps(x + 16 * i);
    __m512 u = _mm512_mul_ps(c0, _mm512_fmadd_ps(_mm512_mul_ps(c1, v), _mm512_mul_ps(v, v), v));
    __m512 e = exp512(_mm512_mul_ps(two, u));
    __m512 g = _mm512_mul_ps(v, _mm512_div_ps(e, _mm512_add_ps(e, one)));
    _mm512_storeu_ps(x + 16 * i, g);
  }
  for (size_t i = n / 16 * 16; i < n; i++) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  }
}
