#include "models/interleave.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "text/pystr.h"

static const char kPlaceholder[] = "<video>";
static const char kWordBoundary[] = "\xE2\x96\x81"; /* "▁" */

void vb_icl_blocks_free(vb_icl_block *b, size_t n) {
  for (size_t i = 0; b && i < n; i++)
    free(b[i].text);
  free(b);
}

/* Appends s[0..n) to *text, after a space when *text is not empty. */
static int append_text(char **text, const char *s, size_t n) {
  size_t old = *text ? strlen(*text) : 0;
  char *t = vb_realloc(*text, old + n + 2);
  if (!t) return -1;
  if (old) t[old++] = ' ';
  memcpy(t + old, s, n);
  t[old + n] = 0;
  *text = t;
  return 0;
}

int vb_icl_blocks(const char *const *texts, size_t n_items, vb_icl_block **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (n_items == 0) return 0;
  /* at most one block per item, plus the leading one */
  vb_icl_block *b = vb_calloc(n_items + 1, sizeof *b);
  if (!b) return -1;
  size_t nb = 1; /* the current block is b[nb - 1]; it starts as ("", 0) */
  for (size_t i = 0; i < n_items; i++) {
    vb_icl_block *cur = &b[nb - 1];
    if (!texts[i]) {
      /* videos after text start a new block */
      if (cur->text && cur->text[0]) cur = &b[nb++];
      cur->n_videos++;
      continue;
    }
    size_t st, len;
    vb_py_strip(texts[i], strlen(texts[i]), &st, &len);
    if (len && append_text(&cur->text, texts[i] + st, len) != 0) {
      vb_icl_blocks_free(b, nb);
      return -1;
    }
  }
  /* the leading block stays only when it has something */
  if (!b[0].n_videos && !(b[0].text && b[0].text[0])) {
    free(b[0].text);
    memmove(b, b + 1, (nb - 1) * sizeof *b);
    nb--;
  }
  for (size_t i = 0; i < nb; i++)
    if (!b[i].text && !(b[i].text = vb_strdup(""))) {
      vb_icl_blocks_free(b, nb);
      return -1;
    }
  *out = b;
  *n_out = nb;
  return 0;
}

typedef struct {
  int32_t *ids;
  uint8_t *mask;
  size_t n, cap;
  size_t limit; /* vb_icl_spec.max_ids */
} id_buf;

static int push(id_buf *b, int32_t id, uint8_t mask) {
  if (b->limit && b->n >= b->limit)
    return vb_input_error("the input is longer than %zu positions", b->limit);
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    int32_t *ids = vb_realloc(b->ids, cap * sizeof *ids);
    if (!ids) return -1;
    b->ids = ids;
    uint8_t *m = vb_realloc(b->mask, cap);
    if (!m) return -1;
    b->mask = m;
    b->cap = cap;
  }
  b->ids[b->n] = id;
  b->mask[b->n++] = mask;
  return 0;
}

/* The block's text (plus "\n" unless last) tokenized without special tokens. */
static int push_text(const vb_tokenizer *tok, const char *text, bool last, id_buf *b) {
  size_t n = strlen(text);
  char *t = vb_malloc(n + 2);
  if (!t) return -1;
  memcpy(t, text, n);
  if (!last) t[n++] = '\n';
  t[n] = 0;
  int32_t *ids = NULL;
  size_t k = 0;
  /* tokenized only up to the room left, so that a huge text stops early */
  size_t room = b->limit ? (b->limit > b->n ? b->limit - b->n : 1) : 0;
  int rc = vb_tokenizer_encode_max(tok, t, n, false, room, &ids, &k);
  if (rc != 0 && b->limit && vb_error_is_input() && vb_utf8_valid(t, n, NULL)) /* the limit */
    vb_input_error("the input is longer than %zu positions", b->limit);
  for (size_t i = 0; rc == 0 && i < k; i++)
    rc = push(b, ids[i], 0);
  free(ids);
  free(t);
  return rc;
}

int vb_icl_ids(const vb_tokenizer *tok, const vb_icl_spec *spec, const vb_icl_block *blocks,
               size_t n_blocks, int32_t **ids, uint8_t **mask, size_t *n) {
  *ids = NULL;
  *mask = NULL;
  *n = 0;
  if (n_blocks == 0) return vb_error("the input is empty (no text and no video)");
  if (spec->n_query < 1) return vb_error("the model has no query tokens");
  id_buf b = {.limit = spec->max_ids};
  int rc = spec->decoder_only ? push(&b, spec->bos_id, 0) : 0;
  for (size_t i = 0; rc == 0 && i < n_blocks; i++) {
    for (int v = 0; rc == 0 && v < blocks[i].n_videos; v++) {
      for (int q = 0; rc == 0 && q < spec->n_query; q++)
        rc = push(&b, spec->pad_id, 1);
      if (rc == 0) rc = push(&b, spec->newline_id, 0);
    }
    bool last = i + 1 == n_blocks;
    if (rc == 0) rc = push_text(tok, blocks[i].text, last, &b);
    if (rc == 0 && last && !spec->decoder_only) rc = push(&b, spec->eos_id, 0);
  }
  if (rc != 0) {
    free(b.ids);
    free(b.mask);
    return -1;
  }
  *ids = b.ids;
  *mask = b.mask;
  *n = b.n;
  return 0;
}

int vb_icl_newline_id(const vb_tokenizer *tok, int32_t *id) {
  int32_t *ids = NULL;
  size_t n = 0;
  if (vb_tokenizer_encode(tok, "\n", 1, false, &ids, &n) != 0) return -1;
  if (n > 0) {
    *id = ids[0];
    free(ids);
    return 0;
  }
  free(ids);
  int32_t vocab = tok->ops->vocab_size(tok->impl);
  for (int32_t i = 0; i < vocab; i++) {
    const char *s = tok->ops->token(tok->impl, i);
    if (s && strcmp(s, kWordBoundary) == 0) {
      *id = i;
      return 0;
    }
  }
  return vb_error("the tokenizer has no token for a newline (nor the word boundary \"%s\")",
                  kWordBoundary);
}

void vb_icl_pieces_free(char **pieces, size_t n) {
  for (size_t i = 0; pieces && i < n; i++)
    free(pieces[i]);
  free(pieces);
}

int vb_icl_split_prompt(const char *prompt, char ***pieces, size_t *n_pieces) {
  *pieces = NULL;
  *n_pieces = 0;
  const size_t pl = sizeof kPlaceholder - 1;
  size_t count = 1;
  for (const char *p = prompt; (p = strstr(p, kPlaceholder)); p += pl)
    count++;
  char **out = vb_calloc(count, sizeof *out);
  if (!out) return -1;
  const char *p = prompt;
  for (size_t i = 0; i < count; i++) {
    const char *e = i + 1 < count ? strstr(p, kPlaceholder) : p + strlen(p);
    size_t len = (size_t)(e - p);
    if (!(out[i] = vb_malloc(len + 1))) {
      vb_icl_pieces_free(out, i);
      return -1;
    }
    memcpy(out[i], p, len);
    out[i][len] = 0;
    if (i + 1 < count) p = e + pl;
  }
  *pieces = out;
  *n_pieces = count;
  return 0;
}
