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

int cli_dtype_option(const char *cmd, int argc, char **argv, int *i, vblip_dtype *dtype) {
  bool miss;
  const char *v = cli_opt(argc, argv, i, "--dtype", &miss);
  if (!v && !miss) return 0;
  if (miss || vblip_dtype_parse(v, dtype) != 0) {
    cli_usage_error(cmd, "--dtype needs auto, f32 or bf16");
    return -1;
  }
  return 1;
}

/* ---- generation settings (caption, chat, serve; chat's /set) ---- */

typedef enum { GEN_INT, GEN_DBL, GEN_SEED, GEN_BOOL } gen_kind;
typedef struct {
  const char *name; /* flag without the dashes; also the /set name */
  gen_kind kind;
  double lo, hi;
  const char *msg;
} gen_setting;

static const gen_setting k_gen_settings[] = {
    {"beams", GEN_INT, 0, 64, "needs a whole number from 0 to 64"},
    {"max-new-tokens", GEN_INT, 1, 100000, "needs a whole number >= 1"},
    {"min-new-tokens", GEN_INT, 0, 100000, "needs a whole number >= 0"},
    {"top-k", GEN_INT, 0, 1000000, "needs a whole number >= 0"},
    {"no-repeat-ngram", GEN_INT, 0, 1000, "needs a whole number >= 0"},
    {"temperature", GEN_DBL, 1e-6, 100, "needs a number > 0"},
    {"top-p", GEN_DBL, 1e-9, 1, "needs a number in (0, 1]"},
    {"repetition-penalty", GEN_DBL, 1e-6, 1000, "needs a number > 0"},
    {"length-penalty", GEN_DBL, -100, 100, "needs a number"},
    {"seed", GEN_SEED, 0, 0, "needs a whole number >= 0"},
    {"sample", GEN_BOOL, 0, 0, "takes on or off"},
};

static const gen_setting *gen_find(const char *name) {
  for (size_t k = 0; k < sizeof k_gen_settings / sizeof *k_gen_settings; k++)
    if (strcmp(k_gen_settings[k].name, name) == 0) return &k_gen_settings[k];
  return NULL;
}

static bool gen_apply(const gen_setting *g, const char *v, vblip_gen_params *p) {
  long n;
  double d;
  switch (g->kind) {
  case GEN_INT:
    if (!cli_int(v, (long)g->lo, (long)g->hi, &n)) return false;
    if (strcmp(g->name, "beams") == 0) p->num_beams = (int)n;
    else if (strcmp(g->name, "max-new-tokens") == 0) p->max_new_tokens = (int)n;
    else if (strcmp(g->name, "min-new-tokens") == 0) p->min_new_tokens = (int)n;
    else if (strcmp(g->name, "top-k") == 0) p->top_k = (int)n;
    else p->no_repeat_ngram_size = (int)n;
    return true;
  case GEN_DBL:
    if (!cli_double(v, g->lo, g->hi, &d)) return false;
    if (strcmp(g->name, "temperature") == 0) p->temperature = (float)d;
    else if (strcmp(g->name, "top-p") == 0) p->top_p = (float)d;
    else if (strcmp(g->name, "repetition-penalty") == 0) p->repetition_penalty = (float)d;
    else p->length_penalty = (float)d;
    return true;
  case GEN_SEED: {
    char *end;
    if (!v || !*v || v[0] == '-') return false;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    if (errno || *end) return false;
    p->seed = s;
    return true;
  }
  case GEN_BOOL:
    if (!v) return false;
    if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) p->do_sample = 1;
    else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) p->do_sample = 0;
    else return false;
    return true;
  }
  return false;
}

int cli_gen_option(const char *cmd, int argc, char **argv, int *i, vblip_gen_params *p) {
  const char *a = argv[*i];
  if (strcmp(a, "--sample") == 0) {
    p->do_sample = 1;
    return 1;
  }
  if (strncmp(a, "--", 2) != 0) return 0;
  for (size_t k = 0; k < sizeof k_gen_settings / sizeof *k_gen_settings; k++) {
    const gen_setting *g = &k_gen_settings[k];
    if (g->kind == GEN_BOOL) continue;
    char flag[64];
    snprintf(flag, sizeof flag, "--%s", g->name);
    bool miss;
    const char *v = cli_opt(argc, argv, i, flag, &miss);
    if (!v && !miss) continue;
    if (miss || !gen_apply(g, v, p)) {
      cli_usage_error(cmd, "%s %s", flag, g->msg);
      return -1;
    }
    return 1;
  }
  return 0;
}

const char *cli_gen_set(vblip_gen_params *p, const char *name, const char *value, char *err, size_t err_size) {
  const gen_setting *g = gen_find(name);
  if (!g) {
    snprintf(err, err_size, "unknown setting '%s' (one of: %s)", name, CLI_GEN_SETTING_NAMES);
    return err;
  }
  if (!value || !gen_apply(g, value, p)) {
    snprintf(err, err_size, "%s %s", name, g->msg);
    return err;
  }
  return NULL;
}

void cli_gen_describe(const vblip_gen_params *p, FILE *f) {
  fprintf(f,
          "beams %d, max-new-tokens %d, min-new-tokens %d, sample %s, temperature %g, top-k %d, "
          "top-p %g, repetition-penalty %g, no-repeat-ngram %d, length-penalty %g, seed %llu\n",
          p->num_beams, p->max_new_tokens, p->min_new_tokens, p->do_sample ? "on" : "off",
          (double)p->temperature, p->top_k, (double)p->top_p, (double)p->repetition_penalty,
          p->no_repeat_ngram_size, (double)p->length_penalty, (unsigned long long)p->seed);
}
