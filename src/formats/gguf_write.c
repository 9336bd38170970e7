/* GGUF writer: metadata and tensor infos are collected first, then the file is
 * written front to back (header, tensor data in declaration order) so that a
 * converter can stream tensors without holding them all in memory. */
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "runtime/common.h"

typedef struct {
  char *name;
  int ndim;
  uint64_t ne[VB_MAX_DIMS]; /* innermost first */
  int type;
  uint64_t offset;
  size_t nbytes;
} wtensor;

struct vb_gguf_writer {
  uint8_t *kv;
  size_t kv_len, kv_cap;
  uint64_t n_kv;
  wtensor *t;
  size_t n_t, cap_t;
  uint64_t data_size; /* with padding */
  size_t alignment;
};

static int put(vb_gguf_writer *w, const void *p, size_t n) {
  if (w->kv_len + n > w->kv_cap) {
    size_t cap = w->kv_cap ? w->kv_cap : 4096;
    while (cap < w->kv_len + n) cap *= 2;
    uint8_t *b = vb_realloc(w->kv, cap);
    if (!b) return -1;
    w->kv = b;
    w->kv_cap = cap;
  }
  memcpy(w->kv + w->kv_len, p, n);
  w->kv_len += n;
  return 0;
}

static int put_le(vb_gguf_writer *w, uint64_t v, int n) {
  uint8_t b[8];
  for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
  return put(w, b, (size_t)n);
}

static int put_str(vb_gguf_writer *w, const char *s, size_t n) {
  return put_le(w, n, 8) || put(w, s, n) ? -1 : 0;
}

static int put_key(vb_gguf_writer *w, const char *key, uint32_t type) {
  w->n_kv++;
  return put_str(w, key, strlen(key)) || put_le(w, type, 4) ? -1 : 0;
}

vb_gguf_writer *vb_gguf_writer_new(void) {
  vb_gguf_writer *w = vb_calloc(1, sizeof *w);
  if (w) w->alignment = VB_GGUF_DEFAULT_ALIGNMENT;
  return w;
}

void vb_gguf_writer_free(vb_gguf_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
  free(w->t);
  free(w->kv);
  free(w);
}

int vb_gguf_add_string(vb_gguf_writer *w, const char *key, const char *s, size_t len) {
  return put_key(w, key, VB_GGUF_STRING) || put_str(w, s, len) ? -1 : 0;
}

int vb_gguf_add_u32(vb_gguf_writer *w, const char *key, uint32_t v) {
  if (strcmp(key, "general.alignment") == 0) {
    if (v == 0 || (v & (v - 1)) || w->n_t) return vb_error("bad GGUF alignment %u", v);
    w->alignment = v;
  }
  return put_key(w, key, VB_GGUF_UINT32) || put_le(w, v, 4) ? -1 : 0;
}

int vb_gguf_add_bytes(vb_gguf_writer *w, const char *key, const void *p, size_t n) {
  return put_key(w, key, VB_GGUF_ARRAY) || put_le(w, VB_GGUF_UINT8, 4) || put_le(w, n, 8) ||
                 put(w, p, n)
             ? -1
             : 0;
}

int vb_gguf_add_tensor(vb_gguf_writer *w, const char *name, vb_dtype dt, int ndim,
                       const int64_t *shape) {
  int type = vb_gguf_type_of(dt);
  if (type < 0) return vb_error("tensor %s: GGUF has no %s type", name, vb_dtype_name(dt));
  if (ndim < 1 || ndim > 4) return vb_error("tensor %s: GGUF tensors have 1 to 4 dimensions, not %d", name, ndim);
  int64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || (shape[i] && numel > INT64_MAX / shape[i]))
      return vb_error("tensor %s: bad shape", name);
    numel *= shape[i];
  }
  size_t nbytes;
  if (dt == VB_DT_Q8X16) { /* vblip's packed Q8_0: read where it lies, in 64-byte vectors */
    if (ndim != 2 || !vb_q8x16_size(shape[0], shape[1], &nbytes))
      return vb_error("tensor %s: shape does not fit %s", name, vb_dtype_name(dt));
    if (w->alignment % VB_GGUF_PACKED_ALIGNMENT)
      return vb_error("tensor %s: %s needs general.alignment %d or a multiple", name,
                      vb_dtype_name(dt), VB_GGUF_PACKED_ALIGNMENT);
  } else if (!vb_dtype_bytes(dt, numel, &nbytes) ||
             ((dt == VB_DT_Q8_0 || dt == VB_DT_Q4_0) && shape[ndim - 1] % 32) ||
             (dt == VB_DT_Q4_K && shape[ndim - 1] % 256))
    return vb_error("tensor %s: shape does not fit %s", name, vb_dtype_name(dt));
  if (w->n_t == w->cap_t) {
    size_t cap = w->cap_t ? w->cap_t * 2 : 64;
    wtensor *t = vb_realloc(w->t, cap * sizeof *t);
    if (!t) return -1;
    w->t = t;
    w->cap_t = cap;
  }
  wtensor *t = &w->t[w->n_t];
  memset(t, 0, sizeof *t);
  t->name = vb_strdup(name);
  if (!t->name) return -1;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->ne[i] = (uint64_t)shape[ndim - 1 - i];
  t->type = type;
  t->offset = w->data_size;
  t->nbytes = nbytes;
  w->data_size += (nbytes + w->alignment - 1) / w->alignment * w->alignment;
  w->n_t++;
  return 0;
}

