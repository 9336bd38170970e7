/* Attention on AMX tiles for the vision encoder's frames (bf16 compute): per
 * (frame, head) task, scores = Q K^T and out = P V run on the tile cores
 * (tile_gemm.h) with bf16 operands and f32 sums; softmax stays f32. With
 * ViT-g's 257 x 257 x 88 per head the f32 sgemm path ran at a small fraction
 * of the tiles' rate, and attention is ~3% of the encoder's arithmetic.
 * Operands are padded with zeros to whole 32-blocks (rows, keys, head dims),
 * so padded keys add nothing and padded rows are never copied out. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/profile.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"

#define MAX_TOKENS 1024 /* per sequence: bounds each thread's scratch (~6 MB) */

#if defined(__x86_64__)
#include <immintrin.h>
/* AMX CPUs have AVX512-BF16: operands are rounded 16 at a time. */
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

/* dst[0..Kp) = bf16(src[0..K) * scale), zero-padded (round to nearest even). */
TGT static void row_bf16(const float *src, int K, int Kp, float scale, uint16_t *dst) {
  __m512 sc = _mm512_set1_ps(scale);
  for (int k = 0; k < Kp; k += 16) {
    __mmask16 m = K - k >= 16 ? 0xffff : K > k ? (__mmask16)((1u << (K - k)) - 1) : 0;
    __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + k), sc);
    _mm256_storeu_si256((__m256i *)(dst + k), (__m256i)_mm512_cvtneps_pbh(x));
  }
}

/* Row r of an f32 or bf16 (in_bf16) input, ld elements apart, as bf16
 * zero-padded to Kp; a bf16 row is taken as it is (already rounded). */
static void row_in(const void *src, int in_bf16, size_t r, size_t ld, int K, int Kp,
                   uint16_t *dst) {
  if (!in_bf16) {
    row_bf16((const float *)src + r * ld, K, Kp, 1.0f, dst);
    return;
  }
  memcpy(dst, (const uint16_t *)src + r * ld, (size_t)K * 2);
  memset(dst + K, 0, (size_t)(Kp - K) * 2);
}

/* Rows [n, k] (ld elements apart) into the tile layout [Np/16][Kp/2][16][2]:
 * each k-pair of row n is one 32-bit slot, 16 slots per 64-byte tile row. */
TGT static void pack_rows(const void *src, int in_bf16, size_t ld, int N, int K, int Np, int Kp,
                          uint16_t *dst) {
  memset(dst, 0, (size_t)Np * Kp * sizeof *dst);
  uint16_t tmp[MAX_TOKENS] __attribute__((aligned(64)));
  for (int n = 0; n < N; n++) {
    row_in(src, in_bf16, (size_t)n, ld, K, Kp, tmp);
    uint32_t *g = (uint32_t *)(dst + (size_t)(n / 16) * Kp * 16) + n % 16;
    const uint32_t *pairs = (const uint32_t *)tmp;
    for (int p = 0; p < Kp / 2; p++)
      g[(size_t)p * 16] = pairs[p];
  }
}

/* The transpose: element (n, k) = src[k * ld + n]; rows k, k+1 give one
 * k-pair, 16 columns n of which fill a tile row: two rounded rows interleaved. */
