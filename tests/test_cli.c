/* The vblip program end to end on the fixture models: exit codes, messages,
 * captions equal to transformers' answers, embeddings, tokenization. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "runtime/common.h"
#include "testutil.h"

static const char *k_prompt = "Question: What is the camera wearer doing? Answer:";

static int run(const char *args, char **out) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s 2>&1", VBLIP_BINARY, args);
  return tu_run(cmd, out);
}

static void expect_status(const char *args, int status, const char *needle) {
  char *out = NULL;
  int st = run(args, &out);
  CHECK(st == status, "`vblip %s` exited %d, expected %d: %s", args, st, status, out);
  if (needle) CHECK(strstr(out, needle) != NULL, "`vblip %s` output lacks \"%s\": %s", args, needle, out);
  free(out);
}

/* Runs caption --json and checks text and token ids against a generation case. */
static void check_caption(const char *kind, const char *model_dir, const char *case_name,
                          const char *setting, const char *flags) {
  char path[256], args[2048];
  snprintf(path, sizeof path, "models.%s.cases.%s.generation.%s", kind, case_name, setting);
  cJSON *g = tu_json_path(tu_expected(), path);
  if (!CHECK(g != NULL, "no case %s", path)) return;
  snprintf(args, sizeof args, "caption --json --dtype f32 --model %s --prompt '%s' %s %s", tu_fixture(model_dir), k_prompt,
           flags, tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"));
  char *out = NULL;
  int st = run(args, &out);
  CHECK(st == 0, "%s: exit %d: %s", path, st, out);
  cJSON *j = cJSON_Parse(out);
  if (CHECK(j != NULL, "%s: output is not JSON: %s", path, out)) {
    const cJSON *text = cJSON_GetObjectItem(j, "text");
    const char *want = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "demo_postprocessed_text"), 0)->valuestring;
    CHECK(cJSON_IsString(text) && strcmp(text->valuestring, want) == 0, "%s: text \"%s\" vs \"%s\"", path,
          cJSON_IsString(text) ? text->valuestring : "?", want);
    const cJSON *ids = cJSON_GetObjectItem(j, "token_ids");
    const cJSON *seq = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "sequences"), 0);
    int n = cJSON_GetArraySize(seq) - 1, same = cJSON_GetArraySize(ids) == n;
    for (int i = 0; same && i < n; i++)
      same = cJSON_GetArrayItem(ids, i)->valueint == cJSON_GetArrayItem(seq, i + 1)->valueint;
    CHECK(same, "%s: token ids differ", path);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "frames")) > 0, "%s: no frames listed", path);
  }
  cJSON_Delete(j);
  free(out);
}

