/* Internal: GGUF Q4_0 weights (vblip convert --type q4_0) behind
 * vb_linear_forward, exposed for tests and the benchmark. A weight [N, K]
 * (K a multiple of 32) is K/32 blocks of 18 bytes per row: an f16 scale d,
 * then 16 bytes whose byte j holds value j in its low nibble and value j + 16
 * in its high nibble, each an unsigned q in 0..15; the value is d * (q - 8). */
#ifndef VBLIP_KERNELS_Q4_KERNELS_H
#define VBLIP_KERNELS_Q4_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"

#define VB_Q4_BLOCK 32
#define VB_Q4_BLOCK_BYTES 18

static inline size_t vb_q4_row_bytes(int K) {
  return (size_t)(K / VB_Q4_BLOCK) * VB_Q4_BLOCK_BYTES;
}

/* n values (a multiple of 32) to Q4_0 blocks: d = (the block's value of
 * largest magnitude) / -8 rounded to f16, q = clamp(round(x / d) + 8, 0, 15),
 * so that value itself is exactly -8 d. Threaded for large n. */
void vb_quantize_q4_0(const float *x, int64_t n, void *out);

/* Rows [r0, r1) dequantized to bf16 / f32 (dst row stride K). */
void vb_q4_rows_to_bf16(const void *W, int K, int r0, int r1, uint16_t *dst);
void vb_q4_rows_to_f32(const void *W, int K, int r0, int r1, float *dst);

/* y[M, N] = x[M, K] W^T (+ bias) for few rows (decoding): the activations are
 * quantized to int8 per 32-value block (scale max|x| / 127), each block's
 * product summed in int32 (4-bit x 8-bit) and scaled in f32; the weight is
 * read once for all M rows. The dispatcher picks AVX512-VNNI (VPDPBUSD on two
 * blocks at once), AVX2 (VPMADDUBSW) or portable C; each is exposed for the
 * tests (the caller checks the CPU). The paths give the same integer block
 * sums; only the float additions' order differs. -1 when the scratch for the
 * quantized activations cannot grow. */
int vb_gemv_q4(const void *W, int N, int K, const float *x, int M, const float *bias, float *y);
int vb_gemv_q4_c(const void *W, int N, int K, const float *x, int M, const float *bias, float *y);
#if defined(__x86_64__)
int vb_gemv_q4_avx2(const void *W, int N, int K, const float *x, int M, const float *bias,
                    float *y);
int vb_gemv_q4_vnni(const void *W, int N, int K, const float *x, int M, const float *bias,
                    float *y);
#endif
/* Whether those run here (never on other processors than x86-64). */
int vb_gemv_q4_has_avx2(void);
int vb_gemv_q4_has_vnni(void);
/* Which path vb_gemv_q4 takes here: "avx512-vnni", "avx2" or "c". */
const char *vb_gemv_q4_path(void);

/* Activation rows quantized for the products: int8 values (rows of qstride
 * bytes, zero past K), and per 32-value block the scale d_a and c = 8 d_a
 * sum(a). vb_q4_quantize_acts fills it in the calling thread's scratch (valid
 * until its next call there); blocks per row are rounded up to pad_blocks. */
typedef struct {
  int8_t *q;
  float *da, *c;
  size_t qstride, bstride;
} vb_q4_acts;
int vb_q4_quantize_acts(const float *x, int M, int K, int pad_blocks, vb_q4_acts *a);

/* The weights repacked for AVX512-VNNI (q4_vnni.c describes the layout): the
 * Q4_0 rows' size plus padding to 16 rows. The decoding product on them is
 * the fastest here; the unpackers' row ranges start at a multiple of 16. */
int vb_q4x16_supported(void); /* never on other processors than x86-64 */
size_t vb_q4x16_bytes(int N, int K);
void vb_q4x16_pack(const void *W, int N, int K, void *P);
void vb_q4x16_rows_to_f32(const void *P, int K, int r0, int r1, float *dst);
#if defined(__x86_64__)
int vb_gemv_q4x16(const void *P, int N, int K, const float *x, int M, const float *bias, float *y);
void vb_q4x16_rows_to_bf16(const void *P, int K, int r0, int r1, uint16_t *dst);
/* Groups of 16 rows as AMX bf16 B tiles, as vb_q8x16_to_tiles (q8_kernels.h). */
void vb_q4x16_to_tiles(const void *P, int K, int g0, int g1, int k0, int k1, uint16_t *dst);
#endif

