/* int8 cores of the tile products without AMX (tile_gemm.h): VPDPBUSD on
 * AVX512-VNNI (zmm: a 16-column group per vector) and AVX-VNNI (ymm: half a
 * group), and portable C. VPDPBUSD multiplies unsigned by signed bytes, so
 * these cores get activations biased by +128 (tile_gemm.c stores q ^ 0x80);
 * the driver subtracts 128 * colsum afterwards. The portable core takes plain
 * signed activations. All sums are exact int32. */
#include <stdint.h>
#include <string.h>

#include "kernels/tile_gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TGT_VNNI512 __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define TGT_AVXVNNI __attribute__((target("avx2,avxvnni")))

/* 8 rows x 32 columns at a time: 16 accumulators, two weight vectors and
 * eight broadcast activation quads per k-quad. */
TGT_VNNI512 static void core_i8_avx512vnni(const uint8_t *a, size_t lda, const uint8_t *b0,
                                           const uint8_t *b1, int ksteps, void *c, int ldc,
                                           int accumulate) {
  int32_t *C = c;
  int nq = ksteps * 16;
  for (int r0 = 0; r0 < VB_TILE_MB; r0 += 8) {
    __m512i acc[8][2];
    for (int r = 0; r < 8; r++)
      for (int j = 0; j < 2; j++)
        acc[r][j] = accumulate ? _mm512_loadu_si512(C + (size_t)(r0 + r) * ldc + 16 * j)
                               : _mm512_setzero_si512();
    const uint8_t *ar = a + (size_t)r0 * lda;
    for (int q = 0; q < nq; q++) {
      __m512i w0 = _mm512_load_si512(b0 + (size_t)q * 64),
              w1 = _mm512_load_si512(b1 + (size_t)q * 64);
      for (int r = 0; r < 8; r++) {
        int32_t quad;
        memcpy(&quad, ar + (size_t)r * lda + (size_t)q * 4, 4);
        __m512i x = _mm512_set1_epi32(quad);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, w0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, w1);
      }
    }
    for (int r = 0; r < 8; r++)
      for (int j = 0; j < 2; j++)
        _mm512_storeu_si512(C + (size_t)(r0 + r) * ldc + 16 * j, acc[r][j]);
  }
}

