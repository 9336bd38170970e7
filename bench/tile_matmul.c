/* tile-matmul: vblip's own tile products (src/kernels/tile_gemm.h) at the
 * shapes and in the format of onednn-matmul, for side-by-side runs
 * (bench/compare-matmul.sh). Times include what vblip's layers pay per call:
 * rounding / quantizing the f32 activations, and bias in the output stage.
 * --cores instead runs the library's own cores (vb_tile_core) with their
 * operands where the driver keeps them or closer, beside the register peak,
 * to show what the tile loads cost (docs/performance.md, "Vision figures").
 *
 *   tile-matmul [--frames T] [--repeat N] [--cores] */
#include <omp.h>
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

/* One thread's core calls over its own operands, as the driver makes them:
 * a 32-row activation slice of KK steps (16 KB bf16 / int8), reused over
 * `groups` pairs of 16-column weight groups of the same K steps, the partial
 * sums added to a 32 x 32 block per pair. panel = 1: the groups fill ~1 MB
 * (L2, as the driver's panels); 0: one pair and two sum blocks (all in L1). Operations
 * per second for the calling thread. */
#define CORE_KSTEPS 8 /* the driver's 512-byte activation slices */
static double core_rate(vb_tile_kind kind, int panel, double ms) {
  vb_tile_core_fn core = vb_tile_core(kind);
  int pairs = panel ? (1 << 20) / (2 * CORE_KSTEPS * 1024) : 1;
  size_t lda = vb_tile_row_stride((size_t)CORE_KSTEPS * 64);
  int ldc = (int)(vb_tile_row_stride((size_t)(panel ? pairs : 2) * 32 * 4) / 4);
  uint8_t *a = vb_malloc_aligned(32 * lda);
  uint8_t *b = vb_malloc_aligned((size_t)pairs * 2 * CORE_KSTEPS * 1024);
  uint8_t *c = vb_malloc_aligned((size_t)32 * ldc * 4);
  if (!a || !b || !c) {
    vb_free_aligned(a), vb_free_aligned(b), vb_free_aligned(c);
    return 0;
  }
  for (size_t i = 0; i < 32 * lda; i++) /* small finite values (bf16 pairs or int8) */
    a[i] = (uint8_t)(i % 2 ? 0x3c : (i * 7) % 13);
  for (size_t i = 0; i < (size_t)pairs * 2 * CORE_KSTEPS * 1024; i++)
    b[i] = (uint8_t)(i % 2 ? 0x3b : (i * 5) % 11);
  memset(c, 0, (size_t)32 * ldc * 4);
  vb_tile_thread_begin(kind);
  long calls = 0;
  double t0 = vb_now_ms(), t;
  do {
    for (int rep = 0; rep < 64; rep++)
      for (int p = 0; p < pairs; p++) {
        const uint8_t *b0 = b + (size_t)p * 2 * CORE_KSTEPS * 1024;
        /* in L1, two partial-sum blocks taken in turn: a call's sums are not the next one's */
        uint8_t *cb = c + (size_t)(panel ? p : rep % 2) * 32 * 4;
        core(a, lda, b0, b0 + CORE_KSTEPS * 1024, CORE_KSTEPS, cb, ldc, 1);
      }
    calls += 64L * pairs;
    t = vb_now_ms() - t0;
  } while (t < ms);
  vb_tile_thread_end(kind);
  vb_free_aligned(a), vb_free_aligned(b), vb_free_aligned(c);
  int k_per_step = kind == VB_TILE_BF16_AMX ? 32 : 64;
  return (double)calls * CORE_KSTEPS * k_per_step * 32 * 32 * 2 / (t / 1e3);
}

static void run_cores(void) {
  for (int kind = 0; kind < VB_TILE_I8_C; kind++) {
    if (!vb_tile_kind_usable(kind)) continue;
    double peak = vb_tile_peak(kind, 200), l1 = 0, l2 = 0;
#pragma omp parallel reduction(+ : l1, l2)
    {
      l1 += core_rate(kind, 0, 200);
#pragma omp barrier
      l2 += core_rate(kind, 1, 200);
    }
    const char *u = kind == VB_TILE_BF16_AMX ? "FLOP" : "OP";
    printf("%-12s register peak %6.2f T%s/s; core, operands in L1 %6.2f (%3.0f%%); weights from "
           "a 1 MB panel (L2) %6.2f (%3.0f%%)\n",
           vb_tile_kind_name(kind), peak, u, l1 / 1e12, 100 * l1 / 1e12 / peak, l2 / 1e12,
           100 * l2 / 1e12 / peak);
  }
}

int main(int argc, char **argv) {
  int T = 8, repeat = 5, cores = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--cores"))
      cores = 1;
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
      T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--frames T] [--repeat N] [--cores]\n", argv[0]);
      return 2;
    }
  }
  vb_cpu_init();
  if (cores) {
    printf("vblip tile cores (32 x 32 blocks, %d k-steps per call), all threads; cpu: %s\n",
           CORE_KSTEPS, vb_cpu_describe());
    run_cores();
    return 0;
  }
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
