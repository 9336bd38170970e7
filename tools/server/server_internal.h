/* What the server's files share: the video store's entries, narrations, jobs, the server
 * itself and a request's state, and the functions one file offers the others. Internal to
 * tools/server (the public API is include/vblip_server.h).
 *
 * Threads: libmicrohttpd runs a thread per connection; ONE worker thread uses the model.
 * Everything shared (queue, jobs, the video store, narrations) is guarded by s->mu;
 * functions marked "locked" expect the caller to hold it. */
#ifndef VBLIP_SERVER_INTERNAL_H
#define VBLIP_SERVER_INTERNAL_H

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "server/http_guard.h"
#include "server/openai_request.h"
#include "server/server_util.h"
#include "text/cues.h"
#include "vblip.h"
#include "vblip_server.h"

#define ID_BYTES 16
#define MAX_EXAMPLES 16
#define MAX_FAIR_CLIENTS 64 /* clients the fair queue remembers */
#define MAX_NARRATIONS 16   /* finished narrations kept for download; the oldest go first */

enum { V_NEW, V_READY, V_FAILED };

typedef struct entry {
  char id[2 * ID_BYTES + 1];
  char path[PATH_MAX];
  char name[128]; /* the client's file name, for display only */
  char mime[64];
  size_t bytes;
  uint64_t hash;
  int state, refs, removed, listed;
  char *error;       /* V_FAILED: why */
  vblip_video video; /* worker only: the encoded features */
  int n_frames;      /* V_READY: frame metadata and thumbnails (immutable) */
  int64_t *frame_index;
  double *frame_time;
  unsigned char **thumbs;
  size_t *thumb_len;
  uint64_t last_used;
  struct entry *next;
} entry;

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
  vs_buf out; /* stream: SSE bytes not yet sent */
  size_t out_pos;
  int status; /* error: HTTP status */
  char *error;
  char *answer, *raw;
  int n_tokens, n_prompt_tokens, truncated;
  double t_enqueue, ms_queue, ms_generate, ms_encode;
  vs_buf streamed;     /* the pieces sent so far, concatenated */
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

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static inline void deadline_in(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
  ts->tv_nsec %= 1000000000L;
}

enum { BODY_NONE, BODY_JSON, BODY_UPLOAD };

