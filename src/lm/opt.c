/* OPT decoder-only language model (OPTForCausalLM) with a per-beam KV cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "lm/lm.h"
#include "lm/lm_head.h"
#include "lm/opt_tensors.h"
#include "runtime/common.h"

#define I64(x) ((int64_t)(x))

typedef struct {
  vb_linear q, k, v, o, fc1, fc2;
  const float *attn_ln_w, *attn_ln_b, *ffn_ln_w, *ffn_ln_b;
} opt_layer;

typedef struct {
  vb_lm base;
  vb_opt_config cfg;
  const float *embed;   /* [vocab, E] (E = word_embed_proj_dim) */
  const float *pos;     /* [max_pos + 2, hidden] */
  vb_linear head;       /* [vocab, E]: lm_head or the tied embedding, f32 */
  vb_lm_head logits;    /* head, read through a bf16 / q8_0 copy with bf16 compute */
  int has_proj;
  vb_linear project_in, project_out;
  const float *final_w, *final_b; /* NULL when the model has no final layer norm */
  opt_layer *layers;
  /* input of the next generation */
  float *input;          /* [n_input, E] */
  int n_input, input_cap;
  /* KV cache: one buffer per beam, [layer][K|V][cap][hidden] */
  float **cache, **spare;
  int n_beams, cache_cap, cache_len;
  /* scratch */
  float *x, *h, *qb, *kb, *vb, *att, *ff, *e;
  int scratch_rows;
} opt_model;

static void act(const opt_model *m, float *x, size_t n) {
  if (m->cfg.activation_function[0] == 'r') vb_relu(x, n);
  else vb_gelu_erf(x, n);
}

static size_t beam_floats(const opt_model *m) {
  return (size_t)m->cfg.num_hidden_layers * 2 * m->cache_cap * m->cfg.hidden_size;
}

static float *cache_k(const opt_model *m, float *beam, int layer) {
  return beam + ((size_t)layer * 2) * m->cache_cap * m->cfg.hidden_size;
}
static float *cache_v(const opt_model *m, float *beam, int layer) {
  return beam + ((size_t)layer * 2 + 1) * m->cache_cap * m->cfg.hidden_size;
}

static void free_cache(opt_model *m) {
  for (int b = 0; b < m->n_beams; b++) {
    vb_free_aligned(m->cache ? m->cache[b] : NULL);
    vb_free_aligned(m->spare ? m->spare[b] : NULL);
  }
  free(m->cache);
  free(m->spare);
  m->cache = m->spare = NULL;
  m->n_beams = 0;
}

static int ensure_scratch(opt_model *m, int rows) {
  if (rows <= m->scratch_rows) return 0;
  int Hd = m->cfg.hidden_size, F = m->cfg.ffn_dim, E = m->cfg.word_embed_proj_dim;
  int wide = F > 3 * Hd ? F : 3 * Hd;
  float **bufs[] = {&m->x, &m->h, &m->qb, &m->kb, &m->vb, &m->att, &m->ff, &m->e};
  size_t widths[] = {Hd, Hd, Hd, Hd, Hd, Hd, wide, E > Hd ? E : Hd};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    vb_free_aligned(*bufs[i]);
    *bufs[i] = vb_malloc_aligned((size_t)rows * widths[i] * sizeof(float));
    if (!*bufs[i]) return -1;
  }
  m->scratch_rows = rows;
  return 0;
}

/* Runs rows [n] of embeddings (width E) at positions start.. through the decoder
 * for one beam's cache, or n_beams single rows (one per beam) when per_beam. Fills logits
 * for the last row, or for every row when per_beam or all_rows. */
