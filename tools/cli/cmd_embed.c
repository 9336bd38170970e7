/* vblip embed: a video's frames and embeddings into a safetensors file. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/outfile.h"

typedef struct {
  const char *model, *out;
  vblip_load_options load;
  vblip_sampling sampling;
  int quiet; /* --quiet: no progress on the terminal */
} embed_opts;

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, embed_opts, model),
    CLI_OPT_STRING("--out", 'o', "FILE", embed_opts, out,
                   "output .safetensors file (written to FILE.tmp-PID, renamed at the end;\n"
                   "'-': stdout; a symbolic link, device, FIFO or socket is refused)",
                   .flags = CLI_REQUIRED, .need = "needs a file name"),
    CLI_GROUP(cli_frame_options, embed_opts, sampling),
    CLI_GROUP(cli_threads_option, embed_opts, load.n_threads),
    CLI_GROUP(cli_quiet_option, embed_opts, quiet),
    CLI_DTYPE_GROUP(embed_opts, load),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_embed = {
    .name = "embed",
    .summary = "write a video's frames and embeddings to a safetensors file",
    .run = run,
    .usage = "--model MODEL --out FILE.safetensors [options] VIDEO",
    .about = "Decodes and samples VIDEO ('-': a video file from stdin), runs the vision encoder,\n"
             "the Q-Former and the language projection, and writes float32 tensors pixel_values\n"
             "(T,3,H,W), vision_last_hidden_state (T*257,width), qformer_last_hidden_state\n"
             "(queries,width) and language_projection (queries,lm width), with the chosen frame\n"
             "indices and times in the file's metadata.\n",
    .options = k_options,
    .positional = "VIDEO",
    .min_positional = 1,
    .max_positional = 1,
};

static int run(int argc, char **argv) {
  embed_opts o = {0};
  vblip_load_options_default(&o.load);
  vblip_sampling_default(&o.sampling);
  int n_pos, rc = cli_parse(&cli_cmd_embed, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  cli_status_setup(o.quiet, &o.load);
  if (cli_check_sampling("embed", &o.sampling)) return 2;
  /* a --out that cannot be written fails before any work */
  if (strcmp(o.out, "-") != 0 && vb_outfile_check(o.out) != 0)
    return cli_fail("%s", vblip_last_error());
  const char *video = argv[0], *in = cli_input_path(video),
             *out = in ? cli_output_path(o.out) : NULL;
  if (!out) return 1;
  vblip_model *m = cli_load_model(o.model, &o.load);
  if (!m) return 1;
  vblip_video v;
  rc = 0;
  if (vblip_video_load(m, in, &o.sampling, &v) != 0) {
    rc = cli_fail("%s", vblip_last_error()); /* names the file */
  } else {
    if (vblip_video_encode(m, &v) != 0 || vblip_video_save(&v, out, video) != 0)
      rc = cli_fail("%s", vblip_last_error());
    else
      fprintf(stderr, "vblip: wrote %s (%d frames)\n", strcmp(o.out, "-") ? out : "stdout",
              v.n_frames);
    vblip_video_free(&v);
  }
  vblip_model_free(m);
  return rc ? rc : cli_output_done(o.out, out);
}
