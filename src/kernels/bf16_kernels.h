/* Internal: the bf16 building blocks behind vb_linear_forward, exposed for tests
 * and the benchmark. Weights are bf16 [N, K] row-major (PyTorch's [out, in]). */
#ifndef VBLIP_KERNELS_BF16_KERNELS_H
#define VBLIP_KERNELS_BF16_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* dst[m, 0..ld) = bf16(x[m, 0..K)) rounded to nearest even, zero-padded to ld. */
void vb_f32_to_bf16_rows(const float *x, int M, int K, uint16_t *dst, int ld);

/* y[M, N] = x[M, K] W^T (+ bias): small-M products that stream W once.
 * Variants: the run-time dispatcher, and each implementation (for tests). Those
 * returning int give -1 when their per-thread activation scratch cannot grow. */
int vb_gemv_bf16(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                 float *y);
void vb_gemv_bf16_c(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                    float *y);
#if defined(__x86_64__)
/* AVX-512F: weights widened to f32, activations kept in f32. */
int vb_gemv_bf16_avx512(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                        float *y);
/* AVX512-BF16: activations rounded to bf16, VDPBF16PS with f32 accumulation. */
int vb_gemv_bf16_avx512bf16(const uint16_t *W, int N, int K, const float *x, int M,
                            const float *bias, float *y);
#endif

/* The blocked layout (gemv_bf16_blocked.c; oneDNN's BA16a64b2a for the [K, N]
 * weight, N K bf16 values) that weights converted at load are kept in on
 * AVX512-BF16 CPUs: whether a shape fits it (N % 64 == 0, K % 32 == 0) and
 * the CPU runs its kernel, where element (n, k) lies, packing from plain
 * bf16 [N, K] rows, one f32 row n rounded to bf16 into its places, and
 * y[M, N] = x[M, K] W^T (+ bias) for any M (activations rounded to bf16, f32
 * accumulation, as vb_gemv_bf16_avx512bf16). */
int vb_bf16b_fits(int N, int K);
int vb_bf16b_supported(void);
size_t vb_bf16b_offset(int K, int n, int k);
void vb_bf16b_pack(const uint16_t *W, int N, int K, uint16_t *dst);
void vb_bf16b_put_row(const float *row, int K, int n, uint16_t *dst);
#if defined(__x86_64__) /* vb_bf16b_supported() is never true elsewhere */
int vb_gemv_bf16b(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                  float *y);
/* The same product with the weights widened to f32 and the activations as
 * they are (f32 FMAs; AVX-512F): for CPUs whose bf16 products are slow. */
int vb_gemm_bf16b_f32(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                      float *y);
/* The same from plain [N, K] bf16 rows (N % 64 == 0, K % 32 == 0, AVX-512F/BW), each
 * 64-row panel repacked into a per-thread buffer first: the same values as
 * vb_gemm_bf16b_f32 on the packed weight. -1 when that buffer cannot grow. */
int vb_gemm_bf16_rows_f32(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                          float *y);
#endif

/* Products with M below this go to vb_gemv_bf16, others to oneDNN's matmul. */
#define VB_BF16_GEMV_MAX_M 15

#endif
