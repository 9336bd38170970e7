/* safetensors: 8-byte little-endian header length, JSON header, raw data. */
#ifndef VBLIP_FORMATS_SAFETENSORS_H
#define VBLIP_FORMATS_SAFETENSORS_H

#include "formats/tensor_table.h"

/* Maps the file and adds every tensor to tt (data stays in the mapping). */
int vb_safetensors_load(vb_tensor_table *tt, const char *path);
/* Parses an in-memory file; tensors point into buf, which must outlive tt.
 * Used by the loader and by the fuzz target. */
int vb_safetensors_parse(vb_tensor_table *tt, const uint8_t *buf, size_t len, const char *label);
/* Reads "__metadata__" string values; returns a malloc'd copy or NULL. */
char *vb_safetensors_metadata(const char *path, const char *key);

typedef struct {
  const char *name;
  vb_dtype dtype;
  int ndim;
  int64_t shape[VB_MAX_DIMS];
  const void *data;
} vb_st_entry;

/* Writes tensors (and optional string metadata pairs: keys[i] -> values[i])
 * to path atomically (temporary file renamed at the end). */
int vb_safetensors_write(const char *path, const vb_st_entry *entries, size_t n,
                         const char *const *meta_keys, const char *const *meta_values,
                         size_t n_meta);

#endif
