#include "formats/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"
#include "runtime/vfs.h"

#define MAX_KEY_LEN 65535u
#define MAX_NAME_LEN 4096u
#define MAX_ARRAY_DEPTH 4
#define MAX_GGUF_DIMS 4

typedef struct {
  const uint8_t *b;
  size_t len, pos;
  const char *label;
} cursor;

static int need(cursor *c, size_t n, const char *what) {
  if (n > c->len - c->pos)
    return vb_error("%s: truncated GGUF: %s at byte %zu needs %zu bytes, %zu left", c->label, what,
                    c->pos, n, c->len - c->pos);
  return 0;
}

static uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what) {
  if (need(c, 4, what)) return -1;
  *v = (uint32_t)le(c->b + c->pos, 4);
  c->pos += 4;
  return 0;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what) {
  if (need(c, 8, what)) return -1;
  *v = le(c->b + c->pos, 8);
  c->pos += 8;
  return 0;
}

static int rd_str(cursor *c, const uint8_t **p, size_t *n, uint64_t max, const char *what) {
  uint64_t len;
  if (rd_u64(c, &len, what)) return -1;
  if (len > c->len - c->pos)
    return vb_error("%s: %s at byte %zu: length %llu exceeds the %zu bytes left in the file", c->label,
                    what, c->pos - 8, (unsigned long long)len, c->len - c->pos);
  if (len > max)
    return vb_error("%s: %s at byte %zu is %llu bytes long (limit %llu)", c->label, what, c->pos - 8,
                    (unsigned long long)len, (unsigned long long)max);
  *p = c->b + c->pos;
  *n = (size_t)len;
  c->pos += (size_t)len;
  return 0;
}

static size_t scalar_size(uint32_t t) {
  switch (t) {
  case VB_GGUF_UINT8: case VB_GGUF_INT8: case VB_GGUF_BOOL: return 1;
  case VB_GGUF_UINT16: case VB_GGUF_INT16: return 2;
  case VB_GGUF_UINT32: case VB_GGUF_INT32: case VB_GGUF_FLOAT32: return 4;
  case VB_GGUF_UINT64: case VB_GGUF_INT64: case VB_GGUF_FLOAT64: return 8;
  default: return 0;
  }
}

/* Skips one value of type t, checking it; depth bounds nested arrays. */
static int skip_value(cursor *c, uint32_t t, int depth, const char *key) {
  if (t >= VB_GGUF_TYPE_COUNT)
    return vb_error("%s: metadata %s: unknown value type %u", c->label, key, t);
  size_t sz = scalar_size(t);
  if (sz) {
    if (need(c, sz, "metadata value")) return -1;
    if (t == VB_GGUF_BOOL && c->b[c->pos] > 1)
      return vb_error("%s: metadata %s: bool value %u is neither 0 nor 1", c->label, key, c->b[c->pos]);
    c->pos += sz;
    return 0;
  }
  if (t == VB_GGUF_STRING) {
    const uint8_t *p;
    size_t n;
    return rd_str(c, &p, &n, UINT64_MAX, "string value");
  }
  /* array */
  if (depth >= MAX_ARRAY_DEPTH)
    return vb_error("%s: metadata %s: arrays nested deeper than %d", c->label, key, MAX_ARRAY_DEPTH);
  uint32_t et;
  uint64_t n;
  if (rd_u32(c, &et, "array type") || rd_u64(c, &n, "array length")) return -1;
  if (et >= VB_GGUF_TYPE_COUNT)
    return vb_error("%s: metadata %s: unknown array element type %u", c->label, key, et);
  size_t esz = scalar_size(et);
  size_t min = esz ? esz : et == VB_GGUF_STRING ? 8 : 12;
  if (n > (c->len - c->pos) / min)
    return vb_error("%s: metadata %s: array of %llu elements exceeds the %zu bytes left in the file",
                    c->label, key, (unsigned long long)n, c->len - c->pos);
  if (esz && et != VB_GGUF_BOOL) {
    c->pos += (size_t)n * esz;
    return 0;
  }
  for (uint64_t i = 0; i < n; i++)
    if (skip_value(c, et, depth + 1, key)) return -1;
  return 0;
}

