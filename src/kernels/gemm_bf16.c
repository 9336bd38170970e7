/* bf16 linear layers: the weight rounded to bfloat16 once at prepare time,
 * activations rounded per call, float32 accumulation and output.
 *  - M >= 16 rows (vision encoder, Q-Former, prompt prefill): a oneDNN bf16
 *    matmul primitive (AMX where the kernel granted it, else AVX512-BF16),
 *    cached per row count; packed layers keep the weight in the primitive's
 *    blocked layout, reordered once.
 *  - fewer rows (decoding): vb_gemv_bf16, which streams the weight once.
 *  - on AVX512-BF16 CPUs, a weight converted at load (stored f32 / f16) for a
 *    layer not packed for oneDNN alone goes straight into the blocked layout
 *    that both oneDNN and vb_gemv_bf16b read (gemv_bf16_blocked.c), so prefill
 *    products skip oneDNN's per-call copy of the weight.
 *  - no oneDNN bf16 on this CPU: blocks of weight rows widened to f32, sgemm.
 *  - where bf16 products are slower than f32 ones (vb_cpu_bf16_products_fast),
 *    many rows on a blocked weight: vb_gemm_bf16b_f32, the weight widened to
 *    f32 in registers, f32 FMAs (1.35-1.6x oneDNN's bf16 matmul there). */
#include <dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/bf16_kernels.h"
#include "kernels/gemm_internal.h"
#include "kernels/kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

#define PRIM_CACHE 6
#define PACK_REF_M 512

typedef struct {
  uint16_t *w_owned;   /* bf16 [N, K] we converted (NULL when the stored one is used) */
  const uint16_t *w;   /* plain bf16 [N, K], NULL when packed */
  void *packed;        /* weight in packed_md's layout */
  dnnl_memory_desc_t packed_md;
  int blocked;         /* packed is vb_bf16b's layout: the small-M kernel reads it too */
  int onednn_ok;       /* oneDNN can run bf16 matmuls here */
  int f32_many;        /* many rows through f32 FMAs (bf16 slow here): blocked weight */
  int f32_many_rows;   /* ... or plain bf16 rows used in place, repacked panel by panel */
  pthread_mutex_t mu;
  struct {
    int M;
    dnnl_primitive_t prim;
  } cache[PRIM_CACHE];
  int next;
} bf16_backend;

static __thread void *tls_src;
static __thread size_t tls_src_cap;




static uint16_t *src_scratch(size_t n) {
  return vb_tls_scratch_grow(&tls_src, &tls_src_cap, n * sizeof(uint16_t));
}

/* Descriptors of y[M,N] = x[M,K] W + b, W [K,N] given as a plain [N,K] view or
 * wei (NULL: the plain view; otherwise e.g. "any" or the packed layout). */
static dnnl_primitive_desc_t make_pd(int M, int N, int K, int has_bias, const dnnl_memory_desc_t *wei) {
  dnnl_engine_t eng = vb_dnnl_engine();
  if (!eng) return NULL;
  dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
  dnnl_dims_t sd = {M, K}, wd = {K, N}, ws = {1, K}, bd = {1, N}, dd = {M, N};
  if (dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_bf16, dnnl_ab) != dnnl_success) return NULL;
  if (wei) wei_md = *wei;
  else if (dnnl_memory_desc_init_by_strides(&wei_md, 2, wd, dnnl_bf16, ws) != dnnl_success) return NULL;
  if (dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_f32, dnnl_ab) != dnnl_success) return NULL;
  if (dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab) != dnnl_success) return NULL;
  dnnl_matmul_desc_t mm;
  if (dnnl_matmul_desc_init(&mm, &src_md, &wei_md, has_bias ? &bias_md : NULL, &dst_md) != dnnl_success)
    return NULL;
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_primitive_desc_create(&pd, &mm, NULL, eng, NULL) != dnnl_success) return NULL;
  return pd;
}

