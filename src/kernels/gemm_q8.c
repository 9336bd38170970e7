/* Q8_0 linear layers with bf16 compute: the weight stays in its 8-bit blocks,
 * where it lies (usually the mapped GGUF file) or, on CPUs with AVX512-VNNI,
 * repacked once at load into the q8x16 layout (q8_vnni.c; same size, and the
 * loader then drops the file's pages). A file written with `vblip convert
 * --packed` holds the language model's matrices in that layout already
 * (vb_linear.w_packed): the mapped bytes are the packed copy, nothing is
 * allocated or repacked, and the file's pages stay.
 *  - M <= 15 rows (decoding, beams): the weight streamed once for all rows,
 *    vb_gemv_q8x16 (activations quantized to 16 bits) or vb_gemv_q8
 *    (activations in f32).
 *  - more rows (prompt prefill, vision encoder, Q-Former) on AMX CPUs with a
 *    packed copy (q8x16, and Q4_0 / Q4_K's q4x16 / q4kx16): run_amx below,
 *    the copy dequantized chunk by chunk straight into AMX bf16 tiles and
 *    multiplied by vblip's AMX core, no oneDNN call.
 *  - on AVX512-VNNI CPUs where bf16 products are slow (gemv_for_prefill): the
 *    GEMVs above for any number of rows.
 *  - otherwise (no AMX, VBLIP_NO_AMX=1 or VBLIP_Q8_AMX=0, no packed copy):
 *    tiles of weight rows (about 1 MB of bf16) handed out to the threads; each
 *    thread dequantizes
 *    its tile to bf16 and multiplies it at once, while it is in its core's
 *    cache, with a single-threaded oneDNN bf16 matmul that writes its columns
 *    of y in place (strided destination). From the q8x16 copy on AVX512-BF16
 *    CPUs the tile is written in oneDNN's blocked layout (BA16a64b2a, as
 *    gemv_bf16_blocked.c), which the matmul reads without copying it again.
 *    Without oneDNN bf16 on this CPU: tiles in f32 through vb_gemm (sgemm).
 * The matmul primitives depend only on the shape, so one small cache serves
 * every layer. */
#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#include "kernels/gemm_internal.h"
#include "kernels/kernels.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#ifndef TILE_BYTES
#define TILE_BYTES ((size_t)1 << 20)
#endif
#define PRIM_CACHE 16

typedef struct {
  int amx;       /* tiles from packed straight into AMX bf16 tiles (run_amx) */
  int onednn_ok; /* oneDNN runs bf16 matmuls here */
  void *packed;  /* the q8x16 copy where AVX512-VNNI runs, else NULL */
  int mapped;    /* packed is the layer's w_packed (a packed file's mapping), not owned */
  int blocked;   /* tiles from packed go to oneDNN in its blocked layout */
  int gemv_many; /* many rows through the packed copy's GEMV as well (gemv_for_prefill) */
} q8_backend;

/* Primitives by shape, shared by all layers and threads; an entry in use
 * (ref > 0) is never evicted. */
static struct {
  pthread_mutex_t mu;
  struct {
    int M, N, K, ldy, bias, blocked, ref;
    dnnl_primitive_t prim;
  } e[PRIM_CACHE];
  int next;
} g_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

static __thread void *tls_x, *tls_tile, *tls_tile_f32;
static __thread size_t tls_x_cap, tls_tile_cap, tls_tile_f32_cap;
#if defined(__x86_64__)
static __thread void *tls_out; /* blocked tiles' output */
static __thread size_t tls_out_cap;
#endif

/* Descriptors of y[M, 0..N) (row stride ldy) = x[M, K] W_tile + b, the tile
 * given as plain bf16 [N, K] rows or in the blocked layout. */
