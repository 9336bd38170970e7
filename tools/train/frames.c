/* vblip extract-frames: VideoBLIP's extract_frames.py as a resumable, parallel step
 * (clips sampled and preprocessed once, written atomically, finished ones skipped). */
#include "train/frames.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/model_source.h"
#include "formats/safetensors.h"
#include "runtime/common.h"
#include "train/dataset.h"
#include "video/preprocess.h"
#include "video/video.h"

int vb_frames_file_read(const char *path, int image_size, float **pixels, int *n_frames) {
  *pixels = NULL;
  vb_tensor_table tt;
  vb_tt_init(&tt);
  int rc = -1;
  if (vb_safetensors_load(&tt, path)) goto done;
  const vb_tensor_info *t = vb_tt_find(&tt, "pixel_values");
  if (!t || t->dtype != VB_DT_F32 || t->ndim != 4 || t->shape[0] != 3 || t->shape[1] < 1 ||
      t->shape[1] > 4096 || t->shape[2] != image_size || t->shape[3] != image_size) {
    vb_error("%s: expected pixel_values float32 [3, T, %d, %d]", path, image_size, image_size);
    goto done;
  }
  size_t n = (size_t)vb_tensor_numel(t);
  if (!(*pixels = vb_malloc(n * sizeof(float)))) goto done;
  memcpy(*pixels, t->data, n * sizeof(float));
  *n_frames = (int)t->shape[1];
  rc = 0;
done:
  vb_tt_free(&tt);
  return rc;
}

typedef struct {
  const vb_extract_options *o;
  const vb_dataset *d;
  const vb_image_config *image;
  char **files; /* per clip: its file under out */
  atomic_int next, done, failed;
  pthread_mutex_t lock;
  char error[1024];
  int skipped;
} job;

static int clip_complete(const char *path, int size, int frames) {
  if (!vb_file_exists(path)) return 0;
  float *px = NULL;
  int n = 0, ok = vb_frames_file_read(path, size, &px, &n) == 0 && n == frames;
  free(px);
  return ok;
}

static int extract_one(job *j, int i) {
  const vb_clip *c = &j->d->items[i];
  int S = j->image->width;
  if (clip_complete(j->files[i], S, j->o->frames)) {
    pthread_mutex_lock(&j->lock);
    j->skipped++;
    pthread_mutex_unlock(&j->lock);
    return 0;
  }
  vb_sampling s;
  vb_sampling_default(&s);
  s.n_frames = j->o->frames;
  s.start_sec = c->start > 0 ? c->start : 0;
  s.end_sec = c->end;
  vb_frames f;
  if (vb_video_read(c->video, &s, &f)) return vb_error_context("%s", c->video);
  int rc = -1;
  float *px = vb_malloc((size_t)f.count * S * S * 3 * sizeof(float));
  if (px && vb_preprocess_frames(&f, j->image, NULL, px) == 0) {
    char start[32], end[32];
    snprintf(start, sizeof start, "%.17g", c->start);
    snprintf(end, sizeof end, "%.17g", c->end);
    vb_st_entry e = {.name = "pixel_values",
                     .dtype = VB_DT_F32,
                     .ndim = 4,
                     .shape = {3, f.count, S, S},
                     .data = px};
    const char *keys[] = {"video", "start", "end"}, *vals[] = {c->video, start, end};
    rc = vb_safetensors_write(j->files[i], &e, 1, keys, vals, 3); /* atomic: tmp + rename */
  }
  free(px);
  vb_frames_free(&f);
  return rc;
}

static void *worker(void *arg) {
  job *j = arg;
  for (;;) {
    if (atomic_load(&j->failed)) break;
    int i = atomic_fetch_add(&j->next, 1);
    if (i >= j->d->n) break;
    if (extract_one(j, i)) {
      pthread_mutex_lock(&j->lock);
      if (!atomic_load(&j->failed))
        snprintf(j->error, sizeof j->error, "clip %d: %s", i + 1, vb_error_message());
      atomic_store(&j->failed, 1);
      pthread_mutex_unlock(&j->lock);
      break;
    }
    atomic_fetch_add(&j->done, 1);
  }
  return NULL;
}

static void progress(const job *j, double t0, int tty, int final) {
  int done = atomic_load(&j->done), n = j->d->n;
  double el = (vb_now_ms() - t0) / 1000, rate = el > 0 ? done / el : 0;
  double eta = rate > 0 ? (n - done) / rate : 0;
  char bar[31];
  int w = n ? done * 30 / n : 30;
  for (int k = 0; k < 30; k++)
    bar[k] = k < w ? '#' : '.';
  bar[30] = 0;
  fprintf(stderr, "%s[%s] %d/%d clips  %.1f clips/s  ETA %ld:%02ld%s", tty ? "\r\033[K" : "", bar,
          done, n, rate, (long)eta / 60, (long)eta % 60, tty && !final ? "" : "\n");
}

