/* vblip pull: the files vblip needs from a Hugging Face Hub model repository,
 * over HTTP(S) with libcurl, into a cache directory; resumable and verified. */
#include "hub/hub.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/model_source.h"
#include "hub/hf_cache.h"
#include "runtime/common.h"
#include "vblip_hub.h"

#define MAX_TRIES 5
#define MANIFEST ".vblip-pull.json"
#define MAX_LISTING (64u << 20)

/* ---- names ---- */

static bool valid_revision(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") || strstr(s, "//")) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-' || c == '/'))
      return false;
  }
  return true;
}

void vblip_hub_install(void) { vblip_set_repo_resolver(vb_hub_ensure); }

/* Replaces each '/' with "--". */
static char *flatten(const char *s) {
  size_t n = 0;
  for (const char *p = s; *p; p++) n += *p == '/' ? 2 : 1;
  char *o = vb_malloc(n + 1), *q = o;
  if (!o) return NULL;
  for (const char *p = s; *p; p++) {
    if (*p == '/') {
      *q++ = '-';
      *q++ = '-';
    } else {
      *q++ = *p;
    }
  }
  *q = 0;
  return o;
}

static char *strfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strfmt(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = vb_malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

static int mkdirs(const char *path) {
  char *p = vb_strdup(path);
  if (!p) return -1;
  for (char *q = p + 1;; q++) {
    if (*q == '/' || *q == 0) {
      char c = *q;
      *q = 0;
      if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        int e = errno;
        vb_error("cannot create directory %s: %s", p, strerror(e));
        free(p);
        return -1;
      }
      *q = c;
      if (!c) break;
    }
  }
  free(p);
  return 0;
}

static char *default_dir(const char *repo, const char *rev) {
  const char *root = getenv("VBLIP_CACHE");
  char *base = NULL;
  if (root && root[0]) {
    base = vb_strdup(root);
  } else {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0]) base = strfmt("%s/vblip/hub", xdg);
    else if (home && home[0]) base = strfmt("%s/.cache/vblip/hub", home);
    else {
      vb_error("no cache directory: set VBLIP_CACHE or HOME, or pass a directory");
      return NULL;
    }
  }
  char *r = flatten(repo), *v = flatten(rev), *d = NULL;
  if (base && r && v) d = strfmt("%s/%s/%s", base, r, v);
  free(base);
  free(r);
  free(v);
  return d;
}

/* ---- HTTP ---- */

typedef struct {
  CURL *c;
  char *endpoint;
  struct curl_slist *headers;
  int progress;
  /* the current transfer */
  const char *label;
  FILE *out;       /* file download: append here */
  uint64_t offset; /* bytes already in the partial file */
  char *mem;       /* in-memory download */
  size_t mem_len, mem_cap, mem_max;
  int checked;     /* status looked at (first body bytes) */
  int verbose;     /* say on stderr when a request is retried */
  int write_err;
  double t0, last;
} hub;

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *p, size_t sz, size_t nm, void *user) {
  hub *h = user;
  size_t n = sz * nm;
  long status = 0;
  curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &status);
  if (h->out && status >= 200 && status < 300) {
    if (!h->checked) {
      h->checked = 1;
      if (status == 200 && h->offset > 0) { /* the server ignored the range: start over */
        if (fflush(h->out) != 0 || ftruncate(fileno(h->out), 0) != 0 || fseek(h->out, 0, SEEK_SET) != 0) {
          h->write_err = errno ? errno : EIO;
          return 0;
        }
        h->offset = 0;
      }
    }
    if (fwrite(p, 1, n, h->out) != n) {
      h->write_err = errno ? errno : EIO;
      return 0;
    }
    return n;
  }
  /* error bodies and in-memory downloads: keep a bounded copy */
  if (h->mem_len + n > h->mem_max) n = h->mem_max > h->mem_len ? h->mem_max - h->mem_len : 0;
  if (h->mem_len + n + 1 > h->mem_cap) {
    size_t cap = h->mem_cap ? h->mem_cap : 8192;
    while (cap < h->mem_len + n + 1) cap *= 2;
    char *m = realloc(h->mem, cap);
    if (!m) return 0;
    h->mem = m;
    h->mem_cap = cap;
  }
  memcpy(h->mem + h->mem_len, p, n);
  h->mem_len += n;
  h->mem[h->mem_len] = 0;
  return sz * nm;
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  (void)ultotal;
  (void)ulnow;
  hub *h = user;
  if (!h->progress || !h->out) return 0;
  double now = vb_now_ms();
  if (now - h->last < 100) return 0;
  h->last = now;
  double s = (now - h->t0) / 1e3;
  double have = (double)(h->offset + (uint64_t)dlnow), total = (double)(h->offset + (uint64_t)dltotal);
  fprintf(stderr, "\r%s: %.1f", h->label, have / 1e6);
  if (dltotal > 0) fprintf(stderr, "/%.1f MB (%.0f%%)", total / 1e6, 100.0 * have / total);
  else fprintf(stderr, " MB");
  fprintf(stderr, "  %.1f MB/s   ", s > 0 ? dlnow / 1e6 / s : 0.0);
  fflush(stderr);
  return 0;
}

