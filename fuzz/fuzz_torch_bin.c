/* libFuzzer target: the whole torch.save path (zip directory + restricted unpickler). */
#include <stddef.h>
#include <stdint.h>

#include "formats/torch_bin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  if (vb_torch_bin_parse(&tt, data, size, "fuzz") == 0) {
    /* Touch every tensor so out-of-bounds views show up under ASan. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < tt.count; i++)
      for (size_t j = 0; j < tt.items[i].nbytes; j++) sink ^= ((const uint8_t *)tt.items[i].data)[j];
    (void)sink;
  }
  vb_tt_free(&tt);
  return 0;
}
