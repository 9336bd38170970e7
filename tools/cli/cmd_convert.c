/* vblip convert: a model directory into one GGUF file. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *k_help =
    "usage: vblip convert --model DIR --out FILE.gguf [--type f32|f16|bf16|q8_0]\n"
    "\n"
    "Writes the model in DIR (safetensors, sharded or not, or PyTorch .bin; or a GGUF\n"
    "file) as one GGUF file with the configs, the preprocessor settings, the tokenizer\n"
    "and the weights. Every command's --model accepts the .gguf file.\n"
    "\n"
    "options:\n"
    "  --model DIR     checkpoint directory (or .gguf file)\n"
    "  --out FILE      the GGUF file to write (written to FILE.tmp-PID, renamed at the end)\n"
    "  --type T        f32 (default): the weights as float32;\n"
    "                  f16, bf16: every matrix in that type, 1-D tensors float32;\n"
    "                  q8_0: the linear layers' matrices in GGUF Q8_0 blocks (8-bit with a\n"
    "                  float16 scale per 32 values); norms, biases, embeddings float32\n"
    "  --quiet         no progress bar\n";

/* The temporary file, removed when a signal ends the conversion. */
static char g_tmp[4096];

static void on_signal(int sig) {
  if (g_tmp[0]) unlink(g_tmp);
  signal(sig, SIG_DFL);
  raise(sig);
}

int cmd_convert(int argc, char **argv) {
  const char *model = NULL, *out = NULL, *type = "f32";
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    bool miss;
    const char *v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(k_help, stdout);
      return 0;
    }
    if ((v = cli_opt(argc, argv, &i, "--model", &miss)) || miss) {
      if (miss) return cli_usage_error("convert", "--model needs a directory");
      model = v;
    } else if ((v = cli_opt(argc, argv, &i, "--out", &miss)) || miss) {
      if (miss) return cli_usage_error("convert", "--out needs a file name");
      out = v;
    } else if ((v = cli_opt(argc, argv, &i, "--type", &miss)) || miss) {
      if (miss) return cli_usage_error("convert", "--type needs f32, f16, bf16 or q8_0");
      type = v;
    } else if (strcmp(argv[i], "--quiet") == 0) {
      quiet = 1;
    } else {
      return cli_usage_error("convert", "unexpected argument %s", argv[i]);
    }
  }
  if (!model) return cli_usage_error("convert", "--model is required");
  if (!out) return cli_usage_error("convert", "--out is required");
  if (strcmp(type, "f32") && strcmp(type, "f16") && strcmp(type, "bf16") && strcmp(type, "q8_0"))
    return cli_usage_error("convert", "--type must be f32, f16, bf16 or q8_0, not %s", type);
  snprintf(g_tmp, sizeof g_tmp, "%s.tmp-%d", out, (int)getpid());
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGXFSZ};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], on_signal);
  double t0 = 0;
  {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = ts.tv_sec + ts.tv_nsec / 1e9;
  }
  if (vblip_convert(model, out, type, !quiet) != 0) return cli_fail("%s", vblip_last_error());
  g_tmp[0] = 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  struct stat st;
  long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
  fprintf(stderr, "vblip: wrote %s (%s, %.1f MB) in %.2f s\n", out, type, size / 1e6,
          ts.tv_sec + ts.tv_nsec / 1e9 - t0);
  return 0;
}
