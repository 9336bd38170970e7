/* A name -> tensor table shared by every weight-file reader (safetensors,
 * PyTorch .bin, GGUF). Tensors point into memory mappings the table keeps
 * alive, or into buffers the table owns. */
#ifndef VBLIP_FORMATS_TENSOR_TABLE_H
#define VBLIP_FORMATS_TENSOR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/common.h"
#include "runtime/dtype.h"

#define VB_MAX_DIMS 8

typedef struct {
  char *name;
  vb_dtype dtype;
  int ndim;
  int64_t shape[VB_MAX_DIMS];
  const void *data;
  size_t nbytes;
} vb_tensor_info;

typedef struct {
  vb_tensor_info *items;
  size_t count, cap;
  /* open-addressing hash over items, by name */
  int64_t *slots;
  size_t nslots;
  vb_mapped_file *maps;
  size_t nmaps;
  void **owned;
  size_t nowned;
} vb_tensor_table;

int64_t vb_tensor_numel(const vb_tensor_info *t);

void vb_tt_init(vb_tensor_table *tt);
void vb_tt_free(vb_tensor_table *tt);
const vb_tensor_info *vb_tt_find(const vb_tensor_table *tt, const char *name);
/* Adds a tensor (name is copied). Fails on duplicate names. */
int vb_tt_add(vb_tensor_table *tt, const char *name, vb_dtype dtype, int ndim,
              const int64_t *shape, const void *data, size_t nbytes);
/* Hands a mapping / heap buffer to the table; freed with it. */
int vb_tt_keep_map(vb_tensor_table *tt, vb_mapped_file *m);
int vb_tt_keep(vb_tensor_table *tt, void *heap_ptr);
/* Tells the kernel this process is done with bytes [data, data + bytes) of a
 * memory-mapped file the table keeps: their whole pages leave the process's
 * memory (RSS); they stay in the page cache and fault back in, unchanged, if
 * anything reads them again. Does nothing for heap buffers. */
void vb_tt_drop_pages(const vb_tensor_table *tt, const void *data, size_t bytes);

#endif
