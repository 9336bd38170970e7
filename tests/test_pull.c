/* vblip pull against a small Hub look-alike served here on 127.0.0.1: the file
 * list (/api/models/{repo}/revision/{rev}, /api/models/{repo}), downloads
 * (/{repo}/resolve/{rev}/{file}, with Range), a transfer cut in the middle that
 * resumes, corrupted files that fail verification, the bearer token, a missing
 * repository, and `--model owner/name` in the CLI (pulled once, then cached). */
#include <arpa/inet.h>
#include <dirent.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"
#include "testutil.h"
#include "vblip_hub.h"


#define COMMIT "0123456789abcdef0123456789abcdef01234567"

typedef struct {
  char name[256];
  uint8_t *data;
  size_t size;
  int lfs;
  char hash[65]; /* sha256 (LFS) or git blob sha1 */
} sfile;

typedef struct {
  const char *repo;
  sfile files[32];
  int n;
} srepo;

typedef struct {
  struct MHD_Daemon *d;
  int port;
  srepo repos[2];
  int nrepos;
  pthread_mutex_t mu;
  char log[256][320];
  int nlog;
  /* behaviours */
  char cut_name[128];
  size_t cut_after;
  int cut_pending;
  char corrupt_name[128];
  int no_revision_api;
  int require_token;
  int offline;
} server;

static server S;

static void hex_digest(const uint8_t *data, size_t n, int git_blob, char *hex) {
  struct AVSHA *sha = av_sha_alloc();
  av_sha_init(sha, git_blob ? 160 : 256);
  if (git_blob) {
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "blob %zu", n);
    av_sha_update(sha, (const uint8_t *)hdr, (size_t)k + 1);
  }
  av_sha_update(sha, data, n);
  uint8_t d[32];
  av_sha_final(sha, d);
  av_free(sha);
  for (int i = 0; i < (git_blob ? 20 : 32); i++) sprintf(hex + 2 * i, "%02x", d[i]);
}

static void add_repo(const char *repo, const char *fixture) {
  srepo *r = &S.repos[S.nrepos++];
  r->repo = repo;
  DIR *d = opendir(tu_fixture(fixture));
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    sfile *f = &r->files[r->n++];
    snprintf(f->name, sizeof f->name, "%s", e->d_name);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tu_fixture(fixture), e->d_name);
    char *buf;
    size_t len;
    if (vb_read_file(path, 1u << 30, &buf, &len) != 0) abort();
    f->data = (uint8_t *)buf;
    f->size = len;
    f->lfs = strstr(f->name, ".safetensors") && !strstr(f->name, ".json") ? 1 : strstr(f->name, ".bin") && !strstr(f->name, ".json");
    hex_digest(f->data, f->size, !f->lfs, f->hash);
  }
  if (d) closedir(d);
}

static srepo *find_repo(const char *url, size_t *len) {
  for (int i = 0; i < S.nrepos; i++) {
    size_t n = strlen(S.repos[i].repo);
    if (strncmp(url, S.repos[i].repo, n) == 0 && (url[n] == '/' || url[n] == 0)) {
      *len = n;
      return &S.repos[i];
    }
  }
  return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *body) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

static char *listing(const srepo *r) {
  size_t cap = 65536, n = 0;
  char *s = malloc(cap);
  n += (size_t)snprintf(s + n, cap - n, "{\"id\":\"%s\",\"sha\":\"%s\",\"siblings\":[", r->repo, COMMIT);
  for (int i = 0; i < r->n; i++) {
    const sfile *f = &r->files[i];
    if (f->lfs)
      n += (size_t)snprintf(s + n, cap - n, "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%.40s\",\"lfs\":{\"sha256\":\"%s\",\"size\":%zu,\"pointerSize\":134}}",
                            i ? "," : "", f->name, f->size, f->hash, f->hash, f->size);
    else
      n += (size_t)snprintf(s + n, cap - n, "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%s\"}", i ? "," : "",
                            f->name, f->size, f->hash);
  }
  snprintf(s + n, cap - n, "]}");
  return s;
}

