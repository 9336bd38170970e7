/* The T5 tokenizer: transformers 4.33's slow T5Tokenizer (legacy mode) over a
 * SentencePiece unigram model (spiece.model), or, when only tokenizer.json is
 * present, the `tokenizers` Unigram pipeline it describes.  Decoding follows
 * the slow tokenizer in both cases. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "runtime/common.h"
#include "runtime/json.h"
#include "text/cleanup.h"
#include "text/pystr.h"
#include "text/spm_model.h"
#include "text/tokenizer.h"

/* A token matched in the raw text before SentencePiece runs (special and
 * added tokens).  lstrip/rstrip: whitespace on that side is removed. */
typedef struct {
  char *s;
  size_t n;
  int32_t id;
  bool lstrip, rstrip;
} split_tok;

typedef struct {
  spm_model m;
  bool json; /* loaded from tokenizer.json */
  int32_t n_pieces, n_extra, vocab;
  char **hi;         /* token strings of ids [n_pieces, vocab) */
  uint8_t *hi_added; /* those ids that are in added_tokens_encoder */
  uint8_t *special;  /* per id in [0, vocab) */
  split_tok *split;
  size_t n_split;
  int32_t eos_id; /* slow: appended by add_special; -1 if none */
  /* tokenizer.json pipeline */
  bool ws_split, metaspace, meta_split;
  int meta_prepend; /* 0 never, 1 always, 2 first */
  char meta_repl[8];
  size_t meta_repl_len;
  bool collapse_spaces; /* Replace(" {2,}", " ") */
  char **repl_from, **repl_to;
  size_t n_repl;
  int32_t *tmpl_pre, *tmpl_post;
  size_t n_tmpl_pre, n_tmpl_post;
} spm_tok;

/* ---- small helpers ---- */

/* Rust's char::is_whitespace (White_Space property), used by WhitespaceSplit. */
static bool rs_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

static int32_t decode_at(const char *s, size_t n, size_t *len) {
  utf8proc_int32_t c = -1;
  utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
  *len = l > 0 ? (size_t)l : 1;
  return l > 0 ? c : -1;
}

/* Start of the last character of s[0..n). */
static size_t last_char_start(const char *s, size_t n) {
  size_t i = n - 1;
  while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
    i--;
  return i;
}

static void lstrip_py(const char **s, size_t *n) {
  while (*n) {
    size_t l;
    if (!vb_py_isspace(decode_at(*s, *n, &l))) break;
    *s += l;
    *n -= l;
  }
}

static void rstrip_py(const char *s, size_t *n) {
  while (*n) {
    size_t st = last_char_start(s, *n), l;
    if (!vb_py_isspace(decode_at(s + st, *n - st, &l))) break;
    *n = st;
  }
}

static int check_utf8(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    utf8proc_int32_t c;
    utf8proc_ssize_t l =
        utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    if (l <= 0) return vb_input_error("the text is not valid UTF-8 (byte %zu)", i);
    i += (size_t)l;
  }
  return 0;
}

typedef struct {
  int32_t *v;
  size_t n, cap;
  size_t limit; /* the caller's token limit, 0 = none: checked as the ids grow */
} id_vec;

static int ids_push(id_vec *a, int32_t id) {
  if (a->limit && a->n >= a->limit)
    return vb_input_error("the text is longer than %zu tokens", a->limit);
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 32;
    int32_t *p = vb_realloc(a->v, cap * sizeof *p);
    if (!p) return -1;
    a->v = p;
    a->cap = cap;
  }
  a->v[a->n++] = id;
  return 0;
}

/* ---- token <-> id ---- */

static const char *tok_token(const void *impl, int32_t id) {
  const spm_tok *t = impl;
  if (id < 0 || id >= t->vocab) return NULL;
  if (id < t->n_pieces) return t->m.piece[id];
  return t->hi[id - t->n_pieces];
}

static int32_t added_id(const spm_tok *t, const char *s, size_t n) {
  for (int32_t i = 0; i < t->vocab - t->n_pieces; i++) {
    if (!t->hi_added[i]) continue;
    if (strlen(t->hi[i]) == n && memcmp(t->hi[i], s, n) == 0) return t->n_pieces + i;
  }
  return -1;
}

/* convert_tokens_to_ids for one token: added tokens, then (slow) T5's
 * <extra_id_N> rule, then the piece vocabulary with <unk> as fallback. */
static int32_t token_to_id(const spm_tok *t, const char *s, size_t n) {
  int32_t id = added_id(t, s, n);
  if (id >= 0) return id;
  static const char kExtra[] = "<extra_id_";
  const size_t kl = sizeof kExtra - 1;
  if (!t->json && n > kl && memcmp(s, kExtra, kl) == 0) {
    /* re.match(r"<extra_id_(\d+)>"): digits then '>' (trailing text allowed) */
    size_t i = kl;
    long long num = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && num < 1000000000)
      num = num * 10 + (s[i++] - '0');
    if (i > kl && i < n && s[i] == '>') {
      long long v = (long long)t->n_pieces + t->n_extra - 1 - num;
      return v >= 0 ? (int32_t)v : t->m.unk_id;
    }
  }
  id = spm_piece_id(&t->m, s, n);
  return id >= 0 ? id : t->m.unk_id;
}

/* ---- encoding ---- */

