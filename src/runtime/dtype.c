/* Element types of stored tensors and the conversions between the float formats. */
#include "runtime/dtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

static const struct {
  const char *name;
  size_t size;
} k_dtypes[VB_DT_COUNT] = {
    [VB_DT_F32] = {"F32", 4},   [VB_DT_F16] = {"F16", 2},     [VB_DT_BF16] = {"BF16", 2},
    [VB_DT_F64] = {"F64", 8},   [VB_DT_I64] = {"I64", 8},     [VB_DT_I32] = {"I32", 4},
    [VB_DT_I16] = {"I16", 2},   [VB_DT_I8] = {"I8", 1},       [VB_DT_U8] = {"U8", 1},
    [VB_DT_BOOL] = {"BOOL", 1}, [VB_DT_Q8_0] = {"Q8_0", 0},   [VB_DT_Q4_0] = {"Q4_0", 0},
    [VB_DT_Q4_K] = {"Q4_K", 0}, [VB_DT_Q8X16] = {"Q8X16", 0},
};

const char *vb_dtype_name(vb_dtype t) {
  return (unsigned)t < VB_DT_COUNT ? k_dtypes[t].name : "?";
}

size_t vb_dtype_size(vb_dtype t) {
  return (unsigned)t < VB_DT_COUNT ? k_dtypes[t].size : 0;
}

int vb_dtype_bytes(vb_dtype t, int64_t nelem, size_t *out) {
  if (nelem < 0) return 0;
  if (t == VB_DT_Q8_0) {
    if (nelem % 32) return 0;
    return vb_mul_ok((size_t)nelem / 32, 34, out);
  }
  if (t == VB_DT_Q4_0) {
    if (nelem % 32) return 0;
    return vb_mul_ok((size_t)nelem / 32, 18, out);
  }
  if (t == VB_DT_Q4_K) {
    if (nelem % VB_Q4K_BLOCK) return 0;
    return vb_mul_ok((size_t)nelem / VB_Q4K_BLOCK, VB_Q4K_BLOCK_BYTES, out);
  }
  if (t == VB_DT_Q8X16) return 0; /* the size depends on the shape: vb_q8x16_size */
  return vb_mul_ok((size_t)nelem, vb_dtype_size(t), out);
}

int vb_q8x16_size(int64_t N, int64_t K, size_t *out) {
  if (N < 0 || K <= 0 || K % 32) return 0;
  size_t panels = (size_t)((N + VB_Q8X16_PANEL - 1) / VB_Q8X16_PANEL), per;
  return vb_mul_ok((size_t)K / 32, VB_Q8X16_BLOCK_BYTES, &per) && vb_mul_ok(panels, per, out);
}

void vb_q8x16_unpack_rows(const void *P, int64_t K, int64_t r0, int64_t r1, void *dst) {
  const uint8_t *src = P;
  int64_t nb = K / 32;
  size_t panel = (size_t)nb * VB_Q8X16_BLOCK_BYTES, rb = (size_t)nb * 34;
  for (int64_t n = r0; n < r1; n++) {
    int64_t p = n / VB_Q8X16_PANEL, r = n % VB_Q8X16_PANEL, s = r / 16, rs = r % 16;
    uint8_t *row = (uint8_t *)dst + (size_t)(n - r0) * rb;
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *B = src + (size_t)p * panel + (size_t)b * VB_Q8X16_BLOCK_BYTES;
      const uint8_t *Q = B + 2 * VB_Q8X16_PANEL;
      uint8_t *blk = row + (size_t)b * 34;
      memcpy(blk, B + 2 * r, 2);
      for (int q = 0; q < 8; q++)
        for (int j = 0; j < 4; j++)
          blk[2 + 4 * q + j] = Q[(q * 4 + s) * 64 + rs * 4 + j] ^ 0x80;
    }
  }
}

void vb_q8x16_unpack(const void *P, int N, int K, void *dst) {
  vb_q8x16_unpack_rows(P, K, 0, N, dst);
}

int vb_q8x16_to_f32(const void *P, int64_t N, int64_t K, float *dst) {
  if (K <= 0 || K % 32)
    return vb_error("Q8X16 rows of %lld values are not whole blocks", (long long)K);
  uint8_t *row = vb_malloc((size_t)K / 32 * 34);
  if (!row) return -1;
  for (int64_t n = 0; n < N; n++) {
    vb_q8x16_unpack_rows(P, K, n, n + 1, row);
    vb_convert_to_f32(VB_DT_Q8_0, row, K, dst + (size_t)n * K);
  }
  free(row);
  return 0;
}

