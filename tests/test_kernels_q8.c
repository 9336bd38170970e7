/* Q8_0 weights in the compute engine, against a double-precision reference
 * computed from the dequantized weights (vb_convert_to_f32):
 *  - the small-M GEMV (M = 1..15, f32 activations): every implementation and
 *    vb_linear with bf16 compute, per element |y - ref| <= 1e-5 * sum|x w| + 1e-6
 *    (the f32 linear test's bound: it is an f32 product);
 *  - the tiled large-M path (M = 16..70 and 300; bf16 activations and bf16-rounded
 *    weight tiles, as the bf16 engine): relative L2 error < 1e-2, several tiles
 *    and a partial last one; where bf16 products are slow (or
 *    VBLIP_Q_PREFILL=gemv) large M takes the q8x16 GEMV: its bound, below;
 *  - f32 compute with a Q8_0 weight (dequantized once): the f32 bound;
 *  - N not a multiple of 64 or of 2, with and without bias, a weight at an odd
 *    address (inside a mapped file), the weight used in place (no copy);
 *  - the VNNI repacked layout (q8x16) where the CPU has it: its GEMV against
 *    the reference within the f32 bound plus the bound of its 16-bit
 *    activations (half a step of each 32-value block times sum|w| of the
 *    block), also for activations with one large value per block (the worst
 *    case for that step), for one activation row (the two-stream path) with an
 *    even and an odd number of blocks per row; non-finite activations give
 *    non-finite outputs; its
 *    unpacked rows equal the Q8_0 rows' exactly; padding rows never leak;
 *  - q8x16 panels to the blocked bf16 layout (prefill tiles): the Q8_0 values
 *    where vb_bf16b_pack puts them; the tiled product within f32 summation
 *    error of the plain AVX512-BF16 GEMV on the dequantized weight;
 *  - quantization: round trip within half a step (plus the f16 scale's rounding), and the end-to-end error of
 *    q8_0 against the original f32 weights on a random matrix (stated, bounded).
 * The program runs itself again with AVX-512 forced off (VBLIP_NO_AVX512=1:
 * portable C GEMV, oneDNN capped below AVX-512), with AMX forced off, and with
 * each large-M path (VBLIP_Q_PREFILL=tiles, =gemv). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#include "kernels/kernels.h"
#include "kernels/q8_kernels.h"
#include "runtime/cpu.h"
#include "testutil.h"

static tu_rng rng = {0x243f6a8885a308d3ull};

static size_t count_off(const float *y, const double *ref, const double *mag, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    if (!(fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6)) bad++;
  return bad;
}

/* A Q8_0 copy of w placed at an odd address (as inside a mapped GGUF file). */
static uint8_t *quantize_odd(const float *w, size_t n, uint8_t **base) {
  size_t bytes = n / 32 * 34;
  *base = malloc(bytes + 1);
  vb_quantize_q8_0(w, (int64_t)n, *base + 1);
  return *base + 1;
}

/* The q8x16 GEMV's 16-bit activations: half a step of each 32-value block
 * (max|x| of the block / 32639) times sum|w| over the block, summed. */
static double act_step_bound(const float *x, const float *w, int K) {
  double act = 0;
  for (int blk = 0; blk < K / 32; blk++) {
    double amax = 0, sw = 0;
    for (int k = blk * 32; k < blk * 32 + 32; k++) {
      amax = fmax(amax, fabs(x[k]));
      sw += fabs(w[k]);
    }
    act += amax / 32639.0 / 2 * sw;
  }
  return act;
}