static void check_embed(void) {
  char args[2048], file[512];
  snprintf(file, sizeof file, "%s/emb.safetensors", tu_tmpdir());
  snprintf(args, sizeof args, "embed --dtype f32 --model %s --out %s %s", tu_fixture("models/videoblip-opt-tiny"), file,
           tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"));
  char *out = NULL;
  int st = run(args, &out);
  CHECK(st == 0, "embed exit %d: %s", st, out);
  free(out);
  vb_tensor_table tt;
  vb_tt_init(&tt);
  if (CHECK_OK(vb_safetensors_load(&tt, file))) {
    const char *names[] = {"vision_last_hidden_state", "qformer_last_hidden_state", "language_projection"};
    for (int i = 0; i < 3; i++) {
      char ref_name[256];
      snprintf(ref_name, sizeof ref_name, "model/opt/video1_uniform/%s", names[i]);
      const vb_tensor_info *got = vb_tt_find(&tt, names[i]), *ref = tu_ref_tensor(ref_name);
      if (!CHECK(got && ref && vb_tensor_numel(got) == vb_tensor_numel(ref), "%s shape", names[i])) continue;
      double maxabs, rel;
      size_t bad = tu_compare(got->data, ref->data, (size_t)vb_tensor_numel(ref), 1e-4, 1e-4, &maxabs, &rel);
      CHECK(bad == 0, "embed %s: %zu mismatches (max abs err %g)", names[i], bad, maxabs);
    }
    const vb_tensor_info *pv = vb_tt_find(&tt, "pixel_values");
    CHECK(pv && pv->ndim == 4 && pv->shape[0] == 8 && pv->shape[1] == 3 && pv->shape[2] == 224,
          "pixel_values shape");
    char *idx = vb_safetensors_metadata(file, "frame_indices");
    CHECK(idx && strcmp(idx, "[0,51,102,153,205,256,307,359]") == 0, "frame_indices metadata %s", idx ? idx : "(none)");
    free(idx);
  }
  vb_tt_free(&tt);
}

static void check_tokenize(void) {
  char cmd[2048], *out = NULL;
  snprintf(cmd, sizeof cmd, "printf 'Hello world' | %s tokenize --model %s", VBLIP_BINARY,
           tu_fixture("models/videoblip-opt-tiny"));
  CHECK(tu_run(cmd, &out) == 0 && strcmp(out, "2 15500 999\n") == 0, "tokenize: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "echo '2 15500 999' | %s tokenize --decode --model %s", VBLIP_BINARY,
           tu_fixture("models/videoblip-opt-tiny"));
  CHECK(tu_run(cmd, &out) == 0 && strcmp(out, "Hello world\n") == 0, "detokenize: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "printf 'bad \\377 utf8' | %s tokenize --model %s 2>&1", VBLIP_BINARY,
           tu_fixture("models/videoblip-opt-tiny"));
  CHECK(tu_run(cmd, &out) == 1 && strstr(out, "UTF-8"), "invalid UTF-8: %s", out);
  free(out);
}

/* The option tables' conveniences: short flags, --flag=value, "--", "-" for stdin and
 * stdout, help printed from the same rows, one-line usage errors with exit status 2. */
static void check_option_tables(const char *opt, const char *video) {
  char args[2048], *a = NULL, *b = NULL;
  snprintf(args, sizeof args,
           "caption --json --dtype f32 --model %s --beams 1 --max-new-tokens 5 --threads 2 %s", opt,
           video);
  CHECK(run(args, &a) == 0, "long flags: %s", a);
  snprintf(args, sizeof args, "caption --json --dtype=f32 -m %s --beams=1 -n 5 -t 2 -- - < %s", opt,
           video);
  CHECK(run(args, &b) == 0, "short flags, --, stdin: %s", b);
  cJSON *ja = cJSON_Parse(a ? a : ""), *jb = cJSON_Parse(b ? b : "");
  if (CHECK(ja && jb, "not JSON: %s / %s", a, b)) {
    char *ta = cJSON_PrintUnformatted(cJSON_GetObjectItem(ja, "token_ids"));
    char *tb = cJSON_PrintUnformatted(cJSON_GetObjectItem(jb, "token_ids"));
    CHECK(ta && tb && strcmp(ta, tb) == 0, "stdin video gave other tokens: %s vs %s", ta, tb);
    const cJSON *name = cJSON_GetObjectItem(jb, "video");
    CHECK(cJSON_IsString(name) && strcmp(name->valuestring, "-") == 0, "stdin video is named '-'");
    free(ta);
    free(tb);
  }
  cJSON_Delete(ja);
  cJSON_Delete(jb);
  free(a);
  free(b);

  /* embed to stdout: the same bytes as to a file */
  char f1[600], f2[600];
  snprintf(f1, sizeof f1, "%s/opt-emb-file.safetensors", tu_tmpdir());
  snprintf(f2, sizeof f2, "%s/opt-emb-stdout.safetensors", tu_tmpdir());
  snprintf(args, sizeof args, "embed --dtype f32 -m %s -o %s %s", opt, f1, video);
  CHECK(run(args, &a) == 0, "embed to a file: %s", a);
  free(a);
  snprintf(args, sizeof args, "%s embed --dtype f32 -m %s -o - %s > %s", VBLIP_BINARY, opt, video,
           f2);
  CHECK(tu_run(args, &a) == 0, "embed to stdout: %s", a);
  free(a);
  char *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  CHECK(vb_read_file(f1, 1 << 26, &x, &nx) == 0 && vb_read_file(f2, 1 << 26, &y, &ny) == 0 &&
            nx == ny && nx > 0 && memcmp(x, y, nx) == 0,
        "embed -o - wrote other bytes (%zu vs %zu)", nx, ny);
  free(x);
  free(y);

  /* help from the table, for every command; 'vblip help COMMAND' too */
  expect_status("caption -h", 0, "-m, --model MODEL");
  expect_status("help caption", 0, "-n, --max-new-tokens N");
  const char *cmds[] = {"caption", "chat",     "convert", "embed",      "pull",
                        "serve",   "tokenize", "train",   "ego4d-split"};
  for (int i = 0; i < 9; i++) {
    snprintf(args, sizeof args, "%s --help", cmds[i]);
    expect_status(args, 0, "usage: vblip");
    expect_status("--help", 0, cmds[i]);
  }
  expect_status("serve --help", 0, "--length-penalty");
  expect_status("train --help", 0, "--cache-mb");

  /* usage errors: one line naming the flag, exit 2 (each format gets the model and the video) */
  static const struct {
    const char *fmt;
    int status;
    const char *needle;
  } k_errors[] = {
      {"caption -m %s --sample=on %s", 2, "--sample takes no value"},
      {"caption -m %s -x %s", 2, "unknown option -x"},
      {"caption -m %s %s --beams", 2, "--beams needs"},
      {"caption -m %s -n 0 %s", 2, "--max-new-tokens needs a whole number >= 1, not '0'"},
      {"caption -m %s --dtype f16 %s", 2, "--dtype needs auto, f32, bf16, q8_0, q4_0 or q4_k"},
      {"caption -m %s --sampling random %s", 2, "--sampling takes 'uniform' or 'demo'"},
      {"train", 2, "--model, --data and --out are required"},
      {"embed -m %s -o x.safetensors a.mp4 b.mp4", 2, "one VIDEO at a time"},
      {"tokenize -m %s extra", 2, "unexpected argument extra"},
      {"chat -m %s - < /dev/null", 2, "stdin carries the messages"},
      {"caption -m %s - - < %s", 1, "only one argument can be '-'"},
  };
  for (size_t i = 0; i < sizeof k_errors / sizeof *k_errors; i++) {
    snprintf(args, sizeof args, k_errors[i].fmt, opt, video);
    expect_status(args, k_errors[i].status, k_errors[i].needle);
  }
}

int main(void) {
  char args[2048];
  const char *opt = tu_fixture("models/videoblip-opt-tiny");
  const char *video = tu_fixture("media/video1_h264_320x240_30fps_12s.mp4");
  expect_status("--help", 0, "caption");
  expect_status("", 2, NULL);
  expect_status("frobnicate", 2, "unknown command");
  expect_status("caption --help", 0, "--beams");
  snprintf(args, sizeof args, "caption --model %s --beams -1 %s", opt, video);
  expect_status(args, 2, "--beams");
  snprintf(args, sizeof args, "caption --model %s --top-p 2 %s", opt, video);
  expect_status(args, 2, "--top-p");
  snprintf(args, sizeof args, "caption --model %s --frobnicate %s", opt, video);
  expect_status(args, 2, "unknown option");
  snprintf(args, sizeof args, "caption --model %s", opt);
  expect_status(args, 2, "no VIDEO");
  snprintf(args, sizeof args, "caption --model /nonexistent/model %s", video);
  expect_status(args, 1, "/nonexistent/model");
  snprintf(args, sizeof args, "caption --model %s /nonexistent/video.mp4", opt);
  expect_status(args, 1, "/nonexistent/video.mp4");
  snprintf(args, sizeof args, "caption --model %s %s", opt, tu_fixture("README.md"));
  expect_status(args, 1, "README.md");

  check_caption("opt", "models/videoblip-opt-tiny", "video1_uniform", "greedy_20", "--beams 1 --max-new-tokens 20");
  check_caption("opt", "models/videoblip-opt-tiny", "video1_uniform", "beam4_20", "--beams 4 --max-new-tokens 20");
  check_caption("opt", "models/videoblip-opt-tiny", "video1_demo", "demo_beam4_128_t07", "--sampling demo --temperature 0.7");
  check_caption("opt", "models/videoblip-opt-tiny", "video1_uniform", "beam3_norepeat2_20",
                "--beams 3 --no-repeat-ngram 2 --max-new-tokens 20");
  check_caption("t5", "models/videoblip-flant5-tiny", "video1_uniform", "greedy_20", "--beams 0 --max-new-tokens 20");
  check_caption("t5", "models/videoblip-flant5-tiny", "video1_demo", "demo_beam4_128_t07", "--sampling demo");

  /* several videos, one model load, one JSON line each */
  snprintf(args, sizeof args, "caption --json --beams 1 --max-new-tokens 5 --model %s %s %s", opt, video,
           tu_fixture("media/image_rgb_203x150.png"));
  char *out = NULL;
  CHECK(run(args, &out) == 0, "two videos: %s", out ? out : "");
  int lines = 0;
  for (char *p = out; p && *p; p++) lines += *p == '\n';
  CHECK(lines == 2, "two videos gave %d lines: %s", lines, out);
  free(out);

  check_embed();
  check_tokenize();
  check_option_tables(opt, video);
  return tu_finish();
}
