/* Hostile HTTP clients against vblip serve (issue 21), with small limits set by flags so
 * that every case is bounded to a few seconds:
 *  - slowloris: more trickling sockets than the per-client and total limits; health and
 *    the page still answer within 1 s; a trickled head or body is cut off at its deadline;
 *  - a client at its connection limit with busy connections is refused (429);
 *  - JSON bodies over --max-json-kb: 413 from Content-Length before any byte of the body,
 *    and mid-way through a chunked body;
 *  - client errors are 4xx in the right shape on /api and /v1 (position limit, invalid
 *    UTF-8, trailing garbage, malformed multipart, unreadable video, ...);
 *  - request heads libmicrohttpd would answer with HTML (505, 431, 414, bad
 *    Content-Length) come back as JSON;
 *  - a request path with escape sequences cannot forge a log line.
 * Every check asserts the HTTP status and the message. The request head parser is also
 * tested directly. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve_child.h"
#include "server/http_head.h"
#include "testutil.h"

#define MODEL "tests/fixtures/models/videoblip-opt-tiny"
#define VIDEO "tests/fixtures/media/video1_h264_320x240_30fps_12s.mp4"
#define MAX_CLIENT 4
#define MAX_ALL 8

static int g_port;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the request head parser ---- */

static void test_head_parser(void) {
  vs_http_limits lim = {.max_head = 256, .max_target = 64, .max_fields = 4};
  static const struct {
    const char *head;
    int want; /* VS_HEAD_OK, VS_HEAD_INCOMPLETE or a status */
    const char *msg;
  } cases[] = {
      {"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n", VS_HEAD_OK, ""},
      {"GET / HTTP/1.0\r\n\r\n", VS_HEAD_OK, ""},
      {"GET / HTTP/1.1\nHost: x\n\n", VS_HEAD_OK, ""},
      {"GET /api/he", VS_HEAD_INCOMPLETE, ""},
      {"GET / HTTP/1.1\r\nHost: x\r\n", VS_HEAD_INCOMPLETE, ""},
      {"G\x01T / HTTP/1.1\r\n", 400, "malformed request line"},
      {"GET /a\x1b HTTP/1.1\r\n\r\n", 400, "malformed request line"},
      {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0 is not supported"},
      {"GET / HTTP/0.9\r\n\r\n", 505, "HTTP/0.9 is not supported"},
      {"GET / HTTP/1.1 extra\r\n\r\n", 400, "malformed request line"},
      {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "must be a path"},
      {"GET /0123456789012345678901234567890123456789012345678901234567890123456789 HTTP/1.1\r\n",
       414, "target is longer than 64"},
      {"GET / HTTP/1.1\r\n\r\n", 400, "needs a Host field"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "several Host fields"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, "malformed Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "malformed Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400,
       "malformed Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
       "several different Content-Length"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
       "'gzip' is not supported"},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400,
       "both Content-Length and Transfer-Encoding"},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "folded"},
      {"GET / HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", 400, "malformed header field"},
      {"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400, "control character"},
      {"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431,
       "more than 4 header fields"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    vs_http_head h;
    char msg[256];
    int st = vs_http_head_parse(cases[i].head, strlen(cases[i].head), &lim, &h, msg, sizeof msg);
    CHECK(st == cases[i].want && strstr(msg, cases[i].msg), "head %zu (%.30s): %d '%s'", i,
          cases[i].head, st, msg);
  }
  /* a head that never ends is refused once it passes the limit, not waited for */
  char big[400];
  snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX: %0300d", 0);
  vs_http_head h;
  char msg[256];
  CHECK(vs_http_head_parse(big, strlen(big), &lim, &h, msg, sizeof msg) == 431, "endless head: %s",
        msg);
  /* what the guard hands over: the length and the body framing */
  const char *post = "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{\"a\":";
  CHECK(vs_http_head_parse(post, strlen(post), &lim, &h, msg, sizeof msg) == VS_HEAD_OK &&
            h.has_length && h.content_length == 12 && h.head_len == strlen(post) - 5 &&
            h.target_len == 9 && memcmp(h.target, "/api/chat", 9) == 0,
        "post head: len %zu cl %llu", h.head_len, (unsigned long long)h.content_length);
}

/* ---- the server ---- */

typedef tu_server server;

static int start_server(server *s) {
  char client[16], all[16], log[512];
  snprintf(client, sizeof client, "%d", MAX_CLIENT);
  snprintf(all, sizeof all, "%d", MAX_ALL);
  snprintf(log, sizeof log, "%s/hostile-serve-stderr.log", tu_tmpdir());
  const char *extra[] = {
      "--verbose", "--max-client-connections", client, "--max-connections", all, "--header-timeout",
      "1",         "--body-timeout",           "1",    "--max-json-kb",     "8", "--max-upload-mb",
      "1",         "--max-new-tokens",         "3",    "--beams",           "1", NULL};
  /* chats last 150 ms, long enough to hold connections */
  if (tu_server_start(s, MODEL, extra, "150", log)) return -1;
  g_port = s->port;
  return 0;
}

static int stop_server(server *s) {
  return tu_server_stop(s);
}

/* A connection from src (a 127.0.0.0/8 address) to the server, or -1. */
static int dial(const char *src) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  inet_pton(AF_INET, src, &a.sin_addr);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

/* Reads until the server closes, up to timeout_s; returns the bytes (NUL-terminated). */
static char *read_reply(int fd, double timeout_s, int *closed) {
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  double until = now_s() + timeout_s;
  *closed = 0;
  while (now_s() < until && len + 1 < cap) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, (int)((until - now_s()) * 1000) + 1) <= 0) break;
    ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
    if (n <= 0) {
      *closed = 1;
      break;
    }
    len += (size_t)n;
  }
  buf[len] = 0;
  return buf;
}

