/* vblip serve, end to end: starts the server as a child process on 127.0.0.1 (a free
 * port chosen by the kernel, read from the URL it prints) with the tiny fixture model,
 * and talks to it with libcurl. Everything is bounded in time. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/server_util.h"
#include "serve_child.h"
#include "testutil.h"
#include "vblip_server.h"

#define MODEL "tests/fixtures/models/videoblip-opt-tiny"
#define VIDEO "tests/fixtures/media/video1_h264_320x240_30fps_12s.mp4"
#define VIDEO2 "tests/fixtures/media/video2_vp9_180x320_25fps_6s.webm"
#define IMAGE "tests/fixtures/media/image_rgb_203x150.png"
#define Q1 "What is the camera wearer doing?"
#define Q2 "Question: What is the camera wearer doing? Answer:"

typedef tu_server server;

/* When set: the next server's stderr goes to this file (its --verbose log) */
static const char *g_server_log;
/* When set: every request carries this header (an API key) */
static const char *g_request_header;

static int start_server(server *s, const char *const *extra, const char *delay_ms) {
  return tu_server_start(s, MODEL, extra, delay_ms, g_server_log);
}

static int stop_server(server *s) { return tu_server_stop(s); }

static int dir_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n == 0;
}

/* ---- HTTP ---- */

typedef struct {
  long status;
  char *body;
  size_t len;
  char retry_after[32];
  char ctype[128];
  char headers[4096];    /* every header line */
  int abort_after_token; /* stop reading at the first token event */
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *u) {
  resp *r = u;
  size_t k = sz * n;
  char *b = realloc(r->body, r->len + k + 1);
  if (!b) return 0;
  r->body = b;
  memcpy(r->body + r->len, p, k);
  r->len += k;
  r->body[r->len] = 0;
  if (r->abort_after_token && strstr(r->body, "event: token")) return 0; /* hang up mid-stream */
  return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *u) {
  resp *r = u;
  size_t k = sz * n;
  if (k > 13 && strncasecmp(p, "Retry-After:", 12) == 0) snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)(k - 12), p + 12);
  if (k > 14 && strncasecmp(p, "Content-Type:", 13) == 0) snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(k - 13), p + 13);
  size_t have = strlen(r->headers);
  if (have + k < sizeof r->headers) memcpy(r->headers + have, p, k), r->headers[have + k] = 0;
  return k;
}

static CURL *make_req(const char *method, const char *url, const char *ctype, const void *body, size_t len,
                      resp *r, struct curl_slist **hdrs, long timeout_s) {
  memset(r, 0, sizeof *r);
  r->body = calloc(1, 1);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  *hdrs = NULL;
  if (ctype) {
    char h[160];
    snprintf(h, sizeof h, "Content-Type: %s", ctype);
    *hdrs = curl_slist_append(*hdrs, h);
  }
  /* big bodies announce themselves, so that a server may refuse them before they are sent */
  *hdrs = curl_slist_append(*hdrs, len > 1024 * 1024 ? "Expect: 100-continue" : "Expect:");
  if (g_request_header) *hdrs = curl_slist_append(*hdrs, g_request_header);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  return c;
}

static long http(const server *s, const char *method, const char *path, const char *ctype, const void *body,
                 size_t len, resp *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", s->base, path);
  struct curl_slist *h;
  CURL *c = make_req(method, url, ctype, body, len, r, &h, 120);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  else r->status = -1;
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  return r->status;
}

static long post_json(const server *s, const char *path, const char *json, resp *r) {
  return http(s, "POST", path, "application/json", json, strlen(json), r);
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  *len = fread(b, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static char *base64(const unsigned char *p, size_t n) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *o = malloc(n / 3 * 4 + 8), *w = o;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    *w++ = t[v >> 18 & 63];
    *w++ = t[v >> 12 & 63];
    *w++ = i + 1 < n ? t[v >> 6 & 63] : '=';
    *w++ = i + 2 < n ? t[v & 63] : '=';
  }
  *w = 0;
  return o;
}

static char *upload(const server *s, const char *file, const char *ctype) {
  size_t n;
  char *data = read_file(file, &n);
  resp r;
  long st = http(s, "POST", "/api/videos", ctype, data, n, &r);
  free(data);
  char *id = NULL;
  cJSON *j = cJSON_Parse(r.body);
  CHECK(st == 201 && j, "upload %s: %ld %s", file, st, r.body);
  const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(j, "id"));
  if (v) id = strdup(v);
  cJSON_Delete(j);
  free(r.body);
  return id;
}

/* vblip caption's answer for a prompt */
static char *caption(const char *video, const char *prompt, const char *flags) {
  char cmd[4096], *out = NULL;
  char *q = malloc(strlen(prompt) * 4 + 3), *w = q;
  *w++ = '\'';
  for (const char *p = prompt; *p; p++) {
    if (*p == '\'') {
      memcpy(w, "'\\''", 4);
      w += 4;
    } else *w++ = *p;
  }
  *w++ = '\'';
  *w = 0;
  snprintf(cmd, sizeof cmd, "%s caption --model %s --threads 2 --json %s --prompt %s %s", VBLIP_BINARY, MODEL, flags, q, video);
  free(q);
  int rc = tu_run(cmd, &out);
  CHECK(rc == 0, "caption failed: %s", cmd);
  cJSON *j = cJSON_Parse(out ? out : "");
  char *text = strdup(j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "text")) ?: "" : "");
  cJSON_Delete(j);
  free(out);
  return text;
}

/* follows a dotted path through objects and arrays ("choices.0.message") */
static char *json_str(const char *body, const char *dotted) {
  cJSON *j = cJSON_Parse(body ? body : "");
  cJSON *v = j;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", dotted);
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
    v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(k)) : cJSON_GetObjectItemCaseSensitive(v, k);
  char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
  cJSON_Delete(j);
  return s;
}

