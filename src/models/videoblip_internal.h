/* The loaded model behind vblip_model, shared by the glue's files (videoblip.c,
 * input.c, score.c). Not part of the public API. */
#ifndef VBLIP_MODELS_VIDEOBLIP_INTERNAL_H
#define VBLIP_MODELS_VIDEOBLIP_INTERNAL_H

#include "checkpoint/config.h"
#include "checkpoint/model_source.h"
#include "checkpoint/weights.h"
#include "kernels/kernels.h"
#include "lm/lm.h"
#include "text/tokenizer.h"
#include "vblip.h"
#include "video/preprocess.h"
#include "vision/qformer.h"
#include "vision/vit.h"

struct vblip_model {
  vb_model_config cfg;
  vb_image_config image;
  vb_weights weights;
  vb_vit vit;
  vb_qformer qformer;
  vb_linear projection;
  vb_lm *lm;
  vb_tokenizer *tok;
  vb_compute compute;
  vblip_layout layout;    /* BLIP2 or INTERLEAVED */
  int32_t newline_id;     /* interleaved layout: after each video, and OPT's end of an answer */
  vb_model_source source; /* where config, tokenizer and weights were read (a GGUF stays mounted) */
  int vision_int8;        /* the ViT runs int8 products (vblip_model_vision_dtype) */
  vb_compute vision_compute; /* the vision encoder's and Q-Former's other products */
};

/* A video the model can use: encoded by this model (its query outputs in the LM's width). */
int vb_check_encoded(const vblip_model *m, const vblip_video *v);

#endif
