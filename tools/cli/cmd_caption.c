/* vblip caption: answer a prompt about each video (or caption it). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static int print_piece(void *user, const char *piece) {
  (void)user;
  fputs(piece, stdout);
  fflush(stdout);
  return 0;
}

static void print_json(const char *video, const vblip_video *v, const char *prompt, const char *text,
                       const vblip_answer *a) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "video", video);
  cJSON *frames = cJSON_AddArrayToObject(o, "frames");
  for (int i = 0; i < v->n_frames; i++) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "index", (double)v->frame_index[i]);
    cJSON_AddNumberToObject(f, "time", v->frame_time[i]);
    cJSON_AddItemToArray(frames, f);
  }
  cJSON_AddStringToObject(o, "prompt", prompt);
  cJSON_AddStringToObject(o, "text", text);
  cJSON *ids = cJSON_AddArrayToObject(o, "token_ids");
  for (int i = 0; i < a->n_tokens; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(a->token_ids[i]));
  cJSON *t = cJSON_AddObjectToObject(o, "timings_ms");
  cJSON_AddNumberToObject(t, "decode", v->ms_decode);
  cJSON_AddNumberToObject(t, "preprocess", v->ms_preprocess);
  cJSON_AddNumberToObject(t, "vision", v->ms_vision);
  cJSON_AddNumberToObject(t, "qformer", v->ms_qformer);
  cJSON_AddNumberToObject(t, "generate", a->ms_generate);
  char *s = cJSON_PrintUnformatted(o);
  if (s) puts(s);
  free(s);
  cJSON_Delete(o);
}

typedef struct {
  const char *model, *prompt;
  vblip_load_options load;
  vblip_sampling sampling;
  vblip_gen_params gen;
  int json, raw;
} caption_opts;

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, caption_opts, model),
    CLI_OPT_STRING(
        "--prompt", 'p', "TEXT", caption_opts, prompt,
        "e.g. \"Question: What is the camera wearer doing? Answer:\"\n(default: empty, a caption)"),
    CLI_GROUP(cli_frame_options, caption_opts, sampling),
    CLI_GROUP(cli_gen_options, caption_opts, gen),
    CLI_GROUP(cli_threads_option, caption_opts, load.n_threads),
    CLI_GROUP(cli_dtype_option, caption_opts, load.dtype),
    CLI_OPT_FLAG("--json", 0, caption_opts, json,
                 "one JSON object per video per line:\n"
                 "{video, frames:[{index,time}], prompt, text, token_ids, timings_ms}"),
    CLI_OPT_FLAG("--raw", 0, caption_opts, raw, "print the decoded text without post-processing"),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_caption = {
    .name = "caption",
    .summary = "caption or answer a prompt about one or more videos",
    .run = run,
    .usage = "--model MODEL [options] VIDEO...",
    .about =
        "Answers --prompt about each VIDEO (default prompt: empty, i.e. a caption). The model\n"
        "loads once for all videos. Answers are post-processed like the VideoBLIP demo\n"
        "(stripped, a period added unless they end in punctuation) unless --raw.\n"
        "VIDEO '-' reads a video file from stdin.\n",
    .options = k_options,
    .positional = "VIDEO",
    .min_positional = 1,
    .max_positional = -1,
};

/* Answers the prompt about one video; 0, or 1 with the error printed. */
static int caption_one(vblip_model *m, const caption_opts *o, const char *video, int several,
                       bool stream) {
  const char *path = cli_input_path(video);
  if (!path) return 1;
  vblip_video v;
  if (vblip_video_load(m, path, &o->sampling, &v) != 0 || vblip_video_encode(m, &v) != 0) {
    int rc = cli_fail("%s: %s", video, vblip_last_error());
    vblip_video_free(&v);
    return rc;
  }
  if (stream && several) printf("%s: ", video);
  vblip_answer a;
  if (vblip_generate(m, &v, o->prompt, &o->gen, stream ? print_piece : NULL, NULL, &a) != 0) {
    if (stream) putchar('\n');
    int rc = cli_fail("%s: %s", video, vblip_last_error());
    vblip_video_free(&v);
    return rc;
  }
  char *text = o->raw ? strdup(a.text) : vblip_postprocess(a.text);
  if (o->json) {
    print_json(video, &v, o->prompt, text ? text : "", &a);
  } else if (stream) {
    /* the streamed text lacks the final touch; reprint the line whole */
    printf("\r\033[K%s%s%s\n", several ? video : "", several ? ": " : "", text ? text : "");
  } else {
    if (several) printf("%s: ", video);
    printf("%s\n", text ? text : "");
  }
  fflush(stdout);
  free(text);
  vblip_answer_free(&a);
  vblip_video_free(&v);
  return 0;
}

static int run(int argc, char **argv) {
  caption_opts o = {.prompt = ""};
  vblip_load_options_default(&o.load);
  vblip_sampling_default(&o.sampling);
  vblip_gen_params_default(&o.gen);
  int n_videos, rc = cli_parse(&cli_cmd_caption, &o, argc, argv, &n_videos);
  if (rc != CLI_RUN) return rc;
  vblip_model *m = cli_load_model(o.model, &o.load);
  if (!m) return 1;
  bool stream = !o.json && isatty(STDOUT_FILENO);
  int status = 0;
  for (int k = 0; k < n_videos; k++)
    if (caption_one(m, &o, argv[k], n_videos > 1, stream) != 0) status = 1;
  vblip_model_free(m);
  return status;
}
