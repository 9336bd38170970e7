/* Python's `random` module (Mersenne Twister MT19937) for the few calls VideoBLIP's
 * scripts make, so that splits drawn with random.seed(42) come out the same. */
#ifndef VBLIP_TRAIN_PY_RANDOM_H
#define VBLIP_TRAIN_PY_RANDOM_H

#include <stdint.h>

typedef struct {
  uint32_t mt[624];
  int index;
} py_random;

/* random.seed(n) for a non-negative integer n < 2^64. */
void py_random_seed(py_random *r, uint64_t n);
/* random.getrandbits(k) for 1 <= k <= 32. */
uint32_t py_random_bits(py_random *r, int k);
/* random._randbelow(n) for 1 <= n < 2^32. */
uint32_t py_random_below(py_random *r, uint32_t n);
/* order[i] = the index picked i-th by random.sample(range(n), k=n). */
void py_random_sample_all(py_random *r, int n, int *order);

#endif
