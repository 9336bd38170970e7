/* A vocabulary head (logits = x W^T + b over the whole vocabulary) that reads
 * a low-precision copy of W (bf16 or Q8_0) and then recomputes in float32
 * every token that could be the largest logit.
 *
 * Why: decoding reads every weight once per token, and an f32 head is 0.5 GB
 * of OPT-2.7b's per-token read (a q8_0 copy is 0.14 GB). But greedy and beam
 * decisions compare logits across the vocabulary, and a head rounded to bf16
 * flipped choices transformers makes (measured on the fixtures). So each
 * logit a_j from the copy gets a rigorous error bound e_j (per-row norms of
 * the weight's rounding error and of the copy, times norms of x and of the
 * activations' own rounding in the kernels); every token with
 * a_j + e_j >= max_i (a_i - e_i) is recomputed exactly. The largest logit,
 * and every logit near it, are then the f32 values; the rest are within
 * their bounds (~1e-3 relative). When too many tokens qualify (a flat
 * distribution), the whole row is computed in f32. */
#ifndef VBLIP_MODELS_LM_HEAD_H
#define VBLIP_MODELS_LM_HEAD_H

#include "kernels/kernels.h"

typedef struct {
  int vocab, dim;
  const float *w32;  /* [vocab, dim] the exact weight (not owned) */
  const float *bias; /* [vocab] or NULL (not owned) */
  vb_linear fast;    /* the low-precision copy, bf16 compute; fast.out == 0: none */
  void *fast_q8;     /* owned Q8_0 bytes behind fast, while it reads them */
  float *err;        /* [vocab] ||w_j - w^_j||_2 */
  float *norm;       /* [vocab] ||w^_j||_2 */
  vb_dtype fast_dtype;
} vb_lm_head;

/* fast_dtype: VB_DT_BF16 or VB_DT_Q8_0 for a low-precision copy, anything
 * else for a plain f32 head. w32 must stay valid while the head is used. */
int vb_lm_head_init(vb_lm_head *h, const float *w32, const float *bias, int vocab, int dim,
                    vb_dtype fast_dtype);
/* logits[rows, vocab] for x[rows, dim]. */
void vb_lm_head_forward(const vb_lm_head *h, const float *x, int rows, float *logits);
void vb_lm_head_release(vb_lm_head *h);

/* For tests: how many tokens the last forward on this thread recomputed in
 * f32 (summed over rows; vocab per row computed wholly in f32). */
long vb_lm_head_last_exact(void);

#endif
