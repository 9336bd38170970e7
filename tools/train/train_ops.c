#include "train/train_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/common.h"

float *tr_alloc(tr_arena *a, size_t n) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 64;
    void **b = vb_realloc(a->blocks, cap * sizeof *b);
    if (!b) return NULL;
    a->blocks = b;
    a->cap = cap;
  }
  float *p = vb_calloc(n ? n : 1, sizeof(float));
  if (!p) return NULL;
  a->blocks[a->n++] = p;
  return p;
}

void tr_arena_free(tr_arena *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->blocks[i]);
  free(a->blocks);
  memset(a, 0, sizeof *a);
}

void tr_transpose(const float *src, int rows, int cols, int ld_src, float *dst) {
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < cols; c++)
      dst[(size_t)c * rows + r] = src[(size_t)r * ld_src + c];
}

struct tr_lin_bf16 {
  vb_linear fw, bw; /* W [out, in] with the bias; W^T [in, out] */
  float *wt;
};

int tr_lin_use_bf16(tr_lin *l) {
  if (l->gw || l->bf16) return 0; /* trained layers stay float32 */
  tr_lin_bf16 *b = vb_calloc(1, sizeof *b);
  if (!b) return -1;
  b->wt = vb_malloc((size_t)l->out * l->in * sizeof(float));
  if (!b->wt) {
    free(b);
    return -1;
  }
  tr_transpose(l->w, l->out, l->in, l->in, b->wt);
  b->fw = (vb_linear){.out = l->out,
                      .in = l->in,
                      .dtype = VB_DT_F32,
                      .w = l->w,
                      .bias = l->b,
                      .compute = VB_COMPUTE_BF16};
  b->bw = (vb_linear){
      .out = l->in, .in = l->out, .dtype = VB_DT_F32, .w = b->wt, .compute = VB_COMPUTE_BF16};
  l->bf16 = b;
  if (vb_linear_prepare(&b->fw) || vb_linear_prepare(&b->bw)) {
    tr_lin_release(l);
    return -1;
  }
  if (!vb_linear_reads_stored(&b->bw)) { /* the transposed copy lives on in bf16 only */
    free(b->wt);
    b->wt = NULL;
  }
  return 0;
}

void tr_lin_release(tr_lin *l) {
  if (!l->bf16) return;
  vb_linear_release(&l->bf16->fw);
  vb_linear_release(&l->bf16->bw);
  free(l->bf16->wt);
  free(l->bf16);
  l->bf16 = NULL;
}

void tr_lin_fwd(const tr_lin *l, const float *x, int M, float *y) {
  if (l->bf16 && vb_linear_forward(&l->bf16->fw, x, M, y) == 0) return;
  if (l->b) {
    for (int i = 0; i < M; i++)
      memcpy(y + (size_t)i * l->out, l->b, (size_t)l->out * sizeof(float));
    vb_gemm(M, l->out, l->in, x, l->in, l->w, l->in, 1, 1.0f, 1.0f, y, l->out);
  } else {
    vb_gemm(M, l->out, l->in, x, l->in, l->w, l->in, 1, 1.0f, 0.0f, y, l->out);
  }
}

int tr_lin_bwd(const tr_lin *l, const float *x, const float *dy, int M, float *dx, int accumulate) {
  if (dx && l->bf16) {
    size_t n = (size_t)M * l->in;
    float *t = accumulate ? vb_malloc(n * sizeof(float)) : dx;
    if (t && vb_linear_forward(&l->bf16->bw, dy, M, t) == 0) {
      if (accumulate) vb_add(dx, t, n);
      dx = NULL; /* done */
    }
    if (accumulate) free(t);
  }
  if (dx)
    vb_gemm(M, l->in, l->out, dy, l->out, l->w, l->in, 0, 1.0f, accumulate ? 1.0f : 0.0f, dx,
            l->in);
  if (l->gw) {
    float *dyt = vb_malloc((size_t)M * l->out * sizeof(float) + 1);
    if (!dyt) return -1;
    tr_transpose(dy, M, l->out, l->out, dyt);
    vb_gemm(l->out, l->in, M, dyt, M, x, l->in, 0, 1.0f, 1.0f, l->gw, l->in);
    free(dyt);
  }
  if (l->gb)
    for (int o = 0; o < l->out; o++) {
      double s = 0;
      for (int i = 0; i < M; i++)
        s += dy[(size_t)i * l->out + o];
      l->gb[o] += (float)s;
    }
  return 0;
}

