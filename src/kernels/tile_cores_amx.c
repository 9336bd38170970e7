/* AMX cores of the tile products (tile_gemm.h): a 32 x 32 output block held in
 * four accumulator tiles (tmm0-3: rows 0-15 / 16-31 x columns 0-15 / 16-31),
 * two A tiles (tmm4-5, 16 rows each) and two B tiles (tmm6-7, one 16-column
 * group each): four tile loads per four products, the most reuse eight tiles
 * allow. Every tile is 16 rows x 64 bytes, configured once per thread.
 * The kernel must have granted XTILEDATA (vb_cpu_init); vb_tile_kind_usable
 * checks that before anything here runs. */
#include <stdint.h>
#include <string.h>

#include "kernels/tile_gemm.h"
#include "runtime/common.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <omp.h>

#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,amx-int8")))

/* A constant in memory: GCC 12 dropped the stores to a local configuration
 * (it does not see LDTILECFG read past the first 16 bytes). */
static const vb_amx_tile_config k_config = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

TGT_AMX static void amx_configure(void) {
  _tile_loadconfig(&k_config);
}

TGT_AMX static void amx_release(void) {
  _tile_release();
}

void vb_tile_thread_begin(vb_tile_kind k) {
  if (k == VB_TILE_BF16_AMX || k == VB_TILE_I8_AMX) amx_configure();
}

void vb_tile_thread_end(vb_tile_kind k) {
  /* an unconfigured thread saves no tile state on context switches */
  if (k == VB_TILE_BF16_AMX || k == VB_TILE_I8_AMX) amx_release();
}

/* The two cores differ only in the product instruction and the k per step. */
#define AMX_CORE(name, DP)                                                                         \
  TGT_AMX static void name(const uint8_t *a, size_t lda, const uint8_t *b0, const uint8_t *b1,     \
                           int ksteps, void *c, int ldc, int accumulate) {                         \
    uint8_t *c0 = c, *c1 = c0 + (size_t)16 * ldc * 4;                                              \
    size_t ldcb = (size_t)ldc * 4;                                                                 \
    const uint8_t *a1 = a + 16 * lda;                                                              \
    if (accumulate) {                                                                              \
      _tile_loadd(0, c0, ldcb);                                                                    \
      _tile_loadd(1, c0 + 64, ldcb);                                                               \
      _tile_loadd(2, c1, ldcb);                                                                    \
      _tile_loadd(3, c1 + 64, ldcb);                                                               \
    } else {                                                                                       \
      _tile_zero(0);                                                                               \
      _tile_zero(1);                                                                               \
      _tile_zero(2);                                                                               \
      _tile_zero(3);                                                                               \
    }                                                                                              \
    for (int s = 0; s < ksteps; s++) {                                                             \
      _tile_loadd(4, a + (size_t)s * 64, lda);                                                     \
      _tile_loadd(6, b0 + (size_t)s * 1024, 64);                                                   \
      _tile_loadd(5, a1 + (size_t)s * 64, lda);                                                    \
      _tile_loadd(7, b1 + (size_t)s * 1024, 64);                                                   \
      DP(0, 4, 6);                                                                                 \
      DP(1, 4, 7);                                                                                 \
      DP(2, 5, 6);                                                                                 \
      DP(3, 5, 7);                                                                                 \
    }                                                                                              \
    _tile_stored(0, c0, ldcb);                                                                     \
    _tile_stored(1, c0 + 64, ldcb);                                                                \
    _tile_stored(2, c1, ldcb);                                                                     \
    _tile_stored(3, c1 + 64, ldcb);                                                                \
  }

AMX_CORE(core_bf16_amx, _tile_dpbf16ps)
AMX_CORE(core_i8_amx, _tile_dpbssd)

/* 16 rows: accumulators in tiles 0-1, A in tile 4, B in tiles 6-7 (the same
 * configuration); half the products of the 32-row core for a short last block. */
