/* Frozen T5 (T5ForConditionalGeneration) for training the modules below it:
 * encoder over [prefix embeddings; prompt embeddings], decoder over the labels
 * shifted right, mean cross-entropy, and the backward to the encoder input
 * embeddings (through the encoder and every decoder layer's cross-attention
 * K/V). Same weights and names as models/t5.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "lm/t5_tensors.h"
#include "runtime/common.h"
#include "train/train.h"

#define LM VB_T5_LM

typedef enum { T_RELU, T_GELU_TANH, T_GELU_ERF } t_act;

typedef struct {
  tr_lin q, k, v, o;
} t_attn;

typedef struct {
  const float *ln_self, *ln_cross, *ln_ff;
  t_attn self, cross;
  tr_lin wi0, wi1, wo;
} t_block;

typedef struct {
  tr_lm base;
  vb_t5_config c;
  int d, inner, heads, dkv, dff, vocab, n_enc, n_dec;
  int32_t start_id, pad_id;
  t_act act;
  float eps, head_scale;
  const float *enc_embed, *dec_embed, *enc_rel, *dec_rel, *enc_ln, *dec_ln, *head;
  tr_lin head_lin; /* logits = y head^T */
  t_block *enc, *dec;
} t5t;

/* Saved activations of one pre-norm sublayer: out = x + f(rms(x)). */
typedef struct {
  const float *x;
  float *h, *r;             /* normed input, its rstd */
  float *q, *k, *v, *p, *c; /* attention */
  float *a0, *g0, *a1, *pr; /* feed-forward */
  float *out;
} t_sub;

typedef struct {
  t_sub self, cross, ff;
} t_layer_act;

/* ---- relative position buckets (transformers' _relative_position_bucket) ---- */

static int bucket(int rel, int bidirectional, int nb, int max_distance) {
  int base = 0, n;
  if (bidirectional) {
    nb /= 2;
    if (rel > 0) base = nb;
    n = abs(rel);
  } else {
    n = rel < 0 ? -rel : 0;
  }
  int exact = nb / 2;
  if (n < exact) return base + n;
  /* float32 like PyTorch: boundary distances depend on the rounding */
  float v = logf((float)n / (float)exact) / (float)log((double)max_distance / exact) *
            (float)(nb - exact);
  int large = exact + (int)v;
  if (v >= (float)nb || large > nb - 1) large = nb - 1;
  return base + large;
}

static void make_bias(const t5t *m, const float *table, int bidirectional, int n, float *bias) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int b = bucket(j - i, bidirectional, m->c.relative_attention_num_buckets,
                     m->c.relative_attention_max_distance);
      for (int h = 0; h < m->heads; h++)
        bias[((size_t)h * n + i) * n + j] = table[(size_t)b * m->heads + h];
    }
}

#define ALLOC(p, n)                                                                                \
  do {                                                                                             \
    if (!((p) = tr_alloc(ar, (n)))) return -1;                                                     \
  } while (0)

/* A sublayer's output gradient through its output dropout's mask, in a copy (the residual
 * takes dout as it is); dout itself without dropout; NULL when memory runs out. */
static const float *masked_grad(tr_arena *ar, const tr_drop *out, const float *dout, size_t n) {
  if (!out->on) return dout;
  float *t = tr_alloc(ar, n);
  if (!t) return NULL;
  memcpy(t, dout, n * sizeof(float));
  tr_drop_apply(out, t, n, 0);
  return t;
}

/* The dropout sites of one sublayer. */
typedef struct {
  tr_drop probs, out, hidden;
} t_drops;

static t_drops sub_drops(const t5t *m, const tr_drop_ctx *c, unsigned module, int l, unsigned probs,
                         unsigned out, unsigned hidden) {
  float p = m->c.dropout_rate;
  t_drops d = {tr_drop_site(c, p, module, (unsigned)l, probs),
               tr_drop_site(c, p, module, (unsigned)l, out),
               tr_drop_site(c, p, module, (unsigned)l, hidden)};
  return d;
}

static t_drops self_drops(const t5t *m, const tr_drop_ctx *c, unsigned module, int l) {
  return sub_drops(m, c, module, l, TR_T5_SELF_PROBS, TR_T5_SELF_OUT, 0xffff);
}
static t_drops cross_drops(const t5t *m, const tr_drop_ctx *c, int l) {
  return sub_drops(m, c, TR_DROP_T5_DECODER, l, TR_T5_CROSS_PROBS, TR_T5_CROSS_OUT, 0xffff);
}
static t_drops ff_drops(const t5t *m, const tr_drop_ctx *c, unsigned module, int l) {
  return sub_drops(m, c, module, l, 0xffff, TR_T5_FF_OUT, TR_T5_FF_HIDDEN);
}

