#include "cli/cli_status.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h"

typedef struct {
  int quiet;
} quiet_field;

const cli_option cli_quiet_option[] = {
    CLI_OPT_FLAG("--quiet", 0, quiet_field, quiet,
                 "no progress on the terminal (loading the model, reading videos)"),
    CLI_TABLE_END};

static int g_enabled = -1; /* -1: not set up: a terminal decides */
static int g_shown;

static int enabled(void) {
  if (g_enabled < 0) g_enabled = isatty(STDERR_FILENO);
  return g_enabled;
}

int cli_status_on(void) {
  return enabled();
}

void cli_status_setup(int quiet, vblip_load_options *lo) {
  g_enabled = !quiet && isatty(STDERR_FILENO);
  if (lo) lo->progress = g_enabled;
}

void cli_status(const char *fmt, ...) {
  if (!enabled()) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* one terminal row, never wrapped: \r and erase-line rewrite only the current row */
  struct winsize ws;
  int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
  int room = cols - 8; /* "vblip: " and the cursor */
  if (room < 8) room = 8;
  fprintf(stderr, "\r\033[Kvblip: %.*s", room, line);
  fflush(stderr);
  g_shown = 1;
}

void cli_status_clear(void) {
  if (!g_shown) return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
  g_shown = 0;
}
