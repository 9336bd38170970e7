/* vblip score: rank candidate continuations of a prompt about videos (EILEV's classify). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_input.h"

#define MAX_CANDIDATES 4096

typedef struct {
  const char **v;
  int n;
} cand_list;

typedef struct {
  const char *model, *prompt;
  vblip_load_options load;
  vblip_sampling sampling;
  cand_list cands;
  int json, interleaved;
  int quiet; /* --quiet: no progress on the terminal */
} score_opts;

/* --candidate may be given many times: each adds one. */
static int add_candidate(const char *value, void *field) {
  cand_list *c = field;
  if (!value[strspn(value, " \t\r\n")] || c->n >= MAX_CANDIDATES) return -1;
  const char **v = realloc(c->v, (size_t)(c->n + 1) * sizeof *v);
  if (!v) return -1;
  v[c->n++] = value;
  c->v = v;
  return 0;
}

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, score_opts, model),
    CLI_OPT_STRING("--prompt", 'p', "TEXT", score_opts, prompt,
                   "the context the candidates continue (default: empty)"),
    CLI_OPT_CUSTOM("--candidate", 'c', "TEXT", score_opts, cands, cand_list, add_candidate,
                   "a continuation to score; give it once per candidate",
                   .need = "needs non-blank text (at most 4096 candidates)"),
    CLI_OPT_FLAG("--interleaved", 0, score_opts, interleaved,
                 "one context with all VIDEOs: --prompt holds a <video> placeholder\n"
                 "for each, filled in order (implies --layout interleaved)"),
    CLI_GROUP(cli_layout_option, score_opts, load.layout),
    CLI_GROUP(cli_frame_options, score_opts, sampling),
    CLI_GROUP(cli_threads_option, score_opts, load.n_threads),
    CLI_GROUP(cli_quiet_option, score_opts, quiet),
    CLI_DTYPE_GROUP(score_opts, load),
    CLI_OPT_FLAG("--json", 0, score_opts, json,
                 "one JSON object per context per line: {video | videos, prompt,\n"
                 "scores:[{candidate, mean_log_likelihood, token_ids}], timings_ms}"),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_score = {
    .name = "score",
    .summary = "rank candidate answers by their likelihood after a prompt about videos",
    .run = run,
    .usage = "--model MODEL --prompt TEXT --candidate TEXT... [options] VIDEO...",
    .about =
        "Prints each --candidate's mean log-likelihood (the mean over its tokens of the log-\n"
        "probability the model gives it after the context), best first: 'SCORE<TAB>CANDIDATE'\n"
        "per line, 'VIDEO<TAB>SCORE<TAB>CANDIDATE' when several VIDEOs are scored one by one.\n"
        "The context runs once; its cache is reused for every candidate. As in EILEV's\n"
        "classify, OPT models score \" \" + candidate after the prompt; T5 models score the\n"
        "candidate as the decoder's output for the encoded prompt.\n"
        "\n"
        "Without --interleaved each VIDEO is scored on its own (the video, then --prompt);\n"
        "with it, once, each <video> in --prompt standing for the next VIDEO.\n",
    .options = k_options,
    .positional = "VIDEO",
    .min_positional = 1,
    .max_positional = -1,
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* label: the video's name when several are scored one by one (text output). */
static void print_scores(const score_opts *o, const cli_videos *vs, const char *label,
                         const vblip_score *sc, const int *order, double ms) {
  int nc = o->cands.n;
  if (!o->json) {
    for (int i = 0; i < nc; i++)
      printf("%s%s%.6f\t%s\n", label ? label : "", label ? "\t" : "",
             sc[order[i]].mean_log_likelihood, o->cands.v[order[i]]);
    fflush(stdout);
    return;
  }
  cJSON *j = cJSON_CreateObject();
  const vblip_video *vp[64];
  int nv = 0;
  if (!o->interleaved) {
    cJSON_AddStringToObject(j, "video", vs->names[0]);
    cJSON_AddItemToObject(j, "frames", cli_frames_json(&vs->v[0]));
  } else {
    cJSON *list = cJSON_AddArrayToObject(j, "videos");
    for (int k = 0; k < vs->n; k++) {
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "video", vs->names[k]);
      cJSON_AddItemToObject(e, "frames", cli_frames_json(&vs->v[k]));
      cJSON_AddItemToArray(list, e);
    }
  }
  for (int k = 0; k < vs->n && nv < 64; k++)
    vp[nv++] = &vs->v[k];
  cJSON_AddStringToObject(j, "prompt", o->prompt);
  cJSON *a = cJSON_AddArrayToObject(j, "scores");
  for (int i = 0; i < nc; i++) {
    const vblip_score *s = &sc[order[i]];
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "candidate", o->cands.v[order[i]]);
    cJSON_AddNumberToObject(e, "mean_log_likelihood", s->mean_log_likelihood);
    cJSON *ids = cJSON_AddArrayToObject(e, "token_ids");
    for (int t = 0; t < s->n_tokens; t++)
      cJSON_AddItemToArray(ids, cJSON_CreateNumber(s->token_ids[t]));
    cJSON_AddItemToArray(a, e);
  }
  cJSON_AddItemToObject(j, "timings_ms", cli_timings_json(vp, nv, "score", ms));
  char *txt = cJSON_PrintUnformatted(j);
  if (txt) puts(txt);
  free(txt);
  cJSON_Delete(j);
  fflush(stdout);
}