static dnnl_primitive_t make_prim(dnnl_primitive_desc_t pd) {
  dnnl_primitive_t p = NULL;
  if (!pd) return NULL;
  if (dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
  dnnl_primitive_desc_destroy(pd);
  return p;
}

/* Converts a non-bf16 stored weight to bf16 into dst, as plain [N, K] rows or
 * in the blocked layout, rows in parallel. -1 when a row cannot be converted. */
static int convert_rows(const vb_linear *l, uint16_t *dst, int blocked) {
  int fail = 0, K = l->in;
#pragma omp parallel reduction(| : fail)
  {
    float *row = vb_malloc((size_t)K * sizeof(float));
    if (!row) fail = 1;
#pragma omp for schedule(static)
    for (int r = 0; r < l->out; r++) {
      if (!row || vb_linear_weight_row(l, r, row) != 0) {
        fail = 1;
        continue;
      }
      if (blocked)
        vb_bf16b_put_row(row, K, r, dst);
      else
        for (int k = 0; k < K; k++) dst[(size_t)r * K + k] = vb_float_to_bf16(row[k]);
    }
    free(row);
  }
  return fail ? -1 : 0;
}

/* oneDNN's descriptor of the blocked layout (vb_bf16b), if its matmul takes it
 * for this layer. */
static int blocked_md(const vb_linear *l, dnnl_memory_desc_t *md) {
  int N = l->out, K = l->in;
  dnnl_dims_t wd = {K, N};
  if (dnnl_memory_desc_init_by_tag(md, 2, wd, dnnl_bf16, dnnl_BA16a64b2a) != dnnl_success ||
      dnnl_memory_desc_get_size(md) != (size_t)N * K * sizeof(uint16_t))
    return 0;
  dnnl_primitive_desc_t pd = make_pd(PACK_REF_M, N, K, l->bias != NULL, md);
  if (!pd) return 0;
  int jit = !vb_dnnl_is_reference(pd);
  dnnl_primitive_desc_destroy(pd);
  return jit;
}

/* The weight as bf16: a stored bf16 tensor is used where it lies (plain [N, K]:
 * loading stays a mapping, and copying it would cost a fresh allocation of the
 * whole model); any other type is converted, straight into the blocked layout
 * that both oneDNN's matmul and vb_gemv_bf16b read when the shape and the CPU
 * allow it (blocked_ok), else into plain rows. */
static int bf16_weight(vb_linear *l, bf16_backend *b, int blocked_ok) {
  size_t n = (size_t)l->out * l->in;
  if (l->dtype == VB_DT_BF16 && ((uintptr_t)l->w & 1) == 0) {
    b->w = l->w;
    return 0;
  }
  dnnl_memory_desc_t md;
  int blocked = blocked_ok && vb_bf16b_supported() && vb_bf16b_fits(l->out, l->in) && blocked_md(l, &md);
  uint16_t *dst = vb_malloc_aligned(n * sizeof(uint16_t));
  if (!dst) return -1;
  if (convert_rows(l, dst, blocked) != 0) {
    vb_free_aligned(dst);
    return vb_error("linear %dx%d: cannot convert %s weights to bf16", l->out, l->in, vb_dtype_name(l->dtype));
  }
  if (blocked) {
    b->packed = dst;
    b->packed_md = md;
    b->blocked = 1;
    return 0;
  }
  b->w_owned = dst;
  b->w = b->w_owned;
  return 0;
}

/* Reorders the plain weight into the layout oneDNN's matmul prefers, when it differs. */
static void try_pack(vb_linear *l, bf16_backend *b) {
  dnnl_memory_desc_t any_md;
  dnnl_dims_t wd = {l->in, l->out};
  if (dnnl_memory_desc_init_by_tag(&any_md, 2, wd, dnnl_bf16, dnnl_format_tag_any) != dnnl_success) return;
  dnnl_primitive_desc_t pd = make_pd(PACK_REF_M, l->out, l->in, l->bias != NULL, &any_md);
  if (!pd) return;
  dnnl_memory_desc_t want = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_primitive_desc_destroy(pd);
  dnnl_memory_desc_t plain_md;
  dnnl_dims_t ws = {1, l->in};
  if (dnnl_memory_desc_init_by_strides(&plain_md, 2, wd, dnnl_bf16, ws) != dnnl_success) return;
  if (dnnl_memory_desc_equal(&want, &plain_md)) return;
  size_t bytes = dnnl_memory_desc_get_size(&want);
  void *packed = vb_malloc_aligned(bytes);
  if (!packed) return;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t r = NULL;
  dnnl_memory_t from = NULL, to = NULL;
  int ok = dnnl_reorder_primitive_desc_create(&rpd, &plain_md, vb_dnnl_engine(), &want, vb_dnnl_engine(), NULL) ==
               dnnl_success &&
           (r = make_prim(rpd)) != NULL &&
           dnnl_memory_create(&from, &plain_md, vb_dnnl_engine(), (void *)b->w) == dnnl_success &&
           dnnl_memory_create(&to, &want, vb_dnnl_engine(), packed) == dnnl_success;
  if (ok) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    ok = dnnl_primitive_execute(r, vb_dnnl_stream(), 2, args) == dnnl_success &&
         dnnl_stream_wait(vb_dnnl_stream()) == dnnl_success;
  }
  if (from) dnnl_memory_destroy(from);
  if (to) dnnl_memory_destroy(to);
  if (r) dnnl_primitive_destroy(r);
  if (!ok) {
    vb_free_aligned(packed);
    return;
  }
  b->packed = packed;
  b->packed_md = want;
  /* the plain copy is no longer needed */
  vb_free_aligned(b->w_owned);
  b->w_owned = NULL;
  b->w = NULL;
}

