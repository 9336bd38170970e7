/* vblip-bench-narrate: narration's real-time factor against captioning each window on its own,
 * in the same run, on a model directory or .gguf and a video file.
 *
 *   vblip-bench-narrate MODEL VIDEO [WINDOW STRIDE FRAMES TOKENS BEAMS]
 *
 * Rows (each over the same windows, greedy or beam search of exactly TOKENS new tokens):
 *   narrate       vblip_narrate: each grid frame decoded and encoded once
 *   independent   per window: its grid frames loaded (VBLIP_SAMPLE_TIMES) and encoded, i.e.
 *                 the same frames and captions without the cache
 *   uniform       per window: `vblip caption --start --end --frames` (pytorchvideo's sampling
 *                 of the window alone)
 * Real-time factor = wall time / seconds of video narrated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vblip.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
  int windows;
  double ms_vision, ms_qformer, ms_generate;
  double frame_times[64][1024];
} narrate_log;

static int on_window(void *user, const vblip_narration_window *w) {
  narrate_log *l = user;
  if (l->windows < 64)
    memcpy(l->frame_times[l->windows], w->frame_times, (size_t)w->n_frames * sizeof(double));
  l->windows++;
  l->ms_vision += w->ms_vision;
  l->ms_qformer += w->ms_qformer;
  l->ms_generate += w->answer->ms_generate;
  return 0;
}

/* Captions each window alone: by its grid times (times = 1) or uniformly over it. */
static int independent(vblip_model *m, const char *video, const narrate_log *l, double stride,
                       double window, int frames, const vblip_gen_params *p, int times, double *ms,
                       double *ms_vision, double *ms_generate) {
  double t0 = now_ms();
  *ms_vision = *ms_generate = 0;
  for (int w = 0; w < l->windows && w < 64; w++) {
    vblip_sampling s;
    vblip_sampling_default(&s);
    s.n_frames = frames;
    if (times) {
      s.mode = VBLIP_SAMPLE_TIMES;
      s.times = l->frame_times[w];
    } else {
      s.start_sec = w * stride;
      s.end_sec = w * stride + window;
    }
    vblip_video v;
    vblip_answer a;
    if (vblip_video_load(m, video, &s, &v) != 0 || vblip_video_encode(m, &v) != 0 ||
        vblip_generate(m, &v, "Question: What is the camera wearer doing? Answer:", p, NULL, NULL,
                       &a) != 0) {
      fprintf(stderr, "window %d: %s\n", w, vblip_last_error());
      vblip_video_free(&v);
      return -1;
    }
    *ms_vision += v.ms_vision;
    *ms_generate += a.ms_generate;
    vblip_answer_free(&a);
    vblip_video_free(&v);
  }
  *ms = now_ms() - t0;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL VIDEO [WINDOW STRIDE FRAMES TOKENS BEAMS]\n", argv[0]);
    return 2;
  }
  vblip_narrate_options o;
  vblip_narrate_options_default(&o);
  if (argc > 3) o.window_sec = atof(argv[3]);
  if (argc > 4) o.stride_sec = atof(argv[4]);
  if (argc > 5) o.frames = atoi(argv[5]);
  vblip_gen_params p;
  vblip_gen_params_default(&p);
  p.num_beams = argc > 7 ? atoi(argv[7]) : 1;
  p.max_new_tokens = p.min_new_tokens = argc > 6 ? atoi(argv[6]) : 16;
  if (o.frames > 1024 || vblip_narrate_options_check(&o) != 0) {
    fprintf(stderr, "%s\n", vblip_last_error());
    return 2;
  }
  double stride = o.stride_sec > 0 ? o.stride_sec : o.window_sec / 2;
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.progress = 0;
  vblip_model *m = vblip_model_load(argv[1], &lo);
  if (!m) {
    fprintf(stderr, "%s\n", vblip_last_error());
    return 1;
  }
  static narrate_log l;
  vblip_narration_stats st;
  /* the first run creates the compute primitives: a warm-up, not reported */
  int rc = vblip_narrate(m, argv[2], "Question: What is the camera wearer doing? Answer:", &o, &p,
                         on_window, &l, &st);
  memset(&l, 0, sizeof l);
  double t0 = now_ms();
  if (rc == 0)
    rc = vblip_narrate(m, argv[2], "Question: What is the camera wearer doing? Answer:", &o, &p,
                       on_window, &l, &st);
  double ms_nar = now_ms() - t0;
  double ms_ind = 0, ms_uni = 0, v_ind = 0, g_ind = 0, v_uni = 0, g_uni = 0;
  if (rc == 0)
    rc =
        independent(m, argv[2], &l, stride, o.window_sec, o.frames, &p, 1, &ms_ind, &v_ind, &g_ind);
  if (rc == 0)
    rc =
        independent(m, argv[2], &l, stride, o.window_sec, o.frames, &p, 0, &ms_uni, &v_uni, &g_uni);
  if (rc != 0) {
    fprintf(stderr, "%s\n", vblip_last_error());
    vblip_model_free(m);
    return 1;
  }
  double sec = st.media_sec;
  printf("model %s, dtype %s, vision %s; video %s: %.1f s; window %g s, stride %g s, %d frames, "
         "%d windows, %d new tokens, %d beam(s)\n",
         argv[1], vblip_model_dtype(m), vblip_model_vision_dtype(m), argv[2], sec, o.window_sec,
         stride, o.frames, st.windows, p.max_new_tokens, p.num_beams);
  printf("%-12s %10s %8s %12s %12s %12s\n", "row", "wall ms", "RTF", "ViT frames", "vision ms",
         "generate ms");
  printf("%-12s %10.0f %8.3f %12d %12.0f %12.0f\n", "narrate", ms_nar, ms_nar / 1e3 / sec,
         st.vision_frames, l.ms_vision, l.ms_generate);
  printf("%-12s %10.0f %8.3f %12d %12.0f %12.0f\n", "independent", ms_ind, ms_ind / 1e3 / sec,
         st.windows * o.frames, v_ind, g_ind);
  printf("%-12s %10.0f %8.3f %12d %12.0f %12.0f\n", "uniform", ms_uni, ms_uni / 1e3 / sec,
         st.windows * o.frames, v_uni, g_uni);
  printf("independent / narrate: %.2fx; uniform / narrate: %.2fx\n", ms_ind / ms_nar,
         ms_uni / ms_nar);
  vblip_model_free(m);
  return 0;
}
