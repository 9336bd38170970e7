/* POST /api/narrate (issue 24): `vblip serve` with the tiny fixture model narrates an upload
 * and streams its cues as Server-Sent Events. The events come one per window and one per cue,
 * window times follow window / stride, the cues equal `vblip narrate --format jsonl` with the
 * same options, the downloads equal the CLI's WebVTT and SRT byte for byte, bad options and
 * bad videos are 4xx in the API's error shape, URL input needs --allow-url-input (and then
 * reads the server's own example file over HTTP), and a client that hangs up stops the
 * narration. Everything is bounded in time. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve_child.h"
#include "testutil.h"

#define MODEL "tests/fixtures/models/videoblip-opt-tiny"
#define MEDIA "tests/fixtures/media"
#define VIDEO MEDIA "/video1_h264_320x240_30fps_12s.mp4"
#define VIDEO_NAME "video1_h264_320x240_30fps_12s.mp4"
#define GEN "--beams 1 --max-new-tokens 8"
#define GEN_Q "num_beams=1&max_new_tokens=8"
#define MAX_EV 256

typedef tu_server server;

static int start_server(server *s, const char *const *extra, const char *delay_ms) {
  return tu_server_start(s, MODEL, extra, delay_ms, NULL);
}

static int stop_server(server *s) {
  return tu_server_stop(s);
}

/* ---- HTTP ---- */

typedef struct {
  long status;
  char *body;
  size_t len;
  char ctype[128];
  const char *hang_up_at; /* stop reading once the body holds this */
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
  if (r->hang_up_at && strstr(r->body, r->hang_up_at)) return 0;
  return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *u) {
  resp *r = u;
  size_t k = sz * n;
  if (k > 14 && strncasecmp(p, "Content-Type:", 13) == 0)
    snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(k - 15), p + 14);
  return k;
}

/* method on base+path with body (NULL: none); a file's bytes when file is set */
static long http(const server *s, const char *method, const char *path, const char *file, resp *r) {
  const char *hang = r->hang_up_at;
  memset(r, 0, sizeof *r);
  r->hang_up_at = hang;
  r->body = calloc(1, 1);
  char url[8192];
  snprintf(url, sizeof url, "%s%s", s->base, path);
  char *data = NULL;
  long len = 0;
  if (file) {
    FILE *f = fopen(file, "rb");
    CHECK(f != NULL, "open %s", file);
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)len + 1);
    len = (long)fread(data, 1, (size_t)len, f);
    fclose(f);
  }
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  struct curl_slist *h = curl_slist_append(NULL, "Expect:");
  h = curl_slist_append(h, "Content-Type: video/mp4");
  if (file) { /* the name the cues' "video" field gives */
    char xf[600];
    const char *base = strrchr(file, '/');
    snprintf(xf, sizeof xf, "X-Filename: %s", base ? base + 1 : file);
    h = curl_slist_append(h, xf);
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, data ? data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->hang_up_at))
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  else
    r->status = -1;
  curl_easy_cleanup(c);
  curl_slist_free_all(h);
  free(data);
  return r->status;
}

/* ---- events ---- */

typedef struct {
  char name[16];
  cJSON *data;
} event;

/* The SSE body as events (data parsed as JSON); returns how many. */
static int parse_events(const char *body, event *ev, int max) {
  int n = 0;
  char name[16] = "message";
  for (const char *p = body; p && *p && n < max;) {
    const char *eol = strchr(p, '\n');
    size_t k = eol ? (size_t)(eol - p) : strlen(p);
    if (k > 7 && strncmp(p, "event: ", 7) == 0) {
      snprintf(name, sizeof name, "%.*s", (int)(k - 7), p + 7);
    } else if (k > 6 && strncmp(p, "data: ", 6) == 0) {
      snprintf(ev[n].name, sizeof ev[n].name, "%s", name);
      ev[n].data = cJSON_ParseWithLength(p + 6, k - 6);
      CHECK(ev[n].data != NULL, "event data is JSON: %.*s", (int)k, p);
      n++;
    } else if (k == 0) {
      snprintf(name, sizeof name, "message");
    }
    p = eol ? eol + 1 : NULL;
  }
  return n;
}

