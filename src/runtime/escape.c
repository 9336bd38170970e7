#include "runtime/escape.h"

#include <stdint.h>
#include <stdlib.h>

/* Length of the valid UTF-8 sequence at s (1-4, within avail >= 1 bytes), or 0 when s
 * starts no valid one. */
static size_t utf8_seq_len(const uint8_t *s, size_t avail) {
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4, cp = c & 0x07;
  else
    return 0;
  if (n > avail) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0; /* surrogates */
  return n;
}

static int is_control(const uint8_t *s, size_t n) {
  if (n == 1) return s[0] < 0x20 || s[0] == 0x7F;
  return n == 2 && s[0] == 0xC2 && s[1] < 0xA0; /* U+0080-U+009F */
}

/* Writes the escaped form of s into out when out is not NULL; returns its length. */
static size_t escape(const char *str, char *out, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  const uint8_t *s = (const uint8_t *)str;
  size_t o = 0;
  while (*s) {
    size_t n = utf8_seq_len(s, 4); /* a NUL ends any sequence early */
    int esc = n == 0 || is_control(s, n);
    size_t each = n ? n : 1, need = esc ? 4 * each : each;
    if (out && o + need >= cap) break;
    for (size_t i = 0; i < each; i++) {
      if (!out) continue;
      if (esc) {
        out[o + 4 * i] = '\\';
        out[o + 4 * i + 1] = 'x';
        out[o + 4 * i + 2] = hex[s[i] >> 4];
        out[o + 4 * i + 3] = hex[s[i] & 15];
      } else {
        out[o + i] = (char)s[i];
      }
    }
    o += need;
    s += each;
  }
  if (out) out[o] = 0;
  return o;
}

char *vb_escape_controls(const char *s, char *out, size_t cap) {
  if (cap == 0) return out;
  escape(s ? s : "", out, cap);
  return out;
}

char *vb_escape_controls_dup(const char *s) {
  size_t n = escape(s ? s : "", NULL, 0);
  char *out = malloc(n + 1);
  if (out) escape(s ? s : "", out, n + 1);
  return out;
}

bool vb_utf8_valid(const char *s, size_t n, size_t *bad) {
  const uint8_t *p = (const uint8_t *)s;
  size_t i = 0;
  while (i < n) {
    size_t k = utf8_seq_len(p + i, n - i);
    if (k == 0) {
      if (bad) *bad = i;
      return false;
    }
    i += k;
  }
  return true;
}
