/* T5 / Flan-T5 encoder-decoder language model (transformers'
 * T5ForConditionalGeneration) behind the vb_lm interface.
 *
 * Generation state: the encoder runs once per input; every decoder layer's
 * cross-attention K/V over the encoder output is computed once in prefill and
 * shared by all beams. Each beam owns a self-attention K/V cache held in a
 * physical "slot"; reorder remaps beams to slots and copies only the slots
 * that several beams now need, and only their valid prefix. */
#include "lm/t5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "lm/t5_tensors.h"
#include "runtime/common.h"

typedef enum { ACT_RELU, ACT_GELU_TANH, ACT_GELU_ERF, ACT_SILU } t5_act;

typedef struct {
  vb_linear q, k, v, o;
} t5_attn;

typedef struct {
  const float *ln_self, *ln_cross, *ln_ff; /* ln_cross: decoder only */
  t5_attn self, cross;
  vb_linear wi0, wi1, wo; /* not gated: wi0 is "wi", wi1 unused */
} t5_block;

/* Work buffers for a pass over up to `rows` positions. */
typedef struct {
  int rows;
  float *x, *h, *q, *k, *v, *att, *tmp, *f0, *f1;
} t5_scratch;

typedef struct {
  vb_lm base; /* first member: the vb_lm pointer is the model pointer */
  vb_t5_config c;
  int d, inner, heads, dkv, dff, vocab, n_enc_layers, n_dec_layers;
  t5_act act;
  const float *enc_embed, *dec_embed; /* [vocab, d] */
  const float *enc_rel, *dec_rel;     /* [num_buckets, heads], block 0 of each stack */
  const float *enc_ln, *dec_ln;
  t5_block *enc, *dec;
  vb_linear head;
  float head_scale; /* d^-0.5 when the head is tied to the embedding, else 1 */
  int32_t start_id;

  /* input given by set_input: [n_in, d] embeddings */
  float *in;
  int n_in;

  /* per-input generation state */
  int prefilled;
  float *enc_out; /* [n_in, d] */
  float *xk, *xv; /* cross-attention K/V, [n_dec_layers][n_in][inner] */
  int xcap;       /* rows allocated in enc_out / xk / xv */
  float *ck, *cv; /* self-attention caches, [slot][n_dec_layers][cap][inner] */
  int slots, cap; /* allocated slots and positions per slot */
  int *slot_of;   /* beam -> slot */
  int *slot_new;  /* reorder work array */
  unsigned char *slot_used;
  int len;   /* valid positions in every beam's cache */
  int beams; /* beams prepared by the last prefill */
  t5_scratch s;
  float *bias; /* position bias work buffer */
  size_t bias_cap;
} t5_model;

/* ---- helpers ---- */

static void silu(float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = x[i] / (1.0f + expf(-x[i]));
}

static void activate(t5_act a, float *x, size_t n) {
  switch (a) {
  case ACT_RELU:
    vb_relu(x, n);
    break;
  case ACT_GELU_TANH:
    vb_gelu_tanh(x, n);
    break;
  case ACT_GELU_ERF:
    vb_gelu_erf(x, n);
    break;
  case ACT_SILU:
    silu(x, n);
    break;
  }
}

static void scratch_free(t5_scratch *s) {
  float **p[] = {&s->x, &s->h, &s->q, &s->k, &s->v, &s->att, &s->tmp, &s->f0, &s->f1};
  for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
    vb_free_aligned(*p[i]);
    *p[i] = NULL;
  }
  s->rows = 0;
}

static int scratch_reserve(t5_model *m, t5_scratch *s, int rows) {
  if (rows <= s->rows) return 0;
  scratch_free(s);
  size_t r = (size_t)rows;
  struct {
    float **p;
    size_t width;
  } b[] = {{&s->x, m->d},     {&s->h, m->d},     {&s->q, m->inner},
           {&s->k, m->inner}, {&s->v, m->inner}, {&s->att, m->inner},
           {&s->tmp, m->d},   {&s->f0, m->dff},  {&s->f1, m->dff}};
  for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
    size_t bytes;
    if (!vb_mul_ok(r * sizeof(float), b[i].width, &bytes) ||
        !(*b[i].p = vb_malloc_aligned(bytes))) {
      scratch_free(s);
      return vb_error("t5: cannot allocate work buffers for %d positions", rows);
    }
  }
  s->rows = rows;
  return 0;
}

