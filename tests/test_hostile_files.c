/* Hostile input, library level (issue 21): the helpers every message and reader goes
 * through, and the model loading paths that a hostile file or path reaches.
 *  - control characters escaped in every error message (vb_error) and by the one helper;
 *  - UTF-8 validity, strict JSON (trailing data refused);
 *  - FIFOs and devices refused without blocking (model path, config.json, weights);
 *  - output files never renamed over devices, FIFOs or links; stale temporaries removed;
 *  - prompts bounded by the model's positions, tokenized only up to the limit;
 *  - config and vocabulary nonsense refused at load, naming the real problem once. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint/config.h"
#include "runtime/common.h"
#include "runtime/escape.h"
#include "runtime/json.h"
#include "runtime/outfile.h"
#include "testutil.h"
#include "text/tokenizer.h"
#include "vblip.h"

#define OPT_DIR "models/videoblip-opt-tiny"

/* No byte below 0x20 and no DEL in s. */
static bool no_controls(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return false;
  return true;
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!CHECK(f != NULL, "cannot write %s", path)) return;
  fputs(text, f);
  fclose(f);
}

/* A copy of the fixture model as symbolic links, so that one file can be replaced. */
static const char *model_copy(const char *name) {
  static char dir[512];
  snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), name);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -rs '%s' '%s'", dir, tu_fixture(OPT_DIR), dir);
  CHECK(system(cmd) == 0, "cannot copy the fixture model to %s", dir);
  return dir;
}

static char *file_in(const char *dir, const char *name) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unlink(path); /* a link into the fixtures: replaced, never written through */
  return path;
}

/* ---- the escape helper and UTF-8 ---- */

static void test_escape(void) {
  char out[256];
  vb_escape_controls("a\x1b]0;PWNED\x07\r\nb\tc\x7f", out, sizeof out);
  CHECK(strcmp(out, "a\\x1b]0;PWNED\\x07\\x0d\\x0ab\\x09c\\x7f") == 0, "C0 and DEL: %s", out);
  /* UTF-8 passes; C1 controls (U+009B is CSI on some terminals) and stray bytes do not */
  vb_escape_controls("\xc3\xa9t\xc3\xa9 \xc2\x9b[31m \xff\xfe \xed\xa0\x80", out, sizeof out);
  CHECK(strcmp(out, "\xc3\xa9t\xc3\xa9 \\xc2\\x9b[31m \\xff\\xfe \\xed\\xa0\\x80") == 0,
        "C1, invalid: %s", out);
  /* truncation keeps whole characters and whole escapes */
  vb_escape_controls("ab\x1b", out, 5);
  CHECK(strcmp(out, "ab") == 0, "truncated escape: %s", out);
  vb_escape_controls("a\xe2\x82\xac", out, 4);
  CHECK(strcmp(out, "a") == 0, "truncated character: %s", out);
  char *dup = vb_escape_controls_dup("x\ny");
  CHECK(dup && strcmp(dup, "x\\x0ay") == 0, "dup: %s", dup ? dup : "(null)");
  free(dup);

  size_t bad = 99;
  CHECK(vb_utf8_valid("h\xc3\xa9llo", 6, &bad), "valid UTF-8 refused");
  CHECK(!vb_utf8_valid("ab\xff", 3, &bad) && bad == 2, "0xff at %zu", bad);
  CHECK(!vb_utf8_valid("a\xc0\xaf", 3, &bad) && bad == 1, "overlong at %zu", bad);
  CHECK(!vb_utf8_valid("ok\xe2\x82", 4, &bad) && bad == 2, "cut sequence at %zu", bad);
  CHECK(!vb_utf8_valid("\xf4\x90\x80\x80", 4, &bad) && bad == 0, "past U+10FFFF at %zu", bad);

  /* every library message goes through it: a hostile name cannot reach the terminal raw */
  vb_error("tensor %s is bad", "x\x1b]0;PWNED\x07\r\nvblip: fake line");
  const char *m = vb_error_message();
  CHECK(no_controls(m) && strstr(m, "x\\x1b]0;PWNED\\x07\\x0d\\x0avblip: fake line"),
        "vb_error: %s", m);
  vb_error_context("loading %s", "dir\x1b[2J");
  m = vb_error_message();
  CHECK(no_controls(m) && strstr(m, "loading dir\\x1b[2J: tensor"), "context: %s", m);
  /* the kind of a failure survives context */
  vb_input_error("too long");
  vb_error_context("prompt");
  CHECK(vblip_last_error_kind() == VBLIP_ERROR_INPUT, "input kind lost in context");
  vb_error("other");
  CHECK(vblip_last_error_kind() == VBLIP_ERROR_OTHER, "vb_error keeps the input kind");
}