/* The index: each input line with "frames" added, in the input's order. */
static int write_index(const vb_extract_options *o, const vb_dataset *d, char **rel) {
  char *text = NULL;
  if (vb_read_file(o->data, (size_t)1 << 31, &text, NULL)) return -1;
  char *path = vb_path_join(o->out, "frames.jsonl"), *tmp = NULL;
  FILE *f = path ? vb_open_tmp(path, &tmp) : NULL;
  int rc = f ? 0 : -1, i = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
       line = strtok_r(NULL, "\n", &save)) {
    cJSON *j = cJSON_Parse(line);
    if (!j) continue; /* blank lines: the loader skipped them too */
    if (i >= d->n) {
      cJSON_Delete(j);
      break;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j, "frames");
    cJSON_AddStringToObject(j, "frames", rel[i]);
    /* the video path as resolved, so the index is complete wherever it is read */
    char real[4096];
    cJSON_DeleteItemFromObjectCaseSensitive(j, "video");
    cJSON_AddStringToObject(j, "video",
                            realpath(d->items[i].video, real) ? real : d->items[i].video);
    char *js = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!js || fprintf(f, "%s\n", js) < 0) rc = vb_error("cannot write %s", tmp);
    free(js);
    i++;
  }
  if (f && fclose(f) && rc == 0) rc = vb_error("cannot write %s", tmp);
  if (rc == 0 && rename(tmp, path)) rc = vb_error("cannot rename %s: %s", tmp, strerror(errno));
  if (rc && tmp) unlink(tmp);
  free(tmp);
  free(path);
  free(text);
  return rc;
}

int vb_extract_frames(const vb_extract_options *o, vb_extract_stats *st) {
  memset(st, 0, sizeof *st);
  vb_dataset d;
  if (vb_dataset_load(o->data, o->video_dir, &d)) return -1;
  for (int i = 0; i < d.n; i++)
    if (d.items[i].frames) {
      vb_dataset_free(&d);
      return vb_error("%s is already a frames dataset", o->data);
    }
  vb_model_source src;
  vb_image_config image;
  if (vb_model_source_open(o->model, !o->quiet, &src)) {
    vb_dataset_free(&d);
    return -1;
  }
  int rc = vb_image_config_load(src.path, &image);
  vb_model_source_close(&src);
  if (rc) {
    vb_dataset_free(&d);
    return -1;
  }
  job j = {.o = o, .d = &d, .image = &image};
  pthread_mutex_init(&j.lock, NULL);
  char **rel = vb_calloc((size_t)d.n + 1, sizeof *rel);
  j.files = vb_calloc((size_t)d.n + 1, sizeof *j.files);
  char *clips = vb_path_join(o->out, "clips");
  rc = -1;
  if (!rel || !j.files || !clips) goto done;
  if (vb_make_dirs(clips)) goto done;
  for (int i = 0; i < d.n; i++) {
    char name[64];
    snprintf(name, sizeof name, "clips/clip-%06d.safetensors", i);
    if (!(rel[i] = vb_strdup(name)) || !(j.files[i] = vb_path_join(o->out, name))) goto done;
  }
  int workers = o->workers > 0 ? o->workers : 1;
  if (workers > d.n) workers = d.n;
  pthread_t *th = vb_calloc((size_t)workers, sizeof *th);
  int started = 0;
  if (!th) goto done;
  double t0 = vb_now_ms();
  for (; started < workers; started++)
    if (pthread_create(&th[started], NULL, worker, &j)) break;
  if (!started) {
    free(th);
    vb_error("cannot start a worker thread");
    goto done;
  }
  int tty = !o->quiet && isatty(2), last = -1;
  while (atomic_load(&j.done) < d.n && !atomic_load(&j.failed)) {
    usleep(200000);
    int now = atomic_load(&j.done);
    /* a TTY gets a live bar; a log gets a line every 10% */
    if (tty)
      progress(&j, t0, 1, 0);
    else if (!o->quiet && now * 10 / d.n != last)
      progress(&j, t0, 0, 0), last = now * 10 / d.n;
  }
  for (int k = 0; k < started; k++)
    pthread_join(th[k], NULL);
  free(th);
  if (!o->quiet) progress(&j, t0, tty, 1);
  if (atomic_load(&j.failed)) {
    vb_error("%s (finished clips are kept: run again to continue)", j.error);
    goto done;
  }
  if (write_index(o, &d, rel)) goto done;
  st->clips = d.n;
  st->skipped = j.skipped;
  st->extracted = d.n - j.skipped;
  rc = 0;
done:
  for (int i = 0; rel && i < d.n; i++)
    free(rel[i]);
  for (int i = 0; j.files && i < d.n; i++)
    free(j.files[i]);
  free(rel);
  free(j.files);
  free(clips);
  pthread_mutex_destroy(&j.lock);
  vb_dataset_free(&d);
  return rc;
}
