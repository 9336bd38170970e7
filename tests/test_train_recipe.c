/* VideoBLIP's training recipe around the gradients (tests/fixtures/training): narration
 * clean-up, Python's random as the split uses it, clip windows, the fho_main.json split
 * on a hand-made annotation file, relative video paths; the Trainer's learning-rate
 * schedules, step counts and accumulation windows, logged loss, clipping and AdamW,
 * weight-decay groups and checkpoint rotation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/common.h"
#include "testutil.h"
#include "train/dataset.h"
#include "train/plot.h"
#include "train/py_random.h"
#include "train/schedule.h"
#include "train/trainer.h"
#include "vblip_train.h"

static cJSON *training_fixture(void) {
  static cJSON *root;
  if (!root) {
    char *text = NULL;
    if (!CHECK_OK(vb_read_file(tu_fixture("training/expected.json"), 16u << 20, &text, NULL)))
      exit(1);
    root = cJSON_Parse(text);
    free(text);
    if (!CHECK(root != NULL, "training/expected.json parses")) exit(1);
  }
  return root;
}

static void narration_cleaning(void) {
  const cJSON *ex = tu_json_path(training_fixture(), "recipe.data.narration_cleaning_examples"), *c;
  int n = 0;
  cJSON_ArrayForEach(c, ex) {
    char *got = vblip_clean_narration(c->string);
    CHECK(got && !strcmp(got, c->valuestring), "clean(\"%s\") = \"%s\", want \"%s\"", c->string,
          got ? got : "(null)", c->valuestring);
    free(got);
    n++;
  }
  CHECK(n >= 4, "the fixture lists cleaning examples (%d)", n);
  /* EILEV's variant, kept behind --eilev-cleaning */
  const char *eilev[][2] = {
      {"#C C picks up a knife from the table",
       "The camera wearer picks up a knife from the table."},
      {"  #c   c opens the door.  ", "The camera wearer opens the door."},
      {"#C C looks around #unsure", "The camera wearer looks around."},
      {"#C C holds #unsure in his hand", "The camera wearer holds something in his hand."},
      {"#O man X walks <|eos|>", "#O man X walks."},
      {"#C C stops?", "The camera wearer stops?"},
      {"   ", ""},
  };
  for (size_t i = 0; i < sizeof eilev / sizeof eilev[0]; i++) {
    char *got = vblip_clean_narration_eilev(eilev[i][0]);
    CHECK(got && strcmp(got, eilev[i][1]) == 0, "eilev(\"%s\") = \"%s\", want \"%s\"", eilev[i][0],
          got ? got : "(null)", eilev[i][1]);
    free(got);
  }
  CHECK(vblip_narration_is_camera_wearer("#c C sits"), "#c C matches ^#C C ignoring case");
  CHECK(!vblip_narration_is_camera_wearer("#C  C sits"), "two spaces do not match ^#C C");
  CHECK(!vblip_narration_is_camera_wearer(" #C C sits"), "a leading space does not match");
}

/* Values printed by CPython 3.11: random.seed(42); [random.getrandbits(32) for _ in
 * range(3)] and random.seed(42); random.sample(range(10), k=10). */
static void python_random(void) {
  py_random r;
  py_random_seed(&r, 42);
  const uint32_t bits[] = {2746317213u, 478163327u, 107420369u};
  for (int i = 0; i < 3; i++) {
    uint32_t got = py_random_bits(&r, 32);
    CHECK(got == bits[i], "getrandbits(32) #%d = %u, want %u", i, got, bits[i]);
  }
  const int want[] = {1, 0, 4, 9, 6, 5, 8, 2, 3, 7};
  int order[10];
  py_random_seed(&r, 42);
  py_random_sample_all(&r, 10, order);
  for (int i = 0; i < 10; i++)
    CHECK(order[i] == want[i], "sample[%d] = %d, want %d", i, order[i], want[i]);
}

