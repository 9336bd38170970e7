/* vblip convert / GGUF: converted fixture models give the directory's outputs
 * (f32 exactly; bf16, f16 and q8_0 within measured tolerances; with bf16
 * compute, the directory and the q8_0 file within 2e-2 per stage), the CLI's exit
 * codes and atomic writes, and hostile GGUF files fail with clear errors. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/gguf.h"
#include "runtime/common.h"
#include "runtime/vfs.h"
#include "runtime/cpu.h"
#include "testutil.h"
#include "vblip.h"


#define VIDEO "media/video1_h264_320x240_30fps_12s.mp4"

/* ---- running a model ---- */

typedef struct {
  vblip_video v;
  int32_t greedy[32];
  int n_greedy;
  int32_t beam[32];
  int n_beam;
  float beam_score;
  double load_ms;
} run_out;

static int run_model_as(const char *path, vblip_dtype dtype, run_out *o) {
  memset(o, 0, sizeof *o);
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = dtype;
  lo.progress = 0;
  double t0 = vb_now_ms();
  vblip_model *m = vblip_model_load(path, &lo);
  o->load_ms = vb_now_ms() - t0;
  if (!CHECK(m != NULL, "load %s: %s", path, vblip_last_error())) return -1;
  vblip_sampling s;
  vblip_sampling_default(&s);
  int rc = -1;
  if (CHECK(vblip_video_load(m, tu_fixture(VIDEO), &s, &o->v) == 0, "video: %s", vblip_last_error()) &&
      CHECK(vblip_video_encode(m, &o->v) == 0, "encode: %s", vblip_last_error())) {
    vblip_gen_params p;
    vblip_gen_params_default(&p);
    p.num_beams = 1;
    p.max_new_tokens = 12;
    vblip_answer a;
    if (CHECK(vblip_generate(m, &o->v, "Question: what is it? Answer:", &p, NULL, NULL, &a) == 0, "%s",
              vblip_last_error())) {
      o->n_greedy = a.n_tokens < 32 ? a.n_tokens : 32;
      memcpy(o->greedy, a.token_ids, (size_t)o->n_greedy * sizeof(int32_t));
      vblip_answer_free(&a);
      p.num_beams = 3;
      if (CHECK(vblip_generate(m, &o->v, "", &p, NULL, NULL, &a) == 0, "%s", vblip_last_error())) {
        o->n_beam = a.n_tokens < 32 ? a.n_tokens : 32;
        memcpy(o->beam, a.token_ids, (size_t)o->n_beam * sizeof(int32_t));
        o->beam_score = a.score;
        vblip_answer_free(&a);
        rc = 0;
      }
    }
  }
  vblip_model_free(m);
  return rc;
}

static int run_model(const char *path, run_out *o) { return run_model_as(path, VBLIP_DTYPE_F32, o); }

static double rel_l2(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int same_tokens(const int32_t *a, int na, const int32_t *b, int nb) {
  return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

/* Common prefix length of two token sequences. */
static int agree(const int32_t *a, int na, const int32_t *b, int nb) {
  int i = 0;
  while (i < na && i < nb && a[i] == b[i]) i++;
  return i;
}

static const char *tmp_path(const char *name) {
  static char buf[8][512];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
  return p;
}

/* No "*.tmp-*" file left in dir. */
static int count_tmp(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".tmp-")) n++;
  closedir(d);
  return n;
}

/* Tolerances: relative L2 error of each stage against the f32 directory model,
 * about 3x the largest value measured on the fixtures (printed by the test). */
typedef struct {
  const char *type;
  double vision, qformer, projected;
} tol;
static const tol k_tol[] = {
    {"bf16", 1e-2, 1e-2, 1e-2}, /* measured max 2.2e-3 / 3.3e-3 / 3.3e-3 */
    {"f16", 2e-3, 2e-3, 2e-3},  /* measured max 2.6e-4 / 4.6e-4 / 4.5e-4 */
    {"q8_0", 3e-2, 3e-2, 3e-2}, /* measured max 4.1e-3 / 9.3e-3 / 1.0e-2 */
};

