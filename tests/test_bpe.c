/* Byte-level BPE tokenizer (OPT): the reference cases of expected.json through
 * the slow files and through tokenizer.json, error handling, round trips and
 * speed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/common.h"
#include "testutil.h"
#include "text/tokenizer.h"

static const char *OPT_DIR = "models/videoblip-opt-tiny";

static bool ids_equal(const int32_t *ids, size_t n, const cJSON *ref) {
  if (!cJSON_IsArray(ref) || (size_t)cJSON_GetArraySize(ref) != n) return false;
  size_t i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, ref) {
    if (!cJSON_IsNumber(x) || ids[i++] != (int32_t)x->valuedouble) return false;
  }
  return true;
}

static int32_t *json_ids(const cJSON *ref, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(ref);
  int32_t *ids = malloc((*n + 1) * sizeof *ids);
  size_t i = 0;
  const cJSON *x;
  cJSON_ArrayForEach(x, ref) ids[i++] = (int32_t)x->valuedouble;
  return ids;
}

static void copy_file(const char *from, const char *to_dir, const char *name) {
  char *src = vb_path_join(from, name), *dst = vb_path_join(to_dir, name);
  char *data;
  size_t n;
  if (CHECK(vb_read_file(src, 64u << 20, &data, &n) == 0, "%s", vb_error_message())) {
    FILE *f = fopen(dst, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n, "cannot write %s", dst);
    if (f) fclose(f);
    free(data);
  }
  free(src);
  free(dst);
}

static void write_file(const char *dir, const char *name, const char *text) {
  char *p = vb_path_join(dir, name);
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL, "cannot write %s", p);
  if (f) {
    fputs(text, f);
    fclose(f);
  }
  free(p);
}

static char *subdir(const char *name) {
  char *p = vb_path_join(tu_tmpdir(), name);
  mkdir(p, 0755);
  return p;
}

static int encode(const vb_tokenizer *t, const char *s, bool special, int32_t **ids, size_t *n) {
  return t->ops->encode(t->impl, s, strlen(s), special, 0, ids, n);
}

static void check_cases_slow(const vb_tokenizer *t) {
  const cJSON *cases = tu_json_path(tu_expected(), "tokenizers.cases.opt");
  CHECK(cJSON_GetArraySize(cases) == 42, "expected 42 OPT cases, got %d",
        cJSON_GetArraySize(cases));
  const cJSON *c;
  cJSON_ArrayForEach(c, cases) {
    const char *name = cJSON_GetObjectItem(c, "id")->valuestring;
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    int32_t *ids;
    size_t n;
    if (CHECK_OK(encode(t, text, true, &ids, &n))) {
      CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "ids")), "%s: ids differ", name);
      const cJSON *toks = cJSON_GetObjectItem(c, "tokens");
      bool same = (size_t)cJSON_GetArraySize(toks) == n;
      for (size_t i = 0; same && i < n; i++) {
        const char *tok = t->ops->token(t->impl, ids[i]);
        same = tok && strcmp(tok, cJSON_GetArrayItem(toks, (int)i)->valuestring) == 0;
      }
      CHECK(same, "%s: token strings differ", name);
      free(ids);
    }
    if (CHECK_OK(encode(t, text, false, &ids, &n))) {
      CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "ids_no_special")), "%s: ids_no_special",
            name);
      free(ids);
    }
    ids = json_ids(cJSON_GetObjectItem(c, "ids"), &n);
    static const struct {
      const char *key;
      bool skip, cleanup;
    } dec[] = {{"decode_skip_special", true, true},
               {"decode_skip_special_no_cleanup", true, false},
               {"decode_keep_special", false, true}};
    for (int d = 0; d < 3; d++) {
      char *out;
      if (CHECK_OK(t->ops->decode(t->impl, ids, n, dec[d].skip, dec[d].cleanup, &out))) {
        const char *want = cJSON_GetObjectItem(c, dec[d].key)->valuestring;
        CHECK(strcmp(out, want) == 0, "%s: %s: got \"%s\" want \"%s\"", name, dec[d].key, out,
              want);
        free(out);
      }
    }
    free(ids);
  }
}

static void check_basics(const vb_tokenizer *t) {
  CHECK(t->kind == VB_TOK_BPE, "kind %d", t->kind);
  CHECK(t->ops->vocab_size(t->impl) == 50260, "vocab_size %d", t->ops->vocab_size(t->impl));
  const char *s = t->ops->token(t->impl, 2);
  CHECK(s && strcmp(s, "</s>") == 0, "token 2 = %s", s ? s : "(null)");
  s = t->ops->token(t->impl, 202);
  CHECK(s && strcmp(s, "\xC4\x8A") == 0, "token 202 should be newline");
  CHECK(t->ops->token(t->impl, 50260) == NULL && t->ops->token(t->impl, -1) == NULL,
        "out-of-range token");
  CHECK(t->ops->is_special(t->impl, 1) && t->ops->is_special(t->impl, 2), "1, 2 are special");
  CHECK(!t->ops->is_special(t->impl, 0) && !t->ops->is_special(t->impl, 3) &&
            !t->ops->is_special(t->impl, 100),
        "0, 3, 100 are not special");

  /* invalid UTF-8 */
  static const struct {
    const char *s;
    size_t bad;
  } invalid[] = {{"ab\xFF", 2},           {"\xC3", 0}, {"x\xC0\xAF", 1}, {"ok \xED\xA0\x80", 3},
                 {"\xF4\x90\x80\x80", 0}, {"a\x80", 1}};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    int rc = encode(t, invalid[i].s, true, &ids, &n);
    char want[64];
    snprintf(want, sizeof want, "at byte %zu", invalid[i].bad);
    CHECK(rc == -1 && ids == NULL && n == 0 && strstr(vb_error_message(), want),
          "invalid UTF-8 #%zu: rc %d msg %s", i, rc, vb_error_message());
  }

  /* empty input: with and without BOS */
  int32_t *ids;
  size_t n;
  if (CHECK_OK(t->ops->encode(t->impl, "", 0, true, 0, &ids, &n))) {
    CHECK(n == 1 && ids[0] == 2, "empty with BOS: n %zu", n);
    free(ids);
  }
  if (CHECK_OK(t->ops->encode(t->impl, "", 0, false, 0, &ids, &n))) {
    CHECK(n == 0 && ids != NULL, "empty without BOS: n %zu", n);
    free(ids);
  }
  char *out;
  if (CHECK_OK(t->ops->decode(t->impl, NULL, 0, true, true, &out))) {
    CHECK(out[0] == 0, "empty decode");
    free(out);
  }

  /* decode errors and lossy bytes */
  int32_t badids[] = {5, 50260};
  CHECK(t->ops->decode(t->impl, badids, 2, true, true, &out) == -1 && out == NULL,
        "id 50260 must be rejected");
  badids[1] = -3;
  CHECK(t->ops->decode(t->impl, badids, 2, true, true, &out) == -1, "negative id");
  /* "ĥ" is byte 0xC3 alone, "Ã" byte 0xC3 then "©" 0xA9 -> é; then lone 0xA9 */
  int32_t lossy[] = {70, 0, 0, 0};
  const char *want_tokens[] = {"c", "\xC3\x83", "\xC2\xA9", "\xC2\xA9"};
  bool found = true;
  for (int i = 1; i < 4 && found; i++) {
    int32_t id = -1;
    for (int32_t k = 4; k < 50260 && id < 0; k++) {
      const char *tok = t->ops->token(t->impl, k);
      if (tok && strcmp(tok, want_tokens[i]) == 0) id = k;
    }
    lossy[i] = id;
    found = id >= 0;
  }
  if (CHECK(found, "byte tokens not found") &&
      CHECK_OK(t->ops->decode(t->impl, lossy, 4, true, false, &out))) {
    CHECK(strcmp(out, "c\xC3\xA9\xEF\xBF\xBD") == 0, "lossy decode: %s", out);
    free(out);
  }
}

