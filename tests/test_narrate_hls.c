/* vblip narrate over HLS served on loopback HTTP (issue 24): FFmpeg cuts a 12 s synthetic
 * video into a playlist of 1 s MPEG-TS segments in a temporary directory, a small
 * libmicrohttpd file server in this test serves it on 127.0.0.1, and `vblip narrate
 * http://127.0.0.1:PORT/x.m3u8` must give cues that follow window / stride and equal the
 * narration of the playlist's segments joined into one file on disk (vblip opens no playlist
 * from disk: it could name other files). Then a live (event) playlist that FFmpeg
 * writes in real time (-re): cues come out while FFmpeg is still writing it, and the
 * narration ends with the playlist. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MODEL "tests/fixtures/models/videoblip-opt-tiny"
#define NARRATE "narrate --threads 2 --beams 1 -n 6 --window 2 --frames 2 --format jsonl"

static char g_dir[512];

/* GET /NAME: the file g_dir/NAME (plain names only) */
static enum MHD_Result serve_file(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **state) {
  (void)cls, (void)version, (void)data, (void)size, (void)state;
  if (strcmp(method, "GET") != 0) return MHD_NO;
  const char *name = url + 1;
  char path[1024];
  int fd = -1;
  struct stat st;
  if (*name && !strchr(name, '/') && name[0] != '.' &&
      snprintf(path, sizeof path, "%s/%s", g_dir, name) < (int)sizeof path)
    fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0) close(fd);
    static char nf[] = "not found";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof nf - 1, nf, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result q = MHD_queue_response(c, 404, r);
    MHD_destroy_response(r);
    return q;
  }
  struct MHD_Response *r = MHD_create_response_from_fd((size_t)st.st_size, fd);
  const char *dot = strrchr(name, '.');
  MHD_add_response_header(r, "Content-Type",
                          dot && !strcmp(dot, ".m3u8") ? "application/vnd.apple.mpegurl"
                                                       : "video/mp2t");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  enum MHD_Result q = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return q;
}

typedef struct {
  double start, end;
  int first, last;
  char text[256];
  double t; /* when the line came (seconds since the run started) */
} cue;

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs cmd, reading its JSON Lines cues as they come; returns the exit status. */
static int run_cues(const char *cmd, cue *c, int max, int *n, double t0) {
  *n = 0;
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[4096];
  while (fgets(line, sizeof line, p)) {
    cJSON *j = cJSON_Parse(line);
    CHECK(j != NULL, "a JSON line: %s", line);
    if (j && *n < max) {
      cue *k = &c[(*n)++];
      cJSON *w = cJSON_GetObjectItem(j, "windows");
      k->start = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "start"));
      k->end = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "end"));
      k->first = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(w, 0));
      k->last = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(w, 1));
      const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
      snprintf(k->text, sizeof k->text, "%s", t ? t : "");
      k->t = mono_s() - t0;
    }
    cJSON_Delete(j);
  }
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The playlist's segments, in its order, joined into one MPEG-TS file; 0 or -1. */
static int join_segments(const char *playlist, const char *out) {
  FILE *pl = fopen(playlist, "r"), *o = fopen(out, "wb");
  int rc = pl && o ? 0 : -1, n = 0;
  char line[512], path[1200], buf[1 << 16];
  while (rc == 0 && fgets(line, sizeof line, pl)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0] || line[0] == '#') continue;
    snprintf(path, sizeof path, "%s/%s", g_dir, line);
    FILE *f = fopen(path, "rb");
    if (!f) {
      rc = -1;
      break;
    }
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
      if (fwrite(buf, 1, k, o) != k) rc = -1;
    fclose(f);
    n++;
  }
  if (pl) fclose(pl);
  if (o && fclose(o) != 0) rc = -1;
  return rc == 0 && n > 0 ? 0 : -1;
}

static int ffmpeg(const char *args) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -hide_banner -loglevel error -y %s", args);
  return system(cmd);
}

