/* Sampling warpers with transformers 4.33 semantics (Temperature, TopK, TopP;
 * filtered entries become -inf) and the categorical draw. */
#include <math.h>
#include <stdlib.h>

#include "generate/gen_internal.h"
#include "runtime/common.h"

static bool top_k_on(const vb_gen_config *c) {
  return c->top_k != 0;
}
static bool top_p_on(const vb_gen_config *c) {
  return c->top_p < 1.0f;
}

int vb_warp_ws_init(vb_warp_ws *ws, const vb_gen_config *c, int vocab, int min_keep) {
  ws->heap = NULL;
  ws->heap_cap = 0;
  ws->sorted = NULL;
  if (top_k_on(c)) {
    int k = c->top_k > min_keep ? c->top_k : min_keep;
    ws->heap_cap = k < vocab ? k : vocab;
    ws->heap = vb_malloc((size_t)ws->heap_cap * sizeof(float));
    if (!ws->heap) return -1;
  }
  if (top_p_on(c)) {
    ws->sorted = vb_malloc((size_t)vocab * sizeof(vb_idxval));
    if (!ws->sorted) {
      vb_warp_ws_free(ws);
      return -1;
    }
  }
  return 0;
}

void vb_warp_ws_free(vb_warp_ws *ws) {
  free(ws->heap);
  free(ws->sorted);
  ws->heap = NULL;
  ws->sorted = NULL;
}

void vb_warp_temperature(float *scores, int vocab, float t) {
  for (int i = 0; i < vocab; i++)
    scores[i] /= t;
}

static void heap_sift_down(float *h, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && h[l] < h[m]) m = l;
    if (r < n && h[r] < h[m]) m = r;
    if (m == i) return;
    float t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

void vb_warp_top_k(float *scores, int vocab, int k, int min_keep, float *heap) {
  if (k < min_keep) k = min_keep;
  if (k >= vocab) return;
  // k-th largest value via a min-heap of the k best seen: O(vocab) on typical
  // data, no sort. Everything strictly below it is removed (ties survive, as
  // with `scores < topk(...)[..., -1]`).
  int n = 0;
  for (int i = 0; i < vocab; i++) {
    float v = scores[i];
    if (n < k) {
      int j = n++;
      heap[j] = v;
      while (j > 0 && heap[(j - 1) / 2] > heap[j]) {
        float t = heap[j];
        heap[j] = heap[(j - 1) / 2];
        heap[(j - 1) / 2] = t;
        j = (j - 1) / 2;
      }
    } else if (v > heap[0]) {
      heap[0] = v;
      heap_sift_down(heap, n, 0);
    }
  }
  float kth = heap[0];
  for (int i = 0; i < vocab; i++)
    if (scores[i] < kth) scores[i] = -INFINITY;
}

static int cmp_idxval_asc(const void *a, const void *b) {
  const vb_idxval *x = a, *y = b;
  if (x->v < y->v) return -1;
  if (x->v > y->v) return 1;
  return (x->i > y->i) - (x->i < y->i);
}

void vb_warp_top_p(float *scores, int vocab, float p, int min_keep, vb_idxval *sorted) {
  // Only finite entries matter: -inf ones have probability 0, sort first and
  // are "removed" already, so sorting them would change nothing.
  int n = 0;
  for (int i = 0; i < vocab; i++)
    if (scores[i] > -INFINITY) sorted[n++] = (vb_idxval){scores[i], i};
  if (n == 0) return;
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_idxval_asc);
  float m = sorted[n - 1].v;
  double sum = 0.0;
  for (int j = 0; j < n; j++)
    sum += expf(sorted[j].v - m);
  // Ascending order: drop the low tail whose cumulative mass is <= 1 - top_p,
  // always keeping the min_keep most likely tokens.
  float cut = (float)(1.0 - (double)p);
  double cum = 0.0;
  for (int j = 0; j < n - min_keep; j++) {
    cum += (float)(expf(sorted[j].v - m) / sum);
    if ((float)cum > cut) break;
    scores[sorted[j].i] = -INFINITY;
  }
}

void vb_warp_apply(const vb_gen_config *c, float *scores, int vocab, int min_keep, vb_warp_ws *ws) {
  if (c->temperature != 1.0f) vb_warp_temperature(scores, vocab, c->temperature);
  if (top_k_on(c)) vb_warp_top_k(scores, vocab, c->top_k, min_keep, ws->heap);
  if (top_p_on(c)) vb_warp_top_p(scores, vocab, c->top_p, min_keep, ws->sorted);
}

int vb_sample_row(const float *x, int vocab, vb_rng *rng, int32_t *tok) {
  float m = -INFINITY;
  for (int i = 0; i < vocab; i++)
    if (x[i] > m) m = x[i];
  if (!(m > -INFINITY) || isnan(m) || isinf(m))
    return vb_error("generate: sampling: no token has a finite score");
  double total = 0.0;
  for (int i = 0; i < vocab; i++)
    total += expf(x[i] - m);
  double target = vb_rng_uniform(rng) * total, cum = 0.0;
  int32_t last = -1;
  for (int i = 0; i < vocab; i++) {
    double w = expf(x[i] - m);
    if (w <= 0.0) continue;
    last = i;
    cum += w;
    if (cum > target) {
      *tok = i;
      return 0;
    }
  }
  // Rounding can leave target just above the final sum: take the last token with mass.
  *tok = last;
  return 0;
}