TGT static void pack_cols(const void *src, int in_bf16, size_t ld, int N, int K, int Np, int Kp,
                          uint16_t *dst) {
  memset(dst, 0, (size_t)Np * Kp * sizeof *dst);
  uint16_t r0[MAX_TOKENS] __attribute__((aligned(64))), r1[MAX_TOKENS] __attribute__((aligned(64)));
  for (int k = 0; k < K; k += 2) {
    row_in(src, in_bf16, (size_t)k, ld, N, Np, r0);
    if (k + 1 < K)
      row_in(src, in_bf16, (size_t)(k + 1), ld, N, Np, r1);
    else
      memset(r1, 0, (size_t)Np * 2);
    for (int n = 0; n < Np; n += 16) {
      __m256i a = _mm256_load_si256((const __m256i *)(r0 + n)),
              b = _mm256_load_si256((const __m256i *)(r1 + n));
      __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
      uint16_t *g = dst + (size_t)(n / 16) * Kp * 16 + (size_t)(k / 2) * 32;
      _mm256_storeu_si256((__m256i *)g, _mm256_permute2x128_si256(lo, hi, 0x20));
      _mm256_storeu_si256((__m256i *)(g + 16), _mm256_permute2x128_si256(lo, hi, 0x31));
    }
  }
}
#else
#define TGT
static void row_bf16(const float *src, int K, int Kp, float scale, uint16_t *dst) {
  for (int k = 0; k < Kp; k++)
    dst[k] = k < K ? vb_float_to_bf16(src[k] * scale) : 0;
}
static void pack_rows(const void *src, int in_bf16, size_t ld, int N, int K, int Np, int Kp,
                      uint16_t *dst) {
  (void)src, (void)in_bf16, (void)ld, (void)N, (void)K, (void)Np, (void)Kp,
      (void)dst; /* no AMX off x86-64 */
}
static void pack_cols(const void *src, int in_bf16, size_t ld, int N, int K, int Np, int Kp,
                      uint16_t *dst) {
  (void)src, (void)in_bf16, (void)ld, (void)N, (void)K, (void)Np, (void)Kp, (void)dst;
}
#endif

/* C[Mp, Np] (ldc floats) = A[Mp, Kp] (bf16 rows) x packed B (Np columns). */
static void tile_product(vb_tile_core_fn core, const uint16_t *a, int Mp, int Kp, const uint16_t *b,
                         int Np, float *c, int ldc) {
  size_t lda = (size_t)Kp * 2, group = (size_t)Kp * 16; /* elements per 16-column group */
  for (int m = 0; m < Mp; m += VB_TILE_MB)
    for (int n = 0; n < Np; n += VB_TILE_NB)
      core((const uint8_t *)(a + (size_t)m * Kp), lda,
           (const uint8_t *)(b + (size_t)(n / 16) * group),
           (const uint8_t *)(b + (size_t)(n / 16 + 1) * group), Kp / 32, c + (size_t)m * ldc + n,
           ldc, 0);
}

/* Both entry points: f32 q, k, v (q scaled here), or bf16 ones (q already
 * scaled and rounded). */
