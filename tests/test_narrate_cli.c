/* vblip narrate end to end (issue 24) on a synthetic 60 s video made with FFmpeg's lavfi
 * sources (four visibly different 15 s segments): cue times follow the window / stride rules,
 * merged cues are the runs of equal window captions, WebVTT and SRT parse back to the same
 * cues, each window's caption equals `vblip caption --frame-times` on that window's frames,
 * and a stream fed in real time (`ffmpeg -re ... -f mpegts pipe:`) gives cues while it runs
 * and, with a deliberately slow setting, skips windows with a bounded lag. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "testutil.h"
#include "text/cues.h"

#define MAX_CUES 128
#define GEN "--beams 1 -n 8 --dtype f32"

typedef struct {
  double start, end;
  char text[512];
  int first, last, skipped;
  double lag;
} cue;

static char g_model[1024], g_video[1024];

/* Runs `vblip ARGS` (stdout only); the exit status, *out the output. */
static int vblip(const char *args, char **out) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s %s 2>%s/stderr.txt", VBLIP_BINARY, args, tu_tmpdir());
  return tu_run(cmd, out);
}

static int parse_jsonl(const char *s, cue *c) {
  int n = 0;
  for (const char *line = s; line && *line && n < MAX_CUES;) {
    const char *nl = strchr(line, '\n');
    cJSON *j = cJSON_ParseWithLength(line, nl ? (size_t)(nl - line) : strlen(line));
    CHECK(j, "a JSON line: %.80s", line);
    if (!j) return n;
    cJSON *w = cJSON_GetObjectItem(j, "windows");
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
    c[n].start = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "start"));
    c[n].end = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "end"));
    c[n].first = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(w, 0));
    c[n].last = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(w, 1));
    c[n].skipped = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "skipped_before"));
    c[n].lag = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "lag"));
    snprintf(c[n].text, sizeof c[n].text, "%s", t ? t : "");
    n++;
    cJSON_Delete(j);
    line = nl ? nl + 1 : NULL;
  }
  return n;
}

/* "HH:MM:SS.mmm" (sep '.') or with ',': seconds, or -1 when malformed. */
static double parse_ts(const char *s, char sep) {
  int h, m, sec, ms, used = 0;
  char got;
  if (sscanf(s, "%d:%2d:%2d%c%3d%n", &h, &m, &sec, &got, &ms, &used) != 5 || got != sep ||
      used != (int)strlen(s) || m > 59 || sec > 59 || s[used - 4] != sep)
    return -1;
  return h * 3600.0 + m * 60 + sec + ms / 1000.0;
}

/* Parses WebVTT (srt = 0) or SRT (srt = 1) back into cues; -1 when the layout is wrong. */
static int parse_subtitles(char *s, int srt, cue *c) {
  int n = 0;
  char *save = NULL, *line = strtok_r(s, "\n", &save);
  if (!srt) {
    if (!line || strcmp(line, "WEBVTT") != 0) return -1;
    line = strtok_r(NULL, "\n", &save);
  }
  while (line && n < MAX_CUES) {
    if (srt) {
      if (atoi(line) != n + 1) return -1; /* numbered from 1 */
      line = strtok_r(NULL, "\n", &save);
      if (!line) return -1;
    }
    char a[64], b[64];
    if (sscanf(line, "%63s --> %63s", a, b) != 2) return -1;
    c[n].start = parse_ts(a, srt ? ',' : '.');
    c[n].end = parse_ts(b, srt ? ',' : '.');
    if (c[n].start < 0 || c[n].end < 0) return -1;
    char *text = strtok_r(NULL, "\n", &save);
    if (!text) return -1;
    snprintf(c[n].text, sizeof c[n].text, "%s", text);
    n++;
    line = strtok_r(NULL, "\n", &save);
  }
  return n;
}

static int make_video(void) {
  snprintf(g_video, sizeof g_video, "%s/syn60.mp4", tu_tmpdir());
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "ffmpeg -v error -y -f lavfi -i testsrc=size=160x120:rate=10:duration=15 "
           "-f lavfi -i smptebars=size=160x120:rate=10:duration=15 "
           "-f lavfi -i color=c=red:size=160x120:rate=10:duration=15 "
           "-f lavfi -i mandelbrot=size=160x120:rate=10 -filter_complex "
           "\"[3]trim=duration=15,setpts=PTS-STARTPTS[m];[0][1][2][m]concat=n=4:v=1[v]\" "
           "-map \"[v]\" -c:v libx264 -preset ultrafast -g 10 -pix_fmt yuv420p %s 2>&1",
           g_video);
  char *out = NULL;
  int rc = tu_run(cmd, &out);
  CHECK(rc == 0, "ffmpeg made the 60 s video: %s", out ? out : "");
  free(out);
  return rc;
}

