/* POST /api/narrate (an upload, or ?url= where allowed) and GET /api/narrations/ID[.vtt|.srt|
 * .jsonl]: a video narrated window by window in the worker, its cues streamed as events and
 * kept for download. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "server/narrate_args.h"
#include "server/server_internal.h"

#define NARRATE_PROMPT "Question: What is the camera wearer doing? Answer:"

#define NARRATE_MAX_PROMPT 4096

/* POST /api/narrate's query parameters (narrate_args.c) */
static enum MHD_Result narrate_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  (void)kind;
  return vs_narrate_arg(cls, key, value) == 0 ? MHD_YES : MHD_NO;
}

static int url_source(const char *u) {
  static const char *const ok[] = {"http://", "https://", "rtsp://", "rtsps://"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strncasecmp(u, ok[i], strlen(ok[i])) == 0 && u[strlen(ok[i])]) return 1;
  return 0;
}

/* POST /api/narrate: the uploaded video (or ?url= with --allow-url-input), narrated in the
 * worker; cues stream as Server-Sent Events. The answer's status waits for the first window
 * (or the end), so that a video the decoder cannot read, or one shorter than a window, is a
 * 422 rather than an error event. */
enum MHD_Result vs_handle_narrate(vblip_server *s, req *r, struct MHD_Connection *c,
                                  const char *url) {
  if (r->too_large) return vs_send_error(c, url, 413, "%s", vs_upload_too_large(s, r));
  if (r->failed)
    return vs_send_error(c, url, 500, "cannot store the upload: %s", strerror(r->store_errno));
  if (r->malformed) return vs_send_error(c, url, 400, "malformed multipart upload");
  vs_narrate_args a;
  memset(&a, 0, sizeof a);
  a.gen = s->o.gen;
  vblip_narrate_options_default(&a.no);
  a.prompt = NARRATE_PROMPT;
  a.merge = 1;
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, narrate_arg, &a);
  if (a.bad) return vs_send_error(c, url, 400, "%s", a.msg);
  size_t bad;
  if (strlen(a.prompt) > NARRATE_MAX_PROMPT)
    return vs_send_error(c, url, 400, "'prompt' is longer than %d bytes", NARRATE_MAX_PROMPT);
  if (!vb_utf8_valid(a.prompt, strlen(a.prompt), &bad))
    return vs_send_error(c, url, 400, "'prompt' is not valid UTF-8 (byte %zu)", bad);
  if (vblip_narrate_options_check(&a.no) != 0)
    return vs_send_error(c, url, 400, "%s", vblip_last_error());
  int have_file = r->e && r->bytes > 0;
  if (a.url) {
    if (!s->o.allow_url_input)
      return vs_send_error(c, url, 403,
                           "this server does not open URLs: upload the video (or start the server "
                           "with --allow-url-input)");
    if (have_file) return vs_send_error(c, url, 400, "give either an upload or 'url', not both");
    if (!url_source(a.url) || strlen(a.url) > 2048)
      return vs_send_error(c, url, 400,
                           "'url' must be an http://, https://, rtsp:// or rtsps:// URL");
    a.no.allow_network = 1;
    a.no.live = -1; /* a stream: skip windows rather than fall behind */
  } else {
    if (!have_file)
      return vs_send_error(c, url, 400,
                           r->e ? "the upload is empty"
                                : "no video: send it as the request body or as a multipart field "
                                  "'file'");
    a.no.live = 0;
    close(r->fd);
    r->fd = -1;
  }
  pthread_mutex_lock(&s->mu);
  job *j = vs_job_new(JOB_NARRATE);
  narration *n = j ? vs_narration_new(s, a.url ? a.url : r->e->name) : NULL;
  if (!j || !n || !(j->source = strdup(a.url ? a.url : r->e->path)) ||
      !(j->prompt = strdup(a.prompt))) {
    if (j) {
      j->nar = n;
      if (n) vs_narration_unlist(s, n);
      vs_job_release(s, j);
    }
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, 500, "out of memory");
  }
  j->nar = n; /* the job holds the narration's reference */
  if (!a.url) {
    j->e = r->e;
    r->e->refs++;
  }
  j->gen = a.gen;
  j->nopts = a.no;
  j->nformat = a.format;
  j->nmerge = a.merge;
  j->stream = 1;
  j->format = FMT_NATIVE;
  snprintf(j->client, sizeof j->client, "%s", r->client_group);
  if (vs_job_enqueue(s, j) != 0) {
    int stopping = s->stopping, waiting = s->q_count;
    vs_narration_unlist(s, n);
    vs_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return vs_send_not_queued(c, url, stopping, waiting);
  }
  /* the first window, or the end */
  while (!j->done && n->n_windows == 0) {
    struct timespec ts;
    deadline_in(&ts, 200);
    pthread_cond_timedwait(&j->cv, &s->mu, &ts);
    if (j->done || n->n_windows > 0) break;
    if (s->stopping || vs_peer_gone(c)) { /* the worker stops at its next window */
      vs_job_cancel(s, j);
      j->cancelled = 1;
      vs_narration_unlist(s, n);
      vs_job_release(s, j);
      pthread_mutex_unlock(&s->mu);
      return MHD_NO;
    }
  }
  if (j->done && j->error) {
    char msg[1024];
    unsigned status = j->status ? (unsigned)j->status : 500;
    snprintf(msg, sizeof msg, "%s", j->error);
    vs_narration_unlist(s, n);
    vs_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, status, "%s", msg);
  }
  pthread_mutex_unlock(&s->mu);
  struct MHD_Response *resp = vs_event_stream_response(s, j, r);
  if (!resp) return MHD_NO;
  char loc[96];
  snprintf(loc, sizeof loc, "/api/narrations/%s", n->id);
  MHD_add_response_header(resp, "X-Narration", loc);
  return vs_queue_response(c, 200, resp, 0);
}