static void clip_windows(void) {
  const cJSON *ex = tu_json_path(training_fixture(), "recipe.frames"), *c;
  ex = cJSON_GetObjectItemCaseSensitive(ex, "clip_window_examples");
  int n = 0;
  cJSON_ArrayForEach(c, ex) {
    double t = cJSON_GetObjectItemCaseSensitive(c, "timestamp")->valuedouble;
    double d = cJSON_GetObjectItemCaseSensitive(c, "duration")->valuedouble;
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(c, "start_end");
    double s, e;
    vb_ego4d_clip_window(t, d, 8, &s, &e);
    CHECK(fabs(s - cJSON_GetArrayItem(se, 0)->valuedouble) < 1e-9 &&
              fabs(e - cJSON_GetArrayItem(se, 1)->valuedouble) < 1e-9,
          "window(t %g, duration %g) = [%g, %g)", t, d, s, e);
    n++;
  }
  CHECK(n == 4, "four window examples (%d)", n);
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static void relative_paths(void) {
  char a[600], b[600];
  snprintf(a, sizeof a, "%s/rel/x/y", tu_tmpdir());
  snprintf(b, sizeof b, "%s/rel/v", tu_tmpdir());
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "mkdir -p %s %s", a, b);
  CHECK(system(cmd) == 0, "mkdir");
  const char *cases[][3] = {{a, b, "../../v"}, {b, a, "../x/y"}, {a, a, "."}, {b, "/", NULL}};
  for (int i = 0; i < 4; i++) {
    char *got = vb_relative_path(cases[i][0], cases[i][1]);
    if (cases[i][2])
      CHECK(got && !strcmp(got, cases[i][2]), "relative(%s, %s) = %s, want %s", cases[i][0],
            cases[i][1], got ? got : "(null)", cases[i][2]);
    else /* up to the root: as many ../ as b has components */
      CHECK(got && !strncmp(got, "../", 3) && got[strlen(got) - 1] == '.', "relative to / = %s",
            got ? got : "(null)");
    free(got);
  }
  char *missing = vb_relative_path(a, "/nonexistent/dir");
  CHECK(missing == NULL, "a missing target is an error");
  free(missing);
}

/* One action of a hand-made fho_main.json. */
static void action(char *buf, size_t cap, const char *text, double t, int rejected, int valid) {
  size_t n = strlen(buf);
  snprintf(buf + n, cap - n,
           "%s{\"narration_text\": \"%s\", \"narration_timestamp_sec\": %g, \"is_rejected\": %s, "
           "\"is_valid_action\": %s}",
           buf[n - 1] == '[' ? "" : ",", text, t, rejected ? "true" : "false",
           valid ? "true" : "false");
}

/* The original's rules worked out by hand on six videos:
 *   v1 on disk: 2 kept actions (one is rejected; one starts with a space: the original
 *      matches ^#C C on the raw text, so it is dropped too)
 *   v2 on disk: 2 kept (one invalid, one "#O ..." dropped)
 *   v3 not on disk (dropped before anything else)
 *   v4 on disk: no "#C C" action, so the video is dropped
 *   v5 on disk, 6 s long: 1 kept ("#c c", any case), at 5 s: window moved back to [-2, 6)
 *   v6 on disk: 2 kept, in two annotated intervals
 * Kept videos in file order: v1 v2 v5 v6, 7 actions, goal round(7 * 0.75) = 5 in train.
 * random.seed(42); random.sample(range(4), k=4) is [0, 3, 1, 2] (CPython 3.11), so the
 * videos come as v1 (train, 2), v6 (train, 4), v2 (4 < 5 so it goes in: 6), v5 (6 >= 5:
 * validation). */
