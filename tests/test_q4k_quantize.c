/* vb_quantize_q4_k writes the bytes of the plain search below (the Q4_K
 * quantizer as it was before its AVX-512 search) for random and adversarial
 * rows: zeros, signed zeros, constants, outliers, huge and tiny values,
 * subnormals, values on the rounding grid, a scale per sub-block. The
 * AVX-512 search adds in the same order and must give every byte; the
 * children rerun it with AVX-512 off (the portable search). */
#pragma GCC optimize("fp-contract=off")
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/q4_kernels.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"
#include "testutil.h"

/* ---- the reference: one sub-block at a time, one candidate at a time ---- */

/* Squared error of x ~ a q - b, q = round((x + b) / a) clamped to 0..15. */
static float ref_error(const float *x, float a, float b, uint8_t *q) {
  float ia = a > 0 ? 1.0f / a : 0.0f, err = 0;
  for (int j = 0; j < 32; j++) {
    float r = 0.0f;
    if (a > 0) r = rintf((x[j] + b) * ia);
    if (r < 0)
      r = 0;
    else if (r > 15)
      r = 15;
    float e = a * r - b - x[j];
    err += e * e;
    if (q) q[j] = (uint8_t)r;
  }
  return err;
}

static void ref_fit(const float *x, float *pa, float *pb) {
  float lo = 0, hi = -INFINITY;
  for (int j = 0; j < 32; j++) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  if (!(hi > lo)) {
    *pa = 0, *pb = -lo;
    return;
  }
  float best_a = (hi - lo) / 15, best_b = -lo;
  float best = ref_error(x, best_a, best_b, NULL);
  float sx = 0, sxx = 0;
  for (int j = 0; j < 32; j++) {
    sx += x[j];
    sxx += x[j] * x[j];
  }
  for (int t = 0; t < 12; t++) {
    float ia = (13.5f + 0.25f * (float)t) / (hi - lo);
    float sq = 0, sqq = 0, sqx = 0;
    for (int j = 0; j < 32; j++) {
      float r = rintf((x[j] - lo) * ia);
      if (r < 0)
        r = 0;
      else if (r > 15)
        r = 15;
      sq += r;
      sqq += r * r;
      sqx += r * x[j];
    }
    float den = 32 * sqq - sq * sq;
    if (den <= 0) continue;
    float a = (32 * sqx - sq * sx) / den, b = (a * sq - sx) / 32;
    if (b < 0) {
      b = 0;
      a = sqq > 0 ? sqx / sqq : 0;
    }
    if (!(a > 0)) continue;
    float e = a * a * sqq + 32 * b * b + sxx - 2 * a * sqx + 2 * b * sx - 2 * a * b * sq;
    if (e < best) {
      best = e;
      best_a = a;
      best_b = b;
    }
  }
  *pa = best_a, *pb = best_b;
}

