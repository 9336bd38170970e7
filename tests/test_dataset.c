/* The pieces of dataset runs (tools/dataset) without a model: shards and their
 * environment, the input list's lines, result keys, the key set, and JSON Lines results
 * that survive a torn last line. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/input_list.h"
#include "dataset/jsonl_out.h"
#include "dataset/key_set.h"
#include "dataset/shard.h"
#include "runtime/common.h"
#include "testutil.h"

static void test_shard_parse(void) {
  vb_shard s;
  CHECK(vb_shard_parse("0/1", &s) == 0 && s.k == 0 && s.n == 1, "0/1");
  CHECK(vb_shard_parse("2/3", &s) == 0 && s.k == 2 && s.n == 3, "2/3");
  const char *bad[] = {"3/3", "1/0", "-1/2", "a/b",  "1/2x", "",
                       "1",   "1/",  "/2",   " 1/2", "1/+2", "99999999999999999999/2"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK(vb_shard_parse(bad[i], &s) != 0, "'%s' must be refused", bad[i]);
  /* every line in exactly one shard, the shards' sizes differ by at most one */
  for (long n = 1; n <= 7; n++) {
    int owners_ok = 1, size[7] = {0};
    for (long line = 0; line < 100; line++) {
      int owners = 0;
      for (long k = 0; k < n; k++) {
        vb_shard sh = {k, n};
        if (vb_shard_takes(&sh, line)) owners++, size[k]++;
      }
      owners_ok &= owners == 1;
    }
    int lo = 100, hi = 0;
    for (long k = 0; k < n; k++) {
      if (size[k] < lo) lo = size[k];
      if (size[k] > hi) hi = size[k];
    }
    CHECK(owners_ok && hi - lo <= 1, "%ld shards partition 100 lines evenly", n);
  }
}

static void clear_env(void) {
  unsetenv("SLURM_ARRAY_TASK_ID");
  unsetenv("SLURM_ARRAY_TASK_COUNT");
  unsetenv("SLURM_ARRAY_TASK_MIN");
  unsetenv("JOB_COMPLETION_INDEX");
}

static void test_shard_env(void) {
  vb_shard s;
  const char *from;
  char err[256];
  clear_env();
  CHECK(vb_shard_from_env(0, &s, &from, err, sizeof err) == 0 && s.n == 1 && !*from,
        "no scheduler: the whole list");
  CHECK(vb_shard_from_env(4, &s, &from, err, sizeof err) != 0, "--shards alone is refused");
  setenv("SLURM_ARRAY_TASK_ID", "5", 1);
  setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
  setenv("SLURM_ARRAY_TASK_MIN", "4", 1);
  CHECK(vb_shard_from_env(0, &s, &from, err, sizeof err) == 0 && s.k == 1 && s.n == 3,
        "array 4-6, task 5: shard 1/3 (%s)", err);
  setenv("SLURM_ARRAY_TASK_ID", "7", 1);
  CHECK(vb_shard_from_env(0, &s, &from, err, sizeof err) != 0 && strstr(err, "--array"),
        "a task outside a stepless range is refused: %s", err);
  setenv("SLURM_ARRAY_TASK_ID", "x", 1);
  CHECK(vb_shard_from_env(0, &s, &from, err, sizeof err) != 0, "a bad task id is refused");
  clear_env();
  setenv("JOB_COMPLETION_INDEX", "2", 1);
  CHECK(vb_shard_from_env(0, &s, &from, err, sizeof err) != 0 && strstr(err, "--shards"),
        "JOB_COMPLETION_INDEX needs --shards: %s", err);
  CHECK(vb_shard_from_env(3, &s, &from, err, sizeof err) == 0 && s.k == 2 && s.n == 3,
        "JOB_COMPLETION_INDEX 2 of 3");
  CHECK(vb_shard_from_env(2, &s, &from, err, sizeof err) != 0, "index 2 of 2 shards is refused");
  clear_env();
}

