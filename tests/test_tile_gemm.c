/* vblip's own tile products (src/kernels/tile_gemm.c), every kind this CPU runs:
 *  - packing: each element where vb_tile_weight_get finds it (bf16 bits of the
 *    f32 value; int8: round(w / scale) with scale = max|w_row| / 127, and the
 *    column sums VPDPBUSD's correction needs);
 *  - int8 kinds (AMX-INT8, AVX512-VNNI, AVX-VNNI, portable): the result equals,
 *    element for element and bit for bit, an independent reference that
 *    quantizes each activation row the documented way, sums exactly in 64-bit
 *    integers and applies the scales and bias in the same float order; so all
 *    int8 kinds agree exactly with each other;
 *  - bf16 on AMX: within f32 summation error (1e-5 * sum |x w|) of a double
 *    reference on the bf16-rounded operands;
 *  - fused GELU: exactly vb_gelu_erf of the plain result, row by row;
 *  - shapes: M, N, K not multiples of the blocks (1, 17, 33, 70 rows; N 16, 40,
 *    96; K 20 to 300), K split in several cache chunks (K = 2200 bf16, 4500
 *    int8), an output row stride wider than N, zero rows; 600 and 1000 rows
 *    over few columns (the work split into row ranges as well as panels),
 *    2100 columns over K = 64 (panels of up to 1024 columns);
 *  - int8 end to end against the f32 product: the relative error of per-row /
 *    per-channel int8 on random data (stated, bounded by 2e-2).
 *  - inputs and outputs (vb_tile_linear_io): adding into the output, bf16
 *    output, bf16 input read in place or copied: exactly the plain product's
 *    values, added or rounded; two inputs refused;
 *  - a layer norm on the way in (io.ln_w): exactly the product of vb_layernorm's
 *    rows, for every kind, plain and with GELU into bf16; refused on a bf16
 *    input;
 *  - output columns times a scale (io.scale_cols: the queries), f32 and bf16;
 *  - attention on AMX tiles against the f32 path (relative error below 1e-2,
 *    ViT-g's 257 tokens and head dim 88, small odd sizes, more or fewer keys
 *    than queries); refused without AMX; from bf16 operands (queries scaled,
 *    then rounded) exactly the result from the f32 ones, and with a bf16
 *    output exactly that result rounded; its packing of keys and values
 *    element by element in the tile layout (vb_tile_weight_get), on odd
 *    sizes;
 *  - a linear layer on tiles refuses a weight holding inf or NaN (anywhere in
 *    a row, the vectorized check's last element included), naming the row.
 * Runs itself again with AMX and with AVX-512 forced off. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attention_amx.h"
#include "kernels/kernels.h"
#include "kernels/tile_gemm.h"
#include "runtime/cpu.h"
#include "testutil.h"

static tu_rng rng = {0x9e3779b97f4a7c15ull};

typedef struct {
  const float *w;
  int K;
} rows_ctx;

static int get_row(void *ctx, int n, float *buf) {
  rows_ctx *c = ctx;
  memcpy(buf, c->w + (size_t)n * c->K, (size_t)c->K * sizeof(float));
  return 0;
}

/* The documented quantization: scale max|v| / 127, round half to even, clamp. */
static float quant_ref(const float *v, int K, int8_t *q) {
  float amax = 0;
  for (int k = 0; k < K; k++)
    amax = fmaxf(amax, fabsf(v[k]));
  float inv = amax > 0 ? 127.0f / amax : 0;
  for (int k = 0; k < K; k++) {
    float r = nearbyintf(v[k] * inv);
    q[k] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
  }
  return amax / 127.0f;
}

