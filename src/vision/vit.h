/* BLIP-2's EVA ViT-g vision encoder (Blip2VisionModel). */
#ifndef VBLIP_MODELS_VIT_H
#define VBLIP_MODELS_VIT_H

#include <pthread.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"

typedef struct {
  vb_linear qkv, proj, fc1, fc2;
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} vb_vit_layer;

typedef struct {
  vb_vision_config cfg;
  int grid, seq; /* patches per side, tokens per frame (grid^2 + 1) */
  vb_linear patch; /* conv weight viewed as [D, 3*P*P] */
  const float *class_emb, *pos_emb;
  vb_vit_layer *layers;
  const float *post_w, *post_b;
  /* activation buffers kept between calls (grown as needed): fresh ones cost
   * ~110 MB of page faults per 8-frame call; the mutex serializes callers */
  pthread_mutex_t ws_mu;
  void *ws;
  size_t ws_cap;
} vb_vit;

int vb_vit_init(vb_vit *v, vb_weights *w, const vb_vision_config *cfg);
void vb_vit_free(vb_vit *v);
/* pixel_values (3, T, H, W) -> out (T*seq, D): frame t fills rows t*seq..t*seq+seq-1. */
int vb_vit_forward(vb_vit *v, const float *pixel_values, int frames, float *out);

#endif
