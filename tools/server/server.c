/* vblip serve: an HTTP server (libmicrohttpd, a thread per connection) with the
 * web demo page, a JSON API and an OpenAI-compatible chat endpoint.
 *
 * The model is used by ONE worker thread, fed by a bounded queue of jobs (encode a
 * video; answer a chat turn). Connection threads enqueue a job and either wait for
 * it (whole answers) or relay its Server-Sent Events as the worker produces them.
 * Everything shared (queue, jobs, the video store) is guarded by s->mu. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "runtime/json.h"
#include "server/gen_settings.h"
#include "server/http_access.h"
#include "server/http_error.h"
#include "server/http_guard.h"
#include "server/narrate_args.h"
#include "server/openai_request.h"
#include "server/server_util.h"
#include "server/web_assets.h"
#include "text/cues.h"
#include "vblip_server.h"

#define ID_BYTES 16
#define MAX_EXAMPLES 16
#define MAX_CHAT_VIDEOS 32 /* per conversation; each takes the queries + 1 positions */
#define MAX_FAIR_CLIENTS 64 /* clients the fair queue remembers */
#define MAX_NARRATIONS 16   /* finished narrations kept for download; the oldest go first */
#define EXAMPLE_PROMPT_1 "What is the camera wearer doing?"
#define EXAMPLE_PROMPT_2 "Question: What is the camera wearer doing? Answer:"

/* ---------------------------------------------------------------- videos */

enum { V_NEW, V_READY, V_FAILED };

typedef struct entry {
  char id[2 * ID_BYTES + 1];
  char path[PATH_MAX];
  char name[128]; /* the client's file name, for display only */
  char mime[64];
  size_t bytes;
  uint64_t hash;
  int state, refs, removed, listed;
  char *error;           /* V_FAILED: why */
  vblip_video video;     /* worker only: the encoded features */
  int n_frames;          /* V_READY: frame metadata and thumbnails (immutable) */
  int64_t *frame_index;
  double *frame_time;
  unsigned char **thumbs;
  size_t *thumb_len;
  uint64_t last_used;
  struct entry *next;
} entry;

/* ------------------------------------------------------------ narrations */

/* A narration's cues, as each format writes them (POST /api/narrate; downloads). Guarded by
 * s->mu; the job that fills it holds a reference. */
typedef struct narration {
  char id[2 * ID_BYTES + 1];
  char name[128]; /* the client's file name (or the URL), for display only */
  vs_buf vtt, srt, jsonl;
  int n_cues, n_windows;
  int done, failed, cancelled, refs, listed;
  vblip_narration_stats stats;
  struct narration *next;
} narration;

/* ------------------------------------------------------------------ jobs */

enum { JOB_ENCODE, JOB_CHAT, JOB_SCORE, JOB_NARRATE };
enum { FMT_NATIVE, FMT_OPENAI };

/* One item of a chat's input, in order: a text, or a video (e, a reference held). */
typedef struct {
  char *text;
  entry *e;
} chat_item;

typedef struct job {
  int kind;
  entry *e;         /* JOB_ENCODE: the video */
  chat_item *items; /* JOB_CHAT: the input, text and videos in order */
  int n_items;
  char *prompt; /* JOB_CHAT: the input as text, "<video>" where a video stands */
  char **cands; /* JOB_SCORE: the candidates, and their scores once done */
  double *cand_ll;
  int *cand_tokens, n_cands;
  vblip_gen_params gen;
  int stream, format;
  char client[64]; /* who asked (an IPv6 /64 as one): the fair queue's unit */
  char oa_id[48];
  long created;
  pthread_cond_t cv;
  int refs, queued, started, done, cancelled;
  vs_buf out;   /* stream: SSE bytes not yet sent */
  size_t out_pos;
  int status;   /* error: HTTP status */
  char *error;
  char *answer, *raw;
  int n_tokens, n_prompt_tokens, truncated;
  double t_enqueue, ms_queue, ms_generate, ms_encode;
  vs_buf streamed; /* the pieces sent so far, concatenated */
  vs_openai_extras oa; /* /v1: stop strings, stream_options */
  vs_buf text;         /* with stop strings: the text so far (leading space dropped) */
  int stop_hit;        /* a stop string ended the answer */
  /* JOB_NARRATE: the source (the upload e's path, or a URL), its options and its cues */
  char *source;
  vblip_narrate_options nopts;
  int nformat, nmerge;
  narration *nar;
  vb_cue_merger merger;
} job;

struct vblip_server {
  vblip_model *m;
  vblip_server_options o;
  char host[256], model_name[128];
  struct MHD_Daemon *d;
  vs_guard *guard; /* accepts connections, enforces the connection limits and deadlines */
  int listen_fd;
  int port;
  pthread_mutex_t mu;
  pthread_cond_t work_cv;
  job **queue;
  int q_head, q_count, q_cap;
  job *running;
  pthread_t worker;
  int worker_started, stopping;
  char dir[PATH_MAX - 64];
  entry *videos;
  int n_videos;
  uint64_t clock;
  char examples_dir[PATH_MAX];
  char *examples[MAX_EXAMPLES];
  int n_examples;
  int test_delay_ms;
  vblip_model_info info;
  char *cors_origins, *api_key; /* copies of the options' */
  narration *narrations;        /* newest first */
  int n_narrations;
  /* the fair queue: when each client was last served (least recently served goes first) */
  struct {
    char name[64];
    uint64_t served;
  } clients[MAX_FAIR_CLIENTS];
  uint64_t serve_tick;
};

void vblip_server_options_default(vblip_server_options *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->port = 8080;
  o->queue_size = 8;
  o->max_upload_bytes = (size_t)100 << 20;
  o->max_json_bytes = (size_t)1 << 20;
  o->max_connections = 256;
  o->max_client_connections = 16;
  o->header_timeout_ms = 10000;
  o->body_timeout_ms = 120000;
  o->idle_timeout_s = 300;
  o->max_videos = 64;
  o->model_name = "videoblip";
  vblip_sampling_default(&o->sampling);
  vblip_gen_params_default(&o->gen);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
  ts->tv_nsec %= 1000000000L;
}

/* ---------------------------------------------------------------- store */

static void entry_destroy(entry *e) {
  if (e->path[0]) unlink(e->path);
  vblip_video_free(&e->video);
  for (int i = 0; i < e->n_frames; i++) free(e->thumbs ? e->thumbs[i] : NULL);
  free(e->thumbs);
  free(e->thumb_len);
  free(e->frame_index);
  free(e->frame_time);
  free(e->error);
  free(e);
}

/* locked */
static void entry_unlist(vblip_server *s, entry *e) {
  if (e->removed) return;
  e->removed = 1;
  for (entry **p = &s->videos; *p; p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      s->n_videos--;
      break;
    }
}

/* locked */
static void entry_release(vblip_server *s, entry *e) {
  (void)s;
  if (!e) return;
  if (--e->refs == 0 && e->removed) entry_destroy(e);
}

static const char *ext_for(const char *mime, const char *name) {
  static const char *const known[] = {"mp4", "webm", "avi", "mkv", "mov", "m4v", "ogv", "mpg", "mpeg",
                                      "gif", "png", "jpg", "jpeg", "bmp", "webp", "ts", "flv", "3gp"};
  const char *dot = name ? strrchr(name, '.') : NULL;
  if (dot)
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
      if (strcasecmp(dot + 1, known[i]) == 0) return known[i];
  if (mime) {
    const char *slash = strchr(mime, '/');
    if (slash)
      for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        size_t n = strlen(known[i]);
        if (strncasecmp(slash + 1, known[i], n) == 0 && !isalnum((unsigned char)slash[1 + n])) return known[i];
      }
    if (strncasecmp(mime, "video/quicktime", 15) == 0) return "mov";
    if (strncasecmp(mime, "video/x-msvideo", 15) == 0) return "avi";
    if (strncasecmp(mime, "video/x-matroska", 16) == 0) return "mkv";
  }
  return "bin";
}

/* names from the client are shown (and logged): control characters escaped */
static void copy_display(char *dst, size_t cap, const char *src) {
  vb_escape_controls(src, dst, cap);
}

/* A new, unlisted entry with its file created (O_EXCL, 0600) under the private
 * directory; the name is generated. Returns the entry (refs 1) and the open fd. */
static entry *entry_create(vblip_server *s, const char *mime, const char *name, int *fd) {
  entry *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  if (vs_random_hex(e->id, ID_BYTES) != 0) {
    free(e);
    return NULL;
  }
  snprintf(e->path, sizeof e->path, "%s/%s.%s", s->dir, e->id, ext_for(mime, name));
  copy_display(e->name, sizeof e->name, name);
  copy_display(e->mime, sizeof e->mime, mime);
  e->hash = VS_HASH_INIT;
  e->refs = 1;
  e->removed = 1; /* not in the list until entry_list */
  *fd = open(e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (*fd < 0) {
    e->path[0] = 0;
    free(e);
    return NULL;
  }
  return e;
}

/* locked: makes e findable; drops the least recently used unreferenced videos over the limit */
static void entry_list(vblip_server *s, entry *e) {
  e->removed = 0;
  e->listed = 1;
  e->last_used = ++s->clock;
  e->next = s->videos;
  s->videos = e;
  s->n_videos++;
  while (s->n_videos > s->o.max_videos) {
    entry *old = NULL;
    for (entry *p = s->videos; p; p = p->next)
      if (p->refs == 0 && (!old || p->last_used < old->last_used)) old = p;
    if (!old) break;
    entry_unlist(s, old);
    entry_destroy(old);
  }
}

/* locked: a listed video by id (refs + 1), or NULL */
static entry *entry_get(vblip_server *s, const char *id) {
  for (entry *p = s->videos; p; p = p->next)
    if (strcmp(p->id, id) == 0) {
      p->refs++;
      p->last_used = ++s->clock;
      return p;
    }
  return NULL;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---------------------------------------------------------- narrations */

static void narration_free(narration *n) {
  vs_buf_free(&n->vtt);
  vs_buf_free(&n->srt);
  vs_buf_free(&n->jsonl);
  free(n);
}

/* locked */
static void narration_release(vblip_server *s, narration *n) {
  (void)s;
  if (n && --n->refs == 0 && !n->listed) narration_free(n);
}

/* locked: a new narration, listed (refs 1: the caller's); the oldest unreferenced ones over
 * the limit are dropped */
static narration *narration_new(vblip_server *s, const char *name) {
  narration *n = calloc(1, sizeof *n);
  if (!n || vs_random_hex(n->id, ID_BYTES) != 0 || vs_buf_puts(&n->vtt, "WEBVTT\n\n") != 0 ||
      vs_buf_puts(&n->srt, "") != 0 || vs_buf_puts(&n->jsonl, "") != 0) {
    if (n) narration_free(n);
    return NULL;
  }
  vb_escape_controls(name ? name : "", n->name, sizeof n->name);
  n->refs = 1;
  n->listed = 1;
  n->next = s->narrations;
  s->narrations = n;
  s->n_narrations++;
  while (s->n_narrations > MAX_NARRATIONS) {
    narration **old = NULL;
    for (narration **p = &s->narrations; *p; p = &(*p)->next)
      if ((*p)->refs == 0) old = p; /* the last unreferenced one is the oldest */
    if (!old) break;
    narration *o = *old;
    *old = o->next;
    s->n_narrations--;
    narration_free(o);
  }
  return n;
}

/* locked: a listed narration by id (no reference taken) */
static narration *narration_find(vblip_server *s, const char *id) {
  for (narration *n = s->narrations; n; n = n->next)
    if (strcmp(n->id, id) == 0) return n;
  return NULL;
}

/* ---------------------------------------------------------------- jobs */

static job *job_new(int kind) {
  job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  j->refs = 1;
  pthread_cond_init(&j->cv, NULL);
  return j;
}

/* locked */
static void job_release(vblip_server *s, job *j) {
  if (!j || --j->refs > 0) return;
  entry_release(s, j->e);
  for (int i = 0; i < j->n_items; i++) {
    entry_release(s, j->items[i].e);
    free(j->items[i].text);
  }
  free(j->items);
  for (int i = 0; i < j->n_cands; i++)
    free(j->cands[i]);
  free(j->cands);
  free(j->cand_ll);
  free(j->cand_tokens);
  pthread_cond_destroy(&j->cv);
  vs_buf_free(&j->out);
  vs_buf_free(&j->streamed);
  vs_buf_free(&j->text);
  vs_openai_extras_free(&j->oa);
  free(j->prompt);
  free(j->error);
  free(j->answer);
  free(j->raw);
  free(j->source);
  if (j->merger.has) vb_cue_free(&j->merger.open);
  narration_release(s, j->nar);
  free(j);
}

/* locked: 0, or -1 when the queue is full or the server is stopping */
static int job_enqueue(vblip_server *s, job *j) {
  if (s->stopping || s->q_count >= s->q_cap) return -1;
  s->queue[(s->q_head + s->q_count) % s->q_cap] = j;
  s->q_count++;
  j->refs++;
  j->queued = 1;
  j->t_enqueue = now_ms();
  pthread_cond_signal(&s->work_cv);
  return 0;
}

static void job_fail(job *j, int status, const char *msg);
static void emit_error_event(vblip_server *s, job *j);

/* locked: stops j (a disconnected client or shutdown): a waiting job leaves the
 * queue at once; a running one stops at its next piece of text. */
static void job_cancel(vblip_server *s, job *j) {
  j->cancelled = 1;
  if (j->queued && !j->started) {
    for (int k = 0; k < s->q_count; k++) {
      int at = (s->q_head + k) % s->q_cap;
      if (s->queue[at] != j) continue;
      for (int m = k; m < s->q_count - 1; m++)
        s->queue[(s->q_head + m) % s->q_cap] = s->queue[(s->q_head + m + 1) % s->q_cap];
      s->q_count--;
      j->queued = 0;
      if (!j->done) {
        job_fail(j, 503, s->stopping ? "the server is shutting down" : "cancelled");
        emit_error_event(s, j);
        j->done = 1;
      }
      pthread_cond_broadcast(&j->cv);
      job_release(s, j);
      return;
    }
  }
}

static void job_fail(job *j, int status, const char *msg) {
  if (j->error) return;
  j->status = status;
  j->error = strdup(msg ? msg : "error");
}

/* ------------------------------------------------------------ SSE output */

/* locked */
static void sse_event(job *j, const char *event, cJSON *data) {
  char *txt = cJSON_PrintUnformatted(data);
  if (!txt) return;
  if (event) {
    vs_buf_puts(&j->out, "event: ");
    vs_buf_puts(&j->out, event);
    vs_buf_puts(&j->out, "\n");
  }
  vs_buf_puts(&j->out, "data: ");
  vs_buf_puts(&j->out, txt);
  vs_buf_puts(&j->out, "\n\n");
  free(txt);
}

static cJSON *oa_chunk(vblip_server *s, job *j, const char *role, const char *content, const char *finish) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", j->oa_id);
  cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
  cJSON_AddNumberToObject(o, "created", (double)j->created);
  cJSON_AddStringToObject(o, "model", s->model_name);
  cJSON *choices = cJSON_AddArrayToObject(o, "choices");
  cJSON *c = cJSON_CreateObject();
  cJSON_AddNumberToObject(c, "index", 0);
  cJSON *delta = cJSON_AddObjectToObject(c, "delta");
  if (role) cJSON_AddStringToObject(delta, "role", role);
  if (content) cJSON_AddStringToObject(delta, "content", content);
  if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
  else cJSON_AddNullToObject(c, "finish_reason");
  cJSON_AddItemToArray(choices, c);
  if (j->oa.include_usage) cJSON_AddNullToObject(o, "usage"); /* the last chunk has it */
  return o;
}

/* locked */
static void emit_piece(vblip_server *s, job *j, const char *piece) {
  if (!*piece) return;
  vs_buf_puts(&j->streamed, piece);
  if (!j->stream) return;
  cJSON *o;
  if (j->format == FMT_OPENAI) {
    o = oa_chunk(s, j, NULL, piece, NULL);
    sse_event(j, NULL, o);
  } else {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", piece);
    sse_event(j, "token", o);
  }
  cJSON_Delete(o);
  pthread_cond_broadcast(&j->cv);
}

static const char *finish_reason(const job *j) {
  return j->truncated && !j->stop_hit ? "length" : "stop";
}

/* "video_id" (the first video, for clients of the one-video API) and "video_ids" (all, in order) */
static void add_video_ids(cJSON *o, const job *j) {
  cJSON *ids = cJSON_CreateArray();
  const char *first = "";
  for (int i = 0; i < j->n_items; i++)
    if (j->items[i].e) {
      if (!*first) first = j->items[i].e->id;
      cJSON_AddItemToArray(ids, cJSON_CreateString(j->items[i].e->id));
    }
  cJSON_AddStringToObject(o, "video_id", first);
  cJSON_AddItemToObject(o, "video_ids", ids);
}

static cJSON *native_result(vblip_server *s, job *j) {
  (void)s;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "answer", j->answer ? j->answer : "");
  cJSON_AddStringToObject(o, "raw", j->raw ? j->raw : "");
  cJSON_AddStringToObject(o, "prompt", j->prompt ? j->prompt : "");
  add_video_ids(o, j);
  cJSON_AddNumberToObject(o, "tokens", j->n_tokens);
  cJSON_AddStringToObject(o, "finish_reason", finish_reason(j));
  cJSON *t = cJSON_AddObjectToObject(o, "timings_ms");
  cJSON_AddNumberToObject(t, "queue", j->ms_queue);
  cJSON_AddNumberToObject(t, "encode", j->ms_encode);
  cJSON_AddNumberToObject(t, "generate", j->ms_generate);
  return o;
}

