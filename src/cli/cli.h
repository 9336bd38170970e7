/* Shared pieces of the vblip command-line program. */
#ifndef VBLIP_CLI_H
#define VBLIP_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "vblip.h"

int cmd_embed(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

/* Prints "vblip: <message>" to stderr and returns exit status 1 (2 for usage errors). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing: the whole string, within [lo, hi]. */
bool cli_int(const char *s, long lo, long hi, long *out);
bool cli_double(const char *s, double lo, double hi, double *out);

/* Option scanning: returns the value of "--name VALUE" / "--name=VALUE" at argv[*i]
 * (advancing *i), or NULL if argv[*i] is not that option. Sets *missing when the
 * value is absent. */
const char *cli_opt(int argc, char **argv, int *i, const char *name, bool *missing);

/* Frame selection flags shared by embed, caption and chat. Returns 1 if argv[*i]
 * was one of them (consumed), 0 if not, -1 on a bad value (message printed). */
int cli_frame_option(const char *cmd, int argc, char **argv, int *i, vblip_sampling *s);
#define CLI_FRAME_HELP                                                                   \
  "  --frames N          sample N frames uniformly (default 8)\n"                        \
  "  --sampling MODE     'uniform' (default) or 'demo' (the demo's rule: frames in\n"     \
  "                      [0 s, 10 s), every 30th)\n"                                      \
  "  --start S, --end E  uniform sampling window in seconds (default: whole video)\n"

int cli_threads_option(const char *cmd, int argc, char **argv, int *i, int *threads);

#endif
