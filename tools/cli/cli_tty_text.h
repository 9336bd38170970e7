/* Text streamed to a terminal and then replaced by its final form: the streamed text may
 * wrap over several rows (or hold newlines), and "\r" + erase-line would clear only the
 * last of them, leaving the rest printed twice. The tracker counts the rows as the
 * terminal lays them out, so the rewrite can go back to the first one. */
#ifndef VBLIP_CLI_TTY_TEXT_H
#define VBLIP_CLI_TTY_TEXT_H

#include <stdio.h>

typedef struct {
  int cols; /* the terminal's width */
  int col;  /* characters on the current row */
  int rows; /* rows below the first one that the text reaches */
} cli_tty_text;

/* Starts tracking at the beginning of a row of f's terminal (80 columns if unknown). */
void cli_tty_text_begin(cli_tty_text *t, FILE *f);
/* Counts text as the terminal lays it out (UTF-8: one column per character). */
void cli_tty_text_count(cli_tty_text *t, const char *text);
/* Prints text to f and counts it. */
void cli_tty_text_put(cli_tty_text *t, FILE *f, const char *text);
/* Moves f's cursor to the start of the first row and erases everything after it; the
 * tracker starts again there. */
void cli_tty_text_rewind(cli_tty_text *t, FILE *f);

#endif
