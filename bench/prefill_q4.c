/* prefill-q4: one linear layer's product with many activation rows (prompt
 * prefill) on 4-bit weights, the paths side by side in one run: Q4_0 and
 * Q4_K through vb_linear_forward (weight tiles dequantized to bf16, oneDNN
 * matmul), Q4_K on AMX-INT8 (vb_gemm_q4k_amx: int8 tiles, block scales on
 * the int32 sums) and the Q4_K AVX512-VNNI GEMV (the decoding kernel) for
 * reference; best of R runs each, and the AMX result's relative difference
 * from the VNNI one (the same integer block sums).
 *   prefill-q4 [N K M [runs]]   (default 2560 10240 52 5: OPT-2.7b's fc2, 52 rows) */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/kernels.h"
#include "kernels/q4_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static double now_ms(void) {
  return omp_get_wtime() * 1e3;
}

static float frand(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

int main(int argc, char **argv) {
  int N = argc > 3 ? atoi(argv[1]) : 2560, K = argc > 3 ? atoi(argv[2]) : 10240,
      M = argc > 3 ? atoi(argv[3]) : 52, R = argc > 4 ? atoi(argv[4]) : 5;
  if (N < 1 || K < 256 || K % 256 || M < 1 || R < 1) {
    fprintf(stderr, "usage: %s [N K M [runs]] (K a multiple of 256)\n", argv[0]);
    return 2;
  }
  vb_cpu_init();
  float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)M * K * sizeof *x);
  float *y = malloc((size_t)M * N * sizeof *y), *yv = malloc((size_t)M * N * sizeof *yv);
  void *q0 = malloc(vb_q4_row_bytes(K) * N), *qk = malloc(vb_q4k_row_bytes(K) * N);
  if (!w || !x || !y || !yv || !q0 || !qk) return 1;
  unsigned s = 1;
  for (size_t i = 0; i < (size_t)N * K; i++)
    w[i] = 0.05f * frand(&s);
  for (size_t i = 0; i < (size_t)M * K; i++)
    x[i] = frand(&s);
  vb_quantize_q4_0(w, (int64_t)N * K, q0);
  vb_quantize_q4_k(w, (int64_t)N * K, qk);
  vb_linear l0 = {.out = N, .in = K, .dtype = VB_DT_Q4_0, .w = q0, .compute = VB_COMPUTE_BF16},
            lk = {.out = N, .in = K, .dtype = VB_DT_Q4_K, .w = qk, .compute = VB_COMPUTE_BF16};
  if (vb_linear_prepare(&l0) || vb_linear_prepare(&lk)) {
    fprintf(stderr, "prepare: %s\n", vb_error_message());
    return 1;
  }
  int amx = vb_q4k_amx_usable();
  double t[4] = {1e30, 1e30, 1e30, 1e30};
  for (int r = 0; r < R; r++) {
    double t0 = now_ms();
    int rc = vb_linear_forward(&l0, x, M, y);
    double t1 = now_ms();
    rc |= vb_linear_forward(&lk, x, M, y);
    double t2 = now_ms();
    rc |= amx ? vb_gemm_q4k_amx(qk, N, K, x, M, NULL, y) : 0;
    double t3 = now_ms();
    rc |= vb_gemv_q4k(qk, N, K, x, M, NULL, yv);
    double t4 = now_ms();
    if (rc) {
      fprintf(stderr, "product: %s\n", vb_error_message());
      return 1;
    }
    t[0] = fmin(t[0], t1 - t0), t[1] = fmin(t[1], t2 - t1), t[2] = fmin(t[2], t3 - t2),
    t[3] = fmin(t[3], t4 - t3);
  }
  double num = 0, den = 0;
  for (size_t i = 0; amx && i < (size_t)M * N; i++)
    num += (double)(y[i] - yv[i]) * (y[i] - yv[i]), den += (double)yv[i] * yv[i];
  double gmac = (double)M * N * K / 1e9;
  printf("prefill-q4: %dx%d weight, %d rows, %d threads, best of %d; %s\n", N, K, M,
         omp_get_max_threads(), R, vb_cpu_describe());
  printf("  q4_0 bf16 tiles  %8.1f ms %6.1f GMAC/s\n", t[0], gmac / t[0] * 1e3);
  printf("  q4_k bf16 tiles  %8.1f ms %6.1f GMAC/s\n", t[1], gmac / t[1] * 1e3);
  if (amx)
    printf("  q4_k amx-int8    %8.1f ms %6.1f GMAC/s  (/ bf16 tiles %.2f; vs VNNI GEMV %.1e)\n",
           t[2], gmac / t[2] * 1e3, t[2] / t[1], sqrt(num / den));
  else
    printf("  q4_k amx-int8    not usable here\n");
  printf("  q4_k vnni gemv   %8.1f ms %6.1f GMAC/s  (%s)\n", t[3], gmac / t[3] * 1e3,
         vb_gemv_q4_path());
  vb_linear_release(&l0);
  vb_linear_release(&lk);
  free(w), free(x), free(y), free(yv), free(q0), free(qk);
  return 0;
}