/* sentencepiece EncodeAsPieces + T5's piece->id conversion for one chunk. */
static int encode_chunk_slow(const spm_tok *t, const char *s, size_t n, id_vec *ids) {
  spm_buf norm = {0};
  spm_piece_ref *refs = NULL;
  size_t nr = 0;
  int rc = spm_normalize(&t->m, s, n, &norm);
  if (rc == 0) rc = spm_viterbi(&t->m, norm.p, norm.n, &refs, &nr);
  for (size_t i = 0; i < nr && rc == 0;) {
    const char *p = norm.p + refs[i].begin;
    size_t len = refs[i].len;
    if (refs[i].id == t->m.unk_id && t->m.byte_fallback) {
      /* unknown text becomes its UTF-8 bytes as <0xXX> pieces */
      for (size_t k = 0; k < len && rc == 0; k++) {
        char b[8];
        snprintf(b, sizeof b, "<0x%02X>", (unsigned char)p[k]);
        rc = ids_push(ids, token_to_id(t, b, strlen(b)));
      }
      i++;
      continue;
    }
    size_t j = i + 1;
    if (refs[i].id == t->m.unk_id) {
      /* a run of unknown pieces is merged into one (sentencepiece) */
      while (j < nr && refs[j].id == t->m.unk_id)
        len += refs[j++].len;
    }
    /* T5 maps the piece strings through convert_tokens_to_ids (a merged unknown
     * string may name a piece or an added token; an <extra_id_N> piece changes id) */
    rc = ids_push(ids, token_to_id(t, p, len));
    i = j;
  }
  free(refs);
  spm_buf_free(&norm);
  return rc;
}

/* tokenizers' Unigram on one pre-tokenized word (unknowns fused). */
static int encode_word_json(const spm_tok *t, const char *w, size_t n, id_vec *ids) {
  spm_piece_ref *refs = NULL;
  size_t nr = 0;
  if (spm_viterbi(&t->m, w, n, &refs, &nr) < 0) return -1;
  int rc = 0;
  for (size_t i = 0; i < nr && rc == 0; i++) {
    if (refs[i].id != t->m.unk_id) {
      rc = ids_push(ids, refs[i].id);
      continue;
    }
    size_t len = refs[i].len, j = i + 1;
    while (j < nr && refs[j].id == t->m.unk_id)
      len += refs[j++].len;
    bool done = false;
    if (t->m.byte_fallback) {
      /* all byte pieces must exist, else it stays <unk> */
      id_vec tmp = {0};
      bool ok = true;
      for (size_t k = 0; k < len && ok && rc == 0; k++) {
        char b[8];
        snprintf(b, sizeof b, "<0x%02X>", (unsigned char)w[refs[i].begin + k]);
        int32_t id = spm_piece_id(&t->m, b, strlen(b));
        if (id < 0)
          ok = false;
        else
          rc = ids_push(&tmp, id);
      }
      if (ok && rc == 0) {
        for (size_t k = 0; k < tmp.n && rc == 0; k++)
          rc = ids_push(ids, tmp.v[k]);
        done = true;
      }
      free(tmp.v);
    }
    if (!done && rc == 0) rc = ids_push(ids, t->m.unk_id);
    i = j - 1;
  }
  free(refs);
  return rc;
}

static int metaspace_word(const spm_tok *t, const char *w, size_t n, bool first, id_vec *ids) {
  spm_buf b = {0};
  int rc = 0;
  bool starts = n >= t->meta_repl_len && memcmp(w, t->meta_repl, t->meta_repl_len) == 0;
  if ((t->meta_prepend == 1 || (t->meta_prepend == 2 && first)) && !starts &&
      !(n > 0 && w[0] == ' '))
    rc = spm_buf_put(&b, t->meta_repl, t->meta_repl_len);
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = w[i] == ' ' ? spm_buf_put(&b, t->meta_repl, t->meta_repl_len) : spm_buf_put(&b, w + i, 1);
  if (rc == 0 && b.n) {
    if (!t->meta_split) {
      rc = encode_word_json(t, b.p, b.n, ids);
    } else {
      /* split before each replacement char (MergedWithNext) */
      size_t st = 0;
      for (size_t i = 1; i <= b.n && rc == 0; i++) {
        bool cut = i == b.n || (b.n - i >= t->meta_repl_len &&
                                memcmp(b.p + i, t->meta_repl, t->meta_repl_len) == 0);
        if (cut) {
          rc = encode_word_json(t, b.p + st, i - st, ids);
          st = i;
        }
      }
    }
  }
  spm_buf_free(&b);
  return rc;
}

static int encode_chunk_json(const spm_tok *t, const char *s, size_t n, bool first_chunk,
                             id_vec *ids) {
  spm_buf norm = {0}, tmp = {0};
  int rc = spm_normalize_chars(&t->m, s, n, &norm);
  /* Replace normalizers, in order */
  for (size_t r = 0; r < t->n_repl && rc == 0; r++) {
    tmp.n = 0;
    rc = spm_buf_put(&tmp, "", 0);
    size_t fl = strlen(t->repl_from[r]);
    for (size_t i = 0; i < norm.n && rc == 0;) {
      if (fl && norm.n - i >= fl && memcmp(norm.p + i, t->repl_from[r], fl) == 0) {
        rc = spm_buf_put(&tmp, t->repl_to[r], strlen(t->repl_to[r]));
        i += fl;
      } else {
        rc = spm_buf_put(&tmp, norm.p + i, 1);
        i++;
      }
    }
    spm_buf sw = norm;
    norm = tmp;
    tmp = sw;
  }
  if (t->collapse_spaces && rc == 0) {
    size_t w = 0;
    for (size_t i = 0; i < norm.n; i++)
      if (!(norm.p[i] == ' ' && w > 0 && norm.p[w - 1] == ' ')) norm.p[w++] = norm.p[i];
    norm.n = w;
  }
  bool first = first_chunk;
  if (rc == 0 && t->ws_split) {
    size_t i = 0;
    while (i < norm.n && rc == 0) {
      size_t l;
      while (i < norm.n && rs_space(decode_at(norm.p + i, norm.n - i, &l)))
        i += l;
      size_t st = i;
      while (i < norm.n && !rs_space(decode_at(norm.p + i, norm.n - i, &l)))
        i += l;
      if (i > st) {
        rc = t->metaspace ? metaspace_word(t, norm.p + st, i - st, first, ids)
                          : encode_word_json(t, norm.p + st, i - st, ids);
        first = false;
      }
    }
  } else if (rc == 0 && norm.n) {
    rc = t->metaspace ? metaspace_word(t, norm.p, norm.n, first, ids)
                      : encode_word_json(t, norm.p, norm.n, ids);
  }
  spm_buf_free(&norm);
  spm_buf_free(&tmp);
  return rc;
}

