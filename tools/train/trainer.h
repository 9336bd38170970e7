/* Internal access to a vblip_trainer (tests, the CLI's progress output). */
#ifndef VBLIP_TRAIN_TRAINER_H
#define VBLIP_TRAIN_TRAINER_H

#include "train/train.h"
#include "vblip_train.h"

tr_params *vb_trainer_params(vblip_trainer *t);
tr_lm *vb_trainer_lm(vblip_trainer *t);
const vb_model_config *vb_trainer_config(const vblip_trainer *t);

#endif
