/* Attention on AMX tiles for the vision encoder's frames (bf16 compute): per
 * (frame, head) task, scores = Q K^T and out = P V run on the tile cores
 * (tile_gemm.h) with bf16 operands and f32 sums; softmax stays f32. With
 * ViT-g's 257 x 257 x 88 per head the f32 sgemm path ran at a small fraction
 * of the tiles' rate, and attention is ~3% of the encoder's arithmetic.
 * Operands are padded with zeros to whole 32-blocks (rows, keys, head dims),
 * so padded keys add nothing and padded rows are never copied out.
 *
 * A task (one frame's head) packs its K and V once (AVX-512: K's rows
 * transposed 16 x 16 k-pairs at a time, V's row pairs interleaved; the
 * padding written as zeros, no whole-buffer clears), then runs its queries 32
 * rows at a time: scores, softmax (rounded to bf16 in its last pass), P V,
 * each block's scores (32 x 288 f32 for ViT-g) and probabilities staying in
 * L1/L2 rather than a 288 x 288 score matrix passing through memory three
 * times; the blocks run as a software pipeline (run_pipelined). The output
 * is f32 or bf16 (the ViT's proj reads bf16 in place). */
#include "kernels/attention_amx.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/profile.h"
#include "kernels/tile_gemm.h"
#if defined(__x86_64__)
#include "kernels/transpose512.h"
#endif
#include "runtime/common.h"

#define MAX_TOKENS 1024 /* per sequence: bounds each thread's scratch */

#if defined(__x86_64__)
#include <immintrin.h>
/* AMX CPUs have AVX512-BF16 (and BW): operands are moved and rounded 16 or 32 at a time. */
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static inline __mmask32 mask32(int n) {
  return n >= 32 ? 0xffffffffu : n > 0 ? (1u << n) - 1 : 0;
}

/* The cache lines of rows [0, rows) (ld elements apart, bytes long) fetched
 * ahead: the head's rows are 3 * D apart in the qkv activation, a page or
 * more, where the hardware prefetchers do not follow. */
static inline void prefetch_rows(const void *p, size_t ld_bytes, int rows, size_t bytes) {
  for (int i = 0; i < rows; i++) {
    const char *r = (const char *)p + (size_t)i * ld_bytes;
    for (size_t b = 0; b < bytes; b += 64)
      _mm_prefetch(r + b, _MM_HINT_T0);
    _mm_prefetch(r + bytes - 1, _MM_HINT_T0);
  }
}

/* dst[0..Kp) = bf16(src[0..K) * scale), zero-padded (round to nearest even). */
TGT static void row_bf16(const float *src, int K, int Kp, float scale, uint16_t *dst) {
  __m512 sc = _mm512_set1_ps(scale);
  for (int k = 0; k < Kp; k += 16) {
    __mmask16 m = K - k >= 16 ? 0xffff : K > k ? (__mmask16)((1u << (K - k)) - 1) : 0;
    __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, src + k), sc);
    _mm256_storeu_si256((__m256i *)(dst + k), (__m256i)_mm512_cvtneps_pbh(x));
  }
}

/* Each group of 16 keys, 32 head dims (16 k-pairs) at a time: the keys' pairs
 * are 16 rows of 16 32-bit slots, whose transpose is 16 tile rows. */
TGT void vb_att_pack_keys(const uint16_t *k, size_t ld, int nk, int head_dim, int Np, int Dp,
                          uint16_t *dst) {
  size_t row_bytes = (size_t)head_dim * 2;
  for (int g = 0; g < Np / 16; g++) {
    int next = nk - (g + 1) * 16; /* the next group's rows */
    if (next > 0)
      prefetch_rows(k + (size_t)(g + 1) * 16 * ld, ld * 2, next < 16 ? next : 16, row_bytes);
    for (int c = 0; c < Dp / 32; c++) {
      __mmask32 m = mask32(head_dim - 32 * c);
      __m512i r[16];
      for (int i = 0; i < 16; i++) {
        int n = g * 16 + i;
        r[i] = n < nk ? _mm512_maskz_loadu_epi16(m, k + (size_t)n * ld + 32 * c)
                      : _mm512_setzero_si512();
      }
      vb_transpose16_epi32(r);
      uint16_t *d = dst + (size_t)g * Dp * 16 + (size_t)c * 512;
      for (int j = 0; j < 16; j++)
        _mm512_storeu_si512(d + j * 32, r[j]);
    }
  }
}

