/* Prefill products (16 or more activation rows) on Q8_0, Q4_0 and Q4_K
 * weights through vb_linear_forward with bf16 compute, on whichever path this
 * CPU takes (vb_linear_q8_prefill_path):
 *  - "amx-bf16": the packed copy dequantized straight into AMX bf16 tiles,
 *    vblip's AMX core;
 *  - "onednn-bf16": bf16 weight tiles through oneDNN;
 *  - "f32": f32 weight tiles through sgemm.
 * Each against a double-precision reference of the operands that path
 * multiplies: the weights as the row dequantizers give them (bf16 or f32) and
 * the activations rounded to bf16 (bf16 paths) or as they are (f32 path); per
 * element |y - ref| <= 1e-6 sum |x w| + 1e-6 (f32 accumulation: 3-4e-8 seen; bf16 weights
 * in the wrong place or wrongly rounded are far outside it). Shapes: M not a
 * multiple of 16 or 32, N not a multiple of 16, 32 or 64 (partial groups,
 * units and panels), K with a partial last chunk of the AMX path's k loop
 * (1024 values) and K of one chunk; with and without bias; nothing stored
 * past y. Where the AMX tile unpackers run, their tiles equal the row
 * unpackers' bf16 values bit for bit (group ranges not starting at a panel,
 * k ranges not starting at 0). The program runs itself again with AMX off,
 * AVX-512 off, AVX2 off, the Q4 rows not repacked, VBLIP_Q8_AMX=0 and each
 * many-row path of CPUs without AMX (VBLIP_Q_PREFILL=tiles, =gemv). Where bf16
 * products are slow (vb_cpu_bf16_products_fast) and the CPU has AVX512-VNNI,
 * the path must be "vnni-gemv":
 *  - "vnni-gemv": the packed copy's GEMV (decoding's kernels), activations
 *    quantized per 32 values: within half an activation step per value of
 *    the double-precision product of the f32 weight values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"
#include "testutil.h"

static tu_rng rng = {0x5eed0f9e11ull};

static size_t row_bytes(vb_dtype dt, int K) {
  return dt == VB_DT_Q8_0   ? vb_q8_row_bytes(K)
         : dt == VB_DT_Q4_0 ? vb_q4_row_bytes(K)
                            : vb_q4k_row_bytes(K);
}

static void quantize(vb_dtype dt, const float *w, int64_t n, void *q) {
  if (dt == VB_DT_Q8_0)
    vb_quantize_q8_0(w, n, q);
  else if (dt == VB_DT_Q4_0)
    vb_quantize_q4_0(w, n, q);
  else
    vb_quantize_q4_k(w, n, q);
}

static void rows_f32(vb_dtype dt, const void *q, int K, int N, float *d) {
  if (dt == VB_DT_Q8_0)
    vb_q8_rows_to_f32(q, K, 0, N, d);
  else if (dt == VB_DT_Q4_0)
    vb_q4_rows_to_f32(q, K, 0, N, d);
  else
    vb_q4k_rows_to_f32(q, K, 0, N, d);
}

static void rows_bf16(vb_dtype dt, const void *q, int K, int N, uint16_t *d) {
  if (dt == VB_DT_Q8_0)
    vb_q8_rows_to_bf16(q, K, 0, N, d);
  else if (dt == VB_DT_Q4_0)
    vb_q4_rows_to_bf16(q, K, 0, N, d);
  else
    vb_q4k_rows_to_bf16(q, K, 0, N, d);
}

static const char *name(vb_dtype dt) {
  return vb_dtype_name(dt);
}

static void check_prefill(vb_dtype dt, int N, int K, int M, int with_bias) {
  float *w = tu_rand_buf(&rng, (size_t)N * K, 0.5f), *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f);
  float *bias = with_bias ? tu_rand_buf(&rng, N, 0.3f) : NULL;
  void *q = malloc(row_bytes(dt, K) * N);
  quantize(dt, w, (int64_t)N * K, q);
  vb_linear l = {.out = N, .in = K, .dtype = dt, .w = q, .bias = bias, .compute = VB_COMPUTE_BF16};
  size_t n = (size_t)M * N;
  float *y = malloc((n + 1) * sizeof *y), *wr = malloc((size_t)N * K * sizeof *wr);
  float *xr = malloc((size_t)M * K * sizeof *xr);
  double *ref = malloc(n * sizeof *ref), *mag = malloc(n * sizeof *mag);
  if (!CHECK_OK(vb_linear_prepare(&l))) goto done;
  const char *path = vb_linear_q8_prefill_path(&l);
  /* the VNNI GEMV multiplies the f32 weight values by activations quantized
   * per 32-value block: 16 bits for Q8_0 (step max|x| / 32639), 8 for Q4_0
   * and Q4_K (max|x| / 127); each value off by at most half its block's step */
  int gemv = strcmp(path, "vnni-gemv") == 0;
  int bf = strcmp(path, "f32") != 0 && !gemv;
  double act_levels = dt == VB_DT_Q8_0 ? 32639.0 : 127.0;
  if (bf) {
    uint16_t *h = malloc((size_t)N * K * sizeof *h);
    rows_bf16(dt, q, K, N, h);
    for (size_t i = 0; i < (size_t)N * K; i++)
      wr[i] = vb_bf16_to_float(h[i]);
    for (size_t i = 0; i < (size_t)M * K; i++)
      xr[i] = vb_bf16_to_float(vb_float_to_bf16(x[i]));
    free(h);
  } else {
    rows_f32(dt, q, K, N, wr);
    memcpy(xr, x, (size_t)M * K * sizeof *x);
  }
  tu_linear_ref(xr, wr, bias, M, N, K, ref, mag);
  memset(y, 0xff, n * sizeof *y);
  y[n] = 12345.0f;
  if (CHECK_OK(vb_linear_forward(&l, x, M, y))) {
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      double e = fabs(y[i] - ref[i]), act = 0, tol = 1e-6 * mag[i] + 1e-6;
      if (gemv) {
        size_t m = i / N, j = i % N;
        for (int b = 0; b < K / 32; b++) {
          double amax = 0, sw = 0;
          for (int k = b * 32; k < b * 32 + 32; k++) {
            amax = fmax(amax, fabs(x[m * K + k]));
            sw += fabs(wr[j * K + k]);
          }
          act += amax / act_levels / 2 * sw;
        }
        tol = 1e-5 * mag[i] + 1e-6 + act * 1.001;
      }
      if (!(e <= tol)) bad++;
      if (mag[i] > 0 && e / mag[i] > worst) worst = e / mag[i];
    }
    CHECK(bad == 0, "%s %dx%d M=%d bias=%d (%s): %zu of %zu values off (worst %.3g of sum|xw|)",
          name(dt), N, K, M, with_bias, path, bad, n, worst);
    CHECK(y[n] == 12345.0f, "%s %dx%d M=%d: stored past y", name(dt), N, K, M);
    if (M == 33 && K >= 2048)
      printf("%s %dx%d M=%d on %s: worst |y - ref| %.3g of sum|xw|\n", name(dt), N, K, M, path,
             worst);
  }
