#include "vision/qformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

#define I64(x) ((int64_t)(x))

static int load_attention(vb_weights *w, const char *prefix, int H, int kv_in, vb_qf_attention *a) {
  char n[256];
  snprintf(n, sizeof n, "%s.attention.query", prefix);
  if (vb_weights_linear_vision(w, n, H, H, 1, VB_I8_QFORMER, &a->q)) return -1;
  snprintf(n, sizeof n, "%s.attention.key", prefix);
  if (vb_weights_linear_vision(w, n, H, kv_in, 1, VB_I8_QFORMER, &a->k)) return -1;
  snprintf(n, sizeof n, "%s.attention.value", prefix);
  if (vb_weights_linear_vision(w, n, H, kv_in, 1, VB_I8_QFORMER, &a->v)) return -1;
  snprintf(n, sizeof n, "%s.output.dense", prefix);
  if (vb_weights_linear_vision(w, n, H, H, 1, VB_I8_QFORMER, &a->out)) return -1;
  snprintf(n, sizeof n, "%s.output.LayerNorm.weight", prefix);
  if (!(a->ln_w = vb_weights_f32(w, n, 1, I64(H)))) return -1;
  snprintf(n, sizeof n, "%s.output.LayerNorm.bias", prefix);
  if (!(a->ln_b = vb_weights_f32(w, n, 1, I64(H)))) return -1;
  return 0;
}

static void release_attention(vb_qf_attention *a) {
  vb_linear_release(&a->q);
  vb_linear_release(&a->k);
  vb_linear_release(&a->v);
  vb_linear_release(&a->out);
}

int vb_qformer_init(vb_qformer *q, vb_weights *w, const vb_qformer_config *cfg, int num_queries) {
  memset(q, 0, sizeof *q);
  pthread_mutex_init(&q->ws_mu, NULL);
  q->cfg = *cfg;
  q->num_queries = num_queries;
  int H = cfg->hidden_size, F = cfg->intermediate_size;
  if (strcmp(cfg->hidden_act, "gelu") != 0)
    return vb_error("qformer hidden_act %s is not supported (gelu)", cfg->hidden_act);
  q->query_tokens = vb_weights_f32(w, "query_tokens", 3, I64(1), I64(num_queries), I64(H));
  q->ln_w = vb_weights_f32(w, "qformer.layernorm.weight", 1, I64(H));
  q->ln_b = vb_weights_f32(w, "qformer.layernorm.bias", 1, I64(H));
  if (!q->query_tokens || !q->ln_w || !q->ln_b) return -1;
  q->layers = vb_calloc((size_t)cfg->num_hidden_layers, sizeof *q->layers);
  if (!q->layers) return -1;
  for (int i = 0; i < cfg->num_hidden_layers; i++) {
    vb_qf_layer *L = &q->layers[i];
    char p[160], n[220];
    snprintf(p, sizeof p, "qformer.encoder.layer.%d", i);
    snprintf(n, sizeof n, "%s.attention", p);
    if (load_attention(w, n, H, H, &L->self_attn)) return -1;
    L->has_cross = i % cfg->cross_attention_frequency == 0;
    if (L->has_cross) {
      snprintf(n, sizeof n, "%s.crossattention", p);
      if (load_attention(w, n, H, cfg->encoder_hidden_size, &L->cross_attn)) return -1;
    }
    snprintf(n, sizeof n, "%s.intermediate_query.dense", p);
    if (vb_weights_linear_vision(w, n, F, H, 1, VB_I8_QFORMER, &L->inter)) return -1;
    snprintf(n, sizeof n, "%s.output_query.dense", p);
    if (vb_weights_linear_vision(w, n, H, F, 1, VB_I8_QFORMER, &L->output)) return -1;
    snprintf(n, sizeof n, "%s.output_query.LayerNorm.weight", p);
    if (!(L->out_ln_w = vb_weights_f32(w, n, 1, I64(H)))) return -1;
    snprintf(n, sizeof n, "%s.output_query.LayerNorm.bias", p);
    if (!(L->out_ln_b = vb_weights_f32(w, n, 1, I64(H)))) return -1;
  }
  return 0;
}

