/* vblip convert --type q8_0 --packed: the language model's Q8_0 matrices
 * stored in vblip's own GGUF tensor type Q8X16 (the q8x16 layout of the VNNI
 * kernels), used where the file is mapped:
 *  - vb_q8x16_unpack inverts vb_q8x16_pack bit for bit (random bytes, odd
 *    row counts with padding rows, several widths, row ranges at any row),
 *    and vb_q8x16_size equals the kernels' vb_q8x16_bytes;
 *  - the tiny OPT and Flan-T5 fixtures converted with and without --packed:
 *    exactly the language model's linear matrices are Q8X16 (its embeddings
 *    and vocabulary heads, the vision encoder, Q-Former and projection as in
 *    the q8_0 file, byte for byte), their unpacked rows equal the q8_0 file's,
 *    general.alignment is 64; --packed with another type is refused; a
 *    packed file converts back to the q8_0 file, to itself with --packed and
 *    to the q8_0 file's float32 conversion, byte for byte;
 *  - each packed layer loaded with bf16 compute: where AVX512-VNNI runs its
 *    packed copy is the mapped tensor itself (no copy), elsewhere its rows are
 *    the q8_0 file's; products for 1 and 40 rows and weight rows equal those
 *    of the layer loaded from the q8_0 file bit for bit; with f32 compute too;
 *  - whole models: greedy and beam token ids from the packed file equal the
 *    q8_0 file's (a caption of the still image);
 * and runs itself again with AVX-512 forced off (VBLIP_NO_AVX512=1: the
 * unpack path), where the same must hold. Hostile Q8X16 tensors: test_gguf. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/weights.h"
#include "formats/gguf.h"
#include "kernels/q8_kernels.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "testutil.h"
#include "vblip.h"

static void test_roundtrip(void) {
  const int Ns[] = {1, 16, 17, 63, 64, 65, 130};
  const int Ks[] = {32, 96, 256};
  tu_rng rng = {12345};
  int bad = 0, bad_rows = 0, bad_f32 = 0, bad_size = 0;
  for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
    for (size_t b = 0; b < sizeof Ks / sizeof Ks[0]; b++) {
      int N = Ns[a], K = Ks[b];
      size_t rb = vb_q8_row_bytes(K), bytes = 0;
      if (!vb_q8x16_size(N, K, &bytes) || bytes != vb_q8x16_bytes(N, K)) bad_size++;
      uint8_t *W = malloc(rb * N), *U = malloc(rb * N);
      void *P = vb_malloc_aligned(vb_q8x16_bytes(N, K));
      float *f = malloc(sizeof(float) * N * K), *g = malloc(sizeof(float) * N * K);
      for (size_t i = 0; i < rb * N; i++)
        W[i] = (uint8_t)(int)((tu_frand(&rng) + 1.0f) * 128.0f);
      for (int n = 0; n < N; n++) /* finite scales, so that the float32 values compare */
        for (int k = 0; k < K / 32; k++)
          W[n * rb + k * 34 + 1] &= 0x3b;
      vb_q8x16_pack(W, N, K, P);
      memset(U, 0xa5, rb * N);
      vb_q8x16_unpack(P, N, K, U);
      if (memcmp(U, W, rb * N) != 0) {
        bad++;
        printf("unpack(pack(w)) differs: N=%d K=%d\n", N, K);
      }
      /* a range from an odd row inside the first panel to the last row */
      int r0 = N > 1 ? N / 3 | 1 : 0;
      if (r0 >= N) r0 = N - 1;
      memset(U, 0xa5, rb * N);
      vb_q8x16_unpack_rows(P, K, r0, N, U);
      if (memcmp(U, W + rb * r0, rb * (N - r0)) != 0) bad_rows++;
      vb_convert_to_f32(VB_DT_Q8_0, W, (int64_t)N * K, f);
      if (vb_q8x16_to_f32(P, N, K, g) != 0 || memcmp(f, g, sizeof(float) * N * K) != 0) bad_f32++;
      free(W), free(U), free(f), free(g);
      vb_free_aligned(P);
    }
  CHECK(bad == 0, "%d shapes: vb_q8x16_unpack is not the inverse of vb_q8x16_pack", bad);
  CHECK(bad_rows == 0, "%d shapes: row ranges of vb_q8x16_unpack_rows differ", bad_rows);
  CHECK(bad_f32 == 0, "%d shapes: vb_q8x16_to_f32 differs from the Q8_0 rows' values", bad_f32);
  CHECK(bad_size == 0, "%d shapes: vb_q8x16_size differs from vb_q8x16_bytes", bad_size);
  size_t s;
  CHECK(!vb_q8x16_size(1, 48, &s) && !vb_q8x16_size(-1, 32, &s) &&
            !vb_q8x16_size(1, (int64_t)1 << 60, &s),
        "vb_q8x16_size accepts K not a multiple of 32, N < 0 or an overflowing size");
}