static char *chat_body(const char *id, const char *const *msgs, int n, const char *settings, int stream) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "video_id", id);
  cJSON *a = cJSON_AddArrayToObject(o, "messages");
  for (int i = 0; i < n; i++) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", i % 2 ? "assistant" : "user");
    cJSON_AddStringToObject(m, "content", msgs[i]);
    cJSON_AddItemToArray(a, m);
  }
  if (settings) cJSON_AddItemToObject(o, "settings", cJSON_Parse(settings));
  cJSON_AddBoolToObject(o, "stream", stream);
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* SSE: concatenation of the token texts (native) or delta contents (OpenAI) */
static char *sse_concat(const char *body, int openai, char **final_answer, int *saw_done) {
  char *acc = calloc(1, 1);
  size_t len = 0;
  *saw_done = 0;
  const char *p = body;
  const char *event = "";
  char ev[32] = "";
  while (p && *p) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    if (n > 7 && strncmp(p, "event: ", 7) == 0) {
      snprintf(ev, sizeof ev, "%.*s", (int)(n - 7), p + 7);
      event = ev;
    } else if (n > 6 && strncmp(p, "data: ", 6) == 0) {
      char *data = strndup(p + 6, n - 6);
      if (openai && strcmp(data, "[DONE]") == 0) *saw_done = 1;
      cJSON *j = cJSON_Parse(data);
      const char *piece = NULL;
      if (openai && j) {
        cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        piece = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content"));
      } else if (j && strcmp(event, "token") == 0) {
        piece = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
      } else if (j && strcmp(event, "done") == 0) {
        *saw_done = 1;
        if (final_answer) *final_answer = strdup(cJSON_GetStringValue(cJSON_GetObjectItem(j, "answer")) ?: "");
      }
      if (piece) {
        acc = realloc(acc, len + strlen(piece) + 1);
        strcpy(acc + len, piece);
        len += strlen(piece);
      }
      cJSON_Delete(j);
      free(data);
    } else if (n == 0) {
      event = "";
    }
    p = eol ? eol + 1 : NULL;
  }
  return acc;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The OpenAI request of turn 2 about video id, with more top-level fields */
static char *oa_turn2(const char *id, const char *a1, const char *fields) {
  size_t cap = strlen(a1) + strlen(fields) + 1024;
  char *b = malloc(cap);
  snprintf(b, cap,
           "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video_url\","
           "\"video_url\":{\"url\":\"%s\"}},{\"type\":\"text\",\"text\":\"%s\"}]},{\"role\":"
           "\"assistant\","
           "\"content\":\"%s\"},{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":8%s%s}",
           id, Q1, a1, Q2, *fields ? "," : "", fields);
  return b;
}

/* A number at a dotted path (-1 when absent) */
static double json_num(const char *body, const char *dotted) {
  cJSON *j = cJSON_Parse(body ? body : "");
  cJSON *v = j;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", dotted);
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
    v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(k)) : cJSON_GetObjectItemCaseSensitive(v, k);
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(j);
  return d;
}

/* OpenAI's meaning of the request fields (issue 15): temperature 0 greedy, > 0 sampling,
 * top_p, num_beams as the extension that asks for beam search, stop strings (whole and
 * streamed), the usage chunk, usage counting the query tokens, models/{id}, refusals. */
static void test_openai_semantics(const server *s, const char *id, const char *a1, const char *a2) {
  resp r;
  char expect_prompt[1024];
  snprintf(expect_prompt, sizeof expect_prompt, "%s %s %s", Q1, a1, Q2);
  struct {
    const char *fields, *flags;
  } modes[] = {
      {"\"temperature\":0", "--beams 1"},
      {"\"temperature\":0,\"num_beams\":3", "--beams 3"},
      {"\"temperature\":1.5,\"seed\":7", "--beams 1 --sample --temperature 1.5 --top-k 0 --seed 7"},
      {"\"top_p\":0.9,\"seed\":11", "--beams 1 --sample --top-p 0.9 --top-k 0 --seed 11"},
      {"\"temperature\":30,\"seed\":5", "--beams 1 --sample --temperature 30 --top-k 0 --seed 5"},
  };
  char *greedy = NULL;
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    char *b = oa_turn2(id, a1, modes[i].fields);
    CHECK(post_json(s, "/v1/chat/completions", b, &r) == 200, "%s: %s", modes[i].fields, r.body);
    char *got = json_str(r.body, "choices.0.message.content");
    char flags[256];
    snprintf(flags, sizeof flags, "%s --max-new-tokens 8", modes[i].flags);
    char *want = caption(VIDEO, expect_prompt, flags);
    CHECK(streq(got, want), "%s: '%s' == caption %s's '%s'", modes[i].fields, got, flags, want);
    if (i == 0) greedy = strdup(got ? got : "");
    free(got);
    free(want);
    free(b);
    free(r.body);
  }
  CHECK(streq(greedy, a2), "temperature 0 is the greedy answer '%s'", a2);

  /* usage: the query tokens the model reads count as prompt tokens */
  {
    char *b = oa_turn2(id, a1, "\"temperature\":0");
    post_json(s, "/v1/chat/completions", b, &r);
    free(b);
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "printf %%s '%s' | %s tokenize --model %s", expect_prompt,
             VBLIP_BINARY, MODEL);
    int n_text = 0;
    if (CHECK(tu_run(cmd, &out) == 0, "tokenize")) {
      for (char *save = NULL, *t = strtok_r(out, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
        n_text++;
    }
    free(out);
    double pt = json_num(r.body, "usage.prompt_tokens"),
           ct = json_num(r.body, "usage.completion_tokens");
    /* the fixture model's num_query_tokens is 8 */
    CHECK(pt == 8 + n_text && ct == 8 && json_num(r.body, "usage.total_tokens") == pt + ct,
          "usage: %g prompt tokens (8 queries + %d text), %g completion: %s", pt, n_text, ct,
          r.body);
    free(r.body);
  }

  /* stop: a string from the middle of the greedy answer ends it there */
  const char *sp = greedy ? strchr(greedy, ' ') : NULL;
  if (CHECK(sp && strlen(sp) > 4, "a greedy answer of several words: '%s'", greedy)) {
    char stop[4];
    snprintf(stop, sizeof stop, "%.3s", sp + 1);
    size_t cut = (size_t)(strstr(greedy, stop) - greedy);
    char fields[256];
    snprintf(fields, sizeof fields, "\"temperature\":0,\"stop\":[\"@@never@@\",\"%s\"]", stop);
    char *b = oa_turn2(id, a1, fields);
    CHECK(post_json(s, "/v1/chat/completions", b, &r) == 200, "stop: %s", r.body);
    char *got = json_str(r.body, "choices.0.message.content"),
         *fin = json_str(r.body, "choices.0.finish_reason");
    CHECK(got && strlen(got) == cut && strncmp(got, greedy, cut) == 0 && streq(fin, "stop"),
          "stop '%s': '%s' (finish %s), the greedy answer '%s' before it", stop, got, fin, greedy);
    free(got);
    free(fin);
    free(r.body);
    free(b);
    /* streamed: no piece of the stop string shows, and the usage chunk comes last */
    snprintf(fields, sizeof fields,
             "\"temperature\":0,\"stop\":\"%s\",\"stream\":true,\"stream_options\":{\"include_"
             "usage\":true}",
             stop);
    b = oa_turn2(id, a1, fields);
    CHECK(post_json(s, "/v1/chat/completions", b, &r) == 200, "stop streamed");
    int done;
    char *pieces = sse_concat(r.body, 1, NULL, &done);
    CHECK(done && pieces && strlen(pieces) == cut && strncmp(pieces, greedy, cut) == 0,
          "streamed up to the stop: '%s'", pieces);
    CHECK(strstr(r.body, "\"finish_reason\":\"stop\""), "streamed finish_reason stop");
    const char *last = strstr(r.body, "\"choices\":[]");
    CHECK(last && strstr(last, "\"prompt_tokens\":") && strstr(last, "\"completion_tokens\":") &&
              !strstr(last, "\"delta\"") && strstr(last, "data: [DONE]"),
          "the usage chunk (no choices) before [DONE]: %s", r.body);
    free(pieces);
    free(r.body);
    free(b);
    /* without include_usage no chunk carries usage */
    snprintf(fields, sizeof fields, "\"temperature\":0,\"stream\":true");
    b = oa_turn2(id, a1, fields);
    CHECK(post_json(s, "/v1/chat/completions", b, &r) == 200 && !strstr(r.body, "usage"),
          "no usage unasked: %s", r.body);
    free(r.body);
    free(b);
  }
  free(greedy);

  /* what vblip does not support is refused, in OpenAI's error shape */
  struct {
    const char *fields, *param;
  } refused[] = {
      {"\"n\":2", "n"},
      {"\"logprobs\":true", "logprobs"},
      {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "tools"},
      {"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]", "stop"},
      {"\"temperature\":-1", "temperature"},
  };
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    char *b = oa_turn2(id, a1, refused[i].fields);
    CHECK(post_json(s, "/v1/chat/completions", b, &r) == 400, "%s: %ld", refused[i].fields,
          r.status);
    char *param = json_str(r.body, "error.param"), *type = json_str(r.body, "error.type");
    char *m = json_str(r.body, "error.message");
    CHECK(streq(param, refused[i].param) && streq(type, "invalid_request_error") && m && *m,
          "%s: error shape %s", refused[i].fields, r.body);
    free(param);
    free(type);
    free(m);
    free(r.body);
    free(b);
  }

  /* models: the list and retrieve by id */
  CHECK(http(s, "GET", "/v1/models", NULL, NULL, 0, &r) == 200, "models");
  char *name = json_str(r.body, "data.0.id");
  free(r.body);
  char path[256];
  snprintf(path, sizeof path, "/v1/models/%s", name ? name : "");
  CHECK(http(s, "GET", path, NULL, NULL, 0, &r) == 200 && name, "retrieve %s: %s", path, r.body);
  char *rid = json_str(r.body, "id"), *obj = json_str(r.body, "object");
  CHECK(streq(rid, name) && streq(obj, "model"), "the model object: %s", r.body);
  free(rid);
  free(obj);
  free(r.body);
  free(name);
  CHECK(http(s, "GET", "/v1/models/no-such-model", NULL, NULL, 0, &r) == 404, "unknown model: %ld",
        r.status);
  {
    cJSON *j = cJSON_Parse(r.body), *e = cJSON_GetObjectItem(j, "error");
    CHECK(streq(cJSON_GetStringValue(cJSON_GetObjectItem(e, "code")), "model_not_found") &&
              streq(cJSON_GetStringValue(cJSON_GetObjectItem(e, "param")), "model"),
          "model_not_found: %s", r.body);
    cJSON_Delete(j);
  }
  free(r.body);
  /* code is a string or null, never a number */
  CHECK(http(s, "GET", "/v1/nope", NULL, NULL, 0, &r) == 404, "unknown /v1 endpoint");
  {
    cJSON *j = cJSON_Parse(r.body),
          *code = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code");
    CHECK(cJSON_IsString(code) || cJSON_IsNull(code), "code string or null: %s", r.body);
    cJSON_Delete(j);
  }
  free(r.body);
}

