/* BlipImageProcessor for 8-bit RGB frames: Pillow 9's BICUBIC resize reproduced
 * bit for bit (Resample.c: separable passes, horizontal first, coefficients in
 * double normalised to sum 1 then rounded to 22 fractional bits), then
 * rescale (in double, cast to float32) and normalise (in float32). */
#include "video/preprocess.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/json.h"

/* The coefficients are computed in double exactly as Pillow's C code computes
 * them; a fused multiply-add would round differently. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define PRECISION_BITS (32 - 8 - 2)
#define VB_MAX_SIDE 16384

void vb_image_config_default(vb_image_config *c) {
  c->width = 224;
  c->height = 224;
  c->resample = 3;
  c->rescale_factor = 1.0 / 255.0;
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  memcpy(c->mean, mean, sizeof mean);
  memcpy(c->std, std, sizeof std);
  c->do_resize = c->do_rescale = c->do_normalize = c->do_convert_rgb = 1;
}

/* A number or a list of three numbers (a single number applies to every channel). */
static int read_triplet(const cJSON *v, const char *key, float out[3]) {
  if (cJSON_IsNumber(v)) {
    out[0] = out[1] = out[2] = (float)v->valuedouble;
    return 0;
  }
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
    return vb_error("preprocessor_config.json: %s must be a number or a list of 3 numbers", key);
  for (int i = 0; i < 3; i++) {
    const cJSON *e = cJSON_GetArrayItem(v, i);
    if (!cJSON_IsNumber(e))
      return vb_error("preprocessor_config.json: %s[%d] is not a number", key, i);
    out[i] = (float)e->valuedouble;
  }
  return 0;
}

static int read_flag(const cJSON *root, const char *key, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v) return 0;
  if (!cJSON_IsBool(v)) return vb_error("preprocessor_config.json: %s must be true or false", key);
  *out = cJSON_IsTrue(v);
  return 0;
}

static int read_side(const cJSON *v, const char *key, int *out) {
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
      v->valuedouble > VB_MAX_SIDE)
    return vb_error("preprocessor_config.json: %s must be an integer in 1..%d", key, VB_MAX_SIDE);
  *out = (int)v->valuedouble;
  return 0;
}

static int parse_config(const cJSON *root, vb_image_config *c) {
  if (!cJSON_IsObject(root)) return vb_error("preprocessor_config.json is not a JSON object");
  const cJSON *v;
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "size"))) {
    if (cJSON_IsNumber(v)) { /* an int means a square (get_size_dict default_to_square) */
      if (read_side(v, "size", &c->width) != 0) return -1;
      c->height = c->width;
    } else if (cJSON_IsObject(v)) {
      const cJSON *h = cJSON_GetObjectItemCaseSensitive(v, "height");
      const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, "width");
      if (!h || !w)
        return vb_error("preprocessor_config.json: size must have height and width "
                        "(BlipImageProcessor resizes to an exact size)");
      if (read_side(h, "size.height", &c->height) != 0 ||
          read_side(w, "size.width", &c->width) != 0)
        return -1;
    } else {
      return vb_error("preprocessor_config.json: size must be an integer or an object");
    }
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "resample"))) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 255) /* PIL's filters are 0-5; the range keeps the cast defined */
      return vb_error("preprocessor_config.json: resample must be an integer");
    c->resample = (int)v->valuedouble;
  }
  if (c->resample != 3)
    return vb_error("preprocessor_config.json: resample %d is not supported (only 3 = bicubic)",
                    c->resample);
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "rescale_factor"))) {
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
      return vb_error("preprocessor_config.json: rescale_factor must be a number");
    c->rescale_factor = v->valuedouble;
  }
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "image_mean")) &&
      read_triplet(v, "image_mean", c->mean) != 0)
    return -1;
  if ((v = cJSON_GetObjectItemCaseSensitive(root, "image_std")) &&
      read_triplet(v, "image_std", c->std) != 0)
    return -1;
  for (int i = 0; i < 3; i++)
    if (!(c->std[i] != 0.0f) || !isfinite(c->std[i]) || !isfinite(c->mean[i]))
      return vb_error("preprocessor_config.json: image_std must be non-zero and finite");
  if (read_flag(root, "do_resize", &c->do_resize) != 0 ||
      read_flag(root, "do_rescale", &c->do_rescale) != 0 ||
      read_flag(root, "do_normalize", &c->do_normalize) != 0 ||
      read_flag(root, "do_convert_rgb", &c->do_convert_rgb) != 0)
    return -1;
  return 0;
}