#define AMX_CORE16(name, DP)                                                                       \
  TGT_AMX static void name(const uint8_t *a, size_t lda, const uint8_t *b0, const uint8_t *b1,     \
                           int ksteps, void *c, int ldc, int accumulate) {                         \
    uint8_t *c0 = c;                                                                               \
    size_t ldcb = (size_t)ldc * 4;                                                                 \
    if (accumulate) {                                                                              \
      _tile_loadd(0, c0, ldcb);                                                                    \
      _tile_loadd(1, c0 + 64, ldcb);                                                               \
    } else {                                                                                       \
      _tile_zero(0);                                                                               \
      _tile_zero(1);                                                                               \
    }                                                                                              \
    for (int s = 0; s < ksteps; s++) {                                                             \
      _tile_loadd(4, a + (size_t)s * 64, lda);                                                     \
      _tile_loadd(6, b0 + (size_t)s * 1024, 64);                                                   \
      _tile_loadd(7, b1 + (size_t)s * 1024, 64);                                                   \
      DP(0, 4, 6);                                                                                 \
      DP(1, 4, 7);                                                                                 \
    }                                                                                              \
    _tile_stored(0, c0, ldcb);                                                                     \
    _tile_stored(1, c0 + 64, ldcb);                                                                \
  }

AMX_CORE16(core16_bf16_amx, _tile_dpbf16ps)
AMX_CORE16(core16_i8_amx, _tile_dpbssd)

vb_tile_core_fn vb_tile_core_amx(vb_tile_kind k) {
  return k == VB_TILE_BF16_AMX ? core_bf16_amx : k == VB_TILE_I8_AMX ? core_i8_amx : NULL;
}

vb_tile_core_fn vb_tile_core16(vb_tile_kind k) {
  return k == VB_TILE_BF16_AMX ? core16_bf16_amx : k == VB_TILE_I8_AMX ? core16_i8_amx : NULL;
}

/* Register peak: six independent accumulators fed from two source tiles. */
#define AMX_PEAK(name, DP)                                                                         \
  TGT_AMX static long name(double ms) {                                                            \
    static _Alignas(64) uint8_t src[2048];                                                         \
    _tile_loadd(6, src, 64);                                                                       \
    _tile_loadd(7, src + 1024, 64);                                                                \
    _tile_zero(0);                                                                                 \
    _tile_zero(1);                                                                                 \
    _tile_zero(2);                                                                                 \
    _tile_zero(3);                                                                                 \
    _tile_zero(4);                                                                                 \
    _tile_zero(5);                                                                                 \
    long n = 0;                                                                                    \
    double t0 = vb_now_ms();                                                                       \
    do {                                                                                           \
      for (int i = 0; i < 256; i++) {                                                              \
        DP(0, 6, 7);                                                                               \
        DP(1, 6, 7);                                                                               \
        DP(2, 6, 7);                                                                               \
        DP(3, 6, 7);                                                                               \
        DP(4, 6, 7);                                                                               \
        DP(5, 6, 7);                                                                               \
      }                                                                                            \
      n += 256 * 6;                                                                                \
    } while (vb_now_ms() - t0 < ms);                                                               \
    return n;                                                                                      \
  }

AMX_PEAK(peak_bf16, _tile_dpbf16ps)
AMX_PEAK(peak_i8, _tile_dpbssd)

/* Operations per thread (2 per multiply-add) in about ms, and the time taken. */
double vb_tile_peak_amx(vb_tile_kind k, double ms, double *ms_taken) {
  amx_configure();
  double t0 = vb_now_ms();
  long n = k == VB_TILE_BF16_AMX ? peak_bf16(ms) : peak_i8(ms);
  *ms_taken = vb_now_ms() - t0;
  amx_release();
  return (double)n * 16 * 16 * (k == VB_TILE_BF16_AMX ? 32 : 64) * 2;
}

#else /* no x86-64: no AMX */

void vb_tile_thread_begin(vb_tile_kind k) {
  (void)k;
}
void vb_tile_thread_end(vb_tile_kind k) {
  (void)k;
}
vb_tile_core_fn vb_tile_core_amx(vb_tile_kind k) {
  (void)k;
  return NULL;
}
vb_tile_core_fn vb_tile_core16(vb_tile_kind k) {
  (void)k;
  return NULL;
}
double vb_tile_peak_amx(vb_tile_kind k, double ms, double *ms_taken) {
  (void)k, (void)ms;
  *ms_taken = 0;
  return 0;
}
#endif