/* GET /api/narrations/ID (a description) or ID.vtt, ID.srt, ID.jsonl (the cues so far; all of
 * them once done) */
enum MHD_Result vs_handle_narration_get(vblip_server *s, struct MHD_Connection *c, const char *url,
                                        const char *rest) {
  char id[2 * ID_BYTES + 1];
  size_t len = strcspn(rest, ".");
  if (len != 2 * ID_BYTES) return vs_send_error(c, url, 404, "no such narration");
  memcpy(id, rest, len);
  id[len] = 0;
  const char *ext = rest[len] ? rest + len + 1 : NULL;
  int f = !ext                    ? -1
          : !strcmp(ext, "vtt")   ? VS_NF_VTT
          : !strcmp(ext, "srt")   ? VS_NF_SRT
          : !strcmp(ext, "jsonl") ? VS_NF_JSONL
                                  : -2;
  if (f == -2) return vs_send_error(c, url, 404, "no such format: .vtt, .srt or .jsonl");
  pthread_mutex_lock(&s->mu);
  narration *n = vs_valid_id(id) ? vs_narration_find(s, id) : NULL;
  if (!n) {
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, 404, "no narration with id %s (it may have expired)", id);
  }
  const char *st = !n->done       ? "running"
                   : n->cancelled ? "cancelled"
                   : n->failed    ? "failed"
                                  : "done";
  if (f < 0) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", n->id);
    cJSON_AddStringToObject(o, "name", n->name);
    cJSON_AddStringToObject(o, "state", st);
    cJSON_AddNumberToObject(o, "windows", n->n_windows);
    cJSON_AddNumberToObject(o, "cues", n->n_cues);
    cJSON *d = cJSON_AddObjectToObject(o, "downloads");
    static const char *const exts[] = {"vtt", "srt", "jsonl"};
    for (int i = 0; i < 3; i++) {
      char u[96];
      snprintf(u, sizeof u, "/api/narrations/%s.%s", n->id, exts[i]);
      cJSON_AddStringToObject(d, exts[i], u);
    }
    pthread_mutex_unlock(&s->mu);
    return vs_send_json(c, 200, o);
  }
  const vs_buf *b = f == VS_NF_VTT ? &n->vtt : f == VS_NF_SRT ? &n->srt : &n->jsonl;
  size_t blen = b->len;
  char *copy = malloc(blen + 1);
  if (copy) memcpy(copy, b->data ? b->data : "", blen);
  char disp[256];
  /* the client's name without its extension, made safe for a header */
  char base[64];
  size_t k = 0;
  for (const char *p = n->name; *p && k + 1 < sizeof base; p++)
    base[k++] = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.' ? *p : '_';
  base[k] = 0;
  char *dot = strrchr(base, '.');
  if (dot && dot != base) *dot = 0;
  snprintf(disp, sizeof disp, "attachment; filename=\"%s.%s\"", *base ? base : "narration", ext);
  pthread_mutex_unlock(&s->mu);
  if (!copy) return vs_send_error(c, url, 500, "out of memory");
  struct MHD_Response *resp = MHD_create_response_from_buffer(blen, copy, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(copy);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type",
                          f == VS_NF_VTT   ? "text/vtt; charset=utf-8"
                          : f == VS_NF_SRT ? "application/x-subrip; charset=utf-8"
                                           : "application/jsonl; charset=utf-8");
  MHD_add_response_header(resp, "Content-Disposition", disp);
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "X-Narration-State", st);
  return vs_queue_response(c, 200, resp, blen);
}
