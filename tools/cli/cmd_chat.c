/* vblip chat: a conversation about a video, in the terminal or through a pipe. */
#include <ctype.h>
#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>
#include <wchar.h>

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
        "stops an answer, Ctrl-C at the prompt discards the line typed, Ctrl-D or /quit quits\n"
        "(and saves the history). From a pipe: one message per line (blank lines\n"
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
    "quits; Ctrl-C stops an answer or discards the line typed)\n";

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

/* Signals on a terminal. libedit's own handlers (rl_catch_signals) are off: they end the
 * program at Ctrl-C (they re-raise SIGINT with the default action). Instead:
 *
 * - SIGINT, for the whole session, sets g_interrupted, which stays set until someone acts on
 *   it: the answer being generated stops ([stopped]), or the line being typed at the prompt
 *   is discarded (Ctrl-C typed between the two is not lost either).
 * - While a line is edited (read_line), the signals libedit would handle there are caught
 *   too and acted on between two keys (prompt_signals): SIGTSTP puts the terminal back and
 *   stops, SIGCONT re-enters line editing and redraws the line, SIGWINCH re-reads the size,
 *   SIGTERM, SIGQUIT and SIGHUP put the terminal back and end the program by the signal.
 *
 * Every handler also writes a byte into g_wake, which wakes the wait for a key (prompt_getc)
 * whichever thread the signal was delivered to: OpenMP's workers have these signals
 * unblocked, the main thread blocks them while it edits a line except inside pselect(),
 * which unblocks them atomically. So a signal that comes while libedit redraws the line is
 * pending and ends the next wait, one that another thread took wakes it; none is lost. */
static volatile sig_atomic_t g_interrupted;
static const int k_line_signals[] = {SIGTSTP, SIGCONT, SIGWINCH, SIGTERM, SIGQUIT, SIGHUP};
enum { N_LINE_SIGNALS = sizeof k_line_signals / sizeof k_line_signals[0] };
static volatile sig_atomic_t g_caught[N_LINE_SIGNALS];
static struct sigaction g_saved[N_LINE_SIGNALS]; /* the actions read_line replaced */
static int g_replaced[N_LINE_SIGNALS];           /* not those that were ignored */
static int g_wake[2] = {-1, -1};
/* The terminal opened once more, non-blocking, to read keys from: a key pselect() saw can be
 * gone when it is read (Ctrl-C flushes the terminal's input), and a blocking read() would
 * then wait past the Ctrl-C for the next key. -1: stdin is made non-blocking for each read. */
static int g_key_fd = -1;
static sigset_t g_wait_mask; /* the main thread's mask while it waits for a key */

static void on_signal(int sig) {
  int e = errno;
  if (sig == SIGINT) g_interrupted = 1;
  for (int k = 0; k < N_LINE_SIGNALS; k++)
    if (k_line_signals[k] == sig) g_caught[k] = 1;
  if (g_wake[1] >= 0) {
    ssize_t n = write(g_wake[1], "", 1); /* non-blocking: a full pipe wakes the wait too */
    (void)n;
  }
  errno = e;
}