typedef struct {
  const char *s;
  size_t n;
  int32_t split; /* index into t->split, -1 for text */
} segment;

/* Splits text on the no-split tokens, leftmost-longest. */
static int split_text(const spm_tok *t, const char *s, size_t n, segment **out, size_t *n_out) {
  size_t cap = 8, cnt = 0;
  segment *seg = vb_malloc(cap * sizeof *seg);
  if (!seg) return -1;
  size_t text_start = 0;
  for (size_t i = 0; i <= n;) {
    int32_t best = -1;
    size_t best_len = 0;
    if (i < n) {
      for (size_t k = 0; k < t->n_split; k++) {
        const split_tok *st = &t->split[k];
        if (st->n > best_len && st->n <= n - i && memcmp(s + i, st->s, st->n) == 0) {
          best = (int32_t)k;
          best_len = st->n;
        }
      }
    }
    if (best < 0 && i < n) {
      i++;
      continue;
    }
    /* text before the match (or the tail), then the match */
    for (int part = 0; part < 2; part++) {
      if (part == 0 && i == text_start) continue;
      if (part == 1 && best < 0) continue;
      if (cnt + 1 > cap) {
        cap *= 2;
        segment *p = vb_realloc(seg, cap * sizeof *p);
        if (!p) {
          free(seg);
          return -1;
        }
        seg = p;
      }
      seg[cnt++] = part == 0 ? (segment){s + text_start, i - text_start, -1}
                             : (segment){s + i, best_len, best};
    }
    if (best < 0) break;
    i += best_len;
    text_start = i;
  }
  *out = seg;
  *n_out = cnt;
  return 0;
}

static int tok_encode(const void *impl, const char *text, size_t len, bool add_special,
                      size_t max_ids, int32_t **ids_out, size_t *n_out) {
  const spm_tok *t = impl;
  *ids_out = NULL;
  *n_out = 0;
  if (!text && len) return vb_error("tokenizer: NULL text");
  if (check_utf8(text, len) < 0) return -1;
  segment *seg = NULL;
  size_t ns = 0;
  if (split_text(t, text ? text : "", len, &seg, &ns) < 0) return -1;
  /* whitespace next to a no-split token is stripped per its flags */
  for (size_t i = 0; i < ns; i++) {
    if (seg[i].split < 0) continue;
    const split_tok *st = &t->split[seg[i].split];
    if (st->rstrip && i + 1 < ns && seg[i + 1].split < 0) lstrip_py(&seg[i + 1].s, &seg[i + 1].n);
    if (st->lstrip && i > 0 && seg[i - 1].split < 0) rstrip_py(seg[i - 1].s, &seg[i - 1].n);
  }
  id_vec ids = {.limit = max_ids};
  int rc = 0;
  if (add_special && t->json) {
    for (size_t k = 0; k < t->n_tmpl_pre && rc == 0; k++)
      rc = ids_push(&ids, t->tmpl_pre[k]);
  }
  bool first = true;
  for (size_t i = 0; i < ns && rc == 0; i++) {
    if (seg[i].n == 0) continue;
    if (seg[i].split >= 0) {
      rc = ids_push(&ids, t->split[seg[i].split].id);
    } else {
      rc = t->json ? encode_chunk_json(t, seg[i].s, seg[i].n, first, &ids)
                   : encode_chunk_slow(t, seg[i].s, seg[i].n, &ids);
    }
    first = false;
  }
  if (add_special && rc == 0) {
    if (t->json) {
      for (size_t k = 0; k < t->n_tmpl_post && rc == 0; k++)
        rc = ids_push(&ids, t->tmpl_post[k]);
    } else if (t->eos_id >= 0 && (ids.n == 0 || ids.v[ids.n - 1] != t->eos_id)) {
      /* T5's _add_eos_if_not_present */
      rc = ids_push(&ids, t->eos_id);
    }
  }
  free(seg);
  if (rc < 0) {
    free(ids.v);
    return -1;
  }
  if (!ids.v) {
    ids.v = vb_malloc(sizeof *ids.v);
    if (!ids.v) return -1;
  }
  *ids_out = ids.v;
  *n_out = ids.n;
  return 0;
}

/* ---- decoding ---- */

typedef struct {
  const char *s;
  size_t n;
  int32_t id; /* -1: a string with no id (out-of-range extra id) */
} dtok;

static bool dtok_special(const spm_tok *t, const dtok *d) {
  return d->id >= 0 && d->id < t->vocab && t->special[d->id];
}

static int sp_decode(const spm_tok *t, const dtok *toks, size_t n, spm_buf *out) {
  if (n == 0) return 0;
  const char **p = vb_malloc(n * sizeof *p);
  size_t *l = vb_malloc(n * sizeof *l);
  int rc = -1;
  if (p && l) {
    for (size_t i = 0; i < n; i++)
      p[i] = toks[i].s, l[i] = toks[i].n;
    rc = spm_decode_pieces(&t->m, p, l, n, out);
  }
  free(p);
  free(l);
  return rc;
}

