/* Linear layers: the dispatcher between the float32 path (sgemm.c, gemv_f32.c)
 * and the bf16 / q8_0 back-ends (gemm_bf16.c, gemm_q8.c). */
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/kernels.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static int is_q8_engine(const vb_linear *l);

int vb_linear_weight_row(const vb_linear *l, int r, float *row) {
  int K = l->in;
  if (l->dtype == VB_DT_I8) { /* an int8 checkpoint: q * per-channel scale */
    if (!l->w_scale) return vb_error("linear %dx%d: int8 weight without its scales", l->out, K);
    const int8_t *q = (const int8_t *)l->w + (size_t)r * K;
    for (int k = 0; k < K; k++)
      row[k] = (float)q[k] * l->w_scale[r];
    return 0;
  }
  if (!l->w && l->w_f32) { /* the stored form was freed after the f32 conversion */
    memcpy(row, l->w_f32 + (size_t)r * K, (size_t)K * sizeof(float));
    return 0;
  }
  /* a Q8_0 weight only in the q8x16 layout (stored so, or repacked and its
   * rows freed): the row unpacked first */
  const void *packed = l->w || !is_q8_engine(l) ? NULL : vb_linear_q8_packed(l);
  if (!l->w && !packed) packed = l->w_packed;
  if (packed) {
    uint8_t *q = vb_malloc(vb_q8_row_bytes(K));
    if (!q) return -1;
    vb_q8x16_unpack_rows(packed, K, r, r + 1, q);
    int rc = vb_convert_to_f32(VB_DT_Q8_0, q, K, row);
    free(q);
    return rc;
  }
  if (!l->w) return vb_error("linear %dx%d: no stored weight to read row %d from", l->out, K, r);
  size_t off;
  if (!vb_dtype_bytes(l->dtype, (int64_t)r * K, &off))
    return vb_error("linear %dx%d: bad row %d", l->out, K, r);
  return vb_convert_to_f32(l->dtype, (const uint8_t *)l->w + off, K, row);
}

/* A stored weight as aligned f32, converting once. */
static const float *linear_weight_f32(const vb_linear *cl) {
  vb_linear *l = (vb_linear *)cl;
  if (l->w_f32) return l->w_f32;
  if (l->dtype == VB_DT_F32 && ((uintptr_t)l->w & 3) == 0) return l->w;
  size_t n = (size_t)l->out * l->in;
  float *w = vb_malloc_aligned(n * sizeof(float));
  if (!w) return NULL;
  int rc = l->dtype == VB_DT_I8 ? 0 : vb_convert_to_f32(l->dtype, l->w, (int64_t)n, w);
  for (int r = 0; l->dtype == VB_DT_I8 && r < l->out && rc == 0; r++)
    rc = vb_linear_weight_row(l, r, w + (size_t)r * l->in);
  if (rc != 0) {
    vb_free_aligned(w);
    return NULL;
  }
  l->w_f32 = w;
  return w;
}

/* bf16 compute keeps a Q8_0, Q4_0 or Q4_K weight as it is stored (own kernels); f32 compute
 * dequantizes it once like any other dtype. */
static int is_q8_engine(const vb_linear *l) {
  return l->compute == VB_COMPUTE_BF16 &&
         (l->dtype == VB_DT_Q8_0 || l->dtype == VB_DT_Q4_0 || l->dtype == VB_DT_Q4_K);
}

int vb_linear_forward(const vb_linear *l, const float *x, int M, float *y) {
  if (l->tile) return vb_linear_forward_tile(l, x, M, y, 0);
  if (is_q8_engine(l)) return vb_linear_forward_q8(l, x, M, y);
  if (l->compute == VB_COMPUTE_BF16) return vb_linear_forward_bf16(l, x, M, y);
  const float *w = linear_weight_f32(l); /* converted at load time (vb_linear_prepare) */
  if (!w) return -1;
  if (M <= VB_F32_GEMV_MAX_M && vb_gemv_f32(w, l->out, l->in, x, M, l->bias, y) == 0) return 0;
  if (l->bias) {
    for (int i = 0; i < M; i++) memcpy(y + (size_t)i * l->out, l->bias, l->out * sizeof(float));
    vb_gemm(M, l->out, l->in, x, l->in, w, l->in, 1, 1.0f, 1.0f, y, l->out);
  } else {
    vb_gemm(M, l->out, l->in, x, l->in, w, l->in, 1, 1.0f, 0.0f, y, l->out);
  }
  return 0;
}

int vb_linear_forward_gelu(const vb_linear *l, const float *x, int M, float *y) {
  if (l->tile) return vb_linear_forward_tile(l, x, M, y, 1);
  if (vb_linear_forward(l, x, M, y) != 0) return -1;
  vb_gelu_erf(y, (size_t)M * l->out);
  return 0;
}

int vb_linear_prepare(vb_linear *l) {
  vb_cpu_init(); /* before oneDNN's first use (normally done by vblip_model_load already) */
  if (vb_linear_wants_tile(l)) return vb_linear_prepare_tile(l);
  if (is_q8_engine(l)) return vb_linear_prepare_q8(l);
  if (l->compute == VB_COMPUTE_BF16) return vb_linear_prepare_bf16(l);
  return linear_weight_f32(l) ? 0 : -1;
}

int vb_linear_reads_stored(const vb_linear *l) {
  if (l->tile) return 0;
  if (is_q8_engine(l)) return vb_linear_reads_stored_q8(l);
  if (l->compute == VB_COMPUTE_BF16) return vb_linear_reads_stored_bf16(l);
  return l->w_f32 == NULL;
}

void vb_linear_release(vb_linear *l) {
  vb_linear_release_tile(l);
  if (is_q8_engine(l)) vb_linear_release_q8(l);
  else vb_linear_release_bf16(l);
  if (l->w_f32) vb_free_aligned(l->w_f32);
  l->w_f32 = NULL;
}
