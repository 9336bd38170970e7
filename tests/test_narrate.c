/* Narration (issue 24), library level: cue merging and formats, the window / stride / frame
 * grid rules, and that the frame cache changes nothing: every window's encoding and answer
 * equal those of its frames loaded and encoded on their own (vblip_sampling's times mode). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "testutil.h"
#include "text/cues.h"
#include "vblip.h"

static void test_captions_same(void) {
  CHECK(vb_captions_same("He cuts an onion.", "he cuts an onion"), "case and final period");
  CHECK(vb_captions_same("  He  cuts,\tan onion!", "he cuts an onion"), "spaces, punctuation");
  CHECK(!vb_captions_same("He cuts an onion.", "He cuts a onion."), "different words");
  CHECK(!vb_captions_same("he cuts", "he cuts an onion"), "a prefix is not the same");
  CHECK(!vb_captions_same("hecuts", "he cuts"), "a missing space differs");
  CHECK(vb_captions_same("", "..."), "empty and punctuation only");
  CHECK(vb_captions_same("caf\xc3\xa9 time", "caf\xc3\xa9 time."), "UTF-8 kept as bytes");
}

static void test_timestamps(void) {
  char b[32];
  vb_cue_timestamp(0, '.', b);
  CHECK(!strcmp(b, "00:00:00.000"), "%s", b);
  vb_cue_timestamp(3661.2345, '.', b);
  CHECK(!strcmp(b, "01:01:01.235"), "%s", b); /* rounded to the millisecond */
  vb_cue_timestamp(59.9996, ',', b);
  CHECK(!strcmp(b, "00:01:00,000"), "%s", b);
  vb_cue_timestamp(360000.5, ',', b);
  CHECK(!strcmp(b, "100:00:00,500"), "%s", b); /* hours go past two digits */
}

static void test_cue_text(void) {
  vb_cue c = {.start = 4, .end = 12.5, .text = "a <b> & c --> d\nnext"};
  char *v = vb_cue_vtt(&c), *s = vb_cue_srt(&c, 3);
  CHECK(v && !strcmp(v, "00:00:04.000 --> 00:00:12.500\na &lt;b&gt; &amp; c --&gt; d next\n\n"),
        "%s", v);
  CHECK(s && !strcmp(s, "3\n00:00:04,000 --> 00:00:12,500\na <b> & c -> d next\n\n"), "%s", s);
  free(v);
  free(s);
}

/* Feeds (window, text) pairs with 8 s windows every 4 s and collects the cues. */
static int merge_run(int merge, const int *w, const char *const *text, int n, vb_cue *out) {
  vb_cue_merger mg = {.merge = merge};
  int k = 0;
  for (int i = 0; i < n; i++) {
    vb_cue done;
    int r = vb_cues_add(&mg, w[i], w[i] * 4.0, w[i] * 4.0 + 8, text[i], 0, 0, &done);
    if (r == 1) out[k++] = done;
  }
  if (vb_cues_finish(&mg, &out[k])) k++;
  return k;
}

