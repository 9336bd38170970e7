/* SentencePiece / T5 tokenizer against transformers 4.33's slow T5Tokenizer
 * (expected.json tokenizers.cases.t5), the tokenizer.json-only path, and
 * hostile model files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/common.h"
#include "testutil.h"
#include "text/tokenizer.h"

static const char *kDir = "models/videoblip-flant5-tiny";

static bool ids_equal(const int32_t *got, size_t n, const cJSON *ref) {
  if (!cJSON_IsArray(ref) || (size_t)cJSON_GetArraySize(ref) != n) return false;
  size_t i = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, ref) {
    if (!cJSON_IsNumber(v) || got[i++] != (int32_t)v->valuedouble) return false;
  }
  return true;
}

static char *ids_str(const int32_t *ids, size_t n) {
  static char buf[4096];
  size_t o = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n && o < sizeof buf - 16; i++)
    o += (size_t)snprintf(buf + o, sizeof buf - o, "%d ", (int)ids[i]);
  return buf;
}

static int32_t *json_ids(const cJSON *arr, size_t *n) {
  *n = (size_t)cJSON_GetArraySize(arr);
  int32_t *ids = malloc((*n + 1) * sizeof *ids);
  size_t i = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, arr) ids[i++] = (int32_t)v->valuedouble;
  return ids;
}

static void check_encode(vb_tokenizer *t, const char *id, const char *text, bool special,
                         const cJSON *ref, const char *what) {
  int32_t *ids = NULL;
  size_t n = 0;
  int rc = t->ops->encode(t->impl, text, strlen(text), special, 0, &ids, &n);
  CHECK(rc == 0, "%s %s: encode failed: %s", id, what, vb_error_message());
  if (rc == 0) CHECK(ids_equal(ids, n, ref), "%s %s: got %s", id, what, ids_str(ids, n));
  free(ids);
}

static void check_decode(vb_tokenizer *t, const char *id, const cJSON *ref_ids, bool skip,
                         bool cleanup, const cJSON *ref, const char *what) {
  size_t n;
  int32_t *ids = json_ids(ref_ids, &n);
  char *s = NULL;
  int rc = t->ops->decode(t->impl, ids, n, skip, cleanup, &s);
  CHECK(rc == 0, "%s %s: decode failed: %s", id, what, vb_error_message());
  if (rc == 0)
    CHECK(strcmp(s, ref->valuestring) == 0, "%s %s: got \"%s\" want \"%s\"", id, what, s,
          ref->valuestring);
  free(s);
  free(ids);
}

static void copy_file(const char *from, const char *to) {
  char *data = NULL;
  size_t n = 0;
  if (vb_read_file(from, (size_t)1 << 30, &data, &n) != 0) {
    CHECK(0, "read %s: %s", from, vb_error_message());
    return;
  }
  FILE *f = fopen(to, "wb");
  CHECK(f != NULL, "cannot write %s", to);
  if (f) {
    fwrite(data, 1, n, f);
    fclose(f);
  }
  free(data);
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL, "cannot write %s", path);
  if (!f) return;
  fwrite(data, 1, n, f);
  fclose(f);
}

static char *subdir(const char *name) {
  char *d = vb_path_join(tu_tmpdir(), name);
  mkdir(d, 0700);
  return d;
}

static void test_reference_cases(void) {
  vb_tokenizer t = {0};
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", tu_fixture(kDir));
  int rc = vb_spm_load(dir, &t);
  CHECK(rc == 0, "vb_spm_load: %s", vb_error_message());
  if (rc != 0) return;
  CHECK(t.kind == VB_TOK_SPM, "kind");
  CHECK(t.ops->vocab_size(t.impl) == 1001, "vocab size %d", (int)t.ops->vocab_size(t.impl));
  CHECK(t.ops->is_special(t.impl, 0) && t.ops->is_special(t.impl, 2) &&
            t.ops->is_special(t.impl, 1000),
        "unk, eos, pad are special");
  CHECK(!t.ops->is_special(t.impl, 1) && !t.ops->is_special(t.impl, 5),
        "<s> and pieces are not special");
  CHECK(t.ops->token(t.impl, 1000) && strcmp(t.ops->token(t.impl, 1000), "<pad>") == 0,
        "token 1000");
  CHECK(t.ops->token(t.impl, 1001) == NULL && t.ops->token(t.impl, -1) == NULL,
        "token out of range");

  /* tokenizer.json alone, in a directory without spiece.model */
  char *jdir = subdir("json_only");
  char *jpath = vb_path_join(jdir, "tokenizer.json");
  char src[2048];
  snprintf(src, sizeof src, "%s/tokenizer.json", dir);
  copy_file(src, jpath);
  vb_tokenizer tj = {0};
  int rcj = vb_spm_load(jdir, &tj);
  CHECK(rcj == 0, "vb_spm_load(tokenizer.json): %s", vb_error_message());
  if (rcj == 0)
    CHECK(tj.ops->vocab_size(tj.impl) == 1001, "json vocab size %d",
          (int)tj.ops->vocab_size(tj.impl));

  cJSON *cases = tu_json_path(tu_expected(), "tokenizers.cases.t5");
  CHECK(cJSON_GetArraySize(cases) == 42, "42 T5 cases");
  const cJSON *c;
  cJSON_ArrayForEach(c, cases) {
    const char *id = cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring;
    const char *text = cJSON_GetObjectItemCaseSensitive(c, "text")->valuestring;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "ids");
    check_encode(&t, id, text, true, ids, "ids");
    check_encode(&t, id, text, false, cJSON_GetObjectItemCaseSensitive(c, "ids_no_special"),
                 "ids_no_special");
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(c, "tokens"), *tk;
    size_t i = 0;
    bool ok = cJSON_GetArraySize(toks) == cJSON_GetArraySize(ids);
    cJSON_ArrayForEach(tk, toks) {
      const char *s = t.ops->token(t.impl, (int32_t)cJSON_GetArrayItem(ids, (int)i++)->valuedouble);
      if (!s || strcmp(s, tk->valuestring) != 0) ok = false;
    }
    CHECK(ok, "%s: tokens", id);
    check_decode(&t, id, ids, true, true,
                 cJSON_GetObjectItemCaseSensitive(c, "decode_skip_special"), "decode_skip_special");
    check_decode(&t, id, ids, true, false,
                 cJSON_GetObjectItemCaseSensitive(c, "decode_skip_special_no_cleanup"),
                 "decode_skip_special_no_cleanup");
    check_decode(&t, id, ids, false, true,
                 cJSON_GetObjectItemCaseSensitive(c, "decode_keep_special"), "decode_keep_special");
    if (rcj == 0) {
      check_encode(&tj, id, text, true, cJSON_GetObjectItemCaseSensitive(c, "tokenizer_json_ids"),
                   "tokenizer_json_ids");
      check_encode(&tj, id, text, false,
                   cJSON_GetObjectItemCaseSensitive(c, "tokenizer_json_ids_no_special"),
                   "tokenizer_json_ids_no_special");
      /* decoding follows the slow tokenizer for both sources */
      check_decode(&tj, id, ids, true, true,
                   cJSON_GetObjectItemCaseSensitive(c, "decode_skip_special"),
                   "tokenizer.json decode_skip_special");
      check_decode(&tj, id, ids, false, true,
                   cJSON_GetObjectItemCaseSensitive(c, "decode_keep_special"),
                   "tokenizer.json decode_keep_special");
    }
  }

  /* invalid UTF-8 is refused with a message */
  static const char *const bad[] = {"abc\xff", "\xc3", "\xed\xa0\x80", "\xc0\xaf", "x\x80y"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    int32_t *ids = NULL;
    size_t n = 0;
    vb_error_clear();
    CHECK(t.ops->encode(t.impl, bad[k], strlen(bad[k]), true, 0, &ids, &n) == -1,
          "invalid UTF-8 %zu accepted", k);
    CHECK(strstr(vb_error_message(), "UTF-8") != NULL, "message: %s", vb_error_message());
    free(ids);
  }
  /* negative ids cannot be decoded; ids past the vocabulary read as T5's <extra_id_-N> text */
  char *s = NULL;
  int32_t neg[] = {5, -1};
  CHECK(t.ops->decode(t.impl, neg, 2, true, true, &s) == -1, "negative id decoded");
  int32_t big[] = {156, 1001};
  rc = t.ops->decode(t.impl, big, 2, false, false, &s);
  CHECK(rc == 0 && strcmp(s, "He<extra_id_-2>") == 0, "past-vocab id: %s", s ? s : "(null)");
  free(s);
  /* an EOS already at the end is not appended again */
  int32_t *ids = NULL;
  size_t n = 0;
  rc = t.ops->encode(t.impl, "Hello</s>", 9, true, 0, &ids, &n);
  CHECK(rc == 0 && n == 4 && ids[3] == 2, "eos not doubled: %s", ids_str(ids, n));
  free(ids);
  /* a literal <unk> is matched as the special token */
  rc = t.ops->encode(t.impl, "a <unk> b", 9, false, 0, &ids, &n);
  CHECK(rc == 0 && n == 3 && ids[0] == 10 && ids[1] == 0 && ids[2] == 84, "literal <unk>: %s",
        ids_str(ids, n));
  free(ids);

  t.ops->destroy(t.impl);
  if (rcj == 0) tj.ops->destroy(tj.impl);
  free(jpath);
  free(jdir);
}

