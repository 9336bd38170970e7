/* torch.optim.AdamW (amsgrad off, not maximizing), float32 state like PyTorch's. */
#include <math.h>

#include "train/train.h"

void tr_adamw_step(const tr_adamw *o, tr_params *ps, int64_t t) {
  double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
  float step_size = (float)(o->lr / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
  for (int i = 0; i < ps->n; i++) {
    tr_param *p = &ps->p[i];
    float decay = p->decay ? (float)(1.0 - o->lr * o->weight_decay) : 1.0f;
    for (size_t j = 0; j < p->n; j++) {
      float g = p->grad[j];
      float x = p->data[j] * decay;
      /* exp_avg.lerp_(grad, 1 - beta1) */
      float m = p->m[j] = p->m[j] + (1.0f - b1) * (g - p->m[j]);
      float v = p->v[j] = b2 * p->v[j] + (1.0f - b2) * g * g;
      float denom = sqrtf(v) / bc2_sqrt + eps;
      p->data[j] = x - step_size * (m / denom);
    }
  }
}