static int hub_open(hub *h, int progress) {
  memset(h, 0, sizeof *h);
  pthread_once(&g_curl_once, curl_init_once);
  const char *ep = getenv("HF_ENDPOINT");
  if (!ep || !ep[0]) ep = "https://huggingface.co";
  size_t n = strlen(ep);
  while (n > 0 && ep[n - 1] == '/') n--;
  h->endpoint = vb_malloc(n + 1);
  if (!h->endpoint) return -1;
  memcpy(h->endpoint, ep, n);
  h->endpoint[n] = 0;
  h->c = curl_easy_init();
  if (!h->c) return vb_error("cannot initialise libcurl");
  const char *tok = getenv("HF_TOKEN");
  if (tok && tok[0]) {
    char *hdr = strfmt("Authorization: Bearer %s", tok);
    if (!hdr) return -1;
    h->headers = curl_slist_append(h->headers, hdr);
    free(hdr);
  }
  char *ua = strfmt("User-Agent: vblip/%s; libcurl", vblip_version());
  if (!ua) return -1;
  h->headers = curl_slist_append(h->headers, ua);
  free(ua);
  h->progress = progress && isatty(2);
  h->verbose = progress;
  return 0;
}

static void hub_close(hub *h) {
  if (h->c) curl_easy_cleanup(h->c);
  curl_slist_free_all(h->headers);
  free(h->endpoint);
  free(h->mem);
  memset(h, 0, sizeof *h);
}

static bool transient(CURLcode r, long status) {
  if (r == CURLE_OK) return status == 408 || status == 429 || status >= 500;
  return r == CURLE_COULDNT_CONNECT || r == CURLE_PARTIAL_FILE || r == CURLE_RECV_ERROR ||
         r == CURLE_SEND_ERROR || r == CURLE_OPERATION_TIMEDOUT || r == CURLE_GOT_NOTHING ||
         r == CURLE_COULDNT_RESOLVE_HOST || r == CURLE_HTTP2 || r == CURLE_HTTP2_STREAM ||
         r == CURLE_SSL_CONNECT_ERROR;
}