/* extra_ids > 0: <extra_id_N> is id vocab_size-1-N and splits like a special token. */
static void test_extra_ids(void) {
  char *d = subdir("extra_ids");
  char src[2048], dst[2048];
  snprintf(src, sizeof src, "%s/spiece.model", tu_fixture(kDir));
  snprintf(dst, sizeof dst, "%s/spiece.model", d);
  copy_file(src, dst);
  snprintf(dst, sizeof dst, "%s/tokenizer_config.json", d);
  const char *cfg = "{\"extra_ids\": 3, \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\", "
                    "\"pad_token\": \"<pad>\"}";
  write_file(dst, cfg, strlen(cfg));
  snprintf(dst, sizeof dst, "%s/added_tokens.json", d);
  write_file(dst, "{\"<pad>\": 1003}", 15);
  vb_tokenizer t = {0};
  int rc = vb_spm_load(d, &t);
  CHECK(rc == 0, "extra_ids load: %s", vb_error_message());
  if (rc == 0) {
    CHECK(t.ops->vocab_size(t.impl) == 1004, "vocab %d", (int)t.ops->vocab_size(t.impl));
    CHECK(strcmp(t.ops->token(t.impl, 1002), "<extra_id_0>") == 0 &&
              strcmp(t.ops->token(t.impl, 1000), "<extra_id_2>") == 0,
          "extra id tokens");
    CHECK(t.ops->is_special(t.impl, 1001) && t.ops->is_special(t.impl, 1003),
          "extra ids / pad special");
    int32_t *ids = NULL;
    size_t n = 0;
    rc = t.ops->encode(t.impl, "a <extra_id_0> b<extra_id_2>", 28, true, 0, &ids, &n);
    CHECK(rc == 0 && n == 5 && ids[0] == 10 && ids[1] == 1002 && ids[2] == 84 && ids[3] == 1000 &&
              ids[4] == 2,
          "extra ids encode: %s", ids_str(ids, n));
    char *s = NULL;
    if (ids && n == 5) {
      rc = t.ops->decode(t.impl, ids, n, false, true, &s);
      CHECK(rc == 0 && strcmp(s, "a<extra_id_0> b<extra_id_2></s>") == 0, "extra ids decode: %s",
            s ? s : "(null)");
      free(s);
    }
    free(ids);
    t.ops->destroy(t.impl);
  }
  /* a non-consecutive added_tokens.json is refused (transformers raises too) */
  write_file(dst, "{\"<pad>\": 1000}", 15);
  vb_tokenizer t2 = {0};
  CHECK(vb_spm_load(d, &t2) == -1, "non-consecutive added token accepted");
  free(d);
}