/* ---- the main server: API, chat, streaming, OpenAI, errors, concurrency ---- */

static void test_main_server(void) {
  server s;
  const char *extra[] = {"--examples", "tests/fixtures/media", "--beams", "0", "--max-new-tokens", "8", NULL};
  if (!CHECK(start_server(&s, extra, NULL) == 0, "start the server")) return;
  resp r;

  CHECK(http(&s, "GET", "/api/health", NULL, NULL, 0, &r) == 200 && strstr(r.body, "\"status\":\"ok\""), "health: %s", r.body);
  free(r.body);
  CHECK(http(&s, "GET", "/", NULL, NULL, 0, &r) == 200 && strstr(r.body, "Number of beams") && strstr(r.ctype, "text/html"),
        "the page");
  free(r.body);

  /* uploads */
  char *id = upload(&s, VIDEO, "video/mp4");
  if (!CHECK(id != NULL, "uploaded")) {
    stop_server(&s);
    return;
  }
  char path[256];
  snprintf(path, sizeof path, "/api/videos/%s", id);
  CHECK(http(&s, "GET", path, NULL, NULL, 0, &r) == 200, "video info");
  cJSON *info = cJSON_Parse(r.body);
  CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(info, "frames")) == 8, "8 frames: %s", r.body);
  cJSON_Delete(info);
  free(r.body);
  snprintf(path, sizeof path, "/api/videos/%s/frames/7", id);
  CHECK(http(&s, "GET", path, NULL, NULL, 0, &r) == 200 && r.len > 54 && memcmp(r.body, "BM", 2) == 0 &&
            strstr(r.ctype, "image/bmp"),
        "thumbnail");
  free(r.body);
  {
    /* multipart, as the page sends it */
    char url[256];
    snprintf(url, sizeof url, "%s/api/videos", s.base);
    CURL *c = curl_easy_init();
    curl_mime *mime = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filedata(part, IMAGE);
    curl_mime_type(part, "image/png");
    memset(&r, 0, sizeof r);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(c);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    CHECK(rc == CURLE_OK && st == 201 && strstr(r.body, "image_rgb_203x150.png") && strstr(r.body, "\"frames\""),
          "multipart upload: %ld %s", st, r.body);
    free(r.body);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
  }

  /* chat, whole answers, equal to vblip caption's */
  const char *turn1[] = {Q1};
  char *body = chat_body(id, turn1, 1, "{\"num_beams\": 2, \"max_new_tokens\": 6}", 0);
  CHECK(post_json(&s, "/api/chat", body, &r) == 200, "chat: %s", r.body);
  free(body);
  char *a1 = json_str(r.body, "answer");
  char *want1 = caption(VIDEO, Q1, "--beams 2 --max-new-tokens 6");
  CHECK(streq(a1, want1), "turn 1 answer '%s' == caption's '%s'", a1, want1);
  free(r.body);

  const char *turn2[] = {Q1, a1 ? a1 : "", Q2};
  body = chat_body(id, turn2, 3, NULL, 0);
  CHECK(post_json(&s, "/api/chat", body, &r) == 200, "chat turn 2: %s", r.body);
  free(body);
  char *a2 = json_str(r.body, "answer"), *p2 = json_str(r.body, "prompt");
  char expect_prompt[1024];
  snprintf(expect_prompt, sizeof expect_prompt, "%s %s %s", Q1, a1 ? a1 : "", Q2);
  CHECK(streq(p2, expect_prompt), "turn 2 prompt '%s'", p2);
  char *want2 = caption(VIDEO, expect_prompt, "--beams 0 --max-new-tokens 8");
  CHECK(streq(a2, want2), "turn 2 answer '%s' == caption's '%s'", a2, want2);
  free(r.body);

  /* the same turn streamed */
  body = chat_body(id, turn2, 3, NULL, 1);
  CHECK(post_json(&s, "/api/chat", body, &r) == 200 && strstr(r.ctype, "text/event-stream"), "stream: %ld", r.status);
  free(body);
  char *final = NULL;
  int done = 0;
  char *pieces = sse_concat(r.body, 0, &final, &done);
  CHECK(done && streq(final, a2), "stream done event answer '%s'", final);
  CHECK(streq(pieces, a2), "pieces '%s' add up to '%s'", pieces, a2);
  CHECK(strstr(r.body, "event: token") != NULL, "token events");
  free(pieces);
  free(final);
  free(r.body);

  /* OpenAI-compatible: an uploaded id, whole and streamed */
  char oa[4096];
  snprintf(oa, sizeof oa,
           "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"ignored\"},{\"role\":"
           "\"user\",\"content\":[{\"type\":\"video_url\","
           "\"video_url\":{\"url\":\"%s\"}},{\"type\":\"text\",\"text\":\"%s\"}]},{\"role\":"
           "\"assistant\",\"content\":\"%s\"},"
           "{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":8,\"temperature\":0}",
           id, Q1, a1 ? a1 : "", Q2);
  CHECK(post_json(&s, "/v1/chat/completions", oa, &r) == 200, "openai: %s", r.body);
  char *oc = json_str(r.body, "choices.0.message.content");
  cJSON *oj = cJSON_Parse(r.body);
  CHECK(streq(oc, a2), "openai content '%s' == '%s'", oc, a2);
  CHECK(streq(cJSON_GetStringValue(cJSON_GetObjectItem(oj, "object")), "chat.completion"), "object");
  cJSON_Delete(oj);
  free(oc);
  free(r.body);
  size_t olen = strlen(oa);
  memcpy(oa + olen - 1, ",\"stream\":true}", 16);
  CHECK(post_json(&s, "/v1/chat/completions", oa, &r) == 200 && strstr(r.ctype, "text/event-stream"), "openai stream");
  pieces = sse_concat(r.body, 1, NULL, &done);
  CHECK(done && streq(pieces, a2), "openai chunks '%s' == '%s', [DONE] %d", pieces, a2, done);
  CHECK(strstr(r.body, "chat.completion.chunk") && strstr(r.body, "\"finish_reason\":\""), "chunk objects");
  free(pieces);
  free(r.body);

  test_openai_semantics(&s, id, a1 ? a1 : "", a2 ? a2 : "");

  /* OpenAI with a data: URL video */
  {
    size_t n;
    char *bytes = read_file(VIDEO2, &n);
    char *b64 = base64((unsigned char *)bytes, n);
    size_t cap = strlen(b64) + 1024;
    char *req = malloc(cap);
    snprintf(req, cap,
             "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"%s\"},{\"type\":\"video_url\","
             "\"video_url\":{\"url\":\"data:video/webm;base64,%s\"}}]}],\"num_beams\":0,\"max_tokens\":8}",
             Q1, b64);
    CHECK(post_json(&s, "/v1/chat/completions", req, &r) == 200, "openai data URL: %s", r.body);
    char *got = json_str(r.body, "choices.0.message.content");
    char *want = caption(VIDEO2, Q1, "--beams 0 --max-new-tokens 8");
    CHECK(streq(got, want), "data URL answer '%s' == caption's '%s'", got, want);
    free(got);
    free(want);
    free(r.body);
    /* image_url with a broken image: 422 from the decoder */
    snprintf(req, cap, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,aGVsbG8gd29ybGQ=\"}},{\"type\":\"text\",\"text\":\"hi\"}]}]}");
    CHECK(post_json(&s, "/v1/chat/completions", req, &r) == 422 && strstr(r.body, "\"message\""), "broken image: %ld %s", r.status, r.body);
    free(r.body);
    free(req);
    free(b64);
    free(bytes);
  }

  /* errors */
  CHECK(post_json(&s, "/api/chat", "{\"video_id\": ", &r) == 400 && strstr(r.body, "\"error\""), "malformed JSON: %ld", r.status);
  free(r.body);
  CHECK(post_json(&s, "/api/chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r) == 400 &&
            strstr(r.body, "video_id"),
        "missing video_id: %ld %s", r.status, r.body);
  free(r.body);
  snprintf(oa, sizeof oa, "{\"video_id\":\"%s\"}", id);
  CHECK(post_json(&s, "/api/chat", oa, &r) == 400 && strstr(r.body, "messages"), "missing messages: %s", r.body);
  free(r.body);
  snprintf(oa, sizeof oa, "{\"video_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"settings\":{\"num_beams\":-1}}", id);
  CHECK(post_json(&s, "/api/chat", oa, &r) == 400 && strstr(r.body, "num_beams"), "bad settings: %s", r.body);
  free(r.body);
  snprintf(oa, sizeof oa, "{\"video_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"settings\":{\"beamz\":1}}", id);
  CHECK(post_json(&s, "/api/chat", oa, &r) == 400 && strstr(r.body, "beamz"), "unknown setting: %s", r.body);
  free(r.body);
  CHECK(post_json(&s, "/api/chat", "{\"video_id\":\"0123456789abcdef0123456789abcdef\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r) == 404,
        "unknown id: %ld", r.status);
  free(r.body);
  CHECK(post_json(&s, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r) == 400 &&
            strstr(r.body, "no video"),
        "openai without a video: %s", r.body);
  free(r.body);
  CHECK(http(&s, "POST", "/api/videos", "video/mp4", "this is not a video", 19, &r) == 422 && strstr(r.body, "\"error\"") &&
            !strstr(r.body, s.tmp),
        "unreadable video: %ld %s", r.status, r.body);
  free(r.body);
  CHECK(http(&s, "GET", "/api/nope", NULL, NULL, 0, &r) == 404, "unknown endpoint");
  free(r.body);

  /* examples */
  CHECK(http(&s, "GET", "/api/examples", NULL, NULL, 0, &r) == 200 && strstr(r.body, Q2) && strstr(r.body, "video1_h264"),
        "examples: %s", r.body);
  free(r.body);
  CHECK(http(&s, "GET", "/examples/video1_h264_320x240_30fps_12s.mp4", NULL, NULL, 0, &r) == 200 && r.len > 1000,
        "example file");
  free(r.body);
  CHECK(http(&s, "GET", "/examples/..%2fMANIFEST.json", NULL, NULL, 0, &r) == 404, "no path escapes");
  free(r.body);

  /* concurrent clients: all answered, all alike */
  {
    enum { N = 4 };
    CURLM *mh = curl_multi_init();
    CURL *cs[N];
    resp rs[N];
    struct curl_slist *hs[N];
    char url[256];
    snprintf(url, sizeof url, "%s/api/chat", s.base);
    char *b = chat_body(id, turn2, 3, NULL, 0);
    for (int i = 0; i < N; i++) {
      cs[i] = make_req("POST", url, "application/json", b, strlen(b), &rs[i], &hs[i], 120);
      curl_multi_add_handle(mh, cs[i]);
    }
    double t0 = time(NULL);
    int running = 1;
    while (running && time(NULL) - t0 < 120) {
      curl_multi_perform(mh, &running);
      if (running) curl_multi_poll(mh, NULL, 0, 200, NULL);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
      long st = 0;
      curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &st);
      char *a = json_str(rs[i].body, "answer");
      if (st == 200 && streq(a, a2)) ok++;
      free(a);
      free(rs[i].body);
      curl_multi_remove_handle(mh, cs[i]);
      curl_easy_cleanup(cs[i]);
      curl_slist_free_all(hs[i]);
    }
    curl_multi_cleanup(mh);
    free(b);
    CHECK(ok == N, "%d of %d concurrent clients answered", ok, N);
  }

  /* delete */
  snprintf(path, sizeof path, "/api/videos/%s", id);
  CHECK(http(&s, "DELETE", path, NULL, NULL, 0, &r) == 200, "delete");
  free(r.body);
  body = chat_body(id, turn1, 1, NULL, 0);
  CHECK(post_json(&s, "/api/chat", body, &r) == 404, "deleted video: %ld", r.status);
  free(body);
  free(r.body);

  CHECK(stop_server(&s) == 0, "clean exit on SIGTERM");
  CHECK(dir_empty(s.tmp), "uploads removed from %s", s.tmp);
  free(id);
  free(a1);
  free(a2);
  free(p2);
  free(want1);
  free(want2);
}