static int grow_floats(float **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t bytes;
  if (!vb_mul_ok(need, sizeof(float), &bytes)) return vb_error("t5: buffer size overflow");
  float *p = vb_malloc_aligned(bytes);
  if (!p) return -1;
  vb_free_aligned(*buf);
  *buf = p;
  *cap = need;
  return 0;
}

/* T5's relative position bucket for rel = key_pos - query_pos. The log term
 * is evaluated in float32 as PyTorch does: exact distances such as 16 and 32
 * (bidirectional, 32 buckets) land on bucket boundaries, so the rounding
 * decides the bucket. */
static int rel_bucket(int rel, int bidirectional, int num_buckets, int max_distance) {
  int bucket = 0, n;
  if (bidirectional) {
    num_buckets /= 2;
    if (rel > 0) bucket = num_buckets;
    n = rel < 0 ? -rel : rel;
  } else {
    n = rel < 0 ? -rel : 0;
  }
  int max_exact = num_buckets / 2;
  if (n < max_exact) return bucket + n;
  float r = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact) *
            (float)(num_buckets - max_exact);
  int large = r >= (float)num_buckets ? num_buckets - 1 : max_exact + (int)r;
  if (large > num_buckets - 1) large = num_buckets - 1;
  return bucket + large;
}

/* bias[h][i][j] for query positions q0..q0+nq-1 and key positions 0..nk-1. */
static void position_bias(const t5_model *m, const float *table, int bidirectional, int q0, int nq,
                          int nk, float *bias) {
  int H = m->heads;
  for (int i = 0; i < nq; i++)
    for (int j = 0; j < nk; j++) {
      int b = rel_bucket(j - (q0 + i), bidirectional, m->c.relative_attention_num_buckets,
                         m->c.relative_attention_max_distance);
      for (int h = 0; h < H; h++)
        bias[((size_t)h * nq + i) * nk + j] = table[(size_t)b * H + h];
    }
}

/* x += FFN(rms(x)) over n rows. Kept in float32 throughout: Flan-T5's FFN
 * activations overflow half precision. */
static int feed_forward(const t5_model *m, const t5_block *b, t5_scratch *s, int n) {
  vb_rmsnorm(s->x, s->h, n, m->d, b->ln_ff, m->c.layer_norm_epsilon);
  if (vb_linear_forward(&b->wi0, s->h, n, s->f0) != 0) return -1;
  activate(m->act, s->f0, (size_t)n * m->dff);
  if (m->c.gated) {
    if (vb_linear_forward(&b->wi1, s->h, n, s->f1) != 0) return -1;
    size_t total = (size_t)n * m->dff;
    for (size_t i = 0; i < total; i++)
      s->f0[i] *= s->f1[i];
  }
  if (vb_linear_forward(&b->wo, s->f0, n, s->tmp) != 0) return -1;
  vb_add(s->x, s->tmp, (size_t)n * m->d);
  return 0;
}

/* Encoder over in[n, d] into out[n, d]; bias needs heads*n*n floats. */
static int run_encoder(const t5_model *m, const float *in, int n, t5_scratch *s, float *bias,
                       float *out) {
  int d = m->d, inner = m->inner;
  float eps = m->c.layer_norm_epsilon;
  memcpy(s->x, in, (size_t)n * d * sizeof(float));
  position_bias(m, m->enc_rel, 1, 0, n, n, bias);
  for (int l = 0; l < m->n_enc_layers; l++) {
    const t5_block *b = &m->enc[l];
    vb_rmsnorm(s->x, s->h, n, d, b->ln_self, eps);
    if (vb_linear_forward(&b->self.q, s->h, n, s->q) != 0) return -1;
    if (vb_linear_forward(&b->self.k, s->h, n, s->k) != 0) return -1;
    if (vb_linear_forward(&b->self.v, s->h, n, s->v) != 0) return -1;
    /* T5 does not scale scores by 1/sqrt(d_kv) */
    if (vb_attention(s->q, inner, s->k, s->v, inner, s->att, inner, n, n, m->heads, m->dkv, 1.0f,
                     bias, 0, 0) != 0)
      return -1;
    if (vb_linear_forward(&b->self.o, s->att, n, s->tmp) != 0) return -1;
    vb_add(s->x, s->tmp, (size_t)n * d);
    if (feed_forward(m, b, s, n) != 0) return -1;
  }
  vb_rmsnorm(s->x, out, n, d, m->enc_ln, eps);
  return 0;
}

