/* vblip serve: the web demo, a JSON API and an OpenAI-compatible endpoint over HTTP. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
  const char *model;
  vblip_load_options load;
  vblip_server_options server;
  double max_upload_mb, max_json_kb, header_timeout_s, body_timeout_s;
  int quiet; /* --quiet: no progress on the terminal */
} serve_opts;

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, serve_opts, model),
    CLI_OPT_STRING("--host", 0, "ADDR", serve_opts, server.host,
                   "address to listen on (default 127.0.0.1; 0.0.0.0 = all)", .flags = CLI_NONEMPTY,
                   .need = "needs an address"),
    CLI_OPT_INT("--port", 0, "N", serve_opts, server.port, 0, 65535,
                "port (default 8080; 0 = any free port, printed on start)"),
    CLI_OPT_INT("--queue-size", 0, "N", serve_opts, server.queue_size, 1, 100000,
                "requests that may wait for the model (default 8); more get 503",
                .need = "needs a whole number >= 1"),
    CLI_OPT_DOUBLE("--max-upload-mb", 0, "N", serve_opts, max_upload_mb, 0.001, 1e6,
                   "largest video accepted, in MiB (default 100); larger get 413",
                   .need = "needs a number > 0"),
    CLI_OPT_INT("--max-videos", 0, "N", serve_opts, server.max_videos, 1, 1000000,
                "videos kept (least recently used dropped first; default 64)",
                .need = "needs a whole number >= 1"),
    CLI_OPT_STRING("--examples", 0, "DIR", serve_opts, server.examples_dir,
                   "offer the videos in DIR as example rows on the page",
                   .need = "needs a directory"),
    CLI_OPT_STRING("--name", 0, "NAME", serve_opts, server.model_name,
                   "model name reported by the API (default: the model's base name)",
                   .flags = CLI_NONEMPTY, .need = "needs text"),
    CLI_OPT_FLAG("--verbose", 0, serve_opts, server.verbose,
                 "log every request on stderr: client, method, path, status,\n"
                 "bytes and time"),
    CLI_OPT_STRING("--cors", 0, "ORIGIN", serve_opts, server.cors_origins,
                   "let web pages of ORIGIN call the API ('*': any origin;\n"
                   "several origins separated by commas)",
                   .flags = CLI_NONEMPTY,
                   .need = "needs an origin such as https://example.com or *"),
    CLI_OPT_STRING("--api-key", 0, "KEY", serve_opts, server.api_key,
                   "require 'Authorization: Bearer KEY' on every request but the\n"
                   "page's own files (default: $VBLIP_API_KEY)",
                   .flags = CLI_NONEMPTY, .need = "needs a key"),
    CLI_OPT_FLAG("--allow-url-input", 0, serve_opts, server.allow_url_input,
                 "let POST /api/narrate name a URL (http, https, rtsp) that the\n"
                 "server opens itself (default: uploads only)"),
    CLI_GROUP(cli_layout_option, serve_opts, load.layout),
    CLI_HEADING("limits against slow and huge clients (README.md, 'Limits'):"),
    CLI_OPT_DOUBLE("--max-json-kb", 0, "N", serve_opts, max_json_kb, 1, 1e7,
                   "largest JSON request body in KiB (default 1024); larger get 413",
                   .need = "needs a number >= 1"),
    CLI_OPT_INT("--max-connections", 0, "N", serve_opts, server.max_connections, 1, 100000,
                "open connections, all clients together (default 256)",
                .need = "needs a whole number from 1 to 100000"),
    CLI_OPT_INT("--max-client-connections", 0, "N", serve_opts, server.max_client_connections, 1,
                100000, "open connections of one address, an IPv6 /64 (default 16)",
                .need = "needs a whole number from 1 to 100000"),
    CLI_OPT_DOUBLE("--header-timeout", 0, "S", serve_opts, header_timeout_s, 0.05, 86400,
                   "a request head must arrive whole within S seconds (default 10)",
                   .need = "needs seconds from 0.05 to 86400"),
    CLI_OPT_DOUBLE("--body-timeout", 0, "S", serve_opts, body_timeout_s, 0.05, 86400,
                   "a request body within S seconds after its head (default 120)",
                   .need = "needs seconds from 0.05 to 86400"),
    CLI_OPT_INT("--idle-timeout", 0, "S", serve_opts, server.idle_timeout_s, 1, 86400,
                "close a connection idle for S seconds while answered (default 300)",
                .need = "needs whole seconds from 1 to 86400"),
    CLI_GROUP(cli_threads_option, serve_opts, load.n_threads),
    CLI_GROUP(cli_quiet_option, serve_opts, quiet),
    CLI_DTYPE_GROUP(serve_opts, load),
    CLI_HEADING("frame sampling of uploaded videos:"),
    CLI_GROUP(cli_frame_options, serve_opts, server.sampling),
    CLI_HEADING("default generation settings (each request may change them):"),
    CLI_GROUP(cli_gen_options, serve_opts, server.gen),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_serve = {
    .name = "serve",
    .summary = "serve the web chat demo, a JSON API and an OpenAI-compatible endpoint",
    .run = run,
    .usage = "--model MODEL [options]",
    .about =
        "Serves the chat demo page at http://HOST:PORT/ and an HTTP API (docs/server-api.md):\n"
        "  POST /api/videos            upload a video (raw body or multipart field 'file') -> {id, "
        "frames}\n"
        "  POST /api/chat              {video_id, messages:[{role, content}], settings, stream}\n"
        "  POST /api/score             the same with candidates:[text] -> their likelihoods\n"
        "  POST /v1/chat/completions   OpenAI-compatible; video_url / image_url content parts\n"
        "With an interleaved (EILEV) model a conversation holds several videos where they stand\n"
        "(video_ids in front, video parts between text parts).\n"
        "  GET  /health (or /api/health), GET /v1/models[/ID], GET /api/videos/ID,\n"
        "  GET  /api/videos/ID/frames/K, DELETE /api/videos/ID\n"
        "  POST /api/narrate?window=S&stride=S&frames=N  the video as the body -> cues as\n"
        "                              Server-Sent Events; GET /api/narrations/ID.vtt|.srt\n"
        "The model answers one request at a time; others wait in a bounded queue, served\n"
        "fairly (the client served least recently goes first; 503 + Retry-After when full).\n",
    .options = k_options,
    .max_positional = 0,
    .epilogue = "Stops cleanly on SIGINT (Ctrl-C) or SIGTERM.\n",
};

