/* vblip chat: a conversation about a video, in the terminal or through a pipe. */
#include <ctype.h>
#include <editline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_tty_text.h"

typedef struct {
  const char *model;
  vblip_load_options load;
  vblip_sampling sampling;
  vblip_gen_params gen;
  int quiet; /* --quiet: no progress on the terminal */
} chat_opts;

static const cli_option k_options[] = {CLI_GROUP(cli_model_option, chat_opts, model),
                                       CLI_GROUP(cli_layout_option, chat_opts, load.layout),
                                       CLI_GROUP(cli_frame_options, chat_opts, sampling),
                                       CLI_GROUP(cli_gen_options, chat_opts, gen),
                                       CLI_GROUP(cli_threads_option, chat_opts, load.n_threads),
                                       CLI_GROUP(cli_quiet_option, chat_opts, quiet),
                                       CLI_DTYPE_GROUP(chat_opts, load),
                                       CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_chat = {
    .name = "chat",
    .summary = "chat about a video in the terminal (or one message per line from a pipe)",
    .run = run,
    .usage = "--model MODEL [options] VIDEO...",
    .about =
        "Chat about VIDEO. The video is encoded once; every turn reuses it. As in the VideoBLIP\n"
        "demo, each message is sent with the conversation so far (earlier messages and\n"
        "answers joined with spaces), and answers are post-processed (stripped, a period added\n"
        "unless they end in punctuation).\n"
        "\n"
        "With an interleaved (EILEV) model the conversation holds several videos: the VIDEOs\n"
        "given come first, /video PATH adds one where the conversation stands, /add TEXT adds\n"
        "text without an answer (an in-context example), and every message is answered with\n"
        "all of it, videos and text in order.\n"
        "\n"
        "On a terminal: line editing and history (~/.vblip_history), answers streamed as they\n"
        "are generated (greedy or sampling; beam search shows the answer when done), Ctrl-C\n"
        "stops an answer, Ctrl-D quits. From a pipe: one message per line (blank lines\n"
        "skipped), one answer per line on stdout (line breaks inside an answer become spaces),\n"
        "nothing else on stdout.\n"
        "\n"
        "commands:\n"
        "  /reset              forget the conversation (interleaved: all but the VIDEOs)\n"
        "  /video PATH         switch to another video (and forget the conversation);\n"
        "                      interleaved: add the video to the conversation\n"
        "  /add TEXT           interleaved: add text to the conversation without an answer\n"
        "  /set NAME VALUE     change a generation setting, e.g. /set beams 0, /set sample on;\n"
        "                      NAME: a generation option below without '--'\n"
        "  /set                show the settings\n"
        "  /history            show the conversation\n"
        "  /help               this list;  /quit  leave\n"
        "  //text              send a message that starts with '/'\n",
    .options = k_options,
    .positional = "VIDEO",
    .min_positional = 1,
    .max_positional = -1,
};

static const char *k_commands =
    "/reset  /video PATH  /add TEXT  /set NAME VALUE  /set  /history  /help  /quit   (Ctrl-D "
    "quits)\n";

/* The interleaved conversation: texts (messages, answers, added text) and videos in order. */
enum { ITEM_USER, ITEM_ANSWER, ITEM_VIDEO };
typedef struct {
  int kind;
  char *text; /* ITEM_USER, ITEM_ANSWER */
  int video;  /* ITEM_VIDEO: index into the videos */
} conv_item;

typedef struct {
  vblip_model *m;
  int interleaved;
  /* BLIP-2: the video; interleaved: every video of the conversation, in order */
  vblip_video video;
  int have_video;
  char *video_path;
  vblip_video *videos;
  char **video_names;
  int n_videos, cap_videos, n_initial; /* n_initial: the command line's, kept on /reset */
  conv_item *items;
  size_t n_items, cap_items;
  vblip_sampling sampling;
  vblip_gen_params gen;
  char **users, **answers;
  size_t n, cap;
  int tty_in, tty_out;
} chat;

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
}

static void history_clear(chat *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->users[i]);
    free(c->answers[i]);
  }
  c->n = 0;
}

static int add_item(chat *c, int kind, const char *text, int video) {
  if (c->n_items == c->cap_items) {
    size_t cap = c->cap_items ? 2 * c->cap_items : 16;
    conv_item *p = realloc(c->items, cap * sizeof *p);
    if (!p) return cli_fail("out of memory"), -1;
    c->items = p;
    c->cap_items = cap;
  }
  conv_item *it = &c->items[c->n_items];
  it->kind = kind;
  it->video = video;
  it->text = text ? strdup(text) : NULL;
  if (text && !it->text) return cli_fail("out of memory"), -1;
  c->n_items++;
  return 0;
}

