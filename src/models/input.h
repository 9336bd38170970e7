/* The item list behind vblip_input (shared by input.c and the glue that lays it out). */
#ifndef VBLIP_MODELS_INPUT_H
#define VBLIP_MODELS_INPUT_H

#include <stddef.h>

#include "vblip.h"

typedef struct {
  char *text;               /* a text item; NULL for a video */
  const vblip_video *video; /* a video item: borrowed, or &owned once a file is encoded */
  char *path;               /* a video file still to load (vblip_input_add_video_file) */
  vblip_sampling sampling;
  vblip_video owned;
} vb_input_item;

struct vblip_input {
  vb_input_item *items;
  size_t n, cap;
};

#endif
