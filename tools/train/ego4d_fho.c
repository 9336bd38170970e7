/* VideoBLIP's scripts/ego4d/split_train_val.py on fho_main.json, written as the clip
 * lists `vblip train` and `vblip extract-frames` read: videos that are on disk, their
 * narrated actions that are not rejected, valid and start with "#C C", videos drawn in
 * random.sample order with Python's seed 42 into train until 75% of the actions are
 * there, the rest to validation; one clip per action, 8 s around its narration. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"
#include "train/dataset.h"
#include "train/py_random.h"
#include "vblip_train.h"

char *vb_relative_path(const char *from_dir, const char *target) {
  char a[PATH_MAX], b[PATH_MAX];
  if (!realpath(from_dir, a) || !realpath(target, b)) {
    vb_error("cannot resolve %s: %s", realpath(from_dir, a) ? target : from_dir, strerror(errno));
    return NULL;
  }
  /* longest common prefix ending at a path component */
  size_t common = 0, i = 0;
  while (a[i] && a[i] == b[i]) {
    if (a[i] == '/') common = i;
    i++;
  }
  if (!a[i] && (b[i] == '/' || !b[i])) common = i;
  if (!strcmp(a, "/")) common = 0;
  int ups = 0;
  for (const char *p = a + common; *p; p++)
    if (*p == '/') ups++;
  const char *rest = b + common;
  while (*rest == '/')
    rest++;
  size_t n = (size_t)ups * 3 + strlen(rest) + 2;
  char *out = vb_malloc(n);
  if (!out) return NULL;
  out[0] = 0;
  for (int k = 0; k < ups; k++)
    strcat(out, "../");
  strcat(out, rest);
  if (!out[0]) strcpy(out, ".");
  size_t len = strlen(out);
  if (len > 1 && out[len - 1] == '/') out[len - 1] = 0;
  return out;
}

void vb_ego4d_clip_window(double t, double duration, double clip_seconds, double *start,
                          double *end) {
  double s = t - clip_seconds / 2;
  if (s < 0) s = 0;
  double e = s + clip_seconds;
  if (e > duration) {
    e = duration;
    s = e - clip_seconds;
  }
  *start = s;
  *end = e;
}

typedef struct {
  const char *uid;
  const cJSON *video;
  const cJSON **actions; /* the kept narrated actions, in annotation order */
  int n_actions;
  double duration;
} fho_video;

static int bool_field(const cJSON *o, const char *key, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsBool(v)) return -1;
  *out = cJSON_IsTrue(v);
  return 0;
}

/* The narrated actions of one video that the original keeps. */
static int keep_actions(const char *path, fho_video *v) {
  const cJSON *intervals = cJSON_GetObjectItemCaseSensitive(v->video, "annotated_intervals");
  if (!cJSON_IsArray(intervals))
    return vb_error("%s: video %s has no \"annotated_intervals\" list", path, v->uid);
  int cap = 0;
  const cJSON *iv;
  cJSON_ArrayForEach(iv, intervals) {
    const cJSON *acts = cJSON_GetObjectItemCaseSensitive(iv, "narrated_actions");
    if (!cJSON_IsArray(acts))
      return vb_error("%s: an interval of video %s has no \"narrated_actions\" list", path, v->uid);
    const cJSON *a;
    cJSON_ArrayForEach(a, acts) {
      int rejected, valid;
      const cJSON *text = cJSON_GetObjectItemCaseSensitive(a, "narration_text");
      const cJSON *ts = cJSON_GetObjectItemCaseSensitive(a, "narration_timestamp_sec");
      if (bool_field(a, "is_rejected", &rejected) || bool_field(a, "is_valid_action", &valid) ||
          !cJSON_IsString(text))
        return vb_error("%s: a narrated action of video %s lacks is_rejected, is_valid_action or "
                        "narration_text",
                        path, v->uid);
      if (rejected || !valid || !vblip_narration_is_camera_wearer(text->valuestring)) continue;
      if (!cJSON_IsNumber(ts))
        return vb_error("%s: a narrated action of video %s has no narration_timestamp_sec", path,
                        v->uid);
      if (v->n_actions == cap) {
        cap = cap ? cap * 2 : 16;
        const cJSON **p = vb_realloc(v->actions, (size_t)cap * sizeof *p);
        if (!p) return -1;
        v->actions = p;
      }
      v->actions[v->n_actions++] = a;
    }
  }
  return 0;
}

static int write_clips(FILE *f, const fho_video *v, const char *video_path,
                       const vb_ego4d_split_options *o) {
  for (int i = 0; i < v->n_actions; i++) {
    const cJSON *a = v->actions[i];
    const char *raw = cJSON_GetObjectItemCaseSensitive(a, "narration_text")->valuestring;
    double ts = cJSON_GetObjectItemCaseSensitive(a, "narration_timestamp_sec")->valuedouble, s, e;
    vb_ego4d_clip_window(ts, v->duration, o->clip_seconds, &s, &e);
    char *clean = o->eilev_cleaning ? vblip_clean_narration_eilev(raw) : vblip_clean_narration(raw);
    cJSON *line = cJSON_CreateObject();
    if (!clean || !line) {
      free(clean);
      cJSON_Delete(line);
      return vb_error("out of memory");
    }
    cJSON_AddStringToObject(line, "video", video_path);
    cJSON_AddNumberToObject(line, "start", s);
    cJSON_AddNumberToObject(line, "end", e);
    cJSON_AddStringToObject(line, "text", clean);
    cJSON_AddStringToObject(line, "video_uid", v->uid);
    cJSON_AddNumberToObject(line, "clip_index", i);
    cJSON_AddNumberToObject(line, "narration_timestamp_sec", ts);
    char *js = cJSON_PrintUnformatted(line);
    cJSON_Delete(line);
    free(clean);
    if (!js) return vb_error("out of memory");
    fprintf(f, "%s\n", js);
    free(js);
  }
  return 0;
}

