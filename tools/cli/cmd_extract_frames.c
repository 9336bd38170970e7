/* vblip extract-frames: a clip list into a frames dataset that 'vblip train' reads. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "train/frames.h"

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, vb_extract_options, model),
    CLI_OPT_STRING("--data", 0, "FILE", vb_extract_options, data,
                   "clip list (JSONL, as ego4d-split writes it; '-': stdin)",
                   .flags = CLI_REQUIRED),
    CLI_OPT_STRING("--out", 'o', "DIR", vb_extract_options, out,
                   "the frames dataset: DIR/frames.jsonl and DIR/clips/", .flags = CLI_REQUIRED),
    CLI_OPT_STRING("--video-dir", 0, "DIR", vb_extract_options, video_dir,
                   "resolve relative video paths here (default: next to the JSONL)"),
    CLI_OPT_INT("--frames", 0, "N", vb_extract_options, frames, 1, 1024,
                "frames per clip, sampled uniformly (default 8)"),
    CLI_OPT_INT("--workers", 'j', "N", vb_extract_options, workers, 1, 256,
                "clips decoded in parallel (default 1)"),
    CLI_OPT_FLAG("--quiet", 0, vb_extract_options, quiet, "no progress output"),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_extract_frames = {
    .name = "extract-frames",
    .summary = "sample and preprocess every clip's frames once, for 'train'",
    .run = run,
    .usage = "--model MODEL --data FILE.jsonl --out DIR [options]",
    .about =
        "As VideoBLIP's scripts/ego4d/extract_frames.py: each clip's frames are sampled\n"
        "(--frames, uniformly over its window) and run through the model's preprocessing once,\n"
        "then stored losslessly as DIR/clips/clip-NNNNNN.safetensors (float32 pixel_values\n"
        "[3, T, S, S]). DIR/frames.jsonl repeats the clip list with a \"frames\" path on each\n"
        "line; 'vblip train --data DIR/frames.jsonl' reads it without decoding video.\n"
        "Each clip file is written atomically and complete ones are skipped, so an\n"
        "interrupted run continues where it stopped.\n",
    .options = k_options,
    .max_positional = 0,
};

static int run(int argc, char **argv) {
  vb_extract_options o = {.frames = 8, .workers = 1};
  int n_pos, rc = cli_parse(&cli_cmd_extract_frames, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  if (!(o.data = cli_input_path(o.data))) return 1;
  vb_extract_stats st;
  if (vb_extract_frames(&o, &st)) return cli_fail("%s", vblip_last_error());
  printf("%d clips: %d extracted, %d already complete\n", st.clips, st.extracted, st.skipped);
  return 0;
}
