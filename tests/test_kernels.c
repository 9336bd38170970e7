/* Every compute kernel against a plain double-precision reference on random
 * data: f32 linear layers (rel 1e-5), bf16 linear layers through each path
 * (oneDNN matmul plain and packed, each small-M GEMV implementation; rel 1e-2),
 * the f32 small-M GEMV through vb_linear_forward,
 * the blocked bf16 layout (its packing equals oneDNN's reorder to BA16a64b2a
 * bit for bit; its GEMV agrees with the plain AVX512-BF16 GEMV within f32
 * summation-order error, for 1-15 rows and an odd number of k-blocks; its
 * f32 product, vb_gemm_bf16b_f32, within f32 summation error of the double
 * product of the bf16 weight values and the unrounded activations; a linear
 * layer that fits it reads it in both paths, many rows through that f32
 * product where bf16 products are slow),
 * vb_gemm, norms, activations, softmax and attention. The program then runs
 * itself again with AMX forced off (VBLIP_NO_AMX=1), with AVX-512 forced
 * off (VBLIP_NO_AVX512=1, the portable paths) and with bf16 products taken
 * as fast and as slow (VBLIP_BF16_PRODUCTS): each must pass the same checks. */
#include <dnnl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#include "kernels/kernels.h"
#include "runtime/cpu.h"
#include "testutil.h"

static tu_rng rng = {0x9e3779b97f4a7c15ull};

static void test_linear_shape(int M, int N, int K, int with_bias) {
  float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.5f);
  float *b = with_bias ? tu_rand_buf(&rng, N, 0.3f) : NULL;
  double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
  float *y = malloc((size_t)M * N * sizeof(float));
  tu_linear_ref(x, w, b, M, N, K, ref, mag);
  uint16_t *wb = malloc((size_t)N * K * sizeof(uint16_t));
  for (size_t i = 0; i < (size_t)N * K; i++) wb[i] = vb_float_to_bf16(w[i]);

  /* f32: stored f32, exact up to summation order (M <= 15: vb_gemv_f32 with
   * AVX-512, else sgemm); NaNs first, so every output must be written */
  vb_linear l = {.out = N, .in = K, .dtype = VB_DT_F32, .w = w, .bias = b};
  CHECK_OK(vb_linear_prepare(&l));
  memset(y, 0xff, (size_t)M * N * sizeof(float));
  CHECK_OK(vb_linear_forward(&l, x, M, y));
  size_t bad = 0;
  for (size_t i = 0; i < (size_t)M * N; i++)
    if (fabs(y[i] - ref[i]) > 1e-5 * mag[i] + 1e-6) bad++;
  CHECK(bad == 0, "f32 linear M=%d N=%d K=%d: %zu values off", M, N, K, bad);
  vb_linear_release(&l);

  /* bf16 compute: from f32 weights (converted) and from bf16 weights (used in
   * place), plain and packed */
  for (int variant = 0; variant < 3; variant++) {
    vb_linear lb = {.out = N, .in = K, .dtype = variant == 2 ? VB_DT_BF16 : VB_DT_F32,
                    .w = variant == 2 ? (const void *)wb : (const void *)w, .bias = b,
                    .compute = VB_COMPUTE_BF16, .pack = variant == 1};
    if (!CHECK_OK(vb_linear_prepare(&lb))) continue;
    memset(y, 0xff, (size_t)M * N * sizeof(float)); /* NaNs: every output must be written */
    CHECK_OK(vb_linear_forward(&lb, x, M, y));
    double e = tu_rel_l2(y, ref, (size_t)M * N);
    CHECK(e < 1e-2, "bf16 linear (variant %d) M=%d N=%d K=%d: relative error %g", variant, M, N, K, e);
    vb_linear_release(&lb);
  }

  /* every GEMV implementation directly (small M; the dispatcher picks one) */
  if (M <= 64) {
    const char *names[] = {"c", "avx512", "avx512bf16"};
    for (int impl = 0; impl < 3; impl++) {
      if (impl == 1 && !vb_cpu_has_avx512()) continue;
      if (impl == 2 && !vb_cpu()->avx512_bf16) continue;
      memset(y, 0xff, (size_t)M * N * sizeof(float));
      if (impl == 0) vb_gemv_bf16_c(wb, N, K, x, M, b, y);
#if defined(__x86_64__)
      if (impl == 1) vb_gemv_bf16_avx512(wb, N, K, x, M, b, y);
      if (impl == 2) vb_gemv_bf16_avx512bf16(wb, N, K, x, M, b, y);
#endif
      double e = tu_rel_l2(y, ref, (size_t)M * N);
      CHECK(e < 1e-2, "gemv %s M=%d N=%d K=%d: relative error %g", names[impl], M, N, K, e);
    }
  }
  free(x);
  free(w);
  free(b);
  free(wb);
  free(ref);
  free(mag);
  free(y);
}

