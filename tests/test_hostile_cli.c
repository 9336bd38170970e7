/* Hostile input through the vblip program (issue 21): exit status and the message of each.
 *  - --out naming a FIFO, a device or a symbolic link is refused and left as it was;
 *    temporaries that killed runs left are removed by the next run;
 *  - a FIFO as the model or the video is refused at once (bounded by `timeout`);
 *  - names with escape sequences or CR/LF reach the terminal escaped;
 *  - each misleading message of the issue now names the real problem once, at the
 *    earliest point (before the model loads where no model is needed). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define OPT_DIR "models/videoblip-opt-tiny"
#define VIDEO "media/video1_h264_320x240_30fps_12s.mp4"

/* Runs `timeout 20 vblip ARGS` (stderr merged); the exit status, 124 when it hung. */
static int run(const char *args, char **out) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "timeout 20 %s %s 2>&1", VBLIP_BINARY, args);
  return tu_run(cmd, out);
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

static bool no_controls_but_newlines(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if ((*p < 0x20 && *p != '\n') || *p == 0x7f) return false;
  return true;
}

/* `vblip ARGS` exits with status and prints needle (once when once is set). */
static void expect(const char *args, int status, const char *needle, bool once, const char *what) {
  char *out = NULL;
  int st = run(args, &out);
  CHECK(st == status && strstr(out, needle) && (!once || count_of(out, needle) == 1),
        "%s: exit %d (expected %d), output lacks \"%s\"%s: %s", what, st, status, needle,
        once ? " once" : "", out);
  free(out);
}

static char *tmp_path(const char *name) {
  static char buf[8][512];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, sizeof buf[0], "%s/%s", tu_tmpdir(), name);
  return p;
}

static void test_outputs(void) {
  const char *model = tu_fixture(OPT_DIR), *video = tu_fixture(VIDEO);
  char args[4096];
  struct stat st;

  const char *fifo = tmp_path("out.fifo");
  unlink(fifo);
  CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
  snprintf(args, sizeof args, "convert --quiet --model %s --out %s", model, fifo);
  expect(args, 1, "out.fifo is a FIFO", true, "convert --out FIFO");
  snprintf(args, sizeof args, "embed --model %s --out %s %s", model, fifo, video);
  expect(args, 1, "out.fifo is a FIFO", true, "embed --out FIFO");
  CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO was replaced");

  /* a device node (what --out /dev/null is): only root can make one to test with */
  if (geteuid() == 0) {
    const char *dev = tmp_path("out.dev");
    unlink(dev);
    if (CHECK(mknod(dev, S_IFCHR | 0666, makedev(1, 3)) == 0, "mknod: %s", strerror(errno))) {
      snprintf(args, sizeof args, "convert --quiet --model %s --out %s", model, dev);
      expect(args, 1, "out.dev is a character device", true, "convert --out device");
      CHECK(lstat(dev, &st) == 0 && S_ISCHR(st.st_mode), "the device node was replaced");
      unlink(dev);
    }
  }

  const char *link = tmp_path("out-link.safetensors"),
             *target = tmp_path("link-target.safetensors");
  unlink(link);
  unlink(target);
  CHECK(symlink(target, link) == 0, "symlink");
  snprintf(args, sizeof args, "embed --model %s --out %s %s", model, link, video);
  expect(args, 1, "is a symbolic link (to ", true, "embed --out symlink");
  CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode) && access(target, F_OK) != 0,
        "the link was replaced or written through");

  /* a temporary left by a killed conversion (its process gone) is removed by the next */
  const char *out = tmp_path("model.gguf");
  char stale[600];
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, NULL, 0);
  snprintf(stale, sizeof stale, "%s.tmp-%d", out, (int)child);
  FILE *f = fopen(stale, "wb");
  if (f) fputs("half a model", f), fclose(f);
  snprintf(args, sizeof args, "convert --quiet --model %s --out %s", model, out);
  expect(args, 0, "wrote", false, "convert beside a stale temporary");
  CHECK(access(stale, F_OK) != 0, "the stale temporary %s is still there", stale);
  CHECK(stat(out, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 1000000, "no model written");
}

