/* The training loop of `vblip train`, following the Trainer's rules (schedule.h) so that
 * VideoBLIP's recipe runs as it did, and a resumed run repeats an uninterrupted one. */
#include "train/run.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"
#include "train/dataset.h"
#include "train/frames.h"
#include "train/plot.h"
#include "train/trainer.h"

#define DEFAULT_PROMPT "Question: What is the camera wearer doing? Answer:"

void vb_train_run_options_default(vb_train_run_options *o) {
  memset(o, 0, sizeof *o);
  vblip_train_options_default(&o->train);
  o->prompt = DEFAULT_PROMPT;
  o->frames = 8;
  o->epochs = 1;
  o->max_steps = -1;
  o->batch = 1;
  o->grad_accum = 1;
  o->eval_batch = 8;
  o->schedule = VB_SCHED_LINEAR;
  o->max_grad_norm = 1.0;
  o->seed = 42;
  o->logging_steps = 10;
  o->cache_bytes = (size_t)4096 << 20;
}

/* ---- examples: built once from a clip, kept while the memory budget lasts ---- */

typedef struct {
  vblip_trainer *t;
  const vb_dataset *d;
  vblip_train_example **cache;
  size_t used, budget, per_example;
  int frames;
  const char *prompt;
} example_source;

static int get_example(example_source *s, int i, vblip_train_example **ex, int *owned) {
  *owned = 0;
  if (s->cache[i]) {
    *ex = s->cache[i];
    return 0;
  }
  const vb_clip *c = &s->d->items[i];
  const char *prompt = c->prompt ? c->prompt : s->prompt;
  if (c->frames) { /* extracted by vblip extract-frames: no decoding */
    float *px = NULL;
    int n = 0;
    int rc = vb_frames_file_read(c->frames, vb_trainer_config(s->t)->vision.image_size, &px, &n);
    if (rc == 0) rc = vblip_trainer_example_pixels(s->t, px, n, prompt, c->text, ex);
    free(px);
    if (rc) return -1;
  } else if (vblip_trainer_example_video(s->t, c->video, c->start, c->end, s->frames, prompt,
                                         c->text, ex)) {
    return -1;
  }
  if (s->used + s->per_example <= s->budget) {
    s->cache[i] = *ex;
    s->used += s->per_example;
  } else {
    *owned = 1;
  }
  return 0;
}

/* ---- data order: a function of (seed, epoch), so a resumed run sees the same ---- */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void epoch_order(long seed, long epoch, int n, int *order) {
  uint64_t s = (uint64_t)seed * 0x100000001b3ULL ^ ((uint64_t)epoch + 1) * 0xc2b2ae3d27d4eb4fULL;
  for (int i = 0; i < n; i++)
    order[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(splitmix(&s) % (uint64_t)(i + 1)), x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
}

/* ---- where the loop stands after an optimizer step (what a checkpoint records) ---- */

typedef struct {
  long global_step;
  long epoch, batch; /* the next micro-batch */
  long counter;      /* micro-batches since the start (or the resume) */
  vb_loss_log log;
  long best_step; /* -1: none */
  double best_loss;
  double state_epoch; /* epoch + fraction done, as the Trainer reports it */
} run_state;

static char *state_json(const run_state *s, const vb_train_run_options *o, const vb_train_plan *p,
                        int n_examples) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "global_step", (double)s->global_step);
  cJSON_AddNumberToObject(j, "epoch", s->state_epoch);
  cJSON_AddNumberToObject(j, "next_epoch", (double)s->epoch);
  cJSON_AddNumberToObject(j, "next_batch", (double)s->batch);
  cJSON_AddNumberToObject(j, "micro_batch_counter", (double)s->counter);
  /* the float32 accumulator exactly, as its bit pattern */
  uint32_t bits;
  memcpy(&bits, &s->log.tr_loss, 4);
  cJSON_AddNumberToObject(j, "tr_loss_f32_bits", (double)bits);
  char buf[64];
  snprintf(buf, sizeof buf, "%a", s->log.logged_total);
  cJSON_AddStringToObject(j, "logged_loss_total", buf);
  cJSON_AddNumberToObject(j, "last_logged_step", (double)s->log.last_logged_step);
  if (s->best_step >= 0) {
    snprintf(buf, sizeof buf, "checkpoint-%ld", s->best_step);
    cJSON_AddStringToObject(j, "best_model_checkpoint", buf);
    snprintf(buf, sizeof buf, "%a", s->best_loss);
    cJSON_AddStringToObject(j, "best_metric", buf);
  }
  /* what must not change across a resume */
  cJSON *r = cJSON_AddObjectToObject(j, "run");
  cJSON_AddNumberToObject(r, "train_examples", n_examples);
  cJSON_AddNumberToObject(r, "batch", (double)o->batch);
  cJSON_AddNumberToObject(r, "grad_accum", (double)o->grad_accum);
  cJSON_AddNumberToObject(r, "total_steps", (double)p->total_steps);
  cJSON_AddNumberToObject(r, "seed", (double)o->seed);
  cJSON_AddNumberToObject(r, "learning_rate", o->train.lr);
  cJSON_AddBoolToObject(r, "dropout", o->train.dropout != 0);
  char *out = cJSON_Print(j);
  cJSON_Delete(j);
  return out;
}