/* Text that exercises every regex branch and many scripts, deterministic. */
static char *random_text(size_t target, size_t *len) {
  static const char *const parts[] = {"the",
                                      " quick",
                                      " brown",
                                      " fox",
                                      "  ",
                                      "\t",
                                      "\n",
                                      "\r\n",
                                      "'s",
                                      "'ll",
                                      "'T",
                                      " 12",
                                      "3.5",
                                      "!!",
                                      " ?",
                                      "café",
                                      " naïve",
                                      "日本語",
                                      "😀",
                                      "👍🏽",
                                      " мир",
                                      " κόσμος",
                                      " عالم",
                                      "\xC2\xA0",
                                      "\xE2\x80\x89",
                                      "\xE2\x80\x8B",
                                      "   ",
                                      "-",
                                      "_",
                                      "<s>",
                                      "</s",
                                      "<pad",
                                      "Ａ",
                                      "ﬁ",
                                      "\x01",
                                      "\x7F",
                                      " 's",
                                      "'",
                                      "x",
                                      "aaaaaaa",
                                      "\xF0\x9F\x8F\xBD",
                                      "…",
                                      " "};
  size_t np = sizeof parts / sizeof parts[0];
  char *s = malloc(target + 64);
  size_t n = 0;
  uint32_t r = 12345;
  while (n < target) {
    r = r * 1103515245u + 12345u;
    const char *p = parts[(r >> 16) % np];
    size_t k = strlen(p);
    memcpy(s + n, p, k);
    n += k;
  }
  s[n] = 0;
  *len = n;
  return s;
}