static tr_attn_shape shape(const t5t *m, int nq, int nk, const float *bias, int causal) {
  tr_attn_shape s = {.nq = nq,
                     .nk = nk,
                     .heads = m->heads,
                     .head_dim = m->dkv,
                     .ld_q = m->inner,
                     .ld_kv = m->inner,
                     .ld_o = m->inner,
                     .scale = 1.0f,
                     .bias = bias,
                     .causal = causal};
  return s;
}

/* self-attention (kv = NULL) or cross-attention over kv [nk, d] */
static int attn_fwd(tr_arena *ar, const t5t *m, const t_attn *A, const float *ln, const float *x,
                    int n, const float *kv, int nk, const float *bias, int causal,
                    const t_drops *dr, t_sub *s) {
  int d = m->d, in = m->inner;
  if (!kv) nk = n;
  s->x = x;
  ALLOC(s->h, (size_t)n * d);
  ALLOC(s->r, n);
  ALLOC(s->q, (size_t)n * in);
  ALLOC(s->k, (size_t)nk * in);
  ALLOC(s->v, (size_t)nk * in);
  ALLOC(s->p, (size_t)m->heads * n * nk);
  ALLOC(s->c, (size_t)n * in);
  ALLOC(s->out, (size_t)n * d);
  tr_rmsnorm_fwd(x, s->h, n, d, ln, m->eps, s->r);
  tr_lin_fwd(&A->q, s->h, n, s->q);
  tr_lin_fwd(&A->k, kv ? kv : s->h, nk, s->k);
  tr_lin_fwd(&A->v, kv ? kv : s->h, nk, s->v);
  tr_attn_shape sh = shape(m, n, nk, bias, causal);
  sh.drop = dr->probs;
  if (tr_attention_fwd(&sh, s->q, s->k, s->v, s->p, s->c)) return -1;
  tr_lin_fwd(&A->o, s->c, n, s->out);
  tr_drop_apply(&dr->out, s->out, (size_t)n * d, 0);
  for (size_t i = 0; i < (size_t)n * d; i++)
    s->out[i] += x[i];
  return 0;
}

/* dx = dout + d/dx through the sublayer; denc += d/dkv for cross-attention */
static int attn_bwd(tr_arena *ar, const t5t *m, const t_attn *A, const float *ln, const t_sub *s,
                    int n, const float *kv, int nk, const float *bias, int causal,
                    const t_drops *dr, const float *dout, float *dx, float *denc) {
  int d = m->d, in = m->inner;
  if (!kv) nk = n;
  float *dc, *dq, *dk, *dv, *dh;
  ALLOC(dc, (size_t)n * in);
  ALLOC(dq, (size_t)n * in);
  ALLOC(dk, (size_t)nk * in);
  ALLOC(dv, (size_t)nk * in);
  ALLOC(dh, (size_t)n * d);
  const float *dy = masked_grad(ar, &dr->out, dout, (size_t)n * d);
  if (!dy) return -1;
  if (tr_lin_bwd(&A->o, s->c, dy, n, dc, 0)) return -1;
  tr_attn_shape sh = shape(m, n, nk, bias, causal);
  sh.drop = dr->probs;
  if (tr_attention_bwd(&sh, s->q, s->k, s->v, s->p, dc, dq, dk, dv)) return -1;
  if (tr_lin_bwd(&A->q, s->h, dq, n, dh, 0)) return -1;
  if (kv) {
    if (tr_lin_bwd(&A->k, kv, dk, nk, denc, 1) || tr_lin_bwd(&A->v, kv, dv, nk, denc, 1)) return -1;
  } else {
    if (tr_lin_bwd(&A->k, s->h, dk, n, dh, 1) || tr_lin_bwd(&A->v, s->h, dv, n, dh, 1)) return -1;
  }
  tr_rmsnorm_bwd(s->x, dh, n, d, ln, s->r, dx);
  for (size_t i = 0; i < (size_t)n * d; i++)
    dx[i] += dout[i];
  return 0;
}

static void act_fwd(const t5t *m, const float *x, float *y, size_t n) {
  if (m->act == T_RELU)
    tr_relu_fwd(x, y, n);
  else if (m->act == T_GELU_TANH)
    tr_gelu_tanh_fwd(x, y, n);
  else
    tr_gelu_erf_fwd(x, y, n);
}