/* Cross-attention K/V of every decoder layer over enc[n, d]. */
static int cross_kv(const t5_model *m, const float *enc, int n, float *xk, float *xv) {
  size_t per = (size_t)n * m->inner;
  for (int l = 0; l < m->n_dec_layers; l++) {
    if (vb_linear_forward(&m->dec[l].cross.k, enc, n, xk + l * per) != 0) return -1;
    if (vb_linear_forward(&m->dec[l].cross.v, enc, n, xv + l * per) != 0) return -1;
  }
  return 0;
}

static float *cache_at(const t5_model *m, float *base, int slot, int layer) {
  return base + (((size_t)slot * m->n_dec_layers + layer) * m->cap) * m->inner;
}

/* How a decoder pass treats its rows and the self-attention cache. */
typedef enum {
  DEC_BEAMS,    /* row r: the next token of beam r (position m->len), appended to its cache */
  DEC_FULL,     /* rows: positions 0..R-1 of one sequence, no cache involved */
  DEC_CONTINUE, /* rows: positions m->len.. after beam 0's cache, written past it (len kept) */
} dec_mode;

/* A decoder pass over R rows, logits [R, vocab]; every row attends causally to
 * what comes before it. bias needs heads * (DEC_BEAMS: m->len + 1, DEC_FULL:
 * R * R, DEC_CONTINUE: R * (m->len + R)) floats. */
static int run_decoder(t5_model *m, const int32_t *ids, int R, dec_mode mode, const float *xk,
                       const float *xv, int n_enc, t5_scratch *s, float *bias, float *logits) {
  int d = m->d, inner = m->inner, H = m->heads;
  float eps = m->c.layer_norm_epsilon;
  int pos = m->len;
  for (int r = 0; r < R; r++)
    memcpy(s->x + (size_t)r * d, m->dec_embed + (size_t)ids[r] * d, (size_t)d * sizeof(float));
  if (mode == DEC_BEAMS)
    position_bias(m, m->dec_rel, 0, pos, 1, pos + 1, bias);
  else if (mode == DEC_CONTINUE)
    position_bias(m, m->dec_rel, 0, pos, R, pos + R, bias);
  else
    position_bias(m, m->dec_rel, 0, 0, R, R, bias);
  size_t per = (size_t)n_enc * inner;
  for (int l = 0; l < m->n_dec_layers; l++) {
    const t5_block *b = &m->dec[l];
    vb_rmsnorm(s->x, s->h, R, d, b->ln_self, eps);
    if (vb_linear_forward(&b->self.q, s->h, R, s->q) != 0) return -1;
    if (vb_linear_forward(&b->self.k, s->h, R, s->k) != 0) return -1;
    if (vb_linear_forward(&b->self.v, s->h, R, s->v) != 0) return -1;
    if (mode == DEC_BEAMS) {
      for (int r = 0; r < R; r++) {
        float *kc = cache_at(m, m->ck, m->slot_of[r], l);
        float *vc = cache_at(m, m->cv, m->slot_of[r], l);
        memcpy(kc + (size_t)pos * inner, s->k + (size_t)r * inner, (size_t)inner * sizeof(float));
        memcpy(vc + (size_t)pos * inner, s->v + (size_t)r * inner, (size_t)inner * sizeof(float));
        if (vb_attention(s->q + (size_t)r * inner, inner, kc, vc, inner, s->att + (size_t)r * inner,
                         inner, 1, pos + 1, H, m->dkv, 1.0f, bias, 0, 0) != 0)
          return -1;
      }
    } else if (mode == DEC_CONTINUE) {
      float *kc = cache_at(m, m->ck, m->slot_of[0], l);
      float *vc = cache_at(m, m->cv, m->slot_of[0], l);
      memcpy(kc + (size_t)pos * inner, s->k, (size_t)R * inner * sizeof(float));
      memcpy(vc + (size_t)pos * inner, s->v, (size_t)R * inner * sizeof(float));
      if (vb_attention(s->q, inner, kc, vc, inner, s->att, inner, R, pos + R, H, m->dkv, 1.0f, bias,
                       1, pos) != 0)
        return -1;
    } else {
      if (vb_attention(s->q, inner, s->k, s->v, inner, s->att, inner, R, R, H, m->dkv, 1.0f, bias,
                       1, 0) != 0)
        return -1;
    }
    if (vb_linear_forward(&b->self.o, s->att, R, s->tmp) != 0) return -1;
    vb_add(s->x, s->tmp, (size_t)R * d);

    /* cross-attention: no position bias, all encoder positions visible */
    vb_rmsnorm(s->x, s->h, R, d, b->ln_cross, eps);
    if (vb_linear_forward(&b->cross.q, s->h, R, s->q) != 0) return -1;
    if (vb_attention(s->q, inner, xk + l * per, xv + l * per, inner, s->att, inner, R, n_enc, H,
                     m->dkv, 1.0f, NULL, 0, 0) != 0)
      return -1;
    if (vb_linear_forward(&b->cross.o, s->att, R, s->tmp) != 0) return -1;
    vb_add(s->x, s->tmp, (size_t)R * d);

    if (feed_forward(m, b, s, R) != 0) return -1;
  }
  vb_rmsnorm(s->x, s->h, R, d, m->dec_ln, eps);
  if (m->head_scale != 1.0f) {
    size_t total = (size_t)R * d;
    for (size_t i = 0; i < total; i++)
      s->h[i] *= m->head_scale;
  }
  return vb_linear_forward(&m->head, s->h, R, logits);
}

