#include "synth_model.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "formats/safetensors.h"
#include "lm/opt_tensors.h"
#include "lm/t5_tensors.h"
#include "runtime/common.h"
#include "testutil.h"

/* What a weight is, for its random values' scale. */
typedef enum { K_LINEAR, K_EMBED, K_NORM, K_BIAS } kind;

typedef struct {
  vb_weights w; /* the new tensors (heap, kept by the table) and the fixture's borrowed ones */
  tu_rng rng;
} builder;

static int add(builder *b, kind k, const char *name, int ndim, int64_t d0, int64_t d1) {
  int64_t shape[2] = {d0, d1};
  size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
  float *v = malloc(n * sizeof *v);
  if (!CHECK(v != NULL, "out of memory for %s", name)) return -1;
  /* a linear layer's sums stay near unit size whatever its width */
  float scale = k == K_LINEAR ? 1.7f / sqrtf((float)d1) : k == K_EMBED ? 1.0f : 0.1f;
  for (size_t i = 0; i < n; i++)
    v[i] = (k == K_NORM ? 1.0f : 0.0f) + scale * tu_frand(&b->rng);
  if (!CHECK_OK(vb_tt_add(&b->w.tt, name, VB_DT_F32, ndim, shape, v, n * sizeof *v))) {
    free(v);
    return -1;
  }
  return CHECK_OK(vb_tt_keep(&b->w.tt, v)) ? 0 : -1;
}

static int add_linear(builder *b, const char *prefix, int out, int in, int bias) {
  char n[300];
  snprintf(n, sizeof n, "%s.weight", prefix);
  if (add(b, K_LINEAR, n, 2, out, in) != 0) return -1;
  snprintf(n, sizeof n, "%s.bias", prefix);
  return bias ? add(b, K_BIAS, n, 1, out, 0) : 0;
}

static int build_opt(builder *b, const vb_opt_config *o) {
  char n[300];
  const char *p = VB_OPT_DECODER;
  snprintf(n, sizeof n, "%s.embed_tokens.weight", p);
  if (add(b, K_EMBED, n, 2, o->vocab_size, o->word_embed_proj_dim)) return -1;
  snprintf(n, sizeof n, "%s.embed_positions.weight", p);
  if (add(b, K_EMBED, n, 2, o->max_position_embeddings + 2, o->hidden_size)) return -1;
  if (o->word_embed_proj_dim != o->hidden_size)
    for (int which = VB_OPT_PROJECT_IN; which <= VB_OPT_PROJECT_OUT; which++) {
      vb_opt_linear_desc d;
      vb_opt_projection(o, which, &d);
      char wn[300];
      snprintf(wn, sizeof wn, "%s.weight", d.name);
      if (add(b, K_LINEAR, wn, 2, d.out, d.in)) return -1;
    }
  const char *norms[2] = {"final_layer_norm.weight", "final_layer_norm.bias"};
  for (int i = 0; i < 2; i++) {
    snprintf(n, sizeof n, "%s.%s", p, norms[i]);
    if (add(b, i ? K_BIAS : K_NORM, n, 1, o->hidden_size, 0)) return -1;
  }
  for (int l = 0; l < o->num_hidden_layers; l++) {
    for (int which = 0; which < VB_OPT_N_LINEAR; which++) {
      vb_opt_linear_desc d;
      vb_opt_layer_linear(o, l, which, &d);
      if (add_linear(b, d.name, d.out, d.in, 1)) return -1;
    }
    const char *ln[4] = {"self_attn_layer_norm.weight", "self_attn_layer_norm.bias",
                         "final_layer_norm.weight", "final_layer_norm.bias"};
    for (int i = 0; i < 4; i++) {
      snprintf(n, sizeof n, "%s.layers.%d.%s", p, l, ln[i]);
      if (add(b, i % 2 ? K_BIAS : K_NORM, n, 1, o->hidden_size, 0)) return -1;
    }
  }
  return 0;
}

/* vb_t5_load_block's linear callback: here it creates the tensor it names. */
static int t5_linear(vb_weights *w, const char *prefix, int out, int in, void *dst) {
  (void)w;
  return add_linear(dst, prefix, out, in, 0);
}

