/* The frame stream: one decoder pass over a file, a pipe or a live URL, handing out the frame
 * shown at each requested time. Times run from the first decoded frame, so a live stream that
 * starts mid-way and a file read whole count the same way. Only two frames are held at once
 * (the one shown at the last request and the first one after it). */
#include "video/frame_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#ifdef VBLIP_HAVE_AVDEVICE
#include <libavdevice/avdevice.h>
#endif

#include "runtime/common.h"
#include "video/frame_rgb.h"

/* Damaged packets and frames are skipped, as the ffmpeg tool does, but not forever. */
#define MAX_DECODE_ERRORS 1000

struct vb_frame_stream {
  AVFormatContext *fmt;
  AVCodecContext *dec;
  AVPacket *pkt;
  struct SwsContext *sws;
  int si;
  AVRational tb;
  int64_t origin;    /* pts of the first frame */
  double started_ms; /* wall clock at the first frame, < 0 before */
  AVFrame *held;     /* the frame shown at the last request */
  double held_t;
  AVFrame *next; /* the first frame after it, when already decoded */
  double next_t;
  double last_step;    /* seconds between the last two frames: how long the last one shows */
  double nominal_step; /* one period of the stream's frame rate, 0 when unknown */
  int draining, eof;
  int errors;
};

int vb_source_is_live(const char *source) {
  return !strcmp(source, "-") || strstr(source, "://") != NULL || !strncmp(source, "/dev/", 5);
}

static int is_url(const char *source) {
  return strstr(source, "://") != NULL;
}

/* Containers that are never a video file of the user's (text, playlists, scripts): as the
 * whole-file reader, except that a playlist is what an http(s) URL may well be (HLS). */
static int format_refused(const char *name, int allow_playlists) {
  static const char *refused[] = {"tty",    "bin",   "xbin", "adf",        "idf",
                                  "concat", "lavfi", "sdp",  "ffmetadata", "data"};
  static const char *playlists[] = {"hls", "dash"};
  char buf[256];
  snprintf(buf, sizeof buf, "%s", name);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
      if (!strcmp(tok, refused[i])) return 1;
    for (size_t i = 0; !allow_playlists && i < sizeof playlists / sizeof playlists[0]; i++)
      if (!strcmp(tok, playlists[i])) return 1;
  }
  return 0;
}

static const char *av_text(int e, char *buf, size_t n) {
  av_strerror(e, buf, n);
  return buf;
}
#define AVTEXT(e) av_text((e), (char[AV_ERROR_MAX_STRING_SIZE]){0}, AV_ERROR_MAX_STRING_SIZE)

static int open_format(vb_frame_stream *s, const char *source, vb_source_kind kind) {
  AVDictionary *opts = NULL;
  const AVInputFormat *ifmt = NULL;
  const char *url = source;
  int live = kind == VB_SOURCE_LIVE;
  if (!strcmp(source, "-")) {
    url = "pipe:0";
    av_dict_set(&opts, "protocol_whitelist", "pipe", 0);
  } else if (is_url(source)) {
    if (!live) return vb_error("%s: a URL is read only as a live source", source);
    /* no file: a remote playlist must not name local files */
    av_dict_set(&opts, "protocol_whitelist", "http,https,tcp,tls,udp,rtp,rtsp,srt,crypto", 0);
  } else if (!strncmp(source, "/dev/", 5) && live) {
#ifdef VBLIP_HAVE_AVDEVICE
    avdevice_register_all();
    ifmt = av_find_input_format("video4linux2");
#endif
    if (!ifmt)
      return vb_error("%s: capture devices need FFmpeg's libavdevice, which this vblip was built "
                      "without",
                      source);
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
  } else {
    /* a FIFO, a device or a socket given as a file would block or never end: refused */
    struct stat st;
    if (stat(source, &st) != 0) return vb_error("%s: %s", source, strerror(errno));
    if (!S_ISREG(st.st_mode))
      return vb_error("%s: %s, not a video file", source, vb_file_kind(st.st_mode));
    if (st.st_size == 0) return vb_error("%s: the file is empty", source);
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
  }
  if (live) {
    /* start within a second or so instead of probing megabytes of a slow stream */
    av_dict_set(&opts, "probesize", "1000000", 0);
    av_dict_set(&opts, "analyzeduration", "2000000", 0);
    av_dict_set(&opts, "rw_timeout", "30000000", 0); /* a stalled network source ends */
  }
  int r = avformat_open_input(&s->fmt, url, ifmt, &opts);
  av_dict_free(&opts);
  if (r < 0) {
    s->fmt = NULL;
    return vb_error("cannot open %s: %s", source, AVTEXT(r));
  }
  if (format_refused(s->fmt->iformat->name, is_url(source)))
    return vb_error("%s: not a video (detected format '%s')", source, s->fmt->iformat->name);
  r = avformat_find_stream_info(s->fmt, NULL);
  if (r < 0) return vb_error("%s: cannot read the stream information: %s", source, AVTEXT(r));
  return 0;
}