static void ref_block(const float *x, uint8_t *o) {
  float a[8], b[8], amax = 0, bmax = 0;
  for (int s = 0; s < 8; s++) {
    ref_fit(x + 32 * s, &a[s], &b[s]);
    if (a[s] > amax) amax = a[s];
    if (b[s] > bmax) bmax = b[s];
  }
  uint16_t hd = vb_float_to_half(amax / 63), hm = vb_float_to_half(bmax / 63);
  float d = vb_half_to_float(hd), dmin = vb_half_to_float(hm);
  uint8_t sc[8], mn[8], q[256];
  for (int s = 0; s < 8; s++) {
    int si = d > 0 ? (int)lrintf(a[s] / d) : 0, mi = dmin > 0 ? (int)lrintf(b[s] / dmin) : 0;
    float best = INFINITY;
    sc[s] = mn[s] = 0;
    for (int i = si - 1; i <= si + 1; i++)
      for (int k = mi - 1; k <= mi + 1; k++) {
        if (i < 0 || i > 63 || k < 0 || k > 63) continue;
        float e = ref_error(x + 32 * s, d * (float)i, dmin * (float)k, NULL);
        if (e < best) {
          best = e;
          sc[s] = (uint8_t)i;
          mn[s] = (uint8_t)k;
        }
      }
    ref_error(x + 32 * s, d * sc[s], dmin * mn[s], q + 32 * s);
  }
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

/* ---- the rows ---- */

static int n_rows, n_blocks_checked;

static void check_row(const char *what, const float *x, int64_t n) {
  int64_t nb = n / VB_Q4K_BLOCK;
  uint8_t *got = malloc((size_t)nb * VB_Q4K_BLOCK_BYTES),
          *want = malloc((size_t)nb * VB_Q4K_BLOCK_BYTES);
  if (!CHECK(got && want, "out of memory")) return;
  memset(got, 0xa5, (size_t)nb * VB_Q4K_BLOCK_BYTES);
  vb_quantize_q4_k(x, n, got);
  for (int64_t b = 0; b < nb; b++)
    ref_block(x + b * VB_Q4K_BLOCK, want + b * VB_Q4K_BLOCK_BYTES);
  int64_t bad = 0, first = -1;
  for (int64_t b = 0; b < nb; b++)
    if (memcmp(got + b * VB_Q4K_BLOCK_BYTES, want + b * VB_Q4K_BLOCK_BYTES, VB_Q4K_BLOCK_BYTES)) {
      if (first < 0) first = b;
      bad++;
    }
  CHECK(bad == 0, "%s: %lld of %lld super-blocks differ from the reference search (first %lld)",
        what, (long long)bad, (long long)nb, (long long)first);
  n_rows++, n_blocks_checked += (int)nb;
  free(got), free(want);
}

/* Normal-ish values: the sum of four uniforms. */
static float rnorm(tu_rng *r) {
  return (tu_frand(r) + tu_frand(r) + tu_frand(r) + tu_frand(r)) * 0.866f;
}

int main(void) {
  vb_cpu_init();
  printf("test_q4k_quantize: %s, %s search\n", vb_cpu_describe(),
         vb_cpu_has_avx512() ? "AVX-512" : "portable");
  tu_rng rng = {0x9e3779b97f4a7c15ull};
  enum { N = 8 * 256 };
  float *x = malloc(N * sizeof *x);
  if (!CHECK(x != NULL, "out of memory")) return tu_finish();
  char what[96];

  /* random rows at many scales and offsets */
  static const float scales[] = {1.0f, 0.035f, 1e-3f, 7.5f, 1e4f, 1e-20f, 1e20f};
  for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++)
    for (int kind = 0; kind < 4; kind++) {
      for (int i = 0; i < N; i++) {
        float v = kind == 0   ? tu_frand(&rng)
                  : kind == 1 ? rnorm(&rng)
                  : kind == 2 ? rnorm(&rng) + 0.6f              /* mostly positive */
                              : powf(tu_frand(&rng), 5.0f) * 4; /* heavy tails */
        x[i] = v * scales[si];
      }
      snprintf(what, sizeof what, "random kind %d scale %g", kind, scales[si]);
      check_row(what, x, N);
    }

  /* zeros, signed zeros and constants (one per sub-block: positive, negative, tiny, huge) */
  memset(x, 0, N * sizeof *x);
  check_row("zeros", x, N);
  for (int i = 0; i < N; i++)
    x[i] = i % 3 ? -0.0f : 0.0f;
  check_row("signed zeros", x, N);
  static const float consts[] = {0.7f, -3.25f, 1e-30f, -1e30f, 1.0f, -1e-38f, 65504.0f, 3e38f};
  for (int i = 0; i < N; i++)
    x[i] = consts[(i / 32) % 8];
  check_row("a constant per sub-block", x, N);
  for (int c = 0; c < 8; c++) {
    for (int i = 0; i < N; i++)
      x[i] = consts[c];
    snprintf(what, sizeof what, "constant %g", consts[c]);
    check_row(what, x, N);
  }

  /* outliers: small noise with one large value per sub-block, then per super-block */
  for (int i = 0; i < N; i++)
    x[i] = tu_frand(&rng) * 0.01f + (i % 32 == 7 ? 100.0f : 0.0f);
  check_row("an outlier per sub-block", x, N);
  for (int i = 0; i < N; i++)
    x[i] = tu_frand(&rng) * 0.01f + (i % 256 == 200 ? -500.0f : 0.0f);
  check_row("an outlier per super-block", x, N);
  for (int i = 0; i < N; i++)
    x[i] = (i % 256 == 3) ? 1e30f : tu_frand(&rng) * 1e-6f;
  check_row("a huge outlier", x, N);

  /* huge and tiny: near FLT_MAX (ranges overflow to inf), tiny, subnormal */
  for (int i = 0; i < N; i++)
    x[i] = tu_frand(&rng) * 3e38f;
  check_row("values near FLT_MAX", x, N);
  for (int i = 0; i < N; i++)
    x[i] = (i & 1 ? FLT_MAX : -FLT_MAX) * (i % 5 ? 1.0f : 0.5f);
  check_row("+-FLT_MAX", x, N);
  for (int i = 0; i < N; i++)
    x[i] = tu_frand(&rng) * 1e-30f;
  check_row("tiny values", x, N);
  for (int i = 0; i < N; i++)
    x[i] = tu_frand(&rng) * 1e-40f;
  check_row("subnormal values", x, N);
  for (int i = 0; i < N; i++)
    x[i] = (float)(i % 3) * 1.4e-45f;
  check_row("the smallest subnormals", x, N);

  /* values on the rounding grid and half-way between steps (ties of rintf) */
  for (int i = 0; i < N; i++)
    x[i] = 0.1f * (float)(i % 16) - 0.3f;
  check_row("values on a 16-step grid", x, N);
  for (int i = 0; i < N; i++)
    x[i] = 0.5f * (float)(i % 31);
  check_row("half steps", x, N);
  for (int i = 0; i < N; i++)
    x[i] = (i / 16) % 2 ? 1.0f : 0.0f;
  check_row("two levels", x, N);

  /* a scale per sub-block, 1e-6 .. 1e3, signs mixed */
  for (int i = 0; i < N; i++)
    x[i] = rnorm(&rng) * powf(10.0f, (float)((i / 32) % 10) - 6.0f);
  check_row("a scale per sub-block", x, N);

  /* many super-blocks: the threaded loop */
  int64_t big = 300 * 256;
  float *y = tu_rand_buf(&rng, (size_t)big, 0.05f);
  if (CHECK(y != NULL, "out of memory")) check_row("300 super-blocks (threaded)", y, big);
  free(y);

  printf("%d rows, %d super-blocks compared byte for byte\n", n_rows, n_blocks_checked);
  free(x);
  tu_rerun_with_cpu_paths_off();
  return tu_finish();
}