static void free_events(event *ev, int n) {
  for (int i = 0; i < n; i++)
    cJSON_Delete(ev[i].data);
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : -1e300;
}

static const char *str(const cJSON *o, const char *k) {
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* `vblip narrate ARGS`'s stdout (each command run once: the answers are kept) */
static char *vblip(const char *args) {
  static struct { char *args, *out; } seen[8];
  static int n_seen;
  for (int i = 0; i < n_seen; i++)
    if (strcmp(seen[i].args, args) == 0) return strdup(seen[i].out);
  char cmd[4096], *out = NULL;
  /* in the media directory: the video's name is the one the uploads give */
  snprintf(cmd, sizeof cmd,
           "cd %s && %s narrate --model ../models/videoblip-opt-tiny --threads 2 %s 2>/dev/null",
           MEDIA, VBLIP_BINARY, args);
  int rc = tu_run(cmd, &out);
  CHECK(rc == 0, "%s: exit %d", cmd, rc);
  if (!out) out = strdup("");
  if (n_seen < 8) {
    seen[n_seen].args = strdup(args);
    seen[n_seen++].out = strdup(out);
  }
  return out;
}

/* The CLI's JSON Lines cues equal the stream's cue events (times, text, windows). */
static void check_cues_equal_cli(event *ev, int n, const char *cli_args, int same_video) {
  char *out = vblip(cli_args);
  int k = 0;
  const char *line = out;
  for (int i = 0; i < n; i++) {
    if (strcmp(ev[i].name, "cue") != 0) continue;
    const char *nl = line ? strchr(line, '\n') : NULL;
    CHECK(nl != NULL, "the CLI has a cue %d too", k);
    if (!nl) break;
    cJSON *c = cJSON_ParseWithLength(line, (size_t)(nl - line));
    const cJSON *e = ev[i].data;
    CHECK(c && num(c, "start") == num(e, "start") && num(c, "end") == num(e, "end"),
          "cue %d: times %g-%g, the CLI's %g-%g", k, num(e, "start"), num(e, "end"),
          num(c, "start"), num(c, "end"));
    CHECK(c && str(c, "text") && str(e, "text") && strcmp(str(c, "text"), str(e, "text")) == 0,
          "cue %d: '%s', the CLI's '%s'", k, str(e, "text"), c ? str(c, "text") : "?");
    cJSON *cw = cJSON_GetObjectItem(c, "windows"), *ew = cJSON_GetObjectItem(e, "windows");
    CHECK(cJSON_Compare(cw, ew, 1), "cue %d: the same windows", k);
    CHECK(c && str(c, "prompt") && str(e, "prompt") && !strcmp(str(c, "prompt"), str(e, "prompt")),
          "cue %d: the same prompt", k);
    CHECK(!same_video ||
              (c && str(c, "video") && str(e, "video") &&
               !strcmp(str(c, "video"), str(e, "video")) && !strcmp(str(e, "video"), VIDEO_NAME)),
          "cue %d: video '%s', the CLI's '%s'", k, str(e, "video"), c ? str(c, "video") : "?");
    CHECK(num(e, "index") == k, "cue %d: index %g", k, num(e, "index"));
    cJSON_Delete(c);
    line = nl + 1;
    k++;
  }
  CHECK(k > 0, "cues came");
  CHECK(line && *line == 0, "no more CLI cues than events: '%.80s'", line ? line : "");
  free(out);
}

static void check_error(const server *s, const char *method, const char *path, const char *file,
                        long want, const char *needle) {
  resp r = {0};
  long st = http(s, method, path, file, &r);
  cJSON *j = cJSON_Parse(r.body);
  const char *msg = str(j, "error");
  CHECK(st == want, "%s %s: status %ld, want %ld (%s)", method, path, st, want, r.body);
  CHECK(msg && strstr(msg, needle), "%s %s: error '%s' names '%s'", method, path,
        msg ? msg : r.body, needle);
  CHECK(strstr(r.ctype, "application/json") != NULL, "%s: JSON error (%s)", path, r.ctype);
  cJSON_Delete(j);
  free(r.body);
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_stream(const server *s) {
  /* one cue per window: window 4 s, stride 2 s, 4 frames over the 12 s fixture: 5 windows */
  resp r = {0};
  long st =
      http(s, "POST", "/api/narrate?window=4&stride=2&frames=4&merge=false&format=jsonl&" GEN_Q,
           VIDEO, &r);
  CHECK(st == 200, "narrate: %ld %s", st, r.body);
  CHECK(strstr(r.ctype, "text/event-stream") != NULL, "SSE: %s", r.ctype);
  event ev[MAX_EV];
  int n = parse_events(r.body, ev, MAX_EV);
  CHECK(n > 2 && strcmp(ev[0].name, "start") == 0, "first event is start");
  CHECK(n > 2 && strcmp(ev[n - 1].name, "done") == 0, "last event is done");
  int windows = 0, cues = 0, last_window_ev = -1, first_cue_ev = -1;
  for (int i = 0; i < n; i++) {
    if (strcmp(ev[i].name, "window") == 0) {
      const cJSON *w = ev[i].data;
      CHECK(num(w, "index") == windows, "window %d in order", windows);
      CHECK(num(w, "start") == 2.0 * windows && num(w, "end") == 2.0 * windows + 4,
            "window %d covers [%g, %g)", windows, num(w, "start"), num(w, "end"));
      CHECK(str(w, "text") && *str(w, "text"), "window %d has text", windows);
      CHECK(num(w, "vision_frames") == (windows == 0 ? 4 : 2), "window %d encodes %g new frames",
            windows, num(w, "vision_frames"));
      windows++;
      last_window_ev = i;
    } else if (strcmp(ev[i].name, "cue") == 0) {
      const char *line = str(ev[i].data, "cue");
      cJSON *c = line ? cJSON_Parse(line) : NULL; /* format=jsonl: the cue as a JSON line */
      CHECK(c && num(c, "start") == num(ev[i].data, "start"), "cue %d in the jsonl form", cues);
      cJSON_Delete(c);
      if (first_cue_ev < 0) first_cue_ev = i;
      cues++;
    }
  }
  CHECK(windows == 5, "5 windows over 12 s, got %d", windows);
  CHECK(cues == 5, "no merging: a cue per window, got %d", cues);
  /* a cue is sent as soon as the next window completes it, not at the end */
  CHECK(first_cue_ev >= 0 && first_cue_ev < last_window_ev, "the first cue before the last window");
  const cJSON *d = ev[n - 1].data;
  CHECK(num(d, "windows") == 5 && num(d, "skipped") == 0 && num(d, "cues") == 5,
        "done: windows %g skipped %g cues %g", num(d, "windows"), num(d, "skipped"),
        num(d, "cues"));
  /* the grid: frames at (k + 0.5) s, 12 of them, each encoded once (independent: 5 x 4) */
  CHECK(num(d, "vision_frames") == 12 && num(d, "independent_frames") == 20,
        "done: vision frames %g (independent %g)", num(d, "vision_frames"),
        num(d, "independent_frames"));
  CHECK(num(d, "media_sec") == 12 && num(d, "max_lag") == 0, "done: 12 s, no lag");
  check_cues_equal_cli(
      ev, n, "--window 4 --stride 2 --frames 4 --no-merge --format jsonl " GEN " " VIDEO_NAME, 1);
  free_events(ev, n);
  free(r.body);

  /* merged (the default), as WebVTT: the downloads equal the CLI's documents byte for byte */
  st = http(s, "POST", "/api/narrate?window=4&frames=2&" GEN_Q, VIDEO, &r);
  CHECK(st == 200, "narrate: %ld %s", st, r.body);
  n = parse_events(r.body, ev, MAX_EV);
  windows = 0;
  for (int i = 0; i < n; i++)
    windows += strcmp(ev[i].name, "window") == 0;
  CHECK(windows == 5, "window 4 s, stride 2 s over 12 s: 5 windows, got %d", windows);
  check_cues_equal_cli(ev, n, "--window 4 --frames 2 --format jsonl " GEN " " VIDEO_NAME, 1);
  const cJSON *done = n ? ev[n - 1].data : NULL;
  const cJSON *dl = cJSON_GetObjectItem(done, "downloads");
  const char *kinds[] = {"vtt", "srt", "jsonl"};
  for (int k = 0; k < 3; k++) {
    const char *path = str(dl, kinds[k]);
    CHECK(path != NULL, "a %s download", kinds[k]);
    if (!path) continue;
    resp g = {0};
    st = http(s, "GET", path, NULL, &g);
    CHECK(st == 200, "GET %s: %ld", path, st);
    char args[512];
    snprintf(args, sizeof args, "--window 4 --frames 2 --format %s " GEN " " VIDEO_NAME, kinds[k]);
    char *cli = vblip(args);
    CHECK(strcmp(g.body, cli) == 0, "%s download equals the CLI's:\n%s\n---\n%s", kinds[k], g.body,
          cli);
    const char *want_type = k == 0   ? "text/vtt"
                            : k == 1 ? "application/x-subrip"
                                     : "application/jsonl";
    CHECK(strncmp(g.ctype, want_type, strlen(want_type)) == 0, "%s type %s", kinds[k], g.ctype);
    free(cli);
    free(g.body);
  }
  /* the description */
  const char *id = str(done, "id");
  char path[256];
  snprintf(path, sizeof path, "/api/narrations/%s", id ? id : "x");
  resp g = {0};
  st = http(s, "GET", path, NULL, &g);
  cJSON *o = cJSON_Parse(g.body);
  CHECK(st == 200 && str(o, "state") && strcmp(str(o, "state"), "done") == 0 &&
            num(o, "windows") == 5 && num(o, "cues") == num(done, "cues"),
        "GET %s: %s", path, g.body);
  cJSON_Delete(o);
  free(g.body);
  free_events(ev, n);
  free(r.body);
}

static void test_errors(const server *s) {
  check_error(s, "POST", "/api/narrate?window=3&stride=2", VIDEO, 400, "whole multiple");
  check_error(s, "POST", "/api/narrate?window=-1", VIDEO, 400, "'window'");
  check_error(s, "POST", "/api/narrate?window=abc", VIDEO, 400, "'window'");
  check_error(s, "POST", "/api/narrate?frames=0", VIDEO, 400, "'frames'");
  check_error(s, "POST", "/api/narrate?frames=2.5", VIDEO, 400, "'frames'");
  check_error(s, "POST", "/api/narrate?format=xml", VIDEO, 400, "'format'");
  check_error(s, "POST", "/api/narrate?merge=maybe", VIDEO, 400, "'merge'");
  check_error(s, "POST", "/api/narrate?num_beams=-1", VIDEO, 400, "num_beams");
  check_error(s, "POST", "/api/narrate?bogus=1", VIDEO, 400, "unknown parameter 'bogus'");
  check_error(s, "POST", "/api/narrate?prompt=%FF", VIDEO, 400, "UTF-8");
  check_error(s, "POST", "/api/narrate", NULL, 400, "no video");
  check_error(s, "POST", "/api/narrate?url=http://127.0.0.1:9/x.m3u8", NULL, 403,
              "--allow-url-input");
  check_error(s, "GET", "/api/narrate", NULL, 405, "POST");
  /* the video: shorter than a window, not a video */
  check_error(s, "POST", "/api/narrate?window=20", VIDEO, 422, "before the first 20-second window");
  check_error(s, "POST", "/api/narrate", "tests/fixtures/models/videoblip-opt-tiny/config.json",
              422, "cannot open");
  check_error(s, "GET", "/api/narrations/0123456789abcdef0123456789abcdef.vtt", NULL, 404,
              "no narration");
  check_error(s, "GET", "/api/narrations/nothing", NULL, 404, "no such narration");
}

static void test_limits_and_urls(void) {
  /* uploads follow the upload limit; URLs need the flag and are read by the server (here:
   * its own example file over HTTP) */
  server s;
  const char *extra[] = {"--max-upload-mb", "0.1", "--allow-url-input", "--examples", MEDIA, NULL};
  CHECK(start_server(&s, extra, NULL) == 0, "server with --allow-url-input starts");
  if (!s.pid) return;
  check_error(&s, "POST", "/api/narrate", VIDEO, 413, "limit");
  check_error(&s, "POST", "/api/narrate?url=file:///etc/passwd", NULL, 400, "'url'");
  check_error(&s, "POST", "/api/narrate?url=ftp://127.0.0.1/x", NULL, 400, "'url'");
  check_error(&s, "POST", "/api/narrate?url=http://127.0.0.1/x", MEDIA "/image_rgb_203x150.png",
              400, "not both");
  char long_q[5200];
  int k = snprintf(long_q, sizeof long_q, "/api/narrate?url=http://127.0.0.1/");
  while (k < 2200)
    long_q[k++] = 'a';
  long_q[k] = 0;
  check_error(&s, "POST", long_q, NULL, 400, "'url'");
  k = snprintf(long_q, sizeof long_q, "/api/narrate?prompt=");
  while (k < 4200)
    long_q[k++] = 'a';
  long_q[k] = 0;
  check_error(&s, "POST", long_q, NULL, 400, "longer than 4096 bytes");
  char q[1024];
  snprintf(q, sizeof q,
           "/api/narrate?window=4&stride=2&frames=4&merge=false&" GEN_Q
           "&url=%s/examples/" VIDEO_NAME,
           s.base);
  resp r = {0};
  long st = http(&s, "POST", q, NULL, &r);
  CHECK(st == 200, "narrate a URL: %ld %s", st, r.body);
  event ev[MAX_EV];
  int n = parse_events(r.body, ev, MAX_EV);
  CHECK(n > 0 && strcmp(ev[n - 1].name, "done") == 0 && num(ev[n - 1].data, "windows") == 5,
        "the URL's 5 windows");
  check_cues_equal_cli(
      ev, n, "--window 4 --stride 2 --frames 4 --no-merge --format jsonl " GEN " " VIDEO_NAME, 0);
  free_events(ev, n);
  free(r.body);
  CHECK(stop_server(&s) == 0, "server exits cleanly");
}

static void test_disconnect(void) {
  /* every window takes 300 ms more: 11 windows would take > 3 s; the client hangs up at the
   * first window, and the narration stops at the next one */
  server s;
  CHECK(start_server(&s, NULL, "300") == 0, "slow server starts");
  if (!s.pid) return;
  resp r = {.hang_up_at = "event: window"};
  double t0 = mono_s();
  http(&s, "POST", "/api/narrate?window=2&frames=2&" GEN_Q, VIDEO, &r);
  CHECK(r.status == 200 && strstr(r.body, "event: window"), "the first window came: %ld", r.status);
  char *start = strstr(r.body, "\"id\":\"");
  char id[40] = "";
  if (start) snprintf(id, sizeof id, "%.32s", start + 6);
  free(r.body);
  /* the worker is free again well before the 11 windows would have been done */
  int idle = 0;
  for (int i = 0; i < 60 && !idle; i++) {
    usleep(100000);
    resp h = {0};
    http(&s, "GET", "/api/health", NULL, &h);
    cJSON *j = cJSON_Parse(h.body);
    idle = cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "queue"), "busy"));
    cJSON_Delete(j);
    free(h.body);
  }
  double took = mono_s() - t0;
  CHECK(idle, "the worker stopped after the client left");
  char path[128];
  snprintf(path, sizeof path, "/api/narrations/%s", id);
  resp g = {0};
  long st = http(&s, "GET", path, NULL, &g);
  cJSON *o = cJSON_Parse(g.body);
  CHECK(st == 200 && num(o, "windows") >= 1 && num(o, "windows") < 11 && str(o, "state") &&
            strcmp(str(o, "state"), "cancelled") == 0,
        "the narration stopped early (%.1f s): %s", took, g.body);
  cJSON_Delete(o);
  free(g.body);
  CHECK(stop_server(&s) == 0, "server exits cleanly");
}