/* ---- limits: 413, 503, a client that leaves mid-stream ---- */

static void test_limits(void) {
  server s;
  /* every job waits 150 ms and every piece of text 150 ms: requests overlap */
  const char *extra[] = {"--queue-size", "1", "--max-upload-mb", "1", "--beams", "0", "--max-new-tokens", "40",
                         "--min-new-tokens", "40", NULL};
  if (!CHECK(start_server(&s, extra, "150") == 0, "start the limited server")) return;
  resp r;
  size_t big = 1536 * 1024;
  char *junk = calloc(1, big);
  CHECK(http(&s, "POST", "/api/videos", "video/mp4", junk, big, &r) == 413 && strstr(r.body, "\"error\""), "oversize upload: %ld", r.status);
  free(r.body);
  {
    char *b64 = base64((unsigned char *)junk, big);
    size_t cap = strlen(b64) + 512;
    char *req = malloc(cap);
    snprintf(req, cap, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video_url\",\"video_url\":{\"url\":\"data:video/mp4;base64,%s\"}}]}]}", b64);
    CHECK(post_json(&s, "/v1/chat/completions", req, &r) == 413, "oversize data URL: %ld", r.status);
    free(r.body);
    free(req);
    free(b64);
  }
  free(junk);
  char *id = upload(&s, VIDEO, "video/mp4");
  if (!id) {
    stop_server(&s);
    return;
  }
  const char *turn1[] = {Q1};
  char *b = chat_body(id, turn1, 1, NULL, 0);

  /* queue full: one runs, one waits, the rest get 503 with Retry-After */
  {
    enum { N = 4 };
    CURLM *mh = curl_multi_init();
    CURL *cs[N];
    resp rs[N];
    struct curl_slist *hs[N];
    char url[256];
    snprintf(url, sizeof url, "%s/api/chat", s.base);
    for (int i = 0; i < N; i++) {
      cs[i] = make_req("POST", url, "application/json", b, strlen(b), &rs[i], &hs[i], 60);
      curl_multi_add_handle(mh, cs[i]);
    }
    double t0 = time(NULL);
    int running = 1;
    while (running && time(NULL) - t0 < 60) {
      curl_multi_perform(mh, &running);
      if (running) curl_multi_poll(mh, NULL, 0, 100, NULL);
    }
    int ok = 0, busy = 0, retry = 0;
    for (int i = 0; i < N; i++) {
      long st = 0;
      curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &st);
      if (st == 200) ok++;
      if (st == 503) busy++, retry += rs[i].retry_after[0] != 0 && strstr(rs[i].body, "\"error\"") != NULL;
      free(rs[i].body);
      curl_multi_remove_handle(mh, cs[i]);
      curl_easy_cleanup(cs[i]);
      curl_slist_free_all(hs[i]);
    }
    curl_multi_cleanup(mh);
    CHECK(ok >= 1 && busy >= 1 && retry == busy, "queue full: %d ok, %d busy (%d with Retry-After)", ok, busy, retry);
  }

  /* a client that hangs up mid-stream stops the generation (40 pieces at 150 ms
   * would take 6 s), and the server goes on answering */
  {
    char *sb = chat_body(id, turn1, 1, NULL, 1);
    resp rr;
    struct curl_slist *h;
    char url[256];
    snprintf(url, sizeof url, "%s/api/chat", s.base);
    CURL *c = make_req("POST", url, "application/json", sb, strlen(sb), &rr, &h, 60);
    rr.abort_after_token = 1;
    double t0 = mono_s();
    CURLcode rc = curl_easy_perform(c);
    CHECK(rc == CURLE_WRITE_ERROR, "hung up mid-stream (%d)", (int)rc);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    free(rr.body);
    free(sb);
    int idle = 0;
    while (mono_s() - t0 < 3.0 && !idle) {
      if (http(&s, "GET", "/api/health", NULL, NULL, 0, &r) == 200 && strstr(r.body, "\"waiting\":0") &&
          strstr(r.body, "\"busy\":false"))
        idle = 1;
      free(r.body);
      if (!idle) usleep(100000);
    }
    CHECK(idle, "the generation stopped %.1f s after the client left", mono_s() - t0);
    CHECK(post_json(&s, "/api/chat", b, &r) == 200 && strstr(r.body, "\"answer\""), "answers after a hang-up: %ld", r.status);
    free(r.body);
  }
  free(b);
  free(id);
  CHECK(stop_server(&s) == 0, "clean exit on SIGTERM");
  CHECK(dir_empty(s.tmp), "uploads removed");
}

