/* The tile products' driver (tile_gemm.h): weight packing, activation
 * rounding / quantization, cache blocking, threads and the output stage.
 *
 * Blocking (measured on a 2-core Sapphire Rapids VM, see README's
 * Performance): each thread takes panels of Nc output columns at a time; a
 * panel's weights for Kc of K (about 1 MB) stay in L2 while every 32-row block
 * of activations passes by in 512-byte-per-row slices that stay in L1. With a
 * whole-K panel and the activations streamed from L2 the AMX units sat at
 * ~35% of their peak; with this blocking ~45-50%. Partial sums live in a
 * per-thread buffer; the output stage (scales, bias, GELU) runs on each
 * 32-row block as soon as its last K chunk is done, while it is in cache. */
#include "kernels/tile_gemm.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#if defined(__x86_64__)
#include "kernels/gelu512.h"
#include "kernels/transpose512.h"
#endif
#include "kernels/kernels.h"
#include "kernels/profile.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define TGT_512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#endif

/* Sizes (a sweep of 0.5-1.5 MB panels, 2-16 KB chunks, 256-1024 B slices at
 * ViT-g's shapes moved the rate by less than the machine's noise): */
#define PANEL_BYTES (1u << 20) /* one panel's weights for one K chunk: L2-resident */
#define KC_BYTES 4096          /* K chunk, in bytes of one weight column */
#define KK_BYTES 512           /* activation slice per row that stays in L1 */

const char *vb_tile_kind_name(vb_tile_kind k) {
  static const char *const names[VB_TILE_KINDS] = {"amx-bf16", "amx-int8", "avx512-vnni",
                                                   "avx-vnni", "int8-c"};
  return k >= 0 && k < VB_TILE_KINDS ? names[k] : "?";
}

int vb_tile_kind_usable(vb_tile_kind k) {
  const vb_cpu_features *f = vb_cpu();
  switch (k) {
  case VB_TILE_BF16_AMX:
    return f->amx_usable;
  case VB_TILE_I8_AMX:
    return f->amx_usable && f->amx_int8;
  case VB_TILE_I8_AVX512VNNI:
    return f->avx512_vnni && f->avx512bw;
  case VB_TILE_I8_AVXVNNI:
    return f->avx_vnni && f->avx2;
  case VB_TILE_I8_C:
    return 1;
  default:
    return 0;
  }
}

vb_tile_kind vb_tile_i8_best(void) {
  const vb_tile_kind order[] = {VB_TILE_I8_AMX, VB_TILE_I8_AVX512VNNI, VB_TILE_I8_AVXVNNI};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    if (vb_tile_kind_usable(order[i])) return order[i];
  return VB_TILE_I8_C;
}

vb_tile_core_fn vb_tile_core(vb_tile_kind k) {
  return k == VB_TILE_BF16_AMX || k == VB_TILE_I8_AMX ? vb_tile_core_amx(k) : vb_tile_core_vnni(k);
}

int vb_tile_biased(vb_tile_kind k) {
  return k == VB_TILE_I8_AVX512VNNI || k == VB_TILE_I8_AVXVNNI;
}

/* ---- rounding to int8 ---- */

/* One row to int8 with its own scale; biased: stored as q + 128 (q ^ 0x80). */
static float quantize_row_c(const float *x, int K, int Kp, int biased, uint8_t *q) {
  float amax = 0;
  for (int k = 0; k < K; k++)
    amax = fmaxf(amax, fabsf(x[k]));
  float inv = amax > 0 ? 127.0f / amax : 0;
  uint8_t flip = biased ? 0x80 : 0;
  for (int k = 0; k < K; k++) {
    int v = (int)lrintf(x[k] * inv);
    v = v > 127 ? 127 : v < -127 ? -127 : v;
    q[k] = (uint8_t)(int8_t)v ^ flip;
  }
  memset(q + K, flip, (size_t)(Kp - K));
  return amax / 127.0f;
}

#if defined(__x86_64__)
/* The same rounding as quantize_row_c (multiply by the same inverse, round to
 * nearest even, clamp to +-127), sixteen at a time. */