static int tensor_type(uint32_t t, vb_dtype *dt) {
  switch (t) {
  case VB_GGML_F32: *dt = VB_DT_F32; return 0;
  case VB_GGML_F16: *dt = VB_DT_F16; return 0;
  case VB_GGML_BF16: *dt = VB_DT_BF16; return 0;
  case VB_GGML_Q8_0: *dt = VB_DT_Q8_0; return 0;
  case VB_GGML_Q4_0: *dt = VB_DT_Q4_0; return 0;
  case VB_GGML_Q4_K:
    *dt = VB_DT_Q4_K;
    return 0;
  case VB_GGML_Q8X16:
    *dt = VB_DT_Q8X16;
    return 0;
  case VB_GGML_I8: *dt = VB_DT_I8; return 0;
  case VB_GGML_I16: *dt = VB_DT_I16; return 0;
  case VB_GGML_I32: *dt = VB_DT_I32; return 0;
  case VB_GGML_I64: *dt = VB_DT_I64; return 0;
  case VB_GGML_F64: *dt = VB_DT_F64; return 0;
  default: return -1;
  }
}

int vb_gguf_type_of(vb_dtype dt) {
  switch (dt) {
  case VB_DT_F32: return VB_GGML_F32;
  case VB_DT_F16: return VB_GGML_F16;
  case VB_DT_BF16: return VB_GGML_BF16;
  case VB_DT_Q8_0: return VB_GGML_Q8_0;
  case VB_DT_Q4_0: return VB_GGML_Q4_0;
  case VB_DT_Q4_K:
    return VB_GGML_Q4_K;
  case VB_DT_Q8X16:
    return VB_GGML_Q8X16;
  case VB_DT_I8: return VB_GGML_I8;
  case VB_DT_I16: return VB_GGML_I16;
  case VB_DT_I32: return VB_GGML_I32;
  case VB_DT_I64: return VB_GGML_I64;
  case VB_DT_F64: return VB_GGML_F64;
  default: return -1;
  }
}

typedef struct {
  uint64_t begin, end;
  size_t index;
} trange;

static int cmp_trange(const void *a, const void *b) {
  const trange *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static int cmp_key(const void *a, const void *b) {
  const vb_gguf_kv *x = a, *y = b;
  return strcmp(x->key, y->key);
}

void vb_gguf_meta_free(vb_gguf_meta *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_kv; i++) free(m->kv[i].key);
  free(m->kv);
  memset(m, 0, sizeof *m);
}

const vb_gguf_kv *vb_gguf_get(const vb_gguf_meta *m, const char *key) {
  for (size_t i = 0; i < m->n_kv; i++)
    if (strcmp(m->kv[i].key, key) == 0) return &m->kv[i];
  return NULL;
}

bool vb_gguf_get_uint(const vb_gguf_meta *m, const char *key, uint64_t *out) {
  const vb_gguf_kv *kv = vb_gguf_get(m, key);
  if (!kv) return false;
  switch (kv->type) {
  case VB_GGUF_UINT8: case VB_GGUF_UINT16: case VB_GGUF_UINT32: case VB_GGUF_UINT64:
    *out = le(kv->data, (int)kv->len);
    return true;
  case VB_GGUF_INT8: case VB_GGUF_INT16: case VB_GGUF_INT32: case VB_GGUF_INT64: {
    uint64_t v = le(kv->data, (int)kv->len);
    int bits = (int)kv->len * 8;
    if (bits < 64 && (v >> (bits - 1)) & 1) return false; /* negative */
    if (bits == 64 && (v >> 63)) return false;
    *out = v;
    return true;
  }
  default:
    return false;
  }
}

