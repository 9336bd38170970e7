/* Dropout as the Trainer's train mode runs it (inverted: kept values scaled by 1/(1-p)), with
 * masks from a counter-based generator: whether element i of a site is kept is a hash of
 * (seed, optimizer step, micro-batch, example, module, layer, site, i). Nothing is stored
 * between the forward and the backward, nothing depends on the order or the thread that
 * draws, and a resumed run draws what an uninterrupted one does. (torch's Philox/MT stream
 * is not reproduced: the masks differ from PyTorch's, their law is the same.) */
#include <math.h>
#include <stdint.h>

#include "train/train_ops.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

/* SplitMix64's output function: a bijection of 64-bit words with full avalanche. */
static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t absorb(uint64_t h, uint64_t v) {
  return mix64(h + GOLDEN + mix64(v));
}

uint64_t tr_drop_key(uint64_t seed, int64_t step, int64_t micro_batch, int64_t example) {
  uint64_t h = absorb(0x243f6a8885a308d3ULL, seed); /* pi's first fractional hex digits */
  h = absorb(h, (uint64_t)step);
  h = absorb(h, (uint64_t)micro_batch);
  return absorb(h, (uint64_t)example);
}

tr_drop tr_drop_site(const tr_drop_ctx *c, float p, unsigned module, unsigned layer,
                     unsigned site) {
  tr_drop d = {0};
  if (!c || !c->on || !(p > 0)) return d; /* probability 0: no site at all */
  d.on = 1;
  d.stream = absorb(absorb(absorb(c->key, module), layer), site);
  double t = ldexp((double)p, 32);
  d.threshold = t >= 4294967295.0 ? UINT32_MAX : (uint32_t)t;
  d.scale = (float)(1.0 / (1.0 - (double)p));
  return d;
}

static inline int keep(const tr_drop *d, uint64_t i) {
  return (uint32_t)(mix64(d->stream + (i + 1) * GOLDEN) >> 32) >= d->threshold;
}

int tr_drop_keep(const tr_drop *d, size_t i) {
  return !d->on || keep(d, i);
}

void tr_drop_apply(const tr_drop *d, float *x, size_t n, size_t offset) {
  if (!d || !d->on) return;
  const float s = d->scale;
  /* element-wise: the same values whatever the number of threads */
#pragma omp parallel for if (n >= 65536) schedule(static)
  for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++)
    x[i] = keep(d, (uint64_t)(offset + (size_t)i)) ? x[i] * s : 0.0f;
}
