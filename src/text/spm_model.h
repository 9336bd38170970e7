/* SentencePiece core: the unigram model (pieces, scores, types), the
 * precompiled-charsmap normalizer and Viterbi segmentation, as the
 * sentencepiece library (0.1.99) does them.  text/spm.c wraps this into the
 * Hugging Face T5 tokenizer. */
#ifndef VBLIP_TEXT_SPM_MODEL_H
#define VBLIP_TEXT_SPM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ModelProto.SentencePiece.Type */
enum {
  SPM_NORMAL = 1,
  SPM_UNKNOWN = 2,
  SPM_CONTROL = 3,
  SPM_USER_DEFINED = 4,
  SPM_UNUSED = 5,
  SPM_BYTE = 6,
};

/* A growable byte buffer (always NUL-terminated once non-NULL). */
typedef struct {
  char *p;
  size_t n, cap;
} spm_buf;

int spm_buf_put(spm_buf *b, const void *s, size_t n);
void spm_buf_free(spm_buf *b);

typedef struct {
  /* pieces */
  int32_t n_pieces;
  char **piece; /* NUL-terminated piece strings */
  uint32_t *piece_len;
  double *score;
  uint8_t *type;
  int32_t unk_id;
  bool byte_fallback;
  /* Scores are summed in float as sentencepiece does; the Hugging Face
   * `tokenizers` Unigram sums in double and matches every piece type. */
  bool tokenizers_semantics;
  double min_score, max_score;

  /* piece trie: node 0 is the root; edges hashed by (node, byte) */
  int32_t *node_piece; /* piece id ending at a node, or -1 */
  size_t n_nodes, nodes_cap;
  uint64_t *edge_key; /* (node << 8 | byte) + 1, 0 = empty slot */
  int32_t *edge_child;
  size_t edge_cap, n_edges;
  int32_t *user_defined; /* ids of USER_DEFINED pieces (normalizer bypass) */
  int32_t n_user_defined;

  /* normalizer */
  uint8_t *charsmap; /* owned copy of precompiled_charsmap */
  size_t charsmap_len;
  const uint8_t *trie_units; /* darts-clone units (little-endian uint32) */
  size_t n_units;
  const char *norm_strings; /* replacement strings, NUL-separated */
  size_t norm_len;
  bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
  char *unk_surface;
} spm_model;

/* One piece of an encoding: bytes [begin, begin+len) of the normalized text. */
typedef struct {
  size_t begin, len;
  int32_t id;
} spm_piece_ref;

/* Parses a serialized ModelProto (spiece.model) and builds the model. */
int spm_model_load_proto(spm_model *m, const uint8_t *data, size_t size);
/* Adds a piece (used by the tokenizer.json loader before spm_model_finish). */
int spm_model_add_piece(spm_model *m, const char *s, size_t len, double score, uint8_t type);
/* Installs a precompiled charsmap blob (copied). */
int spm_model_set_charsmap(spm_model *m, const uint8_t *blob, size_t len);
/* Validates the pieces and builds the piece trie. */
int spm_model_finish(spm_model *m);
void spm_model_free(spm_model *m);

/* Piece id of an exact string, or -1. */
int32_t spm_piece_id(const spm_model *m, const char *s, size_t len);

/* sentencepiece's Normalizer::Normalize (charsmap, whitespace rules and escaping
 * as configured). The input must be valid UTF-8 (not checked here). */
int spm_normalize(const spm_model *m, const char *s, size_t n, spm_buf *out);
/* Charsmap only: no whitespace handling, no escaping, no dummy prefix. */
int spm_normalize_chars(const spm_model *m, const char *s, size_t n, spm_buf *out);

/* Viterbi segmentation of normalized text; *out is heap-allocated. */
int spm_viterbi(const spm_model *m, const char *s, size_t n, spm_piece_ref **out, size_t *n_out);

/* SentencePieceProcessor::Decode over piece strings (ids looked up from the
 * strings as sentencepiece does); appends to out. */
int spm_decode_pieces(const spm_model *m, const char *const *pieces, const size_t *lens, size_t n,
                      spm_buf *out);

#endif
