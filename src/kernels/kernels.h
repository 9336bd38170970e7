/* Compute kernels on float32 activations. Threaded with OpenMP (the same
 * thread pool oneDNN uses, so the two never oversubscribe the cores). */
#ifndef VBLIP_KERNELS_KERNELS_H
#define VBLIP_KERNELS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/dtype.h"

/* The arithmetic a linear layer runs in. Activations are always float32 at
 * the interface; BF16 rounds weights (once, at prepare) and activations (per
 * call) to bfloat16 and accumulates in float32. */
typedef enum {
  VB_COMPUTE_F32 = 0,  /* exact float32: oneDNN sgemm (the default) */
  VB_COMPUTE_BF16 = 1, /* oneDNN bf16 matmul (AMX / AVX512-BF16) for M >= 16, own GEMV below;
                        * a Q8_0 weight stays 8-bit (in place, or repacked for VNNI): own
                        * GEMV for M < 16, bf16 tiles dequantized per call for M >= 16.
                        * Packed layers on AMX CPUs: vblip's own AMX tile product */
  VB_COMPUTE_INT8 = 2  /* int8 x int8 -> int32 (tile_gemm.h): weights per output channel
                        * (quantized at prepare, or stored I8 with w_scale), activations
                        * per row at run time; AMX-INT8 / VNNI / portable */
} vb_compute;

/* A linear layer y = x W^T + b with W stored [out, in] as PyTorch does.
 * The weight may live in a mapped file (any dtype vb_convert_to_f32 reads) and
 * is prepared once (converted/packed) on first use or at load time.
 * Set compute (and pack) before vb_linear_prepare; zero-initialized means f32. */
typedef struct {
  int out, in;
  vb_dtype dtype;       /* of the stored weight */
  const void *w;        /* stored weight, [out, in] */
  const void *w_packed; /* Q8_0 only: the weight stored already in the q8x16 layout (a
                         * `vblip convert --packed` file, 64-byte aligned), used in place
                         * as the packed copy where AVX512-VNNI runs; w is then NULL */
  const float *bias;    /* [out] or NULL */
  const float *w_scale; /* dtype I8: w[n, k] = q[n, k] * w_scale[n] */
  float *w_f32;         /* owned f32 copy when the stored weight is not aligned f32 */
  void *backend;        /* backend-specific prepared form (oneDNN primitive cache etc.) */
  void *tile;           /* or vblip's own tile product (linear_tile.c) */
  vb_compute compute;
  int pack; /* BF16: keep the weight only in oneDNN's blocked layout, for layers
             * always run with many rows (vision encoder, Q-Former) */
} vb_linear;

/* y[M, out] = x[M, in] W^T + b. 0, or -1 (vblip_last_error) when scratch memory
 * runs out or the layer was never prepared. */
__attribute__((warn_unused_result)) int vb_linear_forward(const vb_linear *l, const float *x, int M,
                                                          float *y);
/* y = gelu_erf(x W^T + b), fused into the product where the backend can; as vb_linear_forward. */
__attribute__((warn_unused_result)) int vb_linear_forward_gelu(const vb_linear *l, const float *x,
                                                               int M, float *y);
/* Row r of the stored weight as f32 (any stored dtype, I8 with its scales). */
int vb_linear_weight_row(const vb_linear *l, int r, float *row);
/* Converts/packs the weight now, so that forward needs at most scratch memory. */
int vb_linear_prepare(vb_linear *l);
void vb_linear_release(vb_linear *l);
/* Whether a prepared layer still reads the stored weight (l->w) when it runs;
 * when not, the loader can drop the stored bytes' pages from memory. */
int vb_linear_reads_stored(const vb_linear *l);

/* C[M,N] = A[M,K] * B[K,N] (both row-major, leading dims given), optionally
 * with B transposed (B stored [N,K]); alpha scales the product, beta keeps C. */
void vb_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b,
             float alpha, float beta, float *C, int ldc);

void vb_layernorm(const float *x, float *y, int rows, int n, const float *w, const float *b,
                  float eps);
/* T5's RMS norm: w * x / sqrt(mean(x^2) + eps). */
void vb_rmsnorm(const float *x, float *y, int rows, int n, const float *w, float eps);
/* One row of vb_layernorm (no threads). */
void vb_layernorm_row(const float *x, float *y, int n, const float *w, const float *b, float eps);
void vb_gelu_erf(float *x, size_t n);
/* vb_gelu_erf without threads, the same values (for short rows inside parallel code). */
void vb_gelu_erf_serial(float *x, size_t n);
void vb_gelu_tanh(float *x, size_t n);
void vb_relu(float *x, size_t n);
void vb_add(float *y, const float *x, size_t n); /* y += x */
/* sum a[i] b[i]; y += a x (vectorized where the CPU allows) */
float vb_dot(const float *a, const float *b, int n);
void vb_axpy(float *y, float a, const float *x, int n);
void vb_softmax_row(float *x, int n);
/* vb_softmax_row's probabilities rounded to bf16 (nearest even) into dst[0, n),
 * dst[n, np) zeroed; x is left holding scratch values. */
void vb_softmax_row_bf16(float *x, int n, int np, uint16_t *dst);

/* Multi-head attention for one sequence:
 * q [nq, ld_q], k/v [nk, ld_kv], heads of head_dim laid out contiguously in each row;
 * out [nq, ld_o]. scores = scale * q k^T (+ bias[h][i][j] if bias, laid out
 * [heads, nq, nk]) with a causal mask when causal (query i sees keys <= i + causal_offset). */
/* 0, or -1 when memory for the scores runs out. */
__attribute__((warn_unused_result)) int vb_attention(const float *q, int ld_q, const float *k,
                                                     const float *v, int ld_kv, float *out,
                                                     int ld_o, int nq, int nk, int heads,
                                                     int head_dim, float scale, const float *bias,
                                                     int causal, int causal_offset);
/* vb_attention over `batch` independent sequences laid out one after another
 * (sequence b: query/output rows from b * nq, key/value rows from b * nk), no
 * bias or mask: the vision encoder's frames, all in one parallel region. */
__attribute__((warn_unused_result)) int
vb_attention_batch(int batch, const float *q, int ld_q, const float *k, const float *v, int ld_kv,
                   float *out, int ld_o, int nq, int nk, int heads, int head_dim, float scale);

/* vb_attention_batch on AMX tiles (attention_amx.c): bf16 operands (queries
 * scaled before rounding), f32 sums and softmax. -1, nothing done, where AMX
 * is not usable, a sequence exceeds 1024 tokens or memory runs out: the
 * caller then runs vb_attention_batch. */
int vb_attention_batch_amx(int batch, const float *q, int ld_q, const float *k, const float *v,
                           int ld_kv, float *out, int ld_o, int nq, int nk, int heads, int head_dim,
                           float scale);
/* The same from bf16 q, k, v (q already multiplied by the scale and rounded:
 * then the result equals vb_attention_batch_amx's on the f32 values). */
int vb_attention_batch_amx_bf16(int batch, const uint16_t *q, int ld_q, const uint16_t *k,
                                const uint16_t *v, int ld_kv, float *out, int ld_o, int nq, int nk,
                                int heads, int head_dim);
/* The same with the output rounded to bf16 (nearest even) as it is stored. */
int vb_attention_batch_amx_bf16_out(int batch, const uint16_t *q, int ld_q, const uint16_t *k,
                                    const uint16_t *v, int ld_kv, uint16_t *out, int ld_o, int nq,
                                    int nk, int heads, int head_dim);

#endif