static void test_i8(int M, int N, int K, int with_bias, int ldy_extra) {
  float *x = tu_rand_buf(&rng, (size_t)M * K, 2.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.3f);
  float *b = with_bias ? tu_rand_buf(&rng, N, 0.5f) : NULL;
  if (M > 3) x[(size_t)3 * K + K / 2] = 40.0f; /* an outlier in one row */
  rows_ctx ctx = {w, K};
  vb_tile_weight tw;
  if (!CHECK_OK(vb_tile_weight_pack(&tw, N, K, 1, get_row, &ctx))) return;
  int8_t *qw = malloc((size_t)N * K), *qx = malloc((size_t)M * K);
  float *sw = malloc(N * sizeof(float)), *sx = malloc(M * sizeof(float));
  size_t bad_pack = 0;
  for (int n = 0; n < N; n++) {
    sw[n] = quant_ref(w + (size_t)n * K, K, qw + (size_t)n * K);
    int32_t sum = 0;
    for (int k = 0; k < K; k++) {
      sum += qw[(size_t)n * K + k];
      if (vb_tile_weight_get(&tw, n, k) != qw[(size_t)n * K + k]) bad_pack++;
    }
    if (tw.scale[n] != sw[n] || tw.colsum[n] != sum) bad_pack++;
  }
  CHECK(bad_pack == 0, "int8 %dx%d: %zu packed values differ from the reference", N, K, bad_pack);
  for (int m = 0; m < M; m++)
    sx[m] = quant_ref(x + (size_t)m * K, K, qx + (size_t)m * K);
  int ldy = N + ldy_extra;
  float *ref = malloc((size_t)M * ldy * sizeof(float));
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      int64_t s = 0;
      for (int k = 0; k < K; k++)
        s += (int32_t)qx[(size_t)m * K + k] * qw[(size_t)n * K + k];
      float sc = sx[m] * sw[n];
      ref[(size_t)m * ldy + n] = (float)(int32_t)s * sc + (b ? b[n] : 0.0f);
    }
  /* against f32: the error int8 costs on this data */
  double *exact = malloc((size_t)M * N * sizeof(double));
  tu_linear_ref(x, w, b, M, N, K, exact, NULL);
  float *dense = malloc((size_t)M * N * sizeof(float));
  for (int m = 0; m < M; m++)
    memcpy(dense + (size_t)m * N, ref + (size_t)m * ldy, N * sizeof(float));
  double err = tu_rel_l2(dense, exact, (size_t)M * N);
  CHECK(err < 2e-2, "int8 %dx%dx%d vs f32: relative error %.3g", M, N, K, err);
  if (M == 70 && N == 96)
    printf("int8 per-row/per-channel vs f32 (%dx%dx%d): relative L2 %.3g\n", M, N, K, err);
  float *y = malloc((size_t)M * ldy * sizeof(float)), *g = malloc((size_t)M * ldy * sizeof(float));
  for (int k = VB_TILE_I8_AMX; k <= VB_TILE_I8_C; k++) {
    if (!vb_tile_kind_usable(k)) continue;
    for (size_t i = 0; i < (size_t)M * ldy; i++)
      y[i] = g[i] = -7.0f;
    if (!CHECK_OK(vb_tile_linear(k, &tw, x, M, b, VB_TILE_ACT_NONE, y, ldy))) continue;
    size_t bad = 0, pad = 0;
    for (int m = 0; m < M; m++)
      for (int n = 0; n < ldy; n++) {
        float got = y[(size_t)m * ldy + n];
        if (n >= N)
          pad += got != -7.0f;
        else
          bad += memcmp(&got, &ref[(size_t)m * ldy + n], 4) != 0;
      }
    CHECK(bad == 0 && pad == 0,
          "%s %dx%dx%d: %zu results differ from the exact reference, %zu padding writes",
          vb_tile_kind_name(k), M, N, K, bad, pad);
    CHECK_OK(vb_tile_linear(k, &tw, x, M, b, VB_TILE_ACT_GELU_ERF, g, ldy));
    for (int m = 0; m < M; m++)
      vb_gelu_erf(y + (size_t)m * ldy, (size_t)N);
    CHECK(memcmp(y, g, (size_t)M * ldy * sizeof(float)) == 0, "%s: fused GELU differs",
          vb_tile_kind_name(k));
  }
  vb_tile_weight_free(&tw);
  free(x), free(w), free(b), free(qw), free(qx), free(sw), free(sx), free(ref), free(exact),
      free(dense);
  free(y), free(g);
}

