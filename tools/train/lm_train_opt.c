/* Frozen OPT (OPTForCausalLM, pre-LN) for training the modules below it:
 * forward over [prefix embeddings; token embeddings] keeping activations, the
 * shifted cross-entropy of Blip2ForConditionalGeneration, and the backward to
 * the input embeddings. Same weights and names as models/opt.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "lm/opt_tensors.h"
#include "runtime/common.h"
#include "train/train.h"

#define I64(x) ((int64_t)(x))

typedef struct {
  tr_lin q, k, v, o, fc1, fc2;
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} opt_tl;

typedef struct {
  tr_lm base;
  vb_opt_config c;
  const float *embed, *pos, *head, *final_w, *final_b;
  int has_proj, relu;
  tr_lin pin, pout, head_lin; /* head_lin: logits = e head^T */
  opt_tl *layers;
} opt_t;

typedef struct {
  const float *x;
  float *h1, *m1, *r1, *q, *k, *v, *p, *c, *x1, *h2, *m2, *r2, *f, *g, *x2;
} opt_act;

static int frozen_linear(vb_weights *w, const vb_opt_linear_desc *d, int bias, tr_lin *l) {
  int out = d->out, in = d->in;
  char n[sizeof d->name + 8];
  memset(l, 0, sizeof *l);
  snprintf(n, sizeof n, "%s.weight", d->name);
  if (!(l->w = vb_weights_f32(w, n, 2, I64(out), I64(in)))) return -1;
  if (bias) {
    snprintf(n, sizeof n, "%s.bias", d->name);
    if (!(l->b = vb_weights_f32(w, n, 1, I64(out)))) return -1;
  }
  l->out = out;
  l->in = in;
  return w->compute == VB_COMPUTE_BF16 ? tr_lin_use_bf16(l) : 0;
}

#define ALLOC(p, n)                                                                                \
  do {                                                                                             \
    if (!((p) = tr_alloc(&ar, (n)))) goto done;                                                    \
  } while (0)

