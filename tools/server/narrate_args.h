/* POST /api/narrate's query parameters, read one at a time as libmicrohttpd
 * hands them over (percent-decoded): apart from the server so the fuzzer
 * (fuzz/fuzz_narrate_args.c) reaches every branch. */
#ifndef VBLIP_SERVER_NARRATE_ARGS_H
#define VBLIP_SERVER_NARRATE_ARGS_H

#include "vblip.h"

enum { VS_NF_VTT, VS_NF_SRT, VS_NF_JSONL }; /* the cue formats */

#define VS_NARRATE_MAX_FRAMES 64

typedef struct {
  vblip_gen_params gen;     /* the server's defaults, changed by generation settings */
  vblip_narrate_options no; /* window, stride, max_lag, frames */
  const char *prompt, *url; /* point into the values given */
  int format, merge;
  char msg[512]; /* why a parameter was refused (control characters escaped) */
  int bad;
} vs_narrate_args;

/* Applies key=value (value may be NULL: empty). 0, or -1 with a->msg set and
 * a->bad raised; nothing is applied once a->bad is set. */
int vs_narrate_arg(vs_narrate_args *a, const char *key, const char *value);

#endif