/* Waits before retrying a failed request, saying so (a slow network is not a hang) */
static void backoff(hub *h, int attempt, const char *url, CURLcode r, long status) {
  const char *env = getenv("VBLIP_PULL_RETRY_MS");
  long ms = env ? atol(env) : 500;
  if (ms < 0) ms = 0;
  ms <<= attempt; /* 0.5, 1, 2, 4 s by default */
  if (h->verbose) {
    char why[128];
    if (r != CURLE_OK)
      snprintf(why, sizeof why, "%s", curl_easy_strerror(r));
    else
      snprintf(why, sizeof why, "HTTP %ld", status);
    fprintf(stderr, "vblip: GET %s: %s; retrying in %.1f s (attempt %d of %d)\n", url, why,
            ms / 1e3, attempt + 2, MAX_TRIES);
  }
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One GET. range_from > 0 asks for the bytes from there on. */
static CURLcode perform(hub *h, const char *url, uint64_t range_from, long *status) {
  CURL *c = h->c;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  char range[48];
  if (range_from > 0) {
    snprintf(range, sizeof range, "%llu-", (unsigned long long)range_from);
    curl_easy_setopt(c, CURLOPT_RANGE, range);
  }
  h->mem_len = 0;
  h->checked = 0;
  h->write_err = 0;
  CURLcode r = curl_easy_perform(c);
  *status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
  return r;
}

static int http_error(const char *url, long status, const char *body) {
  const char *why = status == 401   ? ": the repository does not exist or needs authentication (set HF_TOKEN)"
                    : status == 403 ? ": access denied (a gated or private repository? set HF_TOKEN)"
                    : status == 404 ? ": not found"
                                    : "";
  char snippet[160] = "";
  if (body && body[0] && status != 404 && status != 401) snprintf(snippet, sizeof snippet, " (%.120s)", body);
  return vb_error("GET %s: HTTP %ld%s%s", url, status, why, snippet);
}

/* GET into memory with retries. Returns 0 with *status 2xx, or -1 (error set;
 * *status holds the last HTTP status). */
static int get_mem(hub *h, const char *url, long *status) {
  h->out = NULL;
  h->mem_max = MAX_LISTING;
  for (int attempt = 0;; attempt++) {
    CURLcode r = perform(h, url, 0, status);
    if (r == CURLE_OK && *status >= 200 && *status < 300) return 0;
    if (attempt + 1 < MAX_TRIES && transient(r, *status)) {
      backoff(h, attempt, url, r, *status);
      continue;
    }
    if (r != CURLE_OK) return vb_error("GET %s: %s", url, curl_easy_strerror(r));
    return http_error(url, *status, h->mem);
  }
}

/* ---- checksums ---- */

static int hash_file(const char *path, int sha1_git_blob, char hex[65]) {
  FILE *f = fopen(path, "rb");
  if (!f) return vb_error("cannot open %s: %s", path, strerror(errno));
  struct AVSHA *sha = av_sha_alloc();
  uint8_t *buf = vb_malloc(1 << 20);
  if (!sha || !buf) {
    fclose(f);
    av_free(sha);
    free(buf);
    return vb_error("out of memory");
  }
  av_sha_init(sha, sha1_git_blob ? 160 : 256);
  if (sha1_git_blob) { /* git's blob id: sha1("blob <size>\0" + content) */
    struct stat st;
    fstat(fileno(f), &st);
    char hdr[64];
    int n = snprintf(hdr, sizeof hdr, "blob %lld", (long long)st.st_size);
    av_sha_update(sha, (const uint8_t *)hdr, (size_t)n + 1);
  }
  size_t got;
  while ((got = fread(buf, 1, 1 << 20, f)) > 0) av_sha_update(sha, buf, got);
  int err = ferror(f);
  fclose(f);
  free(buf);
  uint8_t d[32];
  av_sha_final(sha, d);
  av_free(sha);
  if (err) return vb_error("error reading %s", path);
  int nb = sha1_git_blob ? 20 : 32;
  for (int i = 0; i < nb; i++) sprintf(hex + 2 * i, "%02x", d[i]);
  return 0;
}

/* ---- the listing ---- */

typedef struct {
  char *name;
  int64_t size;  /* -1: unknown */
  char sha256[65]; /* LFS files */
  char blob[41];   /* git blob id (non-LFS files) */
} rfile;

typedef struct {
  rfile *f;
  size_t n;
  char commit[41];
} listing;

static void listing_free(listing *l) {
  for (size_t i = 0; i < l->n; i++) free(l->f[i].name);
  free(l->f);
  memset(l, 0, sizeof *l);
}

static bool is_hex(const char *s, size_t n) {
  if (strlen(s) != n) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
  return true;
}

static int parse_listing(const char *json, const char *url, listing *l) {
  memset(l, 0, sizeof *l);
  cJSON *root = cJSON_Parse(json);
  const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
  if (!cJSON_IsArray(sib)) {
    cJSON_Delete(root);
    return vb_error("%s: the answer has no \"siblings\" file list", url);
  }
  const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
  if (cJSON_IsString(sha) && is_hex(sha->valuestring, 40)) strcpy(l->commit, sha->valuestring);
  l->f = vb_calloc((size_t)cJSON_GetArraySize(sib) + 1, sizeof *l->f);
  if (!l->f) {
    cJSON_Delete(root);
    return -1;
  }
  const cJSON *e;
  cJSON_ArrayForEach(e, sib) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "rfilename");
    if (!cJSON_IsString(name)) continue;
    rfile *f = &l->f[l->n];
    f->size = -1;
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
    if (cJSON_IsNumber(size) && size->valuedouble >= 0 && size->valuedouble < 9e15) f->size = (int64_t)size->valuedouble;
    const cJSON *blob = cJSON_GetObjectItemCaseSensitive(e, "blobId");
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
    if (cJSON_IsObject(lfs)) {
      const cJSON *s = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
      if (!cJSON_IsString(s)) s = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
      if (cJSON_IsString(s) && is_hex(s->valuestring, 64)) strcpy(f->sha256, s->valuestring);
      const cJSON *ls = cJSON_GetObjectItemCaseSensitive(lfs, "size");
      if (cJSON_IsNumber(ls) && ls->valuedouble >= 0 && ls->valuedouble < 9e15) f->size = (int64_t)ls->valuedouble;
    } else if (cJSON_IsString(blob) && is_hex(blob->valuestring, 40)) {
      strcpy(f->blob, blob->valuestring);
    }
    if (!(f->name = vb_strdup(name->valuestring))) {
      cJSON_Delete(root);
      return -1;
    }
    l->n++;
  }
  cJSON_Delete(root);
  return 0;
}

