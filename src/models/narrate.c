/* vblip_narrate: captions over sliding windows of a long or live video. The video is read once
 * (a frame stream); windows take their frames from a fixed grid, so a frame that two windows
 * share is decoded, preprocessed and sent through the vision encoder once, and only the
 * Q-Former and the language model run per window. A live source that runs ahead of the model
 * makes windows be skipped instead of letting the lag grow. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/videoblip_internal.h"
#include "runtime/common.h"
#include "video/frame_stream.h"

#define MAX_WINDOW_FRAMES 1024

void vblip_narrate_options_default(vblip_narrate_options *o) {
  memset(o, 0, sizeof *o);
  o->window_sec = 8;
  o->stride_sec = 0;
  o->frames = 8;
  o->live = -1;
  o->max_lag_sec = 0;
}

static double stride_of(const vblip_narrate_options *o) {
  return o->stride_sec > 0 ? o->stride_sec : o->window_sec / 2;
}

/* Grid steps per stride, or 0 when the stride is not a whole number of them. */
static long steps_per_stride(const vblip_narrate_options *o) {
  double steps = stride_of(o) / (o->window_sec / o->frames);
  double r = nearbyint(steps);
  return r >= 1 && fabs(steps - r) <= 1e-6 * r ? (long)r : 0;
}

int vblip_narrate_options_check(const vblip_narrate_options *o) {
  if (!(o->window_sec > 0) || o->window_sec > 86400)
    return vb_input_error("the window must be between 0 and 86400 seconds (got %g)", o->window_sec);
  if (o->stride_sec < 0 || o->stride_sec > 86400)
    return vb_input_error("the stride must be between 0 and 86400 seconds (got %g)", o->stride_sec);
  if (o->frames < 1 || o->frames > MAX_WINDOW_FRAMES)
    return vb_input_error("frames per window must be between 1 and %d (got %d)", MAX_WINDOW_FRAMES,
                          o->frames);
  if (o->max_lag_sec < 0) return vb_input_error("the maximum lag must be >= 0");
  if (!steps_per_stride(o))
    return vb_input_error("the stride (%g s) must be a whole multiple of the frame spacing "
                          "window / frames = %g s, so that windows share frames",
                          stride_of(o), o->window_sec / o->frames);
  return 0;
}

/* A grid frame whose vision tokens are computed: k is its grid index (-1: empty slot). */
typedef struct {
  long k;
  vblip_video v;
} cached_frame;

typedef struct {
  vblip_model *m;
  vb_frame_stream *stream;
  const vblip_narrate_options *o;
  double dt, stride;
  long steps;
  int F;
  cached_frame *cache; /* F slots: a window never needs more */
  int new_frames;
  double ms_vision;
} narrator;

static double grid_time(const narrator *n, long k) {
  return ((double)k + 0.5) * n->dt;
}

static cached_frame *find_cached(narrator *n, long k) {
  for (int i = 0; i < n->F; i++)
    if (n->cache[i].k == k) return &n->cache[i];
  return NULL;
}

/* Frees the frames no window from first_k on needs. */
static void drop_stale(narrator *n, long first_k) {
  for (int i = 0; i < n->F; i++) {
    cached_frame *c = &n->cache[i];
    if (c->k >= 0 && c->k < first_k) {
      vblip_video_free(&c->v);
      c->k = -1;
    }
  }
}

static cached_frame *free_slot(narrator *n) {
  for (int i = 0; i < n->F; i++)
    if (n->cache[i].k < 0) return &n->cache[i];
  return NULL;
}

/* Decodes grid frame k and preprocesses it into plane t of batch ((3, T, S, S) pixel values):
 * 0, 1 when the source ended before it, -1. */
