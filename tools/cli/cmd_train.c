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
#include "train/run.h"
#include "train/trainer.h"

typedef struct {
  vb_train_run_options run;
  const char *schedule;
  long cache_mb;
  int no_dropout;
} train_opts;

static const char *const k_schedules[] = {"linear", "cosine", "constant_with_warmup", "constant",
                                          NULL};

static const cli_option k_train_options[] = {
    CLI_GROUP(cli_model_option, train_opts, run.model),
    CLI_OPT_STRING("--data", 0, "FILE", train_opts, run.data, "training clips (JSONL; '-': stdin)",
                   .flags = CLI_REQUIRED),
    CLI_OPT_STRING("--val", 0, "FILE", train_opts, run.val,
                   "validation clips (JSONL; '-': stdin), evaluated every --eval-steps"),
    CLI_OPT_STRING("--out", 'o', "DIR", train_opts, run.out,
                   "output: the final model, checkpoint-N directories", .flags = CLI_REQUIRED),
    CLI_OPT_STRING("--video-dir", 0, "DIR", train_opts, run.video_dir,
                   "resolve relative video paths here (default: next to the JSONL;\n"
                   "the current directory for stdin)"),
    CLI_OPT_STRING("--resume", 0, "DIR", train_opts, run.resume,
                   "continue from OUT/checkpoint-N (same data and settings)"),
    CLI_OPT_DOUBLE("--epochs", 0, "N", train_opts, run.epochs, 0.001, 1e6,
                   "passes over the data (default 5)"),
    CLI_OPT_LONG("--max-steps", 0, "N", train_opts, run.max_steps, -1, 1L << 40,
                 "optimizer steps, overriding --epochs (default -1: off)"),
    CLI_OPT_LONG("--batch", 0, "N", train_opts, run.batch, 1, 65536,
                 "examples per micro-batch, mean over its tokens (default 32)"),
    CLI_OPT_LONG("--grad-accum", 0, "N", train_opts, run.grad_accum, 1, 65536,
                 "micro-batches per optimizer step (default 4)"),
    CLI_OPT_DOUBLE("--lr", 0, "LR", train_opts, run.train.lr, 0, 10,
                   "peak learning rate (default 1e-5)"),
    CLI_OPT_CHOICE("--schedule", 0, "KIND", train_opts, schedule, k_schedules,
                   "learning-rate schedule: linear (default), cosine,\n"
                   "constant_with_warmup, constant"),
    CLI_OPT_LONG("--warmup-steps", 0, "N", train_opts, run.warmup_steps, 0, 1L << 40,
                 "linear warmup from 0 (default 1000)"),
    CLI_OPT_DOUBLE("--warmup-ratio", 0, "F", train_opts, run.warmup_ratio, 0, 1,
                   "warmup as a share of the steps, when --warmup-steps is 0"),
    CLI_OPT_DOUBLE("--weight-decay", 0, "W", train_opts, run.train.weight_decay, 0, 10,
                   "AdamW weight decay, not on biases and LayerNorms (default 0.05)"),
    CLI_OPT_DOUBLE("--max-grad-norm", 0, "N", train_opts, run.max_grad_norm, 0, 1e9,
                   "clip the gradients' norm (default 1; 0: off)"),
    CLI_OPT_INT("--frames", 0, "N", train_opts, run.frames, 1, 1024,
                "frames per clip, sampled uniformly (default 8)"),
    CLI_OPT_STRING("--prompt", 'p', "TEXT", train_opts, run.prompt,
                   "prompt (default \"Question: What is the camera wearer doing? Answer:\")"),
    CLI_OPT_LONG("--seed", 0, "S", train_opts, run.seed, 0, 1L << 62,
                 "seed of the data order and the dropout masks (default 42)"),
    CLI_OPT_LONG("--logging-steps", 0, "N", train_opts, run.logging_steps, 0, 1L << 40,
                 "log the mean loss every N steps (default 10)"),
    CLI_OPT_LONG("--eval-steps", 0, "N", train_opts, run.eval_steps, 0, 1L << 40,
                 "validation loss every N steps (default 200)"),
    CLI_OPT_LONG("--eval-batch", 0, "N", train_opts, run.eval_batch, 1, 65536,
                 "examples per evaluation batch (default 8)"),
    CLI_OPT_LONG("--save-steps", 0, "N", train_opts, run.save_steps, 0, 1L << 40,
                 "write OUT/checkpoint-N every N steps (default 200; 0: never)"),
    CLI_OPT_LONG("--save-total-limit", 0, "N", train_opts, run.save_total_limit, 0, 1L << 30,
                 "keep the N newest checkpoints and the best (default 3; 0: all)"),
    CLI_OPT_FLAG("--load-best-at-end", 0, train_opts, run.load_best_at_end,
                 "the final model is the checkpoint with the lowest validation loss"),
    CLI_OPT_STRING("--log", 0, "FILE", train_opts, run.log,
                   "also write the log lines to FILE (JSON lines; CSV if FILE ends in .csv)"),
    CLI_OPT_LONG("--stop-after", 0, "N", train_opts, run.stop_after, 0, 1L << 40,
                 "stop after step N as Ctrl-C does: checkpoint, exit 130 (to --resume)"),
    CLI_OPT_FLAG("--bf16", 0, train_opts, run.train.bf16,
                 "frozen parts in bfloat16 products (needs AMX-BF16 or AVX512-BF16);\n"
                 "trained tensors, gradients and AdamW stay float32 (the recipe's bf16)"),
    CLI_OPT_FLAG("--no-dropout", 0, train_opts, no_dropout,
                 "train without dropout (eval mode's loss and gradients); by default the\n"
                 "Q-Former and the language model drop with their config.json probabilities\n"
                 "as the Trainer's train mode does"),
    CLI_OPT_STRING("--plot", 0, "FILE.png", train_opts, run.plot,
                   "draw the --log's loss curves as a PNG, updated at every log line"),
    CLI_OPT_LONG("--cache-mb", 0, "N", train_opts, cache_mb, 0, 1L << 30,
                 "memory for cached vision features (default 4096)"),
    CLI_GROUP(cli_threads_option, train_opts, run.train.n_threads),
    CLI_OPT_FLAG("--quiet", 0, train_opts, run.quiet, "no progress output"),
    CLI_TABLE_END};

