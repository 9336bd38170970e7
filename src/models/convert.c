/* vblip convert: any model directory vblip loads -> one GGUF file holding the
 * configs, the preprocessor settings, the tokenizer files and the weights
 * (f32, f16, bf16, Q8_0, Q4_0 or Q4_K linear weights). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/config.h"
#include "checkpoint/model_source.h"
#include "checkpoint/weights.h"
#include "formats/gguf.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/outfile.h"
#include "vblip.h"

typedef enum { T_F32, T_F16, T_BF16, T_Q8_0, T_Q4_0, T_Q4_K } target;

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_float(vb_dtype d) {
  return d == VB_DT_F32 || d == VB_DT_F16 || d == VB_DT_BF16 || d == VB_DT_F64 || d == VB_DT_Q8_0 ||
         d == VB_DT_Q8X16 || /* a packed file's language model */
         d == VB_DT_I8;      /* an int8 vision weight (its scales beside it) */
}

/* Embedding tables and learned tokens: looked up row by row, not multiplied. */
static bool is_embedding(const char *name) {
  return strstr(name, "embed") || ends_with(name, "shared.weight") || strstr(name, "query_tokens") ||
         strstr(name, "relative_attention_bias");
}

static vb_dtype target_dtype(const vb_tensor_info *t, target tg) {
  if (t->ndim < 2 || tg == T_F32) return VB_DT_F32;
  if (tg == T_F16) return VB_DT_F16;
  if (tg == T_BF16) return VB_DT_BF16;
  /* Q8_0: the linear layers' [out, in] matrices, in whole 32-value blocks */
  if (!(t->ndim == 2 && ends_with(t->name, ".weight") && t->shape[1] % 32 == 0 &&
        !is_embedding(t->name)))
    return VB_DT_F32;
  /* Q4_0: the language model's layers; its vocabulary head (where it has its
   * own), the vision encoder, Q-Former and projection stay Q8_0 (small next
   * to the language model, and 4-bit costs them more accuracy) */
  if ((tg == T_Q4_0 || tg == T_Q4_K) && strncmp(t->name, "language_model.", 15) == 0 &&
      !strstr(t->name, "lm_head")) {
    /* Q4_K: rows of whole 256-value super-blocks; narrower ones Q4_0, the
     * same 4.5 bits per value */
    if (tg == T_Q4_K && t->shape[1] % 256 == 0) return VB_DT_Q4_K;
    return VB_DT_Q4_0;
  }
  return VB_DT_Q8_0;
}

/* Whether --packed stores this Q8_0 matrix in the q8x16 layout: the language
 * model's linear layers, which the VNNI kernels read only through that layout.
 * Not its vocabulary head (T5's own lm_head, OPT's where a checkpoint has
 * one): the head is also read row by row in float32 (lm_head.h); nor the
 * embeddings (target_dtype keeps them float32), read row by row. */
static bool is_packable(const vb_tensor_info *t) {
  return strncmp(t->name, "language_model.", 15) == 0 && !strstr(t->name, "lm_head") &&
         !is_embedding(t->name);
}

/* Whether an int8 vision conversion stores this tensor as int8: the vision
 * encoder's and Q-Former's linear weights of the kinds --vision-dtype int8
 * quantizes at load (VB_I8_DEFAULT), the same values. */
static bool is_int8_vision(const vb_tensor_info *t) {
  if (t->ndim != 2 || !ends_with(t->name, ".weight")) return false;
  static const struct {
    const char *prefix, *part;
    unsigned kind;
  } kinds[] = {
      {"vision_model.encoder.layers.", ".self_attn.qkv.weight", VB_I8_QKV},
      {"vision_model.encoder.layers.", ".self_attn.projection.weight", VB_I8_PROJ},
      {"vision_model.encoder.layers.", ".mlp.fc1.weight", VB_I8_FC1},
      {"vision_model.encoder.layers.", ".mlp.fc2.weight", VB_I8_FC2},
      {"qformer.encoder.layer.", ".query.weight", VB_I8_QFORMER},
      {"qformer.encoder.layer.", ".key.weight", VB_I8_QFORMER},
      {"qformer.encoder.layer.", ".value.weight", VB_I8_QFORMER},
      {"qformer.encoder.layer.", ".output.dense.weight", VB_I8_QFORMER},
      {"qformer.encoder.layer.", ".intermediate_query.dense.weight", VB_I8_QFORMER},
      {"qformer.encoder.layer.", ".output_query.dense.weight", VB_I8_QFORMER},
  };
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if ((VB_I8_DEFAULT & kinds[i].kind) &&
        strncmp(t->name, kinds[i].prefix, strlen(kinds[i].prefix)) == 0 &&
        ends_with(t->name, kinds[i].part))
      return true;
  return false;
}

