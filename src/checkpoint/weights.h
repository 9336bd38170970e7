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
} vb_weights;

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

#endif