static void test_linear(void) {
  static const int shapes[][3] = {
      {1, 1, 1},      {1, 33, 17},    {2, 64, 100},   {3, 130, 257},  {4, 96, 2560},
      {1, 2560, 512}, {5, 7, 31},     {8, 129, 65},   {15, 77, 96},   {16, 100, 70},
      {17, 61, 33},   {32, 768, 768}, {257, 88, 160}, {514, 256, 352}, {514, 301, 97},
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    test_linear_shape(shapes[i][0], shapes[i][1], shapes[i][2], (int)(i % 2 == 0));
}

#if defined(__x86_64__) /* the blocked layout's kernel: AVX512-BF16 */
/* oneDNN's own reorder of plain [N, K] bf16 rows to BA16a64b2a, for comparison. */
static int onednn_blocked(const uint16_t *w, int N, int K, uint16_t *dst) {
  dnnl_engine_t eng;
  dnnl_stream_t st;
  if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return -1;
  dnnl_stream_create(&st, eng, dnnl_stream_default_flags);
  dnnl_memory_desc_t plain, blk;
  dnnl_dims_t wd = {K, N}, ws = {1, K};
  dnnl_memory_desc_init_by_strides(&plain, 2, wd, dnnl_bf16, ws);
  dnnl_memory_desc_init_by_tag(&blk, 2, wd, dnnl_bf16, dnnl_BA16a64b2a);
  dnnl_primitive_desc_t rpd;
  dnnl_primitive_t r;
  dnnl_memory_t from, to;
  int rc = -1;
  if (dnnl_reorder_primitive_desc_create(&rpd, &plain, eng, &blk, eng, NULL) == dnnl_success) {
    dnnl_primitive_create(&r, rpd);
    dnnl_memory_create(&from, &plain, eng, (void *)w);
    dnnl_memory_create(&to, &blk, eng, dst);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    if (dnnl_primitive_execute(r, st, 2, args) == dnnl_success && dnnl_stream_wait(st) == dnnl_success) rc = 0;
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
  }
  dnnl_stream_destroy(st);
  dnnl_engine_destroy(eng);
  return rc;
}

/* Values of y off yp, two computations of the same bf16 products in another
 * order: f32 summation error only (mag: sum |x w|, 1.01 for the activations'
 * own bf16 rounding). */
static size_t off_same_bf16_sums(const float *y, const float *yp, const double *mag, size_t n) {
  size_t bad = 0;
  for (size_t j = 0; j < n; j++)
    if (!(fabs((double)y[j] - yp[j]) <= 1e-5 * 1.01 * mag[j] + 1e-6)) bad++;
  return bad;
}

static void test_bf16_blocked_shape(int N, int K) {
  CHECK(vb_bf16b_fits(N, K), "%dx%d should fit the blocked layout", N, K);
  float *w = tu_rand_buf(&rng, (size_t)N * K, 0.5f);
  uint16_t *wb = malloc((size_t)N * K * 2), *P = vb_malloc_aligned((size_t)N * K * 2),
           *R = vb_malloc_aligned((size_t)N * K * 2);
  for (size_t i = 0; i < (size_t)N * K; i++) wb[i] = vb_float_to_bf16(w[i]);
  vb_bf16b_pack(wb, N, K, P);
  size_t misplaced = 0;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      if (P[vb_bf16b_offset(K, n, k)] != wb[(size_t)n * K + k]) misplaced++;
  CHECK(misplaced == 0, "bf16 blocked %dx%d: %zu elements not where vb_bf16b_offset says", N, K, misplaced);
  if (CHECK(onednn_blocked(wb, N, K, R) == 0, "oneDNN reorder to BA16a64b2a"))
    CHECK(memcmp(P, R, (size_t)N * K * 2) == 0, "bf16 blocked %dx%d differs from oneDNN's BA16a64b2a", N, K);
  static const int rows[] = {1, 2, 3, 4, 5, 7, 15};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int M = rows[i];
    float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *b = i % 2 ? tu_rand_buf(&rng, N, 0.3f) : NULL;
    double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
    float *y = malloc((size_t)M * N * sizeof(float)), *yp = malloc((size_t)M * N * sizeof(float));
    tu_linear_ref(x, w, b, M, N, K, ref, mag);
    memset(y, 0xff, (size_t)M * N * sizeof(float)); /* NaNs: every output must be written */
    vb_gemv_bf16b(P, N, K, x, M, b, y);
    vb_gemv_bf16_avx512bf16(wb, N, K, x, M, b, yp);
    size_t bad = off_same_bf16_sums(y, yp, mag, (size_t)M * N);
    CHECK(bad == 0, "gemv bf16 blocked M=%d N=%d K=%d: %zu values off the plain kernel", M, N, K, bad);
    free(x), free(b), free(ref), free(mag), free(y), free(yp);
  }
  /* the f32 product on the blocked weight (CPUs whose bf16 products are slow):
   * the bf16 weight values times the activations as they are, f32 sums */
  float *wf = malloc((size_t)N * K * sizeof(float));
  for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = vb_bf16_to_float(wb[i]);
  static const int frows[] = {1, 3, 4, 13, 16, 33};
  for (size_t i = 0; i < sizeof frows / sizeof frows[0]; i++) {
    int M = frows[i];
    float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *b = i % 2 ? tu_rand_buf(&rng, N, 0.3f) : NULL;
    double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
    float *y = malloc((size_t)M * N * sizeof(float));
    tu_linear_ref(x, wf, b, M, N, K, ref, mag);
    memset(y, 0xff, (size_t)M * N * sizeof(float));
    vb_gemm_bf16b_f32(P, N, K, x, M, b, y);
    size_t bad = 0;
    for (size_t j = 0; j < (size_t)M * N; j++)
      if (!(fabs(y[j] - ref[j]) <= 1e-5 * mag[j] + 1e-6)) bad++;
    CHECK(bad == 0, "bf16 blocked, f32 product M=%d N=%d K=%d: %zu values off", M, N, K, bad);
    /* from the plain rows, each panel repacked on the way: the same bits */
    float *yr = malloc((size_t)M * N * sizeof(float));
    memset(yr, 0xff, (size_t)M * N * sizeof(float));
    CHECK_OK(vb_gemm_bf16_rows_f32(wb, N, K, x, M, b, yr));
    CHECK(memcmp(y, yr, (size_t)M * N * sizeof(float)) == 0,
          "bf16 rows, f32 product M=%d N=%d K=%d: not the blocked weight's values", M, N, K);
    /* each row's sums take the same operations whatever rows share its pass: row by
     * row, the same bits */
    float *y1 = malloc((size_t)N * sizeof(float));
    size_t rows_off = 0;
    for (int m = 0; m < M; m++) {
      vb_gemm_bf16b_f32(P, N, K, x + (size_t)m * K, 1, b, y1);
      rows_off += memcmp(y1, y + (size_t)m * N, (size_t)N * sizeof(float)) != 0;
    }
    CHECK(rows_off == 0,
          "bf16 blocked, f32 product M=%d N=%d K=%d: %zu rows differ from one-row calls", M, N, K,
          rows_off);
    free(y1);
    free(x), free(b), free(ref), free(mag), free(y), free(yr);
  }
  /* linear layers of this shape: a stored f32 weight is converted straight
   * into the blocked layout, read by the blocked GEMV (1 row: bit for bit what
   * vb_gemv_bf16b gives on P) and by oneDNN (40 rows); a stored bf16 weight is
   * used where it lies, by the plain kernel (bit for bit too) */
  for (int stored_bf16 = 0; stored_bf16 < 2; stored_bf16++) {
    vb_linear l = {.out = N, .in = K, .dtype = stored_bf16 ? VB_DT_BF16 : VB_DT_F32,
                   .w = stored_bf16 ? (const void *)wb : (const void *)w, .compute = VB_COMPUTE_BF16};
    if (!CHECK_OK(vb_linear_prepare(&l))) continue;
    CHECK(vb_linear_reads_stored(&l) == stored_bf16, "bf16 linear %dx%d (stored %s): reads stored %d", N, K,
          stored_bf16 ? "bf16" : "f32", vb_linear_reads_stored(&l));
    for (int M = 1; M <= 40; M += 39) {
      float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f);
      double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
      float *y = malloc((size_t)M * N * sizeof(float)), *yp = malloc((size_t)M * N * sizeof(float)),
            *yk = malloc((size_t)M * N * sizeof(float));
      tu_linear_ref(x, w, NULL, M, N, K, ref, mag);
      memset(y, 0xff, (size_t)M * N * sizeof(float));
      CHECK_OK(vb_linear_forward(&l, x, M, y));
      size_t bad = 0;
      if (M > VB_BF16_GEMV_MAX_M && !vb_cpu_bf16_products_fast()) {
        /* slow bf16 products: many rows through f32 FMAs on the bf16 weight
         * (blocked, or a stored bf16 weight's rows repacked panel by panel) */
        double *rw = malloc((size_t)M * N * sizeof(double));
        tu_linear_ref(x, wf, NULL, M, N, K, rw, NULL);
        for (size_t j = 0; j < (size_t)M * N; j++)
          if (!(fabs(y[j] - rw[j]) <= 1e-5 * mag[j] + 1e-6)) bad++;
        free(rw);
      } else {
        vb_gemv_bf16_avx512bf16(wb, N, K, x, M, NULL, yp);
        bad = off_same_bf16_sums(y, yp, mag, (size_t)M * N);
      }
      CHECK(bad == 0, "bf16 linear (stored %s) M=%d N=%d K=%d: %zu values off", stored_bf16 ? "bf16" : "f32", M,
            N, K, bad);
      if (M == 1) {
        if (stored_bf16)
          memcpy(yk, yp, (size_t)N * sizeof(float));
        else
          vb_gemv_bf16b(P, N, K, x, 1, NULL, yk);
        CHECK(memcmp(y, yk, (size_t)N * sizeof(float)) == 0, "bf16 linear %dx%d (stored %s), 1 row: not the %s kernel",
              N, K, stored_bf16 ? "bf16" : "f32", stored_bf16 ? "plain" : "blocked");
      }
      free(x), free(ref), free(mag), free(y), free(yp), free(yk);
    }
    vb_linear_release(&l);
  }
  free(w), free(wb), free(wf);
  vb_free_aligned(P), vb_free_aligned(R);
}

