/* Q4_0 weights repacked for AVX512-VNNI ("q4x16"), for CPUs that have it.
 *
 * Why: the row-major Q4_0 GEMV (gemv_q4.c) spends ~18 instructions per two
 * 18-byte blocks (unpacking a block pair into lane order, building per-lane
 * scales) and one core then reads only ~15 GB/s of weights, about as fast as
 * the q8x16 kernel reads twice the bytes. Here one VPDPBUSD multiplies 16
 * rows x 4 k of weights by 4 activation bytes broadcast to every lane, and
 * the block scales are applied once per 16 rows x 32 k.
 *
 * Layout: rows in panels of 16 (the last padded with zero-scale rows), each
 * panel a contiguous run of K/32 blocks of 288 bytes: the 16 rows' f16 scales
 * (32 bytes), then 4 vectors of 64 bytes; in vector v, byte 4r + j holds in
 * its low nibble the 4-bit q of row r at k = 32b + 8v + j and in its high
 * nibble the one at k = 32b + 8v + 4 + j (two k-quads per vector). Same size
 * as the Q4_0 rows, plus the padding.
 *
 * Activations: int8 per 32-value block with scale d_a and c = 8 d_a sum(a),
 * as in gemv_q4.c; a row's block result is d_w (d_a sum q a - c). */
#include <math.h>
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
#define SCALES 32                /* bytes of a panel block's scales */
#define PBLOCK (SCALES + 4 * 64) /* bytes of a panel block */
/* prefetched this far ahead into L2 (PREFETCHT1: faster than T0 at 4096
 * bytes, as in q4k_vnni.c) */
#define PREFETCH 2048
#define PF_HINT _MM_HINT_T1
#define MB 4 /* activation rows per pass over a panel */

static size_t panel_bytes(int K) {
  return (size_t)(K / VB_Q4_BLOCK) * PBLOCK;
}

size_t vb_q4x16_bytes(int N, int K) {
  return (size_t)((N + PANEL - 1) / PANEL) * panel_bytes(K);
}

int vb_q4x16_supported(void) {
  return vb_gemv_q4_has_vnni();
}

/* The 4-bit q of value k (0..31) of a Q4_0 block. */
static inline int block_q(const uint8_t *blk, int k) {
  return k < 16 ? blk[2 + k] & 15 : blk[2 + k - 16] >> 4;
}

void vb_q4x16_pack(const void *W, int N, int K, void *P) {
  int nb = K / VB_Q4_BLOCK, np = (N + PANEL - 1) / PANEL;
  size_t rb = vb_q4_row_bytes(K);
#pragma omp parallel for schedule(static)
  for (int p = 0; p < np; p++)
    for (int b = 0; b < nb; b++) {
      uint8_t *o = (uint8_t *)P + (size_t)p * panel_bytes(K) + (size_t)b * PBLOCK;
      memset(o, 0, PBLOCK);
      for (int r = 0; r < PANEL; r++) {
        int n = p * PANEL + r;
        if (n >= N) continue; /* zero scale: the padding rows give 0 */
        const uint8_t *blk = (const uint8_t *)W + (size_t)n * rb + (size_t)b * VB_Q4_BLOCK_BYTES;
        memcpy(o + 2 * r, blk, 2);
        for (int v = 0; v < 4; v++)
          for (int j = 0; j < 4; j++)
            o[SCALES + 64 * v + 4 * r + j] =
                (uint8_t)(block_q(blk, 8 * v + j) | block_q(blk, 8 * v + 4 + j) << 4);
      }
    }
}

/* Row r's block b of the packed weight as 32 values d (q - 8), in k order. */
static void unpack_row_block(const uint8_t *blk, int r, float *out) {
  uint16_t h;
  memcpy(&h, blk + 2 * r, 2);
  float d = vb_half_to_float(h);
  for (int v = 0; v < 4; v++)
    for (int j = 0; j < 4; j++) {
      uint8_t byte = blk[SCALES + 64 * v + 4 * r + j];
      out[8 * v + j] = d * (float)((byte & 15) - 8);
      out[8 * v + 4 + j] = d * (float)((byte >> 4) - 8);
    }
}