static void test_shape(int M, int N, int K, int with_bias) {
  float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.5f);
  float *b = with_bias ? tu_rand_buf(&rng, N, 0.3f) : NULL;
  uint8_t *base, *wq = quantize_odd(w, (size_t)N * K, &base);
  float *wd = malloc((size_t)N * K * sizeof(float));
  CHECK_OK(vb_convert_to_f32(VB_DT_Q8_0, wq, (int64_t)N * K, wd));
  double *ref = malloc((size_t)M * N * sizeof(double)), *mag = malloc((size_t)M * N * sizeof(double));
  float *y = malloc((size_t)M * N * sizeof(float));
  size_t n = (size_t)M * N;
  tu_linear_ref(x, wd, b, M, N, K, ref, mag);

  /* bf16 compute: the engine's own q8_0 paths, the weight used in place */
  vb_linear l = {.out = N, .in = K, .dtype = VB_DT_Q8_0, .w = wq, .bias = b, .compute = VB_COMPUTE_BF16};
  if (CHECK_OK(vb_linear_prepare(&l))) {
    CHECK(l.w_f32 == NULL && l.w == wq, "q8 linear %dx%d: weight copied", N, K);
    memset(y, 0xff, n * sizeof(float)); /* NaNs: every output must be written */
    CHECK_OK(vb_linear_forward(&l, x, M, y));
    const char *path = vb_linear_q8_prefill_path(&l);
    if (M <= VB_Q8_GEMV_MAX_M) {
      size_t bad = count_off(y, ref, mag, n);
      CHECK(bad == 0, "q8 linear (gemv) M=%d N=%d K=%d bias=%d: %zu values off", M, N, K, with_bias, bad);
    } else if (strcmp(path, "vnni-gemv") == 0) { /* many rows on the q8x16 GEMV: its bound */
      size_t bad = 0;
      for (int m = 0; m < M; m++)
        for (int j = 0; j < N; j++) {
          size_t i = (size_t)m * N + j;
          double act = act_step_bound(x + (size_t)m * K, wd + (size_t)j * K, K);
          if (!(fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6 + act * 1.001)) bad++;
        }
      CHECK(bad == 0, "q8 linear (vnni-gemv) M=%d N=%d K=%d bias=%d: %zu values off", M, N, K,
            with_bias, bad);
    } else {
      double e = tu_rel_l2(y, ref, n);
      CHECK(e < 1e-2, "q8 linear (tiles) M=%d N=%d K=%d bias=%d: relative error %g", M, N, K, with_bias, e);
      /* the tiles (plain or blocked) multiply bf16(w) by bf16(x) in f32: the
       * plain AVX512-BF16 GEMV on the dequantized rows does the same sums in
       * another order (sum |x w| x 1.01 covers the roundings of x and w) */
#if defined(__x86_64__)
      if (vb_cpu()->avx512_bf16 && vb_cpu_has_avx512()) {
        uint16_t *w16 = malloc((size_t)N * K * sizeof(uint16_t));
        float *yp = malloc(n * sizeof(float));
        vb_q8_rows_to_bf16(wq, K, 0, N, w16);
        vb_gemv_bf16_avx512bf16(w16, N, K, x, M, b, yp);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
          if (!(fabs((double)y[i] - yp[i]) <= 1e-5 * 1.02 * mag[i] + 1e-6)) bad++;
        CHECK(bad == 0, "q8 linear (tiles) M=%d N=%d K=%d bias=%d: %zu values off the bf16 product", M, N, K,
              with_bias, bad);
        free(w16), free(yp);
      }
#endif
    }
    /* again: cached primitives / scratch reuse give the same result */
    float *y2 = malloc(n * sizeof(float));
    CHECK_OK(vb_linear_forward(&l, x, M, y2));
    CHECK(memcmp(y, y2, n * sizeof(float)) == 0, "q8 linear M=%d N=%d K=%d: second call differs", M, N, K);
    free(y2);
    vb_linear_release(&l);
  }

  /* f32 compute: dequantized once, exact f32 product */
  vb_linear lf = {.out = N, .in = K, .dtype = VB_DT_Q8_0, .w = wq, .bias = b};
  if (CHECK_OK(vb_linear_prepare(&lf))) {
    memset(y, 0xff, n * sizeof(float));
    CHECK_OK(vb_linear_forward(&lf, x, M, y));
    size_t bad = count_off(y, ref, mag, n);
    CHECK(bad == 0, "q8 weight, f32 compute M=%d N=%d K=%d: %zu values off", M, N, K, bad);
    vb_linear_release(&lf);
  }

  /* each GEMV implementation directly */
  if (M <= 64) {
    for (int impl = 0; impl < 2; impl++) {
      if (impl == 1 && !vb_gemv_q8_has_avx512()) continue;
      memset(y, 0xff, n * sizeof(float));
      if (impl == 0) vb_gemv_q8_c(wq, N, K, x, M, b, y);
#if defined(__x86_64__)
      else vb_gemv_q8_avx512(wq, N, K, x, M, b, y);
#endif
      size_t bad = count_off(y, ref, mag, n);
      CHECK(bad == 0, "gemv_q8 %s M=%d N=%d K=%d: %zu values off", impl ? "avx512" : "c", M, N, K, bad);
    }
  }
  free(x), free(w), free(b), free(base), free(wd), free(ref), free(mag), free(y);
}

