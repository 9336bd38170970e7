/* Internal: the per-compute-type halves of vb_linear. */
#ifndef VBLIP_KERNELS_GEMM_INTERNAL_H
#define VBLIP_KERNELS_GEMM_INTERNAL_H

#include <dnnl.h>

#include "kernels/kernels.h"

/* dnnl_context.c: the process-wide oneDNN engine (created after vb_cpu_init),
 * and this thread's stream. */
dnnl_engine_t vb_dnnl_engine(void);
dnnl_stream_t vb_dnnl_stream(void);
/* Whether oneDNN answered a descriptor with its reference (scalar, many times
 * slower) implementation: a blocked weight with a strided destination gets
 * "ref:any" where the plain one gets a JIT kernel. */
int vb_dnnl_is_reference(dnnl_primitive_desc_t pd);
/* Runs matmul primitive p on this thread's stream over caller-owned buffers
 * (bias may be NULL) and waits for it: 0, or -1 if oneDNN refused. A
 * primitive created with a user-managed scratchpad gets this thread's own. */
int vb_dnnl_matmul(dnnl_primitive_t p, const dnnl_memory_desc_t *src_md, const void *src,
                   const dnnl_memory_desc_t *wei_md, const void *wei,
                   const dnnl_memory_desc_t *bias_md, const void *bias,
                   const dnnl_memory_desc_t *dst_md, void *dst);

int vb_linear_prepare_bf16(vb_linear *l);
void vb_linear_release_bf16(vb_linear *l);
int vb_linear_forward_bf16(const vb_linear *l, const float *x, int M, float *y);
int vb_linear_reads_stored_bf16(const vb_linear *l);

/* vblip's own tile products (linear_tile.c): whether layer l goes there (int8
 * compute; bf16 packed layers with usable AMX), and its halves. forward
 * returns -1 (error set) only when memory runs out. */
int vb_linear_wants_tile(const vb_linear *l);
int vb_linear_prepare_tile(vb_linear *l);
void vb_linear_release_tile(vb_linear *l);
int vb_linear_forward_tile(const vb_linear *l, const float *x, int M, float *y, int gelu);

/* bf16 compute with a Q8_0 stored weight, kept in place (gemm_q8.c). */
int vb_linear_prepare_q8(vb_linear *l);
void vb_linear_release_q8(vb_linear *l);
int vb_linear_forward_q8(const vb_linear *l, const float *x, int M, float *y);
int vb_linear_reads_stored_q8(const vb_linear *l);
/* The q8x16 copy a prepared Q8_0 layer runs from (repacked, or the mapped
 * w_packed), or NULL. */
const void *vb_linear_q8_packed(const vb_linear *l);

/* y[M, N] = x[M, K] W^T (+ bias) for small M with f32 weights [N, K], streaming
 * W once (gemv_f32.c, x86-64 only). Returns -1 (nothing done) where the CPU
 * lacks AVX-512, and always on other processors. */
#define VB_F32_GEMV_MAX_M 15
#if defined(__x86_64__)
int vb_gemv_f32(const float *W, int N, int K, const float *x, int M, const float *bias, float *y);
#else
static inline int vb_gemv_f32(const float *W, int N, int K, const float *x, int M,
                              const float *bias, float *y) {
  (void)W, (void)N, (void)K, (void)x, (void)M, (void)bias, (void)y;
  return -1;
}
#endif

/* The GEMV kernels compute up to 4 output columns (n .. n+nr-1) for up to 4
 * activation rows (m0 ..) at a time; this writes that block of results plus bias. */
static inline void vb_gemv_store_block(float *y, int N, int n, int nr, int m0, int M,
                                       const float *bias, const float r[4][4]) {
  for (int m = 0; m < 4 && m0 + m < M; m++)
    for (int j = 0; j < nr; j++)
      y[(size_t)(m0 + m) * N + n + j] = r[m][j] + (bias ? bias[n + j] : 0.0f);
}

/* Output rows per dynamically handed-out block of a GEMV: long blocks stream
 * faster (the hardware prefetcher ramps up once per block), but there should
 * be at least 4 per thread so a descheduled thread delays little. */
static inline int vb_gemv_block_rows(int N, int nthreads) {
  int bs = 256;
  while (bs > 64 && (N + bs - 1) / bs < 4 * nthreads)
    bs /= 2;
  return bs;
}

