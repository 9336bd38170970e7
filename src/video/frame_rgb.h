/* One decoded FFmpeg frame to packed RGB24 exactly as PyAV's frame.to_rgb() does it; shared by
 * the whole-file reader (video.c) and the frame stream (frame_stream.c) so that both give the
 * same pixels. */
#ifndef VBLIP_VIDEO_FRAME_RGB_H
#define VBLIP_VIDEO_FRAME_RGB_H

#include <stdint.h>

struct AVFrame;
struct SwsContext;

/* Converts f into out (width*height*3 bytes); *sws is a cached scaler the caller frees with
 * sws_freeContext. 0, or -1 with vb_error() set. */
int vb_frame_rgb24(struct SwsContext **sws, const struct AVFrame *f, uint8_t *out);

/* Silences FFmpeg's own log (errors reach callers through vb_error) unless VBLIP_FFMPEG_LOG
 * is set; once per process. */
void vb_ffmpeg_log_init(void);

#endif