static void act_bwd(const t5t *m, const float *x, const float *dy, float *dx, size_t n) {
  if (m->act == T_RELU)
    tr_relu_bwd(x, dy, dx, n);
  else if (m->act == T_GELU_TANH)
    tr_gelu_tanh_bwd(x, dy, dx, n);
  else
    tr_gelu_erf_bwd(x, dy, dx, n);
}

static int ff_fwd(tr_arena *ar, const t5t *m, const t_block *b, const float *x, int n,
                  const t_drops *dr, t_sub *s) {
  int d = m->d;
  size_t nf = (size_t)n * m->dff;
  s->x = x;
  ALLOC(s->h, (size_t)n * d);
  ALLOC(s->r, n);
  ALLOC(s->a0, nf);
  ALLOC(s->g0, nf);
  ALLOC(s->pr, nf);
  ALLOC(s->out, (size_t)n * d);
  tr_rmsnorm_fwd(x, s->h, n, d, b->ln_ff, m->eps, s->r);
  tr_lin_fwd(&b->wi0, s->h, n, s->a0);
  act_fwd(m, s->a0, s->g0, nf);
  if (m->c.gated) {
    ALLOC(s->a1, nf);
    tr_lin_fwd(&b->wi1, s->h, n, s->a1);
    for (size_t i = 0; i < nf; i++)
      s->pr[i] = s->g0[i] * s->a1[i];
  } else {
    memcpy(s->pr, s->g0, nf * sizeof(float));
  }
  tr_drop_apply(&dr->hidden, s->pr, nf, 0);
  tr_lin_fwd(&b->wo, s->pr, n, s->out);
  tr_drop_apply(&dr->out, s->out, (size_t)n * d, 0);
  for (size_t i = 0; i < (size_t)n * d; i++)
    s->out[i] += x[i];
  return 0;
}

static int ff_bwd(tr_arena *ar, const t5t *m, const t_block *b, const t_sub *s, int n,
                  const t_drops *dr, const float *dout, float *dx) {
  int d = m->d;
  size_t nf = (size_t)n * m->dff;
  float *dpr, *da0, *dh;
  ALLOC(dpr, nf);
  ALLOC(da0, nf);
  ALLOC(dh, (size_t)n * d);
  const float *dy = masked_grad(ar, &dr->out, dout, (size_t)n * d);
  if (!dy) return -1;
  if (tr_lin_bwd(&b->wo, s->pr, dy, n, dpr, 0)) return -1;
  tr_drop_apply(&dr->hidden, dpr, nf, 0);
  if (m->c.gated) {
    float *da1;
    ALLOC(da1, nf);
    for (size_t i = 0; i < nf; i++) {
      da0[i] = dpr[i] * s->a1[i];
      da1[i] = dpr[i] * s->g0[i];
    }
    if (tr_lin_bwd(&b->wi1, s->h, da1, n, dh, 0)) return -1;
    act_bwd(m, s->a0, da0, da0, nf);
    if (tr_lin_bwd(&b->wi0, s->h, da0, n, dh, 1)) return -1;
  } else {
    act_bwd(m, s->a0, dpr, da0, nf);
    if (tr_lin_bwd(&b->wi0, s->h, da0, n, dh, 0)) return -1;
  }
  tr_rmsnorm_bwd(s->x, dh, n, d, b->ln_ff, s->r, dx);
  for (size_t i = 0; i < (size_t)n * d; i++)
    dx[i] += dout[i];
  return 0;
}

