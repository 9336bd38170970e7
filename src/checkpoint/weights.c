#include "checkpoint/weights.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "formats/torch_bin.h"
#include "kernels/gemm_internal.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/json.h"

typedef int (*load_fn)(vb_tensor_table *, const char *);

/* Loads every shard an index names. Shard names must be plain file names:
 * an index is as untrusted as any other input. */
static int load_index(vb_weights *w, const char *dir, const char *index_name, load_fn load) {
  char *path = vb_path_join(dir, index_name);
  char *text = NULL;
  int rc = -1;
  cJSON *root = NULL;
  char **seen = NULL;
  size_t nseen = 0;
  if (!path || vb_read_file(path, 64u << 20, &text, NULL) != 0) goto done;
  if (!(root = vb_json_parse(text, strlen(text), index_name))) goto done;
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(map)) {
    vb_error("%s: no weight_map object", path);
    goto done;
  }
  seen = vb_calloc((size_t)cJSON_GetArraySize(map) + 1, sizeof *seen);
  if (!seen) goto done;
  const cJSON *e;
  cJSON_ArrayForEach(e, map) {
    if (!cJSON_IsString(e)) {
      vb_error("%s: weight_map entry %s is not a file name", path, e->string);
      goto done;
    }
    const char *f = e->valuestring;
    if (!f[0] || strchr(f, '/') || strchr(f, '\\') || strcmp(f, "..") == 0 || strcmp(f, ".") == 0) {
      vb_error("%s: shard name \"%s\" is not a plain file name", path, f);
      goto done;
    }
    size_t i;
    for (i = 0; i < nseen; i++)
      if (strcmp(seen[i], f) == 0) break;
    if (i < nseen) continue;
    seen[nseen++] = (char *)f;
    char *shard = vb_path_join(dir, f);
    if (!shard) goto done;
    int r = load(&w->tt, shard);
    free(shard);
    if (r != 0) goto done;
  }
  /* every tensor the index names must be there */
  cJSON_ArrayForEach(e, map) {
    if (!vb_tt_find(&w->tt, e->string)) {
      vb_error("%s names tensor %s but its shard %s does not contain it", path, e->string,
               e->valuestring);
      goto done;
    }
  }
  rc = 0;
done:
  free(seen);
  cJSON_Delete(root);
  free(text);
  free(path);
  return rc;
}

static int try_single(vb_weights *w, const char *dir, const char *name, load_fn load, int *found) {
  char *p = vb_path_join(dir, name);
  if (!p) return -1;
  int rc = 0;
  if (vb_file_exists(p)) {
    *found = 1;
    rc = load(&w->tt, p);
  }
  free(p);
  return rc;
}

static int try_index(vb_weights *w, const char *dir, const char *name, load_fn load, int *found) {
  char *p = vb_path_join(dir, name);
  if (!p) return -1;
  int exists = vb_file_exists(p);
  free(p);
  if (!exists) return 0;
  *found = 1;
  return load_index(w, dir, name, load);
}

int vb_weights_open(const char *model_dir, vb_weights *w) {
  memset(w, 0, sizeof *w);
  vb_tt_init(&w->tt);
  /* a GGUF file (vblip convert) is a whole model directory in one file */
  if (vb_gguf_is_file(model_dir)) {
    if (vb_gguf_load(&w->tt, model_dir) != 0 || !(w->source = vb_strdup(model_dir))) {
      vb_weights_close(w);
      return -1;
    }
    return 0;
  }
  int found = 0;
  const struct {
    const char *name;
    int indexed;
    load_fn load;
  } sources[] = {
      {"model.safetensors", 0, vb_safetensors_load},
      {"model.safetensors.index.json", 1, vb_safetensors_load},
      {"pytorch_model.bin", 0, vb_torch_bin_load},
      {"pytorch_model.bin.index.json", 1, vb_torch_bin_load},
  };
  for (size_t i = 0; i < sizeof sources / sizeof sources[0] && !found; i++) {
    int rc = sources[i].indexed ? try_index(w, model_dir, sources[i].name, sources[i].load, &found)
                                : try_single(w, model_dir, sources[i].name, sources[i].load, &found);
    if (rc != 0) {
      vb_weights_close(w);
      return -1;
    }
    if (found) w->source = vb_path_join(model_dir, sources[i].name);
  }
  if (!found) {
    vb_weights_close(w);
    return vb_error("%s has no weights (model.safetensors, model.safetensors.index.json, "
                    "pytorch_model.bin or pytorch_model.bin.index.json)",
                    model_dir);
  }
  return 0;
}

