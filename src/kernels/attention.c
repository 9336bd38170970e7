/* Scaled dot-product attention over one sequence, all heads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/common.h"

void vb_attention(const float *q, int ld_q, const float *k, const float *v, int ld_kv, float *out,
                  int ld_o, int nq, int nk, int heads, int head_dim, float scale,
                  const float *bias, int causal, int causal_offset) {
  /* Parallel over (head, query row): each task owns one score row. */
  int total = heads * nq;
#pragma omp parallel if (total > 8)
  {
    float *scores = malloc((size_t)nk * sizeof(float));
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
        const float *kj = k + (size_t)j * ld_kv + (size_t)h * head_dim;
        float s = 0;
        for (int d = 0; d < head_dim; d++) s += qi[d] * kj[d];
        s *= scale;
        if (bias) s += bias[((size_t)h * nq + i) * nk + j];
        scores[j] = s;
      }
      float *oi = out + (size_t)i * ld_o + (size_t)h * head_dim;
      memset(oi, 0, head_dim * sizeof(float));
      if (kend == 0) continue;
      vb_softmax_row(scores, kend);
      for (int j = 0; j < kend; j++) {
        const float *vj = v + (size_t)j * ld_kv + (size_t)h * head_dim;
        float p = scores[j];
        for (int d = 0; d < head_dim; d++) oi[d] += p * vj[d];
      }
    }
    free(scores);
  }
}