static cJSON *oa_usage(job *j) {
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", j->n_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt_tokens + j->n_tokens);
  return u;
}

static cJSON *oa_result(vblip_server *s, job *j) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", j->oa_id);
  cJSON_AddStringToObject(o, "object", "chat.completion");
  cJSON_AddNumberToObject(o, "created", (double)j->created);
  cJSON_AddStringToObject(o, "model", s->model_name);
  cJSON *choices = cJSON_AddArrayToObject(o, "choices");
  cJSON *c = cJSON_CreateObject();
  cJSON_AddNumberToObject(c, "index", 0);
  cJSON *msg = cJSON_AddObjectToObject(c, "message");
  cJSON_AddStringToObject(msg, "role", "assistant");
  cJSON_AddStringToObject(msg, "content", j->answer ? j->answer : "");
  cJSON_AddStringToObject(c, "finish_reason", finish_reason(j));
  cJSON_AddItemToArray(choices, c);
  cJSON_AddItemToObject(o, "usage", oa_usage(j));
  cJSON *x = cJSON_AddObjectToObject(o, "vblip");
  add_video_ids(x, j);
  cJSON_AddStringToObject(x, "prompt", j->prompt ? j->prompt : "");
  return o;
}

/* locked */
static void emit_error_event(vblip_server *s, job *j) {
  (void)s;
  if (!j->stream) return;
  cJSON *o = cJSON_CreateObject();
  if (j->format == FMT_OPENAI) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", j->error ? j->error : "error");
    cJSON_AddStringToObject(e, "type", j->status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    const char *code = vs_error_code((unsigned)j->status);
    if (code)
      cJSON_AddStringToObject(e, "code", code);
    else
      cJSON_AddNullToObject(e, "code");
    sse_event(j, NULL, o);
    vs_buf_puts(&j->out, "data: [DONE]\n\n");
  } else {
    cJSON_AddStringToObject(o, "error", j->error ? j->error : "error");
    cJSON_AddNumberToObject(o, "status", j->status);
    sse_event(j, "error", o);
  }
  cJSON_Delete(o);
}

/* locked: the final events of a finished chat */
static void emit_done(vblip_server *s, job *j) {
  if (!j->stream) return;
  if (j->format == FMT_OPENAI) {
    cJSON *o = oa_chunk(s, j, NULL, NULL, finish_reason(j));
    sse_event(j, NULL, o);
    cJSON_Delete(o);
    if (j->oa.include_usage) { /* OpenAI's usage chunk: no choices */
      o = oa_chunk(s, j, NULL, NULL, NULL);
      cJSON_ReplaceItemInObject(o, "choices", cJSON_CreateArray());
      cJSON_ReplaceItemInObject(o, "usage", oa_usage(j));
      sse_event(j, NULL, o);
      cJSON_Delete(o);
    }
    vs_buf_puts(&j->out, "data: [DONE]\n\n");
  } else {
    cJSON *o = native_result(s, j);
    sse_event(j, "done", o);
    cJSON_Delete(o);
  }
}

/* --------------------------------------------------------------- worker */

/* A decoder's message about a stored file, as the client may see it: the server's path
 * replaced by the client's file name. A new string (NULL when out of memory). */
static char *hide_path(const char *msg, const char *path, const char *name) {
  vs_buf b = {0};
  const char *hit;
  vs_buf_puts(&b, "");
  while (*path && (hit = strstr(msg, path))) {
    vs_buf_append(&b, msg, (size_t)(hit - msg));
    vs_buf_puts(&b, name && *name ? name : "the upload");
    msg = hit + strlen(path);
  }
  vs_buf_puts(&b, msg);
  return b.data;
}

/* The worker thread only. Decodes and encodes e unless done already. */
static int ensure_encoded(vblip_server *s, entry *e, job *j) {
  pthread_mutex_lock(&s->mu);
  int state = e->state;
  if (state == V_FAILED) job_fail(j, 422, e->error);
  pthread_mutex_unlock(&s->mu);
  if (state == V_READY) return 0;
  if (state == V_FAILED) return -1;
  double t0 = now_ms();
  vblip_video v;
  memset(&v, 0, sizeof v);
  int rc = vblip_video_load(s->m, e->path, &s->o.sampling, &v);
  int unreadable = rc != 0; /* the client's file (422); what fails after it is the server's */
  if (rc == 0) rc = vblip_video_encode(s->m, &v);
  int T = v.n_frames, S = v.image_size;
  unsigned char **thumbs = NULL;
  size_t *lens = NULL;
  int64_t *idx = NULL;
  double *times = NULL;
  if (rc == 0) {
    thumbs = calloc((size_t)T, sizeof *thumbs);
    lens = calloc((size_t)T, sizeof *lens);
    idx = malloc((size_t)T * sizeof *idx);
    times = malloc((size_t)T * sizeof *times);
    if (!thumbs || !lens || !idx || !times) rc = vb_error("out of memory");
    int factor = S >= 160 ? 2 : 1;
    for (int i = 0; rc == 0 && i < T; i++) {
      idx[i] = v.frame_index[i];
      times[i] = v.frame_time[i];
      if (v.frames) thumbs[i] = vs_bmp_encode(v.frames + (size_t)i * S * S * 3, S, S, factor, &lens[i]);
    }
    /* generation needs only the projected query tokens */
    free(v.pixel_values), v.pixel_values = NULL;
    free(v.vision), v.vision = NULL;
    free(v.qformer), v.qformer = NULL;
    free(v.frames), v.frames = NULL;
  }
  const char *err = rc == 0 ? NULL : vblip_last_error();
  pthread_mutex_lock(&s->mu);
  if (rc == 0) {
    e->video = v;
    e->n_frames = T;
    e->frame_index = idx;
    e->frame_time = times;
    e->thumbs = thumbs;
    e->thumb_len = lens;
    e->state = V_READY;
    j->ms_encode = now_ms() - t0;
  } else if (!unreadable) { /* encoding failed (memory?): the video may be tried again */
    job_fail(j, 500, err && *err ? err : "cannot encode the video");
  } else {
    e->state = V_FAILED;
    /* the decoder names the file: show the client its own name, never the server's path */
    e->error = hide_path(err && *err ? err : "cannot read the video", e->path, e->name);
    job_fail(j, 422, e->error ? e->error : "cannot read the video");
  }
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) {
    vblip_video_free(&v);
    if (thumbs)
      for (int i = 0; i < T; i++) free(thumbs[i]);
    free(thumbs);
    free(lens);
    free(idx);
    free(times);
  }
  return rc;
}

typedef struct {
  vblip_server *s;
  job *j;
  int leading; /* still dropping leading whitespace */
} piece_ctx;

/* locked: with stop strings, sends what can no longer become part of one; 1 when a stop
 * string has come (the answer ends before it) */
static int stop_scan_piece(vblip_server *s, job *j, const char *piece) {
  if (vs_buf_puts(&j->text, piece) != 0) return 0;
  int hit;
  size_t safe = vs_stops_scan(&j->oa.stops, j->text.data, j->text.len, &hit);
  size_t sent = j->streamed.len;
  if (safe > sent) {
    char *add = strndup(j->text.data + sent, safe - sent);
    if (add) emit_piece(s, j, add);
    free(add);
  }
  j->stop_hit = hit;
  return hit;
}

static int on_piece(void *user, const char *piece) {
  piece_ctx *c = user;
  vblip_server *s = c->s;
  if (s->test_delay_ms > 0) sleep_ms(s->test_delay_ms);
  pthread_mutex_lock(&s->mu);
  int stop = c->j->cancelled || s->stopping;
  if (!stop) {
    if (c->leading) {
      while (*piece && isspace((unsigned char)*piece)) piece++;
      if (*piece) c->leading = 0;
    }
    if (c->j->oa.stops.n)
      stop = stop_scan_piece(s, c->j, piece);
    else
      emit_piece(s, c->j, piece);
  }
  pthread_mutex_unlock(&s->mu);
  return stop;
}

/* The input of items, their videos encoded (and immutable from then on); NULL with the
 * library's error. */
static vblip_input *items_input(const chat_item *items, int n) {
  vblip_input *in = vblip_input_new();
  int rc = in ? 0 : vb_error("out of memory");
  for (int i = 0; rc == 0 && i < n; i++)
    rc = items[i].e ? vblip_input_add_video(in, &items[i].e->video)
                    : vblip_input_add_text(in, items[i].text);
  if (rc != 0) {
    vblip_input_free(in);
    return NULL;
  }
  return in;
}

/* The positions the input takes as the model lays it out, tokenized only up to the
 * model's limit (the tokenizer is thread-safe). 0, or -1 with the library's error. */
static int input_positions(vblip_server *s, const vblip_input *in, size_t *n) {
  int32_t *ids = NULL;
  uint8_t *mask = NULL;
  int rc = vblip_input_ids(s->m, in, &ids, &mask, n);
  free(ids);
  free(mask);
  return rc;
}

