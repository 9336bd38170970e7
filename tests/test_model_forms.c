/* Every command that takes --model accepts its three forms - a checkpoint directory, a
 * .gguf file (vblip convert) and a Hub repo id (pulled from the local fake Hub, then
 * read from the cache) - and gives the same result from each: caption, chat, score, embed,
 * tokenize, convert, narrate, serve (health, and a narration through POST /api/narrate) and
 * train on the OPT fixture, in f32. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_hub.h"
#include "runtime/common.h"
#include "testutil.h"

#define VIDEO "media/video1_h264_320x240_30fps_12s.mp4"
enum { N_FORMS = 3 };
static const char *k_form_names[N_FORMS] = {"directory", "gguf", "repo id"};
static char g_forms[N_FORMS][600];

/* Runs `vblip ARGS` (stderr discarded unless merge) and returns its stdout. */
static int vblip(const char *args, int merge, char **out) {
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "%s %s %s", VBLIP_BINARY, args, merge ? "2>&1" : "2>/dev/null");
  return tu_run(cmd, out);
}

static bool same_file(const char *a, const char *b) {
  char *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  bool same = vb_read_file(a, 1u << 28, &x, &nx) == 0 && vb_read_file(b, 1u << 28, &y, &ny) == 0 &&
              nx == ny && nx > 0 && memcmp(x, y, nx) == 0;
  free(x);
  free(y);
  return same;
}

/* Runs args (with %s for the model) for every form; every run must succeed and print
 * what the directory's run printed. */
static void same_output(const char *what, const char *fmt, const char *stdin_text) {
  char *first = NULL;
  for (int k = 0; k < N_FORMS; k++) {
    char args[8192], *out = NULL;
    int n = snprintf(args, sizeof args, fmt, g_forms[k]);
    if (stdin_text && n > 0 && (size_t)n < sizeof args)
      snprintf(args + n, sizeof args - (size_t)n, " < %s", stdin_text);
    int st = vblip(args, 0, &out);
    CHECK(st == 0 && out && *out, "%s from the %s: exit %d, output '%s'", what, k_form_names[k], st,
          out ? out : "");
    if (k == 0)
      first = out;
    else {
      CHECK(first && out && strcmp(first, out) == 0,
            "%s from the %s: '%s', from the directory: '%s'", what, k_form_names[k], out ? out : "",
            first ? first : "");
      free(out);
    }
  }
  free(first);
}

static void embed_each(void) {
  char args[8192], files[N_FORMS][700];
  for (int k = 0; k < N_FORMS; k++) {
    snprintf(files[k], sizeof files[k], "%s/embed-%d.safetensors", tu_tmpdir(), k);
    snprintf(args, sizeof args, "embed --dtype f32 -t 2 -m %s -o %s %s", g_forms[k], files[k],
             tu_fixture(VIDEO));
    char *out = NULL;
    CHECK(vblip(args, 1, &out) == 0, "embed from the %s: %s", k_form_names[k], out);
    free(out);
    if (k)
      CHECK(same_file(files[0], files[k]), "embed from the %s differs from the directory's",
            k_form_names[k]);
  }
}

/* convert from each form; each output captions like the directory. */
static void convert_each(const char *dir_caption) {
  for (int k = 0; k < N_FORMS; k++) {
    char args[8192], gguf[700], *out = NULL;
    snprintf(gguf, sizeof gguf, "%s/converted-%d.gguf", tu_tmpdir(), k);
    snprintf(args, sizeof args, "convert --quiet -m %s -o %s", g_forms[k], gguf);
    CHECK(vblip(args, 1, &out) == 0, "convert from the %s: %s", k_form_names[k], out);
    free(out);
    snprintf(args, sizeof args, "caption --dtype f32 -t 2 --beams 1 -n 6 -m %s %s", gguf,
             tu_fixture(VIDEO));
    CHECK(vblip(args, 0, &out) == 0 && out && strcmp(out, dir_caption) == 0,
          "the GGUF converted from the %s captions '%s', the directory '%s'", k_form_names[k],
          out ? out : "", dir_caption);
    free(out);
  }
}

