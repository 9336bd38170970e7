/* Video decoding, frame selection and preprocessing against the fixtures:
 * pts / indices / md5 of every decoded RGB frame, first frame pixel for pixel,
 * frames_224 and pixel_values bit for bit, the fast path against a full decode,
 * windows, and error cases. */
#include <libavutil/md5.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "testutil.h"
#include "video/preprocess.h"
#include "video/video.h"

static void md5_hex(const uint8_t *p, size_t n, char out[33]) {
  uint8_t d[16];
  av_md5_sum(d, p, (int)n);
  for (int i = 0; i < 16; i++)
    sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha256_hex(const void *p, size_t n, char out[65]) {
  struct AVSHA *s = av_sha_alloc();
  uint8_t d[32];
  av_sha_init(s, 256);
  const uint8_t *b = p;
  /* av_sha_update takes an unsigned int length: feed in chunks. */
  while (n) {
    unsigned c = n > (1u << 30) ? (1u << 30) : (unsigned)n;
    av_sha_update(s, b, c);
    b += c;
    n -= c;
  }
  av_sha_final(s, d);
  av_free(s);
  for (int i = 0; i < 32; i++)
    sprintf(out + 2 * i, "%02x", d[i]);
}

static int json_int_at(cJSON *arr, int i, int64_t *v) {
  cJSON *e = cJSON_GetArrayItem(arr, i);
  if (!cJSON_IsNumber(e)) return -1;
  *v = (int64_t)e->valuedouble;
  return 0;
}

static int frames_equal(const vb_frames *a, const vb_frames *b) {
  if (a->count != b->count || a->width != b->width || a->height != b->height ||
      a->total_in_window != b->total_in_window)
    return 0;
  size_t n = (size_t)a->width * a->height * 3;
  for (int i = 0; i < a->count; i++)
    if (a->index[i] != b->index[i] || a->pts[i] != b->pts[i] || a->seconds[i] != b->seconds[i] ||
        memcmp(a->rgb[i], b->rgb[i], n) != 0)
      return 0;
  return 1;
}

/* Preprocessing of one selection: frames_224 exact, sha256 of pixel_values, and the
 * full tensor where stored. */
static void check_preprocess(const char *name, const char *mode, const vb_frames *f, cJSON *jm) {
  vb_image_config cfg;
  CHECK_OK(vb_image_config_load(tu_fixture("models/videoblip-opt-tiny"), &cfg));
  size_t plane = 224 * 224, T = (size_t)f->count;
  uint8_t *f224 = malloc(T * plane * 3);
  float *pv = malloc(T * plane * 3 * sizeof(float));
  if (!CHECK_OK(vb_preprocess_frames(f, &cfg, f224, pv))) goto out;
  char tname[128];
  snprintf(tname, sizeof tname, "media/%s/%s/frames_224", name, mode);
  const vb_tensor_info *ref = tu_ref_tensor(tname);
  if (ref && CHECK(ref->nbytes == T * plane * 3, "%s size", tname)) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < ref->nbytes; i++)
      if (f224[i] != ((const uint8_t *)ref->data)[i] && !bad++) first = i;
    CHECK(bad == 0, "%s: %zu bytes differ (first at %zu: %d vs %d)", tname, bad, first, f224[first],
          ((const uint8_t *)ref->data)[first]);
  }
  char hex[65];
  sha256_hex(pv, T * plane * 3 * sizeof(float), hex);
  cJSON *sha = cJSON_GetObjectItemCaseSensitive(jm, "pixel_values_sha256");
  CHECK(cJSON_IsString(sha) && !strcmp(hex, sha->valuestring), "%s/%s pixel_values sha256 %s", name,
        mode, hex);
  if (cJSON_GetObjectItemCaseSensitive(jm, "pixel_values")) {
    snprintf(tname, sizeof tname, "media/%s/%s/pixel_values", name, mode);
    const vb_tensor_info *pr = tu_ref_tensor(tname);
    if (pr && CHECK(pr->nbytes == T * plane * 3 * sizeof(float), "%s size", tname))
      CHECK(memcmp(pr->data, pv, pr->nbytes) == 0, "%s differs", tname);
  }
out:
  free(f224);
  free(pv);
}