static int forward(opt_model *m, const float *emb, int n, int start, int per_beam, int all_rows,
                   float *logits) {
  const vb_opt_config *c = &m->cfg;
  int Hd = c->hidden_size, heads = c->num_attention_heads;
  int hd = Hd / heads;
  if (ensure_scratch(m, n) != 0) return -1;
  float *x = m->x, *h = m->h;
  if (m->has_proj) {
    if (vb_linear_forward(&m->project_in, emb, n, x) != 0) return -1;
  } else {
    memcpy(x, emb, (size_t)n * Hd * sizeof(float));
  }
  for (int i = 0; i < n; i++) {
    int p = per_beam ? start : start + i;
    vb_add(x + (size_t)i * Hd, m->pos + (size_t)(p + 2) * Hd, Hd);
  }
  float scale = 1.0f / sqrtf((float)hd);
  for (int l = 0; l < c->num_hidden_layers; l++) {
    const opt_layer *L = &m->layers[l];
    if (c->do_layer_norm_before)
      vb_layernorm(x, h, n, Hd, L->attn_ln_w, L->attn_ln_b, 1e-5f);
    else
      memcpy(h, x, (size_t)n * Hd * sizeof(float));
    if (vb_linear_forward(&L->q, h, n, m->qb) != 0) return -1;
    if (vb_linear_forward(&L->k, h, n, m->kb) != 0) return -1;
    if (vb_linear_forward(&L->v, h, n, m->vb) != 0) return -1;
    if (per_beam) {
      for (int b = 0; b < n; b++) {
        float *K = cache_k(m, m->cache[b], l), *V = cache_v(m, m->cache[b], l);
        memcpy(K + (size_t)start * Hd, m->kb + (size_t)b * Hd, Hd * sizeof(float));
        memcpy(V + (size_t)start * Hd, m->vb + (size_t)b * Hd, Hd * sizeof(float));
        if (vb_attention(m->qb + (size_t)b * Hd, Hd, K, V, Hd, m->att + (size_t)b * Hd, Hd, 1,
                         start + 1, heads, hd, scale, NULL, 0, 0) != 0)
          return -1;
      }
    } else {
      float *K = cache_k(m, m->cache[0], l), *V = cache_v(m, m->cache[0], l);
      memcpy(K + (size_t)start * Hd, m->kb, (size_t)n * Hd * sizeof(float));
      memcpy(V + (size_t)start * Hd, m->vb, (size_t)n * Hd * sizeof(float));
      if (vb_attention(m->qb, Hd, K, V, Hd, m->att, Hd, n, start + n, heads, hd, scale, NULL, 1,
                       start) != 0)
        return -1;
    }
    if (vb_linear_forward(&L->o, m->att, n, h) != 0) return -1;
    vb_add(x, h, (size_t)n * Hd);
    if (!c->do_layer_norm_before) vb_layernorm(x, x, n, Hd, L->attn_ln_w, L->attn_ln_b, 1e-5f);
    if (c->do_layer_norm_before)
      vb_layernorm(x, h, n, Hd, L->ffn_ln_w, L->ffn_ln_b, 1e-5f);
    else
      memcpy(h, x, (size_t)n * Hd * sizeof(float));
    if (vb_linear_forward(&L->fc1, h, n, m->ff) != 0) return -1;
    act(m, m->ff, (size_t)n * c->ffn_dim);
    if (vb_linear_forward(&L->fc2, m->ff, n, h) != 0) return -1;
    vb_add(x, h, (size_t)n * Hd);
    if (!c->do_layer_norm_before) vb_layernorm(x, x, n, Hd, L->ffn_ln_w, L->ffn_ln_b, 1e-5f);
  }
  /* logits only where generation needs them */
  int every = per_beam || all_rows;
  int first = every ? 0 : n - 1, rows = every ? n : 1;
  float *xl = x + (size_t)first * Hd;
  if (m->final_w) vb_layernorm(xl, xl, rows, Hd, m->final_w, m->final_b, 1e-5f);
  const float *hidden = xl;
  if (m->has_proj) {
    if (vb_linear_forward(&m->project_out, xl, rows, m->e) != 0) return -1;
    hidden = m->e;
  }
  vb_lm_head_forward(&m->logits, hidden, rows, logits);
  return 0;
}

/* Rows of the token embedding table (width E) for ids, each checked against the vocabulary. */
static int opt_embed(const vb_lm *lm, const int32_t *ids, int n, float *out) {
  const opt_model *m = (const opt_model *)lm;
  int E = m->cfg.word_embed_proj_dim;
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
      return vb_error("token id %d is outside the vocabulary (%d)", ids[i], m->cfg.vocab_size);
    memcpy(out + (size_t)i * E, m->embed + (size_t)ids[i] * E, E * sizeof(float));
  }
  return 0;
}

