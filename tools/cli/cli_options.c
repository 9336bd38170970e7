/* The option-table engine: parsing argv, --help, and chat's /set, all from the same rows. */
#include "cli/cli_options.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/escape.h"

/* Messages quote paths and arguments: control characters in them are escaped. */
static void print_escaped(const char *fmt, va_list ap) {
  char raw[4096], safe[4096];
  vsnprintf(raw, sizeof raw, fmt, ap);
  fputs(vb_escape_controls(raw, safe, sizeof safe), stderr);
}

int cli_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("vblip: ", stderr);
  print_escaped(fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "vblip %s: ", cmd);
  print_escaped(fmt, ap);
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

static bool parse_bool(const char *v, int *out) {
  if (!v) return false;
  if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
    *out = 1;
  else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
    *out = 0;
  else
    return false;
  return true;
}

static bool parse_u64(const char *v, uint64_t *out) {
  char *end;
  if (!v || !*v || v[0] == '-') return false;
  errno = 0;
  unsigned long long s = strtoull(v, &end, 10);
  if (errno || *end) return false;
  *out = s;
  return true;
}

/* Stores value v into the row's field; false when v is not acceptable. */
static bool apply(const cli_option *r, char *field, const char *v) {
  long n;
  double d;
  switch (r->kind) {
  case CLI_FLAG:
    return parse_bool(v, (int *)field);
  case CLI_STRING:
    if ((r->flags & CLI_NONEMPTY) && !*v) return false;
    *(const char **)field = v;
    return true;
  case CLI_CHOICE:
    for (const char *const *c = r->choices; *c; c++)
      if (strcmp(*c, v) == 0) {
        *(const char **)field = *c;
        return true;
      }
    return false;
  case CLI_INT:
    if (!cli_int(v, (long)r->lo, (long)r->hi, &n)) return false;
    *(int *)field = (int)n;
    return true;
  case CLI_LONG:
    if (!cli_int(v, (long)r->lo, (long)r->hi, &n)) return false;
    *(long *)field = n;
    return true;
  case CLI_FLOAT:
    if (!cli_double(v, r->lo, r->hi, &d)) return false;
    *(float *)field = (float)d;
    return true;
  case CLI_DOUBLE:
    return cli_double(v, r->lo, r->hi, (double *)field);
  case CLI_U64:
    return parse_u64(v, (uint64_t *)field);
  case CLI_CUSTOM:
    return r->parse(v, field) == 0;
  case CLI_END:
  case CLI_GROUP:
  case CLI_HEADING:
    break;
  }
  return false;
}

/* What a bad value of the row lacks ("needs a whole number from 1 to 1024"). */
static const char *need(const cli_option *r, char *buf, size_t size) {
  if (r->need) return r->need;
  switch (r->kind) {
  case CLI_FLAG:
    return "takes on or off";
  case CLI_CHOICE: {
    size_t used = (size_t)snprintf(buf, size, "needs ");
    for (const char *const *c = r->choices; *c && used < size; c++)
      used += (size_t)snprintf(buf + used, size - used, "%s%s", *c,
                               !c[1]   ? ""
                               : !c[2] ? " or "
                                       : ", ");
    return buf;
  }
  case CLI_INT:
  case CLI_LONG:
    snprintf(buf, size, "needs a whole number from %.0f to %.0f", r->lo, r->hi);
    return buf;
  case CLI_FLOAT:
  case CLI_DOUBLE:
    snprintf(buf, size, "needs a number from %g to %g", r->lo, r->hi);
    return buf;
  case CLI_U64:
    return "needs a whole number >= 0";
  default:
    snprintf(buf, size, "needs %s", r->metavar ? r->metavar : "a value");
    return buf;
  }
}

typedef struct {
  const cli_option *row;
  char *field;
} cli_hit;

/* The row whose long flag is name[0..len) (name != NULL) or whose short flag is c. */
static bool find(const cli_option *rows, char *base, const char *name, size_t len, char c,
                 cli_hit *hit) {
  for (const cli_option *r = rows; r->kind != CLI_END; r++) {
    if (r->kind == CLI_GROUP) {
      if (find(r->group, base + r->offset, name, len, c, hit)) return true;
      continue;
    }
    if (r->kind == CLI_HEADING) continue;
    bool match =
        name ? strlen(r->flag) == len && strncmp(r->flag, name, len) == 0 : c && r->short_flag == c;
    if (match) {
      hit->row = r;
      hit->field = base + r->offset;
      return true;
    }
  }
  return false;
}