static void fho_split(void) {
  char dir[600], vids[700], out[700], fho[700], p[800];
  snprintf(dir, sizeof dir, "%s/fho", tu_tmpdir());
  snprintf(vids, sizeof vids, "%s/videos", dir);
  snprintf(out, sizeof out, "%s/data", dir);
  snprintf(fho, sizeof fho, "%s/fho_main.json", dir);
  char cmd[2000];
  snprintf(cmd, sizeof cmd, "mkdir -p %s && cd %s && touch v1.mp4 v2.mp4 v4.mp4 v5.mp4 v6.mp4",
           vids, vids);
  CHECK(system(cmd) == 0, "make the videos");
  static char j[8000];
  strcpy(j, "{\"videos\": [");
  const struct {
    const char *uid;
    double dur;
  } v[] = {{"v1", 100}, {"v2", 50}, {"v3", 30}, {"v4", 30}, {"v5", 6}, {"v6", 20}};
  for (int i = 0; i < 6; i++) {
    size_t n = strlen(j);
    snprintf(j + n, sizeof j - n,
             "%s{\"video_uid\": \"%s\", \"video_metadata\": {\"duration_sec\": %g}, "
             "\"annotated_intervals\": [{\"narrated_actions\": [",
             i ? "," : "", v[i].uid, v[i].dur);
    switch (i) {
    case 0:
      action(j, sizeof j, "#C C picks a cup", 2.5, 0, 1);
      action(j, sizeof j, "#C C drops the cup", 50.25, 1, 1);
      action(j, sizeof j, "  #C C washes the cup ", 50.5, 0, 1);
      action(j, sizeof j, "#C C dries the cup", 98, 0, 1);
      break;
    case 1:
      action(j, sizeof j, "#C C opens a door", 10, 0, 1);
      action(j, sizeof j, "#C C closes a door", 20, 0, 0);
      action(j, sizeof j, "#O man X walks", 25, 0, 1);
      action(j, sizeof j, "#C C sits", 30, 0, 1);
      break;
    case 2:
      action(j, sizeof j, "#C C runs", 5, 0, 1);
      break;
    case 3:
      action(j, sizeof j, "#O woman Y reads", 5, 0, 1);
      break;
    case 4:
      action(j, sizeof j, "#c c waves", 5, 0, 1);
      break;
    case 5:
      action(j, sizeof j, "#C C cuts bread", 6, 0, 1);
      strcat(j, "]}, {\"narrated_actions\": [");
      action(j, sizeof j, "#C C eats", 12, 0, 1);
      break;
    }
    strcat(j, "]}]}");
  }
  strcat(j, "]}");
  CHECK(write_text(fho, j) == 0, "write %s", fho);
  vb_ego4d_split_options o = {.fho_main = fho,
                              .out_dir = out,
                              .video_dir = vids,
                              .val_fraction = 0.25,
                              .seed = 42,
                              .clip_seconds = 8};
  vb_ego4d_split_stats st;
  if (!CHECK_OK(vb_ego4d_fho_split(&o, &st))) return;
  CHECK(st.videos == 6 && st.missing_videos == 1 && st.skipped_videos == 1,
        "videos %d missing %d skipped %d", st.videos, st.missing_videos, st.skipped_videos);
  CHECK(st.train_videos == 3 && st.train_clips == 6 && st.val_videos == 1 && st.val_clips == 1,
        "train %d/%d val %d/%d", st.train_videos, st.train_clips, st.val_videos, st.val_clips);
  char *train = NULL, *val = NULL;
  snprintf(p, sizeof p, "%s/train.jsonl", out);
  CHECK_OK(vb_read_file(p, 1 << 20, &train, NULL));
  snprintf(p, sizeof p, "%s/val.jsonl", out);
  CHECK_OK(vb_read_file(p, 1 << 20, &val, NULL));
  if (!train || !val) return;
  const char *want_train =
      "{\"video\":\"../videos/v1.mp4\",\"start\":0,\"end\":8,\"text\":\"The camera wearer picks a "
      "cup\",\"video_uid\":\"v1\",\"clip_index\":0,\"narration_timestamp_sec\":2.5}\n"
      "{\"video\":\"../videos/v1.mp4\",\"start\":92,\"end\":100,\"text\":\"The camera wearer dries "
      "the cup\",\"video_uid\":\"v1\",\"clip_index\":1,\"narration_timestamp_sec\":98}\n"
      "{\"video\":\"../videos/v6.mp4\",\"start\":2,\"end\":10,\"text\":\"The camera wearer cuts "
      "bread\",\"video_uid\":\"v6\",\"clip_index\":0,\"narration_timestamp_sec\":6}\n"
      "{\"video\":\"../videos/v6.mp4\",\"start\":8,\"end\":16,\"text\":\"The camera wearer "
      "eats\",\"video_uid\":\"v6\",\"clip_index\":1,\"narration_timestamp_sec\":12}\n"
      "{\"video\":\"../videos/v2.mp4\",\"start\":6,\"end\":14,\"text\":\"The camera wearer opens a "
      "door\",\"video_uid\":\"v2\",\"clip_index\":0,\"narration_timestamp_sec\":10}\n"
      "{\"video\":\"../videos/v2.mp4\",\"start\":26,\"end\":34,\"text\":\"The camera wearer "
      "sits\",\"video_uid\":\"v2\",\"clip_index\":1,\"narration_timestamp_sec\":30}\n";
  const char *want_val =
      "{\"video\":\"../videos/v5.mp4\",\"start\":-2,\"end\":6,\"text\":\"The camera wearer "
      "waves\",\"video_uid\":\"v5\",\"clip_index\":0,\"narration_timestamp_sec\":5}\n";
  CHECK(!strcmp(train, want_train), "train.jsonl:\n%s\nwant:\n%s", train, want_train);
  CHECK(!strcmp(val, want_val), "val.jsonl:\n%s\nwant:\n%s", val, want_val);
  free(train);
  free(val);
  /* the lists load, and their relative paths reach the videos */
  vb_dataset d;
  snprintf(p, sizeof p, "%s/val.jsonl", out);
  if (CHECK_OK(vb_dataset_load(p, NULL, &d))) {
    struct stat sb;
    CHECK(d.n == 1 && stat(d.items[0].video, &sb) == 0, "val clip's video %s exists",
          d.n ? d.items[0].video : "?");
    vb_dataset_free(&d);
  }
  /* bad input: a clear error, no output */
  CHECK(write_text(fho, "{\"videos\": [{\"video_uid\": \"v1\"}]}") == 0, "write");
  CHECK(vb_ego4d_fho_split(&o, &st) != 0 && strstr(vblip_last_error(), "duration_sec"),
        "a video without metadata is named: %s", vblip_last_error());
  CHECK(write_text(fho, "[1, 2]") == 0, "write");
  CHECK(vb_ego4d_fho_split(&o, &st) != 0, "not fho_main.json");
}