/* Window w of 8 s every 4 s with 8 frames: the grid times of its frames, comma-separated. */
static void frame_times(int w, char *buf, size_t cap) {
  size_t k = 0;
  for (int j = 0; j < 8 && k < cap; j++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%g", j ? "," : "", w * 4 + j + 0.5);
}

static void test_file(void) {
  char args[4096], *out = NULL;
  cue win[MAX_CUES], merged[MAX_CUES], sub[MAX_CUES];
  snprintf(args, sizeof args, "narrate -m %s " GEN " --no-merge -f jsonl %s", g_model, g_video);
  CHECK(vblip(args, &out) == 0, "narrate --no-merge: %s", out);
  int n = parse_jsonl(out ? out : "", win);
  free(out);
  /* 60 s, window 8, stride 4: windows [0,8) .. [52,60) */
  CHECK(n == 14, "%d windows", n);
  int differ = 0;
  for (int i = 0; i < n; i++) {
    double end = i + 1 < n ? 4.0 * (i + 1) : 4.0 * i + 8;
    CHECK(win[i].first == i && win[i].last == i && win[i].start == 4.0 * i && win[i].end == end,
          "window %d: [%d,%d] %g-%g", i, win[i].first, win[i].last, win[i].start, win[i].end);
    if (i && !vb_captions_same(win[i].text, win[i - 1].text)) differ++;
  }
  CHECK(differ > 0, "the segments give different captions");

  /* each window's caption = caption on the same frames, alone */
  for (int i = 0; i < n; i++) {
    char times[256];
    frame_times(i, times, sizeof times);
    snprintf(args, sizeof args,
             "caption -m %s " GEN
             " -p \"Question: What is the camera wearer doing? Answer:\" --frame-times %s %s",
             g_model, times, g_video);
    CHECK(vblip(args, &out) == 0, "caption --frame-times: %s", out);
    if (out) out[strcspn(out, "\n")] = 0;
    CHECK(out && !strcmp(out, win[i].text), "window %d: narrate '%s', caption '%s'", i, win[i].text,
          out ? out : "");
    free(out);
  }

  /* merged: the runs of equal captions */
  snprintf(args, sizeof args, "narrate -m %s " GEN " -f jsonl %s", g_model, g_video);
  CHECK(vblip(args, &out) == 0, "narrate: %s", out);
  int m = parse_jsonl(out ? out : "", merged);
  free(out);
  int k = 0;
  for (int i = 0; i < n; k++) {
    int j = i;
    while (j + 1 < n && vb_captions_same(win[j + 1].text, win[i].text))
      j++;
    double end = j + 1 < n ? 4.0 * (j + 1) : 4.0 * j + 8;
    CHECK(k < m && merged[k].first == i && merged[k].last == j && merged[k].start == 4.0 * i &&
              merged[k].end == end && !strcmp(merged[k].text, win[i].text),
          "cue %d: windows %d-%d %g-%g '%s'", k, k < m ? merged[k].first : -1,
          k < m ? merged[k].last : -1, k < m ? merged[k].start : 0, k < m ? merged[k].end : 0,
          k < m ? merged[k].text : "");
    i = j + 1;
  }
  CHECK(m == k && m < n, "%d merged cues, %d runs, %d windows", m, k, n);

  /* WebVTT and SRT parse back to the same cues, in order, not overlapping */
  for (int srt = 0; srt <= 1; srt++) {
    snprintf(args, sizeof args, "narrate -m %s " GEN " -f %s %s", g_model, srt ? "srt" : "vtt",
             g_video);
    CHECK(vblip(args, &out) == 0, "narrate -f %s", srt ? "srt" : "vtt");
    int s = out ? parse_subtitles(out, srt, sub) : -1;
    free(out);
    CHECK(s == m, "%s: %d cues parsed back (%d)", srt ? "SRT" : "WebVTT", s, m);
    for (int i = 0; i < s && i < m; i++) {
      CHECK(sub[i].start == merged[i].start && sub[i].end == merged[i].end &&
                !strcmp(sub[i].text, merged[i].text) && sub[i].start < sub[i].end &&
                (i == 0 || sub[i].start >= sub[i - 1].end),
            "%s cue %d: %g-%g '%s'", srt ? "SRT" : "WebVTT", i, sub[i].start, sub[i].end,
            sub[i].text);
    }
  }

  /* usage errors before the model loads */
  snprintf(args, sizeof args, "narrate -m %s --stride 3.5 %s", g_model, g_video);
  CHECK(vblip(args, &out) == 2, "stride not on the grid: exit 2");
  free(out);
}

/* Feeds 12 s of the video in real time into `narrate -`; returns the wall time of the first
 * cue and of the end (seconds after the start), the cues in c, stderr in err. */
static int live_run(const char *gen, double *first_ms, double *total_ms, cue *c, char **err) {
  char cmd[8192], errpath[1024];
  snprintf(errpath, sizeof errpath, "%s/live_err.txt", tu_tmpdir());
  snprintf(cmd, sizeof cmd,
           "ffmpeg -v error -re -i %s -t 12 -c copy -f mpegts pipe: | %s narrate -m %s "
           "--window 2 --stride 1 --frames 4 --no-merge -f jsonl %s - 2>%s",
           g_video, VBLIP_BINARY, g_model, gen, errpath);
  double t0 = vb_now_ms();
  *first_ms = -1;
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  char line[8192], *all = calloc(1, 1);
  size_t len = 0;
  while (fgets(line, sizeof line, p)) {
    if (*first_ms < 0) *first_ms = vb_now_ms() - t0;
    size_t l = strlen(line);
    char *grown = realloc(all, len + l + 1);
    if (!grown) break;
    all = grown;
    memcpy(all + len, line, l + 1);
    len += l;
  }
  int rc = pclose(p);
  *total_ms = vb_now_ms() - t0;
  int n = parse_jsonl(all, c);
  free(all);
  FILE *f = fopen(errpath, "r");
  *err = calloc(1, 8192);
  if (f && *err) (void)!fread(*err, 1, 8191, f);
  if (f) fclose(f);
  return rc == 0 ? n : -1;
}

static void test_live(void) {
  cue c[MAX_CUES];
  double first, total;
  char *err = NULL;
  int n = live_run(GEN, &first, &total, c, &err);
  /* windows of 2 s every 1 s over 12 s, one cue each: cues from about 2 s on, not all at the
   * end */
  CHECK(n >= 9, "live: %d cues; %s", n, err);
  CHECK(first > 0 && first < 9000, "live: first cue after %.0f ms (the stream runs 12 s)", first);
  CHECK(total > 10000, "live: the stream took its time (%.0f ms)", total);
  CHECK(err && strstr(err, "windows") && strstr(err, "largest lag"), "summary: %s", err);
  free(err);

  /* 5 windows a second (0.4 s every 0.2 s), each taking most of a second (8 beams, 200 tokens;
   * 0.74 s a window on a quiet 2-core Xeon): windows are skipped, the lag stays bounded */
  n = live_run("--beams 8 -n 200 --min-new-tokens 200 --window 0.4 --stride 0.2", &first, &total, c,
               &err);
  int skipped = 0;
  double worst = 0;
  for (int i = 0; i < n; i++) {
    skipped += c[i].skipped;
    if (c[i].lag > worst) worst = c[i].lag;
  }
  CHECK(n >= 1 && skipped > 0, "slow: %d cues, %d windows skipped; %s", n, skipped, err);
  CHECK(err && strstr(err, "behind the stream: skipped"), "skips reported: %s", err);
  /* without skipping, 11 windows of seconds each would end far behind the 12 s stream */
  CHECK(total < 12000 + 15000, "slow: done %.0f ms after the start", total);
  CHECK(worst < 12, "slow: largest lag %.1f s", worst);
  free(err);
}

/* A capture device goes through FFmpeg's v4l2 input (libavdevice): one that is missing, or a
 * device that is not a camera, is a clear error naming it, never "built without" */
static void test_capture_device(void) {
  const char *devs[] = {"/dev/video97", "/dev/null"};
  for (int i = 0; i < 2; i++) {
    char args[1400], path[512], *out = NULL;
    snprintf(args, sizeof args, "narrate -m %s --live on --format jsonl %s", g_model, devs[i]);
    int rc = vblip(args, &out);
    snprintf(path, sizeof path, "%s/stderr.txt", tu_tmpdir());
    FILE *f = fopen(path, "rb");
    char err[2048] = "";
    size_t n = f ? fread(err, 1, sizeof err - 1, f) : 0;
    err[n] = 0;
    if (f) fclose(f);
    CHECK(rc == 1, "%s: exit %d (want 1)", devs[i], rc);
    CHECK(strstr(err, devs[i]) && !strstr(err, "built without"), "%s: the error names it: %s",
          devs[i], err);
    CHECK(out && !*out, "%s: no cues: %s", devs[i], out ? out : "");
    free(out);
  }
}

int main(void) {
  snprintf(g_model, sizeof g_model, "%s", tu_fixture("models/videoblip-opt-tiny"));
  if (make_video() == 0) {
    test_file();
    test_live();
  }
  test_capture_device();
  return tu_finish();
}