/* Each pair of keys (rows 2p, 2p + 1), 32 dims at a time: interleaved, the
 * first 16 dims' pairs are row p of one group, the next 16's of the next. */
TGT void vb_att_pack_values(const uint16_t *v, size_t ld, int nk, int head_dim, int Np, int Dp,
                            uint16_t *dst) {
  __m512i lo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7,
                                38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0),
          hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
  size_t group = (size_t)Np * 16; /* elements per 16-dim group */
  for (int p = 0; p < Np / 2; p++) {
    int n = 2 * p;
    if (p % 4 == 0 && n + 8 < nk) /* 8 rows ahead, 8 at a time */
      prefetch_rows(v + (size_t)(n + 8) * ld, ld * 2, nk - n - 8 < 8 ? nk - n - 8 : 8,
                    (size_t)head_dim * 2);
    for (int c = 0; c < Dp / 32; c++) {
      __mmask32 m = mask32(head_dim - 32 * c);
      __m512i a = n < nk ? _mm512_maskz_loadu_epi16(m, v + (size_t)n * ld + 32 * c)
                         : _mm512_setzero_si512(),
              b = n + 1 < nk ? _mm512_maskz_loadu_epi16(m, v + (size_t)(n + 1) * ld + 32 * c)
                             : _mm512_setzero_si512();
      uint16_t *d = dst + (size_t)(2 * c) * group + (size_t)p * 32;
      _mm512_storeu_si512(d, _mm512_permutex2var_epi16(a, lo, b));
      _mm512_storeu_si512(d + group, _mm512_permutex2var_epi16(a, hi, b));
    }
  }
}

/* Rows [0, rows) of q (ld apart, head_dim wide) into dst [32][Dp], the rest zero. */
TGT static void copy_q(const uint16_t *q, size_t ld, int rows, int head_dim, int Dp,
                       uint16_t *dst) {
  for (int i = 0; i < 32; i++)
    for (int c = 0; c < Dp; c += 32) {
      __m512i x = i < rows ? _mm512_maskz_loadu_epi16(mask32(head_dim - c), q + (size_t)i * ld + c)
                           : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + (size_t)i * Dp + c, x);
    }
}

/* Output rows [0, rows) from o [32][Dp]: f32 copied, or rounded to bf16. */
TGT static void store_out(const float *o, int rows, int head_dim, int Dp, void *out, int out_bf16,
                          size_t ld) {
  for (int i = 0; i < rows; i++) {
    const float *r = o + (size_t)i * Dp;
    if (!out_bf16) {
      memcpy((float *)out + (size_t)i * ld, r, (size_t)head_dim * sizeof(float));
      continue;
    }
    uint16_t *d = (uint16_t *)out + (size_t)i * ld;
    for (int j = 0; j < head_dim; j += 16) {
      __mmask16 m = head_dim - j >= 16 ? 0xffff : (__mmask16)((1u << (head_dim - j)) - 1);
      _mm256_mask_storeu_epi16(d + j, m, (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r + j)));
    }
  }
}
#else
#define TGT
static inline void prefetch_rows(const void *p, size_t ld_bytes, int rows, size_t bytes) {
  (void)p, (void)ld_bytes, (void)rows, (void)bytes;
}
static void row_bf16(const float *src, int K, int Kp, float scale, uint16_t *dst) {
  for (int k = 0; k < Kp; k++)
    dst[k] = k < K ? vb_float_to_bf16(src[k] * scale) : 0;
}
/* no AMX off x86-64: never called */
void vb_att_pack_keys(const uint16_t *k, size_t ld, int nk, int head_dim, int Np, int Dp,
                      uint16_t *dst) {
  (void)k, (void)ld, (void)nk, (void)head_dim, (void)Np, (void)Dp, (void)dst;
}
void vb_att_pack_values(const uint16_t *v, size_t ld, int nk, int head_dim, int Np, int Dp,
                        uint16_t *dst) {
  (void)v, (void)ld, (void)nk, (void)head_dim, (void)Np, (void)Dp, (void)dst;
}
static void copy_q(const uint16_t *q, size_t ld, int rows, int head_dim, int Dp, uint16_t *dst) {
  (void)q, (void)ld, (void)rows, (void)head_dim, (void)Dp, (void)dst;
}
static void store_out(const float *o, int rows, int head_dim, int Dp, void *out, int out_bf16,
                      size_t ld) {
  (void)o, (void)rows, (void)head_dim, (void)Dp, (void)out, (void)out_bf16, (void)ld;
}
#endif