/* The cue events of a narration stream (the lines after "event: cue"), or NULL */
static char *cue_events(const char *sse) {
  size_t n = 0;
  char *acc = calloc(1, 1);
  for (const char *p = sse; acc && (p = strstr(p, "event: cue\ndata: "));) {
    p += strlen("event: cue\ndata: ");
    size_t k = strcspn(p, "\n");
    char *b = realloc(acc, n + k + 2);
    if (!b) break;
    acc = b;
    memcpy(acc + n, p, k);
    n += k;
    acc[n++] = '\n';
    acc[n] = 0;
    p += k;
  }
  return acc;
}

/* vblip serve from each form answers /api/health with the model loaded, and narrates an
 * upload with the same cues. */
static void serve_each(void) {
  char *first_cues = NULL;
  for (int k = 0; k < N_FORMS; k++) {
    int p[2];
    if (!CHECK(pipe(p) == 0, "pipe")) return;
    pid_t pid = fork();
    if (pid == 0) {
      dup2(p[1], 1);
      close(p[0]);
      close(p[1]);
      execl(VBLIP_BINARY, VBLIP_BINARY, "serve", "-m", g_forms[k], "--host", "127.0.0.1", "--port",
            "0", "-t", "2", "--dtype", "f32", (char *)NULL);
      _exit(127);
    }
    close(p[1]);
    char line[512];
    tu_serve_port(p[0], line, sizeof line, 60);
    const char *u = strstr(line, "http://127.0.0.1:");
    if (CHECK(u != NULL, "serve from the %s did not start: '%s'", k_form_names[k], line)) {
      char cmd[700], *out = NULL;
      snprintf(cmd, sizeof cmd, "curl -s --max-time 30 %sapi/health", u);
      cmd[strcspn(cmd, "\r\n")] = 0;
      CHECK(tu_run(cmd, &out) == 0 && out && strstr(out, "\"status\""),
            "serve from the %s: health '%s'", k_form_names[k], out ? out : "");
      free(out);
      out = NULL;
      char base[128];
      snprintf(base, sizeof base, "%s", u);
      base[strcspn(base, "\r\n")] = 0;
      snprintf(cmd, sizeof cmd,
               "curl -s --max-time 60 --data-binary @%s "
               "'%sapi/narrate?window=4&frames=2&num_beams=1&max_new_tokens=6'",
               tu_fixture(VIDEO), base);
      int st = tu_run(cmd, &out);
      char *cues = cue_events(out ? out : "");
      CHECK(st == 0 && out && strstr(out, "event: done") && cues && *cues,
            "serve from the %s: narrate '%s'", k_form_names[k], out ? out : "");
      if (k == 0) {
        first_cues = cues;
      } else {
        CHECK(first_cues && cues && strcmp(first_cues, cues) == 0,
              "serve from the %s narrates '%s', from the directory '%s'", k_form_names[k],
              cues ? cues : "", first_cues ? first_cues : "");
        free(cues);
      }
      free(out);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    close(p[0]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve from the %s: exit status %d",
          k_form_names[k], status);
  }
  free(first_cues);
}

/* vblip train from each form: the same loss (f32 throughout), and a checkpoint that loads. */
static void train_each(void) {
  char data[600], lines[1200], *first = NULL;
  snprintf(data, sizeof data, "%s/train.jsonl", tu_tmpdir());
  snprintf(lines, sizeof lines,
           "{\"video\": \"%s\", \"start\": 0, \"end\": 4, \"text\": \"The camera wearer cuts.\"}\n",
           tu_fixture(VIDEO));
  FILE *f = fopen(data, "w");
  if (!CHECK(f && fputs(lines, f) >= 0 && fclose(f) == 0, "write %s", data)) return;
  for (int k = 0; k < N_FORMS; k++) {
    char args[8192], out_dir[700], *out = NULL;
    snprintf(out_dir, sizeof out_dir, "%s/trained-%d", tu_tmpdir(), k);
    snprintf(args, sizeof args, "train --quiet -t 2 --frames 2 -m %s --data %s -o %s", g_forms[k],
             data, out_dir);
    int st = vblip(args, 0, &out);
    CHECK(st == 0 && out && strstr(out, "train_loss"), "train from the %s: exit %d, '%s'",
          k_form_names[k], st, out ? out : "");
    if (k == 0)
      first = out;
    else {
      CHECK(first && out && strcmp(first, out) == 0,
            "train from the %s: '%s', from the directory: '%s'", k_form_names[k], out ? out : "",
            first ? first : "");
      free(out);
    }
    snprintf(args, sizeof args, "tokenize -m %s < /dev/null", out_dir);
    CHECK(vblip(args, 0, NULL) == 0, "the checkpoint trained from the %s does not load",
          k_form_names[k]);
  }
  free(first);
}

int main(void) {
  fake_hub_start();
  char cache[600];
  snprintf(cache, sizeof cache, "%s/cache", tu_tmpdir());
  setenv("VBLIP_CACHE", cache, 1);
  snprintf(g_forms[0], sizeof g_forms[0], "%s", tu_fixture("models/videoblip-opt-tiny"));
  snprintf(g_forms[1], sizeof g_forms[1], "%s/opt.gguf", tu_tmpdir());
  snprintf(g_forms[2], sizeof g_forms[2], "owner/opt");
  char args[8192], *out = NULL;
  snprintf(args, sizeof args, "convert --quiet -m %s -o %s", g_forms[0], g_forms[1]);
  if (!CHECK(vblip(args, 1, &out) == 0, "convert: %s", out)) return tu_finish();
  free(out);

  /* caption first: the repo id's first use pulls it, later ones read the cache */
  same_output("caption", "caption --dtype f32 -t 2 --beams 1 -n 6 -m %s " VBLIP_FIXTURES "/" VIDEO,
              NULL);
  fake_hub_clear_log();
  snprintf(args, sizeof args, "caption --dtype f32 -t 2 --beams 1 -n 6 -m %s %s", g_forms[0],
           tu_fixture(VIDEO));
  char *dir_caption = NULL;
  CHECK(vblip(args, 0, &dir_caption) == 0, "caption");
  char question[600];
  snprintf(question, sizeof question, "%s/question.txt", tu_tmpdir());
  FILE *f = fopen(question, "w");
  CHECK(f && fputs("What is the camera wearer doing?\n", f) >= 0 && fclose(f) == 0,
        "write question");
  same_output("chat", "chat --dtype f32 -t 2 --beams 1 -n 6 -m %s " VBLIP_FIXTURES "/" VIDEO,
              question);
  same_output("tokenize", "tokenize -m %s", question);
  same_output(
      "score",
      "score --dtype f32 -t 2 -m %s -p 'What is the camera wearer doing?' --candidate 'He cuts.' "
      "--candidate 'He walks.' " VBLIP_FIXTURES "/" VIDEO,
      NULL);
  same_output("narrate",
              "narrate --dtype f32 -t 2 --beams 1 -n 6 --window 4 --frames 2 --no-merge "
              "--format jsonl -m %s " VBLIP_FIXTURES "/" VIDEO,
              NULL);
  embed_each();
  convert_each(dir_caption ? dir_caption : "");
  serve_each();
  train_each();
  CHECK(fake_hub_count_logged("/resolve/") == 0, "the cached repo was downloaded again (%d files)",
        fake_hub_count_logged("/resolve/"));
  free(dir_caption);
  fake_hub_stop();
  unsetenv("VBLIP_CACHE");
  return tu_finish();
}