void vb_weights_close(vb_weights *w) {
  vb_tt_free(&w->tt);
  for (size_t i = 0; i < w->nowned; i++) vb_free_aligned(w->owned[i]);
  free(w->owned);
  free(w->source);
  memset(w, 0, sizeof *w);
}

static const vb_tensor_info *find_v(vb_weights *w, const char *name, int ndim, va_list ap) {
  const vb_tensor_info *t = vb_tt_find(&w->tt, name);
  int64_t want[VB_MAX_DIMS];
  for (int i = 0; i < ndim && i < VB_MAX_DIMS; i++) want[i] = va_arg(ap, int64_t);
  if (!t) {
    vb_error("weights: tensor %s is missing", name);
    return NULL;
  }
  int ok = t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
  if (!ok) {
    char got[160] = "", exp[160] = "";
    for (int i = 0; i < t->ndim; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)t->shape[i]);
    for (int i = 0; i < ndim; i++)
      snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", i ? "," : "", (long long)want[i]);
    vb_error("weights: tensor %s has shape [%s], the config needs [%s]", name, got, exp);
    return NULL;
  }
  if (t->dtype != VB_DT_F32 && t->dtype != VB_DT_F16 && t->dtype != VB_DT_BF16 &&
      t->dtype != VB_DT_F64 && t->dtype != VB_DT_Q8_0 && t->dtype != VB_DT_Q4_0 &&
      t->dtype != VB_DT_Q4_K && t->dtype != VB_DT_I8 && t->dtype != VB_DT_Q8X16) {
    vb_error("weights: tensor %s has dtype %s, expected a floating-point type", name,
             vb_dtype_name(t->dtype));
    return NULL;
  }
  return t;
}

const vb_tensor_info *vb_weights_find(vb_weights *w, const char *name, int ndim, ...) {
  va_list ap;
  va_start(ap, ndim);
  const vb_tensor_info *t = find_v(w, name, ndim, ap);
  va_end(ap);
  return t;
}

static const float *as_f32(vb_weights *w, const vb_tensor_info *t) {
  if (t->dtype == VB_DT_I8 || t->dtype == VB_DT_Q8X16) {
    vb_error("weights: tensor %s is %s, which only linear layers' weights may be", t->name,
             t->dtype == VB_DT_I8 ? "int8" : "packed Q8_0 (Q8X16)");
    return NULL;
  }
  if (t->dtype == VB_DT_F32 && ((uintptr_t)t->data & 3) == 0) return t->data;
  int64_t n = vb_tensor_numel(t);
  float *buf = vb_malloc_aligned((size_t)n * sizeof(float));
  if (!buf) return NULL;
  void **owned = vb_realloc(w->owned, (w->nowned + 1) * sizeof *owned);
  if (!owned) {
    vb_free_aligned(buf);
    return NULL;
  }
  w->owned = owned;
  w->owned[w->nowned++] = buf;
  if (vb_convert_to_f32(t->dtype, t->data, n, buf) != 0) return NULL;
  return buf;
}

const float *vb_weights_f32(vb_weights *w, const char *name, int ndim, ...) {
  va_list ap;
  va_start(ap, ndim);
  const vb_tensor_info *t = find_v(w, name, ndim, ap);
  va_end(ap);
  return t ? as_f32(w, t) : NULL;
}

/* A layer that converted or repacked its weight no longer reads the stored
 * bytes: their mapped pages leave this process's memory. Without this a bf16
 * checkpoint's vision encoder counted twice in RSS: the mapped file and
 * oneDNN's packed copy. */
