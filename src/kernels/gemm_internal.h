/* Internal: the per-compute-type halves of vb_linear. */
#ifndef VBLIP_KERNELS_GEMM_INTERNAL_H
#define VBLIP_KERNELS_GEMM_INTERNAL_H

#include "kernels/kernels.h"

int vb_linear_prepare_bf16(vb_linear *l);
void vb_linear_release_bf16(vb_linear *l);
void vb_linear_forward_bf16(const vb_linear *l, const float *x, int M, float *y);

/* bf16 compute with a Q8_0 stored weight, kept in place (gemm_q8.c). */
int vb_linear_prepare_q8(vb_linear *l);
void vb_linear_release_q8(vb_linear *l);
void vb_linear_forward_q8(const vb_linear *l, const float *x, int M, float *y);

#endif
