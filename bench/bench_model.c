/* The benchmark's models: full-size VideoBLIP configs with random weights
 * built in memory (no downloads), tensor names and shapes as the checkpoints
 * have them, so the real loaders and model code run on them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "formats/gguf.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "lm/t5_tensors.h"
#include "runtime/common.h"

static const char *OPT_JSON =
    "{\"model_type\":\"blip-2\",\"num_query_tokens\":32,\"vision_config\":{},\"qformer_config\":{},"
    "\"text_config\":{\"model_type\":\"opt\",\"hidden_size\":2560,\"ffn_dim\":10240,"
    "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"max_position_embeddings\":2048,"
    "\"word_embed_proj_dim\":2560,\"vocab_size\":50272,\"bos_token_id\":2,\"eos_token_id\":50118,"
    "\"pad_token_id\":1}}";

/* Flan-T5-XL (T5 v1.1): gated-GELU feed-forward, untied lm_head */
static const char *T5_JSON =
    "{\"model_type\":\"blip-2\",\"num_query_tokens\":32,\"vision_config\":{},\"qformer_config\":{},"
    "\"text_config\":{\"model_type\":\"t5\",\"d_model\":2048,\"d_ff\":5120,\"num_layers\":24,"
    "\"num_decoder_layers\":24,\"num_heads\":32,\"d_kv\":64,\"vocab_size\":32128,"
    "\"feed_forward_proj\":\"gated-gelu\",\"relative_attention_num_buckets\":32,"
    "\"relative_attention_max_distance\":128,\"tie_word_embeddings\":false,"
    "\"decoder_start_token_id\":0,\"eos_token_id\":1,\"pad_token_id\":0}}";

/* BLIP-2 OPT-6.7b: 32 layers x 4096, 32 heads of 128, ffn 16384 */
static const char *OPT_67_JSON =
    "{\"model_type\":\"blip-2\",\"num_query_tokens\":32,\"vision_config\":{},\"qformer_config\":{},"
    "\"text_config\":{\"model_type\":\"opt\",\"hidden_size\":4096,\"ffn_dim\":16384,"
    "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"max_position_embeddings\":2048,"
    "\"word_embed_proj_dim\":4096,\"vocab_size\":50272,\"bos_token_id\":2,\"eos_token_id\":50118,"
    "\"pad_token_id\":1}}";

/* BLIP-2 Flan-T5-XXL: d_model 4096, 64 heads of 64, d_ff 10240, 24 + 24 blocks */
static const char *T5_XXL_JSON =
    "{\"model_type\":\"blip-2\",\"num_query_tokens\":32,\"vision_config\":{},\"qformer_config\":{},"
    "\"text_config\":{\"model_type\":\"t5\",\"d_model\":4096,\"d_ff\":10240,\"num_layers\":24,"
    "\"num_decoder_layers\":24,\"num_heads\":64,\"d_kv\":64,\"vocab_size\":32128,"
    "\"feed_forward_proj\":\"gated-gelu\",\"relative_attention_num_buckets\":32,"
    "\"relative_attention_max_distance\":128,\"tie_word_embeddings\":false,"
    "\"decoder_start_token_id\":0,\"eos_token_id\":1,\"pad_token_id\":0}}";

#define TINY_LAYERS 2
#define TINY_VOCAB 4096

int bench_config(vb_lm_kind lm, int tiny, vb_model_config *c) {
  return bench_config_sized(lm, 0, tiny, c);
}

const char *bench_config_json(vb_lm_kind lm, int big) {
  return lm == VB_LM_T5 ? (big ? T5_XXL_JSON : T5_JSON) : (big ? OPT_67_JSON : OPT_JSON);
}

int bench_config_sized(vb_lm_kind lm, int big, int tiny, vb_model_config *c) {
  const char *json =
      lm == VB_LM_T5 ? (big ? T5_XXL_JSON : T5_JSON) : (big ? OPT_67_JSON : OPT_JSON);
  if (vb_config_parse(json, c) != 0) return -1;
  if (!tiny) return 0;
  c->vision.num_hidden_layers = c->qformer.num_hidden_layers = TINY_LAYERS;
  c->opt.num_hidden_layers = c->t5.num_layers = c->t5.num_decoder_layers = TINY_LAYERS;
  c->opt.vocab_size = c->t5.vocab_size = TINY_VOCAB;
  if (c->eos_token_id >= TINY_VOCAB) c->eos_token_id = 2; /* OPT's "\n" is out of range: </s> */
  return 0;
}

