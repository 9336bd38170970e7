/* packed-gemv: decoding products on a packed q8_0 file's language model
 * (vblip convert --packed), read where the file is mapped, against the same
 * matrices repacked into fresh memory as a plain q8_0 file's are at load.
 * Prints the repacking time (what a load of the plain file spends), then for
 * each repetition the time of one pass of one-row products over every
 * packed matrix (one decoded token's linear layers) from the mapping and
 * from the copies, alternating, and the medians; the mapping's huge-page
 * share from /proc/self/smaps_rollup. Times are wall and process CPU time
 * (run it with OMP_NUM_THREADS=1 for CPU times that other work on the
 * machine does not inflate).
 *
 *   packed-gemv PACKED.gguf [--repeat R] [--hugepage] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "formats/gguf.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* CPU time of the whole process (all threads), ms: on a machine shared with other
 * work, wall time counts their time slices too */
static double cpu_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void rollup(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "Rss:", 4) || !strncmp(line, "Anonymous:", 10) ||
        !strncmp(line, "AnonHugePages:", 14) || !strncmp(line, "FilePmdMapped:", 14))
      printf("  %s", line);
  if (f) fclose(f);
}

int main(int argc, char **argv) {
  int R = 7, huge = 0;
  if (argc < 2)
    return fprintf(stderr, "usage: %s PACKED.gguf [--repeat R] [--hugepage]\n", argv[0]), 2;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
      R = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--hugepage"))
      huge = 1;
    else
      return fprintf(stderr, "unknown argument %s\n", argv[i]), 2;
  }
  if (R < 1 || R > 1000) return fprintf(stderr, "1 <= repeat <= 1000\n"), 2;
  vb_cpu_init();
  if (!vb_q8x16_supported()) return fprintf(stderr, "no AVX512-VNNI here\n"), 1;
  vb_mapped_file m;
  if (vb_map_file(argv[1], &m) != 0) return fprintf(stderr, "%s\n", vb_error_message()), 1;
  if (huge) madvise((void *)((uintptr_t)m.data & ~(uintptr_t)4095), m.size, MADV_HUGEPAGE);
  vb_tensor_table tt;
  vb_tt_init(&tt);
  if (vb_gguf_parse(m.data, m.size, argv[1], NULL, &tt) != 0)
    return fprintf(stderr, "%s\n", vb_error_message()), 1;
  size_t n = 0, bytes = 0;
  const vb_tensor_info **t = calloc(tt.count, sizeof *t);
  void **copy = calloc(tt.count, sizeof *copy);
  for (size_t i = 0; i < tt.count; i++)
    if (tt.items[i].dtype == VB_DT_Q8X16) t[n++] = &tt.items[i], bytes += tt.items[i].nbytes;
  if (!n) return fprintf(stderr, "%s has no packed (Q8X16) tensors\n", argv[1]), 1;
  /* the plain file's load: Q8_0 rows (here unpacked first, not timed) packed into fresh memory */
  double t_pack = 0, c_pack = 0;
  int maxK = 0, maxN = 0;
  for (size_t i = 0; i < n; i++) {
    int N = (int)t[i]->shape[0], K = (int)t[i]->shape[1];
    if (K > maxK) maxK = K;
    if (N > maxN) maxN = N;
    void *rows = malloc(vb_q8_row_bytes(K) * (size_t)N);
    vb_q8x16_unpack(t[i]->data, N, K, rows);
    double t0 = vb_now_ms(), c0 = cpu_ms();
    copy[i] = vb_malloc_aligned(vb_q8x16_bytes(N, K));
    if (!rows || !copy[i]) return fprintf(stderr, "out of memory\n"), 1;
    vb_q8x16_pack(rows, N, K, copy[i]);
    t_pack += vb_now_ms() - t0;
    c_pack += cpu_ms() - c0;
    free(rows);
  }
  printf("%zu packed matrices, %.1f MB; repacked into fresh memory in %.0f ms (%.2f ms per MB), "
         "CPU %.0f ms; %s\n",
         n, bytes / 1e6, t_pack, t_pack / (bytes / 1e6), c_pack, vb_cpu_describe());
  float *x = malloc(sizeof(float) * maxK), *y = malloc(sizeof(float) * maxN);
  for (int k = 0; k < maxK; k++)
    x[k] = (float)((k * 37) % 101) / 50.0f - 1.0f;
  double *tm = calloc((size_t)R, sizeof *tm), *tc = calloc((size_t)R, sizeof *tc);
  double *cm = calloc((size_t)R, sizeof *cm), *cc = calloc((size_t)R, sizeof *cc);
  for (int r = -1; r < R; r++) { /* r = -1: the first touch of the mapping, not counted */
    for (int which = 0; which < 2; which++) {
      double t0 = vb_now_ms(), c0 = cpu_ms();
      for (size_t i = 0; i < n; i++)
        if (vb_gemv_q8x16(which ? copy[i] : t[i]->data, (int)t[i]->shape[0], (int)t[i]->shape[1], x,
                          1, NULL, y) != 0)
          return fprintf(stderr, "%s\n", vb_error_message()), 1;
      double ms = vb_now_ms() - t0, cms = cpu_ms() - c0;
      if (r < 0) {
        printf("first pass (%s): %.1f ms, CPU %.1f ms\n", which ? "copies" : "mapping", ms, cms);
        continue;
      }
      (which ? tc : tm)[r] = ms;
      (which ? cc : cm)[r] = cms;
      printf("pass %d %s: %.1f ms (%.1f GB/s), CPU %.1f ms\n", r, which ? "copies " : "mapping", ms,
             bytes / 1e6 / ms, cms);
    }
  }
  qsort(tm, (size_t)R, sizeof *tm, cmp);
  qsort(tc, (size_t)R, sizeof *tc, cmp);
  qsort(cm, (size_t)R, sizeof *cm, cmp);
  qsort(cc, (size_t)R, sizeof *cc, cmp);
  printf("median per pass: mapping %.1f ms, copies %.1f ms, mapping/copies %.3f; CPU %.1f / %.1f "
         "ms, %.3f\n",
         tm[R / 2], tc[R / 2], tm[R / 2] / tc[R / 2], cm[R / 2], cc[R / 2], cm[R / 2] / cc[R / 2]);
  rollup();
  return 0;
}
