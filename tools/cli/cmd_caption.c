/* vblip caption: answer a prompt about each video (or caption it). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *k_help =
    "usage: vblip caption --model DIR [options] VIDEO...\n"
    "\n"
    "Answers --prompt about each VIDEO (default prompt: empty, i.e. a caption). The model\n"
    "loads once for all videos. Answers are post-processed like the VideoBLIP demo\n"
    "(stripped, a period added unless they end in punctuation) unless --raw.\n"
    "\n"
    "options:\n"
    "  --model DIR               checkpoint directory\n"
    "  --prompt TEXT             e.g. \"Question: What is the camera wearer doing? Answer:\"\n" CLI_FRAME_HELP
    CLI_GEN_HELP
    "  --threads N               worker threads (default: all cores)\n" CLI_DTYPE_HELP
    "  --json                    one JSON object per video per line:\n"
    "                            {video, frames:[{index,time}], prompt, text, token_ids, timings_ms}\n"
    "  --raw                     print the decoded text without post-processing\n";

typedef struct {
  bool stream;
} print_state;

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

int cmd_caption(int argc, char **argv) {
  const char *model = NULL, *prompt = "";
  const char **videos = calloc((size_t)argc, sizeof *videos);
  int n_videos = 0, threads = 0, json = 0, raw = 0, rc = 0;
  vblip_dtype dtype = VBLIP_DTYPE_AUTO;
  vblip_sampling s;
  vblip_sampling_default(&s);
  vblip_gen_params p;
  vblip_gen_params_default(&p);
  if (!videos) return cli_fail("out of memory");
  for (int i = 1; i < argc; i++) {
    bool miss;
    const char *v;
    int r;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(k_help, stdout);
      free(videos);
      return 0;
    }
    if ((v = cli_opt(argc, argv, &i, "--model", &miss)) || miss) {
      if (miss) rc = cli_usage_error("caption", "--model needs a directory");
      model = v;
    } else if ((v = cli_opt(argc, argv, &i, "--prompt", &miss)) || miss) {
      if (miss) rc = cli_usage_error("caption", "--prompt needs text");
      prompt = v;
    } else if ((r = cli_frame_option("caption", argc, argv, &i, &s)) != 0) {
      if (r < 0) rc = 2;
    } else if ((r = cli_threads_option("caption", argc, argv, &i, &threads)) != 0) {
      if (r < 0) rc = 2;
    } else if ((r = cli_dtype_option("caption", argc, argv, &i, &dtype)) != 0) {
      if (r < 0) rc = 2;
    } else if ((r = cli_gen_option("caption", argc, argv, &i, &p)) != 0) {
      if (r < 0) rc = 2;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--raw") == 0) {
      raw = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      rc = cli_usage_error("caption", "unknown option %s", argv[i]);
    } else {
      videos[n_videos++] = argv[i];
    }
    if (rc) break;
  }
  if (!rc && !model) rc = cli_usage_error("caption", "--model is required");
  if (!rc && !n_videos) rc = cli_usage_error("caption", "no VIDEO given");
  if (rc) {
    free(videos);
    return rc;
  }
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.n_threads = threads;
  lo.dtype = dtype;
  vblip_model *m = vblip_model_load(model, &lo);
  if (!m) {
    free(videos);
    return cli_fail("%s", vblip_last_error());
  }
  bool stream = !json && isatty(STDOUT_FILENO);
  for (int k = 0; k < n_videos; k++) {
    vblip_video v;
    if (vblip_video_load(m, videos[k], &s, &v) != 0 || vblip_video_encode(m, &v) != 0) {
      rc = cli_fail("%s: %s", videos[k], vblip_last_error());
      vblip_video_free(&v);
      continue;
    }
    if (stream && n_videos > 1) printf("%s: ", videos[k]);
    vblip_answer a;
    if (vblip_generate(m, &v, prompt, &p, stream ? print_piece : NULL, NULL, &a) != 0) {
      if (stream) putchar('\n');
      rc = cli_fail("%s: %s", videos[k], vblip_last_error());
      vblip_video_free(&v);
      continue;
    }
    char *text = raw ? strdup(a.text) : vblip_postprocess(a.text);
    if (json) {
      print_json(videos[k], &v, prompt, text ? text : "", &a);
    } else if (stream) {
      /* the streamed text lacks the final touch; reprint the line whole */
      printf("\r\033[K%s%s%s\n", n_videos > 1 ? videos[k] : "", n_videos > 1 ? ": " : "", text ? text : "");
    } else {
      if (n_videos > 1) printf("%s: ", videos[k]);
      printf("%s\n", text ? text : "");
    }
    fflush(stdout);
    free(text);
    vblip_answer_free(&a);
    vblip_video_free(&v);
  }
  vblip_model_free(m);
  free(videos);
  return rc;
}
