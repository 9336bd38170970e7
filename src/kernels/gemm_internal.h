/* Internal: the per-compute-type halves of vb_linear. */
#ifndef VBLIP_KERNELS_GEMM_INTERNAL_H
#define VBLIP_KERNELS_GEMM_INTERNAL_H

#include <dnnl.h>

#include "kernels/kernels.h"

/* dnnl_context.c: the process-wide oneDNN engine (created after vb_cpu_init),
 * this thread's stream, and a per-thread buffer that only grows. */
dnnl_engine_t vb_dnnl_engine(void);
dnnl_stream_t vb_dnnl_stream(void);
void *vb_scratch_grow(void **p, size_t *cap, size_t bytes);

int vb_linear_prepare_bf16(vb_linear *l);
void vb_linear_release_bf16(vb_linear *l);
void vb_linear_forward_bf16(const vb_linear *l, const float *x, int M, float *y);

/* bf16 compute with a Q8_0 stored weight, kept in place (gemm_q8.c). */
int vb_linear_prepare_q8(vb_linear *l);
void vb_linear_release_q8(vb_linear *l);
void vb_linear_forward_q8(const vb_linear *l, const float *x, int M, float *y);


/* The GEMV kernels compute two output columns (n, n+1; only n when !two) for up
 * to 4 activation rows at a time; this writes that block of results plus bias. */
static inline void vb_gemv_store_pair(float *y, int N, int n, int two, int m0, int M,
                                      const float *bias, const float r[4][2]) {
  for (int m = 0; m < 4 && m0 + m < M; m++) {
    y[(size_t)(m0 + m) * N + n] = r[m][0] + (bias ? bias[n] : 0.0f);
    if (two) y[(size_t)(m0 + m) * N + n + 1] = r[m][1] + (bias ? bias[n + 1] : 0.0f);
  }
}

#endif
