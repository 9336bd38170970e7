/* vblip train: fine-tune the Q-Former, query tokens and language projection on
 * narrated clips; vblip ego4d-split: Ego4D narrations into clip lists. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "runtime/common.h"
#include "train/dataset.h"
#include "train/trainer.h"

#define DEFAULT_PROMPT "Question: What is the camera wearer doing? Answer:"

typedef struct {
  const char *model, *data, *val, *out, *video_dir, *prompt;
  long epochs, batch, frames, save_every, seed, cache_mb;
  int quiet;
  vblip_train_options train;
} train_opts;

static const cli_option k_train_options[] = {
    CLI_GROUP(cli_model_option, train_opts, model),
    CLI_OPT_STRING("--data", 0, "FILE", train_opts, data, "training clips (JSONL; '-': stdin)",
                   .flags = CLI_REQUIRED),
    CLI_OPT_STRING("--val", 0, "FILE", train_opts, val,
                   "validation clips (JSONL; '-': stdin): mean loss after every epoch"),
    CLI_OPT_STRING("--out", 'o', "DIR", train_opts, out, "output checkpoint directory",
                   .flags = CLI_REQUIRED),
    CLI_OPT_STRING("--video-dir", 0, "DIR", train_opts, video_dir,
                   "resolve relative video paths here (default: next to the JSONL;\n"
                   "the current directory for stdin)"),
    CLI_OPT_LONG("--epochs", 0, "N", train_opts, epochs, 1, 100000,
                 "passes over the data (default 1)"),
    CLI_OPT_LONG("--batch", 0, "N", train_opts, batch, 1, 65536,
                 "examples per AdamW step, mean loss (default 1)"),
    CLI_OPT_DOUBLE("--lr", 0, "LR", train_opts, train.lr, 0, 10, "learning rate (default 1e-5)"),
    CLI_OPT_DOUBLE("--weight-decay", 0, "W", train_opts, train.weight_decay, 0, 10,
                   "AdamW weight decay (default 0.05)"),
    CLI_OPT_LONG("--frames", 0, "N", train_opts, frames, 1, 1024,
                 "frames per clip, sampled uniformly (default 8)"),
    CLI_OPT_STRING("--prompt", 'p', "TEXT", train_opts, prompt,
                   "prompt (default \"" DEFAULT_PROMPT "\")"),
    CLI_OPT_LONG("--save-every", 0, "N", train_opts, save_every, 0, 1L << 40,
                 "also save every N steps (default 0: after each epoch)"),
    CLI_OPT_LONG("--seed", 0, "S", train_opts, seed, 0, 1L << 62, "shuffling seed (default 0)"),
    CLI_OPT_LONG("--cache-mb", 0, "N", train_opts, cache_mb, 0, 1L << 30,
                 "memory for cached vision features (default 4096)"),
    CLI_GROUP(cli_threads_option, train_opts, train.n_threads),
    CLI_OPT_FLAG("--quiet", 0, train_opts, quiet, "no progress output"),
    CLI_TABLE_END};

static int run_train(int argc, char **argv);

const cli_command cli_cmd_train = {
    .name = "train",
    .summary = "fine-tune the Q-Former on narrated clips (VideoBLIP's Ego4D recipe)",
    .run = run_train,
    .usage = "--model MODEL --data FILE.jsonl --out DIR [options]",
    .about = "Fine-tunes a VideoBLIP checkpoint as VideoBLIP was trained on Ego4D narrations:\n"
             "the vision encoder and the language model stay frozen; the Q-Former, the query\n"
             "tokens and the language projection are trained with AdamW (float32, no weight\n"
             "decay for biases and LayerNorm parameters) on the language model's cross-entropy\n"
             "of each clip's text after the prompt. Each line of the data file is\n"
             "  {\"video\": PATH, \"start\": S, \"end\": E, \"text\": \"narration\"}\n"
             "(optional \"prompt\"); frames are decoded from the videos and the vision encoder's\n"
             "output is kept in memory (--cache-mb). OUT becomes a complete checkpoint directory\n"
             "(config, tokenizer, model.safetensors) that 'vblip caption --model OUT' loads;\n"
             "every save is atomic, and Ctrl-C saves before exiting.\n",
    .options = k_train_options,
    .max_positional = 0,
};

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
  signal(SIGINT, SIG_DFL); /* a second Ctrl-C kills */
}

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void fmt_time(double s, char *buf, size_t n) {
  if (!isfinite(s) || s < 0) s = 0;
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

typedef struct {
  vblip_trainer *t;
  vb_dataset *d;
  vblip_train_example **cache;
  size_t cache_bytes, cache_budget, per_example;
  int frames;
  const char *prompt;
} example_source;

/* The example for clip i: cached, or built (and cached while the budget lasts). */
static int get_example(example_source *s, int i, vblip_train_example **ex, int *owned) {
  *owned = 0;
  if (s->cache[i]) {
    *ex = s->cache[i];
    return 0;
  }
  const vb_clip *c = &s->d->items[i];
  if (vblip_trainer_example_video(s->t, c->video, c->start, c->end, s->frames,
                                  c->prompt ? c->prompt : s->prompt, c->text, ex))
    return -1;
  if (s->cache_bytes + s->per_example <= s->cache_budget) {
    s->cache[i] = *ex;
    s->cache_bytes += s->per_example;
  } else {
    *owned = 1;
  }
  return 0;
}

static char *info_json(const char *model, const char *data, long steps, int epochs_done,
                       double train_loss, double val_loss, double lr) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "source_model", model);
  cJSON_AddStringToObject(j, "data", data);
  cJSON_AddNumberToObject(j, "steps", (double)steps);
  cJSON_AddNumberToObject(j, "epochs_completed", epochs_done);
  if (isfinite(train_loss)) cJSON_AddNumberToObject(j, "last_epoch_train_loss", train_loss);
  if (isfinite(val_loss)) cJSON_AddNumberToObject(j, "last_val_loss", val_loss);
  cJSON_AddNumberToObject(j, "lr", lr);
  char *s = cJSON_Print(j);
  cJSON_Delete(j);
  return s;
}

