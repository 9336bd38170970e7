/* The tensors of transformers' T5ForConditionalGeneration inside a BLIP-2
 * checkpoint: names, shapes and load order. Shared by inference (models/t5.c)
 * and the frozen training copy (train/lm_train_t5.c); each binds the linear
 * layers to its own type through a callback, the plain float32 tensors are
 * loaded here for both. */
#ifndef VBLIP_MODELS_T5_TENSORS_H
#define VBLIP_MODELS_T5_TENSORS_H

#include "checkpoint/config.h"
#include "checkpoint/weights.h"

#define VB_T5_LM "language_model."

/* A block's linear layers (bias-free) and RMS norm weights [d_model]. The
 * cross-attention ones exist in decoder blocks only, WI1 in gated models only
 * (WI0 is then wi_0, otherwise wi). */
enum {
  VB_T5_SELF_Q,
  VB_T5_SELF_K,
  VB_T5_SELF_V,
  VB_T5_SELF_O,
  VB_T5_CROSS_Q,
  VB_T5_CROSS_K,
  VB_T5_CROSS_V,
  VB_T5_CROSS_O,
  VB_T5_WI0,
  VB_T5_WI1,
  VB_T5_WO,
  VB_T5_N_LINEAR
};
enum { VB_T5_LN_SELF, VB_T5_LN_CROSS, VB_T5_LN_FF, VB_T5_N_NORM };

/* Binds the linear "<prefix>.weight" [out,in] to dst (an entry of lin below). */
typedef int (*vb_t5_linear_fn)(vb_weights *w, const char *prefix, int out, int in, void *dst);

/* Loads block i of stack ("encoder" or "decoder"): linear(..., lin[slot]) for
 * each linear layer, *norm[slot] for each norm. */
int vb_t5_load_block(vb_weights *w, const vb_t5_config *c, const char *stack, int i, int decoder,
                     vb_t5_linear_fn linear, void *const lin[VB_T5_N_LINEAR],
                     const float **const norm[VB_T5_N_NORM]);

/* A stack's token embedding [vocab, d_model]: its own tensor `own` when the file
 * has it (.bin files keep tied duplicates), else the shared one safetensors keeps. */
const float *vb_t5_load_embedding(vb_weights *w, const vb_t5_config *c, const char *own);

/* Both stacks' token embeddings, block 0's relative attention bias
 * [buckets, heads] and final norms [d_model]. */
int vb_t5_load_stacks(vb_weights *w, const vb_t5_config *c, const float **enc_embed,
                      const float **dec_embed, const float **enc_rel, const float **dec_rel,
                      const float **enc_ln, const float **dec_ln);

#endif
