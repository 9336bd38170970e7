/* Tokenizers: byte-level BPE (OPT/GPT-2) and SentencePiece Unigram (T5),
 * behind one interface that reproduces transformers 4.33's slow tokenizers. */
#ifndef VBLIP_TEXT_TOKENIZER_H
#define VBLIP_TEXT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vb_tokenizer vb_tokenizer;

typedef enum { VB_TOK_BPE = 1, VB_TOK_SPM = 2 } vb_tokenizer_kind;

typedef struct {
  /* implementation hooks */
  /* max_ids > 0: fails (an input error) as soon as the ids would exceed it */
  int (*encode)(const void *impl, const char *text, size_t len, bool add_special, size_t max_ids,
                int32_t **ids, size_t *n);
  /* Decodes ids as transformers' decode() with skip_special_tokens and
   * clean_up_tokenization_spaces as given. */
  int (*decode)(const void *impl, const int32_t *ids, size_t n, bool skip_special, bool cleanup,
                char **text);
  /* Token string of an id (vocabulary form, e.g. "Ġthe" or "▁the"), NULL if out of range. */
  const char *(*token)(const void *impl, int32_t id);
  int32_t (*vocab_size)(const void *impl);
  bool (*is_special)(const void *impl, int32_t id);
  void (*destroy)(void *impl);
} vb_tokenizer_ops;

struct vb_tokenizer {
  vb_tokenizer_kind kind;
  const vb_tokenizer_ops *ops;
  void *impl;
};

/* Loads the tokenizer of a Hugging Face model directory: the slow tokenizer's files
 * (vocab.json + merges.txt, or spiece.model) when present, else tokenizer.json. */
int vb_tokenizer_load(const char *model_dir, vb_tokenizer **out);
/* With prefer_json, tokenizer.json wins over the slow files when both are there: what
 * transformers' AutoTokenizer (the "fast" tokenizer) loads, and EILEV's processor uses. */
int vb_tokenizer_load_pref(const char *model_dir, bool prefer_json, vb_tokenizer **out);
void vb_tokenizer_free(vb_tokenizer *t);
int vb_tokenizer_encode(const vb_tokenizer *t, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n);
/* The same, failing with an input error ("the text is longer than N tokens") as soon as
 * the ids would exceed max_ids: a long text is never tokenized whole. */
int vb_tokenizer_encode_max(const vb_tokenizer *t, const char *text, size_t len, bool add_special,
                            size_t max_ids, int32_t **ids, size_t *n);
int vb_tokenizer_decode(const vb_tokenizer *t, const int32_t *ids, size_t n, bool skip_special,
                        bool cleanup, char **text);
int32_t vb_tokenizer_vocab_size(const vb_tokenizer *t);

/* Implementations (text/bpe.c, text/spm.c). Each loader returns 1 when the
 * directory has none of its files (so the next one can be tried), 0 on success,
 * -1 on error. */
int vb_bpe_load(const char *model_dir, vb_tokenizer *out);
int vb_spm_load(const char *model_dir, vb_tokenizer *out);
int vb_bpe_load_pref(const char *model_dir, bool prefer_json, vb_tokenizer *out);
int vb_spm_load_pref(const char *model_dir, bool prefer_json, vb_tokenizer *out);

#endif