static int attention_amx(int batch, const void *q, int ld_q, const void *k, const void *v,
                         int ld_kv, int in_bf16, float *out, int ld_o, int nq, int nk, int heads,
                         int head_dim, float scale) {
  if (!vb_tile_kind_usable(VB_TILE_BF16_AMX) || nq > MAX_TOKENS || nk > MAX_TOKENS) return -1;
  int Mp = (nq + 31) / 32 * 32, Np = (nk + 31) / 32 * 32, Dp = (head_dim + 31) / 32 * 32;
  size_t n_q = (size_t)Mp * Dp, n_k = (size_t)Np * Dp, n_s = (size_t)Mp * Np, n_o = (size_t)Mp * Dp;
  size_t bytes = (n_q + n_k + n_k) * 2 + n_s * 2 + (n_s + n_o) * 4 + 6 * 64;
  vb_tile_core_fn core = vb_tile_core(VB_TILE_BF16_AMX);
  int fail = 0, prof = vb_prof_on();
  double t_wall = prof ? vb_now_ms() : 0, pack = 0, prod = 0, soft = 0;
#pragma omp parallel reduction(| : fail) reduction(+ : pack, prod, soft)
  {
    static __thread void *tls;
    static __thread size_t tls_cap;
    uint8_t *base = vb_scratch_grow(&tls, &tls_cap, bytes);
    if (!base) fail = 1;
    uint16_t *qb = (uint16_t *)base, *kp = qb + n_q, *vp = kp + n_k, *pb = vp + n_k;
    float *s = (float *)(((uintptr_t)(pb + n_s) + 63) & ~(uintptr_t)63);
    float *o = (float *)(((uintptr_t)(s + n_s) + 63) & ~(uintptr_t)63);
    if (base) {
      memset(qb, 0, n_q * 2);
      memset(pb, 0, n_s * 2); /* padded rows and key columns stay zero */
    }
    vb_tile_thread_begin(VB_TILE_BF16_AMX);
#pragma omp for schedule(dynamic, 1)
    for (int task = 0; task < batch * heads; task++) {
      if (!base) continue;
      int bi = task / heads, h = task % heads;
      size_t es = in_bf16 ? 2 : 4; /* element size */
      const uint8_t *qs = (const uint8_t *)q + ((size_t)bi * nq * ld_q + (size_t)h * head_dim) * es;
      const uint8_t *ks =
          (const uint8_t *)k + ((size_t)bi * nk * ld_kv + (size_t)h * head_dim) * es;
      const uint8_t *vs =
          (const uint8_t *)v + ((size_t)bi * nk * ld_kv + (size_t)h * head_dim) * es;
      double t0 = prof ? vb_now_ms() : 0;
      for (int i = 0; i < nq; i++) {
        if (in_bf16)
          memcpy(qb + (size_t)i * Dp, (const uint16_t *)qs + (size_t)i * ld_q,
                 (size_t)head_dim * 2);
        else
          row_bf16((const float *)qs + (size_t)i * ld_q, head_dim, Dp, scale, qb + (size_t)i * Dp);
      }
      pack_rows(ks, in_bf16, (size_t)ld_kv, nk, head_dim, Np, Dp, kp);
      pack_cols(vs, in_bf16, (size_t)ld_kv, head_dim, nk, Dp, Np, vp);
      double t1 = prof ? vb_now_ms() : 0;
      tile_product(core, qb, Mp, Dp, kp, Np, s, Np);
      double t2 = prof ? vb_now_ms() : 0;
      for (int i = 0; i < nq; i++) {
        float *row = s + (size_t)i * Np;
        vb_softmax_row(row, nk);
        row_bf16(row, nk, Np, 1.0f, pb + (size_t)i * Np);
      }
      double t3 = prof ? vb_now_ms() : 0;
      tile_product(core, pb, Mp, Np, vp, Dp, o, Dp);
      double t4 = prof ? vb_now_ms() : 0;
      float *os = out + (size_t)bi * nq * ld_o + (size_t)h * head_dim;
      for (int i = 0; i < nq; i++)
        memcpy(os + (size_t)i * ld_o, o + (size_t)i * Dp, (size_t)head_dim * sizeof(float));
      if (prof) {
        pack += (t1 - t0) + (vb_now_ms() - t4);
        prod += (t2 - t1) + (t4 - t3);
        soft += t3 - t2;
      }
    }
    vb_tile_thread_end(VB_TILE_BF16_AMX);
  }
  if (prof) {
    double n = omp_get_max_threads(), wall = vb_now_ms() - t_wall;
    vb_prof_add(VB_PROF_ATT_PACK, pack / n);
    vb_prof_add(VB_PROF_ATT_PRODUCT, prod / n);
    vb_prof_add(VB_PROF_ATT_SOFTMAX, soft / n);
    vb_prof_add(VB_PROF_ATTENTION, wall - (pack + prod + soft) / n);
  }
  return fail ? vb_error("attention: out of memory") : 0;
}

int vb_attention_batch_amx(int batch, const float *q, int ld_q, const float *k, const float *v,
                           int ld_kv, float *out, int ld_o, int nq, int nk, int heads, int head_dim,
                           float scale) {
  return attention_amx(batch, q, ld_q, k, v, ld_kv, 0, out, ld_o, nq, nk, heads, head_dim, scale);
}

int vb_attention_batch_amx_bf16(int batch, const uint16_t *q, int ld_q, const uint16_t *k,
                                const uint16_t *v, int ld_kv, float *out, int ld_o, int nq, int nk,
                                int heads, int head_dim) {
  return attention_amx(batch, q, ld_q, k, v, ld_kv, 1, out, ld_o, nq, nk, heads, head_dim, 1.0f);
}
