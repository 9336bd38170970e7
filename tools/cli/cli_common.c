/* Option groups that several commands share, and loading a model with them. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "cli/cli.h"

/* A one-field struct lets these single rows use CLI_FIELD's type check. */
typedef struct {
  const char *model;
} model_field;
typedef struct {
  int threads;
} threads_field;
const cli_option cli_model_option[] = {
    CLI_OPT_STRING("--model", 'm', "MODEL", model_field, model,
                   "checkpoint directory, .gguf file (vblip convert) or Hub repo id\n"
                   "(owner/name, pulled on first use)",
                   .flags = CLI_REQUIRED, .need = "needs a directory, .gguf file or repo id"),
    CLI_TABLE_END};

const cli_option cli_threads_option[] = {CLI_OPT_INT("--threads", 't', "N", threads_field, threads,
                                                     1, 1024,
                                                     "worker threads (default: all cores)"),
                                         CLI_TABLE_END};

static int parse_dtype(const char *v, void *field) {
  return vblip_dtype_parse(v, field);
}

static int parse_vision_dtype(const char *v, void *field) {
  return vblip_vision_dtype_parse(v, field);
}

const cli_option cli_dtype_option[] = {
    CLI_OPT_CUSTOM("--dtype", 0, "T", vblip_load_options, dtype, vblip_dtype, parse_dtype,
                   "compute type: auto (default: bf16 on CPUs with AMX or\n"
                   "AVX512-BF16, else f32), f32 (exact) or bf16; q8_0 / q4_0 / q4_k:\n"
                   "bf16 with the language model's linear weights quantized at load",
                   .need = "needs auto, f32, bf16, q8_0, q4_0 or q4_k"),
    CLI_OPT_CUSTOM("--vision-dtype", 0, "T", vblip_load_options, vision_dtype, vblip_vision_dtype,
                   parse_vision_dtype,
                   "vision encoder: auto (default: int8 for a convert --vision-type\n"
                   "int8 model on a CPU with int8 dot products (AMX-INT8, AVX512-VNNI,\n"
                   "AVX-VNNI), else as --dtype), f32, bf16 or int8",
                   .need = "needs auto, f32, bf16 or int8"),
    CLI_TABLE_END};

typedef struct {
  vblip_layout layout;
} layout_field;

static int parse_layout(const char *v, void *field) {
  return vblip_layout_parse(v, field);
}

const cli_option cli_layout_option[] = {
    CLI_OPT_CUSTOM("--layout", 0, "L", layout_field, layout, vblip_layout, parse_layout,
                   "how videos and text reach the language model: auto (default:\n"
                   "interleaved for EILEV checkpoints, else blip2), blip2 (one video\n"
                   "before the prompt) or interleaved (EILEV: videos where they stand)",
                   .need = "needs auto, blip2 or interleaved"),
    CLI_TABLE_END};

static int parse_sampling_mode(const char *v, void *field) {
  vblip_sample_mode *mode = field;
  if (strcmp(v, "uniform") == 0)
    *mode = VBLIP_SAMPLE_UNIFORM;
  else if (strcmp(v, "demo") == 0)
    *mode = VBLIP_SAMPLE_DEMO;
  else
    return -1;
  return 0;
}

/* --frame-times: the parsed list lives here (one per process: a command has one sampling). */
#define MAX_FRAME_TIMES 1024
static double g_frame_times[MAX_FRAME_TIMES];
static int g_n_frame_times;

/* "T1,T2,...": ascending seconds >= 0. The row's field is the sampling's mode, its first
 * member, so the whole vblip_sampling is at the same address. */
_Static_assert(offsetof(vblip_sampling, mode) == 0, "--frame-times needs mode first");
static int parse_frame_times(const char *v, void *field) {
  vblip_sampling *s = field;
  int n = 0;
  char buf[32];
  for (const char *p = v;; n++) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    double t;
    if (n >= MAX_FRAME_TIMES || len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, p, len);
    buf[len] = 0;
    if (!cli_double(buf, 0, 1e9, &t) || (n > 0 && t < g_frame_times[n - 1])) return -1;
    g_frame_times[n] = t;
    if (!comma) break;
    p = comma + 1;
  }
  g_n_frame_times = n + 1;
  s->mode = VBLIP_SAMPLE_TIMES;
  s->times = g_frame_times;
  s->n_frames = g_n_frame_times;
  return 0;
}

const cli_option cli_frame_options[] = {
    CLI_OPT_INT("--frames", 0, "N", vblip_sampling, n_frames, 1, 1024,
                "sample N frames uniformly (default 8)"),
    CLI_OPT_CUSTOM("--sampling", 0, "MODE", vblip_sampling, mode, vblip_sample_mode,
                   parse_sampling_mode,
                   "'uniform' (default) or 'demo' (the demo's rule: frames in\n"
                   "[0 s, 10 s), every 30th)",
                   .need = "takes 'uniform' or 'demo'"),
    CLI_OPT_DOUBLE("--start", 0, "S", vblip_sampling, start_sec, 0, 1e9,
                   "uniform sampling window start in seconds (default 0)",
                   .need = "needs a number of seconds >= 0"),
    CLI_OPT_DOUBLE("--end", 0, "E", vblip_sampling, end_sec, 0, 1e9,
                   "uniform sampling window end in seconds (default: the video's\n"
                   "end; 8 for interleaved (EILEV) models)",
                   .need = "needs a number of seconds >= 0"),
    CLI_OPT_CUSTOM("--frame-times", 0, "T,T,...", vblip_sampling, mode, vblip_sample_mode,
                   parse_frame_times,
                   "the frames shown at these times (seconds after the first frame,\n"
                   "ascending), as vblip narrate picks them; replaces the other\n"
                   "frame options",
                   .need = "needs ascending numbers of seconds >= 0, comma-separated"),
    CLI_TABLE_END};

