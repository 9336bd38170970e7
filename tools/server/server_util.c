#include "server/server_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int vs_buf_append(vs_buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int vs_buf_puts(vs_buf *b, const char *s) { return vs_buf_append(b, s, strlen(s)); }

void vs_buf_free(vs_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

long vs_base64_decode(const char *in, size_t n, unsigned char *out) {
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  long o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad) return -1; /* data after padding */
    int v = b64_value(c);
    if (v < 0) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  if (bits >= 6 || pad > 2) return -1; /* a lone trailing character */
  return o;
}

unsigned char *vs_bmp_encode(const uint8_t *rgb, int w, int h, int factor, size_t *len) {
  if (factor < 1) factor = 1;
  int ow = w / factor, oh = h / factor;
  if (ow < 1 || oh < 1) return NULL;
  size_t row = ((size_t)ow * 3 + 3) & ~(size_t)3;
  size_t size = 54 + row * (size_t)oh;
  unsigned char *b = calloc(1, size);
  if (!b) return NULL;
  unsigned char *p = b;
#define LE16(v) (*p++ = (unsigned char)((v) & 255), *p++ = (unsigned char)(((v) >> 8) & 255))
#define LE32(v) (LE16((uint32_t)(v) & 0xffff), LE16(((uint32_t)(v) >> 16) & 0xffff))
  *p++ = 'B';
  *p++ = 'M';
  LE32(size);
  LE32(0);
  LE32(54);
  LE32(40);
  LE32(ow);
  LE32(oh); /* positive: bottom-up rows */
  LE16(1);
  LE16(24);
  LE32(0);
  LE32(row * (size_t)oh);
  LE32(2835);
  LE32(2835);
  LE32(0);
  LE32(0);
#undef LE16
#undef LE32
  int area = factor * factor;
  for (int y = 0; y < oh; y++) {
    unsigned char *dst = b + 54 + row * (size_t)(oh - 1 - y);
    for (int x = 0; x < ow; x++) {
      int sum[3] = {0, 0, 0};
      for (int dy = 0; dy < factor; dy++)
        for (int dx = 0; dx < factor; dx++) {
          const uint8_t *s = rgb + (((size_t)(y * factor + dy) * (size_t)w) + (size_t)(x * factor + dx)) * 3;
          sum[0] += s[0];
          sum[1] += s[1];
          sum[2] += s[2];
        }
      dst[x * 3 + 0] = (unsigned char)((sum[2] + area / 2) / area); /* BGR */
      dst[x * 3 + 1] = (unsigned char)((sum[1] + area / 2) / area);
      dst[x * 3 + 2] = (unsigned char)((sum[0] + area / 2) / area);
    }
  }
  *len = size;
  return b;
}

int vs_random_hex(char *out, size_t n) {
  unsigned char raw[64];
  if (n > sizeof raw) return -1;
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(raw + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    got += (size_t)r;
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[2 * n] = 0;
  return 0;
}

uint64_t vs_hash(const void *p, size_t n, uint64_t h) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  return h;
}
