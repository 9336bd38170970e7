/* vb_bf16x16_rne (kernels/gemm_internal.h), the AVX-512 dequantizers'
 * float-to-bf16 rounding, against the scalar vb_float_to_bf16 bit for bit:
 * every upper half-word (all signs, exponents and bf16 mantissas: zeros,
 * denormals, the largest finite values that round to infinity, infinities and
 * NaNs) with lower half-words on both sides of the tie (0, 1, 0x7fff, 0x8000,
 * 0x8001, 0xffff: ties go to even), and a million random patterns. The q8_0
 * and q4 tests compare dequantized products within tolerances, which a
 * one-ulp rounding fault would pass. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"
#include "testutil.h"

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void round16(const uint32_t *bits, uint16_t *out) {
  __m512 f = _mm512_castsi512_ps(_mm512_loadu_si512(bits));
  _mm256_storeu_si256((__m256i *)out, vb_bf16x16_rne(f));
}

static size_t check_block(const uint32_t *bits, uint32_t *first_bad) {
  uint16_t got[16];
  round16(bits, got);
  size_t bad = 0;
  for (int i = 0; i < 16; i++) {
    float f;
    memcpy(&f, &bits[i], 4);
    if (got[i] != vb_float_to_bf16(f)) {
      if (!bad) *first_bad = bits[i];
      bad++;
    }
  }
  return bad;
}
#endif

int main(void) {
#if defined(__x86_64__)
  if (!vb_cpu_has_avx512()) {
    printf("no AVX-512: vb_bf16x16_rne is not used on this CPU\n");
    return tu_finish();
  }
  static const uint32_t lows[] = {0, 1, 0x7fff, 0x8000, 0x8001, 0xffff};
  size_t bad = 0, n = 0;
  uint32_t first = 0, bits[16];
  int k = 0;
  for (uint32_t hi = 0; hi < 0x10000; hi++)
    for (size_t l = 0; l < sizeof lows / sizeof lows[0]; l++) {
      bits[k++] = hi << 16 | lows[l];
      if (k == 16) {
        bad += check_block(bits, &first);
        n += 16, k = 0;
      }
    }
  CHECK(bad == 0, "%zu of %zu edge patterns round differently (first 0x%08x)", bad, n, first);
  tu_rng rng = {0x243f6a8885a308d3ull};
  bad = 0;
  for (int b = 0; b < 65536; b++) {
    for (int i = 0; i < 16; i++)
      tu_frand(&rng), bits[i] = (uint32_t)(rng.s >> 32); /* the stream's raw bits */
    bad += check_block(bits, &first);
  }
  CHECK(bad == 0, "%zu of %d random patterns round differently (first 0x%08x)", bad, 65536 * 16,
        first);
  /* the cases the rounding gets wrong without care, named */
  const uint32_t named[16] = {0x3f808000, 0x3f818000, 0x7f7fffff, 0xff7fffff,
                              0x7f800000, 0xff800000, 0x7fc00000, 0x7fffffff,
                              0xffffffff, 0x7f800001, 0x00008000, 0x00018000,
                              0x80000000, 0x7fffe000, 0x3f80ffff, 0x0000ffff};
  memcpy(bits, named, sizeof bits);
  CHECK(check_block(bits, &first) == 0, "named case 0x%08x rounds differently", first);
#else
  printf("not x86-64: no AVX-512 rounding to test\n");
#endif
  return tu_finish();
}
