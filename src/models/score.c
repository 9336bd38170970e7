/* Scoring candidate continuations of an input (EILEV's classify): the mean
 * log-likelihood of each candidate's tokens, with the input run once and its
 * cache reused for every candidate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/videoblip_internal.h"
#include "runtime/common.h"
#include "text/pystr.h"

void vblip_score_free(vblip_score *s) {
  if (!s) return;
  free(s->token_ids);
  memset(s, 0, sizeof *s);
}

/* log softmax(row)[id], the normalizer summed in double. */
static double log_prob(const float *row, int vocab, int32_t id) {
  float mx = row[0];
  for (int i = 1; i < vocab; i++)
    if (row[i] > mx) mx = row[i];
  double sum = 0;
  for (int i = 0; i < vocab; i++)
    sum += exp((double)row[i] - (double)mx);
  return (double)row[id] - (double)mx - log(sum);
}

/* The tokens a candidate is scored on: decoder-only models continue the prompt, so
 * the candidate is a new word (" " + candidate, as EILEV tokenizes classes); T5's
 * decoder starts afresh. No special tokens either way. */
static int candidate_ids(const vblip_model *m, const char *cand, int32_t **ids, size_t *n) {
  bool lead = m->cfg.lm_kind == VB_LM_OPT;
  size_t len = strlen(cand);
  char *t = vb_malloc(len + 2);
  if (!t) return -1;
  t[0] = ' ';
  memcpy(t + 1, cand, len + 1);
  int rc = vb_tokenizer_encode(m->tok, lead ? t : t + 1, lead ? len + 1 : len, false, ids, n);
  free(t);
  return rc;
}

int vblip_score_candidates(vblip_model *m, const vblip_input *in, const char *const *candidates,
                           size_t n_candidates, vblip_score *out) {
  if (n_candidates == 0) return vb_error("no candidates to score");
  memset(out, 0, n_candidates * sizeof *out);
  int vocab = m->lm->vocab_size;
  float *emb = NULL, *first = NULL, *rows = NULL;
  size_t n_emb = 0, longest = 0, rows_bytes;
  for (size_t c = 0; c < n_candidates; c++) {
    size_t n = 0;
    size_t st, len;
    if (candidates[c]) vb_py_strip(candidates[c], strlen(candidates[c]), &st, &len);
    if (!candidates[c] || len == 0) {
      vb_error("candidate %zu is empty", c + 1);
      goto fail;
    }
    if (candidate_ids(m, candidates[c], &out[c].token_ids, &n) != 0) goto fail;
    if (n == 0) {
      vb_error("candidate %zu (\"%.40s\") has no tokens", c + 1, candidates[c]);
      goto fail;
    }
    out[c].n_tokens = (int)n;
    if (n > longest) longest = n;
  }
  if (!vb_mul_ok(longest * sizeof(float), (size_t)vocab, &rows_bytes)) {
    vb_error("candidates too long to score");
    goto fail;
  }
  if (vblip_input_embeds(m, in, &emb, &n_emb) != 0 ||
      m->lm->set_input(m->lm, emb, (int)n_emb, NULL, 0) != 0)
    goto fail;
  first = vb_malloc((size_t)vocab * sizeof(float));
  rows = vb_malloc(rows_bytes);
  /* the input once: its last logits predict every candidate's first token */
  if (!first || !rows || m->lm->gen.prefill(m->lm, 1, first) != 0) goto fail;
  for (size_t c = 0; c < n_candidates; c++) {
    const int32_t *ids = out[c].token_ids;
    int k = out[c].n_tokens;
    double sum = log_prob(first, vocab, ids[0]);
    if (k > 1 && m->lm->continue_logits(m->lm, ids, k - 1, rows) != 0) {
      vb_error_context("scoring candidate %zu", c + 1);
      goto fail;
    }
    for (int j = 1; j < k; j++)
      sum += log_prob(rows + (size_t)(j - 1) * vocab, vocab, ids[j]);
    out[c].mean_log_likelihood = sum / k;
  }
  free(emb);
  free(first);
  free(rows);
  return 0;
fail:
  free(emb);
  free(first);
  free(rows);
  for (size_t c = 0; c < n_candidates; c++)
    vblip_score_free(&out[c]);
  return -1;
}