typedef struct {
  int status;
  char *raw, *body;
  cJSON *json;
} reply;

static void reply_free(reply *r) {
  free(r->raw);
  cJSON_Delete(r->json);
  memset(r, 0, sizeof *r);
}

static reply parse_reply(char *raw) {
  reply r = {.raw = raw};
  if (strncmp(raw, "HTTP/1.1 ", 9) == 0) r.status = atoi(raw + 9);
  char *b = strstr(raw, "\r\n\r\n");
  r.body = b ? b + 4 : raw + strlen(raw);
  r.json = cJSON_Parse(r.body);
  return r;
}

/* One request on a fresh connection from 127.0.0.1; the whole reply. */
static reply request(const void *data, size_t n) {
  int fd = dial("127.0.0.1"), closed;
  if (fd < 0) return (reply){.raw = calloc(1, 1), .body = ""};
  send_all(fd, data, n);
  char *raw = read_reply(fd, 30, &closed);
  close(fd);
  return parse_reply(raw);
}

static reply post(const char *path, const char *body, size_t n) {
  size_t cap = n + 512;
  char *req = malloc(cap);
  int h = snprintf(req, cap,
                   "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nContent-Length: %zu\r\n\r\n",
                   path, n);
  memcpy(req + h, body, n);
  reply r = request(req, (size_t)h + n);
  free(req);
  return r;
}

static reply get(const char *path) {
  char req[2048];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  return request(req, (size_t)n);
}

/* The error message of the reply in the shape its path calls for: {"error": msg} under
 * /api, OpenAI's {"error": {"message", "type", "param", "code"}} under /v1 (param and code
 * each a string or null). NULL when the shape is wrong. */
static const char *error_of(const reply *r, int openai) {
  const cJSON *e = cJSON_GetObjectItem(r->json, "error");
  if (!openai) return cJSON_GetStringValue(e);
  const cJSON *code = cJSON_GetObjectItem(e, "code"), *type = cJSON_GetObjectItem(e, "type");
  const cJSON *param = cJSON_GetObjectItem(e, "param");
  if (!(cJSON_IsString(code) || cJSON_IsNull(code)) ||
      !(cJSON_IsString(param) || cJSON_IsNull(param)) || !cJSON_IsString(type))
    return NULL;
  const char *want = r->status >= 500 ? "server_error" : "invalid_request_error";
  if (strcmp(type->valuestring, want) != 0) return NULL;
  return cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
}

