/* Whether a model fits before it is loaded: its weights as the loader will
 * hold them, the KV caches of a default generation and the vision encoder's
 * activations, against the memory this process may still take. */
#ifndef VBLIP_MODELS_MEMORY_CHECK_H
#define VBLIP_MODELS_MEMORY_CHECK_H

#include <stdint.h>

#include "checkpoint/config.h"
#include "formats/tensor_table.h"
#include "kernels/kernels.h"

typedef struct {
  uint64_t weights;    /* the tensors as held for this compute type */
  uint64_t weights_q8; /* the same with every linear layer in q8_0 (vblip convert --type q8_0) */
  uint64_t kv;     /* KV caches: 4 beams of 64 prompt and 128 new tokens (the demo's settings) */
  uint64_t vision; /* the vision encoder's activations for 8 frames */
  uint64_t total;  /* the above and a constant for the runtime */
} vb_memory_need;

/* compute: the language model's and the projection's; vision_compute: the
 * vision encoder's and Q-Former's (they differ with --vision-dtype, or where
 * bf16 products are slow). lm_quant: VB_DT_Q8_0 / VB_DT_Q4_0 when the
 * language model's layers are quantized at load (--dtype q8_0 / q4_0), else
 * VB_DT_F32. */
void vb_memory_estimate(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                        vb_compute vision_compute, vb_dtype lm_quant, vb_memory_need *need);
/* 1 when the model fits as vb_memory_check counts it (or the check is off or
 * cannot read the memory available), else 0; sets no error: for choices
 * that have a smaller alternative. */
int vb_memory_fits(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                   vb_compute vision_compute, vb_dtype lm_quant);
/* 0 when the model fits (or $VBLIP_MEMORY_CHECK=0 skips the check); else -1
 * with a message giving the numbers and what to change. */
int vb_memory_check(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                    vb_compute vision_compute, vb_dtype lm_quant);

#endif