float vb_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t vb_float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000u) /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
  if (absx < 0x38800000u) {                                  /* subnormal or zero in half */
    float a;
    memcpy(&a, &absx, 4);
    /* scale so that the half subnormal unit (2^-24) becomes 1, round to nearest even */
    float scaled = a * 16777216.0f;
    uint32_t m = (uint32_t)nearbyintf(scaled);
    return (uint16_t)(sign | m);
  }
  uint32_t e = ((absx >> 23) - 127 + 15) << 10;
  uint32_t m = (absx >> 13) & 0x3ff;
  uint32_t rest = absx & 0x1fff;
  uint32_t h = e | m;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float vb_bf16_to_float(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t vb_float_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

int vb_convert_to_f32(vb_dtype dt, const void *src, int64_t n, float *dst) {
  switch (dt) {
  case VB_DT_F32:
    memcpy(dst, src, (size_t)n * 4);
    return 0;
  case VB_DT_F16: {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, s + 2 * i, 2);
      dst[i] = vb_half_to_float(h);
    }
    return 0;
  }
  case VB_DT_BF16: {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
      uint16_t h;
      memcpy(&h, s + 2 * i, 2);
      dst[i] = vb_bf16_to_float(h);
    }
    return 0;
  }
  case VB_DT_F64: {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
      double d;
      memcpy(&d, s + 8 * i, 8);
      dst[i] = (float)d;
    }
    return 0;
  }
  case VB_DT_Q8_0: {
    if (n % 32) return vb_error("Q8_0 tensor size %lld is not a multiple of 32", (long long)n);
    const uint8_t *s = src;
    for (int64_t b = 0; b < n / 32; b++) {
      uint16_t h;
      memcpy(&h, s + 34 * b, 2);
      float d = vb_half_to_float(h);
      const int8_t *q = (const int8_t *)(s + 34 * b + 2);
      for (int j = 0; j < 32; j++)
        dst[b * 32 + j] = d * q[j];
    }
    return 0;
  }
  case VB_DT_Q4_0: {
    if (n % 32) return vb_error("Q4_0 tensor size %lld is not a multiple of 32", (long long)n);
    const uint8_t *s = src;
    for (int64_t b = 0; b < n / 32; b++) {
      uint16_t h;
      memcpy(&h, s + 18 * b, 2);
      float d = vb_half_to_float(h);
      const uint8_t *q = s + 18 * b + 2;
      for (int j = 0; j < 16; j++) {
        dst[b * 32 + j] = d * (float)((q[j] & 15) - 8);
        dst[b * 32 + j + 16] = d * (float)((q[j] >> 4) - 8);
      }
    }
    return 0;
  }
  case VB_DT_Q4_K: {
    if (n % VB_Q4K_BLOCK)
      return vb_error("Q4_K tensor size %lld is not a multiple of 256", (long long)n);
    for (int64_t b = 0; b < n / VB_Q4K_BLOCK; b++)
      vb_q4k_block_to_f32((const uint8_t *)src + VB_Q4K_BLOCK_BYTES * b, dst + VB_Q4K_BLOCK * b);
    return 0;
  }
  case VB_DT_Q8X16:
    return vb_error("a Q8X16 (packed Q8_0) tensor converts to float32 only with its shape "
                    "(vb_q8x16_to_f32)");
  default:
    return vb_error("cannot convert %s tensor to float32", vb_dtype_name(dt));
  }
}

void vb_q4k_block_to_f32(const uint8_t *blk, float *out) {
  uint16_t h[2];
  memcpy(h, blk, 4);
  float d = vb_half_to_float(h[0]), dmin = vb_half_to_float(h[1]);
  uint8_t sc[8], m[8];
  vb_q4k_scales(blk + 4, sc, m);
  const uint8_t *q = blk + 16;
  for (int c = 0; c < 4; c++) {
    float d0 = d * sc[2 * c], m0 = dmin * m[2 * c], d1 = d * sc[2 * c + 1],
          m1 = dmin * m[2 * c + 1];
    for (int l = 0; l < 32; l++) {
      out[64 * c + l] = d0 * (float)(q[32 * c + l] & 15) - m0;
      out[64 * c + 32 + l] = d1 * (float)(q[32 * c + l] >> 4) - m1;
    }
  }
}
