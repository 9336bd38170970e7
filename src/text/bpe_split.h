/* Text-level helpers of the byte-level BPE tokenizer: strict UTF-8 checking,
 * Python-compatible lossy UTF-8 decoding, and GPT-2's pre-tokenization regex
 * written out as a scanner over Unicode classes. */
#ifndef VBLIP_TEXT_BPE_SPLIT_H
#define VBLIP_TEXT_BPE_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 if it is
 * ill-formed (overlong, surrogate, beyond U+10FFFF, truncated); *cp gets the
 * code point. */
size_t vb_bpe_utf8_next(const uint8_t *s, size_t n, int32_t *cp);

/* True if s[0..n) is well-formed UTF-8; otherwise *bad is the offset of the
 * first byte of the first ill-formed sequence. */
bool vb_bpe_utf8_valid(const uint8_t *s, size_t n, size_t *bad);

/* Appends s[0..n) to the NUL-terminated buffer *out (length *len, capacity
 * *cap) decoded like Python's bytes.decode("utf-8", errors="replace"): each
 * maximal ill-formed subpart becomes one U+FFFD. Returns 0 or -1. */
int vb_bpe_utf8_append_lossy(const uint8_t *s, size_t n, char **out, size_t *len, size_t *cap);

/* Python str.isspace() (used by transformers' strip() around added tokens). */
bool vb_bpe_py_isspace(int32_t cp);

/* Byte length of the next piece of GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * starting at text[pos] (pos < len; text is well-formed UTF-8). Never 0. */
size_t vb_bpe_next_piece(const char *text, size_t len, size_t pos);

#endif