/* tu_json_path on a const node (it only reads) */
static const cJSON *at(const cJSON *root, const char *dotted) {
  return tu_json_path((cJSON *)root, dotted);
}

static double num(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (cJSON_IsString(v)) return strtod(v->valuestring, NULL);
  return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Every schedule's multiplier after s scheduler steps, the lr each optimizer step uses
 * and logs; the recipe's values at the listed counts. */
static void lr_schedules(void) {
  const cJSON *ls = at(training_fixture(), "lr_schedule");
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(ls, "small_config");
  double base = num(cfg, "learning_rate");
  long W = (long)num(cfg, "warmup_steps"), T = (long)num(cfg, "total_steps");
  const cJSON *kinds = cJSON_GetObjectItemCaseSensitive(ls, "schedules"), *k;
  int n_kinds = 0;
  cJSON_ArrayForEach(k, kinds) {
    vb_sched_kind kind;
    if (!CHECK(vb_sched_parse(k->string, &kind) == 0, "schedule %s is known", k->string)) continue;
    n_kinds++;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(k, "multiplier_by_scheduler_count"), *x;
    long s = 0;
    cJSON_ArrayForEach(x, m) {
      double got = vb_lr_multiplier(kind, s, W, T);
      CHECK(fabs(got - x->valuedouble) <= 1e-15, "%s m(%ld) = %.17g, want %.17g", k->string, s, got,
            x->valuedouble);
      s++;
    }
    CHECK(s == T + 1, "%s: %ld multipliers", k->string, s);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(k, "steps");
    cJSON_ArrayForEach(x, steps) {
      long step = (long)num(x, "optimizer_step");
      double used = base * vb_lr_multiplier(kind, step - 1, W, T);
      double logged = base * vb_lr_multiplier(kind, step, W, T);
      CHECK(fabs(used - num(x, "lr_used")) <= 1e-18 &&
                fabs(logged - num(x, "lr_logged_after_step")) <= 1e-18,
            "%s step %ld: lr used %g logged %g", k->string, step, used, logged);
    }
  }
  CHECK(n_kinds == 3, "three schedules in the fixture (%d)", n_kinds);
  const cJSON *rec = cJSON_GetObjectItemCaseSensitive(ls, "videoblip_recipe");
  double rb = num(rec, "learning_rate");
  long rw = (long)num(rec, "warmup_steps"), rt = (long)num(rec, "total_steps");
  vb_train_plan plan;
  vb_train_plan_make((long)num(rec, "assumed_train_examples"), 32, 4, 5, -1, &plan);
  CHECK(plan.total_steps == rt, "recipe total steps %ld, want %ld", plan.total_steps, rt);
  const cJSON *x;
  cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(rec, "lr_at_scheduler_count")) {
    long s = strtol(x->string, NULL, 10);
    double got = rb * vb_lr_multiplier(VB_SCHED_LINEAR, s, rw, rt);
    CHECK(fabs(got - x->valuedouble) <= 1e-20, "recipe lr(%ld) = %.17g, want %.17g", s, got,
          x->valuedouble);
  }
  cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(rec, "lr_used_by_optimizer_step")) {
    long k1 = strtol(x->string, NULL, 10);
    double got = rb * vb_lr_multiplier(VB_SCHED_LINEAR, k1 - 1, rw, rt);
    CHECK(fabs(got - x->valuedouble) <= 1e-20, "recipe step %ld uses %.17g, want %.17g", k1, got,
          x->valuedouble);
  }
  CHECK(vb_warmup_steps(0, 0.1, 95) == 10 && vb_warmup_steps(7, 0.1, 95) == 7,
        "warmup from a ratio");
  vb_sched_kind kind;
  CHECK(vb_sched_parse("exponential", &kind) != 0, "unknown schedule refused");
}