/* The worker only: the job's input, its videos encoded; NULL when the job failed. */
static vblip_input *job_input(vblip_server *s, job *j) {
  for (int i = 0; i < j->n_items; i++)
    if (j->items[i].e && ensure_encoded(s, j->items[i].e, j) != 0) return NULL;
  vblip_input *in = items_input(j->items, j->n_items);
  size_t n_ids = 0;
  int rc = in ? input_positions(s, in, &n_ids) : -1;
  /* an input with no room left for an answer is the client's to shorten */
  if (rc == 0 && s->info.max_positions > 0 && n_ids >= (size_t)s->info.max_positions)
    rc = vb_error("the conversation is %zu positions; the model takes at most %d", n_ids,
                  s->info.max_positions - 1);
  pthread_mutex_lock(&s->mu);
  if (rc != 0)
    job_fail(j, 400, vblip_last_error());
  else
    j->n_prompt_tokens = (int)n_ids;
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) {
    vblip_input_free(in);
    return NULL;
  }
  return in;
}

static void run_score(vblip_server *s, job *j) {
  vblip_input *in = job_input(s, j);
  if (!in) return;
  vblip_score *sc = calloc((size_t)j->n_cands, sizeof *sc);
  double *ll = calloc((size_t)j->n_cands, sizeof *ll);
  int *nt = calloc((size_t)j->n_cands, sizeof *nt);
  double t0 = now_ms();
  int rc = sc && ll && nt ? vblip_score_candidates(s->m, in, (const char *const *)j->cands,
                                                   (size_t)j->n_cands, sc)
                          : vb_error("out of memory");
  vblip_input_free(in);
  pthread_mutex_lock(&s->mu);
  j->ms_generate = now_ms() - t0;
  if (rc != 0) { /* a candidate the model cannot take is the client's to fix */
    job_fail(j, vblip_last_error_kind() == VBLIP_ERROR_INPUT ? 400 : 500, vblip_last_error());
  } else {
    for (int i = 0; i < j->n_cands; i++) {
      ll[i] = sc[i].mean_log_likelihood;
      nt[i] = sc[i].n_tokens;
      vblip_score_free(&sc[i]);
    }
    j->cand_ll = ll;
    j->cand_tokens = nt;
    ll = NULL;
    nt = NULL;
  }
  pthread_mutex_unlock(&s->mu);
  free(sc);
  free(ll);
  free(nt);
}

static void run_chat(vblip_server *s, job *j) {
  vblip_input *in = job_input(s, j);
  if (!in) return;
  piece_ctx ctx = {s, j, 1};
  vblip_answer a;
  double t0 = now_ms();
  int rc = vblip_generate_input(s->m, in, &j->gen, on_piece, &ctx, &a);
  double ms = now_ms() - t0;
  vblip_input_free(in);
  if (rc != 0) {
    /* the request's fault (a prompt the model cannot take) or the server's */
    int status = vblip_last_error_kind() == VBLIP_ERROR_INPUT ? 400 : 500;
    pthread_mutex_lock(&s->mu);
    job_fail(j, status, vblip_last_error());
    pthread_mutex_unlock(&s->mu);
    return;
  }
  /* a stop string (seen while streaming, or in beam search's whole text) ends the answer
   * where it starts, without the post-processing's final period */
  char *answer = NULL;
  if (j->stop_hit) { /* the worker alone writes these */
    answer = strdup(j->streamed.data ? j->streamed.data : "");
  } else if (j->oa.stops.n) {
    const char *t = a.text ? a.text : "";
    while (*t && isspace((unsigned char)*t))
      t++;
    int hit;
    size_t cut = vs_stops_scan(&j->oa.stops, t, strlen(t), &hit);
    if (hit) {
      answer = strndup(t, cut);
      pthread_mutex_lock(&s->mu);
      j->stop_hit = 1;
      pthread_mutex_unlock(&s->mu);
    }
  }
  if (!j->stop_hit) answer = vblip_postprocess(a.text ? a.text : "");
  pthread_mutex_lock(&s->mu);
  j->ms_generate = ms;
  j->raw = a.text;
  a.text = NULL;
  j->answer = answer;
  j->n_tokens = a.n_tokens;
  j->truncated = a.n_tokens >= j->gen.max_new_tokens;
  if (!answer) job_fail(j, 500, "out of memory");
  else if (j->cancelled || s->stopping) job_fail(j, 503, "cancelled");
  else {
    /* the pieces lack the post-processing's final touch (and beam search sends none):
     * send what is missing so that the pieces add up to the answer */
    size_t sent = j->streamed.len;
    if (sent <= strlen(answer) && strncmp(answer, j->streamed.data ? j->streamed.data : "", sent) == 0)
      emit_piece(s, j, answer + sent);
  }
  pthread_mutex_unlock(&s->mu);
  vblip_answer_free(&a);
}

/* ------------------------------------------------------------ narration */

/* A cue as narrate's JSON Lines write it: the fields every vblip JSONL result shares
 * (tools/dataset/jsonl_out.h: video, start, end, prompt, text; "video" the client's name for
 * the upload, or the URL, and left out when unnamed), then windows [first, last],
 * skipped_before, lag */
static cJSON *cue_json(const vb_cue *c, const char *video, const char *prompt) {
  cJSON *o = cJSON_CreateObject();
  if (video && *video) cJSON_AddStringToObject(o, "video", video);
  cJSON_AddNumberToObject(o, "start", c->start);
  cJSON_AddNumberToObject(o, "end", c->end);
  cJSON_AddStringToObject(o, "prompt", prompt ? prompt : "");
  cJSON_AddStringToObject(o, "text", c->text);
  cJSON *w = cJSON_AddArrayToObject(o, "windows");
  cJSON_AddItemToArray(w, cJSON_CreateNumber(c->first_window));
  cJSON_AddItemToArray(w, cJSON_CreateNumber(c->last_window));
  cJSON_AddNumberToObject(o, "skipped_before", c->skipped_before);
  cJSON_AddNumberToObject(o, "lag", c->lag);
  return o;
}

/* locked: a finished cue: into the narration's three documents and, as an event, to the
 * client (with the cue in the requested format) */
static void emit_cue(job *j, const vb_cue *c) {
  narration *n = j->nar;
  cJSON *o = cue_json(c, n->name, j->prompt);
  char *line = cJSON_PrintUnformatted(o);
  char *vtt = vb_cue_vtt(c), *srt = vb_cue_srt(c, n->n_cues + 1);
  int fail = !line || !vtt || !srt;
  if (!fail) {
    vs_buf_puts(&n->vtt, vtt);
    vs_buf_puts(&n->srt, srt);
    vs_buf_puts(&n->jsonl, line);
    vs_buf_puts(&n->jsonl, "\n");
    cJSON_AddNumberToObject(o, "index", n->n_cues);
    const char *as = j->nformat == VS_NF_VTT ? vtt : j->nformat == VS_NF_SRT ? srt : line;
    cJSON_AddStringToObject(o, "cue", as);
    sse_event(j, "cue", o);
    n->n_cues++;
  }
  if (fail) job_fail(j, 500, "out of memory");
  cJSON_Delete(o);
  free(line);
  free(vtt);
  free(srt);
}

static int on_narration_window(void *user, const vblip_narration_window *w) {
  piece_ctx *c = user;
  vblip_server *s = c->s;
  job *j = c->j;
  if (s->test_delay_ms > 0) sleep_ms(s->test_delay_ms);
  char *text = vblip_postprocess(w->answer && w->answer->text ? w->answer->text : "");
  pthread_mutex_lock(&s->mu);
  int stop = j->cancelled || s->stopping || !text;
  if (!stop) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", w->index);
    cJSON_AddNumberToObject(o, "start", w->start_sec);
    cJSON_AddNumberToObject(o, "end", w->end_sec);
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddNumberToObject(o, "skipped_before", w->skipped_before);
    cJSON_AddNumberToObject(o, "lag", w->lag_sec);
    cJSON_AddNumberToObject(o, "vision_frames", w->vision_frames);
    sse_event(j, "window", o);
    cJSON_Delete(o);
    vb_cue done;
    int got = vb_cues_add(&j->merger, w->index, w->start_sec, w->end_sec, text, w->skipped_before,
                          w->lag_sec, &done);
    if (got < 0) job_fail(j, 500, "out of memory"), stop = 1;
    if (got > 0) {
      emit_cue(j, &done);
      vb_cue_free(&done);
    }
    j->nar->n_windows++;
    pthread_cond_broadcast(&j->cv);
  }
  if (!text) job_fail(j, 500, "out of memory");
  pthread_mutex_unlock(&s->mu);
  free(text);
  return stop;
}

static void run_narrate(vblip_server *s, job *j) {
  piece_ctx ctx = {s, j, 0};
  vblip_narration_stats st;
  memset(&st, 0, sizeof st);
  j->merger.merge = j->nmerge;
  const char *prompt = j->prompt ? j->prompt : "";
  int rc =
      vblip_narrate(s->m, j->source, prompt, &j->nopts, &j->gen, on_narration_window, &ctx, &st);
  pthread_mutex_lock(&s->mu);
  if (rc != 0) {
    /* the client's video (unreadable, shorter than a window) or prompt: 422 / 400 */
    const char *err = vblip_last_error();
    char *msg = hide_path(err && *err ? err : "cannot narrate the video", j->e ? j->e->path : "",
                          j->e ? j->e->name : NULL);
    /* what fails in the narration is the video's reading (or the prompt): the client's to
     * fix, as an upload that cannot be decoded is; running out of memory is the server's */
    int ours =
        !msg || (strstr(msg, "out of memory") && vblip_last_error_kind() != VBLIP_ERROR_INPUT);
    job_fail(j, ours ? 500 : 422, msg ? msg : "out of memory");
    free(msg);
  } else if (!j->cancelled && !s->stopping) {
    vb_cue last;
    if (vb_cues_finish(&j->merger, &last)) {
      emit_cue(j, &last);
      vb_cue_free(&last);
    }
    j->nar->stats = st;
  }
  pthread_mutex_unlock(&s->mu);
}

/* locked: the last event of a finished narration */
static void emit_narration_done(job *j) {
  narration *n = j->nar;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", n->id);
  cJSON_AddNumberToObject(o, "windows", n->stats.windows);
  cJSON_AddNumberToObject(o, "skipped", n->stats.skipped);
  cJSON_AddNumberToObject(o, "cues", n->n_cues);
  cJSON_AddNumberToObject(o, "vision_frames", n->stats.vision_frames);
  cJSON_AddNumberToObject(o, "independent_frames", n->stats.windows * j->nopts.frames);
  cJSON_AddNumberToObject(o, "media_sec", n->stats.media_sec);
  cJSON_AddNumberToObject(o, "wall_ms", n->stats.wall_ms);
  cJSON_AddNumberToObject(o, "max_lag", n->stats.max_lag_sec);
  cJSON_AddNumberToObject(o, "real_time_factor",
                          n->stats.media_sec > 0 ? n->stats.wall_ms / 1000.0 / n->stats.media_sec
                                                 : 0);
  char url[96];
  cJSON *d = cJSON_AddObjectToObject(o, "downloads");
  static const char *const ext[] = {"vtt", "srt", "jsonl"};
  for (int i = 0; i < 3; i++) {
    snprintf(url, sizeof url, "/api/narrations/%s.%s", n->id, ext[i]);
    cJSON_AddStringToObject(d, ext[i], url);
  }
  cJSON_AddNumberToObject(o, "queue_ms", j->ms_queue);
  sse_event(j, "done", o);
  cJSON_Delete(o);
}

/* locked: when client was last served (0: never, or forgotten) */
static uint64_t client_served(vblip_server *s, const char *client) {
  for (int i = 0; i < MAX_FAIR_CLIENTS; i++)
    if (s->clients[i].served && strcmp(s->clients[i].name, client) == 0)
      return s->clients[i].served;
  return 0;
}

/* locked: remembers that client is served now, forgetting the least recent one if full */
static void client_mark_served(vblip_server *s, const char *client) {
  int at = 0;
  for (int i = 0; i < MAX_FAIR_CLIENTS; i++) {
    if (s->clients[i].served && strcmp(s->clients[i].name, client) == 0) {
      at = i;
      break;
    }
    if (s->clients[i].served < s->clients[at].served) at = i;
  }
  snprintf(s->clients[at].name, sizeof s->clients[at].name, "%s", client);
  s->clients[at].served = ++s->serve_tick;
}

/* locked: takes the next job off the queue, fairly: the job of the client served least
 * recently (so one client's burst cannot keep others waiting behind it), the oldest of
 * that client's; the queue keeps its order otherwise. */
static job *queue_take_fair(vblip_server *s) {
  int best = 0;
  uint64_t best_served = UINT64_MAX;
  for (int k = 0; k < s->q_count; k++) {
    uint64_t t = client_served(s, s->queue[(s->q_head + k) % s->q_cap]->client);
    if (t < best_served) best_served = t, best = k;
  }
  job *j = s->queue[(s->q_head + best) % s->q_cap];
  for (int m = best; m > 0; m--) /* close the gap: the jobs before it move up one place */
    s->queue[(s->q_head + m) % s->q_cap] = s->queue[(s->q_head + m - 1) % s->q_cap];
  s->q_head = (s->q_head + 1) % s->q_cap;
  s->q_count--;
  client_mark_served(s, j->client);
  return j;
}