done:
  vb_linear_release(&l);
  free(w), free(x), free(bias), free(q), free(y), free(wr), free(xr), free(ref), free(mag);
}

#if defined(__x86_64__) /* the AMX tile unpackers (AVX512-BF16) */
/* The AMX tile unpackers against the row unpackers, bit for bit. */
static void check_to_tiles(vb_dtype dt, int N, int K, int g0, int k0, int k1) {
  float *w = tu_rand_buf(&rng, (size_t)N * K, 0.5f);
  void *q = malloc(row_bytes(dt, K) * N);
  quantize(dt, w, (int64_t)N * K, q);
  size_t pb = dt == VB_DT_Q8_0   ? vb_q8x16_bytes(N, K)
              : dt == VB_DT_Q4_0 ? vb_q4x16_bytes(N, K)
                                 : vb_q4kx16_bytes(N, K);
  void *P = vb_malloc_aligned(pb);
  int g1 = (N + 15) / 16;
  size_t gl = (size_t)(k1 - k0) * 16;
  uint16_t *rows = malloc((size_t)N * K * sizeof *rows), *t = vb_malloc_aligned((g1 - g0) * gl * 2);
  rows_bf16(dt, q, K, N, rows);
  if (dt == VB_DT_Q8_0) {
    vb_q8x16_pack(q, N, K, P);
    vb_q8x16_to_tiles(P, K, g0, g1, k0, k1, t);
  } else if (dt == VB_DT_Q4_0) {
    vb_q4x16_pack(q, N, K, P);
    vb_q4x16_to_tiles(P, K, g0, g1, k0, k1, t);
  } else {
    vb_q4kx16_pack(q, N, K, P);
    vb_q4kx16_to_tiles(P, K, g0, g1, k0, k1, t);
  }
  size_t bad = 0, pad = 0;
  for (int g = g0; g < g1; g++)
    for (int r = 0; r < 16; r++)
      for (int k = k0; k < k1; k++) {
        uint16_t v = t[(size_t)(g - g0) * gl + (size_t)(k - k0) / 2 * 32 + r * 2 + (k & 1)];
        int nrow = g * 16 + r;
        if (nrow < N)
          bad += v != rows[(size_t)nrow * K + k];
        else
          pad += v != 0 && v != 0x8000; /* padding rows: zero */
      }
  CHECK(bad == 0 && pad == 0,
        "%s %dx%d groups %d.. k %d..%d to tiles: %zu values differ, %zu padding", name(dt), N, K,
        g0, k0, k1, bad, pad);
  vb_free_aligned(P), vb_free_aligned(t);
  free(w), free(q), free(rows);
}
#endif