static double json_num(const cJSON *o, const char *key, int *bad) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (cJSON_IsString(v)) return strtod(v->valuestring, NULL);
  if (!cJSON_IsNumber(v)) {
    *bad = 1;
    return 0;
  }
  return v->valuedouble;
}

static int load_state(const char *dir, run_state *s, const vb_train_run_options *o,
                      const vb_train_plan *p, int n_examples) {
  char *path = vb_path_join(dir, "trainer_state.json"), *text = NULL;
  if (!path || vb_read_file(path, 1 << 24, &text, NULL)) {
    free(path);
    return vb_error_context("resuming from %s", dir);
  }
  cJSON *j = cJSON_Parse(text);
  free(text);
  int bad = !cJSON_IsObject(j);
  s->global_step = (long)json_num(j, "global_step", &bad);
  s->state_epoch = json_num(j, "epoch", &bad);
  s->epoch = (long)json_num(j, "next_epoch", &bad);
  s->batch = (long)json_num(j, "next_batch", &bad);
  s->counter = (long)json_num(j, "micro_batch_counter", &bad);
  uint32_t bits = (uint32_t)json_num(j, "tr_loss_f32_bits", &bad);
  memcpy(&s->log.tr_loss, &bits, 4);
  s->log.logged_total = json_num(j, "logged_loss_total", &bad);
  s->log.last_logged_step = (long)json_num(j, "last_logged_step", &bad);
  const cJSON *best = cJSON_GetObjectItemCaseSensitive(j, "best_model_checkpoint");
  s->best_step = -1;
  if (cJSON_IsString(best) && sscanf(best->valuestring, "checkpoint-%ld", &s->best_step) == 1)
    s->best_loss = json_num(j, "best_metric", &bad);
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "run");
  int diff = (long)json_num(r, "train_examples", &bad) != n_examples ||
             (long)json_num(r, "batch", &bad) != o->batch ||
             (long)json_num(r, "grad_accum", &bad) != o->grad_accum ||
             (long)json_num(r, "total_steps", &bad) != p->total_steps ||
             (long)json_num(r, "seed", &bad) != o->seed;
  /* runs before dropout existed trained without it */
  int dropout_diff =
      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "dropout")) != (o->train.dropout != 0);
  cJSON_Delete(j);
  int rc = 0;
  if (bad)
    rc = vb_error("%s: not a vblip trainer state", path);
  else if (diff)
    rc = vb_error("%s was written by a run with other data, --batch, --grad-accum, step count "
                  "or --seed: resume with the same settings",
                  path);
  else if (dropout_diff)
    rc = vb_error("%s was written by a run %s dropout: resume with%s --no-dropout", path,
                  o->train.dropout ? "without" : "with", o->train.dropout ? "" : "out");
  else if (s->epoch < 0 || s->batch < 0 || s->batch > p->len_dataloader || s->global_step < 0)
    rc = vb_error("%s: position out of range", path);
  free(path);
  return rc;
}

/* ---- log: stdout, and a JSON-lines or CSV file ---- */

typedef struct {
  FILE *f;
  int csv;
} run_log;