int vb_image_config_load(const char *model_dir, vb_image_config *c) {
  vb_image_config_default(c);
  char *path = vb_path_join(model_dir, "preprocessor_config.json");
  if (!path) return -1;
  if (!vb_file_exists(path)) {
    free(path);
    return 0;
  }
  char *text = NULL;
  if (vb_read_file(path, 1u << 20, &text, NULL) != 0) {
    free(path);
    return -1;
  }
  cJSON *root = vb_json_parse_unique(text, strlen(text), "preprocessor_config.json");
  free(text);
  if (!root) {
    free(path);
    return -1;
  }
  vb_image_config tmp = *c;
  int rc = parse_config(root, &tmp);
  cJSON_Delete(root);
  if (rc != 0)
    vb_error_context("%s: ", path);
  else
    *c = tmp;
  free(path);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Pillow's resampler                                                  */

typedef struct {
  int ksize;   /* coefficients per output pixel */
  int *bounds; /* per output: first input index, number of inputs */
  int32_t *kk; /* out_size * ksize fixed-point coefficients */
} coeffs_t;

static void coeffs_free(coeffs_t *c) {
  free(c->bounds);
  free(c->kk);
  c->bounds = NULL;
  c->kk = NULL;
}

static double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for box [0, in_size). */
static int coeffs_make(int in_size, int out_size, coeffs_t *c) {
  memset(c, 0, sizeof *c);
  const double support_1 = 2.0; /* bicubic support */
  const double in0 = 0.0, in1 = (double)(float)in_size;
  double scale = (in1 - in0) / out_size, filterscale = scale;
  if (filterscale < 1.0) filterscale = 1.0;
  double support = support_1 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  size_t n;
  if (!vb_mul_ok((size_t)out_size, (size_t)ksize, &n)) return vb_error("resize too large");
  double *pre = vb_malloc(n * sizeof *pre);
  c->kk = vb_malloc(n * sizeof *c->kk);
  c->bounds = vb_malloc((size_t)out_size * 2 * sizeof *c->bounds);
  if (!pre || !c->kk || !c->bounds) {
    free(pre);
    coeffs_free(c);
    return -1;
  }
  c->ksize = ksize;
  for (int xx = 0; xx < out_size; xx++) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5); /* truncation, as Pillow's cast */
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    if (xmax < 0 || xmax > ksize) {
      free(pre);
      coeffs_free(c);
      return vb_error("resize coefficient window out of range");
    }
    double *k = &pre[(size_t)xx * ksize];
    int x;
    for (x = 0; x < xmax; x++) {
      double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) k[x] /= ww;
    for (; x < ksize; x++)
      k[x] = 0;
    c->bounds[xx * 2 + 0] = xmin;
    c->bounds[xx * 2 + 1] = xmax;
  }
  for (size_t i = 0; i < n; i++)
    c->kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
  free(pre);
  return 0;
}

static inline uint8_t clip8(int64_t v) {
  v >>= PRECISION_BITS; /* arithmetic shift, as Pillow's lookup index */
  return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
}

