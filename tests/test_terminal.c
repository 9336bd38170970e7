/* What the CLI shows on a terminal (issue 15): commands run on a pseudo-terminal of a
 * given width, and what they print is replayed on a small model of a terminal (wrapping,
 * \r, \n, erase line/screen, cursor up), so the assertions are about the screen a user
 * sees: a streamed answer that wraps is replaced by the final one, not printed twice;
 * loading and reading show progress on a terminal, never with --quiet or in a pipe;
 * convert's progress ends at its total; Ctrl-C typed while chat streams an answer stops
 * that answer only (marked [stopped], kept out of the conversation), and the next turn
 * is answered whole. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MODEL "tests/fixtures/models/videoblip-opt-tiny"
#define VIDEO "tests/fixtures/media/video1_h264_320x240_30fps_12s.mp4"

/* ---- an interactive session on a pseudo-terminal: wait for text, type ---- */
typedef struct {
  int m;
  pid_t pid;
  char *out;             /* everything read so far */
  size_t len, seen;      /* seen: where the next wait starts looking */
  struct termios at_end; /* the terminal's mode when the command had ended */
  int have_end_mode;
  int status; /* waitpid's */
} pty_session;

/* Starts cmd (sh -c) with stdin, stdout and stderr on a pseudo-terminal `cols` wide. */
static int session_start(pty_session *ps, const char *cmd, int cols) {
  memset(ps, 0, sizeof *ps);
  ps->out = calloc(1, 1);
  ps->m = posix_openpt(O_RDWR | O_NOCTTY);
  if (ps->m < 0 || grantpt(ps->m) != 0 || unlockpt(ps->m) != 0) return -1;
  struct winsize ws = {.ws_row = 40, .ws_col = (unsigned short)cols};
  ioctl(ps->m, TIOCSWINSZ, &ws);
  const char *slave = ptsname(ps->m);
  ps->pid = fork();
  if (ps->pid == 0) {
    setsid();
    int s = open(slave, O_RDWR);
    if (s < 0) _exit(126);
    ioctl(s, TIOCSCTTY, 0); /* its controlling terminal: ^C becomes SIGINT */
    struct termios t;
    if (tcgetattr(s, &t) == 0) { /* the bytes as written: no \n -> \r\n */
      t.c_oflag &= ~(tcflag_t)OPOST;
      tcsetattr(s, TCSANOW, &t);
    }
    dup2(s, 0), dup2(s, 1), dup2(s, 2);
    if (s > 2) close(s);
    close(ps->m);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  return ps->pid > 0 ? 0 : -1;
}

/* Whether the child still runs (looked at without reaping it). */
static int session_running(const pty_session *ps) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  return waitid(P_PID, (id_t)ps->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

/* One read of what the terminal has (waiting at most `secs`); 0 when nothing came. */
static int session_read(pty_session *ps, int secs) {
  struct pollfd p = {.fd = ps->m, .events = POLLIN};
  if (poll(&p, 1, secs * 1000) <= 0) return 0;
  char buf[4096];
  ssize_t n = read(ps->m, buf, sizeof buf);
  if (n <= 0) return 0;
  ps->out = realloc(ps->out, ps->len + (size_t)n + 1);
  memcpy(ps->out + ps->len, buf, (size_t)n);
  ps->len += (size_t)n;
  ps->out[ps->len] = 0;
  return 1;
}

/* Reads until `text` appears after what earlier waits consumed (then consumes up to its
 * end), the terminal closes or `secs` pass; 1 if it appeared. */
static int session_wait(pty_session *ps, const char *text, int secs) {
  time_t deadline = time(NULL) + secs;
  for (;;) {
    char *hit = strstr(ps->out + ps->seen, text);
    if (hit) {
      ps->seen = (size_t)(hit - ps->out) + strlen(text);
      return 1;
    }
    if (time(NULL) > deadline) return 0;
    if (!session_read(ps, 1) && !session_running(ps)) return 0;
  }
}

static void session_type(pty_session *ps, const char *keys) {
  ssize_t n = write(ps->m, keys, strlen(keys));
  (void)n;
}

/* Reads to the end (at most `secs`) and returns the exit status (-1: killed or a signal). */
static int session_finish(pty_session *ps, int secs) {
  time_t deadline = time(NULL) + secs;
  while (time(NULL) <= deadline && (session_read(ps, 1) || session_running(ps))) {
  }
  int st = 0;
  if (session_running(ps)) {
    kill(ps->pid, SIGKILL);
    waitpid(ps->pid, &st, 0);
    close(ps->m);
    return -1;
  }
  waitpid(ps->pid, &st, 0);
  ps->status = st;
  ps->have_end_mode = tcgetattr(ps->m, &ps->at_end) == 0;
  close(ps->m);
  return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Whether the terminal reads lines with echo (as a shell expects to get it back) */
static int cooked_with_echo(const struct termios *t) {
  return (t->c_lflag & ECHO) && (t->c_lflag & ICANON);
}

/* Runs cmd on a pseudo-terminal to its end; returns its exit status and everything it
 * wrote in *out. At most 60 s. */
static int run_pty(const char *cmd, int cols, char **out) {
  pty_session ps;
  int rc = session_start(&ps, cmd, cols) == 0 ? session_finish(&ps, 60) : -1;
  *out = ps.out;
  return rc;
}

/* ---- a terminal: rows of `cols` characters (ASCII is enough here) ---- */
#define ROWS 200
typedef struct {
  char cell[ROWS][256];
  int cols, row, col, pending_wrap;
} screen;

static void screen_play(screen *s, int cols, const char *bytes) {
  memset(s, 0, sizeof *s);
  s->cols = cols;
  for (const char *p = bytes; *p; p++) {
    if (*p == '\033' && p[1] == '[') {
      const char *q = p + 2;
      int n = 0, have = 0;
      while (*q >= '0' && *q <= '9')
        n = n * 10 + (*q++ - '0'), have = 1;
      if (*q == 'K') {
        memset(s->cell[s->row] + s->col, 0, sizeof s->cell[0] - (size_t)s->col);
      } else if (*q == 'J') {
        memset(s->cell[s->row] + s->col, 0, sizeof s->cell[0] - (size_t)s->col);
        for (int r = s->row + 1; r < ROWS; r++)
          memset(s->cell[r], 0, sizeof s->cell[0]);
      } else if (*q == 'A') {
        s->row -= have ? n : 1;
        if (s->row < 0) s->row = 0;
      }
      s->pending_wrap = 0;
      p = q;
      continue;
    }
    if (*p == '\r') {
      s->col = 0, s->pending_wrap = 0;
    } else if (*p == '\n') {
      s->row = s->row + 1 < ROWS ? s->row + 1 : s->row, s->pending_wrap = 0;
    } else if ((unsigned char)*p >= 0x20) {
      if (s->pending_wrap) { /* a full row wraps before the next character */
        s->row = s->row + 1 < ROWS ? s->row + 1 : s->row;
        s->col = 0;
        s->pending_wrap = 0;
      }
      s->cell[s->row][s->col] = *p;
      if (s->col + 1 == s->cols)
        s->pending_wrap = 1;
      else
        s->col++;
    }
  }
}

/* The screen as text, rows joined without line breaks where a row is full (a wrapped
 * line reads as one) and with '\n' after shorter rows; empty rows at the end dropped. */
static char *screen_text(const screen *s) {
  char *t = calloc(ROWS, 258);
  size_t len = 0;
  int last = ROWS - 1;
  while (last > 0 && !s->cell[last][0])
    last--;
  for (int r = 0; r <= last; r++) {
    size_t n = strnlen(s->cell[r], (size_t)s->cols);
    memcpy(t + len, s->cell[r], n);
    len += n;
    if ((int)n < s->cols) t[len++] = '\n';
  }
  t[len] = 0;
  return t;
}

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

/* The final answer of `vblip caption --json` (the same run without a terminal) */
static char *json_answer(const char *flags) {
  char cmd[1024], *out = NULL;
  snprintf(cmd, sizeof cmd, "%s caption --model %s --threads 2 --json %s %s 2>/dev/null",
           VBLIP_BINARY, MODEL, flags, VIDEO);
  tu_run(cmd, &out);
  cJSON *j = cJSON_Parse(out ? out : "");
  const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
  char *r = strdup(t ? t : "");
  cJSON_Delete(j);
  free(out);
  return r;
}

static void test_streamed_caption_wraps(void) {
  const char *flags = "--beams 1 --max-new-tokens 16 --prompt 'What?'";
  char *want = json_answer(flags);
  CHECK(strlen(want) > 50, "a long answer to wrap: '%s'", want);
  char cmd[1024], *out;
  /* two videos: each answer is labelled "PATH: ", and each wraps on 24 columns */
  snprintf(cmd, sizeof cmd, "%s caption --model %s --threads 2 %s %s %s", VBLIP_BINARY, MODEL,
           flags, VIDEO, VIDEO);
  int rc = run_pty(cmd, 24, &out);
  CHECK(rc == 0, "caption on a terminal: %d", rc);
  screen s;
  screen_play(&s, 24, out);
  char *text = screen_text(&s);
  char line[1024];
  snprintf(line, sizeof line, "%s: %s\n", VIDEO, want);
  CHECK(count(text, line) == 2, "each answer once on the screen, whole:\n%s\n(want twice '%s')",
        text, line);
  char both[2100];
  snprintf(both, sizeof both, "%s%s", line, line);
  CHECK(strcmp(text, both) == 0,
        "nothing else on the screen (no rows left of the streamed copies or the "
        "progress):\n%s",
        text);
  CHECK(strstr(out, "\033[") != NULL && strstr(out, "vblip: loading") &&
            strstr(out, "vblip: encoding"),
        "progress was shown while loading and encoding");
  free(text);
  free(out);
  free(want);
}

/* chat writing to a terminal (its messages from a pipe): the same rewrite */
static void test_streamed_chat_wraps(void) {
  char *want = json_answer("--beams 1 --max-new-tokens 16 --prompt 'What?'");
  char cmd[1024], *out;
  snprintf(cmd, sizeof cmd,
           "printf 'What?\\n' | %s chat --model %s --threads 2 --beams 1 --max-new-tokens 16 %s",
           VBLIP_BINARY, MODEL, VIDEO);
  CHECK(run_pty(cmd, 20, &out) == 0, "chat on a terminal");
  screen s;
  screen_play(&s, 20, out);
  char *text = screen_text(&s), line[1024];
  snprintf(line, sizeof line, "%s\n", want);
  CHECK(strcmp(text, line) == 0, "the answer once on the screen:\n%s\n(want '%s')", text, line);
  free(text);
  free(out);
  free(want);
}

/* chat on a terminal, typed at: Ctrl-C while an answer streams. The answers are long
 * (--min-new-tokens 400) so that the interrupt lands while tokens are still coming. */
static void test_chat_interrupt(void) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "HOME=%s exec %s chat --model %s --threads 2 --frames 2 --beams 1 "
           "--max-new-tokens 400 --min-new-tokens 400 %s",
           tu_tmpdir(), VBLIP_BINARY, MODEL, VIDEO);
  pty_session ps;
  if (!CHECK(session_start(&ps, cmd, 200) == 0, "chat on a pseudo-terminal")) return;
  int ok = CHECK(session_wait(&ps, "you> ", 60), "the first prompt: %s", ps.out);
  if (ok) {
    session_type(&ps, "What is happening?\r");
    /* the answer has begun streaming: something after "vblip> " */
    ok = CHECK(session_wait(&ps, "vblip> ", 60), "the answer starts: %s", ps.out);
    while (ok && ps.len == ps.seen && session_read(&ps, 10)) {
    }
    size_t before = ps.len;
    session_type(&ps, "\003"); /* Ctrl-C: the terminal sends SIGINT */
    ok = ok && CHECK(session_wait(&ps, "[stopped]", 30), "Ctrl-C marks the answer stopped: %s",
                     ps.out + before);
  }
  if (ok) {
    ok = CHECK(session_wait(&ps, "you> ", 30), "chat goes on after Ctrl-C: %s", ps.out);
    session_type(&ps, "/history\r");
    ok = ok && CHECK(session_wait(&ps, "(no conversation yet)", 30),
                     "the stopped answer is not in the conversation: %s", ps.out + ps.seen);
  }
  if (ok && CHECK(session_wait(&ps, "you> ", 30), "a prompt after /history")) {
    session_type(&ps, "And now?\r");
    ok = CHECK(session_wait(&ps, "you> ", 120), "the next answer: %s", ps.out + ps.seen);
    const char *turn = ok ? strstr(ps.out, "And now?") : NULL;
    CHECK(turn && !strstr(turn, "[stopped]"), "the next answer is whole, not stopped");
    session_type(&ps, "/history\r");
    CHECK(session_wait(&ps, "you: And now?", 30), "the whole answer joins the conversation: %s",
          ps.out + ps.seen);
    CHECK(!strstr(ps.out + ps.seen, "What is happening?"), "and the stopped one does not");
    session_type(&ps, "/quit\r");
  }
  int rc = session_finish(&ps, 30);
  CHECK(rc == 0, "chat ends with status 0 after /quit (got %d)", rc);
  free(ps.out);
}

/* Whether `text` was read between `from` and what the last wait consumed */
static int seen_between(const pty_session *ps, size_t from, const char *text) {
  const char *hit = strstr(ps->out + from, text);
  return hit && (size_t)(hit - ps->out) + strlen(text) <= ps->seen;
}

/* Whether the terminal comes to be in line editing's mode (no echo, no lines: the program
 * echoes and edits) within `secs`; chat sets it when it waits for the first key (libedit
 * prints the prompt first). */
static int wait_editing_mode(const pty_session *ps, int secs) {
  for (int i = 0; i < secs * 20; i++) {
    struct termios t;
    if (tcgetattr(ps->m, &t) == 0 && !(t.c_lflag & (ECHO | ICANON))) return 1;
    usleep(50000);
  }
  return 0;
}

static char *read_text(const char *path) {
  char cmd[1100], *out = NULL;
  snprintf(cmd, sizeof cmd, "cat '%s'", path);
  if (tu_run(cmd, &out) != 0) {
    free(out);
    return NULL;
  }
  return out;
}

/* chat with its own HOME (the history file) on a pseudo-terminal; answers of 8 tokens */
static int chat_session(pty_session *ps, const char *name, char *home, size_t cap) {
  char cmd[2048];
  snprintf(home, cap, "%s/%s", tu_tmpdir(), name);
  mkdir(home, 0700);
  snprintf(cmd, sizeof cmd,
           "HOME=%s exec %s chat --model %s --threads 2 --frames 2 --beams 1 --max-new-tokens 8 %s",
           home, VBLIP_BINARY, MODEL, VIDEO);
  return session_start(ps, cmd, 200);
}

#define CTRL_C_ROUNDS 60

/* Ctrl-C typed at chat's prompt discards the line being typed and prompts again; the chat
 * goes on; /quit exits 0 with the history saved and the terminal as it was. The Ctrl-C is
 * typed CTRL_C_ROUNDS times three ways: after the echo of a draft (chat waits for a key),
 * with the draft in one write (the signal comes while chat has the keys or reads them) and
 * right after it (anywhere between): a SIGINT that comes while chat is not waiting for a key
 * must not be lost (no fresh prompt) nor end chat. */
static void test_chat_prompt_ctrl_c(void) {
  char home[1024];
  pty_session ps;
  if (!CHECK(chat_session(&ps, "ctrl-c-prompt", home, sizeof home) == 0, "chat on a pty")) return;
  int ok = CHECK(session_wait(&ps, "you> ", 60), "the first prompt: %s", ps.out);
  for (int i = 0; ok && i < CTRL_C_ROUNDS; i++) {
    char draft[64], keys[80];
    snprintf(draft, sizeof draft, "draft%d-to-discard", i);
    size_t from = ps.seen;
    if (i % 3 == 0) {
      session_type(&ps, draft);
      ok = CHECK(session_wait(&ps, draft, 30), "round %d: the draft is echoed: %s", i,
                 ps.out + from);
      from = ps.seen;
      session_type(&ps, "\003");
    } else if (i % 3 == 1) {
      snprintf(keys, sizeof keys, "%s\003", draft);
      session_type(&ps, keys);
    } else {
      session_type(&ps, draft);
      session_type(&ps, "\003");
    }
    ok = ok && CHECK(session_wait(&ps, "you> ", 30),
                     "round %d: Ctrl-C at the prompt gives a fresh prompt (chat %s): %s", i,
                     session_running(&ps) ? "runs" : "has ended", ps.out + from);
    if (ok && i == 0)
      CHECK(seen_between(&ps, from, "^C"), "the discarded line is marked ^C: %s", ps.out + from);
  }
  /* a burst, then twice on an empty line: prompts, and chat goes on */
  if (ok) {
    session_type(&ps, "\003\003\003");
    ok = CHECK(session_wait(&ps, "you> ", 30), "a prompt after three Ctrl-C at once");
  }
  for (int i = 0; ok && i < 2; i++) {
    session_type(&ps, "\003");
    ok = CHECK(session_wait(&ps, "you> ", 30), "Ctrl-C %d on an empty line: a prompt", i + 1);
  }
  if (ok) {
    session_type(&ps, "/history\r");
    ok = CHECK(session_wait(&ps, "(no conversation yet)", 30), "no discarded line was sent: %s",
               ps.out + ps.seen);
    CHECK(!strstr(ps.out, "vblip> "), "nothing was answered before the first message sent");
  }
  if (ok && CHECK(session_wait(&ps, "you> ", 30), "a prompt after /history")) {
    size_t from = ps.seen;
    session_type(&ps, "Summary-please\r");
    ok = CHECK(session_wait(&ps, "vblip> ", 60) && session_wait(&ps, "you> ", 120),
               "the message sent is answered: %s", ps.out + from);
    CHECK(!seen_between(&ps, from, "[stopped]"), "and not stopped: %s", ps.out + from);
  }
  if (ok) {
    session_type(&ps, "/history\r");
    size_t from = ps.seen;
    ok = CHECK(session_wait(&ps, "you: Summary-please", 30) && session_wait(&ps, "you> ", 30),
               "the message is in the conversation: %s", ps.out + from);
    CHECK(!seen_between(&ps, from, "discard"), "and no discarded line: %s", ps.out + from);
  }
  if (ok) { /* after an answer too */
    session_type(&ps, "more-to-discard\003");
    ok = CHECK(session_wait(&ps, "you> ", 30), "Ctrl-C after an answer: a prompt");
  }
  if (ok) session_type(&ps, "/quit\r");
  int rc = session_finish(&ps, 30);
  CHECK(ok && rc == 0, "/quit ends chat with status 0 (got %d)", rc);
  CHECK(ps.have_end_mode && cooked_with_echo(&ps.at_end),
        "the terminal is left reading lines with echo");
  char path[1100];
  snprintf(path, sizeof path, "%s/.vblip_history", home);
  char *hist = read_text(path);
  CHECK(hist && strstr(hist, "Summary-please") && strstr(hist, "/history"),
        "the history file has the lines sent: %s", hist ? hist : "(none)");
  CHECK(hist && !strstr(hist, "discard"), "and no discarded line: %s", hist ? hist : "(none)");
  free(hist);
  free(ps.out);
}

/* Text beyond ASCII typed at the prompt reaches the conversation and the history file as the
 * UTF-8 it was typed in, whatever the locale says (LC_ALL=C, or a UTF-8 one): the key reader
 * decodes in LC_CTYPE's character set, and chat takes UTF-8 when the locale's is another. */
static void test_chat_utf8_typed(const char *locale_env) {
  char home[1024], name[64], cmd[2200];
  snprintf(name, sizeof name, "utf8-%s", locale_env + 7);
  snprintf(home, sizeof home, "%s/%s", tu_tmpdir(), name);
  mkdir(home, 0700);
  snprintf(cmd, sizeof cmd,
           "HOME=%s %s exec %s chat --model %s --threads 2 --frames 2 --beams 1 "
           "--max-new-tokens 4 %s",
           home, locale_env, VBLIP_BINARY, MODEL, VIDEO);
  pty_session ps;
  if (!CHECK(session_start(&ps, cmd, 200) == 0, "chat on a pty (%s)", locale_env)) return;
  const char *text = "Qu'est-ce que c'est, \xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac?";
  int ok = CHECK(session_wait(&ps, "you> ", 60), "the first prompt (%s): %s", locale_env, ps.out);
  if (ok) {
    size_t from = ps.seen;
    session_type(&ps, text);
    session_type(&ps, "\r");
    ok = CHECK(session_wait(&ps, "vblip> ", 60) && session_wait(&ps, "you> ", 120),
               "%s: the message is answered: %s", locale_env, ps.out + from);
  }
  if (ok) {
    char want[200];
    snprintf(want, sizeof want, "you: %s", text);
    size_t from = ps.seen;
    session_type(&ps, "/history\r");
    ok = CHECK(session_wait(&ps, want, 30) && session_wait(&ps, "you> ", 30),
               "%s: the conversation has the text as typed: %s", locale_env, ps.out + from);
  }
  if (ok) session_type(&ps, "/quit\r");
  int rc = session_finish(&ps, 30);
  CHECK(ok && rc == 0, "%s: /quit ends chat with status 0 (got %d)", locale_env, rc);
  char path[1100];
  snprintf(path, sizeof path, "%s/.vblip_history", home);
  char *hist = read_text(path);
  /* libedit's file escapes spaces (\040) but keeps other text as it is */
  CHECK(hist && strstr(hist, "\xc3\xa9t\xc3\xa9") && strstr(hist, "\xe6\x97\xa5\xe6\x9c\xac?"),
        "%s: the history file has the text as typed: %s", locale_env, hist ? hist : "(none)");
  free(hist);
  free(ps.out);
}

/* The other signals libedit handled while a line is edited, now that chat handles them:
 * SIGCONT (after the shell had the terminal: fg) edits the line again, with the terminal
 * back in chat's mode and the line kept; Ctrl-D after a Ctrl-C exits 0 and saves the
 * history; SIGTERM at the prompt ends chat by the signal with the terminal as it was. */
static void test_chat_prompt_signals(void) {
  char home[1024];
  pty_session ps;
  if (!CHECK(chat_session(&ps, "prompt-signals", home, sizeof home) == 0, "chat on a pty")) return;
  int ok = CHECK(session_wait(&ps, "you> ", 60), "the first prompt: %s", ps.out);
  if (ok) {
    session_type(&ps, "/help\r");
    ok = CHECK(session_wait(&ps, "settings:", 30) && session_wait(&ps, "you> ", 30), "/help");
  }
  struct termios t;
  if (ok) {
    session_type(&ps, "abc");
    ok = CHECK(session_wait(&ps, "abc", 30), "typed abc");
    ok = ok && CHECK(wait_editing_mode(&ps, 10) && tcgetattr(ps.m, &t) == 0,
                     "chat echoes the keys itself while a line is edited");
  }
  if (ok) { /* what a shell does between ^Z and fg: its own mode, then SIGCONT */
    struct termios shell = t;
    shell.c_lflag |= ECHO | ICANON;
    tcsetattr(ps.m, TCSANOW, &shell);
    kill(ps.pid, SIGCONT);
    ok = CHECK(session_wait(&ps, "you> abc", 30), "the line is drawn again: %s", ps.out + ps.seen);
    ok = ok && CHECK(wait_editing_mode(&ps, 10), "and edited in chat's mode again");
  }
  if (ok) {
    session_type(&ps, "def\r");
    ok = CHECK(session_wait(&ps, "vblip> ", 60) && session_wait(&ps, "you> ", 120),
               "the line is answered");
    session_type(&ps, "/history\r");
    ok = ok && CHECK(session_wait(&ps, "you: abcdef", 30), "whole (typed before and after): %s",
                     ps.out + ps.seen);
    ok = ok && CHECK(session_wait(&ps, "you> ", 30), "a prompt");
  }
  if (ok) {
    session_type(&ps, "partial\003");
    ok = CHECK(session_wait(&ps, "you> ", 30), "a prompt after Ctrl-C");
  }
  if (ok) session_type(&ps, "\004");
  int rc = session_finish(&ps, 30);
  CHECK(ok && rc == 0, "Ctrl-D ends chat with status 0 (got %d)", rc);
  CHECK(ps.have_end_mode && cooked_with_echo(&ps.at_end),
        "the terminal is left reading lines with echo");
  char path[1100];
  snprintf(path, sizeof path, "%s/.vblip_history", home);
  char *hist = read_text(path);
  CHECK(hist && strstr(hist, "abcdef") && strstr(hist, "/help") && !strstr(hist, "partial"),
        "the history file has the lines sent, not the discarded one: %s", hist ? hist : "(none)");
  free(hist);
  free(ps.out);

  if (!CHECK(chat_session(&ps, "prompt-sigterm", home, sizeof home) == 0, "chat on a pty")) return;
  ok = CHECK(session_wait(&ps, "you> ", 60), "the first prompt: %s", ps.out);
  if (ok) {
    session_type(&ps, "xyz");
    ok = CHECK(session_wait(&ps, "xyz", 30), "typed xyz");
  }
  if (ok) kill(ps.pid, SIGTERM);
  session_finish(&ps, 30);
  CHECK(ok && WIFSIGNALED(ps.status) && WTERMSIG(ps.status) == SIGTERM,
        "SIGTERM at the prompt ends chat by the signal (status %d)", ps.status);
  CHECK(ps.have_end_mode && cooked_with_echo(&ps.at_end),
        "the terminal is left reading lines with echo");
  free(ps.out);
}

static void test_quiet_and_pipes(void) {
  char cmd[1024], *out;
  snprintf(cmd, sizeof cmd,
           "%s caption --model %s --threads 2 --quiet --beams 1 --max-new-tokens 4 %s",
           VBLIP_BINARY, MODEL, VIDEO);
  CHECK(run_pty(cmd, 80, &out) == 0, "caption --quiet");
  CHECK(!strstr(out, "loading") && !strstr(out, "reading") && !strstr(out, "encoding"),
        "--quiet shows no progress: %s", out);
  free(out);
  /* stdout and stderr to a pipe: no progress, no escape sequences */
  snprintf(cmd, sizeof cmd,
           "%s caption --model %s --threads 2 --beams 1 --max-new-tokens 4 %s 2>&1", VBLIP_BINARY,
           MODEL, VIDEO);
  CHECK(tu_run(cmd, &out) == 0, "caption into a pipe");
  CHECK(!strchr(out, '\033') && !strstr(out, "loading"), "a pipe gets the answer only: %s", out);
  free(out);
}

static void test_convert_progress(void) {
  char cmd[1024], *out;
  snprintf(cmd, sizeof cmd, "%s convert --model %s --out %s/t.gguf --type q8_0", VBLIP_BINARY,
           MODEL, tu_tmpdir());
  CHECK(run_pty(cmd, 120, &out) == 0, "convert on a terminal");
  /* the last progress line: N/N tensors  X/X MB (the header and padding count too) */
  const char *last = NULL;
  for (const char *p = out; (p = strstr(p, "vblip convert: ")); p++)
    last = p;
  int done = 0, total = -1;
  double mb = 0, mb_total = -1;
  CHECK(last &&
            sscanf(last, "vblip convert: %d/%d tensors %lf/%lf MB", &done, &total, &mb,
                   &mb_total) == 4 &&
            done == total && mb == mb_total && mb > 1,
        "convert's progress ends at its total: %s", last ? last : out);
  free(out);
  snprintf(cmd, sizeof cmd, "%s convert --model %s --out %s/t.gguf --type q8_0 --quiet",
           VBLIP_BINARY, MODEL, tu_tmpdir());
  CHECK(run_pty(cmd, 120, &out) == 0 && !strstr(out, "tensors"), "convert --quiet: %s", out);
  free(out);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  test_streamed_caption_wraps();
  test_streamed_chat_wraps();
  test_chat_interrupt();
  test_chat_prompt_ctrl_c();
  test_chat_prompt_signals();
  test_chat_utf8_typed("LC_ALL=C");
  test_chat_utf8_typed("LC_ALL=C.UTF-8");
  test_quiet_and_pipes();
  test_convert_progress();
  return tu_finish();
}
