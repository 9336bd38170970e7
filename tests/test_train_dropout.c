/* Dropout in training (the Trainer's train mode): the masks' law and determinism, dropout
 * off (flag or probabilities 0) leaving the loss and gradients bit for bit as without the
 * feature, the train-mode forward of the Q-Former, projection and OPT or T5 against a
 * reference written here from the math with the masks drawn explicitly, finite differences
 * through the same masks (Q-Former and language model dropping, OPT and T5), one thread or
 * two training alike, vblip train keying each example of a step's window apart, and a run
 * stopped, saved and resumed drawing the masks an uninterrupted one draws. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "runtime/common.h"
#include "testutil.h"
#include "train/trainer.h"
#include "vblip_train.h"

#define OPT_TINY "models/videoblip-opt-tiny"
#define T5_TINY "models/videoblip-flant5-tiny"

/* ---- the masks ---- */

static size_t count_dropped(const tr_drop *d, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    k += !tr_drop_keep(d, i);
  return k;
}

static void mask_statistics(void) {
  const size_t n = (size_t)1 << 21;
  tr_drop_ctx c = {1, tr_drop_key(42, 7, 1, 3)};
  const float ps[] = {0.1f, 0.5f, 0.03f};
  for (int k = 0; k < 3; k++) {
    float p = ps[k];
    tr_drop d = tr_drop_site(&c, p, TR_DROP_QFORMER, 1, TR_QF_FFN_OUT);
    double frac = (double)count_dropped(&d, n) / (double)n;
    double sigma = sqrt(p * (1.0 - p) / (double)n);
    CHECK(fabs(frac - p) <= 5 * sigma, "p %.2f: %.5f dropped, 5 sigma = %.5f", p, frac, 5 * sigma);
    printf("p %.2f: dropped %.5f of %zu (|diff| %.2f sigma)\n", p, frac, n, fabs(frac - p) / sigma);
  }
  /* the same key: the same mask; another step, micro-batch, example, seed, layer or site: an
   * independent one (disagreement 2p(1-p), joint drops p^2) */
  const float p = 0.1f;
  tr_drop base = tr_drop_site(&c, p, TR_DROP_QFORMER, 1, TR_QF_FFN_OUT);
  tr_drop again = tr_drop_site(&(tr_drop_ctx){1, tr_drop_key(42, 7, 1, 3)}, p, TR_DROP_QFORMER, 1,
                               TR_QF_FFN_OUT);
  size_t same = 0;
  for (size_t i = 0; i < n; i++)
    same += tr_drop_keep(&base, i) == tr_drop_keep(&again, i);
  CHECK(same == n, "the same key draws the same mask (%zu of %zu agree)", same, n);
  struct {
    const char *what;
    tr_drop d;
  } other[] = {
      {"step", tr_drop_site(&(tr_drop_ctx){1, tr_drop_key(42, 8, 1, 3)}, p, TR_DROP_QFORMER, 1,
                            TR_QF_FFN_OUT)},
      {"micro-batch", tr_drop_site(&(tr_drop_ctx){1, tr_drop_key(42, 7, 2, 3)}, p, TR_DROP_QFORMER,
                                   1, TR_QF_FFN_OUT)},
      {"example", tr_drop_site(&(tr_drop_ctx){1, tr_drop_key(42, 7, 1, 4)}, p, TR_DROP_QFORMER, 1,
                               TR_QF_FFN_OUT)},
      {"seed", tr_drop_site(&(tr_drop_ctx){1, tr_drop_key(43, 7, 1, 3)}, p, TR_DROP_QFORMER, 1,
                            TR_QF_FFN_OUT)},
      {"layer", tr_drop_site(&c, p, TR_DROP_QFORMER, 0, TR_QF_FFN_OUT)},
      {"site", tr_drop_site(&c, p, TR_DROP_QFORMER, 1, TR_QF_SELF_OUT)},
      {"module", tr_drop_site(&c, p, TR_DROP_OPT, 1, TR_QF_FFN_OUT)},
  };
  for (size_t k = 0; k < sizeof other / sizeof other[0]; k++) {
    size_t differ = 0, both = 0;
    for (size_t i = 0; i < n; i++) {
      int a = tr_drop_keep(&base, i), b = tr_drop_keep(&other[k].d, i);
      differ += a != b;
      both += !a && !b;
    }
    double fd = (double)differ / (double)n, fb = (double)both / (double)n;
    double want_d = 2 * p * (1 - p), want_b = (double)p * p;
    CHECK(fabs(fd - want_d) <= 5 * sqrt(want_d * (1 - want_d) / (double)n) &&
              fabs(fb - want_b) <= 5 * sqrt(want_b * (1 - want_b) / (double)n),
          "another %s: masks differ at %.5f (want %.5f), both drop %.5f (want %.5f)", other[k].what,
          fd, want_d, fb, want_b);
  }
  /* neighbours (drawn from one hash) independent: both dropped p^2 of the time */
  size_t pairs = 0;
  for (size_t i = 0; i + 1 < n; i++)
    pairs += !tr_drop_keep(&base, i) && !tr_drop_keep(&base, i + 1);
  double fp = (double)pairs / (double)(n - 1), want_p = (double)p * p;
  CHECK(fabs(fp - want_p) <= 5 * sqrt(want_p * (1 - want_p) / (double)n),
        "neighbours both dropped %.5f of the time, want %.5f", fp, want_p);
  /* off: probability 0 or the context off (eval mode) */
  tr_drop z = tr_drop_site(&c, 0.0f, TR_DROP_QFORMER, 1, TR_QF_FFN_OUT);
  tr_drop e = tr_drop_site(&(tr_drop_ctx){0, c.key}, p, TR_DROP_QFORMER, 1, TR_QF_FFN_OUT);
  CHECK(!z.on && !e.on && !tr_drop_site(NULL, p, 1, 1, 1).on, "probability 0 or eval: no site");

  /* applying: kept values times 1/(1-p), dropped ones 0; the same with 1 or 2 threads, and
   * an offset continues the element index */
  size_t m = (size_t)1 << 18;
  float *x1 = malloc(m * sizeof(float)), *x2 = malloc(m * sizeof(float));
  float *x3 = malloc(m * sizeof(float));
  tu_rng r = {99};
  for (size_t i = 0; i < m; i++)
    x1[i] = x2[i] = x3[i] = tu_frand(&r) + 2.0f;
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  tr_drop_apply(&base, x1, m, 0);
  omp_set_num_threads(2);
  tr_drop_apply(&base, x2, m, 0);
  omp_set_num_threads(threads);
  /* in three pieces with odd lengths and offsets (the draws come in pairs of elements) */
  tr_drop_apply(&base, x3, 12345, 0);
  tr_drop_apply(&base, x3 + 12345, 777, 12345);
  tr_drop_apply(&base, x3 + 13122, m - 13122, 13122);
  CHECK(memcmp(x1, x2, m * sizeof(float)) == 0, "1 and 2 threads apply the same mask");
  CHECK(memcmp(x1, x3, m * sizeof(float)) == 0, "an offset continues the element index");
  size_t bad = 0;
  float scale = (float)(1.0 / (1.0 - (double)p));
  r = (tu_rng){99};
  for (size_t i = 0; i < m; i++) {
    float v = tu_frand(&r) + 2.0f;
    bad += x1[i] != (tr_drop_keep(&base, i) ? v * scale : 0.0f);
  }
  CHECK(bad == 0, "inverted dropout: %zu values are not x/(1-p) or 0", bad);
  free(x1);
  free(x2);
  free(x3);
}

