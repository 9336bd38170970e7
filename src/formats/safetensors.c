#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/outfile.h"

#define MAX_HEADER_BYTES (100u << 20)

static int parse_dtype(const char *s, vb_dtype *out) {
  static const struct {
    const char *name;
    vb_dtype dt;
  } map[] = {{"F32", VB_DT_F32}, {"F16", VB_DT_F16}, {"BF16", VB_DT_BF16}, {"F64", VB_DT_F64},
             {"I64", VB_DT_I64}, {"I32", VB_DT_I32}, {"I16", VB_DT_I16},   {"I8", VB_DT_I8},
             {"U8", VB_DT_U8},   {"BOOL", VB_DT_BOOL}};
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcmp(s, map[i].name) == 0) {
      *out = map[i].dt;
      return 0;
    }
  return -1;
}

typedef struct {
  size_t begin, end;
  const char *name;
} range;

static int cmp_range(const void *a, const void *b) {
  const range *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

int vb_safetensors_parse(vb_tensor_table *tt, const uint8_t *buf, size_t len, const char *label) {
  if (len < 8) return vb_error("%s: not a safetensors file (%zu bytes, header needs 8)", label, len);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
  if (hlen > MAX_HEADER_BYTES || hlen > len - 8)
    return vb_error("%s: safetensors header length %llu exceeds the file (%zu bytes)", label,
                    (unsigned long long)hlen, len);
  const char *json = (const char *)buf + 8;
  cJSON *root = cJSON_ParseWithLength(json, (size_t)hlen);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return vb_error("%s: safetensors header is not a JSON object", label);
  }
  const uint8_t *data = buf + 8 + hlen;
  size_t data_len = len - 8 - (size_t)hlen;
  int n = cJSON_GetArraySize(root);
  range *ranges = vb_calloc((size_t)n + 1, sizeof *ranges);
  if (!ranges) {
    cJSON_Delete(root);
    return -1;
  }
  int nr = 0, rc = 0;
  cJSON *item;
  cJSON_ArrayForEach(item, root) {
    const char *name = item->string;
    if (strcmp(name, "__metadata__") == 0) continue;
    cJSON *jdt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    cJSON *jshape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    cJSON *joff = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    vb_dtype dt;
    if (!cJSON_IsString(jdt) || !cJSON_IsArray(jshape) || !cJSON_IsArray(joff) ||
        cJSON_GetArraySize(joff) != 2) {
      rc = vb_error("%s: tensor %s: malformed header entry", label, name);
      break;
    }
    if (parse_dtype(jdt->valuestring, &dt) != 0) {
      rc = vb_error("%s: tensor %s: unsupported dtype %s", label, name, jdt->valuestring);
      break;
    }
    int ndim = cJSON_GetArraySize(jshape);
    if (ndim > VB_MAX_DIMS) {
      rc = vb_error("%s: tensor %s: %d dimensions", label, name, ndim);
      break;
    }
    int64_t shape[VB_MAX_DIMS];
    size_t numel = 1;
    int bad = 0;
    for (int i = 0; i < ndim; i++) {
      cJSON *d = cJSON_GetArrayItem(jshape, i);
      if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.0e15 ||
          d->valuedouble != (double)(int64_t)d->valuedouble) {
        bad = 1;
        break;
      }
      shape[i] = (int64_t)d->valuedouble;
      if (!vb_mul_ok(numel, (size_t)shape[i], &numel)) bad = 1;
    }
    size_t nbytes = 0;
    if (bad || !vb_dtype_bytes(dt, (int64_t)numel, &nbytes)) {
      rc = vb_error("%s: tensor %s: invalid or overflowing shape", label, name);
      break;
    }
    cJSON *jb = cJSON_GetArrayItem(joff, 0), *je = cJSON_GetArrayItem(joff, 1);
    if (!cJSON_IsNumber(jb) || !cJSON_IsNumber(je) || jb->valuedouble < 0 ||
        je->valuedouble < jb->valuedouble || je->valuedouble > (double)data_len ||
        jb->valuedouble != (double)(size_t)jb->valuedouble ||
        je->valuedouble != (double)(size_t)je->valuedouble) {
      rc = vb_error("%s: tensor %s: data offsets outside the file's %zu data bytes", label, name,
                    data_len);
      break;
    }
    size_t b = (size_t)jb->valuedouble, e = (size_t)je->valuedouble;
    if (e - b != nbytes) {
      rc = vb_error("%s: tensor %s: %zu data bytes but shape and dtype need %zu", label, name,
                    e - b, nbytes);
      break;
    }
    ranges[nr++] = (range){b, e, name};
    if (vb_tt_add(tt, name, dt, ndim, shape, data + b, nbytes) != 0) {
      rc = vb_error_context("%s", label);
      break;
    }
  }
  if (rc == 0 && nr > 1) {
    qsort(ranges, (size_t)nr, sizeof *ranges, cmp_range);
    for (int i = 1; i < nr; i++)
      if (ranges[i].begin < ranges[i - 1].end && ranges[i].end > ranges[i].begin) {
        rc = vb_error("%s: tensors %s and %s overlap", label, ranges[i - 1].name, ranges[i].name);
        break;
      }
  }
  free(ranges);
  cJSON_Delete(root);
  return rc;
}