/* ---- deployment: --api-key, --cors, /health, the fair queue, the --verbose access log ---- */

/* A bodiless request with up to two more header lines */
static long http_with(const server *s, const char *method, const char *path, const char *h1,
                      const char *h2, resp *r) {
  char url[512];
  snprintf(url, sizeof url, "%s%s", s->base, path);
  struct curl_slist *h;
  CURL *c = make_req(method, url, NULL, NULL, 0, r, &h, 30);
  if (h1) h = curl_slist_append(h, h1);
  if (h2) h = curl_slist_append(h, h2);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (strcmp(method, "GET") != 0) curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  else
    r->status = -1;
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  return r->status;
}

static void test_access(void) {
  server s;
  char log[512];
  snprintf(log, sizeof log, "%s/serve-access.log", tu_tmpdir());
  const char *extra[] = {
      "--api-key", "k-123",        "--cors", "https://app.example, https://two.example",
      "--verbose", "--beams",      "0",      "--max-new-tokens",
      "2",         "--queue-size", "8",      NULL};
  g_server_log = log;
  int started = start_server(&s, extra, "300"); /* every job and piece waits 300 ms */
  g_server_log = NULL;
  if (!CHECK(started == 0, "start the server with a key")) return;
  resp r;

  /* the key: needed everywhere but the page's files */
  CHECK(http(&s, "GET", "/health", NULL, NULL, 0, &r) == 401 &&
            strcasestr(r.headers, "WWW-Authenticate: Bearer") &&
            strstr(r.body, "Authorization: Bearer"),
        "no key: 401 %s", r.body);
  free(r.body);
  CHECK(http_with(&s, "GET", "/v1/models", "Authorization: Bearer wrong", NULL, &r) == 401,
        "wrong key");
  char *code = json_str(r.body, "error.code");
  CHECK(streq(code, "invalid_api_key"), "OpenAI's code for a wrong key: %s", r.body);
  free(code);
  free(r.body);
  CHECK(http(&s, "GET", "/", NULL, NULL, 0, &r) == 200 && strstr(r.body, "<html"),
        "the page needs no key");
  free(r.body);
  CHECK(http_with(&s, "GET", "/health", "Authorization: Bearer k-123", NULL, &r) == 200 &&
            strstr(r.body, "\"status\":\"ok\""),
        "/health with the key: %s", r.body);
  free(r.body);
  CHECK(http_with(&s, "GET", "/api/health", "authorization: bearer k-123", NULL, &r) == 200,
        "/api/health too");
  free(r.body);

  /* CORS: a preflight needs no key; listed origins get the headers, others none */
  CHECK(http_with(&s, "OPTIONS", "/v1/chat/completions", "Origin: https://two.example",
                  "Access-Control-Request-Headers: authorization, content-type, x-stainless-os",
                  &r) == 204 &&
            strstr(r.headers, "Access-Control-Allow-Origin: https://two.example") &&
            strcasestr(r.headers, "Access-Control-Allow-Methods: GET, POST") &&
            strstr(r.headers, "authorization, content-type, x-stainless-os"),
        "preflight: %ld %s", r.status, r.headers);
  free(r.body);
  CHECK(http_with(&s, "GET", "/v1/models", "Authorization: Bearer k-123",
                  "Origin: https://app.example", &r) == 200 &&
            strstr(r.headers, "Access-Control-Allow-Origin: https://app.example") &&
            strstr(r.headers, "Vary: Origin"),
        "allowed origin: %s", r.headers);
  free(r.body);
  CHECK(http_with(&s, "GET", "/v1/models", "Authorization: Bearer k-123",
                  "Origin: https://evil.example", &r) == 200 &&
            !strcasestr(r.headers, "Access-Control-Allow-Origin"),
        "other origins get no CORS headers: %s", r.headers);
  free(r.body);

  /* the fair queue: client A's three requests are queued before client B's one; B is
   * answered after A's first (already running), not after all three */
  g_request_header = "Authorization: Bearer k-123";
  char *id = upload(&s, VIDEO, "video/mp4");
  if (id) {
    const char *turn1[] = {Q1};
    char *b = chat_body(id, turn1, 1, NULL, 0);
    enum { N = 4 };
    CURLM *mh = curl_multi_init();
    CURL *cs[N];
    resp rs[N];
    struct curl_slist *hs[N];
    char url[256];
    snprintf(url, sizeof url, "%s/api/chat", s.base);
    int order[N], n_done = 0, running = 1;
    double t0 = mono_s();
    for (int i = 0; i < N; i++) {
      cs[i] = make_req("POST", url, "application/json", b, strlen(b), &rs[i], &hs[i], 60);
      if (i == N - 1) curl_easy_setopt(cs[i], CURLOPT_INTERFACE, "host!127.0.0.2"); /* client B */
    }
    for (int i = 0; i < N; i++) {
      curl_multi_add_handle(mh, cs[i]);
      /* A's requests reach the queue before B's */
      double until = mono_s() + 0.15;
      while (mono_s() < until) {
        curl_multi_perform(mh, &running);
        curl_multi_poll(mh, NULL, 0, 20, NULL);
      }
    }
    while (n_done < N && mono_s() - t0 < 60) {
      curl_multi_perform(mh, &running);
      CURLMsg *m;
      int left;
      while ((m = curl_multi_info_read(mh, &left)))
        if (m->msg == CURLMSG_DONE)
          for (int i = 0; i < N; i++)
            if (cs[i] == m->easy_handle) order[n_done++] = i;
      if (n_done < N) curl_multi_poll(mh, NULL, 0, 50, NULL);
    }
    int ok = 0, b_at = -1;
    for (int i = 0; i < N; i++) {
      long st = 0;
      curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &st);
      ok += st == 200;
      free(rs[i].body);
      curl_multi_remove_handle(mh, cs[i]);
      curl_easy_cleanup(cs[i]);
      curl_slist_free_all(hs[i]);
    }
    for (int k = 0; k < n_done; k++)
      if (order[k] == N - 1) b_at = k;
    curl_multi_cleanup(mh);
    free(b);
    CHECK(ok == N && b_at == 1,
          "%d of %d answered; client B's request finished %d-th (want 2nd, after A's first)", ok, N,
          b_at + 1);
  }
  g_request_header = NULL;
  free(id);
  CHECK(stop_server(&s) == 0, "clean exit");

  /* the access log: client, method and path, status, bytes, time */
  size_t n = 0;
  char *text = read_file(log, &n);
  if (CHECK(text != NULL, "the log %s", log)) {
    text[n] = 0;
    CHECK(strstr(text, "vblip serve: 127.0.0.1 \"GET /health\" 401 ") != NULL, "a 401 logged:\n%s",
          text);
    CHECK(strstr(text, "\"OPTIONS /v1/chat/completions\" 204 0 B ") != NULL,
          "the preflight logged");
    CHECK(strstr(text, "vblip serve: 127.0.0.2 \"POST /api/chat\" 200 ") != NULL,
          "client B's chat logged");
    const char *up = strstr(text, "\"POST /api/videos\" 201 ");
    unsigned long long bytes = 0;
    double ms = 0;
    CHECK(up &&
              sscanf(up + strlen("\"POST /api/videos\" 201 "), "%llu B %lf ms", &bytes, &ms) == 2 &&
              bytes > 100 && ms >= 300,
          "the upload's bytes (%llu) and time (%.1f ms, >= the 300 ms delay)", bytes, ms);
    free(text);
  }
}