static void test_key_set(void) {
  vb_key_set s = {0};
  char k[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    CHECK_OK(vb_key_set_add(&s, k));
  }
  CHECK_OK(vb_key_set_add(&s, "key7"));
  CHECK(s.n == 1000, "1000 distinct keys, got %zu", s.n);
  int all = 1;
  for (int i = 0; i < 1000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    all &= vb_key_set_has(&s, k);
  }
  CHECK(all && !vb_key_set_has(&s, "key1000") && !vb_key_set_has(&s, ""), "membership");
  vb_key_set_free(&s);
  CHECK(!vb_key_set_has(&s, "key1"), "an empty set has nothing");
}

static char *write_temp(const char *name, const char *text, size_t n) {
  char *path = vb_path_join(tu_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL, "cannot write %s", path);
  if (f) {
    fwrite(text, 1, n, f);
    fclose(f);
  }
  return path;
}

static void test_input_list(void) {
  static const char text[] =
      "a.mp4\n"
      "\n"
      "  {\"video\": \"b.mp4\", \"id\": \"B\", \"prompt\": \"Q?\", \"start\": 1.5, \"end\": 3, "
      "\"extra\": [1]}\r\n"
      "{\"video\": \"\"}\n"
      "{\"video\": \"c.mp4\", \"start\": 4, \"end\": 2}\n"
      "{\"video\": \"d.mp4\", \"id\": [1]}\n"
      "{\"video\": \"e.mp4\", \"start\": -1}\n"
      "{not json\n"
      "path with spaces.mp4\r\n"
      "{\"video\": \"g.mp4\"} {\"video\": \"x.mp4\"}\n"
      "{\"video\": \"h.mp4\", \"video\": \"i.mp4\"}\n"
      "{\"video\": \"f.mp4\", \"id\": 9}"; /* no final newline */
  char *path = write_temp("list.txt", text, sizeof text - 1);
  vb_input_list l;
  CHECK_OK(vb_input_list_open(&l, path, (vb_shard){0, 1}));
  vb_input_item it[16];
  int n = 0, rc;
  while (n < 16 && (rc = vb_input_list_next(&l, &it[n])) == 1)
    n++;
  CHECK(rc == 0, "the list ends cleanly");
  CHECK(n == 11, "11 inputs (the blank line skipped), got %d", n);
  if (n == 11) {
    CHECK(it[0].line == 1 && !strcmp(it[0].video, "a.mp4") && !it[0].id && !it[0].error,
          "a path line");
    CHECK(it[1].line == 3 && !strcmp(it[1].video, "b.mp4") && cJSON_IsString(it[1].id) &&
              !strcmp(it[1].id->valuestring, "B") && !strcmp(it[1].prompt, "Q?") &&
              it[1].start == 1.5 && it[1].end == 3 && !it[1].error,
          "a JSON line (leading spaces, CRLF, unknown fields ignored)");
    CHECK(it[2].error && strstr(it[2].error, "line 4") && !it[2].video, "empty video: %s",
          it[2].error);
    CHECK(it[3].error && strstr(it[3].error, "after"), "end before start: %s", it[3].error);
    CHECK(it[4].error && strstr(it[4].error, "\"id\""), "an array id: %s", it[4].error);
    CHECK(it[5].error && strstr(it[5].error, "\"start\""), "negative start: %s", it[5].error);
    CHECK(it[6].error && strstr(it[6].error, "not a JSON object"), "broken JSON: %s", it[6].error);
    CHECK(!it[7].error && !strcmp(it[7].video, "path with spaces.mp4"), "a path with spaces");
    CHECK(it[8].error &&
              strstr(it[8].error, "line 10: not a JSON object (the line has more after") &&
              !it[8].video,
          "text after the object: %s", it[8].error);
    CHECK(it[9].error &&
              strstr(it[9].error, "line 11: not a JSON object (the line repeats the key 'video'") &&
              !it[9].video,
          "a key twice: %s", it[9].error);
    CHECK(it[10].line == 12 && !strcmp(it[10].video, "f.mp4") && cJSON_IsNumber(it[10].id),
          "a last line without newline, a numeric id");
  }
  for (int i = 0; i < n; i++)
    vb_input_item_free(&it[i]);
  vb_input_list_close(&l);

  /* shard 1/3 of the same list: 0-based lines 1, 4, 7, 10 (blank, end<start, broken JSON, a
   * key twice) */
  CHECK_OK(vb_input_list_open(&l, path, (vb_shard){1, 3}));
  n = 0;
  while (n < 16 && vb_input_list_next(&l, &it[n]) == 1)
    n++;
  CHECK(n == 3 && it[0].line == 5 && it[1].line == 8 && it[2].line == 11,
        "shard 1/3 takes lines 5, 8 and 11 (got %d)", n);
  for (int i = 0; i < n; i++)
    vb_input_item_free(&it[i]);
  vb_input_list_close(&l);
  free(path);

  /* a line over the limit and a NUL byte fail alone; the lines after them still come */
  size_t big = VB_INPUT_MAX_LINE + 10;
  char *buf = malloc(big + 64);
  memset(buf, 'x', big);
  size_t len = big;
  len += (size_t)sprintf(buf + len, "\nnul");
  buf[len++] = 0;
  len += (size_t)sprintf(buf + len, "\nok.mp4\n");
  path = write_temp("long.txt", buf, len);
  free(buf);
  CHECK_OK(vb_input_list_open(&l, path, (vb_shard){0, 1}));
  n = 0;
  while (n < 16 && vb_input_list_next(&l, &it[n]) == 1)
    n++;
  CHECK(n == 3, "three lines, got %d", n);
  if (n == 3) {
    CHECK(it[0].error && strstr(it[0].error, "longer than"), "a too long line: %s", it[0].error);
    CHECK(it[1].error && strstr(it[1].error, "NUL"), "a NUL byte: %s", it[1].error);
    CHECK(!it[2].error && !strcmp(it[2].video, "ok.mp4"), "the next line");
  }
  for (int i = 0; i < n; i++)
    vb_input_item_free(&it[i]);
  vb_input_list_close(&l);
  free(path);
  CHECK(vb_input_list_open(&l, "/nonexistent/list", (vb_shard){0, 1}) != 0 &&
            strstr(vb_error_message(), "/nonexistent/list"),
        "a missing list names itself");
}

