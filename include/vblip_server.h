/* vblip_server: the HTTP server and web demo (vblip serve), over the core library. Links libmicrohttpd. */
#ifndef VBLIP_SERVER_H
#define VBLIP_SERVER_H

#include "vblip.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- HTTP server (vblip serve) ---- */

typedef struct vblip_server vblip_server;

typedef struct {
  const char *host;          /* address to listen on (default "127.0.0.1") */
  int port;                  /* default 8080; 0 = any free port (see vblip_server_port) */
  int queue_size;            /* requests that may wait for the model (default 8); more: 503 */
  size_t max_upload_bytes;   /* larger uploads: 413 (default 100 MiB) */
  /* Limits against slow and huge clients (README.md, "Limits"); 0 in a field keeps the
   * default. Request bodies of the JSON endpoints (/api/chat, /v1/chat/completions):
   * larger ones get 413 before they are read, from Content-Length or while a chunked
   * body arrives (default 1 MiB; videos go through uploads). */
  size_t max_json_bytes;
  int max_connections;        /* open connections, all clients (default 256) */
  int max_client_connections; /* open connections of one address, an IPv6 /64 (default 16) */
  int header_timeout_ms;      /* the request head must arrive whole within this (10000) */
  int body_timeout_ms;        /* the body within this after the head (120000) */
  int idle_timeout_s;         /* a connection idle this long while answered closes (300) */
  int max_videos;            /* videos kept; the least recently used go first (default 64) */
  const char *examples_dir;  /* videos offered as example rows on the page; NULL: none */
  const char *model_name;    /* reported by /api/health and /v1/models (default "videoblip") */
  vblip_sampling sampling;   /* how uploaded videos are sampled */
  vblip_gen_params gen;      /* default generation settings */
  int verbose; /* log every request on stderr: client, method, path, status, bytes, time */
  /* Browsers of other origins may call the API: "*" or a comma-separated list of origins
   * (preflight OPTIONS answered). NULL: none (the page itself is same-origin). */
  const char *cors_origins;
  /* Every request but the page's own files needs "Authorization: Bearer KEY" (401
   * otherwise). NULL: no key. */
  const char *api_key;
  /* POST /api/narrate may name a URL (http, https, rtsp) for the server to open; 0
   * (default): only uploads, a url gets 403 */
  int allow_url_input;
} vblip_server_options;

void vblip_server_options_default(vblip_server_options *o);
/* Starts listening (own threads; the model is used by one worker thread only and
 * must outlive the server). Returns NULL with vblip_last_error() on failure. */
vblip_server *vblip_server_start(vblip_model *m, const vblip_server_options *o);
/* The port actually bound. */
int vblip_server_port(const vblip_server *s);
/* Stops: cancels queued and running requests, closes connections, removes the
 * uploaded files and the server's temporary directory, frees s. */
void vblip_server_stop(vblip_server *s);

#ifdef __cplusplus
}
#endif

#endif
