/* Internal: vblip's own blocked matrix products for layers that always run
 * with many rows (vision encoder, Q-Former):
 *  - bf16 x bf16 -> f32 on AMX tiles (TDPBF16PS);
 *  - int8 x int8 -> int32 -> f32 on AMX-INT8 (TDPBSSD), AVX512-VNNI or
 *    AVX-VNNI (VPDPBUSD), or portable C.
 * Weights are packed once into column groups of 16 output channels, each
 * group holding its k-pairs (bf16) or k-quads (int8) one 64-byte row after
 * another: exactly the rows of an AMX B tile, and one VNNI vector per k-step.
 * Padding (N to 32, K to 32 / 64, activations' M to 32) is zero, so the cores
 * only ever see whole blocks. */
#ifndef VBLIP_KERNELS_TILE_GEMM_H
#define VBLIP_KERNELS_TILE_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

#define VB_TILE_MB 32 /* rows of a core's output block */
#define VB_TILE_NB 32 /* columns of a core's output block */

/* The product kinds, one per core. */
typedef enum {
  VB_TILE_BF16_AMX = 0,
  VB_TILE_I8_AMX,
  VB_TILE_I8_AVX512VNNI,
  VB_TILE_I8_AVXVNNI,
  VB_TILE_I8_C,
  VB_TILE_KINDS
} vb_tile_kind;

const char *vb_tile_kind_name(vb_tile_kind k);
/* Whether this CPU (and, for AMX, the kernel's permission and VBLIP_NO_AMX)
 * runs kind k. */
int vb_tile_kind_usable(vb_tile_kind k);
/* The fastest usable int8 kind here (VB_TILE_I8_C at worst). */
vb_tile_kind vb_tile_i8_best(void);

/* A weight W [N, K] packed for the cores. */
typedef struct {
  int N, K;   /* logical shape */
  int Np, Kp; /* padded: Np % 32 == 0, Kp % 32 (bf16) or % 64 (int8) == 0 */
  int is_i8;
  void *data;      /* bf16: [Np/16][Kp/2][16][2]; int8: [Np/16][Kp/4][16][4] */
  float *scale;    /* int8: per output channel, w = q * scale (0 for padding) */
  int32_t *colsum; /* int8: sum over k of q[n, k] (VPDPBUSD's offset correction) */
} vb_tile_weight;

/* Packs from f32 rows: row(ctx, n, buf) writes row n (K floats) into buf and
 * returns 0, or -1 (error set). int8 rounds each row to its own scale,
 * max|w| / 127. Rows are converted in parallel. */
typedef int (*vb_tile_row_fn)(void *ctx, int n, float *buf);
int vb_tile_weight_pack(vb_tile_weight *w, int N, int K, int is_i8, vb_tile_row_fn row, void *ctx);
/* Packs int8 values q [N, K] with their per-row scales as they are (an int8
 * checkpoint: no second rounding). */
int vb_tile_weight_pack_i8(vb_tile_weight *w, int N, int K, const int8_t *q, const float *scale);
void vb_tile_weight_free(vb_tile_weight *w);
/* The weights' and activations' rounding: q = round_half_even(x * 127 /
 * max|x|) in [-127, 127]; returns the scale max|x| / 127 (x = q * scale).
 * `vblip convert --vision-type int8` writes exactly these values. */
float vb_tile_quantize_row(const float *x, int K, int8_t *q);
/* The row stride (bytes) for rows of `bytes` bytes that the cores read in
 * 32-row blocks: an odd number of 64-byte lines, so a block's rows spread over
 * the L1 sets. Producers of in-place bf16 inputs (fc1 for fc2) use it too. */
size_t vb_tile_row_stride(size_t bytes);
/* Element (n, k) of a packed weight (tests): the bf16 bits or the int8 value. */
int vb_tile_weight_get(const vb_tile_weight *w, int n, int k);

/* Output stage: y = act(acc (* scales) + bias) into f32 rows. */
typedef enum { VB_TILE_ACT_NONE = 0, VB_TILE_ACT_GELU_ERF } vb_tile_act;

/* y[M, N] (row stride ldy) = act(x[M, K] W^T + bias): x rounded to bf16
 * (kind VB_TILE_BF16_AMX) or quantized per row to int8 with scale
 * max|x_row| / 127 (int8 kinds). -1 (error set, nothing written) when kind is
 * not usable or memory runs out. */
int vb_tile_linear(vb_tile_kind kind, const vb_tile_weight *w, const float *x, int M,
                   const float *bias, vb_tile_act act, float *y, int ldy);