static void check_round_trip_and_speed(const vb_tokenizer *t) {
  size_t len;
  char *text = random_text(200 * 1024, &len);
  int32_t *ids;
  size_t n;
  if (CHECK_OK(t->ops->encode(t->impl, text, len, false, 0, &ids, &n))) {
    char *out;
    if (CHECK_OK(t->ops->decode(t->impl, ids, n, false, false, &out))) {
      CHECK(strlen(out) == len && memcmp(out, text, len) == 0, "200 KB round trip differs");
      free(out);
    }
    free(ids);
  }
  free(text);

  /* throughput on 1 MB, cold cache on the first run and warm on the second */
  text = random_text(1 << 20, &len);
  for (int run = 0; run < 2; run++) {
    double t0 = vb_now_ms();
    if (CHECK_OK(t->ops->encode(t->impl, text, len, true, 0, &ids, &n))) {
      double ms = vb_now_ms() - t0;
      printf("encode 1 MB (%s): %.1f ms, %.1f MB/s, %zu tokens\n", run ? "warm" : "cold", ms,
             len / 1048576.0 / (ms / 1000.0), n);
      free(ids);
    }
  }
  free(text);

  /* one huge piece (no spaces): the merge loop must stay near-linear */
  len = 1 << 20;
  text = malloc(len + 1);
  for (size_t i = 0; i < len; i++)
    text[i] = (char)('a' + (i * 7 + i / 13) % 26);
  text[len] = 0;
  double t0 = vb_now_ms();
  if (CHECK_OK(t->ops->encode(t->impl, text, len, false, 0, &ids, &n))) {
    double ms = vb_now_ms() - t0;
    printf("encode 1 MB single word: %.1f ms, %zu tokens\n", ms, n);
    CHECK(ms < 20000, "single 1 MB word took %.0f ms", ms);
    char *out;
    if (CHECK_OK(t->ops->decode(t->impl, ids, n, false, false, &out))) {
      CHECK(strcmp(out, text) == 0, "single word round trip");
      free(out);
    }
    free(ids);
  }
  free(text);
}

