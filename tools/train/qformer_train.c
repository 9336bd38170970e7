/* The Q-Former (Blip2QFormerModel, query part only) with trainable weights:
 * forward keeping activations, explicit backward. Mirrors models/qformer.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "train/train.h"

typedef struct {
  tr_lin q, k, v, o;
  float *ln_w, *ln_b, *g_ln_w, *g_ln_b;
} qf_attn;

typedef struct {
  qf_attn self, cross;
  int has_cross;
  tr_lin inter, output;
  float *ln_w, *ln_b, *g_ln_w, *g_ln_b;
} qf_layer;

/* Saved activations of one post-LN block: out = LN(x + f(x)). */
typedef struct {
  const float *x;           /* block input (owned elsewhere) */
  float *q, *k, *v, *p, *c; /* attention: projections, probabilities, context */
  float *a, *g;             /* feed-forward: pre- and post-activation */
  float *s, *mean, *rstd;   /* residual sum and its LayerNorm statistics */
  float *out;
} qf_act;

typedef struct {
  qf_act self, cross, ffn;
} qf_layer_act;

struct tr_qformer {
  vb_qformer_config cfg;
  int Q, H, F;
  float *query, *g_query, *ln_w, *ln_b, *g_ln_w, *g_ln_b;
  qf_layer *layers;
  /* last forward */
  tr_arena ar;
  const float *vision;
  int n_vis;
  float *h0, *mean0, *rstd0;
  qf_layer_act *act;
  tr_drop_ctx drop; /* the forward's dropout (the backward regenerates its masks) */
};

static int load_attn(tr_params *ps, vb_weights *w, const char *prefix, int H, int kv_in,
                     qf_attn *a) {
  char n[256];
  snprintf(n, sizeof n, "%s.attention.query", prefix);
  if (tr_params_linear(ps, w, n, H, H, &a->q)) return -1;
  snprintf(n, sizeof n, "%s.attention.key", prefix);
  if (tr_params_linear(ps, w, n, H, kv_in, &a->k)) return -1;
  snprintf(n, sizeof n, "%s.attention.value", prefix);
  if (tr_params_linear(ps, w, n, H, kv_in, &a->v)) return -1;
  snprintf(n, sizeof n, "%s.output.dense", prefix);
  if (tr_params_linear(ps, w, n, H, H, &a->o)) return -1;
  snprintf(n, sizeof n, "%s.output.LayerNorm.weight", prefix);
  if (tr_params_add(ps, w, n, &a->ln_w, &a->g_ln_w, 1, H, 0, 0)) return -1;
  snprintf(n, sizeof n, "%s.output.LayerNorm.bias", prefix);
  if (tr_params_add(ps, w, n, &a->ln_b, &a->g_ln_b, 1, H, 0, 0)) return -1;
  return 0;
}

