/* bf16 weights in a blocked layout that both oneDNN's matmul and vblip's own
 * small-M kernel read, for CPUs with AVX512-BF16.
 *
 * Why: the language models' prompt prefill multiplies 16-300 rows with weights
 * that decoding also streams row by row. Given plain [N, K] rows, oneDNN copies
 * the weight into its blocked layout on every call: a 52-row prefill product
 * ran at 0.41-0.49 TFLOP/s against 0.55-0.73 with the weight already blocked
 * (OPT-2.7b's shapes, this project's machine). Storing the weight blocked
 * removes that copy, and this file's GEMV reads the same bytes for decoding.
 *
 * Layout (oneDNN's format tag BA16a64b2a for the [K, N] weight): rows in panels
 * of 64, each panel one contiguous run of K/32 blocks of 4096 bytes; in a
 * block, for each of its 16 k-pairs, the 64 rows' two bf16 values (k even, k
 * odd) side by side: element (n, k) of the panel's block lies at bf16 offset
 * (k % 32 / 2) * 128 + (n % 64) * 2 + k % 2. A 64-byte vector is 16 rows x one
 * k-pair, VDPBF16PS's operand against a broadcast activation pair. oneDNN picks
 * this layout itself on AVX512-BF16 for every shape the models use (checked
 * with format_tag_any), and it needs N % 64 == 0 and K % 32 == 0 here. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#include "kernels/gemm_internal.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "kernels/transpose512.h"
#define TGT_BF16B __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define INLINE static inline __attribute__((always_inline))
#endif

#define PANEL 64
#define KBLOCK 32
#define PAIRS (KBLOCK / 2)
#define BLOCK_ELEMS (PANEL * KBLOCK)
#define PREFETCH 4096 /* bytes ahead in the panel, as the q8x16 kernel */

int vb_bf16b_fits(int N, int K) {
  return N > 0 && K > 0 && N % PANEL == 0 && K % KBLOCK == 0;
}

int vb_bf16b_supported(void) {
  return vb_cpu()->avx512_bf16 && vb_cpu_has_avx512(); /* never off x86-64 */
}

size_t vb_bf16b_offset(int K, int n, int k) {
  size_t panel = (size_t)(n / PANEL) * K * PANEL, block = (size_t)(k / KBLOCK) * BLOCK_ELEMS;
  return panel + block + (size_t)(k % KBLOCK / 2) * (PANEL * 2) + (size_t)(n % PANEL) * 2 + k % 2;
}

void vb_bf16b_pack(const uint16_t *W, int N, int K, uint16_t *dst) {
  int np = N / PANEL, nkb = K / KBLOCK;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < np; p++)
    for (int b = 0; b < nkb; b++) {
      uint16_t *B = dst + ((size_t)p * nkb + b) * BLOCK_ELEMS;
      for (int r = 0; r < PANEL; r++) {
        const uint16_t *src = W + (size_t)(p * PANEL + r) * K + (size_t)b * KBLOCK;
        for (int q = 0; q < PAIRS; q++) {
          B[q * PANEL * 2 + r * 2] = src[2 * q];
          B[q * PANEL * 2 + r * 2 + 1] = src[2 * q + 1];
        }
      }
    }
}

void vb_bf16b_put_row(const float *row, int K, int n, uint16_t *dst) {
  uint16_t *d = dst + vb_bf16b_offset(K, n, 0);
  for (int k = 0; k < K; k += 2) {
    size_t o = (size_t)(k / KBLOCK) * BLOCK_ELEMS + (size_t)(k % KBLOCK / 2) * (PANEL * 2);
    d[o] = vb_float_to_bf16(row[k]);
    d[o + 1] = vb_float_to_bf16(row[k + 1]);
  }
}

#if defined(__x86_64__)
/* ---- the GEMV ---- */

/* One block of one activation row: acc[s] += the block's products for the
 * panel's 16-row slice s. xp: the row's bf16 activations as k-pairs. */
