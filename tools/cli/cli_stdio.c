/* "-" as a path: stdin spooled into a temporary file, stdout copied from one. */
#include "cli/cli_stdio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

enum { MAX_FILES = 4 };
static char g_dir[4096];
static char g_files[MAX_FILES][4200];
static int g_n_files;
static int g_stdin_used;

void cli_stdio_cleanup(void) {
  for (int i = 0; i < g_n_files; i++)
    unlink(g_files[i]);
  if (g_dir[0]) rmdir(g_dir);
}

/* A new path in the private directory (made on first use), or NULL. */
static const char *temp_file(const char *name) {
  if (!g_dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/vblip-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
      cli_fail("cannot create a temporary directory in %s: %s", tmp && *tmp ? tmp : "/tmp",
               strerror(errno));
      g_dir[0] = 0;
      return NULL;
    }
    atexit(cli_stdio_cleanup);
  }
  if (g_n_files == MAX_FILES) {
    cli_fail("too many '-' arguments");
    return NULL;
  }
  char *path = g_files[g_n_files++];
  snprintf(path, sizeof g_files[0], "%s/%s", g_dir, name);
  return path;
}

static int copy_stream(FILE *in, FILE *out) {
  char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) return -1;
  return ferror(in) ? -1 : 0;
}

const char *cli_input_path(const char *arg) {
  if (strcmp(arg, "-") != 0) return arg;
  if (g_stdin_used) {
    cli_fail("only one argument can be '-' (stdin)");
    return NULL;
  }
  if (isatty(STDIN_FILENO)) {
    cli_fail("'-' reads a file from stdin, which is a terminal");
    return NULL;
  }
  g_stdin_used = 1;
  const char *path = temp_file("stdin");
  if (!path) return NULL;
  FILE *f = fopen(path, "wb");
  int ok = f && copy_stream(stdin, f) == 0;
  if (f && fclose(f) != 0) ok = 0;
  if (!ok) {
    cli_fail("cannot copy stdin to %s: %s", path, strerror(errno));
    return NULL;
  }
  return path;
}

const char *cli_output_path(const char *arg) {
  if (strcmp(arg, "-") != 0) return arg;
  if (isatty(STDOUT_FILENO)) {
    cli_fail("'-' writes a binary file to stdout, which is a terminal; redirect it");
    return NULL;
  }
  return temp_file("stdout");
}

int cli_output_done(const char *arg, const char *path) {
  if (strcmp(arg, "-") != 0) return 0;
  FILE *f = fopen(path, "rb");
  int ok = f && copy_stream(f, stdout) == 0 && fflush(stdout) == 0;
  int err = errno;
  if (f) fclose(f);
  unlink(path);
  if (!ok) return cli_fail("cannot write to stdout: %s", strerror(err));
  return 0;
}
