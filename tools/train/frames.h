/* Frames datasets (vblip extract-frames): each clip's frames sampled and preprocessed
 * once, stored losslessly, so that training reads pixel values without decoding video.
 *
 * On disk, in OUT:
 *   frames.jsonl            the input clip list, one line per clip in the same order, each
 *                           with "frames": "clips/clip-NNNNNN.safetensors" added
 *   clips/clip-NNNNNN.safetensors
 *                           one tensor "pixel_values", float32 [3, T, S, S] (channels,
 *                           frames, rows, columns: the model's preprocessing, as inference
 *                           computes it); metadata "video", "start", "end" */
#ifndef VBLIP_TRAIN_FRAMES_H
#define VBLIP_TRAIN_FRAMES_H

typedef struct {
  const char *model;     /* its preprocessor settings (image size, mean, std) */
  const char *data;      /* clip list (JSONL) */
  const char *video_dir; /* relative video paths (default: next to the JSONL) */
  const char *out;
  int frames;  /* per clip (default 8) */
  int workers; /* clips in parallel (default 1) */
  int quiet;
} vb_extract_options;

typedef struct {
  int clips, extracted, skipped; /* skipped: already complete from an earlier run */
} vb_extract_stats;

int vb_extract_frames(const vb_extract_options *o, vb_extract_stats *st);

/* Reads a clip file's pixel values (malloc'd, [3, T, S, S]) after checking its shape
 * against image size S. */
int vb_frames_file_read(const char *path, int image_size, float **pixels, int *n_frames);

#endif
