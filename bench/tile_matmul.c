/* tile-matmul: vblip's own tile products (src/kernels/tile_gemm.h) at the
 * shapes and in the format of onednn-matmul, for side-by-side runs
 * (bench/compare-matmul.sh). Times include what vblip's layers pay per call:
 * rounding / quantizing the f32 activations, and bias in the output stage.
 *
 *   tile-matmul [--frames T] [--repeat N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "vit_shapes.h"

typedef struct {
  int K;
  const float *w; /* [N, K] */
} row_ctx;

static int row_fn(void *ctx, int n, float *buf) { /* a stored f32 weight's row */
  row_ctx *c = ctx;
  memcpy(buf, c->w + (size_t)n * c->K, (size_t)c->K * sizeof(float));
  return 0;
}

int main(int argc, char **argv) {
  int T = 8, repeat = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--frames") && i + 1 < argc)
      T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--frames T] [--repeat N]\n", argv[0]);
      return 2;
    }
  }
  vb_cpu_init();
  printf("vblip tile products, %d frames, f32 destination; cpu: %s\n", T, vb_cpu_describe());
  vit_shape shapes[VIT_SHAPES];
  vit_shapes(T, shapes);
  for (int kind = 0; kind < VB_TILE_I8_C; kind++) {
    if (!vb_tile_kind_usable(kind)) continue;
    double total_flop = 0, total_ms = 0, pack_ms = 0, pack_weights = 0;
    for (int s = 0; s < VIT_SHAPES; s++) {
      int m = shapes[s].M, n = shapes[s].N, k = shapes[s].K;
      float *wf = vb_malloc_aligned((size_t)n * k * sizeof(float));
      if (!wf) {
        fprintf(stderr, "tile-matmul: %s\n", vb_error_message());
        return 1;
      }
      for (size_t i = 0; i < (size_t)n * k; i++) /* a fixed pattern: finite, no denormals */
        wf[i] = (float)((int)((i / k * 31 + i % k * 17) % 255) - 127) * 1e-3f;
      row_ctx rc = {k, wf};
      vb_tile_weight w;
      float *x = vb_malloc_aligned((size_t)m * k * sizeof(float)),
            *y = vb_malloc_aligned((size_t)m * n * sizeof(float));
      float *b = vb_calloc((size_t)n, sizeof(float));
      double tp =
          vb_now_ms(); /* packing from f32 rows, as the loader does (fresh memory each time) */
      if (!x || !y || !b ||
          vb_tile_weight_pack(&w, n, k, kind != VB_TILE_BF16_AMX, row_fn, &rc) != 0) {
        fprintf(stderr, "tile-matmul: %s\n", vb_error_message());
        return 1;
      }
      if (s < 4) pack_ms += vb_now_ms() - tp, pack_weights += (double)n * k;
      vb_free_aligned(wf);
      for (size_t i = 0; i < (size_t)m * k; i++)
        x[i] = (float)((int)(i % 251) - 125) * 1e-2f;
      double best = 1e30;
      for (int r = 0; r <= repeat; r++) {
        double t0 = vb_now_ms();
        if (vb_tile_linear(kind, &w, x, m, b, VB_TILE_ACT_NONE, y, n) != 0) {
          fprintf(stderr, "tile-matmul: %s\n", vb_error_message());
          return 1;
        }
        double t = vb_now_ms() - t0;
        if (r > 0 && t < best) best = t;
      }
      double flop = 2.0 * m * n * k;
      printf("%-7s %5d x %5d x %5d  %-28s %6.2f T%s/s\n", shapes[s].name, m, n, k,
             vb_tile_kind_name(kind), flop / best / 1e9, kind == VB_TILE_BF16_AMX ? "FLOP" : "OP");
      if (s < 4) total_flop += flop, total_ms += best;
      vb_tile_weight_free(&w);
      vb_free_aligned(x), vb_free_aligned(y), free(b);
    }
    printf("ViT-g layer's four products together (%s): %.2f T%s/s\n", vb_tile_kind_name(kind),
           total_flop / total_ms / 1e9, kind == VB_TILE_BF16_AMX ? "FLOP" : "OP");
    printf("packing the layer's four weights from f32 rows (%s): %.1f ms, %.2f ns per weight\n",
           vb_tile_kind_name(kind), pack_ms, pack_ms * 1e6 / pack_weights);
  }
  return 0;
}