static void set_handler(int sig, struct sigaction *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART; /* pselect() still returns EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, old);
}

/* The main thread, editing a line: gives signal k_line_signals[k] its former action and
 * lets it act (stop, end the program); back here if it did neither. */
static void deliver(int k) {
  int sig = k_line_signals[k];
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigaction(sig, &g_saved[k], NULL);
  raise(sig); /* pending: the main thread blocks it */
  pthread_sigmask(SIG_UNBLOCK, &one, NULL);
  pthread_sigmask(SIG_BLOCK, &one, NULL);
  set_handler(sig, NULL);
}

/* Acts on the signals caught while a line is edited (called between two keys). */
static void prompt_signals(void) {
  for (int k = 0; k < N_LINE_SIGNALS; k++) {
    if (!g_caught[k]) continue;
    g_caught[k] = 0;
    int sig = k_line_signals[k];
    if (sig == SIGWINCH) {
      rl_resize_terminal();
      continue;
    }
    if (sig != SIGCONT) { /* stop or end with the terminal as it was before editing */
      rl_deprep_terminal();
      deliver(k);
    }
    /* continued (SIGCONT, or after SIGTSTP): the shell had the terminal meanwhile; the
     * line is drawn again from the start of the row (twice is harmless) */
    rl_deprep_terminal();
    rl_prep_terminal(0);
    fputc('\r', stdout);
    rl_forced_update_display();
  }
}

/* One byte of the terminal without waiting (-1 with EAGAIN when there is none) */
static ssize_t read_key(int fd, char *c) {
  if (g_key_fd >= 0) return read(g_key_fd, c, 1);
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  ssize_t n = read(fd, c, 1);
  int e = errno;
  fcntl(fd, F_SETFL, flags);
  errno = e;
  return n;
}

/* libedit's key reader while editing a line (rl_getc_function): one byte of the terminal,
 * or EOF when Ctrl-C was typed, which makes readline() return NULL with the line dropped.
 * Bytes are decoded in the current locale like libedit's own reader does (libedit takes
 * what this returns as one wide character); an invalid byte is dropped as it drops it. */
static int prompt_getc(FILE *in) {
  int fd = fileno(in), wait_fd = g_key_fd >= 0 ? g_key_fd : fd;
  char mb[MB_LEN_MAX];
  size_t len = 0;
  for (;;) {
    prompt_signals();
    if (g_interrupted) return EOF;
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(wait_fd, &rd);
    FD_SET(g_wake[0], &rd);
    int top = wait_fd > g_wake[0] ? wait_fd : g_wake[0];
    int n = pselect(top + 1, &rd, NULL, NULL, NULL, &g_wait_mask);
    if (n < 0) {
      if (errno == EINTR) continue;
      return EOF;
    }
    if (FD_ISSET(g_wake[0], &rd)) {
      char drain[64];
      while (read(g_wake[0], drain, sizeof drain) > 0) {
      }
      continue; /* the flags say what came */
    }
    ssize_t got = read_key(fd, mb + len);
    if (got == 0) return EOF;
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return EOF;
    }
    len++;
    for (;;) {
      mbstate_t st;
      memset(&st, 0, sizeof st);
      wchar_t wc;
      size_t r = mbrtowc(&wc, mb, len, &st);
      if (r == (size_t)-2 && len < sizeof mb) break; /* incomplete: one more byte */
      if (r == (size_t)-1 && len > 1) {              /* the last byte may start a new one */
        mb[0] = mb[len - 1];
        len = 1;
        continue;
      }
      if (r == (size_t)-1 || r == (size_t)-2) {
        len = 0;
        break;
      }
      return (int)wc;
    }
  }
}

/* Called by readline() before it prints the prompt: the terminal in line editing's mode
 * first, so that keys typed as soon as the prompt shows are not echoed by the terminal too,
 * nor a Ctrl-D taken as the end of a cooked line (libedit switches when it reads a key). */
static int prompt_pre_input(void) {
  rl_prep_terminal(0);
  return 0;
}

/* The SIGINT handler for an interactive session, and the key reader; 0 or -1 */
static int interrupt_setup(struct sigaction *old) {
  if (pipe(g_wake) != 0) return -1;
  for (int k = 0; k < 2; k++) {
    fcntl(g_wake[k], F_SETFD, FD_CLOEXEC);
    fcntl(g_wake[k], F_SETFL, fcntl(g_wake[k], F_GETFL) | O_NONBLOCK);
  }
  const char *tty = ttyname(STDIN_FILENO);
  int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  g_key_fd = tty ? open(tty, flags) : -1;
  if (g_key_fd < 0) g_key_fd = open("/proc/self/fd/0", flags);
  set_handler(SIGINT, old);
  rl_getc_function = prompt_getc; /* both read when libedit starts (using_history) */
  rl_catch_signals = 0;
  rl_pre_input_hook = prompt_pre_input;
  return 0;
}

static void interrupt_end(const struct sigaction *old) {
  sigaction(SIGINT, old, NULL);
  close(g_wake[0]);
  close(g_wake[1]);
  if (g_key_fd >= 0) close(g_key_fd);
  g_key_fd = -1;
  g_wake[0] = g_wake[1] = -1;
}

/* readline() with the signals above: NULL with *interrupted = 1 when Ctrl-C discarded the
 * line being typed (it stays on the screen), NULL with *interrupted = 0 at Ctrl-D. */