#define EXPECT(r, st, openai, needle, what)                                                        \
  do {                                                                                             \
    const char *m_ = error_of(&(r), openai);                                                       \
    CHECK((r).status == (st) && m_ && strstr(m_, needle) &&                                        \
              strstr((r).raw, "Content-Type: application/json"),                                   \
          "%s: status %d, expected %d with \"%s\": %.300s", what, (r).status, st, needle,          \
          (r).raw);                                                                                \
  } while (0)

/* ---- slow clients ---- */

/* Health (and the page) within 1 s while trickling sockets hold more than every limit. */
static void test_slowloris(void) {
  int socks[24], n = 0;
  for (int i = 0; i < 12; i++) /* the health checker's own address */
    if ((socks[n] = dial("127.0.0.1")) >= 0) send_all(socks[n++], "G", 1);
  for (int i = 0; i < 12; i++) { /* many addresses: the total limit */
    char src[32];
    snprintf(src, sizeof src, "127.0.0.%d", 10 + i);
    if ((socks[n] = dial(src)) >= 0) send_all(socks[n++], "G", 1);
  }
  CHECK(n == 24, "only %d slow sockets connected", n);
  usleep(100000);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < n; i++)
      send_all(socks[i], "E", 1); /* keep trickling */
    double t0 = now_s();
    reply r = get(round == 2 ? "/" : "/api/health");
    double dt = now_s() - t0;
    CHECK(r.status == 200 && dt < 1.0, "round %d: status %d after %.3f s under slowloris", round,
          r.status, dt);
    if (round < 2)
      CHECK(cJSON_GetObjectItem(r.json, "limits") != NULL, "health body: %.200s", r.body);
    reply_free(&r);
    usleep(150000);
  }
  /* every trickling socket is answered (503 to make room, or 408 at the deadline) and
   * closed within the header deadline, however it trickles */
  int answered = 0, made_room = 0, timed_out = 0;
  double until = now_s() + 2.5;
  for (int i = 0; i < n; i++) {
    int closed;
    for (double t = now_s(); t < until; t = now_s()) {
      send_all(socks[i], "T", 1);
      char *raw = read_reply(socks[i], 0.2, &closed);
      reply r = parse_reply(raw);
      if (r.status == 503 && error_of(&r, 0) && strstr(error_of(&r, 0), "make room")) made_room++;
      if (r.status == 408 && error_of(&r, 0) &&
          strstr(error_of(&r, 0), "request head did not arrive within 1 s"))
        timed_out++;
      reply_free(&r);
      if (closed) break;
    }
    answered += closed;
    close(socks[i]);
  }
  CHECK(answered == n, "%d of %d slow sockets were closed by the deadline", answered, n);
  CHECK(made_room > 0 && timed_out > 0 && made_room + timed_out == n,
        "%d made room, %d timed out of %d", made_room, timed_out, n);

  /* a complete head, then a trickled body: 408 at the body deadline */
  int fd = dial("127.0.0.2");
  const char *head = "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
  send_all(fd, head, strlen(head));
  double t0 = now_s();
  int closed = 0;
  reply r = {0};
  while (!closed && now_s() - t0 < 3) {
    send_all(fd, " ", 1);
    reply_free(&r);
    r = parse_reply(read_reply(fd, 0.2, &closed));
    if (r.status) break;
  }
  CHECK(r.status == 408 && error_of(&r, 0) &&
            strstr(error_of(&r, 0), "body did not arrive within 1 s") && now_s() - t0 < 2.5,
        "trickled body: %d after %.2f s: %.200s", r.status, now_s() - t0, r.raw ? r.raw : "");
  reply_free(&r);
  close(fd);
}

/* A client whose connections are all busy (answers streaming) gets 429 for one more,
 * and a quick request from elsewhere still gets in. */