static void check_tokenizer_json_only(void) {
  char *dir = subdir("tokjson");
  copy_file(tu_fixture(OPT_DIR), dir, "tokenizer.json");
  vb_tokenizer t = {0};
  double t0 = vb_now_ms();
  int rc = vb_bpe_load(dir, &t);
  printf("load tokenizer.json: %.1f ms\n", vb_now_ms() - t0);
  if (CHECK(rc == 0, "tokenizer.json load: %s", vb_error_message())) {
    CHECK(t.ops->vocab_size(t.impl) == 50260, "vocab_size %d", t.ops->vocab_size(t.impl));
    CHECK(t.ops->is_special(t.impl, 1) && t.ops->is_special(t.impl, 2) &&
              !t.ops->is_special(t.impl, 0),
          "tokenizer.json special flags");
    const cJSON *c;
    cJSON_ArrayForEach(c, tu_json_path(tu_expected(), "tokenizers.cases.opt")) {
      const char *name = cJSON_GetObjectItem(c, "id")->valuestring;
      const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
      int32_t *ids;
      size_t n;
      if (CHECK_OK(encode(&t, text, true, &ids, &n))) {
        CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "tokenizer_json_ids")),
              "%s: tokenizer.json ids", name);
        free(ids);
      }
      if (CHECK_OK(encode(&t, text, false, &ids, &n))) {
        CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "tokenizer_json_ids_no_special")),
              "%s: tokenizer.json ids_no_special", name);
        free(ids);
      }
      ids = json_ids(cJSON_GetObjectItem(c, "ids"), &n);
      char *out;
      if (CHECK_OK(t.ops->decode(t.impl, ids, n, true, true, &out))) {
        CHECK(strcmp(out, cJSON_GetObjectItem(c, "decode_skip_special")->valuestring) == 0,
              "%s: tokenizer.json decode", name);
        free(out);
      }
      free(ids);
    }
    t.ops->destroy(t.impl);
  }
  free(dir);
}

static void check_slow_files_only(void) {
  char *dir = subdir("slowonly");
  copy_file(tu_fixture(OPT_DIR), dir, "vocab.json");
  copy_file(tu_fixture(OPT_DIR), dir, "merges.txt");
  vb_tokenizer t = {0};
  if (CHECK(vb_bpe_load(dir, &t) == 0, "vocab+merges load: %s", vb_error_message())) {
    /* GPT2Tokenizer defaults: no BOS, <|endoftext|> appended as the special token */
    CHECK(t.ops->vocab_size(t.impl) == 50261, "vocab_size %d", t.ops->vocab_size(t.impl));
    const char *s = t.ops->token(t.impl, 50260);
    CHECK(s && strcmp(s, "<|endoftext|>") == 0 && t.ops->is_special(t.impl, 50260),
          "<|endoftext|> appended");
    const cJSON *c;
    cJSON_ArrayForEach(c, tu_json_path(tu_expected(), "tokenizers.cases.opt")) {
      const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
      if (strstr(text, "</s>") || strstr(text, "<pad>")) continue;
      int32_t *ids;
      size_t n;
      if (CHECK_OK(encode(&t, text, true, &ids, &n))) {
        CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "ids_no_special")), "%s: defaults",
              cJSON_GetObjectItem(c, "id")->valuestring);
        free(ids);
      }
    }
    int32_t *ids;
    size_t n;
    if (CHECK_OK(encode(&t, "a<|endoftext|> b", true, &ids, &n))) {
      /* GPT2Tokenizer's default special tokens keep the whitespace next to them */
      CHECK(n == 3 && ids[0] == 68 && ids[1] == 50260 && ids[2] == 279, "endoftext split: n %zu",
            n);
      free(ids);
    }
    t.ops->destroy(t.impl);
  }
  free(dir);
}

static void expect_load_error(const char *name, const char *vocab, const char *merges) {
  char *dir = subdir(name);
  if (vocab) write_file(dir, "vocab.json", vocab);
  if (merges) write_file(dir, "merges.txt", merges);
  vb_tokenizer t = {0};
  int rc = vb_bpe_load(dir, &t);
  CHECK(rc == -1, "%s: expected an error, got %d", name, rc);
  if (rc == 0) t.ops->destroy(t.impl);
  free(dir);
}