static const rfile *find_file(const listing *l, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->f[i].name, name) == 0) return &l->f[i];
  return NULL;
}

/* ---- the manifest of a complete pull ---- */

static cJSON *read_manifest(const char *dir) {
  char *p = vb_path_join(dir, MANIFEST), *text = NULL;
  cJSON *m = NULL;
  if (p && vb_file_exists(p) && vb_read_file(p, 16u << 20, &text, NULL) == 0) m = cJSON_Parse(text);
  free(text);
  free(p);
  return m;
}

/* The manifest's entry for name when it matches f (size and hash). */
static bool manifest_has(const cJSON *m, const rfile *f) {
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files"), *e;
  cJSON_ArrayForEach(e, files) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
    if (!cJSON_IsString(n) || strcmp(n->valuestring, f->name) != 0) continue;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "size");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "sha256");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "blob_id");
    if (!cJSON_IsNumber(s) || (f->size >= 0 && s->valuedouble != (double)f->size)) return false;
    if (f->sha256[0] && !(cJSON_IsString(h) && strcmp(h->valuestring, f->sha256) == 0)) return false;
    if (f->blob[0] && !(cJSON_IsString(b) && strcmp(b->valuestring, f->blob) == 0)) return false;
    return true;
  }
  return false;
}

/* Every file the manifest lists is present with its size. */
static bool manifest_complete(const char *dir) {
  cJSON *m = read_manifest(dir);
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files"), *e;
  bool ok = cJSON_IsArray(files) && cJSON_GetArraySize(files) > 0;
  cJSON_ArrayForEach(e, files) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "size");
    if (!ok || !cJSON_IsString(n) || !cJSON_IsNumber(s) || strchr(n->valuestring, '/')) {
      ok = false;
      break;
    }
    char *p = vb_path_join(dir, n->valuestring);
    struct stat st;
    ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && (double)st.st_size == s->valuedouble;
    free(p);
  }
  cJSON_Delete(m);
  return ok;
}

