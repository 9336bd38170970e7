/* Q4_0 and Q4_K weights (issue 23): the quantizer's rounding, dequantization (f32,
 * bf16, the dtype conversion), the decoding products on every CPU path
 * (AVX512-VNNI on the repacked q4x16 layout and on the rows, AVX2, portable
 * C; each called directly where the CPU has it,
 * and the dispatcher again in child processes with AVX-512 and then AVX2
 * forced off) against a double-precision product of the same quantized
 * operands, their error against the unquantized f32 product, and
 * vb_linear_forward with bf16 compute for few rows (the GEMVs) and many
 * (dequantized tiles through oneDNN, or where bf16 products are slow the
 * VNNI GEMV as for few rows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/q4_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"
#include "testutil.h"

/* The quantizer: every value within half a step of its block's scale (or
 * clamped at +7 steps on the side opposite the extreme), the
 * block's largest-magnitude value exact (as -8 d), the dtype conversion and
 * both row dequantizers agreeing. */
static void check_quantize(int N, int K, tu_rng *rng) {
  float *w = tu_rand_buf(rng, (size_t)N * K, 1.0f);
  size_t bytes = vb_q4_row_bytes(K) * N;
  uint8_t *q = malloc(bytes);
  float *f = malloc((size_t)N * K * sizeof *f), *g = malloc((size_t)N * K * sizeof *g);
  uint16_t *h = malloc((size_t)N * K * sizeof *h);
  vb_quantize_q4_0(w, (int64_t)N * K, q);
  vb_q4_rows_to_f32(q, K, 0, N, f);
  CHECK_OK(vb_convert_to_f32(VB_DT_Q4_0, q, (int64_t)N * K, g));
  CHECK(memcmp(f, g, (size_t)N * K * sizeof *f) == 0,
        "%dx%d: convert_to_f32 differs from rows_to_f32", N, K);
  vb_q4_rows_to_bf16(q, K, 1, N, h);
  int bf_bad = 0, step_bad = 0, extreme_bad = 0;
  for (int r = 1; r < N; r++)
    for (int k = 0; k < K; k++)
      bf_bad += h[(size_t)(r - 1) * K + k] != vb_float_to_bf16(f[(size_t)r * K + k]);
  for (int b = 0; b < N * K / 32; b++) {
    uint16_t hd;
    memcpy(&hd, q + (size_t)b * VB_Q4_BLOCK_BYTES, 2);
    float d = fabsf(vb_half_to_float(hd)), big = 0;
    for (int j = 0; j < 32; j++) {
      float x = w[(size_t)b * 32 + j];
      if (fabsf(x) > fabsf(big)) big = x;
      /* half a step (plus the f16 rounding of d over the 8 steps to the
       * extreme); values of the other sign beyond 7.5 steps are clamped to 7 */
      float allowed = fmaxf(0.5f * d, fabsf(x) - 7 * d) + 8 * d * 1e-3f;
      if (fabsf(x - f[(size_t)b * 32 + j]) > allowed) step_bad++;
    }
    int found = 0;
    for (int j = 0; j < 32; j++)
      found |= big != 0 && f[(size_t)b * 32 + j] == -8 * vb_half_to_float(hd) &&
               fabsf(w[(size_t)b * 32 + j]) == fabsf(big);
    extreme_bad += !found;
  }
  CHECK(bf_bad == 0, "%dx%d: %d bf16 rows values differ from the rounded f32 ones", N, K, bf_bad);
  CHECK(step_bad == 0, "%dx%d: %d values off by more than half a step", N, K, step_bad);
  CHECK(extreme_bad == 0, "%dx%d: %d blocks do not hold their extreme value as -8 d", N, K,
        extreme_bad);
  free(w), free(q), free(f), free(g), free(h);
}