void vb_q4x16_rows_to_f32(const void *P, int K, int r0, int r1, float *dst) {
  for (int n = r0; n < r1; n++) {
    const uint8_t *panel = (const uint8_t *)P + (size_t)(n / PANEL) * panel_bytes(K);
    for (int b = 0; b < K / VB_Q4_BLOCK; b++)
      unpack_row_block(panel + (size_t)b * PBLOCK, n % PANEL, dst + (size_t)(n - r0) * K + 32 * b);
  }
}

#if defined(__x86_64__)
TGT_VNNI void vb_q4x16_rows_to_bf16(const void *P, int K, int r0, int r1, uint16_t *dst) {
  const __m512i eight = _mm512_set1_epi32(8);
  const __m128i m4 = _mm_set1_epi8(15);
  for (int n = r0; n < r1; n++) {
    const uint8_t *panel = (const uint8_t *)P + (size_t)(n / PANEL) * panel_bytes(K);
    int r = n % PANEL;
    uint16_t *d = dst + (size_t)(n - r0) * K;
    for (int b = 0; b < K / VB_Q4_BLOCK; b++) {
      const uint8_t *blk = panel + (size_t)b * PBLOCK;
      uint16_t h;
      memcpy(&h, blk + 2 * r, 2);
      __m512 s = _mm512_set1_ps(_cvtsh_ss(h));
      int32_t w[4];
      for (int v = 0; v < 4; v++)
        memcpy(&w[v], blk + SCALES + 64 * v + 4 * r, 4);
      __m128i q = _mm_setr_epi32(w[0], w[1], w[2], w[3]);
      __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
      /* [lo_v hi_v] per v: k = 8v..8v+3 then 8v+4..8v+7 */
      __m128i half[2] = {_mm_unpacklo_epi32(lo, hi), _mm_unpackhi_epi32(lo, hi)};
      for (int i = 0; i < 2; i++) {
        __m512 f = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(half[i]), eight)), s);
        _mm256_storeu_si256((__m256i *)(d + 32 * b + 16 * i), vb_bf16x16_rne(f));
      }
    }
  }
}