/* ---- caches ---- */

/* Makes room for `slots` caches of `need` positions, keeping what is cached;
 * capacity doubles so growth during a generation is rare. */
static int cache_reserve(t5_model *m, int slots, int need) {
  if (slots <= m->slots && need <= m->cap) return 0;
  int new_slots = slots > m->slots ? slots : m->slots;
  int new_cap = m->cap > 0 ? m->cap : 64;
  while (new_cap < need) {
    if (new_cap > (1 << 29)) return vb_error("t5: decoder cache of %d positions is too long", need);
    new_cap *= 2;
  }
  /* the step's position bias is [heads, 1, len + 1]; grown first so a
   * failure leaves the model consistent */
  if (grow_floats(&m->bias, &m->bias_cap, (size_t)m->heads * new_cap) != 0) return -1;
  size_t n, bytes;
  if (!vb_mul_ok((size_t)new_slots * m->n_dec_layers, (size_t)new_cap, &n) ||
      !vb_mul_ok(n, (size_t)m->inner * sizeof(float), &bytes))
    return vb_error("t5: decoder cache size overflow (%d beams, %d positions)", slots, need);
  float *nk = vb_malloc_aligned(bytes), *nv = vb_malloc_aligned(bytes);
  int *so = vb_calloc((size_t)new_slots, sizeof(int));
  int *sn = vb_calloc((size_t)new_slots, sizeof(int));
  unsigned char *su = vb_calloc((size_t)new_slots, 1);
  if (!nk || !nv || !so || !sn || !su) {
    vb_free_aligned(nk);
    vb_free_aligned(nv);
    free(so);
    free(sn);
    free(su);
    return -1;
  }
  size_t row = (size_t)m->inner;
  for (int s = 0; s < m->slots; s++)
    for (int l = 0; l < m->n_dec_layers; l++) {
      size_t off_old = (((size_t)s * m->n_dec_layers + l) * m->cap) * row;
      size_t off_new = (((size_t)s * m->n_dec_layers + l) * new_cap) * row;
      memcpy(nk + off_new, m->ck + off_old, (size_t)m->len * row * sizeof(float));
      memcpy(nv + off_new, m->cv + off_old, (size_t)m->len * row * sizeof(float));
    }
  for (int s = 0; s < new_slots; s++)
    so[s] = s < m->slots ? m->slot_of[s] : s;
  vb_free_aligned(m->ck);
  vb_free_aligned(m->cv);
  free(m->slot_of);
  free(m->slot_new);
  free(m->slot_used);
  m->ck = nk;
  m->cv = nv;
  m->slot_of = so;
  m->slot_new = sn;
  m->slot_used = su;
  m->slots = new_slots;
  m->cap = new_cap;
  return 0;
}

static void copy_slot(t5_model *m, int from, int to) {
  size_t bytes = (size_t)m->len * m->inner * sizeof(float);
  for (int l = 0; l < m->n_dec_layers; l++) {
    memcpy(cache_at(m, m->ck, to, l), cache_at(m, m->ck, from, l), bytes);
    memcpy(cache_at(m, m->cv, to, l), cache_at(m, m->cv, from, l), bytes);
  }
}

/* ---- vb_lm / vb_lm_iface hooks ---- */