int vb_ego4d_fho_split(const vb_ego4d_split_options *o, vb_ego4d_split_stats *st) {
  memset(st, 0, sizeof *st);
  if (!o->video_dir) return vb_error("splitting fho_main.json needs the video directory");
  char *text = NULL;
  if (vb_read_file(o->fho_main, (size_t)4 << 30, &text, NULL)) return -1;
  cJSON *root = cJSON_Parse(text);
  free(text);
  fho_video *vids = NULL;
  int *order = NULL, nv = 0, rc = -1;
  char *ptrain = NULL, *pval = NULL, *ttrain = NULL, *tval = NULL, *rel_dir = NULL;
  FILE *ft = NULL, *fv = NULL;
  const cJSON *videos = cJSON_GetObjectItemCaseSensitive(root, "videos");
  if (!cJSON_IsArray(videos)) {
    vb_error("%s: expected fho_main.json ({\"videos\": [...]})", o->fho_main);
    goto done;
  }
  int cap = cJSON_GetArraySize(videos);
  vids = vb_calloc((size_t)cap + 1, sizeof *vids);
  order = vb_calloc((size_t)cap + 1, sizeof *order);
  if (!vids || !order) goto done;
  /* {video_uid: video} over the videos on disk; a repeated uid keeps its first place and
   * takes the later value, as a Python dict does */
  const cJSON *v;
  cJSON_ArrayForEach(v, videos) {
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(v, "video_uid");
    if (!cJSON_IsString(uid) || !uid->valuestring[0] || strchr(uid->valuestring, '/')) {
      vb_error("%s: a video without a valid \"video_uid\"", o->fho_main);
      goto done;
    }
    char file[1024];
    snprintf(file, sizeof file, "%s.mp4", uid->valuestring);
    char *path = vb_path_join(o->video_dir, file);
    struct stat sb;
    int present = path && stat(path, &sb) == 0;
    free(path);
    st->videos++;
    if (!present) {
      st->missing_videos++;
      continue;
    }
    int k = 0;
    while (k < nv && strcmp(vids[k].uid, uid->valuestring))
      k++;
    if (k == nv) nv++;
    vids[k].uid = uid->valuestring;
    vids[k].video = v;
  }
  int kept = 0;
  long total = 0;
  for (int i = 0; i < nv; i++) {
    fho_video *x = &vids[i];
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(x->video, "video_metadata");
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(meta, "duration_sec");
    if (!cJSON_IsNumber(dur)) {
      vb_error("%s: video %s has no video_metadata.duration_sec", o->fho_main, x->uid);
      goto done;
    }
    x->duration = dur->valuedouble;
    if (keep_actions(o->fho_main, x)) goto done;
    if (x->n_actions == 0) {
      st->skipped_videos++;
      free(x->actions);
      x->actions = NULL;
      continue;
    }
    fho_video keep = *x; /* compacted so that every action list has one owner */
    x->actions = NULL;
    vids[kept++] = keep;
    total += keep.n_actions;
  }
  nv = kept;
  long goal = (long)nearbyint((double)total * (1.0 - o->val_fraction)); /* round half to even */
  py_random r;
  py_random_seed(&r, o->seed);
  py_random_sample_all(&r, nv, order);
  if (vb_make_dirs(o->out_dir)) goto done;
  if (!(rel_dir = vb_relative_path(o->out_dir, o->video_dir))) goto done;
  if (!(ptrain = vb_path_join(o->out_dir, "train.jsonl")) ||
      !(pval = vb_path_join(o->out_dir, "val.jsonl")))
    goto done;
  if (!(ft = vb_open_tmp(ptrain, &ttrain)) || !(fv = vb_open_tmp(pval, &tval))) goto done;
  long in_train = 0;
  for (int i = 0; i < nv; i++) {
    fho_video *x = &vids[order[i]];
    int to_train = in_train < goal;
    char file[1024];
    snprintf(file, sizeof file, "%s.mp4", x->uid);
    char *vp = vb_path_join(rel_dir, file);
    if (!vp) goto done;
    int w = write_clips(to_train ? ft : fv, x, vp, o);
    free(vp);
    if (w) goto done;
    if (to_train) {
      in_train += x->n_actions;
      st->train_videos++;
      st->train_clips += x->n_actions;
    } else {
      st->val_videos++;
      st->val_clips += x->n_actions;
    }
  }
  int e1 = fclose(ft), e2 = fclose(fv);
  ft = fv = NULL;
  if (e1 || e2) {
    vb_error("cannot write the clip lists in %s", o->out_dir);
    goto done;
  }
  if (rename(ttrain, ptrain) || rename(tval, pval)) {
    vb_error("cannot rename the clip lists in %s: %s", o->out_dir, strerror(errno));
    goto done;
  }
  rc = 0;
done:
  if (ft) fclose(ft);
  if (fv) fclose(fv);
  if (rc && ttrain) unlink(ttrain);
  if (rc && tval) unlink(tval);
  free(ttrain);
  free(tval);
  free(ptrain);
  free(pval);
  free(rel_dir);
  for (int i = 0; i < nv; i++)
    free(vids[i].actions);
  free(vids);
  free(order);
  cJSON_Delete(root);
  return rc;
}
