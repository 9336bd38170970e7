/* SentencePiece unigram core.  The model file is a serialized protobuf
 * (sentencepiece_model.proto) parsed here by hand; every read is bounds-checked
 * because the file may be hostile. */
#include "text/spm_model.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

/* U+2581 LOWER ONE EIGHTH BLOCK, sentencepiece's escaped space. */
static const char kSpace[] = "\xE2\x96\x81";
/* sentencepiece caps the charsmap prefix matches it looks at (kMaxTrieResultsSize). */
enum { kMaxTrieResults = 32 };

/* ---- buffer ---- */

int spm_buf_put(spm_buf *b, const void *s, size_t n) {
  size_t need;
  if (!vb_add_ok(b->n, n + 1, &need)) return vb_error("spm: text too large");
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
      if (!vb_mul_ok(cap, 2, &cap)) return vb_error("spm: text too large");
    }
    char *p = vb_realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return 0;
}

void spm_buf_free(spm_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* ---- UTF-8 ---- */

/* sentencepiece's OneCharLen: the length a lead byte announces (1 for stray bytes). */
static size_t one_char_len(unsigned char c) {
  static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return len[c >> 4];
}

/* Length of the valid UTF-8 character at s (no surrogates, no overlongs), or 0. */
static size_t utf8_valid_len(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

/* ---- protobuf wire format ---- */

typedef struct {
  const uint8_t *p, *end;
} pb_reader;

static int pb_varint(pb_reader *r, uint64_t *v) {
  uint64_t x = 0;
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (r->p >= r->end) return vb_error("spiece.model: truncated varint");
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return vb_error("spiece.model: varint longer than 10 bytes");
}

/* One field: its number, wire type and payload (varint value, fixed bytes or
 * length-delimited bytes). */
typedef struct {
  uint32_t num;
  int wire;
  uint64_t v;
  const uint8_t *data;
  size_t len;
} pb_field;

static int pb_next(pb_reader *r, pb_field *f) {
  uint64_t key;
  if (pb_varint(r, &key) < 0) return -1;
  if ((key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) return vb_error("spiece.model: bad field number");
  f->num = (uint32_t)(key >> 3);
  f->wire = (int)(key & 7);
  f->data = NULL;
  f->len = 0;
  f->v = 0;
  size_t left = (size_t)(r->end - r->p);
  switch (f->wire) {
  case 0:
    return pb_varint(r, &f->v);
  case 1:
  case 5: {
    size_t n = f->wire == 1 ? 8 : 4;
    if (left < n) return vb_error("spiece.model: truncated fixed-size field");
    f->data = r->p;
    f->len = n;
    for (size_t i = 0; i < n; i++)
      f->v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return 0;
  }
  case 2: {
    uint64_t n;
    if (pb_varint(r, &n) < 0) return -1;
    left = (size_t)(r->end - r->p);
    if (n > left)
      return vb_error("spiece.model: field %u runs past the end of its message", f->num);
    f->data = r->p;
    f->len = (size_t)n;
    r->p += n;
    return 0;
  }
  default:
    return vb_error("spiece.model: unsupported wire type %d (field %u)", f->wire, f->num);
  }
}

static int pb_expect(const pb_field *f, int wire, const char *what) {
  if (f->wire != wire)
    return vb_error("spiece.model: field %s has wire type %d, expected %d", what, f->wire, wire);
  return 0;
}

static float pb_float(const pb_field *f) {
  uint32_t u = (uint32_t)f->v;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* ---- model building ---- */

int spm_model_add_piece(spm_model *m, const char *s, size_t len, double score, uint8_t type) {
  if (len == 0) return vb_error("spm: piece %d is empty", (int)m->n_pieces);
  if (len > 0xFFFFFF) return vb_error("spm: piece %d is too long", (int)m->n_pieces);
  if (type < SPM_NORMAL || type > SPM_BYTE)
    return vb_error("spm: piece %d has unknown type %d", (int)m->n_pieces, type);
  if (m->n_pieces >= INT32_MAX / 2) return vb_error("spm: too many pieces");
  int32_t n = m->n_pieces;
  /* grow all arrays to the next power of two */
  if ((n & (n - 1)) == 0) {
    size_t cap = n ? (size_t)n * 2 : 16;
    char **piece = vb_realloc(m->piece, cap * sizeof *piece);
    if (!piece) return -1;
    m->piece = piece;
    uint32_t *pl = vb_realloc(m->piece_len, cap * sizeof *pl);
    if (!pl) return -1;
    m->piece_len = pl;
    double *sc = vb_realloc(m->score, cap * sizeof *sc);
    if (!sc) return -1;
    m->score = sc;
    uint8_t *ty = vb_realloc(m->type, cap * sizeof *ty);
    if (!ty) return -1;
    m->type = ty;
  }
  char *copy = vb_malloc(len + 1);
  if (!copy) return -1;
  memcpy(copy, s, len);
  copy[len] = 0;
  m->piece[n] = copy;
  m->piece_len[n] = (uint32_t)len;
  m->score[n] = score;
  m->type[n] = type;
  m->n_pieces = n + 1;
  return 0;
}

int spm_model_set_charsmap(spm_model *m, const uint8_t *blob, size_t len) {
  free(m->charsmap);
  m->charsmap = NULL;
  m->trie_units = NULL;
  m->n_units = 0;
  m->norm_strings = NULL;
  m->norm_len = 0;
  if (len == 0) return 0; /* identity normalization */
  /* layout: uint32 LE trie size, trie units, then NUL-separated strings */
  if (len <= 4) return vb_error("spm: precompiled charsmap is truncated (%zu bytes)", len);
  uint32_t trie_size = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 |
                       (uint32_t)blob[3] << 24;
  if (trie_size > len - 4 || trie_size < 4)
    return vb_error("spm: precompiled charsmap trie size %u does not fit its %zu-byte blob",
                    trie_size, len);
  m->charsmap = vb_malloc(len);
  if (!m->charsmap) return -1;
  memcpy(m->charsmap, blob, len);
  m->charsmap_len = len;
  m->trie_units = m->charsmap + 4;
  m->n_units = trie_size / 4;
  m->norm_strings = (const char *)m->charsmap + 4 + trie_size;
  m->norm_len = len - 4 - trie_size;
  return 0;
}

static uint64_t edge_hash(uint64_t key) {
  return key * 0x9E3779B97F4A7C15ull;
}

static int32_t trie_child(const spm_model *m, int32_t node, unsigned char c) {
  uint64_t key = (((uint64_t)node << 8) | c) + 1;
  size_t mask = m->edge_cap - 1;
  for (size_t i = edge_hash(key) & mask;; i = (i + 1) & mask) {
    if (m->edge_key[i] == key) return m->edge_child[i];
    if (m->edge_key[i] == 0) return -1;
  }
}

static int trie_insert(spm_model *m, const char *s, size_t len, int32_t id) {
  int32_t node = 0;
  for (size_t k = 0; k < len; k++) {
    unsigned char c = (unsigned char)s[k];
    int32_t child = trie_child(m, node, c);
    if (child < 0) {
      if (m->n_nodes >= m->nodes_cap) return vb_error("spm: piece trie overflow");
      child = (int32_t)m->n_nodes++;
      m->node_piece[child] = -1;
      uint64_t key = (((uint64_t)node << 8) | c) + 1;
      size_t mask = m->edge_cap - 1;
      size_t i = edge_hash(key) & mask;
      while (m->edge_key[i])
        i = (i + 1) & mask;
      m->edge_key[i] = key;
      m->edge_child[i] = child;
      m->n_edges++;
    }
    node = child;
  }
  if (m->node_piece[node] >= 0)
    return vb_error("spm: piece \"%s\" is defined twice (ids %d and %d)", m->piece[id],
                    (int)m->node_piece[node], (int)id);
  m->node_piece[node] = id;
  return 0;
}

int spm_model_finish(spm_model *m) {
  if (m->n_pieces <= 0) return vb_error("spm: the model has no pieces");
  size_t total = 0;
  int n_unk = 0;
  for (int32_t i = 0; i < m->n_pieces; i++) {
    if (!vb_add_ok(total, m->piece_len[i], &total)) return vb_error("spm: pieces too large");
    if (m->type[i] == SPM_UNKNOWN) {
      n_unk++;
      m->unk_id = i;
    }
    if (m->type[i] == SPM_BYTE && !m->byte_fallback)
      return vb_error("spm: byte piece \"%s\" found although byte_fallback is off", m->piece[i]);
  }
  if (n_unk != 1)
    return vb_error("spm: the model must define exactly one unknown piece (found %d)", n_unk);

  if (m->tokenizers_semantics) {
    /* tokenizers: min over the whole vocabulary */
    m->min_score = m->score[0];
    m->max_score = m->score[0];
    for (int32_t i = 1; i < m->n_pieces; i++) {
      if (m->score[i] < m->min_score) m->min_score = m->score[i];
      if (m->score[i] > m->max_score) m->max_score = m->score[i];
    }
  } else {
    /* sentencepiece: over NORMAL pieces, starting from FLT_MAX / FLT_MIN (sic) */
    float mn = FLT_MAX, mx = FLT_MIN;
    for (int32_t i = 0; i < m->n_pieces; i++) {
      if (m->type[i] != SPM_NORMAL) continue;
      float s = (float)m->score[i];
      if (s < mn) mn = s;
      if (s > mx) mx = s;
    }
    m->min_score = mn;
    m->max_score = mx;
  }

  /* at most one node per piece byte, plus the root */
  m->nodes_cap = total + 1;
  size_t cap = 16;
  while (cap < 2 * (total + 1))
    cap *= 2;
  m->edge_cap = cap;
  m->node_piece = vb_malloc(m->nodes_cap * sizeof *m->node_piece);
  m->edge_key = vb_calloc(cap, sizeof *m->edge_key);
  m->edge_child = vb_malloc(cap * sizeof *m->edge_child);
  if (!m->node_piece || !m->edge_key || !m->edge_child) return -1;
  m->n_nodes = 1;
  m->node_piece[0] = -1;
  int32_t n_ud = 0;
  for (int32_t i = 0; i < m->n_pieces; i++) {
    if (trie_insert(m, m->piece[i], m->piece_len[i], i) < 0) return -1;
    if (m->type[i] == SPM_USER_DEFINED) n_ud++;
  }
  if (n_ud) {
    m->user_defined = vb_malloc((size_t)n_ud * sizeof *m->user_defined);
    if (!m->user_defined) return -1;
    for (int32_t i = 0; i < m->n_pieces; i++)
      if (m->type[i] == SPM_USER_DEFINED) m->user_defined[m->n_user_defined++] = i;
  }
  if (!m->unk_surface) {
    m->unk_surface = vb_strdup(" \xE2\x81\x87 ");
    if (!m->unk_surface) return -1;
  }
  return 0;
}

void spm_model_free(spm_model *m) {
  if (!m) return;
  for (int32_t i = 0; i < m->n_pieces; i++)
    free(m->piece[i]);
  free(m->piece);
  free(m->piece_len);
  free(m->score);
  free(m->type);
  free(m->node_piece);
  free(m->edge_key);
  free(m->edge_child);
  free(m->user_defined);
  free(m->charsmap);
  free(m->unk_surface);
  memset(m, 0, sizeof *m);
}

int32_t spm_piece_id(const spm_model *m, const char *s, size_t len) {
  if (!m->node_piece) return -1;
  int32_t node = 0;
  for (size_t k = 0; k < len; k++) {
    node = trie_child(m, node, (unsigned char)s[k]);
    if (node < 0) return -1;
  }
  return m->node_piece[node];
}

/* ---- ModelProto ---- */

static int parse_piece(spm_model *m, const uint8_t *p, size_t n) {
  pb_reader r = {p, p + n};
  const uint8_t *str = NULL;
  size_t len = 0;
  float score = 0.0f;
  uint64_t type = SPM_NORMAL;
  pb_field f;
  while (r.p < r.end) {
    if (pb_next(&r, &f) < 0) return -1;
    if (f.num == 1) {
      if (pb_expect(&f, 2, "SentencePiece.piece") < 0) return -1;
      str = f.data;
      len = f.len;
    } else if (f.num == 2) {
      if (pb_expect(&f, 5, "SentencePiece.score") < 0) return -1;
      score = pb_float(&f);
    } else if (f.num == 3) {
      if (pb_expect(&f, 0, "SentencePiece.type") < 0) return -1;
      type = f.v;
    }
  }
  if (type < SPM_NORMAL || type > SPM_BYTE)
    return vb_error("spiece.model: piece %d has unknown type %llu", (int)m->n_pieces,
                    (unsigned long long)type);
  if (!str || len == 0) return vb_error("spiece.model: piece %d is empty", (int)m->n_pieces);
  if (memchr(str, 0, len))
    return vb_error("spiece.model: piece %d contains a NUL byte", (int)m->n_pieces);
  return spm_model_add_piece(m, (const char *)str, len, score, (uint8_t)type);
}

static int parse_trainer_spec(spm_model *m, const uint8_t *p, size_t n) {
  pb_reader r = {p, p + n};
  pb_field f;
  uint64_t model_type = 1;
  while (r.p < r.end) {
    if (pb_next(&r, &f) < 0) return -1;
    switch (f.num) {
    case 3: /* model_type */
      if (pb_expect(&f, 0, "TrainerSpec.model_type") < 0) return -1;
      model_type = f.v;
      break;
    case 24: /* treat_whitespace_as_suffix */
      if (pb_expect(&f, 0, "TrainerSpec.treat_whitespace_as_suffix") < 0) return -1;
      if (f.v) return vb_error("spiece.model: treat_whitespace_as_suffix models are not supported");
      break;
    case 35: /* byte_fallback */
      if (pb_expect(&f, 0, "TrainerSpec.byte_fallback") < 0) return -1;
      m->byte_fallback = f.v != 0;
      break;
    case 44: /* unk_surface */
      if (pb_expect(&f, 2, "TrainerSpec.unk_surface") < 0) return -1;
      free(m->unk_surface);
      m->unk_surface = vb_malloc(f.len + 1);
      if (!m->unk_surface) return -1;
      memcpy(m->unk_surface, f.data, f.len);
      m->unk_surface[f.len] = 0;
      break;
    default:
      break;
    }
  }
  if (model_type != 1)
    return vb_error("spiece.model: model_type %llu is not supported (only UNIGRAM)",
                    (unsigned long long)model_type);
  return 0;
}

static int parse_normalizer_spec(spm_model *m, const uint8_t *p, size_t n) {
  pb_reader r = {p, p + n};
  pb_field f;
  while (r.p < r.end) {
    if (pb_next(&r, &f) < 0) return -1;
    switch (f.num) {
    case 2:
      if (pb_expect(&f, 2, "NormalizerSpec.precompiled_charsmap") < 0) return -1;
      if (spm_model_set_charsmap(m, f.data, f.len) < 0) return -1;
      break;
    case 3:
      if (pb_expect(&f, 0, "NormalizerSpec.add_dummy_prefix") < 0) return -1;
      m->add_dummy_prefix = f.v != 0;
      break;
    case 4:
      if (pb_expect(&f, 0, "NormalizerSpec.remove_extra_whitespaces") < 0) return -1;
      m->remove_extra_whitespaces = f.v != 0;
      break;
    case 5:
      if (pb_expect(&f, 0, "NormalizerSpec.escape_whitespaces") < 0) return -1;
      m->escape_whitespaces = f.v != 0;
      break;
    default:
      break;
    }
  }
  return 0;
}

int spm_model_load_proto(spm_model *m, const uint8_t *data, size_t size) {
  /* proto2 defaults */
  m->add_dummy_prefix = m->remove_extra_whitespaces = m->escape_whitespaces = true;
  m->unk_id = -1;
  pb_reader r = {data, data + size};
  pb_field f;
  bool have_normalizer = false;
  while (r.p < r.end) {
    if (pb_next(&r, &f) < 0) return -1;
    if (f.num == 1) {
      if (pb_expect(&f, 2, "ModelProto.pieces") < 0 || parse_piece(m, f.data, f.len) < 0) return -1;
    } else if (f.num == 2) {
      if (pb_expect(&f, 2, "ModelProto.trainer_spec") < 0 ||
          parse_trainer_spec(m, f.data, f.len) < 0)
        return -1;
    } else if (f.num == 3) {
      if (pb_expect(&f, 2, "ModelProto.normalizer_spec") < 0 ||
          parse_normalizer_spec(m, f.data, f.len) < 0)
        return -1;
      have_normalizer = true;
    }
  }
  (void)have_normalizer; /* absent spec = identity normalization with default flags */
  return spm_model_finish(m);
}

/* ---- normalizer ---- */

/* darts-clone double-array unit accessors */
static uint32_t unit_at(const spm_model *m, size_t i) {
  const uint8_t *u = m->trie_units + 4 * i;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}
static uint32_t unit_offset(uint32_t u) {
  return (u >> 10) << ((u & (1u << 9)) >> 6);
}
static uint32_t unit_label(uint32_t u) {
  return u & ((1u << 31) | 0xFFu);
}
static bool unit_has_leaf(uint32_t u) {
  return (u >> 8) & 1;
}
static uint32_t unit_value(uint32_t u) {
  return u & 0x7FFFFFFFu;
}

/* Longest charsmap rule among the first kMaxTrieResults prefix matches of s
 * (darts-clone commonPrefixSearch); returns its key length, 0 if none. */
static size_t charsmap_match(const spm_model *m, const unsigned char *s, size_t n,
                             uint32_t *value) {
  if (!m->n_units) return 0;
  size_t best = 0, found = 0;
  size_t pos = unit_offset(unit_at(m, 0));
  for (size_t i = 0; i < n && found < kMaxTrieResults; i++) {
    pos ^= s[i];
    if (pos >= m->n_units) break;
    uint32_t u = unit_at(m, pos);
    if (unit_label(u) != s[i]) break;
    pos ^= unit_offset(u);
    if (unit_has_leaf(u)) {
      if (pos >= m->n_units) break;
      found++;
      if (best == 0 || i + 1 > best) {
        best = i + 1;
        *value = unit_value(unit_at(m, pos));
      }
    }
  }
  return best;
}

/* sentencepiece's NormalizePrefix: the replacement for the longest rule (or
 * user-defined symbol) at s, and how many input bytes it consumes. */
static void normalize_prefix(const spm_model *m, const char *s, size_t n, const char **rep,
                             size_t *rep_len, size_t *consumed) {
  /* user-defined symbols are copied verbatim, longest first */
  size_t ud = 0;
  for (int32_t k = 0; k < m->n_user_defined; k++) {
    int32_t id = m->user_defined[k];
    size_t l = m->piece_len[id];
    if (l > ud && l <= n && memcmp(s, m->piece[id], l) == 0) ud = l;
  }
  if (ud) {
    *rep = s;
    *rep_len = *consumed = ud;
    return;
  }
  uint32_t value = 0;
  size_t len = charsmap_match(m, (const unsigned char *)s, n, &value);
  if (len && value < m->norm_len) {
    const char *r = m->norm_strings + value;
    const char *z = memchr(r, 0, m->norm_len - value);
    *rep = r;
    *rep_len = z ? (size_t)(z - r) : m->norm_len - value;
    *consumed = len;
    return;
  }
  size_t cl = utf8_valid_len((const unsigned char *)s, n);
  if (cl == 0) {
    /* malformed byte: U+FFFD, one byte consumed */
    *rep = "\xEF\xBF\xBD";
    *rep_len = 3;
    *consumed = 1;
  } else {
    *rep = s;
    *rep_len = *consumed = cl;
  }
}

int spm_normalize_chars(const spm_model *m, const char *s, size_t n, spm_buf *out) {
  while (n) {
    const char *rep;
    size_t rl, used;
    normalize_prefix(m, s, n, &rep, &rl, &used);
    if (spm_buf_put(out, rep, rl) < 0) return -1;
    s += used;
    n -= used;
  }
  return spm_buf_put(out, "", 0);
}

int spm_normalize(const spm_model *m, const char *s, size_t n, spm_buf *out) {
  const char *rep;
  size_t rl, used;
  if (spm_buf_put(out, "", 0) < 0) return -1;
  const size_t start = out->n;
  if (m->remove_extra_whitespaces) {
    /* leading whitespace (after normalization) is dropped */
    while (n) {
      normalize_prefix(m, s, n, &rep, &rl, &used);
      if (!(rl == 1 && rep[0] == ' ')) break;
      s += used;
      n -= used;
    }
  }
  if (n == 0) return 0;
  const char *ws = m->escape_whitespaces ? kSpace : " ";
  const size_t ws_len = strlen(ws);
  if (m->add_dummy_prefix && spm_buf_put(out, ws, ws_len) < 0) return -1;
  bool prev_space = m->remove_extra_whitespaces;
  while (n) {
    normalize_prefix(m, s, n, &rep, &rl, &used);
    /* a run of spaces collapses into the one already emitted */
    while (prev_space && rl && rep[0] == ' ')
      rep++, rl--;
    if (rl) {
      for (size_t i = 0; i < rl; i++) {
        int rc = (rep[i] == ' ' && m->escape_whitespaces) ? spm_buf_put(out, kSpace, 3)
                                                          : spm_buf_put(out, rep + i, 1);
        if (rc < 0) return -1;
      }
      prev_space = rep[rl - 1] == ' ';
    }
    s += used;
    n -= used;
    if (!m->remove_extra_whitespaces) prev_space = false;
  }
  if (m->remove_extra_whitespaces) {
    while (out->n - start >= ws_len && memcmp(out->p + out->n - ws_len, ws, ws_len) == 0)
      out->n -= ws_len;
    out->p[out->n] = 0;
  }
  return 0;
}

/* ---- Viterbi ---- */

typedef struct {
  double score;
  int64_t start; /* -1: not reached yet */
  int32_t id;
} best_node;

static bool matchable(const spm_model *m, int32_t id) {
  if (m->tokenizers_semantics) return true;
  /* sentencepiece's trie holds NORMAL, USER_DEFINED and UNUSED pieces; UNUSED are skipped */
  return m->type[id] == SPM_NORMAL || m->type[id] == SPM_USER_DEFINED;
}

int spm_viterbi(const spm_model *m, const char *s, size_t n, spm_piece_ref **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (n == 0) return 0;
  size_t cnt;
  if (!vb_add_ok(n, 1, &cnt) || cnt > SIZE_MAX / sizeof(best_node))
    return vb_error("spm: text too long");
  best_node *best = vb_malloc(cnt * sizeof *best);
  if (!best) return -1;
  for (size_t i = 0; i <= n; i++)
    best[i] = (best_node){0.0, -1, -1};
  const bool f32 = !m->tokenizers_semantics;
  const double unk_score = f32 ? (double)((float)m->min_score - 10.0f) : m->min_score - 10.0;
  for (size_t pos = 0; pos < n;) {
    size_t mblen = one_char_len((unsigned char)s[pos]);
    if (mblen > n - pos) mblen = n - pos;
    const double base = best[pos].score;
    bool single = false;
    int32_t node = 0;
    for (size_t k = pos; k < n; k++) {
      node = trie_child(m, node, (unsigned char)s[k]);
      if (node < 0) break;
      int32_t id = m->node_piece[node];
      if (id < 0 || !matchable(m, id)) continue;
      size_t len = k + 1 - pos;
      double sc;
      if (!m->tokenizers_semantics && m->type[id] == SPM_USER_DEFINED)
        sc = (double)len * m->max_score - 0.1; /* bonus so user symbols always win */
      else
        sc = m->score[id];
      double cand = f32 ? (double)((float)sc + (float)base) : sc + base;
      best_node *t = &best[k + 1];
      if (t->start < 0 || cand > t->score) {
        t->score = cand;
        t->start = (int64_t)pos;
        t->id = id;
      }
      if (len == mblen) single = true;
    }
    if (!single) {
      best_node *t = &best[pos + mblen];
      double cand = f32 ? (double)((float)unk_score + (float)base) : unk_score + base;
      if (t->start < 0 || cand > t->score) {
        t->score = cand;
        t->start = (int64_t)pos;
        t->id = m->unk_id;
      }
    }
    pos += mblen;
  }
  /* backtrack */
  size_t count = 0;
  for (size_t end = n; end > 0; count++) {
    if (best[end].start < 0 || (size_t)best[end].start >= end) {
      free(best);
      return vb_error("spm: Viterbi found no path");
    }
    end = (size_t)best[end].start;
  }
  spm_piece_ref *res = vb_malloc(count * sizeof *res);
  if (!res) {
    free(best);
    return -1;
  }
  size_t i = count;
  for (size_t end = n; end > 0;) {
    size_t st = (size_t)best[end].start;
    res[--i] = (spm_piece_ref){st, end - st, best[end].id};
    end = st;
  }
  free(best);
  *out = res;
  *n_out = count;
  return 0;
}

/* ---- decoding ---- */

static int byte_of_piece(const char *p, size_t len) {
  /* byte pieces are spelled <0xXX> with upper-case hex */
  if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; i++) {
    char c = p[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static int flush_bytes(spm_buf *bytes, spm_buf *out) {
  size_t off = 0;
  while (off < bytes->n) {
    size_t l = utf8_valid_len((const unsigned char *)bytes->p + off, bytes->n - off);
    int rc = l ? spm_buf_put(out, bytes->p + off, l) : spm_buf_put(out, "\xEF\xBF\xBD", 3);
    if (rc < 0) return -1;
    off += l ? l : 1;
  }
  bytes->n = 0;
  return 0;
}

int spm_decode_pieces(const spm_model *m, const char *const *pieces, const size_t *lens, size_t n,
                      spm_buf *out) {
  spm_buf bytes = {0};
  if (spm_buf_put(out, "", 0) < 0) return -1;
  const size_t start = out->n;
  bool is_bos_ws = true, bos_ws_seen = false;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const char *p = pieces[i];
    size_t len = lens[i];
    int32_t id = spm_piece_id(m, p, len);
    if (id < 0) id = m->unk_id;
    if (m->type[id] == SPM_BYTE) {
      int b = byte_of_piece(p, len);
      if (b < 0) {
        rc = vb_error("spm: malformed byte piece \"%s\"", m->piece[id]);
        break;
      }
      unsigned char c = (unsigned char)b;
      rc = spm_buf_put(&bytes, &c, 1);
      continue;
    }
    if ((rc = flush_bytes(&bytes, out)) < 0) break;
    if (bos_ws_seen || out->n > start) is_bos_ws = false;
    bos_ws_seen = false;
    if (m->type[id] == SPM_CONTROL) continue; /* invisible */
    if (m->type[id] == SPM_UNKNOWN) {
      /* the <unk> piece itself shows as unk_surface, other unknown strings verbatim */
      if (len == m->piece_len[id] && memcmp(p, m->piece[id], len) == 0)
        rc = spm_buf_put(out, m->unk_surface, strlen(m->unk_surface));
      else
        rc = spm_buf_put(out, p, len);
      continue;
    }
    if (is_bos_ws && (m->add_dummy_prefix || m->remove_extra_whitespaces) && len >= 3 &&
        memcmp(p, kSpace, 3) == 0) {
      p += 3;
      len -= 3;
      /* with remove_extra_whitespaces all leading spaces go, so keep looking */
      bos_ws_seen = !m->remove_extra_whitespaces;
    }
    for (size_t k = 0; k < len && rc == 0;) {
      if (len - k >= 3 && memcmp(p + k, kSpace, 3) == 0) {
        rc = spm_buf_put(out, " ", 1);
        k += 3;
      } else {
        rc = spm_buf_put(out, p + k, 1);
        k++;
      }
    }
  }
  if (rc == 0) rc = flush_bytes(&bytes, out);
  spm_buf_free(&bytes);
  return rc;
}