const char *bench_model_name(vb_lm_kind lm) {
  return lm == VB_LM_T5 ? "VideoBLIP-Flan-T5-XL" : "VideoBLIP-OPT-2.7b";
}
const char *bench_lm_name(vb_lm_kind lm) {
  return lm == VB_LM_T5 ? "t5" : "opt";
}
const char *bench_model_name_sized(vb_lm_kind lm, int big) {
  return big ? (lm == VB_LM_T5 ? "BLIP-2-Flan-T5-XXL" : "BLIP-2-OPT-6.7b") : bench_model_name(lm);
}
const char *bench_lm_label(vb_lm_kind lm, int big) {
  return big ? (lm == VB_LM_T5 ? "t5-xxl" : "opt-6.7b") : bench_lm_name(lm);
}

/* ---- random tensors ---- */

static uint64_t g_seed = 1;

/* splitmix64 of (stream, index): independent of the thread split, so a q8_0
 * tensor can be quantized chunk by chunk from the same values */
static inline float rnd(uint64_t seed, size_t i, float scale) {
  uint64_t z = (seed << 40 ^ (uint64_t)i) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return ((float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
}

void bench_fill_random(void *dst, vb_dtype dt, size_t n, float scale, uint64_t seed) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float v = rnd(seed, i, scale);
    if (dt == VB_DT_BF16)
      ((uint16_t *)dst)[i] = vb_float_to_bf16(v);
    else
      ((float *)dst)[i] = v;
  }
}

/* The same values quantized 1024 at a time by quantize (blocks of `block` values stored in
 * block_bytes; n a multiple of block): a whole f32 copy per tensor would leave freed holes
 * between the quantized tensors that glibc keeps resident, inflating the measured peak RSS
 * by gigabytes. */
static void fill_random_quant(void *dst, size_t n, float scale, uint64_t seed,
                              void (*quantize)(const float *, int64_t, void *), size_t block,
                              size_t block_bytes) {
  size_t chunks = (n + 1023) / 1024;
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks; c++) {
    float f[1024];
    size_t i0 = c * 1024, m = n - i0 < 1024 ? n - i0 : 1024;
    for (size_t i = 0; i < m; i++)
      f[i] = rnd(seed, i0 + i, scale);
    quantize(f, (int64_t)m, (uint8_t *)dst + i0 / block * block_bytes);
  }
}

/* Looked up row by row rather than multiplied: convert keeps them unquantized. */
static int is_embedding(const char *name) {
  size_t n = strlen(name);
  return strstr(name, "embed") || strstr(name, "query_tokens") ||
         strstr(name, "relative_attention_bias") ||
         (n >= 13 && strcmp(name + n - 13, "shared.weight") == 0);
}

static int g_shapes_only;
void bench_shapes_only(int on) {
  g_shapes_only = on;
}

