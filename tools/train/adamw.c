/* torch.optim.AdamW (amsgrad off, not maximizing), float32 state like PyTorch's. */
#include <math.h>

#include "train/train.h"

void tr_adamw_step(const tr_adamw *o, tr_params *ps, int64_t t) {
  double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
  float step_size = (float)(o->lr / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  /* scalars in double, rounded to float32 once, as torch applies them to float32 tensors */
  float omb1 = (float)(1.0 - o->beta1), b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
  float eps = (float)o->eps;
  for (int i = 0; i < ps->n; i++) {
    tr_param *p = &ps->p[i];
    float decay = p->decay ? (float)(1.0 - o->lr * o->weight_decay) : 1.0f;
    /* element-wise: the same result on any number of threads */
#pragma omp parallel for schedule(static) if (p->n >= 65536)
    for (size_t j = 0; j < p->n; j++) {
      float g = p->grad[j];
      float x = p->data[j] * decay;
      /* exp_avg.lerp_(grad, 1 - beta1) */
      float m = p->m[j] = p->m[j] + omb1 * (g - p->m[j]);
      float v = p->v[j] = b2 * p->v[j] + omb2 * g * g;
      float denom = sqrtf(v) / bc2_sqrt + eps;
      p->data[j] = x - step_size * (m / denom);
    }
  }
}

double tr_clip_grad_norm(tr_params *ps, double max_norm) {
  double total = 0;
  for (int i = 0; i < ps->n; i++) {
    /* each tensor's norm in float32 as torch computes it, then the norm of the norms */
    double sq = 0;
    for (size_t j = 0; j < ps->p[i].n; j++)
      sq += (double)ps->p[i].grad[j] * ps->p[i].grad[j];
    float norm = (float)sqrt(sq);
    total += (double)norm * norm;
  }
  total = (double)(float)sqrt(total);
  if (max_norm <= 0) return total;
  float coef = (float)(max_norm / (total + 1e-6));
  if (coef > 1.0f) coef = 1.0f;
  for (int i = 0; i < ps->n; i++)
    for (size_t j = 0; j < ps->p[i].n; j++)
      ps->p[i].grad[j] *= coef;
  return total;
}