static int starts_with(const char *s, const char *p) {
  return strncmp(s, p, strlen(p)) == 0;
}

/* What --packed stores in the q8x16 layout: the language model's linear layers. */
static int should_pack(const vb_tensor_info *t) {
  return t->dtype == VB_DT_Q8_0 && starts_with(t->name, "language_model.") &&
         !strstr(t->name, "lm_head") && !strstr(t->name, "embed") && !strstr(t->name, "shared");
}

static int convert(const char *model, const char *out, int packed) {
  vblip_convert_options o = {.type = "q8_0", .packed = packed};
  int rc = vblip_convert_with(tu_fixture(model), out, &o);
  CHECK(rc == 0, "converting %s (packed %d): %s", model, packed, vblip_last_error());
  return rc;
}

/* The two files' tensors: which are packed, and that they hold the same values. */
static void compare_files(const char *what, const char *u_path, const char *p_path) {
  vb_mapped_file mu, mp;
  if (!CHECK_OK(vb_map_file(u_path, &mu))) return;
  if (!CHECK_OK(vb_map_file(p_path, &mp))) {
    vb_unmap_file(&mu);
    return;
  }
  vb_tensor_table tu, tp;
  vb_tt_init(&tu);
  vb_tt_init(&tp);
  vb_gguf_meta meta;
  if (CHECK(vb_gguf_parse(mu.data, mu.size, u_path, NULL, &tu) == 0 &&
                vb_gguf_parse(mp.data, mp.size, p_path, &meta, &tp) == 0,
            "%s: %s", what, vb_error_message())) {
    uint64_t al = 0;
    CHECK(vb_gguf_get_uint(&meta, "general.alignment", &al) && al == 64,
          "%s: general.alignment %llu, not 64", what, (unsigned long long)al);
    vb_gguf_meta_free(&meta);
    int n_packed = 0, wrong_type = 0, wrong_bytes = 0, misaligned = 0;
    CHECK(tu.count == tp.count, "%s: %zu tensors against %zu", what, tp.count, tu.count);
    for (size_t i = 0; i < tu.count; i++) {
      const vb_tensor_info *a = &tu.items[i], *b = vb_tt_find(&tp, a->name);
      if (!CHECK(b && b->ndim == a->ndim && memcmp(b->shape, a->shape, sizeof a->shape) == 0,
                 "%s: %s missing or of another shape in the packed file", what, a->name))
        continue;
      int want = should_pack(a);
      if (b->dtype != (want ? VB_DT_Q8X16 : a->dtype)) {
        wrong_type++;
        printf("%s: %s is %s, want %s\n", what, a->name, vb_dtype_name(b->dtype),
               want ? "Q8X16" : vb_dtype_name(a->dtype));
        continue;
      }
      if (want) {
        n_packed++;
        int N = (int)a->shape[0], K = (int)a->shape[1];
        uint8_t *rows = malloc(a->nbytes);
        vb_q8x16_unpack(b->data, N, K, rows);
        if (memcmp(rows, a->data, a->nbytes) != 0 || b->nbytes != vb_q8x16_bytes(N, K))
          wrong_bytes++;
        if ((uintptr_t)b->data % 64) misaligned++;
        free(rows);
      } else if (b->nbytes != a->nbytes || memcmp(a->data, b->data, a->nbytes) != 0) {
        wrong_bytes++;
        printf("%s: %s differs\n", what, a->name);
      }
    }
    CHECK(n_packed >= 6, "%s: only %d packed tensors", what, n_packed);
    CHECK(wrong_type == 0, "%s: %d tensors of the wrong type", what, wrong_type);
    CHECK(wrong_bytes == 0, "%s: %d tensors with other values", what, wrong_bytes);
    CHECK(misaligned == 0, "%s: %d packed tensors not 64-byte aligned", what, misaligned);
    printf("%s: %d language-model matrices packed\n", what, n_packed);
  }
  vb_tt_free(&tu);
  vb_tt_free(&tp);
  vb_unmap_file(&mu);
  vb_unmap_file(&mp);
}