static int opt_loss(tr_lm *lm, const float *prefix, int n_prefix, const int32_t *ids, int n_ids,
                    const int32_t *labels, int n_labels, const tr_drop_ctx *drop, double *loss,
                    float *dprefix) {
  opt_t *m = (opt_t *)lm;
  const vb_opt_config *c = &m->c;
  int Hd = c->hidden_size, E = c->word_embed_proj_dim, V = c->vocab_size, F = c->ffn_dim;
  int heads = c->num_attention_heads, hd = Hd / heads, NL = c->num_hidden_layers;
  int n = n_prefix + n_ids;
  if (n_labels != n_ids)
    return vb_error("OPT training: %d labels for %d input ids", n_labels, n_ids);
  if (n > c->max_position_embeddings)
    return vb_error("OPT training: %d positions exceed the model's %d", n,
                    c->max_position_embeddings);
  for (int i = 0; i < n_ids; i++)
    if (ids[i] < 0 || ids[i] >= V) return vb_error("token id %d is outside the vocabulary", ids[i]);
  tr_arena ar = {0};
  opt_act *A = vb_calloc((size_t)NL, sizeof *A);
  int *rows = NULL;
  int32_t *tv = NULL;
  int rc = -1;
  if (!A) goto done;
  size_t nH = (size_t)n * Hd;
  float *emb, *x0, *hf, *mf, *rf, *e;
  ALLOC(emb, (size_t)n * E);
  ALLOC(x0, nH);
  if (n_prefix) memcpy(emb, prefix, (size_t)n_prefix * E * sizeof(float));
  for (int i = 0; i < n_ids; i++)
    memcpy(emb + (size_t)(n_prefix + i) * E, m->embed + (size_t)ids[i] * E,
           (size_t)E * sizeof(float));
  if (m->has_proj)
    tr_lin_fwd(&m->pin, emb, n, x0);
  else
    memcpy(x0, emb, nH * sizeof(float));
  for (int i = 0; i < n; i++)
    for (int j = 0; j < Hd; j++)
      x0[(size_t)i * Hd + j] += m->pos[(size_t)(i + 2) * Hd + j];
  tr_attn_shape sh = {.nq = n,
                      .nk = n,
                      .heads = heads,
                      .head_dim = hd,
                      .ld_q = Hd,
                      .ld_kv = Hd,
                      .ld_o = Hd,
                      .scale = 1.0f / sqrtf((float)hd),
                      .causal = 1};
  const float *x = x0;
  for (int l = 0; l < NL; l++) {
    const opt_tl *L = &m->layers[l];
    opt_act *a = &A[l];
    tr_drop d_attn = tr_drop_site(drop, c->dropout, TR_DROP_OPT, (unsigned)l, TR_OPT_ATTN_OUT);
    tr_drop d_fc2 = tr_drop_site(drop, c->dropout, TR_DROP_OPT, (unsigned)l, TR_OPT_FC2_OUT);
    sh.drop = tr_drop_site(drop, c->attention_dropout, TR_DROP_OPT, (unsigned)l, TR_OPT_PROBS);
    a->x = x;
    ALLOC(a->h1, nH);
    ALLOC(a->m1, n);
    ALLOC(a->r1, n);
    ALLOC(a->q, nH);
    ALLOC(a->k, nH);
    ALLOC(a->v, nH);
    ALLOC(a->c, nH);
    ALLOC(a->p, (size_t)heads * n * n);
    ALLOC(a->x1, nH);
    ALLOC(a->h2, nH);
    ALLOC(a->m2, n);
    ALLOC(a->r2, n);
    ALLOC(a->f, (size_t)n * F);
    ALLOC(a->g, (size_t)n * F);
    ALLOC(a->x2, nH);
    tr_layernorm_fwd(x, a->h1, n, Hd, L->ln1_w, L->ln1_b, 1e-5f, a->m1, a->r1);
    tr_lin_fwd(&L->q, a->h1, n, a->q);
    tr_lin_fwd(&L->k, a->h1, n, a->k);
    tr_lin_fwd(&L->v, a->h1, n, a->v);
    if (tr_attention_fwd(&sh, a->q, a->k, a->v, a->p, a->c)) goto done;
    tr_lin_fwd(&L->o, a->c, n, a->x1);
    tr_drop_apply(&d_attn, a->x1, nH, 0);
    for (size_t i = 0; i < nH; i++)
      a->x1[i] += x[i];
    tr_layernorm_fwd(a->x1, a->h2, n, Hd, L->ln2_w, L->ln2_b, 1e-5f, a->m2, a->r2);
    tr_lin_fwd(&L->fc1, a->h2, n, a->f);
    if (m->relu)
      tr_relu_fwd(a->f, a->g, (size_t)n * F);
    else
      tr_gelu_erf_fwd(a->f, a->g, (size_t)n * F);
    tr_lin_fwd(&L->fc2, a->g, n, a->x2);
    tr_drop_apply(&d_fc2, a->x2, nH, 0);
    for (size_t i = 0; i < nH; i++)
      a->x2[i] += a->x1[i];
    x = a->x2;
  }
  ALLOC(hf, nH);
  ALLOC(mf, n);
  ALLOC(rf, n);
  if (m->final_w)
    tr_layernorm_fwd(x, hf, n, Hd, m->final_w, m->final_b, 1e-5f, mf, rf);
  else
    memcpy(hf, x, nH * sizeof(float));
  if (m->has_proj) {
    ALLOC(e, (size_t)n * E);
    tr_lin_fwd(&m->pout, hf, n, e);
  } else {
    e = hf;
  }
  /* rows n_prefix + j (j < n_ids - 1) predict labels[j + 1] */
  int R = 0;
  rows = vb_malloc((size_t)n_ids * sizeof *rows);
  tv = vb_malloc((size_t)n_ids * sizeof *tv);
  if (!rows || !tv) goto done;
  for (int j = 0; j + 1 < n_ids; j++)
    if (labels[j + 1] != -100) {
      if (labels[j + 1] < 0 || labels[j + 1] >= V) {
        vb_error("label %d is outside the vocabulary", labels[j + 1]);
        goto done;
      }
      rows[R] = n_prefix + j;
      tv[R] = labels[j + 1];
      R++;
    }
  if (R == 0) {
    vb_error("OPT training: the example has no target tokens");
    goto done;
  }
  float *er, *logits;
  ALLOC(er, (size_t)R * E);
  ALLOC(logits, (size_t)R * V);
  for (int r = 0; r < R; r++)
    memcpy(er + (size_t)r * E, e + (size_t)rows[r] * E, (size_t)E * sizeof(float));
  tr_lin_fwd(&m->head_lin, er, R, logits);
  int count;
  double sum = tr_cross_entropy(logits, R, V, tv, dprefix ? 1.0f / (float)R : 0.0f, &count);
  *loss = sum / count;
  if (!dprefix) {
    rc = 0;
    goto done;
  }
  /* backward */
  float *de, *dhf, *dx, *dt, *dh, *dff;
  ALLOC(de, (size_t)n * E);
  if (tr_lin_bwd(&m->head_lin, NULL, logits, R, er, 0)) goto done;
  for (int r = 0; r < R; r++)
    memcpy(de + (size_t)rows[r] * E, er + (size_t)r * E, (size_t)E * sizeof(float));
  ALLOC(dhf, nH);
  ALLOC(dx, nH);
  ALLOC(dt, nH);
  ALLOC(dh, nH);
  ALLOC(dff, (size_t)n * F);
  if (m->has_proj) {
    if (tr_lin_bwd(&m->pout, hf, de, n, dhf, 0)) goto done;
  } else {
    memcpy(dhf, de, nH * sizeof(float));
  }
  if (m->final_w)
    tr_layernorm_bwd(x, dhf, n, Hd, m->final_w, mf, rf, dx, NULL, NULL);
  else
    memcpy(dx, dhf, nH * sizeof(float));
  float *dq = dh, *dk, *dv, *dc, *dd = NULL;
  ALLOC(dk, nH);
  ALLOC(dv, nH);
  ALLOC(dc, nH);
  if (drop && drop->on && c->dropout > 0) ALLOC(dd, nH); /* a gradient through a dropout */
  for (int l = NL - 1; l >= 0; l--) {
    const opt_tl *L = &m->layers[l];
    const opt_act *a = &A[l];
    tr_drop d_attn = tr_drop_site(drop, c->dropout, TR_DROP_OPT, (unsigned)l, TR_OPT_ATTN_OUT);
    tr_drop d_fc2 = tr_drop_site(drop, c->dropout, TR_DROP_OPT, (unsigned)l, TR_OPT_FC2_OUT);
    sh.drop = tr_drop_site(drop, c->attention_dropout, TR_DROP_OPT, (unsigned)l, TR_OPT_PROBS);
    /* x2 = x1 + dropout(fc2(act(fc1(LN2(x1))))) ; dx holds d x2 */
    const float *dy = dx;
    if (d_fc2.on) {
      memcpy(dd, dx, nH * sizeof(float));
      tr_drop_apply(&d_fc2, dd, nH, 0);
      dy = dd;
    }
    if (tr_lin_bwd(&L->fc2, a->g, dy, n, dff, 0)) goto done;
    if (m->relu)
      tr_relu_bwd(a->f, dff, dff, (size_t)n * F);
    else
      tr_gelu_erf_bwd(a->f, dff, dff, (size_t)n * F);
    if (tr_lin_bwd(&L->fc1, a->h2, dff, n, dh, 0)) goto done;
    tr_layernorm_bwd(a->x1, dh, n, Hd, L->ln2_w, a->m2, a->r2, dt, NULL, NULL);
    for (size_t i = 0; i < nH; i++)
      dx[i] += dt[i];
    /* x1 = x + dropout(o(attn(LN1(x)))) ; dx holds d x1 */
    dy = dx;
    if (d_attn.on) {
      memcpy(dd, dx, nH * sizeof(float));
      tr_drop_apply(&d_attn, dd, nH, 0);
      dy = dd;
    }
    if (tr_lin_bwd(&L->o, a->c, dy, n, dc, 0)) goto done;
    if (tr_attention_bwd(&sh, a->q, a->k, a->v, a->p, dc, dq, dk, dv)) goto done;
    if (tr_lin_bwd(&L->q, a->h1, dq, n, dt, 0)) goto done;
    if (tr_lin_bwd(&L->k, a->h1, dk, n, dt, 1)) goto done;
    if (tr_lin_bwd(&L->v, a->h1, dv, n, dt, 1)) goto done;
    tr_layernorm_bwd(a->x, dt, n, Hd, L->ln1_w, a->m1, a->r1, dh, NULL, NULL);
    for (size_t i = 0; i < nH; i++)
      dx[i] += dh[i];
  }
  /* positions are constants; back through project_in */
  if (m->has_proj) {
    float *demb;
    ALLOC(demb, (size_t)n * E);
    if (tr_lin_bwd(&m->pin, emb, dx, n, demb, 0)) goto done;
    memcpy(dprefix, demb, (size_t)n_prefix * E * sizeof(float));
  } else {
    memcpy(dprefix, dx, (size_t)n_prefix * E * sizeof(float));
  }
  rc = 0;
done:
  free(rows);
  free(tv);
  free(A);
  tr_arena_free(&ar);
  return rc;
}

