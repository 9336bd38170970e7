/* Read-only zip directory over an in-memory archive (the torch.save container).
 * Supports ZIP64; only stored (uncompressed) entries can be read, and their data
 * is returned in place, pointing into the archive buffer. */
#ifndef VBLIP_FORMATS_ZIP_H
#define VBLIP_FORMATS_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name; /* points into the archive; not NUL-terminated */
  size_t name_len;
  uint16_t method;  /* 0 = stored */
  uint16_t flags;   /* general purpose bits; bit 0 = encrypted */
  const uint8_t *data; /* start of the entry's bytes in the archive */
  size_t size;         /* compressed (= stored) size */
} vb_zip_entry;

typedef struct {
  vb_zip_entry *entries; /* sorted by name */
  size_t count;
  const char *label;
} vb_zip;

/* Reads the central directory of buf[0..len); every entry's local header and data
 * range is validated against the buffer. label names the archive in errors. */
int vb_zip_open(vb_zip *z, const uint8_t *buf, size_t len, const char *label);
void vb_zip_close(vb_zip *z);
/* Entry with exactly this name, or NULL. */
const vb_zip_entry *vb_zip_find(const vb_zip *z, const char *name, size_t name_len);
/* Data of a stored entry; fails (naming the entry) for compressed or encrypted ones. */
int vb_zip_entry_data(const vb_zip *z, const vb_zip_entry *e, const uint8_t **data, size_t *size);

#endif
