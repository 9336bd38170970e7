/* vblip caption: answer a prompt about each video (or caption it). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_caption_list.h"
#include "cli/cli_input.h"
#include "cli/cli_tty_text.h"
#include "runtime/escape.h"

static int print_piece(void *user, const char *piece) {
  cli_tty_text_put(user, stdout, piece);
  fflush(stdout);
  return 0;
}

/* One JSON line: the videos (one object per video: {video, frames}; a single video's
 * "video" and "frames" also at the top, as before --interleaved), prompt, text, ids, timings. */
static void print_json(const cli_videos *vs, int first, int count, const char *prompt,
                       const char *text, const vblip_answer *a) {
  cJSON *o = cJSON_CreateObject();
  if (count == 1) {
    cJSON_AddStringToObject(o, "video", vs->names[first]);
    cJSON_AddItemToObject(o, "frames", cli_frames_json(&vs->v[first]));
  }
  cJSON *list = cJSON_AddArrayToObject(o, "videos");
  const vblip_video *vp[64];
  int nv = 0;
  for (int k = first; k < first + count; k++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "video", vs->names[k]);
    cJSON_AddItemToObject(e, "frames", cli_frames_json(&vs->v[k]));
    cJSON_AddItemToArray(list, e);
    if (nv < 64) vp[nv++] = &vs->v[k];
  }
  cJSON_AddStringToObject(o, "prompt", prompt);
  cJSON_AddStringToObject(o, "text", text);
  cJSON *ids = cJSON_AddArrayToObject(o, "token_ids");
  for (int i = 0; i < a->n_tokens; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(a->token_ids[i]));
  cJSON_AddItemToObject(o, "timings_ms", cli_timings_json(vp, nv, "generate", a->ms_generate));
  char *s = cJSON_PrintUnformatted(o);
  if (s) puts(s);
  free(s);
  cJSON_Delete(o);
}

/* --json for an input that failed: its line says so (the message is on stderr too), so
 * a batch's output names every input */
static void print_json_error(char *const *names, int first, int count, const char *prompt) {
  cJSON *o = cJSON_CreateObject();
  if (count == 1) cJSON_AddStringToObject(o, "video", names[first]);
  cJSON *list = cJSON_AddArrayToObject(o, "videos");
  for (int k = first; k < first + count; k++) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "video", names[k]);
    cJSON_AddItemToArray(list, e);
  }
  cJSON_AddStringToObject(o, "prompt", prompt);
  const char *err = vblip_last_error();
  cJSON_AddStringToObject(o, "error", err && *err ? err : "failed");
  char *s = cJSON_PrintUnformatted(o);
  if (s) puts(s);
  fflush(stdout);
  free(s);
  cJSON_Delete(o);
}

typedef struct {
  const char *model, *prompt;
  vblip_load_options load;
  vblip_sampling sampling;
  vblip_gen_params gen;
  int json, raw, interleaved;
  cli_caption_list list; /* --files-from and what goes with it */
  int quiet;             /* --quiet: no progress on the terminal */
} caption_opts;

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, caption_opts, model),
    CLI_OPT_STRING(
        "--prompt", 'p', "TEXT", caption_opts, prompt,
        "e.g. \"Question: What is the camera wearer doing? Answer:\"\n(default: empty, a caption)"),
    CLI_OPT_FLAG("--interleaved", 0, caption_opts, interleaved,
                 "one answer about all VIDEOs: --prompt holds a <video> placeholder\n"
                 "for each, filled in order (EILEV's in-context learning; implies\n"
                 "--layout interleaved)"),
    CLI_GROUP(cli_layout_option, caption_opts, load.layout),
    CLI_GROUP(cli_frame_options, caption_opts, sampling),
    CLI_GROUP(cli_gen_options, caption_opts, gen),
    CLI_GROUP(cli_threads_option, caption_opts, load.n_threads),
    CLI_GROUP(cli_quiet_option, caption_opts, quiet),
    CLI_DTYPE_GROUP(caption_opts, load),
    CLI_OPT_FLAG("--json", 0, caption_opts, json,
                 "one JSON object per answer per line: {video, frames:[{index,\n"
                 "time}], videos:[{video, frames}], prompt, text, token_ids,\n"
                 "timings_ms} (with --interleaved: videos only, one per VIDEO);\n"
                 "a frame's index counts from the video's first frame; a VIDEO\n"
                 "that fails gets {video, videos, prompt, error}"),
    CLI_OPT_FLAG("--raw", 0, caption_opts, raw, "print the decoded text without post-processing"),
    CLI_GROUP(cli_caption_list_options, caption_opts, list),
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
        "VIDEO '-' reads a video file from stdin.\n"
        "\n"
        "With --interleaved the answer is one, about all the VIDEOs at once: each <video> in\n"
        "--prompt stands for the next VIDEO, e.g. an in-context prompt for an EILEV model:\n"
        "  --prompt \"<video> Question: What is the camera wearer doing? Answer: He cuts an "
        "onion.\n"
        "            <video> Question: What is the camera wearer doing? Answer:\" A.mp4 B.mp4\n"
        "Interleaved (EILEV) models default to 5 beams, 32 new tokens, length penalty -1 and\n"
        "frames from each video's first 8 seconds.\n"
    "\n"
    "With --files-from the inputs come from a list instead, one per line: a path, or a\n"
    "JSON object {\"video\": PATH, \"prompt\": ..., \"start\": S, \"end\": E, \"id\": ...}\n"
    "(every field but video optional). Each gets one JSON line, in input order:\n"
    "{id, line, video, start, end, prompt, text}, or \"error\" in place of \"text\" for an\n"
    "input that failed (the run goes on; the exit status stays 0). See docs/datasets.md.\n",
    .options = k_options,
    .positional = "VIDEO",
    .min_positional = 0,
    .max_positional = -1,
};