/* ---- in-context learning: several videos in one conversation (interleaved layout) ---- */

/* A copy of the OPT fixture model whose config names an EILEV checkpoint, so the
 * server picks the interleaved layout by itself. */
static const char *eilev_model(void) {
  static char dir[512];
  snprintf(dir, sizeof dir, "%s/eilev-opt-tiny", tu_tmpdir());
  mkdir(dir, 0755);
  const char *files[] = {"model.safetensors",
                         "preprocessor_config.json",
                         "vocab.json",
                         "merges.txt",
                         "tokenizer.json",
                         "tokenizer_config.json",
                         "special_tokens_map.json"};
  char a[1024], b[1024];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    snprintf(a, sizeof a, "%s/" MODEL "/%s", getcwd(b, sizeof b), files[i]);
    snprintf(b, sizeof b, "%s/%s", dir, files[i]);
    if (symlink(a, b) != 0 && errno != EEXIST) CHECK(0, "symlink %s", b);
  }
  size_t n;
  char *text = read_file(MODEL "/config.json", &n);
  text[n] = 0;
  cJSON *cfg = cJSON_Parse(text);
  free(text);
  cJSON_ReplaceItemInObject(cfg, "_name_or_path", cJSON_CreateString("kpyu/eilev-blip2-opt-2.7b"));
  char *out = cJSON_Print(cfg);
  snprintf(b, sizeof b, "%s/config.json", dir);
  FILE *f = fopen(b, "w");
  if (f) fputs(out, f), fclose(f);
  free(out);
  cJSON_Delete(cfg);
  return dir;
}