void tr_layernorm_fwd(const float *x, float *y, int rows, int n, const float *w, const float *b,
                      float eps, float *mean, float *rstd) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * n;
    double s = 0;
    for (int i = 0; i < n; i++)
      s += xr[i];
    double mu = s / n, v = 0;
    for (int i = 0; i < n; i++)
      v += (xr[i] - mu) * (xr[i] - mu);
    double rs = 1.0 / sqrt(v / n + eps);
    mean[r] = (float)mu;
    rstd[r] = (float)rs;
    for (int i = 0; i < n; i++)
      y[(size_t)r * n + i] = (float)((xr[i] - mu) * rs) * w[i] + (b ? b[i] : 0.0f);
  }
}

void tr_layernorm_bwd(const float *x, const float *dy, int rows, int n, const float *w,
                      const float *mean, const float *rstd, float *dx, float *gw, float *gb) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * n, *g = dy + (size_t)r * n;
    double mu = mean[r], rs = rstd[r], s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
      double xh = (xr[i] - mu) * rs, d = (double)g[i] * w[i];
      s1 += d;
      s2 += d * xh;
      if (gw) gw[i] += (float)(g[i] * xh);
      if (gb) gb[i] += g[i];
    }
    s1 /= n;
    s2 /= n;
    for (int i = 0; i < n; i++) {
      double xh = (xr[i] - mu) * rs, d = (double)g[i] * w[i];
      dx[(size_t)r * n + i] = (float)(rs * (d - s1 - xh * s2));
    }
  }
}

void tr_rmsnorm_fwd(const float *x, float *y, int rows, int n, const float *w, float eps,
                    float *rstd) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * n;
    double s = 0;
    for (int i = 0; i < n; i++)
      s += (double)xr[i] * xr[i];
    float rs = (float)(1.0 / sqrt(s / n + eps));
    rstd[r] = rs;
    for (int i = 0; i < n; i++)
      y[(size_t)r * n + i] = w[i] * (xr[i] * rs);
  }
}

void tr_rmsnorm_bwd(const float *x, const float *dy, int rows, int n, const float *w,
                    const float *rstd, float *dx) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * n, *g = dy + (size_t)r * n;
    double rs = rstd[r], s = 0;
    for (int i = 0; i < n; i++)
      s += (double)g[i] * w[i] * xr[i];
    double k = rs * rs * rs * s / n;
    for (int i = 0; i < n; i++)
      dx[(size_t)r * n + i] = (float)(rs * g[i] * w[i] - k * xr[i]);
  }
}

void tr_gelu_erf_fwd(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void tr_gelu_erf_bwd(const float *x, const float *dy, float *dx, size_t n) {
  const double k = 0.3989422804014327; /* 1/sqrt(2 pi) */
  for (size_t i = 0; i < n; i++) {
    double v = x[i];
    double d = 0.5 * (1.0 + erf(v * M_SQRT1_2)) + v * k * exp(-0.5 * v * v);
    dx[i] = (float)(dy[i] * d);
  }
}

void tr_gelu_tanh_fwd(const float *x, float *y, size_t n) {
  const float c = 0.7978845608028654f;
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanhf(c * (v + 0.044715f * v * v * v)));
  }
}

void tr_gelu_tanh_bwd(const float *x, const float *dy, float *dx, size_t n) {
  const double c = 0.7978845608028654;
  for (size_t i = 0; i < n; i++) {
    double v = x[i], t = tanh(c * (v + 0.044715 * v * v * v));
    double d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * v * v);
    dx[i] = (float)(dy[i] * d);
  }
}

void tr_relu_fwd(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    y[i] = x[i] > 0 ? x[i] : 0.0f;
}

void tr_relu_bwd(const float *x, const float *dy, float *dx, size_t n) {
  for (size_t i = 0; i < n; i++)
    dx[i] = x[i] > 0 ? dy[i] : 0.0f;
}

