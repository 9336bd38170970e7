/* Q8_0 weights repacked for AVX512-VNNI (VPDPBUSD), for CPUs that have it.
 *
 * Why: the row-major Q8_0 GEMV (gemv_q8.c) widens every int8 weight to f32 and
 * scales it per 32-value block, ~9 vector instructions per 34 bytes; one thread
 * then reads only ~20 GB/s, short of what memory delivers. Here a single
 * VPDPBUSD multiplies 64 weight bytes (16 rows x 4 k) by 4 activation bytes
 * broadcast to every lane, and the block scales are applied once per 16 rows.
 *
 * Layout ("q8x16"): rows in panels of 64 (the last padded with zero rows),
 * each panel one contiguous run of nb = K/32 blocks of 2176 bytes: the 64
 * rows' f16 scales (128 bytes), then for each of the block's 8 k-quads q and
 * each 16-row slice s, 64 bytes whose byte 4r+j is (int8 weight of row
 * 64p+16s+r at k = 32b+4q+j) XOR 0x80, i.e. weight + 128 as an unsigned byte
 * (VPDPBUSD's unsigned operand). A thread streams one panel at a time: with
 * scales and quants in separate runs per 16 rows (8 streams) it read slower
 * than the row-major kernel (measured). Same bytes as the Q8_0 rows, plus the
 * padding.
 *
 * Activations are quantized per 32-value block to 16 bits (step = max|x| /
 * 32639; relative error <= 1.5e-5 of the block's largest value, far below the
 * weights' own 8-bit step), split as q = 256 hi + lo with hi, lo signed bytes.
 * Per block and row, sum (w+128) hi * 256 + sum (w+128) lo = sum w q + 128 sum q;
 * the last term is the same for every row and subtracted once. Block sums
 * stay below 2^31 (8 k-quads x 4 x 255 x 128 x 257), so only the per-block
 * scaling is in float. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/q_tiles.h"
#define TGT_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c")))
#define INLINE static inline __attribute__((always_inline))
#endif

#define SLICE 16 /* rows per VPDPBUSD */
#define PANEL 64 /* rows per stream: 4 slices */
#define QUADS (VB_Q8_BLOCK / 4)
#define SCALE_BYTES (PANEL * 2)
#define BLOCK_BYTES (SCALE_BYTES + PANEL * VB_Q8_BLOCK)
#define ACT_MAX 32639 /* |q| <= 32639 keeps hi = (q + 128) >> 8 within a signed byte */
/* Software prefetch, bytes ahead in the panel: without it the kernel read
 * ~25% slower from memory; 4 KB measured best of 1-16 KB (in L1; L2 was slower). */
#define PREFETCH 4096

static size_t panel_bytes(int K) {
  return (size_t)(K / VB_Q8_BLOCK) * BLOCK_BYTES;
}

size_t vb_q8x16_bytes(int N, int K) {
  return (size_t)((N + PANEL - 1) / PANEL) * panel_bytes(K);
}

int vb_q8x16_supported(void) {
#if defined(__x86_64__)
  const vb_cpu_features *f = vb_cpu();
  return vb_cpu_has_avx512() && f->avx512dq && f->avx512_vnni && __builtin_cpu_supports("f16c");
#else
  return 0;
#endif
}

void vb_q8x16_pack(const void *Wv, int N, int K, void *dst) {
  const uint8_t *W = Wv;
  int nb = K / VB_Q8_BLOCK, np = (N + PANEL - 1) / PANEL;
  size_t rb = vb_q8_row_bytes(K);
#pragma omp parallel for schedule(static)
  for (int p = 0; p < np; p++) {
    uint8_t *P = (uint8_t *)dst + (size_t)p * panel_bytes(K);
    for (int b = 0; b < nb; b++) {
      uint8_t *B = P + (size_t)b * BLOCK_BYTES, *Q = B + SCALE_BYTES;
      for (int r = 0; r < PANEL; r++) {
        int n = p * PANEL + r, s = r / SLICE, rs = r % SLICE;
        const uint8_t *blk = n < N ? W + (size_t)n * rb + (size_t)b * VB_Q8_BLOCK_BYTES : NULL;
        if (blk)
          memcpy(B + 2 * r, blk, 2);
        else
          memset(B + 2 * r, 0, 2); /* a padding row: zero scale, zero weights */
        for (int q = 0; q < QUADS; q++)
          for (int j = 0; j < 4; j++)
            Q[(q * 4 + s) * 64 + rs * 4 + j] = blk ? blk[2 + 4 * q + j] ^ 0x80 : 0x80;
      }
    }
  }
}