static int opt_set_input(vb_lm *lm, const float *prefix, int n_prefix, const int32_t *ids, int n_ids) {
  opt_model *m = (opt_model *)lm;
  int E = m->cfg.word_embed_proj_dim, n = n_prefix + n_ids;
  if (n <= 0) return vb_error("OPT: empty input");
  if (n > m->cfg.max_position_embeddings && n_ids == 0) /* embeddings laid out by the caller */
    return vb_error("the input is %d positions but the language model supports at most %d", n,
                    m->cfg.max_position_embeddings);
  if (n > m->cfg.max_position_embeddings)
    return vb_error("the input is %d tokens (%d query tokens + %d prompt tokens) but the language "
                    "model supports at most %d positions",
                    n, n_prefix, n_ids, m->cfg.max_position_embeddings);
  if (n > m->input_cap) {
    float *p = vb_realloc(m->input, (size_t)n * E * sizeof(float));
    if (!p) return -1;
    m->input = p;
    m->input_cap = n;
  }
  if (n_prefix) memcpy(m->input, prefix, (size_t)n_prefix * E * sizeof(float));
  if (opt_embed(lm, ids, n_ids, m->input + (size_t)n_prefix * E) != 0) return -1;
  m->n_input = n;
  return 0;
}

static int opt_prefill(void *lmp, int n_beams, float *logits) {
  opt_model *m = lmp;
  if (n_beams < 1) n_beams = 1;
  if (m->n_input <= 0) return vb_error("OPT: no input set");
  free_cache(m);
  m->cache_cap = m->cfg.max_position_embeddings;
  m->cache = vb_calloc((size_t)n_beams, sizeof *m->cache);
  m->spare = vb_calloc((size_t)n_beams, sizeof *m->spare);
  if (!m->cache || !m->spare) return -1;
  m->n_beams = n_beams;
  /* Capacity grows with need: start from the input plus a margin. */
  int want = m->n_input + 64;
  m->cache_cap = want < m->cfg.max_position_embeddings ? want : m->cfg.max_position_embeddings;
  for (int b = 0; b < n_beams; b++)
    if (!(m->cache[b] = vb_malloc_aligned(beam_floats(m) * sizeof(float)))) return -1;
  if (forward(m, m->input, m->n_input, 0, 0, 0, logits) != 0) return -1;
  for (int b = 1; b < n_beams; b++) memcpy(m->cache[b], m->cache[0], beam_floats(m) * sizeof(float));
  m->cache_len = m->n_input;
  return 0;
}

static int grow_cache(opt_model *m) {
  int old_cap = m->cache_cap, Hd = m->cfg.hidden_size;
  int cap = old_cap * 2;
  if (cap > m->cfg.max_position_embeddings) cap = m->cfg.max_position_embeddings;
  if (cap <= old_cap) return vb_error("the language model's %d positions are used up", old_cap);
  m->cache_cap = cap;
  for (int b = 0; b < m->n_beams; b++) {
    float *nb = vb_malloc_aligned(beam_floats(m) * sizeof(float));
    if (!nb) {
      m->cache_cap = old_cap;
      return -1;
    }
    for (int l = 0; l < m->cfg.num_hidden_layers; l++)
      for (int kv = 0; kv < 2; kv++)
        memcpy(nb + ((size_t)l * 2 + kv) * cap * Hd, m->cache[b] + ((size_t)l * 2 + kv) * old_cap * Hd,
               (size_t)m->cache_len * Hd * sizeof(float));
    vb_free_aligned(m->cache[b]);
    m->cache[b] = nb;
    vb_free_aligned(m->spare[b]);
    m->spare[b] = NULL;
  }
  return 0;
}

static int opt_step(void *lmp, const int32_t *tokens, int n_beams, float *logits) {
  opt_model *m = lmp;
  if (n_beams != m->n_beams) return vb_error("OPT: step with %d beams after prefill with %d", n_beams, m->n_beams);
  if (m->cache_len >= m->cache_cap && grow_cache(m) != 0) return -1;
  int E = m->cfg.word_embed_proj_dim;
  float *emb = vb_malloc((size_t)n_beams * E * sizeof(float));
  if (!emb) return -1;
  int rc = opt_embed(&m->base, tokens, n_beams, emb);
  if (rc == 0) rc = forward(m, emb, n_beams, m->cache_len, 1, 0, logits);
  free(emb);
  if (rc == 0) m->cache_len++;
  return rc;
}

/* Scoring: the continuation's keys and values go into beam 0's cache after the
 * prefilled input without extending it (cache_len stays), so the next call
 * overwrites them and every continuation sees the same context. */