int tr_qformer_create(tr_params *ps, vb_weights *w, const vb_qformer_config *cfg, int num_queries,
                      tr_qformer **out) {
  *out = NULL;
  if (strcmp(cfg->hidden_act, "gelu") != 0)
    return vb_error("qformer hidden_act %s is not supported (gelu)", cfg->hidden_act);
  tr_qformer *q = vb_calloc(1, sizeof *q);
  if (!q) return -1;
  q->cfg = *cfg;
  q->Q = num_queries;
  q->H = cfg->hidden_size;
  q->F = cfg->intermediate_size;
  int H = q->H;
  if (tr_params_add(ps, w, "query_tokens", &q->query, &q->g_query, 3, 1, num_queries, H) ||
      tr_params_add(ps, w, "qformer.layernorm.weight", &q->ln_w, &q->g_ln_w, 1, H, 0, 0) ||
      tr_params_add(ps, w, "qformer.layernorm.bias", &q->ln_b, &q->g_ln_b, 1, H, 0, 0))
    goto fail;
  q->layers = vb_calloc((size_t)cfg->num_hidden_layers, sizeof *q->layers);
  if (!q->layers) goto fail;
  for (int i = 0; i < cfg->num_hidden_layers; i++) {
    qf_layer *L = &q->layers[i];
    char p[160], n[220];
    snprintf(p, sizeof p, "qformer.encoder.layer.%d", i);
    snprintf(n, sizeof n, "%s.attention", p);
    if (load_attn(ps, w, n, H, H, &L->self)) goto fail;
    L->has_cross = i % cfg->cross_attention_frequency == 0;
    if (L->has_cross) {
      snprintf(n, sizeof n, "%s.crossattention", p);
      if (load_attn(ps, w, n, H, cfg->encoder_hidden_size, &L->cross)) goto fail;
    }
    snprintf(n, sizeof n, "%s.intermediate_query.dense", p);
    if (tr_params_linear(ps, w, n, q->F, H, &L->inter)) goto fail;
    snprintf(n, sizeof n, "%s.output_query.dense", p);
    if (tr_params_linear(ps, w, n, H, q->F, &L->output)) goto fail;
    snprintf(n, sizeof n, "%s.output_query.LayerNorm.weight", p);
    if (tr_params_add(ps, w, n, &L->ln_w, &L->g_ln_w, 1, H, 0, 0)) goto fail;
    snprintf(n, sizeof n, "%s.output_query.LayerNorm.bias", p);
    if (tr_params_add(ps, w, n, &L->ln_b, &L->g_ln_b, 1, H, 0, 0)) goto fail;
  }
  *out = q;
  return 0;
fail:
  tr_qformer_free(q);
  return -1;
}

void tr_qformer_release(tr_qformer *q) {
  tr_arena_free(&q->ar);
  free(q->act);
  q->act = NULL;
}

void tr_qformer_free(tr_qformer *q) {
  if (!q) return;
  tr_qformer_release(q);
  free(q->layers);
  free(q);
}

#define ALLOC(p, n)                                                                                \
  do {                                                                                             \
    if (!((p) = tr_alloc(&q->ar, (n)))) return -1;                                                 \
  } while (0)

/* Dropout site of layer l (TR_QF_* in train.h). */
static tr_drop site(const tr_qformer *q, int l, unsigned which) {
  float p = which == TR_QF_SELF_PROBS || which == TR_QF_CROSS_PROBS
                ? q->cfg.attention_probs_dropout_prob
                : q->cfg.hidden_dropout_prob;
  return tr_drop_site(&q->drop, p, TR_DROP_QFORMER, (unsigned)l, which);
}

static tr_attn_shape attn_shape(const tr_qformer *q, int nk, int l, int cross) {
  int heads = q->cfg.num_attention_heads, hd = q->H / heads;
  tr_attn_shape s = {.nq = q->Q,
                     .nk = nk,
                     .heads = heads,
                     .head_dim = hd,
                     .ld_q = q->H,
                     .ld_kv = q->H,
                     .ld_o = q->H,
                     .scale = 1.0f / sqrtf((float)hd),
                     .drop = site(q, l, cross ? TR_QF_CROSS_PROBS : TR_QF_SELF_PROBS)};
  return s;
}

/* out = LN(x + dropout(dense(attention(q = x, kv = src)))) in layer l */
static int attn_fwd(tr_qformer *q, const qf_attn *A, const float *x, const float *src, int nk,
                    int l, int cross, qf_act *a) {
  int Q = q->Q, H = q->H;
  a->x = x;
  ALLOC(a->q, (size_t)Q * H);
  ALLOC(a->k, (size_t)nk * H);
  ALLOC(a->v, (size_t)nk * H);
  ALLOC(a->c, (size_t)Q * H);
  ALLOC(a->s, (size_t)Q * H);
  ALLOC(a->out, (size_t)Q * H);
  ALLOC(a->mean, Q);
  ALLOC(a->rstd, Q);
  tr_attn_shape sh = attn_shape(q, nk, l, cross);
  ALLOC(a->p, (size_t)sh.heads * Q * nk);
  tr_lin_fwd(&A->q, x, Q, a->q);
  tr_lin_fwd(&A->k, src, nk, a->k);
  tr_lin_fwd(&A->v, src, nk, a->v);
  if (tr_attention_fwd(&sh, a->q, a->k, a->v, a->p, a->c)) return -1;
  tr_lin_fwd(&A->o, a->c, Q, a->s);
  tr_drop d = site(q, l, cross ? TR_QF_CROSS_OUT : TR_QF_SELF_OUT);
  tr_drop_apply(&d, a->s, (size_t)Q * H, 0);
  for (size_t i = 0; i < (size_t)Q * H; i++)
    a->s[i] += x[i];
  tr_layernorm_fwd(a->s, a->out, Q, H, A->ln_w, A->ln_b, q->cfg.layer_norm_eps, a->mean, a->rstd);
  return 0;
}