static int run(tr_arena *ar, t5t *m, const float *prefix, int np, const int32_t *ids, int n_ids,
               const int32_t *labels, int L, const tr_drop_ctx *drop, double *loss,
               float *dprefix) {
  const unsigned ENC = TR_DROP_T5_ENCODER, DEC = TR_DROP_T5_DECODER;
  const float p = m->c.dropout_rate;
  tr_drop enc_in = tr_drop_site(drop, p, ENC, 0, TR_T5_EMBEDDINGS);
  tr_drop enc_fin = tr_drop_site(drop, p, ENC, 0, TR_T5_FINAL);
  tr_drop dec_in = tr_drop_site(drop, p, DEC, 0, TR_T5_EMBEDDINGS);
  tr_drop dec_fin = tr_drop_site(drop, p, DEC, 0, TR_T5_FINAL);
  int d = m->d, V = m->vocab, ne = np + n_ids;
  if (ne < 1 || L < 1) return vb_error("T5 training: empty encoder input or labels");
  for (int i = 0; i < n_ids; i++)
    if (ids[i] < 0 || ids[i] >= V) return vb_error("token id %d is outside the vocabulary", ids[i]);
  for (int i = 0; i < L; i++)
    if (labels[i] != -100 && (labels[i] < 0 || labels[i] >= V))
      return vb_error("label %d is outside the vocabulary", labels[i]);
  t_layer_act *EA, *DA;
  if (!(EA = (t_layer_act *)tr_alloc(ar, (size_t)m->n_enc * sizeof *EA / sizeof(float) + 1)) ||
      !(DA = (t_layer_act *)tr_alloc(ar, (size_t)m->n_dec * sizeof *DA / sizeof(float) + 1)))
    return -1;
  float *x0, *ebias, *dbias, *enc, *er, *y0, *yh, *yr, *logits;
  ALLOC(x0, (size_t)ne * d);
  ALLOC(ebias, (size_t)m->heads * ne * ne);
  ALLOC(dbias, (size_t)m->heads * L * L);
  if (np) memcpy(x0, prefix, (size_t)np * d * sizeof(float));
  for (int i = 0; i < n_ids; i++)
    memcpy(x0 + (size_t)(np + i) * d, m->enc_embed + (size_t)ids[i] * d, (size_t)d * sizeof(float));
  make_bias(m, m->enc_rel, 1, ne, ebias);
  make_bias(m, m->dec_rel, 0, L, dbias);
  tr_drop_apply(&enc_in, x0, (size_t)ne * d, 0);
  const float *x = x0;
  for (int l = 0; l < m->n_enc; l++) {
    const t_block *b = &m->enc[l];
    t_drops sd = self_drops(m, drop, ENC, l), fd = ff_drops(m, drop, ENC, l);
    if (attn_fwd(ar, m, &b->self, b->ln_self, x, ne, NULL, 0, ebias, 0, &sd, &EA[l].self))
      return -1;
    if (ff_fwd(ar, m, b, EA[l].self.out, ne, &fd, &EA[l].ff)) return -1;
    x = EA[l].ff.out;
  }
  const float *xe = x;
  ALLOC(enc, (size_t)ne * d);
  ALLOC(er, ne);
  tr_rmsnorm_fwd(xe, enc, ne, d, m->enc_ln, m->eps, er);
  tr_drop_apply(&enc_fin, enc, (size_t)ne * d, 0);
  /* decoder input: labels shifted right, -100 replaced by the pad id */
  ALLOC(y0, (size_t)L * d);
  for (int i = 0; i < L; i++) {
    int32_t t = i == 0 ? m->start_id : labels[i - 1];
    if (t == -100) t = m->pad_id;
    memcpy(y0 + (size_t)i * d, m->dec_embed + (size_t)t * d, (size_t)d * sizeof(float));
  }
  tr_drop_apply(&dec_in, y0, (size_t)L * d, 0);
  const float *y = y0;
  for (int l = 0; l < m->n_dec; l++) {
    const t_block *b = &m->dec[l];
    t_drops sd = self_drops(m, drop, DEC, l), cd = cross_drops(m, drop, l),
            fd = ff_drops(m, drop, DEC, l);
    if (attn_fwd(ar, m, &b->self, b->ln_self, y, L, NULL, 0, dbias, 1, &sd, &DA[l].self)) return -1;
    if (attn_fwd(ar, m, &b->cross, b->ln_cross, DA[l].self.out, L, enc, ne, NULL, 0, &cd,
                 &DA[l].cross))
      return -1;
    if (ff_fwd(ar, m, b, DA[l].cross.out, L, &fd, &DA[l].ff)) return -1;
    y = DA[l].ff.out;
  }
  ALLOC(yh, (size_t)L * d);
  ALLOC(yr, L);
  ALLOC(logits, (size_t)L * V);
  tr_rmsnorm_fwd(y, yh, L, d, m->dec_ln, m->eps, yr);
  tr_drop_apply(&dec_fin, yh, (size_t)L * d, 0);
  if (m->head_scale != 1.0f)
    for (size_t i = 0; i < (size_t)L * d; i++)
      yh[i] *= m->head_scale;
  tr_lin_fwd(&m->head_lin, yh, L, logits);
  int count = 0;
  for (int i = 0; i < L; i++)
    count += labels[i] != -100;
  if (count == 0) return vb_error("T5 training: the example has no target tokens");
  double sum = tr_cross_entropy(logits, L, V, labels, dprefix ? 1.0f / (float)count : 0.0f, &count);
  *loss = sum / count;
  if (!dprefix) return 0;

  /* ---- backward ---- */
  float *dyh, *dy, *dy2, *denc, *dx, *dx2;
  ALLOC(dyh, (size_t)L * d);
  ALLOC(dy, (size_t)L * d);
  ALLOC(dy2, (size_t)L * d);
  ALLOC(denc, (size_t)ne * d);
  ALLOC(dx, (size_t)ne * d);
  ALLOC(dx2, (size_t)ne * d);
  if (tr_lin_bwd(&m->head_lin, NULL, logits, L, dyh, 0)) return -1;
  if (m->head_scale != 1.0f)
    for (size_t i = 0; i < (size_t)L * d; i++)
      dyh[i] *= m->head_scale;
  tr_drop_apply(&dec_fin, dyh, (size_t)L * d, 0);
  tr_rmsnorm_bwd(y, dyh, L, d, m->dec_ln, yr, dy);
  for (int l = m->n_dec - 1; l >= 0; l--) {
    const t_block *b = &m->dec[l];
    t_drops sd = self_drops(m, drop, DEC, l), cd = cross_drops(m, drop, l),
            fd = ff_drops(m, drop, DEC, l);
    if (ff_bwd(ar, m, b, &DA[l].ff, L, &fd, dy, dy2)) return -1;
    if (attn_bwd(ar, m, &b->cross, b->ln_cross, &DA[l].cross, L, enc, ne, NULL, 0, &cd, dy2, dy,
                 denc))
      return -1;
    if (attn_bwd(ar, m, &b->self, b->ln_self, &DA[l].self, L, NULL, 0, dbias, 1, &sd, dy, dy2,
                 NULL))
      return -1;
    float *t = dy;
    dy = dy2;
    dy2 = t;
  }
  tr_drop_apply(&enc_fin, denc, (size_t)ne * d, 0);
  tr_rmsnorm_bwd(xe, denc, ne, d, m->enc_ln, er, dx);
  for (int l = m->n_enc - 1; l >= 0; l--) {
    const t_block *b = &m->enc[l];
    t_drops sd = self_drops(m, drop, ENC, l), fd = ff_drops(m, drop, ENC, l);
    if (ff_bwd(ar, m, b, &EA[l].ff, ne, &fd, dx, dx2)) return -1;
    if (attn_bwd(ar, m, &b->self, b->ln_self, &EA[l].self, ne, NULL, 0, ebias, 0, &sd, dx2, dx,
                 NULL))
      return -1;
  }
  tr_drop_apply(&enc_in, dx, (size_t)np * d, 0); /* the prefix rows of the embeddings' mask */
  memcpy(dprefix, dx, (size_t)np * d * sizeof(float));
  return 0;
}

