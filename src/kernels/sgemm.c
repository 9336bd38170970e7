/* float32 matrix products: oneDNN's sgemm for anything sizeable, a plain
 * loop for tiny shapes where the library's dispatch costs more than the work. */
#include <dnnl.h>

#include "kernels/kernels.h"

#if !defined(__x86_64__)
#include <omp.h>

/* oneDNN's sgemm for aarch64 (2.6) splits the sums over K among its threads for
 * some shapes (few outputs, long sums: 64 x 64 x 4096 does): each output's sum
 * would then depend on the thread count, which no result of vblip may (training
 * with 1 or 2 threads gives the same bits). Here the product is cut into blocks
 * of VB_GEMM_BLOCK rows or columns whatever the thread count, each block one
 * single-threaded sgemm (oneDNN runs one thread inside a parallel region; a
 * single block runs with the thread count set to 1). */
#define VB_GEMM_BLOCK 64

static void gemm_blocks(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        int trans_b, float alpha, float beta, float *C, int ldc) {
  int by_cols = N >= M, n = by_cols ? N : M, nb = (n + VB_GEMM_BLOCK - 1) / VB_GEMM_BLOCK;
  if (nb == 1) {
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_sgemm('N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    omp_set_num_threads(nt);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < nb; b++) {
    int i0 = b * VB_GEMM_BLOCK, len = n - i0 < VB_GEMM_BLOCK ? n - i0 : VB_GEMM_BLOCK;
    if (by_cols) /* columns i0.. of op(B) and C */
      dnnl_sgemm('N', trans_b ? 'T' : 'N', M, len, K, alpha, A, lda,
                 trans_b ? B + (size_t)i0 * ldb : B + i0, ldb, beta, C + i0, ldc);
    else /* rows i0.. of A and C */
      dnnl_sgemm('N', trans_b ? 'T' : 'N', len, N, K, alpha, A + (size_t)i0 * lda, lda, B, ldb,
                 beta, C + (size_t)i0 * ldc, ldc);
  }
}
#endif

void vb_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, int trans_b,
             float alpha, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if ((double)M * N * K < 4096.0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        float s = 0;
        for (int k = 0; k < K; k++)
          s += A[(size_t)i * lda + k] * (trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
        C[(size_t)i * ldc + j] = alpha * s + (beta != 0 ? beta * C[(size_t)i * ldc + j] : 0);
      }
    return;
  }
#if defined(__x86_64__)
  dnnl_sgemm('N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  gemm_blocks(M, N, K, A, lda, B, ldb, trans_b, alpha, beta, C, ldc);
#endif
}