/* Horizontal pass over source rows [y0, y0+rows) into dst (rows x dw). */
static void pass_horizontal(const uint8_t *src, int sw, int y0, int rows, uint8_t *dst, int dw,
                            const coeffs_t *c) {
  for (int y = 0; y < rows; y++) {
    const uint8_t *in = src + (size_t)(y0 + y) * sw * 3;
    uint8_t *out = dst + (size_t)y * dw * 3;
    for (int xx = 0; xx < dw; xx++) {
      const int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
      const int32_t *k = &c->kk[(size_t)xx * c->ksize];
      int64_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < xmax; x++) {
        const uint8_t *p = in + (size_t)(x + xmin) * 3;
        s0 += (int64_t)p[0] * k[x];
        s1 += (int64_t)p[1] * k[x];
        s2 += (int64_t)p[2] * k[x];
      }
      out[xx * 3 + 0] = clip8(s0);
      out[xx * 3 + 1] = clip8(s1);
      out[xx * 3 + 2] = clip8(s2);
    }
  }
}

/* Vertical pass: output row yy reads rows bounds[yy]-y_shift ... of src (width w). */
static void pass_vertical(const uint8_t *src, int w, int y_shift, uint8_t *dst, int dh,
                          const coeffs_t *c) {
  const size_t row = (size_t)w * 3;
  for (int yy = 0; yy < dh; yy++) {
    const int ymin = c->bounds[yy * 2] - y_shift, ymax = c->bounds[yy * 2 + 1];
    const int32_t *k = &c->kk[(size_t)yy * c->ksize];
    uint8_t *out = dst + (size_t)yy * row;
    for (size_t i = 0; i < row; i++) {
      int64_t s = 1 << (PRECISION_BITS - 1);
      for (int y = 0; y < ymax; y++)
        s += (int64_t)src[(size_t)(y + ymin) * row + i] * k[y];
      out[i] = clip8(s);
    }
  }
}

typedef struct {
  int sw, sh, dw, dh;
  int need_h, need_v;
  coeffs_t ch, cv;
  int y_first, y_rows; /* source rows the vertical pass uses */
} resize_plan;

static void plan_free(resize_plan *p) {
  coeffs_free(&p->ch);
  coeffs_free(&p->cv);
}

static int plan_make(resize_plan *p, int sw, int sh, int dw, int dh) {
  memset(p, 0, sizeof *p);
  if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0 || sw > (1 << 20) || sh > (1 << 20) ||
      dw > VB_MAX_SIDE || dh > VB_MAX_SIDE)
    return vb_error("invalid resize %dx%d -> %dx%d", sw, sh, dw, dh);
  p->sw = sw, p->sh = sh, p->dw = dw, p->dh = dh;
  /* Pillow skips a pass whose dimension does not change. */
  p->need_h = dw != sw;
  p->need_v = dh != sh;
  if (coeffs_make(sw, dw, &p->ch) != 0 || coeffs_make(sh, dh, &p->cv) != 0) {
    plan_free(p);
    return -1;
  }
  p->y_first = p->cv.bounds[0];
  int last = p->cv.bounds[(dh - 1) * 2] + p->cv.bounds[(dh - 1) * 2 + 1];
  p->y_rows = last - p->y_first;
  if (p->y_first < 0 || p->y_rows <= 0 || last > sh) {
    plan_free(p);
    return vb_error("resize row range out of bounds");
  }
  return 0;
}

/* Scratch bytes for one frame. */
static size_t plan_scratch(const resize_plan *p) {
  return p->need_h ? (size_t)p->dw * p->y_rows * 3 : 0;
}

static void plan_run(const resize_plan *p, const uint8_t *src, uint8_t *dst, uint8_t *scratch) {
  const size_t out_bytes = (size_t)p->dw * p->dh * 3;
  if (p->need_h) {
    /* Only the rows the vertical pass reads are computed (Pillow's ybox). */
    if (p->need_v) {
      pass_horizontal(src, p->sw, p->y_first, p->y_rows, scratch, p->dw, &p->ch);
      pass_vertical(scratch, p->dw, p->y_first, dst, p->dh, &p->cv);
    } else {
      pass_horizontal(src, p->sw, 0, p->sh, dst, p->dw, &p->ch);
    }
  } else if (p->need_v) {
    pass_vertical(src, p->sw, 0, dst, p->dh, &p->cv);
  } else {
    memcpy(dst, src, out_bytes);
  }
}

