/* Q4_K weights repacked for AVX512-VNNI ("q4kx16"), for CPUs that have it:
 * the decoding product of q4_vnni.c (16 rows x 4 k per VPDPBUSD, activation
 * bytes broadcast to every lane) with Q4_K's scales. The row-major Q4_K GEMV
 * (gemv_q4k.c) spends its instructions on unpacking nibbles into lane order
 * and each row's 6-bit scales; here a row's scales are lanes of a vector.
 *
 * Layout: rows in panels of 16 (the last padded with zero rows), each panel
 * K/256 super-blocks of 2368 bytes: the 16 rows' f16 d (32 bytes), f16 dmin
 * (32), the 6-bit scales as bytes sc[s][row] (128) and mins m[s][row] (128),
 * then per 32-value sub-block s four vectors of 64 bytes laid out as
 * q4_vnni.c's: in vector v, byte 4r + j holds in its low nibble the q of row
 * r at k = 32s + 8v + j and in its high nibble the one at k = 32s + 8v + 4 + j.
 * 2.8% more than the Q4_K rows (the scales unpacked to bytes).
 *
 * A row's sub-block result is d sc (d_a sum q a) - dmin m (d_a sum a), the
 * activations in int8 per 32 values as in gemv_q4.c. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/q4_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/q_tiles.h"
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define INLINE static inline __attribute__((always_inline))
#endif
#define PANEL 16
#define HEAD 320                /* bytes of a panel super-block's scales */
#define PSB (HEAD + 8 * 4 * 64) /* bytes of a panel super-block */
/* Prefetched this far ahead into L2 (PREFETCHT1): with one thread a T0
 * prefetch at 4096 bytes read 11.5 GB/s of weights against q8x16's 13.6,
 * T1 at 2048 bytes 13.8 (gemv-q4-q8, docs/performance.md). */
#define PREFETCH 2048
#define PF_HINT _MM_HINT_T1
#define MB 4

static size_t panel_bytes(int K) {
  return (size_t)(K / VB_Q4K_BLOCK) * PSB;
}

size_t vb_q4kx16_bytes(int N, int K) {
  return (size_t)((N + PANEL - 1) / PANEL) * panel_bytes(K);
}

#if defined(__x86_64__)
/* One row's sub-block s of a Q4_K super-block into the panel layout: the 32
 * q (nibbles of bytes 16 + 32 (s / 2) .. + 31) as byte j of vector v =
 * q[8v + j] | q[8v + 4 + j] << 4, stored at 64 v + 4 r. */
TGT_VNNI static inline void pack_sub(const uint8_t *blk, int s, uint8_t *o) {
  const __m128i m4 = _mm_set1_epi8(15);
  const __m128i lo_idx = _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m128i hi_idx = _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1);
  const uint8_t *src = blk + 16 + 32 * (s / 2);
  __m128i sh = _mm_cvtsi32_si128(4 * (s & 1));
  __m128i a = _mm_and_si128(_mm_srl_epi16(_mm_loadu_si128((const __m128i *)src), sh), m4);
  __m128i b = _mm_and_si128(_mm_srl_epi16(_mm_loadu_si128((const __m128i *)(src + 16)), sh), m4);
  __m128i lo = _mm_unpacklo_epi64(_mm_shuffle_epi8(a, lo_idx), _mm_shuffle_epi8(b, lo_idx));
  __m128i hi = _mm_unpacklo_epi64(_mm_shuffle_epi8(a, hi_idx), _mm_shuffle_epi8(b, hi_idx));
  __m128i q = _mm_or_si128(lo, _mm_slli_epi16(hi, 4)); /* hi <= 15: no carry between bytes */
  uint32_t w[4];
  _mm_storeu_si128((__m128i *)w, q);
  for (int v = 0; v < 4; v++)
    memcpy(o + 64 * v, &w[v], 4);
}

/* Only called where vb_q4x16_supported (the packed layout's products need
 * AVX512-VNNI too). */