static void test_client_limit(const char *video_id) {
  int busy[MAX_CLIENT];
  char body[512], req[1024];
  int blen = snprintf(
      body, sizeof body,
      "{\"video_id\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
      "\"settings\":{\"max_new_tokens\":3}}",
      video_id);
  int rlen =
      snprintf(req, sizeof req,
               "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", blen, body);
  for (int i = 0; i < MAX_CLIENT; i++) {
    busy[i] = dial("127.0.0.3");
    send_all(busy[i], req, (size_t)rlen);
  }
  usleep(300000); /* heads read and handed over: each connection is answering its stream */
  int fd = dial("127.0.0.3"), closed;
  reply r = parse_reply(read_reply(fd, 3, &closed));
  EXPECT(r, 429, 0, "too many connections from your address (the limit is 4)",
         "client over its limit");
  reply_free(&r);
  close(fd);
  r = get("/api/health");
  CHECK(r.status == 200, "health from another address while one is at its limit: %d", r.status);
  reply_free(&r);
  for (int i = 0; i < MAX_CLIENT; i++)
    close(busy[i]); /* hanging up cancels the chats */
}

/* ---- request heads the library would answer in HTML ---- */

static void test_library_errors(void) {
  static const struct {
    const char *head;
    int status, openai;
    const char *msg;
  } cases[] = {
      {"GET /api/health HTTP/2.0\r\nHost: x\r\n\r\n", 505, 0, "HTTP/2.0 is not supported"},
      {"GET /v1/models HTTP/3.0\r\nHost: x\r\n\r\n", 505, 1, "HTTP/3.0 is not supported"},
      {"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n", 400, 0,
       "malformed Content-Length"},
      {"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, 1,
       "malformed Content-Length"},
      {"GET /api/health HTTP/1.1\r\n\r\n", 400, 0, "needs a Host field"},
      {"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, 0,
       "is not supported"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    reply r = request(cases[i].head, strlen(cases[i].head));
    EXPECT(r, cases[i].status, cases[i].openai, cases[i].msg, cases[i].head);
    reply_free(&r);
  }
  /* 414 and 431: a target and a head over the limits */
  size_t big = 40000;
  char *req = malloc(big + 256);
  int n = snprintf(req, big + 256, "GET /api/");
  memset(req + n, 'a', 10000);
  n += 10000;
  n += snprintf(req + n, 256, " HTTP/1.1\r\nHost: x\r\n\r\n");
  reply r = request(req, (size_t)n);
  EXPECT(r, 414, 0, "the request target is longer than 8192 bytes", "long target");
  reply_free(&r);
  n = snprintf(req, big + 256, "GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Junk: ");
  memset(req + n, 'b', 20000);
  n += 20000;
  n += snprintf(req + n, 256, "\r\n\r\n");
  r = request(req, (size_t)n);
  EXPECT(r, 431, 1, "the request head is larger than 16384 bytes", "large head");
  reply_free(&r);
  free(req);
}

/* ---- JSON bodies ---- */

static void test_json_limits(const char *video_id) {
  /* Content-Length over the limit: answered before the body is sent (no 100 Continue) */
  const char *head = "POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: "
                     "100-continue\r\nContent-Length: 100000000\r\n\r\n";
  reply r = request(head, strlen(head));
  EXPECT(r, 413, 0, "larger than the limit of 8 KiB for JSON requests",
         "Content-Length over the JSON limit");
  CHECK(!strstr(r.raw, "100 Continue"), "the body was asked for: %.100s", r.raw);
  reply_free(&r);
  head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n";
  r = request(head, strlen(head));
  EXPECT(r, 413, 1, "larger than the limit of 8 KiB", "Content-Length over the JSON limit on /v1");
  reply_free(&r);

  /* a chunked body: refused as soon as it passes the limit, the rest never read */
  for (int openai = 0; openai < 2; openai++) {
    int fd = dial("127.0.0.1"), closed = 0;
    char h[256];
    snprintf(h, sizeof h, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
             openai ? "/v1/chat/completions" : "/api/chat");
    send_all(fd, h, strlen(h));
    char chunk[4200];
    int cl = snprintf(chunk, sizeof chunk, "1000\r\n");
    memset(chunk + cl, ' ', 4096);
    memcpy(chunk + cl + 4096, "\r\n", 2);
    size_t sent = 0;
    r = (reply){0};
    for (int i = 0; i < 64 && !r.status; i++) { /* up to 256 KiB, but the answer comes at 8 */
      send_all(fd, chunk, (size_t)cl + 4098);
      sent += 4096;
      reply_free(&r);
      r = parse_reply(read_reply(fd, 0.05, &closed));
    }
    EXPECT(r, 413, openai, "larger than the limit of 8 KiB", "chunked body over the limit");
    CHECK(sent <= 16 * 1024, "the answer came after %zu bytes of an 8 KiB limit", sent);
    reply_free(&r);
    close(fd);
  }

  /* trailing garbage, invalid UTF-8, a prompt over the positions: 400, both shapes */
  char body[8192];
  for (int openai = 0; openai < 2; openai++) {
    const char *path = openai ? "/v1/chat/completions" : "/api/chat";
    static const struct {
      const char *content, *after, *msg;
    } bad[] = {{"hi", " garbage", "has more after its JSON value"}, /* then more */
               {"bad \xff", "", "not valid UTF-8"}};
    int n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      n = snprintf(body, sizeof body,
                   "{\"video_id\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}%s",
                   video_id, bad[i].content, bad[i].after);
      r = post(path, body, (size_t)n);
      EXPECT(r, 400, openai, bad[i].msg, bad[i].msg);
      reply_free(&r);
    }
    /* a repeated key: 400. Two "stop" lists of 3 overran the 4 stop strings once (each list
     * was checked alone); a reader could also take either of two values. */
    n = snprintf(body, sizeof body,
                 "{\"video_id\":\"%s\",\"stop\":[\"a\",\"b\",\"c\"],\"stop\":[\"d\",\"e\",\"f\"],"
                 "\"settings\":{\"num_beams\":1,\"num_beams\":2},"
                 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 video_id);
    r = post(path, body, (size_t)n);
    EXPECT(r, 400, openai, "the request body repeats the key", "repeated keys");
    CHECK(strstr(r.body, "'stop'") != NULL, "the repeated key named: %s", r.body);
    reply_free(&r);
    for (int stream = 0; stream < 2; stream++) {
      n = snprintf(
          body, sizeof body,
          "{\"video_id\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"",
          video_id, stream ? "true" : "false");
      for (int k = 0; k < 700; k++)
        n += snprintf(body + n, sizeof body - (size_t)n, "a ");
      n += snprintf(body + n, sizeof body - (size_t)n, "\"}]}");
      r = post(path, body, (size_t)n);
      EXPECT(r, 400, openai, "the prompt is longer than 503 tokens",
             stream ? "long prompt, streamed" : "long prompt");
      reply_free(&r);
    }
  }
}