/* Two files hold the same tensors, byte for byte. */
static void same_tensors(const char *what, const char *a_path, const char *b_path) {
  vb_weights a, b;
  if (!CHECK_OK(vb_weights_open(a_path, &a))) return;
  if (!CHECK_OK(vb_weights_open(b_path, &b))) {
    vb_weights_close(&a);
    return;
  }
  int bad = a.tt.count != b.tt.count;
  for (size_t i = 0; i < a.tt.count && !bad; i++) {
    const vb_tensor_info *x = &a.tt.items[i], *y = vb_tt_find(&b.tt, x->name);
    bad = !y || y->dtype != x->dtype || y->nbytes != x->nbytes ||
          memcmp(y->data, x->data, x->nbytes) != 0;
    if (bad) printf("%s: %s differs\n", what, x->name);
  }
  CHECK(!bad, "%s: the files' tensors differ", what);
  vb_weights_close(&a);
  vb_weights_close(&b);
}

/* Every packed layer loaded from both files: the same products. */
static void compare_layers(const char *what, const char *u_path, const char *p_path,
                           vb_compute compute) {
  vb_weights wu, wp;
  if (!CHECK_OK(vb_weights_open(u_path, &wu))) return;
  if (!CHECK_OK(vb_weights_open(p_path, &wp))) {
    vb_weights_close(&wu);
    return;
  }
  wu.compute = wp.compute = compute;
  int vnni = vb_q8x16_supported(), n = 0, bad_form = 0, bad_out = 0, bad_row = 0;
  tu_rng rng = {7};
  for (size_t i = 0; i < wp.tt.count; i++) {
    const vb_tensor_info *t = &wp.tt.items[i];
    if (t->dtype != VB_DT_Q8X16) continue;
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(t->name) - 7), t->name); /* ".weight" */
    char bias[600];
    snprintf(bias, sizeof bias, "%s.bias", prefix);
    int has_bias = vb_tt_find(&wp.tt, bias) != NULL, N = (int)t->shape[0], K = (int)t->shape[1];
    vb_linear lu, lp;
    if (!CHECK(vb_weights_linear(&wu, prefix, N, K, has_bias, &lu) == 0 &&
                   vb_weights_linear(&wp, prefix, N, K, has_bias, &lp) == 0,
               "%s: loading %s: %s", what, prefix, vb_error_message()))
      continue;
    n++;
    if (compute == VB_COMPUTE_BF16 && vnni) {
      if (!(lp.w == NULL && lp.w_packed == t->data && lp.dtype == VB_DT_Q8_0 &&
            !vb_linear_reads_stored(&lp)))
        bad_form++;
    } else if (lp.w_packed != NULL ||
               (compute == VB_COMPUTE_BF16 &&
                (!lp.w || memcmp(lp.w, lu.w, vb_q8_row_bytes(K) * N) != 0))) {
      bad_form++;
    }
    const int Ms[2] = {1, 40};
    for (int m = 0; m < 2; m++) {
      int M = Ms[m];
      float *x = tu_rand_buf(&rng, (size_t)M * K, 1.0f), *yu = malloc(sizeof(float) * M * N),
            *yp = malloc(sizeof(float) * M * N);
      if (vb_linear_forward(&lu, x, M, yu) != 0 || vb_linear_forward(&lp, x, M, yp) != 0 ||
          memcmp(yu, yp, sizeof(float) * M * N) != 0)
        bad_out++;
      free(x), free(yu), free(yp);
    }
    float *ru = malloc(sizeof(float) * K), *rp = malloc(sizeof(float) * K);
    for (int r = 0; r < N; r += N / 3 + 1)
      if (vb_linear_weight_row(&lu, r, ru) != 0 || vb_linear_weight_row(&lp, r, rp) != 0 ||
          memcmp(ru, rp, sizeof(float) * K) != 0)
        bad_row++;
    free(ru), free(rp);
    vb_linear_release(&lu);
    vb_linear_release(&lp);
  }
  const char *cn = compute == VB_COMPUTE_BF16 ? "bf16" : "f32";
  CHECK(n >= 6, "%s (%s): only %d packed layers loaded", what, cn, n);
  CHECK(bad_form == 0, "%s (%s, VNNI %d): %d packed layers not %s", what, cn, vnni, bad_form,
        compute == VB_COMPUTE_BF16 && vnni ? "used where they are mapped"
                                           : "unpacked to their rows");
  CHECK(bad_out == 0, "%s (%s): %d products differ from the q8_0 file's", what, cn, bad_out);
  CHECK(bad_row == 0, "%s (%s): %d weight rows differ from the q8_0 file's", what, cn, bad_row);
  vb_weights_close(&wu);
  vb_weights_close(&wp);
}