INLINE TGT_BF16B void row_block(const uint16_t *B, const uint32_t *xp, __m512 acc[4]) {
  for (int q = 0; q < PAIRS; q++) {
    const uint16_t *Bq = B + q * PANEL * 2;
    if (q % 2 == 0)
      for (int c = 0; c < 8; c++)
        _mm_prefetch((const char *)Bq + PREFETCH + c * 64, _MM_HINT_T0);
    __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xp[q]);
    for (int s = 0; s < 4; s++)
      acc[s] =
          _mm512_dpbf16_ps(acc[s], xv, (__m512bh)_mm512_load_si512((const void *)(Bq + s * 32)));
  }
}

/* One activation row against a whole panel, read as two streams (block b of
 * the first half of K beside block b + nkb/2), as the q8x16 kernel does. */
TGT_BF16B static void panel_row(const uint16_t *P, int nkb, const uint32_t *xp, __m512 out[4]) {
  __m512 a0[4], a1[4];
  for (int s = 0; s < 4; s++)
    a0[s] = a1[s] = _mm512_setzero_ps();
  int h = nkb / 2;
  for (int b = 0; b < h; b++) {
    row_block(P + (size_t)b * BLOCK_ELEMS, xp + (size_t)b * PAIRS, a0);
    row_block(P + (size_t)(b + h) * BLOCK_ELEMS, xp + (size_t)(b + h) * PAIRS, a1);
  }
  if (nkb & 1) row_block(P + (size_t)(nkb - 1) * BLOCK_ELEMS, xp + (size_t)(nkb - 1) * PAIRS, a0);
  for (int s = 0; s < 4; s++)
    out[s] = _mm512_add_ps(a0[s], a1[s]);
}

/* 2-4 activation rows (MC) against a whole panel in one pass. */
INLINE TGT_BF16B void panel_rows(const uint16_t *P, int nkb, const uint32_t *xp, size_t ldp,
                                 const int MC, __m512 out[4][4]) {
  __m512 acc[4][4];
  for (int m = 0; m < MC; m++)
    for (int s = 0; s < 4; s++)
      acc[m][s] = _mm512_setzero_ps();
  for (int b = 0; b < nkb; b++) {
    const uint16_t *B = P + (size_t)b * BLOCK_ELEMS;
    for (int q = 0; q < PAIRS; q++) {
      const uint16_t *Bq = B + q * PANEL * 2;
      if (q % 2 == 0)
        for (int c = 0; c < 8; c++)
          _mm_prefetch((const char *)Bq + PREFETCH + c * 64, _MM_HINT_T0);
      __m512i w[4];
      for (int s = 0; s < 4; s++)
        w[s] = _mm512_load_si512((const void *)(Bq + s * 32));
      for (int m = 0; m < MC; m++) {
        __m512bh xv = (__m512bh)_mm512_set1_epi32((int)xp[m * ldp + (size_t)b * PAIRS + q]);
        for (int s = 0; s < 4; s++)
          acc[m][s] = _mm512_dpbf16_ps(acc[m][s], xv, (__m512bh)w[s]);
      }
    }
  }
  for (int m = 0; m < MC; m++)
    for (int s = 0; s < 4; s++)
      out[m][s] = acc[m][s];
}

/* Rows m0.. (mc of them) of panel p's 64 outputs, plus bias, into y. */
INLINE __attribute__((target("avx512f"))) void store_rows(__m512 out[4][4], int mc, int p, int m0,
                                                          int N, const float *bias, float *y) {
  for (int m = 0; m < mc; m++)
    for (int s = 0; s < 4; s++) {
      int n = p * PANEL + s * 16;
      __m512 v = out[m][s];
      if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + n));
      _mm512_storeu_ps(y + (size_t)(m0 + m) * N + n, v);
    }
}

/* One group of mc (1-4) activation rows against a whole panel: out[m][s] gets
 * row m's sums for the panel's 16-row slice s. x: the group's first row, ldx
 * elements (of the kernel's activation type) from one row to the next. The
 * row counts are constants inside: the accumulators stay in registers. */
typedef void (*panel_group_fn)(const uint16_t *P, int nkb, const void *x, size_t ldx, int mc,
                               __m512 out[4][4]);

TGT_BF16B static void group_bf16(const uint16_t *P, int nkb, const void *x, size_t ldx, int mc,
                                 __m512 out[4][4]) {
  const uint32_t *xp = x; /* bf16 k-pairs */
  if (mc == 1)
    panel_row(P, nkb, xp, out[0]);
  else if (mc == 2)
    panel_rows(P, nkb, xp, ldx, 2, out);
  else if (mc == 3)
    panel_rows(P, nkb, xp, ldx, 3, out);
  else
    panel_rows(P, nkb, xp, ldx, 4, out);
}