/* Scores the candidates after one context; 0, or 1 with the error printed. */
static int score_one(vblip_model *m, const score_opts *o, char **names, int first, int count,
                     const char *label) {
  cli_videos vs;
  if (cli_videos_load(m, &o->sampling, names + first, count, &vs) != 0) {
    cli_videos_free(&vs);
    return 1;
  }
  int nc = o->cands.n, rc = 1;
  vblip_input *in = cli_make_input(&vs, o->interleaved, 0, o->prompt);
  vblip_score *sc = calloc((size_t)nc, sizeof *sc);
  int *order = calloc((size_t)nc, sizeof *order);
  double t0 = now_ms();
  if (!in || !sc || !order) {
    if (in) cli_fail("out of memory");
  } else if (vblip_score_candidates(m, in, o->cands.v, (size_t)nc, sc) != 0) {
    cli_fail("%s%s%s", label ? label : "", label ? ": " : "", vblip_last_error());
  } else {
    double ms = now_ms() - t0;
    /* best first; ties keep the order given */
    for (int i = 0; i < nc; i++) {
      int k = i;
      while (k > 0 && sc[order[k - 1]].mean_log_likelihood < sc[i].mean_log_likelihood) {
        order[k] = order[k - 1];
        k--;
      }
      order[k] = i;
    }
    print_scores(o, &vs, label, sc, order, ms);
    for (int i = 0; i < nc; i++)
      vblip_score_free(&sc[i]);
    rc = 0;
  }
  free(sc);
  free(order);
  vblip_input_free(in);
  cli_videos_free(&vs);
  return rc;
}

static int run(int argc, char **argv) {
  score_opts o = {.prompt = ""};
  vblip_load_options_default(&o.load);
  vblip_sampling_default(&o.sampling);
  cli_model_defaults_unset(NULL, &o.sampling);
  int n_videos, rc = cli_parse(&cli_cmd_score, &o, argc, argv, &n_videos);
  if (rc == CLI_RUN && o.cands.n == 0)
    rc = cli_usage_error("score", "give at least one --candidate");
  if (rc == CLI_RUN && o.interleaved &&
      cli_interleaved_check("score", &o.load.layout, o.prompt, n_videos) != 0)
    rc = 2;
  if (rc != CLI_RUN) {
    free(o.cands.v);
    return rc;
  }
  cli_status_setup(o.quiet, &o.load);
  vblip_model *m = cli_load_model(o.model, &o.load);
  if (!m) {
    free(o.cands.v);
    return 1;
  }
  cli_model_defaults_fill(m, NULL, &o.sampling);
  int status = 0;
  if (o.interleaved)
    status = score_one(m, &o, argv, 0, n_videos, NULL);
  else
    for (int k = 0; k < n_videos; k++)
      if (score_one(m, &o, argv, k, 1, n_videos > 1 ? argv[k] : NULL) != 0) status = 1;
  vblip_model_free(m);
  free(o.cands.v);
  return status;
}