static void check_video(const char *name, const char *mode_name) {
  char key[128];
  snprintf(key, sizeof key, "media.%s", name);
  cJSON *jv = tu_json_path(tu_expected(), key);
  snprintf(key, sizeof key, "media.%s.modes.%s", name, mode_name);
  cJSON *jm = tu_json_path(tu_expected(), key);
  if (!CHECK(jv && jm, "expected.json has %s", key)) return;
  const char *file = cJSON_GetObjectItemCaseSensitive(jv, "file")->valuestring;

  vb_sampling s;
  vb_sampling_default(&s);
  s.mode = !strcmp(mode_name, "demo") ? VB_SAMPLE_DEMO : VB_SAMPLE_UNIFORM;
  vb_frames f;
  vb_video_stats st;
  vb_video_opts o;
  vb_video_opts_default(&o);
  if (!CHECK_OK(vb_video_read_ex(tu_fixture(file), &s, &o, &f, &st))) return;
  int is_image = !strcmp(mode_name, "image");
  if (!is_image) CHECK(st.fast_path == 1, "%s/%s: fast path not taken", name, mode_name);

  cJSON *ji = cJSON_GetObjectItemCaseSensitive(jm, "frame_indices");
  cJSON *jp = cJSON_GetObjectItemCaseSensitive(jm, "pts");
  cJSON *js = cJSON_GetObjectItemCaseSensitive(jm, "seconds");
  cJSON *jmd5 = cJSON_GetObjectItemCaseSensitive(jm, "decoded_rgb_md5");
  int n = cJSON_GetArraySize(ji);
  CHECK(f.count == n, "%s/%s: %d frames, expected %d", name, mode_name, f.count, n);
  if (is_image) {
    cJSON *wh = cJSON_GetObjectItemCaseSensitive(jv, "size_wh");
    CHECK(f.width == cJSON_GetArrayItem(wh, 0)->valueint &&
              f.height == cJSON_GetArrayItem(wh, 1)->valueint,
          "image size %dx%d", f.width, f.height);
    CHECK(f.total_in_window == 1, "image window %lld", (long long)f.total_in_window);
  } else {
    cJSON *st_ = cJSON_GetObjectItemCaseSensitive(jv, "stream");
    CHECK(f.width == cJSON_GetObjectItemCaseSensitive(st_, "width")->valueint &&
              f.height == cJSON_GetObjectItemCaseSensitive(st_, "height")->valueint,
          "%s size %dx%d", name, f.width, f.height);
    const char *src = cJSON_GetObjectItemCaseSensitive(jm, "source_frames")->valuestring;
    cJSON *jsrc = cJSON_GetObjectItemCaseSensitive(jv, src);
    int64_t total = (int64_t)cJSON_GetObjectItemCaseSensitive(jsrc, "n_frames")->valuedouble;
    CHECK(f.total_in_window == total, "%s/%s: %lld frames in window, expected %lld", name,
          mode_name, (long long)f.total_in_window, (long long)total);
  }
  size_t fb = (size_t)f.width * f.height * 3;
  for (int i = 0; i < n && i < f.count; i++) {
    int64_t v;
    if (!json_int_at(ji, i, &v))
      CHECK(f.index[i] == v, "%s/%s index[%d] %lld != %lld", name, mode_name, i,
            (long long)f.index[i], (long long)v);
    if (jp && !json_int_at(jp, i, &v))
      CHECK(f.pts[i] == v, "%s/%s pts[%d] %lld != %lld", name, mode_name, i, (long long)f.pts[i],
            (long long)v);
    if (js)
      CHECK(f.seconds[i] == cJSON_GetArrayItem(js, i)->valuedouble, "%s/%s seconds[%d] %.17g", name,
            mode_name, i, f.seconds[i]);
    char hex[33];
    md5_hex(f.rgb[i], fb, hex);
    const char *want = jmd5 ? cJSON_GetArrayItem(jmd5, i)->valuestring
                            : cJSON_GetObjectItemCaseSensitive(jv, "decoded_rgb_md5")->valuestring;
    CHECK(!strcmp(hex, want), "%s/%s frame %d rgb md5 %s != %s", name, mode_name, i, hex, want);
  }
  if (!is_image && f.count > 0 && f.index[0] == 0) {
    snprintf(key, sizeof key, "media/%s/first_frame_rgb", name);
    const vb_tensor_info *ff = tu_ref_tensor(key);
    if (ff && CHECK(ff->nbytes == fb, "%s size", key)) {
      size_t bad = 0;
      for (size_t i = 0; i < fb; i++)
        bad += f.rgb[0][i] != ((const uint8_t *)ff->data)[i];
      CHECK(bad == 0, "%s: %zu bytes differ", key, bad);
    }
  }
  check_preprocess(name, mode_name, &f, jm);

  if (!is_image) {
    /* The fast path against the reference full decode. */
    vb_frames g;
    vb_video_stats gs;
    o.force_full = 1;
    if (CHECK_OK(vb_video_read_ex(tu_fixture(file), &s, &o, &g, &gs))) {
      CHECK(gs.fast_path == 0, "forced full decode took the fast path");
      CHECK(frames_equal(&f, &g), "%s/%s: fast path differs from full decode", name, mode_name);
      CHECK(st.frames_decoded <= gs.frames_decoded, "%s/%s: fast path decoded %lld > %lld", name,
            mode_name, (long long)st.frames_decoded, (long long)gs.frames_decoded);
      vb_frames_free(&g);
    }
  }
  vb_frames_free(&f);
}