static void drop_mapped_pages(const vb_weights *w, const void *data, size_t bytes) {
  vb_tt_drop_pages(&w->tt, data, bytes);
}

/* Whether vb_weights_linear quantizes this layer's stored weight t at load,
 * and to which type (VB_DT_F32: not). */
static vb_dtype quant_type(const vb_weights *w, const vb_linear *l, const vb_tensor_info *t,
                           const char *prefix) {
  if (!w->quant || l->compute != VB_COMPUTE_BF16 || l->in % 32 != 0) return VB_DT_F32;
  if (t->dtype != VB_DT_F32 && t->dtype != VB_DT_F16 && t->dtype != VB_DT_BF16) return VB_DT_F32;
  if (strstr(prefix, "embed") || strstr(prefix, "shared")) return VB_DT_F32; /* tied tables */
  if (strstr(prefix, "lm_head")) return VB_DT_Q8_0;
  /* Q4_K needs whole 256-value super-blocks; narrower rows Q4_0 (as convert) */
  if (w->quant == VB_DT_Q4_K && l->in % VB_Q4K_BLOCK != 0) return VB_DT_Q4_0;
  return w->quant;
}

/* The stored weight rows quantized to dt into a new buffer, a few rows at a
 * time (no float32 copy of the whole matrix); NULL when out of memory. */
static void *quantize_weight(const vb_tensor_info *t, int out, int in, vb_dtype dt) {
  size_t bytes,
      rb = dt == VB_DT_Q8_0   ? vb_q8_row_bytes(in)
           : dt == VB_DT_Q4_K ? vb_q4k_row_bytes(in)
                              : vb_q4_row_bytes(in),
      esz = vb_dtype_size(t->dtype);
  if (!vb_mul_ok(rb, (size_t)out, &bytes)) return NULL;
  uint8_t *q = vb_malloc_aligned(bytes);
  int rows = in >= 65536 ? 1 : 65536 / in;
  float *f = vb_malloc_aligned((size_t)rows * in * sizeof(float));
  if (!q || !f) {
    vb_free_aligned(q), vb_free_aligned(f);
    return NULL;
  }
  for (int r = 0; r < out; r += rows) {
    int n = out - r < rows ? out - r : rows;
    vb_convert_to_f32(t->dtype, (const uint8_t *)t->data + (size_t)r * in * esz, (int64_t)n * in,
                      f);
    if (dt == VB_DT_Q8_0)
      vb_quantize_q8_0(f, (int64_t)n * in, q + (size_t)r * rb);
    else if (dt == VB_DT_Q4_K)
      vb_quantize_q4_k(f, (int64_t)n * in, q + (size_t)r * rb);
    else
      vb_quantize_q4_0(f, (int64_t)n * in, q + (size_t)r * rb);
  }
  vb_free_aligned(f);
  return q;
}