static void test_keys(void) {
  /* a result line gives the key its input gave */
  cJSON *id = cJSON_CreateString("x");
  char *a = vb_input_key(id, "v.mp4", 1, 2, 3);
  cJSON *r = cJSON_Parse("{\"id\":\"x\",\"line\":3,\"video\":\"w.mp4\",\"text\":\"t\"}");
  char *b = vb_result_key(r);
  CHECK(a && b && !strcmp(a, b), "by id: %s vs %s", a, b);
  free(a), free(b), cJSON_Delete(r), cJSON_Delete(id);
  a = vb_input_key(NULL, "v.mp4", 0.1, -1, 3);
  r = cJSON_Parse("{\"line\":8,\"video\":\"v.mp4\",\"start\":0.1,\"error\":\"e\"}");
  b = vb_result_key(r);
  CHECK(a && b && !strcmp(a, b), "by video and window: %s vs %s", a, b);
  free(b), cJSON_Delete(r);
  r = cJSON_Parse("{\"line\":8,\"video\":\"v.mp4\",\"start\":0.1,\"end\":5}");
  b = vb_result_key(r);
  CHECK(a && b && strcmp(a, b) != 0, "another window is another input");
  free(a), free(b), cJSON_Delete(r);
  a = vb_input_key(NULL, NULL, -1, -1, 6);
  r = cJSON_Parse("{\"line\":6,\"error\":\"line 6: not a JSON object\"}");
  b = vb_result_key(r);
  CHECK(a && b && !strcmp(a, b), "an unreadable line by its number");
  free(a), free(b), cJSON_Delete(r);
  r = cJSON_Parse("{\"text\":\"t\"}");
  CHECK(vb_result_key(r) == NULL, "a line without id, video or line has no key");
  cJSON_Delete(r);
}