static void *worker_main(void *arg) {
  vblip_server *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->stopping && s->q_count == 0) pthread_cond_wait(&s->work_cv, &s->mu);
    if (s->stopping) break;
    job *j = queue_take_fair(s);
    j->queued = 0;
    j->started = 1;
    j->ms_queue = now_ms() - j->t_enqueue;
    s->running = j;
    if (j->stream && j->format == FMT_NATIVE) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "queue_ms", j->ms_queue);
      if (j->nar) cJSON_AddStringToObject(o, "id", j->nar->id);
      sse_event(j, "start", o);
      cJSON_Delete(o);
      pthread_cond_broadcast(&j->cv);
    }
    int cancelled = j->cancelled;
    pthread_mutex_unlock(&s->mu);
    if (s->test_delay_ms > 0 && !cancelled) sleep_ms(s->test_delay_ms);
    if (!cancelled) {
      if (j->kind == JOB_ENCODE) ensure_encoded(s, j->e, j);
      else if (j->kind == JOB_SCORE)
        run_score(s, j);
      else if (j->kind == JOB_NARRATE)
        run_narrate(s, j);
      else run_chat(s, j);
    }
    pthread_mutex_lock(&s->mu);
    if (j->cancelled) job_fail(j, 503, "cancelled");
    if (j->error) emit_error_event(s, j);
    else if (j->kind == JOB_CHAT) emit_done(s, j);
    else if (j->kind == JOB_NARRATE)
      emit_narration_done(j);
    if (j->nar) {
      j->nar->done = 1;
      j->nar->failed = j->error != NULL;
      j->nar->cancelled = j->cancelled;
    }
    j->done = 1;
    s->running = NULL;
    pthread_cond_broadcast(&j->cv);
    job_release(s, j);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ------------------------------------------------------------- requests */

enum { BODY_NONE, BODY_JSON, BODY_UPLOAD };

typedef struct {
  vblip_server *s;
  int body_kind;
  vs_buf body;
  size_t body_limit;
  int too_large, failed, committed, answered;
  char method[24], path[512]; /* escaped, for the log */
  int malformed;   /* a multipart body the post processor refused: the client's fault */
  int store_errno; /* why storing the upload failed (failed): the server's fault */
  char limit_msg[256];
  struct MHD_PostProcessor *pp;
  char file_key[64];
  int fd;
  entry *e;
  size_t bytes;
  /* the access log and the fair queue */
  double t0;
  char client[64], client_group[64];
  unsigned status; /* of the queued response; 0: none */
  uint64_t sent;   /* bytes of the response body */
  char cors[256];  /* Access-Control-Allow-Origin, or empty */
} req;

/* The request of this connection's thread (libmicrohttpd: one thread per connection): the
 * response helpers record what they answer here, for the access log. */
static _Thread_local req *tl_req;

static void req_free(vblip_server *s, req *r) {
  if (r->pp) MHD_destroy_post_processor(r->pp);
  if (r->fd >= 0) close(r->fd);
  if (r->e) {
    pthread_mutex_lock(&s->mu);
    if (!r->committed) entry_unlist(s, r->e);
    entry_release(s, r->e);
    pthread_mutex_unlock(&s->mu);
  }
  vs_buf_free(&r->body);
  free(r);
}

/* --verbose: one line per request, with what the client asked escaped (it cannot forge
 * log lines) */
static void access_log(const req *r, enum MHD_RequestTerminationCode toe) {
  char status[16];
  if (r->status)
    snprintf(status, sizeof status, "%u", r->status);
  else
    snprintf(status, sizeof status, "-");
  fprintf(stderr, "vblip serve: %s \"%s %s\" %s %llu B %.1f ms%s\n", r->client, r->method, r->path,
          status, (unsigned long long)r->sent, now_ms() - r->t0,
          toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  vblip_server *s = cls;
  /* called before the library shuts the socket: a client that has read the whole answer
   * finds its connection's slot free */
  vs_guard_request_done(s->guard, c);
  req *r = *con_cls;
  if (r && s->o.verbose) access_log(r, toe);
  if (r) req_free(cls, r);
  *con_cls = NULL;
  tl_req = NULL;
}

/* Queues resp with the headers every answer has; bytes: its body (streams count later) */
static enum MHD_Result queue_response(struct MHD_Connection *c, unsigned status,
                                      struct MHD_Response *resp, uint64_t bytes) {
  /* one request per connection: every request head passes the connection guard */
  MHD_add_response_header(resp, "Connection", "close");
  if (status == 503) MHD_add_response_header(resp, "Retry-After", "2");
  if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"vblip\"");
  if (tl_req && tl_req->cors[0]) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", tl_req->cors);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Retry-After");
    if (strcmp(tl_req->cors, "*") != 0) MHD_add_response_header(resp, "Vary", "Origin");
  }
  if (tl_req) {
    tl_req->status = status;
    tl_req->sent = bytes;
  }
  enum MHD_Result r = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return r;
}

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *ctype, const void *data,
                                  size_t len, const char *cache) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", cache ? cache : "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  return queue_response(c, status, resp, len);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *o) {
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!txt) return MHD_NO;
  enum MHD_Result r = send_bytes(c, status, "application/json", txt, strlen(txt), NULL);
  free(txt);
  return r;
}

static int is_openai_url(const char *url) { return strncmp(url, "/v1/", 4) == 0; }

static enum MHD_Result send_error(struct MHD_Connection *c, const char *url, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(struct MHD_Connection *c, const char *url, unsigned status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *txt = vs_error_json(url, strlen(url), status, msg);
  if (!txt) return MHD_NO;
  enum MHD_Result r = send_bytes(c, status, "application/json", txt, strlen(txt), NULL);
  free(txt);
  return r;
}

/* An error naming the request field at fault (OpenAI's "param") and OpenAI's code */
static enum MHD_Result send_error_param(struct MHD_Connection *c, const char *url, unsigned status,
                                        const char *param, const char *code, const char *msg) {
  char *txt = vs_error_json_param(url, strlen(url), status, msg, param, code);
  if (!txt) return MHD_NO;
  enum MHD_Result r = send_bytes(c, status, "application/json", txt, strlen(txt), NULL);
  free(txt);
  return r;
}

static const char *header(struct MHD_Connection *c, const char *name) {
  return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static int peer_gone(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return 0;
  struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
  if (poll(&p, 1, 0) <= 0) return 0;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* Waits for j; cancels it when the client goes away or the server stops. */
static void wait_job(vblip_server *s, job *j, struct MHD_Connection *c) {
  pthread_mutex_lock(&s->mu);
  while (!j->done) {
    struct timespec ts;
    deadline_in(&ts, 200);
    pthread_cond_timedwait(&j->cv, &s->mu, &ts);
    if (j->done) break;
    if (s->stopping || (c && peer_gone(c))) {
      job_cancel(s, j);
      if (s->stopping && !j->done) {
        job_fail(j, 503, "the server is shutting down");
        break;
      }
    }
  }
  pthread_mutex_unlock(&s->mu);
}

/* Encodes e in the worker (if not done yet). 0, or an HTTP status with msg. */
static int encode_entry(vblip_server *s, entry *e, struct MHD_Connection *c, char *msg, size_t cap) {
  pthread_mutex_lock(&s->mu);
  if (e->state == V_READY) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  if (e->state == V_FAILED) {
    snprintf(msg, cap, "%s", e->error ? e->error : "cannot read the video");
    pthread_mutex_unlock(&s->mu);
    return 422;
  }
  job *j = job_new(JOB_ENCODE);
  if (!j) {
    pthread_mutex_unlock(&s->mu);
    snprintf(msg, cap, "out of memory");
    return 500;
  }
  j->e = e;
  e->refs++;
  if (tl_req) snprintf(j->client, sizeof j->client, "%s", tl_req->client_group);
  if (job_enqueue(s, j) != 0) {
    snprintf(msg, cap, s->stopping ? "the server is shutting down" : "the server is busy: too many requests waiting");
    job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return 503;
  }
  pthread_mutex_unlock(&s->mu);
  wait_job(s, j, c);
  pthread_mutex_lock(&s->mu);
  int status = 0;
  if (j->error) {
    status = j->status ? j->status : 500;
    snprintf(msg, cap, "%s", j->error);
  }
  job_release(s, j);
  pthread_mutex_unlock(&s->mu);
  return status;
}

static cJSON *video_json(vblip_server *s, entry *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", e->id);
  cJSON_AddStringToObject(o, "name", e->name);
  cJSON_AddNumberToObject(o, "bytes", (double)e->bytes);
  cJSON_AddStringToObject(o, "state", e->state == V_READY ? "ready" : e->state == V_FAILED ? "failed" : "new");
  cJSON *fr = cJSON_AddArrayToObject(o, "frames");
  for (int i = 0; i < e->n_frames; i++) {
    cJSON *f = cJSON_CreateObject();
    char url[128];
    snprintf(url, sizeof url, "/api/videos/%s/frames/%d", e->id, i);
    cJSON_AddNumberToObject(f, "index", (double)e->frame_index[i]);
    cJSON_AddNumberToObject(f, "time", e->frame_time[i]);
    if (e->thumbs && e->thumbs[i]) cJSON_AddStringToObject(f, "thumbnail", url);
    cJSON_AddItemToArray(fr, f);
  }
  (void)s;
  return o;
}

/* POST /api/videos, multipart: the first file field */
static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                 const char *content_type, const char *transfer_encoding, const char *data,
                                 uint64_t off, size_t size) {
  (void)kind;
  (void)transfer_encoding;
  (void)off;
  req *r = cls;
  vblip_server *s = r->s;
  if (r->too_large || r->failed || !key) return MHD_YES;
  if (!filename && strcmp(key, "file") != 0 && strcmp(key, "video") != 0) return MHD_YES;
  if (!r->e) {
    r->e = entry_create(s, content_type, filename, &r->fd);
    if (!r->e) {
      r->failed = 1;
      r->store_errno = errno;
      return MHD_YES;
    }
    snprintf(r->file_key, sizeof r->file_key, "%s", key);
  } else if (strcmp(key, r->file_key) != 0 || r->committed) {
    return MHD_YES;
  }
  if (r->bytes + size > s->o.max_upload_bytes) {
    r->too_large = 1;
    return MHD_YES;
  }
  if (size && write_all(r->fd, data, size) != 0) r->failed = 1, r->store_errno = errno;
  r->e->hash = vs_hash(data, size, r->e->hash);
  r->bytes += size;
  return MHD_YES;
}

static enum MHD_Result upload_data(req *r, struct MHD_Connection *c, const char *data, size_t size) {
  vblip_server *s = r->s;
  if (r->too_large || r->failed || r->malformed) return MHD_YES;
  if (r->pp) {
    if (MHD_post_process(r->pp, data, size) != MHD_YES) r->malformed = 1;
    return MHD_YES;
  }
  if (!r->e) {
    r->e = entry_create(s, header(c, "Content-Type"), header(c, "X-Filename"), &r->fd);
    if (!r->e) {
      r->failed = 1;
      r->store_errno = errno;
      return MHD_YES;
    }
  }
  if (r->bytes + size > s->o.max_upload_bytes) {
    r->too_large = 1;
    return MHD_YES;
  }
  if (write_all(r->fd, data, size) != 0) r->failed = 1, r->store_errno = errno;
  r->e->hash = vs_hash(data, size, r->e->hash);
  r->bytes += size;
  return MHD_YES;
}

static double max_upload_mib(vblip_server *s) { return (double)s->o.max_upload_bytes / (1024.0 * 1024.0); }

/* The 413 messages (kept in r: they outlive the call that answers) */
static const char *upload_too_large(vblip_server *s, req *r) {
  snprintf(r->limit_msg, sizeof r->limit_msg, "the upload is larger than the limit of %g MiB",
           max_upload_mib(s));
  return r->limit_msg;
}

static const char *json_too_large(vblip_server *s, req *r) {
  snprintf(r->limit_msg, sizeof r->limit_msg,
           "the request body is larger than the limit of %g KiB for JSON requests: upload videos "
           "with POST /api/videos and refer to them by id",
           (double)s->o.max_json_bytes / 1024.0);
  return r->limit_msg;
}

static enum MHD_Result finish_upload(vblip_server *s, req *r, struct MHD_Connection *c, const char *url) {
  if (r->too_large) return send_error(c, url, 413, "%s", upload_too_large(s, r));
  if (r->failed)
    return send_error(c, url, 500, "cannot store the upload: %s", strerror(r->store_errno));
  if (r->malformed) return send_error(c, url, 400, "malformed multipart upload");
  if (!r->e || r->bytes == 0)
    return send_error(c, url, 400, r->pp || !r->e ? "no file in the upload (send the video as the request body "
                                                    "or as a multipart field 'file')"
                                                  : "the upload is empty");
  close(r->fd);
  r->fd = -1;
  entry *e = r->e;
  pthread_mutex_lock(&s->mu);
  e->bytes = r->bytes;
  entry_list(s, e);
  r->committed = 1;
  pthread_mutex_unlock(&s->mu);
  char msg[1024];
  int status = encode_entry(s, e, c, msg, sizeof msg);
  if (status) {
    pthread_mutex_lock(&s->mu);
    entry_unlist(s, e);
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, (unsigned)status, "%s", msg);
  }
  pthread_mutex_lock(&s->mu);
  cJSON *o = video_json(s, e);
  pthread_mutex_unlock(&s->mu);
  return send_json(c, 201, o);
}

/* --------------------------------------------------------------- chats */

/* One part of the conversation in order (interleaved layout): a text, or a video reference. */
typedef struct {
  const char *text, *video;
} conv_part;

typedef struct {
  const char **users, **answers;
  char **owned; /* strings joined from content parts */
  size_t n, n_owned;
  const char *message;
  conv_part *parts; /* every message's text and the user messages' videos, in order */
  size_t n_parts, cap_parts;
  const char *last_video; /* the last video of the user messages */
} turns;

static int conv_add(turns *t, const char *text, const char *video) {
  if (t->n_parts == t->cap_parts) {
    size_t cap = t->cap_parts ? 2 * t->cap_parts : 16;
    conv_part *p = realloc(t->parts, cap * sizeof *p);
    if (!p) return -1;
    t->parts = p;
    t->cap_parts = cap;
  }
  t->parts[t->n_parts++] = (conv_part){text, video};
  if (video) t->last_video = video;
  return 0;
}

static void turns_free(turns *t) {
  for (size_t i = 0; i < t->n_owned; i++) free(t->owned[i]);
  free(t->owned);
  free(t->users);
  free(t->answers);
  free(t->parts);
}

/* The text of a message's content: a string, or the text parts joined with spaces.
 * Each text and (user messages only: videos) each video part is also recorded in order
 * in t->parts. */
static int content_text(turns *t, const cJSON *content, int user, const char **text, char *msg,
                        size_t cap) {
  if (cJSON_IsString(content)) {
    *text = content->valuestring;
    if (conv_add(t, content->valuestring, NULL) != 0) goto oom;
    return 0;
  }
  if (!cJSON_IsArray(content)) {
    snprintf(msg, cap, "a message's 'content' must be a string or an array of parts");
    return -1;
  }
  vs_buf b = {0};
  vs_buf_puts(&b, "");
  for (const cJSON *part = content->child; part; part = part->next) {
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "type"));
    if (!type) {
      vs_buf_free(&b);
      snprintf(msg, cap, "a content part needs a 'type'");
      return -1;
    }
    if (strcmp(type, "text") == 0) {
      const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "text"));
      if (!s) {
        vs_buf_free(&b);
        snprintf(msg, cap, "a text part needs 'text'");
        return -1;
      }
      if (b.len) vs_buf_puts(&b, " ");
      vs_buf_puts(&b, s);
      if (conv_add(t, s, NULL) != 0) goto oom_buf;
    } else if (strcmp(type, "video_url") == 0 || strcmp(type, "image_url") == 0 || strcmp(type, "video") == 0) {
      int native = strcmp(type, "video") == 0;
      const cJSON *u = cJSON_GetObjectItemCaseSensitive(part, native ? "video" : type);
      const char *url = cJSON_IsString(u) ? u->valuestring
                                          : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "url"));
      if (!url && native)
        url = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "video_id"));
      if (!url) {
        vs_buf_free(&b);
        snprintf(msg, cap,
                 native ? "a video part needs 'video_id'" : "a %s part needs {\"url\": ...}", type);
        return -1;
      }
      if (user && conv_add(t, NULL, url) != 0) goto oom_buf;
    } else {
      vs_buf_free(&b);
      snprintf(msg, cap, "unsupported content part type '%s' (text, video_url, image_url, video)",
               type);
      return -1;
    }
  }
  char **owned = realloc(t->owned, (t->n_owned + 1) * sizeof *owned);
  if (!owned) goto oom_buf;
  t->owned = owned;
  t->owned[t->n_owned++] = b.data;
  *text = b.data;
  return 0;