TGT_512 static float quantize_row_avx512(const float *x, int K, int Kp, int biased, uint8_t *q) {
  __m512 mx = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16)
    mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x + k)));
  float amax = _mm512_reduce_max_ps(mx);
  for (; k < K; k++)
    amax = fmaxf(amax, fabsf(x[k]));
  float inv = amax > 0 ? 127.0f / amax : 0;
  __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  __m128i flip = _mm_set1_epi8(biased ? (char)0x80 : 0);
  for (k = 0; k + 16 <= K; k += 16) {
    __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(x + k), vi), lo), hi);
    __m128i b = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));
    _mm_storeu_si128((__m128i *)(q + k), _mm_xor_si128(b, flip));
  }
  uint8_t f = biased ? 0x80 : 0;
  for (; k < K; k++) {
    int v = (int)lrintf(x[k] * inv);
    v = v > 127 ? 127 : v < -127 ? -127 : v;
    q[k] = (uint8_t)(int8_t)v ^ f;
  }
  memset(q + K, f, (size_t)(Kp - K));
  return amax / 127.0f;
}

TGT_512 static inline __m512 widen_bf16(const uint16_t *p, __mmask16 m) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

/* quantize_row_avx512 of a bf16 row (fc2's input: fc1's GELU output), read in
 * place: the same values as widening the row to f32 first. */
TGT_512 static float quantize_row_bf16_avx512(const uint16_t *x, int K, int Kp, int biased,
                                              const float *given_amax, uint8_t *q) {
  float amax;
  if (given_amax) {
    amax = *given_amax;
  } else {
    __m512 mx = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 16) {
      __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
      mx = _mm512_max_ps(mx, _mm512_abs_ps(widen_bf16(x + k, m)));
    }
    amax = _mm512_reduce_max_ps(mx);
  }
  float inv = amax > 0 ? 127.0f / amax : 0;
  __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  __m128i flip = _mm_set1_epi8(biased ? (char)0x80 : 0);
  for (int k = 0; k < K; k += 16) {
    __mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
    __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(widen_bf16(x + k, m), vi), lo), hi);
    __m128i b = _mm_xor_si128(_mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)), flip);
    _mm_mask_storeu_epi8(q + k, m, b);
  }
  memset(q + K, biased ? 0x80 : 0, (size_t)(Kp - K));
  return amax / 127.0f;
}
#endif

/* ---- weights ---- */

static size_t packed_offset(const vb_tile_weight *w, int n, int k) {
  int per = w->is_i8 ? 4 : 2; /* k values per 4-byte slot */
  size_t slot = ((size_t)(n / 16) * (w->Kp / per) + (size_t)(k / per)) * 16 + (n % 16);
  return slot * 4 + (size_t)(k % per) * (w->is_i8 ? 1 : 2);
}

