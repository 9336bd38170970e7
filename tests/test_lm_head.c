/* The vocabulary head read through a bf16 / q8_0 copy (src/models/lm_head.c),
 * against a double-precision reference of the f32 head:
 *  - the largest logit is the reference's (same token) on random heads, and
 *    every logit within 1% of the spread of the top is the f32 value (within
 *    the f32 product's bound), while most of the vocabulary is not recomputed;
 *  - near ties that bf16 / q8_0 rounding reverses (two rows differing by one
 *    weight step below the copy's resolution) still pick the reference's token,
 *    also among a crowd of V/20 rows within the copy's error of the top (a
 *    bound too tight to cover the copy's error lets one of them win);
 *  - every other logit is within the copy's error (2% of sum |x w|);
 *  - a flat distribution (all rows equal) falls back to the whole row in f32;
 *  - a NaN activation gives NaN logits, not a crash; several rows at once;
 *  - without a copy (f32) every logit is the f32 value.
 * Runs again with AVX-512 off (portable kernels, same bounds). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm/lm_head.h"
#include "runtime/cpu.h"
#include "testutil.h"

static tu_rng rng = {0x9e3779b97f4a7c15ull};

static int argmax_d(const double *v, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[b]) b = i;
  return b;
}

static int argmax_f(const float *v, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[b]) b = i;
  return b;
}

/* One head of V x E, rows activation rows; tie: rows 1 and 0 differ in one
 * weight by a step far below bf16's resolution, row 1 the larger logit. */
static void check_head(vb_dtype fast, int V, int E, int rows, int tie, int flat) {
  int crowd = tie == 2;
  float *w = tu_rand_buf(&rng, (size_t)V * E, 0.05f), *b = tu_rand_buf(&rng, V, 0.01f);
  float *x = tu_rand_buf(&rng, (size_t)rows * E, 1.0f);
  if (flat)
    for (int j = 1; j < V; j++)
      memcpy(w + (size_t)j * E, w, E * sizeof(float)), b[j] = b[0];
  /* a clear winner per row (a trained head's peak), token 7 */
  for (int r = 0; r < rows && !flat; r++)
    for (int k = 0; k < E; k++)
      w[7 * (size_t)E + k] = 0.1f * x[(size_t)r * E + k] / (1 + r);
  if (tie) {
    for (int k = 0; k < E; k++)
      w[(size_t)E + k] = w[k] = 0.2f * x[k];
    b[0] = b[1] = 0;
    w[(size_t)E + 3] = w[3] + (x[3] > 0 ? 1e-5f : -1e-5f); /* row 1: larger by |x3| 1e-5 */
  }
  if (crowd) /* rows 2..: row 0 with noise below the copy's resolution, a little smaller */
    for (int j = 2; j < 2 + V / 20; j++) {
      b[j] = 0;
      for (int k = 0; k < E; k++)
        w[(size_t)j * E + k] = w[k] * (1 + 2e-3f * tu_frand(&rng)) - 1e-5f * (x[k] > 0 ? 1 : -1);
    }
  double *ref = malloc((size_t)rows * V * sizeof(double)),
         *mag = malloc((size_t)rows * V * sizeof(double));
  tu_linear_ref(x, w, b, rows, V, E, ref, mag);
  float *y = malloc((size_t)rows * V * sizeof(float));
  vb_lm_head h;
  if (!CHECK_OK(vb_lm_head_init(&h, w, b, V, E, fast))) return;
  memset(y, 0xff, (size_t)rows * V * sizeof(float));
  vb_lm_head_forward(&h, x, rows, y);
  long exact = vb_lm_head_last_exact();
  const char *nm = fast == VB_DT_BF16 ? "bf16" : fast == VB_DT_Q8_0 ? "q8_0" : "f32";
  for (int r = 0; r < rows; r++) {
    const double *rr = ref + (size_t)r * V, *mr = mag + (size_t)r * V;
    const float *yr = y + (size_t)r * V;
    int top = argmax_d(rr, V);
    CHECK(argmax_f(yr, V) == top || rr[argmax_f(yr, V)] == rr[top],
          "%s head %dx%d row %d: top token %d, reference %d", nm, V, E, r, argmax_f(yr, V), top);
    if (tie == 1 && r == 0)
      CHECK(top == 1 && argmax_f(yr, V) == 1, "%s head: near tie decided as token %d", nm,
            argmax_f(yr, V));
    double lo = rr[top], hi = rr[top];
    for (int j = 0; j < V; j++)
      lo = fmin(lo, rr[j]);
    size_t near_off = 0, far_off = 0;
    for (int j = 0; j < V; j++) {
      double err = fabs(yr[j] - rr[j]);
      if (rr[j] >= hi - 0.01 * (hi - lo) && !(err <= 1e-5 * mr[j] + 1e-6)) near_off++;
      if (!(err <= 2e-2 * mr[j] + 1e-6)) far_off++;
    }
    CHECK(near_off == 0, "%s head %dx%d row %d: %zu logits near the top not f32-exact", nm, V, E, r,
          near_off);
    CHECK(far_off == 0, "%s head %dx%d row %d: %zu logits beyond the copy's error", nm, V, E, r,
          far_off);
  }
  if (fast == VB_DT_F32 || flat)
    CHECK(exact == (long)rows * V, "%s head %dx%d flat=%d: %ld of %d logits in f32, expected all",
          nm, V, E, flat, exact, rows * V);
  else
    CHECK(exact < (long)rows * V / 4,
          "%s head %dx%d: %ld of %d logits recomputed (the copy unused)", nm, V, E, exact,
          rows * V);
  /* a NaN activation: NaN logits for its row */
  x[E / 3] = NAN;
  vb_lm_head_forward(&h, x, rows, y);
  CHECK(isnan(y[0]) && isnan(y[V - 1]), "%s head: NaN activation gave %g, %g", nm, y[0], y[V - 1]);
  vb_lm_head_release(&h);
  free(w), free(b), free(x), free(ref), free(mag), free(y);
}

int main(void) {
  vb_cpu_init();
  printf("cpu: %s\n", vb_cpu_describe());
  vb_dtype types[] = {VB_DT_BF16, VB_DT_Q8_0, VB_DT_F32};
  for (int t = 0; t < 3; t++) {
    check_head(types[t], 3000, 256, 1, 0, 0);
    check_head(types[t], 3000, 256, 1, 1, 0);
    check_head(types[t], 1001, 96, 3, 1, 0);
    check_head(types[t], 3000, 256, 1, 2, 0);
    check_head(types[t], 1001, 96, 2, 2, 0);
    check_head(types[t], 517, 64, 1, 0, 1);
    check_head(types[t], 2000, 100, 2, 0, 0); /* not whole q8_0 blocks: bf16 instead */
  }
  tu_rerun_with_cpu_paths_off();
  return tu_finish();
}