static void check_malformed(void) {
  const char *merges = "#version: 0.2\na b\n";
  expect_load_error("bad_json", "{\"a\": 0, ", merges);
  expect_load_error("not_object", "[1, 2]", merges);
  expect_load_error("string_id", "{\"a\": \"0\"}", merges);
  expect_load_error("negative_id", "{\"a\": -1}", merges);
  expect_load_error("fraction_id", "{\"a\": 1.5}", merges);
  expect_load_error("huge_id", "{\"a\": 1e12}", merges);
  expect_load_error("empty_vocab", "{}", merges);
  expect_load_error("three_fields", "{\"a\": 0}", "#version: 0.2\na b c\n");
  expect_load_error("one_field", "{\"a\": 0}", "#version: 0.2\nab\n");
  expect_load_error("binary_merges", "{\"a\": 0}", "\xFF\xFE\x00\x01 x y z\n\x80");
  expect_load_error("empty_vocab_file", "", merges);

  /* malformed side files */
  char *dir = subdir("bad_config");
  write_file(dir, "vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\xC4\xA0\": 3}");
  write_file(dir, "merges.txt", merges);
  write_file(dir, "tokenizer_config.json", "{\"bos_token\": 5}");
  vb_tokenizer t = {0};
  CHECK(vb_bpe_load(dir, &t) == -1, "bad bos_token must fail");
  write_file(dir, "tokenizer_config.json", "{}");
  write_file(dir, "added_tokens.json", "{\"<x>\": 7}");
  CHECK(vb_bpe_load(dir, &t) == -1, "non-consecutive added token must fail");
  /* a valid tiny model: the added token gets id 4, <|endoftext|> (bos/eos/unk) id 5 */
  write_file(dir, "added_tokens.json", "{\"<x>\": 4}");
  if (CHECK(vb_bpe_load(dir, &t) == 0, "tiny model: %s", vb_error_message())) {
    CHECK(t.ops->vocab_size(t.impl) == 6, "tiny vocab_size %d", t.ops->vocab_size(t.impl));
    int32_t *ids;
    size_t n;
    if (CHECK_OK(encode(&t, "ab <x> a", true, &ids, &n))) {
      /* plain added tokens eat the whitespace around them */
      CHECK(n == 3 && ids[0] == 2 && ids[1] == 4 && ids[2] == 0, "tiny encode n %zu", n);
      char *out;
      if (CHECK_OK(t.ops->decode(t.impl, ids, n, true, false, &out))) {
        /* the added token is its own sub-text, joined by spaces */
        CHECK(strcmp(out, "ab <x> a") == 0, "tiny decode \"%s\"", out);
        free(out);
      }
      free(ids);
    }
    /* "c" has no vocabulary entry: it becomes the unknown token (<|endoftext|>) */
    if (CHECK_OK(encode(&t, "a c", false, &ids, &n))) {
      CHECK(n == 3 && ids[0] == 0 && ids[1] == 3 && ids[2] == 5, "unknown piece -> unk: n %zu", n);
      free(ids);
    }
    t.ops->destroy(t.impl);
  }
  free(dir);

  /* tokenizer.json problems */
  dir = subdir("bad_tokjson");
  write_file(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, ");
  CHECK(vb_bpe_load(dir, &t) == -1, "truncated tokenizer.json must fail");
  write_file(dir, "tokenizer.json",
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}");
  CHECK(vb_bpe_load(dir, &t) == -1, "bad merge must fail");
  write_file(dir, "tokenizer.json",
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
             "\"merges\": [[\"a\", \"b\"]]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
             "\"add_prefix_space\": false}, \"added_tokens\": [{\"id\": 3, \"content\": \"<e>\", "
             "\"special\": true}], \"post_processor\": {\"type\": \"RobertaProcessing\", "
             "\"sep\": [\"<e>\", 3], \"cls\": [\"a\", 0]}}");
  if (CHECK(vb_bpe_load(dir, &t) == 0, "pair-form merges: %s", vb_error_message())) {
    int32_t *ids;
    size_t n;
    if (CHECK_OK(encode(&t, "abab<e>", true, &ids, &n))) {
      CHECK(n == 5 && ids[0] == 0 && ids[1] == 2 && ids[2] == 2 && ids[3] == 3 && ids[4] == 3,
            "pair-form encode n %zu", n);
      free(ids);
    }
    t.ops->destroy(t.impl);
  }
  write_file(dir, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
  CHECK(vb_bpe_load(dir, &t) == 1, "a Unigram tokenizer.json is not ours");
  free(dir);
  dir = subdir("empty");
  CHECK(vb_bpe_load(dir, &t) == 1, "an empty directory is not ours");
  free(dir);
  CHECK(vb_bpe_load(tu_fixture("models/videoblip-flant5-tiny"), &t) == 1,
        "the T5 directory is not ours");
}

typedef struct {
  const vb_tokenizer *t;
  const char *text;
  size_t len;
  int32_t *ids;
  size_t n;
  int rc;
} thread_job;

static void *encode_job(void *arg) {
  thread_job *j = arg;
  j->rc = j->t->ops->encode(j->t->impl, j->text, j->len, true, 0, &j->ids, &j->n);
  return NULL;
}

/* Concurrent encodes share the piece cache; results must not depend on it. */
static void check_threads(const vb_tokenizer *t) {
  size_t len;
  char *text = random_text(100 * 1024, &len);
  thread_job jobs[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    jobs[i] = (thread_job){t, text, len, NULL, 0, -1};
    pthread_create(&th[i], NULL, encode_job, &jobs[i]);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) {
    CHECK(jobs[i].rc == 0 && jobs[i].n == jobs[0].n &&
              memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t)) == 0,
          "thread %d result differs", i);
  }
  for (int i = 0; i < 4; i++) free(jobs[i].ids);
  free(text);
}

