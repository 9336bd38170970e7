/* A model directory's weights, looked up by transformers' tensor names with
 * presence, dtype and shape checks that name the tensor on error. */
#ifndef VBLIP_CHECKPOINT_WEIGHTS_H
#define VBLIP_CHECKPOINT_WEIGHTS_H

#include "formats/tensor_table.h"
#include "kernels/kernels.h"

typedef struct {
  vb_tensor_table tt;
  char *source; /* what was loaded, for messages */
  void **owned; /* f32 conversions handed out */
  size_t nowned;
  /* How vb_weights_linear prepares layers (both 0, i.e. exact f32, after open):
   * the compute type, and whether to keep bf16 weights only in oneDNN's packed
   * layout (set it around layers that always run with many rows). */
  vb_compute compute;
  int pack;
  /* int8 vision (vb_weights_linear_vision): 0 off; else layers stored as I8
   * run in int8, and so do the kinds in int8_kinds (VB_I8_*), quantized at
   * load; the others run at `compute`. */
  int int8;
  unsigned int8_kinds;
  /* Quantization at load (--dtype q8_0 / q4_0): VB_DT_Q8_0 or VB_DT_Q4_0 makes
   * vb_weights_linear store float weights of linear layers in that type (as
   * vblip convert would: a vocabulary head q8_0, embeddings untouched), with
   * bf16 compute; VB_DT_F32 (0) leaves them as stored. */
  vb_dtype quant;
} vb_weights;

/* The vision encoder's and Q-Former's product kinds, for int8 selection. */
enum {
  VB_I8_QKV = 1,     /* ViT attention qkv */
  VB_I8_PROJ = 2,    /* ViT attention output projection */
  VB_I8_FC1 = 4,     /* ViT MLP fc1 */
  VB_I8_FC2 = 8,     /* ViT MLP fc2 */
  VB_I8_QFORMER = 16 /* every Q-Former product */
};
/* What --vision-dtype int8 quantizes at load: the ViT's four products. The
 * Q-Former stays at the model's dtype: in int8 it alone cost 1.0-1.3e-2 of
 * relative error on the fixtures' Q-Former output (each ViT kind 0.03-0.18e-2)
 * for ~3% of the vision time (tests/test_vision_int8.c prints the breakdown). */
#define VB_I8_DEFAULT (VB_I8_QKV | VB_I8_PROJ | VB_I8_FC1 | VB_I8_FC2)
/* Parses a comma-separated list (qkv,proj,fc1,fc2,qformer, all, none); -1 if bad. */
int vb_i8_kinds_parse(const char *s, unsigned *out);

/* Loads model.safetensors, sharded safetensors (model.safetensors.index.json),
 * pytorch_model.bin or sharded .bin (pytorch_model.bin.index.json); safetensors
 * preferred when both exist. model_dir may also be a GGUF file (vblip convert). */
int vb_weights_open(const char *model_dir, vb_weights *w);
void vb_weights_close(vb_weights *w);

/* The tensor's info after checking it exists with exactly the given shape
 * (ndim dims follow). NULL with an error naming the tensor otherwise. */
const vb_tensor_info *vb_weights_find(vb_weights *w, const char *name, int ndim, ...);
/* A float32 view of a checked tensor (converted and cached if stored otherwise). */
const float *vb_weights_f32(vb_weights *w, const char *name, int ndim, ...);
/* Fills a linear layer from "<prefix>.weight" [out,in] and, if has_bias, "<prefix>.bias". */
int vb_weights_linear(vb_weights *w, const char *prefix, int out, int in, int has_bias,
                      vb_linear *l);
/* vb_weights_linear for a vision / Q-Former product of kind `kind` (VB_I8_*):
 * int8 compute when w->int8 selects it (see above). An I8 tensor comes with
 * "<prefix>.weight_scale" [out] (float32). */
int vb_weights_linear_vision(vb_weights *w, const char *prefix, int out, int in, int has_bias,
                             unsigned kind, vb_linear *l);

#endif