static void test_model(const char *label, const char *fixture) {
  run_out ref;
  if (run_model(tu_fixture(fixture), &ref) != 0) return;
  size_t nv = (size_t)ref.v.vision_tokens * ref.v.vision_width, nq = (size_t)ref.v.n_query * ref.v.qformer_width,
         np = (size_t)ref.v.n_query * ref.v.lm_width;
  /* f32: identical */
  char name[128];
  snprintf(name, sizeof name, "%s-f32.gguf", label);
  const char *out = tmp_path(name);
  if (CHECK(vblip_convert(tu_fixture(fixture), out, "f32", 0) == 0, "convert %s: %s", label, vblip_last_error())) {
    run_out g;
    if (run_model(out, &g) == 0) {
      CHECK(g.v.vision_tokens == ref.v.vision_tokens && memcmp(g.v.vision, ref.v.vision, nv * 4) == 0,
            "%s f32 gguf: vision differs", label);
      CHECK(memcmp(g.v.qformer, ref.v.qformer, nq * 4) == 0, "%s f32 gguf: qformer differs", label);
      CHECK(memcmp(g.v.projected, ref.v.projected, np * 4) == 0, "%s f32 gguf: projection differs", label);
      CHECK(same_tokens(g.greedy, g.n_greedy, ref.greedy, ref.n_greedy), "%s f32 gguf: greedy tokens differ", label);
      CHECK(same_tokens(g.beam, g.n_beam, ref.beam, ref.n_beam) && g.beam_score == ref.beam_score,
            "%s f32 gguf: beam search differs (score %.9g vs %.9g)", label, g.beam_score, ref.beam_score);
      printf("%s f32: identical stages, greedy and beam outputs (beam score %.6g); load %.1f ms (directory %.1f ms)\n",
             label, g.beam_score, g.load_ms, ref.load_ms);
      vblip_video_free(&g.v);
    }
  }
  for (size_t t = 0; t < sizeof k_tol / sizeof k_tol[0]; t++) {
    snprintf(name, sizeof name, "%s-%s.gguf", label, k_tol[t].type);
    out = tmp_path(name);
    if (!CHECK(vblip_convert(tu_fixture(fixture), out, k_tol[t].type, 0) == 0, "convert %s %s: %s", label,
               k_tol[t].type, vblip_last_error()))
      continue;
    run_out g;
    if (run_model(out, &g) != 0) continue;
    double ev = rel_l2(g.v.vision, ref.v.vision, nv), eq = rel_l2(g.v.qformer, ref.v.qformer, nq),
           ep = rel_l2(g.v.projected, ref.v.projected, np);
    int ga = agree(g.greedy, g.n_greedy, ref.greedy, ref.n_greedy);
    int ba = agree(g.beam, g.n_beam, ref.beam, ref.n_beam);
    printf("%s %s: rel L2 vision %.2e qformer %.2e projection %.2e; greedy %d/%d tokens agree%s, beam %d/%d%s\n",
           label, k_tol[t].type, ev, eq, ep, ga, ref.n_greedy,
           same_tokens(g.greedy, g.n_greedy, ref.greedy, ref.n_greedy) ? " (identical)" : "", ba, ref.n_beam,
           same_tokens(g.beam, g.n_beam, ref.beam, ref.n_beam) ? " (identical)" : "");
    CHECK(ev < k_tol[t].vision, "%s %s vision rel error %g", label, k_tol[t].type, ev);
    CHECK(eq < k_tol[t].qformer, "%s %s qformer rel error %g", label, k_tol[t].type, eq);
    CHECK(ep < k_tol[t].projected, "%s %s projection rel error %g", label, k_tol[t].type, ep);
    CHECK(ev > 0, "%s %s: suspiciously exact", label, k_tol[t].type);
    /* Tokens: beam search kept its tokens for every type and model; greedy too
     * except bf16 on the T5 fixture (it leaves the f32 path after 4 of 8 tokens:
     * these random tiny models have logits around 1e3 and near-ties, so a 3e-3
     * relative error flips a choice). Asserted where measured to hold. */
    CHECK(same_tokens(g.beam, g.n_beam, ref.beam, ref.n_beam), "%s %s: beam tokens differ", label, k_tol[t].type);
    if (strcmp(k_tol[t].type, "bf16") != 0)
      CHECK(same_tokens(g.greedy, g.n_greedy, ref.greedy, ref.n_greedy), "%s %s: greedy tokens differ", label,
            k_tol[t].type);
    vblip_video_free(&g.v);
  }
  /* bf16 compute (issue 6's accuracy gate): the directory model and the q8_0
   * file with the engine's own kernels (oneDNN bf16, the bf16 and q8_0 GEMVs,
   * the q8_0 weights used where they lie) against the exact f32 run: every
   * stage within 2e-2, beam tokens the same; greedy asserted where it holds
   * (not bf16 weights on the T5 fixture, as above; the q8_0 GEMV keeps the
   * activations f32 and keeps greedy there). */
  if (vb_cpu_prefers_bf16()) {
    const char *srcs[2][2] = {{"directory", tu_fixture(fixture)}, {"q8_0 file", NULL}};
    snprintf(name, sizeof name, "%s-q8_0.gguf", label);
    srcs[1][1] = tmp_path(name);
    for (int i = 0; i < 2; i++) {
      run_out g;
      if (run_model_as(srcs[i][1], VBLIP_DTYPE_BF16, &g) != 0) continue;
      double ev = rel_l2(g.v.vision, ref.v.vision, nv), eq = rel_l2(g.v.qformer, ref.v.qformer, nq),
             ep = rel_l2(g.v.projected, ref.v.projected, np);
      int ga = agree(g.greedy, g.n_greedy, ref.greedy, ref.n_greedy);
      printf("%s %s, bf16 compute: rel L2 vision %.2e qformer %.2e projection %.2e; greedy %d/%d, beam %s\n",
             label, srcs[i][0], ev, eq, ep, ga, ref.n_greedy,
             same_tokens(g.beam, g.n_beam, ref.beam, ref.n_beam) ? "identical" : "differs");
      CHECK(ev < 2e-2 && eq < 2e-2 && ep < 2e-2, "%s %s bf16 compute: stage error %g / %g / %g", label,
            srcs[i][0], ev, eq, ep);
      CHECK(ev > 0, "%s %s bf16 compute: suspiciously exact (f32 ran?)", label, srcs[i][0]);
      CHECK(same_tokens(g.beam, g.n_beam, ref.beam, ref.n_beam), "%s %s bf16 compute: beam tokens differ",
            label, srcs[i][0]);
      /* not on the T5 directory model: its f32 run has a 3.4-logit (2e-3
       * relative) margin at the fifth token of this prompt and bf16 compute,
       * logits 6.6e-3 off, picks the runner-up (4 of 8 agree); transformers'
       * own cases hold with bf16 (test_kernels_accuracy.c) */
      if (!(i == 0 && strncmp(label, "flant5", 6) == 0))
        CHECK(same_tokens(g.greedy, g.n_greedy, ref.greedy, ref.n_greedy),
              "%s %s bf16 compute: greedy tokens differ", label, srcs[i][0]);
      vblip_video_free(&g.v);
    }
  }
  vblip_video_free(&ref.v);
}

