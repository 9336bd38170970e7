/* Internal: a 16 x 16 transpose of 32-bit elements in AVX-512 registers,
 * shared by attention's key packing (attention_amx.c) and the tile weights'
 * packing (tile_gemm.c). Include only where AVX-512F code is compiled. */
#ifndef VBLIP_KERNELS_TRANSPOSE512_H
#define VBLIP_KERNELS_TRANSPOSE512_H

#include <immintrin.h>

/* r[j] lane i = r[i] lane j (32-bit lanes). */
static inline __attribute__((always_inline, target("avx512f"))) void
vb_transpose16_epi32(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  /* r[4q + e], 128-bit lane L: element 4L + e of rows 4q..4q+3 */
  for (int q = 0; q < 16; q += 4) {
    r[q] = _mm512_unpacklo_epi64(t[q], t[q + 2]);
    r[q + 1] = _mm512_unpackhi_epi64(t[q], t[q + 2]);
    r[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
    r[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
  }
  for (int e = 0; e < 4; e++) {
    __m512i a = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88),
            b = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xdd),
            c = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88),
            d = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xdd);
    t[e] = _mm512_shuffle_i32x4(a, c, 0x88);
    t[8 + e] = _mm512_shuffle_i32x4(a, c, 0xdd);
    t[4 + e] = _mm512_shuffle_i32x4(b, d, 0x88);
    t[12 + e] = _mm512_shuffle_i32x4(b, d, 0xdd);
  }
  for (int i = 0; i < 16; i++)
    r[i] = t[i];
}

#endif