static int t5_embed(const vb_lm *lm, const int32_t *ids, int n, float *out) {
  const t5_model *m = (const t5_model *)lm;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= m->vocab)
      return vb_error("t5: token id %d at position %d is outside the vocabulary (%d)", ids[i], i,
                      m->vocab);
    /* T5 does not scale its input embeddings */
    memcpy(out + (size_t)i * m->d, m->enc_embed + (size_t)ids[i] * m->d,
           (size_t)m->d * sizeof(float));
  }
  return 0;
}

static int t5_set_input(vb_lm *lm, const float *prefix, int n_prefix, const int32_t *ids,
                        int n_ids) {
  t5_model *m = (t5_model *)lm;
  if (n_prefix < 0 || n_ids < 0 || n_prefix + n_ids <= 0)
    return vb_error("t5: empty input (%d prefix embeddings, %d prompt ids)", n_prefix, n_ids);
  if (n_prefix > 0 && !prefix) return vb_error("t5: %d prefix embeddings but no data", n_prefix);
  int n = n_prefix + n_ids;
  size_t bytes;
  if (!vb_mul_ok((size_t)n * m->d, sizeof(float), &bytes))
    return vb_error("t5: input of %d positions is too long", n);
  float *in = vb_malloc_aligned(bytes);
  if (!in) return -1;
  if (n_prefix) memcpy(in, prefix, (size_t)n_prefix * m->d * sizeof(float));
  if (t5_embed(lm, ids, n_ids, in + (size_t)n_prefix * m->d) != 0) {
    vb_free_aligned(in);
    return -1;
  }
  vb_free_aligned(m->in);
  m->in = in;
  m->n_in = n;
  m->prefilled = 0;
  return 0;
}

static int t5_prefill(void *lm, int n_beams, float *logits) {
  t5_model *m = lm;
  if (!m->in) return vb_error("t5: prefill before set_input");
  if (n_beams < 1) return vb_error("t5: prefill with %d beams", n_beams);
  int n = m->n_in;
  m->prefilled = 0;
  if (scratch_reserve(m, &m->s, n > n_beams ? n : n_beams) != 0) return -1;
  size_t bias_need, xbytes;
  if (!vb_mul_ok((size_t)m->heads * n, (size_t)n, &bias_need) ||
      grow_floats(&m->bias, &m->bias_cap, bias_need) != 0)
    return vb_error("t5: cannot allocate the encoder position bias for %d positions", n);
  if (n > m->xcap) {
    vb_free_aligned(m->enc_out);
    vb_free_aligned(m->xk);
    vb_free_aligned(m->xv);
    m->enc_out = m->xk = m->xv = NULL;
    m->xcap = 0;
    if (!vb_mul_ok((size_t)n * m->n_dec_layers * m->inner, sizeof(float), &xbytes))
      return vb_error("t5: cross-attention cache size overflow");
    m->enc_out = vb_malloc_aligned((size_t)n * m->d * sizeof(float));
    m->xk = vb_malloc_aligned(xbytes);
    m->xv = vb_malloc_aligned(xbytes);
    if (!m->enc_out || !m->xk || !m->xv) return -1;
    m->xcap = n;
  }
  if (run_encoder(m, m->in, n, &m->s, m->bias, m->enc_out) != 0 ||
      cross_kv(m, m->enc_out, n, m->xk, m->xv) != 0)
    return -1;

  m->len = 0;
  if (cache_reserve(m, n_beams, 1) != 0) return -1;
  for (int s = 0; s < m->slots; s++)
    m->slot_of[s] = s;
  int32_t start = m->start_id;
  if (run_decoder(m, &start, 1, DEC_BEAMS, m->xk, m->xv, n, &m->s, m->bias, logits) != 0) return -1;
  m->len = 1;
  /* every beam starts from the same decoder state */
  for (int b = 1; b < n_beams; b++)
    copy_slot(m, 0, b);
  m->beams = n_beams;
  m->prefilled = 1;
  return 0;
}

static int t5_step(void *lm, const int32_t *tokens, int n_beams, float *logits) {
  t5_model *m = lm;
  if (!m->prefilled) return vb_error("t5: step before prefill");
  if (n_beams < 1 || n_beams > m->beams)
    return vb_error("t5: step with %d beams, prefill prepared %d", n_beams, m->beams);
  for (int b = 0; b < n_beams; b++)
    if (tokens[b] < 0 || tokens[b] >= m->vocab)
      return vb_error("t5: token %d of beam %d is outside the vocabulary (%d)", tokens[b], b,
                      m->vocab);
  if (m->len >= m->cap && cache_reserve(m, m->slots, m->len + 1) != 0) return -1;
  if (run_decoder(m, tokens, n_beams, DEC_BEAMS, m->xk, m->xv, m->n_in, &m->s, m->bias, logits) !=
      0)
    return -1;
  m->len++;
  return 0;
}

