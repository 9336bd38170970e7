/* The language model behind VideoBLIP: OPT (decoder-only) or T5
 * (encoder-decoder), one interface for the glue code and for generation. */
#ifndef VBLIP_MODELS_LM_H
#define VBLIP_MODELS_LM_H

#include <stdint.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "generate/generate.h"

typedef struct vb_lm vb_lm;

struct vb_lm {
  vb_lm_kind kind;
  int embed_dim;  /* width of the input embeddings (what language_projection outputs) */
  int32_t vocab_size;
  int max_positions; /* longest input+generated length the model supports; 0 = unbounded */
  /* Generation hooks; their `lm` argument is this struct. */
  vb_lm_iface gen;
  /* Sets the input of the next generation: prefix embeddings [n_prefix, embed_dim]
   * (the projected queries) followed by the prompt ids. Copies what it needs. */
  int (*set_input)(vb_lm *lm, const float *prefix, int n_prefix, const int32_t *ids, int n_ids);
  /* The model's input embeddings of ids (n rows of embed_dim), ids checked against the vocabulary.
   */
  int (*embed)(const vb_lm *lm, const int32_t *ids, int n, float *out);
  /* Scoring a continuation of the input: after a prefill with one beam, feeds ids[0..n) after
   * the input (OPT: after the prompt; T5: as the decoder's tokens after its start token) and
   * writes n rows of logits, row i the distribution of the token after ids[i]. The prefilled
   * state is kept, so each call scores another continuation of the same input. */
  int (*continue_logits)(vb_lm *lm, const int32_t *ids, int n, float *logits);
  void (*destroy)(vb_lm *lm);
};

/* Builds the model from checked weights ("language_model." prefix). */
int vb_opt_create(vb_weights *w, const vb_model_config *c, vb_lm **out);
int vb_t5_create(vb_weights *w, const vb_model_config *c, vb_lm **out);

#endif