/* Panel P (outputs 64 p..) for all M activation rows, 4 at a time (the panel
 * in L2 for the next 4); x's rows are ldx elements of xbytes bytes apart. */
__attribute__((target("avx512f"))) static void
panel_all_rows(const uint16_t *P, int p, int N, int K, const void *x, size_t ldx, size_t xbytes,
               int M, const float *bias, float *y, panel_group_fn group) {
  for (int m0 = 0; m0 < M; m0 += 4) {
    int mc = M - m0 < 4 ? M - m0 : 4;
    __m512 out[4][4];
    group(P, K / KBLOCK, (const char *)x + (size_t)m0 * ldx * xbytes, ldx, mc, out);
    store_rows(out, mc, p, m0, N, bias, y);
  }
}

/* Panels [p0, p1) of a blocked weight W. */
static void panels(const uint16_t *W, int p0, int p1, int N, int K, const void *x, size_t ldx,
                   size_t xbytes, int M, const float *bias, float *y, panel_group_fn group) {
  for (int p = p0; p < p1; p++)
    panel_all_rows(W + (size_t)p * PANEL * K, p, N, K, x, ldx, xbytes, M, bias, y, group);
}

/* the calling thread's bf16 activations, reused across calls */
static __thread void *tls_x;
static __thread size_t tls_x_cap;

int vb_gemv_bf16b(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                  float *y) {
  uint16_t *xs = vb_tls_scratch_grow(&tls_x, &tls_x_cap, (size_t)M * K * sizeof(uint16_t));
  if (!xs) return -1; /* a few KB per row */
  vb_f32_to_bf16_rows(x, M, K, xs, K);
  const uint32_t *xp = (const uint32_t *)xs;
  int np = N / PANEL;
  /* handed out in blocks of whole panels (vb_gemv_block_rows counts rows) */
  VB_GEMV_FOR_ROW_BLOCKS(np * PANEL, panels(W, n0 / PANEL, n1 / PANEL, N, K, xp, (size_t)K / 2,
                                            sizeof *xp, M, bias, y, group_bf16));
  return 0;
}

/* ---- the same product with f32 arithmetic, for CPUs whose VDPBF16PS is slow ----
 *
 * A Xeon whose AMX the hypervisor hides runs VDPBF16PS at half the flops of
 * VFMADD231PS (vb_cpu_bf16_products_fast), and oneDNN's bf16 matmul at that
 * rate. Here each weight vector (16 rows x one k-pair) is widened to two f32
 * vectors (k even: the low halves shifted up; k odd: the high halves masked)
 * and multiplied by the activations as they are, in f32: 8 FMAs per weight
 * vector for 4 rows, against 4 VDPBF16PS. Each panel (64 rows x K, <= 1.3 MB
 * for K = 10240) stays in L2 while 4 activation rows at a time pass over it.
 * The activations are not rounded to bf16, so this is also the closer product. */
#define TGT_F32B __attribute__((target("avx512f,avx512bw,avx512vl")))

INLINE TGT_F32B void panel_rows_f32(const uint16_t *P, int nkb, const float *x, size_t ldx,
                                    const int MC, __m512 out[4][4]) {
  __m512 acc[4][4];
  const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
  for (int m = 0; m < MC; m++)
    for (int s = 0; s < 4; s++)
      acc[m][s] = _mm512_setzero_ps();
  for (int b = 0; b < nkb; b++) {
    const uint16_t *B = P + (size_t)b * BLOCK_ELEMS;
    for (int q = 0; q < PAIRS; q++) {
      const uint16_t *Bq = B + q * PANEL * 2;
      __m512 we[4], wo[4];
      for (int s = 0; s < 4; s++) {
        __m512i w = _mm512_load_si512((const void *)(Bq + s * 32));
        we[s] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        wo[s] = _mm512_castsi512_ps(_mm512_and_si512(w, hi));
      }
      size_t k = (size_t)b * KBLOCK + 2 * q;
      for (int m = 0; m < MC; m++) {
        __m512 xe = _mm512_set1_ps(x[m * ldx + k]), xo = _mm512_set1_ps(x[m * ldx + k + 1]);
        for (int s = 0; s < 4; s++)
          acc[m][s] = _mm512_fmadd_ps(wo[s], xo, _mm512_fmadd_ps(we[s], xe, acc[m][s]));
      }
    }
  }
  for (int m = 0; m < MC; m++)
    for (int s = 0; s < 4; s++)
      out[m][s] = acc[m][s];
}