/* ---- the file's contents ---- */

static void test_contents(void) {
  const char *fixdir = tu_fixture("models/videoblip-opt-tiny");
  /* a .bin-only copy (symlinks): the tied lm_head copy must not be written */
  const char *bindir = tmp_path("opt-bin");
  mkdir(bindir, 0755);
  const char *files[] = {"config.json", "generation_config.json", "merges.txt", "preprocessor_config.json",
                         "pytorch_model.bin", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
                         "vocab.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/%s", fixdir, files[i]);
    snprintf(dst, sizeof dst, "%s/%s", bindir, files[i]);
    if (symlink(src, dst) != 0) perror("symlink");
  }
  const char *from_bin = tmp_path("opt-from-bin.gguf"), *from_st = tmp_path("opt-tiny-f32.gguf");
  if (!CHECK(vblip_convert(bindir, from_bin, "f32", 0) == 0, "convert .bin: %s", vblip_last_error())) return;
  vb_mapped_file a, b;
  if (CHECK_OK(vb_map_file(from_bin, &a))) {
    vb_gguf_meta meta;
    vb_tensor_table tt;
    vb_tt_init(&tt);
    if (CHECK(vb_gguf_parse(a.data, a.size, "from-bin", &meta, &tt) == 0, "%s", vb_error_message())) {
      CHECK(vb_tt_find(&tt, "language_model.lm_head.weight") == NULL, "tied lm_head was written");
      CHECK(vb_tt_find(&tt, "language_model.model.decoder.embed_tokens.weight") != NULL, "no embedding");
      const vb_gguf_kv *arch = vb_gguf_get(&meta, "general.architecture");
      CHECK(arch && arch->type == VB_GGUF_STRING && arch->len == 9 && memcmp(arch->data, "videoblip", 9) == 0,
            "general.architecture");
      uint64_t al = 0;
      CHECK(vb_gguf_get_uint(&meta, "general.alignment", &al) && al == 32, "general.alignment");
      CHECK(meta.data_offset % 32 == 0, "data offset %zu", meta.data_offset);
      /* embedded files are byte-identical to the directory's */
      const char *emb[] = {"config.json", "vocab.json", "merges.txt", "tokenizer.json", "preprocessor_config.json"};
      for (size_t i = 0; i < 5; i++) {
        char key[128], path[1024];
        snprintf(key, sizeof key, "vblip.file.%s", emb[i]);
        snprintf(path, sizeof path, "%s/%s", fixdir, emb[i]);
        const vb_gguf_kv *kv = vb_gguf_get(&meta, key);
        char *want = NULL;
        size_t wl = 0;
        CHECK(kv && vb_read_file(path, 1u << 30, &want, &wl) == 0 && kv->len == wl && memcmp(kv->data, want, wl) == 0,
              "embedded %s differs", emb[i]);
        free(want);
      }
      /* the .bin and safetensors conversions hold the same tensors */
      if (CHECK_OK(vb_map_file(from_st, &b))) {
        vb_tensor_table t2;
        vb_tt_init(&t2);
        if (CHECK(vb_gguf_parse(b.data, b.size, "from-st", NULL, &t2) == 0, "%s", vb_error_message())) {
          CHECK(t2.count == tt.count, "%zu vs %zu tensors", t2.count, tt.count);
          size_t diff = 0;
          for (size_t i = 0; i < tt.count; i++) {
            const vb_tensor_info *x = &tt.items[i], *y = vb_tt_find(&t2, x->name);
            if (!y || y->nbytes != x->nbytes || memcmp(x->data, y->data, x->nbytes) != 0) diff++;
          }
          CHECK(diff == 0, "%zu tensors differ between the .bin and safetensors conversions", diff);
        }
        vb_tt_free(&t2);
        vb_unmap_file(&b);
      }
      vb_gguf_meta_free(&meta);
    }
    vb_tt_free(&tt);
    vb_unmap_file(&a);
  }
  /* q8_0: which tensors got quantized */
  const char *q8 = tmp_path("opt-tiny-q8_0.gguf");
  vb_tensor_table tq;
  vb_tt_init(&tq);
  if (CHECK(vb_gguf_load(&tq, q8) == 0, "%s", vb_error_message())) {
    const vb_tensor_info *t = vb_tt_find(&tq, "vision_model.encoder.layers.0.mlp.fc1.weight");
    CHECK(t && t->dtype == VB_DT_Q8_0, "ViT fc1 not Q8_0");
    t = vb_tt_find(&tq, "language_model.model.decoder.embed_tokens.weight");
    CHECK(t && t->dtype == VB_DT_F32, "token embedding not f32");
    t = vb_tt_find(&tq, "vision_model.encoder.layers.0.layer_norm1.weight");
    CHECK(t && t->dtype == VB_DT_F32, "norm not f32");
    t = vb_tt_find(&tq, "query_tokens");
    CHECK(t && t->dtype == VB_DT_F32, "query_tokens not f32");
    size_t nq = 0;
    for (size_t i = 0; i < tq.count; i++) nq += tq.items[i].dtype == VB_DT_Q8_0;
    printf("opt q8_0: %zu of %zu tensors quantized\n", nq, tq.count);
  }
  vb_tt_free(&tq);
  /* a converted GGUF converts again (re-quantizing from its f32 weights) */
  const char *again = tmp_path("again-q8_0.gguf");
  CHECK(vblip_convert(from_st, again, "q8_0", 0) == 0, "gguf -> gguf: %s", vblip_last_error());
  CHECK(!vb_vfs_is_mounted(from_st), "the input GGUF stays mounted after convert");
  vb_mapped_file x, y;
  if (vb_map_file(again, &x) == 0) {
    if (vb_map_file(q8, &y) == 0) {
      CHECK(x.size == y.size, "re-converted q8_0 size %zu vs %zu", x.size, y.size);
      vb_unmap_file(&y);
    }
    vb_unmap_file(&x);
  }
}