/* ---- dropout off ---- */

static vblip_trainer *open_model(const char *dir, int dropout) {
  vblip_train_options o;
  vblip_train_options_default(&o);
  o.dropout = dropout;
  vblip_trainer *t = vblip_trainer_open(dir, &o);
  CHECK(t != NULL, "open %s: %s", dir, vblip_last_error());
  return t;
}

static vblip_train_example *random_example(vblip_trainer *t, uint64_t seed) {
  int S = vb_trainer_config(t)->vision.image_size;
  float *px = malloc(sizeof(float) * 3 * 2 * S * S);
  tu_rng r = {seed};
  for (int i = 0; i < 3 * 2 * S * S; i++)
    px[i] = 2.0f * tu_frand(&r);
  vblip_train_example *ex = NULL;
  CHECK_OK(vblip_trainer_example_pixels(t, px, 2, "A clip:", "someone cuts an onion", &ex));
  free(px);
  return ex;
}

/* A copy of a fixture model whose config.json sets every dropout probability to 0. */
static const char *zero_dropout_copy(const char *model, const char *name) {
  static char dir[2][700];
  char *out = dir[name[0] == 't'];
  snprintf(out, sizeof dir[0], "%s/%s", tu_tmpdir(), name);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/* %s/ && rm -f %s/pytorch_model.bin", out,
           tu_fixture(model), out, out);
  CHECK(system(cmd) == 0, "%s", cmd);
  char path[800], *text = NULL;
  snprintf(path, sizeof path, "%s/config.json", out);
  if (!CHECK(vb_read_file(path, 1 << 20, &text, NULL) == 0, "read %s", path)) return out;
  cJSON *j = cJSON_Parse(text);
  free(text);
  const char *keys[][2] = {{"qformer_config", "hidden_dropout_prob"},
                           {"qformer_config", "attention_probs_dropout_prob"},
                           {"text_config", "dropout"},
                           {"text_config", "attention_dropout"},
                           {"text_config", "dropout_rate"}};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    cJSON *sec = cJSON_GetObjectItem(j, keys[k][0]);
    cJSON_DeleteItemFromObject(sec, keys[k][1]);
    cJSON_AddNumberToObject(sec, keys[k][1], 0.0);
  }
  char *s = cJSON_Print(j);
  FILE *f = fopen(path, "w");
  CHECK(f && fputs(s, f) >= 0 && fclose(f) == 0, "write %s", path);
  free(s);
  cJSON_Delete(j);
  return out;
}

static int grads_equal(vblip_trainer *a, vblip_trainer *b) {
  tr_params *pa = vb_trainer_params(a), *pb = vb_trainer_params(b);
  if (pa->n != pb->n) return 0;
  for (int i = 0; i < pa->n; i++)
    if (memcmp(pa->p[i].grad, pb->p[i].grad, pa->p[i].n * sizeof(float))) return 0;
  return 1;
}

static double grad_rel_diff(vblip_trainer *a, vblip_trainer *b) {
  tr_params *pa = vb_trainer_params(a), *pb = vb_trainer_params(b);
  double num = 0, den = 0;
  for (int i = 0; i < pa->n && i < pb->n; i++)
    for (size_t j = 0; j < pa->p[i].n; j++) {
      double d = (double)pa->p[i].grad[j] - pb->p[i].grad[j];
      num += d * d;
      den += (double)pa->p[i].grad[j] * pa->p[i].grad[j];
    }
  return sqrt(num / (den > 0 ? den : 1));
}

/* --no-dropout (options.dropout = 0) and a config with every probability 0 give the same
 * loss and gradients bit for bit, and so does eval mode's loss; with the configs'
 * probabilities the loss and gradients move. */
static void dropout_off(const char *model, const char *copy_name) {
  const char *zero = zero_dropout_copy(model, copy_name);
  vblip_trainer *off = open_model(tu_fixture(model), 0), *zeroed = open_model(zero, 1);
  vblip_trainer *on = open_model(tu_fixture(model), 1);
  if (!off || !zeroed || !on) return;
  vblip_train_example *e[3] = {random_example(off, 5), random_example(zeroed, 5),
                               random_example(on, 5)};
  if (!e[0] || !e[1] || !e[2]) return;
  double l_off, l_zero, l_on, l_eval;
  vblip_trainer_set_dropout_position(zeroed, 1, 1);
  vblip_trainer_set_dropout_position(on, 1, 1);
  CHECK_OK(vblip_trainer_accumulate(off, e[0], 0.5, &l_off));
  CHECK_OK(vblip_trainer_accumulate(zeroed, e[1], 0.5, &l_zero));
  CHECK_OK(vblip_trainer_accumulate(on, e[2], 0.5, &l_on));
  CHECK_OK(vblip_trainer_loss(on, e[2], &l_eval));
  CHECK(memcmp(&l_off, &l_zero, sizeof l_off) == 0 && grads_equal(off, zeroed),
        "%s: --no-dropout and probabilities 0 agree bit for bit (loss %.9g vs %.9g)", model, l_off,
        l_zero);
  CHECK(memcmp(&l_off, &l_eval, sizeof l_off) == 0,
        "%s: dropout off is eval mode's loss (%.9g vs %.9g)", model, l_off, l_eval);
  double rel = grad_rel_diff(off, on);
  CHECK(l_on != l_off && rel > 1e-3,
        "%s: dropout on moves the loss (%.6f vs %.6f) and the "
        "gradients (rel L2 %.3g)",
        model, l_on, l_off, rel);
  printf("%s: loss off %.6f, on %.6f; gradients differ by %.3g (rel L2)\n", model, l_off, l_on,
         rel);
  for (int k = 0; k < 3; k++)
    vblip_train_example_free(e[k]);
  vblip_trainer_free(off);
  vblip_trainer_free(zeroed);
  vblip_trainer_free(on);
}

/* ---- the reference: Q-Former, projection and OPT from the math, masks drawn here ---- */

typedef struct {
  const tr_drop_ctx *c;
  unsigned module, layer, site;
  float p;
} ref_site;

/* The mask value of element i: 0, or 1/(1-p) when kept (1 without dropout). */
static double mval(const ref_site *s, size_t i) {
  tr_drop d = tr_drop_site(s->c, s->p, s->module, s->layer, s->site);
  if (!d.on) return 1.0;
  return tr_drop_keep(&d, i) ? 1.0 / (1.0 - (double)s->p) : 0.0;
}

static const float *param(vblip_trainer *t, const char *fmt, int l) {
  char name[256];
  snprintf(name, sizeof name, fmt, l);
  tr_param *p = tr_params_find(vb_trainer_params(t), name);
  CHECK(p != NULL, "parameter %s", name);
  return p ? p->data : NULL;
}

static const float *frozen(const vb_tensor_table *tt, const char *fmt, int l) {
  char name[256];
  snprintf(name, sizeof name, fmt, l);
  const vb_tensor_info *ti = vb_tt_find(tt, name);
  CHECK(ti != NULL && ti->dtype == VB_DT_F32, "tensor %s", name);
  return ti ? ti->data : NULL;
}

/* y[M, N] = x[M, K] W^T + b */
static void lin(const double *x, int M, int K, const float *w, const float *b, int N, double *y) {
  for (int i = 0; i < M; i++)
    for (int o = 0; o < N; o++) {
      double s = b ? b[o] : 0;
      for (int k = 0; k < K; k++)
        s += x[(size_t)i * K + k] * w[(size_t)o * K + k];
      y[(size_t)i * N + o] = s;
    }
}

static void layernorm(double *x, int M, int N, const float *w, const float *b, double eps) {
  for (int i = 0; i < M; i++) {
    double *r = x + (size_t)i * N, mu = 0, v = 0;
    for (int k = 0; k < N; k++)
      mu += r[k];
    mu /= N;
    for (int k = 0; k < N; k++)
      v += (r[k] - mu) * (r[k] - mu);
    double rs = 1 / sqrt(v / N + eps);
    for (int k = 0; k < N; k++)
      r[k] = (r[k] - mu) * rs * w[k] + b[k];
  }
}

static void apply_mask(double *x, size_t n, const ref_site *s) {
  for (size_t i = 0; i < n; i++)
    x[i] *= mval(s, i);
}

/* ctx[nq, H] = dropout(softmax(q k^T / sqrt(hd))) v per head; causal: key j <= query i */
static void attention(const double *q, const double *k, const double *v, int nq, int nk, int H,
                      int heads, int causal, const ref_site *probs, double *ctx) {
  int hd = H / heads;
  double *row = malloc((size_t)nk * sizeof *row);
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < nq; i++) {
      int lim = causal ? i + 1 : nk;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < lim; j++) {
        double s = 0;
        for (int c = 0; c < hd; c++)
          s += q[(size_t)i * H + h * hd + c] * k[(size_t)j * H + h * hd + c];
        row[j] = s / sqrt((double)hd);
        mx = fmax(mx, row[j]);
      }
      for (int j = 0; j < lim; j++)
        sum += (row[j] = exp(row[j] - mx));
      for (int j = 0; j < lim; j++)
        row[j] = row[j] / sum * mval(probs, ((size_t)h * nq + i) * nk + j);
      for (int c = 0; c < hd; c++) {
        double s = 0;
        for (int j = 0; j < lim; j++)
          s += row[j] * v[(size_t)j * H + h * hd + c];
        ctx[(size_t)i * H + h * hd + c] = s;
      }
    }
  free(row);
}