#if defined(__x86_64__)
/* ---- activations ---- */

/* One activation row quantized for the kernel: hi/lo bytes (4 per int32, the
 * broadcast unit), the block steps and the per-block correction 128 sum q. */
typedef struct {
  int32_t *hi, *lo, *corr;
  float *step;
} q8x16_act;

TGT_VNNI static void quantize_act(const float *x, int K, q8x16_act *a) {
  int nb = K / VB_Q8_BLOCK;
  int8_t *hi = (int8_t *)a->hi, *lo = (int8_t *)a->lo;
  const __m512i c128 = _mm512_set1_epi32(128), lim = _mm512_set1_epi32(ACT_MAX);
  const __m512i nlim = _mm512_set1_epi32(-ACT_MAX);
  for (int b = 0; b < nb; b++) {
    const float *v = x + (size_t)b * VB_Q8_BLOCK;
    __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
    /* |x| as integers orders like floats; anything at or above inf's pattern
     * (inf, NaN) makes the block non-finite */
    __m512i a0 = _mm512_and_si512(_mm512_castps_si512(v0), _mm512_set1_epi32(0x7fffffff));
    __m512i a1 = _mm512_and_si512(_mm512_castps_si512(v1), _mm512_set1_epi32(0x7fffffff));
    int bits = _mm512_reduce_max_epi32(_mm512_max_epi32(a0, a1));
    float amax;
    memcpy(&amax, &bits, 4);
    int finite = bits < 0x7f800000;
    /* a non-finite value poisons its block's products, as it would in float */
    __m512 id = _mm512_set1_ps(finite && amax > 0 ? ACT_MAX / amax : 0.0f);
    __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id)),
            q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    q0 = _mm512_max_epi32(_mm512_min_epi32(q0, lim), nlim);
    q1 = _mm512_max_epi32(_mm512_min_epi32(q1, lim), nlim);
    __m512i h0 = _mm512_srai_epi32(_mm512_add_epi32(q0, c128), 8),
            h1 = _mm512_srai_epi32(_mm512_add_epi32(q1, c128), 8);
    __m512i l0 = _mm512_sub_epi32(q0, _mm512_slli_epi32(h0, 8)),
            l1 = _mm512_sub_epi32(q1, _mm512_slli_epi32(h1, 8));
    _mm_storeu_si128((__m128i *)(hi + b * VB_Q8_BLOCK), _mm512_cvtepi32_epi8(h0));
    _mm_storeu_si128((__m128i *)(hi + b * VB_Q8_BLOCK + 16), _mm512_cvtepi32_epi8(h1));
    _mm_storeu_si128((__m128i *)(lo + b * VB_Q8_BLOCK), _mm512_cvtepi32_epi8(l0));
    _mm_storeu_si128((__m128i *)(lo + b * VB_Q8_BLOCK + 16), _mm512_cvtepi32_epi8(l1));
    a->step[b] = finite ? amax / ACT_MAX : NAN;
    a->corr[b] = 128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

/* ---- the GEMV ---- */

TGT_VNNI static void store_slice(float *y, int N, int n, const float *bias, __m512 v) {
  if (n >= N) return;
  int cnt = N - n < SLICE ? N - n : SLICE;
  __mmask16 mk = (__mmask16)((1u << cnt) - 1);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + n));
  _mm512_mask_storeu_ps(y + n, mk, v);
}

/* One activation row: the partial sums of one block for all 4 slices. */
INLINE TGT_VNNI void row_block_sums(const uint8_t *B, const q8x16_act *a, int b, __m512i ah[4],
                                    __m512i al[4]) {
  if (PREFETCH)
    for (int c = 0; c < 2; c++)
      _mm_prefetch((const char *)B + PREFETCH + c * 64, _MM_HINT_T0);
  for (int s = 0; s < 4; s++)
    ah[s] = al[s] = _mm512_setzero_si512();
  for (int q = 0; q < QUADS; q++) {
    const uint8_t *Bq = B + SCALE_BYTES + q * 4 * 64;
    if (PREFETCH)
      for (int c = 0; c < 4; c++)
        _mm_prefetch((const char *)Bq + PREFETCH + c * 64, _MM_HINT_T0);
    __m512i h = _mm512_set1_epi32(a->hi[b * QUADS + q]),
            l = _mm512_set1_epi32(a->lo[b * QUADS + q]);
    for (int s = 0; s < 4; s++) {
      __m512i w = _mm512_load_si512((const void *)(Bq + s * 64));
      ah[s] = _mm512_dpbusd_epi32(ah[s], w, h);
      al[s] = _mm512_dpbusd_epi32(al[s], w, l);
    }
  }
}