int tr_attention_fwd(const tr_attn_shape *s, const float *q, const float *k, const float *v,
                     float *probs, float *ctx) {
  int nq = s->nq, nk = s->nk, hd = s->head_dim;
  size_t big = (size_t)nq * nk;
  float *Pd = NULL; /* one head's probabilities after dropout */
  if (s->drop.on && !(Pd = vb_malloc(big * sizeof(float) + 1))) return -1;
  for (int h = 0; h < s->heads; h++) {
    float *P = probs + (size_t)h * nq * nk;
    vb_gemm(nq, nk, hd, q + (size_t)h * hd, s->ld_q, k + (size_t)h * hd, s->ld_kv, 1, s->scale,
            0.0f, P, nk);
    for (int i = 0; i < nq; i++) {
      float *row = P + (size_t)i * nk;
      int lim = s->causal ? (i + 1 < nk ? i + 1 : nk) : nk;
      if (s->bias) {
        const float *b = s->bias + ((size_t)h * nq + i) * nk;
        for (int j = 0; j < lim; j++)
          row[j] += b[j];
      }
      float mx = -INFINITY;
      for (int j = 0; j < lim; j++)
        mx = row[j] > mx ? row[j] : mx;
      double sum = 0;
      for (int j = 0; j < lim; j++) {
        row[j] = expf(row[j] - mx);
        sum += row[j];
      }
      float inv = (float)(1.0 / sum);
      for (int j = 0; j < lim; j++)
        row[j] *= inv;
      for (int j = lim; j < nk; j++)
        row[j] = 0.0f;
    }
    const float *Pv = P;
    if (Pd) {
      memcpy(Pd, P, big * sizeof(float));
      tr_drop_apply(&s->drop, Pd, big, (size_t)h * big);
      Pv = Pd;
    }
    vb_gemm(nq, hd, nk, Pv, nk, v + (size_t)h * hd, s->ld_kv, 0, 1.0f, 0.0f, ctx + (size_t)h * hd,
            s->ld_o);
  }
  free(Pd);
  return 0;
}

int tr_attention_bwd(const tr_attn_shape *s, const float *q, const float *k, const float *v,
                     const float *probs, const float *dctx, float *dq, float *dk, float *dv) {
  int nq = s->nq, nk = s->nk, hd = s->head_dim;
  size_t big = (size_t)nq * nk;
  float *dP = vb_malloc(big * sizeof(float) + 1), *T = vb_malloc(big * sizeof(float) + 1);
  float *Pd = s->drop.on ? vb_malloc(big * sizeof(float) + 1) : NULL;
  if (!dP || !T || (s->drop.on && !Pd)) {
    free(dP);
    free(T);
    free(Pd);
    return -1;
  }
  for (int h = 0; h < s->heads; h++) {
    const float *P = probs + (size_t)h * big;
    const float *dO = dctx + (size_t)h * hd;
    /* dV = Pd^T dO, Pd = dropout(P) (the forward's mask, regenerated) */
    if (dv) {
      const float *Pv = P;
      if (Pd) {
        memcpy(Pd, P, big * sizeof(float));
        tr_drop_apply(&s->drop, Pd, big, (size_t)h * big);
        Pv = Pd;
      }
      tr_transpose(Pv, nq, nk, nk, T);
      vb_gemm(nk, hd, nq, T, nq, dO, s->ld_o, 0, 1.0f, 0.0f, dv + (size_t)h * hd, s->ld_kv);
    }
    /* dPd = dO V^T, dP = dropout'(dPd) (same mask and scale); dS = P * (dP - rowsum(dP * P)) */
    vb_gemm(nq, nk, hd, dO, s->ld_o, v + (size_t)h * hd, s->ld_kv, 1, 1.0f, 0.0f, dP, nk);
    tr_drop_apply(&s->drop, dP, big, (size_t)h * big);
    for (int i = 0; i < nq; i++) {
      float *d = dP + (size_t)i * nk;
      const float *p = P + (size_t)i * nk;
      double dot = 0;
      for (int j = 0; j < nk; j++)
        dot += (double)d[j] * p[j];
      for (int j = 0; j < nk; j++)
        d[j] = (float)(p[j] * (d[j] - dot));
    }
    /* dQ = scale dS K; dK = scale dS^T Q */
    vb_gemm(nq, hd, nk, dP, nk, k + (size_t)h * hd, s->ld_kv, 0, s->scale, 0.0f,
            dq + (size_t)h * hd, s->ld_q);
    if (dk) {
      tr_transpose(dP, nq, nk, nk, T);
      vb_gemm(nk, hd, nq, T, nq, q + (size_t)h * hd, s->ld_q, 0, s->scale, 0.0f,
              dk + (size_t)h * hd, s->ld_kv);
    }
  }
  free(dP);
  free(T);
  free(Pd);
  return 0;
}