/* ---- GGUF Q4_K (gemv_q4k.c): 256-value super-blocks of 144 bytes, the
 * layout and value formula in runtime/dtype.h (vb_q4k_scales). K must be a
 * multiple of 256. ---- */
static inline size_t vb_q4k_row_bytes(int K) {
  return (size_t)(K / VB_Q4K_BLOCK) * VB_Q4K_BLOCK_BYTES;
}

/* n values (a multiple of 256) to Q4_K super-blocks: per 32-value sub-block
 * a float fit x ~ a q - b (a, b >= 0, q in 0..15) chosen by least squares
 * over several grid spacings; then d = max a / 63, dmin = max b / 63 (f16)
 * and, per sub-block, the 6-bit sc and m among the nearest few that give the
 * smallest squared error with q requantized. Threaded for large n. */
void vb_quantize_q4_k(const float *x, int64_t n, void *out);

/* Rows [r0, r1) dequantized to bf16 / f32 (dst row stride K). */
void vb_q4k_rows_to_bf16(const void *W, int K, int r0, int r1, uint16_t *dst);
void vb_q4k_rows_to_f32(const void *W, int K, int r0, int r1, float *dst);

/* y[M, N] = x[M, K] W^T (+ bias) for few rows, as vb_gemv_q4: activations in
 * int8 per 32 values (vb_q4_quantize_acts), each sub-block's integer sum
 * scaled by d sc da, less dmin m da sum(a) (the per-32 sums of the
 * activations). Paths: AVX512-VNNI (VPDPBUSD, two sub-blocks per
 * instruction), AVX2 (VPMADDUBSW), portable C; the same CPU checks as Q4_0. */
int vb_gemv_q4k(const void *W, int N, int K, const float *x, int M, const float *bias, float *y);
int vb_gemv_q4k_c(const void *W, int N, int K, const float *x, int M, const float *bias, float *y);
#if defined(__x86_64__)
int vb_gemv_q4k_avx2(const void *W, int N, int K, const float *x, int M, const float *bias,
                     float *y);
int vb_gemv_q4k_vnni(const void *W, int N, int K, const float *x, int M, const float *bias,
                     float *y);
#endif

/* Q4_K repacked for AVX512-VNNI (q4k_vnni.c describes the layout; where
 * vb_q4x16_supported): the Q4_K rows' size plus 2.8% and padding to 16 rows.
 * The fastest decoding product here; the unpackers take any row range. */
size_t vb_q4kx16_bytes(int N, int K);
void vb_q4kx16_rows_to_f32(const void *P, int K, int r0, int r1, float *dst);
#if defined(__x86_64__)
void vb_q4kx16_pack(const void *W, int N, int K, void *P);
int vb_gemv_q4kx16(const void *P, int N, int K, const float *x, int M, const float *bias, float *y);
void vb_q4kx16_rows_to_bf16(const void *P, int K, int r0, int r1, uint16_t *dst);
/* Groups of 16 rows as AMX bf16 B tiles, as vb_q8x16_to_tiles (q8_kernels.h);
 * k0, k1 multiples of 32 (sub-blocks). */
void vb_q4kx16_to_tiles(const void *P, int K, int g0, int g1, int k0, int k1, uint16_t *dst);
#endif

/* Q4_K with many activation rows on AMX-INT8 (q4k_amx.c): the same int8
 * activations and integer block sums as vb_gemv_q4k, one TDPBSSD per block
 * and 16 x 16 outputs, the block scales applied in f32 on the int32 sums.
 * Usable where AMX-INT8 is (its permission granted, VBLIP_NO_AMX unset) and
 * AVX512-VNNI too. -1 when not usable or out of memory. */
#if defined(__x86_64__)
int vb_q4k_amx_usable(void);
int vb_gemm_q4k_amx(const void *W, int N, int K, const float *x, int M, const float *bias,
                    float *y);
#else /* q4k_amx.c is built for x86-64 only */
static inline int vb_q4k_amx_usable(void) {
  return 0;
}
#endif

#endif
