/* Command-line options, one table per command: the same rows parse argv and print
 * `vblip COMMAND --help`, so a flag and its help can never drift apart.
 *
 * Adding an option to a command: add a row to the command's `k_options` table
 * (tools/cli/cmd_<name>.c) with a CLI_OPT_* macro below, pointing at a field of the
 * command's own options struct; set the field's default before calling cli_parse.
 *   CLI_OPT_INT("--frames", 0, "N", train_opts, frames, 1, 1024, "frames per clip (default 8)"),
 * Extra attributes go last as designated initializers:
 *   CLI_OPT_STRING(..., "help", .flags = CLI_REQUIRED, .need = "needs a directory"),
 * A group of rows shared by several commands (frame sampling, generation settings,
 * threads, dtype, model) is a table of its own whose offsets are relative to one struct
 * (vblip_sampling, vblip_gen_params, ...); include it with CLI_GROUP(table, struct, field).
 *
 * Adding a command: write tools/cli/cmd_<name>.c defining
 *   const cli_command cli_cmd_<name> = {.name, .summary, .run, .usage, .about, .options, ...};
 * whose run() fills its options struct with defaults and calls cli_parse(), then add
 * X(<name>) to CLI_COMMANDS in cli.h: that one list drives dispatch and 'vblip --help'.
 *
 * Parsing rules (every command): "--flag VALUE" or "--flag=VALUE"; "-x VALUE" for a short
 * flag; "-h"/"--help" prints the help (exit 0); "--" ends the options; a lone "-" is an
 * ordinary argument (stdin/stdout where a command takes a path: cli_stdio.h). A bad or
 * missing value, an unknown option or a missing required option prints one line naming
 * the flag and exits 2. A flag given twice keeps the last value. */
#ifndef VBLIP_CLI_OPTIONS_H
#define VBLIP_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
  CLI_END = 0, /* ends a table */
  CLI_FLAG,    /* no value; int field set to 1 (cli_set also takes on/off) */
  CLI_STRING,  /* const char * field: the argument as given */
  CLI_CHOICE,  /* const char * field: one of .choices */
  CLI_INT,     /* int field within [lo, hi] */
  CLI_LONG,    /* long field within [lo, hi] */
  CLI_FLOAT,   /* float field within [lo, hi] */
  CLI_DOUBLE,  /* double field within [lo, hi] */
  CLI_U64,     /* uint64_t field: any whole number >= 0 */
  CLI_CUSTOM,  /* .parse(value, field) converts (0) or rejects (-1) */
  CLI_GROUP,   /* the rows of .group, their offsets relative to this row's field */
  CLI_HEADING, /* a heading line in --help (.help), parses nothing */
} cli_kind;

enum {
  CLI_REQUIRED = 1, /* CLI_STRING: must be given */
  CLI_NONEMPTY = 2, /* CLI_STRING: "" is a bad value */
};

typedef struct cli_option {
  cli_kind kind;
  const char *flag;           /* "--model" */
  char short_flag;            /* 'm', or 0 */
  const char *metavar;        /* "DIR" (none for CLI_FLAG) */
  const char *help;           /* '\n' starts a continuation line */
  size_t offset;              /* the field in the options struct */
  double lo, hi;              /* numeric range, inclusive */
  unsigned flags;             /* CLI_REQUIRED, CLI_NONEMPTY */
  const char *need;           /* what a bad value lacks, after the flag: "needs a number > 0" */
  const char *const *choices; /* CLI_CHOICE: NULL-terminated */
  int (*parse)(const char *value, void *field); /* CLI_CUSTOM */
  const struct cli_option *group;               /* CLI_GROUP */
} cli_option;

/* The field's offset, checked at compile time to have type `ctype`. */
#define CLI_FIELD(T, f, ctype) (offsetof(T, f) + 0 * sizeof(_Generic(((T *)0)->f, ctype : 1)))

#define CLI_OPT_FLAG(fl, sh, T, f, hlp, ...)                                                       \
  {                                                                                                \
    .kind = CLI_FLAG, .flag = fl, .short_flag = sh, .help = hlp, .offset = CLI_FIELD(T, f, int),   \
    __VA_ARGS__                                                                                    \
  }
#define CLI_OPT_STRING(fl, sh, meta, T, f, hlp, ...)                                               \
  {                                                                                                \
    .kind = CLI_STRING, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                \
    .offset = CLI_FIELD(T, f, const char *), __VA_ARGS__                                           \
  }
