/* Video and image decoding with FFmpeg, and frame selection as VideoBLIP's
 * reference pipeline (pytorchvideo + PyAV) does it. */
#ifndef VBLIP_VIDEO_VIDEO_H
#define VBLIP_VIDEO_VIDEO_H

#include <stdint.h>

typedef enum {
  VB_SAMPLE_UNIFORM = 0, /* n_frames indices linspace(0, T-1, n) over the [start, end) window */
  VB_SAMPLE_DEMO = 1,    /* the demo: frames with pts in [0 s, 10 s), then every 30th */
} vb_sample_mode;

typedef struct {
  vb_sample_mode mode;
  int n_frames;     /* uniform only; default 8 */
  double start_sec; /* uniform window start; default 0 */
  double end_sec;   /* uniform window end; < 0 means the end of the video */
} vb_sampling;

void vb_sampling_default(vb_sampling *s);

typedef struct {
  int count; /* selected frames */
  int width, height;
  uint8_t **rgb;   /* count buffers of height*width*3 packed RGB24 (as PyAV's frame.to_rgb()) */
  int64_t *index;  /* index of each frame in the decoded list of the window */
  int64_t *pts;    /* presentation timestamp in stream time_base units */
  double *seconds; /* pts * time_base */
  int64_t total_in_window; /* how many frames the window held */
  int64_t first_index;     /* frames of the video before the window: index + first_index is
                            * a frame's index in the whole video */
} vb_frames;

/* Decodes path (any container/codec FFmpeg reads; still images are 1 frame) and
 * selects frames. Returns 0 or -1 with vb_error() set. */
int vb_video_read(const char *path, const vb_sampling *s, vb_frames *out);
void vb_frames_free(vb_frames *f);

/* Decoding options beyond vb_video_read's defaults (which are: fast path, auto threads;
 * the environment variable VBLIP_VIDEO_FULL_DECODE=1 forces the full decode). */
typedef struct {
  int force_full; /* skip the packet-index fast path: decode everything (twice: count, convert) */
  int threads;    /* decoder threads; 0 = FFmpeg's automatic choice */
} vb_video_opts;

/* What a read did, for tests and benchmarks. */
typedef struct {
  int fast_path;          /* 1 when the packet-index path produced the result */
  int64_t frames_decoded; /* frames that came out of the decoder, all passes */
  int64_t packets_read;   /* video packets read from the container, all passes */
  int seeks;              /* av_seek_frame calls */
} vb_video_stats;

void vb_video_opts_default(vb_video_opts *o);
/* vb_video_read with options; stats may be NULL. */
int vb_video_read_ex(const char *path, const vb_sampling *s, const vb_video_opts *o, vb_frames *out,
                     vb_video_stats *stats);

/* pytorchvideo's UniformTemporalSubsample indices: long(clamp(linspace(0, total-1, n)))
 * with torch's float32 linspace. out has n entries. Errors: total <= 0, n <= 0. */
int vb_uniform_indices(int64_t total, int n, int64_t *out);

#endif
