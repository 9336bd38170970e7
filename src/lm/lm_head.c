/* Vocabulary head: a low-precision copy for the full row, float32 for every
 * token that could be the largest logit (see lm_head.h). */
#include "lm/lm_head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"

/* bf16's unit roundoff (round to nearest, 8 significant bits) */
#define BF16_U (1.0 / 512.0)
/* the 16-bit activation step of vb_gemv_q8x16: half of max|x| / 32639 */
#define Q8X16_HALF_STEP (1.0 / 65278.0)

static _Thread_local long tls_exact;
/* the calling thread's bounds and candidates, reused across calls */
static _Thread_local void *tls_scratch;
static _Thread_local size_t tls_scratch_cap;

long vb_lm_head_last_exact(void) {
  return tls_exact;
}

/* err_j = ||w_j - w^_j||, norm_j = ||w^_j|| from the copy's dequantized rows. */
static int row_norms(vb_lm_head *h, const void *fast) {
  int V = h->vocab, E = h->dim, fail = 0;
  h->err = vb_malloc((size_t)V * sizeof(float));
  h->norm = vb_malloc((size_t)V * sizeof(float));
  if (!h->err || !h->norm) return -1;
#pragma omp parallel reduction(| : fail)
  {
    float *row = vb_malloc((size_t)E * sizeof(float));
    if (!row) fail = 1;
#pragma omp for schedule(static)
    for (int j = 0; j < V; j++) {
      if (!row) continue;
      if (h->fast_dtype == VB_DT_Q8_0)
        vb_q8_rows_to_f32(fast, E, j, j + 1, row);
      else
        for (int k = 0; k < E; k++)
          row[k] = vb_bf16_to_float(((const uint16_t *)fast)[(size_t)j * E + k]);
      double e = 0, n = 0;
      for (int k = 0; k < E; k++) {
        double d = (double)h->w32[(size_t)j * E + k] - row[k];
        e += d * d;
        n += (double)row[k] * row[k];
      }
      h->err[j] = (float)(sqrt(e) * (1 + 1e-6));
      h->norm[j] = (float)(sqrt(n) * (1 + 1e-6));
    }
    free(row);
  }
  return fail ? -1 : 0;
}

int vb_lm_head_init(vb_lm_head *h, const float *w32, const float *bias, int vocab, int dim,
                    vb_dtype fast_dtype) {
  memset(h, 0, sizeof *h);
  h->vocab = vocab, h->dim = dim, h->w32 = w32, h->bias = bias;
  if (fast_dtype == VB_DT_Q8_0 && dim % VB_Q8_BLOCK != 0) fast_dtype = VB_DT_BF16;
  if (fast_dtype != VB_DT_BF16 && fast_dtype != VB_DT_Q8_0) return 0;
  h->fast_dtype = fast_dtype;
  size_t n = (size_t)vocab * dim, bytes = 0;
  if (!vb_dtype_bytes(fast_dtype, (int64_t)n, &bytes)) return vb_error("vocabulary head too large");
  void *buf = vb_malloc_aligned(bytes);
  if (!buf)
    return vb_error("out of memory for a %s copy of the vocabulary head",
                    vb_dtype_name(fast_dtype));
  if (fast_dtype == VB_DT_Q8_0) {
    vb_quantize_q8_0(w32, (int64_t)n, buf);
  } else {
    uint16_t *b = buf;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
      b[i] = vb_float_to_bf16(w32[i]);
  }
  if (row_norms(h, buf) != 0) {
    vb_free_aligned(buf);
    vb_lm_head_release(h);
    return vb_error("out of memory for the vocabulary head");
  }
  h->fast = (vb_linear){.out = vocab,
                        .in = dim,
                        .dtype = fast_dtype,
                        .w = buf,
                        .bias = bias,
                        .compute = VB_COMPUTE_BF16};
  if (vb_linear_prepare(&h->fast) != 0) {
    vb_linear_release(&h->fast);
    vb_free_aligned(buf);
    vb_lm_head_release(h);
    return -1;
  }
  h->fast_q8 = buf;
  if (!vb_linear_reads_stored(&h->fast)) { /* repacked: the copy keeps its own bytes */
    vb_free_aligned(buf);
    h->fast_q8 = NULL;
    h->fast.w = NULL;
  }
  return 0;
}