/* Step counts and the windows of micro-batches each optimizer step applies. */
static void step_plans(void) {
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(at(training_fixture(), "total_steps"),
                                                     "examples"),
              *e;
  int n = 0;
  cJSON_ArrayForEach(e, ex) {
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, "inputs"),
                *pl = cJSON_GetObjectItemCaseSensitive(e, "plan");
    double ms = num(in, "max_steps");
    long G = (long)num(in, "grad_accum");
    vb_train_plan p;
    vb_train_plan_make((long)num(in, "n_examples"), (long)num(in, "per_device_batch"), G,
                       num(in, "epochs"), isnan(ms) ? -1 : (long)ms, &p);
    CHECK(p.len_dataloader == (long)num(pl, "len_dataloader") &&
              p.updates_per_epoch == (long)num(pl, "num_update_steps_per_epoch") &&
              p.total_steps == (long)num(pl, "max_steps") &&
              p.epochs == (long)num(pl, "epochs_iterated_at_most"),
          "example %d: plan L %ld U %ld T %ld epochs %ld", n, p.len_dataloader, p.updates_per_epoch,
          p.total_steps, p.epochs);
    /* the loop's windows: the running counter never resets between epochs */
    const cJSON *windows = at(e, "loop.windows");
    if (windows && cJSON_GetArraySize(windows) <= 64) {
      long counter = 0, step = 0, first_e = 0, first_b = 0, count = 0;
      const cJSON *w = windows->child;
      for (long ep = 0; ep < p.epochs && step < p.total_steps; ep++)
        for (long b = 0; b < p.len_dataloader && step < p.total_steps; b++) {
          if (count == 0) first_e = ep, first_b = b;
          count++;
          counter++;
          if (!vb_train_window_ends(counter, G, b, p.len_dataloader)) continue;
          step++;
          const cJSON *mb = cJSON_GetObjectItemCaseSensitive(w, "micro_batches");
          const cJSON *f = cJSON_GetArrayItem(mb, 0);
          CHECK(w && count == (long)num(w, "micro_batch_count") &&
                    first_e == cJSON_GetArrayItem(f, 0)->valueint &&
                    first_b == cJSON_GetArrayItem(f, 1)->valueint,
                "example %d step %ld: %ld micro-batches from [%ld, %ld]", n, step, count, first_e,
                first_b);
          w = w ? w->next : NULL;
          count = 0;
        }
      CHECK(step == (long)num(at(e, "loop"), "optimizer_steps_done"), "example %d: %ld steps", n,
            step);
    }
    n++;
  }
  CHECK(n == 4, "four step-count examples (%d)", n);
}

static void logged_loss(void) {
  const char *names[] = {"example_logging", "example_nan_filter"};
  for (int i = 0; i < 2; i++) {
    const cJSON *ex =
        cJSON_GetObjectItemCaseSensitive(at(training_fixture(), "gradient_accumulation"), names[i]);
    long G = (long)num(ex, "grad_accum"), every = (long)num(ex, "logging_steps");
    const cJSON *losses = cJSON_GetObjectItemCaseSensitive(ex, "micro_batch_losses"), *x;
    const cJSON *trace = cJSON_GetObjectItemCaseSensitive(ex, "trace")->child;
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(ex, "logs")->child;
    vb_loss_log l = {0};
    long step = 0, counter = 0;
    cJSON_ArrayForEach(x, losses) {
      double loss = cJSON_IsString(x) ? strtod(x->valuestring, NULL) : x->valuedouble;
      vb_loss_log_add(&l, loss, G, step);
      CHECK(trace && (double)l.tr_loss == num(trace, "tr_loss_f32"), "%s: tr_loss %.9g, want %.9g",
            names[i], (double)l.tr_loss, trace ? num(trace, "tr_loss_f32") : NAN);
      trace = trace ? trace->next : NULL;
      if (++counter % G) continue;
      step++;
      if (step % every) continue;
      double got = vb_loss_log_take(&l, step);
      CHECK(log && (long)num(log, "step") == step && got == num(log, "loss"),
            "%s step %ld: logged loss %.4f", names[i], step, got);
      log = log ? log->next : NULL;
    }
    double final = vb_loss_log_final(&l, step);
    CHECK(fabs(final - num(ex, "train_loss")) < 1e-12, "%s: train_loss %.17g, want %.17g", names[i],
          final, num(ex, "train_loss"));
  }
}

