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

/* One hash gives the 32-bit draws of two neighbouring elements (2j: low half, 2j + 1: high). */
static inline uint64_t pair_hash(const tr_drop *d, uint64_t j) {
  return mix64(d->stream + (j + 1) * GOLDEN);
}

static inline int keep(const tr_drop *d, uint64_t i) {
  uint64_t h = pair_hash(d, i >> 1);
  return (uint32_t)(i & 1 ? h >> 32 : h) >= d->threshold;
}

int tr_drop_keep(const tr_drop *d, size_t i) {
  return !d->on || keep(d, i);
}

/* Pairs [k0, k1) of x (pair k: elements 2k, 2k + 1, hash index j0 + k). Built for AVX-512
 * too where the compiler can (its 64-bit lane multiplies vectorize the hash); the
 * arithmetic is integer, so every build draws the same masks. Not under ThreadSanitizer:
 * the clone's resolver runs before TSan's runtime is up and crashes the program at start. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
__attribute__((target_clones("arch=skylake-avx512", "default")))
#endif
static void
apply_pairs(uint64_t stream, uint32_t t, float s, float *x, uint64_t j0, ptrdiff_t k0,
            ptrdiff_t k1) {
  for (ptrdiff_t k = k0; k < k1; k++) {
    uint64_t h = mix64(stream + (j0 + (uint64_t)k + 1) * GOLDEN);
    float a = x[2 * k], b = x[2 * k + 1];
    x[2 * k] = (uint32_t)h >= t ? a * s : 0.0f;
    x[2 * k + 1] = (uint32_t)(h >> 32) >= t ? b * s : 0.0f;
  }
}

void tr_drop_apply(const tr_drop *d, float *x, size_t n, size_t offset) {
  if (!d || !d->on || n == 0) return;
  const float s = d->scale;
  /* an odd first element alone, then whole pairs, then an odd last one */
  if (offset & 1) {
    x[0] = keep(d, offset) ? x[0] * s : 0.0f;
    x++, n--, offset++;
  }
  const ptrdiff_t pairs = (ptrdiff_t)(n / 2), chunk = 8192;
  /* element-wise: the same values whatever the number of threads */
#pragma omp parallel for if (pairs >= 4 * chunk) schedule(static)
  for (ptrdiff_t k = 0; k < pairs; k += chunk)
    apply_pairs(d->stream, d->threshold, s, x, offset / 2, k,
                k + chunk < pairs ? k + chunk : pairs);
  if (n & 1) x[n - 1] = keep(d, offset + n - 1) ? x[n - 1] * s : 0.0f;
}
