/* config.json parsing. Every default below is the transformers 4.33 class
 * default (Blip2VisionConfig, Blip2QFormerConfig, Blip2Config, OPTConfig,
 * T5Config): real checkpoints omit keys equal to those defaults. */
#include "checkpoint/config.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/json.h"

static void vision_defaults(vb_vision_config *v) {
  v->hidden_size = 1408;
  v->intermediate_size = 6144;
  v->num_hidden_layers = 39;
  v->num_attention_heads = 16;
  v->image_size = 224;
  v->patch_size = 14;
  v->num_channels = 3;
  v->layer_norm_eps = 1e-5f;
  v->qkv_bias = true;
  strcpy(v->hidden_act, "gelu");
}

static void qformer_defaults(vb_qformer_config *q) {
  q->hidden_size = 768;
  q->intermediate_size = 3072;
  q->num_hidden_layers = 12;
  q->num_attention_heads = 12;
  q->cross_attention_frequency = 2;
  q->encoder_hidden_size = 1408;
  q->layer_norm_eps = 1e-12f;
  q->hidden_dropout_prob = 0.1f;
  q->attention_probs_dropout_prob = 0.1f;
  strcpy(q->hidden_act, "gelu");
}

static void opt_defaults(vb_opt_config *o) {
  o->vocab_size = 50272;
  o->hidden_size = 768;
  o->ffn_dim = 3072;
  o->num_hidden_layers = 12;
  o->num_attention_heads = 12;
  o->max_position_embeddings = 2048;
  o->word_embed_proj_dim = -1; /* None: hidden_size */
  o->do_layer_norm_before = true;
  o->enable_bias = true;
  o->layer_norm_elementwise_affine = true;
  o->dropout = 0.1f;
  o->attention_dropout = 0.0f;
  o->layerdrop = 0.0f;
  strcpy(o->activation_function, "relu");
}

static void t5_defaults(vb_t5_config *t) {
  t->vocab_size = 32128;
  t->d_model = 512;
  t->d_kv = 64;
  t->d_ff = 2048;
  t->num_layers = 6;
  t->num_decoder_layers = -1; /* None: num_layers */
  t->num_heads = 8;
  t->relative_attention_num_buckets = 32;
  t->relative_attention_max_distance = 128;
  t->layer_norm_epsilon = 1e-6f;
  t->dropout_rate = 0.1f;
  t->tie_word_embeddings = true;
  t->gated = false;
  strcpy(t->dense_act, "relu");
}

/* Typed getters: absent or null keeps the default; a wrong type is an error. */
static int get_int(const cJSON *o, const char *section, const char *key, int *out, int min) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return 0;
  /* range first: converting a double outside int's range is undefined behaviour */
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX) ||
      v->valuedouble != (double)(int)v->valuedouble)
    return vb_error("config.json: %s%s must be an integer", section, key);
  if ((int)v->valuedouble < min)
    return vb_error("config.json: %s%s = %d is out of range (minimum %d)", section, key,
                    (int)v->valuedouble, min);
  *out = (int)v->valuedouble;
  return 0;
}

static int get_float(const cJSON *o, const char *section, const char *key, float *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v)) return vb_error("config.json: %s%s must be a number", section, key);
  *out = (float)v->valuedouble;
  return 0;
}

/* A layer norm's epsilon: finite and > 0 (a negative one passes the parse and
 * surfaces as NaN logits much later). */
static int get_eps(const cJSON *o, const char *section, const char *key, float *out) {
  if (get_float(o, section, key, out) != 0) return -1;
  if (!(*out > 0) || !isfinite(*out))
    return vb_error("config.json: %s%s = %g must be a positive number", section, key, (double)*out);
  return 0;
}

/* A dropout probability: in [0, 1], as torch.nn.Dropout accepts it. */
static int get_prob(const cJSON *o, const char *section, const char *key, float *out) {
  if (get_float(o, section, key, out) != 0) return -1;
  if (!(*out >= 0 && *out <= 1))
    return vb_error("config.json: %s%s = %g must be a probability in [0, 1]", section, key,
                    (double)*out);
  return 0;
}