/* Through the generic loader (BPE is tried first and must pass on this directory). */
static void test_generic_loader(void) {
  vb_tokenizer *t = NULL;
  int rc = vb_tokenizer_load(tu_fixture(kDir), &t);
  CHECK(rc == 0, "vb_tokenizer_load: %s", vb_error_message());
  if (rc != 0) return;
  CHECK(t->kind == VB_TOK_SPM, "kind %d", (int)t->kind);
  int32_t *ids = NULL;
  size_t n = 0;
  rc = vb_tokenizer_encode(t, "Hello world", 11, true, &ids, &n);
  CHECK(rc == 0 && n == 5 && ids[0] == 156 && ids[4] == 2, "generic encode: %s", ids_str(ids, n));
  char *s = NULL;
  if (rc == 0) {
    rc = vb_tokenizer_decode(t, ids, n, true, true, &s);
    CHECK(rc == 0 && strcmp(s, "Hello world") == 0, "generic decode: %s", s ? s : "(null)");
  }
  free(s);
  free(ids);
  CHECK(vb_tokenizer_vocab_size(t) == 1001, "generic vocab size");
  vb_tokenizer_free(t);
}

static void test_no_files(void) {
  char *d = subdir("empty");
  vb_tokenizer t = {0};
  CHECK(vb_spm_load(d, &t) == 1, "empty dir should return 1");
  free(d);
}

