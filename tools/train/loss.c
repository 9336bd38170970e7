/* Cross-entropy with ignore_index -100 (torch.nn.CrossEntropyLoss). */
#include <math.h>

#include "train/train.h"

double tr_cross_entropy(float *logits, int rows, int V, const int32_t *targets, float grad_scale,
                        int *count) {
  double total = 0;
  int used = 0;
  for (int r = 0; r < rows; r++) {
    float *z = logits + (size_t)r * V;
    int t = targets[r];
    if (t < 0 || t >= V) {
      if (grad_scale != 0)
        for (int j = 0; j < V; j++) z[j] = 0.0f;
      continue;
    }
    float mx = z[0];
    for (int j = 1; j < V; j++) mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    for (int j = 0; j < V; j++) s += exp((double)z[j] - mx);
    double lse = mx + log(s);
    total += lse - z[t];
    used++;
    if (grad_scale != 0) {
      for (int j = 0; j < V; j++) z[j] = (float)(exp((double)z[j] - lse) * grad_scale);
      z[t] -= grad_scale;
    }
  }
  *count = used;
  return total;
}