int vb_linear_prepare_bf16(vb_linear *l) {
  if (l->backend) return 0;
  bf16_backend *b = vb_calloc(1, sizeof *b);
  if (!b) return -1;
  pthread_mutex_init(&b->mu, NULL);
  l->backend = b;
  /* probe once whether oneDNN runs bf16 matmuls on this CPU */
  dnnl_primitive_desc_t pd = make_pd(PACK_REF_M, l->out, l->in, l->bias != NULL, NULL);
  b->onednn_ok = pd != NULL;
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (bf16_weight(l, b, b->onednn_ok && !l->pack) != 0) return -1;
  if (b->onednn_ok && l->pack) try_pack(l, b);
  b->f32_many = b->blocked && !vb_cpu_bf16_products_fast();
#if defined(__x86_64__)
  b->f32_many_rows = !b->blocked && b->w && vb_cpu_has_avx512() && vb_bf16b_fits(l->out, l->in) &&
                     !vb_cpu_bf16_products_fast();
#endif
  return 0;
}

int vb_linear_reads_stored_bf16(const vb_linear *l) {
  const bf16_backend *b = l->backend;
  return !b || (b->w != NULL && (const void *)b->w == l->w);
}

void vb_linear_release_bf16(vb_linear *l) {
  bf16_backend *b = l->backend;
  if (!b) return;
  for (int i = 0; i < PRIM_CACHE; i++)
    if (b->cache[i].prim) dnnl_primitive_destroy(b->cache[i].prim);
  vb_free_aligned(b->w_owned);
  vb_free_aligned(b->packed);
  pthread_mutex_destroy(&b->mu);
  free(b);
  l->backend = NULL;
}

/* Caller holds b->mu. */
static dnnl_primitive_t cached_prim(const vb_linear *l, bf16_backend *b, int M) {
  for (int i = 0; i < PRIM_CACHE; i++)
    if (b->cache[i].prim && b->cache[i].M == M) return b->cache[i].prim;
  dnnl_primitive_t p = make_prim(make_pd(M, l->out, l->in, l->bias != NULL, b->packed ? &b->packed_md : NULL));
  if (!p) return NULL;
  int slot = b->next;
  b->next = (b->next + 1) % PRIM_CACHE;
  if (b->cache[slot].prim) dnnl_primitive_destroy(b->cache[slot].prim);
  b->cache[slot].M = M;
  b->cache[slot].prim = p;
  return p;
}

static int run_onednn(const vb_linear *l, bf16_backend *b, const float *x, int M, float *y) {
  int N = l->out, K = l->in;
  uint16_t *xs = src_scratch((size_t)M * K);
  if (!xs) return -1;
  vb_f32_to_bf16_rows(x, M, K, xs, K);
  pthread_mutex_lock(&b->mu);
  dnnl_primitive_t p = cached_prim(l, b, M);
  int rc = -1;
  if (p) {
    dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
    dnnl_dims_t sd = {M, K}, wd = {K, N}, ws = {1, K}, bd = {1, N}, dd = {M, N};
    dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_bf16, dnnl_ab);
    if (b->packed) wei_md = b->packed_md;
    else dnnl_memory_desc_init_by_strides(&wei_md, 2, wd, dnnl_bf16, ws);
    dnnl_memory_desc_init_by_tag(&bias_md, 2, bd, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab);
    const void *wp = b->packed ? b->packed : (const void *)b->w;
    rc = vb_dnnl_matmul(p, &src_md, xs, &wei_md, wp, &bias_md, l->bias, &dst_md, y);
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

/* Without oneDNN bf16: widen blocks of weight rows to f32 and use sgemm. */
static int run_widened(const vb_linear *l, const uint16_t *w, const float *x, int M, float *y) {
  int N = l->out, K = l->in, NB = 256;
  float *t = vb_malloc_aligned((size_t)NB * K * sizeof(float));
  if (!t) return -1;
  for (int n0 = 0; n0 < N; n0 += NB) {
    int nb = N - n0 < NB ? N - n0 : NB;
    const uint16_t *src = w + (size_t)n0 * K;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < nb; r++)
      for (int k = 0; k < K; k++) {
        uint32_t u = (uint32_t)src[(size_t)r * K + k] << 16;
        memcpy(&t[(size_t)r * K + k], &u, 4);
      }
    if (l->bias)
      for (int i = 0; i < M; i++) memcpy(y + (size_t)i * N + n0, l->bias + n0, nb * sizeof(float));
    vb_gemm(M, nb, K, x, K, t, K, 1, 1.0f, l->bias ? 1.0f : 0.0f, y + n0, N);
  }
  vb_free_aligned(t);
  return 0;
}

