/* vblip-bench: full-size random-weight VideoBLIP-OPT-2.7b built in memory
 * (ViT-g 39x1408, Q-Former 12x768, OPT 32x2560), run through the real model
 * code, timed per stage and per compute type against this machine's own
 * ceilings measured in the same run (large-buffer read bandwidth; a large bf16
 * matmul). Prints a table and writes JSON.
 *
 *   vblip-bench [--frames 8] [--prompt 20] [--tokens 20] [--threads N]
 *               [--json bench.json] [--no-f32] [--no-f32-lm] [--no-q8] [--no-bf16-lm]
 *               [--no-visual]
 *
 * Language-model rows: bf16 weights, q8_0 weights (the synthetic linear weights
 * quantized in memory as `vblip convert --type q8_0` writes them, embeddings
 * kept as in the bf16 model; bf16 compute, so the engine's q8_0 kernels run),
 * and f32. --no-visual skips the vision encoder and Q-Former and feeds the
 * language models random query embeddings.
 *
 * Stages are built and freed one after another, so the f32 copies never sit
 * beside the bf16 ones. */
#include <cjson/cJSON.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tensor_table.h"
#include "kernels/kernels.h"
#include "kernels/q8_kernels.h"
#include "models/config.h"
#include "models/lm.h"
#include "models/qformer.h"
#include "models/vit.h"
#include "models/weights.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static const char *CONFIG_JSON =
    "{\"model_type\":\"blip-2\",\"num_query_tokens\":32,\"vision_config\":{},\"qformer_config\":{},"
    "\"text_config\":{\"model_type\":\"opt\",\"hidden_size\":2560,\"ffn_dim\":10240,"
    "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"max_position_embeddings\":2048,"
    "\"word_embed_proj_dim\":2560,\"vocab_size\":50272,\"bos_token_id\":2,\"eos_token_id\":50118,"
    "\"pad_token_id\":1}}";

/* ---- random tensors ---- */

static uint64_t g_seed = 1;

static void fill_random(void *dst, vb_dtype dt, size_t n, float scale, uint64_t seed) {
#pragma omp parallel
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t a = n * t / nt, b = n * (t + 1) / nt;
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)t * 0xbf58476d1ce4e5b9ull + 1;
    for (size_t i = a; i < b; i++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      float v = ((float)(s >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
      if (dt == VB_DT_BF16) ((uint16_t *)dst)[i] = vb_float_to_bf16(v);
      else ((float *)dst)[i] = v;
    }
  }
}

/* kind: 0 random weight, 1 ones (norm weight), 2 zeros (bias) */
static int add_tensor(vb_weights *w, vb_dtype dt, const char *name, int kind, int ndim, int64_t d0,
                      int64_t d1, int64_t d2, int64_t d3) {
  int64_t shape[4] = {d0, d1, d2, d3};
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  vb_dtype use = kind == 0 ? dt : VB_DT_F32;
  /* q8_0: the linear layers' matrices (as convert does), embeddings in bf16 */
  if (use == VB_DT_Q8_0 && (ndim != 2 || strstr(name, "embed") || shape[1] % 32 != 0)) use = VB_DT_BF16;
  size_t bytes;
  if (!vb_dtype_bytes(use, (int64_t)n, &bytes)) return vb_error("bad tensor size");
  void *h = malloc(bytes); /* the table frees what it keeps with free() */
  if (!h) return vb_error("out of memory");
  if (use == VB_DT_Q8_0) { /* the same random values as the other types, quantized */
    float *f = vb_malloc_aligned(n * sizeof(float));
    if (!f) return vb_error("out of memory");
    fill_random(f, VB_DT_F32, n, 0.035f, g_seed++);
    vb_quantize_q8_0(f, (int64_t)n, h);
    vb_free_aligned(f);
  } else if (kind == 0) fill_random(h, use, n, 0.035f, g_seed++);
  else if (kind == 1) for (size_t i = 0; i < n; i++) ((float *)h)[i] = 1.0f;
  else memset(h, 0, bytes);
  if (vb_tt_add(&w->tt, name, use, ndim, shape, h, bytes) != 0) return -1;
  return vb_tt_keep(&w->tt, h);
}