static void test_bf16(int M, int N, int K, int with_bias) {
  float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.3f);
  float *b = with_bias ? tu_rand_buf(&rng, N, 0.5f) : NULL;
  rows_ctx ctx = {w, K};
  vb_tile_weight tw;
  if (!CHECK_OK(vb_tile_weight_pack(&tw, N, K, 0, get_row, &ctx))) return;
  size_t bad_pack = 0;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      bad_pack += vb_tile_weight_get(&tw, n, k) != vb_float_to_bf16(w[(size_t)n * K + k]);
  CHECK(bad_pack == 0, "bf16 %dx%d: %zu packed values differ", N, K, bad_pack);
  if (!vb_tile_kind_usable(VB_TILE_BF16_AMX)) {
    float y;
    CHECK(vb_tile_linear(VB_TILE_BF16_AMX, &tw, x, 1, b, VB_TILE_ACT_NONE, &y, N) == -1,
          "amx-bf16 refused without AMX");
    vb_tile_weight_free(&tw);
    free(x), free(w), free(b);
    return;
  }
  float *xr = malloc((size_t)M * K * sizeof(float)), *wr = malloc((size_t)N * K * sizeof(float));
  for (size_t i = 0; i < (size_t)M * K; i++)
    xr[i] = vb_bf16_to_float(vb_float_to_bf16(x[i]));
  for (size_t i = 0; i < (size_t)N * K; i++)
    wr[i] = vb_bf16_to_float(vb_float_to_bf16(w[i]));
  double *ref = malloc((size_t)M * N * sizeof(double)),
         *mag = malloc((size_t)M * N * sizeof(double));
  tu_linear_ref(xr, wr, b, M, N, K, ref, mag);
  float *y = malloc((size_t)M * N * sizeof(float)), *g = malloc((size_t)M * N * sizeof(float));
  if (CHECK_OK(vb_tile_linear(VB_TILE_BF16_AMX, &tw, x, M, b, VB_TILE_ACT_NONE, y, N))) {
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)M * N; i++)
      bad += !(fabs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6);
    CHECK(bad == 0, "amx-bf16 %dx%dx%d: %zu results off", M, N, K, bad);
    CHECK_OK(vb_tile_linear(VB_TILE_BF16_AMX, &tw, x, M, b, VB_TILE_ACT_GELU_ERF, g, N));
    for (int m = 0; m < M; m++)
      vb_gelu_erf(y + (size_t)m * N, (size_t)N); /* row by row, as applied */
    CHECK(memcmp(y, g, (size_t)M * N * sizeof(float)) == 0, "amx-bf16: fused GELU differs");
  }
  vb_tile_weight_free(&tw);
  free(x), free(w), free(b), free(xr), free(wr), free(ref), free(mag), free(y), free(g);
}

/* vb_tile_linear_io: residual output, bf16 output, bf16 input (in place and
 * copied) give exactly what the plain f32 product gives, rounded or added. */