/* Interleaved: back to the command line's videos (they stay in front). */
static void conversation_reset(chat *c) {
  for (size_t i = 0; i < c->n_items; i++)
    free(c->items[i].text);
  c->n_items = 0;
  for (int k = c->n_initial; k < c->n_videos; k++) {
    vblip_video_free(&c->videos[k]);
    free(c->video_names[k]);
  }
  c->n_videos = c->n_initial;
  for (int k = 0; k < c->n_videos; k++)
    add_item(c, ITEM_VIDEO, NULL, k);
}

static int load_video(chat *c, const char *path) {
  vblip_video v;
  if (cli_load_video(c->m, path, &c->sampling, &v) != 0) return -1;
  if (c->interleaved) { /* joins the conversation where it stands */
    if (c->n_videos == c->cap_videos) {
      int cap = c->cap_videos ? 2 * c->cap_videos : 8;
      vblip_video *nv = realloc(c->videos, (size_t)cap * sizeof *nv);
      if (nv) c->videos = nv;
      char **nn = realloc(c->video_names, (size_t)cap * sizeof *nn);
      if (nn) c->video_names = nn;
      if (!nv || !nn) {
        vblip_video_free(&v);
        return cli_fail("out of memory"), -1;
      }
      c->cap_videos = cap;
    }
    c->videos[c->n_videos] = v;
    c->video_names[c->n_videos] = strdup(path);
    return add_item(c, ITEM_VIDEO, NULL, c->n_videos++);
  }
  if (c->have_video) vblip_video_free(&c->video);
  c->video = v;
  c->have_video = 1;
  free(c->video_path);
  c->video_path = strdup(path);
  history_clear(c);
  return 0;
}

typedef struct {
  int started;
  int leading;
  cli_tty_text tty; /* the rows the streamed answer takes, to rewrite it whole */
} stream_state;

static int print_piece(void *user, const char *piece) {
  stream_state *st = user;
  if (st->leading) {
    while (*piece && isspace((unsigned char)*piece)) piece++;
    if (!*piece) return g_interrupted;
    st->leading = 0;
  }
  cli_tty_text_put(&st->tty, stdout, piece);
  fflush(stdout);
  st->started = 1;
  return g_interrupted;
}

/* The input for a new message: the demo's prompt after the video (BLIP-2), or the whole
 * conversation and the message (interleaved). NULL with the error printed. */
static vblip_input *conversation_input(const chat *c, const char *message) {
  vblip_input *in = vblip_input_new();
  int rc = in ? 0 : -1;
  if (rc == 0 && !c->interleaved) {
    char *prompt = vblip_chat_prompt((const char *const *)c->users, (const char *const *)c->answers,
                                     c->n, message);
    rc = prompt ? vblip_input_add_video(in, &c->video) : -1;
    if (rc == 0) rc = vblip_input_add_text(in, prompt);
    free(prompt);
  } else {
    for (size_t i = 0; rc == 0 && i < c->n_items; i++)
      rc = c->items[i].kind == ITEM_VIDEO ? vblip_input_add_video(in, &c->videos[c->items[i].video])
                                          : vblip_input_add_text(in, c->items[i].text);
    if (rc == 0) rc = vblip_input_add_text(in, message);
  }
  if (rc != 0) {
    cli_fail("%s", *vblip_last_error() ? vblip_last_error() : "out of memory");
    vblip_input_free(in);
    return NULL;
  }
  return in;
}

/* 0 ok, -1 failed */
static int answer(chat *c, const char *message) {
  vblip_input *in = conversation_input(c, message);
  if (!in) return -1;
  stream_state st = {0, 1, {0}};
  vblip_answer a;
  struct sigaction sa = {0}, old;
  int interactive = c->tty_in && c->tty_out;
  if (c->tty_out) {
    cli_tty_text_begin(&st.tty, stdout);
    if (interactive) cli_tty_text_count(&st.tty, "vblip> "); /* printed before the answer */
  }
  if (interactive) {
    g_interrupted = 0;
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
  }
  int rc = vblip_generate_input(c->m, in, &c->gen, c->tty_out ? print_piece : NULL, &st, &a);
  if (interactive) sigaction(SIGINT, &old, NULL);
  vblip_input_free(in);
  if (rc != 0) {
    if (st.started) putchar('\n');
    cli_fail("%s", vblip_last_error());
    if (!c->tty_out) putchar('\n'); /* keep one line per message */
    fflush(stdout);
    return -1;
  }
  char *text = vblip_postprocess(a.text ? a.text : "");
  vblip_answer_free(&a);
  if (!text) return cli_fail("out of memory"), -1;
  if (c->tty_out) {
    cli_tty_text_rewind(&st.tty, stdout); /* every row the streamed answer took */
    printf("%s%s%s\n", interactive ? "vblip> " : "", interactive && g_interrupted ? "[stopped] " : "", text);
  } else {
    for (char *p = text; *p; p++) putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
    putchar('\n');
  }
  fflush(stdout);
  if (interactive && g_interrupted) { /* an interrupted answer does not join the history */
    free(text);
    return 0;
  }
  if (c->interleaved) {
    int r =
        add_item(c, ITEM_USER, message, 0) == 0 && add_item(c, ITEM_ANSWER, text, 0) == 0 ? 0 : -1;
    free(text);
    return r;
  }
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 8;
    char **u = realloc(c->users, cap * sizeof *u);
    if (u) c->users = u;
    char **an = realloc(c->answers, cap * sizeof *an);
    if (an) c->answers = an;
    if (!u || !an) {
      free(text);
      return cli_fail("out of memory"), -1;
    }
    c->cap = cap;
  }
  c->users[c->n] = strdup(message);
  c->answers[c->n] = text;
  c->n++;
  return 0;
}

