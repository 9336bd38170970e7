/* vblip serve: an HTTP server (libmicrohttpd, a thread per connection) with the
 * web demo page, a JSON API and an OpenAI-compatible chat endpoint.
 *
 * This file: the options, a request's arrival (limits, API key, CORS, its body), the
 * routes, /api/health and /v1/models, and the server's start and stop. The model is used
 * by ONE worker thread (worker.c), fed by a bounded queue of jobs (jobs.c); the rest of
 * the files are named after what they serve (server_internal.h lists them). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "server/http_access.h"
#include "server/http_guard.h"
#include "server/server_internal.h"
#include "server/web_assets.h"

_Thread_local req *vs_tl_req; /* see server_internal.h */

static int is_openai_url(const char *url) {
  return strncmp(url, "/v1/", 4) == 0;
}

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

static void req_free(vblip_server *s, req *r) {
  if (r->pp) MHD_destroy_post_processor(r->pp);
  if (r->fd >= 0) close(r->fd);
  if (r->e) {
    pthread_mutex_lock(&s->mu);
    if (!r->committed) vs_entry_unlist(s, r->e);
    vs_entry_release(s, r->e);
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
  vs_tl_req = NULL;
}

static enum MHD_Result handle_health(vblip_server *s, struct MHD_Connection *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", s->stopping ? "stopping" : "ok");
  cJSON_AddStringToObject(o, "version", vblip_version());
  cJSON_AddStringToObject(o, "model", s->model_name);
  cJSON_AddStringToObject(o, "language_model",
                          s->info.language_model ? s->info.language_model : "");
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
  return vs_send_json(c, 200, o);
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
  if (get && (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0))
    return vs_serve_asset(c, "index.html");
  /* browsers ask for /favicon.ico whatever the page names */
  if (get && strcmp(url, "/favicon.ico") == 0) return vs_serve_asset(c, "favicon.svg");
  if (get && (strcmp(url, "/api/health") == 0 || strcmp(url, "/health") == 0))
    return handle_health(s, c);
  if (get && strcmp(url, "/api/examples") == 0) return vs_handle_examples(s, c);
  if (get && strncmp(url, "/examples/", 10) == 0) return vs_serve_example(s, c, url, url + 10);
  if (get && strcmp(url, "/v1/models") == 0) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *a = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(a, model_json(s));
    return vs_send_json(c, 200, o);
  }
  if (get && strncmp(url, "/v1/models/", 11) == 0) {
    if (strcmp(url + 11, s->model_name) == 0) return vs_send_json(c, 200, model_json(s));
    char m[256], safe[160];
    snprintf(m, sizeof m, "the model '%s' does not exist: this server serves '%s'",
             vb_escape_controls(url + 11, safe, sizeof safe), s->model_name);
    return vs_send_error_param(c, url, 404, "model", "model_not_found", m);
  }
  if (strcmp(url, "/api/videos") == 0) {
    if (!post) return vs_send_error(c, url, 405, "use POST to upload a video");
    return vs_finish_upload(s, r, c, url);
  }
  if (strncmp(url, "/api/videos/", 12) == 0)
    return vs_handle_video_get(s, c, url, url + 12, method);
  if (strcmp(url, "/api/narrate") == 0) {
    if (!post) return vs_send_error(c, url, 405, "use POST with the video as the body");
    return vs_handle_narrate(s, r, c, url);
  }
  if (strncmp(url, "/api/narrations/", 16) == 0) {
    if (!get) return vs_send_error(c, url, 405, "use GET");
    return vs_handle_narration_get(s, c, url, url + 16);
  }
  if (strcmp(url, "/api/chat") == 0 || strcmp(url, "/v1/chat/completions") == 0 ||
      strcmp(url, "/api/score") == 0) {
    if (!post) return vs_send_error(c, url, 405, "use POST");
    if (r->too_large) return vs_send_error(c, url, 413, "%s", vs_json_too_large(s, r));
    if (r->failed) return vs_send_error(c, url, 500, "out of memory reading the request body");
    return vs_handle_chat(s, r, c, url, is_openai_url(url));
  }
  if (get) {
    const char *rel = url + 1;
    for (int i = 0; i < vb_web_n_assets; i++)
      if (strcmp(vb_web_assets[i].path, rel) == 0) return vs_serve_asset(c, rel);
  }
  return vs_send_error(c, url, 404, "no such endpoint: %s %s", method, url);
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
    return vs_send_error(
        c, url, 405, "cross-origin requests are not enabled (start the server with --cors ORIGIN)");
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  if (vs_tl_req && vs_tl_req->cors[0]) {
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    /* the headers asked for (client libraries send their own, e.g. openai's X-Stainless-*),
     * when they are a plain list of names */
    const char *asked = vs_header(c, "Access-Control-Request-Headers");
    int plain = asked && strlen(asked) <= 2048;
    for (const char *p = asked; plain && *p; p++)
      plain = isalnum((unsigned char)*p) || strchr("-_, ", *p) != NULL;
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            plain ? asked : "Authorization, Content-Type, X-Filename");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
  }
  return vs_queue_response(c, 204, resp, 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls) {
  (void)version;
  vblip_server *s = cls;
  req *r = *con_cls;
  vs_tl_req = r;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->s = s;
    r->fd = -1;
    *con_cls = r;
    vs_tl_req = r;
    r->t0 = now_ms();
    vb_escape_controls(method, r->method, sizeof r->method);
    vb_escape_controls(url, r->path, sizeof r->path);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    vs_client_name(ci ? ci->client_addr : NULL, 0, r->client, sizeof r->client);
    vs_client_name(ci ? ci->client_addr : NULL, 1, r->client_group, sizeof r->client_group);
    const char *allow = vs_cors_allow(s->cors_origins, vs_header(c, "Origin"));
    if (allow && strlen(allow) < sizeof r->cors) snprintf(r->cors, sizeof r->cors, "%s", allow);
    if (strcmp(method, "OPTIONS") == 0) {
      vs_guard_request_received(s->guard, c);
      return preflight(s, c, url);
    }
    if (s->api_key && !is_public_path(url) &&
        !vs_bearer_matches(vs_header(c, "Authorization"), s->api_key)) {
      vs_guard_request_received(s->guard, c);
      return vs_send_error(
          c, url, 401,
          vs_header(c, "Authorization")
              ? "the API key is wrong"
              : "this server needs an API key: send the header 'Authorization: Bearer KEY'");
    }
    const char *cl = vs_header(c, "Content-Length");
    unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
    if (strcmp(method, "POST") == 0 &&
        (strcmp(url, "/api/videos") == 0 || strcmp(url, "/api/narrate") == 0)) {
      r->body_kind = BODY_UPLOAD;
      const char *ct = vs_header(c, "Content-Type");
      int multipart = ct && strncasecmp(ct, "multipart/form-data", 19) == 0;
      /* multipart adds a little framing around the file */
      if (clen > s->o.max_upload_bytes + (multipart ? 65536u : 0u)) {
        r->too_large = 1;
        vs_guard_request_received(s->guard, c);
        return vs_send_error(c, url, 413, "%s", vs_upload_too_large(s, r));
      }
      if (multipart) {
        r->pp = MHD_create_post_processor(c, 65536, vs_post_iter, r);
        if (!r->pp) return vs_send_error(c, url, 400, "malformed multipart upload");
      }
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
      r->body_kind = BODY_JSON;
      /* JSON stays small: videos come as uploads (or as data: URLs within this limit) */
      r->body_limit = s->o.max_json_bytes;
      if (clen > r->body_limit) {
        r->too_large = 1;
        vs_guard_request_received(s->guard, c);
        return vs_send_error(c, url, 413, "%s", vs_json_too_large(s, r));
      }
    }
    return MHD_YES;
  }
  if (*data_size) {
    if (r->body_kind == BODY_UPLOAD)
      vs_upload_data(r, c, data, *data_size);
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
                      r->body_kind == BODY_JSON ? vs_json_too_large(s, r)
                                                : vs_upload_too_large(s, r));
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
      return vs_send_error(c, url, 400,
                           "no file in the upload (send the video as the request body or as a "
                           "multipart field 'file')");
    }
  }
  return dispatch(s, r, c, url, method);
}

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
    vs_entry_unlist(s, e);
    if (e->refs == 0) vs_entry_destroy(e);
  }
  while (s->narrations) {
    narration *n = s->narrations;
    s->narrations = n->next;
    n->listed = 0;
    if (n->refs == 0) vs_narration_free(n);
  }
  if (s->dir[0]) remove_tree(s->dir);
  vs_guard_free(s->guard);
  if (s->listen_fd >= 0) close(s->listen_fd);
  for (int i = 0; i < s->n_examples; i++)
    free(s->examples[i]);
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
  if (o->examples_dir && vs_scan_examples(s, o->examples_dir) != 0) goto fail;
  const char *tmp = getenv("TMPDIR");
  snprintf(s->dir, sizeof s->dir, "%s/vblip-serve-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(s->dir)) {
    vb_error("cannot create a temporary directory %s: %s", s->dir, strerror(errno));
    s->dir[0] = 0;
    goto fail;
  }
  struct addrinfo hints = {
      .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
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
  if (pthread_create(&s->worker, NULL, vs_worker_main, s) != 0) {
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

int vblip_server_port(const vblip_server *s) {
  return s->port;
}

void vblip_server_stop(vblip_server *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  while (s->q_count > 0)
    vs_job_cancel(s, s->queue[s->q_head]);
  if (s->running) s->running->cancelled = 1;
  pthread_cond_broadcast(&s->work_cv);
  pthread_mutex_unlock(&s->mu);
  if (s->worker_started) pthread_join(s->worker, NULL);
  vs_guard_stop(s->guard); /* no new connections; then the library closes its own */
  if (s->d) MHD_stop_daemon(s->d);
  server_free(s);
}