/* ---- the CLI ---- */

static int run_cli(const char *args, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s 2>&1", VBLIP_BINARY, args);
  return tu_run(cmd, out);
}

static void test_cli(void) {
  char args[2048], *out = NULL;
  const char *fixdir = tu_fixture("models/videoblip-flant5-tiny");
  const char *dir = tmp_path("cli");
  mkdir(dir, 0755);
  CHECK(run_cli("convert", &out) == 2 && strstr(out, "--model"), "no args: %s", out);
  free(out);
  snprintf(args, sizeof args, "convert --model %s", fixdir);
  CHECK(run_cli(args, &out) == 2 && strstr(out, "--out"), "no --out: %s", out);
  free(out);
  snprintf(args, sizeof args, "convert --model %s --out %s/x.gguf --type q4_1", fixdir, dir);
  CHECK(run_cli(args, &out) == 2 && strstr(out, "q4_1"), "bad type: %s", out);
  free(out);
  snprintf(args, sizeof args, "convert --model %s/nonexistent --out %s/x.gguf", dir, dir);
  /* the missing path itself is the problem, not a file inside it */
  CHECK(run_cli(args, &out) == 1 && strstr(out, "nonexistent: No such file or directory") &&
            !strstr(out, "config.json"),
        "missing model: %s", out);
  free(out);
  snprintf(args, sizeof args, "convert --model %s --out %s/t5.gguf --type bf16", fixdir, dir);
  CHECK(run_cli(args, &out) == 0 && strstr(out, "wrote"), "convert: %s", out);
  free(out);
  char p[1024];
  snprintf(p, sizeof p, "%s/t5.gguf", dir);
  CHECK(vb_file_exists(p) && vb_gguf_is_file(p), "no output");
  CHECK(count_tmp(dir) == 0, "a temporary file remains");
  /* the converted file works as --model */
  snprintf(args, sizeof args, "caption --model %s/t5.gguf --beams 1 --max-new-tokens 4 %s", dir, tu_fixture(VIDEO));
  CHECK(run_cli(args, &out) == 0, "caption from gguf: %s", out);
  free(out);
  /* int8 vision: --vision-type on convert, --vision-dtype when loading */
  snprintf(args, sizeof args, "convert --model %s --out %s/x.gguf --vision-type int4", fixdir, dir);
  CHECK(run_cli(args, &out) == 2 && strstr(out, "--vision-type"), "bad vision type: %s", out);
  free(out);
  snprintf(args, sizeof args,
           "convert --model %s --out %s/t5i8.gguf --type q8_0 --vision-type int8", fixdir, dir);
  CHECK(run_cli(args, &out) == 0 && strstr(out, "wrote"), "convert int8 vision: %s", out);
  free(out);
  const char *vds[] = {"int8", "bf16", "f32", "auto"};
  for (int i = 0; i < 4; i++) {
    snprintf(args, sizeof args,
             "caption --model %s/t5i8.gguf --vision-dtype %s --beams 1 --max-new-tokens 4 %s", dir,
             vds[i], tu_fixture(VIDEO));
    CHECK(run_cli(args, &out) == 0, "caption --vision-dtype %s from an int8 gguf: %s", vds[i], out);
    free(out);
  }
  snprintf(args, sizeof args, "caption --model %s --vision-dtype int4 %s", fixdir,
           tu_fixture(VIDEO));
  CHECK(run_cli(args, &out) == 2 && strstr(out, "--vision-dtype"), "bad vision dtype: %s", out);
  free(out);
  snprintf(args, sizeof args, "tokenize --model %s/t5.gguf < /dev/null", dir);
  CHECK(run_cli(args, &out) == 0, "tokenize from gguf: %s", out);
  free(out);
  /* unwritable destination: an error, nothing left */
  snprintf(args, sizeof args, "convert --model %s --out %s/no-such-dir/x.gguf", fixdir, dir);
  CHECK(run_cli(args, &out) == 1 && strstr(out, "cannot create"), "bad out dir: %s", out);
  free(out);
  /* interrupted mid-write (file size limit: SIGXFSZ): no output, no temporary file */
  snprintf(args, sizeof args, "bash -c 'ulimit -f 200; exec %s convert --model %s --out %s/cut.gguf' 2>&1",
           VBLIP_BINARY, tu_fixture("models/videoblip-opt-tiny"), dir);
  int st = tu_run(args, &out);
  snprintf(p, sizeof p, "%s/cut.gguf", dir);
  CHECK(st != 0 && !vb_file_exists(p) && count_tmp(dir) == 0, "interrupted conversion (status %d) left files: %s",
        st, out);
  free(out);
}

