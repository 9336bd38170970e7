/* Cues from narration windows: merging and the WebVTT / SRT text of a cue. */
#include "text/cues.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

void vb_cue_free(vb_cue *c) {
  free(c->text);
  memset(c, 0, sizeof *c);
}

/* Next normalized character of s at *i: a lowercase letter, another byte, ' ' for a run of
 * space, or 0 at the end; punctuation is skipped. */
static int next_norm(const char *s, size_t *i) {
  int space = 0;
  for (;;) {
    unsigned char c = (unsigned char)s[*i];
    if (!c) return 0;
    if (isspace(c)) {
      space = 1;
      (*i)++;
      continue;
    }
    if (c < 128 && ispunct(c)) {
      (*i)++;
      continue;
    }
    if (space) return ' '; /* the character itself is read on the next call */
    (*i)++;
    return tolower(c);
  }
}

int vb_captions_same(const char *a, const char *b) {
  size_t i = 0, j = 0;
  /* leading space and punctuation */
  while (a[i] && (isspace((unsigned char)a[i]) || ispunct((unsigned char)a[i])))
    i++;
  while (b[j] && (isspace((unsigned char)b[j]) || ispunct((unsigned char)b[j])))
    j++;
  for (;;) {
    int x = next_norm(a, &i), y = next_norm(b, &j);
    if (x != y) return 0;
    if (!x) return 1;
  }
}

static int start_cue(vb_cue_merger *mg, int w, double start, double end, const char *text,
                     int skipped_before, double lag) {
  char *copy = strdup(text);
  if (!copy) return vb_error("out of memory");
  mg->open = (vb_cue){.start = start,
                      .end = end,
                      .text = copy,
                      .first_window = w,
                      .last_window = w,
                      .skipped_before = skipped_before,
                      .lag = lag};
  mg->has = 1;
  return 0;
}

int vb_cues_add(vb_cue_merger *mg, int w, double start, double end, const char *text,
                int skipped_before, double lag, vb_cue *done) {
  memset(done, 0, sizeof *done);
  if (mg->has && mg->merge && w == mg->open.last_window + 1 &&
      vb_captions_same(mg->open.text, text)) {
    mg->open.last_window = w;
    mg->open.end = end;
    if (lag > mg->open.lag) mg->open.lag = lag;
    return 0;
  }
  int out = 0;
  if (mg->has) {
    *done = mg->open;
    if (start < done->end) done->end = start; /* cues do not overlap */
    mg->has = 0;
    out = 1;
  }
  if (start_cue(mg, w, start, end, text, skipped_before, lag) != 0) {
    if (out) vb_cue_free(done);
    return -1;
  }
  return out;
}

int vb_cues_finish(vb_cue_merger *mg, vb_cue *done) {
  memset(done, 0, sizeof *done);
  if (!mg->has) return 0;
  *done = mg->open;
  mg->has = 0;
  return 1;
}

void vb_cue_timestamp(double sec, char sep, char *buf) {
  long long ms = sec > 0 ? llround(sec * 1000) : 0;
  snprintf(buf, 32, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
           sep, ms % 1000);
}

/* The cue text on one line: line breaks become spaces; vtt: escapes and "-->" broken up. */
static char *cue_text(const char *s, int vtt) {
  size_t n = strlen(s);
  char *out = vb_malloc(n * 5 + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\r' || c == '\n') c = ' ';
    if (vtt && c == '&') {
      memcpy(out + k, "&amp;", 5), k += 5;
    } else if (vtt && c == '<') {
      memcpy(out + k, "&lt;", 4), k += 4;
    } else if (vtt && c == '>') {
      memcpy(out + k, "&gt;", 4), k += 4;
    } else if (!vtt && c == '-' && !strncmp(s + i, "-->", 3)) {
      memcpy(out + k, "->", 2), k += 2; /* SRT has no escapes: the arrow is shortened */
      i += 2;
    } else {
      out[k++] = c;
    }
  }
  out[k] = 0;
  return out;
}

static char *cue_block(const vb_cue *c, int vtt, int number) {
  char a[32], b[32];
  vb_cue_timestamp(c->start, vtt ? '.' : ',', a);
  vb_cue_timestamp(c->end, vtt ? '.' : ',', b);
  char *text = cue_text(c->text, vtt);
  if (!text) return NULL;
  size_t n = strlen(text) + 96;
  char *out = vb_malloc(n);
  if (out) {
    if (vtt)
      snprintf(out, n, "%s --> %s\n%s\n\n", a, b, text);
    else
      snprintf(out, n, "%d\n%s --> %s\n%s\n\n", number, a, b, text);
  }
  free(text);
  return out;
}

char *vb_cue_vtt(const vb_cue *c) {
  return cue_block(c, 1, 0);
}

char *vb_cue_srt(const vb_cue *c, int number) {
  return cue_block(c, 0, number);
}