/* The generic entry point picks BPE for the OPT directory. */
static void check_generic_loader(void) {
  vb_tokenizer *t = NULL;
  if (!CHECK(vb_tokenizer_load(tu_fixture(OPT_DIR), &t) == 0, "vb_tokenizer_load: %s",
             vb_error_message()))
    return;
  CHECK(t->kind == VB_TOK_BPE && vb_tokenizer_vocab_size(t) == 50260, "generic loader kind %d",
        t->kind);
  const cJSON *c;
  cJSON_ArrayForEach(c, tu_json_path(tu_expected(), "tokenizers.cases.opt")) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    int32_t *ids;
    size_t n;
    if (CHECK_OK(vb_tokenizer_encode(t, text, strlen(text), true, &ids, &n))) {
      CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "ids")), "%s: generic loader ids",
            cJSON_GetObjectItem(c, "id")->valuestring);
      char *out;
      if (CHECK_OK(vb_tokenizer_decode(t, ids, n, true, true, &out))) {
        CHECK(strcmp(out, cJSON_GetObjectItem(c, "decode_skip_special")->valuestring) == 0,
              "%s: generic loader decode", cJSON_GetObjectItem(c, "id")->valuestring);
        free(out);
      }
      free(ids);
    }
  }
  vb_tokenizer_free(t);
}

int main(void) {
  vb_tokenizer t = {0};
  double t0 = vb_now_ms();
  int rc = vb_bpe_load(tu_fixture(OPT_DIR), &t);
  printf("load vocab.json+merges.txt: %.1f ms\n", vb_now_ms() - t0);
  if (CHECK(rc == 0, "load: %s", vb_error_message())) {
    check_basics(&t);
    check_cases_slow(&t);
    check_round_trip_and_speed(&t);
    check_threads(&t);
    t.ops->destroy(t.impl);
  }
  check_generic_loader();
  check_tokenizer_json_only();
  check_slow_files_only();
  check_malformed();
  return tu_finish();
}