static void log_row(run_log *l, long step, double epoch, double loss, double lr, double grad_norm,
                    double eval_loss) {
  char line[512];
  int n = snprintf(line, sizeof line, "{\"step\": %ld, \"epoch\": %.2f", step, epoch);
  if (!isnan(loss))
    n += snprintf(line + n, sizeof line - n,
                  ", \"loss\": %.4f, \"learning_rate\": %.6g, \"grad_norm\": %.6g", loss, lr,
                  grad_norm);
  if (!isnan(eval_loss))
    n += snprintf(line + n, sizeof line - n, ", \"eval_loss\": %.6f", eval_loss);
  snprintf(line + n, sizeof line - n, "}");
  printf("%s\n", line);
  fflush(stdout);
  if (!l->f) return;
  if (!l->csv) {
    fprintf(l->f, "%s\n", line);
  } else {
    fprintf(l->f, "%ld,%.2f,", step, epoch);
    if (!isnan(loss))
      fprintf(l->f, "%.4f,%.6g,%.6g,", loss, lr, grad_norm);
    else
      fputs(",,,", l->f);
    if (!isnan(eval_loss)) fprintf(l->f, "%.6f", eval_loss);
    fputc('\n', l->f);
  }
  fflush(l->f);
}

/* ---- checkpoints in OUT: checkpoint-<step> directories ---- */

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return (x > y) - (x < y);
}

/* The steps of OUT's checkpoints, oldest first. */
static int list_checkpoints(const char *out, long *steps, int cap) {
  DIR *d = opendir(out);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    long s;
    char tail;
    if (sscanf(e->d_name, "checkpoint-%ld%c", &s, &tail) == 1 && n < cap) steps[n++] = s;
  }
  if (d) closedir(d);
  qsort(steps, (size_t)n, sizeof *steps, cmp_long);
  return n;
}

static void remove_flat(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = vb_path_join(dir, e->d_name);
    if (p) unlink(p);
    free(p);
  }
  if (d) closedir(d);
  rmdir(dir);
}

/* Renamed out of the checkpoint-N pattern first, then emptied: a kill in between leaves
 * no half-deleted checkpoint, only a stray directory the next run removes. */
static void remove_checkpoint(const char *out, long step) {
  char name[64], gone[96];
  snprintf(name, sizeof name, "checkpoint-%ld", step);
  snprintf(gone, sizeof gone, "checkpoint-%ld.deleting-%ld", step, (long)getpid());
  char *dir = vb_path_join(out, name), *trash = vb_path_join(out, gone);
  if (dir && trash && rename(dir, trash) == 0) remove_flat(trash);
  free(dir);
  free(trash);
}

/* What killed runs left in OUT: checkpoint-N.tmp-PID, .old-PID and .deleting-PID. */
static void remove_strays(const char *out) {
  DIR *d = opendir(out);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    long step;
    int used = 0;
    if (sscanf(e->d_name, "checkpoint-%ld%n", &step, &used) != 1 || !e->d_name[used]) continue;
    const char *tail = e->d_name + used;
    if (strncmp(tail, ".tmp-", 5) && strncmp(tail, ".old-", 5) && strncmp(tail, ".deleting-", 10))
      continue;
    char *p = vb_path_join(out, e->d_name);
    if (p) remove_flat(p);
    free(p);
  }
  if (d) closedir(d);
}

static char *info_json(const vb_train_run_options *o, long step, double loss) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "source_model", o->model);
  cJSON_AddStringToObject(j, "data", o->data);
  cJSON_AddNumberToObject(j, "steps", (double)step);
  if (isfinite(loss)) cJSON_AddNumberToObject(j, "train_loss", loss);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  return s;
}

static int save_checkpoint(vblip_trainer *t, const vb_train_run_options *o, const run_state *s,
                           const vb_train_plan *p, int n_examples) {
  char name[64];
  snprintf(name, sizeof name, "checkpoint-%ld", s->global_step);
  char *dir = vb_path_join(o->out, name);
  char *st = state_json(s, o, p, n_examples), *info = info_json(o, s->global_step, NAN);
  int rc = dir && st && info ? vblip_trainer_save_checkpoint(t, dir, info, st) : -1;
  free(dir);
  free(st);
  free(info);
  if (rc || o->save_total_limit <= 0) return rc;
  long steps[4096], del[4096];
  int n = list_checkpoints(o->out, steps, 4096);
  int nd = vb_rotation_plan(steps, n, s->best_step, o->save_total_limit, 0, del);
  for (int i = 0; i < nd; i++)
    remove_checkpoint(o->out, del[i]);
  return 0;
}

/* ---- evaluation: mean over the validation set of its eval-batch token means ---- */

