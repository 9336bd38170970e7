/* Narrations (POST /api/narrate): their cues in each download format, kept until the
 * oldest unreferenced ones go over the limit. Guarded by s->mu. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "runtime/escape.h"
#include "server/server_internal.h"

void vs_narration_free(narration *n) {
  vs_buf_free(&n->vtt);
  vs_buf_free(&n->srt);
  vs_buf_free(&n->jsonl);
  free(n);
}

/* locked */
void vs_narration_release(vblip_server *s, narration *n) {
  (void)s;
  if (n && --n->refs == 0 && !n->listed) vs_narration_free(n);
}

/* locked: a new narration, listed (refs 1: the caller's); the oldest unreferenced ones over
 * the limit are dropped */
narration *vs_narration_new(vblip_server *s, const char *name) {
  narration *n = calloc(1, sizeof *n);
  if (!n || vs_random_hex(n->id, ID_BYTES) != 0 || vs_buf_puts(&n->vtt, "WEBVTT\n\n") != 0 ||
      vs_buf_puts(&n->srt, "") != 0 || vs_buf_puts(&n->jsonl, "") != 0) {
    if (n) vs_narration_free(n);
    return NULL;
  }
  vb_escape_controls(name ? name : "", n->name, sizeof n->name);
  n->refs = 1;
  n->listed = 1;
  n->next = s->narrations;
  s->narrations = n;
  s->n_narrations++;
  while (s->n_narrations > MAX_NARRATIONS) {
    narration **old = NULL;
    for (narration **p = &s->narrations; *p; p = &(*p)->next)
      if ((*p)->refs == 0) old = p; /* the last unreferenced one is the oldest */
    if (!old) break;
    narration *o = *old;
    *old = o->next;
    s->n_narrations--;
    vs_narration_free(o);
  }
  return n;
}

/* locked: a listed narration by id (no reference taken) */
narration *vs_narration_find(vblip_server *s, const char *id) {
  for (narration *n = s->narrations; n; n = n->next)
    if (strcmp(n->id, id) == 0) return n;
  return NULL;
}

/* locked: takes n off the download list (a narration that failed before it streamed) */
void vs_narration_unlist(vblip_server *s, narration *n) {
  for (narration **p = &s->narrations; *p; p = &(*p)->next)
    if (*p == n) {
      *p = n->next;
      s->n_narrations--;
      n->listed = 0;
      return;
    }
}