static uint64_t rng = 0x1234567887654321ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

/* Loads must fail cleanly or produce a tokenizer that works; never crash. */
static int try_model(const char *dir, const uint8_t *data, size_t n) {
  char path[2048];
  snprintf(path, sizeof path, "%s/spiece.model", dir);
  write_file(path, data, n);
  vb_tokenizer t = {0};
  vb_error_clear();
  int rc = vb_spm_load(dir, &t);
  if (rc == 0) {
    static const char *const texts[] = {"Hello world", "café ＡＢＣ ﬁne", "  a  b  </s> <pad>",
                                        "日本語", ""};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
      int32_t *ids = NULL;
      size_t m = 0;
      if (t.ops->encode(t.impl, texts[k], strlen(texts[k]), true, 0, &ids, &m) == 0) {
        char *s = NULL;
        if (t.ops->decode(t.impl, ids, m, k % 2 == 0, true, &s) == 0) free(s);
      }
      free(ids);
    }
    t.ops->destroy(t.impl);
  } else {
    CHECK(rc == -1 && strlen(vb_error_message()) > 0,
          "load of a corrupt model returned %d without a message", rc);
  }
  return rc;
}

static void test_corrupt_models(void) {
  char *d = subdir("corrupt");
  char src[2048];
  snprintf(src, sizeof src, "%s/spiece.model", tu_fixture(kDir));
  char *orig = NULL;
  size_t size = 0;
  if (vb_read_file(src, (size_t)1 << 30, &orig, &size) != 0) {
    CHECK(0, "read spiece.model");
    free(d);
    return;
  }
  const uint8_t *u = (const uint8_t *)orig;
  /* truncations: cutting inside the trailing specs must fail */
  size_t cuts[] = {0,           1,          2,         3,        7,
                   100,         1000,       size / 4,  size / 3, size / 2,
                   size - 1000, size - 100, size - 10, size - 2, size - 1};
  int failed = 0;
  for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++)
    if (try_model(d, u, cuts[k]) != 0) failed++;
  for (size_t cut = 0; cut < size; cut += 997)
    if (try_model(d, u, cut) != 0) failed++;
  CHECK(try_model(d, u, size - 1) == -1, "model truncated by one byte accepted");
  CHECK(try_model(d, u, size - 10) == -1, "model truncated by ten bytes accepted");
  CHECK(try_model(d, u, 0) == -1, "empty model accepted");
  CHECK(failed > 200, "only %d truncations failed", failed);
  /* random bytes */
  uint8_t *buf = malloc(size);
  int rejected = 0;
  for (int k = 0; k < 200; k++) {
    size_t n = 1 + rnd() % 4096;
    for (size_t i = 0; i < n; i++)
      buf[i] = (uint8_t)rnd();
    if (try_model(d, buf, n) != 0) rejected++;
  }
  CHECK(rejected == 200, "%d/200 random buffers rejected", rejected);
  /* byte flips anywhere (pieces, specs, charsmap trie and strings) */
  for (int k = 0; k < 300; k++) {
    memcpy(buf, u, size);
    int flips = 1 + (int)(rnd() % 8);
    for (int f = 0; f < flips; f++)
      buf[rnd() % size] ^= (uint8_t)(1 + rnd() % 255);
    try_model(d, buf, size);
  }
  /* flips concentrated in the charsmap (the tail of the file) */
  for (int k = 0; k < 300; k++) {
    memcpy(buf, u, size);
    for (int f = 0; f < 4; f++)
      buf[size / 2 + rnd() % (size / 2)] = (uint8_t)rnd();
    try_model(d, buf, size);
  }
  free(buf);
  free(orig);
  free(d);
}

int main(void) {
  test_reference_cases();
  test_extra_ids();
  test_generic_loader();
  test_no_files();
  test_corrupt_models();
  return tu_finish();
}