/* f[s] += the block's scaled sums (its scales were read with it, now in cache). */
INLINE TGT_VNNI void row_block_scale(const uint8_t *B, const q8x16_act *a, int b,
                                     const __m512i ah[4], const __m512i al[4], __m512 f[4]) {
  __m512i c = _mm512_set1_epi32(a->corr[b]);
  __m512 d = _mm512_set1_ps(a->step[b]);
  for (int s = 0; s < 4; s++) {
    __m512 ws = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(B + s * 32)));
    __m512i t = _mm512_sub_epi32(_mm512_add_epi32(_mm512_slli_epi32(ah[s], 8), al[s]), c);
    f[s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(ws, d), f[s]);
  }
}

/* One activation row against a whole panel, read as two streams: block b of
 * the first half of K beside block b + nb/2 of the second. Measured against
 * the one-stream version (paired, interleaved per layer over OPT-2.7b's 32
 * layers of q8x16 weights, 40 rounds, five runs): that took 1.03-1.11x the time. */
TGT_VNNI static void vnni_panel_row(const uint8_t *P, int nb, const q8x16_act *a, __m512 out[4]) {
  __m512 f[4];
  for (int s = 0; s < 4; s++)
    f[s] = _mm512_setzero_ps();
  int h = nb / 2;
  for (int b = 0; b < h; b++) {
    __m512i ah0[4], al0[4], ah1[4], al1[4];
    const uint8_t *B0 = P + (size_t)b * BLOCK_BYTES, *B1 = P + (size_t)(b + h) * BLOCK_BYTES;
    row_block_sums(B0, a, b, ah0, al0);
    row_block_sums(B1, a, b + h, ah1, al1);
    row_block_scale(B0, a, b, ah0, al0, f);
    row_block_scale(B1, a, b + h, ah1, al1, f);
  }
  if (nb & 1) { /* the odd block: the last of the second half */
    __m512i ah[4], al[4];
    const uint8_t *B = P + (size_t)(nb - 1) * BLOCK_BYTES;
    row_block_sums(B, a, nb - 1, ah, al);
    row_block_scale(B, a, nb - 1, ah, al, f);
  }
  for (int s = 0; s < 4; s++)
    out[s] = f[s];
}

/* 2-4 activation rows (MC) against a whole panel in one pass: the float sums
 * of every (row, slice) stay in registers across blocks; within a block the
 * slices are taken one after another with MC pairs of int sums. Taking the
 * panel in 2 or 4 passes of fewer slices instead (fewer registers, later
 * passes from cache) took 1.2-1.5x the time (paired microbenchmark over
 * OPT-2.7b's 32 layers: medians 0.67 / 0.72 / 0.85 of the multi-pass time for
 * 2 / 3 / 4 rows). */
INLINE TGT_VNNI void vnni_panel_rows(const uint8_t *P, int nb, const q8x16_act *a, const int MC,
                                     __m512 out[4][4]) {
  __m512 f[4][4];
  for (int m = 0; m < MC; m++)
    for (int s = 0; s < 4; s++)
      f[m][s] = _mm512_setzero_ps();
  for (int b = 0; b < nb; b++) {
    const uint8_t *B = P + (size_t)b * BLOCK_BYTES;
    if (PREFETCH)
      for (int c = 0; c < BLOCK_BYTES / 64; c++)
        _mm_prefetch((const char *)B + PREFETCH + c * 64, _MM_HINT_T0);
    for (int s = 0; s < 4; s++) {
      __m512i ah[4], al[4];
      for (int m = 0; m < MC; m++)
        ah[m] = al[m] = _mm512_setzero_si512();
      for (int q = 0; q < QUADS; q++) {
        __m512i w = _mm512_load_si512((const void *)(B + SCALE_BYTES + (q * 4 + s) * 64));
        for (int m = 0; m < MC; m++) {
          ah[m] = _mm512_dpbusd_epi32(ah[m], w, _mm512_set1_epi32(a[m].hi[b * QUADS + q]));
          al[m] = _mm512_dpbusd_epi32(al[m], w, _mm512_set1_epi32(a[m].lo[b * QUADS + q]));
        }
      }
      __m512 ws = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(B + s * 32)));
      for (int m = 0; m < MC; m++) {
        __m512i t = _mm512_sub_epi32(_mm512_add_epi32(_mm512_slli_epi32(ah[m], 8), al[m]),
                                     _mm512_set1_epi32(a[m].corr[b]));
        f[m][s] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t),
                                  _mm512_mul_ps(ws, _mm512_set1_ps(a[m].step[b])), f[m][s]);
      }
    }
  }
  for (int m = 0; m < MC; m++)
    for (int s = 0; s < 4; s++)
      out[m][s] = f[m][s];
}