typedef struct {
  uint16_t *qb[2], *pb[2];
  float *s[2], *o[2];
} pipe_bufs;

typedef struct {
  vb_tile_core_fn core, core16; /* core16: a last query block of at most 16 rows */
  const uint16_t *q;            /* the head's queries, rows ldq apart */
  size_t ldq;
  const uint16_t *kp, *vp; /* packed keys and values */
  uint8_t *out;            /* the head's output (f32 or bf16), rows ld_out elements apart */
  size_t ld_out;
  int out_bf16, nq, nk, head_dim, Np, Dp;
} pipe_task;

static int block_rows(const pipe_task *t, int b) {
  int r = t->nq - 32 * b;
  return r < 32 ? r : 32;
}

/* The core for query block b's products: ViT-g's 257 queries end in a block
 * of one row, which the 16-row core does at half the cost. */
static vb_tile_core_fn block_core(const pipe_task *t, int b) {
  return block_rows(t, b) <= 16 && t->core16 ? t->core16 : t->core;
}

/* The query blocks in a software pipeline: step b runs block b's softmax
 * (AVX-512) between the tile products of block b + 1's scores and block
 * b - 1's P V, one product call at a time, so the vector units work while
 * the tile unit is busy (out of order, within the reorder window), and
 * copies out block b - 2's output and fetches block b + 2's queries. */
static void run_pipelined(const pipe_task *t, pipe_bufs *B) {
  int nb = (t->nq + 31) / 32, nsc = t->Np / 32, npv = t->Dp / 32;
  size_t lq = (size_t)t->Dp * 2, lp = (size_t)t->Np * 2;
  size_t kgroup = (size_t)t->Dp * 16, vgroup = (size_t)t->Np * 16;
  size_t out_block = (size_t)32 * t->ld_out * (t->out_bf16 ? 2 : 4); /* bytes per block */
  copy_q(t->q, t->ldq, block_rows(t, 0), t->head_dim, t->Dp, B->qb[0]);
  vb_tile_core_fn core0 = block_core(t, 0);
  for (int j = 0; j < nsc; j++)
    core0((const uint8_t *)B->qb[0], lq, (const uint8_t *)(t->kp + (size_t)2 * j * kgroup),
          (const uint8_t *)(t->kp + (size_t)(2 * j + 1) * kgroup), t->Dp / 32, B->s[0] + 32 * j,
          t->Np, 0);
  if (nb > 1) copy_q(t->q + 32 * t->ldq, t->ldq, block_rows(t, 1), t->head_dim, t->Dp, B->qb[1]);
  for (int b = 0; b <= nb; b++) {
    int sc = b + 1 < nb ? nsc : 0, pv = b >= 1 ? npv : 0, calls = sc + pv;
    int rows = b < nb ? block_rows(t, b) : 0, done = 0;
    float *s = b < nb ? B->s[b & 1] : NULL;
    uint16_t *p = B->pb[b & 1];
    for (int c = 0; c < calls; c++) {
      if (c < sc) {
        int j = c;
        block_core(t, b + 1)((const uint8_t *)B->qb[(b + 1) & 1], lq,
                             (const uint8_t *)(t->kp + (size_t)2 * j * kgroup),
                             (const uint8_t *)(t->kp + (size_t)(2 * j + 1) * kgroup), t->Dp / 32,
                             B->s[(b + 1) & 1] + 32 * j, t->Np, 0);
      } else {
        int d = c - sc;
        block_core(t, b - 1)((const uint8_t *)B->pb[(b - 1) & 1], lp,
                             (const uint8_t *)(t->vp + (size_t)2 * d * vgroup),
                             (const uint8_t *)(t->vp + (size_t)(2 * d + 1) * vgroup), t->Np / 32,
                             B->o[(b - 1) & 1] + 32 * d, t->Dp, 0);
      }
      if (c == 0 && b >= 2)
        store_out(B->o[b & 1], block_rows(t, b - 2), t->head_dim, t->Dp,
                  t->out + (size_t)(b - 2) * out_block, t->out_bf16, t->ld_out);
      if (c == (calls > 1) && b + 2 < nb)
        copy_q(t->q + (size_t)32 * (b + 2) * t->ldq, t->ldq, block_rows(t, b + 2), t->head_dim,
               t->Dp, B->qb[b & 1]);
      for (int upto = rows * (c + 1) / (calls + 1); done < upto; done++)
        vb_softmax_row_bf16(s + (size_t)done * t->Np, t->nk, t->Np, p + (size_t)done * t->Np);
    }
    for (; done < rows; done++)
      vb_softmax_row_bf16(s + (size_t)done * t->Np, t->nk, t->Np, p + (size_t)done * t->Np);
    if (b < nb && rows < 32) memset(p + (size_t)rows * t->Np, 0, (size_t)(32 - rows) * lp);
  }
  int last = nb - 1;
  store_out(B->o[last & 1], block_rows(t, last), t->head_dim, t->Dp,
            t->out + (size_t)last * out_block, t->out_bf16, t->ld_out);
}