/* An interrupted write inside the library (EFBIG): -1, and the temporary file is gone. */
static void test_write_failure(void) {
  const char *dir = tmp_path("efbig");
  mkdir(dir, 0755);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 100000;
  signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &lim);
  char out[1024];
  snprintf(out, sizeof out, "%s/x.gguf", dir);
  int rc = vblip_convert(tu_fixture("models/videoblip-opt-tiny"), out, "f32", 0);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, SIG_DFL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "error writing"), "write failure: rc %d, %s", rc, vblip_last_error());
  CHECK(!vb_file_exists(out) && count_tmp(dir) == 0, "a failed conversion left files");
}

/* ---- hostile files ---- */

static void str(tu_bytes *b, const char *s) {
  tu_put_le(b, strlen(s), 8);
  tu_put(b, s, strlen(s));
}
static void pad(tu_bytes *b, size_t a) {
  while (b->n % a) tu_put_le(b, 0, 1);
}

typedef struct {
  const char *name;
  int ndim;
  uint64_t ne[5];
  uint32_t type;
  uint64_t offset;
} tdesc;

/* header + the given raw kv bytes + tensor infos + aligned data of data_len tu_bytes */
static tu_bytes build_n(uint32_t version, uint64_t n_kv, const tu_bytes *kv, const tdesc *t, uint64_t nt, int n_desc,
                     size_t data_len) {
  tu_bytes b = {0};
  tu_put(&b, "GGUF", 4);
  tu_put_le(&b, version, 4);
  tu_put_le(&b, nt, 8);
  tu_put_le(&b, n_kv, 8);
  if (kv) tu_put(&b, kv->p, kv->n);
  for (int i = 0; i < n_desc && t; i++) {
    str(&b, t[i].name);
    tu_put_le(&b, (uint64_t)t[i].ndim, 4);
    for (int d = 0; d < t[i].ndim; d++) tu_put_le(&b, t[i].ne[d], 8);
    tu_put_le(&b, t[i].type, 4);
    tu_put_le(&b, t[i].offset, 8);
  }
  pad(&b, 32);
  for (size_t i = 0; i < data_len; i++) tu_put_le(&b, (uint64_t)(i * 7 + 1) & 0x3f, 1);
  return b;
}
#define build(v, nkv, kv, t, nt, data) build_n(v, nkv, kv, t, nt, (nt) < 3 ? (int)(nt) : 3, data)

static void expect_error(const char *what, const tu_bytes *b, const char *needle) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_gguf_meta meta;
  int rc = vb_gguf_parse(b->p, b->n, "hostile.gguf", &meta, &tt);
  CHECK(rc != 0, "%s: accepted", what);
  if (rc == 0) vb_gguf_meta_free(&meta);
  else CHECK(strstr(vb_error_message(), needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, vb_error_message(), needle);
  vb_tt_free(&tt);
}

