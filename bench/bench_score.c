/* vblip-bench-score: candidate scoring (EILEV's classify) on a full-size random-weight
 * language model, with the context's cache reused for every candidate (what
 * vblip_score_candidates does) against a forward of the context for each candidate
 * (what scoring without the cache costs), in the same run.
 *
 *   vblip-bench-score [--lm opt|t5] [--context N] [--candidates K] [--tokens L]
 *                     [--dtype bf16|f32] [--repeat R] [--tiny]
 *
 * The default context is a 3-example EILEV prompt's length: 4 videos of 32 queries
 * and a newline each, and 40 text tokens (172 positions). Each candidate has L
 * tokens. Times are medians over R repetitions. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

int main(int argc, char **argv) {
  vb_lm_kind kind = VB_LM_OPT;
  int ctx = 4 * 33 + 40, K = 16, L = 4, R = 3, tiny = 0;
  vb_dtype dt = VB_DT_BF16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--lm") && v)
      kind = strcmp(argv[++i], "t5") == 0 ? VB_LM_T5 : VB_LM_OPT;
    else if (!strcmp(a, "--context") && v)
      ctx = atoi(argv[++i]);
    else if (!strcmp(a, "--candidates") && v)
      K = atoi(argv[++i]);
    else if (!strcmp(a, "--tokens") && v)
      L = atoi(argv[++i]);
    else if (!strcmp(a, "--repeat") && v)
      R = atoi(argv[++i]);
    else if (!strcmp(a, "--dtype") && v)
      dt = strcmp(argv[++i], "f32") == 0 ? VB_DT_F32 : VB_DT_BF16;
    else if (!strcmp(a, "--tiny"))
      tiny = 1;
    else {
      fprintf(stderr,
              "usage: %s [--lm opt|t5] [--context N] [--candidates K] [--tokens L] "
              "[--dtype bf16|f32] [--repeat R] [--tiny]\n",
              argv[0]);
      return 2;
    }
  }
  if (ctx < 2 || K < 1 || L < 2 || R < 1) return fprintf(stderr, "bad sizes\n"), 2;
  vb_cpu_init();
  vb_model_config c;
  vb_weights w;
  vb_lm *lm = NULL;
  if (bench_config(kind, tiny, &c) != 0) return fprintf(stderr, "%s\n", vb_error_message()), 1;
  bench_weights_new(&w, dt == VB_DT_F32 ? VB_COMPUTE_F32 : VB_COMPUTE_BF16, 0);
  fprintf(stderr, "building %s (%s, random weights)...\n", bench_model_name(kind),
          tiny ? "tiny" : "full size");
  if (bench_build_lm(&w, &c, dt) != 0 || bench_weights_via_file(&w) != 0 ||
      bench_lm_create(&w, &c, &lm) != 0)
    return fprintf(stderr, "%s\n", vb_error_message()), 1;
  int V = lm->vocab_size, E = lm->embed_dim;
  float *in = vb_malloc((size_t)ctx * E * sizeof(float));
  float *first = vb_malloc((size_t)V * sizeof(float)),
        *rows = vb_malloc((size_t)L * V * sizeof(float));
  int32_t *ids = vb_malloc((size_t)ctx * sizeof *ids),
          *cand = vb_malloc((size_t)K * L * sizeof *cand);
  double *cached = vb_malloc((size_t)R * sizeof(double)),
         *uncached = vb_malloc((size_t)R * sizeof(double));
  if (!in || !first || !rows || !ids || !cand || !cached || !uncached) return 1;
  /* the context as the interleaved layout gives it: embeddings of ids (the videos'
   * rows are embeddings too, which costs the model the same) */
  bench_prompt_ids(&c, ids, ctx);
  if (lm->embed(lm, ids, ctx, in) != 0) return fprintf(stderr, "%s\n", vb_error_message()), 1;
  for (int i = 0; i < K * L; i++)
    cand[i] = 200 + (97 * i) % (V - 400);
  /* warm-up: primitive creation */
  if (lm->set_input(lm, in, ctx, NULL, 0) || lm->gen.prefill(lm, 1, first) ||
      lm->continue_logits(lm, cand, L - 1, rows))
    return fprintf(stderr, "%s\n", vb_error_message()), 1;
  for (int r = 0; r < R; r++) {
    /* reused: one forward of the context, then each candidate's own tokens */
    double t0 = vb_now_ms();
    if (lm->set_input(lm, in, ctx, NULL, 0) || lm->gen.prefill(lm, 1, first)) return 1;
    for (int k = 0; k < K; k++)
      if (lm->continue_logits(lm, cand + (size_t)k * L, L - 1, rows)) return 1;
    cached[r] = vb_now_ms() - t0;
    /* not reused: the context again for every candidate */
    t0 = vb_now_ms();
    for (int k = 0; k < K; k++)
      if (lm->set_input(lm, in, ctx, NULL, 0) || lm->gen.prefill(lm, 1, first) ||
          lm->continue_logits(lm, cand + (size_t)k * L, L - 1, rows))
        return 1;
    uncached[r] = vb_now_ms() - t0;
    fprintf(stderr, "  run %d: reused %.0f ms, not reused %.0f ms\n", r + 1, cached[r],
            uncached[r]);
  }
  /* each run's ratio pairs two measurements taken seconds apart: on a shared machine it
   * varies less than either time */
  double *ratio = vb_malloc((size_t)R * sizeof(double));
  if (!ratio) return 1;
  for (int r = 0; r < R; r++) ratio[r] = uncached[r] / cached[r];
  double mr = median(ratio, R);
  double mc = median(cached, R), mu = median(uncached, R);
  printf("%s %s, context %d positions, %d candidates x %d tokens, %d threads, %s\n",
         bench_model_name(kind), dt == VB_DT_F32 ? "f32" : "bf16", ctx, K, L, omp_get_max_threads(),
         vb_cpu_describe());
  printf("context cache reused: %.0f ms (%.1f ms per candidate)\n", mc, mc / K);
  printf("context run per candidate: %.0f ms (%.1f ms per candidate)\n", mu, mu / K);
  printf("speed-up: %.2fx (median of the runs' ratios)\n", mr);
  free(ratio);
  lm->destroy(lm);
  vb_weights_close(&w);
  free(in), free(first), free(rows), free(ids), free(cand), free(cached), free(uncached);
  return 0;
}