static void test_merge(void) {
  const int w[] = {0, 1, 2, 3, 5, 6};
  const char *text[] = {"He cuts.", "he cuts", "He washes.", "He cuts.", "He cuts.", "He cuts"};
  vb_cue c[8];
  int n = merge_run(1, w, text, 6, c);
  /* 0-1 merge; 2 alone; 3 alone (5 follows a gap: a skipped window); 5-6 merge */
  CHECK(n == 4, "%d cues", n);
  if (n == 4) {
    CHECK(c[0].first_window == 0 && c[0].last_window == 1 && c[0].start == 0 && c[0].end == 8,
          "cue 0: windows %d-%d, %g-%g", c[0].first_window, c[0].last_window, c[0].start, c[0].end);
    CHECK(!strcmp(c[0].text, "He cuts."), "the first window's text: %s", c[0].text);
    CHECK(c[1].first_window == 2 && c[1].start == 8 && c[1].end == 12, "cue 1 %g-%g", c[1].start,
          c[1].end);
    CHECK(c[2].first_window == 3 && c[2].start == 12 && c[2].end == 20, "cue 2 %g-%g", c[2].start,
          c[2].end);
    CHECK(c[3].first_window == 5 && c[3].last_window == 6 && c[3].start == 20 && c[3].end == 32,
          "cue 3 %d-%d %g-%g", c[3].first_window, c[3].last_window, c[3].start, c[3].end);
  }
  for (int i = 0; i < n; i++)
    vb_cue_free(&c[i]);
  n = merge_run(0, w, text, 6, c);
  CHECK(n == 6, "--no-merge: one cue per window (%d)", n);
  for (int i = 0; i < n; i++) {
    double want_end = i + 1 < n ? fmin(w[i] * 4.0 + 8, w[i + 1] * 4.0) : w[i] * 4.0 + 8;
    CHECK(c[i].start == w[i] * 4.0 && c[i].end == want_end, "cue %d: %g-%g", i, c[i].start,
          c[i].end);
    vb_cue_free(&c[i]);
  }
}

static void test_options(void) {
  vblip_narrate_options o;
  vblip_narrate_options_default(&o);
  CHECK(o.window_sec == 8 && o.stride_sec == 0 && o.frames == 8 && o.live == -1, "defaults");
  CHECK_OK(vblip_narrate_options_check(&o));
  o.stride_sec = 3.5; /* grid step 1 s */
  CHECK(vblip_narrate_options_check(&o) != 0 && strstr(vblip_last_error(), "multiple"), "%s",
        vblip_last_error());
  CHECK(vblip_last_error_kind() == VBLIP_ERROR_INPUT, "an input error");
  o.stride_sec = 1;
  CHECK_OK(vblip_narrate_options_check(&o));
  o.window_sec = 0;
  CHECK(vblip_narrate_options_check(&o) != 0, "window 0");
}

typedef struct {
  vblip_model *m;
  const char *path;
  const char *prompt;
  const vblip_gen_params *p;
  double window, stride;
  int frames, windows, vision_frames[64];
  double start[64], end[64];
  int same_encoding, same_answer;
} check_ctx;

/* Loads and encodes the window's frames on their own and compares with the cached path. */
static int compare_window(void *user, const vblip_narration_window *w) {
  check_ctx *c = user;
  if (c->windows < 64) {
    c->start[c->windows] = w->start_sec;
    c->end[c->windows] = w->end_sec;
    c->vision_frames[c->windows] = w->vision_frames;
  }
  c->windows++;
  double step = c->window / c->frames;
  for (int j = 0; j < w->n_frames; j++) {
    double want = (w->index * (c->stride / step) + j + 0.5) * step;
    CHECK(fabs(w->frame_times[j] - want) < 1e-9, "window %d frame %d at %g, want %g", w->index, j,
          w->frame_times[j], want);
  }
  vblip_sampling s;
  vblip_sampling_default(&s);
  s.mode = VBLIP_SAMPLE_TIMES;
  s.times = w->frame_times;
  s.n_frames = w->n_frames;
  vblip_video v;
  vblip_answer a;
  if (vblip_video_load(c->m, c->path, &s, &v) != 0 || vblip_video_encode(c->m, &v) != 0) {
    CHECK(0, "window %d alone: %s", w->index, vblip_last_error());
    vblip_video_free(&v);
    return 1;
  }
  const vblip_video *n = w->video;
  size_t nv = (size_t)v.vision_tokens * v.vision_width, nq = (size_t)v.n_query * v.qformer_width,
         np = (size_t)v.n_query * v.lm_width;
  int same = n->vision_tokens == v.vision_tokens && n->n_query == v.n_query &&
             !memcmp(n->vision, v.vision, nv * sizeof(float)) &&
             !memcmp(n->qformer, v.qformer, nq * sizeof(float)) &&
             !memcmp(n->projected, v.projected, np * sizeof(float));
  if (!same) c->same_encoding = 0;
  CHECK(same,
        "window %d: cached encoding differs from its frames encoded alone (max |diff| "
        "vision %g, projection %g)",
        w->index, tu_max_abs_diff(n->vision, v.vision, nv),
        tu_max_abs_diff(n->projected, v.projected, np));
  if (vblip_generate(c->m, &v, c->prompt, c->p, NULL, NULL, &a) == 0) {
    int eq = a.n_tokens == w->answer->n_tokens &&
             !memcmp(a.token_ids, w->answer->token_ids, (size_t)a.n_tokens * sizeof(int32_t));
    if (!eq) c->same_answer = 0;
    CHECK(eq, "window %d: answer '%s' vs alone '%s'", w->index, w->answer->text, a.text);
    vblip_answer_free(&a);
  } else {
    CHECK(0, "%s", vblip_last_error());
  }
  vblip_video_free(&v);
  return 0;
}

