/* vblip convert: a model directory into one GGUF file. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "runtime/outfile.h"

typedef struct {
  const char *model, *out, *type, *vision_type;
  int quiet, packed;
} convert_opts;

static const char *const k_types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", NULL};
static const char *const k_vision_types[] = {"same", "int8", NULL};

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, convert_opts, model),
    CLI_OPT_STRING("--out", 'o', "FILE", convert_opts, out,
                   "the GGUF file to write (written to FILE.tmp-PID, renamed at the end;\n"
                   "'-': stdout; a symbolic link, device, FIFO or socket is refused)",
                   .flags = CLI_REQUIRED, .need = "needs a file name"),
    CLI_OPT_CHOICE("--type", 0, "T", convert_opts, type, k_types,
                   "f32 (default): the weights as float32;\n"
                   "f16, bf16: every matrix in that type, 1-D tensors float32;\n"
                   "q8_0: the linear layers' matrices in GGUF Q8_0 blocks (8-bit with a\n"
                   "float16 scale per 32 values); norms, biases, embeddings float32;\n"
                   "q4_0: the language model's linear layers in GGUF Q4_0 blocks (4-bit\n"
                   "with a float16 scale per 32 values), the rest as q8_0;\n"
                   "q4_k: as q4_0 but in GGUF Q4_K super-blocks (256 values: 6-bit\n"
                   "scales and mins per 32, float16 d and dmin); rows not a multiple\n"
                   "of 256 wide in Q4_0"),
    CLI_OPT_CHOICE("--vision-type", 0, "V", convert_opts, vision_type, k_vision_types,
                   "same (default): the vision encoder as --type;\n"
                   "int8: the ViT's linear weights in int8 with a float32 scale per\n"
                   "output channel (\"<name>_scale\"); such a model runs its vision\n"
                   "encoder in int8 (--vision-dtype auto)"),
    CLI_OPT_FLAG("--packed", 0, convert_opts, packed,
                 "with --type q8_0: the language model's linear layers stored\n"
                 "already in the layout of vblip's AVX512-VNNI kernels (vblip's own\n"
                 "GGUF tensor type Q8X16, which other GGUF tools cannot read): on such\n"
                 "CPUs they are used where the file is mapped, not copied and\n"
                 "repacked at load (faster loads, less memory); elsewhere they are\n"
                 "unpacked at load"),
    CLI_OPT_FLAG("--quiet", 0, convert_opts, quiet, "no progress bar"),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_convert = {
    .name = "convert",
    .summary = "write a model as one GGUF file (f32, f16, bf16, q8_0, q4_0 or q4_k weights)",
    .run = run,
    .usage = "--model MODEL --out FILE.gguf [--type f32|f16|bf16|q8_0|q4_0|q4_k] [--vision-type "
             "same|int8] [--packed]",
    .about = "Writes the model (a directory with safetensors, sharded or not, or PyTorch .bin; a\n"
             "GGUF file; or a Hub repo id) as one GGUF file with the configs, the preprocessor\n"
             "settings, the tokenizer and the weights. Every command's --model accepts the .gguf "
             "file.\n",
    .options = k_options,
    .max_positional = 0,
};

/* The temporary file, removed when a signal ends the conversion. */
static char g_tmp[4096];

static void on_signal(int sig) {
  if (g_tmp[0]) unlink(g_tmp);
  cli_stdio_cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

static int run(int argc, char **argv) {
  convert_opts o = {.type = "f32", .vision_type = "same"};
  int n_pos, rc = cli_parse(&cli_cmd_convert, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  /* a --out that cannot be written fails before any work */
  if (strcmp(o.out, "-") != 0 && vb_outfile_check(o.out) != 0)
    return cli_fail("%s", vblip_last_error());
  const char *out = cli_output_path(o.out);
  if (!out) return 1;
  vb_outfile_tmp_name(out, g_tmp, sizeof g_tmp);
  int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGXFSZ};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], on_signal);
  double t0 = 0;
  {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = ts.tv_sec + ts.tv_nsec / 1e9;
  }
  vblip_convert_options co = {
      .type = o.type, .vision_type = o.vision_type, .packed = o.packed, .progress = !o.quiet};
  if (vblip_convert_with(o.model, out, &co) != 0) return cli_fail("%s", vblip_last_error());
  g_tmp[0] = 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  struct stat st;
  long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
  fprintf(stderr, "vblip: wrote %s (%s, %.1f MB) in %.2f s\n", strcmp(o.out, "-") ? out : "stdout",
          o.type, size / 1e6, ts.tv_sec + ts.tv_nsec / 1e9 - t0);
  return cli_output_done(o.out, out);
}