/* The library's view of the same input, what the server must reproduce: the model loaded
 * as the server runs it, and the input ("file:PATH" items are videos with the frames the
 * server takes for an EILEV model, the first 8 s; the rest text), encoded. */
static vblip_model *library_input(const char *model, const char *const *items, int n,
                                  vblip_input **in) {
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.n_threads = 2;
  vblip_model *m = vblip_model_load(model, &lo);
  *in = vblip_input_new();
  if (!CHECK(m != NULL, "load %s: %s", model, vblip_last_error())) return NULL;
  vblip_sampling eilev;
  vblip_sampling_eilev(&eilev);
  for (int i = 0; i < n; i++)
    if (strncmp(items[i], "file:", 5) == 0)
      vblip_input_add_video_file(*in, items[i] + 5, &eilev);
    else
      vblip_input_add_text(*in, items[i]);
  if (!CHECK(vblip_input_encode(m, *in) == 0, "library input: %s", vblip_last_error())) {
    vblip_model_free(m);
    return NULL;
  }
  return m;
}

static char *library_answer(const char *model, const char *const *items, int n, int beams,
                            int max_new) {
  vblip_input *in;
  vblip_model *m = library_input(model, items, n, &in);
  vblip_gen_params p;
  vblip_gen_params_default(&p);
  p.num_beams = beams;
  p.max_new_tokens = max_new;
  vblip_answer a;
  char *text = NULL;
  if (m && CHECK(vblip_generate_input(m, in, &p, NULL, NULL, &a) == 0, "library: %s",
                 vblip_last_error())) {
    text = vblip_postprocess(a.text);
    vblip_answer_free(&a);
  }
  vblip_input_free(in);
  vblip_model_free(m);
  return text;
}

static void library_scores(const char *model, const char *const *items, int n,
                           const char *const *cands, int nc, double *out) {
  vblip_input *in;
  vblip_model *m = library_input(model, items, n, &in);
  vblip_score sc[8];
  if (m && CHECK(vblip_score_candidates(m, in, cands, (size_t)nc, sc) == 0, "library scores: %s",
                 vblip_last_error()))
    for (int i = 0; i < nc; i++) {
      out[i] = sc[i].mean_log_likelihood;
      vblip_score_free(&sc[i]);
    }
  vblip_input_free(in);
  vblip_model_free(m);
}

