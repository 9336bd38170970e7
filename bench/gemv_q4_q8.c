/* gemv-q4-q8: the decoding products alone, 4-bit against 8-bit: a set of
 * N x K weight matrices in Q4_0 and Q8_0, run as decoding runs them (one
 * activation row; repacked for VNNI where the CPU has it, as at load), each
 * repetition going through all of them in turn, so the working set can be
 * made larger than the caches. Prints each repetition's times, read rates
 * and the q4_0 / q8_0 time ratio, then the medians; with K a multiple of 256
 * Q4_K too (q4kx16 on VNNI), its ratios to q8_0 and q4_0, and the quantizers'
 * speed (values per second, the first matrix, the calling threads).
 *
 *   gemv-q4-q8 [--n N] [--k K] [--matrices M] [--repeat R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/q4_kernels.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int N = 10240, K = 2560, NM = 12, R = 7;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--n")) N = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--k")) K = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--matrices")) NM = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--repeat")) R = atoi(argv[i + 1]);
    else return fprintf(stderr, "usage: %s [--n N] [--k K] [--matrices M] [--repeat R]\n", argv[0]), 2;
  }
  if (N < 1 || K < 32 || K % 32 || NM < 1 || NM > 1000 || R < 1 || R > 100)
    return fprintf(stderr, "N >= 1, K a multiple of 32, 1 <= matrices <= 1000, 1 <= repeat <= 100\n"), 2;
  vb_cpu_init();
  int packed = vb_q4x16_supported() && vb_q8x16_supported();
  float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)K * sizeof *x),
        *y = malloc((size_t)N * sizeof *y);
  void **w4 = calloc((size_t)NM, sizeof *w4), **w8 = calloc((size_t)NM, sizeof *w8),
       **wk = calloc((size_t)NM, sizeof *wk);
  if (!w || !x || !y || !w4 || !w8 || !wk) return fprintf(stderr, "out of memory\n"), 1;
  int do_k = K % 256 == 0;
  double tq4 = 0, tqk = 0;
  uint64_t s = 88172645463325252ull;
  for (int k = 0; k < K; k++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x[k] = (float)(s >> 40) / 8388608.0f - 1.0f;
  }
  for (int m = 0; m < NM; m++) {
    for (size_t i = 0; i < (size_t)N * K; i++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      w[i] = ((float)(s >> 40) / 8388608.0f - 1.0f) * 0.035f;
    }
    void *q4 = vb_malloc(vb_q4_row_bytes(K) * N), *q8 = vb_malloc(vb_q8_row_bytes(K) * N);
    if (!q4 || !q8) return fprintf(stderr, "out of memory\n"), 1;
    double t0 = vb_now_ms();
    vb_quantize_q4_0(w, (int64_t)N * K, q4);
    if (m == 0) tq4 = vb_now_ms() - t0;
    vb_quantize_q8_0(w, (int64_t)N * K, q8);
    if (do_k) {
      void *qk = vb_malloc(vb_q4k_row_bytes(K) * N);
      if (!qk) return fprintf(stderr, "out of memory\n"), 1;
      t0 = vb_now_ms();
      vb_quantize_q4_k(w, (int64_t)N * K, qk);
      if (m == 0) tqk = vb_now_ms() - t0;
      wk[m] = qk;
      if (packed) {
        wk[m] = vb_malloc_aligned(vb_q4kx16_bytes(N, K));
        if (!wk[m]) return fprintf(stderr, "out of memory\n"), 1;
        vb_q4kx16_pack(qk, N, K, wk[m]);
        free(qk);
      }
    }
    if (packed) { /* the layouts decoding reads on this CPU */
      w4[m] = vb_malloc_aligned(vb_q4x16_bytes(N, K));
      w8[m] = vb_malloc_aligned(vb_q8x16_bytes(N, K));
      if (!w4[m] || !w8[m]) return fprintf(stderr, "out of memory\n"), 1;
      vb_q4x16_pack(q4, N, K, w4[m]);
      vb_q8x16_pack(q8, N, K, w8[m]);
      free(q4), free(q8);
    } else {
      w4[m] = q4, w8[m] = q8;
    }
  }
  double b4 = (double)NM * vb_q4_row_bytes(K) * N, b8 = (double)NM * vb_q8_row_bytes(K) * N;
  printf("gemv-q4-q8: %d matrices %dx%d (q4_0 %.0f MB, q8_0 %.0f MB), one activation row, %s; %s\n", NM, N,
         K, b4 / 1e6, b8 / 1e6, packed ? "q4x16 / q8x16 (VNNI)" : "rows in place", vb_cpu_describe());
  double *r4 = malloc((size_t)R * sizeof *r4), *r8 = malloc((size_t)R * sizeof *r8),
         *ratio = malloc((size_t)R * sizeof *ratio), *rk = malloc((size_t)R * sizeof *rk),
         *rk8 = malloc((size_t)R * sizeof *rk8), *rk4 = malloc((size_t)R * sizeof *rk4);
  for (int r = 0; r < R; r++) {
    double t0 = vb_now_ms();
    for (int m = 0; m < NM; m++)
      if (packed) vb_gemv_q8x16(w8[m], N, K, x, 1, NULL, y);
      else vb_gemv_q8(w8[m], N, K, x, 1, NULL, y);
    r8[r] = vb_now_ms() - t0;
    t0 = vb_now_ms();
    for (int m = 0; m < NM; m++)
      if (packed) vb_gemv_q4x16(w4[m], N, K, x, 1, NULL, y);
      else vb_gemv_q4(w4[m], N, K, x, 1, NULL, y);
    r4[r] = vb_now_ms() - t0;
    ratio[r] = r4[r] / r8[r];
    printf("  q8_0 %8.1f ms %6.1f GB/s   q4_0 %8.1f ms %6.1f GB/s   q4_0 / q8_0 %.2f", r8[r],
           b8 / r8[r] / 1e6, r4[r], b4 / r4[r] / 1e6, ratio[r]);
    if (do_k) {
      t0 = vb_now_ms();
      for (int m = 0; m < NM; m++)
        if (packed)
          vb_gemv_q4kx16(wk[m], N, K, x, 1, NULL, y);
        else
          vb_gemv_q4k(wk[m], N, K, x, 1, NULL, y);
      rk[r] = vb_now_ms() - t0;
      rk8[r] = rk[r] / r8[r], rk4[r] = rk[r] / r4[r];
      printf("   q4_k %8.1f ms %6.1f GB/s   q4_k / q8_0 %.2f   q4_k / q4_0 %.2f", rk[r],
             b4 / rk[r] / 1e6, rk8[r], rk4[r]);
    }
    printf("\n");
  }
  qsort(r4, (size_t)R, sizeof *r4, cmp), qsort(r8, (size_t)R, sizeof *r8, cmp);
  qsort(ratio, (size_t)R, sizeof *ratio, cmp);
  printf("median: q8_0 %.1f ms (%.1f GB/s), q4_0 %.1f ms (%.1f GB/s), q4_0 / q8_0 %.2f\n", r8[R / 2],
         b8 / r8[R / 2] / 1e6, r4[R / 2], b4 / r4[R / 2] / 1e6, ratio[R / 2]);
  if (do_k) {
    qsort(rk, (size_t)R, sizeof *rk, cmp), qsort(rk8, (size_t)R, sizeof *rk8, cmp);
    qsort(rk4, (size_t)R, sizeof *rk4, cmp);
    printf("median: q4_k %.1f ms (%.1f GB/s), q4_k / q8_0 %.2f, q4_k / q4_0 %.2f\n", rk[R / 2],
           b4 / rk[R / 2] / 1e6, rk8[R / 2], rk4[R / 2]);
    printf("quantize (one %dx%d matrix): q4_0 %.1f M values/s, q4_k %.1f M values/s\n", N, K,
           (double)N * K / tq4 / 1e3, (double)N * K / tqk / 1e3);
  }
  return 0;
}
