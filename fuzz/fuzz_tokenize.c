/* libFuzzer target: prompt text, as a client of the server or the command line sends it,
 * through the fixture models' real tokenizers: OPT's byte-level BPE (vocab.json + merges.txt,
 * and tokenizer.json) and Flan-T5's SentencePiece Unigram (spiece.model). Input: a selector
 * byte (tokenizer, special tokens, limit), then the text (any bytes).
 *
 * Checked: a limited encode stays within its limit; every id is in the vocabulary; decoding
 * any ids gives valid UTF-8; and byte-level BPE gives back valid UTF-8 text exactly (no
 * special-token markup and no NUL in it: those are not text the model sees as such). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/escape.h"
#include "text/tokenizer.h"

#ifndef VBLIP_FIXTURE_MODELS
#error "build with -DVBLIP_FIXTURE_MODELS=\"<repo>/tests/fixtures/models\""
#endif

#define REQUIRE(c)                                                                                 \
  do {                                                                                             \
    if (!(c)) __builtin_trap();                                                                    \
  } while (0)

static vb_tokenizer *toks[3]; /* OPT slow files, OPT tokenizer.json, T5 spiece.model */

static void load_once(void) {
  if (toks[0]) return;
  REQUIRE(vb_tokenizer_load_pref(VBLIP_FIXTURE_MODELS "/videoblip-opt-tiny", false, &toks[0]) == 0);
  REQUIRE(vb_tokenizer_load_pref(VBLIP_FIXTURE_MODELS "/videoblip-opt-tiny", true, &toks[1]) == 0);
  REQUIRE(vb_tokenizer_load_pref(VBLIP_FIXTURE_MODELS "/videoblip-flant5-tiny", false, &toks[2]) ==
          0);
}

static void require_utf8(const char *s) {
  size_t bad;
  REQUIRE(vb_utf8_valid(s, strlen(s), &bad));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  load_once();
  if (size < 1) return 0;
  int which = data[0] % 3;
  bool add_special = (data[0] >> 2) & 1, limited = (data[0] >> 3) & 1;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  const vb_tokenizer *t = toks[which];
  int32_t vocab = vb_tokenizer_vocab_size(t);
  REQUIRE(vocab > 0);

  int32_t *ids = NULL;
  size_t n = 0;
  size_t max = limited ? 16 : (size_t)1 << 20;
  int rc = vb_tokenizer_encode_max(t, text, len, add_special, max, &ids, &n);
  REQUIRE(rc == 0 || rc == -1);
  if (rc == 0) {
    REQUIRE(n <= max);
    for (size_t i = 0; i < n; i++)
      REQUIRE(ids[i] >= 0 && ids[i] < vocab);
    for (int flags = 0; flags < 4; flags++) { /* skip_special, cleanup */
      char *out = NULL;
      REQUIRE(vb_tokenizer_decode(t, ids, n, flags & 1, flags >> 1, &out) == 0);
      require_utf8(out);
      /* byte-level BPE loses nothing of UTF-8 text (without the cleanup of spaces) */
      size_t bad;
      if (flags == 0 && which < 2 && !add_special && !limited && vb_utf8_valid(text, len, &bad) &&
          !memchr(text, '<', len) && !memchr(text, 0, len))
        REQUIRE(strlen(out) == len && memcmp(out, text, len) == 0);
      free(out);
    }
  }
  free(ids);

  /* the input's bytes as ids, wrapped into the vocabulary (out-of-range ids: refused) */
  size_t m = len / 2;
  int32_t *raw = malloc((m ? m : 1) * sizeof *raw);
  if (!raw) return 0;
  for (size_t i = 0; i < m; i++) {
    uint16_t v = (uint16_t)((uint8_t)text[2 * i] | (uint8_t)text[2 * i + 1] << 8);
    raw[i] = v == 0xffff ? -1 : v % (vocab + 1); /* vocab itself and -1: out of range */
  }
  char *out = NULL;
  rc = vb_tokenizer_decode(t, raw, m, (data[0] >> 4) & 1, (data[0] >> 5) & 1, &out);
  REQUIRE(rc == 0 || rc == -1);
  if (rc == 0) require_utf8(out);
  free(out);
  free(raw);
  return 0;
}