static int build_t5(builder *b, const vb_t5_config *t) {
  char n[300];
  if (add(b, K_EMBED, VB_T5_LM "shared.weight", 2, t->vocab_size, t->d_model)) return -1;
  if (!t->tie_word_embeddings &&
      add(b, K_LINEAR, VB_T5_LM "lm_head.weight", 2, t->vocab_size, t->d_model))
    return -1;
  const char *stack[2] = {"encoder", "decoder"};
  void *lin[VB_T5_N_LINEAR];
  for (int i = 0; i < VB_T5_N_LINEAR; i++)
    lin[i] = b;
  const float *unused;
  const float **norm[VB_T5_N_NORM] = {&unused, &unused, &unused};
  for (int s = 0; s < 2; s++) {
    snprintf(n, sizeof n,
             VB_T5_LM "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight", stack[s]);
    if (add(b, K_EMBED, n, 2, t->relative_attention_num_buckets, t->num_heads)) return -1;
    snprintf(n, sizeof n, VB_T5_LM "%s.final_layer_norm.weight", stack[s]);
    if (add(b, K_NORM, n, 1, t->d_model, 0)) return -1;
    for (int l = 0; l < (s ? t->num_decoder_layers : t->num_layers); l++) {
      /* the norms first: vb_t5_load_block looks them up as it goes */
      for (int j = 0; j <= s + 1; j++) {
        snprintf(n, sizeof n, VB_T5_LM "%s.block.%d.layer.%d.layer_norm.weight", stack[s], l, j);
        if (add(b, K_NORM, n, 1, t->d_model, 0)) return -1;
      }
      if (!CHECK_OK(vb_t5_load_block(&b->w, t, stack[s], l, s, t5_linear, lin, norm))) return -1;
    }
  }
  return 0;
}

static int copy_file(const char *from, const char *to) {
  char *data = NULL;
  size_t len = 0;
  if (!CHECK_OK(vb_read_file(from, (size_t)1 << 30, &data, &len))) return -1;
  FILE *f = fopen(to, "wb");
  int ok = f && fwrite(data, 1, len, f) == len;
  if (f && fclose(f) != 0) ok = 0;
  free(data);
  return CHECK(ok, "cannot write %s", to) ? 0 : -1;
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  int ok = f && fputs(text, f) >= 0;
  if (f && fclose(f) != 0) ok = 0;
  return CHECK(ok, "cannot write %s", path) ? 0 : -1;
}

static int is_weight_file(const char *name) {
  return strncmp(name, "model", 5) == 0 || strncmp(name, "pytorch_model", 13) == 0;
}

/* Every file of the fixture but its weights, and config.json with text_config changed. */
static int copy_model_files(const char *fixture, const char *out_dir, const char *text_json) {
  DIR *d = opendir(fixture);
  if (!CHECK(d != NULL, "cannot list %s", fixture)) return -1;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.' || is_weight_file(e->d_name) || strcmp(e->d_name, "config.json") == 0)
      continue;
    char *from = vb_path_join(fixture, e->d_name), *to = vb_path_join(out_dir, e->d_name);
    rc = from && to ? copy_file(from, to) : -1;
    free(from);
    free(to);
  }
  closedir(d);
  if (rc != 0) return -1;
  char *path = vb_path_join(fixture, "config.json"), *text = NULL;
  if (!path || !CHECK_OK(vb_read_file(path, 1 << 20, &text, NULL))) {
    free(path);
    return -1;
  }
  free(path);
  cJSON *root = cJSON_Parse(text), *changes = cJSON_Parse(text_json);
  free(text);
  cJSON *tc = root ? cJSON_GetObjectItemCaseSensitive(root, "text_config") : NULL;
  rc = -1;
  if (CHECK(tc && cJSON_IsObject(changes), "bad config or text_json %s", text_json)) {
    for (cJSON *c = changes->child; c; c = c->next) {
      cJSON_DeleteItemFromObjectCaseSensitive(tc, c->string);
      cJSON_AddItemToObject(tc, c->string, cJSON_Duplicate(c, 1));
    }
    char *out = cJSON_Print(root);
    path = vb_path_join(out_dir, "config.json");
    rc = out && path ? write_text(path, out) : -1;
    free(out);
    free(path);
  }
  cJSON_Delete(root);
  cJSON_Delete(changes);
  return rc;
}

