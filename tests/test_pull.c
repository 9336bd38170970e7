/* vblip pull against a small Hub look-alike served here on 127.0.0.1: the file
 * list (/api/models/{repo}/revision/{rev}, /api/models/{repo}), downloads
 * (/{repo}/resolve/{rev}/{file}, with Range), a transfer cut in the middle that
 * resumes, corrupted files that fail verification, the bearer token, a missing
 * repository, and `--model owner/name` in the CLI (pulled once, then cached). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_hub.h"
#include "runtime/common.h"
#include "testutil.h"
#include "vblip_hub.h"

static const char *sub(const char *name) {
  static char buf[8][512];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
  return p;
}

static int same_as_fixture(const char *dir, const char *fixture, const char *name) {
  char a[1024], b[1024];
  snprintf(a, sizeof a, "%s/%s", dir, name);
  snprintf(b, sizeof b, "%s/%s", tu_fixture(fixture), name);
  char *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  int ok = vb_read_file(a, 1u << 30, &x, &nx) == 0 && vb_read_file(b, 1u << 30, &y, &ny) == 0 && nx == ny &&
           memcmp(x, y, nx) == 0;
  free(x);
  free(y);
  return ok;
}

static int exists_in(const char *dir, const char *name) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  struct stat st;
  return stat(p, &st) == 0;
}

static void test_full_pull(void) {
  const char *dir = sub("full");
  char *out = NULL;
  fake_hub_clear_log();
  if (!CHECK(vblip_pull("owner/opt", NULL, dir, 0, &out) == 0, "pull: %s", vblip_last_error()))
    return;
  CHECK(out && strcmp(out, dir) == 0, "out dir %s", out);
  free(out);
  const char *want[] = {"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
                        "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.json", "model.safetensors"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK(same_as_fixture(dir, "models/videoblip-opt-tiny", want[i]), "%s missing or different", want[i]);
  CHECK(!exists_in(dir, "pytorch_model.bin"), "the .bin was downloaded although safetensors exist");
  CHECK(!exists_in(dir, "model.safetensors.incomplete"), "an .incomplete file remains");
  CHECK(fake_hub_logged("GET /api/models/owner/opt/revision/main", NULL) != NULL,
        "no listing request");
  CHECK(fake_hub_logged("/owner/opt/resolve/" COMMIT "/model.safetensors", NULL) != NULL,
        "downloads not pinned to the commit");
  CHECK(fake_hub_logged("auth=|", NULL) == NULL && fake_hub_logged("auth=", "Bearer") == NULL,
        "an Authorization header without HF_TOKEN");
  /* again: only the listing, nothing downloaded */
  fake_hub_clear_log();
  CHECK(vblip_pull("owner/opt", "main", dir, 0, NULL) == 0, "second pull: %s", vblip_last_error());
  CHECK(fake_hub_count_logged("/resolve/") == 0, "a complete pull downloaded %d files again",
        fake_hub_count_logged("/resolve/"));
  /* the model loads from the pulled directory */
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  vblip_model *m = vblip_model_load(dir, &lo);
  CHECK(m != NULL, "load the pull: %s", vblip_last_error());
  vblip_model_free(m);
}

static void test_sharded(void) {
  const char *dir = sub("sharded");
  fake_hub_clear_log();
  if (!CHECK(vblip_pull("owner/sharded", NULL, dir, 0, NULL) == 0, "pull sharded: %s",
             vblip_last_error()))
    return;
  const char *fx = "models/videoblip-flant5-tiny-sharded";
  CHECK(same_as_fixture(dir, fx, "model.safetensors.index.json") &&
            same_as_fixture(dir, fx, "model-00001-of-00002.safetensors") &&
            same_as_fixture(dir, fx, "model-00002-of-00002.safetensors") && same_as_fixture(dir, fx, "spiece.model") &&
            same_as_fixture(dir, fx, "added_tokens.json"),
        "sharded files");
  CHECK(!exists_in(dir, "pytorch_model-00001-of-00002.bin"), "a .bin shard was downloaded");
}