static void test_hostile(void) {
  /* a valid file first */
  tu_bytes kv = {0};
  str(&kv, "general.architecture");
  tu_put_le(&kv, VB_GGUF_STRING, 4);
  str(&kv, "videoblip");
  str(&kv, "general.alignment");
  tu_put_le(&kv, VB_GGUF_UINT32, 4);
  tu_put_le(&kv, 32, 4);
  str(&kv, "x.flag");
  tu_put_le(&kv, VB_GGUF_BOOL, 4);
  tu_put_le(&kv, 1, 1);
  str(&kv, "x.words");
  tu_put_le(&kv, VB_GGUF_ARRAY, 4);
  tu_put_le(&kv, VB_GGUF_STRING, 4);
  tu_put_le(&kv, 2, 8);
  str(&kv, "ab");
  str(&kv, "cde");
  str(&kv, "x.nested");
  tu_put_le(&kv, VB_GGUF_ARRAY, 4);
  tu_put_le(&kv, VB_GGUF_ARRAY, 4);
  tu_put_le(&kv, 1, 8);
  tu_put_le(&kv, VB_GGUF_UINT16, 4);
  tu_put_le(&kv, 3, 8);
  tu_put_le(&kv, 1, 2);
  tu_put_le(&kv, 2, 2);
  tu_put_le(&kv, 3, 2);
  tdesc good[3] = {{"a", 2, {3, 2}, VB_GGML_F32, 0},     /* [2,3] f32: 24 tu_bytes */
                   {"q", 2, {64, 1}, VB_GGML_Q8_0, 32},  /* 68 tu_bytes */
                   {"h", 1, {4}, VB_GGML_BF16, 128}};    /* 8 tu_bytes */
  tu_bytes ok = build(3, 5, &kv, good, 3, 136);
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_gguf_meta meta;
  if (CHECK(vb_gguf_parse(ok.p, ok.n, "good", &meta, &tt) == 0, "valid file: %s", vb_error_message())) {
    const vb_tensor_info *a = vb_tt_find(&tt, "a");
    CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->dtype == VB_DT_F32, "tensor a shape");
    CHECK(a && a->data == ok.p + meta.data_offset, "tensor a data");
    const vb_tensor_info *q = vb_tt_find(&tt, "q");
    CHECK(q && q->dtype == VB_DT_Q8_0 && q->shape[0] == 1 && q->shape[1] == 64 && q->nbytes == 68, "tensor q");
    const vb_gguf_kv *w = vb_gguf_get(&meta, "x.words");
    CHECK(w && w->type == VB_GGUF_ARRAY && w->arr_type == VB_GGUF_STRING && w->arr_n == 2, "string array");
    vb_gguf_meta_free(&meta);
  }
  vb_tt_free(&tt);
  /* truncated anywhere before the end of the last tensor's data */
  size_t need_len = ok.n - 136 + 136; /* data section ends exactly at h's end (128 + 8) */
  int accepted = 0;
  for (size_t n = 0; n < need_len; n++) {
    vb_tt_init(&tt);
    if (vb_gguf_parse(ok.p, n, "cut", NULL, &tt) == 0) accepted++;
    vb_tt_free(&tt);
  }
  CHECK(accepted == 0, "%d truncated files accepted", accepted);
  tu_bytes cut = ok;
  cut.n = 124;
  expect_error("truncated in the metadata", &cut, "truncated");

  tu_bytes b = ok;
  b.p = malloc(ok.n);
  memcpy(b.p, ok.p, ok.n);
  memcpy(b.p, "GGML", 4);
  expect_error("bad magic", &b, "not a GGUF");
  free(b.p);

  tu_bytes v1 = build(1, 5, &kv, good, 3, 136);
  expect_error("version 1", &v1, "version 1");
  free(v1.p);
  tu_bytes be = build(0x03000000u, 5, &kv, good, 3, 136);
  expect_error("big-endian", &be, "big-endian");
  free(be.p);
  tu_bytes hc = build(3, 5, &kv, good, (uint64_t)1 << 62, 0);
  expect_error("huge tensor count", &hc, "tensor count");
  free(hc.p);
  tu_bytes hk = build(3, (uint64_t)1 << 62, &kv, good, 3, 136);
  expect_error("huge kv count", &hk, "metadata count");
  free(hk.p);

  /* metadata values */
  struct {
    const char *what, *needle;
    int kind;
  } kvcases[] = {
      {"huge key length", "length", 0},        {"huge string length", "length", 1},
      {"huge array", "array of", 2},           {"unknown value type", "unknown value type", 3},
      {"bool 2", "bool", 4},                   {"deep arrays", "nested", 5},
      {"alignment 0", "alignment", 6},         {"alignment 3", "alignment", 7},
      {"alignment as string", "alignment", 8}, {"duplicate key", "twice", 9},
      {"empty key", "empty", 10},              {"unknown array type", "unknown array element type", 11},
  };
  for (size_t i = 0; i < sizeof kvcases / sizeof kvcases[0]; i++) {
    tu_bytes k = {0};
    uint64_t nkv = 1;
    switch (kvcases[i].kind) {
    case 0: tu_put_le(&k, (uint64_t)1 << 60, 8); tu_put_le(&k, 0, 8); break;
    case 1: str(&k, "s"); tu_put_le(&k, VB_GGUF_STRING, 4); tu_put_le(&k, (uint64_t)1 << 60, 8); tu_put_le(&k, 0, 8); break;
    case 2: str(&k, "a"); tu_put_le(&k, VB_GGUF_ARRAY, 4); tu_put_le(&k, VB_GGUF_UINT64, 4); tu_put_le(&k, (uint64_t)1 << 61, 8); tu_put_le(&k, 0, 8); break;
    case 3: str(&k, "t"); tu_put_le(&k, 13, 4); tu_put_le(&k, 0, 8); break;
    case 4: str(&k, "b"); tu_put_le(&k, VB_GGUF_BOOL, 4); tu_put_le(&k, 2, 1); tu_put_le(&k, 0, 8); break;
    case 5:
      str(&k, "d");
      tu_put_le(&k, VB_GGUF_ARRAY, 4);
      for (int j = 0; j < 8; j++) { tu_put_le(&k, VB_GGUF_ARRAY, 4); tu_put_le(&k, 1, 8); }
      tu_put_le(&k, VB_GGUF_UINT8, 4); tu_put_le(&k, 1, 8); tu_put_le(&k, 0, 1);
      break;
    case 6: str(&k, "general.alignment"); tu_put_le(&k, VB_GGUF_UINT32, 4); tu_put_le(&k, 0, 4); break;
    case 7: str(&k, "general.alignment"); tu_put_le(&k, VB_GGUF_UINT32, 4); tu_put_le(&k, 3, 4); break;
    case 8: str(&k, "general.alignment"); tu_put_le(&k, VB_GGUF_STRING, 4); str(&k, "32"); break;
    case 9: nkv = 2; for (int j = 0; j < 2; j++) { str(&k, "k"); tu_put_le(&k, VB_GGUF_UINT8, 4); tu_put_le(&k, 1, 1); } break;
    case 10: tu_put_le(&k, 0, 8); tu_put_le(&k, VB_GGUF_UINT8, 4); tu_put_le(&k, 1, 1); break;
    case 11: str(&k, "a"); tu_put_le(&k, VB_GGUF_ARRAY, 4); tu_put_le(&k, 77, 4); tu_put_le(&k, 1, 8); tu_put_le(&k, 0, 8); break;
    }
    tu_bytes f = build(3, nkv, &k, good, 3, 136);
    expect_error(kvcases[i].what, &f, kvcases[i].needle);
    free(f.p);
    free(k.p);
  }

  /* tensor infos */
  struct {
    const char *what, *needle;
    tdesc t[2];
    int nt;
    size_t data;
  } tcases[] = {
      {"0 dims", "dimensions", {{"a", 0, {0}, VB_GGML_F32, 0}}, 1, 32},
      {"5 dims", "dimensions", {{"a", 5, {1, 1, 1, 1, 1}, VB_GGML_F32, 0}}, 1, 32},
      {"overflowing dims",
       "absurd",
       {{"a", 2, {(uint64_t)1 << 40, (uint64_t)1 << 40}, VB_GGML_F32, 0}},
       1,
       32},
      {"dim 2^63", "absurd", {{"a", 1, {(uint64_t)1 << 63}, VB_GGML_F32, 0}}, 1, 32},
      {"byte size overflow",
       "absurd",
       {{"a", 2, {(uint64_t)1 << 32, (uint64_t)1 << 30}, VB_GGML_F32, 0}},
       1,
       32},
      {"huge tensor", "past the end", {{"a", 2, {1u << 20, 1u << 20}, VB_GGML_F32, 0}}, 1, 32},
      {"Q4_1 type", "ggml type 3", {{"a", 1, {32}, 3, 0}}, 1, 32},
      {"Q4_0 row of 16", "32-value", {{"a", 2, {16, 2}, VB_GGML_Q4_0, 0}}, 1, 64},
      {"Q4_K row of 32", "256-value", {{"a", 2, {32, 2}, VB_GGML_Q4_K, 0}}, 1, 64},
      {"type 99", "ggml type 99", {{"a", 1, {32}, 99, 0}}, 1, 32},
      {"Q8_0 row of 16", "32-value", {{"a", 2, {16, 2}, VB_GGML_Q8_0, 0}}, 1, 64},
      {"offset past end", "past the end", {{"a", 1, {8}, VB_GGML_F32, 64}}, 1, 64},
      {"offset far past end",
       "past the end",
       {{"a", 1, {8}, VB_GGML_F32, (uint64_t)1 << 63}},
       1,
       64},
      {"misaligned", "alignment", {{"a", 1, {4}, VB_GGML_F32, 4}}, 1, 64},
      {"overlap",
       "overlap",
       {{"a", 1, {16}, VB_GGML_F32, 0}, {"b", 1, {8}, VB_GGML_F32, 32}},
       2,
       96},
      {"same offset",
       "overlap",
       {{"a", 1, {8}, VB_GGML_F32, 0}, {"b", 1, {8}, VB_GGML_F32, 0}},
       2,
       96},
      {"duplicate name",
       "twice",
       {{"a", 1, {8}, VB_GGML_F32, 0}, {"a", 1, {8}, VB_GGML_F32, 32}},
       2,
       96},
      {"empty name", "empty name", {{"", 1, {8}, VB_GGML_F32, 0}}, 1, 64},
      /* vblip's packed Q8_0 (Q8X16): 2-D, whole blocks, its padded size inside the file
       * (the data section of these files starts at byte 96: offset 32 is 64-byte
       * aligned, so that only the size refuses the last two) */
      {"Q8X16 1-D", "2-D", {{"a", 1, {32}, VB_GGML_Q8X16, 0}}, 1, 2176},
      {"Q8X16 row of 16", "32-value", {{"a", 2, {16, 2}, VB_GGML_Q8X16, 0}}, 1, 2176},
      {"Q8X16 row of 0", "32-value", {{"a", 2, {0, 2}, VB_GGML_Q8X16, 0}}, 1, 2176},
      {"Q8X16 size overflow",
       "absurd",
       {{"a", 2, {(uint64_t)1 << 60, 1}, VB_GGML_Q8X16, 0}},
       1,
       32},
      {"Q8X16 truncated data", "past the end", {{"a", 2, {32, 1}, VB_GGML_Q8X16, 32}}, 1, 2207},
      /* 65 rows are 4420 bytes of Q8_0 but two padded 64-row panels packed */
      {"Q8X16 without its padding rows",
       "past the end",
       {{"a", 2, {64, 65}, VB_GGML_Q8X16, 32}},
       1,
       4512},
  };
  for (size_t i = 0; i < sizeof tcases / sizeof tcases[0]; i++) {
    tu_bytes f = build(3, 0, NULL, tcases[i].t, (uint64_t)tcases[i].nt, tcases[i].data);
    expect_error(tcases[i].what, &f, tcases[i].needle);
    free(f.p);
  }

  /* Q8X16 data must lie at a file offset that is a multiple of 64 (the data
   * section starts at a multiple of 32: the tensor's offset chosen so that it
   * is not), and is accepted where it does */
  for (int aligned = 0; aligned < 2; aligned++) {
    tdesc pk[2] = {{"f", 1, {8}, VB_GGML_F32, 0}, {"q", 2, {32, 1}, VB_GGML_Q8X16, 32}};
    tu_bytes f = build(3, 0, NULL, pk, 2, 64 + 2176);
    size_t data_off = f.n - (64 + 2176);
    free(f.p);
    if (((data_off + 32) % 64 == 0) != aligned) pk[1].offset = 64;
    f = build(3, 0, NULL, pk, 2, 64 + 2176);
    if (aligned) {
      vb_tt_init(&tt);
      int rc = vb_gguf_parse(f.p, f.n, "packed.gguf", NULL, &tt);
      const vb_tensor_info *q = rc == 0 ? vb_tt_find(&tt, "q") : NULL;
      CHECK(q && q->dtype == VB_DT_Q8X16 && q->nbytes == 2176 && q->shape[0] == 1 &&
                q->shape[1] == 32,
            "an aligned Q8X16 tensor: %s", rc ? vb_error_message() : "wrong info");
      vb_tt_free(&tt);
    } else {
      expect_error("Q8X16 at a file offset not a multiple of 64", &f, "64-byte aligned");
    }
    free(f.p);
  }

  /* as a model: the loader reports the GGUF problem */
  const char *bad = tmp_path("bad.gguf");
  FILE *fp = fopen(bad, "wb");
  fwrite(ok.p, 1, 124, fp);
  fclose(fp);
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  vblip_model *m = vblip_model_load(bad, &lo);
  CHECK(m == NULL && strstr(vblip_last_error(), "truncated"), "truncated model: %s", vblip_last_error());
  vblip_model_free(m);
  /* a well-formed GGUF that is not a vblip model */
  const char *other = tmp_path("other.gguf");
  fp = fopen(other, "wb");
  fwrite(ok.p, 1, ok.n, fp);
  fclose(fp);
  m = vblip_model_load(other, &lo);
  CHECK(m == NULL && strstr(vblip_last_error(), "no embedded config.json"), "foreign gguf: %s", vblip_last_error());
  vblip_model_free(m);
  CHECK(!vb_vfs_is_mounted(other) && !vb_vfs_is_mounted(bad), "failed loads left a mount");
  free(ok.p);
  free(kv.p);
}