static void test_shapes(void) {
  static const int shapes[][3] = {
      {1, 1, 32},     {1, 33, 64},    {2, 64, 96},    {3, 130, 256},  {4, 96, 2560},
      {5, 7, 32},     {6, 129, 160},  {7, 65, 512},   {8, 200, 320},  {9, 3, 1024},
      {10, 77, 96},   {11, 64, 64},   {12, 31, 224},  {13, 150, 128}, {14, 1, 2560},
      {15, 301, 352}, {1, 2560, 512}, {16, 100, 64},  {17, 61, 96},   {20, 301, 10240},
      {31, 257, 160}, {33, 129, 2560}, {52, 1000, 2560}, {64, 64, 64}, {70, 333, 480},
      {300, 130, 416}, {52, 1024, 2560}, {20, 192, 96}, {300, 128, 416},
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int bias = 0; bias < 2; bias++) test_shape(shapes[i][0], shapes[i][1], shapes[i][2], bias);
}

#if defined(__x86_64__) /* the q8x16 kernels: AVX512-VNNI */
/* The q8x16 GEMV: |y - ref| <= 1e-5 sum|x w| + 1e-6 + sum over blocks of
 * (max|x| of the block / 32639 / 2) * sum|w| over the block (its activation step). */
static void test_q8x16_shape(int M, int N, int K, int spiky) {
  float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.5f);
  float *b = tu_rand_buf(&rng, N, 0.3f);
  if (spiky) /* one value per block 1000x the rest: the coarsest activation step */
    for (size_t i = 0; i < (size_t)M * K; i += 32) x[i + (i / 32) % 32] = 1000.0f;
  uint8_t *base, *wq = quantize_odd(w, (size_t)N * K, &base);
  float *wd = malloc((size_t)N * K * sizeof(float));
  CHECK_OK(vb_convert_to_f32(VB_DT_Q8_0, wq, (int64_t)N * K, wd));
  size_t n = (size_t)M * N;
  double *ref = malloc(n * sizeof(double)), *mag = malloc(n * sizeof(double));
  tu_linear_ref(x, wd, b, M, N, K, ref, mag);
  void *P = vb_malloc_aligned(vb_q8x16_bytes(N, K));
  vb_q8x16_pack(wq, N, K, P);
  float *y = malloc((n + 1) * sizeof(float));
  memset(y, 0xff, (n + 1) * sizeof(float));
  y[n] = 12345.0f; /* a padding row must not be stored past the end */
  vb_gemv_q8x16(P, N, K, x, M, b, y);
  size_t bad = 0;
  for (int m = 0; m < M; m++)
    for (int j = 0; j < N; j++) {
      double act = act_step_bound(x + (size_t)m * K, wd + (size_t)j * K, K);
      size_t i = (size_t)m * N + j;
      if (!(fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6 + act * 1.001)) bad++;
    }
  CHECK(bad == 0, "gemv_q8x16 M=%d N=%d K=%d spiky=%d: %zu values off", M, N, K, spiky, bad);
  CHECK(y[n] == 12345.0f, "gemv_q8x16 N=%d: wrote past the output", N);
  /* unpacking (the tiled path) gives the Q8_0 rows' values exactly */
  int r0 = N > 16 ? 16 : 0, r1 = N;
  uint16_t *u16 = malloc((size_t)(r1 - r0) * K * 2), *e16 = malloc((size_t)(r1 - r0) * K * 2);
  float *u32 = malloc((size_t)(r1 - r0) * K * 4), *e32 = malloc((size_t)(r1 - r0) * K * 4);
  vb_q8x16_rows_to_bf16(P, K, r0, r1, u16);
  vb_q8_rows_to_bf16(wq, K, r0, r1, e16);
  vb_q8x16_rows_to_f32(P, K, r0, r1, u32);
  vb_q8_rows_to_f32(wq, K, r0, r1, e32);
  CHECK(memcmp(u16, e16, (size_t)(r1 - r0) * K * 2) == 0, "q8x16 rows %d..%d of %dx%d to bf16 differ", r0, r1, N, K);
  CHECK(memcmp(u32, e32, (size_t)(r1 - r0) * K * 4) == 0, "q8x16 rows %d..%d of %dx%d to f32 differ", r0, r1, N, K);
  /* whole panels to the blocked bf16 layout: the same values where
   * vb_bf16b_pack puts them, zero in the padding rows */
  if (vb_bf16b_supported()) {
    int np = (N + 63) / 64, Np = np * 64;
    uint16_t *rows = calloc((size_t)Np * K, 2), *want = vb_malloc_aligned((size_t)Np * K * 2),
             *got = vb_malloc_aligned((size_t)Np * K * 2);
    vb_q8_rows_to_bf16(wq, K, 0, N, rows);
    vb_bf16b_pack(rows, Np, K, want);
    vb_q8x16_panels_to_bf16b(P, K, 0, np, got);
    CHECK(memcmp(got, want, (size_t)Np * K * 2) == 0, "q8x16 panels of %dx%d to blocked bf16 differ", N, K);
    if (np > 1) { /* a later panel range alone */
      vb_q8x16_panels_to_bf16b(P, K, 1, np, got);
      CHECK(memcmp(got, want + (size_t)64 * K, (size_t)(Np - 64) * K * 2) == 0,
            "q8x16 panels 1..%d of %dx%d to blocked bf16 differ", np, N, K);
    }
    free(rows);
    vb_free_aligned(want), vb_free_aligned(got);
  }
  /* a NaN or an infinity in a block poisons every output of that row */
  x[K / 2] = NAN;
  if (M > 1) x[(size_t)K + 3] = INFINITY;
  vb_gemv_q8x16(P, N, K, x, M, b, y);
  size_t finite = 0;
  for (int m = 0; m < (M > 1 ? 2 : 1); m++)
    for (int j = 0; j < N; j++) finite += isfinite(y[(size_t)m * N + j]) != 0;
  CHECK(finite == 0, "gemv_q8x16 M=%d N=%d K=%d: %zu finite outputs from a non-finite input", M, N, K, finite);
  vb_free_aligned(P);
  free(x), free(w), free(b), free(base), free(wd), free(ref), free(mag), free(y);
  free(u16), free(e16), free(u32), free(e32);
}

