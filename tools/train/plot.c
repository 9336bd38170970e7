/* A small raster plot: axes, grid, two polylines, numbers in a 3x5 pixel font, written
 * as a PNG with stored (uncompressed) deflate blocks, so no image library is needed. */
#include "train/plot.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/common.h"
#include "train/dataset.h"

/* ---- PNG ---- */

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++)
    c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Appends a chunk (length, type, data, CRC over type and data). */
static size_t chunk(uint8_t *out, const char *type, const uint8_t *data, size_t n) {
  be32(out, (uint32_t)n);
  memcpy(out + 4, type, 4);
  if (n) memcpy(out + 8, data, n);
  be32(out + 8 + n, crc32_of(out + 4, n + 4));
  return n + 12;
}

int vb_png_encode(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *len) {
  crc_init();
  size_t row = (size_t)w * 3 + 1, raw_n = row * (size_t)h;
  size_t blocks = (raw_n + 65534) / 65535;
  size_t z_n = 2 + raw_n + blocks * 5 + 4;
  uint8_t *raw = vb_malloc(raw_n), *z = vb_malloc(z_n), *png = vb_malloc(z_n + 64);
  if (!raw || !z || !png) {
    free(raw);
    free(z);
    free(png);
    return -1;
  }
  for (int y = 0; y < h; y++) {
    raw[row * y] = 0; /* filter: none */
    memcpy(raw + row * y + 1, rgb + (size_t)y * w * 3, (size_t)w * 3);
  }
  /* zlib: header, stored blocks of at most 65535 bytes, Adler-32 */
  size_t zp = 0;
  z[zp++] = 0x78;
  z[zp++] = 0x01;
  uint32_t a = 1, b = 0;
  for (size_t off = 0; off < raw_n; off += 65535) {
    size_t n = raw_n - off < 65535 ? raw_n - off : 65535;
    z[zp++] = off + n == raw_n; /* BFINAL, type stored */
    z[zp++] = (uint8_t)n;
    z[zp++] = (uint8_t)(n >> 8);
    z[zp++] = (uint8_t)~n;
    z[zp++] = (uint8_t)(~n >> 8);
    memcpy(z + zp, raw + off, n);
    zp += n;
    for (size_t i = 0; i < n; i++) {
      a = (a + raw[off + i]) % 65521;
      b = (b + a) % 65521;
    }
  }
  be32(z + zp, (b << 16) | a);
  zp += 4;
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  size_t p = 0;
  memcpy(png, sig, 8);
  p += 8;
  uint8_t ihdr[13] = {0};
  be32(ihdr, (uint32_t)w);
  be32(ihdr + 4, (uint32_t)h);
  ihdr[8] = 8; /* bit depth */
  ihdr[9] = 2; /* RGB */
  p += chunk(png + p, "IHDR", ihdr, 13);
  p += chunk(png + p, "IDAT", z, zp);
  p += chunk(png + p, "IEND", NULL, 0);
  free(raw);
  free(z);
  *out = png;
  *len = p;
  return 0;
}

/* ---- drawing ---- */

enum { W = 720, H = 420, LEFT = 60, RIGHT = 20, TOP = 20, BOTTOM = 40 };

typedef struct {
  uint8_t px[W * H * 3];
} canvas;

static void dot(canvas *c, int x, int y, const uint8_t col[3]) {
  if (x < 0 || y < 0 || x >= W || y >= H) return;
  memcpy(c->px + ((size_t)y * W + x) * 3, col, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t col[3], int thick) {
  int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    for (int t = 0; t < thick; t++)
      dot(c, x0, y0 + t, col), dot(c, x0 + t, y0, col);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

/* 3x5 glyphs for numbers: rows top to bottom, 3 bits each */
static const char *const k_glyph_chars = "0123456789.-e";
static const uint8_t k_glyphs[][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
    {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0}, {0, 7, 5, 6, 7}};

static void text(canvas *c, int x, int y, const char *s, const uint8_t col[3]) {
  const int scale = 2;
  for (; *s; s++, x += 4 * scale) {
    const char *g = strchr(k_glyph_chars, *s);
    if (!g || !*s) continue;
    const uint8_t *rows = k_glyphs[g - k_glyph_chars];
    for (int r = 0; r < 5; r++)
      for (int b = 0; b < 3; b++)
        if (rows[r] >> (2 - b) & 1)
          for (int u = 0; u < scale; u++)
            for (int v = 0; v < scale; v++)
              dot(c, x + b * scale + u, y + r * scale + v, col);
  }
}

/* ---- the log ---- */

typedef struct {
  double *step, *value;
  int n, cap;
} series;

static int push(series *s, double step, double v) {
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 256;
    double *a = vb_realloc(s->step, (size_t)cap * sizeof *a), *b;
    if (!a) return -1;
    s->step = a;
    if (!(b = vb_realloc(s->value, (size_t)cap * sizeof *b))) return -1;
    s->value = b;
    s->cap = cap;
  }
  s->step[s->n] = step;
  s->value[s->n++] = v;
  return 0;
}

static int read_log(const char *path, series *train, series *eval) {
  char *text = NULL;
  if (vb_read_file(path, (size_t)1 << 30, &text, NULL)) return -1;
  char *save = NULL;
  int rc = 0;
  for (char *l = strtok_r(text, "\n", &save); l && rc == 0; l = strtok_r(NULL, "\n", &save)) {
    double step, loss = NAN, ev = NAN;
    if (l[0] == '{') {
      cJSON *j = cJSON_Parse(l);
      const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "step");
      const cJSON *lo = cJSON_GetObjectItemCaseSensitive(j, "loss");
      const cJSON *el = cJSON_GetObjectItemCaseSensitive(j, "eval_loss");
      step = cJSON_IsNumber(st) ? st->valuedouble : NAN;
      if (cJSON_IsNumber(lo)) loss = lo->valuedouble;
      if (cJSON_IsNumber(el)) ev = el->valuedouble;
      cJSON_Delete(j);
    } else {
      /* step,epoch,loss,learning_rate,grad_norm,eval_loss */
      char *f[6] = {0}, *p = l;
      for (int k = 0; k < 6 && p; k++) {
        f[k] = p;
        p = strchr(p, ',');
        if (p) *p++ = 0;
      }
      char *end;
      step = strtod(f[0], &end);
      if (end == f[0]) continue; /* the header */
      if (f[2] && *f[2]) loss = strtod(f[2], NULL);
      if (f[5] && *f[5]) ev = strtod(f[5], NULL);
    }
    if (isnan(step)) continue;
    if (isfinite(loss)) rc = push(train, step, loss);
    if (rc == 0 && isfinite(ev)) rc = push(eval, step, ev);
  }
  free(text);
  return rc;
}

