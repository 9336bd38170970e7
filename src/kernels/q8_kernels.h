/* Internal: the q8_0 building blocks behind vb_linear_forward, exposed for tests
 * and the benchmark. Weights are GGUF Q8_0 [N, K] row-major (PyTorch's
 * [out, in]), K a multiple of 32: each row is K/32 blocks of 34 bytes, an f16
 * scale d then 32 int8 q, value = d * q. */
#ifndef VBLIP_KERNELS_Q8_KERNELS_H
#define VBLIP_KERNELS_Q8_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define VB_Q8_BLOCK 32
#define VB_Q8_BLOCK_BYTES 34

/* Bytes of one Q8_0 row of K values (K a multiple of 32). */
static inline size_t vb_q8_row_bytes(int K) {
  return (size_t)(K / VB_Q8_BLOCK) * VB_Q8_BLOCK_BYTES;
}

/* n values (a multiple of 32) to Q8_0 blocks as GGUF/convert write them:
 * d = max|x| / 127 rounded to f16, q = round(x / d). Threaded for large n. */
void vb_quantize_q8_0(const float *x, int64_t n, void *out);

/* y[M, N] = x[M, K] W^T (+ bias) with float activations: the weight is read
 * from memory once for all M rows, f32 accumulation (as exact as an f32
 * product with the dequantized weight). Variants: the run-time dispatcher
 * (AVX-512 when present and not disabled, else portable C) and each
 * implementation (for tests). */
void vb_gemv_q8(const void *W, int N, int K, const float *x, int M, const float *bias, float *y);
void vb_gemv_q8_c(const void *W, int N, int K, const float *x, int M, const float *bias, float *y);
#if defined(__x86_64__)
void vb_gemv_q8_avx512(const void *W, int N, int K, const float *x, int M, const float *bias,
                       float *y);
#endif
/* Whether vb_gemv_q8_avx512 can run here (AVX-512F/BW/VL + F16C, not disabled; never
 * on other processors than x86-64, where only the portable kernels are built). */
int vb_gemv_q8_has_avx512(void);

/* Rows [r0, r1) of a Q8_0 weight dequantized to bf16 / f32, dst row stride K. */
void vb_q8_rows_to_bf16(const void *W, int K, int r0, int r1, uint16_t *dst);
void vb_q8_rows_to_f32(const void *W, int K, int r0, int r1, float *dst);

/* The same weights repacked for AVX512-VNNI (q8_vnni.c; the layout is
 * described there): same size as the Q8_0 rows, plus padding to 16 rows.
 * vb_gemv_q8x16 quantizes the activations to 16 bits per 32-value block
 * (error <= max|x of the block| / 65278 per value). P must be 64-byte aligned;
 * the row ranges of the unpackers start at a multiple of 16. */
int vb_q8x16_supported(void); /* never on other processors than x86-64 */
size_t vb_q8x16_bytes(int N, int K);
void vb_q8x16_pack(const void *W, int N, int K, void *P);
#if defined(__x86_64__)
/* -1 when the per-thread quantized-activation scratch cannot grow. */
int vb_gemv_q8x16(const void *P, int N, int K, const float *x, int M, const float *bias, float *y);
void vb_q8x16_rows_to_bf16(const void *P, int K, int r0, int r1, uint16_t *dst);
void vb_q8x16_rows_to_f32(const void *P, int K, int r0, int r1, float *dst);
/* Panels [p0, p1) (64 rows each, padding rows included) as bf16 in the blocked
 * layout of vb_gemv_bf16b (bf16_kernels.h), dst 64-byte aligned. */
void vb_q8x16_panels_to_bf16b(const void *P, int K, int p0, int p1, uint16_t *dst);
#endif
/* Weight rows 16 g0 .. 16 g1 ("groups" of 16; g1 at most ceil(N / 16)) at
 * k0 <= k < k1 (multiples of 32) as AMX bf16 B tiles (q_tiles.h): group g's
 * k-pair rows at dst + (g - g0) (k1 - k0) 16, the pair (k, k + 1) at
 * + (k - k0) 16, each row 16 x 2 bf16; dst 64-byte aligned. The values equal
 * vb_q8x16_rows_to_bf16's. Only where vb_q_tiles_supported. The same for the
 * Q4_0 and Q4_K copies: vb_q4x16_to_tiles, vb_q4kx16_to_tiles (q4_kernels.h). */
#if defined(__x86_64__)
void vb_q8x16_to_tiles(const void *P, int K, int g0, int g1, int k0, int k1, uint16_t *dst);
#endif
/* Whether the *_to_tiles unpackers run here (AVX512-BF16 with the VNNI
 * layouts' own requirements; never on other processors than x86-64). */
int vb_q_tiles_supported(void);

/* The many-row path a prepared Q8_0 / Q4_0 / Q4_K layer takes (gemm_q8.c):
 * "amx-bf16" (the packed copy dequantized straight into AMX tiles),
 * "vnni-gemv" (the packed copy's GEMV, as decoding; where bf16 is slow),
 * "onednn-bf16" (bf16 tiles through oneDNN; f32 sgemm for a shape it
 * refuses) or "f32" (f32 tiles through sgemm); NULL before prepare. */
const char *vb_linear_q8_prefill_path(const vb_linear *l);

/* Products with M up to this go to vb_gemv_q8, larger ones to the tiled
 * dequantize-then-matmul path (gemm_q8.c). */
#define VB_Q8_GEMV_MAX_M 15

#endif