/* T5Tokenizer.convert_tokens_to_string: sentencepiece decode between special
 * tokens, a space before each special token that follows text, then strip(). */
static int tokens_to_string(const spm_tok *t, const dtok *toks, size_t n, spm_buf *out) {
  spm_buf s = {0};
  int rc = spm_buf_put(&s, "", 0);
  size_t sub = 0;
  bool prev_special = false;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (!dtok_special(t, &toks[i])) {
      prev_special = false;
      continue;
    }
    if (!prev_special) rc = spm_buf_put(&s, " ", 1);
    if (rc == 0) rc = sp_decode(t, toks + sub, i - sub, &s);
    if (rc == 0) rc = spm_buf_put(&s, toks[i].s, toks[i].n);
    prev_special = true;
    sub = i + 1;
  }
  if (rc == 0) rc = sp_decode(t, toks + sub, n - sub, &s);
  if (rc == 0) {
    const char *b = s.p;
    size_t len = s.n;
    lstrip_py(&b, &len);
    rstrip_py(b, &len);
    rc = spm_buf_put(out, b, len);
  }
  spm_buf_free(&s);
  return rc;
}

static int tok_decode(const void *impl, const int32_t *ids, size_t n, bool skip_special,
                      bool cleanup, char **text) {
  const spm_tok *t = impl;
  *text = NULL;
  dtok *toks = n ? vb_malloc(n * sizeof *toks) : NULL;
  char *extra = n ? vb_malloc(n * 24) : NULL; /* storage for out-of-range token strings */
  if (n && (!toks || !extra)) {
    free(toks);
    free(extra);
    return -1;
  }
  size_t nt = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0) {
      rc = vb_error("tokenizer: cannot decode negative id %d", (int)id);
      break;
    }
    if (skip_special && id < t->vocab && t->special[id]) continue;
    if (id < t->vocab) {
      const char *s = tok_token(t, id);
      toks[nt++] = (dtok){s, strlen(s), id};
    } else if (!t->json) {
      /* T5Tokenizer._convert_id_to_token: ids past the vocabulary read as
       * <extra_id_(vocab_size-1-id)> */
      char *buf = extra + 24 * i;
      long long k = (long long)t->n_pieces + t->n_extra - 1 - id;
      snprintf(buf, 24, "<extra_id_%lld>", k);
      toks[nt++] = (dtok){buf, strlen(buf), -1};
    } /* tokenizers: unknown ids are dropped */
  }
  spm_buf out = {0};
  if (rc == 0) rc = spm_buf_put(&out, "", 0);
  /* PreTrainedTokenizer._decode: added tokens stand alone, sub-texts joined by " " */
  size_t sub = 0;
  bool first = true;
  for (size_t i = 0; i <= nt && rc == 0; i++) {
    bool added = i < nt && toks[i].id >= t->n_pieces && toks[i].id < t->vocab &&
                 t->hi_added[toks[i].id - t->n_pieces];
    if (i < nt && !added) continue;
    if (i > sub) {
      if (!first) rc = spm_buf_put(&out, " ", 1);
      if (rc == 0) rc = tokens_to_string(t, toks + sub, i - sub, &out);
      first = false;
    }
    if (i < nt && rc == 0) {
      if (!first) rc = spm_buf_put(&out, " ", 1);
      if (rc == 0) rc = spm_buf_put(&out, toks[i].s, toks[i].n);
      first = false;
    }
    sub = i + 1;
  }
  free(toks);
  free(extra);
  if (rc < 0) {
    spm_buf_free(&out);
    return -1;
  }
  if (cleanup) vb_clean_up_tokenization(out.p);
  *text = out.p;
  return 0;
}

static int32_t tok_vocab_size(const void *impl) {
  return ((const spm_tok *)impl)->vocab;
}

static bool tok_is_special(const void *impl, int32_t id) {
  const spm_tok *t = impl;
  return id >= 0 && id < t->vocab && t->special[id];
}

static void tok_destroy(void *impl) {
  spm_tok *t = impl;
  if (!t) return;
  spm_model_free(&t->m);
  if (t->hi)
    for (int32_t i = 0; i < t->vocab - t->n_pieces; i++)
      free(t->hi[i]);
  free(t->hi);
  free(t->hi_added);
  free(t->special);
  for (size_t i = 0; i < t->n_split; i++)
    free(t->split[i].s);
  free(t->split);
  for (size_t i = 0; i < t->n_repl; i++) {
    free(t->repl_from[i]);
    free(t->repl_to[i]);
  }
  free(t->repl_from);
  free(t->repl_to);
  free(t->tmpl_pre);
  free(t->tmpl_post);
  free(t);
}

static const vb_tokenizer_ops kSpmOps = {tok_encode,     tok_decode,     tok_token,
                                         tok_vocab_size, tok_is_special, tok_destroy};

/* ---- vocabulary extension (added tokens) ---- */

static int add_hi_token(spm_tok *t, const char *s, bool added) {
  int32_t k = t->vocab - t->n_pieces;
  char **hi = vb_realloc(t->hi, (size_t)(k + 1) * sizeof *hi);
  if (!hi) return -1;
  t->hi = hi;
  uint8_t *ha = vb_realloc(t->hi_added, (size_t)(k + 1));
  if (!ha) return -1;
  t->hi_added = ha;
  t->hi[k] = vb_strdup(s);
  if (!t->hi[k]) return -1;
  t->hi_added[k] = added;
  t->vocab++;
  return 0;
}