TGT_VNNI void vb_q4kx16_pack(const void *W, int N, int K, void *P) {
  int nsb = K / VB_Q4K_BLOCK, np = (N + PANEL - 1) / PANEL;
  size_t rb = vb_q4k_row_bytes(K);
#pragma omp parallel for schedule(static)
  for (int p = 0; p < np; p++)
    for (int sb = 0; sb < nsb; sb++) {
      uint8_t *o = (uint8_t *)P + (size_t)p * panel_bytes(K) + (size_t)sb * PSB;
      if (N - p * PANEL < PANEL) memset(o, 0, PSB); /* zero scales: padding rows give 0 */
      for (int r = 0; r < PANEL; r++) {
        int n = p * PANEL + r;
        if (n >= N) continue;
        const uint8_t *blk = (const uint8_t *)W + (size_t)n * rb + (size_t)sb * VB_Q4K_BLOCK_BYTES;
        memcpy(o + 2 * r, blk, 2);
        memcpy(o + 32 + 2 * r, blk + 2, 2);
        uint8_t sc[8], mn[8];
        vb_q4k_scales(blk + 4, sc, mn);
        for (int s = 0; s < 8; s++) {
          o[64 + 16 * s + r] = sc[s];
          o[192 + 16 * s + r] = mn[s];
          pack_sub(blk, s, o + HEAD + 256 * s + 4 * r);
        }
      }
    }
}

#endif /* x86-64 */

void vb_q4kx16_rows_to_f32(const void *P, int K, int r0, int r1, float *dst) {
  for (int n = r0; n < r1; n++) {
    const uint8_t *panel = (const uint8_t *)P + (size_t)(n / PANEL) * panel_bytes(K);
    int r = n % PANEL;
    float *o = dst + (size_t)(n - r0) * K;
    for (int sb = 0; sb < K / VB_Q4K_BLOCK; sb++) {
      const uint8_t *blk = panel + (size_t)sb * PSB;
      uint16_t h[2];
      memcpy(&h[0], blk + 2 * r, 2);
      memcpy(&h[1], blk + 32 + 2 * r, 2);
      float d = vb_half_to_float(h[0]), dmin = vb_half_to_float(h[1]);
      for (int s = 0; s < 8; s++) {
        float sc = d * blk[64 + 16 * s + r], mn = dmin * blk[192 + 16 * s + r];
        for (int v = 0; v < 4; v++)
          for (int j = 0; j < 4; j++) {
            uint8_t byte = blk[HEAD + 256 * s + 64 * v + 4 * r + j];
            o[256 * sb + 32 * s + 8 * v + j] = sc * (float)(byte & 15) - mn;
            o[256 * sb + 32 * s + 8 * v + 4 + j] = sc * (float)(byte >> 4) - mn;
          }
      }
    }
  }
}

#if defined(__x86_64__)
TGT_VNNI void vb_q4kx16_rows_to_bf16(const void *P, int K, int r0, int r1, uint16_t *dst) {
  const __m128i m4 = _mm_set1_epi8(15);
  for (int n = r0; n < r1; n++) {
    const uint8_t *panel = (const uint8_t *)P + (size_t)(n / PANEL) * panel_bytes(K);
    int r = n % PANEL;
    uint16_t *o = dst + (size_t)(n - r0) * K;
    for (int sb = 0; sb < K / VB_Q4K_BLOCK; sb++) {
      const uint8_t *blk = panel + (size_t)sb * PSB;
      uint16_t h[2];
      memcpy(&h[0], blk + 2 * r, 2);
      memcpy(&h[1], blk + 32 + 2 * r, 2);
      float d = _cvtsh_ss(h[0]), dmin = _cvtsh_ss(h[1]);
      for (int s = 0; s < 8; s++) {
        __m512 sc = _mm512_set1_ps(d * blk[64 + 16 * s + r]),
               mn = _mm512_set1_ps(dmin * blk[192 + 16 * s + r]);
        int32_t w[4];
        for (int v = 0; v < 4; v++)
          memcpy(&w[v], blk + HEAD + 256 * s + 64 * v + 4 * r, 4);
        __m128i q = _mm_setr_epi32(w[0], w[1], w[2], w[3]);
        __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
        /* [lo_v hi_v] per v: k = 8v..8v+3 then 8v+4..8v+7 */
        __m128i half[2] = {_mm_unpacklo_epi32(lo, hi), _mm_unpackhi_epi32(lo, hi)};
        for (int i = 0; i < 2; i++) {
          __m512 f = _mm512_sub_ps(
              _mm512_mul_ps(sc, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(half[i]))), mn);
          _mm256_storeu_si256((__m256i *)(o + 256 * sb + 32 * s + 16 * i), vb_bf16x16_rne(f));
        }
      }
    }
  }
}