static int open_decoder(vb_frame_stream *s, const char *source) {
  s->si = av_find_best_stream(s->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  if (s->si < 0) return vb_error("%s: no video stream", source);
  AVStream *st = s->fmt->streams[s->si];
  if (st->time_base.num <= 0 || st->time_base.den <= 0)
    return vb_error("%s: the video stream has an invalid time base", source);
  s->tb = st->time_base;
  AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
  if (fr.num > 0 && fr.den > 0) s->nominal_step = (double)fr.den / fr.num;
  const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec)
    return vb_error("%s: no decoder for codec '%s'", source,
                    avcodec_get_name(st->codecpar->codec_id));
  s->dec = avcodec_alloc_context3(codec);
  if (!s->dec) return vb_error("out of memory creating a decoder");
  int r = avcodec_parameters_to_context(s->dec, st->codecpar);
  if (r < 0) return vb_error("%s: bad codec parameters: %s", source, AVTEXT(r));
  s->dec->pkt_timebase = s->tb;
  s->dec->thread_count = 0;
  s->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
  r = avcodec_open2(s->dec, codec, NULL);
  if (r < 0) return vb_error("%s: cannot open the %s decoder: %s", source, codec->name, AVTEXT(r));
  return 0;
}

vb_frame_stream *vb_frame_stream_open(const char *source, vb_source_kind kind) {
  vb_ffmpeg_log_init();
  vb_frame_stream *s = vb_calloc(1, sizeof *s);
  if (!s) return NULL;
  s->started_ms = -1;
  s->origin = AV_NOPTS_VALUE;
  s->pkt = av_packet_alloc();
  if (!s->pkt) {
    vb_error("out of memory allocating decoder buffers");
    vb_frame_stream_close(s);
    return NULL;
  }
  if (open_format(s, source, kind) != 0 || open_decoder(s, source) != 0) {
    vb_frame_stream_close(s);
    return NULL;
  }
  return s;
}

void vb_frame_stream_close(vb_frame_stream *s) {
  if (!s) return;
  av_frame_free(&s->held);
  av_frame_free(&s->next);
  avcodec_free_context(&s->dec);
  avformat_close_input(&s->fmt);
  av_packet_free(&s->pkt);
  sws_freeContext(s->sws);
  free(s);
}

double vb_frame_stream_started_ms(const vb_frame_stream *s) {
  return s->started_ms;
}

/* The next decoded frame into *out (a new frame): 0, 1 at the end of the input, -1. */
static int decode_next(vb_frame_stream *s, AVFrame **out) {
  AVFrame *f = av_frame_alloc();
  if (!f) return vb_error("out of memory allocating a frame");
  for (;;) {
    int r = avcodec_receive_frame(s->dec, f);
    if (r == 0) {
      *out = f;
      return 0;
    }
    if (r == AVERROR_EOF) break;
    if (r != AVERROR(EAGAIN)) {
      if (++s->errors > MAX_DECODE_ERRORS) {
        av_frame_free(&f);
        return vb_error("the decoder keeps failing: %s", AVTEXT(r));
      }
      continue;
    }
    if (s->draining) break;
    /* the decoder wants input: the next packet of the video stream, or the flush */
    for (;;) {
      av_packet_unref(s->pkt);
      r = av_read_frame(s->fmt, s->pkt);
      if (r < 0 || s->pkt->stream_index == s->si) break;
    }
    if (r < 0) {
      s->draining = 1; /* end of input, or a read error, which ends it too */
      avcodec_send_packet(s->dec, NULL);
    } else if (avcodec_send_packet(s->dec, s->pkt) < 0 && ++s->errors > MAX_DECODE_ERRORS) {
      av_frame_free(&f);
      return vb_error("the decoder keeps refusing packets");
    }
  }
  av_frame_free(&f);
  return 1;
}