static void fill(const cJSON *a, float *out, int n) {
  int i = 0;
  const cJSON *x, *y;
  cJSON_ArrayForEach(x, a) {
    if (cJSON_IsArray(x)) {
      cJSON_ArrayForEach(y, x) if (i < n) out[i++] = (float)y->valuedouble;
    } else if (i < n) {
      out[i++] = (float)x->valuedouble;
    }
  }
}

static int close_to(const float *got, const cJSON *want, int n, double rtol) {
  float w[4];
  fill(want, w, n);
  for (int i = 0; i < n; i++)
    if (fabs((double)got[i] - w[i]) > rtol * fabs((double)w[i]) + 1e-12) return 0;
  return 1;
}

/* Clipping over both tensors and torch.optim.AdamW, three steps of the linear schedule. */
static void clip_and_adamw(void) {
  const cJSON *a = at(training_fixture(), "adamw");
  const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(a, "config");
  float wd[4], wg[4], wm[4] = {0}, wv[4] = {0}, bd[2], bg[2], bm[2] = {0}, bv[2] = {0};
  fill(at(a, "config.param_init.w"), wd, 4);
  fill(at(a, "config.param_init.b"), bd, 2);
  tr_param p[2] = {
      {.name = "w", .ndim = 2, .n = 4, .data = wd, .grad = wg, .m = wm, .v = wv, .decay = 1},
      {.name = "b", .ndim = 1, .n = 2, .data = bd, .grad = bg, .m = bm, .v = bv, .decay = 0}};
  tr_params ps = {.p = p, .n = 2, .cap = 2};
  double base = num(cfg, "learning_rate");
  long T = (long)num(cfg, "total_steps");
  tr_adamw o = {0, num(cfg, "adam_beta1"), num(cfg, "adam_beta2"), num(cfg, "adam_epsilon"),
                num(at(a, "config.weight_decay"), "w")};
  const cJSON *row;
  int k = 0;
  cJSON_ArrayForEach(row, at(a, "adamw_torch.rows")) {
    k++;
    fill(at(row, "grad_raw.w"), wg, 4);
    fill(at(row, "grad_raw.b"), bg, 2);
    double norm = tr_clip_grad_norm(&ps, num(cfg, "max_grad_norm"));
    CHECK(fabs(norm - num(row, "grad_total_norm")) <= 1e-6 * num(row, "grad_total_norm"),
          "step %d: norm %.9g", k, norm);
    CHECK(close_to(wg, at(row, "grad_after_clip.w"), 4, 1e-6) &&
              close_to(bg, at(row, "grad_after_clip.b"), 2, 1e-6),
          "step %d: clipped gradients", k);
    o.lr = base * vb_lr_multiplier(VB_SCHED_LINEAR, k - 1, 0, T);
    CHECK(fabs(o.lr - num(row, "lr")) < 1e-18, "step %d: lr %g", k, o.lr);
    tr_adamw_step(&o, &ps, k);
    CHECK(close_to(wd, at(row, "param.w"), 4, 1e-6) && close_to(bd, at(row, "param.b"), 2, 1e-6),
          "step %d: parameters", k);
    CHECK(close_to(wm, at(row, "exp_avg.w"), 4, 1e-6) &&
              close_to(bv, at(row, "exp_avg_sq.b"), 2, 1e-6),
          "step %d: moments", k);
  }
  CHECK(k == 3, "three AdamW rows (%d)", k);
}