/* out = LN(x + dropout(dense(attention(x, src)))) */
static void qf_attn(vblip_trainer *t, const char *pre, int l, double *x, int Q, const double *src,
                    int nk, int kin, const tr_drop_ctx *c, unsigned s_probs, unsigned s_out) {
  const vb_qformer_config *cfg = &vb_trainer_config(t)->qformer;
  int H = cfg->hidden_size;
  char f[256];
  double *q = malloc(sizeof(double) * Q * H), *k = malloc(sizeof(double) * nk * H);
  double *v = malloc(sizeof(double) * nk * H), *ctx = malloc(sizeof(double) * Q * H);
  double *o = malloc(sizeof(double) * Q * H);
#define P(name)                                                                                    \
  (snprintf(f, sizeof f, "qformer.encoder.layer.%%d.%s.%s", pre, name), param(t, f, l))
  lin(x, Q, H, P("attention.query.weight"), P("attention.query.bias"), H, q);
  lin(src, nk, kin, P("attention.key.weight"), P("attention.key.bias"), H, k);
  lin(src, nk, kin, P("attention.value.weight"), P("attention.value.bias"), H, v);
  ref_site sp = {c, TR_DROP_QFORMER, (unsigned)l, s_probs, cfg->attention_probs_dropout_prob};
  ref_site so = {c, TR_DROP_QFORMER, (unsigned)l, s_out, cfg->hidden_dropout_prob};
  attention(q, k, v, Q, nk, H, cfg->num_attention_heads, 0, &sp, ctx);
  lin(ctx, Q, H, P("output.dense.weight"), P("output.dense.bias"), H, o);
  apply_mask(o, (size_t)Q * H, &so);
  for (int i = 0; i < Q * H; i++)
    x[i] += o[i];
  layernorm(x, Q, H, P("output.LayerNorm.weight"), P("output.LayerNorm.bias"), cfg->layer_norm_eps);
#undef P
  free(q);
  free(k);
  free(v);
  free(ctx);
  free(o);
}

/* The Q-Former's train-mode output [Q, H] over vision [nv, Hv], then the projection. */
static void ref_qformer(vblip_trainer *t, const float *vision, int nv, const tr_drop_ctx *c,
                        double *out, double *proj) {
  const vb_model_config *mc = vb_trainer_config(t);
  const vb_qformer_config *cfg = &mc->qformer;
  int Q = mc->num_query_tokens, H = cfg->hidden_size, F = cfg->intermediate_size,
      Hv = cfg->encoder_hidden_size;
  double *x = out, *vis = malloc(sizeof(double) * nv * Hv);
  double *a = malloc(sizeof(double) * Q * F), *o = malloc(sizeof(double) * Q * H);
  for (int i = 0; i < nv * Hv; i++)
    vis[i] = vision[i];
  const float *qt = param(t, "query_tokens", 0);
  for (int i = 0; i < Q * H; i++)
    x[i] = qt[i];
  layernorm(x, Q, H, param(t, "qformer.layernorm.weight", 0), param(t, "qformer.layernorm.bias", 0),
            cfg->layer_norm_eps);
  ref_site emb = {c, TR_DROP_QFORMER, 0, TR_QF_EMBEDDINGS, cfg->hidden_dropout_prob};
  apply_mask(x, (size_t)Q * H, &emb);
  for (int l = 0; l < cfg->num_hidden_layers; l++) {
    qf_attn(t, "attention", l, x, Q, x, Q, H, c, TR_QF_SELF_PROBS, TR_QF_SELF_OUT);
    if (l % cfg->cross_attention_frequency == 0)
      qf_attn(t, "crossattention", l, x, Q, vis, nv, Hv, c, TR_QF_CROSS_PROBS, TR_QF_CROSS_OUT);
    lin(x, Q, H, param(t, "qformer.encoder.layer.%d.intermediate_query.dense.weight", l),
        param(t, "qformer.encoder.layer.%d.intermediate_query.dense.bias", l), F, a);
    for (int i = 0; i < Q * F; i++)
      a[i] = 0.5 * a[i] * (1 + erf(a[i] / sqrt(2.0)));
    lin(a, Q, F, param(t, "qformer.encoder.layer.%d.output_query.dense.weight", l),
        param(t, "qformer.encoder.layer.%d.output_query.dense.bias", l), H, o);
    ref_site so = {c, TR_DROP_QFORMER, (unsigned)l, TR_QF_FFN_OUT, cfg->hidden_dropout_prob};
    apply_mask(o, (size_t)Q * H, &so);
    for (int i = 0; i < Q * H; i++)
      x[i] += o[i];
    layernorm(x, Q, H, param(t, "qformer.encoder.layer.%d.output_query.LayerNorm.weight", l),
              param(t, "qformer.encoder.layer.%d.output_query.LayerNorm.bias", l),
              cfg->layer_norm_eps);
  }
  lin(x, Q, H, param(t, "language_projection.weight", 0), param(t, "language_projection.bias", 0),
      mc->lm_hidden, proj);
  free(vis);
  free(a);
  free(o);
}