/* Panels [p0, p1) against activation rows m0 .. m0 + mc (mc <= MB). */
INLINE TGT_VNNI void q4kx16_panels(const uint8_t *P, int p0, int p1, int N, int K,
                                   const vb_q4_acts *a, int m0, const int mc, const float *bias,
                                   float *y) {
  int nsb = K / VB_Q4K_BLOCK;
  const __m512i lo4 = _mm512_set1_epi8(0x0f), hi4 = _mm512_set1_epi8((char)0xf0);
  for (int p = p0; p < p1; p++) {
    const uint8_t *panel = P + (size_t)p * panel_bytes(K);
    __m512 accp[MB], accn[MB];
    for (int m = 0; m < mc; m++)
      accp[m] = accn[m] = _mm512_setzero_ps();
    for (int sb = 0; sb < nsb; sb++) {
      const uint8_t *blk = panel + (size_t)sb * PSB;
      for (int l = 0; l < HEAD; l += 64)
        _mm_prefetch((const char *)blk + PREFETCH + l, PF_HINT);
      __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)),
             dm = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
      for (int s = 0; s < 8; s++) {
        const uint8_t *qb = blk + HEAD + 256 * s;
        for (int l = 0; l < 256; l += 64)
          _mm_prefetch((const char *)qb + PREFETCH + l, PF_HINT);
        __m512 ws = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                         _mm_loadu_si128((const __m128i *)(blk + 64 + 16 * s)))));
        __m512 wm = _mm512_mul_ps(dm, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                          _mm_loadu_si128((const __m128i *)(blk + 192 + 16 * s)))));
        __m512i q[8];
        for (int v = 0; v < 4; v++) {
          __m512i w = _mm512_loadu_si512((const void *)(qb + 64 * v));
          q[2 * v] = _mm512_and_si512(w, lo4);
          q[2 * v + 1] = _mm512_and_si512(w, hi4); /* 16 q, summed 16x and shifted once */
        }
        size_t b = 8 * (size_t)sb + s;
        for (int m = 0; m < mc; m++) {
          size_t row = (size_t)(m0 + m);
          const int8_t *xa = a->q + row * a->qstride + 32 * b;
          __m512i sl = _mm512_setzero_si512(), sh = _mm512_setzero_si512();
          for (int quad = 0; quad < 8; quad += 2) {
            int32_t xl, xh;
            memcpy(&xl, xa + 4 * quad, 4);
            memcpy(&xh, xa + 4 * quad + 4, 4);
            sl = _mm512_dpbusd_epi32(sl, q[quad], _mm512_set1_epi32(xl));
            sh = _mm512_dpbusd_epi32(sh, q[quad + 1], _mm512_set1_epi32(xh));
          }
          __m512i sum = _mm512_add_epi32(sl, _mm512_srai_epi32(sh, 4));
          __m512 da = _mm512_set1_ps(a->da[row * a->bstride + b]),
                 c8 = _mm512_set1_ps(0.125f * a->c[row * a->bstride + b]);
          accp[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(ws, da), accp[m]);
          accn[m] = _mm512_fmadd_ps(wm, c8, accn[m]);
        }
      }
    }
    int rows = N - p * PANEL < PANEL ? N - p * PANEL : PANEL;
    __mmask16 keep = (__mmask16)((1u << rows) - 1);
    __m512 b16 = bias ? _mm512_maskz_loadu_ps(keep, bias + (size_t)p * PANEL) : _mm512_setzero_ps();
    for (int m = 0; m < mc; m++)
      _mm512_mask_storeu_ps(y + (size_t)(m0 + m) * N + (size_t)p * PANEL, keep,
                            _mm512_add_ps(_mm512_sub_ps(accp[m], accn[m]), b16));
  }
}

