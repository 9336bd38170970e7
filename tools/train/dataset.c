#define _GNU_SOURCE /* strcasestr */
#include "train/dataset.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"
#include "vblip_train.h"

/* ---- narration text ---- */

static void strip(char *s) {
  size_t b = 0, n = strlen(s);
  while (b < n && isspace((unsigned char)s[b])) b++;
  while (n > b && isspace((unsigned char)s[n - 1])) n--;
  memmove(s, s + b, n - b);
  s[n - b] = 0;
}

static int ends_with_ci(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strncasecmp(s + n - k, suffix, k) == 0;
}

int vblip_narration_is_camera_wearer(const char *text) {
  return strncasecmp(text, "#C C", 4) == 0;
}

/* VideoBLIP's clean_narration_text: strip, then the regex ^#C C (ignoring case) becomes
 * "The camera wearer"; nothing else changes. */
char *vblip_clean_narration(const char *text) {
  size_t n = strlen(text);
  char *s = vb_malloc(n + 32);
  if (!s) return NULL;
  memcpy(s, text, n + 1);
  strip(s);
  if (vblip_narration_is_camera_wearer(s)) {
    const char *rep = "The camera wearer";
    size_t rl = strlen(rep);
    memmove(s + rl, s + 4, strlen(s + 4) + 1);
    memcpy(s, rep, rl);
  }
  return s;
}

/* EILEV's variant: also "#C   c" with any spaces, a trailing <|eos|> or #unsure dropped,
 * "#unsure" elsewhere -> "something", and a final period. */
char *vblip_clean_narration_eilev(const char *text) {
  size_t n = strlen(text);
  /* room for "The camera wearer" growth, every "#unsure" -> "something" and a '.' */
  char *s = vb_malloc(n * 2 + 32);
  if (!s) return NULL;
  memcpy(s, text, n + 1);
  strip(s);
  /* ^#C\s+C (case-insensitive) -> "The camera wearer" */
  if ((s[0] == '#') && (s[1] == 'C' || s[1] == 'c') && isspace((unsigned char)s[2])) {
    size_t i = 2;
    while (isspace((unsigned char)s[i])) i++;
    if (s[i] == 'C' || s[i] == 'c') {
      const char *rep = "The camera wearer";
      size_t rl = strlen(rep), rest = strlen(s + i + 1);
      memmove(s + rl, s + i + 1, rest + 1);
      memcpy(s, rep, rl);
      strip(s);
    }
  }
  if (ends_with_ci(s, "<|eos|>")) {
    s[strlen(s) - 7] = 0;
    strip(s);
  }
  if (ends_with_ci(s, "#unsure.")) s[strlen(s) - 8] = 0, strip(s);
  else if (ends_with_ci(s, "#unsure")) s[strlen(s) - 7] = 0, strip(s);
  for (char *p = s; (p = strcasestr(p, "#unsure"));) {
    memmove(p + 9, p + 7, strlen(p + 7) + 1);
    memcpy(p, "something", 9);
    p += 9;
  }
  size_t len = strlen(s);
  if (len > 0 && !strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", s[len - 1])) {
    s[len] = '.';
    s[len + 1] = 0;
  }
  return s;
}

/* ---- JSONL clip lists ---- */

void vb_dataset_free(vb_dataset *d) {
  for (int i = 0; i < d->n; i++) {
    free(d->items[i].video);
    free(d->items[i].frames);
    free(d->items[i].text);
    free(d->items[i].prompt);
  }
  free(d->items);
  memset(d, 0, sizeof *d);
}

static char *resolve(const char *jsonl, const char *video_dir, const char *video) {
  if (video[0] == '/') return vb_strdup(video);
  if (video_dir) return vb_path_join(video_dir, video);
  const char *slash = strrchr(jsonl, '/');
  if (!slash) return vb_strdup(video);
  size_t n = (size_t)(slash - jsonl);
  char *dir = vb_malloc(n + 1);
  if (!dir) return NULL;
  memcpy(dir, jsonl, n);
  dir[n] = 0;
  char *p = vb_path_join(dir, video);
  free(dir);
  return p;
}

