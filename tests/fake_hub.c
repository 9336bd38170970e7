/* A Hugging Face Hub look-alike served on 127.0.0.1 for tests: the file list
 * (/api/models/{repo}/revision/{rev}, /api/models/{repo}) and downloads
 * (/{repo}/resolve/{rev}/{file}, with Range) of owner/opt (the OPT fixture) and
 * owner/sharded (the sharded Flan-T5 fixture), with switches for a transfer cut in the
 * middle, a corrupted file, a required bearer token, no revision API and an outage. */
#include "fake_hub.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "testutil.h"

fake_hub g_hub;

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
  for (int i = 0; i < (git_blob ? 20 : 32); i++)
    sprintf(hex + 2 * i, "%02x", d[i]);
}

static void add_repo(const char *repo, const char *fixture) {
  srepo *r = &g_hub.repos[g_hub.nrepos++];
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
    f->lfs = strstr(f->name, ".safetensors") && !strstr(f->name, ".json")
                 ? 1
                 : strstr(f->name, ".bin") && !strstr(f->name, ".json");
    hex_digest(f->data, f->size, !f->lfs, f->hash);
  }
  if (d) closedir(d);
}

static srepo *find_repo(const char *url, size_t *len) {
  for (int i = 0; i < g_hub.nrepos; i++) {
    size_t n = strlen(g_hub.repos[i].repo);
    if (strncmp(url, g_hub.repos[i].repo, n) == 0 && (url[n] == '/' || url[n] == 0)) {
      *len = n;
      return &g_hub.repos[i];
    }
  }
  return NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, int status, const char *body) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

static char *listing(const srepo *r) {
  size_t cap = 65536, n = 0;
  char *s = malloc(cap);
  n += (size_t)snprintf(s + n, cap - n, "{\"id\":\"%s\",\"sha\":\"%s\",\"siblings\":[", r->repo,
                        COMMIT);
  for (int i = 0; i < r->n; i++) {
    const sfile *f = &r->files[i];
    if (f->lfs)
      n += (size_t)snprintf(s + n, cap - n,
                            "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%.40s\",\"lfs\":{"
                            "\"sha256\":\"%s\",\"size\":%zu,\"pointerSize\":134}}",
                            i ? "," : "", f->name, f->size, f->hash, f->hash, f->size);
    else
      n += (size_t)snprintf(s + n, cap - n,
                            "%s{\"rfilename\":\"%s\",\"size\":%zu,\"blobId\":\"%s\"}", i ? "," : "",
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

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload, (void)upload_size, (void)state;
  const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
  const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  pthread_mutex_lock(&g_hub.mu);
  if (g_hub.nlog < 256)
    snprintf(g_hub.log[g_hub.nlog++], 320, "%s %s|range=%s|auth=%s", method, url,
             range ? range : "", auth ? auth : "");
  int offline = g_hub.offline, require = g_hub.require_token, norev = g_hub.no_revision_api;
  pthread_mutex_unlock(&g_hub.mu);
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
    if (strncmp(rest, "/revision/", 10) == 0 && norev)
      return reply(c, 404, "{\"error\":\"Not Found\"}");
    if (rest[0] && strncmp(rest, "/revision/", 10) != 0) return reply(c, 404, "{}");
    char *body = listing(r);
    enum MHD_Result ret = reply(c, 200, body);
    free(body);
    return ret;
  }
  r = find_repo(url + 1, &rl);
  const char *rest = r ? url + 1 + rl : "";
  if (!r || strncmp(rest, "/resolve/", 9) != 0)
    return reply(c, 404, "{\"error\":\"Entry not found\"}");
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
  pthread_mutex_lock(&g_hub.mu);
  if (strcmp(g_hub.corrupt_name, f->name) == 0 && s->len > 0) copy[s->len / 2] ^= 0x55;
  if (g_hub.cut_pending && strcmp(g_hub.cut_name, f->name) == 0) {
    g_hub.cut_pending = 0;
    s->cut = g_hub.cut_after;
  }
  pthread_mutex_unlock(&g_hub.mu);
  struct MHD_Response *resp =
      MHD_create_response_from_callback(s->len, 32 * 1024, stream_cb, s, stream_free);
  if (range) {
    char cr[96];
    snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", from, f->size - 1, f->size);
    MHD_add_response_header(resp, "Content-Range", cr);
  }
  enum MHD_Result ret = MHD_queue_response(c, range ? 206 : 200, resp);
  MHD_destroy_response(resp);
  return ret;
}

void fake_hub_start(void) {
  pthread_mutex_init(&g_hub.mu, NULL);
  add_repo("owner/opt", "models/videoblip-opt-tiny");
  add_repo("owner/sharded", "models/videoblip-flant5-tiny-sharded");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  g_hub.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                             NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
  if (!g_hub.d) {
    fprintf(stderr, "cannot start the test server\n");
    exit(2);
  }
  g_hub.port = MHD_get_daemon_info(g_hub.d, MHD_DAEMON_INFO_BIND_PORT)->port;
  char ep[64];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", g_hub.port);
  setenv("HF_ENDPOINT", ep, 1);
  setenv("VBLIP_PULL_RETRY_MS", "20", 1);
  unsetenv("HF_TOKEN");
}

void fake_hub_clear_log(void) {
  pthread_mutex_lock(&g_hub.mu);
  g_hub.nlog = 0;
  pthread_mutex_unlock(&g_hub.mu);
}

const char *fake_hub_logged(const char *a, const char *b) {
  const char *hit = NULL;
  pthread_mutex_lock(&g_hub.mu);
  for (int i = 0; i < g_hub.nlog && !hit; i++)
    if (strstr(g_hub.log[i], a) && (!b || strstr(g_hub.log[i], b))) hit = g_hub.log[i];
  pthread_mutex_unlock(&g_hub.mu);
  return hit;
}

int fake_hub_count_logged(const char *a) {
  int n = 0;
  pthread_mutex_lock(&g_hub.mu);
  for (int i = 0; i < g_hub.nlog; i++)
    n += strstr(g_hub.log[i], a) != NULL;
  pthread_mutex_unlock(&g_hub.mu);
  return n;
}

void fake_hub_stop(void) {
  MHD_stop_daemon(g_hub.d);
}
