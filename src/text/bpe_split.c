#include "text/bpe_split.h"

#include <string.h>
#include <utf8proc.h>

#include "runtime/common.h"

/* Decodes the sequence at s[0..n). Returns the number of bytes that form either
 * the whole well-formed sequence (*ok = true) or the maximal ill-formed subpart
 * (*ok = false, at least 1), following Unicode's "maximal subpart" practice,
 * which is what CPython's UTF-8 decoder implements. */
static size_t utf8_step(const uint8_t *s, size_t n, int32_t *cp, bool *ok) {
  uint8_t b0 = s[0];
  *ok = false;
  if (b0 < 0x80) {
    *cp = b0;
    *ok = true;
    return 1;
  }
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  int32_t c;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
    c = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    c = b0 & 0x0F;
    if (b0 == 0xE0)
      lo = 0xA0; /* no overlongs */
    else if (b0 == 0xED)
      hi = 0x9F; /* no surrogates */
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    c = b0 & 0x07;
    if (b0 == 0xF0)
      lo = 0x90; /* no overlongs */
    else if (b0 == 0xF4)
      hi = 0x8F; /* nothing above U+10FFFF */
  } else {
    return 1; /* continuation byte or C0/C1/F5..FF lead */
  }
  size_t k = 1;
  for (; k < need; k++) {
    if (k >= n) return k;
    uint8_t b = s[k];
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return k;
    c = (c << 6) | (b & 0x3F);
  }
  *cp = c;
  *ok = true;
  return need;
}

size_t vb_bpe_utf8_next(const uint8_t *s, size_t n, int32_t *cp) {
  if (n == 0) return 0;
  bool ok;
  size_t k = utf8_step(s, n, cp, &ok);
  return ok ? k : 0;
}

bool vb_bpe_utf8_valid(const uint8_t *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) { /* ASCII fast path */
      i++;
      continue;
    }
    int32_t cp;
    size_t k = vb_bpe_utf8_next(s + i, n - i, &cp);
    if (k == 0) {
      if (bad) *bad = i;
      return false;
    }
    i += k;
  }
  return true;
}

static int reserve(char **out, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : 64;
  while (nc < need) {
    if (!vb_mul_ok(nc, 2, &nc)) return vb_error("decoded text too large");
  }
  char *p = vb_realloc(*out, nc);
  if (!p) return -1;
  *out = p;
  *cap = nc;
  return 0;
}

int vb_bpe_utf8_append_lossy(const uint8_t *s, size_t n, char **out, size_t *len, size_t *cap) {
  /* Worst case each byte becomes a 3-byte U+FFFD; +1 for the terminator. */
  size_t need;
  if (!vb_mul_ok(n, 3, &need) || !vb_add_ok(need, *len + 1, &need))
    return vb_error("decoded text too large");
  if (reserve(out, cap, need) != 0) return -1;
  char *w = *out + *len;
  size_t i = 0;
  while (i < n) {
    int32_t cp;
    bool ok;
    size_t k = utf8_step(s + i, n - i, &cp, &ok);
    if (ok) {
      memcpy(w, s + i, k);
      w += k;
    } else {
      memcpy(w, "\xEF\xBF\xBD", 3);
      w += 3;
    }
    i += k;
  }
  *w = 0;
  *len = (size_t)(w - *out);
  return 0;
}

/* The `regex` module's \s in Unicode mode: the White_Space property. */
static bool is_ws(int32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == 0x20;
  switch (c) {
  case 0x85:
  case 0xA0:
  case 0x1680:
  case 0x2028:
  case 0x2029:
  case 0x202F:
  case 0x205F:
  case 0x3000:
    return true;
  default:
    return c >= 0x2000 && c <= 0x200A;
  }
}

bool vb_bpe_py_isspace(int32_t c) {
  /* str.isspace additionally counts the ASCII separators 0x1C..0x1F. */
  return is_ws(c) || (c >= 0x1C && c <= 0x1F);
}

enum { C_SPACE, C_LETTER, C_NUMBER, C_OTHER };

static int char_class(int32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return C_LETTER;
    if (c >= '0' && c <= '9') return C_NUMBER;
    return is_ws(c) ? C_SPACE : C_OTHER;
  }
  if (is_ws(c)) return C_SPACE;
  switch (utf8proc_category(c)) {
  case UTF8PROC_CATEGORY_LU:
  case UTF8PROC_CATEGORY_LL:
  case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM:
  case UTF8PROC_CATEGORY_LO:
    return C_LETTER;
  case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_NL:
  case UTF8PROC_CATEGORY_NO:
    return C_NUMBER;
  default:
    return C_OTHER;
  }
}

/* Decodes the (well-formed) character at pos; returns its byte length. */
static size_t char_at(const char *text, size_t len, size_t pos, int32_t *cp) {
  const uint8_t *s = (const uint8_t *)text + pos;
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  size_t k = vb_bpe_utf8_next(s, len - pos, cp);
  if (k == 0) { /* callers validate first; treat a stray byte as "other" */
    *cp = 0xFFFD;
    return 1;
  }
  return k;
}

/* End of the run of characters of class cls starting at pos. */
static size_t run_end(const char *text, size_t len, size_t pos, int cls) {
  while (pos < len) {
    int32_t c;
    size_t k = char_at(text, len, pos, &c);
    if (char_class(c) != cls) break;
    pos += k;
  }
  return pos;
}

size_t vb_bpe_next_piece(const char *text, size_t len, size_t pos) {
  int32_t c0;
  size_t k0 = char_at(text, len, pos, &c0);
  /* 's|'t|'re|'ve|'m|'ll|'d (case-sensitive, tried first) */
  if (c0 == '\'' && pos + 1 < len) {
    char a = text[pos + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < len) {
      char b = text[pos + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
  }
  int cls0 = char_class(c0);
  /* ` ?X+` for X in letters, numbers, others: a space joins the run after it. */
  if (c0 == ' ' && pos + 1 < len) {
    int32_t c1;
    size_t k1 = char_at(text, len, pos + 1, &c1);
    int cls1 = char_class(c1);
    if (cls1 != C_SPACE) return run_end(text, len, pos + 1 + k1, cls1) - pos;
  }
  if (cls0 != C_SPACE) return run_end(text, len, pos + k0, cls0) - pos;
  /* \s+(?!\S) | \s+ : a whitespace run followed by a non-space gives its last
   * character back, unless the run is that single character. */
  size_t last = pos, p = pos;
  while (p < len) {
    int32_t c;
    size_t k = char_at(text, len, p, &c);
    if (!is_ws(c)) break;
    last = p;
    p += k;
  }
  if (p == len || last == pos) return p - pos;
  return last - pos;
}