#define W(kind, nd, a, b, c, d, ...)                                           \
  do {                                                                         \
    snprintf(nm, sizeof nm, __VA_ARGS__);                                      \
    if (add_tensor(w, dt, nm, kind, nd, a, b, c, d) != 0) return -1;           \
  } while (0)
#define LIN(o, i, ...) W(0, 2, o, i, 0, 0, __VA_ARGS__)
#define VEC1(n, ...) W(1, 1, n, 0, 0, 0, __VA_ARGS__)
#define VEC0(n, ...) W(2, 1, n, 0, 0, 0, __VA_ARGS__)

static int build_vision(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  char nm[256];
  const vb_vision_config *v = &c->vision;
  int D = v->hidden_size, F = v->intermediate_size, P = v->patch_size;
  int seq = (v->image_size / P) * (v->image_size / P) + 1;
  W(0, 3, 1, 1, D, 0, "vision_model.embeddings.class_embedding");
  W(0, 4, D, 3, P, P, "vision_model.embeddings.patch_embedding.weight");
  VEC0(D, "vision_model.embeddings.patch_embedding.bias");
  W(0, 3, 1, seq, D, 0, "vision_model.embeddings.position_embedding");
  for (int l = 0; l < v->num_hidden_layers; l++) {
    const char *p = "vision_model.encoder.layers";
    VEC1(D, "%s.%d.layer_norm1.weight", p, l);
    VEC0(D, "%s.%d.layer_norm1.bias", p, l);
    VEC1(D, "%s.%d.layer_norm2.weight", p, l);
    VEC0(D, "%s.%d.layer_norm2.bias", p, l);
    LIN(3 * D, D, "%s.%d.self_attn.qkv.weight", p, l);
    VEC0(3 * D, "%s.%d.self_attn.qkv.bias", p, l);
    LIN(D, D, "%s.%d.self_attn.projection.weight", p, l);
    VEC0(D, "%s.%d.self_attn.projection.bias", p, l);
    LIN(F, D, "%s.%d.mlp.fc1.weight", p, l);
    VEC0(F, "%s.%d.mlp.fc1.bias", p, l);
    LIN(D, F, "%s.%d.mlp.fc2.weight", p, l);
    VEC0(D, "%s.%d.mlp.fc2.bias", p, l);
  }
  VEC1(D, "vision_model.post_layernorm.weight");
  VEC0(D, "vision_model.post_layernorm.bias");
  return 0;
}

static int build_qformer(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  char nm[256];
  const vb_qformer_config *q = &c->qformer;
  int H = q->hidden_size, F = q->intermediate_size, E = q->encoder_hidden_size;
  W(0, 3, 1, c->num_query_tokens, H, 0, "query_tokens");
  VEC1(H, "qformer.layernorm.weight");
  VEC0(H, "qformer.layernorm.bias");
  for (int l = 0; l < q->num_hidden_layers; l++) {
    const char *p = "qformer.encoder.layer";
    const char *att[2] = {"attention", "crossattention"};
    for (int a = 0; a < 2; a++) {
      if (a == 1 && l % q->cross_attention_frequency != 0) continue;
      int in = a ? E : H;
      LIN(H, H, "%s.%d.%s.attention.query.weight", p, l, att[a]);
      VEC0(H, "%s.%d.%s.attention.query.bias", p, l, att[a]);
      LIN(H, in, "%s.%d.%s.attention.key.weight", p, l, att[a]);
      VEC0(H, "%s.%d.%s.attention.key.bias", p, l, att[a]);
      LIN(H, in, "%s.%d.%s.attention.value.weight", p, l, att[a]);
      VEC0(H, "%s.%d.%s.attention.value.bias", p, l, att[a]);
      LIN(H, H, "%s.%d.%s.output.dense.weight", p, l, att[a]);
      VEC0(H, "%s.%d.%s.output.dense.bias", p, l, att[a]);
      VEC1(H, "%s.%d.%s.output.LayerNorm.weight", p, l, att[a]);
      VEC0(H, "%s.%d.%s.output.LayerNorm.bias", p, l, att[a]);
    }
    LIN(F, H, "%s.%d.intermediate_query.dense.weight", p, l);
    VEC0(F, "%s.%d.intermediate_query.dense.bias", p, l);
    LIN(H, F, "%s.%d.output_query.dense.weight", p, l);
    VEC0(H, "%s.%d.output_query.dense.bias", p, l);
    VEC1(H, "%s.%d.output_query.LayerNorm.weight", p, l);
    VEC0(H, "%s.%d.output_query.LayerNorm.bias", p, l);
  }
  LIN(c->lm_hidden, H, "language_projection.weight");
  VEC0(c->lm_hidden, "language_projection.bias");
  return 0;
}