/* Panels [p0, p1) against activation rows m0 .. m0 + mc (mc <= MB). */
INLINE TGT_VNNI void q4x16_panels(const uint8_t *P, int p0, int p1, int N, int K,
                                  const vb_q4_acts *a, int m0, const int mc, const float *bias,
                                  float *y) {
  int nb = K / VB_Q4_BLOCK;
  const __m512i lo4 = _mm512_set1_epi8(0x0f), hi4 = _mm512_set1_epi8((char)0xf0);
  for (int p = p0; p < p1; p++) {
    const uint8_t *panel = P + (size_t)p * panel_bytes(K);
    __m512 accp[MB], accn[MB];
    for (int m = 0; m < mc; m++)
      accp[m] = accn[m] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
      const uint8_t *blk = panel + (size_t)b * PBLOCK;
      _mm_prefetch((const char *)blk + PREFETCH, PF_HINT);
      _mm_prefetch((const char *)blk + PREFETCH + 64, PF_HINT);
      _mm_prefetch((const char *)blk + PREFETCH + 128, PF_HINT);
      _mm_prefetch((const char *)blk + PREFETCH + 192, PF_HINT);
      _mm_prefetch((const char *)blk + PREFETCH + 256, PF_HINT);
      __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
      __m512i q[8];
      for (int v = 0; v < 4; v++) {
        __m512i w = _mm512_loadu_si512((const void *)(blk + SCALES + 64 * v));
        /* the high nibbles stay in place (16 q, still an unsigned byte):
         * one AND each and no shift, whose port VPDPBUSD needs */
        q[2 * v] = _mm512_and_si512(w, lo4);
        q[2 * v + 1] = _mm512_and_si512(w, hi4);
      }
      for (int m = 0; m < mc; m++) {
        size_t row = (size_t)(m0 + m);
        const int8_t *xa = a->q + row * a->qstride + 32 * (size_t)b;
        /* low-nibble quads and high-nibble quads (16x theirs, exact: at most
         * 4 x 4 x 240 x 127 per lane) in two chains */
        __m512i sl = _mm512_setzero_si512(), sh = _mm512_setzero_si512();
        for (int quad = 0; quad < 8; quad += 2) {
          int32_t xl, xh;
          memcpy(&xl, xa + 4 * quad, 4);
          memcpy(&xh, xa + 4 * quad + 4, 4);
          sl = _mm512_dpbusd_epi32(sl, q[quad], _mm512_set1_epi32(xl));
          sh = _mm512_dpbusd_epi32(sh, q[quad + 1], _mm512_set1_epi32(xh));
        }
        __m512i s = _mm512_add_epi32(sl, _mm512_srai_epi32(sh, 4));
        __m512 da = _mm512_set1_ps(a->da[row * a->bstride + b]),
               c = _mm512_set1_ps(a->c[row * a->bstride + b]);
        accp[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, da), accp[m]);
        accn[m] = _mm512_fmadd_ps(dw, c, accn[m]);
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

/* Rows [n0, n1) (whole panels but at N) for every activation row. */
TGT_VNNI static void q4x16_rows(const uint8_t *P, int n0, int n1, int N, int K, const vb_q4_acts *a,
                                int M, const float *bias, float *y) {
  int pa = n0 / PANEL, pb = (n1 + PANEL - 1) / PANEL;
  for (int m0 = 0; m0 < M; m0 += MB) {
    switch (M - m0 < MB ? M - m0 : MB) { /* constant trip counts for the inner loops */
    case 1:
      q4x16_panels(P, pa, pb, N, K, a, m0, 1, bias, y);
      break;
    case 2:
      q4x16_panels(P, pa, pb, N, K, a, m0, 2, bias, y);
      break;
    case 3:
      q4x16_panels(P, pa, pb, N, K, a, m0, 3, bias, y);
      break;
    default:
      q4x16_panels(P, pa, pb, N, K, a, m0, 4, bias, y);
      break;
    }
  }
}

int vb_gemv_q4x16(const void *P, int N, int K, const float *x, int M, const float *bias, float *y) {
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  /* the GEMV helper's row blocks are multiples of 16 rows: whole panels */
  VB_GEMV_FOR_ROW_BLOCKS(N, q4x16_rows(P, n0, n1, N, K, &a, M, bias, y));
  return 0;
}

/* ---- straight into AMX bf16 tiles (q_tiles.h; the tiled path on AMX) ---- */

/* A panel is one group; each vector's low nibbles are the quad k = 8v..8v+3,
 * its high nibbles k = 8v+4..8v+7, taken as signed q - 8 bytes. */
VB_TGT_QTILES void vb_q4x16_to_tiles(const void *W, int K, int g0, int g1, int k0, int k1,
                                     uint16_t *dst) {
  const __m512i idx = vb_qt_interleave_idx(), m4 = _mm512_set1_epi8(15), e8 = _mm512_set1_epi8(8);
  size_t gl = (size_t)(k1 - k0) * 16;
  for (int g = g0; g < g1; g++) {
    const uint8_t *P = (const uint8_t *)W + (size_t)g * panel_bytes(K);
    for (int b = k0 / VB_Q4_BLOCK; b < k1 / VB_Q4_BLOCK; b++) {
      const uint8_t *blk = P + (size_t)b * PBLOCK;
      __m512 sc = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
      uint16_t *D = dst + (size_t)(g - g0) * gl + (size_t)(b * VB_Q4_BLOCK - k0) / 2 * 32;
      for (int v = 0; v < 4; v++) {
        __m512i x = _mm512_loadu_si512((const void *)(blk + SCALES + 64 * v));
        __m512i lo = _mm512_sub_epi8(_mm512_and_si512(x, m4), e8);
        __m512i hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(x, 4), m4), e8);
        vb_qt_quad_s8(lo, sc, idx, D + (size_t)(4 * v) * 32);
        vb_qt_quad_s8(hi, sc, idx, D + (size_t)(4 * v + 2) * 32);
      }
    }
  }
}
#endif /* x86-64 */
