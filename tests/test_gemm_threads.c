/* vb_gemm gives the same bits whatever the thread count (training and every
 * other result are reproducible with 1 or more threads), on shapes with few
 * outputs and long sums, which oneDNN 2.6's aarch64 sgemm splits over K among
 * its threads (sgemm.c cuts them into fixed blocks there), and on ordinary ones;
 * each product is also checked against a double reference. Threads that end give back
 * their kernels' scratch buffers. */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "runtime/common.h"
#include "testutil.h"

static tu_rng rng = {0x9e3779b97f4a7c15ull};

static void check_shape(int M, int N, int K, int trans_b) {
  int ldb = trans_b ? K : N;
  float *A = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *B = tu_rand_buf(&rng, (size_t)K * N, 1.0f);
  float *C0 = tu_rand_buf(&rng, (size_t)M * N, 1.0f), *C[3];
  int threads = omp_get_max_threads();
  for (int t = 0; t < 3; t++) {
    C[t] = malloc((size_t)M * N * sizeof(float));
    memcpy(C[t], C0, (size_t)M * N * sizeof(float));
    omp_set_num_threads(t + 1);
    vb_gemm(M, N, K, A, K, B, ldb, trans_b, 1.0f, 0.5f, C[t], N);
  }
  omp_set_num_threads(threads);
  size_t bad = 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double r = 0.5 * C0[(size_t)i * N + j], mag = fabs(r);
      for (int k = 0; k < K; k++) {
        double p = (double)A[(size_t)i * K + k] *
                   (trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
        r += p, mag += fabs(p);
      }
      bad += !(fabs(C[0][(size_t)i * N + j] - r) <= 1e-5 * mag + 1e-6);
    }
  CHECK(bad == 0, "gemm %dx%dx%d trans_b=%d: %zu values off the reference", M, N, K, trans_b, bad);
  for (int t = 1; t < 3; t++)
    CHECK(memcmp(C[0], C[t], (size_t)M * N * sizeof(float)) == 0,
          "gemm %dx%dx%d trans_b=%d: %d threads give other bits than 1", M, N, K, trans_b, t + 1);
  free(A), free(B), free(C0);
  for (int t = 0; t < 3; t++)
    free(C[t]);
}

/* ---- a thread's scratch ends with it ---- */

typedef struct {
  int omp_threads;
  size_t during; /* vb_tls_scratch_bytes() while the thread still held its buffers */
  int rc;
} scratch_job;

static _Thread_local void *tls_probe;
static _Thread_local size_t tls_probe_cap;

/* vision-sized attention (8 heads of 64 over 257 tokens: a 264 KB score block per thread),
 * and a 4 MB buffer of the thread's own */
static void *scratch_thread(void *arg) {
  scratch_job *j = arg;
  omp_set_num_threads(j->omp_threads);
  int n = 257, heads = 8, hd = 64, d = heads * hd;
  tu_rng r = {42};
  float *q = tu_rand_buf(&r, (size_t)n * d, 1.0f), *out = malloc((size_t)n * d * sizeof(float));
  j->rc = out ? vb_attention(q, d, q, q, d, out, d, n, n, heads, hd, 0.125f, NULL, 0, 0) : -1;
  if (!vb_tls_scratch_grow(&tls_probe, &tls_probe_cap, (size_t)4 << 20)) j->rc = -1;
  j->during = vb_tls_scratch_bytes();
  free(q);
  free(out);
  return NULL;
}

static size_t n_scores_bytes(void) {
  return (size_t)257 * 257 * sizeof(float);
}

static void check_thread_scratch(void) {
  size_t before = vb_tls_scratch_bytes();
  for (int omp = 1; omp <= 2; omp++)
    for (int rep = 0; rep < 8; rep++) {
      scratch_job j = {omp, 0, 0};
      pthread_t t;
      if (!CHECK(pthread_create(&t, NULL, scratch_thread, &j) == 0, "pthread_create")) return;
      pthread_join(t, NULL);
      CHECK(j.rc == 0, "the thread's attention failed");
      CHECK(j.during >= before + ((size_t)4 << 20) + (size_t)n_scores_bytes(),
            "while it ran the thread held %zu scratch bytes (%zu before)", j.during, before);
      /* an OpenMP team's other threads end with their master, just after it */
      size_t now = vb_tls_scratch_bytes();
      for (int wait = 0; wait < 500 && now != before; wait++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        now = vb_tls_scratch_bytes();
      }
      CHECK(now == before,
            "%d OpenMP thread(s), round %d: %zu scratch bytes remain after the "
            "thread ended (%zu before)",
            omp, rep, now, before);
    }
}

int main(void) {
  check_thread_scratch();
  /* few outputs, long sums (oneDNN's aarch64 sgemm splits 64 x 64 x 4096 over K), then
   * ordinary shapes: one row, wide, tall, block remainders */
  static const int shapes[][3] = {{64, 64, 4096}, {256, 32, 8192}, {16, 8, 20000}, {1, 3072, 768},
                                  {32, 768, 768}, {300, 70, 1000}, {65, 129, 257}, {7, 1000, 64}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int tb = 0; tb < 2; tb++)
      check_shape(shapes[s][0], shapes[s][1], shapes[s][2], tb);
  return tu_finish();
}