int vb_tile_weight_get(const vb_tile_weight *w, int n, int k) {
  const uint8_t *p = (const uint8_t *)w->data + packed_offset(w, n, k);
  if (w->is_i8) return (int8_t)p[0];
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

static int weight_alloc(vb_tile_weight *w, int N, int K, int is_i8) {
  memset(w, 0, sizeof *w);
  if (N <= 0 || K <= 0) return vb_error("tile weight: bad shape %d x %d", N, K);
  w->N = N, w->K = K, w->is_i8 = is_i8;
  w->Np = (N + 31) / 32 * 32;
  w->Kp = is_i8 ? (K + 63) / 64 * 64 : (K + 31) / 32 * 32;
  size_t bytes = (size_t)w->Np * w->Kp * (is_i8 ? 1 : 2);
  w->data = vb_malloc_aligned(bytes); /* every byte is written by the packing: no clearing pass */
  if (!w->data) return -1;
  if (is_i8) {
    w->scale = vb_calloc((size_t)w->Np, sizeof *w->scale);
    w->colsum = vb_calloc((size_t)w->Np, sizeof *w->colsum);
    if (!w->scale || !w->colsum) {
      vb_tile_weight_free(w);
      return -1;
    }
  }
  return 0;
}

/* A 16-row group's slots (int8 quads or bf16 pairs) from rows[r * S + p],
 * row r's slot p, into the packed group: slot p of the 16 rows is one 64-byte
 * row, dst[p * 16 + r]. A 16 x 16 transpose per 16 slots, not a scattered
 * 4-byte store per slot (the loader's packing time was mostly those). */
#if defined(__x86_64__)
TGT_512 static void put_group_avx512(uint32_t *dst, const uint32_t *rows, int S) {
  for (int p = 0; p < S; p += 16) {
    __m512i r[16];
    for (int i = 0; i < 16; i++)
      r[i] = _mm512_loadu_si512(rows + (size_t)i * S + p);
    vb_transpose16_epi32(r);
    for (int j = 0; j < 16; j++)
      _mm512_stream_si512((void *)(dst + (size_t)(p + j) * 16), r[j]);
  }
}
#endif

static void put_group(uint32_t *dst, const uint32_t *rows, int S) {
#if defined(__x86_64__)
  if (vb_cpu_has_avx512()) {
    put_group_avx512(dst, rows, S); /* S % 16 == 0: Kp is a multiple of 32 (bf16) / 64 (int8) */
    return;
  }
#endif
  for (int r = 0; r < 16; r++)
    for (int p = 0; p < S; p++)
      dst[(size_t)p * 16 + r] = rows[(size_t)r * S + p];
}

/* Int8 row n's padding (q has room for Kp values), column sum and scale. */
static void finish_row_i8(vb_tile_weight *w, int n, int8_t *q, float scale) {
  int32_t sum = 0;
  for (int k = 0; k < w->K; k++)
    sum += q[k];
  memset(q + w->K, 0, (size_t)(w->Kp - w->K));
  w->scale[n] = scale;
  w->colsum[n] = sum;
}

/* Packs the weight by 16-row groups: fill(ctx, n, slots) writes row n's Kp / per slots (0 /
 * -1); rows past N are zeros. */
typedef int (*group_row_fn)(vb_tile_weight *w, int n, void *ctx, float *buf, uint32_t *slots);

static int pack_groups(vb_tile_weight *w, group_row_fn fill, void *ctx) {
  int S = w->Kp / (w->is_i8 ? 4 : 2), groups = w->Np / 16, fail = 0;
  /* error messages are per thread: the first failing row's, for the caller */
  char first_error[512] = "";
#pragma omp parallel reduction(| : fail)
  {
    float *buf = vb_malloc((size_t)w->K * sizeof(float));
    uint32_t *rows = vb_malloc_aligned((size_t)16 * S * sizeof(uint32_t));
    if (!buf || !rows) fail = 1;
#pragma omp for schedule(static)
    for (int g = 0; g < groups; g++) {
      if (!buf || !rows || fail) continue;
      for (int r = 0; r < 16; r++) {
        int n = g * 16 + r;
        uint32_t *slots = rows + (size_t)r * S;
        if (n >= w->N)
          memset(slots, 0, (size_t)S * sizeof(uint32_t));
        else if (fill(w, n, ctx, buf, slots) != 0) {
#pragma omp critical(vb_tile_pack_error)
          if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s", vb_error_message());
          fail = 1;
        }
      }
      if (!fail) put_group((uint32_t *)w->data + (size_t)g * S * 16, rows, S);
    }
#if defined(__x86_64__)
    _mm_sfence(); /* the streaming stores, before another thread reads the weight */
#endif
    free(buf);
    vb_free_aligned(rows);
  }
  if (fail && first_error[0]) return vb_error("%s", first_error);
  return fail ? vb_error("tile weight: out of memory") : 0;
}

float vb_tile_quantize_row(const float *x, int K, int8_t *q) {
#if defined(__x86_64__)
  if (vb_cpu_has_avx512()) return quantize_row_avx512(x, K, K, 0, (uint8_t *)q);
#endif
  return quantize_row_c(x, K, K, 0, (uint8_t *)q);
}

static void row_to_bf16(const float *x, int K, int Kp, uint16_t *d);

typedef struct {
  vb_tile_row_fn row;
  void *ctx;
  const int8_t *q;
  const float *scale;
} pack_src;

static int fill_from_f32(vb_tile_weight *w, int n, void *ctx, float *buf, uint32_t *slots) {
  const pack_src *src = ctx;
  if (src->row(src->ctx, n, buf) != 0) return -1;
  if (w->is_i8) {
    int8_t *q = (int8_t *)slots;
    finish_row_i8(w, n, q, vb_tile_quantize_row(buf, w->K, q));
  } else {
    /* not vb_f32_to_bf16_rows: its OpenMP region, even with if(0) and nested in the
     * packing's, cost more than the conversion (bf16 packing took 3-5x int8's) */
    row_to_bf16(buf, w->K, w->Kp, (uint16_t *)slots);
  }
  return 0;
}

static int fill_from_i8(vb_tile_weight *w, int n, void *ctx, float *buf, uint32_t *slots) {
  const pack_src *src = ctx;
  (void)buf;
  memcpy(slots, src->q + (size_t)n * w->K, (size_t)w->K);
  finish_row_i8(w, n, (int8_t *)slots, src->scale[n]);
  return 0;
}

int vb_tile_weight_pack(vb_tile_weight *w, int N, int K, int is_i8, vb_tile_row_fn row, void *ctx) {
  if (weight_alloc(w, N, K, is_i8) != 0) return -1;
  pack_src src = {.row = row, .ctx = ctx};
  if (pack_groups(w, fill_from_f32, &src) != 0) {
    vb_tile_weight_free(w);
    return -1;
  }
  return 0;
}

int vb_tile_weight_pack_i8(vb_tile_weight *w, int N, int K, const int8_t *q, const float *scale) {
  if (weight_alloc(w, N, K, 1) != 0) return -1;
  pack_src src = {.q = q, .scale = scale};
  if (pack_groups(w, fill_from_i8, &src) != 0) {
    vb_tile_weight_free(w);
    return -1;
  }
  return 0;
}

void vb_tile_weight_free(vb_tile_weight *w) {
  vb_free_aligned(w->data);
  free(w->scale);
  free(w->colsum);
  memset(w, 0, sizeof *w);
}

/* ---- activations ---- */

size_t vb_tile_row_stride(size_t bytes) {
  /* rows an even number of 64-byte lines apart share few L1 sets (at 4 KB
   * multiples all 32 rows of a block share one 12-way set per line, and a
   * block's slice no longer stays in L1): an odd number of lines spreads them */
  size_t lines = (bytes + 63) / 64;
  return (lines | 1) * 64;
}

/* Row m of the input as f32 (a bf16 input widened into buf). */
static const float *input_row(const vb_tile_io *io, int m, int K, float *buf) {
  int ld = io->ldx ? io->ldx : K;
  if (io->x) return io->x + (size_t)m * ld;
  const uint16_t *r = io->x_bf16 + (size_t)m * ld;
  for (int k = 0; k < K; k++)
    buf[k] = vb_bf16_to_float(r[k]);
  return buf;
}

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
to_bf16_avx512(const float *t, int n, uint16_t *d) {
  int j = 0;
  for (; j + 16 <= n; j += 16)
    _mm256_storeu_si256((__m256i *)(d + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(t + j)));
  for (; j < n; j++)
    d[j] = vb_float_to_bf16(t[j]);
}
#endif

/* f32 row -> bf16, zero-padded to Kp (round to nearest even). */
static void row_to_bf16(const float *x, int K, int Kp, uint16_t *d) {
#if defined(__x86_64__)
  if (vb_cpu()->avx512_bf16) {
    to_bf16_avx512(x, K, d);
    memset(d + K, 0, (size_t)(Kp - K) * 2);
    return;
  }
#endif
  for (int k = 0; k < K; k++)
    d[k] = vb_float_to_bf16(x[k]);
  memset(d + K, 0, (size_t)(Kp - K) * 2);
}

/* The input -> the core's activation rows [Mp, Kp] (and per-row scales). An
 * f32 input with io->ln_w is layer-normed row by row on the way (the normed
 * row stays in L1 between the norm and the rounding). */
static int prepare_activations(vb_tile_kind kind, const vb_tile_io *io, int M, int K, int Mp,
                               int Kp, size_t lda, uint8_t *a, float *sx) {
  if (kind == VB_TILE_BF16_AMX && io->x && !io->ln_w) {
    vb_f32_to_bf16_rows(io->x, M, K, (uint16_t *)a, (int)(lda / 2)); /* rows K apart here */
    memset(a + (size_t)M * lda, 0, (size_t)(Mp - M) * lda);
    return 0;
  }
  int biased = vb_tile_biased(kind), bf16 = kind == VB_TILE_BF16_AMX;
  int avx = vb_cpu_has_avx512(), fail = 0;
  int need_buf = io->x ? io->ln_w != NULL : !bf16 && !avx;
#pragma omp parallel reduction(| : fail) if ((size_t)M * K > 65536)
  {
    float *buf = need_buf ? vb_malloc((size_t)K * sizeof(float)) : NULL;
    if (need_buf && !buf) fail = 1;
#pragma omp for schedule(static)
    for (int m = 0; m < M; m++) {
      if (need_buf && !buf) continue;
      if (bf16 && io->x_bf16) { /* a bf16 input that cannot be read in place: copied, padded */
        uint16_t *d = (uint16_t *)(a + (size_t)m * lda);
        memcpy(d, io->x_bf16 + (size_t)m * (io->ldx ? io->ldx : K), (size_t)K * 2);
        memset(d + K, 0, (size_t)(Kp - K) * 2);
        continue;
      }
      const float *x;
      if (io->x && io->ln_w) {
        vb_layernorm_row(io->x + (size_t)m * K, buf, K, io->ln_w, io->ln_b, io->ln_eps);
        x = buf;
      } else if (io->x) {
        x = io->x + (size_t)m * K;
      } else {
#if defined(__x86_64__)
        if (avx) {
          sx[m] = quantize_row_bf16_avx512(io->x_bf16 + (size_t)m * (io->ldx ? io->ldx : K), K, Kp,
                                           biased, io->x_amax ? io->x_amax + m : NULL,
                                           a + (size_t)m * lda);
          continue;
        }
#endif
        x = input_row(io, m, K, buf);
      }
      if (bf16) {
        row_to_bf16(x, K, Kp, (uint16_t *)(a + (size_t)m * lda));
        continue;
      }
#if defined(__x86_64__)
      if (avx) {
        sx[m] = quantize_row_avx512(x, K, Kp, biased, a + (size_t)m * lda);
        continue;
      }
#endif
      (void)avx;
      sx[m] = quantize_row_c(x, K, Kp, biased, a + (size_t)m * lda);
    }
    free(buf);
  }
  if (bf16) {
    memset(a + (size_t)M * lda, 0, (size_t)(Mp - M) * lda);
  } else {
    for (int m = M; m < Mp; m++)
      memset(a + (size_t)m * lda, biased ? 0x80 : 0, (size_t)Kp);
    for (int m = M; m < Mp; m++)
      sx[m] = 0;
  }
  return fail ? -1 : 0;
}

/* ---- output stage ---- */

typedef struct {
  vb_tile_kind kind;
  const vb_tile_weight *w;
  const float *bias, *sx;
  const vb_tile_io *io;
  int M;
} out_stage;

#define MAX_NC 1024 /* panel width cap: one row of a panel's results fits a stack buffer */

/* y_amax[m] = max(y_amax[m], v) for v >= 0: as integers, non-negative floats
 * order as their values; rows are shared by the threads' column panels. */
static void row_amax_update(float *y_amax, int m, float v) {
  uint32_t want, cur;
  memcpy(&want, &v, 4);
  uint32_t *slot = (uint32_t *)(y_amax + m);
  cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
  while (want > cur &&
         !__atomic_compare_exchange_n(slot, &cur, want, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

#if defined(__x86_64__)
/* output_block's arithmetic sixteen columns at a time, in the same order (a
 * multiply, then an add: no fused multiply-add, so the values are the C
 * loop's), in one pass: each vector goes from the partial sums through bias,
 * GELU and the column scale to the output while it is in registers (a pass
 * through a row buffer with GELU between cost ~30% more). A partial last
 * vector takes vb_gelu_erf_serial's scalar tail, so the values are its. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void
output_block_avx512(const out_stage *o, int m0, int n0, int nn, const void *c, int ldc) {
  const vb_tile_weight *w = o->w;
  const vb_tile_io *io = o->io;
  int i8 = o->kind != VB_TILE_BF16_AMX, biased = vb_tile_biased(o->kind);
  int gelu = io->act == VB_TILE_ACT_GELU_ERF, bf16_out = io->y_bf16 != NULL;
  __m512 cs = _mm512_set1_ps(io->col_scale);
  for (int r = 0; r < VB_TILE_MB && m0 + r < o->M; r++) {
    size_t off = (size_t)(m0 + r) * io->ldy + n0;
    __m512 s = _mm512_set1_ps(i8 ? o->sx[m0 + r] : 0.0f);
    /* |bf16| orders as its bits without the sign: the row max from the stored values */
    __m256i bmax = _mm256_setzero_si256();
    for (int j = 0; j < nn; j += 16) {
      __mmask16 m = nn - j >= 16 ? 0xffff : (__mmask16)((1u << (nn - j)) - 1);
      __m512 v, b = o->bias ? _mm512_maskz_loadu_ps(m, o->bias + n0 + j) : _mm512_setzero_ps();
      if (!i8) {
        v = _mm512_maskz_loadu_ps(m, (const float *)c + (size_t)r * ldc + j);
      } else {
        __m512i a = _mm512_maskz_loadu_epi32(m, (const int32_t *)c + (size_t)r * ldc + j);
        if (biased)
          a = _mm512_sub_epi32(
              a, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, w->colsum + n0 + j), 7));
        __m512 sc = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, w->scale + n0 + j));
        v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), sc);
      }
      v = _mm512_add_ps(v, b);
      if (gelu && m == 0xffff) {
        v = vb_gelu512(v);
      } else if (gelu) {
        _Alignas(64) float t[16];
        _mm512_store_ps(t, v);
        vb_gelu_erf_serial(t, (size_t)(nn - j));
        v = _mm512_maskz_load_ps(m, t);
      }
      if (io->scale_cols > n0 + j) { /* q's columns: times the attention scale */
        int rem = io->scale_cols - (n0 + j);
        __mmask16 sm = rem >= 16 ? 0xffff : (__mmask16)((1u << rem) - 1);
        v = _mm512_mask_mul_ps(v, sm, v, cs);
      }
      if (bf16_out) {
        __m256i hb = (__m256i)_mm512_cvtneps_pbh(v);
        uint16_t *dst = io->y_bf16 + off + j;
        if (io->stream_out && m == 0xffff && !((uintptr_t)dst & 31))
          _mm256_stream_si256((__m256i *)dst, hb);
        else
          _mm256_mask_storeu_epi16(dst, m, hb);
        if (io->y_amax)
          bmax = _mm256_max_epu16(
              bmax, _mm256_and_si256(_mm256_maskz_mov_epi16(m, hb), _mm256_set1_epi16(0x7fff)));
      } else if (io->residual)
        _mm512_mask_storeu_ps(io->y + off + j, m,
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m, io->y + off + j), v));
      else
        _mm512_mask_storeu_ps(io->y + off + j, m, v);
    }
    if (bf16_out && io->y_amax) {
      _Alignas(32) uint16_t lanes[16];
      _mm256_store_si256((__m256i *)lanes, bmax);
      uint16_t hi = 0;
      for (int l = 0; l < 16; l++)
        hi = lanes[l] > hi ? lanes[l] : hi;
      uint32_t bits = (uint32_t)hi << 16;
      float f;
      memcpy(&f, &bits, 4);
      row_amax_update(io->y_amax, m0 + r, f);
    }
  }
  if (bf16_out && io->stream_out) _mm_sfence(); /* streamed stores before other threads read */
}
#endif