#endif

static void test_bf16_blocked(void) {
  if (!vb_bf16b_supported()) {
    printf("bf16 blocked layout (AVX512-BF16) not available here: its tests are skipped\n");
    return;
  }
#if defined(__x86_64__)
  CHECK(!vb_bf16b_fits(96, 64) && !vb_bf16b_fits(64, 48), "shapes off the 64 x 32 grid must not fit");
  static const int shapes[][2] = {{64, 32}, {128, 96}, {192, 2560}, {2560, 64}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) test_bf16_blocked_shape(shapes[i][0], shapes[i][1]);
#endif
}

static void test_gemm(void) {
  int M = 37, N = 45, K = 29;
  for (int tb = 0; tb < 2; tb++) {
    float *A = tu_rand_buf(&rng, (size_t)M * K, 1), *B = tu_rand_buf(&rng, (size_t)K * N, 1),
          *C = tu_rand_buf(&rng, (size_t)M * N, 1);
    double *ref = malloc((size_t)M * N * sizeof(double));
    float alpha = 0.7f, beta = tb ? 0.5f : 0.0f;
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)A[i * K + k] * (tb ? B[j * K + k] : B[k * N + j]);
        ref[i * N + j] = alpha * s + beta * C[i * N + j];
      }
    vb_gemm(M, N, K, A, K, B, tb ? K : N, tb, alpha, beta, C, N);
    CHECK(tu_rel_l2(C, ref, (size_t)M * N) < 1e-6, "vb_gemm trans_b=%d", tb);
    free(A), free(B), free(C), free(ref);
  }
}