/* kind: 0 random weight, 1 ones (norm weight), 2 zeros (bias) */
static int add_tensor(vb_weights *w, vb_dtype dt, const char *name, int kind, int ndim, int64_t d0,
                      int64_t d1, int64_t d2, int64_t d3) {
  int64_t shape[4] = {d0, d1, d2, d3};
  size_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= (size_t)shape[i];
  vb_dtype use = kind == 0 ? dt : VB_DT_F32;
  /* q8_0 / q4_0: the linear layers' matrices (as convert does), embeddings in
   * bf16; with q4_0 a vocabulary head of its own stays q8_0 (as convert) */
  if ((use == VB_DT_Q8_0 || use == VB_DT_Q4_0 || use == VB_DT_Q4_K) &&
      (ndim != 2 || is_embedding(name) || shape[1] % VB_Q8_BLOCK != 0))
    use = VB_DT_BF16;
  if ((use == VB_DT_Q4_0 || use == VB_DT_Q4_K) && strstr(name, "lm_head")) use = VB_DT_Q8_0;
  if (use == VB_DT_Q4_K && shape[1] % VB_Q4K_BLOCK != 0) use = VB_DT_Q4_0; /* as convert */
  size_t bytes;
  if (!vb_dtype_bytes(use, (int64_t)n, &bytes)) return vb_error("bad tensor size");
  if (g_shapes_only) return vb_tt_add(&w->tt, name, use, ndim, shape, NULL, bytes);
  /* the table frees what it keeps with free(); vb_malloc gives large blocks
   * huge pages as the library does for the weights it converts at load */
  void *h = vb_malloc(bytes);
  if (!h) return vb_error("out of memory");
  if (use == VB_DT_Q8_0)
    fill_random_quant(h, n, 0.035f, g_seed++, vb_quantize_q8_0, VB_Q8_BLOCK, VB_Q8_BLOCK_BYTES);
  else if (use == VB_DT_Q4_0)
    fill_random_quant(h, n, 0.035f, g_seed++, vb_quantize_q4_0, VB_Q4_BLOCK, VB_Q4_BLOCK_BYTES);
  else if (use == VB_DT_Q4_K)
    fill_random_quant(h, n, 0.035f, g_seed++, vb_quantize_q4_k, VB_Q4K_BLOCK, VB_Q4K_BLOCK_BYTES);
  else if (kind == 0)
    bench_fill_random(h, use, n, 0.035f, g_seed++);
  else if (kind == 1) {
    for (size_t i = 0; i < n; i++)
      ((float *)h)[i] = 1.0f;
  } else
    memset(h, 0, bytes);
  if (vb_tt_add(&w->tt, name, use, ndim, shape, h, bytes) != 0) {
    free(h);
    return -1;
  }
  return vb_tt_keep(&w->tt, h);
}

#define W(kind, nd, a, b, c, d, ...)                                                               \
  do {                                                                                             \
    snprintf(nm, sizeof nm, __VA_ARGS__);                                                          \
    if (add_tensor(w, dt, nm, kind, nd, a, b, c, d) != 0) return -1;                               \
  } while (0)
#define LIN(o, i, ...) W(0, 2, o, i, 0, 0, __VA_ARGS__)
#define VEC1(n, ...) W(1, 1, n, 0, 0, 0, __VA_ARGS__)
#define VEC0(n, ...) W(2, 1, n, 0, 0, 0, __VA_ARGS__)