int vb_dataset_load(const char *jsonl, const char *video_dir, vb_dataset *out) {
  memset(out, 0, sizeof *out);
  char *text = NULL;
  if (vb_read_file(jsonl, (size_t)1 << 31, &text, NULL)) return -1;
  int cap = 0, line_no = 0, rc = -1;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    line_no++;
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    if (!*p) continue;
    cJSON *j = cJSON_Parse(p);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "video");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "start");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "end");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(j, "frames");
    if (cJSON_IsString(fr) && !v) v = fr; /* a frames dataset line needs no video */
    if (!cJSON_IsObject(j) || !cJSON_IsString(v) || !cJSON_IsString(t) ||
        (fr && !cJSON_IsString(fr)) || (s && !cJSON_IsNumber(s)) || (e && !cJSON_IsNumber(e)) ||
        (pr && !cJSON_IsString(pr))) {
      cJSON_Delete(j);
      vb_error("%s:%d: expected {\"video\": path, \"start\": s, \"end\": e, \"text\": narration} "
               "(or \"frames\": path)",
               jsonl, line_no);
      goto done;
    }
    if (out->n == cap) {
      cap = cap ? cap * 2 : 64;
      vb_clip *items = vb_realloc(out->items, (size_t)cap * sizeof *items);
      if (!items) {
        cJSON_Delete(j);
        goto done;
      }
      out->items = items;
    }
    vb_clip *c = &out->items[out->n];
    memset(c, 0, sizeof *c);
    c->start = s ? s->valuedouble : 0;
    c->end = e ? e->valuedouble : -1;
    c->video = resolve(jsonl, video_dir, v->valuestring);
    c->frames = fr ? resolve(jsonl, NULL, fr->valuestring) : NULL;
    c->text = vb_strdup(t->valuestring);
    c->prompt = pr ? vb_strdup(pr->valuestring) : NULL;
    out->n++;
    cJSON_Delete(j);
    if (!c->video || !c->text || (pr && !c->prompt) || (fr && !c->frames)) goto done;
    /* a start before 0 (VideoBLIP's window at the end of a short video) decodes from 0 */
    if (!isfinite(c->start) || (c->end >= 0 && c->end <= c->start)) {
      vb_error("%s:%d: bad clip window [%g, %g)", jsonl, line_no, c->start, c->end);
      goto done;
    }
  }
  if (out->n == 0) {
    vb_error("%s: no examples", jsonl);
    goto done;
  }
  rc = 0;
done:
  free(text);
  if (rc) vb_dataset_free(out);
  return rc;
}

/* ---- Ego4D narrations -> train/val clip lists ---- */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int vb_make_dirs(const char *path) {
  char *p = vb_strdup(path);
  if (!p) return -1;
  int rc = 0;
  for (char *q = p + 1; rc == 0; q++) {
    if (*q != '/' && *q) continue;
    char c = *q;
    *q = 0;
    if (mkdir(p, 0755) && errno != EEXIST)
      rc = vb_error("cannot create %s: %s", p, strerror(errno));
    *q = c;
    if (!c) break;
  }
  free(p);
  return rc;
}

FILE *vb_open_tmp(const char *path, char **tmp) {
  size_t n = strlen(path) + 32;
  *tmp = vb_malloc(n);
  if (!*tmp) return NULL;
  snprintf(*tmp, n, "%s.tmp-%ld", path, (long)getpid());
  FILE *f = fopen(*tmp, "w");
  if (!f) vb_error("cannot create %s: %s", *tmp, strerror(errno));
  return f;
}