static size_t up64(size_t bytes) {
  return (bytes + 63) & ~(size_t)63;
}

/* The entry points: f32 q, k, v (q scaled and rounded here, k and v rounded,
 * each head's into bf16 rows first), or bf16 ones (q already scaled and
 * rounded); f32 or bf16 (out_bf16) output. */
static int attention_amx(int batch, const void *q, int ld_q, const void *k, const void *v,
                         int ld_kv, int in_bf16, void *out, int out_bf16, int ld_o, int nq, int nk,
                         int heads, int head_dim, float scale) {
  if (!vb_tile_kind_usable(VB_TILE_BF16_AMX) || nq > MAX_TOKENS || nk > MAX_TOKENS) return -1;
  int Np = (nk + 31) / 32 * 32, Dp = (head_dim + 31) / 32 * 32;
  size_t b_kv = up64((size_t)Np * Dp * 2), b_q = up64((size_t)32 * Dp * 2),
         b_p = up64((size_t)32 * Np * 2), b_s = up64((size_t)32 * Np * 4),
         b_o = up64((size_t)32 * Dp * 4);
  /* f32 input: the head's rounded q, k, v rows, Dp apart */
  size_t b_stage = in_bf16 ? 0 : up64((size_t)nq * Dp * 2) + 2 * up64((size_t)nk * Dp * 2);
  size_t bytes = 2 * (b_kv + b_q + b_p + b_s + b_o) + b_stage + 64;
  vb_tile_core_fn core = vb_tile_core(VB_TILE_BF16_AMX);
  int fail = 0, prof = vb_prof_on();
  double t_wall = prof ? vb_now_ms() : 0, pack = 0, rest = 0;
#pragma omp parallel reduction(| : fail) reduction(+ : pack, rest)
  {
    static __thread void *tls;
    static __thread size_t tls_cap;
    uint8_t *base = vb_tls_scratch_grow(&tls, &tls_cap, bytes);
    if (!base) fail = 1;
    uint8_t *at = (uint8_t *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
    uint16_t *kp = (uint16_t *)at, *vp = (uint16_t *)(at + b_kv);
    uint8_t *nx = at + 2 * b_kv;
    pipe_bufs bufs;
    for (int i = 0; i < 2; i++) {
      bufs.qb[i] = (uint16_t *)nx, nx += b_q;
      bufs.pb[i] = (uint16_t *)nx, nx += b_p;
      bufs.s[i] = (float *)nx, nx += b_s;
      bufs.o[i] = (float *)nx, nx += b_o;
    }
    uint16_t *sq = in_bf16 ? NULL : (uint16_t *)nx;
    uint16_t *sk = in_bf16 ? NULL : sq + up64((size_t)nq * Dp * 2) / 2;
    uint16_t *sv = in_bf16 ? NULL : sk + up64((size_t)nk * Dp * 2) / 2;
    vb_tile_thread_begin(VB_TILE_BF16_AMX);
    /* frame-major: the two threads mostly work on neighbouring heads of one
     * frame (measured a few % faster than heads-major) */
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
      size_t ldq = (size_t)ld_q, ldkv = (size_t)ld_kv;
      double t0 = prof ? vb_now_ms() : 0;
      if (!in_bf16) {
        for (int i = 0; i < nq; i++)
          row_bf16((const float *)qs + (size_t)i * ldq, head_dim, Dp, scale, sq + (size_t)i * Dp);
        for (int i = 0; i < nk; i++) {
          row_bf16((const float *)ks + (size_t)i * ldkv, head_dim, Dp, 1.0f, sk + (size_t)i * Dp);
          row_bf16((const float *)vs + (size_t)i * ldkv, head_dim, Dp, 1.0f, sv + (size_t)i * Dp);
        }
        qs = (const uint8_t *)sq, ks = (const uint8_t *)sk, vs = (const uint8_t *)sv;
        ldq = ldkv = (size_t)Dp;
      } else { /* the first rows each step below reads (the queries' last) */
        prefetch_rows(ks, ldkv * 2, nk < 16 ? nk : 16, (size_t)head_dim * 2);
        prefetch_rows(vs, ldkv * 2, nk < 8 ? nk : 8, (size_t)head_dim * 2);
        prefetch_rows(qs, ldq * 2, nq < 32 ? nq : 32, (size_t)head_dim * 2);
      }
      vb_att_pack_keys((const uint16_t *)ks, ldkv, nk, head_dim, Np, Dp, kp);
      vb_att_pack_values((const uint16_t *)vs, ldkv, nk, head_dim, Np, Dp, vp);
      double t1 = prof ? vb_now_ms() : 0;
      size_t oes = out_bf16 ? 2 : 4;
      pipe_task t = {.core = core,
                     .core16 = vb_tile_core16(VB_TILE_BF16_AMX),
                     .q = (const uint16_t *)qs,
                     .ldq = ldq,
                     .kp = kp,
                     .vp = vp,
                     .out = (uint8_t *)out + ((size_t)bi * nq * ld_o + (size_t)h * head_dim) * oes,
                     .ld_out = (size_t)ld_o,
                     .out_bf16 = out_bf16,
                     .nq = nq,
                     .nk = nk,
                     .head_dim = head_dim,
                     .Np = Np,
                     .Dp = Dp};
      run_pipelined(&t, &bufs);
      if (prof) pack += t1 - t0, rest += vb_now_ms() - t1;
    }
    vb_tile_thread_end(VB_TILE_BF16_AMX);
  }
  if (prof) {
    double n = omp_get_max_threads(), wall = vb_now_ms() - t_wall;
    /* the products, softmax, query copies and output stores run interleaved:
     * their time is one class, "attention products" */
    vb_prof_add(VB_PROF_ATT_PACK, pack / n);
    vb_prof_add(VB_PROF_ATT_PRODUCT, rest / n);
    vb_prof_add(VB_PROF_ATTENTION, wall - (pack + rest) / n);
  }
  return fail ? vb_error("attention: out of memory") : 0;
}

int vb_attention_batch_amx(int batch, const float *q, int ld_q, const float *k, const float *v,
                           int ld_kv, float *out, int ld_o, int nq, int nk, int heads, int head_dim,
                           float scale) {
  return attention_amx(batch, q, ld_q, k, v, ld_kv, 0, out, 0, ld_o, nq, nk, heads, head_dim,
                       scale);
}

int vb_attention_batch_amx_bf16(int batch, const uint16_t *q, int ld_q, const uint16_t *k,
                                const uint16_t *v, int ld_kv, float *out, int ld_o, int nq, int nk,
                                int heads, int head_dim) {
  return attention_amx(batch, q, ld_q, k, v, ld_kv, 1, out, 0, ld_o, nq, nk, heads, head_dim, 1.0f);
}

int vb_attention_batch_amx_bf16_out(int batch, const uint16_t *q, int ld_q, const uint16_t *k,
                                    const uint16_t *v, int ld_kv, uint16_t *out, int ld_o, int nq,
                                    int nk, int heads, int head_dim) {
  return attention_amx(batch, q, ld_q, k, v, ld_kv, 1, out, 1, ld_o, nq, nk, heads, head_dim, 1.0f);
}
