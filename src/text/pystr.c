#include "text/pystr.h"

#include <utf8proc.h>

bool vb_py_isspace(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

/* The code point at s[0..n) and its byte length (an invalid byte: -1, length 1). */
static int32_t next_char(const char *s, size_t n, size_t *len) {
  utf8proc_int32_t c = -1;
  utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
  *len = l > 0 ? (size_t)l : 1;
  return l > 0 ? c : -1;
}

void vb_py_strip(const char *s, size_t n, size_t *start, size_t *len) {
  size_t b = 0, e = 0, l;
  /* e: the end of the last non-space character seen */
  bool seen = false;
  for (size_t i = 0; i < n; i += l) {
    if (!vb_py_isspace(next_char(s + i, n - i, &l))) {
      if (!seen) b = i;
      seen = true;
      e = i + l;
    }
  }
  *start = seen ? b : n;
  *len = seen ? e - b : 0;
}
