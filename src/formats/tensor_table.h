/* A name -> tensor table shared by every weight-file reader (safetensors,
 * PyTorch .bin, GGUF). Tensors point into memory mappings the table keeps
 * alive, or into buffers the table owns. */
#ifndef VBLIP_FORMATS_TENSOR_TABLE_H
#define VBLIP_FORMATS_TENSOR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/common.h"

typedef enum {
  VB_DT_F32 = 0,
  VB_DT_F16,
  VB_DT_BF16,
  VB_DT_F64,
  VB_DT_I64,
  VB_DT_I32,
  VB_DT_I16,
  VB_DT_I8,
  VB_DT_U8,
  VB_DT_BOOL,
  VB_DT_Q8_0, /* GGUF block layout: per 32 values one f16 scale + 32 int8 */
  VB_DT_COUNT
} vb_dtype;

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

const char *vb_dtype_name(vb_dtype t);
/* Bytes per element; 0 for block-quantized types. */
size_t vb_dtype_size(vb_dtype t);
/* Total bytes for n elements of a type (handles block types); false on overflow or bad size. */
int vb_dtype_bytes(vb_dtype t, int64_t nelem, size_t *out);
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

/* Converts element i of a tensor of a float type to float. */
float vb_half_to_float(uint16_t h);
uint16_t vb_float_to_half(float f);
float vb_bf16_to_float(uint16_t b);
uint16_t vb_float_to_bf16(float f); /* round to nearest even */
/* Converts n elements of src (F32/F16/BF16/F64/Q8_0) to f32. */
int vb_convert_to_f32(vb_dtype dt, const void *src, int64_t n, float *dst);

#endif
