/* Training data: JSONL clip lists ({"video", "start", "end", "text"[, "prompt"]}
 * per line) and Ego4D narrations turned into such lists. */
#ifndef VBLIP_TRAIN_DATASET_H
#define VBLIP_TRAIN_DATASET_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
  char *video;  /* resolved path */
  char *frames; /* resolved path of extracted frames (frames.h), or NULL */
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
  const char *fho_main;   /* Ego4D fho_main.json (VideoBLIP's input), or */
  const char *narrations; /* Ego4D narration.json */
  const char *out_dir;    /* gets train.jsonl and val.jsonl */
  const char *video_dir;  /* prefix for "<video_uid>.mp4"; NULL: bare file names */
  double val_fraction;    /* fho_main: of the actions (0.25); narrations: of the videos */
  uint64_t seed;          /* fho_main: Python's random.seed (VideoBLIP's 42) */
  int eilev_cleaning;     /* EILEV's narration clean-up instead of VideoBLIP's */
  int pass;               /* narration_pass_1 or _2 (default 1) */
  double clip_seconds;    /* clip length around each narration (default 8) */
} vb_ego4d_split_options;

typedef struct {
  int videos, train_videos, val_videos, train_clips, val_clips, skipped;
  int missing_videos, skipped_videos; /* fho_main: not on disk; no action kept */
} vb_ego4d_split_stats;

/* narration.json: videos shuffled with the seed, val_fraction of them to validation. */
int vb_ego4d_split(const vb_ego4d_split_options *o, vb_ego4d_split_stats *st);
/* fho_main.json as VideoBLIP's split_train_val.py does it (ego4d_fho.c). Video paths in the
 * lists are relative to out_dir, where `train` resolves them. */
int vb_ego4d_fho_split(const vb_ego4d_split_options *o, vb_ego4d_split_stats *st);

/* VideoBLIP's NarratedActionClipSampler window: clip_seconds around t, starting at 0 at
 * the earliest, moved back to end at the video's end (the start may then be negative). */
void vb_ego4d_clip_window(double t, double duration, double clip_seconds, double *start,
                          double *end);
/* The path of target as seen from from_dir (both must exist); malloc'd. */
char *vb_relative_path(const char *from_dir, const char *target);
/* mkdir -p. */
int vb_make_dirs(const char *path);
/* Opens "<path>.tmp-<pid>" for writing (*tmp gets its name, malloc'd), to rename later. */
FILE *vb_open_tmp(const char *path, char **tmp);

#endif
