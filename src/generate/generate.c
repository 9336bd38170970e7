/* Generation entry point: configuration defaults and validation, resolution of
 * the effective settings (max length, pad), dispatch to greedy/sampling or
 * beam search/beam sampling. */
#include "generate/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"
#include "runtime/common.h"

void vb_gen_config_default(vb_gen_config *c) {
  memset(c, 0, sizeof *c);
  c->num_beams = 1;
  c->num_return_sequences = 1;
  c->max_new_tokens = 0;
  c->max_length = 20;
  c->min_new_tokens = 0;
  c->do_sample = false;
  c->temperature = 1.0f;
  c->top_k = 50;
  c->top_p = 1.0f;
  c->seed = 0;
  c->repetition_penalty = 1.0f;
  c->no_repeat_ngram_size = 0;
  c->length_penalty = 1.0f;
  c->early_stopping = VB_EARLY_FALSE;
  c->eos_token_id = -1;
  c->pad_token_id = -1;
  c->start_token_id = -1;
}

int vb_gen_config_check(const vb_gen_config *c) {
  if (!c) return vb_error("generation config: NULL");
  if (c->num_beams < 0)
    return vb_error("generation config: num_beams must be >= 0 (got %d)", c->num_beams);
  int beams = c->num_beams < 1 ? 1 : c->num_beams;
  if (c->num_return_sequences < 0)
    return vb_error("generation config: num_return_sequences must be >= 1 (got %d)",
                    c->num_return_sequences);
  int nrs = c->num_return_sequences < 1 ? 1 : c->num_return_sequences;
  if (beams > 1 && nrs > beams)
    return vb_error("generation config: num_return_sequences (%d) must be <= num_beams (%d)", nrs,
                    beams);
  if (beams == 1 && !c->do_sample && nrs > 1)
    return vb_error(
        "generation config: num_return_sequences (%d) > 1 needs num_beams > 1 or do_sample "
        "(greedy search returns one sequence)",
        nrs);
  if (c->max_new_tokens < 0)
    return vb_error("generation config: max_new_tokens must be >= 0 (got %d)", c->max_new_tokens);
  if (c->max_new_tokens == 0 && c->max_length < 2)
    return vb_error(
        "generation config: max_length must be >= 2, it counts the start token (got %d)",
        c->max_length);
  if (c->max_new_tokens > 1000000 || c->max_length > 1000000)
    return vb_error("generation config: max_length/max_new_tokens too large (limit 1000000)");
  if (c->min_new_tokens < 0)
    return vb_error("generation config: min_new_tokens must be >= 0 (got %d)", c->min_new_tokens);
  if (!(c->top_p > 0.0f && c->top_p <= 1.0f))
    return vb_error("generation config: top_p must be in (0, 1] (got %g)", (double)c->top_p);
  if (c->top_k < 0) return vb_error("generation config: top_k must be >= 0 (got %d)", c->top_k);
  if (c->do_sample && !(c->temperature > 0.0f && isfinite(c->temperature)))
    return vb_error("generation config: temperature must be > 0 with do_sample (got %g)",
                    (double)c->temperature);
  if (!(c->repetition_penalty > 0.0f && isfinite(c->repetition_penalty)))
    return vb_error("generation config: repetition_penalty must be > 0 (got %g)",
                    (double)c->repetition_penalty);
  if (c->no_repeat_ngram_size < 0)
    return vb_error("generation config: no_repeat_ngram_size must be >= 0 (got %d)",
                    c->no_repeat_ngram_size);
  if (!isfinite(c->length_penalty))
    return vb_error("generation config: length_penalty must be finite (got %g)",
                    (double)c->length_penalty);
  if (c->early_stopping != VB_EARLY_FALSE && c->early_stopping != VB_EARLY_TRUE &&
      c->early_stopping != VB_EARLY_NEVER)
    return vb_error("generation config: early_stopping must be false, true or never (got %d)",
                    (int)c->early_stopping);
  if (c->start_token_id < 0)
    return vb_error("generation config: start_token_id must be set (got %d)", c->start_token_id);
  if (c->eos_token_id < -1)
    return vb_error("generation config: eos_token_id must be >= 0 or -1 for none (got %d)",
                    c->eos_token_id);
  if (c->pad_token_id < -1)
    return vb_error("generation config: pad_token_id must be >= 0 or -1 for none (got %d)",
                    c->pad_token_id);
  return 0;
}

int vb_generate(const vb_lm_iface *lm, void *lm_ctx, const vb_gen_config *cfg, vb_token_cb cb,
                void *user, vb_gen_result *out) {
  if (!out) return vb_error("generate: NULL result");
  memset(out, 0, sizeof *out);
  if (!lm || !lm->prefill || !lm->step || !lm->reorder)
    return vb_error("generate: incomplete language model interface");
  if (vb_gen_config_check(cfg)) return -1;
  int vocab = lm->vocab_size;
  if (vocab < 2) return vb_error("generate: vocab_size must be >= 2 (got %d)", vocab);
  if (cfg->start_token_id >= vocab)
    return vb_error("generate: start_token_id %d outside the vocabulary (%d)", cfg->start_token_id,
                    vocab);
  if (cfg->eos_token_id >= vocab)
    return vb_error("generate: eos_token_id %d outside the vocabulary (%d)", cfg->eos_token_id,
                    vocab);

  vb_gen_eff e;
  e.max_len = cfg->max_new_tokens > 0 ? cfg->max_new_tokens + 1 : cfg->max_length;
  e.num_beams = cfg->num_beams < 1 ? 1 : cfg->num_beams;
  e.nrs = cfg->num_return_sequences < 1 ? 1 : cfg->num_return_sequences;
  // transformers sets pad_token_id to eos_token_id when only the latter exists.
  e.out_pad = cfg->pad_token_id >= 0 ? cfg->pad_token_id : cfg->eos_token_id;
  if (e.out_pad < 0) e.out_pad = 0;
  e.feed_pad = e.out_pad < vocab ? e.out_pad : 0;

  int rc = e.num_beams > 1 ? vb_gen_beam(lm, lm_ctx, cfg, &e, out)
                           : vb_gen_greedy_sample(lm, lm_ctx, cfg, &e, cb, user, out);
  if (rc) {
    vb_gen_result_free(out);
    return -1;
  }
  return 0;
}
