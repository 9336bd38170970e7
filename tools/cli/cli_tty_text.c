#include "cli/cli_tty_text.h"

#include <sys/ioctl.h>
#include <unistd.h>

void cli_tty_text_begin(cli_tty_text *t, FILE *f) {
  struct winsize ws;
  t->cols = ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
  t->col = 0;
  t->rows = 0;
}

void cli_tty_text_count(cli_tty_text *t, const char *text) {
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if ((*p & 0xC0) == 0x80) continue; /* a UTF-8 continuation byte */
    if (*p == '\n') {
      t->rows++;
      t->col = 0;
    } else if (*p == '\r') {
      t->col = 0;
    } else if (*p >= 0x20) {
      /* the terminal wraps when a character comes after a full row */
      if (t->col == t->cols) {
        t->rows++;
        t->col = 0;
      }
      t->col++;
    }
  }
}

void cli_tty_text_put(cli_tty_text *t, FILE *f, const char *text) {
  fputs(text, f);
  cli_tty_text_count(t, text);
}

void cli_tty_text_rewind(cli_tty_text *t, FILE *f) {
  if (t->rows > 0) fprintf(f, "\033[%dA", t->rows);
  fputs("\r\033[J", f);
  t->col = 0;
  t->rows = 0;
}
