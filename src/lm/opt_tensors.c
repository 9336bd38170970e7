#include "lm/opt_tensors.h"

#include <stdio.h>

#define I64(x) ((int64_t)(x))

void vb_opt_layer_linear(const vb_opt_config *c, int l, int which, vb_opt_linear_desc *d) {
  int Hd = c->hidden_size, F = c->ffn_dim;
  static const char *const names[VB_OPT_N_LINEAR] = {[VB_OPT_Q] = "self_attn.q_proj",
                                                     [VB_OPT_K] = "self_attn.k_proj",
                                                     [VB_OPT_V] = "self_attn.v_proj",
                                                     [VB_OPT_O] = "self_attn.out_proj",
                                                     [VB_OPT_FC1] = "fc1",
                                                     [VB_OPT_FC2] = "fc2"};
  snprintf(d->name, sizeof d->name, VB_OPT_DECODER ".layers.%d.%s", l, names[which]);
  d->out = which == VB_OPT_FC1 ? F : Hd;
  d->in = which == VB_OPT_FC2 ? F : Hd;
}

void vb_opt_projection(const vb_opt_config *c, int which, vb_opt_linear_desc *d) {
  int Hd = c->hidden_size, E = c->word_embed_proj_dim, in = which == VB_OPT_PROJECT_IN;
  snprintf(d->name, sizeof d->name, VB_OPT_DECODER ".%s", in ? "project_in" : "project_out");
  d->out = in ? Hd : E;
  d->in = in ? E : Hd;
}

int vb_opt_has_lm_head(vb_weights *w) {
  return vb_tt_find(&w->tt, VB_OPT_LM_HEAD ".weight") != NULL;
}

int vb_opt_load_embeddings(vb_weights *w, const vb_opt_config *c, const float **embed,
                           const float **pos) {
  if (!(*embed = vb_weights_f32(w, VB_OPT_DECODER ".embed_tokens.weight", 2, I64(c->vocab_size),
                                I64(c->word_embed_proj_dim))))
    return -1;
  if (!(*pos = vb_weights_f32(w, VB_OPT_DECODER ".embed_positions.weight", 2,
                              I64(c->max_position_embeddings + 2), I64(c->hidden_size))))
    return -1;
  return 0;
}

int vb_opt_load_final_norm(vb_weights *w, const vb_opt_config *c, const float **weight,
                           const float **bias) {
  static const char wn[] = VB_OPT_DECODER ".final_layer_norm.weight";
  if (!c->do_layer_norm_before || !vb_tt_find(&w->tt, wn)) return 0;
  if (!(*weight = vb_weights_f32(w, wn, 1, I64(c->hidden_size)))) return -1;
  if (!(*bias = vb_weights_f32(w, VB_OPT_DECODER ".final_layer_norm.bias", 1, I64(c->hidden_size))))
    return -1;
  return 0;
}

int vb_opt_load_layer_norms(vb_weights *w, const vb_opt_config *c, int l, const float **ln[4]) {
  static const char *const names[4] = {"self_attn_layer_norm.weight", "self_attn_layer_norm.bias",
                                       "final_layer_norm.weight", "final_layer_norm.bias"};
  char n[256];
  for (int i = 0; i < 4; i++) {
    snprintf(n, sizeof n, VB_OPT_DECODER ".layers.%d.%s", l, names[i]);
    if (!(*ln[i] = vb_weights_f32(w, n, 1, I64(c->hidden_size)))) return -1;
  }
  return 0;
}