#define CLI_OPT_CHOICE(fl, sh, meta, T, f, list, hlp, ...)                                         \
  {                                                                                                \
    .kind = CLI_CHOICE, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                \
    .offset = CLI_FIELD(T, f, const char *), .choices = list, __VA_ARGS__                          \
  }
#define CLI_OPT_INT(fl, sh, meta, T, f, lo_, hi_, hlp, ...)                                        \
  {                                                                                                \
    .kind = CLI_INT, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                   \
    .offset = CLI_FIELD(T, f, int), .lo = lo_, .hi = hi_, __VA_ARGS__                              \
  }
#define CLI_OPT_LONG(fl, sh, meta, T, f, lo_, hi_, hlp, ...)                                       \
  {                                                                                                \
    .kind = CLI_LONG, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                  \
    .offset = CLI_FIELD(T, f, long), .lo = lo_, .hi = hi_, __VA_ARGS__                             \
  }
#define CLI_OPT_FLOAT(fl, sh, meta, T, f, lo_, hi_, hlp, ...)                                      \
  {                                                                                                \
    .kind = CLI_FLOAT, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                 \
    .offset = CLI_FIELD(T, f, float), .lo = lo_, .hi = hi_, __VA_ARGS__                            \
  }
#define CLI_OPT_DOUBLE(fl, sh, meta, T, f, lo_, hi_, hlp, ...)                                     \
  {                                                                                                \
    .kind = CLI_DOUBLE, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                \
    .offset = CLI_FIELD(T, f, double), .lo = lo_, .hi = hi_, __VA_ARGS__                           \
  }
#define CLI_OPT_U64(fl, sh, meta, T, f, hlp, ...)                                                  \
  {                                                                                                \
    .kind = CLI_U64, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                   \
    .offset = CLI_FIELD(T, f, uint64_t), __VA_ARGS__                                               \
  }
/* ctype: the field's type, which fn's second argument points to. */
#define CLI_OPT_CUSTOM(fl, sh, meta, T, f, ctype, fn, hlp, ...)                                    \
  {                                                                                                \
    .kind = CLI_CUSTOM, .flag = fl, .short_flag = sh, .metavar = meta, .help = hlp,                \
    .offset = CLI_FIELD(T, f, ctype), .parse = fn, __VA_ARGS__                                     \
  }
#define CLI_GROUP(rows, T, f)                                                                      \
  { .kind = CLI_GROUP, .offset = offsetof(T, f), .group = rows }
#define CLI_HEADING(text)                                                                          \
  { .kind = CLI_HEADING, .help = text }
#define CLI_TABLE_END                                                                              \
  { .kind = CLI_END }

typedef struct cli_command {
  const char *name;    /* "caption" */
  const char *summary; /* one line for 'vblip --help' */
  int (*run)(int argc, char **argv);
  const char *usage; /* after "usage: vblip NAME " */
  const char *about; /* paragraphs between the usage line and the options */
  const cli_option *options;
  const char *positional;             /* "VIDEO": what the arguments are; NULL: none taken */
  int min_positional, max_positional; /* max < 0: any number */
  const char *too_many;               /* message when more than max_positional are given */
  const char *epilogue;               /* printed after the options */
} cli_command;

/* Returned by cli_parse when the command should run. */
#define CLI_RUN (-1)

/* Parses argv[1..argc) (argv[0] is the command's name) into the struct at opts
 * (defaults already set), and moves the positional arguments to argv[0..*n_positional).
 * Returns CLI_RUN, or the exit status: 0 after printing the help, 2 after a usage
 * error (one line on stderr). */
int cli_parse(const cli_command *cmd, void *opts, int argc, char **argv, int *n_positional);

/* The command's --help text. */
void cli_print_help(const cli_command *cmd, FILE *f);

/* Sets one option of `rows` by its flag without the dashes ("beams", "sample"), as
 * chat's /set does; a CLI_FLAG takes on/off/true/false/yes/no/1/0. Returns 0, or -1
 * with a one-line message in err. */
int cli_set(const cli_option *rows, void *opts, const char *name, const char *value, char *err,
            size_t err_size);
/* The names cli_set accepts, comma-separated, into buf. */
void cli_option_names(const cli_option *rows, char *buf, size_t size);
/* One line "name value, name value, ..." of the current values. */
void cli_describe(const cli_option *rows, const void *opts, FILE *f);

/* Strict number parsing: the whole string, within [lo, hi]. */
bool cli_int(const char *s, long lo, long hi, long *out);
bool cli_double(const char *s, double lo, double hi, double *out);

#endif
