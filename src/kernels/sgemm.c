/* float32 matrix products: oneDNN's sgemm for anything sizeable, a plain
 * loop for tiny shapes where the library's dispatch costs more than the work. */
#include <dnnl.h>

#include "kernels/kernels.h"

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
  dnnl_sgemm('N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