static int t5_loss(tr_lm *lm, const float *prefix, int n_prefix, const int32_t *ids, int n_ids,
                   const int32_t *labels, int n_labels, const tr_drop_ctx *drop, double *loss,
                   float *dprefix) {
  tr_arena ar = {0};
  int rc = run(&ar, (t5t *)lm, prefix, n_prefix, ids, n_ids, labels, n_labels, drop, loss, dprefix);
  tr_arena_free(&ar);
  return rc;
}

static void t5_destroy(tr_lm *lm) {
  t5t *m = (t5t *)lm;
  if (!m) return;
  tr_lin_release(&m->head_lin);
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < (k ? m->n_dec : m->n_enc) && (k ? m->dec : m->enc); i++) {
      t_block *b = k ? &m->dec[i] : &m->enc[i];
      tr_lin *all[] = {&b->self.q,  &b->self.k,  &b->self.v, &b->self.o, &b->cross.q, &b->cross.k,
                       &b->cross.v, &b->cross.o, &b->wi0,    &b->wi1,    &b->wo};
      for (int j = 0; j < 11; j++)
        tr_lin_release(all[j]);
    }
  free(m->enc);
  free(m->dec);
  free(m);
}

/* The frozen weight "<prefix>.weight" [out,in], as float32. */
static int bind_linear(vb_weights *w, const char *prefix, int out, int in, void *dst) {
  tr_lin *l = dst;
  char n[300];
  memset(l, 0, sizeof *l);
  snprintf(n, sizeof n, "%s.weight", prefix);
  if (!(l->w = vb_weights_f32(w, n, 2, (int64_t)out, (int64_t)in))) return -1;
  l->out = out;
  l->in = in;
  return w->compute == VB_COMPUTE_BF16 ? tr_lin_use_bf16(l) : 0;
}