/* Rows of f32 ([rows, K]) rounded to int8 with per-row scales: the int8
 * values into dst, or (scales) the float32 scales. */
static void quantize_rows_i8(const float *f32, int64_t rows, int64_t K, int scales, uint8_t *dst) {
  int8_t *row = scales ? vb_malloc((size_t)K) : NULL;
  for (int64_t n = 0; n < rows; n++) {
    int8_t *q = scales ? row : (int8_t *)dst + n * K;
    if (!q) return; /* out of memory: the caller's size check fails first in practice */
    float sc = vb_tile_quantize_row(f32 + n * K, (int)K, q);
    if (scales) memcpy(dst + n * 4, &sc, 4);
  }
  free(row);
}

/* The scales of an int8 checkpoint's weight (written again right after it). */
static bool is_stored_scale(const vb_tensor_table *tt, const vb_tensor_info *t) {
  size_t n = strlen(t->name);
  if (!ends_with(t->name, ".weight_scale")) return false;
  char base[600];
  if (n - 6 >= sizeof base) return false;
  memcpy(base, t->name, n - 6);
  base[n - 6] = 0;
  const vb_tensor_info *w = vb_tt_find(tt, base);
  return w && w->dtype == VB_DT_I8;
}

/* A tied duplicate the loaders recreate from another tensor (PyTorch .bin files keep them). */
static bool is_tied_duplicate(const vb_tensor_table *tt, const vb_tensor_info *t, const vb_model_config *cfg) {
  const char *canon = NULL;
  if (cfg->lm_kind == VB_LM_OPT) {
    if (strcmp(t->name, "language_model.lm_head.weight") == 0)
      canon = "language_model.model.decoder.embed_tokens.weight";
  } else {
    if (strcmp(t->name, "language_model.encoder.embed_tokens.weight") == 0 ||
        strcmp(t->name, "language_model.decoder.embed_tokens.weight") == 0 ||
        (cfg->t5.tie_word_embeddings && strcmp(t->name, "language_model.lm_head.weight") == 0))
      canon = "language_model.shared.weight";
  }
  if (!canon) return false;
  const vb_tensor_info *c = vb_tt_find(tt, canon);
  if (!c || c->dtype != t->dtype || c->ndim != t->ndim || c->nbytes != t->nbytes) return false;
  for (int i = 0; i < t->ndim; i++)
    if (c->shape[i] != t->shape[i]) return false;
  return c->data == t->data || memcmp(c->data, t->data, t->nbytes) == 0;
}

static int cmp_name(const void *a, const void *b) {
  const vb_tensor_info *const *x = a, *const *y = b;
  return strcmp((*x)->name, (*y)->name);
}

/* Elements converted at a time: whole rows of about this many, so the
 * buffers stay small whatever the tensor (a 6.7b model's vocabulary matrix is
 * 206 M values). */
#define CHUNK_ELEMS ((int64_t)1 << 22)

/* A tensor's row length: its last dimensions after the first (1 for 1-D). */
static int64_t row_length(const vb_tensor_info *t) {
  int64_t k = 1;
  for (int d = 1; d < t->ndim; d++)
    k *= t->shape[d];
  return k;
}

/* n elements of t from element e0 (stored at src) -> bytes of type dt in dst
 * (dst has room for them); VB_DT_I8 is the per-row int8 of an int8 vision
 * weight, and scale_of the scales beside it (e0 and n whole rows). */
