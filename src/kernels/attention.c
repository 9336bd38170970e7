/* Scaled dot-product attention over one sequence, all heads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/kernels.h"
#include "runtime/common.h"

/* Many query rows (vision encoder, Q-Former, prompt prefill): per sequence
 * and head two matrix products (scores = Q K^T, out = P V) through sgemm, the
 * (sequence, head) pairs split across threads (oneDNN runs single-threaded
 * inside a parallel region). Sequence b's rows start b * nq (queries, outputs)
 * and b * nk (keys, values) rows further on. The score block is a per-thread
 * buffer that only grows: a fresh allocation per call costs page faults,
 * which are slow on virtual machines. */
static __thread void *tls_scores;
static __thread size_t tls_scores_cap;

static int attention_gemm(int batch, const float *q, int ld_q, const float *k, const float *v,
                          int ld_kv, float *out, int ld_o, int nq, int nk, int heads, int head_dim,
                          float scale, const float *bias, int causal, int causal_offset) {
  int fail = 0;
#pragma omp parallel
  {
    float *S = vb_tls_scratch_grow(&tls_scores, &tls_scores_cap, (size_t)nq * nk * sizeof(float));
    if (!S) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < batch * heads; task++) {
      if (!S) continue;
      int b = task / heads, h = task % heads;
      size_t off = (size_t)h * head_dim;
      const float *qb = q + (size_t)b * nq * ld_q, *kb = k + (size_t)b * nk * ld_kv,
                  *vb = v + (size_t)b * nk * ld_kv;
      float *ob = out + (size_t)b * nq * ld_o;
      vb_gemm(nq, nk, head_dim, qb + off, ld_q, kb + off, ld_kv, 1, scale, 0.0f, S, nk);
      for (int i = 0; i < nq; i++) {
        float *row = S + (size_t)i * nk;
        int kend = nk;
        if (causal) {
          kend = i + causal_offset + 1;
          if (kend > nk) kend = nk;
          if (kend < 0) kend = 0;
        }
        if (bias) {
          const float *br = bias + ((size_t)h * nq + i) * nk;
          for (int j = 0; j < kend; j++) row[j] += br[j];
        }
        if (kend > 0) vb_softmax_row(row, kend);
        for (int j = kend; j < nk; j++) row[j] = 0.0f; /* masked, or no key at all: zero output */
      }
      vb_gemm(nq, head_dim, nk, S, nk, vb + off, ld_kv, 0, 1.0f, 0.0f, ob + off, ld_o);
    }
  }
  /* the error is set here: the workers' own error slots are not the caller's */
  return fail ? vb_error("out of memory for a %d x %d attention score block", nq, nk) : 0;
}

int vb_attention_batch(int batch, const float *q, int ld_q, const float *k, const float *v,
                       int ld_kv, float *out, int ld_o, int nq, int nk, int heads, int head_dim,
                       float scale) {
  if (nq >= 16 && nk >= 16 && (size_t)nq * nk <= ((size_t)1 << 24))
    return attention_gemm(batch, q, ld_q, k, v, ld_kv, out, ld_o, nq, nk, heads, head_dim, scale,
                          NULL, 0, 0);
  for (int b = 0; b < batch; b++)
    if (vb_attention(q + (size_t)b * nq * ld_q, ld_q, k + (size_t)b * nk * ld_kv,
                     v + (size_t)b * nk * ld_kv, ld_kv, out + (size_t)b * nq * ld_o, ld_o, nq, nk,
                     heads, head_dim, scale, NULL, 0, 0) != 0)
      return -1;
  return 0;
}

int vb_attention(const float *q, int ld_q, const float *k, const float *v, int ld_kv, float *out,
                 int ld_o, int nq, int nk, int heads, int head_dim, float scale, const float *bias,
                 int causal, int causal_offset) {
  if (nq >= 16 && nk >= 16 && (size_t)nq * nk <= ((size_t)1 << 24))
    return attention_gemm(1, q, ld_q, k, v, ld_kv, out, ld_o, nq, nk, heads, head_dim, scale, bias,
                          causal, causal_offset);
  /* Parallel over (head, query row): each task owns one score row. */
  int total = heads * nq, fail = 0;
#pragma omp parallel if (total > 8)
  {
    float *scores = malloc((size_t)nk * sizeof(float));
    if (!scores) {
#pragma omp atomic write
      fail = 1;
    }
#pragma omp for schedule(static)
    for (int t = 0; t < total; t++) {
      if (!scores) continue;
      int h = t / nq, i = t % nq;
      const float *qi = q + (size_t)i * ld_q + (size_t)h * head_dim;
      int kend = nk;
      if (causal) {
        kend = i + causal_offset + 1;
        if (kend > nk) kend = nk;
        if (kend < 0) kend = 0;
      }
      for (int j = 0; j < kend; j++) {
        float s = vb_dot(qi, k + (size_t)j * ld_kv + (size_t)h * head_dim, head_dim) * scale;
        if (bias) s += bias[((size_t)h * nq + i) * nk + j];
        scores[j] = s;
      }
      float *oi = out + (size_t)i * ld_o + (size_t)h * head_dim;
      memset(oi, 0, head_dim * sizeof(float));
      if (kend == 0) continue;
      vb_softmax_row(scores, kend);
      for (int j = 0; j < kend; j++) vb_axpy(oi, scores[j], v + (size_t)j * ld_kv + (size_t)h * head_dim, head_dim);
    }
    free(scores);
  }
  return fail ? vb_error("out of memory for attention scores (%d keys)", nk) : 0;
}
