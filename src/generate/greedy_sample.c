/* Greedy search and multinomial sampling (transformers 4.33 greedy_search /
 * sample): processors on the raw logits, warpers when sampling, one token per
 * row and step, EOS kept, finished rows continue with pad until all end. */
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"
#include "runtime/common.h"

int vb_gen_greedy_sample(const vb_lm_iface *lm, void *ctx, const vb_gen_config *c,
                         const vb_gen_eff *e, vb_token_cb cb, void *user, vb_gen_result *out) {
  const int V = lm->vocab_size, L = e->max_len;
  // Sampling with num_return_sequences draws that many independent rows.
  const int R = c->do_sample ? e->nrs : 1;
  const int32_t eos = c->eos_token_id;
  int rc = -1;
  size_t nlog;
  if (!vb_mul_ok((size_t)R, (size_t)V, &nlog)) return vb_error("generate: logits buffer too large");
  float *logits = vb_malloc(nlog * sizeof(float));
  int32_t *seqs = vb_malloc((size_t)R * (size_t)L * sizeof(int32_t));
  int32_t *tokens = vb_malloc((size_t)R * sizeof(int32_t));
  int *lens = vb_calloc((size_t)R, sizeof(int)); /* 0 while unfinished */
  float *scratch = vb_malloc((size_t)L * sizeof(float));
  vb_warp_ws ws = {0};
  vb_rng rng;
  vb_rng_seed(&rng, c->seed);
  if (!logits || !seqs || !tokens || !lens || !scratch) goto done;
  if (c->do_sample && vb_warp_ws_init(&ws, c, V, 1)) goto done;

  for (int r = 0; r < R; r++)
    seqs[(size_t)r * L] = c->start_token_id;
  int cur_len = 1;
  if (lm->prefill(ctx, R, logits)) {
    vb_error_context("generate: prefill: ");
    goto done;
  }
  // All rows start from the same input: the prefill returns one row.
  for (int r = 1; r < R; r++)
    memcpy(logits + (size_t)r * V, logits, (size_t)V * sizeof(float));

  for (;;) {
    for (int r = 0; r < R; r++) {
      if (lens[r]) {
        tokens[r] = e->feed_pad;
        continue;
      }
      float *row = logits + (size_t)r * V;
      const int32_t *ids = seqs + (size_t)r * L;
      if (vb_lp_check_row(row, V)) goto done;
      vb_lp_process(c, row, V, ids, cur_len, scratch);
      if (c->do_sample) {
        vb_warp_apply(c, row, V, 1, &ws);
        if (vb_sample_row(row, V, &rng, &tokens[r])) goto done;
      } else {
        tokens[r] = vb_lp_argmax(row, V);
      }
    }
    bool row0_live = lens[0] == 0;
    for (int r = 0; r < R; r++)
      seqs[(size_t)r * L + cur_len] = lens[r] ? e->out_pad : tokens[r];
    cur_len++;
    bool all_done = true;
    for (int r = 0; r < R; r++) {
      if (!lens[r] && eos >= 0 && tokens[r] == eos) lens[r] = cur_len;
      if (!lens[r]) all_done = false;
    }
    if (row0_live && cb && cb(user, tokens[0])) break;
    if (all_done || cur_len >= L) break;
    if (lm->step(ctx, tokens, R, logits)) {
      vb_error_context("generate: step at length %d: ", cur_len);
      goto done;
    }
  }

  if (vb_gen_result_alloc(out, R, cur_len, e->out_pad)) goto done;
  for (int r = 0; r < R; r++) {
    int n = lens[r] ? lens[r] : cur_len;
    memcpy(out->seqs[r], seqs + (size_t)r * L, (size_t)n * sizeof(int32_t));
    out->lens[r] = n;
    out->scores[r] = 0.0f;
  }
  rc = 0;
done:
  free(logits);
  free(seqs);
  free(tokens);
  free(lens);
  free(scratch);
  vb_warp_ws_free(&ws);
  return rc;
}