static int write_manifest(const char *dir, const char *repo, const char *rev, const listing *l,
                          const rfile *const *got, size_t n) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "repo", repo);
  cJSON_AddStringToObject(m, "revision", rev);
  if (l->commit[0]) cJSON_AddStringToObject(m, "commit", l->commit);
  cJSON *files = cJSON_AddArrayToObject(m, "files");
  for (size_t i = 0; i < n; i++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", got[i]->name);
    char *p = vb_path_join(dir, got[i]->name);
    struct stat st;
    cJSON_AddNumberToObject(e, "size", p && stat(p, &st) == 0 ? (double)st.st_size : -1.0);
    free(p);
    if (got[i]->sha256[0]) cJSON_AddStringToObject(e, "sha256", got[i]->sha256);
    if (got[i]->blob[0]) cJSON_AddStringToObject(e, "blob_id", got[i]->blob);
    cJSON_AddItemToArray(files, e);
  }
  char *text = cJSON_Print(m);
  cJSON_Delete(m);
  char *path = vb_path_join(dir, MANIFEST), *tmp = path ? strfmt("%s.tmp-%d", path, (int)getpid()) : NULL;
  int rc = -1;
  FILE *f = tmp && text ? fopen(tmp, "wb") : NULL;
  if (f) {
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) == 0) rc = 0;
    else unlink(tmp);
  }
  if (rc) vb_error("cannot write %s", path ? path : MANIFEST);
  free(text);
  free(path);
  free(tmp);
  return rc;
}

/* ---- downloading one file ---- */

static int verify(const char *path, const rfile *f, const char *shown) {
  struct stat st;
  if (stat(path, &st) != 0) return vb_error("%s: %s", path, strerror(errno));
  if (f->size >= 0 && st.st_size != f->size)
    return vb_error("%s: %lld bytes, the listing says %lld", shown, (long long)st.st_size, (long long)f->size);
  char hex[65];
  if (f->sha256[0]) {
    if (hash_file(path, 0, hex) != 0) return -1;
    if (strcmp(hex, f->sha256) != 0)
      return vb_error("%s: sha256 %s does not match the listing's %s", shown, hex, f->sha256);
  } else if (f->blob[0]) {
    if (hash_file(path, 1, hex) != 0) return -1;
    if (strcmp(hex, f->blob) != 0)
      return vb_error("%s: git blob id %s does not match the listing's %s", shown, hex, f->blob);
  }
  return 0;
}

static int download(hub *h, const char *url, const char *dir, const rfile *f) {
  char *final = vb_path_join(dir, f->name);
  char *part = final ? strfmt("%s.incomplete", final) : NULL;
  int rc = -1;
  if (!part) goto done;
  h->label = f->name;
  for (int attempt = 0;; attempt++) {
    struct stat st;
    uint64_t have = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (f->size >= 0 && have > (uint64_t)f->size) { /* longer than the file: start over */
      if (truncate(part, 0) != 0) {
        vb_error("cannot truncate %s: %s", part, strerror(errno));
        goto done;
      }
      have = 0;
    }
    long status = 0;
    CURLcode r = CURLE_OK;
    if (f->size < 0 || have < (uint64_t)f->size || f->size == 0) {
      h->out = fopen(part, "ab");
      if (!h->out) {
        vb_error("cannot write %s: %s", part, strerror(errno));
        goto done;
      }
      h->offset = have;
      h->mem_max = 4096;
      h->t0 = vb_now_ms();
      h->last = 0;
      r = perform(h, url, have, &status);
      int werr = h->write_err;
      int cerr = fclose(h->out);
      h->out = NULL;
      if (h->progress) fputc('\n', stderr);
      if (werr || cerr != 0) {
        vb_error("error writing %s: %s", part, strerror(werr ? werr : errno));
        goto done;
      }
      if (r == CURLE_OK && status == 416 && have > 0) { /* our range is past the end: start over */
        if (truncate(part, 0) != 0) {
          vb_error("cannot truncate %s: %s", part, strerror(errno));
          goto done;
        }
        if (attempt + 1 < MAX_TRIES) continue;
      }
      if (r != CURLE_OK || status < 200 || status >= 300) {
        if (attempt + 1 < MAX_TRIES && transient(r, status)) {
          backoff(h, attempt, url, r, status);
          continue;
        }
        if (r != CURLE_OK) vb_error("GET %s: %s (after %d attempts)", url, curl_easy_strerror(r), attempt + 1);
        else http_error(url, status, h->mem);
        goto done; /* the partial file stays: the next pull resumes it */
      }
      if (f->size >= 0 && stat(part, &st) == 0 && st.st_size < f->size) {
        /* a short answer without a transport error: resume */
        if (attempt + 1 < MAX_TRIES) continue;
        vb_error("GET %s: the transfer keeps ending early", url);
        goto done;
      }
    }
    break;
  }
  if (verify(part, f, f->name) != 0) {
    unlink(part);
    vb_error_context("downloaded file removed");
    goto done;
  }
  if (rename(part, final) != 0) {
    vb_error("cannot rename %s: %s", part, strerror(errno));
    goto done;
  }
  rc = 0;
done:
  free(final);
  free(part);
  return rc;
}