/* Token ids of a caption of the image, greedy and with 3 beams. */
static int caption_ids(const char *model, int32_t *ids, int cap) {
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  vblip_model *m = vblip_model_load(model, &lo);
  if (!CHECK(m != NULL, "loading %s: %s", model, vblip_last_error())) return -1;
  /* the still image: the language model's input as a video's, at a fraction of the time */
  const char *media[1] = {"media/image_rgb_203x150.png"};
  int n = 0;
  for (int v = 0; v < 1; v++) {
    vblip_video vid;
    if (!CHECK(vblip_video_load(m, tu_fixture(media[v]), NULL, &vid) == 0 &&
                   vblip_video_encode(m, &vid) == 0,
               "%s: %s", media[v], vblip_last_error())) {
      vblip_video_free(&vid);
      continue;
    }
    for (int beams = 1; beams <= 3; beams += 2) {
      vblip_gen_params p;
      vblip_gen_params_default(&p);
      p.num_beams = beams;
      p.max_new_tokens = 12;
      vblip_answer a;
      if (CHECK(vblip_generate(m, &vid, NULL, &p, NULL, NULL, &a) == 0, "%s", vblip_last_error()))
        for (int i = 0; i < a.n_tokens && n < cap; i++)
          ids[n++] = a.token_ids[i];
      if (n < cap) ids[n++] = -1; /* a separator */
      vblip_answer_free(&a);
    }
    vblip_video_free(&vid);
  }
  vblip_model_free(m);
  return n;
}

static void compare_captions(const char *what, const char *u_path, const char *p_path) {
  int32_t a[256], b[256];
  int na = caption_ids(u_path, a, 256), nb = caption_ids(p_path, b, 256);
  CHECK(na > 4 && na == nb && memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0,
        "%s: the packed file's token ids differ from the q8_0 file's (%d and %d ids)", what, na,
        nb);
}

int main(void) {
  vb_cpu_init();
  printf("AVX512-VNNI q8x16 kernels: %s\n", vb_q8x16_supported() ? "yes" : "no");
  test_roundtrip();
  const char *models[2] = {"models/videoblip-opt-tiny", "models/videoblip-flant5-tiny"};
  for (int i = 0; i < 2; i++) {
    char u[1024], p[1024];
    snprintf(u, sizeof u, "%s/m%d-q8_0.gguf", tu_tmpdir(), i);
    snprintf(p, sizeof p, "%s/m%d-packed.gguf", tu_tmpdir(), i);
    if (convert(models[i], u, 0) || convert(models[i], p, 1)) continue;
    double t0 = vb_now_ms();
    compare_files(models[i], u, p);
    double t1 = vb_now_ms();
    compare_layers(models[i], u, p, VB_COMPUTE_BF16);
    compare_layers(models[i], u, p, VB_COMPUTE_F32);
    /* a packed file converted again: unpacked it is the q8_0 file, packed itself,
     * and in float32 the q8_0 file's float32 conversion */
    char u2[1024], p2[1024], f1[1024], f2[1024];
    snprintf(u2, sizeof u2, "%s/m%d-again-q8_0.gguf", tu_tmpdir(), i);
    snprintf(p2, sizeof p2, "%s/m%d-again-packed.gguf", tu_tmpdir(), i);
    snprintf(f1, sizeof f1, "%s/m%d-f32-from-q8_0.gguf", tu_tmpdir(), i);
    snprintf(f2, sizeof f2, "%s/m%d-f32-from-packed.gguf", tu_tmpdir(), i);
    vblip_convert_options o = {.type = "q8_0"};
    CHECK(vblip_convert_with(p, u2, &o) == 0, "%s", vblip_last_error());
    o.packed = 1;
    CHECK(vblip_convert_with(p, p2, &o) == 0, "%s", vblip_last_error());
    CHECK(vblip_convert(u, f1, "f32", 0) == 0 && vblip_convert(p, f2, "f32", 0) == 0, "%s",
          vblip_last_error());
    same_tensors("packed -> q8_0", u, u2);
    same_tensors("packed -> packed", p, p2);
    same_tensors("packed -> f32", f1, f2);
    double t2 = vb_now_ms();
    compare_captions(models[i], u, p);
    printf("%s: files %.0f ms, layers %.0f ms, captions %.0f ms\n", models[i], t1 - t0, t2 - t1,
           vb_now_ms() - t2);
  }
  char x[1024];
  snprintf(x, sizeof x, "%s/q4-packed.gguf", tu_tmpdir());
  vblip_convert_options o = {.type = "q4_0", .packed = 1};
  CHECK(vblip_convert_with(tu_fixture(models[0]), x, &o) != 0 &&
            strstr(vblip_last_error(), "--type q8_0") && !vb_file_exists(x),
        "--packed with q4_0: %s", vblip_last_error());
  tu_rerun_with_env("VBLIP_NO_AVX512=1");
  return tu_finish();
}