/* The trained tensors of the tiny OPT fall into the Trainer's two groups. */
static void weight_decay_groups(void) {
  const cJSON *g = at(training_fixture(), "weight_decay_groups");
  vblip_train_options o;
  vblip_train_options_default(&o);
  vblip_trainer *t = vblip_trainer_open(tu_fixture("models/videoblip-opt-tiny"), &o);
  if (!CHECK(t != NULL, "open: %s", vblip_last_error())) return;
  tr_params *ps = vb_trainer_params(t);
  const cJSON *x;
  int n = 0, decayed = 0;
  long decay_numel = 0;
  cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(g, "params")) {
    const char *name = cJSON_GetObjectItemCaseSensitive(x, "name")->valuestring;
    tr_param *p = tr_params_find(ps, name);
    int want = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "decay"));
    if (CHECK(p != NULL, "%s is trained", name)) {
      CHECK(p->decay == want, "%s: decay %d, want %d (%s)", name, p->decay, want,
            cJSON_GetObjectItemCaseSensitive(x, "reason")->valuestring);
      CHECK((long)p->n == (long)num(x, "numel"), "%s: %zu values", name, p->n);
      decayed += p->decay;
      if (p->decay) decay_numel += (long)p->n;
    }
    n++;
  }
  const cJSON *counts = cJSON_GetObjectItemCaseSensitive(g, "counts");
  CHECK(n == ps->n && n == (int)num(counts, "tensors"), "%d trained tensors, fixture %d", ps->n, n);
  CHECK(decayed == (int)num(counts, "decay_tensors") &&
            decay_numel == (long)num(counts, "decay_numel"),
        "decay group: %d tensors, %ld values", decayed, decay_numel);
  vblip_trainer_free(t);
}

/* Which checkpoints each save keeps, with and without a best one. */
static void rotation(void) {
  const char *names[] = {"example_brief", "example_no_metric", "example_limit_1", "example_recipe"};
  for (int i = 0; i < 4; i++) {
    const cJSON *ex =
        cJSON_GetObjectItemCaseSensitive(at(training_fixture(), "checkpoints"), names[i]);
    if (!CHECK(ex != NULL, "%s in the fixture", names[i])) continue;
    const cJSON *metric = cJSON_GetObjectItemCaseSensitive(ex, "metric_for_best_model");
    int tracks = cJSON_IsString(metric);
    long limit = (long)num(ex, "save_total_limit");
    long kept[64], best = -1, del[64];
    double best_loss = INFINITY;
    int nk = 0;
    const cJSON *save = cJSON_GetObjectItemCaseSensitive(ex, "after_each_save")->child;
    const cJSON *losses = cJSON_GetObjectItemCaseSensitive(ex, "eval_loss");
    int si = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(ex, "saves")) {
      long step = (long)x->valuedouble;
      double el = cJSON_GetArrayItem(losses, si)->valuedouble;
      if (nk < 64) kept[nk++] = step;
      if (tracks && el < best_loss) best_loss = el, best = step; /* ties keep the older */
      int nd = vb_rotation_plan(kept, nk, best, limit, 0, del);
      for (int d = 0; d < nd; d++) {
        int w = 0;
        for (int r = 0; r < nk; r++)
          if (kept[r] != del[d]) kept[w++] = kept[r];
        nk = w;
      }
      const cJSON *rem = cJSON_GetObjectItemCaseSensitive(save, "remaining"), *rv;
      int ok = cJSON_GetArraySize(rem) == nk, r = 0;
      cJSON_ArrayForEach(rv, rem) {
        char want[32];
        snprintf(want, sizeof want, "checkpoint-%ld", r < nk ? kept[r] : -1L);
        ok = ok && !strcmp(rv->valuestring, want);
        r++;
      }
      CHECK(ok, "%s: after saving step %ld, %d kept", names[i], step, nk);
      save = save ? save->next : NULL;
      si++;
    }
    int nd = vb_rotation_plan(kept, nk, best, limit, 1, del);
    CHECK(nd == cJSON_GetArraySize(
                    cJSON_GetObjectItemCaseSensitive(ex, "deleted_at_end_of_training")),
          "%s: %d deleted at the end", names[i], nd);
  }
}