/* The int8 activations the kernels use, dequantized: the reference's input. */
static void quantized_acts(const float *x, int M, int K, float *xq) {
  for (int m = 0; m < M; m++)
    for (int b = 0; b < K / 32; b++) {
      const float *v = x + (size_t)m * K + 32 * b;
      float amax = 0;
      for (int j = 0; j < 32; j++)
        amax = fmaxf(amax, fabsf(v[j]));
      float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
      for (int j = 0; j < 32; j++) {
        long r = lrintf(v[j] * id);
        xq[(size_t)m * K + 32 * b + j] = d * (float)(r > 127 ? 127 : r < -127 ? -127 : r);
      }
    }
}

typedef int (*gemv_fn)(const void *, int, int, const float *, int, const float *, float *);

/* ---- Q4_K ---- */

/* A super-block built by hand from GGUF's layout (ggml's get_scale_min_k4
 * and dequantize_row_q4_K): 6-bit scales and mins with their top bits set
 * (sub-blocks 4-7 keep theirs in bits 6-7 of bytes 0-7), every nibble value,
 * against the formula d sc q - dmin m. */
static void check_q4k_layout(void) {
  uint8_t blk[VB_Q4K_BLOCK_BYTES] = {0};
  uint16_t hd = vb_float_to_half(0.5f), hm = vb_float_to_half(0.25f);
  memcpy(blk, &hd, 2);
  memcpy(blk + 2, &hm, 2);
  int sc[8] = {1, 17, 33, 63, 2, 21, 47, 60}, mn[8] = {63, 5, 40, 0, 18, 33, 50, 9};
  uint8_t *s12 = blk + 4;
  for (int j = 0; j < 4; j++) {
    s12[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
    s12[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
    s12[j + 8] = (uint8_t)((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
  }
  for (int i = 0; i < 128; i++)
    blk[16 + i] = (uint8_t)(((i * 7) & 15) | ((i * 5 + 3) & 15) << 4);
  float f[256];
  CHECK_OK(vb_convert_to_f32(VB_DT_Q4_K, blk, 256, f));
  int bad = 0;
  for (int k = 0; k < 256; k++) {
    int chunk = k / 64, hi = (k % 64) >= 32, l = k % 32, s = 2 * chunk + hi;
    uint8_t byte = blk[16 + 32 * chunk + l];
    int q = hi ? byte >> 4 : byte & 15;
    float want = 0.5f * (float)sc[s] * (float)q - 0.25f * (float)mn[s];
    bad += f[k] != want;
  }
  CHECK(bad == 0, "Q4_K layout: %d of 256 values differ from d sc q - dmin m", bad);
}

/* Relative L2 error of dequant(quant(x)) for Q4_K and Q4_0 on the same data;
 * the worst Q4_K super-block's relative error too. */
static void quant_errors(const float *x, int64_t n, double *ek, double *e0, double *worst) {
  uint8_t *q = malloc((size_t)n);
  float *y = malloc((size_t)n * sizeof *y);
  double num = 0, den = 0;
  *worst = 0;
  vb_quantize_q4_k(x, n, q);
  CHECK_OK(vb_convert_to_f32(VB_DT_Q4_K, q, n, y));
  for (int64_t b = 0; b < n / 256; b++) {
    double bn = 0, bd = 0;
    for (int j = 0; j < 256; j++) {
      double d = x[256 * b + j] - y[256 * b + j];
      bn += d * d, bd += (double)x[256 * b + j] * x[256 * b + j];
    }
    num += bn, den += bd;
    if (bd > 0) *worst = fmax(*worst, sqrt(bn / bd));
  }
  *ek = sqrt(num / den);
  vb_quantize_q4_0(x, n, q);
  CHECK_OK(vb_convert_to_f32(VB_DT_Q4_0, q, n, y));
  num = 0;
  for (int64_t i = 0; i < n; i++)
    num += (double)(x[i] - y[i]) * (x[i] - y[i]);
  *e0 = sqrt(num / den);
  free(q), free(y);
}

/* The quantizer: the dtype conversion, both row dequantizers agreeing; the
 * error bound (every super-block under 8% relative L2 on uniform values,
 * 11% on bell-shaped ones; measured 6.1% and 7.6%) and below Q4_0's on the
 * same values (uniform, bell-shaped, bell-shaped with 1% outliers at 8x). */
static void check_quantize_k(int N, int K, tu_rng *rng) {
  int64_t n = (int64_t)N * K;
  float *w = tu_rand_buf(rng, (size_t)n, 1.0f);
  uint8_t *q = malloc(vb_q4k_row_bytes(K) * N);
  float *f = malloc((size_t)n * sizeof *f), *g = malloc((size_t)n * sizeof *g);
  uint16_t *h = malloc((size_t)n * sizeof *h);
  vb_quantize_q4_k(w, n, q);
  vb_q4k_rows_to_f32(q, K, 0, N, f);
  CHECK_OK(vb_convert_to_f32(VB_DT_Q4_K, q, n, g));
  CHECK(memcmp(f, g, (size_t)n * sizeof *f) == 0, "Q4_K %dx%d: convert_to_f32 differs", N, K);
  vb_q4k_rows_to_bf16(q, K, 1, N, h);
  int bf_bad = 0;
  for (size_t i = K; i < (size_t)n; i++)
    bf_bad += h[i - K] != vb_float_to_bf16(f[i]);
  CHECK(bf_bad == 0, "Q4_K %dx%d: %d bf16 values differ from the rounded f32 ones", N, K, bf_bad);
  static const char *kinds[] = {"uniform", "bell", "bell+outliers"};
  /* the distributions once, on one large shape, in the parent process */
  for (int kind = 0; kind < 3 && N * K >= 1 << 18 && !getenv("VBLIP_KERNELS_CHILD"); kind++) {
    if (kind > 0)
      for (int64_t i = 0; i < n; i++) { /* sum of three uniforms; 1% of them 8x */
        float v = tu_frand(rng);
        w[i] = v + tu_frand(rng) + tu_frand(rng);
        if (kind == 2 && fabsf(tu_frand(rng)) < 0.01f) w[i] *= 8;
      }
    double ek, e0, worst;
    quant_errors(w, n, &ek, &e0, &worst);
    if (N * K >= 1 << 18)
      printf("Q4_K %dx%d %s values: relative L2 error %.4f (worst super-block %.4f), Q4_0 %.4f\n",
             N, K, kinds[kind], ek, worst, e0);
    CHECK(worst < (kind == 0 ? 0.08 : 0.11) || kind == 2,
          "Q4_K %dx%d %s: a super-block's relative error %.4f", N, K, kinds[kind], worst);
    CHECK(ek < e0, "Q4_K %dx%d %s: error %.4f not below Q4_0's %.4f", N, K, kinds[kind], ek, e0);
  }
  free(w), free(q), free(f), free(g), free(h);
}

#if defined(__x86_64__) /* the repacked copies' kernels: AVX512-VNNI */
/* The q4x16 product from Q4_0 rows: packed, run, and the packed copy's
 * unpackers checked against the rows' (they must give the same values). */
static int gemv_q4x16_from_rows(const void *W, int N, int K, const float *x, int M,
                                const float *bias, float *y) {
  void *P = vb_malloc_aligned(vb_q4x16_bytes(N, K));
  float *a = malloc((size_t)N * K * sizeof *a), *b = malloc((size_t)N * K * sizeof *b);
  uint16_t *c = malloc((size_t)N * K * sizeof *c), *d = malloc((size_t)N * K * sizeof *d);
  int rc = -1;
  if (P && a && b && c && d) {
    vb_q4x16_pack(W, N, K, P);
    int r0 = N > 16 ? 16 : 0; /* unpackers start at a multiple of 16 */
    vb_q4_rows_to_f32(W, K, r0, N, a);
    vb_q4x16_rows_to_f32(P, K, r0, N, b);
    vb_q4_rows_to_bf16(W, K, r0, N, c);
    vb_q4x16_rows_to_bf16(P, K, r0, N, d);
    size_t n = (size_t)(N - r0) * K;
    CHECK(memcmp(a, b, n * sizeof *a) == 0 && memcmp(c, d, n * sizeof *c) == 0,
          "%dx%d: q4x16 unpackers differ from the rows'", N, K);
    rc = vb_gemv_q4x16(P, N, K, x, M, bias, y);
  }
  vb_free_aligned(P);
  free(a), free(b), free(c), free(d);
  return rc;
}
#endif

static void check_gemv(int N, int K, int M, tu_rng *rng) {
  float *w = tu_rand_buf(rng, (size_t)N * K, 0.5f), *x = tu_rand_buf(rng, (size_t)M * K, 2.0f);
  float *bias = tu_rand_buf(rng, (size_t)N, 0.1f);
  uint8_t *q = malloc(vb_q4_row_bytes(K) * N);
  float *wd = malloc((size_t)N * K * sizeof *wd), *xq = malloc((size_t)M * K * sizeof *xq);
  float *y = malloc((size_t)M * N * sizeof *y);
  double *ref = malloc((size_t)M * N * sizeof *ref), *exact = malloc((size_t)M * N * sizeof *exact),
         *mag = malloc((size_t)M * N * sizeof *mag);
  vb_quantize_q4_0(w, (int64_t)N * K, q);
  vb_q4_rows_to_f32(q, K, 0, N, wd);
  quantized_acts(x, M, K, xq);
  tu_linear_ref(xq, wd, bias, M, N, K, ref, mag);   /* the same quantized operands */
  tu_linear_ref(x, wd, bias, M, N, K, exact, NULL); /* f32 activations, the 4-bit weight */
  struct {
    const char *name;
    gemv_fn fn;
    int here;
  } paths[] = {
    {"dispatch", vb_gemv_q4, 1},
    {"c", vb_gemv_q4_c, 1},
#if defined(__x86_64__)
    {"avx2", vb_gemv_q4_avx2, vb_gemv_q4_has_avx2()},
    {"avx512-vnni", vb_gemv_q4_vnni, vb_gemv_q4_has_vnni()},
    {"q4x16 (avx512-vnni, repacked)", gemv_q4x16_from_rows, vb_q4x16_supported()},
#endif
  };
  for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
    if (!paths[p].here) continue;
    if (!CHECK_OK(paths[p].fn(q, N, K, x, M, bias, y))) continue;
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
      /* the integer block sums are exact: only float roundings, bounded by
       * a few ulps of the sum of magnitudes */
      double e = fabs(y[i] - ref[i]), tol = 1e-5 * mag[i] + 1e-6;
      if (e > tol) bad++;
      worst = fmax(worst, e / (mag[i] + 1e-30));
    }
    CHECK(bad == 0, "%s %dx%d M=%d: %d outputs off the reference (worst %.3g of the magnitude)",
          paths[p].name, N, K, M, bad, worst);
    if (p == 0) { /* the activations' 8 bits against f32 activations */
      double num = 0, den = 0;
      for (size_t i = 0; i < (size_t)M * N; i++) {
        num += (y[i] - exact[i]) * (y[i] - exact[i]);
        den += exact[i] * exact[i];
      }
      double rel = sqrt(num / den);
      if (M == 1 && K >= 1024)
        printf("q4_0 %dx%d M=%d (%s): relative L2 error of int8 activations vs f32 ones %.2e\n", N,
               K, M, vb_gemv_q4_path(), rel);
      CHECK(rel < 1e-2, "%dx%d M=%d: int8 activations cost %.3g relative", N, K, M, rel);
    }
  }
  free(w), free(x), free(bias), free(q), free(wd), free(xq), free(y), free(ref), free(exact),
      free(mag);
}

#if defined(__x86_64__)
/* The q4kx16 product from Q4_K rows: packed, run, and the packed copy's
 * unpackers checked against the rows' (the same values). */
static int gemv_q4kx16_from_rows(const void *W, int N, int K, const float *x, int M,
                                 const float *bias, float *y) {
  void *P = vb_malloc_aligned(vb_q4kx16_bytes(N, K));
  float *a = malloc((size_t)N * K * sizeof *a), *b = malloc((size_t)N * K * sizeof *b);
  uint16_t *c = malloc((size_t)N * K * sizeof *c), *d = malloc((size_t)N * K * sizeof *d);
  int rc = -1;
  if (P && a && b && c && d) {
    vb_q4kx16_pack(W, N, K, P);
    int r0 = N > 16 ? 5 : 0;
    vb_q4k_rows_to_f32(W, K, r0, N, a);
    vb_q4kx16_rows_to_f32(P, K, r0, N, b);
    vb_q4k_rows_to_bf16(W, K, r0, N, c);
    vb_q4kx16_rows_to_bf16(P, K, r0, N, d);
    size_t n = (size_t)(N - r0) * K;
    CHECK(memcmp(a, b, n * sizeof *a) == 0 && memcmp(c, d, n * sizeof *c) == 0,
          "%dx%d: q4kx16 unpackers differ from the rows'", N, K);
    rc = vb_gemv_q4kx16(P, N, K, x, M, bias, y);
  }
  vb_free_aligned(P);
  free(a), free(b), free(c), free(d);
  return rc;
}
#endif

static void check_gemv_k(int N, int K, int M, tu_rng *rng) {
  float *w = tu_rand_buf(rng, (size_t)N * K, 0.5f), *x = tu_rand_buf(rng, (size_t)M * K, 2.0f);
  float *bias = tu_rand_buf(rng, (size_t)N, 0.1f);
  for (size_t i = 0; i < (size_t)N * K; i += 7) /* a positive offset: mins above 0 */
    w[i] += 0.3f;
  uint8_t *q = malloc(vb_q4k_row_bytes(K) * N);
  float *wd = malloc((size_t)N * K * sizeof *wd), *xq = malloc((size_t)M * K * sizeof *xq);
  float *y = malloc((size_t)M * N * sizeof *y);
  double *ref = malloc((size_t)M * N * sizeof *ref), *mag = malloc((size_t)M * N * sizeof *mag),
         *exact = malloc((size_t)M * N * sizeof *exact);
  vb_quantize_q4_k(w, (int64_t)N * K, q);
  vb_q4k_rows_to_f32(q, K, 0, N, wd);
  quantized_acts(x, M, K, xq);
  tu_linear_ref(xq, wd, bias, M, N, K, ref, mag);
  tu_linear_ref(x, wd, bias, M, N, K, exact, NULL);
  struct {
    const char *name;
    gemv_fn fn;
    int here;
  } paths[] = {
    {"dispatch", vb_gemv_q4k, 1},
    {"c", vb_gemv_q4k_c, 1},
#if defined(__x86_64__)
    {"avx2", vb_gemv_q4k_avx2, vb_gemv_q4_has_avx2()},
    {"avx512-vnni", vb_gemv_q4k_vnni, vb_gemv_q4_has_vnni()},
    {"amx-int8 (prefill)", vb_gemm_q4k_amx, vb_q4k_amx_usable()},
    {"q4kx16 (avx512-vnni, repacked)", gemv_q4kx16_from_rows, vb_q4x16_supported()},
#endif
  };
  for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
    if (!paths[p].here) continue;
    for (size_t i = 0; i < (size_t)M * N; i++)
      y[i] = NAN;
    if (!CHECK_OK(paths[p].fn(q, N, K, x, M, bias, y))) continue;
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
      double e = fabs(y[i] - ref[i]), tol = 1e-5 * mag[i] + 1e-6;
      if (!(e <= tol)) bad++;
      worst = fmax(worst, e / (mag[i] + 1e-30));
    }
    CHECK(bad == 0,
          "Q4_K %s %dx%d M=%d: %d outputs off the reference (worst %.3g of the magnitude)",
          paths[p].name, N, K, M, bad, worst);
    if (p == 0) {
      double rel = tu_rel_l2(y, exact, (size_t)M * N);
      if (M == 1 && K >= 1024)
        printf("q4_k %dx%d M=%d (%s): relative L2 error of int8 activations vs f32 ones %.2e\n", N,
               K, M, vb_gemv_q4_path(), rel);
      CHECK(rel < 1e-2, "Q4_K %dx%d M=%d: int8 activations cost %.3g relative", N, K, M, rel);
    }
  }
  free(w), free(x), free(bias), free(q), free(wd), free(xq), free(y), free(ref), free(mag),
      free(exact);
}