int vb_weights_linear(vb_weights *w, const char *prefix, int out, int in, int has_bias,
                      vb_linear *l) {
  char name[512];
  memset(l, 0, sizeof *l);
  snprintf(name, sizeof name, "%s.weight", prefix);
  const vb_tensor_info *t = vb_weights_find(w, name, 2, (int64_t)out, (int64_t)in);
  if (!t) return -1;
  l->out = out;
  l->in = in;
  l->dtype = t->dtype;
  l->w = t->data;
  l->compute = w->compute;
  l->pack = w->pack;
  if (t->dtype == VB_DT_I8) { /* vblip convert --vision-type int8: per-channel scales beside it */
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    const vb_tensor_info *st = vb_weights_find(w, name, 1, (int64_t)out);
    if (!st) return vb_error_context("int8 weight %s.weight", prefix);
    if (st->dtype != VB_DT_F32) return vb_error("weights: %s must be float32", name);
    l->w_scale = vb_weights_f32(w, name, 1, (int64_t)out);
    if (!l->w_scale) return -1;
    for (int i = 0; i < out; i++)
      if (!isfinite(l->w_scale[i]) || l->w_scale[i] < 0)
        return vb_error("weights: %s[%d] = %g is not a scale", name, i, l->w_scale[i]);
  }
  if (has_bias) {
    snprintf(name, sizeof name, "%s.bias", prefix);
    l->bias = vb_weights_f32(w, name, 1, (int64_t)out);
    if (!l->bias) return -1;
  }
  vb_dtype qt = quant_type(w, l, t, prefix);
  void *quantized = NULL;
  int in_place = 0;              /* a packed weight used where it lies: its pages stay */
  if (t->dtype == VB_DT_Q8X16) { /* vblip convert --packed: Q8_0 in the q8x16 layout */
    if ((uintptr_t)t->data & 63)
      return vb_error("weights: packed tensor %s.weight is not 64-byte aligned in memory", prefix);
    l->dtype = VB_DT_Q8_0;
    if (l->compute == VB_COMPUTE_BF16 && !vb_linear_wants_tile(l) && vb_q8x16_supported()) {
      l->w = NULL;
      l->w_packed = t->data;
      in_place = 1;
    } else { /* no AVX512-VNNI (or another compute): the Q8_0 rows, as a q8_0 file holds them */
      if (!(quantized = vb_malloc_aligned(vb_q8_row_bytes(in) * (size_t)out)))
        return vb_error("out of memory unpacking %s.weight", prefix);
      vb_q8x16_unpack(t->data, out, in, quantized);
      l->w = quantized;
      qt = VB_DT_Q8_0; /* the stored bytes are not read again */
    }
  } else if (qt != VB_DT_F32) {
    if (!(quantized = quantize_weight(t, out, in, qt)))
      return vb_error("out of memory quantizing %s.weight to %s", prefix, vb_dtype_name(qt));
    l->dtype = qt;
    l->w = quantized;
  }
  if (vb_linear_prepare(l) != 0) {
    vb_free_aligned(quantized);
    return -1;
  }
  if (quantized && !vb_linear_reads_stored(l)) { /* repacked: the quantized rows are not read */
    vb_free_aligned(quantized);
    l->w = NULL;
    quantized = NULL;
  }
  if (quantized) { /* read where it lies: owned by the table like other conversions */
    void **owned = vb_realloc(w->owned, (w->nowned + 1) * sizeof *owned);
    if (!owned) {
      vb_free_aligned(quantized);
      return -1;
    }
    w->owned = owned;
    w->owned[w->nowned++] = quantized;
  }
  if (!in_place && (qt != VB_DT_F32 || !vb_linear_reads_stored(l)))
    drop_mapped_pages(w, t->data, t->nbytes);
  return 0;
}

int vb_weights_linear_vision(vb_weights *w, const char *prefix, int out, int in, int has_bias,
                             unsigned kind, vb_linear *l) {
  vb_compute base = w->compute;
  if (w->int8) {
    char name[512];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const vb_tensor_info *t = vb_tt_find(&w->tt, name);
    if ((t && t->dtype == VB_DT_I8) || (w->int8_kinds & kind)) w->compute = VB_COMPUTE_INT8;
  }
  int rc = vb_weights_linear(w, prefix, out, in, has_bias, l);
  w->compute = base;
  return rc;
}

int vb_i8_kinds_parse(const char *s, unsigned *out) {
  static const struct {
    const char *name;
    unsigned bits;
  } names[] = {{"qkv", VB_I8_QKV}, {"proj", VB_I8_PROJ},       {"fc1", VB_I8_FC1},
               {"fc2", VB_I8_FC2}, {"qformer", VB_I8_QFORMER}, {"all", 31},
               {"none", 0}};
  if (!s) return -1;
  unsigned bits = 0;
  const char *p = s;
  while (*p) {
    size_t n = strcspn(p, ",");
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strlen(names[i].name) == n && strncmp(p, names[i].name, n) == 0) break;
    if (i == sizeof names / sizeof names[0]) return -1;
    bits |= names[i].bits;
    p += n;
    if (*p == ',') p++;
  }
  *out = bits;
  return 0;
}
