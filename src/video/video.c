/* Video/image decoding with FFmpeg and frame selection matching pytorchvideo's
 * EncodedVideo(decoder="pyav").get_clip() followed by VideoBLIP's sampling.
 *
 * Reference semantics (the "full" path): decode the first video stream from the
 * start, keep one frame per pts with start_pts <= pts < end_pts (stopping at the
 * first frame at or past end_pts, as pytorchvideo does), sort by pts, then select
 * indices. The full path decodes twice (count, then convert only the selected
 * frames) so that no unselected frame is ever converted or kept.
 *
 * The fast path gets the same answer without decoding everything: a demux-only
 * scan collects packet pts (which are presentation timestamps) to learn T and the
 * pts of every selected frame, then decodes only from the keyframe before each
 * needed frame. Every decoded run is checked against the packet index (frames
 * must come out as exactly the consecutive packet pts from the keyframe to the
 * last target); anything unexpected falls back to the full path. */
#include "video/video.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "runtime/common.h"
#include "video/frame_rgb.h"

/* torch.linspace is float32 arithmetic; an FMA would round differently. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define VB_MAX_SELECTED 10000
/* Forward jumps shorter than this many packets read ahead instead of seeking. */
#define VB_SEEK_GAP 32

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;
static void log_init_once(void) {
  /* FFmpeg's own messages (damaged data, deprecated yuvj formats) would go to
   * stderr; errors reach the caller through vb_error instead. */
  if (!getenv("VBLIP_FFMPEG_LOG")) av_log_set_level(AV_LOG_QUIET);
}

void vb_ffmpeg_log_init(void) {
  pthread_once(&g_log_once, log_init_once);
}

static const char *averr(int e, char *buf, size_t n) {
  if (av_strerror(e, buf, n) < 0) snprintf(buf, n, "error %d", e);
  return buf;
}
#define AVERR(e) averr((e), (char[AV_ERROR_MAX_STRING_SIZE]){0}, AV_ERROR_MAX_STRING_SIZE)

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Index of v in sorted a[0..n), or -1. */
static ptrdiff_t find_i64(const int64_t *a, size_t n, int64_t v) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (a[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (lo < n && a[lo] == v) ? (ptrdiff_t)lo : -1;
}

static int push_i64(int64_t **a, size_t *n, size_t *cap, int64_t v) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    int64_t *p = vb_realloc(*a, nc * sizeof **a);
    if (!p) return -1;
    *a = p;
    *cap = nc;
  }
  (*a)[(*n)++] = v;
  return 0;
}

/* Python's math.ceil(sec / float(time_base)) + start, saturated to int64. */
static int64_t secs_to_pts(double sec, AVRational tb, int64_t start) {
  double v = ceil(sec / ((double)tb.num / (double)tb.den));
  if (v >= 9.0e18) return INT64_MAX;
  if (v <= -9.0e18) return INT64_MIN;
  int64_t p = (int64_t)v;
  if (start > 0 && p > INT64_MAX - start) return INT64_MAX;
  if (start < 0 && p < INT64_MIN - start) return INT64_MIN;
  return p + start;
}

static double pts_seconds(int64_t pts, AVRational tb) {
  /* pts * Fraction(num, den) rounded once, as float(Fraction) does, when exact. */
  int64_t prod;
  if (!__builtin_mul_overflow(pts, (int64_t)tb.num, &prod) && prod > -(1LL << 53) &&
      prod < (1LL << 53))
    return (double)prod / (double)tb.den;
  return (double)pts * tb.num / tb.den;
}

void vb_sampling_default(vb_sampling *s) {
  s->mode = VB_SAMPLE_UNIFORM;
  s->n_frames = 8;
  s->start_sec = 0.0;
  s->end_sec = -1.0;
}

void vb_video_opts_default(vb_video_opts *o) {
  o->force_full = 0;
  o->threads = 0;
}

void vb_frames_free(vb_frames *f) {
  if (!f) return;
  if (f->rgb)
    for (int i = 0; i < f->count; i++)
      free(f->rgb[i]);
  free(f->rgb);
  free(f->index);
  free(f->pts);
  free(f->seconds);
  memset(f, 0, sizeof *f);
}