static int evaluate(example_source *vs, long eval_batch, double *out) {
  double total = 0;
  int n = vs->d->n;
  for (int b0 = 0; b0 < n; b0 += (int)eval_batch) {
    int nb = n - b0 < eval_batch ? n - b0 : (int)eval_batch;
    double sum = 0;
    long tokens = 0;
    for (int k = 0; k < nb; k++) {
      vblip_train_example *ex;
      int owned;
      double l;
      if (get_example(vs, b0 + k, &ex, &owned)) return -1;
      int c = vblip_train_example_tokens(vs->t, ex);
      int rc = vblip_trainer_loss(vs->t, ex, &l);
      if (owned) vblip_train_example_free(ex);
      if (rc) return -1;
      sum += l * c;
      tokens += c;
    }
    total += nb * (tokens ? sum / (double)tokens : 0);
  }
  *out = total / n;
  return 0;
}

static void fmt_time(double s, char *buf, size_t n) {
  if (!isfinite(s) || s < 0) s = 0;
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

int vb_train_run(const vb_train_run_options *o) {
  vb_dataset train = {0}, valset = {0};
  vblip_trainer *t = NULL;
  example_source ts = {0}, vs = {0};
  int *order = NULL, status = -1;
  run_log log = {0};
  if (o->batch < 1 || o->grad_accum < 1 || o->eval_batch < 1 || o->logging_steps < 0)
    return vb_error("batch sizes and accumulation must be >= 1");
  if (o->plot && !o->log) return vb_error("--plot draws the --log file: give --log too");
  if (vb_dataset_load(o->data, o->video_dir, &train)) return -1;
  if (o->val && vb_dataset_load(o->val, o->val_video_dir, &valset)) goto done;
  if (o->load_best_at_end &&
      (!o->val || o->eval_steps <= 0 || o->save_steps <= 0 || o->save_steps % o->eval_steps != 0)) {
    vb_error("--load-best-at-end needs --val, --eval-steps and --save-steps a multiple of it");
    goto done;
  }
  vb_train_plan plan;
  vb_train_plan_make(train.n, o->batch, o->grad_accum, o->epochs, o->max_steps, &plan);
  long warmup = vb_warmup_steps(o->warmup_steps, o->warmup_ratio, plan.total_steps);
  vblip_train_options topt = o->train;
  topt.seed = (unsigned long long)o->seed; /* --seed keys the dropout masks too */
  if (!(t = vblip_trainer_open(o->model, &topt))) goto done;
  {
    /* OUT's parent directories are made, as ego4d-split and extract-frames make theirs */
    char *parent = vb_strdup(o->out), *slash = parent ? strrchr(parent, '/') : NULL;
    int mk = 0;
    if (slash && slash != parent) {
      *slash = 0;
      mk = vb_make_dirs(parent);
    }
    free(parent);
    if (mk) goto done;
  }
  /* every output location is checked before the first step, not after the work */
  if (vblip_trainer_check_output(t, o->out)) goto done;
  if (mkdir(o->out, 0755) && errno != EEXIST) {
    vb_error("cannot create %s: %s", o->out, strerror(errno));
    goto done;
  }
  {
    /* OUT carries the marker from the start, so that saves into it are allowed */
    char *marker = vb_path_join(o->out, "vblip_train.json");
    FILE *f = marker && !vb_file_exists(marker) ? fopen(marker, "w") : NULL;
    if (f) {
      fputs("{\"state\": \"training\"}\n", f);
      fclose(f);
    }
    free(marker);
  }
  remove_strays(o->out);
  if (o->log && !(log.f = fopen(o->log, o->resume ? "a" : "w"))) {
    vb_error("cannot write the log %s: %s", o->log, strerror(errno));
    goto done;
  }
  size_t n = strlen(o->log ? o->log : "");
  log.csv = n >= 4 && !strcmp(o->log + n - 4, ".csv");
  if (log.csv && !o->resume) fputs("step,epoch,loss,learning_rate,grad_norm,eval_loss\n", log.f);

  run_state s = {.best_step = -1, .best_loss = INFINITY};
  if (o->resume) {
    if (load_state(o->resume, &s, o, &plan, train.n) || vblip_trainer_load_checkpoint(t, o->resume))
      goto done;
    if (vblip_trainer_steps(t) != s.global_step) {
      vb_error("%s: the optimizer's step count does not match the trainer state", o->resume);
      goto done;
    }
  }
  order = malloc((size_t)train.n * sizeof *order);
  ts = (example_source){
      .t = t, .d = &train, .frames = o->frames, .prompt = o->prompt, .budget = o->cache_bytes};
  vs = (example_source){
      .t = t, .d = &valset, .frames = o->frames, .prompt = o->prompt, .budget = o->cache_bytes};
  ts.cache = calloc((size_t)train.n, sizeof *ts.cache);
  vs.cache = calloc((size_t)valset.n + 1, sizeof *vs.cache);
  if (!order || !ts.cache || !vs.cache) {
    vb_error("out of memory");
    goto done;
  }
  {
    /* a cached example is mostly its vision features: frames x tokens x width floats */
    const vb_model_config *mc = vb_trainer_config(t);
    size_t grid = (size_t)(mc->vision.image_size / mc->vision.patch_size);
    ts.per_example = vs.per_example =
        (size_t)o->frames * (grid * grid + 1) * (size_t)mc->vision.hidden_size * sizeof(float) +
        4096;
  }
  int tty = !o->quiet && isatty(2);
  if (!o->quiet)
    fprintf(stderr,
            "vblip train: %d clips%s, %ld steps of %ld x %ld (%ld micro-batches per epoch), "
            "lr %g (%ld warmup), weight decay %g%s\n",
            train.n, o->val ? " (+ validation)" : "", plan.total_steps, o->batch, o->grad_accum,
            plan.len_dataloader, o->train.lr, warmup, o->train.weight_decay,
            o->resume ? ", resumed" : "");
  double t0 = vb_now_ms(), grad_norm = 0;
  long start_step = s.global_step;
  int at_step_boundary = 1; /* no micro-batch of a window accumulated yet */
  long window_micro = 0;    /* micro-batches of the current window so far (dropout's key) */
  while (s.global_step < plan.total_steps && s.epoch < plan.epochs) {
    epoch_order(o->seed, s.epoch, train.n, order);
    for (; s.batch < plan.len_dataloader && s.global_step < plan.total_steps; s.batch++) {
      /* stop only between optimizer steps, where the state is what a checkpoint holds */
      if (at_step_boundary && ((o->interrupted && *o->interrupted) ||
                               (o->stop_after > 0 && s.global_step >= o->stop_after)))
        goto interrupted;
      long b0 = s.batch * o->batch;
      int nb = (int)(train.n - b0 < o->batch ? train.n - b0 : o->batch);
      vblip_train_example *ex[nb];
      int owned[nb];
      long tokens = 0;
      for (int k = 0; k < nb; k++) {
        if (get_example(&ts, order[b0 + k], &ex[k], &owned[k])) {
          for (int q = 0; q < k; q++)
            if (owned[q]) vblip_train_example_free(ex[q]);
          goto done;
        }
        tokens += vblip_train_example_tokens(t, ex[k]);
      }
      /* the micro-batch loss is its token mean; backward on loss / grad_accum */
      double mb_loss = 0;
      int rc = 0;
      for (int k = 0; k < nb; k++) {
        int c = vblip_train_example_tokens(t, ex[k]);
        double w = tokens ? (double)c / (double)tokens / (double)o->grad_accum : 0, l = 0;
        vblip_trainer_set_dropout_position(t, window_micro, k);
        if (!rc && c > 0) rc = vblip_trainer_accumulate(t, ex[k], w, &l);
        mb_loss += tokens ? l * c / (double)tokens : 0;
        if (owned[k]) vblip_train_example_free(ex[k]);
      }
      if (rc) goto done;
      vb_loss_log_add(&s.log, mb_loss, o->grad_accum, s.global_step);
      s.counter++;
      window_micro++;
      at_step_boundary = 0;
      if (!vb_train_window_ends(s.counter, o->grad_accum, s.batch, plan.len_dataloader)) continue;
      at_step_boundary = 1;
      window_micro = 0;
      grad_norm = vblip_trainer_clip_grad_norm(t, o->max_grad_norm);
      vblip_trainer_set_lr(
          t, o->train.lr * vb_lr_multiplier(o->schedule, s.global_step, warmup, plan.total_steps));
      vblip_trainer_step(t);
      s.global_step++;
      s.state_epoch = (double)s.epoch + (double)(s.batch + 1) / (double)plan.len_dataloader;
      double lr_next =
          o->train.lr * vb_lr_multiplier(o->schedule, s.global_step, warmup, plan.total_steps);
      if (o->logging_steps > 0 && s.global_step % o->logging_steps == 0) {
        double l = vb_loss_log_take(&s.log, s.global_step);
        log_row(&log, s.global_step, s.state_epoch, l, lr_next, grad_norm, NAN);
      }
      int saving = o->save_steps > 0 && s.global_step % o->save_steps == 0;
      if (o->val && o->eval_steps > 0 && s.global_step % o->eval_steps == 0) {
        double el;
        if (evaluate(&vs, o->eval_batch, &el)) goto done;
        log_row(&log, s.global_step, s.state_epoch, NAN, 0, 0, el);
        /* this save becomes the best when strictly lower (ties keep the older) */
        if (saving && el < s.best_loss) {
          s.best_loss = el;
          s.best_step = s.global_step;
        }
      }
      if (o->plot &&
          ((o->logging_steps > 0 && s.global_step % o->logging_steps == 0) ||
           (o->val && o->eval_steps > 0 && s.global_step % o->eval_steps == 0)) &&
          vb_plot_log(o->log, o->plot) && !o->quiet)
        fprintf(stderr, "vblip train: cannot draw %s: %s\n", o->plot, vblip_last_error());
      if (saving) {
        run_state after = s; /* the position after this step */
        if (++after.batch == plan.len_dataloader) after.epoch++, after.batch = 0;
        if (save_checkpoint(t, o, &after, &plan, train.n)) goto done;
      }
      if (tty) {
        double el = (vb_now_ms() - t0) / 1000,
               rate = (double)(s.global_step - start_step) / (el > 0 ? el : 1e-9);
        char eta[32];
        fmt_time((double)(plan.total_steps - s.global_step) / rate, eta, sizeof eta);
        fprintf(stderr, "\r\033[Kstep %ld/%ld  epoch %.2f  %.2f s/step  ETA %s", s.global_step,
                plan.total_steps, s.state_epoch, rate > 0 ? 1 / rate : 0, eta);
      }
    }
    if (s.batch >= plan.len_dataloader) {
      s.epoch++;
      s.batch = 0;
    }
  }
  if (tty) fputc('\n', stderr);
  double train_loss = vb_loss_log_final(&s.log, s.global_step);
  printf("{\"train_loss\": %.6f, \"global_step\": %ld}\n", train_loss, s.global_step);
  if (o->save_total_limit > 0) {
    long steps[4096], del[4096];
    int nk = list_checkpoints(o->out, steps, 4096);
    int nd = vb_rotation_plan(steps, nk, s.best_step, o->save_total_limit, 1, del);
    for (int i = 0; i < nd; i++)
      remove_checkpoint(o->out, del[i]);
  }
  if (o->load_best_at_end && s.best_step >= 0) {
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%ld", s.best_step);
    char *dir = vb_path_join(o->out, name);
    int rc = dir ? vblip_trainer_load_checkpoint(t, dir) : -1;
    free(dir);
    if (rc) goto done;
    if (!o->quiet)
      fprintf(stderr, "vblip train: loaded the best checkpoint, %s (eval_loss %.6f)\n", name,
              s.best_loss);
  }
  {
    char *info = info_json(o, s.global_step, train_loss);
    int rc = info ? vblip_trainer_save(t, o->out, info) : -1;
    free(info);
    if (rc) goto done;
  }
  if (!o->quiet) fprintf(stderr, "vblip train: saved %s (%ld steps)\n", o->out, s.global_step);
  status = 0;
  goto done;
interrupted:
  if (tty) fputc('\n', stderr);
  /* between steps: the state is exactly a checkpoint's */
  if (s.global_step > start_step || (s.global_step > 0 && !o->resume)) {
    if (save_checkpoint(t, o, &s, &plan, train.n)) goto done;
    if (!o->quiet)
      fprintf(stderr, "vblip train: stopped; saved %s/checkpoint-%ld (continue with --resume)\n",
              o->out, s.global_step);
  }
  status = 130;
done:
  if (ts.cache)
    for (int i = 0; i < train.n; i++)
      vblip_train_example_free(ts.cache[i]);
  if (vs.cache)
    for (int i = 0; i < valset.n; i++)
      vblip_train_example_free(vs.cache[i]);
  free(ts.cache);
  free(vs.cache);
  free(order);
  if (log.f) fclose(log.f);
  vblip_trainer_free(t);
  vb_dataset_free(&train);
  vb_dataset_free(&valset);
  return status;
}