/* ---- strict JSON ---- */

static void test_json(void) {
  static const struct {
    const char *text;
    size_t len; /* 0: strlen */
    int ok;
    const char *msg;
  } cases[] = {
      {"{\"a\": 1}", 0, 1, NULL},
      {"  {\"a\": [1, 2]}\r\n\t ", 0, 1, NULL},
      {"{\"a\": 1} garbage", 0, 0, "has more after its JSON value (byte 9)"},
      {"{\"a\": 1}{}", 0, 0, "has more after its JSON value (byte 8)"},
      {"{\"a\": 1}\0{}", 11, 0, "has more after its JSON value (byte 8)"},
      {"{\"a\": ", 0, 0, "is not valid JSON"},
      {"", 0, 0, "is not valid JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
    cJSON *j = vb_json_parse(cases[i].text, n, "the body");
    CHECK((j != NULL) == cases[i].ok, "json case %zu: %s", i, j ? "accepted" : vb_error_message());
    if (!cases[i].ok)
      CHECK(strstr(vb_error_message(), cases[i].msg) && strstr(vb_error_message(), "the body"),
            "json case %zu message: %s", i, vb_error_message());
    cJSON_Delete(j);
  }
  /* repeated keys: refused by the _unique reader, in any object at any depth */
  static const struct {
    const char *text, *key; /* key: the one named, NULL: accepted */
  } rep[] = {
      {"{\"a\": 1, \"b\": 2}", NULL},
      {"[{\"x\": 1}, {\"x\": 2}]", NULL}, /* one key in each of two objects */
      {"{\"a\": 1, \"a\": 1}", "a"},
      {"{\"s\": [\"a\"], \"t\": {\"u\": {\"v\": 1, \"w\": 2, \"v\": 3}}}", "v"},
      {"[0, [{\"k\": null, \"k\": null}]]", "k"},
      {"{\"\": 1, \"\": 2}", ""},
      {"{\"\\u001b[2J\": 1, \"\\u001b[2J\": 2}", "\\x1b[2J"}, /* escaped in the message */
  };
  for (size_t i = 0; i < sizeof rep / sizeof rep[0]; i++) {
    cJSON *plain = vb_json_parse(rep[i].text, strlen(rep[i].text), "the body");
    CHECK(plain != NULL, "repeat case %zu: the plain reader takes it: %s", i, vb_error_message());
    cJSON_Delete(plain);
    cJSON *j = vb_json_parse_unique(rep[i].text, strlen(rep[i].text), "the body");
    char want[64];
    snprintf(want, sizeof want, "the body repeats the key '%s' in one object",
             rep[i].key ? rep[i].key : "");
    CHECK(rep[i].key ? !j && strstr(vb_error_message(), want) != NULL : j != NULL,
          "repeat case %zu: %s", i, j ? "accepted" : vb_error_message());
    cJSON_Delete(j);
  }
  /* many keys: sorted, not compared pairwise (200000 keys: instant, where pairs would be 2e10) */
  {
    size_t n = 200000, cap = n * 16 + 16, len = 0;
    char *big = malloc(cap);
    if (CHECK(big != NULL, "malloc")) {
      big[len++] = '{';
      for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s\"k%zu\":0", i ? "," : "", i);
      big[len++] = '}';
      cJSON *j = vb_json_parse_unique(big, len, "the body");
      CHECK(j != NULL && cJSON_GetArraySize(j) == (int)n, "200000 distinct keys: %s",
            j ? "ok" : vb_error_message());
      cJSON_Delete(j);
      /* the same with its last key repeating the first */
      len -= 1;
      len += (size_t)snprintf(big + len, cap - len, ",\"k0\":1}");
      j = vb_json_parse_unique(big, len, "the body");
      CHECK(!j && strstr(vb_error_message(), "repeats the key 'k0'"),
            "200001 keys, one repeated: %s", j ? "accepted" : vb_error_message());
      cJSON_Delete(j);
      free(big);
    }
  }
  vb_model_config c;
  CHECK(vb_config_parse("{\"model_type\": \"blip-2\", \"model_type\": \"x\"}", &c) != 0 &&
            strstr(vb_error_message(), "config.json repeats the key 'model_type'"),
        "config with a repeated key: %s", vb_error_message());
  CHECK(vb_config_parse("{} trailing", &c) != 0 &&
            strstr(vb_error_message(), "config.json has more"),
        "config with trailing data: %s", vb_error_message());
}