typedef struct {
  vblip_server *s;
  int body_kind;
  vs_buf body;
  size_t body_limit;
  int too_large, failed, committed, answered;
  char method[24], path[512]; /* escaped, for the log */
  int malformed;              /* a multipart body the post processor refused: the client's fault */
  int store_errno;            /* why storing the upload failed (failed): the server's fault */
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
extern _Thread_local req *vs_tl_req;

static inline double max_upload_mib(vblip_server *s) {
  return (double)s->o.max_upload_bytes / (1024.0 * 1024.0);
}

/* ---- The store of uploaded videos (entries; s->mu held where marked "locked") (video_store.c) */

void vs_entry_destroy(entry *e);
/* locked */
void vs_entry_unlist(vblip_server *s, entry *e);
/* locked */
void vs_entry_release(vblip_server *s, entry *e);
/* A new, unlisted entry with its file created (O_EXCL, 0600) under the private
 * directory; the name is generated. Returns the entry (refs 1) and the open fd. */
entry *vs_entry_create(vblip_server *s, const char *mime, const char *name, int *fd);
/* locked: makes e findable; drops the least recently used unreferenced videos over the limit */
void vs_entry_list(vblip_server *s, entry *e);
/* locked: a listed video by id (refs + 1), or NULL */
entry *vs_entry_get(vblip_server *s, const char *id);
int vs_write_all(int fd, const void *p, size_t n);
cJSON *vs_video_json(vblip_server *s, entry *e);
int vs_valid_id(const char *id);
/* A video reference from an OpenAI part: a data: URL (stored, deduplicated by
 * content) or an uploaded id (bare, "vblip:ID" or ".../api/videos/ID"). Returns the
 * entry (refs + 1) or NULL with an HTTP status and msg. */
entry *vs_resolve_video_url(vblip_server *s, const char *url, int *status, char *msg, size_t cap);

/* ---- Finished and running narrations, kept for download (narrations.c) */

void vs_narration_free(narration *n);
/* locked */
void vs_narration_release(vblip_server *s, narration *n);
/* locked: a new narration, listed (refs 1: the caller's); the oldest unreferenced ones over
 * the limit are dropped */
narration *vs_narration_new(vblip_server *s, const char *name);
/* locked: a listed narration by id (no reference taken) */
narration *vs_narration_find(vblip_server *s, const char *id);
/* locked: takes n off the download list (a narration that failed before it streamed) */
void vs_narration_unlist(vblip_server *s, narration *n);

/* ---- Jobs and the fair queue the worker takes them from (jobs.c) */

job *vs_job_new(int kind);
/* locked */
void vs_job_release(vblip_server *s, job *j);
/* locked: 0, or -1 when the queue is full or the server is stopping */
int vs_job_enqueue(vblip_server *s, job *j);
/* locked: stops j (a disconnected client or shutdown): a waiting job leaves the
 * queue at once; a running one stops at its next piece of text. */
void vs_job_cancel(vblip_server *s, job *j);
void vs_job_fail(job *j, int status, const char *msg);
/* locked: takes the next job off the queue, fairly: the job of the client served least
 * recently (so one client's burst cannot keep others waiting behind it), the oldest of
 * that client's; the queue keeps its order otherwise. */
job *vs_queue_take_fair(vblip_server *s);
/* Waits for j; cancels it when the client goes away or the server stops. */
void vs_wait_job(vblip_server *s, job *j, struct MHD_Connection *c);
/* Encodes e in the worker (if not done yet). 0, or an HTTP status with msg. */
int vs_encode_entry(vblip_server *s, entry *e, struct MHD_Connection *c, char *msg, size_t cap);

/* ---- What jobs send: Server-Sent Events and the JSON of results (events.c) */

/* locked */
void vs_sse_event(job *j, const char *event, cJSON *data);
cJSON *vs_oa_chunk(vblip_server *s, job *j, const char *role, const char *content,
                   const char *finish);
/* locked */
void vs_emit_piece(vblip_server *s, job *j, const char *piece);
cJSON *vs_native_result(vblip_server *s, job *j);
cJSON *vs_oa_result(vblip_server *s, job *j);
/* locked */
void vs_emit_error_event(vblip_server *s, job *j);
/* locked: the final events of a finished chat */
void vs_emit_done(vblip_server *s, job *j);
/* locked: a finished cue: into the narration's three documents and, as an event, to the
 * client (with the cue in the requested format) */
void vs_emit_cue(job *j, const vb_cue *c);
/* locked: the last event of a finished narration */
void vs_emit_narration_done(job *j);
/* locked: the candidates best first */
cJSON *vs_score_result(job *j);

/* ---- The worker thread: the only user of the model (worker.c) */

/* The input of items, their videos encoded (and immutable from then on); NULL with the
 * library's error. */
vblip_input *vs_items_input(const chat_item *items, int n);
/* The positions the input takes as the model lays it out, tokenized only up to the
 * model's limit (the tokenizer is thread-safe). 0, or -1 with the library's error. */
int vs_input_positions(vblip_server *s, const vblip_input *in, size_t *n);
void *vs_worker_main(void *arg);

/* ---- HTTP answers: headers every answer has, JSON errors, event streams (reply.c) */

/* Queues resp with the headers every answer has; bytes: its body (streams count later) */
enum MHD_Result vs_queue_response(struct MHD_Connection *c, unsigned status,
                                  struct MHD_Response *resp, uint64_t bytes);
enum MHD_Result vs_send_bytes(struct MHD_Connection *c, unsigned status, const char *ctype,
                              const void *data, size_t len, const char *cache);
enum MHD_Result vs_send_json(struct MHD_Connection *c, unsigned status, cJSON *o);
enum MHD_Result vs_send_error(struct MHD_Connection *c, const char *url, unsigned status,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 503 for a job the queue refused: full (waiting jobs ahead) or the server stopping */
enum MHD_Result vs_send_not_queued(struct MHD_Connection *c, const char *url, int stopping,
                                   int waiting);
/* An error naming the request field at fault (OpenAI's "param") and OpenAI's code */
enum MHD_Result vs_send_error_param(struct MHD_Connection *c, const char *url, unsigned status,
                                    const char *param, const char *code, const char *msg);
const char *vs_header(struct MHD_Connection *c, const char *name);
int vs_peer_gone(struct MHD_Connection *c);
/* A text/event-stream response that sends job j's events as they come; it takes over the
 * caller's reference to j. NULL when it cannot be made: the job is then cancelled and
 * released. */
struct MHD_Response *vs_event_stream_response(vblip_server *s, job *j, req *r);

/* ---- /api/videos: uploads (raw or multipart), metadata, frames, removal (api_videos.c) */

/* POST /api/videos, multipart: the first file field */
enum MHD_Result vs_post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                             const char *filename, const char *content_type,
                             const char *transfer_encoding, const char *data, uint64_t off,
                             size_t size);
enum MHD_Result vs_upload_data(req *r, struct MHD_Connection *c, const char *data, size_t size);
/* The 413 messages (kept in r: they outlive the call that answers) */
const char *vs_upload_too_large(vblip_server *s, req *r);
const char *vs_json_too_large(vblip_server *s, req *r);
enum MHD_Result vs_finish_upload(vblip_server *s, req *r, struct MHD_Connection *c,
                                 const char *url);
enum MHD_Result vs_handle_video_get(vblip_server *s, struct MHD_Connection *c, const char *url,
                                    const char *rest, const char *method);

/* ---- /api/chat, /v1/chat/completions and /api/score (api_chat.c) */

/* POST /api/chat, /v1/chat/completions (openai) and /api/score (score): the same
 * conversation; a chat answers it, a score ranks the request's candidates after it. */
enum MHD_Result vs_handle_chat(vblip_server *s, req *r, struct MHD_Connection *c, const char *url,
                               int openai);

/* ---- /api/narrate and /api/narrations (api_narrate.c) */

/* POST /api/narrate: the uploaded video (or ?url= with --allow-url-input), narrated in the
 * worker; cues stream as Server-Sent Events. The answer's status waits for the first window
 * (or the end), so that a video the decoder cannot read, or one shorter than a window, is a
 * 422 rather than an error event. */
enum MHD_Result vs_handle_narrate(vblip_server *s, req *r, struct MHD_Connection *c,
                                  const char *url);
/* GET /api/narrations/ID (a description) or ID.vtt, ID.srt, ID.jsonl (the cues so far; all of
 * them once done) */
enum MHD_Result vs_handle_narration_get(vblip_server *s, struct MHD_Connection *c, const char *url,
                                        const char *rest);

/* ---- The web page, its assets and the example videos (pages.c) */

enum MHD_Result vs_serve_asset(struct MHD_Connection *c, const char *rel);
int vs_scan_examples(vblip_server *s, const char *dir);
enum MHD_Result vs_serve_example(vblip_server *s, struct MHD_Connection *c, const char *url,
                                 const char *name);
enum MHD_Result vs_handle_examples(vblip_server *s, struct MHD_Connection *c);

#endif