static void test_io(vb_tile_kind kind, int M, int N, int K) {
  if (!vb_tile_kind_usable(kind)) return;
  float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.3f);
  float *b = tu_rand_buf(&rng, N, 0.5f), *y0 = tu_rand_buf(&rng, (size_t)M * N, 1.0f);
  rows_ctx ctx = {w, K};
  vb_tile_weight tw;
  if (!CHECK_OK(vb_tile_weight_pack(&tw, N, K, kind != VB_TILE_BF16_AMX, get_row, &ctx))) return;
  uint16_t *xb = malloc((size_t)M * K * 2), *yb = malloc((size_t)M * N * 2);
  float *xr = malloc((size_t)M * K * sizeof(float)), *plain = malloc((size_t)M * N * sizeof(float));
  float *r = malloc((size_t)M * N * sizeof(float)), *p2 = malloc((size_t)M * N * sizeof(float));
  for (size_t i = 0; i < (size_t)M * K; i++)
    xb[i] = vb_float_to_bf16(x[i]), xr[i] = vb_bf16_to_float(xb[i]);
  CHECK_OK(vb_tile_linear(kind, &tw, xr, M, b, VB_TILE_ACT_GELU_ERF, plain, N));
  memcpy(r, y0, (size_t)M * N * sizeof(float));
  vb_tile_io res = {.x = xr, .y = r, .ldy = N, .residual = 1, .act = VB_TILE_ACT_GELU_ERF};
  vb_tile_io outb = {.x = xr, .y_bf16 = yb, .ldy = N, .act = VB_TILE_ACT_GELU_ERF};
  vb_tile_io inb = {.x_bf16 = xb, .ldx = K, .y = p2, .ldy = N, .act = VB_TILE_ACT_GELU_ERF};
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &res));
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &outb));
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &inb));
  size_t bad_r = 0, bad_b = 0;
  for (size_t i = 0; i < (size_t)M * N; i++) {
    float want = y0[i] + plain[i];
    bad_r += memcmp(&r[i], &want, 4) != 0;
    bad_b += yb[i] != vb_float_to_bf16(plain[i]);
  }
  CHECK(bad_r == 0 && bad_b == 0, "%s %dx%dx%d: residual %zu, bf16 output %zu differ",
        vb_tile_kind_name(kind), M, N, K, bad_r, bad_b);
  /* streaming stores (aligned whole vectors) and plain ones (the rest) write the same */
  uint16_t *ys = malloc((size_t)M * N * 2);
  memset(ys, 0xff, (size_t)M * N * 2);
  vb_tile_io outs = outb;
  outs.y_bf16 = ys, outs.stream_out = 1;
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &outs));
  CHECK(memcmp(ys, yb, (size_t)M * N * 2) == 0, "%s %dx%dx%d: streamed bf16 output differs",
        vb_tile_kind_name(kind), M, N, K);
  free(ys);
  CHECK(memcmp(p2, plain, (size_t)M * N * sizeof(float)) == 0, "%s %dx%dx%d: bf16 input differs",
        vb_tile_kind_name(kind), M, N, K);
  /* the same input with rows further apart (fc1's output for fc2, an odd
   * number of cache lines apart): NaN between the rows must never be read */
  int ldw = (int)(vb_tile_row_stride((size_t)K * 2) / 2);
  CHECK(ldw >= K && ldw % 32 == 0 && (ldw * 2 / 64) % 2 == 1, "row stride %d for K = %d", ldw, K);
  uint16_t *xw = malloc((size_t)M * ldw * 2);
  for (int m = 0; m < M; m++)
    for (int k = 0; k < ldw; k++)
      xw[(size_t)m * ldw + k] = k < K ? xb[(size_t)m * K + k] : 0x7fc1;
  vb_tile_io inw = {.x_bf16 = xw, .ldx = ldw, .y = p2, .ldy = N, .act = VB_TILE_ACT_GELU_ERF};
  memset(p2, 0, (size_t)M * N * sizeof(float));
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &inw));
  CHECK(memcmp(p2, plain, (size_t)M * N * sizeof(float)) == 0,
        "%s %dx%dx%d: bf16 input with rows %d apart differs", vb_tile_kind_name(kind), M, N, K,
        ldw);
  free(xw);
  /* a bf16 output's row maxima (y_amax) are the stored values' max |y|, and an
   * int8 product given them (x_amax) rounds exactly as when it finds them */
  float *amax = malloc((size_t)M * sizeof(float)), *p3 = malloc((size_t)M * N * sizeof(float));
  uint16_t *yb2 = malloc((size_t)M * N * 2);
  for (int m = 0; m < M; m++)
    amax[m] = m % 3 ? 0.0f : 1e-30f; /* the caller zeroes; a tiny start must not matter */
  vb_tile_io outa = {.x = xr, .y_bf16 = yb2, .ldy = N, .act = VB_TILE_ACT_GELU_ERF, .y_amax = amax};
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &outa));
  size_t bad_a = 0;
  for (int m = 0; m < M; m++) {
    float want = m % 3 ? 0.0f : 1e-30f;
    for (int n = 0; n < N; n++)
      want = fmaxf(want, fabsf(vb_bf16_to_float(yb2[(size_t)m * N + n])));
    bad_a += memcmp(&amax[m], &want, 4) != 0;
  }
  CHECK(bad_a == 0 && memcmp(yb2, yb, (size_t)M * N * 2) == 0,
        "%s %dx%dx%d: %zu row maxima of the bf16 output differ", vb_tile_kind_name(kind), M, N, K,
        bad_a);
  if (M == N) { /* the output as the next product's input, with and without its maxima */
    for (int m = 0; m < M; m++)
      amax[m] = 0;
    outa.y_amax = amax;
    CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &outa));
    vb_tile_io in1 = {.x_bf16 = yb2, .ldx = N, .y = p2, .ldy = N};
    vb_tile_io in2 = {.x_bf16 = yb2, .ldx = N, .y = p3, .ldy = N, .x_amax = amax};
    CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &in1));
    CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &in2));
    CHECK(memcmp(p2, p3, (size_t)M * N * sizeof(float)) == 0,
          "%s %dx%dx%d: given row maxima change the product", vb_tile_kind_name(kind), M, N, K);
  }
  vb_tile_io bad_amax = {.x = xr, .y = p2, .ldy = N, .y_amax = amax};
  CHECK(vb_tile_linear_io(kind, &tw, M, b, &bad_amax) == -1, "row maxima of an f32 output refused");
  free(amax), free(p3), free(yb2);
  /* the first columns times a scale (qkv's queries), f32 and bf16 output */
  int sc_cols = N > 24 ? 24 : N / 2;
  vb_tile_io scf = {.x = xr,
                    .y = r,
                    .ldy = N,
                    .act = VB_TILE_ACT_GELU_ERF,
                    .scale_cols = sc_cols,
                    .col_scale = 0.3f};
  vb_tile_io scb = scf;
  scb.y = NULL, scb.y_bf16 = yb;
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &scf));
  CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &scb));
  size_t bad_sf = 0, bad_sb = 0;
  for (size_t i = 0; i < (size_t)M * N; i++) {
    float want = (int)(i % N) < sc_cols ? plain[i] * 0.3f : plain[i];
    bad_sf += memcmp(&r[i], &want, 4) != 0;
    bad_sb += yb[i] != vb_float_to_bf16(want);
  }
  CHECK(bad_sf == 0 && bad_sb == 0, "%s %dx%dx%d: scaled columns: f32 %zu, bf16 %zu differ",
        vb_tile_kind_name(kind), M, N, K, bad_sf, bad_sb);
  vb_tile_io bad = {.x = xr, .x_bf16 = xb, .y = p2, .ldy = N};
  CHECK(vb_tile_linear_io(kind, &tw, M, b, &bad) == -1, "two inputs refused");
  vb_tile_weight_free(&tw);
  free(x), free(w), free(b), free(y0), free(xb), free(yb), free(xr), free(plain), free(r), free(p2);
}

