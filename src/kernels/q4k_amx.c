/* Q4_K products with many activation rows (prefill) on AMX-INT8.
 *
 * The activations are quantized as for decoding (int8 per 32 values, scale
 * d_a, vb_q4_quantize_acts); the weights' 4-bit q (0..15, a valid signed
 * byte) are unpacked per thread, 32 weight rows at a time, into the layout of
 * AMX B tiles: per 32-value block, 8 rows of 64 bytes (16 weight rows x 4
 * consecutive k). One TDPBSSD per 16 x 16 outputs and block gives exactly the
 * integer block sums of the VNNI GEMV (sum_j q_j a_j); each block's sums are
 * then scaled in f32 as there: d sc d_a sum - dmin m d_a sum(a). Tiles: four
 * 16 x 16 int32 accumulators (32 activation rows x 32 weight rows), two A
 * tiles of 16 rows x 32 bytes, two B tiles of 8 rows x 64 bytes.
 *
 * The AMX permission and VBLIP_NO_AMX are the tile products' (vb_tile_kind_usable
 * of VB_TILE_I8_AMX); the tile shapes differ from theirs (32-byte A rows: one
 * block per product), so this file loads its own configuration. */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/q4_kernels.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"

#define TGT_AMX                                                                                    \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,f16c,fma")))
#define NR 32 /* weight rows per unpacked panel */
#define MR 32 /* activation rows per pass */

/* tmm0-3 C (16 x 16 int32), tmm4-5 A (16 x 32 int8), tmm6-7 B (8 x 64 int8) */
static const vb_amx_tile_config k_config = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 32, 32, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 8, 8},
};

int vb_q4k_amx_usable(void) {
  return vb_tile_kind_usable(VB_TILE_I8_AMX) && vb_gemv_q4_has_vnni();
}

/* Rows [n0, n0 + NR) (zero past N) of W unpacked: per block b, 2 B tiles
 * (512 bytes each, rows n0..n0+15 then n0+16..n0+31), and per block the
 * rows' d sc (ws) and dmin m (wm). */
TGT_AMX static void unpack_panel(const uint8_t *W, int N, int K, int n0, int8_t *B, float *ws,
                                 float *wm) {
  int nb = K / 32, nsb = K / VB_Q4K_BLOCK;
  size_t rb = vb_q4k_row_bytes(K);
  memset(B, 0, (size_t)nb * 1024);
  memset(ws, 0, (size_t)nb * NR * sizeof *ws);
  memset(wm, 0, (size_t)nb * NR * sizeof *wm);
  for (int r = 0; r < NR && n0 + r < N; r++) {
    const uint8_t *row = W + (size_t)(n0 + r) * rb;
    int g = r / 16, n = r % 16;
    for (int sb = 0; sb < nsb; sb++) {
      const uint8_t *blk = row + (size_t)sb * VB_Q4K_BLOCK_BYTES;
      uint16_t h[2];
      memcpy(h, blk, 4);
      float d = vb_half_to_float(h[0]), dmin = vb_half_to_float(h[1]);
      uint8_t sc[8], mn[8];
      vb_q4k_scales(blk + 4, sc, mn);
      for (int s = 0; s < 8; s++) {
        int b = 8 * sb + s, shift = 4 * (s & 1);
        const uint8_t *qs = blk + 16 + 32 * (s / 2);
        int8_t *t = B + (size_t)b * 1024 + 512 * g + 4 * n;
        __m256i v = _mm256_loadu_si256((const __m256i *)qs);
        v = _mm256_and_si256(shift ? _mm256_srli_epi16(v, 4) : v, _mm256_set1_epi8(15));
        uint32_t quads[8]; /* k = 4j .. 4j + 3 of this row: B tile row j */
        _mm256_storeu_si256((__m256i *)quads, v);
        for (int j = 0; j < 8; j++)
          memcpy(t + 64 * j, &quads[j], 4);
        ws[(size_t)b * NR + r] = d * (float)sc[s];
        wm[(size_t)b * NR + r] = dmin * (float)mn[s];
      }
    }
  }
}

