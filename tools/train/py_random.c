/* MT19937 seeded as CPython seeds it (init_by_array over the 32-bit words of the
 * seed), with getrandbits, _randbelow and sample's pool algorithm on top. */
#include "train/py_random.h"

#include <stdlib.h>

enum { MT_N = 624, MT_M = 397 };

static void init_genrand(py_random *r, uint32_t s) {
  r->mt[0] = s;
  for (int i = 1; i < MT_N; i++)
    r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
  r->index = MT_N;
}

void py_random_seed(py_random *r, uint64_t n) {
  uint32_t key[2] = {(uint32_t)n, (uint32_t)(n >> 32)};
  int key_len = key[1] ? 2 : 1;
  init_genrand(r, 19650218u);
  int i = 1, j = 0;
  for (int k = MT_N > key_len ? MT_N : key_len; k; k--) {
    r->mt[i] =
        (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
    i++;
    j++;
    if (i >= MT_N) {
      r->mt[0] = r->mt[MT_N - 1];
      i = 1;
    }
    if (j >= key_len) j = 0;
  }
  for (int k = MT_N - 1; k; k--) {
    r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    i++;
    if (i >= MT_N) {
      r->mt[0] = r->mt[MT_N - 1];
      i = 1;
    }
  }
  r->mt[0] = 0x80000000u;
  r->index = MT_N;
}

static uint32_t next_u32(py_random *r) {
  if (r->index >= MT_N) {
    for (int k = 0; k < MT_N; k++) {
      uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[(k + 1) % MT_N] & 0x7fffffffu);
      r->mt[k] = r->mt[(k + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    r->index = 0;
  }
  uint32_t y = r->mt[r->index++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint32_t py_random_bits(py_random *r, int k) {
  return next_u32(r) >> (32 - k);
}

uint32_t py_random_below(py_random *r, uint32_t n) {
  int k = 0;
  while (k < 32 && (n >> k))
    k++; /* n.bit_length() */
  uint32_t x = py_random_bits(r, k);
  while (x >= n)
    x = py_random_bits(r, k);
  return x;
}

void py_random_sample_all(py_random *r, int n, int *order) {
  /* k == n always takes sample()'s pool branch (its set size exceeds n) */
  int *pool = malloc((size_t)(n > 0 ? n : 1) * sizeof *pool);
  if (!pool) {
    for (int i = 0; i < n; i++)
      order[i] = i;
    return;
  }
  for (int i = 0; i < n; i++)
    pool[i] = i;
  for (int i = 0; i < n; i++) {
    int j = (int)py_random_below(r, (uint32_t)(n - i));
    order[i] = pool[j];
    pool[j] = pool[n - i - 1];
  }
  free(pool);
}
