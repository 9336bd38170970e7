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
  VB_DT_Q4_K, /* GGUF super-blocks of 256 values (144 bytes): vb_q4k_block_to_f32 */
  VB_DT_Q8X16, /* vblip's own: a Q8_0 [N, K] matrix already in the q8x16 layout of the VNNI
                * kernels (kernels/q8_vnni.c); its size depends on the shape (vb_q8x16_size),
                * so vb_dtype_bytes and vb_convert_to_f32 refuse it: unpack it first */
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
/* Converts n elements of src (F32/F16/BF16/F64/Q8_0/Q4_0/Q4_K) to f32. */
int vb_convert_to_f32(vb_dtype dt, const void *src, int64_t n, float *dst);

/* The q8x16 layout (vblip convert --packed; kernels/q8_vnni.c explains it):
 * rows in panels of 64 (the last padded with zero rows), each panel K/32
 * blocks of 2176 bytes: the 64 rows' f16 scales, then per k-quad q (8) and
 * 16-row slice s (4) 64 bytes whose byte 4r + j is the int8 weight of row
 * 64p + 16s + r at k = 32b + 4q + j, XOR 0x80. */
#define VB_Q8X16_PANEL 64
#define VB_Q8X16_BLOCK_BYTES (VB_Q8X16_PANEL * 34)
/* Bytes of an [N, K] matrix in the q8x16 layout; false when K is not a
 * positive multiple of 32, N is negative or the size overflows. */
int vb_q8x16_size(int64_t N, int64_t K, size_t *out);
/* Rows [r0, r1) of a q8x16 matrix of K columns back to GGUF Q8_0 rows (K/32
 * blocks of 34 bytes each) at dst: the exact inverse of vb_q8x16_pack.
 * Portable C, for CPUs without AVX512-VNNI and for the converters. */
void vb_q8x16_unpack_rows(const void *P, int64_t K, int64_t r0, int64_t r1, void *dst);
/* All N rows (vb_q8x16_unpack_rows(P, K, 0, N, dst)). */
void vb_q8x16_unpack(const void *P, int N, int K, void *dst);
/* A q8x16 matrix [N, K] as float32 (the values of its Q8_0 rows); -1 when out of memory. */
int vb_q8x16_to_f32(const void *P, int64_t N, int64_t K, float *dst);

/* GGUF Q4_K (ggml type 12): a super-block of 256 values is 144 bytes: f16 d,
 * f16 dmin, 12 bytes of 6-bit scales sc[8] and mins m[8] (one pair per 32
 * values), 128 bytes of 4-bit q. Bytes 32c..32c+31 of the q hold values
 * 64c..64c+31 in their low nibbles (sub-block 2c) and 64c+32..64c+63 in their
 * high nibbles (sub-block 2c+1). Value = d sc[s] q - dmin m[s]. The scale
 * bytes: for s < 4, sc[s] and m[s] are the low 6 bits of bytes s and s + 4;
 * for s >= 4, the low and high nibbles of byte s + 4 hold the low 4 bits of
 * sc[s] and m[s], whose top 2 bits are the top 2 bits of bytes s - 4 and s. */
#define VB_Q4K_BLOCK 256
#define VB_Q4K_BLOCK_BYTES 144
static inline void vb_q4k_scales(const uint8_t *s12, uint8_t sc[8], uint8_t m[8]) {
  for (int s = 0; s < 4; s++) {
    sc[s] = s12[s] & 63;
    m[s] = s12[s + 4] & 63;
    sc[s + 4] = (uint8_t)((s12[s + 8] & 15) | (s12[s] >> 6) << 4);
    m[s + 4] = (uint8_t)((s12[s + 8] >> 4) | (s12[s + 4] >> 6) << 4);
  }
}
/* The 256 values of one super-block. */
void vb_q4k_block_to_f32(const uint8_t *blk, float *out);

#endif