/* Generates the answer to in and prints it; 0, or 1 with the error printed. */
static int answer(vblip_model *m, const caption_opts *o, vblip_input *in, const cli_videos *vs,
                  int first, int count, const char *label, bool stream) {
  cli_tty_text tty;
  if (stream) {
    cli_tty_text_begin(&tty, stdout);
    if (label) cli_tty_text_put(&tty, stdout, label), cli_tty_text_put(&tty, stdout, ": ");
  }
  vblip_answer a;
  if (vblip_generate_input(m, in, &o->gen, stream ? print_piece : NULL, &tty, &a) != 0) {
    if (stream) putchar('\n');
    return cli_fail("%s%s%s", label ? label : "", label ? ": " : "", vblip_last_error());
  }
  char *text = o->raw ? strdup(a.text) : vblip_postprocess(a.text);
  if (o->json) {
    print_json(vs, first, count, o->prompt, text ? text : "", &a);
  } else if (stream) {
    /* the streamed text lacks the final touch: reprint it whole, from its first row */
    cli_tty_text_rewind(&tty, stdout);
    printf("%s%s%s\n", label ? label : "", label ? ": " : "", text ? text : "");
  } else {
    if (label) printf("%s: ", label);
    printf("%s\n", text ? text : "");
  }
  fflush(stdout);
  free(text);
  vblip_answer_free(&a);
  return 0;
}

/* Answers the prompt about one video (or all, interleaved); 0, or 1 with the error printed. */
static int caption_one(vblip_model *m, const caption_opts *o, char **names, int k, int several,
                       bool stream) {
  cli_videos vs;
  int first = o->interleaved ? 0 : k, count = o->interleaved ? several : 1;
  if (cli_videos_load(m, &o->sampling, names + first, count, &vs) != 0) {
    cli_videos_free(&vs);
    return 1;
  }
  vs.names = names + first;
  vblip_input *in = cli_make_input(&vs, o->interleaved, 0, o->prompt);
  char label[1024]; /* file names may hold control characters */
  vb_escape_controls(names[k], label, sizeof label);
  int rc =
      in ? answer(m, o, in, &vs, 0, count, !o->interleaved && several > 1 ? label : NULL, stream)
         : 1;
  vblip_input_free(in);
  cli_videos_free(&vs);
  return rc;
}

static int run(int argc, char **argv) {
  caption_opts o = {.prompt = ""};
  vblip_load_options_default(&o.load);
  vblip_sampling_default(&o.sampling);
  vblip_gen_params_default(&o.gen);
  cli_caption_list_default(&o.list);
  cli_model_defaults_unset(&o.gen, &o.sampling);
  int n_videos, rc = cli_parse(&cli_cmd_caption, &o, argc, argv, &n_videos);
  if (rc != CLI_RUN) return rc;
  cli_status_setup(o.quiet, &o.load);
  if (cli_check_sampling("caption", &o.sampling)) return 2;
  if ((rc = cli_caption_list_check("caption", &o.list, n_videos, o.interleaved)) != 0) return rc;
  size_t bad;
  if (!vb_utf8_valid(o.prompt, strlen(o.prompt), &bad))
    return cli_usage_error("caption", "--prompt is not valid UTF-8 (byte %zu)", bad);
  if (o.interleaved &&
      (rc = cli_interleaved_check("caption", &o.load.layout, o.prompt, n_videos)) != 0)
    return rc;
  vblip_model *m = cli_load_model(o.model, &o.load);
  if (!m) return 1;
  cli_model_defaults_fill(m, &o.gen, &o.sampling);
  /* a prompt too long for the model fails here, once, before any video is decoded (an
   * interleaved prompt is checked with its videos) */
  if (!o.interleaved && vblip_check_prompt(m, o.prompt, NULL) != 0) {
    rc = cli_fail("%s", vblip_last_error());
    vblip_model_free(m);
    return rc;
  }
  if (o.list.files_from) {
    cli_caption_settings cs = {o.prompt, &o.sampling, &o.gen, o.raw};
    rc = cli_caption_list_run(m, &o.list, &cs);
    vblip_model_free(m);
    return rc;
  }
  bool stream = !o.json && isatty(STDOUT_FILENO);
  int status = 0;
  if (o.interleaved) {
    if ((status = caption_one(m, &o, argv, 0, n_videos, stream)) != 0 && o.json)
      print_json_error(argv, 0, n_videos, o.prompt);
  } else {
    for (int k = 0; k < n_videos; k++)
      if (caption_one(m, &o, argv, k, n_videos, stream) != 0) {
        status = 1;
        if (o.json) print_json_error(argv, k, 1, o.prompt);
      }
  }
  vblip_model_free(m);
  return status;
}
