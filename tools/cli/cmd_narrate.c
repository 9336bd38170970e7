/* vblip narrate: timestamped captions over sliding windows of a long or live video, written
 * as WebVTT, SRT or JSON Lines while they come. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dataset/jsonl_out.h"
#include "runtime/escape.h"
#include "text/cues.h"

#define DEFAULT_PROMPT "Question: What is the camera wearer doing? Answer:"

typedef struct {
  const char *model, *prompt, *format, *live;
  vblip_load_options load;
  vblip_narrate_options narrate;
  vblip_gen_params gen;
  int no_merge, raw;
  int quiet; /* --quiet: no progress on the terminal */
} narrate_opts;

static const char *const k_formats[] = {"vtt", "srt", "jsonl", NULL};
static const char *const k_live[] = {"auto", "on", "off", NULL};

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, narrate_opts, model),
    CLI_OPT_STRING("--prompt", 'p', "TEXT", narrate_opts, prompt,
                   "asked about each window (default \"" DEFAULT_PROMPT "\";\n"
                   "\"\" for a plain caption)"),
    CLI_OPT_DOUBLE("--window", 0, "S", narrate_opts, narrate.window_sec, 1e-3, 86400,
                   "window length in seconds (default 8, as the Ego4D clips\n"
                   "VideoBLIP was trained on)",
                   .need = "needs a number of seconds > 0"),
    CLI_OPT_DOUBLE("--stride", 0, "S", narrate_opts, narrate.stride_sec, 1e-3, 86400,
                   "seconds from one window's start to the next (default: half the\n"
                   "window); a whole multiple of window / frames",
                   .need = "needs a number of seconds > 0"),
    CLI_OPT_INT("--frames", 0, "N", narrate_opts, narrate.frames, 1, 1024,
                "frames per window, one every window / N seconds on a grid that\n"
                "all windows share (default 8)"),
    CLI_OPT_CHOICE("--format", 'f', "F", narrate_opts, format, k_formats,
                   "vtt (WebVTT, default), srt or jsonl (one JSON object per cue)",
                   .need = "takes vtt, srt or jsonl"),
    CLI_OPT_FLAG("--no-merge", 0, narrate_opts, no_merge,
                 "one cue per window (default: consecutive windows with the same\n"
                 "caption, ignoring case and punctuation, make one cue)"),
    CLI_OPT_CHOICE("--live", 0, "MODE", narrate_opts, live, k_live,
                   "skip windows when the model falls behind the stream: auto (default:\n"
                   "for '-', URLs and devices), on or off",
                   .need = "takes auto, on or off"),
    CLI_OPT_DOUBLE("--max-lag", 0, "S", narrate_opts, narrate.max_lag_sec, 1e-3, 86400,
                   "live: skip to the newest complete window once this far behind\n"
                   "(default: one stride)",
                   .need = "needs a number of seconds > 0"),
    CLI_GROUP(cli_layout_option, narrate_opts, load.layout),
    CLI_GROUP(cli_gen_options, narrate_opts, gen),
    CLI_GROUP(cli_threads_option, narrate_opts, load.n_threads),
    CLI_GROUP(cli_quiet_option, narrate_opts, quiet),
    CLI_DTYPE_GROUP(narrate_opts, load),
    CLI_OPT_FLAG("--raw", 0, narrate_opts, raw, "captions without post-processing"),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_narrate = {
    .name = "narrate",
    .summary = "timestamped captions over a long or live video (WebVTT, SRT, JSONL)",
    .run = run,
    .usage = "--model MODEL [options] SOURCE",
    .about =
        "Answers --prompt about every window of SOURCE: a video file, '-' (a stream on stdin,\n"
        "e.g. ffmpeg ... -f mpegts pipe:), an rtsp://, http(s):// (HLS too), udp:// URL or a\n"
        "/dev/video* capture device. Windows of --window seconds start every --stride seconds\n"
        "and take their --frames frames from one grid of frame times, (k + 0.5) * window /\n"
        "frames, so a frame two windows share is decoded and encoded once; only the Q-Former\n"
        "and the language model run per window. A window is captioned as soon as its frames\n"
        "are in, and its cue is written (and flushed) when the next window says something\n"
        "else. A live source that runs ahead of the model makes windows be skipped (reported\n"
        "on stderr and in the JSONL) instead of letting the lag grow.\n"
        "\n"
        "A cue starts where its first window starts and ends where its last window ends, or\n"
        "where the next cue starts if that is earlier. `vblip caption --frame-times` captions\n"
        "one window's frames alone (the same frames and the same caption). On exit a summary\n"
        "line on stderr gives the windows, the frames encoded and the real-time factor.\n",
    .options = k_options,
    .positional = "SOURCE",
    .min_positional = 1,
    .max_positional = 1,
};

typedef struct {
  const narrate_opts *o;
  vblip_model *m;
  const char *source;
  vb_jsonl_out *jsonl; /* --format jsonl: the writer caption --files-from uses */
  vb_cue_merger merger;
  int format; /* 0 vtt, 1 srt, 2 jsonl */
  int cues;
  int progress; /* a progress line on stderr (a terminal, a file source) */
  int failed;
} narrate_run;