static int convert_part(const vb_tensor_info *t, const void *src, int64_t e0, int64_t n,
                        vb_dtype dt, int scale_of, float *f32, uint8_t *dst) {
  if (vb_convert_to_f32(t->dtype, src, n, f32) != 0) return vb_error_context("tensor %s", t->name);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(f32[i]))
      return vb_error("tensor %s holds a non-finite value at element %lld", t->name,
                      (long long)(e0 + i));
  if (scale_of) dt = VB_DT_I8;
  switch (dt) {
  case VB_DT_F32:
    memcpy(dst, f32, (size_t)n * 4);
    return 0;
  case VB_DT_F16:
    for (int64_t i = 0; i < n; i++) {
      uint16_t h = vb_float_to_half(f32[i]);
      if ((h & 0x7c00) == 0x7c00)
        return vb_error("tensor %s: value %g at element %lld does not fit float16 (use bf16)",
                        t->name, f32[i], (long long)(e0 + i));
      memcpy(dst + 2 * i, &h, 2);
    }
    return 0;
  case VB_DT_BF16:
    for (int64_t i = 0; i < n; i++) {
      uint16_t h = vb_float_to_bf16(f32[i]);
      memcpy(dst + 2 * i, &h, 2);
    }
    return 0;
  case VB_DT_Q8_0:
    vb_quantize_q8_0(f32, n, dst);
    return 0;
  case VB_DT_Q4_0:
    vb_quantize_q4_0(f32, n, dst);
    return 0;
  case VB_DT_Q4_K:
    vb_quantize_q4_k(f32, n, dst);
    return 0;
  case VB_DT_I8: {
    int64_t K = row_length(t);
    quantize_rows_i8(f32, n / K, K, scale_of, dst);
    return 0;
  }
  default:
    return vb_error("tensor %s: cannot write %s", t->name, vb_dtype_name(dt));
  }
}

/* Writes entry i (tensor t as dt, or its int8 scales) part by part: each part
 * read from the mapped file, converted, written, and its pages dropped, so
 * memory holds one part of one tensor, not the model. *written grows by the
 * bytes written. */
static int write_entry(vb_gguf_writer *gw, FILE *f, size_t i, const vb_tensor_table *tt,
                       const vb_tensor_info *t, vb_dtype dt, int scale_of, float *f32, uint8_t *buf,
                       uint64_t *written) {
  int64_t numel = vb_tensor_numel(t), K = row_length(t);
  int copy = !scale_of && t->dtype == dt; /* stored as written: copy the bytes */
  if (copy && dt == VB_DT_Q8X16) {        /* packed to packed: the mapped bytes as they are */
    if (vb_gguf_write_part(f, t->data, t->nbytes) != 0) return -1;
    vb_tt_drop_pages(tt, t->data, t->nbytes);
    *written += t->nbytes;
    return vb_gguf_end_tensor(gw, f, i, t->nbytes);
  }
  /* a packed source is read as its Q8_0 rows (unpacked part by part); a
   * packed target is written in whole 64-row panels, each part packed from
   * its Q8_0 rows */
  vb_tensor_info rows = *t;
  if (t->dtype == VB_DT_Q8X16) rows.dtype = VB_DT_Q8_0;
  int64_t rows_per = K >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / K;
  if (dt == VB_DT_Q8X16)
    rows_per = rows_per < VB_Q8X16_PANEL ? VB_Q8X16_PANEL : rows_per - rows_per % VB_Q8X16_PANEL;
  uint8_t *unpacked = NULL, *packed = NULL;
  size_t part_rows_bytes = vb_q8_row_bytes((int)K) * (size_t)rows_per, packed_bytes = 0;
  if ((t->dtype == VB_DT_Q8X16 && !(unpacked = vb_malloc(part_rows_bytes))) ||
      (dt == VB_DT_Q8X16 && (!vb_q8x16_size(rows_per, K, &packed_bytes) ||
                             !(packed = vb_malloc_aligned(packed_bytes))))) {
    free(unpacked);
    return vb_error("out of memory converting tensor %s", t->name);
  }
  int rc = -1;
  uint64_t out = 0;
  for (int64_t e0 = 0; e0 < numel;) {
    int64_t n = rows_per * K < numel - e0 ? rows_per * K : numel - e0;
    size_t src_off = 0, src_bytes = 0, out_bytes;
    if ((t->dtype != VB_DT_Q8X16 &&
         (!vb_dtype_bytes(t->dtype, e0, &src_off) || !vb_dtype_bytes(t->dtype, n, &src_bytes))) ||
        (dt == VB_DT_Q8X16 ? !vb_q8x16_size(n / K, K, &out_bytes)
                           : !vb_dtype_bytes(dt, n, &out_bytes))) {
      vb_error("tensor %s: bad size", t->name);
      goto out;
    }
    if (scale_of) out_bytes = (size_t)(n / K) * 4;
    const uint8_t *src = (const uint8_t *)t->data + src_off;
    if (unpacked) {
      vb_q8x16_unpack_rows(t->data, K, e0 / K, (e0 + n) / K, unpacked);
      src = unpacked;
    }
    const void *part = src;
    vb_dtype rows_dt = dt == VB_DT_Q8X16 ? VB_DT_Q8_0 : dt;
    if (rows.dtype != rows_dt || scale_of) { /* converted (else: the Q8_0 rows as they are) */
      if (convert_part(&rows, src, e0, n, rows_dt, scale_of, f32, buf) != 0) goto out;
      part = buf;
    }
    if (dt == VB_DT_Q8X16) {
      vb_q8x16_pack(part, (int)(n / K), (int)K, packed);
      part = packed;
    }
    if (vb_gguf_write_part(f, part, out_bytes) != 0) goto out;
    if (!unpacked) vb_tt_drop_pages(tt, src, src_bytes);
    out += out_bytes;
    e0 += n;
  }
  if (unpacked) vb_tt_drop_pages(tt, t->data, t->nbytes);
  *written += out;
  rc = vb_gguf_end_tensor(gw, f, i, out);
out:
  free(unpacked);
  vb_free_aligned(packed);
  return rc;
}

