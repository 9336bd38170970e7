/* libFuzzer target: the restricted unpickler alone. Every storage key resolves to
 * one fixed 4 KiB heap buffer, so views that escape it are caught by ASan. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "formats/pickle.h"

#define STORAGE_BYTES 4096

static int fake_storage(void *ctx, const char *key, size_t key_len, const uint8_t **data,
                        size_t *size) {
  (void)key;
  (void)key_len;
  *data = ctx;
  *size = STORAGE_BYTES;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t *storage;
  if (!storage) {
    storage = malloc(STORAGE_BYTES);
    if (!storage) return 0;
    for (size_t i = 0; i < STORAGE_BYTES; i++) storage[i] = (uint8_t)i;
  }
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_pickle_opts o = {fake_storage, storage, 1u << 20, "fuzz"};
  if (vb_pickle_load_state_dict(&tt, data, size, &o) == 0) {
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < tt.count; i++)
      for (size_t j = 0; j < tt.items[i].nbytes; j++) sink ^= ((const uint8_t *)tt.items[i].data)[j];
    (void)sink;
  }
  vb_tt_free(&tt);
  return 0;
}