/* ---- FIFOs and devices as inputs ---- */

static void test_fifos(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/fifo", tu_tmpdir());
  unlink(path);
  if (!CHECK(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno))) return;
  /* nothing below may block: nobody ever writes to the FIFO */
  vb_mapped_file mf;
  CHECK(vb_map_file(path, &mf) != 0 && strstr(vb_error_message(), "is a FIFO, not a regular file"),
        "map a FIFO: %s", vb_error_message());
  char *text = NULL;
  CHECK(vb_read_file(path, 1024, &text, NULL) != 0 && strstr(vb_error_message(), "a FIFO"),
        "read a FIFO: %s", vb_error_message());
  CHECK(vb_map_file("/dev/null", &mf) != 0 && strstr(vb_error_message(), "a character device"),
        "map /dev/null: %s", vb_error_message());
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  vblip_model *m = vblip_model_load(path, &lo);
  CHECK(!m && strstr(vblip_last_error(), "a FIFO, not a model directory or .gguf file"),
        "model path FIFO: %s", vblip_last_error());
  vblip_model_free(m);

  /* a FIFO in place of each kind of model file */
  static const char *const files[] = {"config.json", "model.safetensors", "vocab.json",
                                      "preprocessor_config.json"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    const char *dir = model_copy("fifo-model");
    const char *p = file_in(dir, files[i]);
    if (!CHECK(mkfifo(p, 0600) == 0, "mkfifo %s", p)) continue;
    if (strcmp(files[i], "vocab.json") == 0) unlink(file_in(dir, "tokenizer.json"));
    m = vblip_model_load(dir, &lo);
    const char *msg = vblip_last_error();
    CHECK(!m && strstr(msg, files[i]) && strstr(msg, "is a FIFO, not a regular file"),
          "%s as a FIFO: %s", files[i], msg);
    vblip_model_free(m);
  }
}

/* ---- output files ---- */

static void test_outfiles(void) {
  const char *tmp = tu_tmpdir();
  char target[512], link[512], fifo[512], dir[512];
  snprintf(target, sizeof target, "%s/out.bin", tmp);
  snprintf(link, sizeof link, "%s/out-link.bin", tmp);
  snprintf(fifo, sizeof fifo, "%s/out-fifo.bin", tmp);
  snprintf(dir, sizeof dir, "%s/out-dir", tmp);
  unlink(target), unlink(link), unlink(fifo), rmdir(dir);
  CHECK(vb_outfile_check(target) == 0, "a missing target is refused: %s", vb_error_message());
  write_text(target, "old");
  CHECK(vb_outfile_check(target) == 0, "a regular target is refused: %s", vb_error_message());
  CHECK(symlink(target, link) == 0 && vb_outfile_check(link) != 0 &&
            strstr(vb_error_message(), "is a symbolic link (to ") &&
            strstr(vb_error_message(), "out.bin"),
        "symlink target: %s", vb_error_message());
  CHECK(mkfifo(fifo, 0600) == 0 && vb_outfile_check(fifo) != 0 &&
            strstr(vb_error_message(), "is a FIFO"),
        "FIFO target: %s", vb_error_message());
  CHECK(mkdir(dir, 0700) == 0 && vb_outfile_check(dir) != 0 &&
            strstr(vb_error_message(), "is a directory"),
        "directory target: %s", vb_error_message());
  CHECK(vb_outfile_check("/dev/null") != 0 && strstr(vb_error_message(), "a character device"),
        "/dev/null target: %s", vb_error_message());

  /* stale temporaries: a dead process's goes, a live process's (pid 1) stays */
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, NULL, 0);
  char dead[600], live[600], mine[600];
  snprintf(dead, sizeof dead, "%s.tmp-%d", target, (int)child);
  snprintf(live, sizeof live, "%s.tmp-1", target);
  write_text(dead, "stale");
  write_text(live, "in use");
  vb_outfile o;
  if (CHECK(vb_outfile_open(&o, target) == 0, "open: %s", vb_error_message())) {
    vb_outfile_tmp_name(target, mine, sizeof mine);
    CHECK(access(mine, F_OK) == 0 && strcmp(o.tmp, mine) == 0, "temporary %s", o.tmp);
    fputs("new", o.f);
    CHECK(vb_outfile_commit(&o) == 0, "commit: %s", vb_error_message());
  }
  CHECK(access(dead, F_OK) != 0, "the dead process's temporary %s was kept", dead);
  CHECK(access(live, F_OK) == 0, "a live process's temporary %s was removed", live);
  CHECK(access(mine, F_OK) != 0, "our temporary %s was left", mine);
  char *text = NULL;
  CHECK(vb_read_file(target, 64, &text, NULL) == 0 && strcmp(text, "new") == 0, "target holds %s",
        text ? text : "(nothing)");
  free(text);
  unlink(live);

  /* the symlink and the FIFO survive a refused write, the link's target unchanged */
  CHECK(vb_outfile_open(&o, link) != 0, "writing through a link");
  struct stat st;
  CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
  CHECK(vb_outfile_open(&o, fifo) != 0 && lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode),
        "the FIFO was replaced");
}

