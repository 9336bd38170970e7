/* Fine-tuning VideoBLIP's Q-Former, query tokens and language projection
 * with the vision encoder and the language model frozen (as VideoBLIP was
 * trained on Ego4D narrations). Internal interfaces of src/train/. */
#ifndef VBLIP_TRAIN_TRAIN_H
#define VBLIP_TRAIN_TRAIN_H

#include <stdint.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "train/train_ops.h"

/* ---- trainable parameters (params.c) ---- */

typedef struct {
  char *name; /* transformers' tensor name */
  int ndim;
  int64_t shape[3];
  size_t n;
  float *data, *grad, *m, *v; /* owned; m/v: AdamW moments */
  int decay;                  /* weight decay applies (not a bias or LayerNorm parameter) */
} tr_param;

typedef struct {
  tr_param *p;
  int n, cap;
} tr_params;

/* The Trainer's rule: no weight decay for a name containing "bias" or a parameter of a
 * LayerNorm module (the Q-Former's "layernorm" and "LayerNorm" modules). */
int tr_param_decays(const char *name);
/* Registers a trainable tensor initialised from the checkpoint (shape checked);
 * gives its data and gradient buffers (stable for the table's lifetime). */
int tr_params_add(tr_params *ps, vb_weights *w, const char *name, float **data, float **grad,
                  int ndim, int64_t d0, int64_t d1, int64_t d2);
/* "<prefix>.weight" [out, in] and "<prefix>.bias" [out] as a trainable layer. */
int tr_params_linear(tr_params *ps, vb_weights *w, const char *prefix, int out, int in, tr_lin *l);
tr_param *tr_params_find(const tr_params *ps, const char *name);
void tr_params_zero_grad(tr_params *ps);
void tr_params_free(tr_params *ps);

/* ---- AdamW (adamw.c), torch.optim.AdamW semantics ---- */

typedef struct {
  double lr, beta1, beta2, eps, weight_decay;
} tr_adamw;

/* One step (t counts from 1) over every parameter with its gradient. */
void tr_adamw_step(const tr_adamw *o, tr_params *ps, int64_t t);
/* torch.nn.utils.clip_grad_norm_: total = L2 norm of the per-tensor L2 norms; every
 * gradient times min(1, max_norm / (total + 1e-6)); returns total. max_norm 0: no-op. */
double tr_clip_grad_norm(tr_params *ps, double max_norm);

/* ---- loss (loss.c) ---- */

/* Cross-entropy of logits [rows, V] against targets (-100 = ignored): returns the
 * summed loss (double) and *count the targets used. With grad_scale != 0 the logits
 * are replaced by grad_scale * (softmax - onehot) (zero rows where ignored). */
double tr_cross_entropy(float *logits, int rows, int V, const int32_t *targets, float grad_scale,
                        int *count);

/* ---- the Q-Former with trainable weights (qformer_train.c) ---- */

/* Dropout sites (tr_drop_site(ctx, p, TR_DROP_QFORMER, layer, site)), as Blip2QFormerModel's
 * train mode has them: the embeddings' LayerNorm output (layer 0); per layer the attention
 * probabilities (attention_probs_dropout_prob) and the output dense before the residual
 * LayerNorm (hidden_dropout_prob) of the self- and cross-attention, and the query FFN's
 * output dense before its residual LayerNorm (hidden_dropout_prob). */
enum {
  TR_QF_EMBEDDINGS = 0,
  TR_QF_SELF_PROBS = 1,
  TR_QF_SELF_OUT = 2,
  TR_QF_CROSS_PROBS = 3,
  TR_QF_CROSS_OUT = 4,
  TR_QF_FFN_OUT = 5
};

typedef struct tr_qformer tr_qformer;
int tr_qformer_create(tr_params *ps, vb_weights *w, const vb_qformer_config *cfg, int num_queries,
                      tr_qformer **out);
void tr_qformer_free(tr_qformer *q);
/* Forward over vision [n_vis, encoder_hidden] into out [Q, H], keeping the
 * activations until tr_qformer_backward or tr_qformer_release; drop NULL or off: eval mode. */
int tr_qformer_forward(tr_qformer *q, const float *vision, int n_vis, const tr_drop_ctx *drop,
                       float *out);
/* Accumulates parameter gradients from dout [Q, H] (of the last forward). */
int tr_qformer_backward(tr_qformer *q, const float *dout);
void tr_qformer_release(tr_qformer *q);

/* ---- frozen language models with a backward to their input embeddings ---- */

typedef struct tr_lm tr_lm;
struct tr_lm {
  vb_lm_kind kind;
  int embed_dim;
  /* Mean cross-entropy of one example whose input starts with n_prefix embeddings.
   * OPT: ids = prompt + target (+eos), labels same length (-100 = not scored), the
   *   logits of the last n_ids rows shifted by one predict labels[1..].
   * T5: ids = encoder prompt ids, labels = target ids; decoder input is labels
   *   shifted right behind decoder_start_token_id.
   * With dprefix, also writes d loss / d prefix [n_prefix, embed_dim]. drop NULL or off:
   * eval mode; on: the config's dropout (masks from drop->key), in the backward too. */
  int (*loss)(tr_lm *lm, const float *prefix, int n_prefix, const int32_t *ids, int n_ids,
              const int32_t *labels, int n_labels, const tr_drop_ctx *drop, double *loss,
              float *dprefix);
  void (*destroy)(tr_lm *lm);
};

/* OPT's sites (TR_DROP_OPT, layer, site), as OPTDecoderLayer 4.33 has them: the attention
 * probabilities (attention_dropout), the out_proj output and the fc2 output before their
 * residual adds (dropout). OPTDecoder drops nothing on the embeddings, and
 * activation_dropout is unused by the layer. */
enum { TR_OPT_PROBS = 0, TR_OPT_ATTN_OUT = 1, TR_OPT_FC2_OUT = 2 };
/* T5's sites (TR_DROP_T5_ENCODER / _DECODER, layer, site), all dropout_rate: the stack's
 * input embeddings and its final norm's output (layer 0), per layer the self- and
 * cross-attention probabilities and outputs before the residual add, the FFN's hidden
 * activations before wo and its output before the residual add. */
enum {
  TR_T5_EMBEDDINGS = 0,
  TR_T5_FINAL = 1,
  TR_T5_SELF_PROBS = 2,
  TR_T5_SELF_OUT = 3,
  TR_T5_CROSS_PROBS = 4,
  TR_T5_CROSS_OUT = 5,
  TR_T5_FF_HIDDEN = 6,
  TR_T5_FF_OUT = 7
};

int tr_opt_create(vb_weights *w, const vb_model_config *c, tr_lm **out);
int tr_t5_create(vb_weights *w, const vb_model_config *c, tr_lm **out);

#endif