int vb_gguf_parse(const uint8_t *buf, size_t len, const char *label, vb_gguf_meta *meta_out,
                  vb_tensor_table *tt) {
  cursor c = {buf, len, 0, label};
  vb_gguf_meta meta = {0};
  trange *ranges = NULL;
  int rc = -1;
  if (len < 4 || memcmp(buf, VB_GGUF_MAGIC, 4) != 0) {
    vb_error("%s: not a GGUF file (no \"GGUF\" magic)", label);
    goto done;
  }
  c.pos = 4;
  uint32_t version;
  uint64_t n_tensors, n_kv;
  if (rd_u32(&c, &version, "version")) goto done;
  if (version != 2 && version != 3) {
    if (version == 0x03000000u || version == 0x02000000u)
      vb_error("%s: big-endian GGUF files are not supported", label);
    else
      vb_error("%s: GGUF version %u is not supported (2 or 3)", label, version);
    goto done;
  }
  if (rd_u64(&c, &n_tensors, "tensor count") || rd_u64(&c, &n_kv, "metadata count")) goto done;
  /* each key/value needs >= 13 bytes, each tensor info >= 28 */
  if (n_kv > (len - c.pos) / 13) {
    vb_error("%s: metadata count %llu is impossible in a %zu-byte file", label,
             (unsigned long long)n_kv, len);
    goto done;
  }
  if (n_tensors > (len - c.pos) / 28) {
    vb_error("%s: tensor count %llu is impossible in a %zu-byte file", label,
             (unsigned long long)n_tensors, len);
    goto done;
  }
  meta.version = version;
  meta.n_tensors = n_tensors;
  meta.kv = vb_calloc((size_t)n_kv + 1, sizeof *meta.kv);
  if (!meta.kv) goto done;
  for (uint64_t i = 0; i < n_kv; i++) {
    const uint8_t *kp;
    size_t kn;
    if (rd_str(&c, &kp, &kn, MAX_KEY_LEN, "metadata key")) goto done;
    if (kn == 0) {
      vb_error("%s: metadata key %llu is empty", label, (unsigned long long)i);
      goto done;
    }
    for (size_t j = 0; j < kn; j++)
      if (kp[j] < 0x20 || kp[j] > 0x7e) {
        vb_error("%s: metadata key %llu has a non-printable or non-ASCII byte", label,
                 (unsigned long long)i);
        goto done;
      }
    vb_gguf_kv *kv = &meta.kv[meta.n_kv];
    kv->key = vb_malloc(kn + 1);
    if (!kv->key) goto done;
    memcpy(kv->key, kp, kn);
    kv->key[kn] = 0;
    meta.n_kv++;
    uint32_t t;
    if (rd_u32(&c, &t, "metadata type")) goto done;
    kv->type = (vb_gguf_type)t;
    size_t start = c.pos;
    if (t == VB_GGUF_ARRAY && c.len - c.pos >= 12) {
      kv->arr_type = (vb_gguf_type)le(c.b + c.pos, 4);
      kv->arr_n = le(c.b + c.pos + 4, 8);
    }
    if (skip_value(&c, t, 0, kv->key)) goto done;
    if (t == VB_GGUF_STRING) start += 8;
    else if (t == VB_GGUF_ARRAY) start += 12;
    kv->data = buf + start;
    kv->len = c.pos - start;
  }
  if (meta.n_kv > 1) {
    vb_gguf_kv *sorted = vb_malloc(meta.n_kv * sizeof *sorted);
    if (!sorted) goto done;
    memcpy(sorted, meta.kv, meta.n_kv * sizeof *sorted);
    qsort(sorted, meta.n_kv, sizeof *sorted, cmp_key);
    for (size_t i = 1; i < meta.n_kv; i++)
      if (strcmp(sorted[i].key, sorted[i - 1].key) == 0) {
        vb_error("%s: metadata key %s appears twice", label, sorted[i].key);
        free(sorted);
        goto done;
      }
    free(sorted);
  }
  meta.alignment = VB_GGUF_DEFAULT_ALIGNMENT;
  const vb_gguf_kv *al = vb_gguf_get(&meta, "general.alignment");
  if (al) {
    uint64_t a = al->type == VB_GGUF_UINT32 ? le(al->data, 4) : 0;
    if (al->type != VB_GGUF_UINT32 || a == 0 || (a & (a - 1)) || a > (1u << 20)) {
      vb_error("%s: general.alignment must be a uint32 power of two up to 1 MiB", label);
      goto done;
    }
    meta.alignment = (size_t)a;
  }

  /* tensor infos: read them all, then check against the data section */
  ranges = vb_calloc((size_t)n_tensors + 1, sizeof *ranges);
  if (!ranges) goto done;
  typedef struct {
    const uint8_t *name;
    size_t name_len;
    int ndim;
    int64_t shape[MAX_GGUF_DIMS];
    vb_dtype dt;
    uint64_t offset;
    size_t nbytes;
  } tinfo;
  tinfo *infos = vb_calloc((size_t)n_tensors + 1, sizeof *infos);
  if (!infos) goto done;
  for (uint64_t i = 0; i < n_tensors; i++) {
    tinfo *ti = &infos[i];
    if (rd_str(&c, &ti->name, &ti->name_len, MAX_NAME_LEN, "tensor name")) goto fail_infos;
    char nm[96];
    snprintf(nm, sizeof nm, "%.*s", (int)(ti->name_len < 80 ? ti->name_len : 80), (const char *)ti->name);
    if (ti->name_len == 0 || memchr(ti->name, 0, ti->name_len)) {
      vb_error("%s: tensor %llu has an empty name or one with a NUL byte", label, (unsigned long long)i);
      goto fail_infos;
    }
    uint32_t nd;
    if (rd_u32(&c, &nd, "tensor dimension count")) goto fail_infos;
    if (nd < 1 || nd > MAX_GGUF_DIMS) {
      vb_error("%s: tensor %s has %u dimensions (1 to %d)", label, nm, nd, MAX_GGUF_DIMS);
      goto fail_infos;
    }
    ti->ndim = (int)nd;
    size_t numel = 1;
    uint64_t ne0 = 0;
    for (uint32_t d = 0; d < nd; d++) {
      uint64_t ne;
      if (rd_u64(&c, &ne, "tensor dimension")) goto fail_infos;
      if (d == 0) ne0 = ne;
      if (ne > (uint64_t)INT64_MAX || !vb_mul_ok(numel, (size_t)ne, &numel) || numel > (size_t)INT64_MAX) {
        vb_error("%s: tensor %s: absurd dimensions (the element count overflows)", label, nm);
        goto fail_infos;
      }
      ti->shape[nd - 1 - d] = (int64_t)ne; /* GGUF lists the innermost dimension first */
    }
    uint32_t t;
    if (rd_u32(&c, &t, "tensor type")) goto fail_infos;
    if (tensor_type(t, &ti->dt) != 0) {
      vb_error("%s: tensor %s has ggml type %u, which vblip does not read "
               "(F32, F16, BF16, Q8_0, Q4_0, Q4_K, I8-I64, F64, vblip's Q8X16)",
               label, nm, t);
      goto fail_infos;
    }
    if ((ti->dt == VB_DT_Q8_0 || ti->dt == VB_DT_Q4_0) && ne0 % 32) {
      vb_error("%s: tensor %s: %s rows of %llu values are not whole 32-value blocks", label, nm,
               vb_dtype_name(ti->dt), (unsigned long long)ne0);
      goto fail_infos;
    }
    if (ti->dt == VB_DT_Q4_K && ne0 % 256) {
      vb_error("%s: tensor %s: Q4_K rows of %llu values are not whole 256-value super-blocks",
               label, nm, (unsigned long long)ne0);
      goto fail_infos;
    }
    if (ti->dt == VB_DT_Q8X16) { /* vblip's packed Q8_0: [N, K] only, the size from both */
      if (nd != 2 || ne0 % 32 || ne0 == 0) {
        vb_error("%s: tensor %s: a Q8X16 (packed Q8_0) tensor must be 2-D with rows of whole "
                 "32-value blocks (%u dimensions, rows of %llu values)",
                 label, nm, nd, (unsigned long long)ne0);
        goto fail_infos;
      }
      if (!vb_q8x16_size(ti->shape[0], ti->shape[1], &ti->nbytes)) {
        vb_error("%s: tensor %s: absurd dimensions (the byte size overflows)", label, nm);
        goto fail_infos;
      }
    } else if (!vb_dtype_bytes(ti->dt, (int64_t)numel, &ti->nbytes)) {
      vb_error("%s: tensor %s: absurd dimensions (the byte size overflows)", label, nm);
      goto fail_infos;
    }
    if (rd_u64(&c, &ti->offset, "tensor offset")) goto fail_infos;
    if (ti->offset % meta.alignment) {
      vb_error("%s: tensor %s: offset %llu is not a multiple of the alignment %zu", label, nm,
               (unsigned long long)ti->offset, meta.alignment);
      goto fail_infos;
    }
  }
  size_t data_off = c.pos, pad = (meta.alignment - c.pos % meta.alignment) % meta.alignment;
  if (!vb_add_ok(c.pos, pad, &data_off)) {
    vb_error("%s: data section offset overflows", label);
    goto fail_infos;
  }
  meta.data_offset = data_off;
  size_t data_len = data_off <= len ? len - data_off : 0;
  for (uint64_t i = 0; i < n_tensors; i++) {
    tinfo *ti = &infos[i];
    char nm[96];
    snprintf(nm, sizeof nm, "%.*s", (int)(ti->name_len < 80 ? ti->name_len : 80), (const char *)ti->name);
    if (ti->nbytes && (data_off > len || ti->offset > data_len || ti->nbytes > data_len - ti->offset)) {
      vb_error("%s: tensor %s: data [%llu, +%zu) lies past the end of the file (%zu data bytes)",
               label, nm, (unsigned long long)ti->offset, ti->nbytes, data_len);
      goto fail_infos;
    }
    /* the kernels read a packed matrix where it lies, in 64-byte vectors */
    if (ti->dt == VB_DT_Q8X16 && (data_off + ti->offset) % VB_GGUF_PACKED_ALIGNMENT) {
      vb_error("%s: tensor %s: packed Q8X16 data at file offset %llu is not 64-byte aligned "
               "(general.alignment %zu; vblip convert --packed writes 64)",
               label, nm, (unsigned long long)(data_off + ti->offset), meta.alignment);
      goto fail_infos;
    }
    ranges[i] = (trange){ti->offset, ti->offset + ti->nbytes, (size_t)i};
  }
  if (n_tensors > 1) {
    qsort(ranges, (size_t)n_tensors, sizeof *ranges, cmp_trange);
    uint64_t end = 0;
    size_t end_i = 0;
    int any = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
      if (ranges[i].end == ranges[i].begin) continue;
      if (any && ranges[i].begin < end) {
        const tinfo *a = &infos[end_i], *b = &infos[ranges[i].index];
        vb_error("%s: the data of tensors %.*s and %.*s overlap", label, (int)(a->name_len < 80 ? a->name_len : 80),
                 (const char *)a->name, (int)(b->name_len < 80 ? b->name_len : 80), (const char *)b->name);
        goto fail_infos;
      }
      if (!any || ranges[i].end > end) {
        end = ranges[i].end;
        end_i = ranges[i].index;
      }
      any = 1;
    }
  }
  if (tt) {
    for (uint64_t i = 0; i < n_tensors; i++) {
      tinfo *ti = &infos[i];
      char *name = vb_malloc(ti->name_len + 1);
      if (!name) goto fail_infos;
      memcpy(name, ti->name, ti->name_len);
      name[ti->name_len] = 0;
      const uint8_t *data = ti->nbytes ? buf + data_off + ti->offset : buf;
      int r = vb_tt_add(tt, name, ti->dt, ti->ndim, ti->shape, data, ti->nbytes);
      free(name);
      if (r != 0) {
        vb_error_context("%s", label);
        goto fail_infos;
      }
    }
  }
  rc = 0;