/* ---- the virtual files ---- */

static void test_vfs(void) {
  vb_vfs_file f[] = {{"a.json", "{\"x\":1}", 7}, {"b.bin", "\0\1\2", 3}};
  CHECK_OK(vb_vfs_mount("/virtual/m.gguf/", f, 2));
  char *s = NULL;
  size_t n = 0;
  CHECK(vb_read_file("/virtual/m.gguf/a.json", 100, &s, &n) == 0 && n == 7 && strcmp(s, "{\"x\":1}") == 0, "read");
  free(s);
  CHECK(vb_read_file("/virtual/m.gguf/a.json", 3, &s, &n) != 0, "size limit ignored");
  CHECK(vb_file_exists("/virtual/m.gguf//b.bin") && !vb_file_exists("/virtual/m.gguf/c") &&
            !vb_file_exists("/virtual/m.ggufx/a.json"),
        "exists");
  vb_mapped_file m;
  CHECK(vb_map_file("/virtual/m.gguf/b.bin", &m) == 0 && m.size == 3 && m.data[2] == 2, "map");
  vb_unmap_file(&m);
  CHECK_OK(vb_vfs_mount("/virtual/m.gguf", NULL, 0)); /* a second reference */
  vb_vfs_unmount("/virtual/m.gguf");
  CHECK(vb_file_exists("/virtual/m.gguf/a.json"), "unmounted with a reference left");
  vb_vfs_unmount("/virtual/m.gguf");
  CHECK(!vb_file_exists("/virtual/m.gguf/a.json"), "still mounted");
}