static uint64_t header_size(const vb_gguf_writer *w) {
  uint64_t n = 4 + 4 + 8 + 8 + w->kv_len;
  for (size_t i = 0; i < w->n_t; i++) n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].ndim + 4 + 8;
  return (n + w->alignment - 1) / w->alignment * w->alignment;
}

uint64_t vb_gguf_total_size(const vb_gguf_writer *w) { return header_size(w) + w->data_size; }

static int wr(FILE *f, const void *p, size_t n) {
  return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int wr_le(FILE *f, uint64_t v, int n) {
  uint8_t b[8];
  for (int i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
  return wr(f, b, (size_t)n);
}

static int wr_zeros(FILE *f, size_t n) {
  static const uint8_t z[256];
  while (n) {
    size_t k = n < sizeof z ? n : sizeof z;
    if (wr(f, z, k)) return -1;
    n -= k;
  }
  return 0;
}

int vb_gguf_write_header(vb_gguf_writer *w, FILE *f) {
  uint64_t pos = 4 + 4 + 8 + 8 + w->kv_len;
  int bad = wr(f, VB_GGUF_MAGIC, 4) || wr_le(f, VB_GGUF_VERSION, 4) || wr_le(f, w->n_t, 8) ||
            wr_le(f, w->n_kv, 8) || wr(f, w->kv, w->kv_len);
  for (size_t i = 0; !bad && i < w->n_t; i++) {
    const wtensor *t = &w->t[i];
    size_t nl = strlen(t->name);
    bad = wr_le(f, nl, 8) || wr(f, t->name, nl) || wr_le(f, (uint64_t)t->ndim, 4);
    for (int d = 0; !bad && d < t->ndim; d++) bad = wr_le(f, t->ne[d], 8);
    bad = bad || wr_le(f, (uint64_t)t->type, 4) || wr_le(f, t->offset, 8);
    pos += 8 + nl + 4 + 8 * (uint64_t)t->ndim + 4 + 8;
  }
  if (!bad) bad = wr_zeros(f, (size_t)(header_size(w) - pos));
  return bad ? vb_error("write error") : 0;
}

int vb_gguf_write_tensor(vb_gguf_writer *w, FILE *f, size_t i, const void *data, size_t nbytes) {
  if (i >= w->n_t || nbytes != w->t[i].nbytes)
    return vb_error("GGUF writer: tensor %zu written with %zu bytes", i, nbytes);
  size_t pad = (w->alignment - nbytes % w->alignment) % w->alignment;
  if (wr(f, data, nbytes) || wr_zeros(f, pad)) return vb_error("write error");
  return 0;
}

int vb_gguf_write_part(FILE *f, const void *data, size_t n) {
  return wr(f, data, n) ? vb_error("write error") : 0;
}

int vb_gguf_end_tensor(vb_gguf_writer *w, FILE *f, size_t i, uint64_t written) {
  if (i >= w->n_t || written != w->t[i].nbytes)
    return vb_error("GGUF writer: tensor %zu written with %llu bytes", i,
                    (unsigned long long)written);
  size_t pad = (w->alignment - written % w->alignment) % w->alignment;
  return wr_zeros(f, pad) ? vb_error("write error") : 0;
}