static void test_resume(void) {
  /* the server closes the connection after 1 MB once: the same pull resumes */
  const char *dir = sub("cut");
  pthread_mutex_lock(&g_hub.mu);
  snprintf(g_hub.cut_name, sizeof g_hub.cut_name, "model.safetensors");
  g_hub.cut_after = 1u << 20;
  g_hub.cut_pending = 1;
  pthread_mutex_unlock(&g_hub.mu);
  fake_hub_clear_log();
  CHECK(vblip_pull("owner/opt", NULL, dir, 0, NULL) == 0, "pull with a cut: %s",
        vblip_last_error());
  CHECK(!g_hub.cut_pending, "the cut never happened");
  CHECK(fake_hub_count_logged("/model.safetensors|") == 2, "%d requests for the cut file",
        fake_hub_count_logged("/model.safetensors|"));
  const char *resumed = fake_hub_logged("/model.safetensors|range=bytes=", NULL);
  CHECK(resumed != NULL, "the second request has no Range header");
  if (resumed) {
    unsigned long long from = 0;
    const char *r = strstr(resumed, "range=bytes=");
    sscanf(r, "range=bytes=%llu-", &from);
    CHECK(from > 0 && from <= (1u << 20), "resumed from byte %llu", from);
    printf("cut after 1048576 bytes; resumed with Range: bytes=%llu-\n", from);
  }
  CHECK(same_as_fixture(dir, "models/videoblip-opt-tiny", "model.safetensors"), "the resumed file differs");
  CHECK(!exists_in(dir, "model.safetensors.incomplete"), "an .incomplete file remains");

  /* a partial file from an earlier run: the next pull continues it */
  const char *dir2 = sub("partial");
  mkdir(dir2, 0755);
  char p[1024], *data = NULL;
  size_t len = 0;
  snprintf(p, sizeof p, "%s/model.safetensors", tu_fixture("models/videoblip-opt-tiny"));
  vb_read_file(p, 1u << 30, &data, &len);
  snprintf(p, sizeof p, "%s/model.safetensors.incomplete", dir2);
  FILE *f = fopen(p, "wb");
  fwrite(data, 1, 123457, f);
  fclose(f);
  free(data);
  fake_hub_clear_log();
  CHECK(vblip_pull("owner/opt", NULL, dir2, 0, NULL) == 0, "resume a partial file: %s",
        vblip_last_error());
  CHECK(fake_hub_logged("/model.safetensors|range=bytes=123457-", NULL) != NULL,
        "the partial file was not resumed");
  CHECK(fake_hub_count_logged("/model.safetensors|") == 1, "%d requests",
        fake_hub_count_logged("/model.safetensors|"));
  CHECK(same_as_fixture(dir2, "models/videoblip-opt-tiny", "model.safetensors"),
        "resumed file differs");
}

static void test_corrupt(void) {
  const char *names[] = {"model.safetensors", "vocab.json"};
  const char *needles[] = {"sha256", "git blob id"};
  for (int i = 0; i < 2; i++) {
    char d[64];
    snprintf(d, sizeof d, "corrupt%d", i);
    const char *dir = sub(d);
    pthread_mutex_lock(&g_hub.mu);
    snprintf(g_hub.corrupt_name, sizeof g_hub.corrupt_name, "%s", names[i]);
    pthread_mutex_unlock(&g_hub.mu);
    int rc = vblip_pull("owner/opt", NULL, dir, 0, NULL);
    CHECK(rc != 0 && strstr(vblip_last_error(), needles[i]) && strstr(vblip_last_error(), "removed"),
          "corrupted %s: rc %d, %s", names[i], rc, vblip_last_error());
    char inc[160];
    snprintf(inc, sizeof inc, "%s.incomplete", names[i]);
    CHECK(!exists_in(dir, names[i]) && !exists_in(dir, inc), "the corrupted %s was kept", names[i]);
    CHECK(!exists_in(dir, ".vblip-pull.json"), "a failed pull wrote its manifest");
    if (i == 0) printf("corrupted download: %s\n", vblip_last_error());
  }
  pthread_mutex_lock(&g_hub.mu);
  g_hub.corrupt_name[0] = 0;
  pthread_mutex_unlock(&g_hub.mu);
}