static int add_split(spm_tok *t, const char *s, int32_t id, bool lstrip, bool rstrip) {
  size_t n = strlen(s);
  if (n == 0) return 0;
  for (size_t i = 0; i < t->n_split; i++)
    if (t->split[i].n == n && memcmp(t->split[i].s, s, n) == 0) return 0;
  split_tok *p = vb_realloc(t->split, (t->n_split + 1) * sizeof *p);
  if (!p) return -1;
  t->split = p;
  char *c = vb_strdup(s);
  if (!c) return -1;
  t->split[t->n_split++] = (split_tok){c, n, id, lstrip, rstrip};
  return 0;
}

static int finish_special_flags(spm_tok *t) {
  t->special = vb_calloc((size_t)t->vocab, 1);
  return t->special ? 0 : -1;
}

/* ---- slow T5Tokenizer configuration ---- */

static cJSON *read_json_opt(const char *dir, const char *name, bool *missing) {
  char *path = vb_path_join(dir, name);
  if (!path) return NULL;
  *missing = !vb_file_exists(path);
  cJSON *j = NULL;
  if (!*missing) {
    char *txt = NULL;
    size_t len = 0;
    if (vb_read_file(path, (size_t)1 << 30, &txt, &len) == 0) {
      j = vb_json_parse(txt, len, name);
      free(txt);
    }
  }
  free(path);
  return j;
}

/* A special token value: "str" or {"content": "str", "lstrip": .., "rstrip": ..}. */
typedef struct {
  const char *s;
  bool extended, lstrip, rstrip;
} special_val;

static int parse_special(const cJSON *v, const char *key, special_val *out) {
  memset(out, 0, sizeof *out);
  if (!v || cJSON_IsNull(v)) return 0;
  if (cJSON_IsString(v)) {
    out->s = v->valuestring;
    return 0;
  }
  if (cJSON_IsObject(v)) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(c)) return vb_error("tokenizer config: %s has no string \"content\"", key);
    out->s = c->valuestring;
    out->extended = true;
    out->lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "lstrip"));
    out->rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "rstrip"));
    return 0;
  }
  return vb_error("tokenizer config: %s must be a string or an AddedToken object", key);
}

/* special_tokens_map.json wins over tokenizer_config.json (transformers 4.33). */
static const cJSON *config_item(const cJSON *map, const cJSON *cfg, const char *key,
                                bool *present) {
  const cJSON *v = map ? cJSON_GetObjectItemCaseSensitive(map, key) : NULL;
  if (!v && cfg) v = cJSON_GetObjectItemCaseSensitive(cfg, key);
  *present = v != NULL;
  return v;
}

typedef struct {
  special_val v[64];
  size_t n;
} special_list;

static int push_special(special_list *l, special_val v) {
  if (!v.s) return 0;
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].s, v.s) == 0) return 0;
  if (l->n >= sizeof l->v / sizeof l->v[0])
    return vb_error("tokenizer config: too many special tokens");
  l->v[l->n++] = v;
  return 0;
}

static int cmp_added(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return (x->valuedouble > y->valuedouble) - (x->valuedouble < y->valuedouble);
}

