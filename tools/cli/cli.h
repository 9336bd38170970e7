/* Shared pieces of the vblip command-line program. */
#ifndef VBLIP_CLI_H
#define VBLIP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vblip.h"
#include "vblip_hub.h"
#include "vblip_server.h"
#include "vblip_train.h"

int cmd_embed(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);       /* cmd_train.c */
int cmd_ego4d_split(int argc, char **argv); /* cmd_train.c */
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_pull(int argc, char **argv);

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
/* --dtype auto|f32|bf16 into a vblip_dtype (for vblip_load_options.dtype).
 * Returns 1 if consumed, 0 if not this flag, -1 on a bad value (message printed). */
int cli_dtype_option(const char *cmd, int argc, char **argv, int *i, vblip_dtype *dtype);
#define CLI_DTYPE_HELP                                                                   \
  "  --dtype T           compute type: auto (default: bf16 on CPUs with AMX or\n"         \
  "                      AVX512-BF16, else f32), f32 (exact) or bf16\n"

/* Generation flags shared by caption, chat and serve (--beams, --max-new-tokens,
 * --min-new-tokens, --sample, --temperature, --top-k, --top-p, --seed,
 * --repetition-penalty, --no-repeat-ngram, --length-penalty). Returns 1 if argv[*i]
 * was one of them (consumed), 0 if not, -1 on a bad value (usage message printed). */
int cli_gen_option(const char *cmd, int argc, char **argv, int *i, vblip_gen_params *p);
#define CLI_GEN_HELP                                                                             \
  "  --beams N                 beam search width; 0 or 1 = greedy (default 4, as the demo)\n"    \
  "  --max-new-tokens N        at most N new tokens (default 128, as the demo)\n"                \
  "  --min-new-tokens N        no end-of-text before N tokens (default 0)\n"                     \
  "  --sample                  sample instead of greedy/beam search\n"                           \
  "  --temperature T           with --sample (default 1.0); without it, like transformers,\n"    \
  "                            it has no effect (the demo passes 0.7 that way)\n"                \
  "  --top-k K                 with --sample (default 50; 0 = off)\n"                            \
  "  --top-p P                 with --sample, 0 < P <= 1 (default 1 = off)\n"                    \
  "  --seed S                  random seed for --sample (default 0)\n"                           \
  "  --repetition-penalty R    > 0 (default 1 = off)\n"                                          \
  "  --no-repeat-ngram N       forbid repeating any N-gram (default 0 = off)\n"                  \
  "  --length-penalty L        beam search length penalty (default 1)\n"

#define CLI_GEN_SETTING_NAMES                                                              \
  "beams, max-new-tokens, min-new-tokens, sample, temperature, top-k, top-p, seed, "        \
  "repetition-penalty, no-repeat-ngram, length-penalty"
/* Sets one generation setting by name (the flag without "--"; "sample" takes on/off).
 * Returns NULL on success, else err filled with a message. */
const char *cli_gen_set(vblip_gen_params *p, const char *name, const char *value, char *err, size_t err_size);
/* One line listing the settings. */
void cli_gen_describe(const vblip_gen_params *p, FILE *f);

#endif