static void test_interleaved(void) {
  const char *model = eilev_model();
  const char *extra[] = {"--model", model, NULL};
  server s;
  if (!CHECK(start_server(&s, extra, NULL) == 0, "interleaved server start")) return;
  resp r;
  http(&s, "GET", "/api/health", NULL, NULL, 0, &r);
  char *layout = json_str(r.body, "layout");
  CHECK(streq(layout, "interleaved"), "health layout %s", layout);
  free(layout);
  free(r.body);
  char *v1 = upload(&s, VIDEO, "video/mp4"), *v2 = upload(&s, IMAGE, "image/png");
  if (v1 && v2) {
    /* one video in front, then a message with text, an image and a question */
    char req[2048];
    snprintf(req, sizeof req,
             "{\"video_ids\":[\"%s\"],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
             "\"text\",\"text\":\"A "
             "kitchen.\"},{\"type\":\"video\",\"video_id\":\"%s\"},{\"type\":\"text\",\"text\":"
             "\"What is it?\"}]}],"
             "\"settings\":{\"num_beams\":0,\"max_new_tokens\":8}}",
             v1, v2);
    CHECK(post_json(&s, "/api/chat", req, &r) == 200, "interleaved chat: %s", r.body);
    char *answer = json_str(r.body, "answer"), *prompt = json_str(r.body, "prompt");
    char *id0 = json_str(r.body, "video_ids.0"), *id1 = json_str(r.body, "video_ids.1");
    CHECK(streq(prompt, "<video> A kitchen. <video> What is it?"), "prompt '%s'", prompt);
    CHECK(streq(id0, v1) && streq(id1, v2), "video_ids in order");
    const char *items[] = {"file:" VIDEO, "A kitchen.", "file:" IMAGE, "What is it?"};
    char *want = library_answer(model, items, 4, 0, 8);
    CHECK(streq(answer, want), "server '%s' == library '%s'", answer, want);
    free(r.body);
    /* the same conversation through the OpenAI endpoint, the image as a data: URL, and
     * an earlier answer: the assistant's text joins the conversation where it stands */
    size_t n;
    char *png = read_file(IMAGE, &n), *b64 = base64((unsigned char *)png, n);
    size_t cap = strlen(b64) + 2048;
    char *oa = malloc(cap);
    snprintf(oa, cap,
             "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"video_url\",\"video_url\":"
             "{\"url\":\"%s\"}},"
             "{\"type\":\"text\",\"text\":\"What is "
             "it?\"}]},{\"role\":\"assistant\",\"content\":\"A kitchen.\"},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
             "\"data:image/png;base64,%s\"}},"
             "{\"type\":\"text\",\"text\":\"What is it?\"}]}],\"num_beams\":0,\"max_tokens\":8}",
             v1, b64);
    CHECK(post_json(&s, "/v1/chat/completions", oa, &r) == 200, "openai interleaved: %s", r.body);
    char *oc = json_str(r.body, "choices.0.message.content"),
         *op = json_str(r.body, "vblip.prompt");
    CHECK(streq(op, "<video> What is it? A kitchen. <video> What is it?"), "openai prompt '%s'",
          op);
    const char *items2[] = {"file:" VIDEO, "What is it?", "A kitchen.", "file:" IMAGE,
                            "What is it?"};
    char *want2 = library_answer(model, items2, 5, 0, 8);
    CHECK(streq(oc, want2), "openai '%s' == library '%s'", oc, want2);
    free(r.body);
    /* scoring candidates after the same conversation: the library's scores, best first */
    snprintf(req, sizeof req,
             "{\"video_ids\":[\"%s\"],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
             "\"text\",\"text\":\"A "
             "kitchen.\"},{\"type\":\"video\",\"video_id\":\"%s\"},{\"type\":\"text\",\"text\":"
             "\"What is it?\"}]}],"
             "\"candidates\":[\"a dog\",\"kitchen\",\"walking in the snow\"]}",
             v1, v2);
    CHECK(post_json(&s, "/api/score", req, &r) == 200, "score: %s", r.body);
    cJSON *sj = cJSON_Parse(r.body), *sa = cJSON_GetObjectItem(sj, "scores");
    const char *cands[] = {"a dog", "kitchen", "walking in the snow"};
    double lib[3];
    library_scores(model, items, 4, cands, 3, lib);
    CHECK(cJSON_GetArraySize(sa) == 3, "three scores");
    for (int i = 0; i < cJSON_GetArraySize(sa); i++) {
      cJSON *e = cJSON_GetArrayItem(sa, i);
      int k = cJSON_GetObjectItem(e, "index")->valueint;
      double ll = cJSON_GetObjectItem(e, "mean_log_likelihood")->valuedouble;
      CHECK(k >= 0 && k < 3 &&
                streq(cJSON_GetStringValue(cJSON_GetObjectItem(e, "candidate")), cands[k]) &&
                fabs(ll - lib[k]) <= 1e-9 * fabs(lib[k]),
            "score %d: %g vs library %g", i, ll, k >= 0 && k < 3 ? lib[k] : 0.0);
      if (i > 0)
        CHECK(ll <= cJSON_GetObjectItem(cJSON_GetArrayItem(sa, i - 1), "mean_log_likelihood")
                        ->valuedouble,
              "best first");
    }
    cJSON_Delete(sj);
    free(r.body);
    CHECK(post_json(&s, "/api/score",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"candidates\":[\" \"]}",
                    &r) == 400,
          "blank candidate: %s", r.body);
    free(r.body);
    CHECK(post_json(&s, "/api/score",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"candidates\":[]}",
                    &r) == 400,
          "no candidates: %s", r.body);
    free(r.body);
    /* no room left for an answer in the model's positions (512 in the tiny OPT) */
    vs_buf lng = {0};
    vs_buf_puts(&lng, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (int i = 0; i < 600; i++) vs_buf_puts(&lng, "word ");
    vs_buf_puts(&lng, "\"}],\"settings\":{\"num_beams\":0}}");
    CHECK(post_json(&s, "/api/chat", lng.data, &r) == 400 && strstr(r.body, "positions"),
          "too long: %s", r.body);
    free(r.body);
    vs_buf_free(&lng);
    /* too many videos in one conversation */
    vs_buf big = {0};
    vs_buf_puts(&big, "{\"video_ids\":[");
    for (int i = 0; i < 33; i++) {
      vs_buf_puts(&big, i ? ",\"" : "\"");
      vs_buf_puts(&big, v1);
      vs_buf_puts(&big, "\"");
    }
    vs_buf_puts(&big, "],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    CHECK(post_json(&s, "/api/chat", big.data, &r) == 400 && strstr(r.body, "videos"),
          "33 videos: %s", r.body);
    free(r.body);
    vs_buf_free(&big);
    CHECK(post_json(&s, "/api/chat",
                    "{\"video_ids\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                    &r) == 400,
          "video_ids must be an array: %s", r.body);
    free(r.body);
    free(answer), free(prompt), free(id0), free(id1), free(want), free(png), free(b64), free(oa),
        free(oc), free(op), free(want2);
  }
  free(v1);
  free(v2);
  CHECK(stop_server(&s) == 0, "interleaved server exit status");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  test_main_server();
  test_limits();
  test_access();
  test_interleaved();
  curl_global_cleanup();
  return tu_finish();
}