static int t5_reorder(void *lm, const int *src, int n_beams) {
  t5_model *m = lm;
  if (!m->prefilled) return vb_error("t5: reorder before prefill");
  if (n_beams < 1 || n_beams > m->beams)
    return vb_error("t5: reorder of %d beams, prefill prepared %d", n_beams, m->beams);
  for (int b = 0; b < n_beams; b++)
    if (src[b] < 0 || src[b] >= m->beams)
      return vb_error("t5: reorder source %d for beam %d is not a beam (0..%d)", src[b], b,
                      m->beams - 1);
  /* The first beam to claim a slot takes it over without copying; later
   * claimants get a copy in a slot nobody claimed (never a copy source). */
  memset(m->slot_used, 0, (size_t)m->slots);
  for (int b = 0; b < n_beams; b++) {
    int s = m->slot_of[src[b]];
    if (!m->slot_used[s]) {
      m->slot_used[s] = 1;
      m->slot_new[b] = s;
    } else {
      m->slot_new[b] = -1;
    }
  }
  int f = 0;
  for (int b = 0; b < n_beams; b++) {
    if (m->slot_new[b] >= 0) continue;
    while (m->slot_used[f])
      f++;
    copy_slot(m, m->slot_of[src[b]], f);
    m->slot_used[f] = 1;
    m->slot_new[b] = f;
  }
  /* beams beyond n_beams keep some free slot so slot_of stays a permutation */
  for (int b = n_beams; b < m->beams; b++) {
    while (m->slot_used[f])
      f++;
    m->slot_used[f] = 1;
    m->slot_new[b] = f;
  }
  memcpy(m->slot_of, m->slot_new, (size_t)m->beams * sizeof(int));
  return 0;
}

/* Scoring: the encoder output and its cross-attention K/V, and the decoder's
 * start-token K/V from prefill, are reused; the continuation's own K/V are
 * written past the cached positions and forgotten (len is kept). */
static int t5_continue(vb_lm *lm, const int32_t *ids, int n, float *logits) {
  t5_model *m = (t5_model *)lm;
  if (!m->prefilled || m->beams != 1 || m->len != 1)
    return vb_error("t5: scoring needs a fresh prefill with one beam");
  if (n < 1) return vb_error("t5: empty continuation");
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= m->vocab)
      return vb_error("t5: token %d of the continuation is outside the vocabulary (%d)", ids[i],
                      m->vocab);
  size_t bias_need;
  if (!vb_mul_ok((size_t)m->heads * n, (size_t)(m->len + n), &bias_need) ||
      grow_floats(&m->bias, &m->bias_cap, bias_need) != 0)
    return vb_error("t5: cannot allocate the decoder position bias for %d tokens", n);
  if (cache_reserve(m, m->slots, m->len + n) != 0 || scratch_reserve(m, &m->s, n) != 0) return -1;
  if (run_decoder(m, ids, n, DEC_CONTINUE, m->xk, m->xv, m->n_in, &m->s, m->bias, logits) != 0)
    return -1;
  return 0;
}

/* ---- public T5 extras ---- */

int vb_t5_encode(vb_lm *lm, float **out, int *n_rows) {
  if (!lm || lm->kind != VB_LM_T5) return vb_error("vb_t5_encode: not a T5 model");
  t5_model *m = (t5_model *)lm;
  if (!m->in) return vb_error("t5: encode before set_input");
  int n = m->n_in;
  t5_scratch s = {0};
  float *bias = NULL, *o = NULL;
  size_t bias_cap = 0, bias_need;
  int rc = -1;
  if (scratch_reserve(m, &s, n) != 0) goto done;
  if (!vb_mul_ok((size_t)m->heads * n, (size_t)n, &bias_need) ||
      grow_floats(&bias, &bias_cap, bias_need) != 0)
    goto done;
  o = vb_malloc((size_t)n * m->d * sizeof(float));
  if (!o) goto done;
  if (run_encoder(m, m->in, n, &s, bias, o) != 0) goto done;
  *out = o;
  *n_rows = n;
  o = NULL;
  rc = 0;
done:
  free(o);
  vb_free_aligned(bias);
  scratch_free(&s);
  return rc;
}

