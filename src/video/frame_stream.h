/* A video read front to back once, as it plays: the frame shown at each requested time.
 * Used by narration (windows over a long or live video share a fixed grid of frame times)
 * and by frame sampling at given times, so that both pick the very same frames. */
#ifndef VBLIP_VIDEO_FRAME_STREAM_H
#define VBLIP_VIDEO_FRAME_STREAM_H

#include <stdint.h>

#include "video/video.h"

typedef struct vb_frame_stream vb_frame_stream;

/* Where a source may come from. Files are always allowed ("-" is stdin); network URLs
 * (rtsp://, http(s):// including HLS playlists, udp://, tcp://, srt://) and capture devices
 * (/dev/video*) only when asked for. */
typedef enum { VB_SOURCE_FILE = 0, VB_SOURCE_LIVE = 1 } vb_source_kind;

/* 1 when source names a stream rather than a file: "-", a URL, a /dev/ device. */
int vb_source_is_live(const char *source);

/* Opens source (see vb_source_kind); NULL with vb_error() set. */
vb_frame_stream *vb_frame_stream_open(const char *source, vb_source_kind kind);
/* The frame shown at t seconds after the first frame (the last frame whose time is <= t):
 * 0 with *rgb a new packed RGB24 buffer of *w x *h and *shown_at its time; 1 when the input
 * ended before t; -1 on error. Requests must not go back in time; frames between two
 * requests are decoded but never converted. */
int vb_frame_stream_at(vb_frame_stream *s, double t, uint8_t **rgb, int *w, int *h,
                       double *shown_at);
/* Wall-clock milliseconds (vb_now_ms) when the first frame came out of the decoder, or < 0
 * before it: a live source's media time runs from then. */
double vb_frame_stream_started_ms(const vb_frame_stream *s);
void vb_frame_stream_close(vb_frame_stream *s);

/* The frames of the file at path shown at times[0..n) (ascending, seconds after the first
 * frame), read with one frame stream: exactly the frames narration picks for those times.
 * index[i] is i. 0, or -1 (also when the video ends before a time). */
int vb_frames_at_times(const char *path, const double *times, int n, vb_frames *out);

#endif
