/* Internal: the quantized weights' packed layouts (q8x16, q4x16, q4kx16)
 * dequantized straight into AMX bf16 B tiles (tile_gemm.h's layout: per
 * 16-column group, one 64-byte row per k-pair, lane r = output channel r's
 * values at k and k + 1). All three layouts keep 16 rows x 4 consecutive k
 * per 64-byte vector (4 bytes per lane), so each vector (after unpacking the
 * nibbles for 4-bit) gives the tile rows of two k-pairs without moving data
 * between lanes: four f32 vectors (one per k of the quad, the lane's scale
 * applied), then VCVTNE2PS2BF16 rounds two of them to nearest-even and
 * packs them, and one word permute interleaves them into k-pairs. The values
 * equal the row unpackers' (vb_*_rows_to_bf16), element for element.
 * Only for CPUs with AVX512-BF16 (every CPU with AMX-BF16 so far). */
#ifndef VBLIP_KERNELS_Q_TILES_H
#define VBLIP_KERNELS_Q_TILES_H

#include <immintrin.h>
#include <stdint.h>

#define VB_TGT_QTILES                                                                              \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,f16c,fma")))
#define VB_QTILES_INLINE static inline __attribute__((always_inline)) VB_TGT_QTILES

/* Word i of the result: word i / 2 of the low (i even) or high (i odd) half. */
VB_QTILES_INLINE __m512i vb_qt_interleave_idx(void) {
  return _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                          6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
}

/* Two f32 vectors (k, k + 1 for 16 lanes) as one tile row of bf16 pairs. */
VB_QTILES_INLINE void vb_qt_pair(__m512 fk0, __m512 fk1, __m512i idx, uint16_t *row) {
  __m512i t = (__m512i)_mm512_cvtne2ps_pbh(fk1, fk0); /* words: fk0's 16, then fk1's */
  _mm512_store_si512((void *)row, _mm512_permutexvar_epi16(idx, t));
}

/* A vector of 16 lanes x 4 signed int8 (k = 0..3 of a quad) times the lanes'
 * scales sc, as the tile rows of its two k-pairs (row0, row0 + 32). Q4_0
 * takes this one: d (q - 8) as a product keeps the sign of a zero when d < 0
 * (the quantizer's d is the extreme value / -8), where d q - 8 d would not. */
VB_QTILES_INLINE void vb_qt_quad_s8(__m512i v, __m512 sc, __m512i idx, uint16_t *row0) {
  __m512 f0 =
      _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24)), sc);
  __m512 f1 =
      _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 16), 24)), sc);
  __m512 f2 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 8), 24)), sc);
  __m512 f3 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srai_epi32(v, 24)), sc);
  vb_qt_pair(f0, f1, idx, row0);
  vb_qt_pair(f2, f3, idx, row0 + 32);
}

/* Byte j of every 32-bit lane, zero-extended (VPSHUFB, within 128-bit lanes):
 * lane i of a 128-bit lane takes byte 4 i + j, its upper three bytes zeroed. */
VB_QTILES_INLINE __m512i vb_qt_byte_sel(int j) {
  return _mm512_add_epi32(_mm512_set1_epi32((int)(0x80808000u | (unsigned)j)),
                          _mm512_set_epi32(12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0, 12, 8, 4, 0));
}

/* A vector of 16 lanes x 4 unsigned bytes u (k = 0..3 of a quad) as the tile
 * rows of its two k-pairs (row0, row0 + 32), value a u + b per lane: one
 * VPSHUFB, one conversion and one FMA per k. Every caller's a u + b is exact
 * in f32 (q8_0: a = d, b = -128 d for the stored u = q + 128; Q4_K: a = d sc,
 * b = -dmin m, where d sc u is exact), so the single rounding of the FMA gives
 * the row unpackers' values, which round the exact product d q (and Q4_K's
 * exact d sc u less dmin m) the same way; only a zero from a negative scale
 * would come out +0 here (q8_0's d = max |x| / 127 is never negative). */
VB_QTILES_INLINE void vb_qt_quad_u8(__m512i v, __m512 a, __m512 b, __m512i idx, uint16_t *row0) {
  __m512 f[4];
  for (int j = 0; j < 4; j++)
    f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_shuffle_epi8(v, vb_qt_byte_sel(j))), a, b);
  vb_qt_pair(f[0], f[1], idx, row0);
  vb_qt_pair(f[2], f[3], idx, row0 + 32);
}

#endif