/* ---- models: configs, vocabularies, prompts ---- */

static vblip_model *load(const char *dir) {
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  lo.dtype = VBLIP_DTYPE_F32;
  return vblip_model_load(dir, &lo);
}

static void test_model_files(void) {
  /* a negative layer norm epsilon: refused at load, naming the key */
  const char *dir = model_copy("eps-model");
  char *cfg_text = NULL;
  char src[1024];
  snprintf(src, sizeof src, "%s/config.json", tu_fixture(OPT_DIR));
  if (CHECK(vb_read_file(src, 1 << 20, &cfg_text, NULL) == 0, "%s", vb_error_message())) {
    cJSON *cfg = cJSON_Parse(cfg_text);
    cJSON *vis = cJSON_GetObjectItem(cfg, "vision_config");
    cJSON_ReplaceItemInObject(vis, "layer_norm_eps", cJSON_CreateNumber(-1));
    char *txt = cJSON_Print(cfg);
    write_text(file_in(dir, "config.json"), txt);
    free(txt);
    vblip_model *m = load(dir);
    CHECK(!m &&
              strstr(vblip_last_error(),
                     "vision_config.layer_norm_eps = -1 must be a positive number") &&
              count_of(vblip_last_error(), "config.json") == 1,
          "negative eps: %s", vblip_last_error());
    vblip_model_free(m);
    /* a model_type with escape sequences: quoted, escaped */
    cJSON_ReplaceItemInObject(cfg, "model_type",
                              cJSON_CreateString("\x1b]0;PWNED\x07\r\nvblip: fake"));
    txt = cJSON_Print(cfg);
    write_text(file_in(dir, "config.json"), txt);
    free(txt);
    m = load(dir);
    CHECK(!m && no_controls(vblip_last_error()) &&
              strstr(vblip_last_error(), "\\x1b]0;PWNED\\x07\\x0d\\x0a"),
          "escaped model_type: %s", vblip_last_error());
    vblip_model_free(m);
    cJSON_Delete(cfg);
  }
  free(cfg_text);

  /* a tensor name with an OSC title sequence and a forged line: quoted escaped */
  dir = model_copy("tensor-model");
  {
    const char *hdr = "{\"x\\u001b]0;PWNED\\u0007\\r\\nvblip: fake line\": {\"dtype\": \"XX\", "
                      "\"shape\": [1], \"data_offsets\": [0, 4]}}";
    FILE *f = fopen(file_in(dir, "model.safetensors"), "wb");
    if (CHECK(f != NULL, "cannot write model.safetensors")) {
      uint64_t n = strlen(hdr);
      fwrite(&n, 8, 1, f); /* little-endian length, as on every machine this builds on */
      fputs(hdr, f);
      fwrite("\0\0\0\0", 1, 4, f);
      fclose(f);
    }
    unlink(file_in(dir, "pytorch_model.bin"));
    vblip_model *m = load(dir);
    CHECK(!m && no_controls(vblip_last_error()) &&
              strstr(vblip_last_error(),
                     "tensor x\\x1b]0;PWNED\\x07\\x0d\\x0avblip: fake line: unsupported dtype XX"),
          "hostile tensor name: %s", vblip_last_error());
    vblip_model_free(m);
  }

  /* a vocabulary whose ids collide: refused at load, not at generation time */
  dir = model_copy("vocab-model");
  unlink(file_in(dir, "tokenizer.json"));
  write_text(file_in(dir, "vocab.json"), "{\"a\": 5, \"b\": 5, \"c\": 6}");
  vblip_model *m = load(dir);
  CHECK(!m && strstr(vblip_last_error(), "\"a\" and \"b\" both have id 5"), "colliding ids: %s",
        vblip_last_error());
  vblip_model_free(m);
  /* a broken vocab.json: named once, no empty segment */
  write_text(file_in(dir, "vocab.json"), "{\"a\": 1");
  m = load(dir);
  CHECK(!m && strstr(vblip_last_error(), "vocab.json is not valid JSON") &&
            !strstr(vblip_last_error(), ": :") && count_of(vblip_last_error(), "vocab-model") == 1,
        "broken vocab.json: %s", vblip_last_error());
  vblip_model_free(m);

  /* a file that is not GGUF where a .gguf is expected */
  char bad[512];
  snprintf(bad, sizeof bad, "%s/bad.gguf", tu_tmpdir());
  write_text(bad, "XXXXjunk");
  m = load(bad);
  CHECK(!m && strstr(vblip_last_error(), "not GGUF") &&
            !strstr(vblip_last_error(), "Not a directory"),
        "bad magic: %s", vblip_last_error());
  vblip_model_free(m);
}

