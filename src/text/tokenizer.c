#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

int vb_tokenizer_load(const char *model_dir, vb_tokenizer **out) {
  return vb_tokenizer_load_pref(model_dir, false, out);
}

int vb_tokenizer_load_pref(const char *model_dir, bool prefer_json, vb_tokenizer **out) {
  *out = NULL;
  vb_tokenizer *t = vb_calloc(1, sizeof *t);
  if (!t) return -1;
  int rc = vb_bpe_load_pref(model_dir, prefer_json, t);
  if (rc == 1) rc = vb_spm_load_pref(model_dir, prefer_json, t);
  if (rc == 1) rc = vb_error("%s has no tokenizer (vocab.json+merges.txt, spiece.model or tokenizer.json)", model_dir);
  if (rc != 0) {
    free(t);
    return -1;
  }
  *out = t;
  return 0;
}

void vb_tokenizer_free(vb_tokenizer *t) {
  if (!t) return;
  if (t->ops && t->ops->destroy) t->ops->destroy(t->impl);
  free(t);
}

int vb_tokenizer_encode(const vb_tokenizer *t, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n) {
  return t->ops->encode(t->impl, text, len, add_special, 0, ids, n);
}

int vb_tokenizer_encode_max(const vb_tokenizer *t, const char *text, size_t len, bool add_special,
                            size_t max_ids, int32_t **ids, size_t *n) {
  return t->ops->encode(t->impl, text, len, add_special, max_ids, ids, n);
}

int vb_tokenizer_decode(const vb_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        bool cleanup, char **text) {
  return t->ops->decode(t->impl, ids, n, skip_special, cleanup, text);
}

int32_t vb_tokenizer_vocab_size(const vb_tokenizer *t) { return t->ops->vocab_size(t->impl); }
