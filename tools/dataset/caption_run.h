/* Captioning a list of inputs: one JSON Lines result per input, in input order, with the
 * next videos decoded on a second thread while the model works on the current one. */
#ifndef VBLIP_DATASET_CAPTION_RUN_H
#define VBLIP_DATASET_CAPTION_RUN_H

#include <stdbool.h>

#include "dataset/input_list.h"
#include "dataset/jsonl_out.h"
#include "dataset/key_set.h"
#include "vblip.h"

typedef struct {
  const char *prompt;             /* for lines without their own ("": a caption) */
  const vblip_sampling *sampling; /* a line's start/end replace the window */
  const vblip_gen_params *gen;
  bool raw;      /* the decoded text without the demo's post-processing */
  int prefetch;  /* videos decoded ahead (0: each when its turn comes) */
  bool progress; /* a progress line on stderr */
} vb_caption_run_opts;

typedef struct {
  long captioned, failed, skipped;
  double seconds;
} vb_caption_run_stats;

/* Captions every input of `in` whose key (vb_input_key) is not in `done`, writing each
 * result to out: {"id"?, "line", "video", "start"?, "end"?, "prompt", "text"} or, for an
 * input that failed, the same with "error" instead of "text" (the run goes on). 0, or -1
 * with the error when the list cannot be read or a result cannot be written. */
int vb_caption_run(vblip_model *m, vb_input_list *in, const vb_key_set *done, vb_jsonl_out *out,
                   const vb_caption_run_opts *o, vb_caption_run_stats *stats);

#endif