static int opt_continue(vb_lm *lm, const int32_t *ids, int n, float *logits) {
  opt_model *m = (opt_model *)lm;
  if (m->n_beams != 1 || m->cache_len <= 0)
    return vb_error("OPT: scoring needs a prefill with one beam");
  if (n <= 0) return vb_error("OPT: empty continuation");
  if (m->cache_len + n > m->cfg.max_position_embeddings)
    return vb_error("the input and the continuation are %d tokens but the language model supports "
                    "at most %d positions",
                    m->cache_len + n, m->cfg.max_position_embeddings);
  while (m->cache_len + n > m->cache_cap)
    if (grow_cache(m) != 0) return -1;
  int E = m->cfg.word_embed_proj_dim;
  float *emb = vb_malloc((size_t)n * E * sizeof(float));
  if (!emb) return -1;
  int rc = opt_embed(lm, ids, n, emb);
  if (rc == 0) rc = forward(m, emb, n, m->cache_len, 0, 1, logits);
  free(emb);
  return rc;
}

/* Beam b continues old beam src[b]: move buffers, copying only for beams
 * that are duplicated. */
static int opt_reorder(void *lmp, const int *src, int n_beams) {
  opt_model *m = lmp;
  if (n_beams != m->n_beams) return vb_error("OPT: reorder with %d beams, cache has %d", n_beams, m->n_beams);
  int Hd = m->cfg.hidden_size;
  float **next = m->spare; /* reuse the array of spare pointers as the new table */
  float **old = m->cache;
  int *used = vb_calloc((size_t)n_beams, sizeof *used);
  float **pool = vb_calloc((size_t)n_beams * 2, sizeof *pool);
  if (!used || !pool) {
    free(used);
    free(pool);
    return -1;
  }
  int npool = 0;
  for (int b = 0; b < n_beams; b++) {
    if (src[b] < 0 || src[b] >= n_beams) {
      free(used);
      free(pool);
      return vb_error("OPT: reorder source %d out of range", src[b]);
    }
  }
  for (int b = 0; b < n_beams; b++) used[src[b]]++;
  for (int b = 0; b < n_beams; b++) {
    if (!used[b]) pool[npool++] = old[b];
    if (next[b]) pool[npool++] = next[b];
  }
  float **table = vb_calloc((size_t)n_beams, sizeof *table);
  int *taken = vb_calloc((size_t)n_beams, sizeof *taken);
  int rc = 0;
  if (!table || !taken) rc = -1;
  for (int b = 0; rc == 0 && b < n_beams; b++) {
    int s = src[b];
    if (!taken[s]) {
      table[b] = old[s];
      taken[s] = 1;
    } else {
      float *buf = npool ? pool[--npool] : vb_malloc_aligned(beam_floats(m) * sizeof(float));
      if (!buf) {
        rc = -1;
        break;
      }
      for (int l = 0; l < m->cfg.num_hidden_layers; l++)
        for (int kv = 0; kv < 2; kv++)
          memcpy(buf + ((size_t)l * 2 + kv) * m->cache_cap * Hd,
                 old[s] + ((size_t)l * 2 + kv) * m->cache_cap * Hd,
                 (size_t)m->cache_len * Hd * sizeof(float));
      table[b] = buf;
    }
  }
  if (rc == 0) {
    for (int b = 0; b < n_beams; b++) {
      m->cache[b] = table[b];
      m->spare[b] = b < npool ? pool[b] : NULL;
    }
    for (int b = n_beams; b < npool; b++) vb_free_aligned(pool[b]);
  }
  free(table);
  free(taken);
  free(used);
  free(pool);
  return rc;
}

static void opt_destroy(vb_lm *lm) {
  opt_model *m = (opt_model *)lm;
  if (!m) return;
  free_cache(m);
  if (m->layers)
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
      opt_layer *L = &m->layers[l];
      vb_linear_release(&L->q);
      vb_linear_release(&L->k);
      vb_linear_release(&L->v);
      vb_linear_release(&L->o);
      vb_linear_release(&L->fc1);
      vb_linear_release(&L->fc2);
    }
  vb_lm_head_release(&m->logits);
  vb_linear_release(&m->head);
  vb_linear_release(&m->project_in);
  vb_linear_release(&m->project_out);
  free(m->layers);
  free(m->input);
  float *bufs[] = {m->x, m->h, m->qb, m->kb, m->vb, m->att, m->ff, m->e};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) vb_free_aligned(bufs[i]);
  free(m);
}

/* The vocabulary head behind the logits: f32, or with bf16 compute a bf16
 * copy (q8_0 when the checkpoint's linear layers are q8_0, q4_0 or q4_k) with exact top
 * candidates. Called after the layers: their stored type decides. */