fail_infos:
  free(infos);
done:
  free(ranges);
  if (rc == 0 && meta_out) *meta_out = meta;
  else vb_gguf_meta_free(&meta);
  return rc;
}

bool vb_gguf_is_file(const char *path) {
  /* O_NONBLOCK: a FIFO must not block here; it is refused below as not regular */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  struct stat st;
  char magic[4];
  bool r = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && read(fd, magic, 4) == 4 &&
           memcmp(magic, VB_GGUF_MAGIC, 4) == 0;
  close(fd);
  return r;
}

int vb_gguf_load(vb_tensor_table *tt, const char *path) {
  vb_mapped_file m;
  if (vb_map_file(path, &m) != 0) return -1;
  if (vb_gguf_parse(m.data, m.size, path, NULL, tt) != 0) {
    vb_unmap_file(&m);
    return -1;
  }
  return vb_tt_keep_map(tt, &m);
}

/* Checks that meta describes a vblip model and mounts its embedded files under path. */
static int mount_files(const char *path, const vb_gguf_meta *meta) {
  const vb_gguf_kv *arch = vb_gguf_get(meta, "general.architecture");
  if (arch && (arch->type != VB_GGUF_STRING || arch->len != strlen(VB_GGUF_ARCH) ||
               memcmp(arch->data, VB_GGUF_ARCH, arch->len) != 0)) {
    vb_error("%s: general.architecture is \"%.*s\", not \"%s\"", path,
             arch->type == VB_GGUF_STRING ? (int)(arch->len < 64 ? arch->len : 64) : 0,
             (const char *)arch->data, VB_GGUF_ARCH);
    return -1;
  }
  vb_vfs_file *files = vb_calloc(meta->n_kv + 1, sizeof *files);
  if (!files) return -1;
  int rc = -1;
  size_t n = 0, plen = strlen(VB_GGUF_FILE_PREFIX);
  int has_config = 0;
  for (size_t i = 0; i < meta->n_kv; i++) {
    const vb_gguf_kv *kv = &meta->kv[i];
    if (strncmp(kv->key, VB_GGUF_FILE_PREFIX, plen) != 0) continue;
    const char *name = kv->key + plen;
    int bytes = kv->type == VB_GGUF_ARRAY &&
                (kv->arr_type == VB_GGUF_UINT8 || kv->arr_type == VB_GGUF_INT8);
    if (kv->type != VB_GGUF_STRING && !bytes) {
      vb_error("%s: %s is neither a string nor an array of bytes", path, kv->key);
      goto out;
    }
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
      vb_error("%s: embedded file name \"%s\" is not a plain file name", path, name);
      goto out;
    }
    if (strcmp(name, "config.json") == 0) has_config = 1;
    files[n++] = (vb_vfs_file){name, kv->data, kv->len};
  }
  if (!has_config) {
    vb_error("%s has no embedded config.json (" VB_GGUF_FILE_PREFIX "config.json); "
             "vblip reads GGUF files written by 'vblip convert'",
             path);
    goto out;
  }
  rc = vb_vfs_mount(path, files, n);