TGT_F32B static void group_f32(const uint16_t *P, int nkb, const void *x, size_t ldx, int mc,
                               __m512 out[4][4]) {
  const float *xf = x;
  if (mc == 1)
    panel_rows_f32(P, nkb, xf, ldx, 1, out);
  else if (mc == 2)
    panel_rows_f32(P, nkb, xf, ldx, 2, out);
  else if (mc == 3)
    panel_rows_f32(P, nkb, xf, ldx, 3, out);
  else
    panel_rows_f32(P, nkb, xf, ldx, 4, out);
}

int vb_gemm_bf16b_f32(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                      float *y) {
  int np = N / PANEL;
  VB_GEMV_FOR_ROW_BLOCKS(np * PANEL, panels(W, n0 / PANEL, n1 / PANEL, N, K, x, (size_t)K,
                                            sizeof *x, M, bias, y, group_f32));
  return 0;
}

/* ---- the same from plain [N, K] bf16 rows (a bf16 file's weights, used where
 * they are mapped) ----
 *
 * Each thread repacks one panel at a time into the blocked layout, in a buffer
 * of its own that stays in L2 (128 K bytes: 1.3 MB at K = 10240), then runs the
 * panel kernel above over it for all M rows (one 16 x 16 transpose of k-pairs
 * per 16 rows x 32 k; the weight is neither copied whole nor reordered whole per
 * call, as oneDNN's matmul does with plain rows). The repacking is where the
 * weight comes from memory: ~1/5 of the time at 82 rows in a profile, and
 * prefetching the next panel during the products gained nothing measurable. */
TGT_F32B static void pack_panel(const uint16_t *W, int K, int p, uint16_t *dst) {
  int nkb = K / KBLOCK;
  for (int b = 0; b < nkb; b++) {
    uint16_t *B = dst + (size_t)b * BLOCK_ELEMS;
    for (int s = 0; s < PANEL / 16; s++) {
      __m512i r[16]; /* r[i]: row 16 s + i's 16 k-pairs of the block */
      for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_si512(W + (size_t)(p * PANEL + 16 * s + i) * K + (size_t)b * KBLOCK);
      vb_transpose16_epi32(r); /* r[q]: k-pair q of the 16 rows */
      for (int q = 0; q < PAIRS; q++)
        _mm512_store_si512(B + q * PANEL * 2 + s * 32, r[q]);
    }
  }
}

static __thread void *tls_panel;
static __thread size_t tls_panel_cap;

/* Panels [p0, p1) from plain rows for all M activation rows. */
TGT_F32B static int rows_panels(const uint16_t *W, int p0, int p1, int N, int K, const float *x,
                                int M, const float *bias, float *y) {
  uint16_t *P =
      vb_tls_scratch_grow(&tls_panel, &tls_panel_cap, (size_t)PANEL * K * sizeof(uint16_t));
  if (!P) return -1;
  for (int p = p0; p < p1; p++) {
    pack_panel(W, K, p, P);
    panel_all_rows(P, p, N, K, x, (size_t)K, sizeof *x, M, bias, y, group_f32);
  }
  return 0;
}

int vb_gemm_bf16_rows_f32(const uint16_t *W, int N, int K, const float *x, int M, const float *bias,
                          float *y) {
  int np = N / PANEL, fail = 0;
  VB_GEMV_FOR_ROW_BLOCKS(np * PANEL,
                         if (rows_panels(W, n0 / PANEL, n1 / PANEL, N, K, x, M, bias, y) != 0)
                             __atomic_store_n(&fail, 1, __ATOMIC_RELAXED));
  return fail ? vb_error("out of memory for a %d x %d bf16 weight panel", PANEL, K) : 0;
}
#endif /* x86-64 */