/* Informational output: stdout on a terminal, else stderr (stdout carries answers only). */
static FILE *info(const chat *c) { return c->tty_in && c->tty_out ? stdout : stderr; }

/* Returns 1 to quit, 0 to go on, -1 on a failed command */
static int command(chat *c, char *line) {
  char *cmd = line + 1, *arg = cmd;
  while (*arg && !isspace((unsigned char)*arg)) arg++;
  if (*arg) *arg++ = 0;
  while (isspace((unsigned char)*arg)) arg++;
  size_t n = strlen(arg);
  while (n > 0 && isspace((unsigned char)arg[n - 1])) arg[--n] = 0;
  if (!strcmp(cmd, "quit") || !strcmp(cmd, "exit") || !strcmp(cmd, "q")) return 1;
  if (!strcmp(cmd, "help") || !strcmp(cmd, "?")) {
    char names[512];
    cli_option_names(cli_gen_options, names, sizeof names);
    fputs(k_commands, info(c));
    fprintf(info(c), "settings: %s\n", names);
    return 0;
  }
  if (!strcmp(cmd, "reset")) {
    history_clear(c);
    if (c->interleaved) conversation_reset(c);
    fprintf(info(c), "(conversation reset)\n");
    return 0;
  }
  if (!strcmp(cmd, "history")) {
    for (size_t i = 0; i < c->n; i++) fprintf(info(c), "you: %s\nvblip: %s\n", c->users[i], c->answers[i]);
    for (size_t i = 0; i < c->n_items; i++) {
      const conv_item *it = &c->items[i];
      if (it->kind == ITEM_VIDEO)
        fprintf(info(c), "[video %d: %s, %d frames]\n", it->video + 1, c->video_names[it->video],
                c->videos[it->video].n_frames);
      else
        fprintf(info(c), "%s: %s\n", it->kind == ITEM_USER ? "you" : "vblip", it->text);
    }
    if (!c->n && !c->n_items) fprintf(info(c), "(no conversation yet)\n");
    return 0;
  }
  if (!strcmp(cmd, "add")) {
    if (!c->interleaved) {
      fprintf(stderr, "vblip chat: /add needs an interleaved model (--layout interleaved)\n");
      return -1;
    }
    if (!*arg) {
      fprintf(stderr, "vblip chat: /add needs text\n");
      return -1;
    }
    return add_item(c, ITEM_USER, arg, 0);
  }
  if (!strcmp(cmd, "video")) {
    if (!*arg) {
      fprintf(stderr, "vblip chat: /video needs a path\n");
      return -1;
    }
    if (load_video(c, arg) != 0) return -1;
    if (c->interleaved)
      fprintf(info(c), "(video %d added: %s, %d frames)\n", c->n_videos, arg,
              c->videos[c->n_videos - 1].n_frames);
    else
      fprintf(info(c), "(now chatting about %s: %d frames)\n", arg, c->video.n_frames);
    return 0;
  }
  if (!strcmp(cmd, "set")) {
    if (!*arg) {
      cli_describe(cli_gen_options, &c->gen, info(c));
      return 0;
    }
    char *val = arg;
    while (*val && !isspace((unsigned char)*val)) val++;
    if (*val) *val++ = 0;
    while (isspace((unsigned char)*val)) val++;
    char err[256];
    /* accept the flag spelling and underscores too: --max-new-tokens, max_new_tokens */
    char name[64];
    snprintf(name, sizeof name, "%s", arg[0] == '-' && arg[1] == '-' ? arg + 2 : arg);
    for (char *p = name; *p; p++)
      if (*p == '_') *p = '-';
    if (cli_set(cli_gen_options, &c->gen, name, *val ? val : NULL, err, sizeof err)) {
      fprintf(stderr, "vblip chat: /set %s\n", err);
      return -1;
    }
    if (c->tty_in) cli_describe(cli_gen_options, &c->gen, info(c));
    return 0;
  }
  fprintf(stderr, "vblip chat: unknown command /%s (/help lists them)\n", cmd);
  return -1;
}