typedef struct {
  const uint8_t *data;
  size_t len, cut; /* stop (with an error) after cut bytes; (size_t)-1 = never */
} stream;

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max) {
  stream *s = cls;
  if (pos >= s->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
  size_t n = s->len - (size_t)pos;
  if (n > max) n = max;
  if ((size_t)pos + n > s->cut) n = s->cut - (size_t)pos;
  memcpy(buf, s->data + pos, n);
  return (ssize_t)n;
}

static void stream_free(void *cls) {
  stream *s = cls;
  free((void *)s->data);
  free(s);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
  const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
  const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  pthread_mutex_lock(&S.mu);
  if (S.nlog < 256)
    snprintf(S.log[S.nlog++], 320, "%s %s|range=%s|auth=%s", method, url, range ? range : "", auth ? auth : "");
  int offline = S.offline, require = S.require_token, norev = S.no_revision_api;
  pthread_mutex_unlock(&S.mu);
  if (offline) return reply(c, 503, "{\"error\":\"offline\"}");
  if (strcmp(method, "GET") != 0) return reply(c, 405, "{}");
  if (require && (!auth || strcmp(auth, "Bearer secret-token") != 0))
    return reply(c, 401, "{\"error\":\"Invalid credentials\"}");
  size_t rl;
  srepo *r;
  if (strncmp(url, "/api/models/", 12) == 0) {
    r = find_repo(url + 12, &rl);
    if (!r) return reply(c, 404, "{\"error\":\"Repository not found\"}");
    const char *rest = url + 12 + rl;
    if (strncmp(rest, "/revision/", 10) == 0 && norev) return reply(c, 404, "{\"error\":\"Not Found\"}");
    if (rest[0] && strncmp(rest, "/revision/", 10) != 0) return reply(c, 404, "{}");
    char *body = listing(r);
    enum MHD_Result ret = reply(c, 200, body);
    free(body);
    return ret;
  }
  r = find_repo(url + 1, &rl);
  const char *rest = r ? url + 1 + rl : "";
  if (!r || strncmp(rest, "/resolve/", 9) != 0) return reply(c, 404, "{\"error\":\"Entry not found\"}");
  const char *file = strchr(rest + 9, '/');
  if (!file) return reply(c, 404, "{}");
  file++;
  const sfile *f = NULL;
  for (int i = 0; i < r->n; i++)
    if (strcmp(r->files[i].name, file) == 0) f = &r->files[i];
  if (!f) return reply(c, 404, "{\"error\":\"Entry not found\"}");
  size_t from = 0;
  if (range) {
    unsigned long long v;
    if (sscanf(range, "bytes=%llu-", &v) != 1) return reply(c, 400, "{}");
    if (v >= f->size) return reply(c, 416, "{}");
    from = (size_t)v;
  }
  stream *s = calloc(1, sizeof *s);
  uint8_t *copy = malloc(f->size - from + 1);
  memcpy(copy, f->data + from, f->size - from);
  s->data = copy;
  s->len = f->size - from;
  s->cut = (size_t)-1;
  pthread_mutex_lock(&S.mu);
  if (strcmp(S.corrupt_name, f->name) == 0 && s->len > 0) copy[s->len / 2] ^= 0x55;
  if (S.cut_pending && strcmp(S.cut_name, f->name) == 0) {
    S.cut_pending = 0;
    s->cut = S.cut_after;
  }
  pthread_mutex_unlock(&S.mu);
  struct MHD_Response *resp = MHD_create_response_from_callback(s->len, 32 * 1024, stream_cb, s, stream_free);
  if (range) {
    char cr[96];
    snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", from, f->size - 1, f->size);
    MHD_add_response_header(resp, "Content-Range", cr);
  }
  enum MHD_Result ret = MHD_queue_response(c, range ? 206 : 200, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void server_start(void) {
  pthread_mutex_init(&S.mu, NULL);
  add_repo("owner/opt", "models/videoblip-opt-tiny");
  add_repo("owner/sharded", "models/videoblip-flant5-tiny-sharded");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  S.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handler,
                         NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_CONNECTION_TIMEOUT,
                         (unsigned)30, MHD_OPTION_END);
  if (!S.d) {
    fprintf(stderr, "cannot start the test server\n");
    exit(2);
  }
  S.port = MHD_get_daemon_info(S.d, MHD_DAEMON_INFO_BIND_PORT)->port;
  char ep[64];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", S.port);
  setenv("HF_ENDPOINT", ep, 1);
  setenv("VBLIP_PULL_RETRY_MS", "20", 1);
  unsetenv("HF_TOKEN");
}

static void clear_log(void) {
  pthread_mutex_lock(&S.mu);
  S.nlog = 0;
  pthread_mutex_unlock(&S.mu);
}

/* The first log line containing all of a and b (NULL if none). */
static const char *logged(const char *a, const char *b) {
  const char *hit = NULL;
  pthread_mutex_lock(&S.mu);
  for (int i = 0; i < S.nlog && !hit; i++)
    if (strstr(S.log[i], a) && (!b || strstr(S.log[i], b))) hit = S.log[i];
  pthread_mutex_unlock(&S.mu);
  return hit;
}

static int count_logged(const char *a) {
  int n = 0;
  pthread_mutex_lock(&S.mu);
  for (int i = 0; i < S.nlog; i++) n += strstr(S.log[i], a) != NULL;
  pthread_mutex_unlock(&S.mu);
  return n;
}

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
  clear_log();
  if (!CHECK(vblip_pull("owner/opt", NULL, dir, 0, &out) == 0, "pull: %s", vblip_last_error())) return;
  CHECK(out && strcmp(out, dir) == 0, "out dir %s", out);
  free(out);
  const char *want[] = {"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json",
                        "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.json", "model.safetensors"};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    CHECK(same_as_fixture(dir, "models/videoblip-opt-tiny", want[i]), "%s missing or different", want[i]);
  CHECK(!exists_in(dir, "pytorch_model.bin"), "the .bin was downloaded although safetensors exist");
  CHECK(!exists_in(dir, "model.safetensors.incomplete"), "an .incomplete file remains");
  CHECK(logged("GET /api/models/owner/opt/revision/main", NULL) != NULL, "no listing request");
  CHECK(logged("/owner/opt/resolve/" COMMIT "/model.safetensors", NULL) != NULL, "downloads not pinned to the commit");
  CHECK(logged("auth=|", NULL) == NULL && logged("auth=", "Bearer") == NULL, "an Authorization header without HF_TOKEN");
  /* again: only the listing, nothing downloaded */
  clear_log();
  CHECK(vblip_pull("owner/opt", "main", dir, 0, NULL) == 0, "second pull: %s", vblip_last_error());
  CHECK(count_logged("/resolve/") == 0, "a complete pull downloaded %d files again", count_logged("/resolve/"));
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
  clear_log();
  if (!CHECK(vblip_pull("owner/sharded", NULL, dir, 0, NULL) == 0, "pull sharded: %s", vblip_last_error())) return;
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
  pthread_mutex_lock(&S.mu);
  snprintf(S.cut_name, sizeof S.cut_name, "model.safetensors");
  S.cut_after = 1u << 20;
  S.cut_pending = 1;
  pthread_mutex_unlock(&S.mu);
  clear_log();
  CHECK(vblip_pull("owner/opt", NULL, dir, 0, NULL) == 0, "pull with a cut: %s", vblip_last_error());
  CHECK(!S.cut_pending, "the cut never happened");
  CHECK(count_logged("/model.safetensors|") == 2, "%d requests for the cut file", count_logged("/model.safetensors|"));
  const char *resumed = logged("/model.safetensors|range=bytes=", NULL);
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
  clear_log();
  CHECK(vblip_pull("owner/opt", NULL, dir2, 0, NULL) == 0, "resume a partial file: %s", vblip_last_error());
  CHECK(logged("/model.safetensors|range=bytes=123457-", NULL) != NULL, "the partial file was not resumed");
  CHECK(count_logged("/model.safetensors|") == 1, "%d requests", count_logged("/model.safetensors|"));
  CHECK(same_as_fixture(dir2, "models/videoblip-opt-tiny", "model.safetensors"), "resumed file differs");
}

static void test_corrupt(void) {
  const char *names[] = {"model.safetensors", "vocab.json"};
  const char *needles[] = {"sha256", "git blob id"};
  for (int i = 0; i < 2; i++) {
    char d[64];
    snprintf(d, sizeof d, "corrupt%d", i);
    const char *dir = sub(d);
    pthread_mutex_lock(&S.mu);
    snprintf(S.corrupt_name, sizeof S.corrupt_name, "%s", names[i]);
    pthread_mutex_unlock(&S.mu);
    int rc = vblip_pull("owner/opt", NULL, dir, 0, NULL);
    CHECK(rc != 0 && strstr(vblip_last_error(), needles[i]) && strstr(vblip_last_error(), "removed"),
          "corrupted %s: rc %d, %s", names[i], rc, vblip_last_error());
    char inc[160];
    snprintf(inc, sizeof inc, "%s.incomplete", names[i]);
    CHECK(!exists_in(dir, names[i]) && !exists_in(dir, inc), "the corrupted %s was kept", names[i]);
    CHECK(!exists_in(dir, ".vblip-pull.json"), "a failed pull wrote its manifest");
    if (i == 0) printf("corrupted download: %s\n", vblip_last_error());
  }
  pthread_mutex_lock(&S.mu);
  S.corrupt_name[0] = 0;
  pthread_mutex_unlock(&S.mu);
}

static void test_token_and_errors(void) {
  pthread_mutex_lock(&S.mu);
  S.require_token = 1;
  pthread_mutex_unlock(&S.mu);
  int rc = vblip_pull("owner/opt", NULL, sub("noauth"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "401") && strstr(vblip_last_error(), "HF_TOKEN"), "no token: %s",
        vblip_last_error());
  setenv("HF_TOKEN", "secret-token", 1);
  clear_log();
  CHECK(vblip_pull("owner/opt", NULL, sub("auth"), 0, NULL) == 0, "with token: %s", vblip_last_error());
  CHECK(logged("/api/models/owner/opt", "auth=Bearer secret-token") != NULL &&
            logged("/resolve/", "auth=Bearer secret-token") != NULL,
        "HF_TOKEN not sent as a bearer token");
  unsetenv("HF_TOKEN");
  pthread_mutex_lock(&S.mu);
  S.require_token = 0;
  pthread_mutex_unlock(&S.mu);

  rc = vblip_pull("owner/missing", NULL, sub("missing"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "404") && strstr(vblip_last_error(), "not found"), "404 repo: %s",
        vblip_last_error());
  printf("missing repository: %s\n", vblip_last_error());
  rc = vblip_pull("not a repo", NULL, sub("x"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "repository id"), "bad id: %s", vblip_last_error());
  rc = vblip_pull("owner/opt", "../x", sub("x"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "revision"), "bad revision: %s", vblip_last_error());

  /* a Hub without the revision route: the repository listing */
  pthread_mutex_lock(&S.mu);
  S.no_revision_api = 1;
  pthread_mutex_unlock(&S.mu);
  clear_log();
  CHECK(vblip_pull("owner/opt", NULL, sub("fallback"), 0, NULL) == 0, "fallback listing: %s", vblip_last_error());
  CHECK(logged("GET /api/models/owner/opt|", NULL) != NULL, "no fallback request");
  pthread_mutex_lock(&S.mu);
  S.no_revision_api = 0;
  pthread_mutex_unlock(&S.mu);

  /* a server that is down: transient errors are retried a bounded number of times */
  pthread_mutex_lock(&S.mu);
  S.offline = 1;
  pthread_mutex_unlock(&S.mu);
  clear_log();
  double t0 = vb_now_ms();
  rc = vblip_pull("owner/opt", NULL, sub("down"), 0, NULL);
  CHECK(rc != 0 && strstr(vblip_last_error(), "503"), "server down: %s", vblip_last_error());
  CHECK(count_logged("/api/models/") == 5, "%d attempts", count_logged("/api/models/"));
  printf("server down: %d attempts in %.0f ms\n", count_logged("/api/models/"), vb_now_ms() - t0);
  pthread_mutex_lock(&S.mu);
  S.offline = 0;
  pthread_mutex_unlock(&S.mu);
}

static void test_cli(void) {
  char cmd[2048], *out = NULL;
  const char *cache = sub("cache");
  setenv("VBLIP_CACHE", cache, 1);
  clear_log();
  snprintf(cmd, sizeof cmd, "%s caption --model owner/opt --beams 1 --max-new-tokens 4 %s 2>&1", VBLIP_BINARY,
           tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"));
  CHECK(tu_run(cmd, &out) == 0 && strlen(out) > 1, "caption --model owner/opt: %s", out);
  char first[512];
  snprintf(first, sizeof first, "%s", out ? out : "");
  free(out);
  char p[1024];
  snprintf(p, sizeof p, "%s/owner--opt/main", cache);
  CHECK(exists_in(p, "model.safetensors") && exists_in(p, ".vblip-pull.json"), "nothing in the cache %s", p);
  int requests = count_logged("GET");
  CHECK(requests > 0, "no requests");
  /* cached: works with the server down, and asks it nothing */
  pthread_mutex_lock(&S.mu);
  S.offline = 1;
  pthread_mutex_unlock(&S.mu);
  CHECK(tu_run(cmd, &out) == 0 && strcmp(out, first) == 0, "cached caption: %s", out);
  free(out);
  CHECK(count_logged("GET") == requests, "the cached model caused %d requests", count_logged("GET") - requests);
  pthread_mutex_lock(&S.mu);
  S.offline = 0;
  pthread_mutex_unlock(&S.mu);
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

int main(void) {
  server_start();
  test_full_pull();
  test_sharded();
  test_resume();
  test_corrupt();
  test_token_and_errors();
  test_cli();
  MHD_stop_daemon(S.d);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir());
  tu_run(cmd, NULL);
  return tu_finish();
}