static int count_line(void *user, const cJSON *line) {
  int *n = user;
  const cJSON *k = cJSON_GetObjectItem(line, "k");
  if (cJSON_IsNumber(k) && k->valueint == *n) ++*n;
  return 0;
}

static size_t file_size(const char *path) {
  char *s;
  size_t n = 0;
  if (vb_read_file(path, 1 << 20, &s, &n) == 0) free(s);
  return n;
}

static void test_jsonl(void) {
  char *path = vb_path_join(tu_tmpdir(), "out.jsonl");
  int n = 0;
  vb_jsonl_out *o = vb_jsonl_open(path, false, NULL, NULL);
  CHECK(o != NULL, "open: %s", vb_error_message());
  vb_jsonl_out *second = vb_jsonl_open(path, true, count_line, &n);
  CHECK(second == NULL && strstr(vb_error_message(), "another process"),
        "a second writer is refused: %s", vb_error_message());
  vb_jsonl_close(second);
  for (int i = 0; o && i < 3; i++) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddNumberToObject(x, "k", i);
    cJSON_AddStringToObject(x, "text", "a \"quoted\"\nline");
    CHECK_OK(vb_jsonl_write(o, x));
    cJSON_Delete(x);
  }
  CHECK_OK(vb_jsonl_close(o));
  size_t whole = file_size(path);
  /* a crash in the middle of the fourth line */
  int fd = open(path, O_WRONLY | O_APPEND);
  CHECK(fd >= 0 && write(fd, "{\"k\":3,\"te", 10) == 10, "append a torn line");
  if (fd >= 0) close(fd);
  o = vb_jsonl_open(path, true, count_line, &n);
  CHECK(o && n == 3, "resume reads the 3 complete lines, got %d", n);
  CHECK(file_size(path) == whole, "the torn line is cut off (%zu bytes, want %zu)", file_size(path),
        whole);
  cJSON *x = cJSON_CreateObject();
  cJSON_AddNumberToObject(x, "k", 3);
  if (o) CHECK_OK(vb_jsonl_write(o, x));
  cJSON_Delete(x);
  vb_jsonl_close(o);
  n = 0;
  o = vb_jsonl_open(path, true, count_line, &n);
  CHECK(o && n == 4, "the appended line is whole: 4 lines, got %d", n);
  vb_jsonl_close(o);
  /* a damaged complete line is skipped, the others kept */
  fd = open(path, O_WRONLY | O_APPEND);
  CHECK(fd >= 0 && write(fd, "garbage\n{\"k\":4}\n", 16) == 16, "append garbage");
  if (fd >= 0) close(fd);
  n = 0;
  o = vb_jsonl_open(path, true, count_line, &n);
  CHECK(o && n == 5, "garbage skipped, 5 results, got %d", n);
  vb_jsonl_close(o);
  /* without resume the file starts empty */
  o = vb_jsonl_open(path, false, NULL, NULL);
  vb_jsonl_close(o);
  CHECK(file_size(path) == 0, "a fresh run empties the file");
  CHECK(vb_jsonl_open(NULL, true, NULL, NULL) == NULL, "no resume on stdout");
  CHECK(vb_jsonl_open(tu_tmpdir(), false, NULL, NULL) == NULL, "a directory is refused");
  free(path);
}

int main(void) {
  test_shard_parse();
  test_shard_env();
  test_key_set();
  test_input_list();
  test_keys();
  test_jsonl();
  return tu_finish();
}
