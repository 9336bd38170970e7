/* Timed captions ("cues") from narration windows: merging consecutive windows that say the
 * same thing, and writing cues as WebVTT, SRT or JSON Lines. */
#ifndef VBLIP_TEXT_CUES_H
#define VBLIP_TEXT_CUES_H

#include <stddef.h>

typedef struct {
  double start, end;             /* seconds */
  char *text;                    /* owned */
  int first_window, last_window; /* the windows it covers */
  int skipped_before;            /* windows skipped just before its first */
  double lag;                    /* the largest lag of its windows (live sources) */
} vb_cue;

/* Consecutive windows (w, w + 1) with equal normalized captions become one cue. A cue is
 * complete when the next window says something else (or is not the next), so it comes out one
 * window late; it then ends where the next cue starts, or at its last window's end. */
typedef struct {
  int merge; /* 0: one cue per window */
  int has;
  vb_cue open;
} vb_cue_merger;

/* Adds window w ([start, end), its caption). *done gets the cue this completes (return 1), or
 * nothing (0); -1 when out of memory. Free done->text. */
int vb_cues_add(vb_cue_merger *mg, int w, double start, double end, const char *text,
                int skipped_before, double lag, vb_cue *done);
/* The last open cue (1) or none (0). */
int vb_cues_finish(vb_cue_merger *mg, vb_cue *done);
void vb_cue_free(vb_cue *c);

/* Caption equality for merging: ASCII letters compared without case, punctuation ignored,
 * runs of white space equal to one space, leading and trailing space ignored. */
int vb_captions_same(const char *a, const char *b);

/* "HH:MM:SS.mmm" (sep '.', WebVTT) or "HH:MM:SS,mmm" (sep ',', SRT), rounded to the
 * millisecond; buf holds at least 32 bytes. */
void vb_cue_timestamp(double sec, char sep, char *buf);

/* A whole cue block, ending with a blank line, as a new string (NULL when out of memory):
 * WebVTT (the text on one line, '&', '<', '>' escaped), or SRT (one line, "-->" shortened to "->")
 * with its 1-based number. The header "WEBVTT\n\n" is the caller's. */
char *vb_cue_vtt(const vb_cue *c);
char *vb_cue_srt(const vb_cue *c, int number);

#endif
