/* vb_linear on vblip's own tile products (tile_gemm.h):
 *  - VB_COMPUTE_INT8: the weight quantized per output channel at prepare (or
 *    an I8 checkpoint's values and scales taken as they are), activations per
 *    row per call; AMX-INT8 where usable, else AVX512-VNNI, AVX-VNNI, C;
 *  - VB_COMPUTE_BF16 for packed layers (vision encoder, Q-Former) on CPUs with
 *    usable AMX: bf16 weights in the tile layout, TDPBF16PS, instead of
 *    oneDNN's matmul (VBLIP_AMX_ONEDNN=1 keeps oneDNN, for comparisons). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm_internal.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

typedef struct {
  vb_tile_kind kind;
  vb_tile_weight w;
} tile_backend;

static vb_tile_kind g_forced_i8 = VB_TILE_KINDS;

void vb_linear_tile_force_i8(vb_tile_kind k) {
  g_forced_i8 = k;
}

int vb_linear_wants_tile(const vb_linear *l) {
  if (l->compute == VB_COMPUTE_INT8) return 1;
  if (l->compute != VB_COMPUTE_BF16 || !l->pack || !vb_tile_kind_usable(VB_TILE_BF16_AMX)) return 0;
  const char *e = getenv("VBLIP_AMX_ONEDNN");
  return !(e && e[0] && strcmp(e, "0") != 0);
}

static int weight_row(void *ctx, int n, float *buf) {
  const vb_linear *l = ctx;
  if (vb_linear_weight_row(l, n, buf) != 0) return -1;
  /* all exponent bits set: inf or NaN; an or-reduction the compiler vectorizes */
  uint32_t bad = 0;
  for (int k = 0; k < l->in; k++) {
    uint32_t bits;
    memcpy(&bits, buf + k, 4);
    bad |= (bits & 0x7f800000u) == 0x7f800000u;
  }
  if (bad)
    return vb_error("linear %dx%d: weight row %d holds a non-finite value", l->out, l->in, n);
  return 0;
}

int vb_linear_prepare_tile(vb_linear *l) {
  if (l->tile) return 0;
  tile_backend *b = vb_calloc(1, sizeof *b);
  if (!b) return -1;
  int i8 = l->compute == VB_COMPUTE_INT8;
  b->kind = !i8                                                                ? VB_TILE_BF16_AMX
            : g_forced_i8 != VB_TILE_KINDS && vb_tile_kind_usable(g_forced_i8) ? g_forced_i8
                                                                               : vb_tile_i8_best();
  int rc;
  if (i8 && l->dtype == VB_DT_I8) {
    if (!l->w_scale) {
      free(b);
      return vb_error("linear %dx%d: int8 weight without its scales", l->out, l->in);
    }
    /* the file's values and scales as they are, not rounded a second time */
    rc = vb_tile_weight_pack_i8(&b->w, l->out, l->in, l->w, l->w_scale);
  } else {
    rc = vb_tile_weight_pack(&b->w, l->out, l->in, i8, weight_row, l);
  }
  if (rc != 0) {
    free(b);
    return vb_error_context("linear %dx%d", l->out, l->in);
  }
  l->tile = b;
  return 0;
}

void vb_linear_release_tile(vb_linear *l) {
  tile_backend *b = l->tile;
  if (!b) return;
  vb_tile_weight_free(&b->w);
  free(b);
  l->tile = NULL;
}

int vb_linear_forward_tile(const vb_linear *l, const float *x, int M, float *y, int gelu) {
  const tile_backend *b = l->tile;
  return vb_tile_linear(b->kind, &b->w, x, M, l->bias,
                        gelu ? VB_TILE_ACT_GELU_ERF : VB_TILE_ACT_NONE, y, l->out);
}

int vb_linear_tile_is_i8(const vb_linear *l) {
  const tile_backend *b = l->tile;
  return b && b->kind != VB_TILE_BF16_AMX;
}

const char *vb_linear_tile_kind(const vb_linear *l) {
  const tile_backend *b = l->tile;
  return b ? vb_tile_kind_name(b->kind) : NULL;
}

int vb_linear_tile_io(const vb_linear *l, int M, const vb_tile_io *io) {
  const tile_backend *b = l->tile;
  if (!b) return vb_error("linear %dx%d is not on tiles", l->out, l->in);
  return vb_tile_linear_io(b->kind, &b->w, M, l->bias, io);
}