static int head_logits(opt_model *m, vb_compute compute) {
  const float *w32 = m->head.w_f32 ? m->head.w_f32 : m->head.w;
  vb_dtype fast = VB_DT_F32;
  if (compute == VB_COMPUTE_BF16)
    fast = m->cfg.num_hidden_layers > 0 &&
                   (m->layers[0].fc1.dtype == VB_DT_Q8_0 || m->layers[0].fc1.dtype == VB_DT_Q4_0 ||
                    m->layers[0].fc1.dtype == VB_DT_Q4_K)
               ? VB_DT_Q8_0
               : VB_DT_BF16;
  return vb_lm_head_init(&m->logits, w32, m->head.bias, m->head.out, m->head.in, fast);
}

int vb_opt_create(vb_weights *w, const vb_model_config *mc, vb_lm **out) {
  *out = NULL;
  opt_model *m = vb_calloc(1, sizeof *m);
  if (!m) return -1;
  const vb_opt_config *c = &mc->opt;
  m->cfg = *c;
  int E = c->word_embed_proj_dim, V = c->vocab_size;
  if (vb_opt_load_embeddings(w, c, &m->embed, &m->pos)) goto fail;
  /* lm_head is tied to the embedding and absent from safetensors files */
  /* The head's weight is kept in float32 whatever the compute type: greedy
   * and beam decisions compare logits across the whole vocabulary, and bf16
   * rounding there flipped choices that transformers makes (measured on the
   * fixtures). With bf16 compute it is read through a bf16 copy (q8_0 when the
   * layers are q8_0) and the candidates for the top logit recomputed in f32
   * (lm_head.h). */
  int head_rc;
  if (vb_opt_has_lm_head(w)) {
    vb_compute saved = w->compute;
    w->compute = VB_COMPUTE_F32;
    head_rc = vb_weights_linear(w, VB_OPT_LM_HEAD, V, E, 0, &m->head);
    w->compute = saved;
  } else { /* tied: the f32 embedding table itself, not a second f32 copy (0.5 GB for 2.7b) */
    m->head = (vb_linear){.out = V, .in = E, .dtype = VB_DT_F32, .w = m->embed};
    head_rc = vb_linear_prepare(&m->head);
  }
  if (head_rc) goto fail;
  m->has_proj = E != c->hidden_size;
  if (m->has_proj) {
    vb_opt_linear_desc pin, pout;
    vb_opt_projection(c, VB_OPT_PROJECT_IN, &pin);
    vb_opt_projection(c, VB_OPT_PROJECT_OUT, &pout);
    if (vb_weights_linear(w, pin.name, pin.out, pin.in, 0, &m->project_in) ||
        vb_weights_linear(w, pout.name, pout.out, pout.in, 0, &m->project_out))
      goto fail;
  }
  if (vb_opt_load_final_norm(w, c, &m->final_w, &m->final_b)) goto fail;
  m->layers = vb_calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
  if (!m->layers) goto fail;
  for (int l = 0; l < c->num_hidden_layers; l++) {
    opt_layer *L = &m->layers[l];
    vb_linear *dst[VB_OPT_N_LINEAR] = {[VB_OPT_Q] = &L->q, [VB_OPT_K] = &L->k,     [VB_OPT_V] = &L->v,
                                       [VB_OPT_O] = &L->o, [VB_OPT_FC1] = &L->fc1, [VB_OPT_FC2] = &L->fc2};
    for (int i = 0; i < VB_OPT_N_LINEAR; i++) {
      vb_opt_linear_desc d;
      vb_opt_layer_linear(c, l, i, &d);
      if (vb_weights_linear(w, d.name, d.out, d.in, c->enable_bias, dst[i])) goto fail;
    }
    const float **ln[4] = {&L->attn_ln_w, &L->attn_ln_b, &L->ffn_ln_w, &L->ffn_ln_b};
    if (vb_opt_load_layer_norms(w, c, l, ln)) goto fail;
  }
  if (head_logits(m, w->compute)) goto fail;
  m->base.kind = VB_LM_OPT;
  m->base.embed_dim = E;
  m->base.vocab_size = V;
  m->base.max_positions = c->max_position_embeddings;
  m->base.gen.vocab_size = V;
  m->base.gen.prefill = opt_prefill;
  m->base.gen.step = opt_step;
  m->base.gen.reorder = opt_reorder;
  m->base.set_input = opt_set_input;
  m->base.embed = opt_embed;
  m->base.continue_logits = opt_continue;
  m->base.destroy = opt_destroy;
  *out = &m->base;
  return 0;
fail:
  opt_destroy(&m->base);
  return -1;
}