static uint32_t be(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads back a PNG as vb_png_encode writes it (stored deflate blocks): checks the
 * signature, every chunk's CRC, the Adler-32, and returns the RGB pixels. */
static uint8_t *png_decode(const uint8_t *d, size_t n, int *w, int *h) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (!CHECK(n > 8 && !memcmp(d, sig, 8), "PNG signature")) return NULL;
  uint8_t *z = malloc(n), *img = NULL;
  size_t zn = 0;
  for (size_t p = 8; p + 12 <= n;) {
    uint32_t len = be(d + p);
    if (!CHECK(p + 12 + len <= n, "chunk inside the file")) break;
    uint32_t c = 0xffffffffu;
    for (size_t i = 4; i < 8 + len; i++) {
      c ^= d[p + i];
      for (int k = 0; k < 8; k++)
        c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    CHECK((c ^ 0xffffffffu) == be(d + p + 8 + len), "chunk %.4s CRC", (const char *)d + p + 4);
    if (!memcmp(d + p + 4, "IHDR", 4)) *w = (int)be(d + p + 8), *h = (int)be(d + p + 12);
    if (!memcmp(d + p + 4, "IDAT", 4)) memcpy(z + zn, d + p + 8, len), zn += len;
    p += 12 + len;
  }
  size_t raw_n = (size_t)(*w * 3 + 1) * *h, q = 2, got = 0;
  uint8_t *raw = malloc(raw_n + 1);
  int final = 0;
  while (!final && q + 5 <= zn) {
    final = z[q] & 1;
    size_t len = z[q + 1] | (size_t)z[q + 2] << 8;
    CHECK(((len ^ (z[q + 3] | (size_t)z[q + 4] << 8)) & 0xffff) == 0xffff,
          "stored block length check");
    if (got + len > raw_n || q + 5 + len > zn) break;
    memcpy(raw + got, z + q + 5, len);
    got += len;
    q += 5 + len;
  }
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < got; i++)
    a = (a + raw[i]) % 65521, b = (b + a) % 65521;
  if (CHECK(got == raw_n && q + 4 <= zn && be(z + q) == (b << 16 | a),
            "deflate data and Adler-32")) {
    img = malloc((size_t)*w * *h * 3);
    for (int y = 0; y < *h; y++) {
      CHECK(raw[(size_t)y * (*w * 3 + 1)] == 0, "row filter none");
      memcpy(img + (size_t)y * *w * 3, raw + (size_t)y * (*w * 3 + 1) + 1, (size_t)*w * 3);
    }
  }
  free(raw);
  free(z);
  return img;
}

static void loss_plot(void) {
  /* an image larger than one stored block round-trips */
  int w0 = 150, h0 = 200;
  uint8_t *rgb = malloc((size_t)w0 * h0 * 3), *png = NULL;
  for (int i = 0; i < w0 * h0 * 3; i++)
    rgb[i] = (uint8_t)(i * 7 + i / 13);
  size_t len = 0;
  int w = 0, h = 0;
  if (CHECK_OK(vb_png_encode(rgb, w0, h0, &png, &len))) {
    uint8_t *back = png_decode(png, len, &w, &h);
    CHECK(back && w == w0 && h == h0 && !memcmp(back, rgb, (size_t)w0 * h0 * 3), "PNG round trip");
    free(back);
  }
  free(png);
  free(rgb);
  /* a CSV log as vblip train writes it: both curves drawn */
  char log[600], out[600];
  snprintf(log, sizeof log, "%s/run.csv", tu_tmpdir());
  snprintf(out, sizeof out, "%s/run.png", tu_tmpdir());
  CHECK(write_text(log, "step,epoch,loss,learning_rate,grad_norm,eval_loss\n1,0.25,3.5,0.001,2,\n"
                        "2,0.50,3.1,0.001,2,\n2,0.50,,,,3.3\n3,0.75,2.8,0.001,2,\n4,1.00,2.6,0,2,\n"
                        "4,1.00,,,,2.9\n") == 0,
        "write log");
  if (CHECK_OK(vb_plot_log(log, out))) {
    char *data = NULL;
    size_t n = 0;
    CHECK_OK(vb_read_file(out, 1 << 24, &data, &n));
    uint8_t *img = data ? png_decode((const uint8_t *)data, n, &w, &h) : NULL;
    int blue = 0, orange = 0;
    for (int i = 0; img && i < w * h; i++) {
      blue += img[i * 3] == 31 && img[i * 3 + 1] == 119 && img[i * 3 + 2] == 180;
      orange += img[i * 3] == 255 && img[i * 3 + 1] == 127 && img[i * 3 + 2] == 14;
    }
    CHECK(blue > 100 && orange > 100, "training (%d blue pixels) and validation (%d orange) curves",
          blue, orange);
    free(img);
    free(data);
  }
  CHECK(write_text(log, "step,epoch,loss,learning_rate,grad_norm,eval_loss\n") == 0, "write log");
  CHECK(vb_plot_log(log, out) != 0, "a log without losses is an error");
}

int main(void) {
  narration_cleaning();
  python_random();
  clip_windows();
  relative_paths();
  fho_split();
  lr_schedules();
  step_plans();
  logged_loss();
  clip_and_adamw();
  weight_decay_groups();
  rotation();
  loss_plot();
  return tu_finish();
}