static void check_linear_k(int N, int K, int M, tu_rng *rng) {
  float *w = tu_rand_buf(rng, (size_t)N * K, 0.5f), *x = tu_rand_buf(rng, (size_t)M * K, 1.0f);
  float *bias = tu_rand_buf(rng, (size_t)N, 0.1f);
  uint8_t *q = malloc(vb_q4k_row_bytes(K) * N);
  float *wd = malloc((size_t)N * K * sizeof *wd), *y = malloc((size_t)M * N * sizeof *y);
  double *ref = malloc((size_t)M * N * sizeof *ref);
  vb_quantize_q4_k(w, (int64_t)N * K, q);
  vb_q4k_rows_to_f32(q, K, 0, N, wd);
  tu_linear_ref(x, wd, bias, M, N, K, ref, NULL);
  vb_linear l = {
      .out = N, .in = K, .dtype = VB_DT_Q4_K, .w = q, .bias = bias, .compute = VB_COMPUTE_BF16};
  if (CHECK_OK(vb_linear_prepare(&l)) && CHECK_OK(vb_linear_forward(&l, x, M, y))) {
    double rel = tu_rel_l2(y, ref, (size_t)M * N);
    CHECK(rel < 1e-2 && rel > 0, "Q4_K linear %dx%d M=%d: relative error %.3g", N, K, M, rel);
    CHECK(vb_linear_reads_stored(&l) == !vb_q4x16_supported() || getenv("VBLIP_Q4_ROWS"),
          "Q4_K linear %dx%d: the rows are read unless repacked", N, K);
  }
  vb_linear_release(&l);
  /* a row width that is not whole super-blocks is refused, not misread */
  vb_linear bad = {.out = 4, .in = 96, .dtype = VB_DT_Q4_K, .w = q, .compute = VB_COMPUTE_BF16};
  CHECK(vb_linear_prepare(&bad) != 0 && strstr(vb_error_message(), "256"),
        "Q4_K linear 4x96 accepted: %s", vb_error_message());
  vb_linear_release(&bad);
  free(w), free(x), free(bias), free(q), free(wd), free(y), free(ref);
}

