/* Python's idea of whitespace (str.isspace / str.strip), which the reference
 * tokenizers and EILEV's text handling follow. */
#ifndef VBLIP_TEXT_PYSTR_H
#define VBLIP_TEXT_PYSTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* str.isspace() for one code point. */
bool vb_py_isspace(int32_t c);
/* str.strip() of the UTF-8 text s[0..n): *start and *len of what is left (invalid UTF-8
 * bytes count as non-space). */
void vb_py_strip(const char *s, size_t n, size_t *start, size_t *len);

#endif