static int load_block(vb_weights *w, const vb_t5_config *c, const char *stack, int i, int decoder,
                      t_block *b) {
  void *const lin[VB_T5_N_LINEAR] = {[VB_T5_SELF_Q] = &b->self.q,
                                     [VB_T5_SELF_K] = &b->self.k,
                                     [VB_T5_SELF_V] = &b->self.v,
                                     [VB_T5_SELF_O] = &b->self.o,
                                     [VB_T5_CROSS_Q] = &b->cross.q,
                                     [VB_T5_CROSS_K] = &b->cross.k,
                                     [VB_T5_CROSS_V] = &b->cross.v,
                                     [VB_T5_CROSS_O] = &b->cross.o,
                                     [VB_T5_WI0] = &b->wi0,
                                     [VB_T5_WI1] = &b->wi1,
                                     [VB_T5_WO] = &b->wo};
  const float **const norm[VB_T5_N_NORM] = {&b->ln_self, &b->ln_cross, &b->ln_ff};
  return vb_t5_load_block(w, c, stack, i, decoder, bind_linear, lin, norm);
}

int tr_t5_create(vb_weights *w, const vb_model_config *cfg, tr_lm **out) {
  *out = NULL;
  const vb_t5_config *c = &cfg->t5;
  t_act act;
  if (strcmp(c->dense_act, "relu") == 0)
    act = T_RELU;
  else if (strcmp(c->dense_act, "gelu_new") == 0)
    act = T_GELU_TANH;
  else if (strcmp(c->dense_act, "gelu") == 0)
    act = T_GELU_ERF;
  else
    return vb_error("T5 training: unsupported dense activation %s", c->dense_act);
  if (c->relative_attention_num_buckets < 4 || c->num_heads < 1 || c->d_kv < 1)
    return vb_error("T5 training: unsupported config");
  t5t *m = vb_calloc(1, sizeof *m);
  if (!m) return -1;
  m->c = *c;
  m->act = act;
  m->d = c->d_model;
  m->dkv = c->d_kv;
  m->heads = c->num_heads;
  m->inner = c->num_heads * c->d_kv;
  m->dff = c->d_ff;
  m->vocab = c->vocab_size;
  m->n_enc = c->num_layers;
  m->n_dec = c->num_decoder_layers;
  m->eps = c->layer_norm_epsilon;
  m->start_id = cfg->decoder_start_token_id;
  m->pad_id = cfg->pad_token_id >= 0 ? cfg->pad_token_id : 0;
  if (m->start_id < 0 || m->start_id >= m->vocab || m->pad_id >= m->vocab) {
    free(m);
    return vb_error("T5 training: decoder start / pad id outside the vocabulary");
  }
  m->enc = vb_calloc((size_t)m->n_enc, sizeof *m->enc);
  m->dec = vb_calloc((size_t)m->n_dec, sizeof *m->dec);
  if (!m->enc || !m->dec) goto fail;
  if (vb_t5_load_stacks(w, c, &m->enc_embed, &m->dec_embed, &m->enc_rel, &m->dec_rel, &m->enc_ln,
                        &m->dec_ln))
    goto fail;
  for (int l = 0; l < m->n_enc; l++)
    if (load_block(w, c, "encoder", l, 0, &m->enc[l])) goto fail;
  for (int l = 0; l < m->n_dec; l++)
    if (load_block(w, c, "decoder", l, 1, &m->dec[l])) goto fail;
  if (c->tie_word_embeddings) {
    m->head = vb_t5_load_embedding(w, c, LM "decoder.embed_tokens.weight");
    m->head_scale = (float)pow((double)m->d, -0.5);
  } else {
    m->head = vb_weights_f32(w, LM "lm_head.weight", 2, (int64_t)m->vocab, (int64_t)m->d);
    m->head_scale = 1.0f;
  }
  if (!m->head) goto fail;
  m->head_lin = (tr_lin){.w = m->head, .out = m->vocab, .in = m->d};
  if (w->compute == VB_COMPUTE_BF16 && tr_lin_use_bf16(&m->head_lin)) goto fail;
  m->base.kind = VB_LM_T5;
  m->base.embed_dim = m->d;
  m->base.loss = t5_loss;
  m->base.destroy = t5_destroy;
  *out = &m->base;
  return 0;
fail:
  vb_error_context("loading T5 for training");
  t5_destroy(&m->base);
  return -1;
}
