/* vblip pull: a model from the Hugging Face Hub into the cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *k_help =
    "usage: vblip pull REPO_ID [--revision REV] [--dir DIR]\n"
    "\n"
    "Downloads what vblip needs from a Hugging Face Hub model repository (e.g.\n"
    "kpyu/video-blip-opt-2.7b-ego4d): config.json, preprocessor_config.json,\n"
    "generation_config.json, the tokenizer files and the weights in the best format\n"
    "there (safetensors, else PyTorch .bin; sharded or not). Prints the directory.\n"
    "Interrupted downloads resume; sizes and checksums are verified. --model accepts\n"
    "a repo id directly (pulled on first use, then read from the cache).\n"
    "\n"
    "options:\n"
    "  --revision REV  branch, tag or commit (default main)\n"
    "  --dir DIR       download into DIR (default: $VBLIP_CACHE, else\n"
    "                  ~/.cache/vblip/hub, then OWNER--NAME/REV)\n"
    "  --quiet         no progress bars\n"
    "\n"
    "environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent as a\n"
    "bearer token), VBLIP_CACHE.\n";

int cmd_pull(int argc, char **argv) {
  const char *repo = NULL, *rev = NULL, *dir = NULL;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    bool miss;
    const char *v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(k_help, stdout);
      return 0;
    }
    if ((v = cli_opt(argc, argv, &i, "--revision", &miss)) || miss) {
      if (miss) return cli_usage_error("pull", "--revision needs a branch, tag or commit");
      rev = v;
    } else if ((v = cli_opt(argc, argv, &i, "--dir", &miss)) || miss) {
      if (miss) return cli_usage_error("pull", "--dir needs a directory");
      dir = v;
    } else if (strcmp(argv[i], "--quiet") == 0) {
      quiet = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return cli_usage_error("pull", "unknown option %s", argv[i]);
    } else if (repo) {
      return cli_usage_error("pull", "one REPO_ID at a time");
    } else {
      repo = argv[i];
    }
  }
  if (!repo) return cli_usage_error("pull", "no REPO_ID given");
  char *out = NULL;
  if (vblip_pull(repo, rev, dir, !quiet, &out) != 0) return cli_fail("%s", vblip_last_error());
  puts(out);
  free(out);
  return 0;
}