static void descs(int M, int N, int K, int ldy, int blocked, dnnl_memory_desc_t *src,
                  dnnl_memory_desc_t *wei, dnnl_memory_desc_t *bias, dnnl_memory_desc_t *dst) {
  dnnl_dims_t sd = {M, K}, wd = {K, N}, ws = {1, K}, bd = {1, N}, dd = {M, N}, ds = {ldy, 1};
  dnnl_memory_desc_init_by_tag(src, 2, sd, dnnl_bf16, dnnl_ab);
  if (blocked)
    dnnl_memory_desc_init_by_tag(wei, 2, wd, dnnl_bf16, dnnl_BA16a64b2a);
  else
    dnnl_memory_desc_init_by_strides(wei, 2, wd, dnnl_bf16, ws);
  dnnl_memory_desc_init_by_tag(bias, 2, bd, dnnl_f32, dnnl_ab);
  dnnl_memory_desc_init_by_strides(dst, 2, dd, dnnl_f32, ds);
}

static dnnl_primitive_t make_prim(int M, int N, int K, int ldy, int has_bias, int blocked) {
  dnnl_engine_t eng = vb_dnnl_engine();
  if (!eng) return NULL;
  dnnl_memory_desc_t src, wei, bias, dst;
  descs(M, N, K, ldy, blocked, &src, &wei, &bias, &dst);
  dnnl_matmul_desc_t mm;
  if (dnnl_matmul_desc_init(&mm, &src, &wei, has_bias ? &bias : NULL, &dst) != dnnl_success)
    return NULL;
  /* Tiles run one per thread at once, each with its own scratchpad
   * (user-managed): with the library's shared default, two threads running
   * brgemm tiles (the blocked ones) corrupted each other's output (measured:
   * 52 x 1024 x 2560, 2 threads; correct on 1). */
  dnnl_primitive_attr_t attr = NULL;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = dnnl_primitive_desc_create(&pd, &mm, attr, eng, NULL);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return NULL;
  if (blocked && vb_dnnl_is_reference(pd)) { /* the plain tile is far faster then */
    dnnl_primitive_desc_destroy(pd);
    return NULL;
  }
  dnnl_primitive_t p = NULL;
  if (dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
  dnnl_primitive_desc_destroy(pd);
  return p;
}

/* The primitive for a shape, created on first use; *slot is its cache entry
 * (to release) or -1 for an uncached one (every entry busy: destroy after use). */
static dnnl_primitive_t acquire_prim(int M, int N, int K, int ldy, int has_bias, int blocked,
                                     int *slot) {
  pthread_mutex_lock(&g_cache.mu);
  dnnl_primitive_t p = NULL;
  *slot = -1;
  for (int i = 0; i < PRIM_CACHE && !p; i++)
    if (g_cache.e[i].prim && g_cache.e[i].M == M && g_cache.e[i].N == N && g_cache.e[i].K == K &&
        g_cache.e[i].ldy == ldy && g_cache.e[i].bias == has_bias && g_cache.e[i].blocked == blocked)
      p = g_cache.e[i].prim, *slot = i;
  if (!p && (p = make_prim(M, N, K, ldy, has_bias, blocked)) != NULL) {
    for (int tries = 0; tries < PRIM_CACHE; tries++) {
      int s = g_cache.next;
      g_cache.next = (g_cache.next + 1) % PRIM_CACHE;
      if (g_cache.e[s].ref > 0) continue;
      if (g_cache.e[s].prim) dnnl_primitive_destroy(g_cache.e[s].prim);
      g_cache.e[s].M = M, g_cache.e[s].N = N, g_cache.e[s].K = K, g_cache.e[s].ldy = ldy;
      g_cache.e[s].bias = has_bias, g_cache.e[s].blocked = blocked, g_cache.e[s].prim = p;
      g_cache.e[s].ref = 0;
      *slot = s;
      break;
    }
  }
  if (*slot >= 0) g_cache.e[*slot].ref++;
  pthread_mutex_unlock(&g_cache.mu);
  return p;
}

static void release_prim(dnnl_primitive_t p, int slot) {
  if (slot < 0) {
    dnnl_primitive_destroy(p);
    return;
  }
  pthread_mutex_lock(&g_cache.mu);
  g_cache.e[slot].ref--;
  pthread_mutex_unlock(&g_cache.mu);
}

/* One tile's product on the calling thread (inside the tile loop's parallel
 * region oneDNN runs single-threaded). Primitives are immutable and each
 * thread passes its own scratchpad (make_prim, vb_dnnl_matmul), so threads
 * run them concurrently. */
static int matmul_tile(const uint16_t *xs, int M, const uint16_t *w, int N, int K,
                       const float *bias, float *y, int ldy, int blocked) {
  int slot;
  dnnl_primitive_t p = acquire_prim(M, N, K, ldy, bias != NULL, blocked, &slot);
  if (!p) return -1;
  dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
  descs(M, N, K, ldy, blocked, &src_md, &wei_md, &bias_md, &dst_md);
  int rc = vb_dnnl_matmul(p, &src_md, xs, &wei_md, w, &bias_md, bias, &dst_md, y);
  release_prim(p, slot);
  return rc;
}

/* Weight rows per tile: about TILE_BYTES of bf16 (a core's L2), a multiple of
 * `unit` (16, or 64 for blocked tiles, whose N is then a multiple of 64), at
 * least one unit. */
static int tile_rows(int N, int K, int unit) {
  size_t r = TILE_BYTES / ((size_t)K * sizeof(uint16_t));
  int nt = r < (size_t)unit ? unit : r > (size_t)N ? N : (int)(r - r % (size_t)unit);
  return nt > N ? N : nt;
}

/* Rows [n0, n1) of the weight as bf16 (d16) or f32 (d32): from the q8x16 copy
 * when there is one (tiles start at multiples of 16 rows, as it needs), else
 * from the Q8_0 rows where they lie. */
static void dequant_rows(const vb_linear *l, const void *packed, int n0, int n1, uint16_t *d16,
                         float *d32) {
#if defined(__x86_64__) /* packed copies exist only there (AVX512-VNNI) */
  if (packed) {
    if (l->dtype == VB_DT_Q4_K && d16)
      vb_q4kx16_rows_to_bf16(packed, l->in, n0, n1, d16);
    else if (l->dtype == VB_DT_Q4_K)
      vb_q4kx16_rows_to_f32(packed, l->in, n0, n1, d32);
    else if (l->dtype == VB_DT_Q4_0 && d16)
      vb_q4x16_rows_to_bf16(packed, l->in, n0, n1, d16);
    else if (l->dtype == VB_DT_Q4_0)
      vb_q4x16_rows_to_f32(packed, l->in, n0, n1, d32);
    else if (d16)
      vb_q8x16_rows_to_bf16(packed, l->in, n0, n1, d16);
    else
      vb_q8x16_rows_to_f32(packed, l->in, n0, n1, d32);
    return;
  }
#else
  (void)packed;
#endif
  if (l->dtype == VB_DT_Q4_K && d16)
    vb_q4k_rows_to_bf16(l->w, l->in, n0, n1, d16);
  else if (l->dtype == VB_DT_Q4_K)
    vb_q4k_rows_to_f32(l->w, l->in, n0, n1, d32);
  else if (l->dtype == VB_DT_Q4_0 && d16)
    vb_q4_rows_to_bf16(l->w, l->in, n0, n1, d16);
  else if (l->dtype == VB_DT_Q4_0)
    vb_q4_rows_to_f32(l->w, l->in, n0, n1, d32);
  else if (d16)
    vb_q8_rows_to_bf16(l->w, l->in, n0, n1, d16);
  else
    vb_q8_rows_to_f32(l->w, l->in, n0, n1, d32);
}

/* y = x W^T + b tile by tile, the tiles handed out dynamically to the threads
 * (one parallel region per call: a descheduled thread on a busy machine delays
 * one tile, not every tile). Each thread dequantizes its tile into its own
 * scratch and multiplies it at once, while it is in that core's cache: bf16
 * through oneDNN where it runs, else (or for a shape it refuses) f32 sgemm. */
static int run_tiles(const vb_linear *l, const q8_backend *be, const float *x, int M, float *y) {
  int use_onednn = be->onednn_ok, blocked = be->blocked;
  const void *packed = be->packed;
  int N = l->out, K = l->in, NT = tile_rows(N, K, blocked ? 64 : 16), ntiles = (N + NT - 1) / NT;
  uint16_t *xs = NULL;
  if (use_onednn) {
    xs = vb_tls_scratch_grow(&tls_x, &tls_x_cap, (size_t)M * K * sizeof(uint16_t));
    if (!xs) return -1;
    vb_f32_to_bf16_rows(x, M, K, xs, K);
  }
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
  for (int i = 0; i < ntiles; i++) {
    int n0 = i * NT, nt = N - n0 < NT ? N - n0 : NT;
    const float *bias = l->bias ? l->bias + n0 : NULL;
    if (use_onednn) {
      uint16_t *t =
          vb_tls_scratch_grow(&tls_tile, &tls_tile_cap, (size_t)NT * K * sizeof(uint16_t));
      if (!t) {
        failed = 1;
        continue;
      }
      if (!blocked) {
        dequant_rows(l, packed, n0, n0 + nt, t, NULL);
        if (matmul_tile(xs, M, t, nt, K, bias, y + n0, N, 0) == 0) continue;
      }
#if defined(__x86_64__) /* blocked tiles come from a packed copy */
      else {
        /* oneDNN runs blocked weights with a JIT kernel only into a
         * contiguous destination: the tile's [M, nt], then copied to y */
        float *o = vb_tls_scratch_grow(&tls_out, &tls_out_cap, (size_t)M * NT * sizeof(float));
        vb_q8x16_panels_to_bf16b(packed, K, n0 / 64, (n0 + nt) / 64, t);
        if (o && matmul_tile(xs, M, t, nt, K, bias, o, nt, 1) == 0) {
          for (int m = 0; m < M; m++)
            memcpy(y + (size_t)m * N + n0, o + (size_t)m * nt, (size_t)nt * sizeof(float));
          continue;
        }
      }
#endif
    }
    float *tf =
        vb_tls_scratch_grow(&tls_tile_f32, &tls_tile_f32_cap, (size_t)NT * K * sizeof(float));
    if (!tf) {
      failed = 1;
      continue;
    }
    dequant_rows(l, packed, n0, n0 + nt, NULL, tf);
    if (bias)
      for (int m = 0; m < M; m++)
        memcpy(y + (size_t)m * N + n0, bias, nt * sizeof(float));
    vb_gemm(M, nt, K, x, K, tf, K, 1, 1.0f, bias ? 1.0f : 0.0f, y + n0, N);
  }
  /* the error is set here: the workers' own error slots are not the caller's */
  return failed ? vb_error("out of memory for the scratch tiles of a %dx%d Q8_0 product", N, K) : 0;
}

#if defined(__x86_64__)
/* ---- the AMX path: dequantized straight into B tiles, vblip's own core ----
 *
 * Measured first (2560 x 10240 and 10240 x 2560, 16-512 rows, 2 threads):
 * the oneDNN tiles above spent 90-170 us per 1 MB tile dequantizing and
 * 20-1300 us in the matmul call, so at prompt sizes (16-52 rows) the
 * dequantization was over half of the time. Here:
 *  - a unit of `ug` groups of 16 output channels (16 * ug columns of y) goes
 *    to one thread (dynamic schedule);
 *  - per chunk of KC values of k the thread dequantizes its unit's weights
 *    straight into the AMX B-tile layout (vb_q8x16_to_tiles and the Q4
 *    variants: one VCVTNE2PS2BF16 per two k-pair rows, no row layout, no
 *    reorder), a chunk small enough to stay in the core's L2;
 *  - the chunk is multiplied at once by every 32-row block of the activations
 *    (bf16, rounded once per call, zero rows up to a multiple of 16) with the
 *    bf16 AMX core of tile_gemm.h (a last block of 16 rows on vb_tile_core16),
 *    accumulating 32 x 32 f32 blocks of the unit's output in a per-thread
 *    buffer;
 *  - after the last chunk the buffer plus bias goes to y.
 * Wider units for more rows (the activations are re-read once per unit). */

#ifndef VB_Q_AMX_KC
#define VB_Q_AMX_KC 1024
#endif

static __thread void *tls_b, *tls_c;
static __thread size_t tls_b_cap, tls_c_cap;

typedef void (*to_tiles_fn)(const void *P, int K, int g0, int g1, int k0, int k1, uint16_t *dst);

static int run_amx(const vb_linear *l, const q8_backend *be, const float *x, int M, float *y) {
  int N = l->out, K = l->in, Mp = (M + 15) & ~15, ng = (N + 15) / 16;
  to_tiles_fn fn = l->dtype == VB_DT_Q4_K   ? vb_q4kx16_to_tiles
                   : l->dtype == VB_DT_Q4_0 ? vb_q4x16_to_tiles
                                            : vb_q8x16_to_tiles;
  int ug = Mp <= 64 ? 4 : Mp <= 128 ? 8 : 16, nthr = omp_get_max_threads();
  while (ug > 2 && (ng + ug - 1) / ug < 4 * nthr) /* enough units to share out */
    ug /= 2;
  int nu = (ng + ug - 1) / ug, KC = K <= VB_Q_AMX_KC + VB_Q_AMX_KC / 2 ? K : VB_Q_AMX_KC;
  size_t lda = vb_tile_row_stride((size_t)K * sizeof(uint16_t)), ldx = lda / sizeof(uint16_t);
  uint16_t *xs = vb_tls_scratch_grow(&tls_x, &tls_x_cap, (size_t)Mp * lda);
  if (!xs) return vb_error("out of memory for the activations of a %dx%d product", N, K);
  vb_f32_to_bf16_rows(x, M, K, xs, (int)ldx);
  if (Mp > M) memset(xs + (size_t)M * ldx, 0, (size_t)(Mp - M) * lda);
  /* a last block of 16 rows (33 rows: 48 rows of products, not 64) on the 16-row core */
  vb_tile_core_fn core = vb_tile_core(VB_TILE_BF16_AMX), core16 = vb_tile_core16(VB_TILE_BF16_AMX);
  const void *P = be->packed;
  int ldc = ug * 16, failed = 0;
#pragma omp parallel reduction(| : failed)
  {
    uint16_t *B = vb_tls_scratch_grow(&tls_b, &tls_b_cap, (size_t)ldc * KC * sizeof(uint16_t));
    float *C = vb_tls_scratch_grow(&tls_c, &tls_c_cap, (size_t)Mp * ldc * sizeof(float));
    int ok = B && C;
    if (!ok) failed = 1;
    if (ok) vb_tile_thread_begin(VB_TILE_BF16_AMX);
#pragma omp for schedule(dynamic, 1)
    for (int u = 0; u < nu; u++) {
      if (!ok) continue;
      int g0 = u * ug, g1 = g0 + ug < ng ? g0 + ug : ng, pairs = (g1 - g0 + 1) / 2;
      for (int k0 = 0; k0 < K; k0 += KC) {
        int k1 = K - k0 < KC ? K : k0 + KC;
        size_t gl = (size_t)(k1 - k0) * 16;
        fn(P, K, g0, g1, k0, k1, B);
        if ((g1 - g0) & 1) /* the odd group's partner: zero columns */
          memset(B + (size_t)(g1 - g0) * gl, 0, gl * sizeof(uint16_t));
        for (int mb = 0; mb < Mp; mb += 32)
          for (int c = 0; c < pairs; c++)
            (Mp - mb >= 32 ? core : core16)((const uint8_t *)(xs + (size_t)mb * ldx + k0), lda,
                                            (const uint8_t *)(B + (size_t)(2 * c) * gl),
                                            (const uint8_t *)(B + (size_t)(2 * c + 1) * gl),
                                            (k1 - k0) / 32, C + (size_t)mb * ldc + 32 * c, ldc,
                                            k0 > 0);
      }
      int n0 = g0 * 16, nn = N - n0 < ldc ? N - n0 : ldc;
      const float *bias = l->bias ? l->bias + n0 : NULL;
      for (int m = 0; m < M; m++) {
        const float *c = C + (size_t)m * ldc;
        float *o = y + (size_t)m * N + n0;
        if (bias)
          for (int j = 0; j < nn; j++)
            o[j] = c[j] + bias[j];
        else
          memcpy(o, c, (size_t)nn * sizeof(float));
      }
    }
    if (ok) vb_tile_thread_end(VB_TILE_BF16_AMX);
  }
  return failed ? vb_error("out of memory for the scratch tiles of a %dx%d product", N, K) : 0;
}

#endif /* x86-64 */

/* Whether products of many rows (prompt prefill) take the packed copy's
 * VNNI GEMV too, 4 rows per pass over each panel while it sits in L2, rather
 * than bf16 tiles through oneDNN: where bf16 products are slow
 * (vb_cpu_bf16_products_fast). On a Xeon whose AMX the hypervisor hides
 * (VDPBF16PS at half the FMA flops, VPDPBUSD at 4x VDPBF16PS's instruction
 * rate) the GEMV ran OPT-2.7b's q8_0 layers at 16-200 rows 1.9-5x faster than
 * the tiles, and with the decoding path's 16-bit activations, not bf16 ones.
 * VBLIP_Q_PREFILL=tiles|gemv picks one for comparisons. */
static int gemv_for_prefill(void) {
  const char *e = getenv("VBLIP_Q_PREFILL");
  if (e && strcmp(e, "tiles") == 0) return 0;
  if (e && strcmp(e, "gemv") == 0) return 1;
  return !vb_cpu_bf16_products_fast();
}

int vb_linear_prepare_q8(vb_linear *l) {
  if (l->backend) return 0;
  if (l->in % VB_Q8_BLOCK != 0)
    return vb_error("linear %dx%d: %s rows must be a multiple of 32 values", l->out, l->in,
                    vb_dtype_name(l->dtype));
  if (l->dtype == VB_DT_Q4_K && l->in % VB_Q4K_BLOCK != 0)
    return vb_error("linear %dx%d: Q4_K rows must be a multiple of 256 values", l->out, l->in);
  q8_backend *b = vb_calloc(1, sizeof *b);
  if (!b) return -1;
  /* probe once whether oneDNN runs bf16 matmuls on this CPU */
  int slot;
  dnnl_primitive_t p = acquire_prim(VB_Q8_GEMV_MAX_M + 1, tile_rows(l->out, l->in, 16), l->in,
                                    l->out, l->bias != NULL, 0, &slot);
  b->onednn_ok = p != NULL;
  if (p) release_prim(p, slot);
  if (l->dtype == VB_DT_Q8_0 && l->w_packed && !vb_q8x16_supported()) {
    free(b); /* the loader unpacks such a weight into rows (vb_q8x16_unpack) first */
    return vb_error("a packed %dx%d Q8_0 weight needs AVX512-VNNI; unpack it first", l->out, l->in);
  }
  if (l->dtype == VB_DT_Q8_0 && l->w_packed && ((uintptr_t)l->w_packed & 63)) {
    free(b);
    return vb_error("a packed %dx%d Q8_0 weight is not 64-byte aligned", l->out, l->in);
  }
#if defined(__x86_64__) /* the packed copies are for AVX512-VNNI */
  if (l->dtype == VB_DT_Q4_0 && vb_q4x16_supported() && !getenv("VBLIP_Q4_ROWS")) {
    b->packed = vb_malloc_aligned(vb_q4x16_bytes(l->out, l->in));
    if (!b->packed) {
      free(b);
      return vb_error("out of memory repacking a %dx%d Q4_0 weight", l->out, l->in);
    }
    vb_q4x16_pack(l->w, l->out, l->in, b->packed);
  }
  if (l->dtype == VB_DT_Q4_K && vb_q4x16_supported() && !getenv("VBLIP_Q4_ROWS")) {
    b->packed = vb_malloc_aligned(vb_q4kx16_bytes(l->out, l->in));
    if (!b->packed) {
      free(b);
      return vb_error("out of memory repacking a %dx%d Q4_K weight", l->out, l->in);
    }
    vb_q4kx16_pack(l->w, l->out, l->in, b->packed);
  }
  if (l->dtype == VB_DT_Q8_0 && vb_q8x16_supported()) {
    if (l->w_packed) { /* stored packed (vblip convert --packed): used where it lies */
      b->packed = (void *)l->w_packed;
      b->mapped = 1;
    } else {
      b->packed = vb_malloc_aligned(vb_q8x16_bytes(l->out, l->in));
      if (!b->packed) {
        free(b);
        return vb_error("out of memory repacking a %dx%d Q8_0 weight", l->out, l->in);
      }
      vb_q8x16_pack(l->w, l->out, l->in, b->packed);
    }
    /* blocked tiles: whole panels, so N a multiple of 64, and a matmul that
     * takes them with a JIT kernel */
    if (b->onednn_ok && vb_bf16b_supported() && vb_bf16b_fits(l->out, l->in)) {
      int nt = tile_rows(l->out, l->in, 64);
      p = acquire_prim(VB_Q8_GEMV_MAX_M + 1, nt, l->in, nt, l->bias != NULL, 1, &slot);
      b->blocked = p != NULL;
      if (p) release_prim(p, slot);
    }
  }
#endif
  /* AMX bf16 on the packed copies (not while VBLIP_Q8_AMX=0: the oneDNN
   * tiles, for comparison) */
  const char *e = getenv("VBLIP_Q8_AMX");
  b->amx = b->packed && vb_tile_kind_usable(VB_TILE_BF16_AMX) && vb_q_tiles_supported() &&
           !(e && strcmp(e, "0") == 0);
  b->gemv_many = b->packed && !b->amx && gemv_for_prefill();
  l->backend = b;
  return 0;
}

void vb_linear_release_q8(vb_linear *l) {
  q8_backend *b = l->backend;
  if (b && !b->mapped) vb_free_aligned(b->packed);
  free(b);
  l->backend = NULL;
}

int vb_linear_reads_stored_q8(const vb_linear *l) {
  const q8_backend *b = l->backend;
  return !b || !b->packed;
}

const void *vb_linear_q8_packed(const vb_linear *l) {
  const q8_backend *b = l->dtype == VB_DT_Q8_0 ? l->backend : NULL;
  return b ? b->packed : NULL;
}

const char *vb_linear_q8_prefill_path(const vb_linear *l) {
  const q8_backend *b = l->backend;
  return !b             ? NULL
         : b->amx       ? "amx-bf16"
         : b->gemv_many ? "vnni-gemv"
         : b->onednn_ok ? "onednn-bf16"
                        : "f32";
}

#if defined(__x86_64__)
static int q4k_amx_wanted(void) {
  const char *e = getenv("VBLIP_Q4_AMX");
  return e && strcmp(e, "1") == 0 && vb_q4k_amx_usable();
}
#endif

int vb_linear_forward_q8(const vb_linear *l, const float *x, int M, float *y) {
  const q8_backend *b = l->backend;
  if (!b) return vb_error("a %dx%d Q8_0 layer used before vb_linear_prepare", l->out, l->in);
  if (M <= 0) return 0;
  if (M > VB_Q8_GEMV_MAX_M && !b->gemv_many) {
    /* Q4_K on AMX-INT8 on request, from the rows (VBLIP_Q4_ROWS=1 where
     * VNNI repacks them): measured slower than the bf16 tiles here
     * (bench/prefill_q4.c, docs/performance.md) */
#if defined(__x86_64__)
    if (l->dtype == VB_DT_Q4_K && !b->packed && q4k_amx_wanted())
      return vb_gemm_q4k_amx(l->w, l->out, l->in, x, M, l->bias, y);
    if (b->amx) return run_amx(l, b, x, M, y);
#endif
    return run_tiles(l, b, x, M, y);
  }
#if defined(__x86_64__) /* the packed copies' kernels (AVX512-VNNI) */
  if (l->dtype == VB_DT_Q4_0 && b->packed)
    return vb_gemv_q4x16(b->packed, l->out, l->in, x, M, l->bias, y);
  if (l->dtype == VB_DT_Q4_K && b->packed)
    return vb_gemv_q4kx16(b->packed, l->out, l->in, x, M, l->bias, y);
  if (b->packed) return vb_gemv_q8x16(b->packed, l->out, l->in, x, M, l->bias, y);
#endif
  if (l->dtype == VB_DT_Q4_0) return vb_gemv_q4(l->w, l->out, l->in, x, M, l->bias, y);
  if (l->dtype == VB_DT_Q4_K) return vb_gemv_q4k(l->w, l->out, l->in, x, M, l->bias, y);
  vb_gemv_q8(l->w, l->out, l->in, x, M, l->bias, y);
  return 0;
}