/* vb_tile_linear_io with a layer norm on the way in: exactly the plain
 * product of vb_layernorm's output (the norm, rounding and quantization of
 * each row are the same arithmetic, only fused). */
static void test_ln(vb_tile_kind kind, int M, int N, int K) {
  if (!vb_tile_kind_usable(kind)) return;
  float *x = tu_rand_buf(&rng, (size_t)M * K, 3.0f), *w = tu_rand_buf(&rng, (size_t)N * K, 0.3f);
  float *b = tu_rand_buf(&rng, N, 0.5f), *lw = tu_rand_buf(&rng, K, 1.0f),
        *lb = tu_rand_buf(&rng, K, 0.5f);
  for (size_t i = 0; i < (size_t)M * K; i += 7)
    x[i] += 5.0f; /* rows with a mean away from zero */
  rows_ctx ctx = {w, K};
  vb_tile_weight tw;
  if (!CHECK_OK(vb_tile_weight_pack(&tw, N, K, kind != VB_TILE_BF16_AMX, get_row, &ctx))) return;
  float *xn = malloc((size_t)M * K * sizeof(float)), *want = malloc((size_t)M * N * sizeof(float));
  float *got = malloc((size_t)M * N * sizeof(float));
  uint16_t *wb = malloc((size_t)M * N * 2), *gb = malloc((size_t)M * N * 2);
  vb_layernorm(x, xn, M, K, lw, lb, 1e-6f);
  for (int pass = 0; pass < 2; pass++) { /* plain f32 output; GELU into bf16 */
    vb_tile_act act = pass ? VB_TILE_ACT_GELU_ERF : VB_TILE_ACT_NONE;
    vb_tile_io ref = {.x = xn, .act = act, .ldy = N}, io = ref;
    io.x = x, io.ln_w = lw, io.ln_b = lb, io.ln_eps = 1e-6f;
    if (pass)
      ref.y_bf16 = wb, io.y_bf16 = gb;
    else
      ref.y = want, io.y = got;
    CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &ref));
    CHECK_OK(vb_tile_linear_io(kind, &tw, M, b, &io));
    int same = pass ? memcmp(wb, gb, (size_t)M * N * 2) == 0
                    : memcmp(want, got, (size_t)M * N * sizeof(float)) == 0;
    CHECK(same, "%s %dx%dx%d: layer norm on the way in differs (%s)", vb_tile_kind_name(kind), M, N,
          K, pass ? "GELU, bf16 output" : "f32 output");
  }
  vb_tile_io bad = {.x_bf16 = wb, .ldx = K, .ln_w = lw, .y = got, .ldy = N};
  if (K <= N) CHECK(vb_tile_linear_io(kind, &tw, M, b, &bad) == -1, "layer norm of bf16 refused");
  vb_tile_weight_free(&tw);
  free(x), free(w), free(b), free(lw), free(lb), free(xn), free(want), free(got), free(wb),
      free(gb);
}