/* A packed weight back in the plain layout (a layer prepared for large M run
 * with few rows, or oneDNN refusing a row count): rare and slow, but correct.
 * NULL when memory runs out or oneDNN refuses the reorder. */
static uint16_t *unpack(bf16_backend *b, int N, int K) {
  dnnl_memory_desc_t plain_md;
  dnnl_dims_t wd = {K, N}, ws = {1, K};
  dnnl_memory_desc_init_by_strides(&plain_md, 2, wd, dnnl_bf16, ws);
  uint16_t *w = vb_malloc_aligned((size_t)N * K * sizeof(uint16_t));
  if (!w) return NULL;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t r = NULL;
  dnnl_memory_t from = NULL, to = NULL;
  int ok = dnnl_reorder_primitive_desc_create(&rpd, &b->packed_md, vb_dnnl_engine(), &plain_md, vb_dnnl_engine(), NULL) ==
               dnnl_success &&
           (r = make_prim(rpd)) != NULL &&
           dnnl_memory_create(&from, &b->packed_md, vb_dnnl_engine(), b->packed) == dnnl_success &&
           dnnl_memory_create(&to, &plain_md, vb_dnnl_engine(), w) == dnnl_success;
  if (ok) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    ok = dnnl_primitive_execute(r, vb_dnnl_stream(), 2, args) == dnnl_success &&
         dnnl_stream_wait(vb_dnnl_stream()) == dnnl_success;
  }
  if (from) dnnl_memory_destroy(from);
  if (to) dnnl_memory_destroy(to);
  if (r) dnnl_primitive_destroy(r);
  if (!ok) {
    vb_free_aligned(w);
    vb_error("oneDNN cannot reorder a %dx%d bf16 weight back to rows", N, K);
    return NULL;
  }
  return w;
}

/* The plain-layout paths: the GEMV for few rows, widened f32 sgemm for many. */
static int run_plain(const vb_linear *l, const uint16_t *w, const float *x, int M, float *y) {
  if (M <= VB_BF16_GEMV_MAX_M) return vb_gemv_bf16(w, l->out, l->in, x, M, l->bias, y);
  return run_widened(l, w, x, M, y);
}

int vb_linear_forward_bf16(const vb_linear *l, const float *x, int M, float *y) {
  bf16_backend *b = l->backend;
  if (!b) return vb_error("a %dx%d bf16 layer used before vb_linear_prepare", l->out, l->in);
  if (M <= 0) return 0;
#if defined(__x86_64__)
  /* where VDPBF16PS is slow (oneDNN's bf16 matmul runs at its rate), many rows
   * on the blocked weight go through f32 FMAs */
  if (M > VB_BF16_GEMV_MAX_M && b->f32_many)
    return vb_gemm_bf16b_f32(b->packed, l->out, l->in, x, M, l->bias, y);
  if (M > VB_BF16_GEMV_MAX_M && b->f32_many_rows)
    return vb_gemm_bf16_rows_f32(b->w, l->out, l->in, x, M, l->bias, y);
#endif
  if (M > VB_BF16_GEMV_MAX_M && b->onednn_ok && run_onednn(l, b, x, M, y) == 0) return 0;
#if defined(__x86_64__)
  if (b->blocked) return vb_gemv_bf16b(b->packed, l->out, l->in, x, M, l->bias, y);
#endif
  if (b->w) return run_plain(l, b->w, x, M, y);
  uint16_t *w = unpack(b, l->out, l->in);
  if (!w) return -1;
  int rc = run_plain(l, w, x, M, y);
  vb_free_aligned(w);
  return rc;
}