static int get_bool(const cJSON *o, const char *section, const char *key, bool *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v)) return vb_error("config.json: %s%s must be true or false", section, key);
  *out = cJSON_IsTrue(v);
  return 0;
}

static int get_str(const cJSON *o, const char *section, const char *key, char *out, size_t cap) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
    return vb_error("config.json: %s%s must be a short string", section, key);
  strcpy(out, v->valuestring);
  return 0;
}

static int get_id(const cJSON *o, const char *key, int32_t *out) {
  int v = *out;
  if (get_int(o, "text_config.", key, &v, -1) != 0) return -1;
  *out = v;
  return 0;
}

static int parse_vision(const cJSON *o, vb_vision_config *v) {
  const char *s = "vision_config.";
  if (get_int(o, s, "hidden_size", &v->hidden_size, 1) ||
      get_int(o, s, "intermediate_size", &v->intermediate_size, 1) ||
      get_int(o, s, "num_hidden_layers", &v->num_hidden_layers, 0) ||
      get_int(o, s, "num_attention_heads", &v->num_attention_heads, 1) ||
      get_int(o, s, "image_size", &v->image_size, 1) ||
      get_int(o, s, "patch_size", &v->patch_size, 1) ||
      get_int(o, s, "num_channels", &v->num_channels, 1) ||
      get_eps(o, s, "layer_norm_eps", &v->layer_norm_eps) ||
      get_bool(o, s, "qkv_bias", &v->qkv_bias) ||
      get_str(o, s, "hidden_act", v->hidden_act, sizeof v->hidden_act))
    return -1;
  if (v->hidden_size % v->num_attention_heads)
    return vb_error("config.json: vision hidden_size %d is not divisible by %d heads",
                    v->hidden_size, v->num_attention_heads);
  if (v->image_size % v->patch_size)
    return vb_error("config.json: vision image_size %d is not a multiple of patch_size %d",
                    v->image_size, v->patch_size);
  if (v->num_channels != 3) return vb_error("config.json: vision num_channels must be 3");
  if (v->image_size > 4096)
    return vb_error("config.json: vision image_size %d is too large", v->image_size);
  return 0;
}

static int parse_qformer(const cJSON *o, vb_qformer_config *q) {
  const char *s = "qformer_config.";
  if (get_int(o, s, "hidden_size", &q->hidden_size, 1) ||
      get_int(o, s, "intermediate_size", &q->intermediate_size, 1) ||
      get_int(o, s, "num_hidden_layers", &q->num_hidden_layers, 0) ||
      get_int(o, s, "num_attention_heads", &q->num_attention_heads, 1) ||
      get_int(o, s, "cross_attention_frequency", &q->cross_attention_frequency, 1) ||
      get_int(o, s, "encoder_hidden_size", &q->encoder_hidden_size, 1) ||
      get_eps(o, s, "layer_norm_eps", &q->layer_norm_eps) ||
      get_prob(o, s, "hidden_dropout_prob", &q->hidden_dropout_prob) ||
      get_prob(o, s, "attention_probs_dropout_prob", &q->attention_probs_dropout_prob) ||
      get_str(o, s, "hidden_act", q->hidden_act, sizeof q->hidden_act))
    return -1;
  if (q->hidden_size % q->num_attention_heads)
    return vb_error("config.json: qformer hidden_size %d is not divisible by %d heads",
                    q->hidden_size, q->num_attention_heads);
  return 0;
}