int vb_uniform_indices(int64_t total, int n, int64_t *out) {
  if (total <= 0) return vb_error("no frames in window");
  if (n <= 0) return vb_error("number of frames must be positive (got %d)", n);
  /* torch.linspace(0, total-1, n) in float32: the first half counts up from the
   * start, the second half down from the end; then clamp and truncate. */
  const float start = 0.0f, end = (float)(total - 1);
  if (n == 1) {
    out[0] = 0;
    return 0;
  }
  const float step = (end - start) / (float)(n - 1);
  const int half = n / 2;
  for (int i = 0; i < n; i++) {
    float v = i < half ? start + step * (float)i : end - step * (float)(n - 1 - i);
    if (!(v >= 0.0f)) v = 0.0f;
    if (v > end) v = end;
    out[i] = (int64_t)v;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Demuxer + decoder                                                   */

typedef struct {
  const char *path;
  AVFormatContext *fmt;
  AVCodecContext *dec;
  int si;
  AVRational tb;
  int64_t start_time; /* stream start pts, 0 when unknown (pytorchvideo's default) */
  int still;          /* a single image (PNG, JPEG, ...) */
  int threads;
  AVPacket *pkt;
  AVFrame *frame;
  struct SwsContext *sws;
  vb_video_stats *stats;
  int64_t bad_packets;
  int64_t last_pts; /* of the previous frame, for frames that come without one */
} dec_t;

/* Containers that are not media files (text art, playlists, scripts that pull in
 * other files): refused so that a text file or a playlist is never "decoded". */
static int format_refused(const char *name) {
  static const char *refused[] = {"tty",    "bin",  "xbin", "adf",     "idf",
                                  "concat", "hls",  "dash", "lavfi",   "ffmetadata",
                                  "sdp",    "rtsp", "data", "rawvideo"};
  char buf[256];
  snprintf(buf, sizeof buf, "%s", name);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
      if (!strcmp(tok, refused[i])) return 1;
  return 0;
}

static int format_is_still(const char *name) {
  size_t n = strlen(name);
  return !strcmp(name, "image2") || (n > 5 && !strcmp(name + n - 5, "_pipe"));
}

static void close_input(dec_t *d) {
  avformat_close_input(&d->fmt);
}

static int open_input(dec_t *d) {
  AVDictionary *opts = NULL;
  /* Local files only: a path must never make FFmpeg open a network stream. */
  av_dict_set(&opts, "protocol_whitelist", "file", 0);
  int r = avformat_open_input(&d->fmt, d->path, NULL, &opts);
  av_dict_free(&opts);
  if (r < 0) {
    d->fmt = NULL;
    return vb_error("cannot open as a video or image: %s", AVERR(r));
  }
  if (format_refused(d->fmt->iformat->name)) {
    int e = vb_error("not a video or image file (detected format '%s')", d->fmt->iformat->name);
    close_input(d);
    return e;
  }
  r = avformat_find_stream_info(d->fmt, NULL);
  if (r < 0) {
    close_input(d);
    return vb_error("cannot read the stream information: %s", AVERR(r));
  }
  /* pytorchvideo takes streams.video[0]; cover art is skipped when a real video
   * stream exists. */
  int si = -1, cover = -1;
  for (unsigned i = 0; i < d->fmt->nb_streams; i++) {
    AVStream *st = d->fmt->streams[i];
    if (st->codecpar->codec_type != AVMEDIA_TYPE_VIDEO) continue;
    if (st->disposition & AV_DISPOSITION_ATTACHED_PIC) {
      if (cover < 0) cover = (int)i;
      continue;
    }
    si = (int)i;
    break;
  }
  if (si < 0) si = cover;
  if (si < 0) {
    close_input(d);
    return vb_error("no video stream");
  }
  AVStream *st = d->fmt->streams[si];
  if (st->time_base.num <= 0 || st->time_base.den <= 0) {
    close_input(d);
    return vb_error("the video stream has an invalid time base");
  }
  if (st->codecpar->width <= 0 || st->codecpar->height <= 0) {
    const char *codec = avcodec_get_name(st->codecpar->codec_id);
    close_input(d);
    /* the demuxer found a stream but no decodable header in it */
    return vb_error("cannot read the frame size of the %s stream: the file is truncated or corrupt",
                    codec);
  }
  d->si = si;
  d->tb = st->time_base;
  d->start_time = st->start_time == AV_NOPTS_VALUE ? 0 : st->start_time;
  d->still =
      format_is_still(d->fmt->iformat->name) || (st->disposition & AV_DISPOSITION_ATTACHED_PIC);
  return 0;
}

static int open_decoder(dec_t *d) {
  const AVCodecParameters *par = d->fmt->streams[d->si]->codecpar;
  const AVCodec *codec = avcodec_find_decoder(par->codec_id);
  if (!codec) return vb_error("no decoder for codec '%s'", avcodec_get_name(par->codec_id));
  d->dec = avcodec_alloc_context3(codec);
  if (!d->dec) return vb_error("out of memory creating a decoder");
  int r = avcodec_parameters_to_context(d->dec, par);
  if (r < 0) return vb_error("bad codec parameters: %s", AVERR(r));
  d->dec->pkt_timebase = d->tb;
  /* Frame and slice threading are bit-exact in FFmpeg's decoders. */
  d->dec->thread_count = d->threads;
  d->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  r = avcodec_open2(d->dec, codec, NULL);
  if (r < 0) return vb_error("cannot open the %s decoder: %s", codec->name, AVERR(r));
  return 0;
}

static int dec_open(dec_t *d, const char *path, int threads, vb_video_stats *stats, int decoder) {
  memset(d, 0, sizeof *d);
  d->path = path;
  d->threads = threads;
  d->stats = stats;
  d->last_pts = AV_NOPTS_VALUE;
  d->pkt = av_packet_alloc();
  d->frame = av_frame_alloc();
  if (!d->pkt || !d->frame) return vb_error("out of memory allocating decoder buffers");
  if (open_input(d) != 0) return -1;
  if (decoder && open_decoder(d) != 0) return -1;
  return 0;
}

static void dec_close(dec_t *d) {
  avcodec_free_context(&d->dec);
  close_input(d);
  av_packet_free(&d->pkt);
  av_frame_free(&d->frame);
  sws_freeContext(d->sws);
  d->sws = NULL;
}

/* Reads the next packet of the video stream into d->pkt: 0, or 1 at the end of the
 * input. A read error also ends the input, so a truncated file gives what it holds. */
static int read_video_packet(dec_t *d) {
  for (;;) {
    av_packet_unref(d->pkt);
    if (av_read_frame(d->fmt, d->pkt) < 0) return 1;
    if (d->pkt->stream_index == d->si) {
      d->stats->packets_read++;
      return 0;
    }
  }
}

/* Called for every decoded frame: 0 to go on, 1 to stop, -1 on error. */
typedef int (*frame_fn)(void *ctx, AVFrame *f);

/* The frame's pts (PyAV's frame.pts). Some demuxers (AVI with packed B-frames,
 * MPEG-PS) leave the odd frame without any timestamp; it then follows the
 * previous frame by its duration, or by one frame period. */
static int64_t frame_pts(dec_t *d, const AVFrame *f) {
  int64_t p = f->pts != AV_NOPTS_VALUE ? f->pts : f->best_effort_timestamp;
  if (p == AV_NOPTS_VALUE && d->last_pts != AV_NOPTS_VALUE) {
    int64_t step = f->pkt_duration;
    AVRational fr = d->fmt->streams[d->si]->avg_frame_rate;
    if (step <= 0 && fr.num > 0 && fr.den > 0) step = av_rescale_q(1, av_inv_q(fr), d->tb);
    if (step <= 0) step = 1;
    if (d->last_pts <= INT64_MAX - step) p = d->last_pts + step;
  }
  if (p != AV_NOPTS_VALUE) d->last_pts = p;
  return p;
}

static int receive_all(dec_t *d, frame_fn fn, void *ctx) {
  int errors = 0;
  for (;;) {
    int r = avcodec_receive_frame(d->dec, d->frame);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return 0;
    if (r < 0) {
      /* A damaged frame: skipped, as the ffmpeg tool does, but never forever. */
      if (++errors > 1000) return vb_error("the decoder keeps failing: %s", AVERR(r));
      continue;
    }
    d->stats->frames_decoded++;
    int s = fn(ctx, d->frame);
    av_frame_unref(d->frame);
    if (s) return s;
  }
}

/* Sends pkt (NULL drains the decoder) and hands out every frame that comes back.
 * Returns 0, 1 when fn asked to stop, -1 on error. */
static int dec_feed(dec_t *d, const AVPacket *pkt, frame_fn fn, void *ctx) {
  int r = avcodec_send_packet(d->dec, pkt);
  if (r == AVERROR(EAGAIN)) {
    int s = receive_all(d, fn, ctx);
    if (s) return s;
    r = avcodec_send_packet(d->dec, pkt);
    if (r == AVERROR(EAGAIN)) return vb_error("the decoder accepts no input");
  }
  if (r < 0 && r != AVERROR_EOF) {
    if (!pkt) return vb_error("cannot flush the decoder: %s", AVERR(r));
    d->bad_packets++; /* undecodable packet: skipped */
  }
  return receive_all(d, fn, ctx);
}

/* Feeds every remaining packet, then drains. */
static int decode_rest(dec_t *d, frame_fn fn, void *ctx) {
  while (read_video_packet(d) == 0) {
    int s = dec_feed(d, d->pkt, fn, ctx);
    if (s) return s < 0 ? -1 : 0;
  }
  int s = dec_feed(d, NULL, fn, ctx);
  return s < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Colour conversion                                                   */

static int rgb_size(int w, int h, size_t *n) {
  size_t t;
  if (w <= 0 || h <= 0 || !vb_mul_ok((size_t)w, (size_t)h, &t) || !vb_mul_ok(t, 3, n))
    return vb_error("invalid frame size %dx%d", w, h);
  return 0;
}

/* PyAV's frame.to_rgb(): sws_scale to RGB24 at the same size with SWS_BILINEAR and
 * default colour details, into a 16-byte aligned frame (as PyAV allocates it),
 * then packed. */
int vb_frame_rgb24(struct SwsContext **sws, const AVFrame *f, uint8_t *out) {
  *sws = sws_getCachedContext(*sws, f->width, f->height, f->format, f->width, f->height,
                              AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
  if (!*sws)
    return vb_error("cannot convert pixel format %s to RGB",
                    av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
  uint8_t *data[4] = {0};
  int ls[4] = {0};
  int r = av_image_alloc(data, ls, f->width, f->height, AV_PIX_FMT_RGB24, 16);
  if (r < 0) return vb_error("out of memory converting a %dx%d frame", f->width, f->height);
  r = sws_scale(*sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, data, ls);
  if (r != f->height) {
    av_freep(&data[0]);
    return vb_error("RGB conversion failed");
  }
  size_t row = (size_t)f->width * 3;
  for (int y = 0; y < f->height; y++)
    memcpy(out + (size_t)y * row, data[0] + (size_t)y * ls[0], row);
  av_freep(&data[0]);
  return 0;
}

/* PIL's Image.convert("RGB") for the layouts FFmpeg's PNG/BMP/TIFF decoders give:
 * alpha dropped, gray replicated, palettes looked up, 16-bit colour reduced to its
 * high byte (PIL's "RGB;16B" raw mode), 16-bit gray clipped (PIL's I -> RGB).
 * Returns 1 when the layout is not one of these. */
static int still_to_rgb(const AVFrame *f, uint8_t *out) {
  const int w = f->width, h = f->height;
  int fmt = f->format;
  for (int y = 0; y < h; y++) {
    const uint8_t *s = f->data[0] + (ptrdiff_t)y * f->linesize[0];
    uint8_t *o = out + (size_t)y * w * 3;
    for (int x = 0; x < w; x++, o += 3) {
      unsigned r, g, b;
      switch (fmt) {
      case AV_PIX_FMT_RGB24:
        r = s[3 * x], g = s[3 * x + 1], b = s[3 * x + 2];
        break;
      case AV_PIX_FMT_RGBA:
        r = s[4 * x], g = s[4 * x + 1], b = s[4 * x + 2];
        break;
      case AV_PIX_FMT_GRAY8:
        r = g = b = s[x];
        break;
      case AV_PIX_FMT_YA8:
        r = g = b = s[2 * x];
        break;
      case AV_PIX_FMT_PAL8: {
        uint32_t c;
        memcpy(&c, f->data[1] + 4 * (size_t)s[x], 4); /* native-endian 0xAARRGGBB */
        r = (c >> 16) & 255, g = (c >> 8) & 255, b = c & 255;
        break;
      }
      case AV_PIX_FMT_MONOBLACK:
        r = g = b = (s[x >> 3] >> (7 - (x & 7)) & 1) ? 255 : 0;
        break;
      case AV_PIX_FMT_MONOWHITE:
        r = g = b = (s[x >> 3] >> (7 - (x & 7)) & 1) ? 0 : 255;
        break;
      case AV_PIX_FMT_RGB48BE:
        r = s[6 * x], g = s[6 * x + 2], b = s[6 * x + 4];
        break;
      case AV_PIX_FMT_RGBA64BE:
        r = s[8 * x], g = s[8 * x + 2], b = s[8 * x + 4];
        break;
      case AV_PIX_FMT_YA16BE:
        r = g = b = s[4 * x];
        break;
      case AV_PIX_FMT_GRAY16BE: {
        unsigned v = (unsigned)s[2 * x] << 8 | s[2 * x + 1];
        r = g = b = v > 255 ? 255 : v;
        break;
      }
      default:
        return 1;
      }
      o[0] = (uint8_t)r, o[1] = (uint8_t)g, o[2] = (uint8_t)b;
    }
  }
  return 0;
}

/* A heap RGB24 copy of frame f, with its width and height. */
static int frame_to_rgb(dec_t *d, const AVFrame *f, uint8_t **out, int *w, int *h) {
  size_t n = 0;
  if (rgb_size(f->width, f->height, &n) != 0) return -1;
  uint8_t *buf = vb_malloc(n);
  if (!buf) return -1;
  int r = d->still ? still_to_rgb(f, buf) : 1;
  if (r == 1) r = vb_frame_rgb24(&d->sws, f, buf);
  if (r != 0) {
    free(buf);
    return -1;
  }
  *out = buf;
  *w = f->width;
  *h = f->height;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Selection and output                                                */

typedef struct {
  int64_t start, end; /* window in pts: [start, end) */
  int mode, n;
} window_t;

/* Indices of the selected frames among T frames of the window. */
/* Set when the window held no frame, so that the caller can name the window and the
 * video's duration. */
static _Thread_local int g_window_empty;

static int select_indices(const window_t *w, int64_t T, int64_t **idx, int *count) {
  if (T <= 0) {
    g_window_empty = 1;
    return vb_error("no frames in window");
  }
  int c;
  if (w->mode == VB_SAMPLE_DEMO) {
    int64_t k = (T + 29) / 30; /* frames[::30] */
    if (k > VB_MAX_SELECTED) return vb_error("too many frames selected (%lld)", (long long)k);
    c = (int)k;
  } else {
    c = w->n;
  }
  int64_t *a = vb_calloc((size_t)c, sizeof *a);
  if (!a) return -1;
  if (w->mode == VB_SAMPLE_DEMO) {
    for (int i = 0; i < c; i++)
      a[i] = (int64_t)i * 30;
  } else if (vb_uniform_indices(T, c, a) != 0) {
    free(a);
    return -1;
  }
  *idx = a;
  *count = c;
  return 0;
}

/* Sorted unique copy of pts[0..n). */
static int unique_sorted(const int64_t *pts, int n, int64_t **out, size_t *m) {
  int64_t *u = vb_malloc((size_t)n * sizeof *u);
  if (!u) return -1;
  memcpy(u, pts, (size_t)n * sizeof *u);
  qsort(u, (size_t)n, sizeof *u, cmp_i64);
  size_t k = 0;
  for (int i = 0; i < n; i++)
    if (k == 0 || u[k - 1] != u[i]) u[k++] = u[i];
  *out = u;
  *m = k;
  return 0;
}

/* Builds out from the selection; bufs[j] (the frame with pts need[j]) is handed to
 * the first output slot showing it and copied for repeats; every buffer is either
 * taken or freed. */
static int assemble(vb_frames *out, int count, const int64_t *index, const int64_t *sel_pts,
                    const int64_t *need, size_t m, uint8_t **bufs, const int *ws, const int *hs,
                    AVRational tb, int64_t total) {
  memset(out, 0, sizeof *out);
  int rc = 0;
  uint8_t **owner = vb_calloc(m ? m : 1, sizeof *owner);
  out->rgb = vb_calloc((size_t)count, sizeof *out->rgb);
  out->index = vb_calloc((size_t)count, sizeof *out->index);
  out->pts = vb_calloc((size_t)count, sizeof *out->pts);
  out->seconds = vb_calloc((size_t)count, sizeof *out->seconds);
  out->count = count;
  out->total_in_window = total;
  if (!owner || !out->rgb || !out->index || !out->pts || !out->seconds) rc = -1;
  for (int i = 0; i < count && rc == 0; i++) {
    ptrdiff_t j = find_i64(need, m, sel_pts[i]);
    if (j < 0 || !(owner[j] || bufs[j])) {
      rc = vb_error("frame with pts %lld was not decoded", (long long)sel_pts[i]);
      break;
    }
    if (i == 0) {
      out->width = ws[j];
      out->height = hs[j];
    } else if (ws[j] != out->width || hs[j] != out->height) {
      rc = vb_error("frame size changes within the video (%dx%d, then %dx%d)", out->width,
                    out->height, ws[j], hs[j]);
      break;
    }
    size_t n = (size_t)ws[j] * hs[j] * 3;
    if (!owner[j]) {
      owner[j] = bufs[j];
      bufs[j] = NULL;
      out->rgb[i] = owner[j];
    } else {
      out->rgb[i] = vb_malloc(n);
      if (!out->rgb[i]) {
        rc = -1;
        break;
      }
      memcpy(out->rgb[i], owner[j], n);
    }
    out->index[i] = index[i];
    out->pts[i] = sel_pts[i];
    out->seconds[i] = pts_seconds(sel_pts[i], tb);
  }
  for (size_t j = 0; j < m; j++) {
    free(bufs[j]);
    bufs[j] = NULL;
  }
  free(owner);
  if (rc != 0) vb_frames_free(out);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Still images                                                        */

typedef struct {
  dec_t *d;
  uint8_t *rgb;
  int w, h;
  int64_t pts;
} still_ctx;

static int still_fn(void *ctx, AVFrame *f) {
  still_ctx *c = ctx;
  int64_t p = frame_pts(c->d, f);
  c->pts = p == AV_NOPTS_VALUE ? 0 : p;
  return frame_to_rgb(c->d, f, &c->rgb, &c->w, &c->h) != 0 ? -1 : 1;
}

static int read_still(dec_t *d, vb_frames *out) {
  still_ctx c = {.d = d};
  if (decode_rest(d, still_fn, &c) != 0) {
    free(c.rgb);
    return -1;
  }
  if (!c.rgb) return vb_error("the image could not be decoded (a truncated or corrupt file?)");
  int64_t zero = 0;
  int w = c.w, h = c.h;
  /* An image is a one-frame clip: index 0 whatever the sampling mode. */
  return assemble(out, 1, &zero, &c.pts, &c.pts, 1, &c.rgb, &w, &h, d->tb, 1);
}

/* ------------------------------------------------------------------ */
/* Full decode (the reference semantics)                               */

typedef struct {
  dec_t *d;
  const window_t *w;
  int64_t *pts;
  size_t n, cap;
  size_t before; /* frames before the window */
} count_ctx;

static int count_fn(void *ctx, AVFrame *f) {
  count_ctx *c = ctx;
  int64_t p = frame_pts(c->d, f);
  if (p == AV_NOPTS_VALUE) return vb_error("a decoded frame has no timestamp");
  if (p >= c->w->end) return 1; /* pytorchvideo stops at the first frame past the clip */
  if (p < c->w->start) return c->before++, 0;
  return push_i64(&c->pts, &c->n, &c->cap, p);
}

typedef struct {
  dec_t *d;
  const window_t *w;
  const int64_t *need;
  size_t m, got;
  uint8_t **bufs;
  int *ws, *hs;
  int has_dups;
} convert_ctx;

static int convert_fn(void *ctx, AVFrame *f) {
  convert_ctx *c = ctx;
  int64_t p = frame_pts(c->d, f);
  if (p == AV_NOPTS_VALUE) return vb_error("a decoded frame has no timestamp");
  if (p >= c->w->end) return 1;
  if (p < c->w->start) return 0;
  ptrdiff_t j = find_i64(c->need, c->m, p);
  if (j < 0) return 0;
  /* One frame per pts, the last decoded one winning (pytorchvideo's dict). */
  if (c->bufs[j]) {
    free(c->bufs[j]);
    c->bufs[j] = NULL;
  } else {
    c->got++;
  }
  if (frame_to_rgb(c->d, f, &c->bufs[j], &c->ws[j], &c->hs[j]) != 0) return -1;
  return (!c->has_dups && c->got == c->m) ? 1 : 0;
}

static int read_full(const char *path, const window_t *w, int threads, vb_video_stats *stats,
                     vb_frames *out) {
  dec_t d;
  int rc = -1;
  count_ctx cc = {.w = w};
  int64_t *idx = NULL, *sel = NULL, *need = NULL;
  uint8_t **bufs = NULL;
  int *ws = NULL, *hs = NULL;
  int count = 0;
  size_t m = 0;

  /* Pass 1: the pts of every frame of the window. */
  if (dec_open(&d, path, threads, stats, 1) != 0) goto done;
  cc.d = &d;
  if (decode_rest(&d, count_fn, &cc) != 0) goto done;
  dec_close(&d);
  if (cc.n) qsort(cc.pts, cc.n, sizeof *cc.pts, cmp_i64);
  size_t T = 0;
  int dups = 0;
  for (size_t i = 0; i < cc.n; i++) {
    if (T && cc.pts[T - 1] == cc.pts[i])
      dups = 1;
    else
      cc.pts[T++] = cc.pts[i];
  }
  if (select_indices(w, (int64_t)T, &idx, &count) != 0) goto done;
  sel = vb_malloc((size_t)count * sizeof *sel);
  if (!sel) goto done;
  for (int i = 0; i < count; i++)
    sel[i] = cc.pts[idx[i]];
  if (unique_sorted(sel, count, &need, &m) != 0) goto done;

  /* Pass 2: decode again, converting only the selected frames. */
  bufs = vb_calloc(m, sizeof *bufs);
  ws = vb_calloc(m, sizeof *ws);
  hs = vb_calloc(m, sizeof *hs);
  if (!bufs || !ws || !hs) goto done;
  convert_ctx xc = {
      .w = w, .need = need, .m = m, .bufs = bufs, .ws = ws, .hs = hs, .has_dups = dups};
  if (dec_open(&d, path, threads, stats, 1) != 0) goto done;
  xc.d = &d;
  if (decode_rest(&d, convert_fn, &xc) != 0) goto done;
  rc = assemble(out, count, idx, sel, need, m, bufs, ws, hs, d.tb, (int64_t)T);
  if (rc == 0) out->first_index = (int64_t)cc.before;
done:
  dec_close(&d);
  if (bufs)
    for (size_t j = 0; j < m; j++)
      free(bufs[j]);
  free(bufs);
  free(ws);
  free(hs);
  free(cc.pts);
  free(idx);
  free(sel);
  free(need);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Fast path                                                           */

typedef struct {
  int64_t pts, dts;
  int key;
} pkrec;

typedef struct {
  dec_t *d;
  pkrec *rec; /* video packets in decode order */
  size_t nrec;
  int64_t *spts; /* packet pts, sorted */
  int *sidx;     /* packet index of spts[i] */
  int cur;       /* index of the packet in d.pkt; -1 none yet; INT_MAX position unknown */
  /* decoded-run checking */
  int64_t safe_from, check_until;
  ptrdiff_t expect; /* sorted position of the next frame expected */
  int bad;
  /* targets */
  const int64_t *need;
  size_t m;
  uint8_t **bufs;
  int *ws, *hs;
  char *got;
} fast_t;

typedef struct {
  int64_t pts;
  int idx;
} pair_t;

static int cmp_pair(const void *a, const void *b) {
  const pair_t *x = a, *y = b;
  return (x->pts > y->pts) - (x->pts < y->pts);
}

/* Demux-only scan. Returns 0, 1 when the packets cannot be trusted (fall back), -1. */
static int fast_scan(fast_t *F, const window_t *w) {
  size_t cap = 0;
  int monotonic = 1;
  int64_t last_dts = INT64_MIN;
  while (read_video_packet(F->d) == 0) {
    const AVPacket *p = F->d->pkt;
    if (p->pts == AV_NOPTS_VALUE || (p->flags & (AV_PKT_FLAG_DISCARD | AV_PKT_FLAG_CORRUPT)))
      return 1;
    if (F->nrec == cap) {
      size_t nc = cap ? cap * 2 : 1024;
      if (nc > (size_t)INT_MAX / 2) return 1;
      pkrec *r = vb_realloc(F->rec, nc * sizeof *r);
      if (!r) return -1;
      F->rec = r;
      cap = nc;
    }
    F->rec[F->nrec++] = (pkrec){p->pts, p->dts, (p->flags & AV_PKT_FLAG_KEY) != 0};
    if (p->dts == AV_NOPTS_VALUE || p->dts < last_dts || p->pts < p->dts)
      monotonic = 0;
    else
      last_dts = p->dts;
    /* Decode timestamps only grow and pts >= dts, so nothing later is in the window. */
    if (monotonic && w->end != INT64_MAX && p->dts >= w->end) break;
  }
  if (F->nrec == 0 || !F->rec[0].key) return 1;
  pair_t *pr = vb_malloc(F->nrec * sizeof *pr);
  F->spts = vb_malloc(F->nrec * sizeof *F->spts);
  F->sidx = vb_malloc(F->nrec * sizeof *F->sidx);
  if (!pr || !F->spts || !F->sidx) {
    free(pr);
    return -1;
  }
  for (size_t i = 0; i < F->nrec; i++)
    pr[i] = (pair_t){F->rec[i].pts, (int)i};
  qsort(pr, F->nrec, sizeof *pr, cmp_pair);
  int dup = 0;
  for (size_t i = 0; i < F->nrec; i++) {
    F->spts[i] = pr[i].pts;
    F->sidx[i] = pr[i].idx;
    if (i && pr[i].pts == pr[i - 1].pts) dup = 1;
  }
  free(pr);
  return dup ? 1 : 0;
}

/* Reads the next packet and identifies it: 0, 1 at the end, 2 when it is not the
 * packet the scan saw next. */
static int fast_next(fast_t *F) {
  if (read_video_packet(F->d) != 0) return 1;
  ptrdiff_t s = find_i64(F->spts, F->nrec, F->d->pkt->pts);
  if (s < 0) return 2;
  int idx = F->sidx[s];
  if (F->cur != -1 && F->cur != INT_MAX && idx != F->cur + 1) return 2;
  if (F->cur == -1 && idx != 0) return 2;
  F->cur = idx;
  return 0;
}

/* Leaves packet k in d.pkt. 0, 1 when positioning failed (fall back), -1 on error. */
static int fast_position(fast_t *F, int k) {
  int r;
  if (F->cur == INT_MAX || F->cur >= k || k - F->cur > VB_SEEK_GAP) {
    int landed = 0, kt = k;
    for (int tries = 0; tries < 3 && kt >= 0 && !landed; tries++) {
      const pkrec *t = &F->rec[kt];
      int64_t ts = (t->dts != AV_NOPTS_VALUE && t->dts < t->pts) ? t->dts : t->pts;
      F->d->stats->seeks++;
      if (av_seek_frame(F->d->fmt, F->d->si, ts, AVSEEK_FLAG_BACKWARD) < 0) break;
      F->cur = INT_MAX; /* unknown until a packet is read */
      if (fast_next(F) != 0) break;
      if (F->cur <= k)
        landed = 1;
      else /* landed past the keyframe: aim at the keyframe before */
        for (kt--; kt >= 0 && !F->rec[kt].key; kt--) {
        }
    }
    if (!landed) {
      /* Seeking did not land before the keyframe: read from the start instead. */
      close_input(F->d);
      if (open_input(F->d) != 0) return -1;
      F->cur = -1;
      if (fast_next(F) != 0) return 1;
    }
  } else if ((r = fast_next(F)) != 0) {
    return 1;
  }
  while (F->cur < k)
    if (fast_next(F) != 0) return 1;
  return F->cur == k ? 0 : 1;
}

static int fast_frame_fn(void *ctx, AVFrame *f) {
  fast_t *F = ctx;
  int64_t p = f->pts;
  if (p == AV_NOPTS_VALUE) {
    F->bad = 1;
    return 1;
  }
  /* Frames before the keyframe (open-GOP leading pictures) may lack references;
   * frames past the last target are not needed. */
  if (p < F->safe_from || p > F->check_until) return 0;
  ptrdiff_t s = find_i64(F->spts, F->nrec, p);
  if (s < 0 || s != F->expect) {
    F->bad = 1; /* a frame the packets did not announce, or one missing */
    return 1;
  }
  F->expect++;
  ptrdiff_t j = find_i64(F->need, F->m, p);
  if (j >= 0 && !F->got[j]) {
    if (frame_to_rgb(F->d, f, &F->bufs[j], &F->ws[j], &F->hs[j]) != 0) return -1;
    F->got[j] = 1;
  }
  return 0;
}

/* Largest index of k among targets' keyframe search: the last keyframe at or before
 * packet ip whose pts is not after the target. */
static int key_before(const fast_t *F, int ip, int64_t target) {
  for (int i = ip; i >= 0; i--)
    if (F->rec[i].key && F->rec[i].pts <= target) return i;
  return -1;
}

/* One decoded run from keyframe k for target j and the targets that join it; *last
 * receives the last target covered. 0, 1 when the run did not give what the packets
 * promised, 2 when positioning failed, -1 on error. */
static int fast_run(fast_t *F, size_t j, int k, const int *kk, size_t *last_target) {
  size_t m = F->m;
  int r = fast_position(F, k);
  if (r != 0) return r < 0 ? -1 : 2;
  avcodec_flush_buffers(F->d->dec);
  F->safe_from = F->rec[k].pts;
  ptrdiff_t spos = find_i64(F->spts, F->nrec, F->safe_from);
  if (spos < 0) return 2;
  /* The run must decode every packet whose frame is shown from the keyframe up to
   * the last target; later targets join while their keyframe is inside the run. */
  ptrdiff_t scan = spos;
  int end_idx = k;
  size_t e = j;
  for (;;) {
    ptrdiff_t tpos = find_i64(F->spts, F->nrec, F->need[e]);
    for (; scan <= tpos; scan++)
      if (F->sidx[scan] > end_idx) end_idx = F->sidx[scan];
    F->check_until = F->need[e];
    size_t nx = e + 1;
    while (nx < m && F->got[nx])
      nx++;
    if (nx >= m || kk[nx] < k || kk[nx] > end_idx) break;
    e = nx;
  }
  *last_target = e;
  F->expect = spos;
  F->bad = 0;
  int rc = 0;
  int s = dec_feed(F->d, F->d->pkt, fast_frame_fn, F);
  while (s == 0 && F->cur < end_idx) {
    if (fast_next(F) != 0) {
      rc = 1;
      break;
    }
    s = dec_feed(F->d, F->d->pkt, fast_frame_fn, F);
  }
  if (s == 0 && rc == 0) s = dec_feed(F->d, NULL, fast_frame_fn, F);
  avcodec_flush_buffers(F->d->dec); /* also re-arms the decoder after draining */
  if (s < 0) return -1;
  if (rc != 0 || F->bad || s == 1) return 1;
  if (F->expect != find_i64(F->spts, F->nrec, F->check_until) + 1) return 1;
  for (size_t t = j; t <= e; t++)
    if (!F->got[t]) return 1;
  return 0;
}

/* Decodes the targets. 0, 1 to fall back, -1 on error. */
static int fast_decode(fast_t *F) {
  size_t m = F->m;
  int *ip = vb_malloc(m * sizeof *ip), *kk = vb_malloc(m * sizeof *kk);
  int rc = 0;
  if (!ip || !kk) {
    rc = -1;
    goto done;
  }
  for (size_t j = 0; j < m; j++) {
    ptrdiff_t s = find_i64(F->spts, F->nrec, F->need[j]);
    ip[j] = s < 0 ? -1 : F->sidx[s];
    kk[j] = s < 0 ? -1 : key_before(F, ip[j], F->need[j]);
    if (kk[j] < 0) {
      rc = 1;
      goto done;
    }
  }
  for (size_t j = 0; j < m && rc == 0;) {
    if (F->got[j]) {
      j++;
      continue;
    }
    /* A run can come up short when frames after the keyframe still refer to frames
     * before it (open GOPs): retry from up to two earlier keyframes. */
    int k = kk[j];
    for (int tries = 0;; tries++) {
      size_t e = j;
      int r = fast_run(F, j, k, kk, &e);
      if (r == 0) {
        j = e + 1;
        break;
      }
      int pk = (r == 1 && tries < 2 && k > 0) ? key_before(F, k - 1, INT64_MAX) : -1;
      if (r < 0 || pk < 0) {
        rc = r < 0 ? -1 : 1;
        break;
      }
      k = pk;
    }
  }
done:
  free(ip);
  free(kk);
  return rc;
}

/* Uses the opened input d (closed on return). 0 with out filled, 1 to fall back to
 * the full path, -1 on error. */
static int read_fast(dec_t *d, const window_t *w, vb_frames *out) {
  fast_t F;
  memset(&F, 0, sizeof F);
  F.d = d;
  int rc, count = 0;
  int64_t *win = NULL, *idx = NULL, *sel = NULL, *need = NULL;
  size_t m = 0;
  if ((rc = fast_scan(&F, w)) != 0) goto done;
  rc = -1;
  size_t T = 0;
  win = vb_malloc(F.nrec * sizeof *win);
  if (!win) goto done;
  for (size_t i = 0; i < F.nrec; i++)
    if (F.spts[i] >= w->start && F.spts[i] < w->end) win[T++] = F.spts[i];
  if (select_indices(w, (int64_t)T, &idx, &count) != 0) goto done;
  sel = vb_malloc((size_t)count * sizeof *sel);
  if (!sel) goto done;
  for (int i = 0; i < count; i++)
    sel[i] = win[idx[i]];
  if (unique_sorted(sel, count, &need, &m) != 0) goto done;
  F.need = need;
  F.m = m;
  F.bufs = vb_calloc(m, sizeof *F.bufs);
  F.ws = vb_calloc(m, sizeof *F.ws);
  F.hs = vb_calloc(m, sizeof *F.hs);
  F.got = vb_calloc(m, 1);
  if (!F.bufs || !F.ws || !F.hs || !F.got) goto done;
  if (open_decoder(F.d) != 0) goto done;
  F.cur = INT_MAX; /* the scan left the demuxer somewhere near the end */
  if ((rc = fast_decode(&F)) != 0) goto done;
  rc = assemble(out, count, idx, sel, need, m, F.bufs, F.ws, F.hs, F.d->tb, (int64_t)T);
  if (rc == 0) {
    d->stats->fast_path = 1;
    int64_t before = 0; /* the scan listed every packet from the stream's start */
    for (size_t i = 0; i < F.nrec; i++)
      before += F.spts[i] < w->start;
    out->first_index = before;
  }
done:
  dec_close(F.d);
  if (F.bufs)
    for (size_t j = 0; j < m; j++)
      free(F.bufs[j]);
  free(F.bufs);
  free(F.ws);
  free(F.hs);
  free(F.got);
  free(F.rec);
  free(F.spts);
  free(F.sidx);
  free(win);
  free(idx);
  free(sel);
  free(need);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */

static int read_video(const char *path, const vb_sampling *s, const vb_video_opts *o,
                      vb_frames *out, vb_video_stats *stats, double *duration);

/* "[S s, E s)" or "[S s, the end)" */
static const char *window_text(const vb_sampling *s, char *buf, size_t n) {
  if (s->end_sec < 0 || isinf(s->end_sec))
    snprintf(buf, n, "[%g s, the end)", s->start_sec);
  else
    snprintf(buf, n, "[%g s, %g s)", s->start_sec, s->end_sec);
  return buf;
}

int vb_video_read_ex(const char *path, const vb_sampling *s, const vb_video_opts *o, vb_frames *out,
                     vb_video_stats *stats) {
  double duration = -1;
  g_window_empty = 0;
  if (read_video(path, s, o, out, stats, &duration) == 0) return 0;
  if (g_window_empty && s && s->mode == VB_SAMPLE_UNIFORM) {
    char win[96];
    if (duration >= 0)
      vb_error("no frames in the window %s: the video lasts %.3g s",
               window_text(s, win, sizeof win), duration);
    else
      vb_error("no frames in the window %s", window_text(s, win, sizeof win));
  } else if (g_window_empty) {
    vb_error("no frames in the demo's window [0 s, 10 s)");
  }
  /* every message below names no file: the path is named here, once */
  return vb_error_context("%s", path ? path : "(no path)");
}

static int read_video(const char *path, const vb_sampling *s, const vb_video_opts *o,
                      vb_frames *out, vb_video_stats *stats, double *duration) {
  vb_ffmpeg_log_init();
  vb_video_stats local;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (!out) return vb_error("vb_video_read: no output");
  memset(out, 0, sizeof *out);
  if (!path || !s) return vb_error("vb_video_read: missing path or sampling");
  if (s->mode != VB_SAMPLE_UNIFORM && s->mode != VB_SAMPLE_DEMO)
    return vb_error("unknown sampling mode %d", (int)s->mode);
  if (s->mode == VB_SAMPLE_UNIFORM && (s->n_frames <= 0 || s->n_frames > VB_MAX_SELECTED))
    return vb_error("number of frames must be between 1 and %d (got %d)", VB_MAX_SELECTED,
                    s->n_frames);
  if (s->mode == VB_SAMPLE_UNIFORM && (!isfinite(s->start_sec) || isnan(s->end_sec)))
    return vb_error("invalid time window [%g, %g)", s->start_sec, s->end_sec);
  if (s->mode == VB_SAMPLE_UNIFORM && s->end_sec >= 0 && s->end_sec <= s->start_sec)
    return vb_error("the time window [%g s, %g s) is empty: its end must come after its start",
                    s->start_sec, s->end_sec);
  if (o && (o->threads < 0 || o->threads > 256))
    return vb_error("invalid decoder thread count %d", o->threads);

  struct stat stt;
  if (stat(path, &stt) != 0) return vb_error("%s", strerror(errno));
  if (!S_ISREG(stt.st_mode)) return vb_error("%s, not a video file", vb_file_kind(stt.st_mode));
  if (stt.st_size == 0) return vb_error("the file is empty");

  int threads = o ? o->threads : 0;
  const char *env = getenv("VBLIP_VIDEO_FULL_DECODE");
  int force_full = (o && o->force_full) || (env && env[0] && strcmp(env, "0") != 0);

  dec_t d;
  if (dec_open(&d, path, threads, stats, 0) != 0) {
    dec_close(&d);
    return -1;
  }
  if (d.still) {
    /* An image is a one-frame clip whatever the sampling. */
    int r = open_decoder(&d) == 0 ? read_still(&d, out) : -1;
    dec_close(&d);
    return r;
  }
  window_t w;
  if (s->mode == VB_SAMPLE_DEMO) {
    w.start = secs_to_pts(0.0, d.tb, d.start_time);
    w.end = secs_to_pts(10.0, d.tb, d.start_time);
    w.n = 0;
  } else {
    w.start = secs_to_pts(s->start_sec, d.tb, d.start_time);
    w.end = (s->end_sec < 0 || isinf(s->end_sec)) ? INT64_MAX
                                                  : secs_to_pts(s->end_sec, d.tb, d.start_time);
    w.n = s->n_frames;
  }
  w.mode = s->mode;
  if (d.fmt->duration != AV_NOPTS_VALUE && d.fmt->duration > 0)
    *duration = d.fmt->duration / (double)AV_TIME_BASE;
  if (w.end <= w.start) {
    dec_close(&d);
    g_window_empty = 1;
    return vb_error("no frames in window");
  }
  if (!force_full) {
    int r = read_fast(&d, &w, out);
    if (r <= 0) return r;
    memset(out, 0, sizeof *out);
  } else {
    dec_close(&d);
  }
  return read_full(path, &w, threads, stats, out);
}

int vb_video_read(const char *path, const vb_sampling *s, vb_frames *out) {
  vb_video_opts o;
  vb_video_opts_default(&o);
  return vb_video_read_ex(path, s, &o, out, NULL);
}
