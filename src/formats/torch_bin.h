/* PyTorch checkpoints (torch.save zip format): zip container + a restricted
 * unpickler that rebuilds a state dict and executes nothing. */
#ifndef VBLIP_FORMATS_TORCH_BIN_H
#define VBLIP_FORMATS_TORCH_BIN_H

#include "formats/tensor_table.h"

/* Maps path and adds every tensor of its state dict to tt. Contiguous tensors
 * stored uncompressed point into the mapping; others are copied into owned buffers. */
int vb_torch_bin_load(vb_tensor_table *tt, const char *path);
/* Same over an in-memory file that must outlive tt (fuzzing, tests). */
int vb_torch_bin_parse(vb_tensor_table *tt, const uint8_t *buf, size_t len, const char *label);

#endif