static int load_slow(spm_tok *t, const char *dir, const char *model_path) {
  char *data = NULL;
  size_t size = 0;
  if (vb_read_file(model_path, (size_t)1 << 30, &data, &size) < 0) return -1;
  int rc = spm_model_load_proto(&t->m, (const uint8_t *)data, size);
  free(data);
  if (rc < 0) return vb_error_context("spiece.model");
  t->n_pieces = t->m.n_pieces;

  bool miss_cfg, miss_map, miss_added;
  cJSON *cfg = read_json_opt(dir, "tokenizer_config.json", &miss_cfg);
  if (!cfg && !miss_cfg) return -1;
  cJSON *map = read_json_opt(dir, "special_tokens_map.json", &miss_map);
  cJSON *added = NULL;
  rc = -1;
  if (!map && !miss_map) goto done;
  added = read_json_opt(dir, "added_tokens.json", &miss_added);
  if (!added && !miss_added) goto done;

  bool present;
  const cJSON *legacy = config_item(NULL, cfg, "legacy", &present);
  if (cJSON_IsFalse(legacy)) {
    rc = vb_error("%s: T5Tokenizer with legacy=false is not supported", dir);
    goto done;
  }
  const cJSON *ex = config_item(NULL, cfg, "extra_ids", &present);
  double extra =
      present ? (cJSON_IsNumber(ex) ? ex->valuedouble : -1) : 100; /* T5Tokenizer's default */
  if (extra < 0 || extra > 1000000 || extra != (double)(int32_t)extra) {
    rc = vb_error("%s: extra_ids must be a non-negative integer", dir);
    goto done;
  }
  t->n_extra = (int32_t)extra;

  /* special tokens in transformers' SPECIAL_TOKENS_ATTRIBUTES order */
  static const char *const kAttrs[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};
  static const char *const kDefaults[] = {NULL, "</s>", "<unk>", NULL, "<pad>", NULL, NULL};
  special_list specials = {0};
  special_val eos = {0}, unk = {0};
  for (size_t a = 0; a < sizeof kAttrs / sizeof kAttrs[0]; a++) {
    const cJSON *v = config_item(map, cfg, kAttrs[a], &present);
    special_val sv;
    if (present) {
      if (parse_special(v, kAttrs[a], &sv) < 0) goto done;
    } else {
      sv = (special_val){kDefaults[a], false, false, false};
    }
    if (a == 1) eos = sv;
    if (a == 2) unk = sv;
    if (push_special(&specials, sv) < 0) goto done;
  }
  const cJSON *extra_list = config_item(map, cfg, "additional_special_tokens", &present);
  if (extra_list && !cJSON_IsNull(extra_list)) {
    if (!cJSON_IsArray(extra_list)) {
      rc = vb_error("%s: additional_special_tokens must be a list", dir);
      goto done;
    }
    int n_extra_named = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, extra_list) {
      special_val sv;
      if (parse_special(it, "additional_special_tokens", &sv) < 0) goto done;
      if (sv.s && strstr(sv.s, "extra_id")) n_extra_named++;
      if (push_special(&specials, sv) < 0) goto done;
    }
    if (t->n_extra > 0 && n_extra_named != t->n_extra) {
      rc = vb_error("%s: %d extra_ids but %d <extra_id_*> additional special tokens", dir,
                    (int)t->n_extra, n_extra_named);
      goto done;
    }
  }

  /* base vocabulary: pieces, then the extra ids counted down from the end */
  t->vocab = t->n_pieces;
  for (int32_t i = 0; i < t->n_extra; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "<extra_id_%d>", (int)(t->n_extra - 1 - i));
    if (add_hi_token(t, buf, false) < 0) goto done;
  }
  if (!(extra_list && !cJSON_IsNull(extra_list))) {
    for (int32_t i = 0; i < t->n_extra; i++) {
      special_val sv = {t->hi[t->n_extra - 1 - i], false, false, false};
      if (push_special(&specials, sv) < 0) goto done;
    }
  }

  /* added_tokens.json: consecutive ids from the current vocabulary size */
  if (added) {
    if (!cJSON_IsObject(added)) {
      rc = vb_error("%s/added_tokens.json must be an object", dir);
      goto done;
    }
    int na = cJSON_GetArraySize(added);
    const cJSON **arr = na ? vb_malloc((size_t)na * sizeof *arr) : NULL;
    if (na && !arr) goto done;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, added) {
      if (!cJSON_IsNumber(it) || !it->string) {
        free(arr);
        rc = vb_error("%s/added_tokens.json: values must be ids", dir);
        goto done;
      }
      arr[k++] = it;
    }
    if (na) qsort(arr, (size_t)na, sizeof *arr, cmp_added);
    for (int i = 0; i < na; i++) {
      if (arr[i]->valuedouble != (double)t->vocab) {
        rc = vb_error(
            "%s/added_tokens.json: non-consecutive added token '%s' should have id %d, has %g", dir,
            arr[i]->string, (int)t->vocab, arr[i]->valuedouble);
        free(arr);
        goto done;
      }
      const char *s = arr[i]->string;
      if (s[0] == 0) continue;
      bool known = (unk.s && strcmp(s, unk.s) == 0) || token_to_id(t, s, strlen(s)) != t->m.unk_id;
      if (!known && add_hi_token(t, s, true) < 0) {
        free(arr);
        goto done;
      }
    }
    free(arr);
  }
  /* sanitize_special_tokens: specials missing from the vocabulary are appended */
  for (size_t i = 0; i < specials.n; i++) {
    const char *s = specials.v[i].s;
    if (s[0] == 0 || (unk.s && strcmp(s, unk.s) == 0)) continue;
    if (token_to_id(t, s, strlen(s)) == t->m.unk_id && add_hi_token(t, s, true) < 0) goto done;
  }
  if (finish_special_flags(t) < 0) goto done;
  for (size_t i = 0; i < specials.n; i++) {
    const special_val *sv = &specials.v[i];
    int32_t id = token_to_id(t, sv->s, strlen(sv->s));
    t->special[id] = 1;
    /* plain-string specials strip whitespace on both sides; AddedTokens per flags */
    bool ls = sv->extended ? sv->lstrip : true, rs = sv->extended ? sv->rstrip : true;
    if (add_split(t, sv->s, id, ls, rs) < 0) goto done;
  }
  for (int32_t i = 0; i < t->vocab - t->n_pieces; i++)
    if (t->hi_added[i] && add_split(t, t->hi[i], t->n_pieces + i, true, true) < 0) goto done;
  t->eos_id = eos.s ? token_to_id(t, eos.s, strlen(eos.s)) : -1;
  rc = 0;
done:
  cJSON_Delete(cfg);
  cJSON_Delete(map);
  cJSON_Delete(added);
  return rc;
}

/* ---- tokenizer.json ---- */

static int b64_decode(const char *s, uint8_t **out, size_t *n_out) {
  size_t n = strlen(s);
  uint8_t *o = vb_malloc(n / 4 * 3 + 3);
  if (!o) return -1;
  size_t k = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=')
      break;
    else {
      free(o);
      return vb_error("tokenizer.json: precompiled_charsmap is not valid base64");
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[k++] = (uint8_t)(acc >> bits);
    }
  }
  *out = o;
  *n_out = k;
  return 0;
}