int main(void) {
  vb_cpu_init();
  vb_linear probe = {.out = 64, .in = 256, .dtype = VB_DT_Q8_0, .compute = VB_COMPUTE_BF16};
  void *pq = calloc(1, vb_q8_row_bytes(256) * 64);
  probe.w = pq;
  const char *path = CHECK_OK(vb_linear_prepare(&probe)) ? vb_linear_q8_prefill_path(&probe) : "?";
  printf("prefill path here: %s (%s)%s%s\n", path, vb_cpu_describe(),
         getenv("VBLIP_KERNELS_CHILD") ? ", child run with " : "",
         getenv("VBLIP_NO_AMX")      ? "VBLIP_NO_AMX"
         : getenv("VBLIP_NO_AVX512") ? "VBLIP_NO_AVX512"
         : getenv("VBLIP_NO_AVX2")   ? "VBLIP_NO_AVX2"
         : getenv("VBLIP_Q4_ROWS")   ? "VBLIP_Q4_ROWS"
         : getenv("VBLIP_Q8_AMX")    ? "VBLIP_Q8_AMX=0"
         : getenv("VBLIP_Q_PREFILL") ? getenv("VBLIP_Q_PREFILL")
                                     : "");
  /* on an AMX CPU with AVX512-BF16 and -VNNI (the packed copy) the AMX path must be taken,
   * not a silent fallback, unless VBLIP_Q8_AMX=0 asks for the oneDNN tiles */
  const vb_cpu_features *cpu = vb_cpu();
  const char *q8amx = getenv("VBLIP_Q8_AMX");
  int want_amx = vb_tile_kind_usable(VB_TILE_BF16_AMX) && cpu->avx512_bf16 && cpu->avx512_vnni &&
                 !(q8amx && strcmp(q8amx, "0") == 0);
  CHECK((strcmp(path, "amx-bf16") == 0) == want_amx, "q8_0 prefill path %s where AMX %s expected",
        path, want_amx ? "is" : "is not");
  /* without AMX, a CPU with the packed copy (AVX512-VNNI) takes the GEMV
   * exactly where bf16 products are slow, unless VBLIP_Q_PREFILL picks */
  const char *qp = getenv("VBLIP_Q_PREFILL");
  if (!want_amx && vb_q8x16_supported() && !getenv("VBLIP_Q8_AMX")) {
    int want_gemv = qp ? strcmp(qp, "gemv") == 0 : !vb_cpu_bf16_products_fast();
    CHECK((strcmp(path, "vnni-gemv") == 0) == want_gemv,
          "q8_0 prefill path %s where the GEMV %s expected (bf16 products %s)", path,
          want_gemv ? "is" : "is not", vb_cpu_bf16_products_describe());
  }
  vb_linear_release(&probe);
  free(pq);
  static const vb_dtype dts[] = {VB_DT_Q8_0, VB_DT_Q4_0, VB_DT_Q4_K};
  /* N, K: one group; partial group / panel; a partial last k chunk (2560 =
   * 1024 + 1024 + 512); K of one chunk (1792 <= 1.5 x 1024), partial unit */
  static const int shapes[][2] = {{16, 256}, {37, 512}, {130, 2560}, {200, 1792}};
  static const int ms[] = {16, 31, 33, 52, 64, 100};
  for (int d = 0; d < 3; d++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int i = 0; i < 6; i++) {
        if (shapes[s][0] * shapes[s][1] > 100000 && (i & 1)) continue; /* time */
        check_prefill(dts[d], shapes[s][0], shapes[s][1], ms[i], (i + (int)s) & 1);
      }
  /* q8_0 rows of 32-value blocks that are not whole Q4_K super-blocks */
  check_prefill(VB_DT_Q8_0, 70, 96, 40, 1);
  check_prefill(VB_DT_Q4_0, 70, 1056, 33, 0);
  if (vb_q_tiles_supported()) {
#if defined(__x86_64__)
    for (int d = 0; d < 3; d++) {
      check_to_tiles(dts[d], 130, 512, 0, 0, 512);
      check_to_tiles(dts[d], 130, 512, 1, 256, 512); /* not at a panel or at k = 0 */
      check_to_tiles(dts[d], 37, 768, 2, 32, 288);
      check_to_tiles(dts[d], 200, 1024, 5, 512, 1024);
    }
#endif
  } else {
    printf("AMX tile unpackers (AVX512-BF16) not available here: their tests are skipped\n");
  }
  tu_rerun_with_cpu_paths_off(); /* AMX off, AVX-512 off */
  tu_rerun_with_env("VBLIP_NO_AVX2=1");
  tu_rerun_with_env("VBLIP_Q4_ROWS=1");
  tu_rerun_with_env("VBLIP_Q8_AMX=0");
  /* both many-row paths of CPUs without AMX, whichever this one takes */
  tu_rerun_with_env("VBLIP_Q_PREFILL=tiles");
  tu_rerun_with_env("VBLIP_Q_PREFILL=gemv");
  return tu_finish();
}