oom_buf:
  vs_buf_free(&b);
oom:
  snprintf(msg, cap, "out of memory");
  return -1;
}

/* messages → earlier turns and the new message (the last, a user message) */
static int parse_messages(const cJSON *msgs, turns *t, char *msg, size_t cap) {
  memset(t, 0, sizeof *t);
  if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
    snprintf(msg, cap, "'messages' must be a non-empty array");
    return -1;
  }
  size_t n = (size_t)cJSON_GetArraySize(msgs);
  t->users = calloc(n, sizeof *t->users);
  t->answers = calloc(n, sizeof *t->answers);
  if (!t->users || !t->answers) {
    snprintf(msg, cap, "out of memory");
    return -1;
  }
  const char *pending = NULL;
  int have_pending = 0, last_user = 0;
  for (const cJSON *m = msgs->child; m; m = m->next) {
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsObject(m) || !role) {
      snprintf(msg, cap, "each message needs a 'role'");
      return -1;
    }
    if (!content || (cJSON_IsNull(content) && strcmp(role, "assistant") != 0)) {
      snprintf(msg, cap, "each message needs 'content'");
      return -1;
    }
    const char *text = "";
    int system = strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
    if (!cJSON_IsNull(content) && !system &&
        content_text(t, content, strcmp(role, "user") == 0, &text, msg, cap) != 0)
      return -1;
    if (strcmp(role, "user") == 0) {
      if (have_pending) { /* two user messages in a row: the first had no answer */
        t->users[t->n] = pending;
        t->answers[t->n++] = "";
      }
      pending = text;
      have_pending = 1;
      last_user = 1;
    } else if (strcmp(role, "assistant") == 0) {
      t->users[t->n] = have_pending ? pending : "";
      t->answers[t->n++] = text;
      have_pending = 0;
      last_user = 0;
    } else if (system) {
      /* the model has no system prompt: ignored */
    } else {
      snprintf(msg, cap, "unknown role '%s' (user, assistant or system)", role);
      return -1;
    }
  }
  if (!last_user) {
    snprintf(msg, cap, "the last message must be the user's");
    return -1;
  }
  t->message = pending;
  return 0;
}

static int valid_id(const char *id) {
  if (!id || strlen(id) != 2 * ID_BYTES) return 0;
  for (const char *p = id; *p; p++)
    if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p)) return 0;
  return 1;
}

/* A video reference from an OpenAI part: a data: URL (stored, deduplicated by
 * content) or an uploaded id (bare, "vblip:ID" or ".../api/videos/ID"). Returns the
 * entry (refs + 1) or NULL with an HTTP status and msg. */
static entry *resolve_video_url(vblip_server *s, const char *url, int *status, char *msg, size_t cap) {
  if (strncmp(url, "data:", 5) == 0) {
    const char *comma = strchr(url, ',');
    if (!comma) {
      *status = 400;
      snprintf(msg, cap, "malformed data: URL");
      return NULL;
    }
    char mime[64] = "";
    size_t ml = strcspn(url + 5, ";,");
    if (ml < sizeof mime) memcpy(mime, url + 5, ml), mime[ml] = 0;
    if (!memmem(url, (size_t)(comma - url), ";base64", 7)) {
      *status = 400;
      snprintf(msg, cap, "data: URLs must be base64-encoded");
      return NULL;
    }
    size_t n = strlen(comma + 1);
    if (n / 4 * 3 > s->o.max_upload_bytes + 3) {
      *status = 413;
      snprintf(msg, cap, "the video is larger than the limit of %g MiB", max_upload_mib(s));
      return NULL;
    }
    unsigned char *bytes = malloc(n / 4 * 3 + 4);
    if (!bytes) {
      *status = 500;
      snprintf(msg, cap, "out of memory");
      return NULL;
    }
    long len = vs_base64_decode(comma + 1, n, bytes);
    if (len <= 0) {
      free(bytes);
      *status = 400;
      snprintf(msg, cap, len == 0 ? "the data: URL is empty" : "the data: URL is not valid base64");
      return NULL;
    }
    if ((size_t)len > s->o.max_upload_bytes) {
      free(bytes);
      *status = 413;
      snprintf(msg, cap, "the video is larger than the limit of %g MiB", max_upload_mib(s));
      return NULL;
    }
    uint64_t h = vs_hash(bytes, (size_t)len, VS_HASH_INIT);
    pthread_mutex_lock(&s->mu);
    for (entry *p = s->videos; p; p = p->next)
      if (p->hash == h && p->bytes == (size_t)len && p->state != V_FAILED) {
        p->refs++;
        p->last_used = ++s->clock;
        pthread_mutex_unlock(&s->mu);
        free(bytes);
        return p;
      }
    pthread_mutex_unlock(&s->mu);
    int fd;
    entry *e = entry_create(s, mime, NULL, &fd);
    if (!e || write_all(fd, bytes, (size_t)len) != 0) {
      if (e) {
        close(fd);
        entry_destroy(e);
      }
      free(bytes);
      *status = 500;
      snprintf(msg, cap, "cannot store the video: %s", strerror(errno));
      return NULL;
    }
    close(fd);
    free(bytes);
    snprintf(e->name, sizeof e->name, "data-url.%s", ext_for(mime, NULL));
    e->bytes = (size_t)len;
    e->hash = h;
    pthread_mutex_lock(&s->mu);
    entry_list(s, e);
    pthread_mutex_unlock(&s->mu);
    return e;
  }
  const char *id = url;
  if (strncmp(id, "vblip:", 6) == 0) id += 6;
  const char *slash = strstr(id, "/api/videos/");
  if (slash) id = slash + strlen("/api/videos/");
  if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
    if (!slash || !valid_id(id)) {
      *status = 400;
      snprintf(msg, cap, "remote URLs are not fetched: send a data: URL or the id of an uploaded video");
      return NULL;
    }
  }
  if (!valid_id(id)) {
    *status = 400;
    snprintf(msg, cap, "'%.80s' is neither a data: URL nor a video id", url);
    return NULL;
  }
  pthread_mutex_lock(&s->mu);
  entry *e = entry_get(s, id);
  pthread_mutex_unlock(&s->mu);
  if (!e) {
    *status = 404;
    snprintf(msg, cap, "no video with id %s (it may have expired: upload it again)", id);
  }
  return e;
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
    if (pthread_cond_timedwait(&j->cv, &s->mu, &ts) == ETIMEDOUT && j->out.len == j->out_pos && !j->done) {
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
  if (!sc->j->done) job_cancel(s, sc->j); /* the client left mid-stream */
  job_release(s, sc->j);
  pthread_mutex_unlock(&s->mu);
  free(sc);
}

/* A text/event-stream response that sends job j's events as they come; it takes over the
 * caller's reference to j. NULL when it cannot be made: the job is then cancelled and
 * released. */
static struct MHD_Response *event_stream_response(vblip_server *s, job *j, req *r) {
  stream_ctx *sc = malloc(sizeof *sc);
  struct MHD_Response *resp =
      sc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, sc, stream_free)
         : NULL;
  if (!resp) {
    free(sc);
    pthread_mutex_lock(&s->mu);
    job_cancel(s, j);
    job_release(s, j);
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

/* The request's "video_id" (a string) and "video_ids" (an array of strings): videos that
 * come before the messages. */
static int lead_videos(const cJSON *root, const char **lead, int *n, char *msg, size_t cap) {
  *n = 0;
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(root, "video_id");
  const cJSON *many = cJSON_GetObjectItemCaseSensitive(root, "video_ids");
  if (one && !cJSON_IsNull(one)) {
    if (!cJSON_IsString(one)) {
      snprintf(msg, cap, "'video_id' must be a string");
      return -1;
    }
    lead[(*n)++] = one->valuestring;
  }
  if (many && !cJSON_IsNull(many)) {
    if (!cJSON_IsArray(many)) {
      snprintf(msg, cap, "'video_ids' must be an array of strings");
      return -1;
    }
    for (const cJSON *v = many->child; v; v = v->next) {
      if (!cJSON_IsString(v)) {
        snprintf(msg, cap, "'video_ids' must be an array of strings");
        return -1;
      }
      if (*n == MAX_CHAT_VIDEOS) {
        snprintf(msg, cap, "more than %d videos in one conversation", MAX_CHAT_VIDEOS);
        return -1;
      }
      lead[(*n)++] = v->valuestring;
    }
  }
  return 0;
}

/* The input as one line: its texts, and "<video>" where a video stands. */
static char *render_items(const chat_item *items, int n) {
  vs_buf b = {0};
  vs_buf_puts(&b, "");
  for (int i = 0; i < n; i++) {
    if (b.len) vs_buf_puts(&b, " ");
    vs_buf_puts(&b, items[i].e ? "<video>" : items[i].text);
  }
  return b.data;
}

#define MAX_CANDIDATES 256
#define MAX_CANDIDATE_BYTES 1024

/* POST /api/score's "candidates": copies into j, or -1 with msg. */
static int parse_candidates(const cJSON *a, job *j, char *msg, size_t cap) {
  int n = cJSON_GetArraySize(a);
  if (!cJSON_IsArray(a) || n < 1 || n > MAX_CANDIDATES) {
    snprintf(msg, cap, "'candidates' must be an array of 1 to %d strings", MAX_CANDIDATES);
    return -1;
  }
  if (!(j->cands = calloc((size_t)n, sizeof *j->cands))) {
    snprintf(msg, cap, "out of memory");
    return -1;
  }
  for (const cJSON *v = a->child; v; v = v->next) {
    if (!cJSON_IsString(v) || strlen(v->valuestring) > MAX_CANDIDATE_BYTES ||
        !v->valuestring[strspn(v->valuestring, " \t\r\n")]) {
      snprintf(msg, cap, "each candidate must be a non-blank string of at most %d bytes",
               MAX_CANDIDATE_BYTES);
      return -1;
    }
    if (!(j->cands[j->n_cands++] = strdup(v->valuestring))) {
      snprintf(msg, cap, "out of memory");
      return -1;
    }
  }
  return 0;
}

/* locked: the candidates best first */
static cJSON *score_result(job *j) {
  cJSON *o = cJSON_CreateObject();
  cJSON *a = cJSON_AddArrayToObject(o, "scores");
  int *order = malloc((size_t)j->n_cands * sizeof *order);
  for (int i = 0; order && i < j->n_cands; i++) {
    int k = i; /* insertion: stable, so equal scores keep the request's order */
    while (k > 0 && j->cand_ll[order[k - 1]] < j->cand_ll[i]) {
      order[k] = order[k - 1];
      k--;
    }
    order[k] = i;
  }
  for (int i = 0; order && i < j->n_cands; i++) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "candidate", j->cands[order[i]]);
    cJSON_AddNumberToObject(c, "mean_log_likelihood", j->cand_ll[order[i]]);
    cJSON_AddNumberToObject(c, "tokens", j->cand_tokens[order[i]]);
    cJSON_AddNumberToObject(c, "index", order[i]);
    cJSON_AddItemToArray(a, c);
  }
  free(order);
  cJSON_AddStringToObject(o, "prompt", j->prompt ? j->prompt : "");
  add_video_ids(o, j);
  cJSON *t = cJSON_AddObjectToObject(o, "timings_ms");
  cJSON_AddNumberToObject(t, "queue", j->ms_queue);
  cJSON_AddNumberToObject(t, "score", j->ms_generate);
  return o;
}

