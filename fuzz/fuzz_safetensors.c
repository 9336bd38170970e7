/* libFuzzer target: safetensors header parsing and bounds checks. */
#include <stddef.h>
#include <stdint.h>

#include "formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_safetensors_parse(&tt, data, size, "fuzz");
  vb_tt_free(&tt);
  return 0;
}