static void test_windows(vblip_dtype dtype, const char *name) {
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  lo.dtype = dtype;
  vblip_model *m = vblip_model_load(tu_fixture("models/videoblip-opt-tiny"), &lo);
  CHECK(m, "%s", vblip_last_error());
  if (!m) return;
  vblip_gen_params p;
  vblip_gen_params_default(&p);
  p.num_beams = 2;
  p.max_new_tokens = 6;
  vblip_narrate_options o;
  vblip_narrate_options_default(&o);
  o.window_sec = 4; /* stride 2 s, frames every 0.5 s: 4 grid steps per stride */
  check_ctx c = {.m = m,
                 .path = tu_fixture("media/video1_h264_320x240_30fps_12s.mp4"),
                 .prompt = "Question: what? Answer:",
                 .p = &p,
                 .window = 4,
                 .stride = 2,
                 .frames = 8,
                 .same_encoding = 1,
                 .same_answer = 1};
  vblip_narration_stats st;
  CHECK_OK(vblip_narrate(m, c.path, c.prompt, &o, &p, compare_window, &c, &st));
  /* 12 s: windows [0,4) .. [8,12); [10,14) would need frames past the end */
  CHECK(c.windows == 5 && st.windows == 5, "%s: %d windows", name, c.windows);
  for (int i = 0; i < c.windows && i < 64; i++) {
    CHECK(c.start[i] == 2.0 * i && c.end[i] == 2.0 * i + 4, "%s window %d: %g-%g", name, i,
          c.start[i], c.end[i]);
    CHECK(c.vision_frames[i] == (i == 0 ? 8 : 4), "%s window %d encoded %d frames", name, i,
          c.vision_frames[i]);
  }
  CHECK(st.vision_frames == 8 + 4 * 4, "%s: %d frames through the ViT (independent windows: 40)",
        name, st.vision_frames);
  CHECK(st.skipped == 0 && st.media_sec == 12, "%s: skipped %d, %g s", name, st.skipped,
        st.media_sec);
  CHECK(c.same_encoding && c.same_answer, "%s: the frame cache changes nothing", name);

  /* a video shorter than one window */
  o.window_sec = 8;
  CHECK(vblip_narrate(m, tu_fixture("media/video3_mjpeg_97x61_15fps_3s.avi"), "", &o, &p, NULL,
                      NULL, NULL) != 0 &&
            strstr(vblip_last_error(), "ends before the first 8-second window"),
        "%s", vblip_last_error());
  /* URLs only when allowed */
  CHECK(vblip_narrate(m, "http://127.0.0.1:9/x.m3u8", "", &o, &p, NULL, NULL, NULL) != 0 &&
            vblip_last_error_kind() == VBLIP_ERROR_INPUT,
        "%s", vblip_last_error());
  vblip_model_free(m);
}

int main(void) {
  test_captions_same();
  test_timestamps();
  test_cue_text();
  test_merge();
  test_options();
  test_windows(VBLIP_DTYPE_F32, "f32");
  test_windows(VBLIP_DTYPE_AUTO, "auto dtype");
  return tu_finish();
}