/* 4 rows x 32 columns at a time: 16 ymm accumulators, four weight vectors. */
TGT_AVXVNNI static void core_i8_avxvnni(const uint8_t *a, size_t lda, const uint8_t *b0,
                                        const uint8_t *b1, int ksteps, void *c, int ldc,
                                        int accumulate) {
  int32_t *C = c;
  int nq = ksteps * 16;
  for (int r0 = 0; r0 < VB_TILE_MB; r0 += 4) {
    __m256i acc[4][4];
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 4; j++)
        acc[r][j] = accumulate
                        ? _mm256_loadu_si256((const __m256i *)(C + (size_t)(r0 + r) * ldc + 8 * j))
                        : _mm256_setzero_si256();
    const uint8_t *ar = a + (size_t)r0 * lda;
    for (int q = 0; q < nq; q++) {
      __m256i w[4] = {_mm256_load_si256((const __m256i *)(b0 + (size_t)q * 64)),
                      _mm256_load_si256((const __m256i *)(b0 + (size_t)q * 64 + 32)),
                      _mm256_load_si256((const __m256i *)(b1 + (size_t)q * 64)),
                      _mm256_load_si256((const __m256i *)(b1 + (size_t)q * 64 + 32))};
      for (int r = 0; r < 4; r++) {
        int32_t quad;
        memcpy(&quad, ar + (size_t)r * lda + (size_t)q * 4, 4);
        __m256i x = _mm256_set1_epi32(quad);
        for (int j = 0; j < 4; j++)
          acc[r][j] = _mm256_dpbusd_avx_epi32(acc[r][j], x, w[j]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 4; j++)
        _mm256_storeu_si256((__m256i *)(C + (size_t)(r0 + r) * ldc + 8 * j), acc[r][j]);
  }
}
#endif

static void core_i8_c(const uint8_t *a, size_t lda, const uint8_t *b0, const uint8_t *b1,
                      int ksteps, void *c, int ldc, int accumulate) {
  int32_t *C = c;
  int nq = ksteps * 16;
  for (int r = 0; r < VB_TILE_MB; r++) {
    const int8_t *ar = (const int8_t *)(a + (size_t)r * lda);
    for (int j = 0; j < VB_TILE_NB; j++) {
      const int8_t *bw = (const int8_t *)(j < 16 ? b0 : b1) + (j & 15) * 4;
      int32_t s = accumulate ? C[(size_t)r * ldc + j] : 0;
      for (int q = 0; q < nq; q++)
        for (int i = 0; i < 4; i++)
          s += (int32_t)ar[q * 4 + i] * bw[(size_t)q * 64 + i];
      C[(size_t)r * ldc + j] = s;
    }
  }
}

vb_tile_core_fn vb_tile_core_vnni(vb_tile_kind k) {
  switch (k) {
#if defined(__x86_64__)
  case VB_TILE_I8_AVX512VNNI:
    return core_i8_avx512vnni;
  case VB_TILE_I8_AVXVNNI:
    return core_i8_avxvnni;
#endif
  case VB_TILE_I8_C:
    return core_i8_c;
  default:
    return NULL;
  }
}

#if defined(__x86_64__)
/* Register peaks: 12 (zmm) / 8 (ymm) independent accumulators. */
TGT_VNNI512 static long peak_avx512vnni(double ms, double (*now)(void)) {
  __m512i a[12], x = _mm512_set1_epi32(0x01020304), w = _mm512_set1_epi32(0x05060708);
  for (int i = 0; i < 12; i++)
    a[i] = _mm512_setzero_si512();
  long n = 0;
  double t0 = now();
  do {
    for (int it = 0; it < 1024; it++)
      for (int i = 0; i < 12; i++)
        a[i] = _mm512_dpbusd_epi32(a[i], x, w);
    n += 1024 * 12;
  } while (now() - t0 < ms);
  __m512i s = a[0];
  for (int i = 1; i < 12; i++)
    s = _mm512_add_epi32(s, a[i]);
  volatile int sink = _mm512_reduce_add_epi32(s);
  (void)sink;
  return n;
}

TGT_AVXVNNI static long peak_avxvnni(double ms, double (*now)(void)) {
  __m256i a[8], x = _mm256_set1_epi32(0x01020304), w = _mm256_set1_epi32(0x05060708);
  for (int i = 0; i < 8; i++)
    a[i] = _mm256_setzero_si256();
  long n = 0;
  double t0 = now();
  do {
    for (int it = 0; it < 1024; it++)
      for (int i = 0; i < 8; i++)
        a[i] = _mm256_dpbusd_avx_epi32(a[i], x, w);
    n += 1024 * 8;
  } while (now() - t0 < ms);
  __m256i s = a[0];
  for (int i = 1; i < 8; i++)
    s = _mm256_add_epi32(s, a[i]);
  int32_t o[8];
  _mm256_storeu_si256((__m256i *)o, s);
  volatile int sink = o[0] + o[7];
  (void)sink;
  return n;
}
#endif

/* Operations (2 per multiply-add) one thread does in about ms. */
double vb_tile_peak_vnni(vb_tile_kind k, double ms, double (*now)(void)) {
#if defined(__x86_64__)
  if (k == VB_TILE_I8_AVX512VNNI) return (double)peak_avx512vnni(ms, now) * 64 * 2;
  if (k == VB_TILE_I8_AVXVNNI) return (double)peak_avxvnni(ms, now) * 32 * 2;
#endif
  (void)k, (void)ms, (void)now;
  return 0;
}
