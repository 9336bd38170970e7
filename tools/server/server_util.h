/* Small helpers for the HTTP server: growable buffers, base64, BMP thumbnails,
 * random ids, content hashes. */
#ifndef VBLIP_SERVER_UTIL_H
#define VBLIP_SERVER_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *data;
  size_t len, cap;
} vs_buf;

/* Appends n bytes (keeps a terminating NUL). Returns 0 or -1 when out of memory. */
int vs_buf_append(vs_buf *b, const void *p, size_t n);
int vs_buf_puts(vs_buf *b, const char *s);
void vs_buf_free(vs_buf *b);

/* Decodes standard or URL-safe base64 (whitespace ignored, padding optional).
 * Returns the byte count, or -1 on a malformed input; out must hold n*3/4+3 bytes. */
long vs_base64_decode(const char *in, size_t n, unsigned char *out);

/* 24-bit BMP of a packed RGB image downscaled by an integer factor (box filter). */
unsigned char *vs_bmp_encode(const uint8_t *rgb, int w, int h, int factor, size_t *len);

/* n random bytes as 2n lowercase hex digits in out (2n+1 bytes). 0 or -1. */
int vs_random_hex(char *out, size_t n);

/* FNV-1a 64-bit. */
uint64_t vs_hash(const void *p, size_t n, uint64_t h);
#define VS_HASH_INIT 1469598103934665603ULL

#endif
