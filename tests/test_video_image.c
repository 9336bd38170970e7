/* Still images become one RGB frame as PIL's convert("RGB") makes it: PNGs in gray,
 * gray+alpha, RGBA and palette layouts are written with FFmpeg's PNG encoder and
 * read back through vb_video_read. */
#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <stdio.h>
#include <string.h>

#include "runtime/common.h"
#include "testutil.h"
#include "video/video.h"

enum { W = 13, H = 7 };

/* The RGB each layout must give for pixel (x, y). */
static void expected_rgb(enum AVPixelFormat fmt, int x, int y, uint8_t out[3]) {
  uint8_t v = (uint8_t)(x * 19 + y * 31);
  switch (fmt) {
  case AV_PIX_FMT_GRAY8:
  case AV_PIX_FMT_YA8:
    out[0] = out[1] = out[2] = v;
    break;
  case AV_PIX_FMT_PAL8:
    out[0] = (uint8_t)(v % 8 * 30), out[1] = 200, out[2] = (uint8_t)(255 - v % 8 * 30);
    break;
  default:
    out[0] = v, out[1] = (uint8_t)(v ^ 0x5a), out[2] = (uint8_t)(x * 7);
    break;
  }
}

static int write_png(const char *path, enum AVPixelFormat fmt) {
  const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_PNG);
  if (!c) return -1;
  AVCodecContext *ctx = avcodec_alloc_context3(c);
  AVFrame *f = av_frame_alloc();
  AVPacket *pkt = av_packet_alloc();
  int rc = -1;
  ctx->width = W, ctx->height = H, ctx->pix_fmt = fmt, ctx->time_base = (AVRational){1, 25};
  f->width = W, f->height = H, f->format = fmt;
  if (avcodec_open2(ctx, c, NULL) < 0 || av_frame_get_buffer(f, 0) < 0) goto out;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t e[3], v = (uint8_t)(x * 19 + y * 31);
      expected_rgb(fmt, x, y, e);
      uint8_t *p = f->data[0] + y * f->linesize[0];
      if (fmt == AV_PIX_FMT_GRAY8)
        p[x] = v;
      else if (fmt == AV_PIX_FMT_YA8)
        p[2 * x] = v, p[2 * x + 1] = (uint8_t)(x * 20);
      else if (fmt == AV_PIX_FMT_PAL8)
        p[x] = v % 8;
      else
        memcpy(p + 4 * x, e, 3), p[4 * x + 3] = (uint8_t)(y * 40); /* alpha must be dropped */
    }
  if (fmt == AV_PIX_FMT_PAL8)
    for (int i = 0; i < 256; i++) {
      uint32_t col =
          0xff000000u | (uint32_t)(i % 8 * 30) << 16 | 200u << 8 | (uint32_t)(255 - i % 8 * 30);
      memcpy(f->data[1] + 4 * i, &col, 4);
    }
  if (avcodec_send_frame(ctx, f) < 0 || avcodec_send_frame(ctx, NULL) < 0 ||
      avcodec_receive_packet(ctx, pkt) < 0)
    goto out;
  FILE *fp = fopen(path, "wb");
  if (!fp) goto out;
  rc = fwrite(pkt->data, 1, (size_t)pkt->size, fp) == (size_t)pkt->size ? 0 : -1;
  fclose(fp);
out:
  av_packet_free(&pkt);
  av_frame_free(&f);
  avcodec_free_context(&ctx);
  return rc;
}

int main(void) {
  const enum AVPixelFormat fmts[] = {AV_PIX_FMT_GRAY8, AV_PIX_FMT_YA8, AV_PIX_FMT_RGBA,
                                     AV_PIX_FMT_PAL8};
  const char *names[] = {"gray", "gray_alpha", "rgba", "palette"};
  for (int i = 0; i < 4; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.png", tu_tmpdir(), names[i]);
    if (!CHECK(write_png(path, fmts[i]) == 0, "cannot write %s", path)) continue;
    vb_sampling s;
    vb_sampling_default(&s);
    s.mode = VB_SAMPLE_DEMO; /* ignored for images */
    vb_frames f;
    if (!CHECK_OK(vb_video_read(path, &s, &f))) continue;
    CHECK(f.count == 1 && f.index[0] == 0 && f.total_in_window == 1, "%s: one frame", names[i]);
    CHECK(f.width == W && f.height == H, "%s: size %dx%d", names[i], f.width, f.height);
    int bad = 0;
    for (int y = 0; y < H && f.width == W && f.height == H; y++)
      for (int x = 0; x < W; x++) {
        uint8_t e[3];
        expected_rgb(fmts[i], x, y, e);
        bad += memcmp(e, f.rgb[0] + (y * W + x) * 3, 3) != 0;
      }
    CHECK(bad == 0, "%s: %d pixels differ", names[i], bad);
    vb_frames_free(&f);
  }
  return tu_finish();
}