static int run_train(int argc, char **argv);

const cli_command cli_cmd_train = {
    .name = "train",
    .summary = "fine-tune the Q-Former on narrated clips (VideoBLIP's Ego4D recipe)",
    .run = run_train,
    .usage = "--model MODEL --data FILE.jsonl --out DIR [options]",
    .about =
        "Fine-tunes a VideoBLIP checkpoint as VideoBLIP's scripts/ego4d/train.py does under the\n"
        "Hugging Face Trainer; the defaults are that recipe's. The vision encoder and the\n"
        "language model stay frozen; the Q-Former, the query tokens and the language\n"
        "projection are trained with torch's AdamW (float32; weight decay off for biases and\n"
        "LayerNorms) on the language model's cross-entropy of each clip's text after the\n"
        "prompt: micro-batches of --batch clips (loss = mean over their tokens), --grad-accum\n"
        "of them per optimizer step, gradients clipped, a warmup-then-decay learning rate.\n"
        "Each line of the data file is\n"
        "  {\"video\": PATH, \"start\": S, \"end\": E, \"text\": \"narration\"}\n"
        "(optional \"prompt\"), as 'vblip ego4d-split' writes them, or a frames dataset's\n"
        "DIR/frames.jsonl from 'vblip extract-frames' (no decoding). Log lines (JSON) go to\n"
        "stdout. OUT gets checkpoint-N directories (complete models that every --model\n"
        "accepts, plus the optimizer state for --resume) and, at the end, the final model.\n"
        "Saves are atomic; Ctrl-C saves a checkpoint at the last step and exits 130.\n",
    .options = k_train_options,
    .max_positional = 0,
};

static volatile sig_atomic_t g_interrupted;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
  signal(SIGINT, SIG_DFL); /* a second Ctrl-C kills */
}

static int run_train(int argc, char **argv) {
  train_opts a = {.schedule = "linear", .cache_mb = 4096};
  vb_train_run_options *o = &a.run;
  vb_train_run_options_default(o);
  /* VideoBLIP's recipe (its README's training command) */
  o->epochs = 5;
  o->batch = 32;
  o->grad_accum = 4;
  o->warmup_steps = 1000;
  o->eval_steps = 200;
  o->save_steps = 200;
  o->save_total_limit = 3;
  int n_pos, rc = cli_parse(&cli_cmd_train, &a, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  if (vb_sched_parse(a.schedule, &o->schedule)) return cli_usage_error("train", "bad --schedule");
  o->cache_bytes = (size_t)a.cache_mb << 20;
  o->train.dropout = !a.no_dropout;
  const char *data = o->data, *val = o->val;
  if (!(o->data = cli_input_path(data)) || (val && !(o->val = cli_input_path(val)))) return 1;
  /* clips read from stdin name their videos relative to the current directory */
  o->val_video_dir = o->video_dir || !val || strcmp(val, "-") ? o->video_dir : ".";
  if (!o->video_dir && !strcmp(data, "-")) o->video_dir = ".";
  o->interrupted = &g_interrupted;
  signal(SIGINT, on_sigint);
  rc = vb_train_run(o);
  signal(SIGINT, SIG_DFL);
  if (rc < 0) return cli_fail("%s", vblip_last_error());
  return rc;
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