/* Where a product's input comes from and where its result goes. */
typedef struct {
  const float *x;         /* f32 input [M, K] (rows K apart), or */
  const uint16_t *x_bf16; /* bf16 input, rows ldx apart (K when 0): the bf16 kind reads it in
                           * place when ldx == K == Kp (fc1's output for fc2) */
  int ldx;
  float *y;         /* f32 output, rows ldy apart, or */
  uint16_t *y_bf16; /* bf16 output (rounded to nearest even) */
  int ldy;
  float *y_amax;            /* bf16 output, when set: each row's max |y| over the stored values is
                             * max'ed into y_amax[m] (the caller zeroes it first) */
  const float *x_amax;      /* bf16 input, int8 kinds: each row's max |x| (y_amax of the product
                             * that wrote it): quantizing skips its first pass, same values */
  const float *ln_w, *ln_b; /* f32 input x: when ln_w is set, each row is layer-normed
                             * (weight ln_w, bias ln_b, ln_eps) before rounding */
  float ln_eps;
  int residual;    /* f32 output: y += result (a residual connection) */
  int stream_out;  /* bf16 output: streaming stores, past the caches (the ViT's qkv, read
                    * much later by attention: the caches keep the layer's other data) */
  int scale_cols;  /* output columns [0, scale_cols) times col_scale (after act, before the */
  float col_scale; /* store): the qkv product's queries, pre-scaled for attention */
  vb_tile_act act;
} vb_tile_io;
/* vb_tile_linear with these inputs and outputs. */
int vb_tile_linear_io(vb_tile_kind kind, const vb_tile_weight *w, int M, const float *bias,
                      const vb_tile_io *io);

/* The register peak of kind k on all threads: a loop of independent products
 * from registers / tiles, no memory traffic; TFLOP/s (TOP/s for int8). ms is
 * roughly how long each thread runs. 0 when not usable. */
double vb_tile_peak(vb_tile_kind k, double ms);

/* vb_linear's tile backend (linear_tile.c): the kind a prepared layer runs
 * (NULL: not on tiles), and an override of the int8 kind for layers prepared
 * afterwards (VB_TILE_KINDS: the fastest; benchmarks compare kinds with it). */
const char *vb_linear_tile_kind(const vb_linear *l);
/* Whether a prepared layer's tiles are int8 (0 for bf16 or when not on tiles). */
int vb_linear_tile_is_i8(const vb_linear *l);
/* vb_tile_linear_io on a prepared layer's tiles; -1 (error set) when l is not on tiles. */
int vb_linear_tile_io(const vb_linear *l, int M, const vb_tile_io *io);
void vb_linear_tile_force_i8(vb_tile_kind k);

/* ---- internal to the tile files ---- */

/* Core: C[32, 32] (ldc in elements, f32 or int32) (+)= A[32 rows from a, lda
 * bytes, k from 0] x the two 16-column groups b0, b1 (k-step rows of 64 bytes
 * from k = 0), over ksteps steps (32 k for bf16, 64 for int8). accumulate: add
 * to C instead of overwriting it. */
typedef void (*vb_tile_core_fn)(const uint8_t *a, size_t lda, const uint8_t *b0, const uint8_t *b1,
                                int ksteps, void *c, int ldc, int accumulate);
vb_tile_core_fn vb_tile_core(vb_tile_kind k);
/* The same for C[16, 32] from 16 rows of a (one A tile; AMX kinds only, else
 * NULL): a last block of at most 16 rows costs half a 32-row one (prefill's
 * 33 rows, attention's 257th query). */
vb_tile_core_fn vb_tile_core16(vb_tile_kind k);
/* LDTILECFG's 64-byte operand: palette 1, then each tile's bytes per row and rows. One
 * layout for every AMX user (tile_cores_amx.c, q4k_amx.c); each loads its own shapes. */
typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} vb_amx_tile_config;

/* Per-thread set-up and tear-down around cores (AMX tile configuration). */
void vb_tile_thread_begin(vb_tile_kind k);
void vb_tile_thread_end(vb_tile_kind k);
/* Whether kind k's int8 core takes activations biased by +128 (VPDPBUSD):
 * its sums then carry 128 * colsum extra. */
int vb_tile_biased(vb_tile_kind k);
/* The cores and register-peak loops by file: tile_cores_amx.c (AMX kinds) and
 * tile_cores_vnni.c (the others); the peaks return operations done by the
 * calling thread. */
vb_tile_core_fn vb_tile_core_amx(vb_tile_kind k);
vb_tile_core_fn vb_tile_core_vnni(vb_tile_kind k);
double vb_tile_peak_amx(vb_tile_kind k, double ms, double *ms_taken);
double vb_tile_peak_vnni(vb_tile_kind k, double ms, double (*now)(void));

#endif