#define OPTP "language_model.model.decoder."

/* OPT's train-mode loss over [prefix; embed(ids)] (tiny OPT: no projections). */
static double ref_opt_loss(vblip_trainer *t, const vb_tensor_table *w, const double *prefix, int np,
                           const int32_t *ids, int n_ids, const int32_t *labels,
                           const tr_drop_ctx *c) {
  const vb_opt_config *oc = &vb_trainer_config(t)->opt;
  int H = oc->hidden_size, F = oc->ffn_dim, V = oc->vocab_size, n = np + n_ids;
  CHECK(oc->word_embed_proj_dim == H && oc->do_layer_norm_before,
        "the reference is for the tiny OPT");
  const float *embed = frozen(w, OPTP "embed_tokens.weight", 0),
              *pos = frozen(w, OPTP "embed_positions.weight", 0);
  double *x = malloc(sizeof(double) * n * H), *h = malloc(sizeof(double) * n * H);
  double *q = malloc(sizeof(double) * n * H), *k = malloc(sizeof(double) * n * H);
  double *v = malloc(sizeof(double) * n * H), *ctx = malloc(sizeof(double) * n * H);
  double *o = malloc(sizeof(double) * n * H), *f = malloc(sizeof(double) * n * F);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < H; j++)
      x[(size_t)i * H + j] =
          (i < np ? prefix[(size_t)i * H + j] : embed[(size_t)ids[i - np] * H + j]) +
          pos[(size_t)(i + 2) * H + j];
  for (int l = 0; l < oc->num_hidden_layers; l++) {
#define W(name) frozen(w, OPTP "layers.%d." name, l)
    memcpy(h, x, sizeof(double) * n * H);
    layernorm(h, n, H, W("self_attn_layer_norm.weight"), W("self_attn_layer_norm.bias"), 1e-5);
    lin(h, n, H, W("self_attn.q_proj.weight"), W("self_attn.q_proj.bias"), H, q);
    lin(h, n, H, W("self_attn.k_proj.weight"), W("self_attn.k_proj.bias"), H, k);
    lin(h, n, H, W("self_attn.v_proj.weight"), W("self_attn.v_proj.bias"), H, v);
    ref_site sp = {c, TR_DROP_OPT, (unsigned)l, TR_OPT_PROBS, oc->attention_dropout};
    attention(q, k, v, n, n, H, oc->num_attention_heads, 1, &sp, ctx);
    lin(ctx, n, H, W("self_attn.out_proj.weight"), W("self_attn.out_proj.bias"), H, o);
    ref_site so = {c, TR_DROP_OPT, (unsigned)l, TR_OPT_ATTN_OUT, oc->dropout};
    apply_mask(o, (size_t)n * H, &so);
    for (int i = 0; i < n * H; i++)
      x[i] += o[i];
    memcpy(h, x, sizeof(double) * n * H);
    layernorm(h, n, H, W("final_layer_norm.weight"), W("final_layer_norm.bias"), 1e-5);
    lin(h, n, H, W("fc1.weight"), W("fc1.bias"), F, f);
    for (int i = 0; i < n * F; i++)
      f[i] = f[i] > 0 ? f[i] : 0;
    lin(f, n, F, W("fc2.weight"), W("fc2.bias"), H, o);
    ref_site sf = {c, TR_DROP_OPT, (unsigned)l, TR_OPT_FC2_OUT, oc->dropout};
    apply_mask(o, (size_t)n * H, &sf);
    for (int i = 0; i < n * H; i++)
      x[i] += o[i];
#undef W
  }
  layernorm(x, n, H, frozen(w, OPTP "final_layer_norm.weight", 0),
            frozen(w, OPTP "final_layer_norm.bias", 0), 1e-5);
  double total = 0;
  int count = 0;
  double *logits = malloc(sizeof(double) * V);
  for (int j = 0; j + 1 < n_ids; j++) {
    if (labels[j + 1] == -100) continue;
    lin(x + (size_t)(np + j) * H, 1, H, embed, NULL, V, logits);
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; i++)
      mx = fmax(mx, logits[i]);
    for (int i = 0; i < V; i++)
      s += exp(logits[i] - mx);
    total += log(s) + mx - logits[labels[j + 1]];
    count++;
  }
  free(logits);
  free(x);
  free(h);
  free(q);
  free(k);
  free(v);
  free(ctx);
  free(o);
  free(f);
  return total / count;
}

/* ---- the reference T5 (T5ForConditionalGeneration's train mode, the tiny gated-GELU one) ---- */

#define T5P "language_model."

/* transformers' _relative_position_bucket for rel = key - query */
static int t5_bucket(int rel, int bidirectional, int nb, int max_distance) {
  int base = 0, n;
  if (bidirectional) {
    nb /= 2;
    base = rel > 0 ? nb : 0;
    n = abs(rel);
  } else {
    n = rel < 0 ? -rel : 0;
  }
  int exact = nb / 2;
  if (n < exact) return base + n;
  int large =
      exact + (int)(log((double)n / exact) / log((double)max_distance / exact) * (nb - exact));
  return base + (large < nb - 1 ? large : nb - 1);
}

static void rmsnorm(double *x, int M, int N, const float *w, double eps) {
  for (int i = 0; i < M; i++) {
    double *r = x + (size_t)i * N, s = 0;
    for (int k = 0; k < N; k++)
      s += r[k] * r[k];
    double rs = 1 / sqrt(s / N + eps);
    for (int k = 0; k < N; k++)
      r[k] = w[k] * (r[k] * rs);
  }
}