int vb_resize_bicubic_rgb(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh) {
  if (!src || !dst) return vb_error("vb_resize_bicubic_rgb: null buffer");
  resize_plan p;
  if (plan_make(&p, sw, sh, dw, dh) != 0) return -1;
  size_t n = plan_scratch(&p);
  uint8_t *scratch = n ? vb_malloc(n) : NULL;
  if (n && !scratch) {
    plan_free(&p);
    return -1;
  }
  plan_run(&p, src, dst, scratch);
  free(scratch);
  plan_free(&p);
  return 0;
}

int vb_preprocess_frames(const vb_frames *f, const vb_image_config *c, uint8_t *frames_out,
                         float *pixel_values) {
  if (!f || !c) return vb_error("vb_preprocess_frames: missing frames or config");
  if (f->count <= 0 || !f->rgb) return vb_error("vb_preprocess_frames: no frames");
  if (c->resample != 3)
    return vb_error("resample %d is not supported (only 3 = bicubic)", c->resample);
  const int W = c->width, H = c->height, T = f->count;
  if (W <= 0 || H <= 0 || W > VB_MAX_SIDE || H > VB_MAX_SIDE)
    return vb_error("invalid target size %dx%d", W, H);
  if (f->width <= 0 || f->height <= 0)
    return vb_error("invalid frame size %dx%d", f->width, f->height);
  if (!c->do_resize && (f->width != W || f->height != H))
    return vb_error("frames are %dx%d but resizing is off and the model takes %dx%d", f->width,
                    f->height, W, H);
  for (int t = 0; t < T; t++)
    if (!f->rgb[t]) return vb_error("vb_preprocess_frames: frame %d has no pixels", t);

  const size_t plane = (size_t)W * H, fbytes = plane * 3;
  size_t all;
  if (!vb_mul_ok(fbytes, (size_t)T, &all)) return vb_error("too many frames");
  resize_plan p;
  if (plan_make(&p, f->width, f->height, W, H) != 0) return -1;
  size_t sbytes = plan_scratch(&p), stotal = 0;
  uint8_t *resized = frames_out ? frames_out : vb_malloc(all);
  uint8_t *scratch = NULL;
  if (sbytes && !vb_mul_ok(sbytes, (size_t)T, &stotal)) {
    plan_free(&p);
    if (!frames_out) free(resized);
    return vb_error("too many frames");
  }
  if (stotal) scratch = vb_malloc(stotal);
  if (!resized || (stotal && !scratch)) {
    plan_free(&p);
    if (!frames_out) free(resized);
    free(scratch);
    return -1;
  }

  /* float32(mean), float32(std) as numpy does with a float32 image. */
  const float mean[3] = {c->mean[0], c->mean[1], c->mean[2]};
  const float std[3] = {c->std[0], c->std[1], c->std[2]};
  const double rescale = c->rescale_factor;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (T > 1)
#endif
  for (int t = 0; t < T; t++) {
    uint8_t *img = resized + (size_t)t * fbytes;
    plan_run(&p, f->rgb[t], img, scratch ? scratch + (size_t)t * sbytes : NULL);
    if (!pixel_values) continue;
    /* (3, T, H, W): VideoBLIP puts channels before time. */
    for (int ch = 0; ch < 3; ch++) {
      float *o = pixel_values + ((size_t)ch * T + t) * plane;
      for (size_t i = 0; i < plane; i++) {
        float x =
            c->do_rescale ? (float)((double)img[i * 3 + ch] * rescale) : (float)img[i * 3 + ch];
        if (c->do_normalize) x = (x - mean[ch]) / std[ch];
        o[i] = x;
      }
    }
  }
  free(scratch);
  plan_free(&p);
  if (!frames_out) free(resized);
  return 0;
}