static void test_prompt_limit(void) {
  vblip_model *m = load(tu_fixture(OPT_DIR));
  if (!CHECK(m != NULL, "load: %s", vblip_last_error())) return;
  vblip_model_info info;
  vblip_model_get_info(m, &info);
  /* the tiny OPT: 512 positions, the video's query tokens before the prompt, one left for
   * the answer: the largest prompt has 512 - Q - 1 tokens, special tokens included */
  const size_t room = (size_t)(512 - info.num_query_tokens - 1);
  size_t words = 0, n = 0;
  char *text = calloc(1, 8 * 1024);
  int32_t *ids = NULL;
  /* " a" is one token: grow the prompt to exactly `room` tokens, measured by the tokenizer */
  while (n < room && words < 2000) {
    strcat(text, words ? " a" : "a");
    words++;
    free(ids);
    ids = NULL;
    CHECK_OK(vblip_tokenize(m, text, 1, &ids, &n));
  }
  free(ids);
  size_t got = 0;
  if (CHECK(n == room, "could not build a prompt of %zu tokens (%zu)", room, n)) {
    /* the input's positions: the video's query tokens, then the prompt's */
    CHECK(vblip_check_prompt(m, text, &got) == 0 && got == room + (size_t)info.num_query_tokens,
          "a prompt of %zu tokens: %s (%zu positions)", room, vblip_last_error(), got);
    strcat(text, " a");
    CHECK(vblip_check_prompt(m, text, &got) != 0 && vblip_last_error_kind() == VBLIP_ERROR_INPUT &&
              strstr(vblip_last_error(), "longer than") &&
              strstr(vblip_last_error(), "512 positions"),
          "one token too many: %s", vblip_last_error());
  }
  free(text);
  /* invalid UTF-8 is the caller's fault too */
  CHECK(vblip_check_prompt(m, "bad \xff", NULL) != 0 &&
            vblip_last_error_kind() == VBLIP_ERROR_INPUT &&
            strstr(vblip_last_error(), "not valid UTF-8 (byte 4)"),
        "invalid UTF-8: %s", vblip_last_error());
  vblip_model_free(m);
}

/* The tokenizer stops at its limit: a text of a million tokens fails with the limit's
 * message; with the limit at the exact count it succeeds with the same ids. */
static void test_tokenizer_limit(void) {
  vb_tokenizer *t = NULL;
  if (!CHECK_OK(vb_tokenizer_load(tu_fixture(OPT_DIR), &t))) return;
  const char *small = "hello world, hello again";
  int32_t *all = NULL, *lim = NULL;
  size_t n_all = 0, n_lim = 0;
  CHECK_OK(vb_tokenizer_encode(t, small, strlen(small), true, &all, &n_all));
  CHECK(vb_tokenizer_encode_max(t, small, strlen(small), true, n_all, &lim, &n_lim) == 0 &&
            n_lim == n_all && memcmp(lim, all, n_all * sizeof *all) == 0,
        "exact limit changes the ids");
  free(lim);
  lim = NULL;
  CHECK(vb_tokenizer_encode_max(t, small, strlen(small), true, n_all - 1, &lim, &n_lim) != 0 &&
            !lim && vb_error_is_input() && strstr(vb_error_message(), "longer than"),
        "limit - 1: %s", vb_error_message());
  free(all);
  size_t big = 4u << 20;
  char *huge = malloc(big + 1);
  for (size_t i = 0; i < big; i++)
    huge[i] = i % 2 ? ' ' : 'a';
  huge[big] = 0;
  CHECK(vb_tokenizer_encode_max(t, huge, big, true, 100, &lim, &n_lim) != 0 &&
            strstr(vb_error_message(), "longer than 100 tokens"),
        "4 MB text: %s", vb_error_message());
  free(huge);
  vb_tokenizer_free(t);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_escape();
  test_json();
  test_fifos();
  test_outfiles();
  test_model_files();
  test_prompt_limit();
  test_tokenizer_limit();
  return tu_finish();
}