int vb_plot_log(const char *log_path, const char *png_path) {
  series tr = {0}, ev = {0};
  canvas *c = NULL;
  uint8_t *png = NULL;
  size_t len = 0;
  int rc = -1;
  if (read_log(log_path, &tr, &ev)) goto done;
  if (tr.n + ev.n == 0) {
    vb_error("%s: no loss to plot", log_path);
    goto done;
  }
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  const series *all[2] = {&tr, &ev};
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < all[k]->n; i++) {
      x0 = fmin(x0, all[k]->step[i]), x1 = fmax(x1, all[k]->step[i]);
      y0 = fmin(y0, all[k]->value[i]), y1 = fmax(y1, all[k]->value[i]);
    }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  if (!(c = vb_malloc(sizeof *c))) goto done;
  memset(c->px, 255, sizeof c->px);
  static const uint8_t grid[3] = {225, 225, 225}, axis[3] = {60, 60, 60}, blue[3] = {31, 119, 180},
                       orange[3] = {255, 127, 14};
  int pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
  for (int g = 0; g <= 4; g++) {
    int y = TOP + ph * g / 4, x = LEFT + pw * g / 4;
    line(c, LEFT, y, LEFT + pw, y, grid, 1);
    line(c, x, TOP, x, TOP + ph, grid, 1);
  }
  line(c, LEFT, TOP, LEFT, TOP + ph, axis, 1);
  line(c, LEFT, TOP + ph, LEFT + pw, TOP + ph, axis, 1);
  for (int k = 0; k < 2; k++) {
    const series *s = all[k];
    int px = -1, py = -1;
    for (int i = 0; i < s->n; i++) {
      int x = LEFT + (int)lround((s->step[i] - x0) / (x1 - x0) * pw);
      int y = TOP + ph - (int)lround((s->value[i] - y0) / (y1 - y0) * ph);
      if (px >= 0)
        line(c, px, py, x, y, k ? orange : blue, 2);
      else
        line(c, x, y, x, y, k ? orange : blue, 2);
      px = x, py = y;
    }
  }
  char num[32];
  snprintf(num, sizeof num, "%.4g", y1);
  text(c, 4, TOP, num, axis);
  snprintf(num, sizeof num, "%.4g", y0);
  text(c, 4, TOP + ph - 10, num, axis);
  snprintf(num, sizeof num, "%.0f", x0);
  text(c, LEFT, TOP + ph + 8, num, axis);
  snprintf(num, sizeof num, "%.0f", x1);
  text(c, LEFT + pw - 8 * (int)strlen(num), TOP + ph + 8, num, axis);
  if (vb_png_encode(c->px, W, H, &png, &len)) goto done;
  char *tmp = NULL;
  FILE *f = vb_open_tmp(png_path, &tmp);
  rc = f ? 0 : -1;
  if (f && fwrite(png, 1, len, f) != len) rc = vb_error("cannot write %s", tmp);
  if (f && fclose(f) && rc == 0) rc = vb_error("cannot write %s", tmp);
  if (rc == 0 && rename(tmp, png_path)) rc = vb_error("cannot rename %s: %s", tmp, strerror(errno));
  if (rc && tmp) unlink(tmp);
  free(tmp);
done:
  free(tr.step);
  free(tr.value);
  free(ev.step);
  free(ev.value);
  free(c);
  free(png);
  return rc;
}