/* The input the worker will lay out, checked in the request's thread: its videos are
 * encoded by now. 0, or -1 with msg. */
static int check_input(vblip_server *s, const chat_item *items, int n, char *msg, size_t cap) {
  vblip_input *in = items_input(items, n);
  size_t n_ids;
  int rc = in ? input_positions(s, in, &n_ids) : -1;
  vblip_input_free(in);
  if (rc != 0) snprintf(msg, cap, "%s", vblip_last_error());
  return rc;
}

/* POST /api/chat, /v1/chat/completions (openai) and /api/score (score): the same
 * conversation; a chat answers it, a score ranks the request's candidates after it. */
static enum MHD_Result handle_chat(vblip_server *s, req *r, struct MHD_Connection *c, const char *url, int openai) {
  char msg[1024];
  int score = strcmp(url, "/api/score") == 0;
  /* JSON is UTF-8 (RFC 8259): other bytes would reach the tokenizer, and the logs */
  const char *body = r->body.data ? r->body.data : "";
  size_t bad;
  if (!vb_utf8_valid(body, r->body.len, &bad))
    return send_error(c, url, 400, "the request body is not valid UTF-8 (byte %zu)", bad);
  /* one JSON value and nothing after it */
  cJSON *root = vb_json_parse(body, r->body.len, "the request body");
  if (!root) return send_error(c, url, 400, "%s", vb_error_message());
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return send_error(c, url, 400, "the request body must be a JSON object");
  }
  vblip_gen_params gen = s->o.gen;
  int stream = 0;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
  if (st && !cJSON_IsNull(st)) {
    if (!cJSON_IsBool(st)) {
      cJSON_Delete(root);
      return send_error(c, url, 400, "'stream' must be true or false");
    }
    stream = cJSON_IsTrue(st);
  }
  if (score && stream) {
    cJSON_Delete(root);
    return send_error(c, url, 400, "scores are not streamed");
  }
  turns t;
  chat_item *items = NULL;
  int n_items = 0, status = 400;
  char *prompt = NULL;
  const char *lead[MAX_CHAT_VIDEOS]; /* videos named outside the messages, in front */
  int n_lead = 0;
  vs_openai_extras oa;
  memset(&oa, 0, sizeof oa);
  char err_param[64] = ""; /* OpenAI's "param" of an error */
  const char *err_code = NULL;
  if (parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), &t, msg, sizeof msg) != 0)
    goto fail;
  if (openai) {
    const char *param, *code;
    if (vs_openai_request(root, &gen, &oa, msg, sizeof msg, &param, &code) != 0) {
      snprintf(err_param, sizeof err_param, "%s", param ? param : "");
      err_code = code;
      goto fail;
    }
  }
  if (vs_parse_settings(cJSON_GetObjectItemCaseSensitive(root, "settings"), &gen, msg,
                        sizeof msg) != 0)
    goto fail;
  if (lead_videos(root, lead, &n_lead, msg, sizeof msg) != 0) goto fail;
  if (vblip_model_layout(s->m) == VBLIP_LAYOUT_INTERLEAVED) {
    /* the conversation as it came: videos in front, then every message's text and videos */
    size_t n_videos = (size_t)n_lead;
    for (size_t i = 0; i < t.n_parts; i++)
      n_videos += t.parts[i].video != NULL;
    if (n_videos > MAX_CHAT_VIDEOS) {
      snprintf(msg, sizeof msg, "%zu videos in one conversation; at most %d", n_videos,
               MAX_CHAT_VIDEOS);
      goto fail;
    }
    items = calloc((size_t)n_lead + t.n_parts + 1, sizeof *items);
    if (!items) goto oom;
    for (int i = 0; i < n_lead; i++, n_items++)
      if (!(items[n_items].e = resolve_video_url(s, lead[i], &status, msg, sizeof msg))) goto fail;
    for (size_t i = 0; i < t.n_parts; i++, n_items++) {
      if (t.parts[i].video) {
        if (!(items[n_items].e = resolve_video_url(s, t.parts[i].video, &status, msg, sizeof msg)))
          goto fail;
      } else if (!(items[n_items].text = strdup(t.parts[i].text))) {
        goto oom;
      }
    }
    prompt = render_items(items, n_items);
  } else {
    /* BLIP-2: one video (the last one named) and the demo's conversation prompt */
    const char *ref = t.last_video ? t.last_video : n_lead ? lead[n_lead - 1] : NULL;
    if (!ref) {
      snprintf(
          msg, sizeof msg,
          openai
              ? "no video: add a content part {\"type\": \"video_url\", \"video_url\": {\"url\": "
                "\"data:video/mp4;base64,...\" or an uploaded video id}} to a user message"
              : "missing field 'video_id' (upload the video with POST /api/videos first)");
      goto fail;
    }
    items = calloc(2, sizeof *items);
    if (!items) goto oom;
    if (!(items[0].e = resolve_video_url(s, ref, &status, msg, sizeof msg))) goto fail;
    n_items = 1;
    prompt = vblip_chat_prompt(t.users, t.answers, t.n, t.message);
    if (!prompt || !(items[1].text = strdup(prompt))) goto oom;
    n_items = 2;
  }
  if (!prompt) goto oom;
  /* videos not encoded yet (new data: URLs) are checked before any answer starts */
  for (int i = 0; i < n_items; i++) {
    if (!items[i].e) continue;
    status = encode_entry(s, items[i].e, c, msg, sizeof msg);
    if (status) {
      if (status == 422 && openai) {
        pthread_mutex_lock(&s->mu);
        entry_unlist(s, items[i].e);
        pthread_mutex_unlock(&s->mu);
      }
      goto fail;
    }
  }
  /* an input the model cannot take (too long, text that is not UTF-8) is the client's
   * error, found before the answer starts (and before a stream's 200), tokenized only up
   * to the model's limit */
  if (check_input(s, items, n_items, msg, sizeof msg) != 0) {
    status = 400;
    goto fail;
  }
  job *j = job_new(score ? JOB_SCORE : JOB_CHAT);
  if (!j) goto oom;
  if (score && parse_candidates(cJSON_GetObjectItemCaseSensitive(root, "candidates"), j, msg,
                                sizeof msg) != 0) {
    pthread_mutex_lock(&s->mu);
    job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    goto fail;
  }
  j->items = items;
  j->n_items = n_items;
  items = NULL;
  n_items = 0;
  j->prompt = prompt;
  prompt = NULL;
  turns_free(&t);
  cJSON_Delete(root);
  root = NULL;
  j->gen = gen;
  snprintf(j->client, sizeof j->client, "%s", r->client_group);
  j->oa = oa; /* the job owns the stop strings now */
  memset(&oa, 0, sizeof oa);
  j->stream = stream;
  j->format = openai ? FMT_OPENAI : FMT_NATIVE;
  j->created = (long)time(NULL);
  char rnd[25];
  if (vs_random_hex(rnd, 12) != 0) snprintf(rnd, sizeof rnd, "%lx", (unsigned long)j->created);
  snprintf(j->oa_id, sizeof j->oa_id, "chatcmpl-%s", rnd);
  pthread_mutex_lock(&s->mu);
  if (stream && openai) {
    cJSON *o = oa_chunk(s, j, "assistant", "", NULL);
    sse_event(j, NULL, o);
    cJSON_Delete(o);
  }
  int qrc = job_enqueue(s, j);
  int waiting = s->q_count;
  pthread_mutex_unlock(&s->mu);
  if (qrc != 0) {
    int stopping = s->stopping;
    pthread_mutex_lock(&s->mu);
    job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 503,
                      stopping ? "the server is shutting down" : "the server is busy: %d requests are waiting; retry later",
                      waiting);
  }
  if (stream) {
    struct MHD_Response *resp = event_stream_response(s, j, r);
    return resp ? queue_response(c, 200, resp, 0) : MHD_NO;
  }
  wait_job(s, j, c);
  pthread_mutex_lock(&s->mu);
  cJSON *o = NULL;
  unsigned code = 200;
  if (j->error) {
    code = j->status ? (unsigned)j->status : 500;
    snprintf(msg, sizeof msg, "%s", j->error);
  } else {
    o = score ? score_result(j) : openai ? oa_result(s, j) : native_result(s, j);
  }
  job_release(s, j);
  pthread_mutex_unlock(&s->mu);
  if (!o) return send_error(c, url, code, "%s", msg);
  return send_json(c, 200, o);
oom:
  status = 500;
  snprintf(msg, sizeof msg, "out of memory");
fail:
  if (root) turns_free(&t);
  cJSON_Delete(root);
  free(prompt);
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < n_items; i++) {
    entry_release(s, items[i].e);
    free(items[i].text);
  }
  pthread_mutex_unlock(&s->mu);
  free(items);
  vs_openai_extras_free(&oa);
  return send_error_param(c, url, (unsigned)status, err_param[0] ? err_param : NULL, err_code, msg);
}

/* -------------------------------------------------------------- narrate */

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

/* locked: takes n off the download list (a narration that failed before it streamed) */
static void narration_unlist(vblip_server *s, narration *n) {
  for (narration **p = &s->narrations; *p; p = &(*p)->next)
    if (*p == n) {
      *p = n->next;
      s->n_narrations--;
      n->listed = 0;
      return;
    }
}

/* POST /api/narrate: the uploaded video (or ?url= with --allow-url-input), narrated in the
 * worker; cues stream as Server-Sent Events. The answer's status waits for the first window
 * (or the end), so that a video the decoder cannot read, or one shorter than a window, is a
 * 422 rather than an error event. */
static enum MHD_Result handle_narrate(vblip_server *s, req *r, struct MHD_Connection *c,
                                      const char *url) {
  if (r->too_large) return send_error(c, url, 413, "%s", upload_too_large(s, r));
  if (r->failed)
    return send_error(c, url, 500, "cannot store the upload: %s", strerror(r->store_errno));
  if (r->malformed) return send_error(c, url, 400, "malformed multipart upload");
  vs_narrate_args a;
  memset(&a, 0, sizeof a);
  a.gen = s->o.gen;
  vblip_narrate_options_default(&a.no);
  a.prompt = NARRATE_PROMPT;
  a.merge = 1;
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, narrate_arg, &a);
  if (a.bad) return send_error(c, url, 400, "%s", a.msg);
  size_t bad;
  if (strlen(a.prompt) > NARRATE_MAX_PROMPT)
    return send_error(c, url, 400, "'prompt' is longer than %d bytes", NARRATE_MAX_PROMPT);
  if (!vb_utf8_valid(a.prompt, strlen(a.prompt), &bad))
    return send_error(c, url, 400, "'prompt' is not valid UTF-8 (byte %zu)", bad);
  if (vblip_narrate_options_check(&a.no) != 0)
    return send_error(c, url, 400, "%s", vblip_last_error());
  int have_file = r->e && r->bytes > 0;
  if (a.url) {
    if (!s->o.allow_url_input)
      return send_error(c, url, 403,
                        "this server does not open URLs: upload the video (or start the server "
                        "with --allow-url-input)");
    if (have_file) return send_error(c, url, 400, "give either an upload or 'url', not both");
    if (!url_source(a.url) || strlen(a.url) > 2048)
      return send_error(c, url, 400, "'url' must be an http://, https://, rtsp:// or rtsps:// URL");
    a.no.allow_network = 1;
    a.no.live = -1; /* a stream: skip windows rather than fall behind */
  } else {
    if (!have_file)
      return send_error(c, url, 400,
                        r->e ? "the upload is empty"
                             : "no video: send it as the request body or as a multipart field "
                               "'file'");
    a.no.live = 0;
    close(r->fd);
    r->fd = -1;
  }
  pthread_mutex_lock(&s->mu);
  job *j = job_new(JOB_NARRATE);
  narration *n = j ? narration_new(s, a.url ? a.url : r->e->name) : NULL;
  if (!j || !n || !(j->source = strdup(a.url ? a.url : r->e->path)) ||
      !(j->prompt = strdup(a.prompt))) {
    if (j) {
      j->nar = n;
      if (n) narration_unlist(s, n);
      job_release(s, j);
    }
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 500, "out of memory");
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
  if (job_enqueue(s, j) != 0) {
    int stopping = s->stopping, waiting = s->q_count;
    narration_unlist(s, n);
    job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 503,
                      stopping ? "the server is shutting down"
                               : "the server is busy: %d requests are waiting; retry later",
                      waiting);
  }
  /* the first window, or the end */
  while (!j->done && n->n_windows == 0) {
    struct timespec ts;
    deadline_in(&ts, 200);
    pthread_cond_timedwait(&j->cv, &s->mu, &ts);
    if (j->done || n->n_windows > 0) break;
    if (s->stopping || peer_gone(c)) { /* the worker stops at its next window */
      job_cancel(s, j);
      j->cancelled = 1;
      narration_unlist(s, n);
      job_release(s, j);
      pthread_mutex_unlock(&s->mu);
      return MHD_NO;
    }
  }
  if (j->done && j->error) {
    char msg[1024];
    unsigned status = j->status ? (unsigned)j->status : 500;
    snprintf(msg, sizeof msg, "%s", j->error);
    narration_unlist(s, n);
    job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, status, "%s", msg);
  }
  pthread_mutex_unlock(&s->mu);
  struct MHD_Response *resp = event_stream_response(s, j, r);
  if (!resp) return MHD_NO;
  char loc[96];
  snprintf(loc, sizeof loc, "/api/narrations/%s", n->id);
  MHD_add_response_header(resp, "X-Narration", loc);
  return queue_response(c, 200, resp, 0);
}

