#include "formats/zip.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define EOCD_SIZE 22
#define EOCD64_LOC_SIZE 20
#define EOCD64_SIZE 56
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
#define MAX_COMMENT 0xffff
#define EXTRA_ZIP64 0x0001

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* True when [off, off+n) lies inside a buffer of len bytes (no overflow). */
static int in_bounds(uint64_t off, uint64_t n, size_t len) {
  return off <= len && n <= len - off;
}

static int cmp_entry(const void *a, const void *b) {
  const vb_zip_entry *x = a, *y = b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp(x->name, y->name, n);
  if (c) return c;
  return x->name_len < y->name_len ? -1 : x->name_len > y->name_len ? 1 : 0;
}

/* Central-directory location from the classic EOCD, upgraded through the ZIP64
 * locator when the classic fields are saturated or a locator is present. */
static int find_directory(const uint8_t *buf, size_t len, const char *label, uint64_t *cd_off,
                          uint64_t *cd_size, uint64_t *count) {
  if (len < EOCD_SIZE)
    return vb_error("%s: not a zip archive (%zu bytes, too small for an end record)", label, len);
  /* The EOCD is followed only by its comment (at most 64 KiB), so the backward
   * search is bounded; take the last record whose comment fits in the file. */
  size_t lowest = len - EOCD_SIZE > MAX_COMMENT ? len - EOCD_SIZE - MAX_COMMENT : 0;
  size_t eocd = (size_t)-1;
  for (size_t i = len - EOCD_SIZE + 1; i-- > lowest;) {
    if (rd32(buf + i) == SIG_EOCD && rd16(buf + i + 20) <= len - EOCD_SIZE - i) {
      eocd = i;
      break;
    }
  }
  if (eocd == (size_t)-1)
    return vb_error("%s: not a zip archive (no end-of-central-directory record)", label);
  const uint8_t *e = buf + eocd;
  if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
    return vb_error("%s: multi-disk zip archives are not supported", label);
  *count = rd16(e + 10);
  *cd_size = rd32(e + 12);
  *cd_off = rd32(e + 16);
  int has_loc = eocd >= EOCD64_LOC_SIZE && rd32(e - EOCD64_LOC_SIZE) == SIG_EOCD64_LOC;
  int saturated = *count == 0xffff || *cd_size == 0xffffffffu || *cd_off == 0xffffffffu;
  if (!has_loc) {
    if (saturated)
      return vb_error("%s: zip end record needs ZIP64 values but has no ZIP64 locator", label);
    return 0;
  }
  const uint8_t *loc = e - EOCD64_LOC_SIZE;
  uint64_t off64 = rd64(loc + 8);
  if (!in_bounds(off64, EOCD64_SIZE, eocd - EOCD64_LOC_SIZE) || rd32(buf + off64) != SIG_EOCD64)
    return vb_error("%s: ZIP64 end record offset %llu is outside the archive or invalid", label,
                    (unsigned long long)off64);
  const uint8_t *z = buf + off64;
  if (rd32(z + 16) != 0 || rd32(z + 20) != 0)
    return vb_error("%s: multi-disk zip archives are not supported", label);
  *count = rd64(z + 32);
  *cd_size = rd64(z + 40);
  *cd_off = rd64(z + 48);
  return 0;
}

/* Replaces saturated 32-bit fields with the ZIP64 extra field's values; the extra
 * holds only the saturated ones, in the order uncompressed, compressed, offset. */
static int apply_zip64_extra(const uint8_t *extra, size_t n, uint64_t *usize, uint64_t *csize,
                             uint64_t *offset, int want_offset) {
  size_t p = 0;
  while (n - p >= 4) {
    uint16_t id = rd16(extra + p), sz = rd16(extra + p + 2);
    if (sz > n - p - 4) return -1;
    if (id == EXTRA_ZIP64) {
      const uint8_t *f = extra + p + 4;
      size_t avail = sz, q = 0;
      uint64_t *fields[3] = {usize, csize, want_offset ? offset : NULL};
      for (int i = 0; i < 3; i++) {
        if (!fields[i] || *fields[i] != 0xffffffffu) continue;
        if (avail - q < 8) return -1;
        *fields[i] = rd64(f + q);
        q += 8;
      }
      return 0;
    }
    p += 4 + (size_t)sz;
  }
  /* No ZIP64 extra: fine only when no field was saturated. */
  if (*usize == 0xffffffffu || *csize == 0xffffffffu || (want_offset && *offset == 0xffffffffu))
    return -1;
  return 0;
}