/* The table's tensors in n_shards files of about equal size (and their index). */
static int write_shards(const vb_tensor_table *tt, const char *out_dir, int n_shards) {
  size_t n = tt->count, total = 0;
  vb_st_entry *e = calloc(n ? n : 1, sizeof *e);
  if (!CHECK(e != NULL, "out of memory")) return -1;
  for (size_t i = 0; i < n; i++) {
    const vb_tensor_info *t = &tt->items[i];
    e[i] = (vb_st_entry){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
    memcpy(e[i].shape, t->shape, sizeof t->shape);
    total += t->nbytes;
  }
  cJSON *index = cJSON_CreateObject(), *map = cJSON_CreateObject();
  cJSON_AddItemToObject(cJSON_AddObjectToObject(index, "metadata"), "total_size",
                        cJSON_CreateNumber((double)total));
  cJSON_AddItemToObject(index, "weight_map", map);
  int rc = 0;
  size_t first = 0, done = 0;
  for (int s = 0; s < n_shards && rc == 0; s++) {
    size_t last = first, bytes = done;
    /* up to this shard's share of the bytes (the last shard takes the rest) */
    while (last < n && (s == n_shards - 1 || bytes < total * (size_t)(s + 1) / (size_t)n_shards))
      bytes += tt->items[last++].nbytes;
    char name[64];
    if (n_shards == 1)
      snprintf(name, sizeof name, "model.safetensors");
    else
      snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
    for (size_t i = first; i < last; i++)
      cJSON_AddStringToObject(map, e[i].name, name);
    char *path = vb_path_join(out_dir, name);
    rc = path && CHECK_OK(vb_safetensors_write(path, e + first, last - first, NULL, NULL, 0)) ? 0
                                                                                              : -1;
    free(path);
    first = last;
    done = bytes;
  }
  if (rc == 0 && n_shards > 1) {
    char *text = cJSON_Print(index), *path = vb_path_join(out_dir, "model.safetensors.index.json");
    rc = text && path ? write_text(path, text) : -1;
    free(text);
    free(path);
  }
  cJSON_Delete(index);
  free(e);
  return rc;
}

int tu_synth_model(const char *fixture, const char *out_dir, const char *text_json, uint64_t seed,
                   int n_shards) {
  if (!CHECK(mkdir(out_dir, 0755) == 0, "mkdir %s failed", out_dir)) return -1;
  if (copy_model_files(fixture, out_dir, text_json) != 0) return -1;
  vb_model_config cfg;
  if (!CHECK_OK(vb_config_load(out_dir, &cfg))) return -1;
  vb_weights fx;
  if (!CHECK_OK(vb_weights_open(fixture, &fx))) return -1;
  builder b = {.rng = {seed}};
  vb_tt_init(&b.w.tt);
  int rc = 0;
  /* the fixture's vision encoder and Q-Former, borrowed from its mapping */
  for (size_t i = 0; i < fx.tt.count && rc == 0; i++) {
    const vb_tensor_info *t = &fx.tt.items[i];
    if (strncmp(t->name, "language_", 9) == 0)
      continue; /* language_model.*, language_projection.* */
    rc = CHECK_OK(vb_tt_add(&b.w.tt, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes))
             ? 0
             : -1;
  }
  if (rc == 0)
    rc = add_linear(&b, "language_projection", cfg.lm_hidden, cfg.qformer.hidden_size, 1);
  if (rc == 0) rc = cfg.lm_kind == VB_LM_OPT ? build_opt(&b, &cfg.opt) : build_t5(&b, &cfg.t5);
  if (rc == 0) rc = write_shards(&b.w.tt, out_dir, n_shards);
  vb_tt_free(&b.w.tt);
  vb_weights_close(&fx);
  return rc;
}

void tu_synth_remove(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *p = vb_path_join(dir, e->d_name);
    if (p) unlink(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}