/* Appends the required string options that are still unset to missing[]. */
static void find_missing(const cli_option *rows, char *base, const char **missing, int *n,
                         int cap) {
  for (const cli_option *r = rows; r->kind != CLI_END; r++) {
    if (r->kind == CLI_GROUP)
      find_missing(r->group, base + r->offset, missing, n, cap);
    else if ((r->flags & CLI_REQUIRED) && !*(const char **)(base + r->offset) && *n < cap)
      missing[(*n)++] = r->flag;
  }
}

static int missing_error(const cli_command *cmd, const char **missing, int n) {
  char buf[512];
  size_t used = 0;
  for (int k = 0; k < n && used < sizeof buf; k++)
    used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", missing[k],
                             k + 1 == n   ? ""
                             : k + 2 == n ? " and "
                                          : ", ");
  return cli_usage_error(cmd->name, "%s %s required", buf, n == 1 ? "is" : "are");
}

int cli_parse(const cli_command *cmd, void *opts, int argc, char **argv, int *n_positional) {
  char *base = opts;
  int n_pos = 0;
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (options_done || a[0] != '-' || a[1] == 0) {
      argv[n_pos++] = a; /* n_pos < i: never overwrites what is still to be read */
      continue;
    }
    if (strcmp(a, "--") == 0) {
      options_done = true;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      cli_print_help(cmd, stdout);
      return 0;
    }
    cli_hit hit;
    const char *eq = NULL;
    bool found;
    if (a[1] == '-') {
      eq = strchr(a, '=');
      found = find(cmd->options, base, a, eq ? (size_t)(eq - a) : strlen(a), 0, &hit);
    } else {
      found = a[2] == 0 && find(cmd->options, base, NULL, 0, a[1], &hit);
    }
    if (!found) return cli_usage_error(cmd->name, "unknown option %s", a);
    const cli_option *r = hit.row;
    char buf[256];
    if (r->kind == CLI_FLAG) {
      if (eq) return cli_usage_error(cmd->name, "%s takes no value", r->flag);
      *(int *)hit.field = 1;
      continue;
    }
    const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
    if (!v) return cli_usage_error(cmd->name, "%s %s", r->flag, need(r, buf, sizeof buf));
    if (!apply(r, hit.field, v))
      return cli_usage_error(cmd->name, "%s %s, not '%s'", r->flag, need(r, buf, sizeof buf), v);
  }
  const char *missing[16];
  int n_missing = 0;
  find_missing(cmd->options, base, missing, &n_missing, 16);
  if (n_missing) return missing_error(cmd, missing, n_missing);
  if (n_pos < cmd->min_positional)
    return cli_usage_error(cmd->name, "no %s given", cmd->positional);
  if (cmd->max_positional >= 0 && n_pos > cmd->max_positional) {
    if (cmd->max_positional == 0)
      return cli_usage_error(cmd->name, "unexpected argument %s", argv[0]);
    if (cmd->too_many) return cli_usage_error(cmd->name, "%s", cmd->too_many);
    return cli_usage_error(cmd->name, "one %s at a time", cmd->positional);
  }
  *n_positional = n_pos;
  return CLI_RUN;
}

/* ---- --help ---- */

static int left_text(const cli_option *r, char *buf, size_t size) {
  char sh[8] = "    ";
  if (r->short_flag) snprintf(sh, sizeof sh, "-%c, ", r->short_flag);
  return snprintf(buf, size, "  %s%s%s%s", sh, r->flag, r->metavar ? " " : "",
                  r->metavar ? r->metavar : "");
}

static int left_width(const cli_option *rows) {
  int w = 0;
  char buf[128];
  for (const cli_option *r = rows; r->kind != CLI_END; r++) {
    int x = r->kind == CLI_GROUP     ? left_width(r->group)
            : r->kind == CLI_HEADING ? 0
                                     : left_text(r, buf, sizeof buf);
    if (x > w) w = x;
  }
  return w;
}