/* GET /api/narrations/ID (a description) or ID.vtt, ID.srt, ID.jsonl (the cues so far; all of
 * them once done) */
static enum MHD_Result handle_narration_get(vblip_server *s, struct MHD_Connection *c,
                                            const char *url, const char *rest) {
  char id[2 * ID_BYTES + 1];
  size_t len = strcspn(rest, ".");
  if (len != 2 * ID_BYTES) return send_error(c, url, 404, "no such narration");
  memcpy(id, rest, len);
  id[len] = 0;
  const char *ext = rest[len] ? rest + len + 1 : NULL;
  int f = !ext                    ? -1
          : !strcmp(ext, "vtt")   ? VS_NF_VTT
          : !strcmp(ext, "srt")   ? VS_NF_SRT
          : !strcmp(ext, "jsonl") ? VS_NF_JSONL
                                  : -2;
  if (f == -2) return send_error(c, url, 404, "no such format: .vtt, .srt or .jsonl");
  pthread_mutex_lock(&s->mu);
  narration *n = valid_id(id) ? narration_find(s, id) : NULL;
  if (!n) {
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 404, "no narration with id %s (it may have expired)", id);
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
    return send_json(c, 200, o);
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
  if (!copy) return send_error(c, url, 500, "out of memory");
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
  return queue_response(c, 200, resp, blen);
}

/* --------------------------------------------------------------- pages */

static const char *mime_of(const char *name) {
  const char *dot = strrchr(name, '.');
  static const char *const map[][2] = {
      {"html", "text/html; charset=utf-8"}, {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
      {"ico", "image/x-icon"}, {"mp4", "video/mp4"}, {"m4v", "video/mp4"}, {"webm", "video/webm"},
      {"avi", "video/x-msvideo"}, {"mkv", "video/x-matroska"}, {"mov", "video/quicktime"},
      {"ogv", "video/ogg"}, {"gif", "image/gif"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
      {"bmp", "image/bmp"}, {"webp", "image/webp"}};
  if (dot)
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
      if (strcasecmp(dot + 1, map[i][0]) == 0) return map[i][1];
  return "application/octet-stream";
}

static enum MHD_Result serve_asset(struct MHD_Connection *c, const char *rel) {
  for (int i = 0; i < vb_web_n_assets; i++)
    if (strcmp(vb_web_assets[i].path, rel) == 0)
      return send_bytes(c, 200, mime_of(rel), vb_web_assets[i].data, vb_web_assets[i].len, "no-cache");
  return send_error(c, "/", 404, "not found");
}

static int is_media_name(const char *n) {
  const char *dot = strrchr(n, '.');
  if (!dot || n[0] == '.') return 0;
  for (const char *p = n; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return 0;
  static const char *const ok[] = {"mp4", "webm", "avi", "mkv", "mov", "m4v", "ogv", "gif", "png", "jpg", "jpeg"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcasecmp(dot + 1, ok[i]) == 0) return 1;
  return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int scan_examples(vblip_server *s, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return vb_error("--examples %s: %s", dir, strerror(errno));
  snprintf(s->examples_dir, sizeof s->examples_dir, "%s", dir);
  struct dirent *de;
  while ((de = readdir(d)) && s->n_examples < MAX_EXAMPLES) {
    if (!is_media_name(de->d_name)) continue;
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    s->examples[s->n_examples++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(s->examples, (size_t)s->n_examples, sizeof *s->examples, cmp_str);
  return 0;
}

static enum MHD_Result serve_example(vblip_server *s, struct MHD_Connection *c, const char *url, const char *name) {
  for (int i = 0; i < s->n_examples; i++) {
    if (!s->examples[i] || strcmp(s->examples[i], name) != 0) continue;
    char path[PATH_MAX];
    int fd = -1;
    if (snprintf(path, sizeof path, "%s/%s", s->examples_dir, s->examples[i]) < (int)sizeof path)
      fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO put there must not block */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) close(fd);
      return send_error(c, url, 404, "example %s is gone", name);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!resp) {
      close(fd);
      return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", mime_of(name));
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return queue_response(c, 200, resp, (uint64_t)st.st_size);
  }
  return send_error(c, url, 404, "no example named %s", name);
}

static enum MHD_Result handle_health(vblip_server *s, struct MHD_Connection *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", s->stopping ? "stopping" : "ok");
  cJSON_AddStringToObject(o, "version", vblip_version());
  cJSON_AddStringToObject(o, "model", s->model_name);
  cJSON_AddStringToObject(o, "language_model", s->info.language_model ? s->info.language_model : "");
  /* "interleaved": several videos per conversation, where they stand (EILEV) */
  cJSON_AddStringToObject(o, "layout", vblip_layout_name(vblip_model_layout(s->m)));
  pthread_mutex_lock(&s->mu);
  cJSON *q = cJSON_AddObjectToObject(o, "queue");
  cJSON_AddNumberToObject(q, "waiting", s->q_count);
  cJSON_AddNumberToObject(q, "capacity", s->q_cap);
  cJSON_AddBoolToObject(q, "busy", s->running != NULL);
  cJSON_AddNumberToObject(o, "videos", s->n_videos);
  pthread_mutex_unlock(&s->mu);
  cJSON *l = cJSON_AddObjectToObject(o, "limits");
  cJSON_AddNumberToObject(l, "max_upload_bytes", (double)s->o.max_upload_bytes);
  cJSON_AddNumberToObject(l, "max_json_bytes", (double)s->o.max_json_bytes);
  cJSON_AddNumberToObject(l, "max_videos", s->o.max_videos);
  cJSON_AddNumberToObject(l, "max_connections", s->o.max_connections);
  cJSON_AddNumberToObject(l, "max_client_connections", s->o.max_client_connections);
  cJSON_AddNumberToObject(l, "header_timeout_ms", s->o.header_timeout_ms);
  cJSON_AddNumberToObject(l, "body_timeout_ms", s->o.body_timeout_ms);
  cJSON_AddNumberToObject(l, "idle_timeout_s", s->o.idle_timeout_s);
  cJSON_AddBoolToObject(l, "allow_url_input", s->o.allow_url_input != 0);
  vs_guard_counts gc;
  vs_guard_get_counts(s->guard, &gc);
  cJSON *cn = cJSON_AddObjectToObject(o, "connections");
  cJSON_AddNumberToObject(cn, "open", gc.open);
  cJSON_AddNumberToObject(cn, "receiving", gc.waiting);
  cJSON *d = cJSON_AddObjectToObject(o, "defaults");
  const vblip_gen_params *g = &s->o.gen;
  cJSON_AddNumberToObject(d, "num_beams", g->num_beams);
  cJSON_AddNumberToObject(d, "max_new_tokens", g->max_new_tokens);
  cJSON_AddNumberToObject(d, "min_new_tokens", g->min_new_tokens);
  cJSON_AddBoolToObject(d, "do_sample", g->do_sample);
  cJSON_AddNumberToObject(d, "temperature", g->temperature);
  cJSON_AddNumberToObject(d, "top_k", g->top_k);
  cJSON_AddNumberToObject(d, "top_p", g->top_p);
  cJSON_AddNumberToObject(d, "repetition_penalty", g->repetition_penalty);
  cJSON_AddNumberToObject(d, "no_repeat_ngram_size", g->no_repeat_ngram_size);
  cJSON_AddNumberToObject(d, "length_penalty", g->length_penalty);
  cJSON_AddNumberToObject(d, "seed", (double)g->seed);
  cJSON *sm = cJSON_AddObjectToObject(o, "sampling");
  cJSON_AddStringToObject(sm, "mode", s->o.sampling.mode == VBLIP_SAMPLE_DEMO ? "demo" : "uniform");
  cJSON_AddNumberToObject(sm, "frames", s->o.sampling.n_frames);
  return send_json(c, 200, o);
}

static enum MHD_Result handle_examples(vblip_server *s, struct MHD_Connection *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON *a = cJSON_AddArrayToObject(o, "examples");
  static const char *const prompts[] = {EXAMPLE_PROMPT_1, EXAMPLE_PROMPT_2};
  for (int i = 0; i < s->n_examples; i++)
    for (int k = 0; k < 2; k++) {
      cJSON *x = cJSON_CreateObject();
      char url[PATH_MAX];
      snprintf(url, sizeof url, "/examples/%s", s->examples[i]);
      cJSON_AddStringToObject(x, "video", s->examples[i]);
      cJSON_AddStringToObject(x, "url", url);
      cJSON_AddStringToObject(x, "mime", mime_of(s->examples[i]));
      cJSON_AddStringToObject(x, "prompt", prompts[k]);
      cJSON_AddItemToArray(a, x);
    }
  return send_json(c, 200, o);
}

static enum MHD_Result handle_video_get(vblip_server *s, struct MHD_Connection *c, const char *url, const char *rest,
                                        const char *method) {
  char id[2 * ID_BYTES + 1];
  size_t n = strcspn(rest, "/");
  if (n != 2 * ID_BYTES) return send_error(c, url, 404, "no such video");
  memcpy(id, rest, n);
  id[n] = 0;
  const char *tail = rest + n;
  pthread_mutex_lock(&s->mu);
  entry *e = valid_id(id) ? entry_get(s, id) : NULL;
  if (!e) {
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 404, "no video with id %s", id);
  }
  enum MHD_Result r;
  if (!*tail && strcmp(method, "DELETE") == 0) {
    entry_unlist(s, e);
    entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "deleted", 1);
    cJSON_AddStringToObject(o, "id", id);
    return send_json(c, 200, o);
  }
  if (strcmp(method, "GET") != 0) {
    entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 405, "method not allowed");
  }
  if (!*tail) {
    cJSON *o = video_json(s, e);
    entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    return send_json(c, 200, o);
  }
  long k = -1;
  char *end = NULL;
  if (strncmp(tail, "/frames/", 8) == 0 && isdigit((unsigned char)tail[8])) k = strtol(tail + 8, &end, 10);
  if (k < 0 || !end || *end || k >= e->n_frames || !e->thumbs || !e->thumbs[k]) {
    entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    return send_error(c, url, 404, "no such frame");
  }
  /* immutable once ready, and kept alive by our reference */
  const unsigned char *img = e->thumbs[k];
  size_t len = e->thumb_len[k];
  pthread_mutex_unlock(&s->mu);
  r = send_bytes(c, 200, "image/bmp", img, len, "private, max-age=3600");
  pthread_mutex_lock(&s->mu);
  entry_release(s, e);
  pthread_mutex_unlock(&s->mu);
  return r;
}

/* OpenAI's model object: the one model this server serves */
static cJSON *model_json(vblip_server *s) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "id", s->model_name);
  cJSON_AddStringToObject(m, "object", "model");
  cJSON_AddNumberToObject(m, "created", 0);
  cJSON_AddStringToObject(m, "owned_by", "vblip");
  return m;
}