static char *read_line(const char *prompt, int *interrupted) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  for (int k = 0; k < N_LINE_SIGNALS; k++)
    sigaddset(&block, k_line_signals[k]);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  for (int k = 0; k < N_LINE_SIGNALS; k++) {
    sigaction(k_line_signals[k], NULL, &g_saved[k]);
    g_replaced[k] = g_saved[k].sa_handler != SIG_IGN;
    if (g_replaced[k]) set_handler(k_line_signals[k], NULL);
  }
  g_wait_mask = old;
  for (int k = 0; k < N_LINE_SIGNALS; k++)
    sigdelset(&g_wait_mask, k_line_signals[k]);
  sigdelset(&g_wait_mask, SIGINT);
  char *line = readline(prompt);
  for (int k = 0; k < N_LINE_SIGNALS; k++) {
    if (!g_replaced[k]) continue;
    sigaction(k_line_signals[k], &g_saved[k], NULL);
    /* caught after the last key: it acts now (the terminal is back), by its own action */
    if (g_caught[k] && k_line_signals[k] != SIGCONT && k_line_signals[k] != SIGWINCH)
      raise(k_line_signals[k]);
    g_caught[k] = 0;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  *interrupted = g_interrupted;
  if (*interrupted) { /* even with a whole line: Ctrl-C came before it was sent */
    g_interrupted = 0;
    free(line);
    line = NULL;
  }
  return line;
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
    while (*piece && isspace((unsigned char)*piece))
      piece++;
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
  int interactive = c->tty_in && c->tty_out;
  if (c->tty_out) {
    cli_tty_text_begin(&st.tty, stdout);
    if (interactive) cli_tty_text_count(&st.tty, "vblip> "); /* printed before the answer */
  }
  /* interactive: the session's SIGINT handler sets g_interrupted (a Ctrl-C typed since the
   * line was sent counts too); print_piece stops the answer */
  int rc = vblip_generate_input(c->m, in, &c->gen, c->tty_out ? print_piece : NULL, &st, &a);
  int stopped = interactive && g_interrupted;
  if (interactive) g_interrupted = 0;
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
    printf("%s%s%s\n", interactive ? "vblip> " : "", stopped ? "[stopped] " : "", text);
  } else {
    for (char *p = text; *p; p++)
      putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
    putchar('\n');
  }
  fflush(stdout);
  if (stopped) { /* an interrupted answer does not join the history */
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
static FILE *info(const chat *c) {
  return c->tty_in && c->tty_out ? stdout : stderr;
}

/* Returns 1 to quit, 0 to go on, -1 on a failed command */
static int command(chat *c, char *line) {
  char *cmd = line + 1, *arg = cmd;
  while (*arg && !isspace((unsigned char)*arg))
    arg++;
  if (*arg) *arg++ = 0;
  while (isspace((unsigned char)*arg))
    arg++;
  size_t n = strlen(arg);
  while (n > 0 && isspace((unsigned char)arg[n - 1]))
    arg[--n] = 0;
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
    for (size_t i = 0; i < c->n; i++)
      fprintf(info(c), "you: %s\nvblip: %s\n", c->users[i], c->answers[i]);
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
    while (*val && !isspace((unsigned char)*val))
      val++;
    if (*val) *val++ = 0;
    while (isspace((unsigned char)*val))
      val++;
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
  struct sigaction old_sigint;
  if (interactive && interrupt_setup(&old_sigint) != 0) {
    chat_free(&c);
    return cli_fail("cannot create a pipe: %s", strerror(errno)), 1;
  }
  if (interactive) {
    const char *home = getenv("HOME");
    if (home && *home) snprintf(hist, sizeof hist, "%s/.vblip_history", home);
    /* libedit decodes the keys and encodes the line in LC_CTYPE's character set, ASCII in
     * the C locale (a typed "é" was dropped); vblip's text is UTF-8 */
    const char *loc = setlocale(LC_CTYPE, "");
    if (!loc || strcmp(nl_langinfo(CODESET), "UTF-8") != 0) setlocale(LC_CTYPE, "C.UTF-8");
    using_history(); /* after interrupt_setup: libedit takes rl_getc_function here */
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
      int interrupted;
      free(line);
      line = read_line("you> ", &interrupted);
      if (!line && interrupted) { /* Ctrl-C: drop the line, a fresh prompt */
        fputs("^C\n", stdout);
        fflush(stdout);
        continue;
      }
      if (!line) {
        putchar('\n');
        break;
      }
      if (*line) add_history(line);
      msg = line;
    } else {
      ssize_t got = getline(&line, &cap, stdin);
      if (got < 0) break;
      while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
        line[--got] = 0;
      msg = line;
    }
    char *t = msg;
    while (isspace((unsigned char)*t))
      t++;
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
  if (interactive) interrupt_end(&old_sigint);
  free(line);
  chat_free(&c);
  return rc;
}