static void opt_destroy(tr_lm *lm) {
  opt_t *m = (opt_t *)lm;
  if (!m) return;
  tr_lin_release(&m->pin);
  tr_lin_release(&m->pout);
  tr_lin_release(&m->head_lin);
  for (int l = 0; m->layers && l < m->c.num_hidden_layers; l++) {
    opt_tl *L = &m->layers[l];
    tr_lin *all[] = {&L->q, &L->k, &L->v, &L->o, &L->fc1, &L->fc2};
    for (int i = 0; i < 6; i++)
      tr_lin_release(all[i]);
  }
  free(m->layers);
  free(m);
}

int tr_opt_create(vb_weights *w, const vb_model_config *mc, tr_lm **out) {
  *out = NULL;
  const vb_opt_config *c = &mc->opt;
  if (!c->do_layer_norm_before)
    return vb_error("training supports pre-LayerNorm OPT models only (do_layer_norm_before)");
  opt_t *m = vb_calloc(1, sizeof *m);
  if (!m) return -1;
  m->c = *c;
  m->relu = c->activation_function[0] == 'r';
  int E = c->word_embed_proj_dim, V = c->vocab_size;
  if (vb_opt_load_embeddings(w, c, &m->embed, &m->pos)) goto fail;
  if (vb_opt_has_lm_head(w)) {
    if (!(m->head = vb_weights_f32(w, VB_OPT_LM_HEAD ".weight", 2, I64(V), I64(E)))) goto fail;
  } else {
    m->head = m->embed;
  }
  m->head_lin = (tr_lin){.w = m->head, .out = V, .in = E};
  if (w->compute == VB_COMPUTE_BF16 && tr_lin_use_bf16(&m->head_lin)) goto fail;
  m->has_proj = E != c->hidden_size;
  if (m->has_proj) {
    vb_opt_linear_desc pin, pout;
    vb_opt_projection(c, VB_OPT_PROJECT_IN, &pin);
    vb_opt_projection(c, VB_OPT_PROJECT_OUT, &pout);
    if (frozen_linear(w, &pin, 0, &m->pin) || frozen_linear(w, &pout, 0, &m->pout)) goto fail;
  }
  if (vb_opt_load_final_norm(w, c, &m->final_w, &m->final_b)) goto fail;
  m->layers = vb_calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
  if (!m->layers) goto fail;
  for (int l = 0; l < c->num_hidden_layers; l++) {
    opt_tl *L = &m->layers[l];
    tr_lin *dst[VB_OPT_N_LINEAR] = {
        [VB_OPT_Q] = &L->q, [VB_OPT_K] = &L->k,     [VB_OPT_V] = &L->v,
        [VB_OPT_O] = &L->o, [VB_OPT_FC1] = &L->fc1, [VB_OPT_FC2] = &L->fc2};
    for (int i = 0; i < VB_OPT_N_LINEAR; i++) {
      vb_opt_linear_desc d;
      vb_opt_layer_linear(c, l, i, &d);
      if (frozen_linear(w, &d, c->enable_bias, dst[i])) goto fail;
    }
    const float **ln[4] = {&L->ln1_w, &L->ln1_b, &L->ln2_w, &L->ln2_b};
    if (vb_opt_load_layer_norms(w, c, l, ln)) goto fail;
  }
  m->base.kind = VB_LM_OPT;
  m->base.embed_dim = E;
  m->base.loss = opt_loss;
  m->base.destroy = opt_destroy;
  *out = &m->base;
  return 0;
fail:
  vb_error_context("loading OPT for training");
  opt_destroy(&m->base);
  return -1;
}