static enum MHD_Result dispatch(vblip_server *s, req *r, struct MHD_Connection *c, const char *url,
                                const char *method) {
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  int post = strcmp(method, "POST") == 0;
  if (get && (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)) return serve_asset(c, "index.html");
  /* browsers ask for /favicon.ico whatever the page names */
  if (get && strcmp(url, "/favicon.ico") == 0) return serve_asset(c, "favicon.svg");
  if (get && (strcmp(url, "/api/health") == 0 || strcmp(url, "/health") == 0))
    return handle_health(s, c);
  if (get && strcmp(url, "/api/examples") == 0) return handle_examples(s, c);
  if (get && strncmp(url, "/examples/", 10) == 0) return serve_example(s, c, url, url + 10);
  if (get && strcmp(url, "/v1/models") == 0) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *a = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(a, model_json(s));
    return send_json(c, 200, o);
  }
  if (get && strncmp(url, "/v1/models/", 11) == 0) {
    if (strcmp(url + 11, s->model_name) == 0) return send_json(c, 200, model_json(s));
    char m[256], safe[160];
    snprintf(m, sizeof m, "the model '%s' does not exist: this server serves '%s'",
             vb_escape_controls(url + 11, safe, sizeof safe), s->model_name);
    return send_error_param(c, url, 404, "model", "model_not_found", m);
  }
  if (strcmp(url, "/api/videos") == 0) {
    if (!post) return send_error(c, url, 405, "use POST to upload a video");
    return finish_upload(s, r, c, url);
  }
  if (strncmp(url, "/api/videos/", 12) == 0) return handle_video_get(s, c, url, url + 12, method);
  if (strcmp(url, "/api/narrate") == 0) {
    if (!post) return send_error(c, url, 405, "use POST with the video as the body");
    return handle_narrate(s, r, c, url);
  }
  if (strncmp(url, "/api/narrations/", 16) == 0) {
    if (!get) return send_error(c, url, 405, "use GET");
    return handle_narration_get(s, c, url, url + 16);
  }
  if (strcmp(url, "/api/chat") == 0 || strcmp(url, "/v1/chat/completions") == 0 ||
      strcmp(url, "/api/score") == 0) {
    if (!post) return send_error(c, url, 405, "use POST");
    if (r->too_large) return send_error(c, url, 413, "%s", json_too_large(s, r));
    if (r->failed) return send_error(c, url, 500, "out of memory reading the request body");
    return handle_chat(s, r, c, url, is_openai_url(url));
  }
  if (get) {
    const char *rel = url + 1;
    for (int i = 0; i < vb_web_n_assets; i++)
      if (strcmp(vb_web_assets[i].path, rel) == 0) return serve_asset(c, rel);
  }
  return send_error(c, url, 404, "no such endpoint: %s %s", method, url);
}

/* The page's own files: public even when the server has an API key (the page asks for it) */
static int is_public_path(const char *url) {
  if (strcmp(url, "/") == 0 || strcmp(url, "/favicon.ico") == 0) return 1;
  for (int i = 0; i < vb_web_n_assets; i++)
    if (strcmp(url + 1, vb_web_assets[i].path) == 0) return 1;
  return 0;
}

/* A CORS preflight: which methods and headers the allowed origins may use */
static enum MHD_Result preflight(vblip_server *s, struct MHD_Connection *c, const char *url) {
  if (!s->cors_origins)
    return send_error(
        c, url, 405, "cross-origin requests are not enabled (start the server with --cors ORIGIN)");
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  if (tl_req && tl_req->cors[0]) {
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    /* the headers asked for (client libraries send their own, e.g. openai's X-Stainless-*),
     * when they are a plain list of names */
    const char *asked = header(c, "Access-Control-Request-Headers");
    int plain = asked && strlen(asked) <= 2048;
    for (const char *p = asked; plain && *p; p++)
      plain = isalnum((unsigned char)*p) || strchr("-_, ", *p) != NULL;
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            plain ? asked : "Authorization, Content-Type, X-Filename");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
  }
  return queue_response(c, 204, resp, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *data_size, void **con_cls) {
  (void)version;
  vblip_server *s = cls;
  req *r = *con_cls;
  tl_req = r;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->s = s;
    r->fd = -1;
    *con_cls = r;
    tl_req = r;
    r->t0 = now_ms();
    vb_escape_controls(method, r->method, sizeof r->method);
    vb_escape_controls(url, r->path, sizeof r->path);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    vs_client_name(ci ? ci->client_addr : NULL, 0, r->client, sizeof r->client);
    vs_client_name(ci ? ci->client_addr : NULL, 1, r->client_group, sizeof r->client_group);
    const char *allow = vs_cors_allow(s->cors_origins, header(c, "Origin"));
    if (allow && strlen(allow) < sizeof r->cors) snprintf(r->cors, sizeof r->cors, "%s", allow);
    if (strcmp(method, "OPTIONS") == 0) {
      vs_guard_request_received(s->guard, c);
      return preflight(s, c, url);
    }
    if (s->api_key && !is_public_path(url) &&
        !vs_bearer_matches(header(c, "Authorization"), s->api_key)) {
      vs_guard_request_received(s->guard, c);
      return send_error(
          c, url, 401,
          header(c, "Authorization")
              ? "the API key is wrong"
              : "this server needs an API key: send the header 'Authorization: Bearer KEY'");
    }
    const char *cl = header(c, "Content-Length");
    unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
    if (strcmp(method, "POST") == 0 &&
        (strcmp(url, "/api/videos") == 0 || strcmp(url, "/api/narrate") == 0)) {
      r->body_kind = BODY_UPLOAD;
      const char *ct = header(c, "Content-Type");
      int multipart = ct && strncasecmp(ct, "multipart/form-data", 19) == 0;
      /* multipart adds a little framing around the file */
      if (clen > s->o.max_upload_bytes + (multipart ? 65536u : 0u)) {
        r->too_large = 1;
        vs_guard_request_received(s->guard, c);
        return send_error(c, url, 413, "%s", upload_too_large(s, r));
      }
      if (multipart) {
        r->pp = MHD_create_post_processor(c, 65536, post_iter, r);
        if (!r->pp) return send_error(c, url, 400, "malformed multipart upload");
      }
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
      r->body_kind = BODY_JSON;
      /* JSON stays small: videos come as uploads (or as data: URLs within this limit) */
      r->body_limit = s->o.max_json_bytes;
      if (clen > r->body_limit) {
        r->too_large = 1;
        vs_guard_request_received(s->guard, c);
        return send_error(c, url, 413, "%s", json_too_large(s, r));
      }
    }
    return MHD_YES;
  }
  if (*data_size) {
    if (r->body_kind == BODY_UPLOAD) upload_data(r, c, data, *data_size);
    else if (r->body_kind == BODY_JSON && !r->too_large) {
      if (r->body.len + *data_size > r->body_limit) {
        r->too_large = 1;
        vs_buf_free(&r->body);
      } else if (vs_buf_append(&r->body, data, *data_size) != 0) {
        r->failed = 1;
      }
    }
    *data_size = 0;
    /* a chunked body over the limit: answered now, not after reading the rest of it
     * (the library queues no response while it reads a body) */
    if (r->too_large && !r->answered) {
      r->answered = 1;
      vs_guard_reject(s->guard, c, url, 413,
                      r->body_kind == BODY_JSON ? json_too_large(s, r) : upload_too_large(s, r));
      return MHD_NO;
    }
    return MHD_YES;
  }
  vs_guard_request_received(s->guard, c);
  if (r->pp) {
    MHD_destroy_post_processor(r->pp);
    r->pp = NULL;
    if (!r->e && !r->too_large && !r->failed && !r->malformed) {
      /* no file field at all */
      return send_error(c, url, 400, "no file in the upload (send the video as the request body or as a multipart field 'file')");
    }
  }
  return dispatch(s, r, c, url, method);
}

/* ------------------------------------------------------------- lifetime */

static int remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    unlink(p);
  }
  closedir(d);
  return rmdir(dir);
}

static void server_free(vblip_server *s) {
  if (!s) return;
  while (s->videos) {
    entry *e = s->videos;
    entry_unlist(s, e);
    if (e->refs == 0) entry_destroy(e);
  }
  while (s->narrations) {
    narration *n = s->narrations;
    s->narrations = n->next;
    n->listed = 0;
    if (n->refs == 0) narration_free(n);
  }
  if (s->dir[0]) remove_tree(s->dir);
  vs_guard_free(s->guard);
  if (s->listen_fd >= 0) close(s->listen_fd);
  for (int i = 0; i < s->n_examples; i++) free(s->examples[i]);
  free(s->queue);
  free(s->cors_origins);
  free(s->api_key);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->work_cv);
  free(s);
}

/* 0 in a limit keeps its default */
static void apply_limit_defaults(vblip_server_options *o) {
  vblip_server_options d;
  vblip_server_options_default(&d);
  if (!o->max_json_bytes) o->max_json_bytes = d.max_json_bytes;
  if (!o->max_connections) o->max_connections = d.max_connections;
  if (!o->max_client_connections) o->max_client_connections = d.max_client_connections;
  if (!o->header_timeout_ms) o->header_timeout_ms = d.header_timeout_ms;
  if (!o->body_timeout_ms) o->body_timeout_ms = d.body_timeout_ms;
  if (!o->idle_timeout_s) o->idle_timeout_s = d.idle_timeout_s;
}

/* The listening socket: the connection guard accepts on it, not the library. */
static int open_listener(vblip_server *s, const struct addrinfo *ai) {
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return vb_error("cannot create a socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    int e = errno;
    close(fd);
    return vb_error("cannot listen on %s:%d: %s (in use, or not an address of this machine?)",
                    s->host, s->o.port, strerror(e));
  }
  struct sockaddr_storage a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    s->port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                            : ((struct sockaddr_in *)&a)->sin_port);
  s->listen_fd = fd;
  return 0;
}

/* The library's messages (with --verbose) quote requests: escaped like everything else */
static void log_library(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char raw[1024], safe[1024];
  vsnprintf(raw, sizeof raw, fmt, ap);
  size_t n = strlen(raw);
  while (n && raw[n - 1] == '\n')
    raw[--n] = 0;
  fprintf(stderr, "vblip serve: %s\n", vb_escape_controls(raw, safe, sizeof safe));
}

vblip_server *vblip_server_start(vblip_model *m, const vblip_server_options *o) {
  vblip_server_options def;
  if (!o) {
    vblip_server_options_default(&def);
    o = &def;
  }
  if (o->queue_size < 1 || o->max_videos < 1 || o->max_upload_bytes < 1 || o->port < 0 ||
      o->port > 65535 || o->max_connections < 0 || o->max_client_connections < 0 ||
      o->header_timeout_ms < 0 || o->body_timeout_ms < 0 || o->idle_timeout_s < 0) {
    vb_error("invalid server options");
    return NULL;
  }
  vblip_server *s = calloc(1, sizeof *s);
  if (!s) {
    vb_error("out of memory");
    return NULL;
  }
  s->m = m;
  s->o = *o;
  s->listen_fd = -1;
  apply_limit_defaults(&s->o);
  snprintf(s->host, sizeof s->host, "%s", o->host ? o->host : "127.0.0.1");
  snprintf(s->model_name, sizeof s->model_name, "%s", o->model_name ? o->model_name : "videoblip");
  s->o.host = s->host;
  s->o.model_name = s->model_name;
  s->o.examples_dir = NULL;
  s->cors_origins = o->cors_origins && *o->cors_origins ? strdup(o->cors_origins) : NULL;
  s->api_key = o->api_key && *o->api_key ? strdup(o->api_key) : NULL;
  s->o.cors_origins = s->cors_origins;
  s->o.api_key = s->api_key;
  vblip_model_get_info(m, &s->info);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->work_cv, NULL);
  s->q_cap = o->queue_size;
  s->queue = calloc((size_t)s->q_cap, sizeof *s->queue);
  const char *delay = getenv("VBLIP_SERVE_TEST_DELAY_MS");
  if (delay) s->test_delay_ms = atoi(delay);
  if (!s->queue) {
    vb_error("out of memory");
    goto fail;
  }
  if (o->examples_dir && scan_examples(s, o->examples_dir) != 0) goto fail;
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/vblip-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(s->dir)) {
    vb_error("cannot create a temporary directory %s: %s", s->dir, strerror(errno));
    s->dir[0] = 0;
    goto fail;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  char port[16];
  snprintf(port, sizeof port, "%d", o->port & 0xffff);
  int gai = getaddrinfo(s->host, port, &hints, &ai);
  if (gai != 0 || !ai) {
    vb_error("cannot resolve host %s: %s", s->host, gai_strerror(gai));
    goto fail;
  }
  int lrc = open_listener(s, ai);
  freeaddrinfo(ai);
  if (lrc != 0) goto fail;
  vs_guard_limits gl = {.max_connections = s->o.max_connections,
                        .max_per_client = s->o.max_client_connections,
                        .header_timeout_ms = s->o.header_timeout_ms,
                        .body_timeout_ms = s->o.body_timeout_ms,
                        .max_head = 16384,
                        .max_target = 8192,
                        .verbose = s->o.verbose};
  if (!(s->guard = vs_guard_new(&gl))) {
    vb_error("out of memory");
    goto fail;
  }
  if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
    vb_error("cannot start the worker thread");
    goto fail;
  }
  s->worker_started = 1;
  /* The library gets connections from the guard (MHD_add_connection, hence ITC), one
   * thread each; it never listens itself. Its limit is a backstop above the guard's. */
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                   MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
  if (o->verbose) flags |= MHD_USE_ERROR_LOG;
  s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                          log_library, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                          MHD_OPTION_NOTIFY_CONNECTION, vs_guard_on_connection, s->guard,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.idle_timeout_s,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)(2 * s->o.max_connections + 16),
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
  if (!s->d) {
    vb_error("cannot start the HTTP server (libmicrohttpd)");
    goto fail;
  }
  if (vs_guard_start(s->guard, s->listen_fd, s->d) != 0) goto fail;
  return s;
fail:
  if (s->guard) vs_guard_stop(s->guard);
  if (s->d) MHD_stop_daemon(s->d);
  s->d = NULL;
  if (s->worker_started) {
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->worker, NULL);
  }
  server_free(s);
  return NULL;
}

int vblip_server_port(const vblip_server *s) { return s->port; }

void vblip_server_stop(vblip_server *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  while (s->q_count > 0) job_cancel(s, s->queue[s->q_head]);
  if (s->running) s->running->cancelled = 1;
  pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->mu);
  if (s->worker_started) pthread_join(s->worker, NULL);
  vs_guard_stop(s->guard); /* no new connections; then the library closes its own */
  if (s->d) MHD_stop_daemon(s->d);
  server_free(s);
}
