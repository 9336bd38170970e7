/* EILEV's interleaved layout of text and videos for the language model
 * (eilev/data/utils.py: generate_input_ids_and_labels_from_interleaved), and the
 * rules that turn an ordered list of text and video items into its blocks. */
#ifndef VBLIP_MODELS_INTERLEAVE_H
#define VBLIP_MODELS_INTERLEAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/tokenizer.h"

/* One block: its videos come first, then its text. */
typedef struct {
  char *text;
  int n_videos;
} vb_icl_block;

/* Blocks of an item list (texts[i] is a text item, NULL a video), as EILEV's demo and
 * sample script build them: a video after non-empty text starts a new block; each text item
 * is stripped (Python's str.strip()), empty ones are dropped, and the texts of a block are
 * joined with single spaces. A leading text-only block is kept; an input without items
 * gives no blocks. */
int vb_icl_blocks(const char *const *texts, size_t n_items, vb_icl_block **out, size_t *n_out);
void vb_icl_blocks_free(vb_icl_block *b, size_t n);

typedef struct {
  size_t max_ids;    /* > 0: an input error as soon as the ids would pass it */
  bool decoder_only; /* OPT: one BOS first; T5: EOS after the last block's text */
  int32_t bos_id, eos_id, pad_id, newline_id;
  int n_query; /* placeholder positions per video */
} vb_icl_spec;

/* input_ids and video_input_mask of the blocks: per block, each video as n_query pad ids
 * (mask 1) and one newline id, then the block's text tokenized without special tokens,
 * "\n" appended to every text but the last. New arrays. */
int vb_icl_ids(const vb_tokenizer *tok, const vb_icl_spec *spec, const vb_icl_block *blocks,
               size_t n_blocks, int32_t **ids, uint8_t **mask, size_t *n);

/* The first id of "\n" without special tokens; when the tokenizer normalizes "\n" away
 * (a SentencePiece model), the word-boundary piece "▁", which a fast T5 tokenizer gives. */
int vb_icl_newline_id(const vb_tokenizer *tok, int32_t *id);

/* Splits a prompt at each "<video>": *n_pieces = placeholders + 1 new strings. */
int vb_icl_split_prompt(const char *prompt, char ***pieces, size_t *n_pieces);
void vb_icl_pieces_free(char **pieces, size_t n);

#endif
