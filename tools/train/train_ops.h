/* Building blocks of training: forward passes that keep what their backward
 * needs, and the backward passes (explicit, no autograd). Float32 like
 * PyTorch, products through vb_gemm, row reductions in double. */
#ifndef VBLIP_TRAIN_TRAIN_OPS_H
#define VBLIP_TRAIN_TRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Heap blocks freed together (one forward pass's saved activations). */
typedef struct {
  void **blocks;
  size_t n, cap;
} tr_arena;

/* Zeroed floats owned by the arena; NULL (error recorded) when out of memory. */
float *tr_alloc(tr_arena *a, size_t n);
void tr_arena_free(tr_arena *a);

/* ---- dropout (dropout.c), the Trainer's train mode ----
 * Inverted dropout: a kept value is scaled by 1/(1-p), a dropped one is 0. Element i of a
 * site is kept when a hash of (the example's key, module, layer, site, i) clears p: the
 * backward regenerates the forward's mask instead of storing it, and the masks depend on
 * neither the thread count nor the order of the work. */
typedef struct {
  int on;       /* 0: evaluation mode, no dropout anywhere */
  uint64_t key; /* tr_drop_key(seed, step, micro-batch, example) */
} tr_drop_ctx;

typedef struct {
  int on;             /* 0: no site (probability 0, or the context off) */
  uint32_t threshold; /* dropped when the element's 32 hash bits are below it: p * 2^32 */
  float scale;        /* 1 / (1 - p) */
  uint64_t stream;
} tr_drop;

/* Modules of the site key. */
enum { TR_DROP_QFORMER = 1, TR_DROP_OPT = 2, TR_DROP_T5_ENCODER = 3, TR_DROP_T5_DECODER = 4 };

uint64_t tr_drop_key(uint64_t seed, int64_t step, int64_t micro_batch, int64_t example);
/* The site (module, layer, site) with probability p; off when c is NULL or off, or p is 0. */
tr_drop tr_drop_site(const tr_drop_ctx *c, float p, unsigned module, unsigned layer, unsigned site);
/* Whether element i is kept (always, for a site that is off). */
int tr_drop_keep(const tr_drop *d, size_t i);
/* x[i] = keep(offset + i) ? x[i] / (1 - p) : 0 for i < n: the forward, and the backward on
 * the gradient (the same mask and scale). No-op when d is NULL or off. */
void tr_drop_apply(const tr_drop *d, float *x, size_t n, size_t offset);

/* A linear layer y = x W^T + b, W [out, in]. Frozen layers have gw = gb = NULL. */
typedef struct tr_lin_bf16 tr_lin_bf16;
typedef struct {
  const float *w, *b;
  float *gw, *gb; /* gradient accumulators, same shapes */
  int out, in;
  tr_lin_bf16 *bf16; /* frozen layers: products in bfloat16 (tr_lin_use_bf16) */
} tr_lin;

/* Mixed precision for a frozen layer: its forward (x W^T + b) and its backward to the
 * input (dy W) run as bf16 products with float32 sums, W rounded once. Falls back to
 * float32 where a product cannot run. Release with tr_lin_release. */
int tr_lin_use_bf16(tr_lin *l);
void tr_lin_release(tr_lin *l);

void tr_lin_fwd(const tr_lin *l, const float *x, int M, float *y);
/* dx = dy W (overwritten, or added when accumulate; skipped when dx is NULL);
 * gw += dy^T x and gb += column sums of dy when the layer is trainable. */
int tr_lin_bwd(const tr_lin *l, const float *x, const float *dy, int M, float *dx, int accumulate);

/* LayerNorm (biased variance): y = (x - mean) * rstd * w + b; saves rstd and mean
 * per row. */
void tr_layernorm_fwd(const float *x, float *y, int rows, int n, const float *w, const float *b,
                      float eps, float *mean, float *rstd);
/* dx = d/dx (overwritten); gw, gb accumulate (NULL: frozen). */
void tr_layernorm_bwd(const float *x, const float *dy, int rows, int n, const float *w,
                      const float *mean, const float *rstd, float *dx, float *gw, float *gb);

/* T5's RMS norm y = w * x * rstd, rstd = 1/sqrt(mean(x^2) + eps) saved per row; frozen w. */
void tr_rmsnorm_fwd(const float *x, float *y, int rows, int n, const float *w, float eps,
                    float *rstd);
void tr_rmsnorm_bwd(const float *x, const float *dy, int rows, int n, const float *w,
                    const float *rstd, float *dx);

/* Activations: y = f(x); backward dx = dy * f'(x) (dx may alias dy). */
void tr_gelu_erf_fwd(const float *x, float *y, size_t n);
void tr_gelu_erf_bwd(const float *x, const float *dy, float *dx, size_t n);
void tr_gelu_tanh_fwd(const float *x, float *y, size_t n);
void tr_gelu_tanh_bwd(const float *x, const float *dy, float *dx, size_t n);
void tr_relu_fwd(const float *x, float *y, size_t n);
void tr_relu_bwd(const float *x, const float *dy, float *dx, size_t n);

/* Multi-head attention of one sequence, heads of head_dim contiguous in each row:
 * q [nq, ld_q], k/v [nk, ld_kv], ctx [nq, ld_o]. scores = scale q k^T (+ bias
 * [heads, nq, nk]), causal: query i sees keys j <= i. probs [heads, nq, nk] is
 * saved for the backward (before dropout: ctx = dropout(probs) v). */
typedef struct {
  int nq, nk, heads, head_dim, ld_q, ld_kv, ld_o;
  float scale;
  const float *bias;
  int causal;
  tr_drop drop; /* dropout on the probabilities (element index: [heads, nq, nk]) */
} tr_attn_shape;

int tr_attention_fwd(const tr_attn_shape *s, const float *q, const float *k, const float *v,
                     float *probs, float *ctx);
/* dq [nq, ld_q], dk/dv [nk, ld_kv] overwritten (dk/dv may be NULL together for
 * neither; they are computed when given). */
int tr_attention_bwd(const tr_attn_shape *s, const float *q, const float *k, const float *v,
                     const float *probs, const float *dctx, float *dq, float *dk, float *dv);

/* dst[c, r] = src[r, c] for a rows x cols block with leading dimension ld_src. */
void tr_transpose(const float *src, int rows, int cols, int ld_src, float *dst);

#endif