static void show_progress(size_t done, size_t total, uint64_t bytes, uint64_t total_bytes, double t0,
                          double *last, int final) {
  double now = vb_now_ms();
  if (!final && now - *last < 100) return;
  *last = now;
  double s = (now - t0) / 1e3;
  fprintf(stderr, "\rvblip convert: %zu/%zu tensors  %.1f/%.1f MB  %.1f MB/s   ", done, total, bytes / 1e6,
          total_bytes / 1e6, s > 0 ? bytes / 1e6 / s : 0.0);
  if (final) fputc('\n', stderr);
  fflush(stderr);
}

static char *base_name(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  size_t b = n;
  while (b > 0 && path[b - 1] != '/') b--;
  char *s = vb_malloc(n - b + 1);
  if (!s) return NULL;
  memcpy(s, path + b, n - b);
  s[n - b] = 0;
  if (ends_with(s, ".gguf")) s[strlen(s) - 5] = 0;
  return s;
}

int vblip_convert(const char *model_dir, const char *out_path, const char *type, int progress) {
  return vblip_convert_ex(model_dir, out_path, type, NULL, progress);
}

int vblip_convert_ex(const char *model_dir, const char *out_path, const char *type,
                     const char *vision_type, int progress) {
  vblip_convert_options o = {.type = type, .vision_type = vision_type, .progress = progress};
  return vblip_convert_with(model_dir, out_path, &o);
}

