#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vblip: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "vblip %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see 'vblip %s --help')\n", cmd);
  va_end(ap);
  return 2;
}

bool cli_int(const char *s, long lo, long hi, long *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool cli_double(const char *s, double lo, double hi, double *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name, bool *missing) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  *missing = false;
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] != 0) return NULL;
  if (*i + 1 >= argc) {
    *missing = true;
    return NULL;
  }
  return argv[++*i];
}

int cli_frame_option(const char *cmd, int argc, char **argv, int *i, vblip_sampling *s) {
  bool miss;
  const char *v;
  if ((v = cli_opt(argc, argv, i, "--frames", &miss)) || miss) {
    long n;
    if (miss || !cli_int(v, 1, 1024, &n)) {
      cli_usage_error(cmd, "--frames needs a whole number from 1 to 1024");
      return -1;
    }
    s->n_frames = (int)n;
    return 1;
  }
  if ((v = cli_opt(argc, argv, i, "--sampling", &miss)) || miss) {
    if (!miss && strcmp(v, "demo") == 0) s->mode = VBLIP_SAMPLE_DEMO;
    else if (!miss && strcmp(v, "uniform") == 0) s->mode = VBLIP_SAMPLE_UNIFORM;
    else {
      cli_usage_error(cmd, "--sampling takes 'uniform' or 'demo'");
      return -1;
    }
    return 1;
  }
  if ((v = cli_opt(argc, argv, i, "--start", &miss)) || miss) {
    if (miss || !cli_double(v, 0, 1e9, &s->start_sec)) {
      cli_usage_error(cmd, "--start needs a number of seconds >= 0");
      return -1;
    }
    return 1;
  }
  if ((v = cli_opt(argc, argv, i, "--end", &miss)) || miss) {
    if (miss || !cli_double(v, 0, 1e9, &s->end_sec)) {
      cli_usage_error(cmd, "--end needs a number of seconds >= 0");
      return -1;
    }
    return 1;
  }
  return 0;
}

int cli_threads_option(const char *cmd, int argc, char **argv, int *i, int *threads) {
  bool miss;
  const char *v = cli_opt(argc, argv, i, "--threads", &miss);
  if (!v && !miss) return 0;
  long n;
  if (miss || !cli_int(v, 1, 1024, &n)) {
    cli_usage_error(cmd, "--threads needs a whole number from 1 to 1024");
    return -1;
  }
  *threads = (int)n;
  return 1;
}
