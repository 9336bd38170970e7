/* libFuzzer target: a video or image file as a user (or an upload) hands it over, read by
 * vb_video_read_ex (src/video/video.c) with uniform sampling: first through the
 * packet-index fast path, then with the full decode. The bytes sit in a memfd that FFmpeg
 * opens by its /proc path, as it opens any file. Whatever is accepted has frames of a sane
 * size, in order, within the window; whatever is refused says why. FFmpeg is not built
 * with the sanitizers: what this finds is in vblip's handling of what FFmpeg returns. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/common.h"
#include "video/video.h"

#define REQUIRE(c)                                                                                 \
  do {                                                                                             \
    if (!(c)) __builtin_trap();                                                                    \
  } while (0)

static void check(int rc, const vb_frames *f, int n_frames) {
  REQUIRE(rc == 0 || rc == -1);
  if (rc != 0) {
    REQUIRE(vb_error_message()[0] != 0);
    return;
  }
  REQUIRE(f->count >= 1 && f->count <= n_frames);
  REQUIRE(f->width > 0 && f->height > 0);
  REQUIRE(f->total_in_window >= 1 && f->first_index >= 0);
  for (int i = 0; i < f->count; i++) {
    REQUIRE(f->rgb[i] != NULL);
    /* every byte of every frame was written (ASan/MSan would see a read past it) */
    volatile uint8_t sink = f->rgb[i][(size_t)f->width * f->height * 3 - 1];
    (void)sink;
    REQUIRE(f->index[i] >= 0 && f->index[i] < f->total_in_window);
    if (i) REQUIRE(f->index[i] >= f->index[i - 1]);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  /* the first byte picks the sampling: 1-8 frames, a window or the whole video */
  int n_frames = 1 + (data[0] & 7);
  int windowed = (data[0] >> 3) & 1;
  data++, size--;
  int fd = memfd_create("fuzz-video", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t off = 0;
  while (off < size) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0) break;
    off += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  vb_sampling s;
  vb_sampling_default(&s);
  s.mode = VB_SAMPLE_UNIFORM;
  s.n_frames = n_frames;
  if (windowed) s.start_sec = 0.1, s.end_sec = 0.5;
  for (int full = 0; full < 2; full++) {
    vb_video_opts o;
    vb_video_opts_default(&o);
    o.force_full = full;
    o.threads = 1;
    vb_frames f;
    memset(&f, 0, sizeof f);
    int rc = vb_video_read_ex(path, &s, &o, &f, NULL);
    check(rc, &f, n_frames);
    vb_frames_free(&f);
  }
  close(fd);
  return 0;
}