static void test_indices(void) {
  int64_t a[16];
  CHECK_OK(vb_uniform_indices(360, 8, a));
  const int64_t want360[8] = {0, 51, 102, 153, 205, 256, 307, 359};
  CHECK(!memcmp(a, want360, sizeof want360), "linspace(0, 359, 8)");
  CHECK_OK(vb_uniform_indices(3, 8, a));
  const int64_t want3[8] = {0, 0, 0, 0, 1, 1, 1, 2};
  CHECK(!memcmp(a, want3, sizeof want3),
        "linspace(0, 2, 8) = %lld %lld %lld %lld %lld %lld %lld %lld", (long long)a[0],
        (long long)a[1], (long long)a[2], (long long)a[3], (long long)a[4], (long long)a[5],
        (long long)a[6], (long long)a[7]);
  CHECK_OK(vb_uniform_indices(100, 1, a));
  CHECK(a[0] == 0, "n=1 gives index 0");
  CHECK_OK(vb_uniform_indices(1, 4, a));
  CHECK(a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0, "T=1 repeats frame 0");
  CHECK(vb_uniform_indices(0, 8, a) != 0 && strstr(vb_error_message(), "no frames in window"),
        "T=0 rejected: %s", vb_error_message());
  CHECK(vb_uniform_indices(5, 0, a) != 0, "n=0 rejected");
}

/* start=2 s, end=6 s on video1: T is the number of decode_all pts in
 * [ceil(2*15360), ceil(6*15360)), indices follow linspace over the window. */
static void test_window(void) {
  cJSON *pts = tu_json_path(tu_expected(), "media.video1.decode_all.pts");
  int64_t lo = (int64_t)ceil(2.0 / (1.0 / 15360)), hi = (int64_t)ceil(6.0 / (1.0 / 15360));
  int64_t win[512];
  int T = 0, before = 0;
  for (int i = 0; i < cJSON_GetArraySize(pts); i++) {
    int64_t p = (int64_t)cJSON_GetArrayItem(pts, i)->valuedouble;
    if (p >= lo && p < hi && T < 512) win[T++] = p;
    before += p < lo;
  }
  vb_sampling s;
  vb_sampling_default(&s);
  s.start_sec = 2.0;
  s.end_sec = 6.0;
  vb_frames f, g;
  vb_video_opts o;
  vb_video_opts_default(&o);
  vb_video_stats st;
  const char *path = tu_fixture("media/video1_h264_320x240_30fps_12s.mp4");
  if (!CHECK_OK(vb_video_read_ex(path, &s, &o, &f, &st))) return;
  CHECK(T == 120 && f.total_in_window == T, "window holds %lld frames, expected %d",
        (long long)f.total_in_window, T);
  int64_t idx[8];
  vb_uniform_indices(T, 8, idx);
  CHECK(idx[1] == 17 && idx[7] == 119, "window indices");
  for (int i = 0; i < f.count && i < 8; i++)
    CHECK(f.index[i] == idx[i] && f.pts[i] == win[idx[i]], "window frame %d: index %lld pts %lld",
          i, (long long)f.index[i], (long long)f.pts[i]);
  CHECK(st.fast_path == 1, "window read took the fast path");
  CHECK(f.first_index == before && before == 60, "frames before the window: %lld, expected %d",
        (long long)f.first_index, before);
  o.force_full = 1;
  if (CHECK_OK(vb_video_read_ex(path, &s, &o, &g, NULL))) {
    CHECK(frames_equal(&f, &g), "window: fast path differs from full decode");
    CHECK(g.first_index == before, "full decode: %lld frames before the window",
          (long long)g.first_index);
    vb_frames_free(&g);
  }
  vb_frames_free(&f);

  /* More frames than the window holds, a single frame, and a window near the end
   * (after the second keyframe, so the fast path seeks). */
  const struct {
    double a, b;
    int n;
  } cases[] = {{0.5, 0.7, 12}, {3.3, -1, 1}, {9.0, 11.5, 5}, {0, -1, 40}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    s.start_sec = cases[c].a;
    s.end_sec = cases[c].b;
    s.n_frames = cases[c].n;
    o.force_full = 0;
    if (!CHECK_OK(vb_video_read_ex(path, &s, &o, &f, &st))) continue;
    CHECK(f.count == cases[c].n, "case %zu count", c);
    o.force_full = 1;
    if (CHECK_OK(vb_video_read_ex(path, &s, &o, &g, NULL))) {
      CHECK(frames_equal(&f, &g), "case %zu: fast path (fast=%d) differs from full decode", c,
            st.fast_path);
      vb_frames_free(&g);
    }
    vb_frames_free(&f);
  }
}