int vblip_convert_with(const char *model_dir, const char *out_path,
                       const vblip_convert_options *opts) {
  const char *type = opts ? opts->type : NULL, *vision_type = opts ? opts->vision_type : NULL;
  int progress = opts ? opts->progress : 0, packed = opts ? opts->packed : 0;
  target tg;
  bool vision_i8 = false;
  if (vision_type && strcmp(vision_type, "int8") == 0)
    vision_i8 = true;
  else if (vision_type && strcmp(vision_type, "same") != 0)
    return vb_error("unknown vision weight type \"%s\" (int8, or same: as --type)", vision_type);
  uint32_t file_type;
  if (!type || strcmp(type, "f32") == 0) tg = T_F32, file_type = 0;
  else if (strcmp(type, "f16") == 0) tg = T_F16, file_type = 1;
  else if (strcmp(type, "bf16") == 0) tg = T_BF16, file_type = 32;
  else if (strcmp(type, "q8_0") == 0) tg = T_Q8_0, file_type = 7;
  else if (strcmp(type, "q4_0") == 0)
    tg = T_Q4_0, file_type = 2;
  else if (strcmp(type, "q4_k") == 0)
    tg = T_Q4_K, file_type = 14; /* llama.cpp's "mostly Q4_K_S" */
  else
    return vb_error("unknown weight type \"%s\" (f32, f16, bf16, q8_0, q4_0 or q4_k)", type);
  if (packed && tg != T_Q8_0)
    return vb_error("packed weights (--packed) are for --type q8_0, not %s", type ? type : "f32");

  int opened = 0, rc = -1;
  vb_model_source src;
  vb_weights w;
  memset(&w, 0, sizeof w);
  vb_gguf_writer *gw = NULL;
  const vb_tensor_info **list = NULL;
  vb_dtype *dts = NULL;
  char *is_scale = NULL;
  float *f32 = NULL;
  uint8_t *buf = NULL;
  char *name = NULL;
  vb_outfile out = {0};
  int named = 0;
  vb_model_config cfg;

  /* the output first: a target that cannot be written fails before any work; the
   * bytes go to a temporary file beside it, renamed at the end */
  if (vb_outfile_open(&out, out_path) != 0) goto done;
  if (vb_model_source_open(model_dir, progress, &src) != 0) {
    named = 1; /* the message names the model already ("loading M: ...") */
    goto done;
  }
  opened = 1;
  const char *dir = src.path; /* a directory, or a GGUF whose embedded files are mounted */
  if (vb_config_load(dir, &cfg) != 0 || vb_model_source_weights(&src, &w) != 0) goto done;
  if (!(gw = vb_gguf_writer_new()) || !(name = base_name(model_dir))) goto done;
  if (vb_gguf_add_string(gw, "general.architecture", VB_GGUF_ARCH, strlen(VB_GGUF_ARCH)) ||
      vb_gguf_add_string(gw, "general.name", name, strlen(name)) ||
      vb_gguf_add_u32(gw, "general.alignment",
                      packed ? VB_GGUF_PACKED_ALIGNMENT : VB_GGUF_DEFAULT_ALIGNMENT) ||
      vb_gguf_add_u32(gw, "general.file_type", file_type) ||
      vb_gguf_add_u32(gw, "vblip.format_version", 1) ||
      vb_gguf_add_string(gw, "vblip.language_model", cfg.lm_kind == VB_LM_OPT ? "opt" : "t5",
                         cfg.lm_kind == VB_LM_OPT ? 3 : 2) ||
      (vision_i8 && vb_gguf_add_string(gw, "vblip.vision_type", "int8", 4)))
    goto done;
  for (const char *const *file = vb_model_files; *file; file++) {
    char *p = vb_path_join(dir, *file);
    if (!p) goto done;
    char *data = NULL;
    size_t len = 0;
    int present = vb_file_exists(p);
    int r = present ? vb_read_file(p, (size_t)1 << 30, &data, &len) : 0;
    free(p);
    if (r != 0) goto done;
    if (!present) continue;
    char key[128];
    snprintf(key, sizeof key, VB_GGUF_FILE_PREFIX "%s", *file);
    r = ends_with(*file, ".model") ? vb_gguf_add_bytes(gw, key, data, len)
                                   : vb_gguf_add_string(gw, key, data, len);
    free(data);
    if (r != 0) goto done;
  }

  /* the tensors, by name; tied duplicates and non-float buffers left out */
  /* an int8 vision weight takes two entries: the int8 values, then the scales */
  list = vb_calloc(2 * w.tt.count + 1, sizeof *list);
  dts = vb_calloc(2 * w.tt.count + 1, sizeof *dts);
  is_scale = vb_calloc(2 * w.tt.count + 1, 1);
  if (!list || !dts || !is_scale) goto done;
  size_t n = 0, max_numel = 0;
  for (size_t i = 0; i < w.tt.count; i++) {
    const vb_tensor_info *t = &w.tt.items[i];
    if (!is_float(t->dtype) || is_tied_duplicate(&w.tt, t, &cfg)) continue;
    if (is_stored_scale(&w.tt, t)) continue;
    list[n++] = t;
  }
  qsort(list, n, sizeof *list, cmp_name);
  for (size_t i = n; i-- > 0;) { /* entries for the scales, each right after its weight */
    if (!((vision_i8 && is_int8_vision(list[i])) || list[i]->dtype == VB_DT_I8)) continue;
    memmove(list + i + 2, list + i + 1, (n - i - 1) * sizeof *list);
    memmove(is_scale + i + 2, is_scale + i + 1, n - i - 1);
    list[i + 1] = list[i];
    is_scale[i + 1] = 1;
    n++;
  }
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const vb_tensor_info *t = list[i];
    char sname[600];
    if (is_scale[i]) {
      snprintf(sname, sizeof sname, "%s_scale", t->name);
      dts[i] = VB_DT_F32;
      if (vb_gguf_add_tensor(gw, sname, VB_DT_F32, 1, t->shape) != 0) goto done;
    } else {
      dts[i] = (t->dtype == VB_DT_Q8_0 || t->dtype == VB_DT_Q8X16) && tg == T_Q8_0 ? VB_DT_Q8_0
               : (vision_i8 && is_int8_vision(t)) || t->dtype == VB_DT_I8          ? VB_DT_I8
                                                                          : target_dtype(t, tg);
      if (packed && dts[i] == VB_DT_Q8_0 && is_packable(t)) dts[i] = VB_DT_Q8X16;
      if (vb_gguf_add_tensor(gw, t->name, dts[i], t->ndim, t->shape) != 0) goto done;
    }
    size_t numel = (size_t)vb_tensor_numel(t);
    if (numel > max_numel) max_numel = numel;
  }
  total_bytes = vb_gguf_total_size(gw);
  int64_t chunk = max_numel < (size_t)CHUNK_ELEMS ? (int64_t)max_numel : CHUNK_ELEMS;
  for (size_t i = 0; i < n; i++) { /* a row longer than a chunk is one part of its own */
    int64_t K = row_length(list[i]);
    if (K > chunk) chunk = K;
    /* packed parts are whole 64-row panels */
    if (dts[i] == VB_DT_Q8X16 && K * VB_Q8X16_PANEL > chunk) chunk = K * VB_Q8X16_PANEL;
  }
  f32 = vb_malloc_aligned((size_t)(chunk ? chunk : 1) * sizeof(float));
  buf = vb_malloc((size_t)(chunk ? chunk : 1) * sizeof(float));
  if (!f32 || !buf) goto done;

  FILE *f = out.f;
  setvbuf(f, NULL, _IOFBF, 1 << 20);
  int show = progress && isatty(2);
  double t0 = vb_now_ms(), last = 0;
  if (vb_gguf_write_header(gw, f) != 0) goto io_error;
  uint64_t written = 0;
  for (size_t i = 0; i < n; i++) {
    const vb_tensor_info *t = list[i];
    if (is_scale[i] && t->dtype == VB_DT_I8) { /* an int8 checkpoint's scales: copied */
      size_t nbytes = (size_t)t->shape[0] * 4;
      char sname[600];
      snprintf(sname, sizeof sname, "%s_scale", t->name);
      const vb_tensor_info *st = vb_tt_find(&w.tt, sname);
      if (!st || st->dtype != VB_DT_F32 || st->nbytes != nbytes) {
        vb_error("tensor %s: missing or malformed", sname);
        goto done;
      }
      if (vb_gguf_write_tensor(gw, f, i, st->data, nbytes) != 0) goto io_error;
      written += nbytes;
    } else if (write_entry(gw, f, i, &w.tt, t, dts[i], is_scale[i], f32, buf, &written) != 0) {
      if (ferror(f)) goto io_error;
      goto done;
    }
    /* the file's length so far against its final length: the header, the metadata and
     * the alignment padding count on both sides, so the bar ends at its total */
    if (show) show_progress(i + 1, n, (uint64_t)ftello(f), total_bytes, t0, &last, 0);
  }
  uint64_t final_bytes = (uint64_t)ftello(f);
  if (vb_outfile_commit(&out) != 0) goto done;
  if (show) show_progress(n, n, final_bytes, total_bytes, t0, &last, 1);
  rc = 0;
  goto done;
io_error:
  vb_error("error writing %s: %s", out.tmp, strerror(errno));
done:
  if (rc != 0 && !named) vb_error_context("converting %s", model_dir);
  vb_outfile_abort(&out);
  free(name);
  vb_free_aligned(f32);
  free(buf);
  free(list);
  free(dts);
  free(is_scale);
  vb_gguf_writer_free(gw);
  vb_weights_close(&w);
  if (opened) vb_model_source_close(&src);
  return rc;
}