/* ---- choosing the files ---- */

static const char *const k_small[] = {
    "config.json",          "generation_config.json",  "preprocessor_config.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json",           "merges.txt",              "spiece.model",
    "tokenizer.json",
};

static char *url_escape_rev(const char *rev) {
  size_t n = 0;
  for (const char *p = rev; *p; p++) n += *p == '/' ? 3 : 1;
  char *o = vb_malloc(n + 1), *q = o;
  if (!o) return NULL;
  for (const char *p = rev; *p; p++) {
    if (*p == '/') {
      memcpy(q, "%2F", 3);
      q += 3;
    } else {
      *q++ = *p;
    }
  }
  *q = 0;
  return o;
}

typedef struct {
  hub *h;
  const char *repo, *rev_url, *dir;
  const listing *l;
  cJSON *manifest;
  const rfile **got;
  size_t ngot;
} pull_state;

static int fetch(pull_state *s, const rfile *f) {
  for (size_t i = 0; i < s->ngot; i++)
    if (s->got[i] == f) return 0;
  char *final = vb_path_join(s->dir, f->name);
  if (!final) return -1;
  struct stat st;
  int present = stat(final, &st) == 0 && S_ISREG(st.st_mode);
  int rc = 0;
  if (present && s->manifest && manifest_has(s->manifest, f) && (f->size < 0 || st.st_size == f->size)) {
    /* verified when it was downloaded */
  } else if (present && (f->sha256[0] || f->blob[0]) && verify(final, f, f->name) == 0) {
    /* already there and intact */
  } else {
    char *url = strfmt("%s/%s/resolve/%s/%s", s->h->endpoint, s->repo, s->rev_url, f->name);
    rc = url ? download(s->h, url, s->dir, f) : -1;
    free(url);
  }
  free(final);
  if (rc == 0) s->got[s->ngot++] = f;
  return rc;
}

/* The shards an index names (plain file names, each listed). */
static int fetch_index(pull_state *s, const rfile *idx) {
  if (fetch(s, idx) != 0) return -1;
  char *p = vb_path_join(s->dir, idx->name), *text = NULL;
  int rc = -1;
  cJSON *root = NULL;
  if (!p || vb_read_file(p, 64u << 20, &text, NULL) != 0) goto done;
  root = cJSON_Parse(text);
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *e;
  if (!cJSON_IsObject(map)) {
    vb_error("%s: no weight_map object", idx->name);
    goto done;
  }
  cJSON_ArrayForEach(e, map) {
    if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
      vb_error("%s: weight_map entry %s is not a plain file name", idx->name, e->string);
      goto done;
    }
    const rfile *f = find_file(s->l, e->valuestring);
    if (!f) {
      vb_error("%s names shard %s, which the repository does not have", idx->name, e->valuestring);
      goto done;
    }
    if (fetch(s, f) != 0) goto done;
  }
  rc = 0;
done:
  cJSON_Delete(root);
  free(text);
  free(p);
  return rc;
}