static void test_token_and_errors(void) {
  pthread_mutex_lock(&g_hub.mu);
  g_hub.require_token = 1;
  pthread_mutex_unlock(&g_hub.mu);
  int rc = vblip_pull("owner/opt", NULL, sub("noauth"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "401") && strstr(vblip_last_error(), "HF_TOKEN"),
        "no token: %s", vblip_last_error());
  setenv("HF_TOKEN", "secret-token", 1);
  fake_hub_clear_log();
  CHECK(vblip_pull("owner/opt", NULL, sub("auth"), 0, NULL) == 0, "with token: %s",
        vblip_last_error());
  CHECK(fake_hub_logged("/api/models/owner/opt", "auth=Bearer secret-token") != NULL &&
            fake_hub_logged("/resolve/", "auth=Bearer secret-token") != NULL,
        "HF_TOKEN not sent as a bearer token");
  unsetenv("HF_TOKEN");
  pthread_mutex_lock(&g_hub.mu);
  g_hub.require_token = 0;
  pthread_mutex_unlock(&g_hub.mu);

  rc = vblip_pull("owner/missing", NULL, sub("missing"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "404") && strstr(vblip_last_error(), "not found"), "404 repo: %s",
        vblip_last_error());
  printf("missing repository: %s\n", vblip_last_error());
  rc = vblip_pull("not a repo", NULL, sub("x"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "repository id"), "bad id: %s", vblip_last_error());
  rc = vblip_pull("owner/opt", "../x", sub("x"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "revision"), "bad revision: %s", vblip_last_error());

  /* a Hub without the revision route: the repository listing */
  pthread_mutex_lock(&g_hub.mu);
  g_hub.no_revision_api = 1;
  pthread_mutex_unlock(&g_hub.mu);
  fake_hub_clear_log();
  CHECK(vblip_pull("owner/opt", NULL, sub("fallback"), 0, NULL) == 0, "fallback listing: %s",
        vblip_last_error());
  CHECK(fake_hub_logged("GET /api/models/owner/opt|", NULL) != NULL, "no fallback request");
  pthread_mutex_lock(&g_hub.mu);
  g_hub.no_revision_api = 0;
  pthread_mutex_unlock(&g_hub.mu);

  /* a server that is down: transient errors are retried a bounded number of times */
  pthread_mutex_lock(&g_hub.mu);
  g_hub.offline = 1;
  pthread_mutex_unlock(&g_hub.mu);
  fake_hub_clear_log();
  double t0 = vb_now_ms();
  rc = vblip_pull("owner/opt", NULL, sub("down"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "503"), "server down: %s", vblip_last_error());
  CHECK(fake_hub_count_logged("/api/models/") == 5, "%d attempts",
        fake_hub_count_logged("/api/models/"));
  printf("server down: %d attempts in %.0f ms\n", fake_hub_count_logged("/api/models/"),
         vb_now_ms() - t0);
  pthread_mutex_lock(&g_hub.mu);
  g_hub.offline = 0;
  pthread_mutex_unlock(&g_hub.mu);
}