static int json_normalizer(spm_tok *t, const cJSON *nz) {
  if (!nz || cJSON_IsNull(nz)) return 0;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(nz, "type");
  if (!cJSON_IsString(type)) return vb_error("tokenizer.json: normalizer without a type");
  if (strcmp(type->valuestring, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(nz, "normalizers"), *it;
    if (!cJSON_IsArray(list)) return vb_error("tokenizer.json: Sequence normalizer without a list");
    cJSON_ArrayForEach(it, list) {
      if (json_normalizer(t, it) < 0) return -1;
    }
    return 0;
  }
  if (strcmp(type->valuestring, "Precompiled") == 0) {
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(nz, "precompiled_charsmap");
    if (cJSON_IsNull(cm)) return 0;
    if (!cJSON_IsString(cm))
      return vb_error("tokenizer.json: precompiled_charsmap must be a string");
    uint8_t *blob = NULL;
    size_t len = 0;
    if (b64_decode(cm->valuestring, &blob, &len) < 0) return -1;
    int rc = spm_model_set_charsmap(&t->m, blob, len);
    free(blob);
    return rc;
  }
  if (strcmp(type->valuestring, "Replace") == 0) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(nz, "pattern");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(nz, "content");
    const cJSON *str = pat ? cJSON_GetObjectItemCaseSensitive(pat, "String") : NULL;
    const cJSON *re = pat ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
    if (!cJSON_IsString(content))
      return vb_error("tokenizer.json: Replace normalizer without content");
    if (cJSON_IsString(re) && strcmp(re->valuestring, " {2,}") == 0 &&
        strcmp(content->valuestring, " ") == 0) {
      t->collapse_spaces = true;
      return 0;
    }
    if (!cJSON_IsString(str))
      return vb_error("tokenizer.json: only literal-string Replace normalizers are supported");
    char **f = vb_realloc(t->repl_from, (t->n_repl + 1) * sizeof *f);
    if (!f) return -1;
    t->repl_from = f;
    char **to = vb_realloc(t->repl_to, (t->n_repl + 1) * sizeof *to);
    if (!to) return -1;
    t->repl_to = to;
    t->repl_from[t->n_repl] = vb_strdup(str->valuestring);
    t->repl_to[t->n_repl] = vb_strdup(content->valuestring);
    t->n_repl++;
    return (t->repl_from[t->n_repl - 1] && t->repl_to[t->n_repl - 1]) ? 0 : -1;
  }
  return vb_error("tokenizer.json: normalizer type %s is not supported for Unigram",
                  type->valuestring);
}

static int json_pretokenizer(spm_tok *t, const cJSON *pt) {
  if (!pt || cJSON_IsNull(pt)) return 0;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(pt, "type");
  if (!cJSON_IsString(type)) return vb_error("tokenizer.json: pre_tokenizer without a type");
  if (strcmp(type->valuestring, "Sequence") == 0) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"), *it;
    if (!cJSON_IsArray(list))
      return vb_error("tokenizer.json: Sequence pre_tokenizer without a list");
    cJSON_ArrayForEach(it, list) {
      if (json_pretokenizer(t, it) < 0) return -1;
    }
    return 0;
  }
  if (strcmp(type->valuestring, "WhitespaceSplit") == 0) {
    if (t->metaspace)
      return vb_error("tokenizer.json: WhitespaceSplit after Metaspace is not supported");
    t->ws_split = true;
    return 0;
  }
  if (strcmp(type->valuestring, "Metaspace") == 0) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pt, "replacement");
    const char *repl = cJSON_IsString(r) ? r->valuestring : "\xE2\x96\x81";
    if (strlen(repl) == 0 || strlen(repl) >= sizeof t->meta_repl)
      return vb_error("tokenizer.json: Metaspace replacement must be one character");
    strcpy(t->meta_repl, repl);
    t->meta_repl_len = strlen(repl);
    t->metaspace = true;
    t->meta_prepend = 1;
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(pt, "add_prefix_space");
    if (cJSON_IsBool(aps)) t->meta_prepend = cJSON_IsTrue(aps) ? 1 : 0;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pt, "prepend_scheme");
    if (cJSON_IsString(ps)) {
      if (strcmp(ps->valuestring, "always") == 0)
        t->meta_prepend = 1;
      else if (strcmp(ps->valuestring, "first") == 0)
        t->meta_prepend = 2;
      else if (strcmp(ps->valuestring, "never") == 0)
        t->meta_prepend = 0;
      else
        return vb_error("tokenizer.json: unknown Metaspace prepend_scheme %s", ps->valuestring);
    }
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(pt, "split");
    t->meta_split = !cJSON_IsFalse(sp);
    return 0;
  }
  return vb_error("tokenizer.json: pre_tokenizer type %s is not supported for Unigram",
                  type->valuestring);
}

static int json_post(spm_tok *t, const cJSON *pp) {
  if (!pp || cJSON_IsNull(pp)) return 0;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(pp, "type");
  if (!cJSON_IsString(type) || strcmp(type->valuestring, "TemplateProcessing") != 0)
    return vb_error(
        "tokenizer.json: only a TemplateProcessing post_processor is supported for Unigram");
  const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
  const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
  if (!cJSON_IsArray(single))
    return vb_error("tokenizer.json: TemplateProcessing without a single template");
  bool after = false;
  const cJSON *item;
  cJSON_ArrayForEach(item, single) {
    if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
      if (after) return vb_error("tokenizer.json: template with two sequences");
      after = true;
      continue;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    const cJSON *id = st ? cJSON_GetObjectItemCaseSensitive(st, "id") : NULL;
    if (!cJSON_IsString(id)) return vb_error("tokenizer.json: bad template item");
    const cJSON *def =
        specials ? cJSON_GetObjectItemCaseSensitive(specials, id->valuestring) : NULL;
    const cJSON *ids = def ? cJSON_GetObjectItemCaseSensitive(def, "ids") : NULL;
    if (!cJSON_IsArray(ids))
      return vb_error("tokenizer.json: template special token %s is not defined", id->valuestring);
    const cJSON *v;
    cJSON_ArrayForEach(v, ids) {
      if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= t->vocab)
        return vb_error("tokenizer.json: template special token %s has a bad id", id->valuestring);
      int32_t **arr = after ? &t->tmpl_post : &t->tmpl_pre;
      size_t *cnt = after ? &t->n_tmpl_post : &t->n_tmpl_pre;
      int32_t *p = vb_realloc(*arr, (*cnt + 1) * sizeof *p);
      if (!p) return -1;
      *arr = p;
      p[(*cnt)++] = (int32_t)v->valuedouble;
    }
  }
  return 0;
}