static int build_opt(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  char nm[256];
  const vb_opt_config *o = &c->opt;
  int E = o->hidden_size, F = o->ffn_dim;
  const char *p = "language_model.model.decoder";
  LIN(o->vocab_size, E, "%s.embed_tokens.weight", p);
  LIN(o->max_position_embeddings + 2, E, "%s.embed_positions.weight", p);
  VEC1(E, "%s.final_layer_norm.weight", p);
  VEC0(E, "%s.final_layer_norm.bias", p);
  for (int l = 0; l < o->num_hidden_layers; l++) {
    const char *pr[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
    for (int i = 0; i < 4; i++) {
      LIN(E, E, "%s.layers.%d.self_attn.%s.weight", p, l, pr[i]);
      VEC0(E, "%s.layers.%d.self_attn.%s.bias", p, l, pr[i]);
    }
    VEC1(E, "%s.layers.%d.self_attn_layer_norm.weight", p, l);
    VEC0(E, "%s.layers.%d.self_attn_layer_norm.bias", p, l);
    LIN(F, E, "%s.layers.%d.fc1.weight", p, l);
    VEC0(F, "%s.layers.%d.fc1.bias", p, l);
    LIN(E, F, "%s.layers.%d.fc2.weight", p, l);
    VEC0(E, "%s.layers.%d.fc2.bias", p, l);
    VEC1(E, "%s.layers.%d.final_layer_norm.weight", p, l);
    VEC0(E, "%s.layers.%d.final_layer_norm.bias", p, l);
  }
  return 0;
}

static void weights_new(vb_weights *w, vb_compute compute, int pack) {
  memset(w, 0, sizeof *w);
  vb_tt_init(&w->tt);
  w->compute = compute;
  w->pack = pack;
}

/* ---- measurement helpers ---- */

static long rss_peak_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}
static void rss_peak_reset(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (f) {
    fputs("5", f);
    fclose(f);
  }
}

