#include "lm/t5_tensors.h"

#include <stdio.h>

#define LM VB_T5_LM

int vb_t5_load_block(vb_weights *w, const vb_t5_config *c, const char *stack, int i, int decoder,
                     vb_t5_linear_fn linear, void *const lin[VB_T5_N_LINEAR],
                     const float **const norm[VB_T5_N_NORM]) {
  static const char *const attn[2] = {"SelfAttention", "EncDecAttention"};
  int d = c->d_model, inner = c->num_heads * c->d_kv, dff = c->d_ff;
  char p[200], n[300];
  snprintf(p, sizeof p, LM "%s.block.%d.layer", stack, i);
  /* sub-layer 0 is self-attention, the decoder's 1 cross-attention, the last the feed-forward */
  for (int s = 0; s <= (decoder ? 1 : 0); s++) {
    for (int j = 0; j < 4; j++) {
      snprintf(n, sizeof n, "%s.%d.%s.%c", p, s, attn[s], "qkvo"[j]);
      int is_o = j == 3;
      if (linear(w, n, is_o ? d : inner, is_o ? inner : d, lin[VB_T5_SELF_Q + 4 * s + j]))
        return -1;
    }
    snprintf(n, sizeof n, "%s.%d.layer_norm.weight", p, s);
    if (!(*norm[VB_T5_LN_SELF + s] = vb_weights_f32(w, n, 1, (int64_t)d))) return -1;
  }
  int ff = decoder ? 2 : 1;
  snprintf(n, sizeof n, "%s.%d.layer_norm.weight", p, ff);
  if (!(*norm[VB_T5_LN_FF] = vb_weights_f32(w, n, 1, (int64_t)d))) return -1;
  if (c->gated) {
    snprintf(n, sizeof n, "%s.%d.DenseReluDense.wi_0", p, ff);
    if (linear(w, n, dff, d, lin[VB_T5_WI0])) return -1;
    snprintf(n, sizeof n, "%s.%d.DenseReluDense.wi_1", p, ff);
    if (linear(w, n, dff, d, lin[VB_T5_WI1])) return -1;
  } else {
    snprintf(n, sizeof n, "%s.%d.DenseReluDense.wi", p, ff);
    if (linear(w, n, dff, d, lin[VB_T5_WI0])) return -1;
  }
  snprintf(n, sizeof n, "%s.%d.DenseReluDense.wo", p, ff);
  return linear(w, n, d, dff, lin[VB_T5_WO]);
}

const float *vb_t5_load_embedding(vb_weights *w, const vb_t5_config *c, const char *own) {
  const char *name = vb_tt_find(&w->tt, own) ? own : LM "shared.weight";
  return vb_weights_f32(w, name, 2, (int64_t)c->vocab_size, (int64_t)c->d_model);
}

int vb_t5_load_stacks(vb_weights *w, const vb_t5_config *c, const float **enc_embed,
                      const float **dec_embed, const float **enc_rel, const float **dec_rel,
                      const float **enc_ln, const float **dec_ln) {
  int64_t nb = c->relative_attention_num_buckets, heads = c->num_heads, d = c->d_model;
  if (!(*enc_embed = vb_t5_load_embedding(w, c, LM "encoder.embed_tokens.weight")) ||
      !(*dec_embed = vb_t5_load_embedding(w, c, LM "decoder.embed_tokens.weight")) ||
      !(*enc_rel = vb_weights_f32(
            w, LM "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2, nb,
            heads)) ||
      !(*dec_rel = vb_weights_f32(
            w, LM "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 2, nb,
            heads)) ||
      !(*enc_ln = vb_weights_f32(w, LM "encoder.final_layer_norm.weight", 1, d)) ||
      !(*dec_ln = vb_weights_f32(w, LM "decoder.final_layer_norm.weight", 1, d)))
    return -1;
  return 0;
}
