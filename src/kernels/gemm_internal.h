/* Internal: the per-compute-type halves of vb_linear. */
#ifndef VBLIP_KERNELS_GEMM_INTERNAL_H
#define VBLIP_KERNELS_GEMM_INTERNAL_H

#include <dnnl.h>

#include "kernels/kernels.h"

/* dnnl_context.c: the process-wide oneDNN engine (created after vb_cpu_init),
 * and this thread's stream. */
dnnl_engine_t vb_dnnl_engine(void);
dnnl_stream_t vb_dnnl_stream(void);

int vb_linear_prepare_bf16(vb_linear *l);
void vb_linear_release_bf16(vb_linear *l);
void vb_linear_forward_bf16(const vb_linear *l, const float *x, int M, float *y);
int vb_linear_reads_stored_bf16(const vb_linear *l);

/* bf16 compute with a Q8_0 stored weight, kept in place (gemm_q8.c). */
int vb_linear_prepare_q8(vb_linear *l);
void vb_linear_release_q8(vb_linear *l);
void vb_linear_forward_q8(const vb_linear *l, const float *x, int M, float *y);


/* y[M, N] = x[M, K] W^T (+ bias) for small M with f32 weights [N, K], streaming
 * W once (gemv_f32.c). Returns -1 (nothing done) where the CPU lacks AVX-512. */
#define VB_F32_GEMV_MAX_M 15
int vb_gemv_f32(const float *W, int N, int K, const float *x, int M, const float *bias, float *y);

/* The GEMV kernels compute up to 4 output columns (n .. n+nr-1) for up to 4
 * activation rows (m0 ..) at a time; this writes that block of results plus bias. */
static inline void vb_gemv_store_block(float *y, int N, int n, int nr, int m0, int M,
                                       const float *bias, const float r[4][4]) {
  for (int m = 0; m < 4 && m0 + m < M; m++)
    for (int j = 0; j < nr; j++) y[(size_t)(m0 + m) * N + n + j] = r[m][j] + (bias ? bias[n + j] : 0.0f);
}

/* Output rows per dynamically handed-out block of a GEMV: long blocks stream
 * faster (the hardware prefetcher ramps up once per block), but there should
 * be at least 4 per thread so a descheduled thread delays little. */
static inline int vb_gemv_block_rows(int N, int nthreads) {
  int bs = 256;
  while (bs > 64 && (N + bs - 1) / bs < 4 * nthreads) bs /= 2;
  return bs;
}

#endif