/* T5 attention of x [n, d] over kv [nk, d] (bias: the relative table or NULL), unscaled
 * scores, dropout on the probabilities; ctx [n, inner] */
static void t5_attention(const vb_t5_config *c, const vb_tensor_table *w, const char *pre,
                         const double *x, int n, const double *kv, int nk, const float *table,
                         int bidirectional, int causal, const ref_site *probs, double *out) {
  int d = c->d_model, H = c->num_heads, dk = c->d_kv, in = H * dk;
  char f[400];
  double *q = malloc(sizeof(double) * n * in), *k = malloc(sizeof(double) * nk * in);
  double *v = malloc(sizeof(double) * nk * in), *ctx = malloc(sizeof(double) * n * in);
  double *row = malloc(sizeof(double) * nk);
#define TW(name) (snprintf(f, sizeof f, "%s.%s.weight", pre, name), frozen(w, f, 0))
  lin(x, n, d, TW("q"), NULL, in, q);
  lin(kv, nk, d, TW("k"), NULL, in, k);
  lin(kv, nk, d, TW("v"), NULL, in, v);
  for (int h = 0; h < H; h++)
    for (int i = 0; i < n; i++) {
      int lim = causal ? i + 1 : nk;
      double mx = -INFINITY, sum = 0;
      for (int j = 0; j < lim; j++) {
        double s = 0;
        for (int e = 0; e < dk; e++)
          s += q[(size_t)i * in + h * dk + e] * k[(size_t)j * in + h * dk + e];
        if (table)
          s += table[(size_t)t5_bucket(j - i, bidirectional, c->relative_attention_num_buckets,
                                       c->relative_attention_max_distance) *
                         H +
                     h];
        row[j] = s;
        mx = fmax(mx, s);
      }
      for (int j = 0; j < lim; j++)
        sum += (row[j] = exp(row[j] - mx));
      for (int j = 0; j < lim; j++)
        row[j] = row[j] / sum * mval(probs, ((size_t)h * n + i) * nk + j);
      for (int e = 0; e < dk; e++) {
        double s = 0;
        for (int j = 0; j < lim; j++)
          s += row[j] * v[(size_t)j * in + h * dk + e];
        ctx[(size_t)i * in + h * dk + e] = s;
      }
    }
  lin(ctx, n, in, TW("o"), NULL, d, out);
#undef TW
  free(q);
  free(k);
  free(v);
  free(ctx);
  free(row);
}

/* x += dropout(attention(rms(x), kv)) in (stack, block l, sublayer idx) */
static void t5_attn_sub(const vb_t5_config *c, const vb_tensor_table *w, const char *stack, int l,
                        int idx, const char *kind, double *x, int n, const double *kv, int nk,
                        const float *table, int causal, const tr_drop_ctx *dc, unsigned module,
                        unsigned s_probs, unsigned s_out) {
  int d = c->d_model;
  char pre[200], f[300];
  snprintf(pre, sizeof pre, T5P "%s.block.%d.layer.%d", stack, l, idx);
  snprintf(f, sizeof f, "%s.layer_norm.weight", pre);
  double *h = malloc(sizeof(double) * n * d), *o = malloc(sizeof(double) * n * d);
  memcpy(h, x, sizeof(double) * n * d);
  rmsnorm(h, n, d, frozen(w, f, 0), c->layer_norm_epsilon);
  snprintf(f, sizeof f, "%s.%s", pre, kind);
  ref_site sp = {dc, module, (unsigned)l, s_probs, c->dropout_rate};
  ref_site so = {dc, module, (unsigned)l, s_out, c->dropout_rate};
  t5_attention(c, w, f, h, n, kv ? kv : h, kv ? nk : n, table, module == TR_DROP_T5_ENCODER, causal,
               &sp, o);
  apply_mask(o, (size_t)n * d, &so);
  for (int i = 0; i < n * d; i++)
    x[i] += o[i];
  free(h);
  free(o);
}

/* x += dropout(wo(dropout(gelu_tanh(wi_0 h) * wi_1 h))), h = rms(x) */
static void t5_ff_sub(const vb_t5_config *c, const vb_tensor_table *w, const char *stack, int l,
                      int idx, double *x, int n, const tr_drop_ctx *dc, unsigned module) {
  int d = c->d_model, F = c->d_ff;
  char pre[200], f[300];
  snprintf(pre, sizeof pre, T5P "%s.block.%d.layer.%d", stack, l, idx);
  double *h = malloc(sizeof(double) * n * d), *a = malloc(sizeof(double) * n * F);
  double *b = malloc(sizeof(double) * n * F), *o = malloc(sizeof(double) * n * d);
  memcpy(h, x, sizeof(double) * n * d);
  snprintf(f, sizeof f, "%s.layer_norm.weight", pre);
  rmsnorm(h, n, d, frozen(w, f, 0), c->layer_norm_epsilon);
  snprintf(f, sizeof f, "%s.DenseReluDense.wi_0.weight", pre);
  lin(h, n, d, frozen(w, f, 0), NULL, F, a);
  snprintf(f, sizeof f, "%s.DenseReluDense.wi_1.weight", pre);
  lin(h, n, d, frozen(w, f, 0), NULL, F, b);
  for (int i = 0; i < n * F; i++) {
    double v = a[i];
    a[i] = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))) * b[i];
  }
  ref_site sh = {dc, module, (unsigned)l, TR_T5_FF_HIDDEN, c->dropout_rate};
  apply_mask(a, (size_t)n * F, &sh);
  snprintf(f, sizeof f, "%s.DenseReluDense.wo.weight", pre);
  lin(a, n, F, frozen(w, f, 0), NULL, d, o);
  ref_site so = {dc, module, (unsigned)l, TR_T5_FF_OUT, c->dropout_rate};
  apply_mask(o, (size_t)n * d, &so);
  for (int i = 0; i < n * d; i++)
    x[i] += o[i];
  free(h);
  free(a);
  free(b);
  free(o);
}