static void print_cue(narrate_run *r, const vb_cue *c) {
  char *s = NULL;
  if (r->format == 0) {
    s = vb_cue_vtt(c);
  } else if (r->format == 1) {
    s = vb_cue_srt(c, r->cues + 1);
  } else {
    /* the shared result fields (video, start, end, prompt, text), then the cue's own */
    cJSON *j = cJSON_CreateObject();
    vb_jsonl_add_input(j, r->source, c->start, c->end, r->o->prompt);
    cJSON_AddStringToObject(j, "text", c->text);
    cJSON *w = cJSON_AddArrayToObject(j, "windows");
    cJSON_AddItemToArray(w, cJSON_CreateNumber(c->first_window));
    cJSON_AddItemToArray(w, cJSON_CreateNumber(c->last_window));
    cJSON_AddNumberToObject(j, "skipped_before", c->skipped_before);
    cJSON_AddNumberToObject(j, "lag", c->lag);
    if (r->progress) fputs("\r\033[K", stderr);
    if (vb_jsonl_write(r->jsonl, j) != 0) r->failed = 1;
    cJSON_Delete(j);
    r->cues++;
    return;
  }
  if (r->progress) fputs("\r\033[K", stderr);
  if (!s || fputs(s, stdout) == EOF || fflush(stdout) != 0) r->failed = 1;
  free(s);
  r->cues++;
}

static int on_window(void *user, const vblip_narration_window *w) {
  narrate_run *r = user;
  if (w->skipped_before > 0)
    fprintf(stderr, "vblip narrate: %.1f s behind the stream: skipped %d window%s before %.3f s\n",
            w->lag_sec, w->skipped_before, w->skipped_before == 1 ? "" : "s", w->start_sec);
  char *text = r->o->raw ? strdup(w->answer->text) : vblip_postprocess(w->answer->text);
  if (!text) {
    r->failed = 1;
    return 1;
  }
  vb_cue done;
  int got = vb_cues_add(&r->merger, w->index, w->start_sec, w->end_sec, text, w->skipped_before,
                        w->lag_sec, &done);
  free(text);
  if (got < 0) {
    r->failed = 1;
    return 1;
  }
  if (got) {
    print_cue(r, &done);
    vb_cue_free(&done);
  }
  if (r->progress) {
    fprintf(stderr, "\r\033[Kwindow %d: %.1f-%.1f s", w->index, w->start_sec, w->end_sec);
    fflush(stderr);
  }
  return r->failed;
}

static int run(int argc, char **argv) {
  narrate_opts o = {.prompt = DEFAULT_PROMPT, .format = "vtt", .live = "auto"};
  vblip_load_options_default(&o.load);
  vblip_narrate_options_default(&o.narrate);
  vblip_gen_params_default(&o.gen);
  cli_model_defaults_unset(&o.gen, NULL);
  int n_pos, rc = cli_parse(&cli_cmd_narrate, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  size_t bad;
  if (!vb_utf8_valid(o.prompt, strlen(o.prompt), &bad))
    return cli_usage_error("narrate", "--prompt is not valid UTF-8 (byte %zu)", bad);
  if (vblip_narrate_options_check(&o.narrate) != 0)
    return cli_usage_error("narrate", "%s", vblip_last_error());
  o.narrate.live = !strcmp(o.live, "on") ? 1 : !strcmp(o.live, "off") ? 0 : -1;
  o.narrate.allow_network = 1; /* the user named the source */
  const char *source = argv[0];
  cli_status_setup(o.quiet, &o.load);
  vblip_model *m = cli_load_model(o.model, &o.load);
  if (!m) return 1;
  cli_model_defaults_fill(m, &o.gen, NULL);
  narrate_run r = {.o = &o, .m = m, .source = source};
  r.merger.merge = !o.no_merge;
  r.format = !strcmp(o.format, "vtt") ? 0 : !strcmp(o.format, "srt") ? 1 : 2;
  int live = o.narrate.live < 0 ? strcmp(source, "-") == 0 || strstr(source, "://") ||
                                      strncmp(source, "/dev/", 5) == 0
                                : o.narrate.live;
  r.progress = !live && isatty(STDERR_FILENO) && !isatty(STDOUT_FILENO);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (r.format == 0) {
    fputs("WEBVTT\n\n", stdout);
    fflush(stdout);
  } else if (r.format == 2 && !(r.jsonl = vb_jsonl_open(NULL, false, NULL, NULL))) {
    vblip_model_free(m);
    return cli_fail("%s", vblip_last_error());
  }
  vblip_narration_stats st;
  rc = vblip_narrate(m, source, o.prompt, &o.narrate, &o.gen, on_window, &r, &st);
  vb_cue last;
  if (vb_cues_finish(&r.merger, &last)) {
    if (rc == 0) print_cue(&r, &last);
    vb_cue_free(&last);
  }
  if (r.progress) fputs("\r\033[K", stderr);
  int status = 0;
  if (rc != 0) {
    status = cli_fail("%s", vblip_last_error());
  } else if (r.failed) {
    status = cli_fail("cannot write the cues to stdout");
  } else {
    /* independent windows would encode every window's frames: windows * frames */
    double rtf = st.media_sec > 0 ? st.wall_ms / 1000.0 / st.media_sec : 0;
    fprintf(stderr,
            "vblip narrate: %d window%s (%d skipped) over %.1f s of video, %d cue%s; %d frames "
            "encoded (independent windows: %d); %.1f s: real-time factor %.2f",
            st.windows, st.windows == 1 ? "" : "s", st.skipped, st.media_sec, r.cues,
            r.cues == 1 ? "" : "s", st.vision_frames, st.windows * o.narrate.frames,
            st.wall_ms / 1000.0, rtf);
    if (live) fprintf(stderr, ", largest lag %.1f s", st.max_lag_sec);
    fputc('\n', stderr);
  }
  if (r.jsonl) vb_jsonl_close(r.jsonl);
  vblip_model_free(m);
  return status;
}