static int pull(const char *repo, const char *revision, const char *dir_arg, int progress, char **out_dir) {
  if (out_dir) *out_dir = NULL;
  const char *rev = revision && revision[0] ? revision : "main";
  if (!repo || !vb_repo_id_valid(repo))
    return vb_error("\"%s\" is not a Hub repository id (owner/name: letters, digits, '.', '_', '-')",
                    repo ? repo : "");
  if (!valid_revision(rev)) return vb_error("\"%s\" is not a valid revision", rev);
  if (vb_hf_offline())
    return vb_error(
        "cannot pull %s: HF_HUB_OFFLINE is set (no network access; unset it to download)", repo);
  hub h;
  listing l = {0};
  pull_state s = {0};
  char *dir = dir_arg ? vb_strdup(dir_arg) : default_dir(repo, rev);
  char *rev_url = url_escape_rev(rev), *url = NULL;
  int rc = -1;
  if (hub_open(&h, progress) != 0 || !dir || !rev_url || mkdirs(dir) != 0) goto done;

  /* the file list: the revision's, or the repository's (main) */
  long status = 0;
  url = strfmt("%s/api/models/%s/revision/%s?blobs=true", h.endpoint, repo, rev_url);
  if (!url) goto done;
  if (get_mem(&h, url, &status) != 0) {
    if (status != 404 || strcmp(rev, "main") != 0) goto done;
    char *saved = vb_strdup(vb_error_message());
    free(url);
    url = strfmt("%s/api/models/%s?blobs=true", h.endpoint, repo);
    int r = url ? get_mem(&h, url, &status) : -1;
    if (r != 0) {
      if (status == 404 && saved) vb_error("%s", saved);
      free(saved);
      goto done;
    }
    free(saved);
  }
  if (parse_listing(h.mem ? h.mem : "", url, &l) != 0) goto done;
  s.h = &h;
  s.repo = repo;
  s.rev_url = l.commit[0] ? l.commit : rev_url; /* pin the files to the listed commit */
  s.dir = dir;
  s.l = &l;
  s.manifest = read_manifest(dir);
  s.got = vb_calloc(l.n + 1, sizeof *s.got);
  if (!s.got) goto done;
  if (!find_file(&l, "config.json")) {
    vb_error("%s (revision %s) has no config.json: not a model repository vblip can use", repo, rev);
    goto done;
  }
  for (size_t i = 0; i < sizeof k_small / sizeof k_small[0]; i++) {
    const rfile *f = find_file(&l, k_small[i]);
    if (f && fetch(&s, f) != 0) goto done;
  }
  const rfile *w;
  if ((w = find_file(&l, "model.safetensors.index.json"))) {
    if (fetch_index(&s, w) != 0) goto done;
  } else if ((w = find_file(&l, "model.safetensors"))) {
    if (fetch(&s, w) != 0) goto done;
  } else if ((w = find_file(&l, "pytorch_model.bin.index.json"))) {
    if (fetch_index(&s, w) != 0) goto done;
  } else if ((w = find_file(&l, "pytorch_model.bin"))) {
    if (fetch(&s, w) != 0) goto done;
  } else {
    vb_error("%s (revision %s) has no weights vblip reads (model.safetensors[.index.json] or "
             "pytorch_model.bin[.index.json])", repo, rev);
    goto done;
  }
  if (write_manifest(dir, repo, rev, &l, s.got, s.ngot) != 0) goto done;
  if (out_dir) {
    *out_dir = dir;
    dir = NULL;
  }
  rc = 0;
done:
  if (rc != 0) vb_error_context("pulling %s", repo ? repo : "");
  cJSON_Delete(s.manifest);
  free(s.got);
  listing_free(&l);
  hub_close(&h);
  free(url);
  free(rev_url);
  free(dir);
  return rc;
}

int vblip_pull(const char *repo, const char *revision, const char *dir, int progress, char **out_dir) {
  return pull(repo, revision, dir, progress, out_dir);
}

int vb_hub_ensure(const char *repo, int progress, char **dir) {
  *dir = NULL;
  char *d = default_dir(repo, "main");
  if (!d) return -1;
  if (manifest_complete(d)) { /* vblip's own cache */
    *dir = d;
    return 0;
  }
  /* a complete snapshot that Python's huggingface_hub downloaded */
  char *snap = vb_repo_id_valid(repo) ? vb_hf_cache_snapshot(repo, "main") : NULL;
  if (snap) {
    free(d);
    *dir = snap;
    return 0;
  }
  if (vb_hf_offline()) {
    char *hf = vb_hf_cache_root();
    vb_error("%s is in neither cache (%s, %s/models--...) and HF_HUB_OFFLINE is set: unset it to "
             "download, or run `vblip pull %s` where the network is reachable",
             repo, d, hf ? hf : "~/.cache/huggingface/hub", repo);
    free(hf);
    free(d);
    return -1;
  }
  free(d);
  return pull(repo, "main", NULL, progress, dir);
}
