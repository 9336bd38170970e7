/* vblip embed: a video's frames and embeddings into a safetensors file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char *k_help =
    "usage: vblip embed --model DIR --out FILE.safetensors [options] VIDEO\n"
    "\n"
    "Decodes and samples VIDEO, runs the vision encoder, the Q-Former and the language\n"
    "projection, and writes float32 tensors pixel_values (T,3,H,W),\n"
    "vision_last_hidden_state (T*257,width), qformer_last_hidden_state (queries,width)\n"
    "and language_projection (queries,lm width), with the chosen frame indices and\n"
    "times in the file's metadata.\n"
    "\n"
    "options:\n"
    "  --model DIR         checkpoint directory (config.json, weights, tokenizer)\n"
    "  --out FILE          output .safetensors file (written atomically)\n" CLI_FRAME_HELP
    "  --threads N         worker threads (default: all cores)\n" CLI_DTYPE_HELP;

int cmd_embed(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *video = NULL;
  vblip_sampling s;
  vblip_sampling_default(&s);
  int threads = 0;
  vblip_dtype dtype = VBLIP_DTYPE_AUTO;
  for (int i = 1; i < argc; i++) {
    bool miss;
    const char *v;
    int r;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(k_help, stdout);
      return 0;
    }
    if ((v = cli_opt(argc, argv, &i, "--model", &miss)) || miss) {
      if (miss) return cli_usage_error("embed", "--model needs a directory");
      model = v;
    } else if ((v = cli_opt(argc, argv, &i, "--out", &miss)) || miss) {
      if (miss) return cli_usage_error("embed", "--out needs a file name");
      out = v;
    } else if ((r = cli_frame_option("embed", argc, argv, &i, &s)) != 0) {
      if (r < 0) return 2;
    } else if ((r = cli_threads_option("embed", argc, argv, &i, &threads)) != 0) {
      if (r < 0) return 2;
    } else if ((r = cli_dtype_option("embed", argc, argv, &i, &dtype)) != 0) {
      if (r < 0) return 2;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return cli_usage_error("embed", "unknown option %s", argv[i]);
    } else if (video) {
      return cli_usage_error("embed", "one VIDEO at a time");
    } else {
      video = argv[i];
    }
  }
  if (!model) return cli_usage_error("embed", "--model is required");
  if (!out) return cli_usage_error("embed", "--out is required");
  if (!video) return cli_usage_error("embed", "no VIDEO given");
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.n_threads = threads;
  lo.dtype = dtype;
  vblip_model *m = vblip_model_load(model, &lo);
  if (!m) return cli_fail("%s", vblip_last_error());
  vblip_video v;
  int rc = 0;
  if (vblip_video_load(m, video, &s, &v) != 0) {
    rc = cli_fail("%s", vblip_last_error());
  } else {
    if (vblip_video_encode(m, &v) != 0 || vblip_video_save(&v, out, video) != 0)
      rc = cli_fail("%s", vblip_last_error());
    else
      fprintf(stderr, "vblip: wrote %s (%d frames)\n", out, v.n_frames);
    vblip_video_free(&v);
  }
  vblip_model_free(m);
  return rc;
}