/* Attention's operand packing (attention_amx.h) on its own: every element of
 * the padded tile layout where vb_tile_weight_get finds it, the source's bf16
 * bits or zero (padding, and the next head's columns that share the rows);
 * the destination starts as garbage, so every element is written. */
static void test_att_pack(int nk, int hd) {
  if (!vb_tile_kind_usable(VB_TILE_BF16_AMX)) return;
  int Np = (nk + 31) / 32 * 32, Dp = (hd + 31) / 32 * 32;
  size_t ld = (size_t)3 * hd + 5; /* odd: rows start at any 2-byte offset */
  uint16_t *src = malloc((size_t)nk * ld * 2), *kp = malloc((size_t)Np * Dp * 2),
           *vp = malloc((size_t)Np * Dp * 2);
  for (size_t i = 0; i < (size_t)nk * ld; i++)
    src[i] = vb_float_to_bf16(tu_frand(&rng) + 2.0f); /* never zero */
  memset(kp, 0xa5, (size_t)Np * Dp * 2);
  memset(vp, 0x5a, (size_t)Np * Dp * 2);
  vb_att_pack_keys(src, ld, nk, hd, Np, Dp, kp);
  vb_att_pack_values(src, ld, nk, hd, Np, Dp, vp);
  vb_tile_weight wk = {.N = Np, .K = Dp, .Np = Np, .Kp = Dp, .data = kp};
  vb_tile_weight wv = {.N = Dp, .K = Np, .Np = Dp, .Kp = Np, .data = vp};
  int bad_k = 0, bad_v = 0;
  for (int n = 0; n < Np; n++)
    for (int d = 0; d < Dp; d++) {
      int want = n < nk && d < hd ? src[(size_t)n * ld + d] : 0;
      bad_k += vb_tile_weight_get(&wk, n, d) != want;
      bad_v += vb_tile_weight_get(&wv, d, n) != want;
    }
  CHECK(bad_k == 0, "attention keys packed, %d keys of %d dims: %d elements off", nk, hd, bad_k);
  CHECK(bad_v == 0, "attention values packed, %d keys of %d dims: %d elements off", nk, hd, bad_v);
  free(src), free(kp), free(vp);
}

/* AMX attention against the f32 path: bf16 operands, so within 1e-2 relative.
 * Queries [batch * nq, D] and keys | values [batch * nk, 2D] (nq == nk: one
 * qkv buffer [., 3D] as the ViT has it). */
