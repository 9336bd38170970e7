/* vblip pull: a model from the Hugging Face Hub into the cache. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

typedef struct {
  const char *revision, *dir;
  int quiet;
} pull_opts;

static const cli_option k_options[] = {
    CLI_OPT_STRING("--revision", 0, "REV", pull_opts, revision,
                   "branch, tag or commit (default main)", .need = "needs a branch, tag or commit"),
    CLI_OPT_STRING("--dir", 0, "DIR", pull_opts, dir,
                   "download into DIR (default: $VBLIP_CACHE, else\n"
                   "~/.cache/vblip/hub, then OWNER--NAME/REV)",
                   .need = "needs a directory"),
    CLI_OPT_FLAG("--quiet", 0, pull_opts, quiet, "no progress bars"), CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_pull = {
    .name = "pull",
    .summary = "download a model from the Hugging Face Hub",
    .run = run,
    .usage = "REPO_ID [--revision REV] [--dir DIR]",
    .about = "Downloads what vblip needs from a Hugging Face Hub model repository (e.g.\n"
             "kpyu/video-blip-opt-2.7b-ego4d): config.json, preprocessor_config.json,\n"
             "generation_config.json, the tokenizer files and the weights in the best format\n"
             "there (safetensors, else PyTorch .bin; sharded or not). Prints the directory.\n"
             "Interrupted downloads resume; sizes and checksums are verified. --model accepts\n"
             "a repo id directly (pulled on first use, then read from the cache).\n",
    .options = k_options,
    .positional = "REPO_ID",
    .min_positional = 1,
    .max_positional = 1,
    .epilogue = "environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent as a\n"
                "bearer token), VBLIP_CACHE.\n",
};

static int run(int argc, char **argv) {
  pull_opts o = {0};
  int n_pos, rc = cli_parse(&cli_cmd_pull, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  char *out = NULL;
  if (vblip_pull(argv[0], o.revision, o.dir, !o.quiet, &out) != 0)
    return cli_fail("%s", vblip_last_error());
  puts(out);
  free(out);
  return 0;
}
