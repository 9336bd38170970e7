/* Restricted unpickler for PyTorch state dicts (pickle protocol 2..5).
 * It interprets only the opcodes a torch.save'd state dict uses, resolves only a
 * fixed allow-list of globals (OrderedDict, tensor rebuild helpers, storage
 * classes) into inert markers, and never calls or imports anything. */
#ifndef VBLIP_FORMATS_PICKLE_H
#define VBLIP_FORMATS_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/tensor_table.h"

/* Resolves a persistent storage key (the "<key>" of "data/<key>") to its bytes,
 * which must outlive the table. Returns 0, or -1 after vb_error(). */
typedef int (*vb_pickle_storage_fn)(void *ctx, const char *key, size_t key_len,
                                    const uint8_t **data, size_t *size);

typedef struct {
  vb_pickle_storage_fn storage;
  void *ctx;
  /* Upper bound on bytes copied for non-contiguous views, all tensors together
   * (a stride-0 view could otherwise expand a tiny storage without limit). */
  size_t copy_budget;
  const char *label; /* names the file in errors */
} vb_pickle_opts;

/* Unpickles pkl[0..len); the result must be a dict of name -> tensor, whose
 * tensors are added to tt. Contiguous views point into storage data; others are
 * copied into buffers owned by tt. */
int vb_pickle_load_state_dict(vb_tensor_table *tt, const uint8_t *pkl, size_t len,
                              const vb_pickle_opts *opts);

#endif
