/* Element-wise and row-wise float32 operations. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "kernels/kernels.h"
#include "runtime/cpu.h"

#if defined(__x86_64__)
/* Whether the AVX-512 versions (ops_avx512.c, x86-64 only) run, looked up
 * once: vb_dot and vb_axpy are called per cached key in decoding attention. */
static int use_avx512(void) {
  static _Atomic int v = -1; /* threads may race to fill it in, with the same value */
  int x = atomic_load_explicit(&v, memory_order_relaxed);
  if (x < 0) atomic_store_explicit(&v, x = vb_cpu_has_avx512(), memory_order_relaxed);
  return x;
}

void vb_gelu_erf_avx512(float *x, size_t n);
void vb_gelu_erf_serial_avx512(float *x, size_t n);
void vb_gelu_tanh_avx512(float *x, size_t n);
void vb_softmax_row_avx512(float *x, int n);
void vb_softmax_row_bf16_avx512(float *x, int n, int np, uint16_t *dst);
float vb_dot_avx512(const float *a, const float *b, int n);
void vb_axpy_avx512(float *y, float a, const float *x, int n);
void vb_layernorm_row_avx512(const float *x, float *y, int n, const float *w, const float *b,
                             float eps);
#endif

void vb_layernorm_row(const float *xr, float *yr, int n, const float *w, const float *b,
                      float eps) {
#if defined(__x86_64__)
  if (use_avx512()) {
    vb_layernorm_row_avx512(xr, yr, n, w, b, eps);
    return;
  }
#endif
  /* two-pass mean/variance in double: stable for the large activations of ViT-g */
  double mean = 0, var = 0;
  for (int i = 0; i < n; i++)
    mean += xr[i];
  mean /= n;
  for (int i = 0; i < n; i++) {
    double d = xr[i] - mean;
    var += d * d;
  }
  var /= n;
  float inv = (float)(1.0 / sqrt(var + eps));
  float m = (float)mean;
  for (int i = 0; i < n; i++) {
    float v = (xr[i] - m) * inv;
    yr[i] = v * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
  }
}

void vb_layernorm(const float *x, float *y, int rows, int n, const float *w, const float *b,
                  float eps) {
#pragma omp parallel for if (rows > 16)
  for (int r = 0; r < rows; r++)
    vb_layernorm_row(x + (size_t)r * n, y + (size_t)r * n, n, w, b, eps);
}

void vb_rmsnorm(const float *x, float *y, int rows, int n, const float *w, float eps) {
#pragma omp parallel for if (rows > 16)
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * n;
    float *yr = y + (size_t)r * n;
    double ss = 0;
    for (int i = 0; i < n; i++)
      ss += (double)xr[i] * xr[i];
    float inv = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
      yr[i] = w[i] * (xr[i] * inv);
  }
}

void vb_gelu_erf_serial(float *x, size_t n) {
#if defined(__x86_64__)
  if (use_avx512()) {
    vb_gelu_erf_serial_avx512(x, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++)
    x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void vb_gelu_erf(float *x, size_t n) {
#if defined(__x86_64__)
  if (use_avx512()) {
    vb_gelu_erf_avx512(x, n);
    return;
  }
#endif
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++)
    x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void vb_gelu_tanh(float *x, size_t n) {
#if defined(__x86_64__)
  if (use_avx512()) {
    vb_gelu_tanh_avx512(x, n);
    return;
  }
#endif
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  }
}

void vb_relu(float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = x[i] > 0 ? x[i] : 0;
}

void vb_add(float *y, const float *x, size_t n) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++)
    y[i] += x[i];
}

void vb_softmax_row(float *x, int n) {
#if defined(__x86_64__)
  if (use_avx512()) {
    vb_softmax_row_avx512(x, n);
    return;
  }
#endif
  float mx = -INFINITY;
  for (int i = 0; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) { /* fully masked row: uniform zeros rather than NaN */
    memset(x, 0, n * sizeof(float));
    return;
  }
  double sum = 0;
  for (int i = 0; i < n; i++) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (int i = 0; i < n; i++)
    x[i] *= inv;
}

void vb_softmax_row_bf16(float *x, int n, int np, uint16_t *dst) {
#if defined(__x86_64__)
  static _Atomic int fast = -1; /* AVX-512 and VCVTNEPS2BF16, looked up once */
  int f = atomic_load_explicit(&fast, memory_order_relaxed);
  if (f < 0)
    atomic_store_explicit(&fast, f = use_avx512() && vb_cpu()->avx512_bf16, memory_order_relaxed);
  if (f) {
    vb_softmax_row_bf16_avx512(x, n, np, dst);
    return;
  }
#endif
  vb_softmax_row(x, n);
  for (int i = 0; i < n; i++)
    dst[i] = vb_float_to_bf16(x[i]);
  for (int i = n; i < np; i++)
    dst[i] = 0;
}

float vb_dot(const float *a, const float *b, int n) {
#if defined(__x86_64__)
  if (use_avx512()) return vb_dot_avx512(a, b, n);
#endif
  /* eight partial sums: a single one is a chain of dependent adds */
  float s[8] = {0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      s[j] += a[i + j] * b[i + j];
  for (; i < n; i++)
    s[0] += a[i] * b[i];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

void vb_axpy(float *y, float a, const float *x, int n) {
#if defined(__x86_64__)
  if (use_avx512()) {
    vb_axpy_avx512(y, a, x, n);
    return;
  }
#endif
  for (int i = 0; i < n; i++)
    y[i] += a * x[i];
}