static void chat_free(chat *c) {
  history_clear(c);
  free(c->users);
  free(c->answers);
  free(c->video_path);
  vblip_video_free(&c->video);
  for (size_t i = 0; i < c->n_items; i++)
    free(c->items[i].text);
  free(c->items);
  for (int k = 0; k < c->n_videos; k++) {
    vblip_video_free(&c->videos[k]);
    free(c->video_names[k]);
  }
  free(c->videos);
  free(c->video_names);
  vblip_model_free(c->m);
}

static int run(int argc, char **argv) {
  chat_opts o = {0};
  vblip_load_options_default(&o.load);
  vblip_sampling_default(&o.sampling);
  vblip_gen_params_default(&o.gen);
  cli_model_defaults_unset(&o.gen, &o.sampling);
  int n_pos, rc = cli_parse(&cli_cmd_chat, &o, argc, argv, &n_pos);
  if (rc != CLI_RUN) return rc;
  cli_status_setup(o.quiet, &o.load);
  const char *video = argv[0];
  for (int k = 0; k < n_pos; k++)
    if (strcmp(argv[k], "-") == 0)
      return cli_usage_error("chat", "VIDEO cannot be '-': stdin carries the messages");
  if (n_pos > 1 && o.load.layout == VBLIP_LAYOUT_BLIP2)
    return cli_usage_error("chat",
                           "several VIDEOs need the interleaved layout, not --layout blip2");
  if (cli_check_sampling("chat", &o.sampling)) return 2;
  rc = 0;
  chat c;
  memset(&c, 0, sizeof c);
  c.sampling = o.sampling;
  c.gen = o.gen;
  c.tty_in = isatty(STDIN_FILENO);
  c.tty_out = isatty(STDOUT_FILENO);
  int interactive = c.tty_in && c.tty_out;
  o.load.progress = o.load.progress && interactive;
  c.m = cli_load_model(o.model, &o.load);
  if (!c.m) return 1;
  cli_model_defaults_fill(c.m, &c.gen, &c.sampling);
  c.interleaved = vblip_model_layout(c.m) == VBLIP_LAYOUT_INTERLEAVED;
  if (n_pos > 1 && !c.interleaved) {
    vblip_model_free(c.m);
    return cli_usage_error(
        "chat", "several VIDEOs need an interleaved (EILEV) model or --layout interleaved");
  }
  for (int k = 0; k < n_pos; k++)
    if (load_video(&c, argv[k]) != 0) {
      chat_free(&c);
      return 1;
    }
  c.n_initial = c.n_videos;
  char hist[4096] = "";
  if (interactive) {
    const char *home = getenv("HOME");
    if (home && *home) snprintf(hist, sizeof hist, "%s/.vblip_history", home);
    using_history();
    stifle_history(1000);
    if (*hist) read_history(hist);
    if (c.interleaved)
      printf("vblip chat — %d video%s, interleaved. Type a message; /video PATH adds a video; "
             "/help lists "
             "commands; Ctrl-D quits.\n",
             c.n_videos, c.n_videos == 1 ? "" : "s");
    else
      printf("vblip chat — %s (%d frames). Type a message; /help lists commands; Ctrl-D quits.\n",
             video, c.video.n_frames);
  }
  char *line = NULL;
  size_t cap = 0;
  for (;;) {
    char *msg;
    if (interactive) {
      free(line);
      line = readline("you> ");
      if (!line) {
        putchar('\n');
        break;
      }
      if (*line) add_history(line);
      msg = line;
    } else {
      ssize_t got = getline(&line, &cap, stdin);
      if (got < 0) break;
      while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
      msg = line;
    }
    char *t = msg;
    while (isspace((unsigned char)*t)) t++;
    if (!*t) continue;
    if (t[0] == '/' && t[1] != '/') {
      int r = command(&c, t);
      if (r > 0) break;
      if (r < 0) rc = 1;
      continue;
    }
    if (t[0] == '/') msg = t + 1; /* "//text" sends "/text" */
    if (interactive) fputs("vblip> ", stdout), fflush(stdout);
    if (answer(&c, msg) != 0) rc = 1;
  }
  if (interactive && *hist) write_history(hist);
  free(line);
  chat_free(&c);
  return rc;
}
