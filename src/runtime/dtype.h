/* Element types of stored tensors (safetensors, PyTorch, GGUF) and the float
 * conversions every layer needs: half, bfloat16 and Q8_0 blocks to float32 and back.
 * Runtime, not formats: kernels, loaders and writers all use them. */
#ifndef VBLIP_RUNTIME_DTYPE_H
#define VBLIP_RUNTIME_DTYPE_H

#include <stddef.h>
#include <stdint.h>

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
  VB_DT_Q4_0, /* GGUF block layout: per 32 values an f16 scale d + 16 bytes of 4-bit q: d (q - 8) */
  VB_DT_COUNT
} vb_dtype;

const char *vb_dtype_name(vb_dtype t);
/* Bytes per element; 0 for block-quantized types. */
size_t vb_dtype_size(vb_dtype t);
/* Total bytes for n elements of a type (handles block types); false on overflow or bad size. */
int vb_dtype_bytes(vb_dtype t, int64_t nelem, size_t *out);
float vb_half_to_float(uint16_t h);
uint16_t vb_float_to_half(float f);
float vb_bf16_to_float(uint16_t b);
uint16_t vb_float_to_bf16(float f); /* round to nearest even */
/* Converts n elements of src (F32/F16/BF16/F64/Q8_0/Q4_0) to f32. */
int vb_convert_to_f32(vb_dtype dt, const void *src, int64_t n, float *dst);

#endif
