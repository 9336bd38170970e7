/* libFuzzer target: GGUF header, metadata and tensor-info parsing with every
 * bounds, overflow, alignment and overlap check. */
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_gguf_meta meta;
  if (vb_gguf_parse(data, size, "fuzz", &meta, &tt) == 0) {
    uint64_t v;
    vb_gguf_get_uint(&meta, "general.alignment", &v);
    vb_gguf_meta_free(&meta);
  }
  vb_tt_free(&tt);
  return 0;
}