/* vb_linear_forward, bf16 compute: few rows through the GEMV, many through
 * bf16 tiles (weights dequantized to bf16, activations rounded to bf16). */
static void check_linear(int N, int K, int M, tu_rng *rng) {
  float *w = tu_rand_buf(rng, (size_t)N * K, 0.5f), *x = tu_rand_buf(rng, (size_t)M * K, 1.0f);
  float *bias = tu_rand_buf(rng, (size_t)N, 0.1f);
  uint8_t *q = malloc(vb_q4_row_bytes(K) * N);
  float *wd = malloc((size_t)N * K * sizeof *wd), *y = malloc((size_t)M * N * sizeof *y);
  double *ref = malloc((size_t)M * N * sizeof *ref);
  vb_quantize_q4_0(w, (int64_t)N * K, q);
  vb_q4_rows_to_f32(q, K, 0, N, wd);
  tu_linear_ref(x, wd, bias, M, N, K, ref, NULL);
  vb_linear l = {
      .out = N, .in = K, .dtype = VB_DT_Q4_0, .w = q, .bias = bias, .compute = VB_COMPUTE_BF16};
  if (CHECK_OK(vb_linear_prepare(&l)) && CHECK_OK(vb_linear_forward(&l, x, M, y))) {
    double rel = tu_rel_l2(y, ref, (size_t)M * N);
    CHECK(rel < 1e-2 && rel > 0, "linear %dx%d M=%d: relative error %.3g", N, K, M, rel);
    CHECK(vb_linear_reads_stored(&l) == !vb_q4x16_supported() || getenv("VBLIP_Q4_ROWS"),
          "linear %dx%d: the Q4_0 rows are read unless repacked", N, K);
  }
  vb_linear_release(&l);
  free(w), free(x), free(bias), free(q), free(wd), free(y), free(ref);
}