int vb_ego4d_split(const vb_ego4d_split_options *o, vb_ego4d_split_stats *st) {
  memset(st, 0, sizeof *st);
  char *text = NULL, *ptrain = NULL, *pval = NULL, *ttrain = NULL, *tval = NULL, *rel_dir = NULL;
  const char **uids = NULL;
  char *is_val = NULL;
  FILE *ft = NULL, *fv = NULL;
  int rc = -1;
  cJSON *root = NULL;
  if (vb_read_file(o->narrations, (size_t)4 << 30, &text, NULL)) return -1;
  root = cJSON_Parse(text);
  free(text);
  text = NULL;
  if (!cJSON_IsObject(root)) {
    vb_error("%s: not a JSON object of videos", o->narrations);
    goto done;
  }
  int nv = cJSON_GetArraySize(root);
  uids = vb_calloc((size_t)nv + 1, sizeof *uids);
  is_val = vb_calloc((size_t)nv + 1, 1);
  if (!uids || !is_val) goto done;
  const cJSON *v;
  cJSON_ArrayForEach(v, root) uids[st->videos++] = v->string;
  qsort(uids, (size_t)nv, sizeof *uids, cmp_str);
  /* seeded Fisher-Yates over the sorted ids: the first n_val are validation */
  uint64_t s = o->seed;
  for (int i = nv - 1; i > 0; i--) {
    int j = (int)(splitmix(&s) % (uint64_t)(i + 1));
    const char *t = uids[i];
    uids[i] = uids[j];
    uids[j] = t;
  }
  int n_val = (int)(o->val_fraction * nv + 0.5);
  if (o->val_fraction > 0 && n_val == 0 && nv >= 2) n_val = 1;
  if (n_val >= nv && nv >= 2) n_val = nv - 1;
  for (int i = 0; i < n_val; i++) is_val[i] = 1;
  if (vb_make_dirs(o->out_dir)) goto done;
  /* `train` resolves relative video paths next to the JSONL, so the written paths
   * lead from out_dir to the videos */
  if (o->video_dir && !(rel_dir = vb_relative_path(o->out_dir, o->video_dir))) goto done;
  if (!(ptrain = vb_path_join(o->out_dir, "train.jsonl")) || !(pval = vb_path_join(o->out_dir, "val.jsonl")))
    goto done;
  if (!(ft = vb_open_tmp(ptrain, &ttrain)) || !(fv = vb_open_tmp(pval, &tval))) goto done;
  char pass_key[32];
  snprintf(pass_key, sizeof pass_key, "narration_pass_%d", o->pass);
  double half = o->clip_seconds / 2;
  for (int i = 0; i < nv; i++) {
    const cJSON *video = cJSON_GetObjectItemCaseSensitive(root, uids[i]);
    const cJSON *pass = cJSON_GetObjectItemCaseSensitive(video, pass_key);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pass, "narrations");
    if (is_val[i]) st->val_videos++;
    else st->train_videos++;
    const cJSON *nar;
    char file[512];
    snprintf(file, sizeof file, "%s.mp4", uids[i]);
    char *path = rel_dir ? vb_path_join(rel_dir, file) : vb_strdup(file);
    if (!path) goto done;
    cJSON_ArrayForEach(nar, list) {
      const cJSON *ts = cJSON_GetObjectItemCaseSensitive(nar, "timestamp_sec");
      const cJSON *tx = cJSON_GetObjectItemCaseSensitive(nar, "narration_text");
      if (!cJSON_IsNumber(ts) || !cJSON_IsString(tx)) {
        st->skipped++;
        continue;
      }
      char *clean = o->eilev_cleaning ? vblip_clean_narration_eilev(tx->valuestring)
                                      : vblip_clean_narration(tx->valuestring);
      if (!clean) {
        free(path);
        goto done;
      }
      if (!clean[0]) {
        st->skipped++;
        free(clean);
        continue;
      }
      /* VideoBLIP's NarratedActionClipSampler: 8 s around the narration,
       * starting at 0 when the narration is in the first 4 s */
      double start = ts->valuedouble - half;
      if (start < 0) start = 0;
      cJSON *line = cJSON_CreateObject();
      cJSON_AddStringToObject(line, "video", path);
      cJSON_AddNumberToObject(line, "start", start);
      cJSON_AddNumberToObject(line, "end", start + o->clip_seconds);
      cJSON_AddStringToObject(line, "text", clean);
      cJSON_AddStringToObject(line, "video_uid", uids[i]);
      char *js = cJSON_PrintUnformatted(line);
      cJSON_Delete(line);
      free(clean);
      if (!js) {
        free(path);
        vb_error("out of memory");
        goto done;
      }
      fprintf(is_val[i] ? fv : ft, "%s\n", js);
      free(js);
      if (is_val[i]) st->val_clips++;
      else st->train_clips++;
    }
    free(path);
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
  free(uids);
  free(is_val);
  cJSON_Delete(root);
  return rc;
}