int vb_zip_open(vb_zip *z, const uint8_t *buf, size_t len, const char *label) {
  memset(z, 0, sizeof *z);
  z->label = label;
  uint64_t cd_off = 0, cd_size = 0, count = 0;
  if (find_directory(buf, len, label, &cd_off, &cd_size, &count) != 0) return -1;
  if (!in_bounds(cd_off, cd_size, len))
    return vb_error("%s: zip central directory (offset %llu, %llu bytes) lies outside the %zu-byte "
                    "file (truncated?)",
                    label, (unsigned long long)cd_off, (unsigned long long)cd_size, len);
  /* Each central entry is at least 46 bytes: bounds the allocation by the file. */
  if (count > cd_size / CENTRAL_SIZE)
    return vb_error("%s: zip claims %llu entries but its directory holds at most %llu", label,
                    (unsigned long long)count, (unsigned long long)(cd_size / CENTRAL_SIZE));
  z->entries = vb_calloc(count ? (size_t)count : 1, sizeof *z->entries);
  if (!z->entries) return -1;
  const uint8_t *cd = buf + cd_off;
  size_t p = 0;
  for (uint64_t i = 0; i < count; i++) {
    if (cd_size - p < CENTRAL_SIZE || rd32(cd + p) != SIG_CENTRAL) {
      vb_zip_close(z);
      return vb_error("%s: zip central directory entry %llu is malformed", label,
                      (unsigned long long)i);
    }
    const uint8_t *c = cd + p;
    uint16_t flags = rd16(c + 8), method = rd16(c + 10);
    uint64_t csize = rd32(c + 20), usize = rd32(c + 24), loff = rd32(c + 42);
    size_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
    if (nlen + xlen + clen > cd_size - p - CENTRAL_SIZE) {
      vb_zip_close(z);
      return vb_error("%s: zip central directory entry %llu runs past the directory", label,
                      (unsigned long long)i);
    }
    const char *name = (const char *)c + CENTRAL_SIZE;
    if (apply_zip64_extra(c + CENTRAL_SIZE + nlen, xlen, &usize, &csize, &loff, 1) != 0) {
      vb_zip_close(z);
      return vb_error("%s: zip entry %.*s has a missing or malformed ZIP64 extra field", label,
                      (int)nlen, name);
    }
    /* The local header repeats the name; its extra field may differ (padding). */
    if (!in_bounds(loff, LOCAL_SIZE, len) || rd32(buf + loff) != SIG_LOCAL) {
      vb_zip_close(z);
      return vb_error("%s: zip entry %.*s: local header offset %llu is outside the file or "
                      "invalid (truncated?)",
                      label, (int)nlen, name, (unsigned long long)loff);
    }
    const uint8_t *l = buf + loff;
    size_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    uint64_t data_off = loff + LOCAL_SIZE + lnlen + lxlen;
    if (lnlen != nlen || !in_bounds(loff + LOCAL_SIZE, lnlen, len) ||
        memcmp(l + LOCAL_SIZE, name, nlen) != 0) {
      vb_zip_close(z);
      return vb_error("%s: zip entry %.*s: local header name does not match the directory", label,
                      (int)nlen, name);
    }
    if (!in_bounds(data_off, csize, len)) {
      vb_zip_close(z);
      return vb_error("%s: zip entry %.*s: %llu data bytes at offset %llu run past the end of the "
                      "%zu-byte file (truncated?)",
                      label, (int)nlen, name, (unsigned long long)csize,
                      (unsigned long long)data_off, len);
    }
    if (method == 0 && csize != usize) {
      vb_zip_close(z);
      return vb_error("%s: stored zip entry %.*s has different compressed (%llu) and "
                      "uncompressed (%llu) sizes",
                      label, (int)nlen, name, (unsigned long long)csize, (unsigned long long)usize);
    }
    z->entries[i] = (vb_zip_entry){name, nlen, method, flags, buf + data_off, (size_t)csize};
    p += CENTRAL_SIZE + nlen + xlen + clen;
  }
  z->count = (size_t)count;
  qsort(z->entries, z->count, sizeof *z->entries, cmp_entry);
  for (size_t i = 1; i < z->count; i++)
    if (cmp_entry(&z->entries[i - 1], &z->entries[i]) == 0) {
      int n = (int)z->entries[i].name_len;
      const char *name = z->entries[i].name;
      vb_zip_close(z);
      return vb_error("%s: zip entry %.*s appears twice", label, n, name);
    }
  return 0;
}

void vb_zip_close(vb_zip *z) {
  free(z->entries);
  z->entries = NULL;
  z->count = 0;
}

const vb_zip_entry *vb_zip_find(const vb_zip *z, const char *name, size_t name_len) {
  vb_zip_entry key = {.name = name, .name_len = name_len};
  if (!z->count) return NULL;
  return bsearch(&key, z->entries, z->count, sizeof *z->entries, cmp_entry);
}

int vb_zip_entry_data(const vb_zip *z, const vb_zip_entry *e, const uint8_t **data, size_t *size) {
  if (e->flags & 1)
    return vb_error("%s: zip entry %.*s is encrypted", z->label, (int)e->name_len, e->name);
  if (e->method != 0)
    return vb_error("%s: zip entry %.*s is compressed (method %u); only stored entries are "
                    "supported (torch.save writes them uncompressed)",
                    z->label, (int)e->name_len, e->name, e->method);
  *data = e->data;
  *size = e->size;
  return 0;
}