static int parse_opt(const cJSON *o, vb_opt_config *p) {
  const char *s = "text_config.";
  if (get_int(o, s, "vocab_size", &p->vocab_size, 1) ||
      get_int(o, s, "hidden_size", &p->hidden_size, 1) ||
      get_int(o, s, "ffn_dim", &p->ffn_dim, 1) ||
      get_int(o, s, "num_hidden_layers", &p->num_hidden_layers, 0) ||
      get_int(o, s, "num_attention_heads", &p->num_attention_heads, 1) ||
      get_int(o, s, "max_position_embeddings", &p->max_position_embeddings, 1) ||
      get_int(o, s, "word_embed_proj_dim", &p->word_embed_proj_dim, 1) ||
      get_bool(o, s, "do_layer_norm_before", &p->do_layer_norm_before) ||
      get_bool(o, s, "enable_bias", &p->enable_bias) ||
      get_bool(o, s, "layer_norm_elementwise_affine", &p->layer_norm_elementwise_affine) ||
      get_prob(o, s, "dropout", &p->dropout) ||
      get_prob(o, s, "attention_dropout", &p->attention_dropout) ||
      get_prob(o, s, "layerdrop", &p->layerdrop) ||
      get_str(o, s, "activation_function", p->activation_function, sizeof p->activation_function))
    return -1;
  if (p->word_embed_proj_dim < 0) p->word_embed_proj_dim = p->hidden_size;
  if (p->hidden_size % p->num_attention_heads)
    return vb_error("config.json: text hidden_size %d is not divisible by %d heads", p->hidden_size,
                    p->num_attention_heads);
  if (strcmp(p->activation_function, "relu") && strcmp(p->activation_function, "gelu"))
    return vb_error("config.json: unsupported OPT activation_function %s", p->activation_function);
  return 0;
}

static int parse_t5(const cJSON *o, vb_t5_config *t) {
  const char *s = "text_config.";
  if (get_int(o, s, "vocab_size", &t->vocab_size, 1) || get_int(o, s, "d_model", &t->d_model, 1) ||
      get_int(o, s, "d_kv", &t->d_kv, 1) || get_int(o, s, "d_ff", &t->d_ff, 1) ||
      get_int(o, s, "num_layers", &t->num_layers, 0) ||
      get_int(o, s, "num_decoder_layers", &t->num_decoder_layers, 0) ||
      get_int(o, s, "num_heads", &t->num_heads, 1) ||
      get_int(o, s, "relative_attention_num_buckets", &t->relative_attention_num_buckets, 2) ||
      get_int(o, s, "relative_attention_max_distance", &t->relative_attention_max_distance, 1) ||
      get_eps(o, s, "layer_norm_epsilon", &t->layer_norm_epsilon) ||
      get_prob(o, s, "dropout_rate", &t->dropout_rate) ||
      get_bool(o, s, "tie_word_embeddings", &t->tie_word_embeddings))
    return -1;
  if (t->num_decoder_layers < 0) t->num_decoder_layers = t->num_layers;
  char proj[32] = "relu";
  if (get_str(o, s, "feed_forward_proj", proj, sizeof proj)) return -1;
  const char *act = proj;
  if (strncmp(proj, "gated-", 6) == 0) {
    t->gated = true;
    act = proj + 6;
  }
  /* T5Config maps "gated-gelu" to the tanh approximation (gelu_new). */
  if (strcmp(proj, "gated-gelu") == 0) act = "gelu_new";
  if (strcmp(act, "relu") && strcmp(act, "gelu_new") && strcmp(act, "gelu") && strcmp(act, "silu"))
    return vb_error("config.json: unsupported T5 feed_forward_proj %s", proj);
  strcpy(t->dense_act, act);
  return 0;
}

/* "eilev" anywhere in s, in any case. */
static bool mentions_eilev(const char *s) {
  static const char k[] = "eilev";
  for (; *s; s++) {
    size_t i = 0;
    while (k[i] && s[i] && (s[i] | 0x20) == k[i])
      i++;
    if (!k[i]) return true;
  }
  return false;
}

