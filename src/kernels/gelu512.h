/* Internal: GELU on sixteen floats in AVX-512 registers, shared by the
 * element-wise kernels (ops_avx512.c) and the tile products' output stage
 * (tile_gemm.c), which applies it to a row's values while they are in
 * registers. Include only from code compiled for (or targeting) AVX-512F. */
#ifndef VBLIP_KERNELS_GELU512_H
#define VBLIP_KERNELS_GELU512_H

#include <immintrin.h>

#include "kernels/gelu_table.h"

/* GELU(x) = x * Phi(x) with Phi from 32 degree-6 polynomial pieces
 * (gelu_table.h, fitted by scripts/fit-gelu-table.py): the segment index comes
 * from the low mantissa bits of x * 2.5 + (1.5 * 2^23 + 16) and picks each
 * coefficient with one two-table permute. No division, rounding, scaling or
 * conversion instruction: only FMAs, compares, min/max and permutes, which
 * the vector units run beside the AMX tile products (a division-based erf
 * there ran as if alone). Error against double erfc: below 1.4e-5 relative
 * for |x| < 6 and far better away from the negative tail; beyond 6.2 Phi
 * rounds to 1, below -6.6 GELU is taken as 0 (|GELU| < 3e-10 there). */
static inline __attribute__((always_inline, target("avx512f"))) __m512 vb_gelu512(__m512 v) {
  const float *cn = k_gelu_centre;
  __m512 xc = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-6.6f)), _mm512_set1_ps(6.19f));
  __m512i idx =
      _mm512_castps_si512(_mm512_fmadd_ps(xc, _mm512_set1_ps(2.5f), _mm512_set1_ps(12582928.0f)));
  __m512 u =
      _mm512_sub_ps(xc, _mm512_permutex2var_ps(_mm512_load_ps(cn), idx, _mm512_load_ps(cn + 16)));
#define GELU_COEF(d)                                                                               \
  _mm512_permutex2var_ps(_mm512_load_ps(k_gelu_coef[d]), idx, _mm512_load_ps(k_gelu_coef[d] + 16))
  __m512 p = GELU_COEF(6);
  p = _mm512_fmadd_ps(p, u, GELU_COEF(5));
  p = _mm512_fmadd_ps(p, u, GELU_COEF(4));
  p = _mm512_fmadd_ps(p, u, GELU_COEF(3));
  p = _mm512_fmadd_ps(p, u, GELU_COEF(2));
  p = _mm512_fmadd_ps(p, u, GELU_COEF(1));
  p = _mm512_fmadd_ps(p, u, GELU_COEF(0));
#undef GELU_COEF
  /* below the table: Phi = 0 (-inf * 0 gives NaN, as x * Phi(x) does) */
  p = _mm512_mask_mov_ps(p, _mm512_cmp_ps_mask(v, _mm512_set1_ps(-6.6f), _CMP_LT_OQ),
                         _mm512_setzero_ps());
  return _mm512_mul_ps(v, p);
}

#endif