/* Time of f in seconds after the first frame (which sets the origin). */
static int frame_time(vb_frame_stream *s, const AVFrame *f, double *t) {
  int64_t p = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
  if (p == AV_NOPTS_VALUE) return 1; /* cannot be placed in time: skipped */
  if (s->origin == AV_NOPTS_VALUE) {
    s->origin = p;
    s->started_ms = vb_now_ms();
  }
  if (p < s->origin) return 1;
  *t = (double)(p - s->origin) * s->tb.num / s->tb.den;
  return 0;
}

/* Makes s->next the first frame after s->held (decoding it when needed): 0, 1 at the end. */
static int fill_next(vb_frame_stream *s) {
  while (!s->next && !s->eof) {
    AVFrame *f = NULL;
    int r = decode_next(s, &f);
    if (r < 0) return -1;
    if (r == 1) {
      s->eof = 1;
      break;
    }
    double t;
    if (frame_time(s, f, &t) != 0 || (s->held && t <= s->held_t)) {
      av_frame_free(&f); /* no time, or out of order: never shown */
      continue;
    }
    s->next = f;
    s->next_t = t;
  }
  return s->next ? 0 : 1;
}

int vb_frame_stream_at(vb_frame_stream *s, double t, uint8_t **rgb, int *w, int *h,
                       double *shown_at) {
  *rgb = NULL;
  for (;;) {
    int r = fill_next(s);
    if (r < 0) return -1;
    if (r == 1 || s->next_t > t) break;
    if (s->held) s->last_step = s->next_t - s->held_t;
    av_frame_free(&s->held);
    s->held = s->next;
    s->held_t = s->next_t;
    s->next = NULL;
  }
  if (!s->held) return 1;
  if (!s->next) {
    /* the last frame shows for one frame period (or as long as the one before it) */
    double step = s->nominal_step > 0 ? s->nominal_step : s->last_step;
    if (t >= s->held_t + step) return 1;
  }
  const AVFrame *f = s->held;
  size_t n = (size_t)f->width * (size_t)f->height * 3;
  if (f->width <= 0 || f->height <= 0 || f->width > 16384 || f->height > 16384)
    return vb_error("invalid frame size %dx%d", f->width, f->height);
  uint8_t *buf = vb_malloc(n);
  if (!buf) return -1;
  if (vb_frame_rgb24(&s->sws, f, buf) != 0) {
    free(buf);
    return -1;
  }
  *rgb = buf;
  *w = f->width;
  *h = f->height;
  *shown_at = s->held_t;
  return 0;
}

int vb_frames_at_times(const char *path, const double *times, int n, vb_frames *out) {
  memset(out, 0, sizeof *out);
  if (n <= 0 || n > 10000)
    return vb_error("between 1 and 10000 frame times are needed (got %d)", n);
  for (int i = 0; i < n; i++)
    if (!(times[i] >= 0) || times[i] > 1e9 || (i > 0 && times[i] < times[i - 1]))
      return vb_error("frame times must be ascending numbers of seconds >= 0");
  vb_frame_stream *s = vb_frame_stream_open(path, VB_SOURCE_FILE);
  if (!s) return -1;
  out->rgb = vb_calloc((size_t)n, sizeof *out->rgb);
  out->index = vb_calloc((size_t)n, sizeof *out->index);
  out->pts = vb_calloc((size_t)n, sizeof *out->pts);
  out->seconds = vb_calloc((size_t)n, sizeof *out->seconds);
  int rc = out->rgb && out->index && out->pts && out->seconds ? 0 : -1;
  for (int i = 0; i < n && rc == 0; i++) {
    int w, h;
    double at;
    int r = vb_frame_stream_at(s, times[i], &out->rgb[i], &w, &h, &at);
    if (r == 1) rc = vb_error("the video ends before %.3f s", times[i]);
    if (r < 0) rc = -1;
    if (rc != 0) break;
    out->count = i + 1;
    if (i == 0) {
      out->width = w;
      out->height = h;
    } else if (w != out->width || h != out->height) {
      rc = vb_error("frame size changes within the video (%dx%d, then %dx%d)", out->width,
                    out->height, w, h);
    }
    out->seconds[i] = at;
    out->pts[i] = s->origin + (int64_t)(at * s->tb.den / s->tb.num + 0.5);
    out->index[i] = i;
  }
  out->total_in_window = out->count;
  vb_frame_stream_close(s);
  if (rc != 0) vb_frames_free(out);
  return rc;
}