int vb_config_parse(const char *json_text, vb_model_config *c) {
  memset(c, 0, sizeof *c);
  vision_defaults(&c->vision);
  qformer_defaults(&c->qformer);
  opt_defaults(&c->opt);
  t5_defaults(&c->t5);
  c->num_query_tokens = 32;
  cJSON *root = vb_json_parse_unique(json_text, strlen(json_text), "config.json");
  if (!root) return -1;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return vb_error("config.json is not a JSON object");
  }
  int rc = -1;
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  if (cJSON_IsString(mt) && strcmp(mt->valuestring, "blip-2") != 0) {
    vb_error("config.json: model_type is \"%s\", expected \"blip-2\"", mt->valuestring);
    goto done;
  }
  const cJSON *vis = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
  const cJSON *qf = cJSON_GetObjectItemCaseSensitive(root, "qformer_config");
  const cJSON *txt = cJSON_GetObjectItemCaseSensitive(root, "text_config");
  if ((vis && !cJSON_IsObject(vis) && !cJSON_IsNull(vis)) ||
      (qf && !cJSON_IsObject(qf) && !cJSON_IsNull(qf)) ||
      (txt && !cJSON_IsObject(txt) && !cJSON_IsNull(txt))) {
    vb_error("config.json: vision_config, qformer_config and text_config must be objects");
    goto done;
  }
  if (parse_vision(vis, &c->vision) || parse_qformer(qf, &c->qformer)) goto done;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
  c->eilev = cJSON_IsString(name) && mentions_eilev(name->valuestring);
  if (get_int(root, "", "num_query_tokens", &c->num_query_tokens, 1)) goto done;
  /* Blip2Config: a missing text_config means OPT. */
  char lm_type[32] = "opt";
  if (get_str(txt, "text_config.", "model_type", lm_type, sizeof lm_type)) goto done;
  if (strcmp(lm_type, "opt") == 0) {
    c->lm_kind = VB_LM_OPT;
    c->use_decoder_only_language_model = true;
    c->bos_token_id = 2;
    c->eos_token_id = 2;
    c->pad_token_id = 1;
    c->decoder_start_token_id = -1;
    if (parse_opt(txt, &c->opt)) goto done;
    c->lm_hidden = c->opt.word_embed_proj_dim;
  } else if (strcmp(lm_type, "t5") == 0) {
    c->lm_kind = VB_LM_T5;
    c->use_decoder_only_language_model = false;
    c->bos_token_id = -1;
    c->eos_token_id = 1;
    c->pad_token_id = 0;
    c->decoder_start_token_id = -1;
    if (parse_t5(txt, &c->t5)) goto done;
    c->lm_hidden = c->t5.d_model;
  } else {
    vb_error("config.json: unsupported language model type \"%s\" (opt and t5 are supported)",
             lm_type);
    goto done;
  }
  if (get_id(txt, "bos_token_id", &c->bos_token_id) ||
      get_id(txt, "eos_token_id", &c->eos_token_id) ||
      get_id(txt, "pad_token_id", &c->pad_token_id) ||
      get_id(txt, "decoder_start_token_id", &c->decoder_start_token_id))
    goto done;
  /* T5 checkpoints start decoding from the pad id by convention. */
  if (c->lm_kind == VB_LM_T5 && c->decoder_start_token_id < 0)
    c->decoder_start_token_id = c->pad_token_id;
  if (c->qformer.encoder_hidden_size != c->vision.hidden_size) {
    vb_error("config.json: qformer encoder_hidden_size %d differs from vision hidden_size %d",
             c->qformer.encoder_hidden_size, c->vision.hidden_size);
    goto done;
  }
  rc = 0;
done:
  cJSON_Delete(root);
  return rc;
}

int vb_config_load(const char *model_dir, vb_model_config *c) {
  char *path = vb_path_join(model_dir, "config.json");
  if (!path) return -1;
  char *text;
  int rc = vb_read_file(path, 16u << 20, &text, NULL);
  if (rc == 0) { /* parse messages start with "config.json": no context to add */
    rc = vb_config_parse(text, c);
    free(text);
  }
  free(path);
  return rc;
}
