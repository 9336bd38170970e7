/* The tensors of transformers' OPTForCausalLM inside a BLIP-2 checkpoint: names,
 * shapes and which are optional. Shared by inference (models/opt.c) and the
 * frozen training copy (train/lm_train_opt.c), which bind the linear layers to
 * their own types; the plain float32 tensors are loaded here for both. */
#ifndef VBLIP_MODELS_OPT_TENSORS_H
#define VBLIP_MODELS_OPT_TENSORS_H

#include "checkpoint/config.h"
#include "checkpoint/weights.h"

#define VB_OPT_DECODER "language_model.model.decoder"
#define VB_OPT_LM_HEAD "language_model.lm_head" /* absent when tied to embed_tokens */

/* A linear layer's tensor prefix ("<prefix>.weight" [out,in], "<prefix>.bias" [out]). */
typedef struct {
  char name[256];
  int out, in;
} vb_opt_linear_desc;

/* Layer l's linear `which`. */
enum { VB_OPT_Q, VB_OPT_K, VB_OPT_V, VB_OPT_O, VB_OPT_FC1, VB_OPT_FC2, VB_OPT_N_LINEAR };
void vb_opt_layer_linear(const vb_opt_config *c, int l, int which, vb_opt_linear_desc *d);

/* project_in [hidden, E] and project_out [E, hidden] (E = word_embed_proj_dim);
 * the model has them only when E != hidden. */
enum { VB_OPT_PROJECT_IN, VB_OPT_PROJECT_OUT };
void vb_opt_projection(const vb_opt_config *c, int which, vb_opt_linear_desc *d);

/* Whether the checkpoint has its own lm_head (otherwise the head is embed_tokens). */
int vb_opt_has_lm_head(vb_weights *w);

/* embed_tokens [vocab, E] and embed_positions [max_positions + 2, hidden]. */
int vb_opt_load_embeddings(vb_weights *w, const vb_opt_config *c, const float **embed,
                           const float **pos);
/* The final layer norm [hidden]; both stay NULL when the model is post-LN or has none. */
int vb_opt_load_final_norm(vb_weights *w, const vb_opt_config *c, const float **weight,
                           const float **bias);
/* Layer l's self_attn_layer_norm and final_layer_norm [hidden]: ln[0..3] receive
 * the attention norm's weight and bias, then the feed-forward norm's. */
int vb_opt_load_layer_norms(vb_weights *w, const vb_opt_config *c, int l, const float **ln[4]);

#endif
