/* Logits processors with transformers 4.33 semantics (RepetitionPenalty,
 * NoRepeatNGram, MinNewTokensLength), plus log_softmax and argmax.
 * Every function works on one row of vocab scores in place. */
#include <math.h>

#include "generate/gen_internal.h"
#include "runtime/common.h"

int vb_lp_check_row(const float *x, int vocab) {
  for (int i = 0; i < vocab; i++) {
    // -inf is a legitimate mask value; NaN/+inf would poison every later step.
    if (isnan(x[i]) || x[i] == INFINITY)
      return vb_error("generate: the language model produced a non-finite logit (%g at id %d)",
                      (double)x[i], i);
  }
  return 0;
}

int vb_lp_log_softmax(float *x, int vocab) {
  float m = -INFINITY;
  for (int i = 0; i < vocab; i++) {
    if (isnan(x[i])) return vb_error("generate: the language model produced NaN logits (id %d)", i);
    if (x[i] > m) m = x[i];
  }
  if (!isfinite(m)) return vb_error("generate: no finite logit to normalise (max %g)", (double)m);
  double sum = 0.0;
  for (int i = 0; i < vocab; i++)
    sum += expf(x[i] - m);
  float lse = (float)log(sum);
  for (int i = 0; i < vocab; i++)
    x[i] = (x[i] - m) - lse;
  return 0;
}

void vb_lp_repetition_penalty(float *scores, const int32_t *ids, int n, float penalty,
                              float *scratch) {
  // Gather all first, then scatter, like torch.gather/scatter_: a token that
  // occurs several times is penalised once, from its original score.
  for (int i = 0; i < n; i++)
    scratch[i] = scores[ids[i]];
  for (int i = 0; i < n; i++) {
    float s = scratch[i];
    scores[ids[i]] = s < 0 ? s * penalty : s / penalty;
  }
}

void vb_lp_no_repeat_ngram(float *scores, const int32_t *ids, int n, int size) {
  if (size <= 0 || n + 1 < size) return;
  // The last size-1 tokens are the prefix; any earlier n-gram starting with
  // the same prefix bans its final token. size 1 bans every seen token.
  const int32_t *prefix = ids + n - (size - 1);
  for (int i = 0; i + size <= n; i++) {
    int k = 0;
    while (k < size - 1 && ids[i + k] == prefix[k])
      k++;
    if (k == size - 1) scores[ids[i + size - 1]] = -INFINITY;
  }
}

void vb_lp_min_new_tokens(float *scores, int cur_len, int min_new, int32_t eos) {
  // The start token is the whole "prompt" of input_ids: cur_len - 1 tokens are new.
  if (eos >= 0 && cur_len - 1 < min_new) scores[eos] = -INFINITY;
}

void vb_lp_process(const vb_gen_config *c, float *scores, int vocab, const int32_t *ids,
                   int cur_len, float *scratch) {
  (void)vocab;
  if (c->repetition_penalty != 1.0f)
    vb_lp_repetition_penalty(scores, ids, cur_len, c->repetition_penalty, scratch);
  if (c->no_repeat_ngram_size > 0)
    vb_lp_no_repeat_ngram(scores, ids, cur_len, c->no_repeat_ngram_size);
  if (c->min_new_tokens > 0)
    vb_lp_min_new_tokens(scores, cur_len, c->min_new_tokens, c->eos_token_id);
}

int32_t vb_lp_argmax(const float *x, int vocab) {
  int32_t best = 0;
  for (int i = 1; i < vocab; i++)
    if (x[i] > x[best]) best = i;
  return best;
}
