/* BlipImageProcessor: bicubic resize exactly as Pillow does it for 8-bit
 * images, rescale, normalize. */
#ifndef VBLIP_VIDEO_PREPROCESS_H
#define VBLIP_VIDEO_PREPROCESS_H

#include <stdint.h>

#include "video/video.h"

typedef struct {
  int width, height;     /* size.width / size.height, default 224 */
  int resample;          /* PIL code; 3 = bicubic (the only one BLIP uses; others rejected) */
  double rescale_factor; /* default 1/255 */
  float mean[3], std[3]; /* OpenAI CLIP defaults */
  int do_resize, do_rescale, do_normalize, do_convert_rgb;
} vb_image_config;

void vb_image_config_default(vb_image_config *c);
/* Reads preprocessor_config.json in model_dir; a missing file or key keeps the default. */
int vb_image_config_load(const char *model_dir, vb_image_config *c);

/* Pillow's BICUBIC Image.resize on packed RGB24 (two separable passes, fixed point). */
int vb_resize_bicubic_rgb(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh);

/* Resizes every frame into frames_out (count*H*W*3, may be NULL) and writes
 * pixel_values in (3, count, H, W) float32 layout (VideoBLIP's channel-before-time). */
int vb_preprocess_frames(const vb_frames *f, const vb_image_config *c, uint8_t *frames_out,
                         float *pixel_values);

#endif