static double ref_t5_loss(vblip_trainer *t, const vb_tensor_table *w, const double *prefix, int np,
                          const int32_t *ids, int n_ids, const int32_t *labels, int L,
                          const tr_drop_ctx *dc) {
  const vb_model_config *mc = vb_trainer_config(t);
  const vb_t5_config *c = &mc->t5;
  int d = c->d_model, V = c->vocab_size, ne = np + n_ids;
  CHECK(c->gated && !strcmp(c->dense_act, "gelu_new") && !c->tie_word_embeddings,
        "the reference is for the tiny gated-GELU T5");
  const float *shared = frozen(w, T5P "shared.weight", 0);
  const unsigned ENC = TR_DROP_T5_ENCODER, DEC = TR_DROP_T5_DECODER;
  double *x = malloc(sizeof(double) * ne * d), *y = malloc(sizeof(double) * L * d);
  for (int i = 0; i < ne; i++)
    for (int j = 0; j < d; j++)
      x[(size_t)i * d + j] =
          i < np ? prefix[(size_t)i * d + j] : shared[(size_t)ids[i - np] * d + j];
  ref_site s = {dc, ENC, 0, TR_T5_EMBEDDINGS, c->dropout_rate};
  apply_mask(x, (size_t)ne * d, &s);
  const float *etab =
      frozen(w, T5P "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 0);
  const float *dtab =
      frozen(w, T5P "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", 0);
  for (int l = 0; l < c->num_layers; l++) {
    t5_attn_sub(c, w, "encoder", l, 0, "SelfAttention", x, ne, NULL, 0, etab, 0, dc, ENC,
                TR_T5_SELF_PROBS, TR_T5_SELF_OUT);
    t5_ff_sub(c, w, "encoder", l, 1, x, ne, dc, ENC);
  }
  rmsnorm(x, ne, d, frozen(w, T5P "encoder.final_layer_norm.weight", 0), c->layer_norm_epsilon);
  s = (ref_site){dc, ENC, 0, TR_T5_FINAL, c->dropout_rate};
  apply_mask(x, (size_t)ne * d, &s);
  for (int i = 0; i < L; i++) {
    int32_t tok = i == 0 ? mc->decoder_start_token_id : labels[i - 1];
    if (tok == -100) tok = mc->pad_token_id;
    for (int j = 0; j < d; j++)
      y[(size_t)i * d + j] = shared[(size_t)tok * d + j];
  }
  s = (ref_site){dc, DEC, 0, TR_T5_EMBEDDINGS, c->dropout_rate};
  apply_mask(y, (size_t)L * d, &s);
  for (int l = 0; l < c->num_decoder_layers; l++) {
    t5_attn_sub(c, w, "decoder", l, 0, "SelfAttention", y, L, NULL, 0, dtab, 1, dc, DEC,
                TR_T5_SELF_PROBS, TR_T5_SELF_OUT);
    t5_attn_sub(c, w, "decoder", l, 1, "EncDecAttention", y, L, x, ne, NULL, 0, dc, DEC,
                TR_T5_CROSS_PROBS, TR_T5_CROSS_OUT);
    t5_ff_sub(c, w, "decoder", l, 2, y, L, dc, DEC);
  }
  rmsnorm(y, L, d, frozen(w, T5P "decoder.final_layer_norm.weight", 0), c->layer_norm_epsilon);
  s = (ref_site){dc, DEC, 0, TR_T5_FINAL, c->dropout_rate};
  apply_mask(y, (size_t)L * d, &s);
  double total = 0, *logits = malloc(sizeof(double) * V);
  int count = 0;
  for (int i = 0; i < L; i++) {
    if (labels[i] == -100) continue;
    lin(y + (size_t)i * d, 1, d, frozen(w, T5P "lm_head.weight", 0), NULL, V, logits);
    double mx = -INFINITY, sum = 0;
    for (int k = 0; k < V; k++)
      mx = fmax(mx, logits[k]);
    for (int k = 0; k < V; k++)
      sum += exp(logits[k] - mx);
    total += log(sum) + mx - logits[labels[i]];
    count++;
  }
  free(logits);
  free(x);
  free(y);
  return total / count;
}

/* The modules' train-mode forward (Q-Former, projection, OPT or T5 loss) against the reference with
 * the masks drawn explicitly: equal within float32 rounding; the reference without the
 * masks (eval mode) or with another key is far off. */
static double ref_lm_loss(vblip_trainer *t, const vb_tensor_table *w, const double *prefix, int np,
                          const int32_t *ids, int n_ids, const int32_t *labels, int n_labels,
                          const tr_drop_ctx *c) {
  return vb_trainer_config(t)->lm_kind == VB_LM_OPT
             ? ref_opt_loss(t, w, prefix, np, ids, n_ids, labels, c)
             : ref_t5_loss(t, w, prefix, np, ids, n_ids, labels, n_labels, c);
}

static void decomposition(const char *model) {
  vblip_trainer *t = open_model(tu_fixture(model), 1);
  if (!t) return;
  const vb_model_config *mc = vb_trainer_config(t);
  int Q = mc->num_query_tokens, H = mc->qformer.hidden_size, E = mc->lm_hidden;
  int grid = mc->vision.image_size / mc->vision.patch_size;
  int nv = 2 * (grid * grid + 1); /* two frames' tokens */
  tu_rng r = {2024};
  float *vision = tu_rand_buf(&r, (size_t)nv * mc->qformer.encoder_hidden_size, 2.0f);
  int32_t *ids, *labels;
  int n_ids, n_labels;
  CHECK_OK(vblip_trainer_tokens(t, "Question: what? Answer:", "The camera wearer cuts bread.", &ids,
                                &n_ids, &labels, &n_labels));
  char path[700];
  snprintf(path, sizeof path, "%s/model.safetensors", tu_fixture(model));
  vb_tensor_table w;
  vb_tt_init(&w);
  CHECK_OK(vb_safetensors_load(&w, path));
  tr_drop_ctx c = {1, tr_drop_key(42, 3, 1, 2)}, other = {1, tr_drop_key(42, 4, 1, 2)},
              eval = {0, 0};
  /* the modules, composed as the trainer composes them */
  float *qo = malloc(sizeof(float) * Q * H), *pr = malloc(sizeof(float) * Q * E);
  double loss = 0;
  CHECK_OK(tr_qformer_forward(vb_trainer_qformer(t), vision, nv, &c, qo));
  tr_qformer_release(vb_trainer_qformer(t));
  tr_lin_fwd(vb_trainer_projection(t), qo, Q, pr);
  tr_lm *lm = vb_trainer_lm(t);
  CHECK_OK(lm->loss(lm, pr, Q, ids, n_ids, labels, n_labels, &c, &loss, NULL));
  /* the reference */
  double *ro = malloc(sizeof(double) * Q * H), *rp = malloc(sizeof(double) * Q * E);
  ref_qformer(t, vision, nv, &c, ro, rp);
  double ref = ref_lm_loss(t, &w, rp, Q, ids, n_ids, labels, n_labels, &c);
  float *rof = malloc(sizeof(float) * Q * H);
  for (int i = 0; i < Q * H; i++)
    rof[i] = (float)ro[i];
  double rel_q = tu_rel_l2f(qo, rof, (size_t)Q * H);
  CHECK(rel_q < 1e-5, "%s: Q-Former train-mode output vs the reference: rel L2 %.3g", model, rel_q);
  CHECK(fabs(loss - ref) <= 1e-5 * fabs(ref), "%s: train-mode loss %.9g, reference %.9g", model,
        loss, ref);
  printf("decomposition %s: loss %.9f, reference %.9f (rel %.2e); Q-Former output rel L2 %.2e\n",
         model, loss, ref, fabs(loss - ref) / fabs(ref), rel_q);
  /* the reference can tell: without masks, or with another step's */
  double *eo = malloc(sizeof(double) * Q * H), *ep = malloc(sizeof(double) * Q * E);
  ref_qformer(t, vision, nv, &eval, eo, ep);
  double ref_eval = ref_lm_loss(t, &w, ep, Q, ids, n_ids, labels, n_labels, &eval);
  ref_qformer(t, vision, nv, &other, eo, ep);
  double ref_other = ref_lm_loss(t, &w, ep, Q, ids, n_ids, labels, n_labels, &other);
  CHECK(fabs(loss - ref_eval) > 1e-3 * fabs(ref) && fabs(loss - ref_other) > 1e-3 * fabs(ref),
        "%s: the masks matter: eval-mode reference %.6f, another step's %.6f, train mode %.6f",
        model, ref_eval, ref_other, loss);
  double eval_loss;
  CHECK_OK(tr_qformer_forward(vb_trainer_qformer(t), vision, nv, &eval, qo));
  tr_qformer_release(vb_trainer_qformer(t));
  tr_lin_fwd(vb_trainer_projection(t), qo, Q, pr);
  CHECK_OK(lm->loss(lm, pr, Q, ids, n_ids, labels, n_labels, &eval, &eval_loss, NULL));
  CHECK(fabs(eval_loss - ref_eval) <= 1e-5 * fabs(ref_eval), "%s: eval mode %.9g, reference %.9g",
        model, eval_loss, ref_eval);
  free(eo);
  free(ep);
  free(ro);
  free(rp);
  free(rof);
  free(qo);
  free(pr);
  free(ids);
  free(labels);
  free(vision);
  vb_tt_free(&w);
  vblip_trainer_free(t);
}

typedef struct {
  vblip_trainer *t;
  vblip_train_example *ex;
} train_loss_ctx;

/* The train-mode loss (dropout on, the masks of the trainer's step and position). */
static int train_loss(void *ctx, double *out) {
  train_loss_ctx *c = ctx;
  return vb_trainer_train_loss(c->t, c->ex, out);
}

/* ---- finite differences through the same masks ---- */

static void finite_differences(const char *model) {
  vblip_trainer *t = open_model(tu_fixture(model), 1);
  if (!t) return;
  vblip_train_example *ex = random_example(t, 77);
  if (!ex) return;
  vblip_trainer_set_steps(t, 11);
  vblip_trainer_set_dropout_position(t, 2, 1);
  double loss, l_eval;
  CHECK_OK(vblip_trainer_accumulate(t, ex, 1.0, &loss));
  CHECK_OK(vblip_trainer_loss(t, ex, &l_eval));
  CHECK(fabs(loss - l_eval) > 1e-4 * fabs(l_eval), "%s: dropout is on (train %.6f, eval %.6f)",
        model, loss, l_eval);
  const char *names[] = {
      "query_tokens",
      "qformer.layernorm.weight",
      "qformer.encoder.layer.0.attention.attention.query.weight",
      "qformer.encoder.layer.0.attention.attention.value.weight",
      "qformer.encoder.layer.0.attention.output.dense.weight",
      "qformer.encoder.layer.0.crossattention.attention.key.weight",
      "qformer.encoder.layer.0.crossattention.attention.value.weight",
      "qformer.encoder.layer.0.crossattention.output.dense.bias",
      "qformer.encoder.layer.0.intermediate_query.dense.weight",
      "qformer.encoder.layer.0.output_query.dense.weight",
      "qformer.encoder.layer.1.attention.attention.value.bias",
      "qformer.encoder.layer.1.output_query.dense.bias",
      "language_projection.weight",
      "language_projection.bias",
  };
  tr_params *ps = vb_trainer_params(t);
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    tr_param *p = tr_params_find(ps, names[k]);
    if (!CHECK(p != NULL, "%s missing", names[k])) continue;
    /* the two largest gradients of the tensor */
    size_t best[2] = {0, 0};
    for (size_t i = 1; i < p->n; i++)
      if (fabsf(p->grad[i]) > fabsf(p->grad[best[0]])) best[0] = i;
    best[1] = best[0] == 0 && p->n > 1 ? 1 : 0;
    for (size_t i = 0; i < p->n; i++)
      if (i != best[0] && fabsf(p->grad[i]) > fabsf(p->grad[best[1]])) best[1] = i;
    for (int b = 0; b < (p->n > 1 ? 2 : 1); b++) {
      size_t i = best[b];
      double g = p->grad[i], fd = 0;
      train_loss_ctx lc = {t, ex};
      CHECK_OK(tu_central_difference(&p->data[i], 5e-3f, train_loss, &lc, &fd));
      int ok = fabs(fd - g) <= 2e-2 * fabs(g) + 1e-3;
      CHECK(ok, "%s %s[%zu]: analytic %.6g, finite difference %.6g (dropout on)", model, names[k],
            i, g, fd);
      if (b == 0)
        printf("fd+dropout %s %-58s analytic %12.6g numeric %12.6g\n",
               strstr(model, "opt") ? "opt" : "t5 ", names[k], g, fd);
    }
  }
  double again;
  CHECK_OK(vb_trainer_train_loss(t, ex, &again));
  CHECK(again == loss, "%s: the train-mode loss repeats with the same step and position", model);
  vblip_trainer_set_dropout_position(t, 2, 2);
  CHECK_OK(vb_trainer_train_loss(t, ex, &again));
  CHECK(again != loss, "%s: another example position draws other masks", model);
  vblip_trainer_set_dropout_position(t, 1, 1);
  CHECK_OK(vb_trainer_train_loss(t, ex, &again));
  CHECK(again != loss, "%s: another micro-batch draws other masks", model);
  vblip_trainer_set_dropout_position(t, 2, 1);
  vblip_trainer_set_steps(t, 12);
  CHECK_OK(vb_trainer_train_loss(t, ex, &again));
  CHECK(again != loss, "%s: another optimizer step draws other masks", model);
  vblip_train_example_free(ex);
  vblip_trainer_free(t);
}