int main(void) {
  if (system("ffmpeg -version > /dev/null 2>&1") != 0) {
    printf("SKIP: ffmpeg is not installed\n");
    return tu_finish();
  }
  snprintf(g_dir, sizeof g_dir, "%s/hls", tu_tmpdir());
  CHECK(mkdir(g_dir, 0700) == 0, "mkdir %s", g_dir);
  struct MHD_Daemon *d =
      MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                       NULL, serve_file, NULL, MHD_OPTION_SOCK_ADDR, NULL, MHD_OPTION_END);
  if (!CHECK(d != NULL, "the file server starts")) return tu_finish();
  int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
  CHECK(port > 0, "a port: %d", port);

  /* a finished (VOD) playlist: 12 s, 1 s segments */
  char args[4096];
  snprintf(args, sizeof args,
           "-f lavfi -i testsrc2=size=160x120:rate=10 -t 12 -c:v mpeg2video -q:v 4 -g 10 "
           "-f hls -hls_time 1 -hls_playlist_type vod -hls_segment_filename %s/vod%%03d.ts "
           "%s/vod.m3u8",
           g_dir, g_dir);
  CHECK(ffmpeg(args) == 0, "ffmpeg writes the HLS playlist");
  cue net[64], file[64];
  int n_net, n_file;
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s -m %s http://127.0.0.1:%d/vod.m3u8 2>%s/net.err", VBLIP_BINARY,
           NARRATE, MODEL, port, tu_tmpdir());
  int st = run_cues(cmd, net, 64, &n_net, mono_s());
  CHECK(st == 0, "narrate over HTTP: exit %d", st);
  char playlist_path[600], joined[600];
  snprintf(playlist_path, sizeof playlist_path, "%s/vod.m3u8", g_dir);
  snprintf(joined, sizeof joined, "%s/joined.ts", tu_tmpdir());
  CHECK(join_segments(playlist_path, joined) == 0, "the segments joined");
  snprintf(cmd, sizeof cmd, "%s %s --live off -m %s %s 2>/dev/null", VBLIP_BINARY, NARRATE, MODEL,
           joined);
  st = run_cues(cmd, file, 64, &n_file, mono_s());
  CHECK(st == 0, "narrate the joined segments from disk: exit %d", st);
  CHECK(n_net > 0 && n_net == n_file, "cues over HTTP: %d, from disk: %d", n_net, n_file);
  int next = 0;
  for (int i = 0; i < n_net && i < n_file; i++) {
    /* window w = [w, w + 2): merged cues cover consecutive windows */
    CHECK(net[i].first == next && net[i].start == net[i].first && net[i].last >= net[i].first,
          "cue %d: windows %d-%d from %g s", i, net[i].first, net[i].last, net[i].start);
    CHECK(net[i].end == (i + 1 < n_net ? net[i + 1].start : net[i].last + 2.0), "cue %d ends at %g",
          i, net[i].end);
    CHECK(net[i].start == file[i].start && net[i].end == file[i].end &&
              strcmp(net[i].text, file[i].text) == 0,
          "cue %d: '%s' %g-%g over HTTP, '%s' %g-%g from disk", i, net[i].text, net[i].start,
          net[i].end, file[i].text, file[i].start, file[i].end);
    next = net[i].last + 1;
  }
  CHECK(next == 11, "12 s: windows 0-10 narrated, got %d", next);

  /* a live playlist, written in real time: cues while it is written */
  snprintf(args, sizeof args,
           "-re -f lavfi -i testsrc2=size=160x120:rate=10 -t 10 -c:v mpeg2video -q:v 4 -g 10 "
           "-f hls -hls_time 1 -hls_list_size 0 -hls_playlist_type event "
           "-hls_segment_filename %s/live%%03d.ts %s/live.m3u8",
           g_dir, g_dir);
  double t0 = mono_s();
  pid_t writer = fork();
  if (writer == 0) {
    char c2[4200];
    snprintf(c2, sizeof c2, "ffmpeg -nostdin -hide_banner -loglevel error -y %s", args);
    execl("/bin/sh", "sh", "-c", c2, (char *)NULL);
    _exit(127);
  }
  char playlist[600];
  snprintf(playlist, sizeof playlist, "%s/live.m3u8", g_dir);
  struct stat sb;
  for (int i = 0; i < 100 && stat(playlist, &sb) != 0; i++)
    usleep(100000);
  CHECK(stat(playlist, &sb) == 0, "ffmpeg started the live playlist");
  cue live[64];
  int n_live;
  snprintf(cmd, sizeof cmd, "%s %s --no-merge -m %s http://127.0.0.1:%d/live.m3u8 2>%s/live.err",
           VBLIP_BINARY, NARRATE, MODEL, port, tu_tmpdir());
  /* the writer's end, seen from the reader: it has exited by the time narrate does */
  st = run_cues(cmd, live, 64, &n_live, t0);
  int wst = 0;
  waitpid(writer, &wst, 0);
  double written = 0;
  /* the playlist's last change: when FFmpeg wrote its end */
  if (stat(playlist, &sb) == 0) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    written = (mono_s() - t0) - ((double)now.tv_sec + now.tv_nsec / 1e9 -
                                 ((double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec / 1e9));
  }
  CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "the live writer finished");
  CHECK(st == 0, "narrate the live playlist: exit %d", st);
  CHECK(n_live >= 3, "cues from the live playlist: %d", n_live);
  CHECK(n_live > 0 && live[0].t < written - 1.0,
        "the first cue (%.1f s) came while the playlist was still written (until %.1f s)",
        n_live ? live[0].t : -1.0, written);
  for (int i = 1; i < n_live; i++)
    CHECK(live[i].first > live[i - 1].first && live[i].start == live[i].first,
          "live cue %d: window %d at %g s", i, live[i].first, live[i].start);
  MHD_stop_daemon(d);
  return tu_finish();
}