int bench_build_vision(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  char nm[256];
  const vb_vision_config *v = &c->vision;
  int D = v->hidden_size, F = v->intermediate_size, P = v->patch_size;
  int seq = (v->image_size / P) * (v->image_size / P) + 1;
  g_seed = 1000;
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

int bench_build_qformer(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  char nm[256];
  const vb_qformer_config *q = &c->qformer;
  int H = q->hidden_size, F = q->intermediate_size, E = q->encoder_hidden_size;
  g_seed = 3000;
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
  LIN(c->lm_hidden, H, "language_projection.weight"); /* lm_hidden: OPT 2560, T5 d_model 2048 */
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

/* vb_t5_load_block's linear callback, here creating the tensor it names; every
 * destination slot points at the storage type. */
static int add_t5_linear(vb_weights *w, const char *prefix, int out, int in, void *dt) {
  char nm[256];
  snprintf(nm, sizeof nm, "%s.weight", prefix);
  return add_tensor(w, *(const vb_dtype *)dt, nm, 0, 2, out, in, 0, 0);
}

static int build_t5(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  char nm[256];
  const vb_t5_config *t = &c->t5;
  int d = t->d_model;
  /* safetensors keeps the encoder's and decoder's tied embeddings once, as shared */
  LIN(t->vocab_size, d, VB_T5_LM "shared.weight");
  if (!t->tie_word_embeddings) LIN(t->vocab_size, d, VB_T5_LM "lm_head.weight");
  void *lin[VB_T5_N_LINEAR];
  for (int i = 0; i < VB_T5_N_LINEAR; i++)
    lin[i] = &dt;
  const float *unused;
  const float **norm[VB_T5_N_NORM] = {&unused, &unused, &unused};
  const char *stack[2] = {"encoder", "decoder"};
  for (int s = 0; s < 2; s++) {
    W(0, 2, t->relative_attention_num_buckets, t->num_heads, 0, 0,
      VB_T5_LM "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight", stack[s]);
    VEC1(d, VB_T5_LM "%s.final_layer_norm.weight", stack[s]);
    for (int l = 0; l < (s ? t->num_decoder_layers : t->num_layers); l++) {
      /* sub-layers: self-attention, (decoder) cross-attention, feed-forward; their
       * norms come first because vb_t5_load_block checks them as it goes */
      for (int j = 0; j <= s + 1; j++)
        VEC1(d, VB_T5_LM "%s.block.%d.layer.%d.layer_norm.weight", stack[s], l, j);
      if (vb_t5_load_block(w, t, stack[s], l, s, add_t5_linear, lin, norm) != 0) return -1;
    }
  }
  return 0;
}

int bench_build_lm(vb_weights *w, const vb_model_config *c, vb_dtype dt) {
  g_seed = 5000;
  return c->lm_kind == VB_LM_T5 ? build_t5(w, c, dt) : build_opt(w, c, dt);
}

int bench_lm_create(vb_weights *w, const vb_model_config *c, vb_lm **out) {
  return c->lm_kind == VB_LM_T5 ? vb_t5_create(w, c, out) : vb_opt_create(w, c, out);
}

void bench_weights_new(vb_weights *w, vb_compute compute, int pack) {
  memset(w, 0, sizeof *w);
  vb_tt_init(&w->tt);
  w->compute = compute;
  w->pack = pack;
}

double bench_weight_bytes(const vb_weights *w) {
  double b = 0;
  for (size_t i = 0; i < w->tt.count; i++)
    b += (double)w->tt.items[i].nbytes;
  return b;
}

void bench_prompt_ids(const vb_model_config *c, int32_t *ids, int n) {
  int vocab = c->lm_kind == VB_LM_T5 ? c->t5.vocab_size : c->opt.vocab_size;
  for (int i = 0; i < n; i++)
    ids[i] = 100 + (37 * i) % (vocab - 200);
  if (c->lm_kind == VB_LM_T5)
    ids[n - 1] = c->eos_token_id;
  else
    ids[0] = c->bos_token_id;
}

/* Writes the table as a GGUF file at path (the layout `vblip convert` writes
 * tensors in), so the run maps its weights from a file as a user's converted
 * checkpoint is: the page cache holds them, and the loader can drop the pages
 * of layers it repacked (src/models/weights.c). */
static int write_gguf(const vb_weights *w, const char *path) {
  vb_gguf_writer *g = vb_gguf_writer_new();
  if (!g) return -1;
  int rc = -1;
  FILE *f = NULL;
  for (size_t i = 0; i < w->tt.count; i++) {
    const vb_tensor_info *t = &w->tt.items[i];
    if (vb_gguf_add_tensor(g, t->name, t->dtype, t->ndim, t->shape) != 0) goto out;
  }
  if (!(f = fopen(path, "wb"))) {
    vb_error("cannot write %s", path);
    goto out;
  }
  if (vb_gguf_write_header(g, f) != 0) goto out;
  for (size_t i = 0; i < w->tt.count; i++)
    if (vb_gguf_write_tensor(g, f, i, w->tt.items[i].data, w->tt.items[i].nbytes) != 0) goto out;
  if (fflush(f) != 0) {
    vb_error("writing %s failed", path);
    goto out;
  }
  rc = 0;
out:
  if (f) fclose(f);
  vb_gguf_writer_free(g);
  return rc;
}

int bench_weights_via_file(vb_weights *w) {
  /* written, the heap copy freed, mapped back, and unlinked at once (the
   * mapping keeps it; nothing is left behind) */
  const char *tmp = getenv("TMPDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/vblip-bench-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
  vb_compute compute = w->compute;
  int pack = w->pack;
  int wrc = write_gguf(w, path);
  vb_weights_close(w);
  bench_weights_new(w, compute, pack);
  if (wrc != 0 || vb_gguf_load(&w->tt, path) != 0) {
    unlink(path);
    return -1;
  }
  unlink(path);
  return 0;
}