void vb_qformer_free(vb_qformer *q) {
  if (q->layers)
    for (int i = 0; i < q->cfg.num_hidden_layers; i++) {
      release_attention(&q->layers[i].self_attn);
      if (q->layers[i].has_cross) release_attention(&q->layers[i].cross_attn);
      vb_linear_release(&q->layers[i].inter);
      vb_linear_release(&q->layers[i].output);
    }
  free(q->layers);
  vb_free_aligned(q->ws);
  pthread_mutex_destroy(&q->ws_mu);
  memset(q, 0, sizeof *q);
}

/* h = LN(h + dense(attention(q=h, kv=src))) — BERT's post-LN attention block. */
static int attention_block(const vb_qf_attention *a, const vb_qformer_config *c, float *h, int nq,
                           const float *src, int nk, float *qb, float *kb, float *vb, float *ctx,
                           float *tmp) {
  int H = c->hidden_size, heads = c->num_attention_heads, hd = H / heads;
  if (vb_linear_forward(&a->q, h, nq, qb) != 0) return -1;
  if (vb_linear_forward(&a->k, src, nk, kb) != 0) return -1;
  if (vb_linear_forward(&a->v, src, nk, vb) != 0) return -1;
  if (vb_attention(qb, H, kb, vb, H, ctx, H, nq, nk, heads, hd, 1.0f / sqrtf((float)hd), NULL, 0,
                   0) != 0)
    return -1;
  if (vb_linear_forward(&a->out, ctx, nq, tmp) != 0) return -1;
  vb_add(tmp, h, (size_t)nq * H);
  vb_layernorm(tmp, h, nq, H, a->ln_w, a->ln_b, c->layer_norm_eps);
  return 0;
}

int vb_qformer_forward(vb_qformer *q, const float *vision, int n_vis, float *out) {
  const vb_qformer_config *c = &q->cfg;
  int H = c->hidden_size, F = c->intermediate_size, Q = q->num_queries;
  size_t nk_max = (size_t)(n_vis > Q ? n_vis : Q);
  /* one workspace: qb | kb | vb | ctx | tmp | tmp2 */
  size_t sizes[6] = {(size_t)Q * H, nk_max * H, nk_max * H, (size_t)Q * H, (size_t)Q * (F > H ? F : H),
                     (size_t)Q * H};
  float *bufs[6];
  pthread_mutex_lock(&q->ws_mu);
  int rc = -1;
  if (vb_scratch_carve(&q->ws, &q->ws_cap, sizes, 6, bufs) != 0) goto done;
  float *qb = bufs[0], *kb = bufs[1], *vb = bufs[2], *ctx = bufs[3], *tmp = bufs[4], *tmp2 = bufs[5];
  vb_layernorm(q->query_tokens, out, Q, H, q->ln_w, q->ln_b, c->layer_norm_eps);
  for (int l = 0; l < c->num_hidden_layers; l++) {
    const vb_qf_layer *L = &q->layers[l];
    if (attention_block(&L->self_attn, c, out, Q, out, Q, qb, kb, vb, ctx, tmp) != 0) goto done;
    if (L->has_cross &&
        attention_block(&L->cross_attn, c, out, Q, vision, n_vis, qb, kb, vb, ctx, tmp) != 0)
      goto done;
    if (vb_linear_forward_gelu(&L->inter, out, Q, tmp) != 0) goto done;
    if (vb_linear_forward(&L->output, tmp, Q, tmp2) != 0) goto done;
    vb_add(tmp2, out, (size_t)Q * H);
    vb_layernorm(tmp2, out, Q, H, L->out_ln_w, L->out_ln_b, c->layer_norm_eps);
  }
  rc = 0;
done:
  pthread_mutex_unlock(&q->ws_mu);
  return rc;
}