/* ---- other client errors: 4xx in the right shape ---- */

static void test_client_errors(void) {
  reply r = get("/api/nothing-here");
  EXPECT(r, 404, 0, "no such endpoint", "unknown endpoint");
  reply_free(&r);
  r = get("/api/chat");
  EXPECT(r, 405, 0, "use POST", "GET on /api/chat");
  reply_free(&r);
  r = post("/api/chat", "[1, 2]", 6);
  EXPECT(r, 400, 0, "must be a JSON object", "not an object");
  reply_free(&r);
  r = post("/v1/chat/completions", "{\"messages\": []}", 16);
  EXPECT(r, 400, 1, "'messages' must be a non-empty array", "no messages");
  reply_free(&r);
  r = post("/api/chat",
           "{\"video_id\": \"0123456789abcdef0123456789abcdef\", \"messages\": [{\"role\": "
           "\"user\", \"content\": \"x\"}]}",
           96);
  EXPECT(r, 404, 0, "no video with id", "unknown video");
  reply_free(&r);
  /* an upload the decoder cannot read: 422, its message naming the client's file */
  const char *junk =
      "POST /api/videos HTTP/1.1\r\nHost: x\r\nX-Filename: junk.mp4\r\nContent-Length: 16\r\n\r\n"
      "0123456789abcdef";
  r = request(junk, strlen(junk));
  EXPECT(r, 422, 0, "junk.mp4", "undecodable upload");
  CHECK(!strstr(r.body, "hostile-srv-"), "the server's path leaked: %s", r.body);
  reply_free(&r);
  /* a multipart body without its boundary's framing */
  const char *mp =
      "POST /api/videos HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
      "Content-Length: 20\r\n\r\nthis is not multipart";
  r = request(mp, strlen(mp));
  CHECK(r.status == 400 && error_of(&r, 0) &&
            (strstr(error_of(&r, 0), "malformed multipart") ||
             strstr(error_of(&r, 0), "no file in the upload")),
        "malformed multipart: %d %.200s", r.status, r.body);
  reply_free(&r);
  /* an upload over --max-upload-mb 1, refused from its Content-Length */
  const char *huge = "POST /api/videos HTTP/1.1\r\nHost: x\r\nExpect: "
                     "100-continue\r\nContent-Length: 5000000\r\n\r\n";
  r = request(huge, strlen(huge));
  EXPECT(r, 413, 0, "the upload is larger than the limit of 1 MiB", "upload over the limit");
  reply_free(&r);
}