/* ---- one thread or two: the same loss and gradients, bit for bit, dropout on ---- */

static void threads_identical(const char *model) {
  vblip_trainer *t[2] = {open_model(tu_fixture(model), 1), open_model(tu_fixture(model), 1)};
  if (!t[0] || !t[1]) return;
  int threads = omp_get_max_threads();
  double loss[2];
  for (int k = 0; k < 2; k++) {
    omp_set_num_threads(k + 1);
    vblip_train_example *ex = random_example(t[k], 31);
    if (!ex) return;
    vblip_trainer_set_steps(t[k], 3);
    vblip_trainer_set_dropout_position(t[k], 1, 0);
    CHECK_OK(vblip_trainer_accumulate(t[k], ex, 1.0, &loss[k]));
    vblip_train_example_free(ex);
  }
  omp_set_num_threads(threads);
  CHECK(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0 && grads_equal(t[0], t[1]),
        "%s: 1 and 2 threads train alike with dropout (loss %.9g vs %.9g)", model, loss[0],
        loss[1]);
  vblip_trainer_free(t[0]);
  vblip_trainer_free(t[1]);
}

/* ---- vblip train keys every example of a step's window apart ---- */

/* The loss vblip train logs after its first step over DATA (one clip, or the same clip
 * twice) with the given batch and accumulation; NAN on failure. */
