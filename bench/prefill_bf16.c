/* prefill-bf16: one linear layer with bf16 weights used where they lie (a
 * bf16 file's rows), many activation rows (prompt prefill), through
 * vb_linear_forward as the language model runs it: OPT-2.7b's fc2, fc1 and a
 * 2560 x 2560 projection at 16-128 rows, best of R runs each, with GFLOP/s.
 * Which route runs is the library's choice on this CPU; to compare routes, run
 * it again with VBLIP_BF16_PRODUCTS=fast (oneDNN's bf16 matmul) or =slow (f32
 * FMAs on panels repacked per call), alternating (docs/performance.md).
 *
 *   prefill-bf16 [runs] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 7;
  if (argc > 2 || runs < 1 || runs > 1000) {
    fprintf(stderr, "usage: %s [runs 1..1000]\n", argv[0]);
    return 2;
  }
  vb_cpu_init();
  printf("prefill-bf16: %s; %d threads; %s\n", vb_cpu_describe(), omp_get_max_threads(),
         vb_cpu_bf16_products_describe());
  static const int shapes[][2] = {{2560, 10240}, {10240, 2560}, {2560, 2560}};
  static const int rows[] = {16, 33, 52, 82, 128};
  for (int si = 0; si < 3; si++) {
    int N = shapes[si][0], K = shapes[si][1];
    uint16_t *w = vb_malloc_aligned((size_t)N * K * sizeof(uint16_t));
    if (!w) return 1;
    for (size_t i = 0; i < (size_t)N * K; i++) /* small values spread over [-0.05, 0.05) */
      w[i] = vb_float_to_bf16(((float)(i * 2654435761u % 1000) / 1000.0f - 0.5f) * 0.1f);
    vb_linear l = {.out = N, .in = K, .dtype = VB_DT_BF16, .w = w, .compute = VB_COMPUTE_BF16};
    if (vb_linear_prepare(&l) != 0) {
      fprintf(stderr, "prefill-bf16: %s\n", vb_error_message());
      return 1;
    }
    for (size_t mi = 0; mi < sizeof rows / sizeof rows[0]; mi++) {
      int M = rows[mi];
      float *x = vb_malloc_aligned((size_t)M * K * sizeof(float));
      float *y = vb_malloc_aligned((size_t)M * N * sizeof(float));
      if (!x || !y) return 1;
      for (size_t i = 0; i < (size_t)M * K; i++)
        x[i] = (float)(i % 7) - 3.0f;
      double best = 1e30;
      for (int r = 0; r < runs; r++) {
        double t = omp_get_wtime();
        if (vb_linear_forward(&l, x, M, y) != 0) {
          fprintf(stderr, "prefill-bf16: %s\n", vb_error_message());
          return 1;
        }
        t = omp_get_wtime() - t;
        if (t < best) best = t;
      }
      printf("N=%5d K=%5d M=%3d: %7.2f ms  %4.0f GFLOP/s\n", N, K, M, best * 1e3,
             2.0 * M * N * K / best / 1e9);
      vb_free_aligned(x), vb_free_aligned(y);
    }
    vb_linear_release(&l);
    vb_free_aligned(w);
  }
  return 0;
}