/* A request path with escape sequences and CR LF reaches the log escaped. */
static void test_log_injection(const server *s) {
  reply r = get("/api/x%1b%5b31mRED%0d%0avblip%20serve:%20FORGED");
  EXPECT(r, 404, 0, "no such endpoint", "forged path");
  reply_free(&r);
  usleep(100000);
  char *log = NULL;
  size_t n = 0;
  FILE *f = fopen(s->log, "rb");
  if (!CHECK(f != NULL, "no server log")) return;
  log = malloc(1 << 20);
  n = fread(log, 1, (1 << 20) - 1, f);
  log[n] = 0;
  fclose(f);
  CHECK(strstr(log, "GET /api/x\\x1b[31mRED\\x0d\\x0avblip serve: FORGED"),
        "escaped path not logged");
  int forged = 0, raw = 0;
  for (char *line = log; *line;) {
    char *end = strchr(line, '\n');
    if (!end) end = line + strlen(line);
    if (strncmp(line, "vblip serve: FORGED", 19) == 0) forged = 1;
    line = *end ? end + 1 : end;
  }
  for (size_t i = 0; i < n; i++)
    if (log[i] == 0x1b || log[i] == '\r') raw = 1;
  CHECK(!forged && !raw, "the log holds a forged line (%d) or raw control characters (%d)", forged,
        raw);
  free(log);
}

static char *upload_video(void) {
  FILE *f = fopen(VIDEO, "rb");
  if (!CHECK(f != NULL, "no fixture video")) return NULL;
  char *data = malloc(1 << 20);
  size_t n = fread(data, 1, 1 << 20, f);
  fclose(f);
  char *req = malloc(n + 256);
  int h = snprintf(req, 256,
                   "POST /api/videos HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "video/mp4\r\nContent-Length: %zu\r\n\r\n",
                   n);
  memcpy(req + h, data, n);
  reply r = request(req, (size_t)h + n);
  free(req);
  free(data);
  const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(r.json, "id"));
  char *out = id ? strdup(id) : NULL;
  CHECK(r.status == 201 && out, "upload: %d %.200s", r.status, r.body);
  reply_free(&r);
  return out;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_head_parser();
  server s;
  if (!CHECK(start_server(&s) == 0, "the server did not start")) return tu_finish();
  char *id = upload_video();
  test_library_errors();
  test_client_errors();
  if (id) test_json_limits(id);
  if (id) test_client_limit(id);
  test_slowloris();
  test_log_injection(&s);
  free(id);
  CHECK(stop_server(&s) == 0, "the server did not stop cleanly");
  return tu_finish();
}