/* dx = d/dx given dout; src_is_x: self-attention (K/V from x too). */
static int attn_bwd(tr_qformer *q, const qf_attn *A, const qf_act *a, const float *src, int nk,
                    int src_is_x, int l, const float *dout, float *dx) {
  int Q = q->Q, H = q->H;
  size_t QH = (size_t)Q * H;
  float *ds = vb_malloc(QH * sizeof(float)), *dc = vb_malloc(QH * sizeof(float));
  float *dq = vb_malloc(QH * sizeof(float));
  float *dk = vb_malloc((size_t)nk * H * sizeof(float)),
        *dv = vb_malloc((size_t)nk * H * sizeof(float));
  int rc = -1;
  if (!ds || !dc || !dq || !dk || !dv) goto done;
  tr_layernorm_bwd(a->s, dout, Q, H, A->ln_w, a->mean, a->rstd, ds, A->g_ln_w, A->g_ln_b);
  memcpy(dx, ds, QH * sizeof(float)); /* residual */
  tr_drop d = site(q, l, src_is_x ? TR_QF_SELF_OUT : TR_QF_CROSS_OUT);
  tr_drop_apply(&d, ds, QH, 0);
  if (tr_lin_bwd(&A->o, a->c, ds, Q, dc, 0)) goto done;
  tr_attn_shape sh = attn_shape(q, nk, l, !src_is_x);
  if (tr_attention_bwd(&sh, a->q, a->k, a->v, a->p, dc, dq, dk, dv)) goto done;
  if (tr_lin_bwd(&A->q, a->x, dq, Q, dx, 1)) goto done;
  if (tr_lin_bwd(&A->k, src, dk, nk, src_is_x ? dx : NULL, 1)) goto done;
  if (tr_lin_bwd(&A->v, src, dv, nk, src_is_x ? dx : NULL, 1)) goto done;
  rc = 0;
done:
  free(ds);
  free(dc);
  free(dq);
  free(dk);
  free(dv);
  return rc;
}

static int ffn_fwd(tr_qformer *q, const qf_layer *L, const float *x, int l, qf_act *a) {
  int Q = q->Q, H = q->H, F = q->F;
  a->x = x;
  ALLOC(a->a, (size_t)Q * F);
  ALLOC(a->g, (size_t)Q * F);
  ALLOC(a->s, (size_t)Q * H);
  ALLOC(a->out, (size_t)Q * H);
  ALLOC(a->mean, Q);
  ALLOC(a->rstd, Q);
  tr_lin_fwd(&L->inter, x, Q, a->a);
  tr_gelu_erf_fwd(a->a, a->g, (size_t)Q * F);
  tr_lin_fwd(&L->output, a->g, Q, a->s);
  tr_drop d = site(q, l, TR_QF_FFN_OUT);
  tr_drop_apply(&d, a->s, (size_t)Q * H, 0);
  for (size_t i = 0; i < (size_t)Q * H; i++)
    a->s[i] += x[i];
  tr_layernorm_fwd(a->s, a->out, Q, H, L->ln_w, L->ln_b, q->cfg.layer_norm_eps, a->mean, a->rstd);
  return 0;
}