__attribute__((target("avx512f"))) static double read_sum_avx512(const float *p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
static double read_sum_c(const float *p, size_t n) {
  float s[8] = {0};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) s[j] += p[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

/* Best of several all-thread reads of a 2 GiB buffer, GB/s. */
static double measure_bandwidth(void) {
  size_t bytes = (size_t)2 << 30, n = bytes / sizeof(float);
  float *buf = vb_malloc_aligned(bytes);
  if (!buf) return 0;
  fill_random(buf, VB_DT_F32, n, 1.0f, 99);
  double best = 0, sink = 0;
  int avx = vb_cpu_has_avx512();
  for (int r = 0; r < 5; r++) {
    double t0 = vb_now_ms();
#pragma omp parallel reduction(+ : sink)
    {
      int t = omp_get_thread_num(), nt = omp_get_num_threads();
      size_t a = (n / 64) * t / nt * 64, b = (n / 64) * (t + 1) / nt * 64;
      sink += avx ? read_sum_avx512(buf + a, b - a) : read_sum_c(buf + a, b - a);
    }
    double s = (vb_now_ms() - t0) / 1e3, gbs = bytes / s / 1e9;
    if (gbs > best) best = gbs;
  }
  if (sink == 12345.0) printf(" ");
  vb_free_aligned(buf);
  return best;
}

/* A large bf16 product through the engine (packed weights): TFLOP/s. */
static double measure_matmul(int M, int N, int K) {
  float *w = vb_malloc_aligned((size_t)N * K * sizeof(float));
  float *x = vb_malloc_aligned((size_t)M * K * sizeof(float));
  float *y = vb_malloc_aligned((size_t)M * N * sizeof(float));
  if (!w || !x || !y) return 0;
  fill_random(w, VB_DT_F32, (size_t)N * K, 0.03f, 7);
  fill_random(x, VB_DT_F32, (size_t)M * K, 1.0f, 8);
  vb_linear l = {.out = N, .in = K, .dtype = VB_DT_F32, .w = w, .compute = VB_COMPUTE_BF16, .pack = 1};
  double best = 0;
  if (vb_linear_prepare(&l) == 0) {
    vb_linear_forward(&l, x, M, y); /* primitive creation */
    for (int r = 0; r < 5; r++) {
      double t0 = vb_now_ms();
      vb_linear_forward(&l, x, M, y);
      double tf = 2.0 * M * N * K / ((vb_now_ms() - t0) / 1e3) / 1e12;
      if (tf > best) best = tf;
    }
  }
  vb_linear_release(&l);
  vb_free_aligned(w), vb_free_aligned(x), vb_free_aligned(y);
  return best;
}

static double rel_l2(const float *a, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - ref[i];
    num += d * d, den += (double)ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : 0;
}

/* ---- stages ---- */

typedef struct {
  double ms_vision, tflops_vision, ms_qformer, ms_prefill, ms_token, gbs_decode;
  double weight_gb_lm, weight_gb_vision;
  long rss_vision_kb, rss_lm_kb;
  int have_vision, have_lm;
} dtype_result;

static double vision_flops(const vb_model_config *c, int T) {
  const vb_vision_config *v = &c->vision;
  double D = v->hidden_size, F = v->intermediate_size, P = v->patch_size;
  double np = (v->image_size / P) * (v->image_size / P), seq = np + 1;
  double per_layer = 2 * seq * (3 * D * D + D * D + 2 * D * F) + 4 * seq * seq * D;
  return T * (per_layer * v->num_hidden_layers + 2 * np * D * 3 * P * P);
}

/* Vision encoder + Q-Former for one compute type; keeps the query outputs. */
static int run_visual(const vb_model_config *c, vb_compute compute, int T, dtype_result *r,
                      float **queries, float **projected) {
  vb_weights w;
  vb_dtype dt = compute == VB_COMPUTE_BF16 ? VB_DT_BF16 : VB_DT_F32;
  rss_peak_reset();
  weights_new(&w, compute, 1);
  g_seed = 1000; /* the same random weights for both compute types */
  /* the same random values for both types (bf16: rounded), stored as the type runs */
  if (build_vision(&w, c, dt) != 0 || build_qformer(&w, c, dt) != 0) return -1;
  vb_vit vit;
  vb_qformer qf;
  vb_linear proj;
  double t0 = vb_now_ms();
  if (vb_vit_init(&vit, &w, &c->vision) != 0 ||
      vb_qformer_init(&qf, &w, &c->qformer, c->num_query_tokens) != 0)
    return -1;
  w.pack = 0;
  if (vb_weights_linear(&w, "language_projection", c->lm_hidden, c->qformer.hidden_size, 1, &proj) != 0)
    return -1;
  double t_prep = vb_now_ms() - t0;
  int S = c->vision.image_size, seq = vit.seq, D = c->vision.hidden_size, Q = c->num_query_tokens;
  float *pix = vb_malloc((size_t)3 * T * S * S * sizeof(float));
  float *vis = vb_malloc((size_t)T * seq * D * sizeof(float));
  *queries = vb_malloc((size_t)Q * c->qformer.hidden_size * sizeof(float));
  *projected = vb_malloc((size_t)Q * c->lm_hidden * sizeof(float));
  if (!pix || !vis || !*queries || !*projected) return -1;
  fill_random(pix, VB_DT_F32, (size_t)3 * T * S * S, 1.5f, 5);
  /* warm-up: one frame creates the primitives for... a different row count;
   * the timed run includes primitive creation for T frames (once per model) */
  if (vb_vit_forward(&vit, pix, 1, vis) != 0) return -1;
  if (vb_vit_forward(&vit, pix, T, vis) != 0) return -1; /* creates the T-frame primitives */
  t0 = vb_now_ms();
  if (vb_vit_forward(&vit, pix, T, vis) != 0) return -1;
  r->ms_vision = vb_now_ms() - t0;
  r->tflops_vision = vision_flops(c, T) / (r->ms_vision / 1e3) / 1e12;
  if (vb_qformer_forward(&qf, vis, T * seq, *queries) != 0) return -1;
  t0 = vb_now_ms();
  if (vb_qformer_forward(&qf, vis, T * seq, *queries) != 0) return -1;
  vb_linear_forward(&proj, *queries, Q, *projected);
  r->ms_qformer = vb_now_ms() - t0;
  r->have_vision = 1;
  r->rss_vision_kb = rss_peak_kb();
  double bytes = 0;
  for (size_t i = 0; i < w.tt.count; i++)
    if (strncmp(w.tt.items[i].name, "vision_model", 12) == 0)
      bytes += (double)vb_tensor_numel(&w.tt.items[i]) * (compute == VB_COMPUTE_BF16 ? 2 : 4);
  r->weight_gb_vision = bytes / 1e9;
  fprintf(stderr, "  %s visual: prepare %.0f ms, vision %.0f ms, qformer %.0f ms\n",
          compute == VB_COMPUTE_BF16 ? "bf16" : "f32", t_prep, r->ms_vision, r->ms_qformer);
  free(pix);
  free(vis);
  vb_linear_release(&proj);
  vb_qformer_free(&qf);
  vb_vit_free(&vit);
  vb_weights_close(&w);
  return 0;
}

static const char *dt_name(vb_dtype dt) {
  return dt == VB_DT_Q8_0 ? "q8_0" : dt == VB_DT_BF16 ? "bf16" : "f32";
}

/* The language model with weights stored as dt (computing in bf16 unless f32). */
static int run_lm(const vb_model_config *c, vb_dtype dt, const float *projected, int n_prompt,
                  int n_tokens, dtype_result *r, float **first_logits) {
  vb_weights w;
  vb_compute compute = dt == VB_DT_F32 ? VB_COMPUTE_F32 : VB_COMPUTE_BF16;
  rss_peak_reset();
  weights_new(&w, compute, 0);
  g_seed = 5000;
  if (build_opt(&w, c, dt) != 0) return -1;
  vb_lm *lm = NULL;
  if (vb_opt_create(&w, c, &lm) != 0) return -1;
  int V = lm->vocab_size, Q = c->num_query_tokens;
  int32_t *ids = vb_malloc((size_t)n_prompt * sizeof *ids);
  float *logits = vb_malloc((size_t)V * sizeof(float));
  if (!ids || !logits) return -1;
  ids[0] = c->bos_token_id;
  for (int i = 1; i < n_prompt; i++) ids[i] = 100 + 37 * i;
  /* warm-up prefill (primitive creation), then the timed one */
  if (lm->set_input(lm, projected, Q, ids, n_prompt) != 0 || lm->gen.prefill(lm, 1, logits) != 0) return -1;
  if (lm->set_input(lm, projected, Q, ids, n_prompt) != 0) return -1;
  double t0 = vb_now_ms();
  if (lm->gen.prefill(lm, 1, logits) != 0) return -1;
  r->ms_prefill = vb_now_ms() - t0;
  *first_logits = vb_malloc((size_t)V * sizeof(float));
  if (!*first_logits) return -1;
  memcpy(*first_logits, logits, (size_t)V * sizeof(float));
  double t_dec = 0;
  for (int s = 0; s < n_tokens; s++) {
    int32_t tok = 0;
    for (int i = 1; i < V; i++)
      if (logits[i] > logits[tok]) tok = i;
    t0 = vb_now_ms();
    if (lm->gen.step(lm, &tok, 1, logits) != 0) return -1;
    if (s > 0) t_dec += vb_now_ms() - t0; /* first step: warm-up */
  }
  r->ms_token = n_tokens > 1 ? t_dec / (n_tokens - 1) : 0;
  /* weights read per token: every linear layer plus the vocabulary head
   * (the head is the f32 tied embedding in opt.c) */
  const vb_opt_config *o = &c->opt;
  double lin = (double)o->num_hidden_layers * (4.0 * o->hidden_size * o->hidden_size + 2.0 * o->hidden_size * o->ffn_dim);
  double head = (double)o->vocab_size * o->hidden_size;
  r->weight_gb_lm = (lin * (dt == VB_DT_Q8_0 ? 34.0 / 32 : dt == VB_DT_BF16 ? 2 : 4) + head * 4) / 1e9;
  r->gbs_decode = r->ms_token > 0 ? r->weight_gb_lm / (r->ms_token / 1e3) : 0;
  r->have_lm = 1;
  r->rss_lm_kb = rss_peak_kb();
  fprintf(stderr, "  %s lm: prefill %.0f ms, decode %.1f ms/token\n", dt_name(dt), r->ms_prefill,
          r->ms_token);
  free(ids);
  free(logits);
  lm->destroy(lm);
  vb_weights_close(&w);
  return 0;
}

int main(int argc, char **argv) {
  int T = 8, n_prompt = 20, n_tokens = 20, threads = 0, do_f32 = 1, do_f32_lm = 1, do_q8 = 1;
  int do_visual = 1, do_bf16_lm = 1;
  const char *json_path = "bench.json";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--frames") && i + 1 < argc) T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) n_prompt = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n_tokens = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!strcmp(argv[i], "--no-f32")) do_f32 = 0;
    else if (!strcmp(argv[i], "--no-f32-lm")) do_f32_lm = 0;
    else if (!strcmp(argv[i], "--no-q8")) do_q8 = 0;
    else if (!strcmp(argv[i], "--no-visual")) do_visual = 0;
    else if (!strcmp(argv[i], "--no-bf16-lm")) do_bf16_lm = 0;
    else {
      fprintf(stderr, "usage: %s [--frames N] [--prompt N] [--tokens N] [--threads N] [--json PATH] "
                      "[--no-f32] [--no-f32-lm] [--no-q8] [--no-bf16-lm] [--no-visual]\n", argv[0]);
      return 2;
    }
  }
  if (T < 1 || n_prompt < 1 || n_tokens < 2) {
    fprintf(stderr, "frames, prompt >= 1 and tokens >= 2 please\n");
    return 2;
  }
  vb_cpu_init(); /* before any thread: AMX permission */
  if (threads > 0) omp_set_num_threads(threads);
  vb_model_config c;
  if (vb_config_parse(CONFIG_JSON, &c) != 0) {
    fprintf(stderr, "config: %s\n", vb_error_message());
    return 1;
  }
  int nthr = omp_get_max_threads();
  fprintf(stderr, "cpu: %s, %d threads\n", vb_cpu_describe(), nthr);
  double bw = measure_bandwidth();
  double mm = measure_matmul(4096, 4096, 4096);
  fprintf(stderr, "ceilings: read %.1f GB/s, bf16 matmul %.2f TFLOP/s\n", bw, mm);

  /* 0: bf16, 1: f32, 2: q8_0 (language model only) */
  dtype_result res[3];
  memset(res, 0, sizeof res);
  float *q[3] = {0}, *proj[3] = {0}, *logits[3] = {0}, *rand_proj = NULL;
  const vb_compute comp[2] = {VB_COMPUTE_BF16, VB_COMPUTE_F32};
  for (int k = 0; k < 2 && do_visual; k++) {
    if (k == 1 && !do_f32) break;
    if (run_visual(&c, comp[k], T, &res[k], &q[k], &proj[k]) != 0) {
      fprintf(stderr, "visual: %s\n", vb_error_message());
      return 1;
    }
  }
  if (!do_visual) { /* random query embeddings of the language model's width */
    rand_proj = vb_malloc((size_t)c.num_query_tokens * c.lm_hidden * sizeof(float));
    if (!rand_proj) return 1;
    fill_random(rand_proj, VB_DT_F32, (size_t)c.num_query_tokens * c.lm_hidden, 1.0f, 6);
  }
  const int lm_order[3] = {0, 2, 1};
  const vb_dtype lm_dt[3] = {VB_DT_BF16, VB_DT_F32, VB_DT_Q8_0};
  for (int i = 0; i < 3; i++) {
    int k = lm_order[i];
    if (k == 1 && !(do_f32 && do_f32_lm)) continue;
    if (k == 2 && !do_q8) continue;
    if (k == 0 && !do_bf16_lm) continue;
    /* every language model starts from the f32 pipeline's queries when there is one */
    const float *pin = rand_proj ? rand_proj : proj[1] ? proj[1] : proj[0];
    if (run_lm(&c, lm_dt[k], pin, n_prompt, n_tokens, &res[k], &logits[k]) != 0) {
      fprintf(stderr, "lm: %s\n", vb_error_message());
      return 1;
    }
  }
  double err_q = q[1] && q[0] ? rel_l2(q[0], q[1], (size_t)c.num_query_tokens * c.qformer.hidden_size) : -1;
  double err_l = logits[1] && logits[0] ? rel_l2(logits[0], logits[1], (size_t)c.opt.vocab_size) : -1;
  /* q8_0 logits against f32 (else against bf16) */
  const float *q8_ref = logits[1] ? logits[1] : logits[0];
  double err_l8 = logits[2] && q8_ref ? rel_l2(logits[2], q8_ref, (size_t)c.opt.vocab_size) : -1;

  printf("\nvblip bench: VideoBLIP-OPT-2.7b (random weights), %d frames, prompt %d+%d tokens, "
         "%d new tokens, %d threads\n", T, c.num_query_tokens, n_prompt, n_tokens, nthr);
  printf("cpu: %s\n", vb_cpu_describe());
  printf("ceilings: read bandwidth %.1f GB/s, bf16 matmul (4096^3) %.2f TFLOP/s\n\n", bw, mm);
  printf("%-6s %10s %8s %7s %10s %10s %11s %9s %8s %9s %9s\n", "dtype", "vision ms", "TFLOP/s",
         "of mm", "qformer ms", "prefill ms", "decode ms/t", "GB/s", "of bw", "ms/t/ideal", "peak GB");
  cJSON *root = cJSON_CreateObject();
  cJSON_AddStringToObject(root, "model", "VideoBLIP-OPT-2.7b random weights");
  cJSON_AddStringToObject(root, "cpu", vb_cpu_describe());
  cJSON_AddNumberToObject(root, "threads", nthr);
  cJSON_AddNumberToObject(root, "frames", T);
  cJSON_AddNumberToObject(root, "prompt_tokens", c.num_query_tokens + n_prompt);
  cJSON_AddNumberToObject(root, "new_tokens", n_tokens);
  cJSON_AddNumberToObject(root, "read_bandwidth_gbs", bw);
  cJSON_AddNumberToObject(root, "bf16_matmul_tflops", mm);
  cJSON *arr = cJSON_AddArrayToObject(root, "results");
  const int row_order[3] = {0, 2, 1};
  for (int i = 0; i < 3; i++) {
    int k = row_order[i];
    dtype_result *r = &res[k];
    if (!r->have_vision && !r->have_lm) continue;
    const char *name = k == 0 ? "bf16" : k == 1 ? "f32" : "q8_0";
    double ideal = r->weight_gb_lm / bw * 1e3;
    long rss = r->rss_vision_kb > r->rss_lm_kb ? r->rss_vision_kb : r->rss_lm_kb;
    if (r->have_vision)
      printf("%-6s %10.0f %8.2f %6.0f%% %10.0f", name, r->ms_vision, r->tflops_vision,
             100 * r->tflops_vision / mm, r->ms_qformer);
    else
      printf("%-6s %10s %8s %7s %10s", name, "-", "-", "-", "-");
    if (r->have_lm)
      printf(" %10.0f %11.1f %9.1f %7.0f%% %9.2f", r->ms_prefill, r->ms_token, r->gbs_decode,
             100 * r->gbs_decode / bw, r->ms_token / ideal);
    else
      printf(" %10s %11s %9s %8s %9s", "-", "-", "-", "-", "-");
    printf(" %8.2f\n", rss / 1048576.0);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "dtype", name);
    if (r->have_vision) {
      cJSON_AddNumberToObject(o, "vision_ms", r->ms_vision);
      cJSON_AddNumberToObject(o, "vision_tflops", r->tflops_vision);
      cJSON_AddNumberToObject(o, "vision_ratio_to_matmul", r->tflops_vision / mm);
      cJSON_AddNumberToObject(o, "qformer_ms", r->ms_qformer);
      cJSON_AddNumberToObject(o, "peak_rss_visual_gb", r->rss_vision_kb / 1048576.0);
    }
    if (r->have_lm) {
      cJSON_AddNumberToObject(o, "prefill_ms", r->ms_prefill);
      cJSON_AddNumberToObject(o, "decode_ms_per_token", r->ms_token);
      cJSON_AddNumberToObject(o, "decode_weight_gb", r->weight_gb_lm);
      cJSON_AddNumberToObject(o, "decode_gbs", r->gbs_decode);
      cJSON_AddNumberToObject(o, "decode_ratio_to_ideal", r->ms_token / ideal);
      cJSON_AddNumberToObject(o, "peak_rss_lm_gb", r->rss_lm_kb / 1048576.0);
    }
    cJSON_AddItemToArray(arr, o);
  }
  if (err_q >= 0) {
    printf("\nbf16 vs f32 relative error: final query vectors %.3g", err_q);
    cJSON_AddNumberToObject(root, "bf16_vs_f32_query_rel_err", err_q);
  }
  if (err_l >= 0) {
    printf("%sfirst-step logits %.3g", err_q >= 0 ? ", " : "\nbf16 vs f32 relative error: ", err_l);
    cJSON_AddNumberToObject(root, "bf16_vs_f32_logits_rel_err", err_l);
  }
  if (err_l8 >= 0) {
    const char *against = logits[1] ? "f32" : "bf16";
    printf("\nq8_0 vs %s relative error: first-step logits %.3g", against, err_l8);
    cJSON_AddNumberToObject(root, logits[1] ? "q8_0_vs_f32_logits_rel_err" : "q8_0_vs_bf16_logits_rel_err",
                            err_l8);
  }
  printf("\npeer (issue 6, PyTorch 1.13 bf16, same machine): vision 14.7 s, Q-Former 1.7 s, "
         "prefill 6.2 s, decode 530 ms/token\n");
  char *text = cJSON_Print(root);
  FILE *f = fopen(json_path, "w");
  if (f && text) {
    fputs(text, f);
    fputc('\n', f);
    printf("wrote %s\n", json_path);
  }
  if (f) fclose(f);
  free(text);
  cJSON_Delete(root);
  for (int k = 0; k < 3; k++) free(q[k]), free(proj[k]), free(logits[k]);
  free(rand_proj);
  return 0;
}
