/* Token generation with transformers 4.33 generate() semantics, over any
 * language model that implements vb_lm_iface (OPT, T5). */
#ifndef VBLIP_GENERATE_GENERATE_H
#define VBLIP_GENERATE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

/* The language model as generation sees it. The model has already been given
 * its input (prefix embeddings + prompt); the generator drives decoding. */
typedef struct {
  int32_t vocab_size;
  /* Runs the input once and returns the next-token logits (one row, vocab_size
   * floats). The model prepares n_beams identical caches for the next steps. */
  int (*prefill)(void *lm, int n_beams, float *logits);
  /* Feeds one token per beam (row b continues cache b); writes n_beams rows of logits. */
  int (*step)(void *lm, const int32_t *tokens, int n_beams, float *logits);
  /* Before the next step, cache b becomes a copy of old cache src[b]. */
  int (*reorder)(void *lm, const int *src, int n_beams);
} vb_lm_iface;

typedef enum { VB_EARLY_FALSE = 0, VB_EARLY_TRUE = 1, VB_EARLY_NEVER = 2 } vb_early_stopping;

typedef struct {
  int num_beams;            /* 0 or 1: greedy / sampling */
  int num_return_sequences; /* <= num_beams for beam search; 1 otherwise */
  int max_new_tokens;       /* > 0 overrides max_length */
  int max_length;           /* counts the start token; default 20 */
  int min_new_tokens;
  bool do_sample;
  float temperature; /* only with do_sample */
  int top_k;         /* 0 = off; transformers' default generation config has 50 */
  float top_p;       /* 1 = off */
  uint64_t seed;
  float repetition_penalty; /* 1 = off */
  int no_repeat_ngram_size; /* 0 = off */
  float length_penalty;     /* beam search, default 1 */
  vb_early_stopping early_stopping;
  int32_t eos_token_id;   /* -1: none */
  int32_t pad_token_id;
  int32_t start_token_id; /* first id of every returned sequence (OPT bos, T5 decoder start) */
} vb_gen_config;

/* transformers' defaults: greedy, max_length 20, no penalties, top_k 50, top_p 1, temperature 1. */
void vb_gen_config_default(vb_gen_config *c);
/* Validates ranges (beams >= 0, 0 < top_p <= 1, temperature > 0, ...), message on error. */
int vb_gen_config_check(const vb_gen_config *c);

typedef struct {
  int n;              /* number of sequences returned */
  int32_t **seqs;     /* each starts with start_token_id, as generate() returns them */
  int *lens;
  float *scores;      /* beam search: sequences_scores; otherwise 0 */
} vb_gen_result;

/* Called with each new token of sequence 0 as soon as it is final (greedy and
 * sampling only). Return non-zero to stop generation early. */
typedef int (*vb_token_cb)(void *user, int32_t token);

int vb_generate(const vb_lm_iface *lm, void *lm_ctx, const vb_gen_config *cfg, vb_token_cb cb,
                void *user, vb_gen_result *out);
void vb_gen_result_free(vb_gen_result *r);

#endif