int vb_t5_decode_full(vb_lm *lm, const int32_t *dec_ids, int n, float *logits) {
  if (!lm || lm->kind != VB_LM_T5) return vb_error("vb_t5_decode_full: not a T5 model");
  t5_model *m = (t5_model *)lm;
  if (!m->in) return vb_error("t5: decode before set_input");
  if (n < 1) return vb_error("t5: decode of %d decoder ids", n);
  for (int i = 0; i < n; i++)
    if (dec_ids[i] < 0 || dec_ids[i] >= m->vocab)
      return vb_error("t5: decoder id %d at position %d is outside the vocabulary (%d)", dec_ids[i],
                      i, m->vocab);
  int ne = m->n_in, rows = ne > n ? ne : n;
  t5_scratch s = {0};
  float *bias = NULL, *enc = NULL, *xk = NULL, *xv = NULL;
  size_t bias_cap = 0, bias_need, xbytes;
  int rc = -1;
  if (scratch_reserve(m, &s, rows) != 0) goto done;
  if (!vb_mul_ok((size_t)m->heads * rows, (size_t)rows, &bias_need) ||
      grow_floats(&bias, &bias_cap, bias_need) != 0)
    goto done;
  if (!vb_mul_ok((size_t)ne * m->n_dec_layers * m->inner, sizeof(float), &xbytes)) {
    vb_error("t5: cross-attention size overflow");
    goto done;
  }
  enc = vb_malloc_aligned((size_t)ne * m->d * sizeof(float));
  xk = vb_malloc_aligned(xbytes);
  xv = vb_malloc_aligned(xbytes);
  if (!enc || !xk || !xv) goto done;
  if (run_encoder(m, m->in, ne, &s, bias, enc) != 0 || cross_kv(m, enc, ne, xk, xv) != 0 ||
      run_decoder(m, dec_ids, n, DEC_FULL, xk, xv, ne, &s, bias, logits) != 0)
    goto done;
  rc = 0;
done:
  vb_free_aligned(enc);
  vb_free_aligned(xk);
  vb_free_aligned(xv);
  vb_free_aligned(bias);
  scratch_free(&s);
  return rc;
}

/* ---- construction ---- */

static void release_block(t5_block *b) {
  vb_linear *ls[] = {&b->self.q,  &b->self.k,  &b->self.v, &b->self.o, &b->cross.q, &b->cross.k,
                     &b->cross.v, &b->cross.o, &b->wi0,    &b->wi1,    &b->wo};
  for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
    vb_linear_release(ls[i]);
}

static void t5_destroy(vb_lm *lm) {
  t5_model *m = (t5_model *)lm;
  if (!m) return;
  for (int l = 0; m->enc && l < m->n_enc_layers; l++)
    release_block(&m->enc[l]);
  for (int l = 0; m->dec && l < m->n_dec_layers; l++)
    release_block(&m->dec[l]);
  vb_linear_release(&m->head);
  free(m->enc);
  free(m->dec);
  vb_free_aligned(m->in);
  vb_free_aligned(m->enc_out);
  vb_free_aligned(m->xk);
  vb_free_aligned(m->xv);
  vb_free_aligned(m->ck);
  vb_free_aligned(m->cv);
  free(m->slot_of);
  free(m->slot_new);
  free(m->slot_used);
  vb_free_aligned(m->bias);
  scratch_free(&m->s);
  free(m);
}

#define LM VB_T5_LM

static int bind_linear(vb_weights *w, const char *prefix, int out, int in, void *dst) {
  return vb_weights_linear(w, prefix, out, in, 0, dst);
}