int main(void) {
  vb_cpu_init();
  printf("q4_0 decoding path here: %s (%s); Q4_K prefill on AMX-INT8: %s\n", vb_gemv_q4_path(),
         vb_cpu_describe(), vb_q4k_amx_usable() ? "yes" : "no");
  tu_rng rng = {0x4b1d};
  static const int shapes[][2] = {{37, 32}, {64, 96}, {130, 256}, {300, 2048}, {64, 4096}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    check_quantize(shapes[s][0], shapes[s][1], &rng);
    for (int M = 1; M <= 15; M += (M < 5 ? 1 : 5))
      check_gemv(shapes[s][0], shapes[s][1], M, &rng);
  }
  check_linear(200, 512, 1, &rng);
  check_linear(200, 512, 4, &rng);
  check_linear(200, 512, 40, &rng);
  check_linear(96, 64, 33, &rng);
  check_linear(37, 96, 2, &rng); /* a partial panel */
  check_q4k_layout();
  static const int kshapes[][2] = {{37, 256}, {64, 512}, {130, 2560}, {100, 2048}, {16, 4096}};
  for (size_t s = 0; s < sizeof kshapes / sizeof kshapes[0]; s++) {
    check_quantize_k(kshapes[s][0], kshapes[s][1], &rng);
    /* 4 rows per pass in the GEMVs, 32 in the AMX product: whole, partial, both */
    static const int ms[] = {1, 2, 4, 5, 15, 33};
    for (int i = 0; i < 6; i++)
      check_gemv_k(kshapes[s][0], kshapes[s][1], ms[i], &rng);
  }
  check_linear_k(200, 512, 1, &rng);
  check_linear_k(200, 512, 4, &rng);
  check_linear_k(200, 512, 40, &rng);
  check_linear_k(37, 768, 2, &rng);
  tu_rerun_with_cpu_paths_off();
  tu_rerun_with_env("VBLIP_NO_AVX2=1");
  tu_rerun_with_env("VBLIP_Q4_ROWS=1");
  /* AMX off: the Q4_K prefill product is not used (and refuses to run) */
  tu_rerun_with_env("VBLIP_NO_AMX=1");
  tu_rerun_with_env("VBLIP_Q4_AMX=1"); /* vb_linear_forward's many rows on AMX-INT8 */
#if defined(__x86_64__)                /* (no AMX product elsewhere) */
  if (getenv("VBLIP_NO_AMX")) {
    float x[256] = {0}, y[16];
    uint8_t q[16 * VB_Q4K_BLOCK_BYTES] = {0};
    CHECK(!vb_q4k_amx_usable() && vb_gemm_q4k_amx(q, 16, 256, x, 1, NULL, y) != 0,
          "VBLIP_NO_AMX=1: the AMX Q4_K product still runs");
  } /* linear layers on the Q4_0 rows, not repacked */
#endif
  return tu_finish();
}