static void write_file(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp) return;
  if (n) fwrite(data, 1, n, fp);
  fclose(fp);
}

static void test_errors(void) {
  vb_sampling s;
  vb_sampling_default(&s);
  vb_frames f;
  char path[600];
  const char *dir = tu_tmpdir();

  CHECK(vb_video_read("/nonexistent/video.mp4", &s, &f) != 0 &&
            strstr(vb_error_message(), "No such"),
        "nonexistent file: %s", vb_error_message());
  const char text[] = "This is not a video.\nJust some words.\n";
  snprintf(path, sizeof path, "%s/notes.txt", dir);
  write_file(path, text, sizeof text - 1);
  CHECK(vb_video_read(path, &s, &f) != 0, "text file rejected");
  snprintf(path, sizeof path, "%s/fake.mp4", dir);
  write_file(path, text, sizeof text - 1);
  CHECK(vb_video_read(path, &s, &f) != 0, "text file named .mp4 rejected");
  snprintf(path, sizeof path, "%s/empty.mp4", dir);
  write_file(path, "", 0);
  CHECK(vb_video_read(path, &s, &f) != 0 && strstr(vb_error_message(), "empty"), "empty file: %s",
        vb_error_message());
  CHECK(vb_video_read(dir, &s, &f) != 0, "directory rejected");

  /* The first 30% of video1: decodes what is there or fails cleanly. */
  vb_mapped_file m;
  if (CHECK_OK(vb_map_file(tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"), &m))) {
    snprintf(path, sizeof path, "%s/truncated.mp4", dir);
    write_file(path, m.data, m.size * 3 / 10);
    vb_unmap_file(&m);
    for (int mode = 0; mode < 2; mode++) {
      s.mode = mode ? VB_SAMPLE_DEMO : VB_SAMPLE_UNIFORM;
      int r = vb_video_read(path, &s, &f);
      if (r == 0) {
        CHECK(f.count > 0 && f.total_in_window > 0 && f.total_in_window < 360,
              "truncated: %d frames of %lld", f.count, (long long)f.total_in_window);
        vb_frames_free(&f);
      } else {
        CHECK(vb_error_message()[0] != 0, "truncated video gives a message");
      }
    }
    s.mode = VB_SAMPLE_UNIFORM;
  }

  const char *v1 = tu_fixture("media/video1_h264_320x240_30fps_12s.mp4");
  s.start_sec = 100.0;
  /* the message names the window and the video's length, and the file once */
  CHECK(vb_video_read(v1, &s, &f) != 0 &&
            strstr(vb_error_message(),
                   "no frames in the window [100 s, the end): the video lasts 12 s") &&
            strstr(vb_error_message(), "video1_h264") &&
            !strstr(strstr(vb_error_message(), "video1_h264") + 1, "video1_h264"),
        "window after the end: %s", vb_error_message());
  s.start_sec = 5.0;
  s.end_sec = 5.0;
  CHECK(vb_video_read(v1, &s, &f) != 0 &&
            strstr(vb_error_message(), "the time window [5 s, 5 s) is empty"),
        "empty window: %s", vb_error_message());
  vb_sampling_default(&s);
  s.n_frames = 0;
  CHECK(vb_video_read(v1, &s, &f) != 0, "n_frames = 0 rejected");
  s.n_frames = -3;
  CHECK(vb_video_read(v1, &s, &f) != 0, "n_frames < 0 rejected");

  /* Configurations. */
  vb_image_config c;
  char cdir[256];
  snprintf(cdir, sizeof cdir, "%s/cfg_bad_resample", dir);
  snprintf(path, sizeof path, "mkdir -p %s", cdir);
  tu_run(path, NULL);
  snprintf(path, sizeof path, "%s/preprocessor_config.json", cdir);
  const char bad[] = "{\"resample\": 2, \"size\": {\"height\": 224, \"width\": 224}}";
  write_file(path, bad, sizeof bad - 1);
  CHECK(vb_image_config_load(cdir, &c) != 0 && strstr(vb_error_message(), "resample"),
        "resample 2 rejected: %s", vb_error_message());
  const char huge[] = "{\"resample\": 3e100}"; /* beyond int: refused, not converted */
  write_file(path, huge, sizeof huge - 1);
  CHECK(vb_image_config_load(cdir, &c) != 0 && strstr(vb_error_message(), "resample"),
        "resample 3e100 rejected: %s", vb_error_message());
  const char broken[] = "{\"resample\": 3, ";
  write_file(path, broken, sizeof broken - 1);
  CHECK(vb_image_config_load(cdir, &c) != 0, "broken JSON rejected");
  const char sq[] = "{\"size\": 96, \"image_mean\": 0.5, \"image_std\": [0.5, 0.25, 0.125]}";
  write_file(path, sq, sizeof sq - 1);
  if (CHECK_OK(vb_image_config_load(cdir, &c)))
    CHECK(c.width == 96 && c.height == 96 && c.mean[2] == 0.5f && c.std[2] == 0.125f,
          "int size, scalar mean");
  CHECK_OK(vb_image_config_load(dir, &c)); /* no file: defaults */
  vb_image_config d;
  vb_image_config_default(&d);
  CHECK(c.width == 224 && c.height == 224 && c.resample == 3 && c.rescale_factor == 1.0 / 255 &&
            !memcmp(c.mean, d.mean, sizeof d.mean),
        "defaults");
  c.resample = 2;
  vb_frames one = {0};
  CHECK(vb_preprocess_frames(&one, &c, NULL, NULL) != 0, "preprocess rejects empty input");
}

static void test_resize_basics(void) {
  uint8_t src[5 * 4 * 3], dst[5 * 4 * 3];
  for (size_t i = 0; i < sizeof src; i++)
    src[i] = (uint8_t)(i * 37);
  CHECK_OK(vb_resize_bicubic_rgb(src, 5, 4, dst, 5, 4));
  CHECK(!memcmp(src, dst, sizeof src), "same size is a copy");
  uint8_t flat[7 * 3 * 3], big[11 * 9 * 3];
  memset(flat, 77, sizeof flat);
  CHECK_OK(vb_resize_bicubic_rgb(flat, 7, 3, big, 11, 9));
  int ok = 1;
  for (size_t i = 0; i < sizeof big; i++)
    ok &= big[i] == 77;
  CHECK(ok, "a flat image stays flat");
  CHECK(vb_resize_bicubic_rgb(src, 0, 4, dst, 5, 4) != 0, "zero width rejected");
}

static void bench(void) {
  if (!getenv("VBLIP_VIDEO_BENCH")) return;
  const char *path = tu_fixture("media/video1_h264_320x240_30fps_12s.mp4");
  vb_sampling s;
  vb_sampling_default(&s);
  vb_video_opts o;
  vb_video_opts_default(&o);
  for (int full = 0; full < 2; full++) {
    o.force_full = full;
    double best = 1e30;
    vb_video_stats st = {0};
    for (int r = 0; r < 5; r++) {
      vb_frames f;
      double t0 = vb_now_ms();
      if (vb_video_read_ex(path, &s, &o, &f, &st) != 0) return;
      double t = vb_now_ms() - t0;
      if (t < best) best = t;
      vb_frames_free(&f);
    }
    printf("bench video1 uniform 8: %s %.1f ms (frames decoded %lld, packets %lld, seeks %d)\n",
           full ? "full" : "fast", best, (long long)st.frames_decoded, (long long)st.packets_read,
           st.seeks);
  }
}

int main(void) {
  test_indices();
  test_resize_basics();
  const char *videos[] = {"video1", "video2", "video3"};
  for (int v = 0; v < 3; v++) {
    check_video(videos[v], "uniform");
    check_video(videos[v], "demo");
  }
  check_video("image", "image");
  test_window();
  test_errors();
  bench();
  return tu_finish();
}