/* Load time of a GGUF that is in the page cache. */
static void test_load_time(void) {
  const char *p = tmp_path("opt-tiny-f32.gguf");
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32;
  lo.progress = 0;
  const char *types[] = {"f32", "bf16", "q8_0"};
  for (int t = 0; t < 3; t++) {
    char name[64];
    snprintf(name, sizeof name, "opt-tiny-%s.gguf", types[t]);
    p = tmp_path(name);
    double best = 1e9;
    for (int i = 0; i < 5; i++) {
      double t0 = vb_now_ms();
      vblip_model *m = vblip_model_load(p, &lo);
      double ms = vb_now_ms() - t0;
      if (!CHECK(m != NULL, "%s", vblip_last_error())) return;
      vblip_model_free(m);
      if (ms < best) best = ms;
    }
    printf("load %s (page cache, f32 compute): %.1f ms\n", name, best);
    CHECK(best < 1000, "loading %s took %.0f ms", name, best);
  }
  double best = 1e9;
  for (int i = 0; i < 5; i++) {
    double t0 = vb_now_ms();
    vblip_model *m = vblip_model_load(tu_fixture("models/videoblip-opt-tiny"), &lo);
    double ms = vb_now_ms() - t0;
    vblip_model_free(m);
    if (ms < best) best = ms;
  }
  printf("load the opt-tiny directory (same settings): %.1f ms\n", best);
}

int main(void) {
  test_vfs();
  test_hostile();
  test_model("opt-tiny", "models/videoblip-opt-tiny");
  test_model("flant5-tiny", "models/videoblip-flant5-tiny");
  test_model("flant5-sharded", "models/videoblip-flant5-tiny-sharded");
  test_contents();
  test_write_failure();
  test_cli();
  test_load_time();
  /* the converted models are tens of MB: remove them */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir());
  tu_run(cmd, NULL);
  return tu_finish();
}
