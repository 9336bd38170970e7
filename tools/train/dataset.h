/* Training data: JSONL clip lists ({"video", "start", "end", "text"[, "prompt"]}
 * per line) and Ego4D narrations turned into such lists. */
#ifndef VBLIP_TRAIN_DATASET_H
#define VBLIP_TRAIN_DATASET_H

#include <stdint.h>

typedef struct {
  char *video;  /* resolved path */
  double start, end;
  char *text;
  char *prompt; /* NULL: the run's prompt */
} vb_clip;

typedef struct {
  vb_clip *items;
  int n;
} vb_dataset;

/* Relative video paths resolve against video_dir when given, else against the
 * JSONL file's directory. Errors name the line. */
int vb_dataset_load(const char *jsonl, const char *video_dir, vb_dataset *out);
void vb_dataset_free(vb_dataset *d);

typedef struct {
  const char *narrations; /* Ego4D narration.json */
  const char *out_dir;    /* gets train.jsonl and val.jsonl */
  const char *video_dir;  /* prefix for "<video_uid>.mp4"; NULL: bare file names */
  double val_fraction;    /* of the videos (default 0.1) */
  uint64_t seed;
  int pass;               /* narration_pass_1 or _2 (default 1) */
  double clip_seconds;    /* clip length around each narration (default 8) */
} vb_ego4d_split_options;

typedef struct {
  int videos, train_videos, val_videos, train_clips, val_clips, skipped;
} vb_ego4d_split_stats;

int vb_ego4d_split(const vb_ego4d_split_options *o, vb_ego4d_split_stats *st);

#endif
