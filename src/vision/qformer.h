/* The Q-Former (Blip2QFormerModel): learned queries cross-attending to the
 * vision tokens of every frame. */
#ifndef VBLIP_MODELS_QFORMER_H
#define VBLIP_MODELS_QFORMER_H

#include <pthread.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"

typedef struct {
  vb_linear q, k, v, out;
  const float *ln_w, *ln_b;
} vb_qf_attention;

typedef struct {
  vb_qf_attention self_attn;
  int has_cross;
  vb_qf_attention cross_attn; /* k/v take encoder_hidden_size inputs */
  vb_linear inter, output;
  const float *out_ln_w, *out_ln_b;
} vb_qf_layer;

typedef struct {
  vb_qformer_config cfg;
  int num_queries;
  const float *query_tokens; /* [Q, H] */
  const float *ln_w, *ln_b;
  vb_qf_layer *layers;
  /* activation buffers kept between calls, as in vit.h */
  pthread_mutex_t ws_mu;
  void *ws;
  size_t ws_cap;
} vb_qformer;

int vb_qformer_init(vb_qformer *q, vb_weights *w, const vb_qformer_config *cfg, int num_queries);
void vb_qformer_free(vb_qformer *q);
/* vision (n_vis, encoder_hidden) -> out (Q, H). */
int vb_qformer_forward(vb_qformer *q, const float *vision, int n_vis, float *out);

#endif
