/* A training run as the Hugging Face Trainer drives VideoBLIP's (scripts/ego4d/train.py):
 * epochs or a step budget, micro-batches accumulated into optimizer steps, a learning-rate
 * schedule, gradient clipping, logging, evaluation, checkpoints with rotation, the best
 * checkpoint, and resuming from a checkpoint with identical results. */
#ifndef VBLIP_TRAIN_RUN_H
#define VBLIP_TRAIN_RUN_H

#include <signal.h>
#include <stddef.h>

#include "train/schedule.h"
#include "vblip_train.h"

typedef struct {
  const char *model, *data, *val, *out, *video_dir, *val_video_dir, *prompt;
  const char *resume; /* a checkpoint-N directory of an earlier run, or NULL */
  const char *log;    /* also write the log here: JSON lines, or CSV for a .csv name */
  const char *plot;   /* and draw it as this PNG after every log line (needs log) */
  int frames;
  double epochs;
  long max_steps, batch, grad_accum, eval_batch;
  vb_sched_kind schedule;
  long warmup_steps;
  double warmup_ratio, max_grad_norm;
  long seed, logging_steps, eval_steps, save_steps, save_total_limit;
  int load_best_at_end;
  size_t cache_bytes; /* memory for cached vision features */
  int quiet;
  vblip_train_options train;
  volatile sig_atomic_t *interrupted; /* set from a signal handler: save and stop */
  long stop_after;                    /* > 0: stop as interrupted after this step */
} vb_train_run_options;

void vb_train_run_options_default(vb_train_run_options *o);
/* 0 when done, 130 when interrupted or stopped (a checkpoint of the last step saved),
 * -1 on error (vblip_last_error). */
int vb_train_run(const vb_train_run_options *o);

#endif