static void test_elementwise(void) {
  int rows = 19, n = 1408;
  float *x = tu_rand_buf(&rng, (size_t)rows * n, 3), *w = tu_rand_buf(&rng, n, 1),
        *b = tu_rand_buf(&rng, n, 1);
  float *y = malloc((size_t)rows * n * sizeof(float));
  double *ref = malloc((size_t)rows * n * sizeof(double));
  for (int r = 0; r < rows; r++) {
    double mean = 0, var = 0, ss = 0;
    for (int i = 0; i < n; i++) mean += x[r * n + i], ss += (double)x[r * n + i] * x[r * n + i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
    var /= n;
    for (int i = 0; i < n; i++) ref[r * n + i] = (x[r * n + i] - mean) / sqrt(var + 1e-6) * w[i] + b[i];
  }
  vb_layernorm(x, y, rows, n, w, b, 1e-6f);
  CHECK(tu_rel_l2(y, ref, (size_t)rows * n) < 1e-6, "layernorm");
  for (int r = 0; r < rows; r++) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[r * n + i] * x[r * n + i];
    for (int i = 0; i < n; i++) ref[r * n + i] = w[i] * x[r * n + i] / sqrt(ss / n + 1e-6);
  }
  vb_rmsnorm(x, y, rows, n, w, 1e-6f);
  CHECK(tu_rel_l2(y, ref, (size_t)rows * n) < 1e-6, "rmsnorm");
  size_t N = (size_t)rows * n;
  memcpy(y, x, N * sizeof(float));
  vb_gelu_erf(y, N);
  for (size_t i = 0; i < N; i++) ref[i] = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
  CHECK(tu_rel_l2(y, ref, N) < 1e-6, "gelu_erf");
  memcpy(y, x, N * sizeof(float));
  vb_gelu_tanh(y, N);
  for (size_t i = 0; i < N; i++)
    ref[i] = 0.5 * x[i] * (1 + tanh(sqrt(2.0 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
  CHECK(tu_rel_l2(y, ref, N) < 1e-6, "gelu_tanh");
  memcpy(y, x, N * sizeof(float));
  vb_relu(y, N);
  for (size_t i = 0; i < N; i++) ref[i] = x[i] > 0 ? x[i] : 0;
  CHECK(tu_rel_l2(y, ref, N) == 0, "relu");
  memcpy(y, x, N * sizeof(float));
  vb_add(y, w, n);
  for (size_t i = 0; i < N; i++) ref[i] = x[i] + (i < (size_t)n ? w[i] : 0);
  CHECK(tu_rel_l2(y, ref, N) == 0, "add");
  memcpy(y, x, n * sizeof(float));
  vb_softmax_row(y, n);
  double mx = -1e300, sum = 0;
  for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  for (int i = 0; i < n; i++) sum += exp(x[i] - mx);
  for (int i = 0; i < n; i++) ref[i] = exp(x[i] - mx) / sum;
  CHECK(tu_rel_l2(y, ref, n) < 1e-6, "softmax");
  free(x), free(w), free(b), free(y), free(ref);
}

/* GELU and softmax value by value over wide ranges (the AVX-512 versions use
 * their own exp/erf): erf-GELU within 3e-7 absolute + 4e-6 relative and tanh-GELU
 * within 1e-7 + 4e-6 relative from -12 to 12
 * (tiny, huge-negative and saturated inputs; the erf form's 1.5e-7 absolute
 * error is scaled by x/2 at the negative tail), softmax within 4e-6 relative on
 * rows of every length 1..70 (vector tails), with -inf entries (masking) and a
 * fully masked row (zeros); softmax rounded to bf16 in its last pass
 * (vb_softmax_row_bf16) exactly vb_softmax_row's values rounded; dot and axpy
 * on every length 1..150. */
static void test_transcendentals(void) {
  int n = 24001;
  float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
  for (int i = 0; i < n; i++) x[i] = -12.0f + 24.0f * i / (n - 1);
  x[5] = 1e-30f, x[6] = -1e-8f, x[7] = 0.0f, x[8] = -0.0f, x[9] = 80.0f, x[10] = -90.0f;
  memcpy(y, x, n * sizeof(float));
  vb_gelu_erf(y, n);
  int bad = 0;
  for (int i = 0; i < n; i++) {
    double r = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
    if (!(fabs(y[i] - r) <= 3e-7 + 4e-6 * fabs(r)) && bad++ < 5)
      fprintf(stderr, "  gelu_erf(%g) = %.9g, want %.9g\n", x[i], y[i], r);
  }
  CHECK(bad == 0, "gelu_erf: %d values off", bad);
  memcpy(y, x, n * sizeof(float));
  vb_gelu_tanh(y, n);
  bad = 0;
  for (int i = 0; i < n; i++) {
    double r = 0.5 * x[i] * (1 + tanh(sqrt(2.0 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
    if (!(fabs(y[i] - r) <= 1e-7 + 4e-6 * fabs(r)) && bad++ < 5)
      fprintf(stderr, "  gelu_tanh(%g) = %.9g, want %.9g\n", x[i], y[i], r);
  }
  CHECK(bad == 0, "gelu_tanh: %d values off", bad);
  for (int len = 1; len <= 70; len++) {
    double mx = -1e300, sum = 0;
    for (int i = 0; i < len; i++) {
      x[i] = (i % 11 == 3) ? -INFINITY : 30.0f * sinf(1.7f * i + len);
      mx = x[i] > mx ? x[i] : mx;
    }
    if (len == 1) x[0] = 2.5f, mx = 2.5;
    for (int i = 0; i < len; i++) sum += exp(x[i] - mx);
    memcpy(y, x, len * sizeof(float));
    vb_softmax_row(y, len);
    int off = 0;
    for (int i = 0; i < len; i++) {
      double r = exp(x[i] - mx) / sum;
      if (!(fabs(y[i] - r) <= 4e-6 * r + 1e-30)) off++;
    }
    CHECK(off == 0, "softmax length %d: %d values off", len, off);
  }
  for (int i = 0; i < 37; i++) y[i] = -INFINITY;
  vb_softmax_row(y, 37);
  int nz = 0;
  for (int i = 0; i < 37; i++) nz += y[i] != 0.0f;
  CHECK(nz == 0, "fully masked softmax row gives zeros (%d nonzero)", nz);
  /* the same rounded to bf16 in its last pass (attention's probabilities):
   * vb_softmax_row's values rounded to nearest even (a denormal may flush to
   * zero), the padding up to np zeroed; lengths 1..70, 257 and 300 */
  uint16_t *pb = malloc(340 * sizeof *pb);
  for (int li = 1; li <= 72; li++) {
    int len = li <= 70 ? li : li == 71 ? 257 : 300, np = (len + 31) / 32 * 32 + 3;
    for (int i = 0; i < len; i++)
      x[i] = (i % 11 == 3) ? -INFINITY : 30.0f * sinf(1.3f * i - len);
    if (len == 1) x[0] = -1.5f;
    memcpy(y, x, len * sizeof(float));
    vb_softmax_row(y, len);
    memset(pb, 0xff, 340 * sizeof *pb);
    vb_softmax_row_bf16(x, len, np, pb);
    int off = 0;
    for (int i = 0; i < np; i++) {
      uint16_t want = i < len ? vb_float_to_bf16(y[i]) : 0;
      int flushed = i < len && fabsf(y[i]) < FLT_MIN && (pb[i] & 0x7fff) == 0;
      if (pb[i] != want && !flushed) off++;
    }
    CHECK(off == 0, "softmax to bf16, length %d (padded to %d): %d values off", len, np, off);
  }
  for (int i = 0; i < 37; i++) x[i] = -INFINITY;
  memset(pb, 0xff, 340 * sizeof *pb);
  vb_softmax_row_bf16(x, 37, 40, pb);
  nz = 0;
  for (int i = 0; i < 40; i++) nz += pb[i] != 0;
  CHECK(nz == 0, "fully masked softmax row to bf16 gives zeros (%d nonzero)", nz);
  free(pb);
  /* dot and axpy (decoding attention) on every length 1..150: vector tails */
  for (int len = 1; len <= 150; len++) {
    double d = 0, mag = 0;
    for (int i = 0; i < len; i++) {
      x[i] = sinf(0.3f * i + len), y[i] = cosf(0.7f * i - len);
      d += (double)x[i] * y[i], mag += fabs((double)x[i] * y[i]);
    }
    float got = vb_dot(x, y, len);
    CHECK(fabs(got - d) <= 1e-6 * mag + 1e-7, "dot length %d: %g, want %g", len, got, d);
    float *acc = malloc(len * sizeof(float));
    for (int i = 0; i < len; i++) acc[i] = 0.5f * i;
    vb_axpy(acc, -1.25f, x, len);
    int off = 0;
    for (int i = 0; i < len; i++) off += fabs(acc[i] - (0.5 * i - 1.25 * x[i])) > 1e-6 * (1 + 0.5 * i);
    CHECK(off == 0, "axpy length %d: %d values off", len, off);
    free(acc);
  }
  free(x), free(y);
}

/* Attention shapes for both implementations (row-wise and per-head sgemm). */
static void test_attention_case(int nq, int nk, int heads, int hd, int with_bias, int causal, int off) {
  int ld = heads * hd + 3; /* padded rows: leading dimensions are honoured */
  float *q = tu_rand_buf(&rng, (size_t)nq * ld, 1), *k = tu_rand_buf(&rng, (size_t)nk * ld, 1),
        *v = tu_rand_buf(&rng, (size_t)nk * ld, 1);
  float *bias = with_bias ? tu_rand_buf(&rng, (size_t)heads * nq * nk, 2) : NULL;
  float *o = malloc((size_t)nq * ld * sizeof(float));
  double *ref = calloc((size_t)nq * ld, sizeof(double)), *p = malloc((size_t)nk * sizeof(double));
  float scale = 1.0f / sqrtf((float)hd);
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < nq; i++) {
      int kend = causal ? (i + off + 1 < nk ? i + off + 1 : nk) : nk;
      if (kend < 0) kend = 0;
      double mx = -1e300, sum = 0;
      for (int j = 0; j < kend; j++) {
        double s = 0;
        for (int d = 0; d < hd; d++) s += (double)q[i * ld + h * hd + d] * k[j * ld + h * hd + d];
        s = s * scale + (bias ? bias[((size_t)h * nq + i) * nk + j] : 0);
        p[j] = s;
        mx = s > mx ? s : mx;
      }
      for (int j = 0; j < kend; j++) sum += (p[j] = exp(p[j] - mx));
      for (int d = 0; d < hd; d++) {
        double acc = 0;
        for (int j = 0; j < kend; j++) acc += p[j] / sum * v[j * ld + h * hd + d];
        ref[i * ld + h * hd + d] = acc;
      }
    }
  for (size_t i = 0; i < (size_t)nq * ld; i++) o[i] = 0;
  CHECK_OK(vb_attention(q, ld, k, v, ld, o, ld, nq, nk, heads, hd, scale, bias, causal, off));
  CHECK(tu_rel_l2(o, ref, (size_t)nq * ld) < 1e-5, "attention nq=%d nk=%d heads=%d hd=%d bias=%d causal=%d",
        nq, nk, heads, hd, with_bias, causal);
  free(q), free(k), free(v), free(bias), free(o), free(ref), free(p);
}

static void test_attention(void) {
  test_attention_case(1, 9, 4, 16, 0, 0, 0);    /* decode step */
  test_attention_case(7, 7, 2, 24, 1, 1, 0);    /* small prefill, causal with bias */
  test_attention_case(257, 257, 3, 88, 0, 0, 0); /* ViT frame */
  test_attention_case(32, 514, 2, 64, 0, 0, 0); /* Q-Former cross-attention */
  test_attention_case(52, 52, 2, 80, 0, 1, 0);  /* OPT prefill */
  test_attention_case(20, 30, 2, 32, 1, 1, 10); /* causal with an offset */
  /* odd shapes: rows and keys past multiples of 16, heads of 8 to 160 dimensions,
   * with and without bias and mask */
  test_attention_case(97, 65, 2, 17, 0, 0, 0);
  test_attention_case(50, 300, 1, 113, 1, 0, 0);
  test_attention_case(23, 23, 2, 128, 0, 1, 0);
  test_attention_case(16, 40, 2, 100, 1, 1, 3);
  test_attention_case(30, 18, 3, 48, 0, 0, 0);
  test_attention_case(20, 30, 2, 160, 0, 0, 0);
  test_attention_case(20, 30, 2, 8, 1, 1, -5); /* the first rows see no key: zeros */
  /* the vision encoder's frames in one call equal one call per frame, bit for bit */
  {
    int frames = 3, n = 257, heads = 2, hd = 88, ld = 3 * heads * hd;
    float *qkv = tu_rand_buf(&rng, (size_t)frames * n * ld, 1);
    float *o1 = calloc((size_t)frames * n * heads * hd, sizeof(float));
    float *o2 = calloc((size_t)frames * n * heads * hd, sizeof(float));
    CHECK_OK(vb_attention_batch(frames, qkv, ld, qkv + heads * hd, qkv + 2 * heads * hd, ld, o1,
                                heads * hd, n, n, heads, hd, 0.1f));
    for (int f = 0; f < frames; f++) {
      const float *b = qkv + (size_t)f * n * ld;
      CHECK_OK(vb_attention(b, ld, b + heads * hd, b + 2 * heads * hd, ld,
                            o2 + (size_t)f * n * heads * hd, heads * hd, n, n, heads, hd, 0.1f,
                            NULL, 0, 0));
    }
    CHECK(memcmp(o1, o2, (size_t)frames * n * heads * hd * sizeof(float)) == 0,
          "attention over 3 frames in one call differs from 3 calls");
    free(qkv), free(o1), free(o2);
  }
}

int main(void) {
  vb_cpu_init();
  printf("cpu: %s\n", vb_cpu_describe());
  test_linear();
  test_bf16_blocked();
  test_gemm();
  test_elementwise();
  test_transcendentals();
  test_attention();
  tu_rerun_with_cpu_paths_off();
  /* both routes of bf16 layers with many rows (oneDNN, or f32 FMAs where bf16 is slow) */
  tu_rerun_with_env("VBLIP_BF16_PRODUCTS=fast");
  tu_rerun_with_env("VBLIP_BF16_PRODUCTS=slow");
  return tu_finish();
}