static void test_fifo_inputs(void) {
  const char *model = tu_fixture(OPT_DIR), *video = tu_fixture(VIDEO);
  const char *fifo = tmp_path("in.fifo");
  unlink(fifo);
  CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
  char args[4096];
  /* nobody writes to the FIFO: a blocking open would hang until `timeout` (status 124) */
  snprintf(args, sizeof args, "caption --model %s %s", fifo, video);
  expect(args, 1, "in.fifo: a FIFO, not a model directory or .gguf file", true, "FIFO as --model");
  snprintf(args, sizeof args, "tokenize --model %s </dev/null", fifo);
  expect(args, 1, "a FIFO, not a model directory", true, "FIFO as tokenize --model");
  snprintf(args, sizeof args, "caption --model %s %s", model, fifo);
  expect(args, 1, "in.fifo: a FIFO, not a video file", true, "FIFO as the video");
}

static void test_escapes(void) {
  const char *model = tu_fixture(OPT_DIR);
  char args[4096], *out = NULL;
  /* a video named with an OSC title sequence and a forged line */
  snprintf(args, sizeof args, "caption --model %s '%s/x\x1b]0;PWNED\a\r\nvblip: fake line.mp4'",
           model, tu_tmpdir());
  int st = run(args, &out);
  CHECK(st == 1 && no_controls_but_newlines(out) &&
            strstr(out, "x\\x1b]0;PWNED\\x07\\x0d\\x0avblip: fake line.mp4") &&
            count_of(out, "\n") == 1,
        "escaped video name: exit %d: %s", st, out);
  free(out);
}

static void test_messages(void) {
  const char *model = tu_fixture(OPT_DIR), *video = tu_fixture(VIDEO);
  char args[4096];
  const char *empty = tmp_path("empty.mp4");
  FILE *f = fopen(empty, "wb");
  if (f) fclose(f);
  snprintf(args, sizeof args, "caption --model %s %s", model, empty);
  expect(args, 1, "empty.mp4", true, "empty video names its path once");
  expect(args, 1, "the file is empty", true, "empty video");

  /* a truncated PNG: the file's fault, not a missing frame size */
  const char *png = tmp_path("trunc.png");
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "head -c 300 %s > %s", tu_fixture("media/image_rgb_203x150.png"), png);
  CHECK(system(cmd) == 0, "cannot truncate the PNG");
  snprintf(args, sizeof args, "caption --model %s %s", model, png);
  expect(args, 1, "the file is truncated or corrupt", true, "truncated PNG");

  /* invalid UTF-8 in --prompt: a usage error before the model loads (the model path does
   * not even exist, and is never reached) */
  snprintf(args, sizeof args, "caption --model /nonexistent/model --prompt 'bad \xff' %s", video);
  expect(args, 2, "--prompt is not valid UTF-8 (byte 4)", true, "invalid UTF-8 prompt");

  /* a window past the end names the window and the video's length */
  snprintf(args, sizeof args, "caption --model %s --start 100 %s", model, video);
  expect(args, 1, "no frames in the window [100 s, the end): the video lasts 12 s", true,
         "--start past the end");
  snprintf(args, sizeof args, "caption --model /nonexistent/model --start 5 --end 3 %s", video);
  expect(args, 2, "--end (3) must be after --start (5)", true, "inverted window");

  /* a prompt too long for the model: once, before any video, with several videos */
  char *prompt = malloc(4000);
  strcpy(prompt, "'");
  for (int i = 0; i < 700; i++)
    strcat(prompt, "a ");
  strcat(prompt, "'");
  snprintf(args, sizeof args, "caption --model %s --prompt %s %s %s", model, prompt, video, video);
  expect(args, 1, "the prompt is longer than 503 tokens", true, "long prompt");
  char *out = NULL;
  run(args, &out);
  CHECK(!strstr(out, "video1_h264"), "the long prompt was blamed on a video: %s", out);
  free(out);
  free(prompt);

  /* a file that is not GGUF given as a model */
  const char *bad = tmp_path("bad.gguf");
  f = fopen(bad, "wb");
  if (f) fputs("XXXXjunk", f), fclose(f);
  snprintf(args, sizeof args, "caption --model %s %s", bad, video);
  expect(args, 1, "a file that is not GGUF", true, "bad GGUF magic");
  out = NULL;
  run(args, &out);
  CHECK(!strstr(out, "Not a directory") && !strstr(out, "config.json"),
        "misleading GGUF message: %s", out);
  free(out);
}

int main(void) {
  test_outputs();
  test_fifo_inputs();
  test_escapes();
  test_messages();
  return tu_finish();
}