/* Panels [p0, p1) for all M activation rows, up to 4 at a time, each group
 * in one pass over the panel (two streams for a single row). */
TGT_VNNI static void vnni_panels(const uint8_t *W, int p0, int p1, int N, int K, const q8x16_act *a,
                                 int M, const float *bias, float *y) {
  int nb = K / VB_Q8_BLOCK;
  for (int p = p0; p < p1; p++) {
    const uint8_t *P = W + (size_t)p * panel_bytes(K);
    for (int m0 = 0; m0 < M; m0 += 4) {
      int mc = M - m0 < 4 ? M - m0 : 4;
      const q8x16_act *am = a + m0;
      __m512 out[4][4];
      /* constant row counts: the accumulators stay in registers */
      if (mc == 1)
        vnni_panel_row(P, nb, am, out[0]);
      else if (mc == 2)
        vnni_panel_rows(P, nb, am, 2, out);
      else if (mc == 3)
        vnni_panel_rows(P, nb, am, 3, out);
      else
        vnni_panel_rows(P, nb, am, 4, out);
      for (int m = 0; m < mc; m++)
        for (int s = 0; s < 4; s++)
          store_slice(y + (size_t)(m0 + m) * N, N, p * PANEL + s * SLICE, bias, out[m][s]);
    }
  }
}

/* the calling thread's quantized activations, reused across calls */
static __thread void *tls_act;
static __thread size_t tls_act_cap;

int vb_gemv_q8x16(const void *P, int N, int K, const float *x, int M, const float *bias, float *y) {
  int nb = K / VB_Q8_BLOCK;
  size_t per = (size_t)K * 2 + (size_t)nb * 2 * 4; /* hi, lo bytes; corr, step */
  uint8_t *buf =
      vb_tls_scratch_grow(&tls_act, &tls_act_cap, (size_t)M * per + (size_t)M * sizeof(q8x16_act));
  if (!buf) return -1; /* a few KB per row */
  q8x16_act *a = (q8x16_act *)(buf + (size_t)M * per);
  for (int m = 0; m < M; m++) {
    uint8_t *p = buf + (size_t)m * per;
    a[m].hi = (int32_t *)p;
    a[m].lo = (int32_t *)(p + K);
    a[m].corr = (int32_t *)(p + 2 * (size_t)K);
    a[m].step = (float *)(p + 2 * (size_t)K + (size_t)nb * 4);
    quantize_act(x + (size_t)m * K, K, &a[m]);
  }
  /* handed out in blocks of whole panels (vb_gemv_block_rows counts rows) */
  int np = (N + PANEL - 1) / PANEL;
  VB_GEMV_FOR_ROW_BLOCKS(np * PANEL,
                         vnni_panels(P, n0 / PANEL, (n1 + PANEL - 1) / PANEL, N, K, a, M, bias, y));
  return 0;
}

/* ---- dequantization (the tiled large-M path) ---- */

typedef struct {
  int i1[2][16], i2[2][16], i3[2][16];
} transpose_idx;

static void transpose_indices(transpose_idx *t) {
  for (int h = 0; h < 2; h++)
    for (int r = 0; r < 8; r++)
      for (int u = 0; u < 2; u++)
        t->i1[h][2 * r + u] = (u ? 16 : 0) + 8 * h + r;
  for (int p = 0; p < 2; p++)
    for (int r = 0; r < 4; r++)
      for (int u = 0; u < 4; u++)
        t->i2[p][4 * r + u] = (u >= 2 ? 16 : 0) + 2 * (4 * p + r) + (u & 1);
  for (int s2 = 0; s2 < 2; s2++)
    for (int s = 0; s < 2; s++)
      for (int q = 0; q < 8; q++)
        t->i3[s2][8 * s + q] = (q >= 4 ? 16 : 0) + 4 * (2 * s2 + s) + (q & 3);
}