const cli_option cli_gen_options[] = {
    CLI_OPT_INT("--beams", 0, "N", vblip_gen_params, num_beams, 0, 64,
                "beam search width; 0 or 1 = greedy (default 4, as the demo;\n"
                "5 for interleaved (EILEV) models)"),
    CLI_OPT_INT("--max-new-tokens", 'n', "N", vblip_gen_params, max_new_tokens, 1, 100000,
                "at most N new tokens (default 128, as the demo; 32 for\n"
                "interleaved (EILEV) models)",
                .need = "needs a whole number >= 1"),
    CLI_OPT_INT("--min-new-tokens", 0, "N", vblip_gen_params, min_new_tokens, 0, 100000,
                "no end-of-text before N tokens (default 0)", .need = "needs a whole number >= 0"),
    CLI_OPT_FLAG("--sample", 0, vblip_gen_params, do_sample,
                 "sample instead of greedy/beam search; with --beams > 1 (the\n"
                 "default 4) it is beam sampling: add --beams 1 for plain sampling"),
    CLI_OPT_FLOAT("--temperature", 0, "T", vblip_gen_params, temperature, 1e-6, 100,
                  "with --sample (default 1.0); without it, like transformers,\n"
                  "it has no effect (the demo passes 0.7 that way)",
                  .need = "needs a number > 0"),
    CLI_OPT_INT("--top-k", 0, "K", vblip_gen_params, top_k, 0, 1000000,
                "with --sample (default 50; 0 = off)", .need = "needs a whole number >= 0"),
    CLI_OPT_FLOAT("--top-p", 0, "P", vblip_gen_params, top_p, 1e-9, 1,
                  "with --sample, 0 < P <= 1 (default 1 = off)",
                  .need = "needs a number in (0, 1]"),
    CLI_OPT_U64("--seed", 0, "S", vblip_gen_params, seed, "random seed for --sample (default 0)"),
    CLI_OPT_FLOAT("--repetition-penalty", 0, "R", vblip_gen_params, repetition_penalty, 1e-6, 1000,
                  "> 0 (default 1 = off)", .need = "needs a number > 0"),
    CLI_OPT_INT("--no-repeat-ngram", 0, "N", vblip_gen_params, no_repeat_ngram_size, 0, 1000,
                "forbid repeating any N-gram (default 0 = off)",
                .need = "needs a whole number >= 0"),
    CLI_OPT_FLOAT("--length-penalty", 0, "L", vblip_gen_params, length_penalty, -100, 100,
                  "beam search length penalty (default 1; -1 for interleaved\n"
                  "(EILEV) models)",
                  .need = "needs a number"),
    CLI_TABLE_END};

/* Values no flag can set: "not given", until the model's defaults fill them in. */
#define UNSET_INT (-1)
#define UNSET_END (-2.0)

void cli_model_defaults_unset(vblip_gen_params *g, vblip_sampling *s) {
  if (g) {
    g->num_beams = UNSET_INT;
    g->max_new_tokens = UNSET_INT;
    g->length_penalty = NAN;
  }
  if (s) s->end_sec = UNSET_END;
}

void cli_model_defaults_fill(const vblip_model *m, vblip_gen_params *g, vblip_sampling *s) {
  int eilev = vblip_model_layout(m) == VBLIP_LAYOUT_INTERLEAVED;
  vblip_gen_params d;
  vblip_sampling ds;
  if (eilev) {
    vblip_gen_params_eilev(&d);
    vblip_sampling_eilev(&ds);
  } else {
    vblip_gen_params_default(&d);
    vblip_sampling_default(&ds);
  }
  if (g && g->num_beams == UNSET_INT) g->num_beams = d.num_beams;
  if (g && g->max_new_tokens == UNSET_INT) g->max_new_tokens = d.max_new_tokens;
  if (g && isnan(g->length_penalty)) g->length_penalty = d.length_penalty;
  if (s && s->end_sec == UNSET_END) s->end_sec = ds.end_sec;
}

int cli_check_sampling(const char *cmd, vblip_sampling *s) {
  if (s->mode == VBLIP_SAMPLE_TIMES) s->n_frames = g_n_frame_times; /* whatever --frames said */
  if (s->mode == VBLIP_SAMPLE_UNIFORM && s->end_sec >= 0 && s->end_sec <= s->start_sec)
    return cli_usage_error(cmd, "--end (%g) must be after --start (%g)", s->end_sec, s->start_sec);
  return 0;
}

int cli_load_video(vblip_model *m, const char *path, const vblip_sampling *s, vblip_video *v) {
  cli_status("reading %s...", path);
  if (vblip_video_load(m, path, s, v) != 0) {
    cli_status_clear();
    cli_fail("%s", vblip_last_error()); /* names the file */
    return -1;
  }
  cli_status("encoding %s (%d frame%s)...", path, v->n_frames, v->n_frames == 1 ? "" : "s");
  if (vblip_video_encode(m, v) != 0) {
    cli_status_clear();
    cli_fail("%s: %s", path, vblip_last_error());
    vblip_video_free(v);
    return -1;
  }
  cli_status_clear();
  return 0;
}

vblip_model *cli_load_model(const char *model, const vblip_load_options *lo) {
  vblip_model *m = vblip_model_load(model, lo);
  if (!m) cli_fail("%s", vblip_last_error());
  return m;
}