static int ffn_bwd(tr_qformer *q, const qf_layer *L, const qf_act *a, int l, const float *dout,
                   float *dx) {
  int Q = q->Q, H = q->H, F = q->F;
  float *ds = vb_malloc((size_t)Q * H * sizeof(float)),
        *dg = vb_malloc((size_t)Q * F * sizeof(float));
  int rc = -1;
  if (!ds || !dg) goto done;
  tr_layernorm_bwd(a->s, dout, Q, H, L->ln_w, a->mean, a->rstd, ds, L->g_ln_w, L->g_ln_b);
  memcpy(dx, ds, (size_t)Q * H * sizeof(float));
  tr_drop d = site(q, l, TR_QF_FFN_OUT);
  tr_drop_apply(&d, ds, (size_t)Q * H, 0);
  if (tr_lin_bwd(&L->output, a->g, ds, Q, dg, 0)) goto done;
  tr_gelu_erf_bwd(a->a, dg, dg, (size_t)Q * F);
  if (tr_lin_bwd(&L->inter, a->x, dg, Q, dx, 1)) goto done;
  rc = 0;
done:
  free(ds);
  free(dg);
  return rc;
}

int tr_qformer_forward(tr_qformer *q, const float *vision, int n_vis, const tr_drop_ctx *drop,
                       float *out) {
  tr_qformer_release(q);
  q->drop = drop ? *drop : (tr_drop_ctx){0};
  int Q = q->Q, H = q->H, NL = q->cfg.num_hidden_layers;
  q->vision = vision;
  q->n_vis = n_vis;
  q->act = vb_calloc((size_t)NL, sizeof *q->act);
  if (!q->act) return -1;
  ALLOC(q->h0, (size_t)Q * H);
  ALLOC(q->mean0, Q);
  ALLOC(q->rstd0, Q);
  tr_layernorm_fwd(q->query, q->h0, Q, H, q->ln_w, q->ln_b, q->cfg.layer_norm_eps, q->mean0,
                   q->rstd0);
  tr_drop d0 = site(q, 0, TR_QF_EMBEDDINGS);
  tr_drop_apply(&d0, q->h0, (size_t)Q * H, 0);
  const float *h = q->h0;
  for (int l = 0; l < NL; l++) {
    const qf_layer *L = &q->layers[l];
    qf_layer_act *A = &q->act[l];
    if (attn_fwd(q, &L->self, h, h, Q, l, 0, &A->self)) return -1;
    h = A->self.out;
    if (L->has_cross) {
      if (attn_fwd(q, &L->cross, h, vision, n_vis, l, 1, &A->cross)) return -1;
      h = A->cross.out;
    }
    if (ffn_fwd(q, L, h, l, &A->ffn)) return -1;
    h = A->ffn.out;
  }
  memcpy(out, h, (size_t)Q * H * sizeof(float));
  return 0;
}

int tr_qformer_backward(tr_qformer *q, const float *dout) {
  if (!q->act) return vb_error("qformer backward without a forward");
  int Q = q->Q, H = q->H;
  size_t QH = (size_t)Q * H;
  float *d = vb_malloc(QH * sizeof(float)), *dn = vb_malloc(QH * sizeof(float));
  int rc = -1;
  if (!d || !dn) goto done;
  memcpy(d, dout, QH * sizeof(float));
  for (int l = q->cfg.num_hidden_layers - 1; l >= 0; l--) {
    const qf_layer *L = &q->layers[l];
    const qf_layer_act *A = &q->act[l];
    float *t;
    if (ffn_bwd(q, L, &A->ffn, l, d, dn)) goto done;
    t = d, d = dn, dn = t;
    if (L->has_cross) {
      if (attn_bwd(q, &L->cross, &A->cross, q->vision, q->n_vis, 0, l, d, dn)) goto done;
      t = d, d = dn, dn = t;
    }
    if (attn_bwd(q, &L->self, &A->self, A->self.x, Q, 1, l, d, dn)) goto done;
    t = d, d = dn, dn = t;
  }
  tr_drop d0 = site(q, 0, TR_QF_EMBEDDINGS);
  tr_drop_apply(&d0, d, QH, 0);
  tr_layernorm_bwd(q->query, d, Q, H, q->ln_w, q->mean0, q->rstd0, dn, q->g_ln_w, q->g_ln_b);
  for (size_t i = 0; i < QH; i++)
    q->g_query[i] += dn[i];
  rc = 0;
done:
  free(d);
  free(dn);
  return rc;
}