out:
  free(files);
  return rc;
}

int vb_gguf_mount(const char *path) {
  if (vb_vfs_is_mounted(path)) return vb_vfs_mount(path, NULL, 0); /* one more reference */
  vb_mapped_file m;
  if (vb_map_file(path, &m) != 0) return -1;
  vb_gguf_meta meta;
  int rc = -1;
  if (vb_gguf_parse(m.data, m.size, path, &meta, NULL) == 0) {
    rc = mount_files(path, &meta);
    vb_gguf_meta_free(&meta);
  }
  vb_unmap_file(&m);
  return rc;
}

int vb_gguf_open_model(const char *path, vb_tensor_table *tt) {
  vb_mapped_file m;
  if (vb_map_file(path, &m) != 0) return -1;
  vb_gguf_meta meta;
  if (vb_gguf_parse(m.data, m.size, path, &meta, tt) != 0) {
    vb_unmap_file(&m);
    return -1;
  }
  int rc = mount_files(path, &meta); /* a path mounted already gains a reference */
  vb_gguf_meta_free(&meta);
  if (rc != 0) {
    vb_unmap_file(&m);
    return -1;
  }
  if (vb_tt_keep_map(tt, &m) != 0) {
    vb_unmap_file(&m);
    vb_vfs_unmount(path);
    return -1;
  }
  return 0;
}