static void test_attention(int batch, int nq, int nk, int heads, int hd) {
  int D = heads * hd, same = nq == nk;
  int ld_q = same ? 3 * D : D, ld_kv = same ? 3 * D : 2 * D;
  float *qb_ = tu_rand_buf(&rng, (size_t)batch * nq * ld_q, 2.0f);
  float *kv = same ? qb_ + D : tu_rand_buf(&rng, (size_t)batch * nk * ld_kv, 2.0f);
  const float *qf = qb_, *kf = kv, *vf = kv + D;
  size_t no = (size_t)batch * nq * D;
  float *a = malloc(no * sizeof(float)), *b = malloc(no * sizeof(float));
  float sc = 1.0f / sqrtf((float)hd);
  CHECK_OK(vb_attention_batch(batch, qf, ld_q, kf, vf, ld_kv, a, D, nq, nk, heads, hd, sc));
  int rc = vb_attention_batch_amx(batch, qf, ld_q, kf, vf, ld_kv, b, D, nq, nk, heads, hd, sc);
  if (!vb_tile_kind_usable(VB_TILE_BF16_AMX)) {
    CHECK(rc == -1, "AMX attention refused without AMX");
    uint16_t z[64] = {0};
    CHECK(vb_attention_batch_amx_bf16(1, z, 3, z + 1, z + 2, 3, b, 1, 1, 1, 1, 1) == -1,
          "AMX attention from bf16 refused without AMX");
    CHECK(vb_attention_batch_amx_bf16_out(1, z, 3, z + 1, z + 2, 3, z + 3, 1, 1, 1, 1, 1) == -1,
          "AMX attention to bf16 refused without AMX");
  } else if (CHECK_OK(rc)) {
    double num = 0, den = 0;
    for (size_t i = 0; i < no; i++)
      num += (a[i] - b[i]) * (double)(a[i] - b[i]), den += (double)a[i] * a[i];
    double e = sqrt(num / den);
    CHECK(e < 1e-2 && e > 0, "AMX attention %d x %d x %d, %d heads of %d: relative error %g", batch,
          nq, nk, heads, hd, e);
    if (nq == 257)
      printf("AMX attention (257 tokens, head dim %d) vs f32: relative L2 %.3g\n", hd, e);
    /* from bf16 operands (q scaled, then rounded): exactly the same result,
     * and with a bf16 output exactly that result rounded */
    size_t nqv = (size_t)batch * nq * ld_q, nkv = (size_t)batch * nk * ld_kv;
    uint16_t *q16 = malloc(nqv * 2), *kv16 = same ? NULL : malloc(nkv * 2);
    for (size_t i = 0; i < nqv; i++)
      q16[i] = vb_float_to_bf16((int)(i % ld_q) < D ? qb_[i] * sc : qb_[i]);
    for (size_t i = 0; !same && i < nkv; i++)
      kv16[i] = vb_float_to_bf16(kv[i]);
    const uint16_t *k16 = same ? q16 + D : kv16, *v16 = k16 + D;
    float *c = malloc(no * sizeof(float));
    uint16_t *c16 = malloc(no * 2);
    if (CHECK_OK(vb_attention_batch_amx_bf16(batch, q16, ld_q, k16, v16, ld_kv, c, D, nq, nk, heads,
                                             hd)))
      CHECK(memcmp(b, c, no * sizeof(float)) == 0,
            "AMX attention %d x %d x %d from bf16 operands differs", batch, nq, nk);
    memset(c16, 0xff, no * 2);
    if (CHECK_OK(vb_attention_batch_amx_bf16_out(batch, q16, ld_q, k16, v16, ld_kv, c16, D, nq, nk,
                                                 heads, hd))) {
      size_t off = 0;
      for (size_t i = 0; i < no; i++)
        off += c16[i] != vb_float_to_bf16(c[i]);
      CHECK(off == 0, "AMX attention %d x %d x %d to bf16: %zu values not the f32 ones rounded",
            batch, nq, nk, off);
    }
    free(q16), free(kv16), free(c), free(c16);
  }
  free(qb_), free(a), free(b);
  if (!same) free(kv);
}

/* vb_linear_prepare on tiles (int8 everywhere; bf16 on AMX) refuses a
 * non-finite weight value and names its row. */
/* An f32 linear layer that vb_linear_prepare puts on tiles. */
static vb_linear tile_linear(const float *w, int N, int K, int is_i8) {
  vb_linear l = {.out = N, .in = K, .dtype = VB_DT_F32, .w = w, .pack = 1};
  l.compute = is_i8 ? VB_COMPUTE_INT8 : VB_COMPUTE_BF16;
  return l;
}