/* narrate's JSON Lines and caption --files-from's share their fields: each narrate line is a
 * valid list line for caption, whose result names the same video, window and prompt */
static void test_shared_jsonl(void) {
  char cmd[4600], path[1100], *out = NULL;
  snprintf(path, sizeof path, "%s/narrate.jsonl", tu_tmpdir());
  snprintf(cmd, sizeof cmd,
           "cd %s && %s narrate --model ../models/videoblip-opt-tiny --threads 2 --window 4 "
           "--frames 2 --no-merge --format jsonl " GEN " " VIDEO_NAME " 2>/dev/null | tee %s | "
           "%s caption --model ../models/videoblip-opt-tiny --threads 2 --frames 2 " GEN
           " --files-from - 2>/dev/null",
           MEDIA, VBLIP_BINARY, path, VBLIP_BINARY);
  int rc = tu_run(cmd, &out);
  CHECK(rc == 0, "narrate | caption --files-from -: exit %d", rc);
  char *narr = calloc(1, 1 << 16);
  size_t len = 0;
  FILE *f = fopen(path, "rb");
  if (f && narr) {
    len = fread(narr, 1, (1 << 16) - 1, f);
    fclose(f);
  }
  CHECK(len > 0, "narrate wrote its lines");
  int lines = 0;
  const char *a = narr, *b = out;
  while (a && b && *a && *b) {
    const char *na = strchr(a, '\n'), *nb = strchr(b, '\n');
    if (!na || !nb) break;
    cJSON *x = cJSON_ParseWithLength(a, (size_t)(na - a));
    cJSON *y = cJSON_ParseWithLength(b, (size_t)(nb - b));
    CHECK(x && y, "line %d parses", lines + 1);
    static const char *const shared[] = {"video", "start", "end", "prompt"};
    for (int i = 0; i < 4; i++)
      CHECK(cJSON_GetObjectItem(x, shared[i]) &&
                cJSON_Compare(cJSON_GetObjectItem(x, shared[i]), cJSON_GetObjectItem(y, shared[i]),
                              1),
            "line %d: the same '%s' in narrate's line and caption's result", lines + 1, shared[i]);
    CHECK(str(x, "text") && str(y, "text") && num(y, "line") == lines + 1,
          "line %d: both have a text; caption numbers its input line", lines + 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    a = na + 1;
    b = nb + 1;
    lines++;
  }
  CHECK(lines == 5 && a && !*a && b && !*b, "5 windows, one caption result each (%d)", lines);
  free(narr);
  free(out);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  signal(SIGPIPE, SIG_IGN);
  server s;
  CHECK(start_server(&s, NULL, NULL) == 0, "server starts");
  if (s.pid) {
    test_stream(&s);
    test_errors(&s);
    CHECK(stop_server(&s) == 0, "server exits cleanly");
  }
  test_limits_and_urls();
  test_disconnect();
  test_shared_jsonl();
  curl_global_cleanup();
  return tu_finish();
}
