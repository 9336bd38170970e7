/* Shared pieces of the vblip command-line program. */
#ifndef VBLIP_CLI_H
#define VBLIP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli_options.h"
#include "cli/cli_status.h"
#include "cli/cli_stdio.h"
#include "vblip.h"
#include "vblip_hub.h"
#include "vblip_server.h"
#include "vblip_train.h"

/* The commands, in the order 'vblip --help' lists them: X(c) names the cli_command
 * cli_cmd_<c>, defined in tools/cli/cmd_*.c. Adding a command is one line here. */
#define CLI_COMMANDS(X)                                                                            \
  X(caption)                                                                                       \
  X(chat)                                                                                          \
  X(convert)                                                                                       \
  X(embed)                                                                                         \
  X(extract_frames)                                                                                \
  X(narrate)                                                                                       \
  X(pull)                                                                                          \
  X(score)                                                                                         \
  X(serve)                                                                                         \
  X(tokenize)                                                                                      \
  X(train)                                                                                         \
  X(ego4d_split)

#define CLI_DECLARE_COMMAND(c) extern const cli_command cli_cmd_##c;
CLI_COMMANDS(CLI_DECLARE_COMMAND)
#undef CLI_DECLARE_COMMAND

/* Prints "vblip: <message>" to stderr and returns exit status 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "vblip CMD: <message> (see 'vblip CMD --help')" and returns exit status 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- option groups shared by several commands (tools/cli/cli_common.c) ---- */

/* --model / -m MODEL (required): a checkpoint directory, a .gguf file or a Hub repo id;
 * the row's field is a const char *. */
extern const cli_option cli_model_option[];
/* --frames, --sampling, --start, --end, --frame-times into a vblip_sampling. */
extern const cli_option cli_frame_options[];
/* --beams, --max-new-tokens/-n, --min-new-tokens, --sample, --temperature, --top-k,
 * --top-p, --seed, --repetition-penalty, --no-repeat-ngram, --length-penalty into a
 * vblip_gen_params; also the names chat's /set takes. */
extern const cli_option cli_gen_options[];
/* --threads / -t N into an int (0, the default: all cores). */
extern const cli_option cli_threads_option[];
/* --dtype auto|f32|bf16 and --vision-dtype auto|f32|bf16|int8 into a
 * vblip_load_options (its dtype and vision_dtype). */
extern const cli_option cli_dtype_option[];
/* The row that includes cli_dtype_option at a command's vblip_load_options field f
 * (its type checked at compile time: the rows' offsets are relative to it). */
#define CLI_DTYPE_GROUP(T, f)                                                                      \
  { .kind = CLI_GROUP, .offset = CLI_FIELD(T, f, vblip_load_options), .group = cli_dtype_option }

/* --layout auto|blip2|interleaved into a vblip_layout (vblip_load_options.layout). */
extern const cli_option cli_layout_option[];

/* Defaults that depend on the model: EILEV's (5 beams, 32 new tokens, length penalty -1,
 * frames from the first 8 s) for the interleaved layout, the VideoBLIP demo's otherwise.
 * unset marks those settings "not given" before parsing; fill sets the ones no flag gave
 * once the model is loaded. Either pointer may be NULL. */
void cli_model_defaults_unset(vblip_gen_params *g, vblip_sampling *s);
void cli_model_defaults_fill(const vblip_model *m, vblip_gen_params *g, vblip_sampling *s);

/* After parsing: a window whose end is not after its start is a usage error. 0, or the
 * exit status 2 with the message printed. */
int cli_check_sampling(const char *cmd, vblip_sampling *s);

/* Decodes and encodes a video; on failure prints one message that names the file once
 * and returns -1 (v is then empty). */
int cli_load_video(vblip_model *m, const char *path, const vblip_sampling *s, vblip_video *v);

/* The model, or NULL with the error printed. Commands keep a vblip_load_options from
 * vblip_load_options_default (which honours VBLIP_DTYPE) and point cli_threads_option
 * and cli_dtype_option at its n_threads and at itself. */
vblip_model *cli_load_model(const char *model, const vblip_load_options *lo);

#endif