static void test_nonfinite_weight(int is_i8) {
  int N = 40, K = 100;
  const float bad_values[] = {INFINITY, -INFINITY, NAN};
  const int where[][2] = {{0, 0}, {17, 50}, {39, 99}, {31, 64}};
  for (size_t b = 0; b < 3; b++)
    for (size_t p = 0; p < 4; p++) {
      float *w = tu_rand_buf(&rng, (size_t)N * K, 1.0f);
      w[(size_t)where[p][0] * K + where[p][1]] = bad_values[b];
      vb_linear l = tile_linear(w, N, K, is_i8);
      char want[64];
      snprintf(want, sizeof want, "weight row %d holds a non-finite value", where[p][0]);
      int rc = vb_linear_prepare(&l);
      CHECK(rc != 0 && strstr(vb_error_message(), want),
            "%s weight with %g at (%d, %d): rc %d, \"%s\"", is_i8 ? "int8" : "bf16",
            (double)bad_values[b], where[p][0], where[p][1], rc, rc ? vb_error_message() : "");
      if (rc == 0) vb_linear_release(&l);
      w[(size_t)where[p][0] * K + where[p][1]] = 0.5f; /* finite again: accepted */
      vb_linear ok = tile_linear(w, N, K, is_i8);
      if (CHECK_OK(vb_linear_prepare(&ok))) vb_linear_release(&ok);
      free(w);
    }
}

int main(void) {
  tu_rerun_with_cpu_paths_off();
  printf("cpu: %s; int8 kinds:", vb_cpu_describe());
  for (int k = VB_TILE_I8_AMX; k <= VB_TILE_I8_C; k++)
    if (vb_tile_kind_usable(k)) printf(" %s", vb_tile_kind_name(k));
  printf("\n");
  const int shapes[][3] = {{1, 16, 20}, {17, 40, 64}, {33, 96, 100}, {70, 96, 300}, {32, 64, 128}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    test_i8(shapes[i][0], shapes[i][1], shapes[i][2], (int)i % 2, (int)i % 3 ? 0 : 5);
    test_bf16(shapes[i][0], shapes[i][1], shapes[i][2], (int)i % 2 == 0);
  }
  test_i8(40, 72, 4500, 1, 0); /* K in several cache chunks */
  test_bf16(40, 72, 2200, 1);
  /* enough rows for the work to be split into row ranges too (few panels) */
  test_i8(600, 72, 4500, 1, 0);
  test_bf16(600, 72, 2200, 1);
  test_bf16(1000, 40, 64, 0);
  /* wide panels (up to 1024 columns per thread's item) */
  test_i8(40, 2100, 64, 1, 3);
  test_bf16(40, 2100, 64, 1);
  for (int k = 0; k < VB_TILE_KINDS; k++) {
    test_io(k, 70, 64, 64);  /* K == Kp: bf16 input read in place, last block copied */
    test_io(k, 33, 40, 100); /* padded K: copied */
    test_ln(k, 70, 72, 64);
    test_ln(k, 33, 40, 100);
    test_ln(k, 40, 136, 1408); /* ViT-g's width */
    test_io(k, 700, 40, 64);   /* row ranges: residual and bf16 output */
    test_io(k, 96, 96, 96);    /* square: an output fed back as input, with its row maxima */
    test_io(k, 300, 300, 300); /* several panels and row ranges share the rows' maxima */
    test_ln(k, 70, 2100, 64);  /* wide panels */
  }
  const int packs[][2] = {{257, 88}, {1, 1},    {17, 33}, {31, 64}, {33, 17},
                          {64, 100}, {300, 40}, {5, 128}, {96, 95}};
  for (size_t i = 0; i < sizeof packs / sizeof packs[0]; i++)
    test_att_pack(packs[i][0], packs[i][1]);
  test_attention(2, 257, 257, 2, 88); /* ViT-g's shape */
  test_attention(3, 17, 17, 3, 64);
  test_attention(1, 40, 40, 1, 32);
  /* query blocks in the pipeline with one or two key blocks, and with more
   * key blocks than query blocks; odd head dims */
  test_attention(2, 100, 20, 2, 20);
  test_attention(1, 130, 40, 3, 33);
  test_attention(1, 33, 300, 2, 72);
  test_attention(1, 64, 64, 1, 96);
  test_nonfinite_weight(1);
  if (vb_tile_kind_usable(VB_TILE_BF16_AMX)) test_nonfinite_weight(0);
  return tu_finish();
}