/* One slice's block: the 8 quad vectors (lane r = 4 bytes of row r; quad q
 * lies q * 256 bytes after quad 0) transposed to row pairs: o[i] holds rows
 * 2i and 2i+1, 32 signed weights each in k order. Three rounds of two-source
 * dword permutes: pairs of quads, then 4 quads x 4 rows, then 8 quads x 2 rows. */
INLINE TGT_VNNI void transpose_block(const uint8_t *q0, const transpose_idx *t, __m512i o[8]) {
  __m512i v[8], A[4][2], B[2][2][2];
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int q = 0; q < 8; q++)
    v[q] = _mm512_xor_si512(_mm512_load_si512((const void *)(q0 + q * 256)), flip);
  for (int a = 0; a < 4; a++)
    for (int h = 0; h < 2; h++)
      A[a][h] = _mm512_permutex2var_epi32(v[2 * a], _mm512_loadu_si512(t->i1[h]), v[2 * a + 1]);
  for (int c = 0; c < 2; c++)
    for (int h = 0; h < 2; h++)
      for (int p = 0; p < 2; p++)
        B[c][h][p] =
            _mm512_permutex2var_epi32(A[2 * c][h], _mm512_loadu_si512(t->i2[p]), A[2 * c + 1][h]);
  /* o[4h + 2p + s2]: rows 8h + 4p + 2s2 and the next */
  for (int h = 0; h < 2; h++)
    for (int p = 0; p < 2; p++)
      for (int s2 = 0; s2 < 2; s2++)
        o[4 * h + 2 * p + s2] =
            _mm512_permutex2var_epi32(B[0][h][p], _mm512_loadu_si512(t->i3[s2]), B[1][h][p]);
}

/* 16 int8 (signed) times a scale to 16 floats. */
INLINE TGT_VNNI __m512 widen(__m128i q, __m512 s) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), s);
}

/* Rows [r0, r1) (r0 a multiple of 16) to bf16 or f32 rows of K values. */
TGT_VNNI static void unpack_rows(const void *W, int K, int r0, int r1, uint16_t *d16, float *d32) {
  int nb = K / VB_Q8_BLOCK;
  transpose_idx t;
  transpose_indices(&t);
  for (int r16 = r0; r16 < r1; r16 += SLICE) {
    const uint8_t *P = (const uint8_t *)W + (size_t)(r16 / PANEL) * panel_bytes(K);
    int s = (r16 % PANEL) / SLICE;
    for (int b = 0; b < nb; b++) {
      const uint8_t *B = P + (size_t)b * BLOCK_BYTES;
      __m512i o[8];
      transpose_block(B + SCALE_BYTES + s * 64, &t, o);
      float sc[16];
      _mm512_storeu_ps(sc, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(B + s * 32))));
      for (int i = 0; i < 8; i++)
        for (int half = 0; half < 2; half++) {
          int r = r16 + 2 * i + half;
          if (r >= r1) continue;
          __m256i row = half ? _mm512_extracti64x4_epi64(o[i], 1) : _mm512_castsi512_si256(o[i]);
          __m512 sv = _mm512_set1_ps(sc[2 * i + half]);
          __m512 lo = widen(_mm256_castsi256_si128(row), sv),
                 hi = widen(_mm256_extracti128_si256(row, 1), sv);
          size_t off = (size_t)(r - r0) * K + (size_t)b * VB_Q8_BLOCK;
          if (d16) {
            _mm256_storeu_si256((__m256i *)(d16 + off), vb_bf16x16_rne(lo));
            _mm256_storeu_si256((__m256i *)(d16 + off + 16), vb_bf16x16_rne(hi));
          } else {
            _mm512_storeu_ps(d32 + off, lo);
            _mm512_storeu_ps(d32 + off + 16, hi);
          }
        }
    }
  }
}

void vb_q8x16_rows_to_bf16(const void *P, int K, int r0, int r1, uint16_t *dst) {
  unpack_rows(P, K, r0, r1, dst, NULL);
}

void vb_q8x16_rows_to_f32(const void *P, int K, int r0, int r1, float *dst) {
  unpack_rows(P, K, r0, r1, NULL, dst);
}

/* Panels [p0, p1) as bf16 in the blocked layout of gemv_bf16_blocked.c (16
 * rows x one k-pair per 64-byte vector): each q8x16 vector (16 rows x 4 k)
 * gives the vectors of two k-pairs without moving data between lanes. The
 * values equal vb_q8x16_rows_to_bf16's, element for element. */