/* y rows [m0, m0 + MR) x columns [n0, n0 + NR) of one panel. */
TGT_AMX static void panel_product(const int8_t *A, size_t lda, const float *da, const float *c8,
                                  int nb, const int8_t *B, const float *ws, const float *wm, int m0,
                                  int mrows, int n0, int ncols, int N, const float *bias,
                                  float *y) {
  float acc[MR][NR];
  int32_t buf[MR][NR];
  memset(acc, 0, sizeof acc);
  const int8_t *a0 = A + (size_t)m0 * lda, *a1 = a0 + 16 * lda;
  for (int b = 0; b < nb; b++) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a0 + 32 * (size_t)b, lda);
    _tile_loadd(5, a1 + 32 * (size_t)b, lda);
    _tile_loadd(6, B + (size_t)b * 1024, 64);
    _tile_loadd(7, B + (size_t)b * 1024 + 512, 64);
    _tile_dpbssd(0, 4, 6);
    _tile_dpbssd(1, 4, 7);
    _tile_dpbssd(2, 5, 6);
    _tile_dpbssd(3, 5, 7);
    _tile_stored(0, &buf[0][0], NR * 4);
    _tile_stored(1, &buf[0][16], NR * 4);
    _tile_stored(2, &buf[16][0], NR * 4);
    _tile_stored(3, &buf[16][16], NR * 4);
    __m512 w0 = _mm512_loadu_ps(ws + (size_t)b * NR),
           w1 = _mm512_loadu_ps(ws + (size_t)b * NR + 16);
    __m512 v0 = _mm512_loadu_ps(wm + (size_t)b * NR),
           v1 = _mm512_loadu_ps(wm + (size_t)b * NR + 16);
    for (int m = 0; m < mrows; m++) {
      __m512 s = _mm512_set1_ps(da[(size_t)(m0 + m) * nb + b]),
             c = _mm512_set1_ps(c8[(size_t)(m0 + m) * nb + b]);
      __m512 t0 = _mm512_loadu_ps(acc[m]), t1 = _mm512_loadu_ps(acc[m] + 16);
      t0 =
          _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(buf[m])), _mm512_mul_ps(s, w0), t0);
      t1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_loadu_si512(buf[m] + 16)),
                           _mm512_mul_ps(s, w1), t1);
      _mm512_storeu_ps(acc[m], _mm512_fnmadd_ps(c, v0, t0));
      _mm512_storeu_ps(acc[m] + 16, _mm512_fnmadd_ps(c, v1, t1));
    }
  }
  for (int m = 0; m < mrows; m++)
    for (int n = 0; n < ncols; n++)
      y[(size_t)(m0 + m) * N + n0 + n] = acc[m][n] + (bias ? bias[n0 + n] : 0.0f);
}

TGT_AMX static void tiles_on(void) {
  _tile_loadconfig(&k_config);
}

TGT_AMX static void tiles_off(void) {
  _tile_release();
}

int vb_gemm_q4k_amx(const void *W, int N, int K, const float *x, int M, const float *bias,
                    float *y) {
  if (!vb_q4k_amx_usable()) return vb_error("AMX-INT8 is not usable here");
  if (M <= 0) return 0;
  vb_q4_acts a;
  if (vb_q4_quantize_acts(x, M, K, 1, &a) != 0) return -1;
  int nb = K / 32, Mp = (M + MR - 1) / MR * MR, npanels = (N + NR - 1) / NR;
  /* the activations with rows padded to MR (zeros), their scales and c / 8 */
  size_t qbytes = (size_t)Mp * K, fbytes = (size_t)Mp * nb * sizeof(float);
  uint8_t *buf = vb_malloc_aligned(qbytes + 2 * fbytes);
  if (!buf) return vb_error("out of memory for a %d-row Q4_K product", M);
  int8_t *A = (int8_t *)buf;
  float *da = (float *)(buf + qbytes), *c8 = (float *)(buf + qbytes + fbytes);
  memset(buf, 0, qbytes + 2 * fbytes);
  for (int m = 0; m < M; m++) {
    memcpy(A + (size_t)m * K, a.q + m * a.qstride, (size_t)K);
    for (int b = 0; b < nb; b++) {
      da[(size_t)m * nb + b] = a.da[m * a.bstride + b];
      c8[(size_t)m * nb + b] = 0.125f * a.c[m * a.bstride + b];
    }
  }
  int failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    int8_t *B = vb_malloc_aligned((size_t)nb * 1024);
    float *ws = vb_malloc_aligned((size_t)nb * NR * sizeof(float) * 2);
    int ok = B && ws;
    if (ok) tiles_on();
      /* every thread meets the loop; one without scratch only fails */
#pragma omp for schedule(dynamic, 1)
    for (int p = 0; p < npanels; p++) {
      if (!ok) {
        failed = 1;
        continue;
      }
      int n0 = p * NR, ncols = N - n0 < NR ? N - n0 : NR;
      unpack_panel(W, N, K, n0, B, ws, ws + (size_t)nb * NR);
      for (int m0 = 0; m0 < M; m0 += MR)
        panel_product(A, (size_t)K, da, c8, nb, B, ws, ws + (size_t)nb * NR, m0,
                      M - m0 < MR ? M - m0 : MR, n0, ncols, N, bias, y);
    }
    if (ok) tiles_off();
    vb_free_aligned(B);
    vb_free_aligned(ws);
  }
  vb_free_aligned(buf);
  return failed ? vb_error("out of memory for the unpacked tiles of a %dx%d Q4_K product", N, K)
                : 0;
}