int vb_safetensors_load(vb_tensor_table *tt, const char *path) {
  vb_mapped_file m;
  if (vb_map_file(path, &m) != 0) return -1;
  if (vb_safetensors_parse(tt, m.data, m.size, path) != 0) {
    vb_unmap_file(&m);
    return -1;
  }
  return vb_tt_keep_map(tt, &m);
}

char *vb_safetensors_metadata(const char *path, const char *key) {
  vb_mapped_file m;
  if (vb_map_file(path, &m) != 0) return NULL;
  char *res = NULL;
  if (m.size >= 8) {
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | m.data[i];
    if (hlen <= MAX_HEADER_BYTES && hlen <= m.size - 8) {
      cJSON *root = cJSON_ParseWithLength((const char *)m.data + 8, (size_t)hlen);
      cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
      cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
      if (cJSON_IsString(v)) res = vb_strdup(v->valuestring);
      cJSON_Delete(root);
    }
  }
  vb_unmap_file(&m);
  return res;
}

int vb_safetensors_write(const char *path, const vb_st_entry *entries, size_t n,
                         const char *const *meta_keys, const char *const *meta_values,
                         size_t n_meta) {
  cJSON *root = cJSON_CreateObject();
  if (!root) return vb_error("out of memory");
  if (n_meta) {
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    for (size_t i = 0; i < n_meta; i++) cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i]);
  }
  size_t offset = 0;
  size_t *sizes = vb_calloc(n + 1, sizeof *sizes);
  if (!sizes) {
    cJSON_Delete(root);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    const vb_st_entry *e = &entries[i];
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
    if (!vb_dtype_bytes(e->dtype, numel, &sizes[i]) || e->dtype == VB_DT_Q8_0 ||
        e->dtype == VB_DT_Q4_0 || e->dtype == VB_DT_Q4_K) {
      free(sizes);
      cJSON_Delete(root);
      return vb_error("cannot write tensor %s as safetensors", e->name);
    }
    cJSON *t = cJSON_AddObjectToObject(root, e->name);
    cJSON_AddStringToObject(t, "dtype", vb_dtype_name(e->dtype));
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)e->shape[d]));
    cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
    cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offset + sizes[i])));
    offset += sizes[i];
  }
  char *json = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!json) {
    free(sizes);
    return vb_error("out of memory");
  }
  size_t jlen = strlen(json), padded = (jlen + 7) & ~(size_t)7;
  vb_outfile out;
  int rc = vb_outfile_open(&out, path);
  if (rc == 0) {
    FILE *f = out.f;
    uint8_t hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(hdr, 1, 8, f) == 8 && fwrite(json, 1, jlen, f) == jlen;
    for (size_t i = jlen; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
    for (size_t i = 0; ok && i < n; i++) ok = fwrite(entries[i].data, 1, sizes[i], f) == sizes[i];
    if (!ok) {
      rc = vb_error("error writing %s: %s", out.tmp, strerror(errno));
      vb_outfile_abort(&out);
    } else {
      rc = vb_outfile_commit(&out);
    }
  }
  free(json);
  free(sizes);
  return rc;
}
