#define _GNU_SOURCE
/* libFuzzer target: a model's small files as a hostile checkpoint would hold them:
 * config.json and a tokenizer (vocab.json + merges.txt, tokenizer.json or spiece.model),
 * mounted as virtual files (runtime/vfs.h) and read by the same loaders a model load
 * uses; a loaded tokenizer then encodes (bounded, as prompts are) and decodes text.
 * Input: a selector byte (which tokenizer), then up to three files separated by the
 * line "@@". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "runtime/common.h"
#include "runtime/vfs.h"
#include "text/tokenizer.h"

#define DIR "fuzz-model"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = data[0] % 3;
  const char *p = (const char *)data + 1, *end = (const char *)data + size;
  const char *part[3] = {p, p, p};
  size_t len[3] = {0, 0, 0};
  int k = 0;
  for (; k < 3; k++) {
    const char *sep = memmem(p, (size_t)(end - p), "\n@@\n", 4);
    part[k] = p;
    len[k] = (size_t)((sep ? sep : end) - p);
    if (!sep) break;
    p = sep + 4;
  }
  char *config = malloc(len[0] + 1);
  if (!config) return 0;
  memcpy(config, part[0], len[0]);
  config[len[0]] = 0;
  vb_model_config cfg;
  vb_config_parse(config, &cfg);
  free(config);

  static const char *const names[3][2] = {
      {"vocab.json", "merges.txt"}, {"tokenizer.json", NULL}, {"spiece.model", NULL}};
  vb_vfs_file files[2];
  size_t nf = 0;
  for (int i = 0; i < 2 && names[kind][i]; i++)
    files[nf++] = (vb_vfs_file){names[kind][i], part[1 + i], len[1 + i]};
  if (vb_vfs_mount(DIR, files, nf) != 0) return 0;
  vb_tokenizer *t = NULL;
  if (vb_tokenizer_load(DIR, &t) == 0) {
    static const char *const texts[] = {"Question: What is the camera wearer doing? Answer:",
                                        " hello  world\n\t!", "", "\xc3\xa9t\xc3\xa9 <unk> </s>"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
      int32_t *ids = NULL;
      size_t n = 0;
      if (vb_tokenizer_encode_max(t, texts[i], strlen(texts[i]), true, 64, &ids, &n) == 0) {
        if (n > 64) __builtin_trap(); /* the limit holds */
        char *text = NULL;
        if (vb_tokenizer_decode(t, ids, n, true, true, &text) == 0) free(text);
      }
      free(ids);
    }
    int32_t some[] = {0, 1, 2, 3, 100, 5000, -1, 2147483647};
    char *text = NULL;
    if (vb_tokenizer_decode(t, some, sizeof some / sizeof some[0], false, false, &text) == 0)
      free(text);
    vb_tokenizer_free(t);
  }
  vb_vfs_unmount(DIR);
  return 0;
}