static void test_cli(void) {
  char cmd[2048], *out = NULL;
  const char *cache = sub("cache");
  setenv("VBLIP_CACHE", cache, 1);
  fake_hub_clear_log();
  snprintf(cmd, sizeof cmd, "%s caption --model owner/opt --beams 1 --max-new-tokens 4 %s 2>&1",
           VBLIP_BINARY, tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"));
  CHECK(tu_run(cmd, &out) == 0 && strlen(out) > 1, "caption --model owner/opt: %s", out);
  char first[512];
  snprintf(first, sizeof first, "%s", out ? out : "");
  free(out);
  char p[1024];
  snprintf(p, sizeof p, "%s/owner--opt/main", cache);
  CHECK(exists_in(p, "model.safetensors") && exists_in(p, ".vblip-pull.json"),
        "nothing in the cache %s", p);
  int requests = fake_hub_count_logged("GET");
  CHECK(requests > 0, "no requests");
  /* cached: works with the server down, and asks it nothing */
  pthread_mutex_lock(&g_hub.mu);
  g_hub.offline = 1;
  pthread_mutex_unlock(&g_hub.mu);
  CHECK(tu_run(cmd, &out) == 0 && strcmp(out, first) == 0, "cached caption: %s", out);
  free(out);
  CHECK(fake_hub_count_logged("GET") == requests, "the cached model caused %d requests",
        fake_hub_count_logged("GET") - requests);
  pthread_mutex_lock(&g_hub.mu);
  g_hub.offline = 0;
  pthread_mutex_unlock(&g_hub.mu);
  /* vblip pull */
  snprintf(cmd, sizeof cmd, "%s pull owner/sharded --dir %s --quiet 2>&1", VBLIP_BINARY, sub("cli-pull"));
  CHECK(tu_run(cmd, &out) == 0 && strstr(out, sub("cli-pull")), "vblip pull: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s pull 2>&1", VBLIP_BINARY);
  CHECK(tu_run(cmd, &out) == 2, "pull without a repo: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s pull owner/missing --dir %s 2>&1", VBLIP_BINARY, sub("m"));
  CHECK(tu_run(cmd, &out) == 1 && strstr(out, "not found"), "pull missing: %s", out);
  free(out);
  /* a missing local path that is not a repo id stays a plain error */
  snprintf(cmd, sizeof cmd, "%s caption --model %s/nope %s 2>&1", VBLIP_BINARY, cache,
           tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"));
  CHECK(tu_run(cmd, &out) == 1 && !strstr(out, "Hub"), "missing dir: %s", out);
  free(out);
  unsetenv("VBLIP_CACHE");
}

/* A model that Python's huggingface_hub downloaded (HF_HOME) is used without the network;
 * HF_HUB_OFFLINE=1 fails at once when a repo is in no cache; retries are shown. */
static void test_hf_cache(void) {
  const char *commit = "0123456789abcdef0123456789abcdef01234567";
  char home[600], snap[900], p[1200], q[1200], cmd[4096], *out = NULL;
  snprintf(home, sizeof home, "%s", sub("hf-home"));
  snprintf(snap, sizeof snap, "%s/hub/models--hfowner--tiny/snapshots/%s", home, commit);
  snprintf(cmd, sizeof cmd,
           "mkdir -p '%s' '%s/hub/models--hfowner--tiny/refs' "
           "'%s/hub/models--hfowner--half/snapshots/%s' "
           "'%s/hub/models--hfowner--half/refs'",
           snap, home, home, commit, home);
  CHECK(tu_run(cmd, NULL) == 0, "make the HF cache");
  const char *files[] = {"config.json",
                         "preprocessor_config.json",
                         "vocab.json",
                         "merges.txt",
                         "tokenizer.json",
                         "tokenizer_config.json",
                         "special_tokens_map.json",
                         "model.safetensors"};
  char cwd[512];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) { /* snapshots link to blobs */
    snprintf(p, sizeof p, "%s/%s", tu_fixture("models/videoblip-opt-tiny"), files[i]);
    snprintf(q, sizeof q, "%s/%s", snap, files[i]);
    char abs[1400];
    snprintf(abs, sizeof abs, "%s%s%s", p[0] == '/' ? "" : cwd, p[0] == '/' ? "" : "/", p);
    CHECK(symlink(abs, q) == 0, "link %s", q);
    if (i < 7) { /* "half": everything but the weights */
      snprintf(q, sizeof q, "%s/hub/models--hfowner--half/snapshots/%s/%s", home, commit, files[i]);
      CHECK(symlink(abs, q) == 0, "link %s", q);
    }
  }
  FILE *f;
  snprintf(p, sizeof p, "%s/hub/models--hfowner--tiny/refs/main", home);
  if ((f = fopen(p, "w"))) fputs(commit, f), fclose(f);
  snprintf(p, sizeof p, "%s/hub/models--hfowner--half/refs/main", home);
  if ((f = fopen(p, "w"))) fputs(commit, f), fclose(f);

  setenv("HF_HOME", home, 1);
  setenv("VBLIP_CACHE", sub("empty-vblip-cache"), 1);
  setenv("HF_HUB_OFFLINE", "1", 1);
  const char *video = tu_fixture("media/video1_h264_320x240_30fps_12s.mp4");
  char want[512] = "";
  snprintf(cmd, sizeof cmd, "%s caption --model %s --beams 1 --max-new-tokens 4 %s 2>&1",
           VBLIP_BINARY, tu_fixture("models/videoblip-opt-tiny"), video);
  if (tu_run(cmd, &out) == 0) snprintf(want, sizeof want, "%s", out);
  free(out);
  fake_hub_clear_log();
  snprintf(cmd, sizeof cmd, "%s caption --model hfowner/tiny --beams 1 --max-new-tokens 4 %s 2>&1",
           VBLIP_BINARY, video);
  CHECK(tu_run(cmd, &out) == 0 && want[0] && strcmp(out, want) == 0,
        "caption from the HF cache: '%s' == '%s'", out, want);
  free(out);
  CHECK(fake_hub_count_logged("GET") == 0, "the HF cache's model asked the Hub %d times",
        fake_hub_count_logged("GET"));
  /* offline and in no cache (or only part of it): an error at once, without a request */
  const char *missing[] = {"hfowner/half", "owner/opt"};
  for (int i = 0; i < 2; i++) {
    double t0 = vb_now_ms();
    snprintf(cmd, sizeof cmd, "%s caption --model %s %s 2>&1", VBLIP_BINARY, missing[i], video);
    CHECK(tu_run(cmd, &out) == 1 && strstr(out, "HF_HUB_OFFLINE") && strstr(out, missing[i]),
          "offline, %s not cached: %s", missing[i], out);
    free(out);
    CHECK(vb_now_ms() - t0 < 5000 && fake_hub_count_logged("GET") == 0,
          "no network, no wait (%.0f ms)", vb_now_ms() - t0);
  }
  snprintf(cmd, sizeof cmd, "%s pull owner/opt --dir %s 2>&1", VBLIP_BINARY, sub("offline-pull"));
  CHECK(tu_run(cmd, &out) == 1 && strstr(out, "HF_HUB_OFFLINE"), "pull offline: %s", out);
  free(out);
  unsetenv("HF_HUB_OFFLINE");
  unsetenv("HF_HOME");

  /* retries are shown (VBLIP_PULL_RETRY_MS is 20 here), and --quiet hides them */
  pthread_mutex_lock(&g_hub.mu);
  g_hub.offline = 1;
  pthread_mutex_unlock(&g_hub.mu);
  snprintf(cmd, sizeof cmd, "%s pull owner/opt --dir %s 2>&1", VBLIP_BINARY, sub("retry-pull"));
  CHECK(tu_run(cmd, &out) == 1, "pull from a server that is down");
  int shown = 0;
  for (const char *r = out; (r = strstr(r, "retrying in")); r++)
    shown++;
  CHECK(shown == 4 && strstr(out, "HTTP 503; retrying in 0.0 s (attempt 2 of 5)") &&
            strstr(out, "(attempt 5 of 5)"),
        "4 retries shown: %s", out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s pull owner/opt --quiet --dir %s 2>&1", VBLIP_BINARY,
           sub("retry-pull"));
  CHECK(tu_run(cmd, &out) == 1 && !strstr(out, "retrying"), "--quiet: %s", out);
  free(out);
  pthread_mutex_lock(&g_hub.mu);
  g_hub.offline = 0;
  pthread_mutex_unlock(&g_hub.mu);
  unsetenv("VBLIP_CACHE");
}

int main(void) {
  fake_hub_start();
  test_full_pull();
  test_sharded();
  test_resume();
  test_corrupt();
  test_token_and_errors();
  test_cli();
  test_hf_cache();
  fake_hub_stop();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir());
  tu_run(cmd, NULL);
  return tu_finish();
}