void vb_lm_head_release(vb_lm_head *h) {
  if (h->fast.out) vb_linear_release(&h->fast);
  vb_free_aligned(h->fast_q8);
  free(h->err);
  free(h->norm);
  memset(h, 0, sizeof *h);
}

static void exact_rows(const vb_lm_head *h, const float *x, int rows, float *logits) {
  if (rows <= VB_F32_GEMV_MAX_M &&
      vb_gemv_f32(h->w32, h->vocab, h->dim, x, rows, h->bias, logits) == 0)
    return;
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < h->vocab; j++)
      logits[(size_t)r * h->vocab + j] = h->bias ? h->bias[j] : 0.0f;
  vb_gemm(rows, h->vocab, h->dim, x, h->dim, h->w32, h->dim, 1, 1.0f, 1.0f, logits, h->vocab);
}

/* A bound on |a_j - f32 logit_j| is err_j |x| + norm_j d + slack norm_j |x|,
 * with d a bound on the kernels' own roundings (bf16: half an ulp of each
 * activation; q8x16: half a 16-bit step per 32-value block) and slack
 * the float32 accumulation of both computations. Returns d and |x|. */
static void activation_bounds(const vb_lm_head *h, const float *x, double *xn, double *d) {
  double s = 0, q = 0;
  for (int k = 0; k < h->dim; k++)
    s += (double)x[k] * x[k];
  if (h->fast_dtype == VB_DT_Q8_0)
    for (int b = 0; b < h->dim / VB_Q8_BLOCK; b++) {
      double amax = 0;
      for (int k = 0; k < VB_Q8_BLOCK; k++)
        amax = fmax(amax, fabs(x[b * VB_Q8_BLOCK + k]));
      q += VB_Q8_BLOCK * (amax * Q8X16_HALF_STEP) * (amax * Q8X16_HALF_STEP);
    }
  *xn = sqrt(s);
  /* two bf16 roundings: the activations, and (for 16 or more rows) the
   * dequantized Q8_0 tiles */
  *d = 2 * BF16_U * *xn + sqrt(q);
}

void vb_lm_head_forward(const vb_lm_head *h, const float *x, int rows, float *logits) {
  int V = h->vocab, E = h->dim;
  tls_exact = 0;
  if (!h->fast.out) {
    exact_rows(h, x, rows, logits);
    tls_exact = (long)rows * V;
    return;
  }
  if (vb_linear_forward(&h->fast, x, rows, logits) != 0) { /* no scratch memory: exactly instead */
    exact_rows(h, x, rows, logits);
    tls_exact = (long)rows * V;
    return;
  }
  double slack = 2.0 * E * ldexp(1.0, -24);
  /* per call: the bounds of one row, then the candidates (at most limit; more
   * means a flat row, computed wholly in f32) */
  int limit = V / 16 > 64 ? V / 16 : 64;
  uint8_t *buf = vb_tls_scratch_grow(&tls_scratch, &tls_scratch_cap,
                                     (size_t)V * sizeof(float) + (size_t)limit * sizeof(int));
  if (!buf) { /* no memory for a few hundred KB: every row exactly instead */
    exact_rows(h, x, rows, logits);
    tls_exact = (long)rows * V;
    return;
  }
  float *bound = (float *)buf;
  int *cand = (int *)(buf + (size_t)V * sizeof(float));
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * E;
    float *a = logits + (size_t)r * V;
    double xn, d;
    activation_bounds(h, xr, &xn, &d);
    double lo_max = -INFINITY;
    for (int j = 0; j < V; j++) {
      bound[j] = (float)(1.01 * (h->err[j] * xn + h->norm[j] * (d + slack * xn)));
      if ((double)a[j] - bound[j] > lo_max) lo_max = (double)a[j] - bound[j];
    }
    int c = 0, many = !isfinite(lo_max) || !isfinite(xn);
    for (int j = 0; j < V && !many; j++)
      if (!((double)a[j] + bound[j] < lo_max)) { /* NaN counts as a candidate */
        if (c == limit)
          many = 1;
        else
          cand[c++] = j;
      }
    if (many) {
      exact_rows(h, xr, 1, a);
      tls_exact += V;
      continue;
    }
#pragma omp parallel for schedule(static) if (c > 256)
    for (int i = 0; i < c; i++) {
      int j = cand[i];
      a[j] = vb_dot(xr, h->w32 + (size_t)j * E, E) + (h->bias ? h->bias[j] : 0.0f);
    }
    tls_exact += c;
  }
}