/* Rows m0.. (up to 32, < M) and columns [n0, n1) of the result, from the
 * partial sums c (row stride ldc, column n0 first): scales and bias, then the
 * activation, then into the output (f32, f32 added to it, or bf16). */
static void output_block(const out_stage *o, int m0, int n0, int n1, const void *c, int ldc,
                         double *gelu_ms) {
  const vb_tile_weight *w = o->w;
  const vb_tile_io *io = o->io;
  int nn = (n1 < w->N ? n1 : w->N) - n0;
  if (nn <= 0) return;
#if defined(__x86_64__)
  if (vb_cpu()->avx512_bf16) {
    output_block_avx512(o, m0, n0, nn, c, ldc); /* GELU inside: no separate time */
    return;
  }
#endif
  int i8 = o->kind != VB_TILE_BF16_AMX, biased = vb_tile_biased(o->kind);
  float t[MAX_NC];
  for (int r = 0; r < VB_TILE_MB && m0 + r < o->M; r++) {
    if (!i8) {
      const float *a = (const float *)c + (size_t)r * ldc;
      for (int j = 0; j < nn; j++)
        t[j] = a[j] + (o->bias ? o->bias[n0 + j] : 0.0f);
    } else {
      const int32_t *a = (const int32_t *)c + (size_t)r * ldc;
      float s = o->sx[m0 + r];
      for (int j = 0; j < nn; j++) {
        int32_t v = a[j] - (biased ? 128 * w->colsum[n0 + j] : 0);
        float sc = s * w->scale[n0 + j];
        t[j] = (float)v * sc + (o->bias ? o->bias[n0 + j] : 0.0f);
      }
    }
    if (io->act == VB_TILE_ACT_GELU_ERF) {
      double g0 = gelu_ms ? vb_now_ms() : 0;
      vb_gelu_erf_serial(t, (size_t)nn);
      if (gelu_ms) *gelu_ms += vb_now_ms() - g0;
    }
    for (int j = 0; j < nn && n0 + j < io->scale_cols; j++)
      t[j] *= io->col_scale;
    size_t off = (size_t)(m0 + r) * io->ldy + n0;
    if (io->y_bf16) {
      for (int j = 0; j < nn; j++)
        io->y_bf16[off + j] = vb_float_to_bf16(t[j]);
      if (io->y_amax) { /* only when asked: the row's max |y| over the stored values */
        float amax = 0;
        for (int j = 0; j < nn; j++)
          amax = fmaxf(amax, fabsf(vb_bf16_to_float(io->y_bf16[off + j])));
        row_amax_update(io->y_amax, m0 + r, amax);
      }
    } else if (io->residual) {
      for (int j = 0; j < nn; j++)
        io->y[off + j] += t[j];
    } else {
      memcpy(io->y + off, t, (size_t)nn * sizeof(float));
    }
  }
}