TGT_VNNI static void q4kx16_rows(const uint8_t *P, int n0, int n1, int N, int K,
                                 const vb_q4_acts *a, int M, const float *bias, float *y) {
  int pa = n0 / PANEL, pb = (n1 + PANEL - 1) / PANEL;
  for (int m0 = 0; m0 < M; m0 += MB) {
    switch (M - m0 < MB ? M - m0 : MB) { /* constant trip counts for the inner loops */
    case 1:
      q4kx16_panels(P, pa, pb, N, K, a, m0, 1, bias, y);
      break;
    case 2:
      q4kx16_panels(P, pa, pb, N, K, a, m0, 2, bias, y);
      break;
    case 3:
      q4kx16_panels(P, pa, pb, N, K, a, m0, 3, bias, y);
      break;
    default:
      q4kx16_panels(P, pa, pb, N, K, a, m0, 4, bias, y);
      break;
    }
  }
}

int vb_gemv_q4kx16(const void *P, int N, int K, const float *x, int M, const float *bias,
                   float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  /* the GEMV helper's row blocks are multiples of 16 rows: whole panels */
  VB_GEMV_FOR_ROW_BLOCKS(N, q4kx16_rows(P, n0, n1, N, K, &a, M, bias, y));
  return 0;
}

/* ---- straight into AMX bf16 tiles (q_tiles.h; the tiled path on AMX) ---- */

/* A panel is one group; per 32-value sub-block the lanes' sc = d sc6 and
 * mn = dmin m6 (exact products, as the row unpackers compute them), then the
 * vectors' nibbles as in q4_vnni.c, value sc q - mn. */
VB_TGT_QTILES void vb_q4kx16_to_tiles(const void *W, int K, int g0, int g1, int k0, int k1,
                                      uint16_t *dst) {
  const __m512i idx = vb_qt_interleave_idx(), m4 = _mm512_set1_epi8(15);
  size_t gl = (size_t)(k1 - k0) * 16;
  for (int g = g0; g < g1; g++) {
    const uint8_t *P = (const uint8_t *)W + (size_t)g * panel_bytes(K);
    for (int kb = k0 / 32; kb < k1 / 32; kb++) {
      const uint8_t *blk = P + (size_t)(kb / 8) * PSB;
      int s = kb % 8;
      __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
      __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
      __m512 sc = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                       _mm_loadu_si128((const __m128i *)(blk + 64 + 16 * s)))));
      __m512 mn = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                          _mm_loadu_si128((const __m128i *)(blk + 192 + 16 * s)))));
      /* -mn, the sign flipped exactly (a zero keeps the reference's sign of zero) */
      mn = _mm512_castsi512_ps(
          _mm512_xor_si512(_mm512_castps_si512(mn), _mm512_set1_epi32((int)0x80000000u)));
      uint16_t *D = dst + (size_t)(g - g0) * gl + (size_t)(kb * 32 - k0) / 2 * 32;
      for (int v = 0; v < 4; v++) {
        __m512i x = _mm512_loadu_si512((const void *)(blk + HEAD + 256 * s + 64 * v));
        vb_qt_quad_u8(_mm512_and_si512(x, m4), sc, mn, idx, D + (size_t)(4 * v) * 32);
        vb_qt_quad_u8(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4), sc, mn, idx,
                      D + (size_t)(4 * v + 2) * 32);
      }
    }
  }
}
#endif /* x86-64 */