static int run(int argc, char **argv) {
  serve_opts o = {0};
  vblip_load_options_default(&o.load);
  vblip_server_options_default(&o.server);
  cli_model_defaults_unset(&o.server.gen, &o.server.sampling);
  o.server.model_name = NULL; /* default: the model's base name, below */
  o.max_upload_mb = (double)o.server.max_upload_bytes / (1024 * 1024);
  o.max_json_kb = (double)o.server.max_json_bytes / 1024;
  o.header_timeout_s = o.server.header_timeout_ms / 1e3;
  o.body_timeout_s = o.server.body_timeout_ms / 1e3;
  int n_pos, rc = cli_parse(&cli_cmd_serve, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  if (cli_check_sampling("serve", &o.server.sampling)) return 2;
  vblip_server_options *so = &o.server;
  /* a key in the environment stays out of the process list */
  const char *env_key = getenv("VBLIP_API_KEY");
  if (!so->api_key && env_key && *env_key) so->api_key = env_key;
  so->max_upload_bytes = (size_t)(o.max_upload_mb * 1024 * 1024);
  so->max_json_bytes = (size_t)(o.max_json_kb * 1024);
  so->header_timeout_ms = (int)(o.header_timeout_s * 1000);
  so->body_timeout_ms = (int)(o.body_timeout_s * 1000);
  const char *model = o.model;
  char base[256];
  if (!so->model_name) {
    const char *end = model + strlen(model);
    while (end > model && end[-1] == '/')
      end--;
    const char *b = end;
    while (b > model && b[-1] != '/')
      b--;
    snprintf(base, sizeof base, "%.*s", (int)(end - b), b);
    so->model_name = *base ? base : "videoblip";
  }

  /* SIGINT/SIGTERM go to sigwait below: block them before any thread starts */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  cli_status_setup(o.quiet, &o.load);

  vblip_model *m = cli_load_model(model, &o.load);
  if (!m) return 1;
  cli_model_defaults_fill(m, &so->gen, &so->sampling);
  vblip_server *s = vblip_server_start(m, so);
  if (!s) {
    rc = cli_fail("%s", vblip_last_error());
    vblip_model_free(m);
    return rc;
  }
  int v6 = strchr(so->host, ':') != NULL;
  printf("vblip serve: listening on http://%s%s%s:%d/\n", v6 ? "[" : "", so->host, v6 ? "]" : "",
         vblip_server_port(s));
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "vblip serve: %s, shutting down\n", sig == SIGINT ? "interrupted" : "terminated");
  vblip_server_stop(s);
  vblip_model_free(m);
  return 0;
}