static int validate(example_source *vs, double *mean) {
  double sum = 0;
  for (int i = 0; i < vs->d->n; i++) {
    vblip_train_example *ex;
    int owned;
    double l;
    if (get_example(vs, i, &ex, &owned)) return -1;
    int rc = vblip_trainer_loss(vs->t, ex, &l);
    if (owned) vblip_train_example_free(ex);
    if (rc) return -1;
    sum += l;
    if (g_interrupted) break;
  }
  *mean = sum / vs->d->n;
  return 0;
}

static int run_train(int argc, char **argv) {
  train_opts a = {.prompt = DEFAULT_PROMPT, .epochs = 1, .batch = 1, .frames = 8, .cache_mb = 4096};
  vblip_train_options_default(&a.train);
  int n_pos, rc = cli_parse(&cli_cmd_train, &a, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  const char *model = a.model, *data = a.data, *val = a.val, *out = a.out, *prompt = a.prompt;
  const char *data_path = cli_input_path(data), *val_path = val ? cli_input_path(val) : NULL;
  if (!data_path || (val && !val_path)) return 1;
  /* clips read from stdin name their videos relative to the current directory */
  const char *data_dir = a.video_dir || strcmp(data, "-") ? a.video_dir : ".";
  const char *val_dir = a.video_dir || !val || strcmp(val, "-") ? a.video_dir : ".";
  long epochs = a.epochs, batch = a.batch, frames = a.frames, save_every = a.save_every,
       cache_mb = a.cache_mb;
  int quiet = a.quiet;
  vblip_train_options o = a.train;
  vb_dataset train = {0}, valset = {0};
  if (vb_dataset_load(data_path, data_dir, &train)) return cli_fail("%s", vblip_last_error());
  if (val && vb_dataset_load(val_path, val_dir, &valset)) {
    vb_dataset_free(&train);
    return cli_fail("%s", vblip_last_error());
  }
  vblip_trainer *t = vblip_trainer_open(model, &o);
  if (!t) {
    vb_dataset_free(&train);
    vb_dataset_free(&valset);
    return cli_fail("%s", vblip_last_error());
  }
  int status = 1;
  int *order = malloc((size_t)train.n * sizeof *order);
  example_source ts = {.t = t, .d = &train, .frames = (int)frames, .prompt = prompt};
  example_source vs = {.t = t, .d = &valset, .frames = (int)frames, .prompt = prompt};
  ts.cache = calloc((size_t)train.n, sizeof *ts.cache);
  vs.cache = calloc((size_t)(valset.n + 1), sizeof *vs.cache);
  if (!order || !ts.cache || !vs.cache) {
    cli_fail("out of memory");
    goto done;
  }
  /* every output location is checked before the first step, not after the work */
  if (vblip_trainer_check_output(t, out)) {
    cli_fail("%s", vblip_last_error());
    goto done;
  }
  ts.cache_budget = vs.cache_budget = (size_t)cache_mb << 20;
  {
    /* a cached example is mostly its vision features: frames x tokens x width floats */
    const vb_model_config *mc = vb_trainer_config(t);
    size_t grid = (size_t)(mc->vision.image_size / mc->vision.patch_size);
    ts.per_example = vs.per_example =
        (size_t)frames * (grid * grid + 1) * (size_t)mc->vision.hidden_size * sizeof(float) + 4096;
  }
  int tty = !quiet && isatty(2);
  long steps_per_epoch = (train.n + batch - 1) / batch, total_steps = steps_per_epoch * epochs;
  double t0 = vb_now_ms(), epoch_loss = NAN, val_loss = NAN;
  long examples_done = 0;
  int epochs_done = 0;
  signal(SIGINT, on_sigint);
  if (!quiet)
    fprintf(
        stderr, "vblip train: %d clips%s, %ld epochs, %ld steps of %ld, lr %g, weight decay %g\n",
        train.n, val ? " (+ validation)" : "", epochs, total_steps, batch, o.lr, o.weight_decay);
  uint64_t rs = (uint64_t)a.seed;
  for (int e = 0; e < epochs && !g_interrupted; e++) {
    for (int i = 0; i < train.n; i++) order[i] = i;
    for (int i = train.n - 1; i > 0; i--) {
      int j = (int)(mix(&rs) % (uint64_t)(i + 1)), x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
    double sum = 0;
    int seen = 0;
    for (int b0 = 0; b0 < train.n && !g_interrupted; b0 += (int)batch) {
      int nb = train.n - b0 < batch ? train.n - b0 : (int)batch;
      double bl = 0;
      for (int k = 0; k < nb; k++) {
        vblip_train_example *ex;
        int owned;
        double l;
        if (get_example(&ts, order[b0 + k], &ex, &owned)) {
          cli_fail("%s", vblip_last_error());
          goto done;
        }
        int rc = vblip_trainer_accumulate(t, ex, 1.0 / nb, &l);
        if (owned) vblip_train_example_free(ex);
        if (rc) {
          cli_fail("%s", vblip_last_error());
          goto done;
        }
        bl += l / nb;
      }
      vblip_trainer_step(t);
      sum += bl * nb;
      seen += nb;
      examples_done += nb;
      long step = vblip_trainer_steps(t);
      double el = (vb_now_ms() - t0) / 1000, rate = examples_done / (el > 0 ? el : 1e-9);
      char eta[32];
      fmt_time((double)(total_steps - step) * batch / rate, eta, sizeof eta);
      if (!quiet && (tty || step == total_steps || step % (steps_per_epoch > 20 ? steps_per_epoch / 20 : 1) == 0))
        fprintf(stderr, "%sepoch %d/%ld  step %ld/%ld  loss %.4f  (epoch mean %.4f)  %.2f ex/s  ETA %s%s",
                tty ? "\r\033[K" : "", e + 1, epochs, step, total_steps, bl, sum / seen, rate, eta,
                tty ? "" : "\n");
      if (save_every > 0 && step % save_every == 0) {
        char *js = info_json(model, data, step, epochs_done, sum / seen, val_loss, o.lr);
        if (vblip_trainer_save(t, out, js)) {
          free(js);
          cli_fail("%s", vblip_last_error());
          goto done;
        }
        free(js);
      }
    }
    if (tty) fputc('\n', stderr);
    epoch_loss = seen ? sum / seen : NAN;
    if (g_interrupted) break;
    epochs_done = e + 1;
    if (val) {
      if (validate(&vs, &val_loss)) {
        cli_fail("%s", vblip_last_error());
        goto done;
      }
    }
    if (!quiet) {
      fprintf(stderr, "epoch %d/%ld done: train loss %.4f", e + 1, epochs, epoch_loss);
      if (val) fprintf(stderr, ", validation loss %.4f", val_loss);
      fputc('\n', stderr);
    }
    printf("epoch %d train_loss %.6f", e + 1, epoch_loss);
    if (val) printf(" val_loss %.6f", val_loss);
    printf("\n");
    fflush(stdout);
    char *js = info_json(model, data, vblip_trainer_steps(t), epochs_done, epoch_loss, val_loss, o.lr);
    int rc = vblip_trainer_save(t, out, js);
    free(js);
    if (rc) {
      cli_fail("%s", vblip_last_error());
      goto done;
    }
  }
  if (g_interrupted) {
    char *js = info_json(model, data, vblip_trainer_steps(t), epochs_done, epoch_loss, val_loss, o.lr);
    int rc = vblip_trainer_save(t, out, js);
    free(js);
    if (rc) {
      cli_fail("interrupted, and saving failed: %s", vblip_last_error());
      goto done;
    }
    fprintf(stderr, "vblip train: interrupted; saved step %ld to %s\n", vblip_trainer_steps(t), out);
    status = 130;
    goto done;
  }
  if (!quiet) fprintf(stderr, "vblip train: saved %s (%ld steps)\n", out, vblip_trainer_steps(t));
  status = 0;
done:
  signal(SIGINT, SIG_DFL);
  if (ts.cache)
    for (int i = 0; i < train.n; i++) vblip_train_example_free(ts.cache[i]);
  if (vs.cache)
    for (int i = 0; i < valset.n; i++) vblip_train_example_free(vs.cache[i]);
  free(ts.cache);
  free(vs.cache);
  free(order);
  vblip_trainer_free(t);
  vb_dataset_free(&train);
  vb_dataset_free(&valset);
  return status;
}

typedef struct {
  vb_ego4d_split_options split;
  long seed, pass;
} split_opts;

static const cli_option k_split_options[] = {
    CLI_OPT_STRING("--fho-main", 0, "FILE", split_opts, split.fho_main,
                   "Ego4D fho_main.json (VideoBLIP's input; '-': stdin)", .need = "needs a file"),
    CLI_OPT_STRING("--narrations", 0, "FILE", split_opts, split.narrations,
                   "or Ego4D narration.json ('-': stdin)", .need = "needs a file"),
    CLI_OPT_STRING("--out-dir", 0, "DIR", split_opts, split.out_dir,
                   "where train.jsonl and val.jsonl go", .flags = CLI_REQUIRED,
                   .need = "needs a directory"),
    CLI_OPT_STRING("--video-dir", 0, "DIR", split_opts, split.video_dir,
                   "the videos, <video_uid>.mp4 (required with --fho-main; with\n"
                   "--narrations the default is bare names next to the lists)",
                   .need = "needs a directory"),
    CLI_OPT_DOUBLE("--val-fraction", 0, "F", split_opts, split.val_fraction, 0, 1,
                   "validation share: of the actions with --fho-main (default 0.25),\n"
                   "of the videos with --narrations (default 0.1)"),
    CLI_OPT_LONG("--seed", 0, "S", split_opts, seed, 0, 1L << 62,
                 "split seed (default 42: Python's random.seed as VideoBLIP; --narrations\n"
                 "uses its own shuffle)"),
    CLI_OPT_LONG("--pass", 0, "N", split_opts, pass, 1, 2,
                 "--narrations: narration pass 1 or 2 (default 1)", .need = "is 1 or 2"),
    CLI_OPT_DOUBLE("--clip-seconds", 0, "S", split_opts, split.clip_seconds, 0.1, 3600,
                   "clip length (default 8)"),
    CLI_OPT_FLAG("--eilev-cleaning", 0, split_opts, split.eilev_cleaning,
                 "clean narrations as EILEV does (also #unsure, <|eos|>, final period)"),
    CLI_TABLE_END};

static int run_split(int argc, char **argv);

const cli_command cli_cmd_ego4d_split = {
    .name = "ego4d-split",
    .summary = "Ego4D annotations into train/validation clip lists for 'train'",
    .run = run_split,
    .usage = "--fho-main fho_main.json --video-dir DIR --out-dir DIR [options]",
    .about =
        "Writes DIR/train.jsonl and DIR/val.jsonl for 'vblip train' and 'vblip extract-frames'.\n"
        "With --fho-main, as VideoBLIP's scripts/ego4d/split_train_val.py: videos missing from\n"
        "--video-dir are dropped; narrated actions that are rejected, invalid or do not start\n"
        "with \"#C C\" are dropped; videos are drawn in Python's random.sample order (seed 42)\n"
        "into train until 75% of the actions are there, the rest go to validation. One clip per\n"
        "action: 8 s around its narration, starting at 0 at the earliest and moved back to end\n"
        "at the video's end (NarratedActionClipSampler). Text: VideoBLIP's clean-up (stripped,\n"
        "a leading \"#C C\" becomes \"The camera wearer\"); --eilev-cleaning for EILEV's.\n"
        "With --narrations (narration.json), one clip per narration and a shuffled share of the\n"
        "videos for validation. Videos are split, never clips. Video paths in the lists are\n"
        "relative to DIR, where 'train' resolves them.\n",
    .options = k_split_options,
    .max_positional = 0,
};

static int run_split(int argc, char **argv) {
  split_opts a = {
      .split = {.val_fraction = -1, .pass = 1, .clip_seconds = 8}, .seed = 42, .pass = 1};
  int n_pos, rc = cli_parse(&cli_cmd_ego4d_split, &a, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  vb_ego4d_split_options o = a.split;
  o.seed = (uint64_t)a.seed;
  o.pass = (int)a.pass;
  if (!o.fho_main == !o.narrations)
    return cli_usage_error("ego4d-split", "give one of --fho-main and --narrations");
  if (o.fho_main && !o.video_dir)
    return cli_usage_error("ego4d-split",
                           "--fho-main needs --video-dir (videos not there are dropped)");
  if (o.val_fraction < 0) o.val_fraction = o.fho_main ? 0.25 : 0.1;
  const char **in = o.fho_main ? &o.fho_main : &o.narrations;
  if (!(*in = cli_input_path(*in))) return 1;
  vb_ego4d_split_stats st;
  if ((o.fho_main ? vb_ego4d_fho_split : vb_ego4d_split)(&o, &st))
    return cli_fail("%s", vblip_last_error());
  if (o.fho_main)
    printf("%d videos listed, %d not on disk, %d without a kept action: train %d videos / %d "
           "clips, validation %d videos / %d clips\n",
           st.videos, st.missing_videos, st.skipped_videos, st.train_videos, st.train_clips,
           st.val_videos, st.val_clips);
  else
    printf("%d videos: train %d videos / %d clips, validation %d videos / %d clips, %d "
           "narrations skipped\n",
           st.videos, st.train_videos, st.train_clips, st.val_videos, st.val_clips, st.skipped);
  return 0;
}
