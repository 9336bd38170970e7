/* prefill-q4: one linear layer's product with many activation rows (prompt
 * prefill) on quantized weights, the paths side by side in one run, for each
 * row count M:
 *  - q8_0, q4_0, q4_K through vb_linear_forward, both tiled paths: "tiles"
 *    (weight tiles dequantized to bf16, single-threaded oneDNN matmul per
 *    tile: VBLIP_Q8_AMX=0 when the layer is prepared) and "amx" (the packed
 *    copy dequantized straight into AMX bf16 tiles, vblip's AMX core; where
 *    AMX-BF16 runs), run alternately, and amx / tiles;
 *  - Q4_K on AMX-INT8 (vb_gemm_q4k_amx: int8 tiles, block scales on the int32
 *    sums) and the Q4_K AVX512-VNNI GEMV (the decoding kernel) for reference,
 *    with the AMX-INT8 result's relative difference from the VNNI one (the same
 *    integer block sums).
 * Best of R runs each.
 *   prefill-q4 [N K [M[,M...] [runs]]]   (default 2560 10240 16,33,52,128,512 5:
 *                                          OPT-2.7b's fc2) */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static double now_ms(void) {
  return omp_get_wtime() * 1e3;
}

static float frand(unsigned *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

#define MAX_MS 16

int main(int argc, char **argv) {
  int N = argc > 2 ? atoi(argv[1]) : 2560, K = argc > 2 ? atoi(argv[2]) : 10240;
  int R = argc > 4 ? atoi(argv[4]) : 5, Ms[MAX_MS], nm = 0, Mmax = 0;
  const char *mlist = argc > 3 ? argv[3] : "16,33,52,128,512";
  for (const char *p = mlist;;) {
    char *end;
    long m = strtol(p, &end, 10);
    if (end == p || m < 1 || m > 65536 || (*end && *end != ',') || nm == MAX_MS) {
      nm = 0; /* not a list of row counts: usage */
      break;
    }
    Ms[nm++] = (int)m;
    Mmax = (int)m > Mmax ? (int)m : Mmax;
    if (!*end) break;
    p = end + 1;
  }
  if (N < 1 || K < 256 || K % 256 || nm == 0 || R < 1) {
    fprintf(stderr, "usage: %s [N K [M[,M...] [runs]]] (K a multiple of 256)\n", argv[0]);
    return 2;
  }
  vb_cpu_init();
  float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)Mmax * K * sizeof *x);
  float *y = malloc((size_t)Mmax * N * sizeof *y), *yv = malloc((size_t)Mmax * N * sizeof *yv);
  void *q8 = malloc(vb_q8_row_bytes(K) * N), *q0 = malloc(vb_q4_row_bytes(K) * N),
       *qk = malloc(vb_q4k_row_bytes(K) * N);
  if (!w || !x || !y || !yv || !q8 || !q0 || !qk) return 1;
  unsigned s = 1;
  for (size_t i = 0; i < (size_t)N * K; i++)
    w[i] = 0.05f * frand(&s);
  for (size_t i = 0; i < (size_t)Mmax * K; i++)
    x[i] = frand(&s);
  vb_quantize_q8_0(w, (int64_t)N * K, q8);
  vb_quantize_q4_0(w, (int64_t)N * K, q0);
  vb_quantize_q4_k(w, (int64_t)N * K, qk);
  static const vb_dtype dts[3] = {VB_DT_Q8_0, VB_DT_Q4_0, VB_DT_Q4_K};
  static const char *names[3] = {"q8_0", "q4_0", "q4_k"};
  void *qs[3] = {q8, q0, qk};
  vb_linear L[2][3]; /* [0]: oneDNN tiles, [1]: the default (AMX where it runs) */
  for (int v = 0; v < 2; v++) {
    if (v == 0)
      setenv("VBLIP_Q8_AMX", "0", 1);
    else
      unsetenv("VBLIP_Q8_AMX");
    for (int d = 0; d < 3; d++) {
      L[v][d] =
          (vb_linear){.out = N, .in = K, .dtype = dts[d], .w = qs[d], .compute = VB_COMPUTE_BF16};
      if (vb_linear_prepare(&L[v][d])) {
        fprintf(stderr, "prepare: %s\n", vb_error_message());
        return 1;
      }
    }
  }
  int amx = vb_q4k_amx_usable();
  printf("prefill-q4: %dx%d weight, %d threads, best of %d; %s\n", N, K, omp_get_max_threads(), R,
         vb_cpu_describe());
  printf("  paths: tiles = %s, amx = %s\n", vb_linear_q8_prefill_path(&L[0][0]),
         vb_linear_q8_prefill_path(&L[1][0]));
  for (int mi = 0; mi < nm; mi++) {
    int M = Ms[mi];
    double t[3][2], ta = 1e30, tv = 1e30;
    for (int d = 0; d < 3; d++)
      t[d][0] = t[d][1] = 1e30;
    for (int r = 0; r < R; r++) {
      for (int d = 0; d < 3; d++)
        for (int v = 0; v < 2; v++) { /* alternately: drift hits both */
          double t0 = now_ms();
          if (vb_linear_forward(&L[v][d], x, M, y)) {
            fprintf(stderr, "product: %s\n", vb_error_message());
            return 1;
          }
          t[d][v] = fmin(t[d][v], now_ms() - t0);
        }
      double t0 = now_ms();
      int rc = amx ? vb_gemm_q4k_amx(qk, N, K, x, M, NULL, y) : 0;
      double t1 = now_ms();
      rc |= vb_gemv_q4k(qk, N, K, x, M, NULL, yv);
      double t2 = now_ms();
      if (rc) {
        fprintf(stderr, "product: %s\n", vb_error_message());
        return 1;
      }
      ta = fmin(ta, t1 - t0), tv = fmin(tv, t2 - t1);
    }
    double num = 0, den = 0;
    for (size_t i = 0; amx && i < (size_t)M * N; i++)
      num += (double)(y[i] - yv[i]) * (y[i] - yv[i]), den += (double)yv[i] * yv[i];
    double gmac = (double)M * N * K / 1e9;
    printf("  M = %d rows\n", M);
    for (int d = 0; d < 3; d++)
      printf("    %s tiles %8.2f ms %6.1f GMAC/s | amx %8.2f ms %6.1f GMAC/s | amx/tiles %.2f\n",
             names[d], t[d][0], gmac / t[d][0] * 1e3, t[d][1], gmac / t[d][1] * 1e3,
             t[d][1] / t[d][0]);
    if (amx)
      printf("    q4_k amx-int8 %8.2f ms %6.1f GMAC/s (/ q4_k amx %.2f; vs VNNI GEMV %.1e)\n", ta,
             gmac / ta * 1e3, ta / t[2][1], sqrt(num / den));
    else
      printf("    q4_k amx-int8 not usable here\n");
    printf("    q4_k vnni gemv %7.2f ms %6.1f GMAC/s (%s)\n", tv, gmac / tv * 1e3,
           vb_gemv_q4_path());
  }
  for (int v = 0; v < 2; v++)
    for (int d = 0; d < 3; d++)
      vb_linear_release(&L[v][d]);
  free(w), free(x), free(y), free(yv), free(q8), free(q0), free(qk);
  return 0;
}