TGT_VNNI static void unpack_blocked(const void *W, int K, int p0, int p1, uint16_t *dst) {
  int nb = K / VB_Q8_BLOCK;
  const __m512i flip = _mm512_set1_epi8((char)0x80);
  for (int p = p0; p < p1; p++) {
    const uint8_t *P = (const uint8_t *)W + (size_t)p * panel_bytes(K);
    uint16_t *D = dst + (size_t)(p - p0) * PANEL * K;
    for (int b = 0; b < nb; b++) {
      const uint8_t *B = P + (size_t)b * BLOCK_BYTES;
      uint16_t *Db = D + (size_t)b * PANEL * VB_Q8_BLOCK; /* 16 k-pairs x 64 rows x 2 */
      for (int s = 0; s < 4; s++) {
        __m512 sc = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(B + s * 32)));
        for (int q = 0; q < QUADS; q++) {
          __m512i v = _mm512_xor_si512(
              _mm512_load_si512((const void *)(B + SCALE_BYTES + (q * 4 + s) * 64)), flip);
          __m512i k[4]; /* byte j of every lane, sign-extended: row r's weight at k = 4q + j */
          for (int j = 0; j < 4; j++)
            k[j] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * j), 24);
          for (int h = 0; h < 2; h++) {
            __m512i lo = _mm512_cvtepu16_epi32(
                vb_bf16x16_rne(_mm512_mul_ps(_mm512_cvtepi32_ps(k[2 * h]), sc)));
            __m512i hi = _mm512_cvtepu16_epi32(
                vb_bf16x16_rne(_mm512_mul_ps(_mm512_cvtepi32_ps(k[2 * h + 1]), sc)));
            _mm512_store_si512((void *)(Db + (size_t)(2 * q + h) * PANEL * 2 + s * 32),
                               _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
          }
        }
      }
    }
  }
}

void vb_q8x16_panels_to_bf16b(const void *P, int K, int p0, int p1, uint16_t *dst) {
  unpack_blocked(P, K, p0, p1, dst);
}

/* ---- straight into AMX bf16 tiles (q_tiles.h; the tiled path on AMX) ---- */

/* Software prefetch of the panel this far ahead (the next chunk's blocks when
 * a chunk ends): 0.90x the time for 10240x2560 at 16 rows, 0.95-1.00x
 * elsewhere (2048 and 8192 no better; 2 threads, same run). */
#define TILES_PF 4096
#ifndef TILES_PF_HINT
#define TILES_PF_HINT _MM_HINT_T0
#endif

/* A block's 4 slices (groups) x 8 quads are read in storage order, each
 * quad vector written as two k-pair rows of its group's tiles. */
VB_TGT_QTILES void vb_q8x16_to_tiles(const void *W, int K, int g0, int g1, int k0, int k1,
                                     uint16_t *dst) {
  const __m512i idx = vb_qt_interleave_idx();
  size_t gl = (size_t)(k1 - k0) * 16; /* elements per group */
  for (int p = g0 / 4; p * 4 < g1; p++) {
    const uint8_t *P = (const uint8_t *)W + (size_t)p * panel_bytes(K);
    int s0 = p * 4 < g0 ? g0 - p * 4 : 0, s1 = p * 4 + 4 > g1 ? g1 - p * 4 : 4;
    for (int b = k0 / VB_Q8_BLOCK; b < k1 / VB_Q8_BLOCK; b++) {
      const uint8_t *B = P + (size_t)b * BLOCK_BYTES;
      size_t kp = (size_t)(b * VB_Q8_BLOCK - k0) / 2; /* first k-pair row of the block */
      if (TILES_PF)
        for (int c = 0; c < BLOCK_BYTES; c += 64)
          _mm_prefetch((const char *)B + TILES_PF + c, TILES_PF_HINT);
      for (int s = s0; s < s1; s++) {
        __m512 sc = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(B + s * 32)));
        __m512 off = _mm512_mul_ps(sc, _mm512_set1_ps(-128.0f)); /* the stored bytes are q + 128 */
        uint16_t *D = dst + (size_t)(p * 4 + s - g0) * gl + kp * 32;
        for (int q = 0; q < QUADS; q++) {
          __m512i v = _mm512_load_si512((const void *)(B + SCALE_BYTES + (q * 4 + s) * 64));
          vb_qt_quad_u8(v, sc, off, idx, D + (size_t)q * 64);
        }
      }
    }
  }
}

#endif /* x86-64 */

int vb_q_tiles_supported(void) {
  return vb_q8x16_supported() && vb_gemv_q4_has_vnni() && vb_cpu()->avx512_bf16;
}