static int load_json(spm_tok *t, const cJSON *root, const char *path) {
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  if (!cJSON_IsArray(vocab)) return vb_error("%s: Unigram model without a vocab list", path);
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
  int n = cJSON_GetArraySize(vocab);
  if (!cJSON_IsNumber(unk) || unk->valuedouble < 0 || unk->valuedouble >= n)
    return vb_error("%s: Unigram model needs an unk_id within the vocabulary", path);
  int32_t unk_id = (int32_t)unk->valuedouble;
  t->m.tokenizers_semantics = true;
  t->m.byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
  /* decoding rules of the equivalent sentencepiece model */
  t->m.add_dummy_prefix = t->m.remove_extra_whitespaces = t->m.escape_whitespaces = true;
  const cJSON *e;
  int32_t i = 0;
  cJSON_ArrayForEach(e, vocab) {
    const cJSON *p = cJSON_GetArrayItem(e, 0), *s = cJSON_GetArrayItem(e, 1);
    if (!cJSON_IsArray(e) || !cJSON_IsString(p) || !cJSON_IsNumber(s))
      return vb_error("tokenizer.json: vocab entry %d is not [piece, score]", (int)i);
    uint8_t type = i == unk_id ? SPM_UNKNOWN : SPM_NORMAL;
    if (t->m.byte_fallback && strlen(p->valuestring) == 6 && strncmp(p->valuestring, "<0x", 3) == 0)
      type = SPM_BYTE;
    if (spm_model_add_piece(&t->m, p->valuestring, strlen(p->valuestring), s->valuedouble, type) <
        0)
      return vb_error_context("tokenizer.json");
    i++;
  }
  if (spm_model_finish(&t->m) < 0) return vb_error_context("tokenizer.json");
  t->n_pieces = t->vocab = t->m.n_pieces;

  if (json_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer")) < 0 ||
      json_pretokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) < 0)
    return -1; /* the messages name tokenizer.json */
  if (!t->ws_split) t->m.remove_extra_whitespaces = false;
  if (t->metaspace) t->m.add_dummy_prefix = t->meta_prepend != 0;

  /* added tokens: matched first; ids past the vocabulary extend it */
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  if (added && !cJSON_IsArray(added)) return vb_error("%s: added_tokens must be a list", path);
  int32_t max_id = t->vocab - 1;
  cJSON_ArrayForEach(e, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(c) || id->valuedouble < 0 ||
        id->valuedouble > 16000000)
      return vb_error("%s: bad added_tokens entry", path);
    if ((int32_t)id->valuedouble > max_id) max_id = (int32_t)id->valuedouble;
  }
  if (max_id >= t->vocab) {
    size_t extra = (size_t)(max_id + 1 - t->vocab);
    t->hi = vb_calloc(extra, sizeof *t->hi);
    t->hi_added = vb_calloc(extra, 1);
    if (!t->hi || !t->hi_added) return -1;
    t->vocab = max_id + 1;
    for (size_t k = 0; k < extra; k++) {
      t->hi[k] = vb_strdup(""); /* holes in the id range decode to nothing */
      if (!t->hi[k]) return -1;
    }
  }
  if (finish_special_flags(t) < 0) return -1;
  cJSON_ArrayForEach(e, added) {
    int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
    const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
    if (id >= t->n_pieces) {
      char *s = vb_strdup(c);
      if (!s) return -1;
      free(t->hi[id - t->n_pieces]);
      t->hi[id - t->n_pieces] = s;
      t->hi_added[id - t->n_pieces] = 1;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special"))) t->special[id] = 1;
    bool ls = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip"));
    bool rs = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip"));
    if (add_split(t, c, id, ls, rs) < 0) return -1;
  }
  if (json_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor")) < 0)
    return -1; /* the messages name tokenizer.json */
  t->eos_id = -1;
  return 0;
}

int vb_spm_load(const char *model_dir, vb_tokenizer *out) {
  return vb_spm_load_pref(model_dir, false, out);
}

int vb_spm_load_pref(const char *model_dir, bool prefer_json, vb_tokenizer *out) {
  char *model_path = vb_path_join(model_dir, "spiece.model");
  char *json_path = vb_path_join(model_dir, "tokenizer.json");
  if (!model_path || !json_path) {
    free(model_path);
    free(json_path);
    return -1;
  }
  int rc = 1;
  cJSON *root = NULL;
  spm_tok *t = NULL;
  if (vb_file_exists(model_path) && !(prefer_json && vb_file_exists(json_path))) {
    t = vb_calloc(1, sizeof *t);
    rc = t ? load_slow(t, model_dir, model_path) : -1;
  } else if (vb_file_exists(json_path)) {
    char *txt = NULL;
    size_t len = 0;
    if (vb_read_file(json_path, (size_t)1 << 30, &txt, &len) < 0) {
      rc = -1;
      goto done;
    }
    root = vb_json_parse(txt, len, "tokenizer.json");
    free(txt);
    if (!root) {
      rc = -1;
      goto done;
    }
    const cJSON *type =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "Unigram") != 0)
      goto done; /* not ours: rc 1 */
    t = vb_calloc(1, sizeof *t);
    if (!t) {
      rc = -1;
      goto done;
    }
    t->json = true;
    rc = load_json(t, root, json_path);
  }
done:
  if (rc == 0) {
    out->kind = VB_TOK_SPM;
    out->ops = &kSpmOps;
    out->impl = t;
  } else {
    tok_destroy(t);
  }
  cJSON_Delete(root);
  free(model_path);
  free(json_path);
  return rc;
}