static double first_step_loss(const char *data, int batch, int accum, const char *extra) {
  static int run;
  char cmd[4096], *o = NULL;
  snprintf(cmd, sizeof cmd,
           "%s train --model %s --data %s --out %s/window-%d --frames 2 --batch %d --grad-accum %d "
           "--max-steps 1 --warmup-steps 0 --logging-steps 1 --save-steps 0 --threads 2 --quiet "
           "%s 2>&1",
           VBLIP_BINARY, tu_fixture(OPT_TINY), data, tu_tmpdir(), run++, batch, accum, extra);
  int rc = tu_run(cmd, &o);
  const char *l = o ? strstr(o, "\"loss\": ") : NULL;
  double v = l ? strtod(l + 8, NULL) : NAN;
  CHECK(rc == 0 && l, "vblip train (exit %d): %s", rc, o ? o : "");
  free(o);
  return v;
}

/* The same clip twice in one micro-batch, or in two micro-batches of one step, draws other
 * masks for each: the logged mean differs from the one clip's loss (the first example's key
 * is the same in all three runs), and without dropout it equals it. */
static void window_positions(void) {
  char one[600], two[600], line[1200];
  snprintf(one, sizeof one, "%s/one-clip.jsonl", tu_tmpdir());
  snprintf(two, sizeof two, "%s/two-clips.jsonl", tu_tmpdir());
  snprintf(line, sizeof line,
           "{\"video\": \"%s\", \"start\": 0, \"end\": 4, \"text\": \"The camera wearer cuts "
           "bread.\"}\n",
           tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"));
  FILE *f = fopen(one, "w"), *g = fopen(two, "w");
  CHECK(f && g && fputs(line, f) >= 0 && fputs(line, g) >= 0 && fputs(line, g) >= 0, "write lists");
  if (f) fclose(f);
  if (g) fclose(g);
  double single = first_step_loss(one, 1, 1, ""), batch = first_step_loss(two, 2, 1, "");
  double accum = first_step_loss(two, 1, 2, "");
  CHECK(batch != single && accum != single,
        "two examples of a micro-batch (%.4f) or two micro-batches of a step (%.4f) get other "
        "masks than one (%.4f)",
        batch, accum, single);
  double s0 = first_step_loss(one, 1, 1, "--no-dropout"),
         b0 = first_step_loss(two, 2, 1, "--no-dropout");
  double a0 = first_step_loss(two, 1, 2, "--no-dropout");
  CHECK(s0 == b0 && s0 == a0, "without dropout the same clip gives the same loss: %.4f %.4f %.4f",
        s0, b0, a0);
  printf("first-step loss, one clip / twice in a batch / in two micro-batches: %.4f %.4f %.4f "
         "(no dropout: %.4f %.4f %.4f)\n",
         single, batch, accum, s0, b0, a0);
}

/* ---- resume: stopped after 1 step, saved, reloaded, 2 more: as 3 steps straight ---- */

static void train_steps(vblip_trainer *t, vblip_train_example **ex, int from, int to) {
  for (int s = from; s < to; s++) {
    for (int mb = 0; mb < 2; mb++)
      for (int k = 0; k < 2; k++) {
        double l;
        vblip_trainer_set_dropout_position(t, mb, k);
        CHECK_OK(vblip_trainer_accumulate(t, ex[(s + mb + k) % 2], 0.25, &l));
      }
    vblip_trainer_clip_grad_norm(t, 1.0);
    CHECK_OK(vblip_trainer_step(t));
  }
}

static int params_equal(vblip_trainer *a, vblip_trainer *b) {
  tr_params *pa = vb_trainer_params(a), *pb = vb_trainer_params(b);
  for (int i = 0; i < pa->n; i++)
    if (memcmp(pa->p[i].data, pb->p[i].data, pa->p[i].n * sizeof(float))) return 0;
  return 1;
}

static void resume(void) {
  vblip_trainer *a = open_model(tu_fixture(OPT_TINY), 1), *b = open_model(tu_fixture(OPT_TINY), 1);
  vblip_trainer *c = open_model(tu_fixture(OPT_TINY), 1), *d = open_model(tu_fixture(OPT_TINY), 0);
  if (!a || !b || !c || !d) return;
  vblip_train_example *ea[2], *eb[2], *ec[2], *ed[2];
  for (int k = 0; k < 2; k++) {
    ea[k] = random_example(a, 10 + k);
    eb[k] = random_example(b, 10 + k);
    ec[k] = random_example(c, 10 + k);
    ed[k] = random_example(d, 10 + k);
  }
  vblip_trainer_set_lr(a, 1e-3);
  vblip_trainer_set_lr(b, 1e-3);
  vblip_trainer_set_lr(c, 1e-3);
  vblip_trainer_set_lr(d, 1e-3);
  train_steps(a, ea, 0, 3);
  train_steps(b, eb, 0, 1);
  char dir[600];
  snprintf(dir, sizeof dir, "%s/resume-checkpoint", tu_tmpdir());
  CHECK_OK(vblip_trainer_save_checkpoint(b, dir, NULL, "{}"));
  CHECK_OK(vblip_trainer_load_checkpoint(c, dir));
  train_steps(c, ec, 1, 3);
  train_steps(d, ed, 0, 3);
  CHECK(params_equal(a, c), "a run resumed after step 1 ends with the uninterrupted run's weights");
  CHECK(!params_equal(a, d), "... which differ from a run without dropout's");
  for (int k = 0; k < 2; k++) {
    vblip_train_example_free(ea[k]);
    vblip_train_example_free(eb[k]);
    vblip_train_example_free(ec[k]);
    vblip_train_example_free(ed[k]);
  }
  vblip_trainer_free(a);
  vblip_trainer_free(b);
  vblip_trainer_free(c);
  vblip_trainer_free(d);
}

int main(void) {
  mask_statistics();
  dropout_off(OPT_TINY, "opt-zero-dropout");
  dropout_off(T5_TINY, "t5-zero-dropout");
  decomposition(OPT_TINY);
  decomposition(T5_TINY);
  finite_differences(OPT_TINY);
  finite_differences(T5_TINY);
  threads_identical(OPT_TINY);
  threads_identical(T5_TINY);
  window_positions();
  resume();
  return tu_finish();
}