/* Runs `body` for blocks [n0, n1) of a GEMV's N output rows, handed out
 * dynamically: a thread that the OS deschedules (a busy machine) delays one
 * block, not half of the product. Needs <omp.h>. */
#define VB_GEMV_FOR_ROW_BLOCKS(N, body)                                                            \
  do {                                                                                             \
    int bs_ = vb_gemv_block_rows((N), omp_get_max_threads());                                      \
    int nblk_ = ((N) + bs_ - 1) / bs_;                                                             \
    _Pragma("omp parallel for schedule(dynamic, 1) if (nblk_ > 1)") for (int blk_ = 0;             \
                                                                         blk_ < nblk_; blk_++) {   \
      int n0 = blk_ * bs_, n1 = n0 + bs_ < (N) ? n0 + bs_ : (N);                                   \
      body;                                                                                        \
    }                                                                                              \
  } while (0)

/* Weight rows streamed side by side by the bf16 and f32 GEMV kernels, and how
 * far ahead along a row they prefetch. */
#define VB_GEMV_ROWS 4
#define VB_GEMV_PREFETCH_BYTES 1024

/* The row loop of the four-row GEMV kernels (bf16, f32): output rows n0..n1 in
 * steps of VB_GEMV_ROWS (a row past n1 repeats the last one, read from cache and not
 * stored), activation rows in steps of up to 4. BLOCK(w, K, xb, ldx, mc, r)
 * computes r[m][j] = x[m] . w[j]; it is called with a constant mc so each
 * variant keeps its accumulators in registers. WT/XT: weight and activation
 * element types; x has ldx elements per row. */
#define VB_GEMV_ROW_LOOP(BLOCK, WT, XT, W, n0, n1, N, K, x, ldx, M, bias, y)                       \
  for (int n_ = (n0); n_ < (n1); n_ += VB_GEMV_ROWS) {                                             \
    const WT *w_[VB_GEMV_ROWS];                                                                    \
    for (int j_ = 0; j_ < VB_GEMV_ROWS; j_++)                                                      \
      w_[j_] = (W) + (size_t)(n_ + j_ < (n1) ? n_ + j_ : (n1)-1) * (K);                            \
    int nr_ = (n1)-n_ < VB_GEMV_ROWS ? (n1)-n_ : VB_GEMV_ROWS;                                     \
    for (int m0_ = 0; m0_ < (M); m0_ += 4) {                                                       \
      float r_[4][4] = {{0}};                                                                      \
      const XT *xb_ = (x) + (size_t)m0_ * (ldx);                                                   \
      switch ((M)-m0_ < 4 ? (M)-m0_ : 4) {                                                         \
      case 1:                                                                                      \
        BLOCK(w_, (K), xb_, (ldx), 1, r_);                                                         \
        break;                                                                                     \
      case 2:                                                                                      \
        BLOCK(w_, (K), xb_, (ldx), 2, r_);                                                         \
        break;                                                                                     \
      case 3:                                                                                      \
        BLOCK(w_, (K), xb_, (ldx), 3, r_);                                                         \
        break;                                                                                     \
      default:                                                                                     \
        BLOCK(w_, (K), xb_, (ldx), 4, r_);                                                         \
        break;                                                                                     \
      }                                                                                            \
      vb_gemv_store_block((y), (N), n_, nr_, m0_, (M), (bias), (const float(*)[4])r_);             \
    }                                                                                              \
  }

#if defined(__x86_64__)
#include <immintrin.h>
/* 16 floats to bf16 exactly as vb_float_to_bf16 does: round to nearest even
 * on the bit pattern, NaN kept a quiet NaN of the same sign (the carry of the
 * rounding would turn a NaN with a full payload into -0 or an infinity): the
 * AVX-512 dequantizers' one rounding. tests/test_bf16_round.c holds it to the
 * scalar one on every upper half-word. */
static inline __attribute__((always_inline, target("avx512f"))) __m256i vb_bf16x16_rne(__m512 f) {
  __m512i u = _mm512_castps_si512(f);
  __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  __m512i hi = _mm512_srli_epi32(u, 16);
  __m512i r = _mm512_add_epi32(
      u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1))));
  r = _mm512_mask_or_epi32(_mm512_srli_epi32(r, 16), nan, hi, _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}
#endif

#endif
