/* Internal access to a vblip_trainer (tests, the CLI's progress output). */
#ifndef VBLIP_TRAIN_TRAINER_H
#define VBLIP_TRAIN_TRAINER_H

#include "train/train.h"
#include "vblip_train.h"

tr_params *vb_trainer_params(vblip_trainer *t);
tr_lm *vb_trainer_lm(vblip_trainer *t);
tr_qformer *vb_trainer_qformer(vblip_trainer *t);
tr_lin *vb_trainer_projection(vblip_trainer *t);
const vb_model_config *vb_trainer_config(const vblip_trainer *t);
/* A trainer over an in-memory weights table (taken over; *w is cleared) and config, with
 * the default image settings and no tokenizer: benchmarks on synthesized weights. */
vblip_trainer *vb_trainer_open_table(vb_weights *w, const vb_model_config *cfg,
                                     const vblip_train_options *o);
/* The loss in train mode (the dropout vblip_trainer_accumulate would apply at the current
 * step and position) without gradients: finite differences through the same masks. */
int vb_trainer_train_loss(vblip_trainer *t, const vblip_train_example *e, double *loss);
/* Whether vblip_trainer_accumulate drops (options.dropout). */
int vb_trainer_dropout(const vblip_trainer *t);
/* An example from pixel values and token ids directly (no tokenizer). */
int vb_trainer_example_ids(vblip_trainer *t, const float *pixel_values, int n_frames,
                           const int32_t *ids, int n_ids, const int32_t *labels, int n_labels,
                           vblip_train_example **out);
/* The frozen vision encoder's compute type: bf16 under --bf16, except f32 where bf16
 * products are slow here and the vision weights are stored f32. */
vb_compute vb_trainer_vision_compute(const vblip_trainer *t);
/* An example's vision encoder output, [n_vis, vision width]. */
const float *vb_train_example_vision(const vblip_train_example *e, int *n_vis);

#endif