static int load_frame(narrator *n, long k, float *batch, int t, int T, double *shown) {
  uint8_t *rgb = NULL;
  int w = 0, h = 0;
  int r = vb_frame_stream_at(n->stream, grid_time(n, k), &rgb, &w, &h, shown);
  if (r != 0) return r;
  vb_frames f = {.count = 1, .width = w, .height = h, .rgb = &rgb, .seconds = shown};
  size_t plane = (size_t)n->m->image.width * n->m->image.height;
  float *one = vb_malloc(plane * 3 * sizeof(float));
  int rc = one ? vb_preprocess_frames(&f, &n->m->image, NULL, one) : -1;
  for (int ch = 0; rc == 0 && ch < 3; ch++) /* (3, 1, S, S) into (3, T, S, S) */
    memcpy(batch + ((size_t)ch * T + t) * plane, one + (size_t)ch * plane, plane * sizeof(float));
  free(one);
  free(rgb);
  return rc;
}

/* Decodes the grid frames first_k + missing[i] and runs the vision encoder once over all of them
 * (the encoder treats each frame on its own), caching each frame's tokens: 0, 1 at the end of
 * the source, -1. */
static int encode_frames(narrator *n, long first_k, const int *missing, int T) {
  vblip_video batch;
  memset(&batch, 0, sizeof batch);
  int S = n->m->image.width;
  batch.n_frames = T;
  batch.image_size = S;
  batch.pixel_values = vb_malloc((size_t)T * S * S * 3 * sizeof(float));
  double *shown = vb_calloc((size_t)T, sizeof *shown);
  int rc = batch.pixel_values && shown ? 0 : -1;
  for (int i = 0; i < T && rc == 0; i++)
    rc = load_frame(n, first_k + missing[i], batch.pixel_values, i, T, &shown[i]);
  if (rc == 0) rc = vblip_video_encode_vision(n->m, &batch);
  size_t per_frame = rc == 0 ? (size_t)(batch.vision_tokens / T) * batch.vision_width : 0;
  for (int i = 0; i < T && rc == 0; i++) {
    cached_frame *slot = free_slot(n);
    if (!slot) {
      rc = vb_error("internal: no free frame slot");
      break;
    }
    vblip_video *v = &slot->v;
    memset(v, 0, sizeof *v);
    v->n_frames = 1;
    v->image_size = S;
    v->frame_index = vb_malloc(sizeof *v->frame_index);
    v->frame_time = vb_malloc(sizeof *v->frame_time);
    v->vision = vb_malloc(per_frame * sizeof(float));
    if (!v->frame_index || !v->frame_time || !v->vision) {
      vblip_video_free(v);
      rc = -1;
      break;
    }
    v->frame_index[0] = first_k + missing[i];
    v->frame_time[0] = shown[i];
    memcpy(v->vision, batch.vision + (size_t)i * per_frame, per_frame * sizeof(float));
    v->vision_tokens = batch.vision_tokens / T;
    v->vision_width = batch.vision_width;
    slot->k = first_k + missing[i];
  }
  if (rc == 0) {
    n->ms_vision += batch.ms_vision;
    n->new_frames += T;
  }
  free(shown);
  vblip_video_free(&batch);
  return rc;
}

/* The window's frames, from the cache or encoded now: 0, 1 at the end of the source, -1. */
static int window_frames(narrator *n, long w, const vblip_video **parts, double *times) {
  long first = w * n->steps;
  drop_stale(n, first);
  int missing[MAX_WINDOW_FRAMES], T = 0;
  for (int j = 0; j < n->F; j++) {
    times[j] = grid_time(n, first + j);
    if (!find_cached(n, first + j)) missing[T++] = j;
  }
  if (T > 0) {
    int r = encode_frames(n, first, missing, T);
    if (r != 0) return r;
  }
  for (int j = 0; j < n->F; j++)
    parts[j] = &find_cached(n, first + j)->v;
  return 0;
}

/* Seconds of stream since its first frame, by the wall clock (a live source's position). */
static double live_position(const narrator *n) {
  double started = vb_frame_stream_started_ms(n->stream);
  return started < 0 ? 0 : (vb_now_ms() - started) / 1000.0;
}

