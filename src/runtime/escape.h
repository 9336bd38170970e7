/* Terminal-safe text, and UTF-8 validity. Names and strings that come from files or requests
 * (tensor names, config values, paths, URLs) may hold escape sequences, CR or LF that would rewrite
 * the terminal or forge log lines when printed as they are. Everything vblip prints that came from
 * outside goes through this one helper. */
#ifndef VBLIP_RUNTIME_ESCAPE_H
#define VBLIP_RUNTIME_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Copies s into out (cap >= 1 bytes, always NUL-terminated) with the C0 controls
 * (tab, CR and LF included), DEL, the C1 controls (U+0080-U+009F) and bytes that are
 * not part of valid UTF-8 written as \xNN; other UTF-8 passes unchanged. Stops at a
 * character boundary when out is full. Returns out. */
char *vb_escape_controls(const char *s, char *out, size_t cap);

/* The same as a new heap string (NULL when out of memory). */
char *vb_escape_controls_dup(const char *s);

/* Whether s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF); *bad (may be NULL) gets the offset of the first bad byte. */
bool vb_utf8_valid(const char *s, size_t n, size_t *bad);

#endif