/* ---- the product ---- */

static __thread void *tls_a;
static __thread size_t tls_a_cap;

int vb_tile_linear(vb_tile_kind kind, const vb_tile_weight *w, const float *x, int M,
                   const float *bias, vb_tile_act act, float *y, int ldy) {
  vb_tile_io io = {.x = x, .y = y, .ldy = ldy, .act = act};
  return vb_tile_linear_io(kind, w, M, bias, &io);
}

int vb_tile_linear_io(vb_tile_kind kind, const vb_tile_weight *w, int M, const float *bias,
                      const vb_tile_io *io) {
  if (!vb_tile_kind_usable(kind))
    return vb_error("%s products do not run on this CPU", vb_tile_kind_name(kind));
  if ((kind == VB_TILE_BF16_AMX) == (w->is_i8 != 0))
    return vb_error("tile product: weight type mismatch");
  if (!io->x == !io->x_bf16 || !io->y == !io->y_bf16 || (io->x && io->ldx && io->ldx != w->K) ||
      (io->ln_w && !io->x) || (io->y_amax && !io->y_bf16) || (io->x_amax && !io->x_bf16))
    return vb_error("tile product: bad input / output description");
  if (M <= 0) return 0;
  int elem = w->is_i8 ? 1 : 2, Kp = w->Kp, Np = w->Np;
  int Mp = (M + VB_TILE_MB - 1) / VB_TILE_MB * VB_TILE_MB;
  size_t lda = vb_tile_row_stride((size_t)Kp * elem);
  /* a bf16 input whose rows are already padded is read in place, all but its
   * last partial block of rows, which is copied (the core reads whole blocks) */
  int ldx = io->ldx ? io->ldx : w->K;
  int in_place = kind == VB_TILE_BF16_AMX && io->x_bf16 && w->K == Kp && ldx >= Kp;
  size_t lda_main = in_place ? (size_t)ldx * 2 : lda;
  int M_full = in_place ? M / VB_TILE_MB * VB_TILE_MB : 0;
  size_t a_rows = in_place ? (size_t)VB_TILE_MB : (size_t)Mp;
  size_t a_bytes = a_rows * lda, sx_off = (a_bytes + 63) & ~(size_t)63;
  uint8_t *scratch = vb_tls_scratch_grow(&tls_a, &tls_a_cap, sx_off + (size_t)Mp * sizeof(float));
  if (!scratch) return -1;
  int prof = vb_prof_on();
  double t_prep = prof ? vb_now_ms() : 0;
  float *sx = (float *)(scratch + sx_off);
  if (in_place) {
    vb_tile_io tail = *io;
    tail.x_bf16 = io->x_bf16 + (size_t)M_full * ldx;
    if (M > M_full &&
        prepare_activations(kind, &tail, M - M_full, w->K, VB_TILE_MB, Kp, lda, scratch, sx) != 0)
      return vb_error("tile product: out of memory");
  } else if (prepare_activations(kind, io, M, w->K, Mp, Kp, lda, scratch, sx) != 0) {
    return vb_error("tile product: out of memory");
  }
  double t_run = 0, busy = 0, out_ms = 0, gelu = 0;
  if (prof) {
    t_run = vb_now_ms();
    vb_prof_add(VB_PROF_ACT_PREP, t_run - t_prep);
  }

  /* K in chunks of about KC_BYTES per column, equal and whole 64-byte steps */
  size_t kbytes = (size_t)Kp * elem;
  int ksteps = (int)(kbytes / 64);
  int nkc = (int)((kbytes + KC_BYTES - 1) / KC_BYTES);
  int kc_steps = (ksteps + nkc - 1) / nkc;
  int kk_steps = KK_BYTES / 64;
  int nthr = omp_get_max_threads();
  /* panel width: what fits in L2 for one K chunk, but at least two panels per thread */
  int nc = (int)(PANEL_BYTES / ((size_t)kc_steps * 64)) / 32 * 32;
  int share = (Np / 32 + 2 * nthr - 1) / (2 * nthr) * 32;
  if (nc > share) nc = share;
  if (nc > MAX_NC) nc = MAX_NC;
  if (nc < 32) nc = 32;
  int npanels = (Np + nc - 1) / nc;
  /* Work items: panels x row ranges. A layer with few panels (proj: 4, fc2:
   * 5-6 at M = 2056) left one of two threads waiting for the other's last
   * panel (the profile's thread idle, 10-15% of the encoder); splitting the
   * rows gives each thread about eight items to balance with, each range
   * re-reading its panel's weights (at least 256 rows per range keeps that
   * below a tenth of the activations' traffic). */
  int mblocks = Mp / VB_TILE_MB;
  int msplit = (8 * nthr + npanels - 1) / npanels;
  if (msplit > mblocks / 8) msplit = mblocks / 8;
  if (msplit < 1) msplit = 1;
  int mb_per = (mblocks + msplit - 1) / msplit;
  msplit = (mblocks + mb_per - 1) / mb_per;
  int items = npanels * msplit;
  int acc_rows = nkc > 1 ? Mp : VB_TILE_MB;
  int ldc = (int)(vb_tile_row_stride((size_t)nc * 4) / 4);
  size_t acc_bytes = (size_t)acc_rows * ldc * 4;
  vb_tile_core_fn core = vb_tile_core(kind);
  size_t group_bytes = (size_t)Kp * 16 * elem; /* one 16-column group, all of K */
  out_stage o = {kind, w, bias, sx, io, M};
  const uint8_t *a_main = in_place ? (const uint8_t *)io->x_bf16 : scratch;
  int fail = 0;
#pragma omp parallel reduction(| : fail) reduction(+ : busy, out_ms, gelu)
  {
    double t_thr = prof ? vb_now_ms() : 0, t_out = 0, t_gelu = 0;
    static __thread void *tls_acc;
    static __thread size_t tls_acc_cap;
    uint8_t *acc = vb_tls_scratch_grow(&tls_acc, &tls_acc_cap, acc_bytes);
    if (!acc) fail = 1;
    vb_tile_thread_begin(kind);
#pragma omp for schedule(dynamic, 1) nowait
    for (int it = 0; it < items; it++) {
      if (!acc) continue;
      int p = it / msplit, mr = it % msplit;
      int n0 = p * nc, n1 = n0 + nc < Np ? n0 + nc : Np;
      int mlo = mr * mb_per * VB_TILE_MB, mhi = mlo + mb_per * VB_TILE_MB;
      if (mhi > Mp) mhi = Mp;
      for (int kc = 0; kc < nkc; kc++) {
        int s0 = kc * kc_steps, s1 = s0 + kc_steps < ksteps ? s0 + kc_steps : ksteps;
        for (int m0 = mlo; m0 < mhi; m0 += VB_TILE_MB) {
          uint8_t *cb = acc + (size_t)(nkc > 1 ? m0 : 0) * ldc * 4;
          int tail = in_place && m0 >= M_full;
          const uint8_t *arow = tail ? scratch : a_main + (size_t)m0 * lda_main;
          size_t la = tail ? lda : lda_main;
          for (int ss = s0; ss < s1; ss += kk_steps) {
            int se = ss + kk_steps < s1 ? ss + kk_steps : s1;
            const uint8_t *ab = arow + (size_t)ss * 64;
            for (int n = n0; n < n1; n += VB_TILE_NB) {
              const uint8_t *b0 =
                  (const uint8_t *)w->data + (size_t)(n / 16) * group_bytes + (size_t)ss * 1024;
              core(ab, la, b0, b0 + group_bytes, se - ss, cb + (size_t)(n - n0) * 4, ldc, ss > 0);
            }
          }
          if (kc == nkc - 1) {
            if (!prof) {
              output_block(&o, m0, n0, n1, cb, ldc, NULL);
              continue;
            }
            double o0 = vb_now_ms();
            output_block(&o, m0, n0, n1, cb, ldc, &t_gelu);
            t_out += vb_now_ms() - o0;
          }
        }
      }
    }
    vb_tile_thread_end(kind);
    if (prof) {
      busy += vb_now_ms() - t_thr;
      out_ms += t_out;
      gelu += t_gelu;
    }
  }
  if (prof) {
    double wall = vb_now_ms() - t_run, n = nthr;
    vb_prof_add(vb_prof_product(), (busy - out_ms) / n);
    vb_prof_add(VB_PROF_OUTPUT, (out_ms - gelu) / n);
    vb_prof_add(VB_PROF_GELU, gelu / n);
    vb_prof_add(VB_PROF_IDLE, wall - busy / n);
  }
  return fail ? vb_error("tile product: out of memory") : 0;
}

/* ---- register peaks ---- */

static double now_ms(void) {
  return vb_now_ms();
}

double vb_tile_peak(vb_tile_kind k, double ms) {
  if (!vb_tile_kind_usable(k) || k == VB_TILE_I8_C) return 0;
  double ops = 0, t0 = vb_now_ms();
#pragma omp parallel reduction(+ : ops)
  {
    double taken;
    if (k == VB_TILE_BF16_AMX || k == VB_TILE_I8_AMX)
      ops += vb_tile_peak_amx(k, ms, &taken);
    else
      ops += vb_tile_peak_vnni(k, ms, now_ms);
  }
  double s = (vb_now_ms() - t0) / 1e3;
  return ops / s / 1e12;
}