static void help_rows(const cli_option *rows, int col, FILE *f) {
  char buf[128];
  for (const cli_option *r = rows; r->kind != CLI_END; r++) {
    if (r->kind == CLI_GROUP) {
      help_rows(r->group, col, f);
      continue;
    }
    if (r->kind == CLI_HEADING) {
      fprintf(f, "\n%s\n", r->help);
      continue;
    }
    int w = left_text(r, buf, sizeof buf);
    fputs(buf, f);
    if (w + 2 > col)
      fprintf(f, "\n%*s", col, "");
    else
      fprintf(f, "%*s", col - w, "");
    for (const char *h = r->help; *h; h++) {
      fputc(*h, f);
      if (*h == '\n') fprintf(f, "%*s", col, "");
    }
    fputc('\n', f);
  }
}

void cli_print_help(const cli_command *cmd, FILE *f) {
  fprintf(f, "usage: vblip %s %s\n", cmd->name, cmd->usage);
  if (cmd->about) fprintf(f, "\n%s", cmd->about);
  fputs("\noptions:\n", f);
  int col = left_width(cmd->options) + 2;
  if (col > 32) col = 32;
  help_rows(cmd->options, col, f);
  fputs("  -h, --help", f);
  fprintf(f, "%*s%s\n", col - 12, "", "this help");
  if (cmd->epilogue) fprintf(f, "\n%s", cmd->epilogue);
}

/* ---- settings by name (chat's /set) ---- */

int cli_set(const cli_option *rows, void *opts, const char *name, const char *value, char *err,
            size_t err_size) {
  char flag[80], buf[256];
  snprintf(flag, sizeof flag, "--%s", name);
  cli_hit hit;
  if (!find(rows, opts, flag, strlen(flag), 0, &hit)) {
    char names[512];
    cli_option_names(rows, names, sizeof names);
    snprintf(err, err_size, "unknown setting '%s' (one of: %s)", name, names);
    return -1;
  }
  if (!value || !apply(hit.row, hit.field, value)) {
    snprintf(err, err_size, "%s %s", name, need(hit.row, buf, sizeof buf));
    return -1;
  }
  return 0;
}

static void names_into(const cli_option *rows, char *buf, size_t size, size_t *used) {
  for (const cli_option *r = rows; r->kind != CLI_END && *used < size; r++) {
    if (r->kind == CLI_GROUP)
      names_into(r->group, buf, size, used);
    else if (r->kind != CLI_HEADING)
      *used += (size_t)snprintf(buf + *used, size - *used, "%s%s", *used ? ", " : "", r->flag + 2);
  }
}

void cli_option_names(const cli_option *rows, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = 0;
  names_into(rows, buf, size, &used);
}

static void describe_rows(const cli_option *rows, const char *base, FILE *f, int *first) {
  for (const cli_option *r = rows; r->kind != CLI_END; r++) {
    const char *p = base + r->offset;
    if (r->kind == CLI_GROUP) {
      describe_rows(r->group, p, f, first);
      continue;
    }
    if (r->kind == CLI_HEADING || r->kind == CLI_CUSTOM) continue;
    fprintf(f, "%s%s ", *first ? "" : ", ", r->flag + 2);
    *first = 0;
    switch (r->kind) {
    case CLI_FLAG:
      fputs(*(const int *)p ? "on" : "off", f);
      break;
    case CLI_STRING:
    case CLI_CHOICE:
      fputs(*(const char *const *)p ? *(const char *const *)p : "(none)", f);
      break;
    case CLI_INT:
      fprintf(f, "%d", *(const int *)p);
      break;
    case CLI_LONG:
      fprintf(f, "%ld", *(const long *)p);
      break;
    case CLI_FLOAT:
      fprintf(f, "%g", (double)*(const float *)p);
      break;
    case CLI_DOUBLE:
      fprintf(f, "%g", *(const double *)p);
      break;
    case CLI_U64:
      fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p);
      break;
    default:
      break;
    }
  }
}

void cli_describe(const cli_option *rows, const void *opts, FILE *f) {
  int first = 1;
  describe_rows(rows, opts, f, &first);
  fputc('\n', f);
}