int vblip_narrate(vblip_model *m, const char *source, const char *prompt,
                  const vblip_narrate_options *o, const vblip_gen_params *p, vblip_window_cb cb,
                  void *user, vblip_narration_stats *stats) {
  vblip_narrate_options defaults;
  if (!o) {
    vblip_narrate_options_default(&defaults);
    o = &defaults;
  }
  if (stats) memset(stats, 0, sizeof *stats);
  if (!prompt) prompt = "";
  if (vblip_narrate_options_check(o) != 0) return -1;
  if (vblip_check_prompt(m, prompt, NULL) != 0) return -1;
  int remote = strstr(source, "://") != NULL || !strncmp(source, "/dev/", 5);
  if (remote && !o->allow_network)
    return vb_input_error("%s: URLs and devices are opened only when network input is allowed",
                          source);
  int live = o->live < 0 ? vb_source_is_live(source) : o->live;
  double t_start = vb_now_ms();
  narrator n = {.m = m, .o = o, .F = o->frames};
  n.dt = o->window_sec / o->frames;
  n.stride = stride_of(o);
  n.steps = steps_per_stride(o);
  double max_lag = o->max_lag_sec > 0 ? o->max_lag_sec : n.stride;
  n.cache = vb_calloc((size_t)n.F, sizeof *n.cache);
  const vblip_video **parts = vb_calloc((size_t)n.F, sizeof *parts);
  double *times = vb_calloc((size_t)n.F, sizeof *times);
  if (!n.cache || !parts || !times) {
    free(n.cache);
    free(parts);
    free(times);
    return -1;
  }
  for (int i = 0; i < n.F; i++)
    n.cache[i].k = -1;
  n.stream = vb_frame_stream_open(source, remote ? VB_SOURCE_LIVE : VB_SOURCE_FILE);
  int rc = n.stream ? 0 : -1, windows = 0, skipped = 0, skipped_since = 0, encoded = 0;
  double media = 0, worst_lag = 0;
  for (long w = 0; rc == 0; w++) {
    if (live && windows > 0) {
      /* behind by more than max_lag: jump to the newest window the stream has completed */
      double now = live_position(&n);
      if (now - (w * n.stride + o->window_sec) > max_lag) {
        long newest = (long)floor((now - o->window_sec) / n.stride);
        if (newest > w) {
          skipped += (int)(newest - w);
          skipped_since += (int)(newest - w);
          w = newest;
        }
      }
    }
    n.new_frames = 0;
    n.ms_vision = 0;
    int r = window_frames(&n, w, parts, times);
    encoded += n.new_frames;
    if (r == 1) break;
    if (r < 0) {
      rc = -1;
      break;
    }
    vblip_video joined;
    vblip_answer a;
    if (vblip_video_join_encode(m, parts, (size_t)n.F, &joined) != 0) {
      rc = -1;
      break;
    }
    if (vblip_generate(m, &joined, prompt, p, NULL, NULL, &a) != 0) {
      vblip_video_free(&joined);
      rc = -1;
      break;
    }
    double end = w * n.stride + o->window_sec;
    double lag = live ? live_position(&n) - end : 0;
    if (lag > worst_lag) worst_lag = lag;
    vblip_narration_window nw = {.index = (int)w,
                                 .start_sec = w * n.stride,
                                 .end_sec = end,
                                 .n_frames = n.F,
                                 .frame_times = times,
                                 .answer = &a,
                                 .video = &joined,
                                 .skipped_before = skipped_since,
                                 .vision_frames = n.new_frames,
                                 .lag_sec = lag,
                                 .ms_vision = n.ms_vision,
                                 .ms_qformer = joined.ms_qformer};
    windows++;
    media = end;
    skipped_since = 0;
    int stop = cb ? cb(user, &nw) : 0;
    vblip_answer_free(&a);
    vblip_video_free(&joined);
    if (stop) break;
  }
  if (rc == 0 && windows == 0)
    rc = vb_input_error("%s: the video ends before the first %g-second window is complete", source,
                        o->window_sec);
  if (stats) {
    stats->windows = windows;
    stats->skipped = skipped;
    stats->vision_frames = encoded;
    stats->media_sec = media;
    stats->max_lag_sec = worst_lag;
    stats->wall_ms = vb_now_ms() - t_start;
  }
  for (int i = 0; i < n.F; i++)
    vblip_video_free(&n.cache[i].v);
  free(n.cache);
  free(parts);
  free(times);
  vb_frame_stream_close(n.stream);
  return rc;
}
