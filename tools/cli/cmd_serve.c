/* vblip serve: the web demo, a JSON API and an OpenAI-compatible endpoint over HTTP. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *k_help =
    "usage: vblip serve --model DIR [options]\n"
    "\n"
    "Serves the chat demo page at http://HOST:PORT/ and an HTTP API (README.md, 'HTTP API'):\n"
    "  POST /api/videos            upload a video (raw body or multipart field 'file') -> {id, frames}\n"
    "  POST /api/chat              {video_id, messages:[{role, content}], settings, stream}\n"
    "  POST /v1/chat/completions   OpenAI-compatible; video_url / image_url content parts\n"
    "  GET  /api/health, GET /api/videos/ID, GET /api/videos/ID/frames/K, DELETE /api/videos/ID\n"
    "The model answers one request at a time; others wait in a bounded queue.\n"
    "\n"
    "options:\n"
    "  --model DIR               checkpoint directory\n"
    "  --host ADDR               address to listen on (default 127.0.0.1; 0.0.0.0 = all)\n"
    "  --port N                  port (default 8080; 0 = any free port, printed on start)\n"
    "  --queue-size N            requests that may wait for the model (default 8); more get 503\n"
    "  --max-upload-mb N         largest video accepted, in MiB (default 100); larger get 413\n"
    "  --max-videos N            videos kept (least recently used dropped first; default 64)\n"
    "  --examples DIR            offer the videos in DIR as example rows on the page\n"
    "  --name NAME               model name reported by the API (default: the directory's name)\n"
    "  --verbose                 log requests on stderr\n"
    "  --threads N               worker threads (default: all cores)\n" CLI_DTYPE_HELP
    "frame sampling of uploaded videos:\n" CLI_FRAME_HELP
    "default generation settings (each request may change them):\n" CLI_GEN_HELP
    "\n"
    "Stops cleanly on SIGINT (Ctrl-C) or SIGTERM.\n";

int cmd_serve(int argc, char **argv) {
  const char *model = NULL, *name = NULL;
  int threads = 0, rc = 0;
  vblip_dtype dtype = VBLIP_DTYPE_AUTO;
  vblip_server_options o;
  vblip_server_options_default(&o);
  for (int i = 1; i < argc && !rc; i++) {
    bool miss;
    const char *v;
    long n;
    int r;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(k_help, stdout);
      return 0;
    }
    if ((v = cli_opt(argc, argv, &i, "--model", &miss)) || miss) {
      if (miss) rc = cli_usage_error("serve", "--model needs a directory");
      model = v;
    } else if ((v = cli_opt(argc, argv, &i, "--host", &miss)) || miss) {
      if (miss || !*v) rc = cli_usage_error("serve", "--host needs an address");
      o.host = v;
    } else if ((v = cli_opt(argc, argv, &i, "--port", &miss)) || miss) {
      if (miss || !cli_int(v, 0, 65535, &n)) rc = cli_usage_error("serve", "--port needs a number from 0 to 65535");
      else o.port = (int)n;
    } else if ((v = cli_opt(argc, argv, &i, "--queue-size", &miss)) || miss) {
      if (miss || !cli_int(v, 1, 100000, &n)) rc = cli_usage_error("serve", "--queue-size needs a whole number >= 1");
      else o.queue_size = (int)n;
    } else if ((v = cli_opt(argc, argv, &i, "--max-upload-mb", &miss)) || miss) {
      double d;
      if (miss || !cli_double(v, 0.001, 1e6, &d)) rc = cli_usage_error("serve", "--max-upload-mb needs a number > 0");
      else o.max_upload_bytes = (size_t)(d * 1024 * 1024);
    } else if ((v = cli_opt(argc, argv, &i, "--max-videos", &miss)) || miss) {
      if (miss || !cli_int(v, 1, 1000000, &n)) rc = cli_usage_error("serve", "--max-videos needs a whole number >= 1");
      else o.max_videos = (int)n;
    } else if ((v = cli_opt(argc, argv, &i, "--examples", &miss)) || miss) {
      if (miss) rc = cli_usage_error("serve", "--examples needs a directory");
      o.examples_dir = v;
    } else if ((v = cli_opt(argc, argv, &i, "--name", &miss)) || miss) {
      if (miss || !*v) rc = cli_usage_error("serve", "--name needs text");
      name = v;
    } else if (strcmp(argv[i], "--verbose") == 0) {
      o.verbose = 1;
    } else if ((r = cli_frame_option("serve", argc, argv, &i, &o.sampling)) != 0) {
      if (r < 0) rc = 2;
    } else if ((r = cli_threads_option("serve", argc, argv, &i, &threads)) != 0) {
      if (r < 0) rc = 2;
    } else if ((r = cli_dtype_option("serve", argc, argv, &i, &dtype)) != 0) {
      if (r < 0) rc = 2;
    } else if ((r = cli_gen_option("serve", argc, argv, &i, &o.gen)) != 0) {
      if (r < 0) rc = 2;
    } else {
      rc = cli_usage_error("serve", "unknown argument %s", argv[i]);
    }
  }
  if (!rc && !model) rc = cli_usage_error("serve", "--model is required");
  if (rc) return rc;
  char base[256];
  if (!name) {
    const char *end = model + strlen(model);
    while (end > model && end[-1] == '/') end--;
    const char *b = end;
    while (b > model && b[-1] != '/') b--;
    snprintf(base, sizeof base, "%.*s", (int)(end - b), b);
    name = *base ? base : "videoblip";
  }
  o.model_name = name;

  /* SIGINT/SIGTERM go to sigwait below: block them before any thread starts */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.n_threads = threads;
  lo.dtype = dtype;
  vblip_model *m = vblip_model_load(model, &lo);
  if (!m) return cli_fail("%s", vblip_last_error());
  vblip_server *s = vblip_server_start(m, &o);
  if (!s) {
    rc = cli_fail("%s", vblip_last_error());
    vblip_model_free(m);
    return rc;
  }
  int v6 = strchr(o.host, ':') != NULL;
  printf("vblip serve: listening on http://%s%s%s:%d/\n", v6 ? "[" : "", o.host, v6 ? "]" : "", vblip_server_port(s));
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "vblip serve: %s, shutting down\n", sig == SIGINT ? "interrupted" : "terminated");
  vblip_server_stop(s);
  vblip_model_free(m);
  return 0;
}
