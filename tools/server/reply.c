/* HTTP answers: the headers every answer has (connection, CORS, Retry-After), bytes, JSON,
 * JSON errors (OpenAI's form under /v1/), and event streams fed by a job. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http_error.h"
#include "server/server_internal.h"

/* Queues resp with the headers every answer has; bytes: its body (streams count later) */
enum MHD_Result vs_queue_response(struct MHD_Connection *c, unsigned status,
                                  struct MHD_Response *resp, uint64_t bytes) {
  /* one request per connection: every request head passes the connection guard */
  MHD_add_response_header(resp, "Connection", "close");
  if (status == 503) MHD_add_response_header(resp, "Retry-After", "2");
  if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"vblip\"");
  if (vs_tl_req && vs_tl_req->cors[0]) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", vs_tl_req->cors);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Retry-After");
    if (strcmp(vs_tl_req->cors, "*") != 0) MHD_add_response_header(resp, "Vary", "Origin");
  }
  if (vs_tl_req) {
    vs_tl_req->status = status;
    vs_tl_req->sent = bytes;
  }
  enum MHD_Result r = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return r;
}

enum MHD_Result vs_send_bytes(struct MHD_Connection *c, unsigned status, const char *ctype,
                              const void *data, size_t len, const char *cache) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", cache ? cache : "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  return vs_queue_response(c, status, resp, len);
}

enum MHD_Result vs_send_json(struct MHD_Connection *c, unsigned status, cJSON *o) {
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!txt) return MHD_NO;
  enum MHD_Result r = vs_send_bytes(c, status, "application/json", txt, strlen(txt), NULL);
  free(txt);
  return r;
}

enum MHD_Result vs_send_error(struct MHD_Connection *c, const char *url, unsigned status,
                              const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *txt = vs_error_json(url, strlen(url), status, msg);
  if (!txt) return MHD_NO;
  enum MHD_Result r = vs_send_bytes(c, status, "application/json", txt, strlen(txt), NULL);
  free(txt);
  return r;
}

/* 503 for a job the queue refused: full (waiting jobs ahead) or the server stopping */
enum MHD_Result vs_send_not_queued(struct MHD_Connection *c, const char *url, int stopping,
                                   int waiting) {
  if (stopping) return vs_send_error(c, url, 503, "the server is shutting down");
  return vs_send_error(c, url, 503, "the server is busy: %d requests are waiting; retry later",
                       waiting);
}

/* An error naming the request field at fault (OpenAI's "param") and OpenAI's code */
enum MHD_Result vs_send_error_param(struct MHD_Connection *c, const char *url, unsigned status,
                                    const char *param, const char *code, const char *msg) {
  char *txt = vs_error_json_param(url, strlen(url), status, msg, param, code);
  if (!txt) return MHD_NO;
  enum MHD_Result r = vs_send_bytes(c, status, "application/json", txt, strlen(txt), NULL);
  free(txt);
  return r;
}

const char *vs_header(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

int vs_peer_gone(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return 0;
  struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
  if (poll(&p, 1, 0) <= 0) return 0;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

typedef struct {
  vblip_server *s;
  job *j;
  req *r; /* counts the bytes sent (the request outlives its reads) */
} stream_ctx;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream_ctx *sc = cls;
  vblip_server *s = sc->s;
  job *j = sc->j;
  ssize_t n = 0;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (j->out.len > j->out_pos) {
      size_t k = j->out.len - j->out_pos;
      if (k > max) k = max;
      memcpy(buf, j->out.data + j->out_pos, k);
      j->out_pos += k;
      n = (ssize_t)k;
      break;
    }
    if (j->done) {
      n = MHD_CONTENT_READER_END_OF_STREAM;
      break;
    }
    if (s->stopping) {
      n = MHD_CONTENT_READER_END_WITH_ERROR;
      break;
    }
    struct timespec ts;
    deadline_in(&ts, 1000);
    if (pthread_cond_timedwait(&j->cv, &s->mu, &ts) == ETIMEDOUT && j->out.len == j->out_pos &&
        !j->done) {
      /* a comment keeps proxies patient and finds clients that left */
      static const char ka[] = ": keep-alive\n\n";
      size_t k = sizeof ka - 1 < max ? sizeof ka - 1 : max;
      memcpy(buf, ka, k);
      n = (ssize_t)k;
      break;
    }
  }
  pthread_mutex_unlock(&s->mu);
  if (n > 0 && sc->r) sc->r->sent += (uint64_t)n;
  return n;
}

static void stream_free(void *cls) {
  stream_ctx *sc = cls;
  vblip_server *s = sc->s;
  pthread_mutex_lock(&s->mu);
  if (!sc->j->done) vs_job_cancel(s, sc->j); /* the client left mid-stream */
  vs_job_release(s, sc->j);
  pthread_mutex_unlock(&s->mu);
  free(sc);
}

/* A text/event-stream response that sends job j's events as they come; it takes over the
 * caller's reference to j. NULL when it cannot be made: the job is then cancelled and
 * released. */
struct MHD_Response *vs_event_stream_response(vblip_server *s, job *j, req *r) {
  stream_ctx *sc = malloc(sizeof *sc);
  struct MHD_Response *resp = sc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                     stream_reader, sc, stream_free)
                                 : NULL;
  if (!resp) {
    free(sc);
    pthread_mutex_lock(&s->mu);
    vs_job_cancel(s, j);
    vs_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return NULL;
  }
  sc->s = s;
  sc->j = j;
  sc->r = r;
  MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  return resp;
}