static int load_block(vb_weights *w, const vb_t5_config *c, const char *stack, int i, int decoder,
                      t5_block *b) {
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

int vb_t5_create(vb_weights *w, const vb_model_config *cfg, vb_lm **out) {
  *out = NULL;
  if (cfg->lm_kind != VB_LM_T5)
    return vb_error("vb_t5_create: the config's language model is not T5");
  const vb_t5_config *c = &cfg->t5;
  if (c->d_model < 1 || c->d_kv < 1 || c->num_heads < 1 || c->d_ff < 1 || c->vocab_size < 1)
    return vb_error(
        "t5: config has non-positive sizes (d_model %d, d_kv %d, num_heads %d, d_ff %d, "
        "vocab_size %d)",
        c->d_model, c->d_kv, c->num_heads, c->d_ff, c->vocab_size);
  if (c->num_layers < 1 || c->num_decoder_layers < 1)
    return vb_error("t5: config needs at least one encoder and one decoder block (num_layers %d, "
                    "num_decoder_layers %d)",
                    c->num_layers, c->num_decoder_layers);
  /* both stacks need max_exact = buckets/4 >= 1 for the log-spaced buckets */
  if (c->relative_attention_num_buckets < 4 || c->relative_attention_max_distance < 1)
    return vb_error("t5: relative_attention_num_buckets %d must be at least 4 and "
                    "relative_attention_max_distance %d positive",
                    c->relative_attention_num_buckets, c->relative_attention_max_distance);
  if ((int64_t)c->num_heads * c->d_kv > (1 << 20))
    return vb_error("t5: num_heads %d x d_kv %d is too large", c->num_heads, c->d_kv);
  if (cfg->decoder_start_token_id < 0 || cfg->decoder_start_token_id >= c->vocab_size)
    return vb_error("t5: decoder_start_token_id %d is outside the vocabulary (%d)",
                    (int)cfg->decoder_start_token_id, c->vocab_size);

  t5_model *m = vb_calloc(1, sizeof *m);
  if (!m) return -1;
  m->c = *c;
  m->d = c->d_model;
  m->dkv = c->d_kv;
  m->heads = c->num_heads;
  m->inner = c->num_heads * c->d_kv;
  m->dff = c->d_ff;
  m->vocab = c->vocab_size;
  m->start_id = cfg->decoder_start_token_id;
  if (strcmp(c->dense_act, "relu") == 0)
    m->act = ACT_RELU;
  else if (strcmp(c->dense_act, "gelu_new") == 0)
    m->act = ACT_GELU_TANH;
  else if (strcmp(c->dense_act, "gelu") == 0)
    m->act = ACT_GELU_ERF;
  else if (strcmp(c->dense_act, "silu") == 0)
    m->act = ACT_SILU;
  else {
    free(m);
    return vb_error("t5: unsupported dense activation %s", c->dense_act);
  }
  m->enc = vb_calloc((size_t)c->num_layers, sizeof *m->enc);
  m->dec = vb_calloc((size_t)c->num_decoder_layers, sizeof *m->dec);
  if (!m->enc || !m->dec) {
    t5_destroy(&m->base);
    return -1;
  }
  m->n_enc_layers = c->num_layers;
  m->n_dec_layers = c->num_decoder_layers;
  if (vb_t5_load_stacks(w, c, &m->enc_embed, &m->dec_embed, &m->enc_rel, &m->dec_rel, &m->enc_ln,
                        &m->dec_ln))
    goto fail;
  for (int l = 0; l < m->n_enc_layers; l++)
    if (load_block(w, c, "encoder", l, 0, &m->enc[l])) goto fail;
  for (int l = 0; l < m->n_dec_layers; l++)
    if (load_block(w, c, "decoder", l, 1, &m->dec[l])) goto fail;
  if (c->tie_word_embeddings) {
    /* tied: the head is the shared embedding and the decoder output is
     * rescaled by d_model^-0.5 first (transformers' T5 convention) */
    const char *name =
        vb_tt_find(&w->tt, LM "shared.weight") ? LM "shared" : LM "decoder.embed_tokens";
    if (vb_weights_linear(w, name, m->vocab, m->d, 0, &m->head)) goto fail;
    m->head_scale = (float)pow((double)m->d, -0.5);
  } else {
    if (vb_weights_linear(w, LM "lm_head", m->vocab, m->d, 0, &m->head)) goto fail;
    m->head_scale = 1.0f;
  }

  m->base.kind = VB_LM_T5;
  m->base.embed_dim = m->d;
  m->base.vocab_size = m->vocab;
  m->base.max_positions = 0; /* relative positions: no fixed limit */
  m->base.gen.vocab_size = m->vocab;
  m->base.gen.prefill = t5_prefill;
  m->base.gen.step = t5_step;
  m->base.gen.reorder = t5_reorder;
  m->base.set_input = t5_set_input;
  m->base.embed = t5_embed;
  m->base.continue_logits = t5_continue;
  m->base.destroy = t5_destroy;
  *out = &m->base;
  return 0;
fail:
  vb_error_context("loading the T5 language model");
  t5_destroy(&m->base);
  return -1;
}
