#include "formats/torch_bin.h"

#include <stdlib.h>
#include <string.h>

#include "formats/pickle.h"
#include "formats/zip.h"

#define MAX_KEY_LEN 4096

typedef struct {
  const vb_zip *z;
  const char *prefix; /* "<archive>/", the folder holding data.pkl */
  size_t plen;
  const char *label;
} storage_ctx;

/* Looks up "<archive>/<mid><rel>"; *found is NULL when absent. */
static int find_rel(const storage_ctx *c, const char *mid, const char *rel, size_t rlen,
                    const vb_zip_entry **found) {
  size_t ml = strlen(mid), n = c->plen + ml + rlen;
  char *name = vb_malloc(n + 1);
  if (!name) return -1;
  memcpy(name, c->prefix, c->plen);
  memcpy(name + c->plen, mid, ml);
  memcpy(name + c->plen + ml, rel, rlen);
  name[n] = 0;
  *found = vb_zip_find(c->z, name, n);
  free(name);
  return 0;
}

/* Resolves a persistent storage key to the stored entry "<archive>/data/<key>". */
static int load_storage(void *ctx, const char *key, size_t klen, const uint8_t **data,
                        size_t *size) {
  const storage_ctx *c = ctx;
  if (klen > MAX_KEY_LEN) return vb_error("%s: storage key of %zu bytes is too long", c->label, klen);
  const vb_zip_entry *e;
  if (find_rel(c, "data/", key, klen, &e) != 0) return -1;
  if (!e) {
    /* Printable copy of the key for the message. */
    char k[65];
    size_t n = klen < 64 ? klen : 64;
    for (size_t i = 0; i < n; i++) k[i] = key[i] >= 32 && key[i] < 127 ? key[i] : '?';
    k[n] = 0;
    return vb_error("%s: the pickle refers to storage %.*sdata/%s, which is not in the archive",
                    c->label, (int)c->plen, c->prefix, k);
  }
  return vb_zip_entry_data(c->z, e, data, size);
}

/* The single "<archive>/data.pkl" entry; its folder is the archive prefix. */
static int find_pickle(const vb_zip *z, const char *label, const vb_zip_entry **out, size_t *plen) {
  static const char suffix[] = "/data.pkl";
  const size_t sl = sizeof suffix - 1;
  *out = NULL;
  for (size_t i = 0; i < z->count; i++) {
    const vb_zip_entry *e = &z->entries[i];
    if (e->name_len <= sl || memcmp(e->name + e->name_len - sl, suffix, sl) != 0) continue;
    if (memchr(e->name, '/', e->name_len - sl)) continue; /* only a top-level folder */
    if (*out)
      return vb_error("%s: archive holds more than one data.pkl (%.*s and %.*s)", label,
                      (int)(*out)->name_len, (*out)->name, (int)e->name_len, e->name);
    *out = e;
  }
  if (!*out) return vb_error("%s: zip archive has no <archive>/data.pkl: not a torch.save file", label);
  *plen = (*out)->name_len - sl + 1;
  return 0;
}

/* Optional small text entries: byteorder must be little-endian, version known. */
static int check_metadata(const storage_ctx *c) {
  const uint8_t *d;
  size_t n;
  const vb_zip_entry *e;
  if (find_rel(c, "", "byteorder", 9, &e) != 0) return -1;
  if (e) {
    if (vb_zip_entry_data(c->z, e, &d, &n) != 0) return -1;
    if (n == 3 && memcmp(d, "big", 3) == 0)
      return vb_error("%s: checkpoint was saved big-endian (byteorder \"big\"); only little-endian "
                      "is supported",
                      c->label);
    if (n != 6 || memcmp(d, "little", 6) != 0)
      return vb_error("%s: unrecognised byteorder entry", c->label);
  }
  if (find_rel(c, "", "version", 7, &e) != 0) return -1;
  if (e) {
    if (vb_zip_entry_data(c->z, e, &d, &n) != 0) return -1;
    long v = 0;
    size_t i = 0;
    for (; i < n && i < 4 && d[i] >= '0' && d[i] <= '9'; i++) v = v * 10 + (d[i] - '0');
    while (i < n && (d[i] == '\n' || d[i] == '\r' || d[i] == ' ')) i++;
    if (n == 0 || i != n || v < 1 || v > 10)
      return vb_error("%s: unsupported torch archive version entry", c->label);
  }
  return 0;
}

int vb_torch_bin_parse(vb_tensor_table *tt, const uint8_t *buf, size_t len, const char *label) {
  if (len >= 2 && buf[0] == 0x80 && buf[1] >= 2 && buf[1] <= 5)
    return vb_error("%s: legacy (pre-zip, torch < 1.6) checkpoint format is not supported; re-save "
                    "it with a recent torch or convert to safetensors",
                    label);
  vb_zip z;
  if (vb_zip_open(&z, buf, len, label) != 0) return -1;
  const vb_zip_entry *pkl;
  size_t plen = 0;
  int rc = find_pickle(&z, label, &pkl, &plen);
  if (rc == 0) {
    storage_ctx c = {&z, pkl->name, plen, label};
    const uint8_t *p;
    size_t n;
    rc = check_metadata(&c);
    if (rc == 0) rc = vb_zip_entry_data(&z, pkl, &p, &n);
    if (rc == 0) {
      /* Copies of non-contiguous views may not exceed the file's own size. */
      vb_pickle_opts o = {load_storage, &c, len, label};
      rc = vb_pickle_load_state_dict(tt, p, n, &o);
    }
  }
  vb_zip_close(&z);
  return rc;
}

int vb_torch_bin_load(vb_tensor_table *tt, const char *path) {
  vb_mapped_file m;
  if (vb_map_file(path, &m) != 0) return -1;
  size_t before = tt->count;
  if (vb_torch_bin_parse(tt, m.data, m.size, path) != 0) {
    /* A late failure (a name already in tt) may leave tensors pointing into the
     * mapping: then the table keeps it until it is freed. */
    if (tt->count != before) vb_tt_keep_map(tt, &m);
    else vb_unmap_file(&m);
    return -1;
  }
  return vb_tt_keep_map(tt, &m);
}