#endif

static void test_q8x16(void) {
  if (!vb_q8x16_supported()) {
    printf("q8x16 (AVX512-VNNI) not available here: its tests are skipped\n");
    return;
  }
#if defined(__x86_64__)
  static const int shapes[][3] = {{1, 1, 32},   {1, 64, 64},   {1, 100, 2560}, {2, 65, 96},
                                  {3, 130, 256}, {4, 129, 320}, {5, 17, 1024},  {8, 200, 160},
                                  {15, 77, 224}, {1, 2560, 512}, {1, 70, 96},  {5, 33, 160}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    for (int spiky = 0; spiky < 2; spiky++) test_q8x16_shape(shapes[i][0], shapes[i][1], shapes[i][2], spiky);
#endif
}

/* Quantization itself, and what it costs against the original f32 weights. */
static void test_quantization(void) {
  int N = 512, K = 2560, M = 4;
  float *w = tu_rand_buf(&rng, (size_t)N * K, 0.05f), *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f);
  w[7] = 0.9f; /* an outlier widens its block's step */
  for (int k = 64; k < 96; k++) w[k] = 0; /* an all-zero block */
  uint8_t *base, *wq = quantize_odd(w, (size_t)N * K, &base);
  float *wd = malloc((size_t)N * K * sizeof(float));
  CHECK_OK(vb_convert_to_f32(VB_DT_Q8_0, wq, (int64_t)N * K, wd));
  size_t bad = 0;
  for (size_t blk = 0; blk < (size_t)N * K / 32; blk++) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(w[blk * 32 + j]));
    double step = amax / 127.0;
    for (int j = 0; j < 32; j++)
      if (fabs((double)wd[blk * 32 + j] - w[blk * 32 + j]) > 0.57 * step) bad++; /* half a step + the f16 scale's rounding */
  }
  CHECK(bad == 0, "q8_0 round trip: %zu values beyond half a step", bad);
  for (int k = 64; k < 96; k++) CHECK(wd[k] == 0, "zero block not zero at %d", k);

  double *ref = malloc((size_t)M * N * sizeof(double));
  float *y = malloc((size_t)M * N * sizeof(float));
  tu_linear_ref(x, w, NULL, M, N, K, ref, NULL);
  vb_linear l = {.out = N, .in = K, .dtype = VB_DT_Q8_0, .w = wq, .compute = VB_COMPUTE_BF16};
  if (CHECK_OK(vb_linear_prepare(&l))) {
    CHECK_OK(vb_linear_forward(&l, x, M, y));
    double e = tu_rel_l2(y, ref, (size_t)M * N);
    printf("q8_0 vs f32 weights, %dx%d random matrix, %d rows: relative L2 error %.3g\n", N, K, M, e);
    CHECK(e < 1e-2 && e > 0, "q8_0 end-to-end error %g", e);
    vb_linear_release(&l);
  }
  free(w), free(x), free(base), free(wd), free(ref), free(y);
}

int main(void) {
  vb_cpu_init();
  printf("cpu: %s, q8 gemv: %s\n", vb_cpu_describe(),
         vb_q8x16_supported() ? "avx512-vnni (q8x16)" : vb_gemv_q8_has_avx512() ? "avx512" : "c");
  test_shapes();
  test_q8x16();
  test_quantization();
  tu_rerun_with_cpu_paths_off();
  tu_rerun_with_env("VBLIP_Q_PREFILL=tiles"); /* both many-row paths, whichever is taken here */
  tu_rerun_with_env("VBLIP_Q_PREFILL=gemv");
  return tu_finish();
}
