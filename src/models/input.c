/* vblip_input: an ordered list of text and video items (see vblip.h). */
#include "models/input.h"

#include <stdlib.h>
#include <string.h>

#include "models/interleave.h"
#include "models/videoblip_internal.h"
#include "runtime/common.h"

vblip_input *vblip_input_new(void) {
  return vb_calloc(1, sizeof(vblip_input));
}

void vblip_input_free(vblip_input *in) {
  if (!in) return;
  for (size_t i = 0; i < in->n; i++) {
    free(in->items[i].text);
    free(in->items[i].path);
    vblip_video_free(&in->items[i].owned);
  }
  free(in->items);
  free(in);
}

static vb_input_item *add_item(vblip_input *in) {
  if (!in) {
    vb_error("no input");
    return NULL;
  }
  if (in->n == in->cap) {
    size_t cap = in->cap ? in->cap * 2 : 8;
    vb_input_item *p = vb_realloc(in->items, cap * sizeof *p);
    if (!p) return NULL;
    in->items = p;
    in->cap = cap;
  }
  vb_input_item *it = &in->items[in->n];
  memset(it, 0, sizeof *it);
  return it;
}

int vblip_input_add_text(vblip_input *in, const char *text) {
  vb_input_item *it = add_item(in);
  if (!it) return -1;
  if (!(it->text = vb_strdup(text ? text : ""))) return -1;
  in->n++;
  return 0;
}

int vblip_input_add_video(vblip_input *in, const vblip_video *v) {
  if (!v) return vb_error("no video");
  vb_input_item *it = add_item(in);
  if (!it) return -1;
  it->video = v;
  in->n++;
  return 0;
}

int vblip_input_add_video_file(vblip_input *in, const char *path, const vblip_sampling *s) {
  if (!path || !*path) return vb_error("no video path");
  vb_input_item *it = add_item(in);
  if (!it) return -1;
  if (!(it->path = vb_strdup(path))) return -1;
  if (s)
    it->sampling = *s;
  else
    vblip_sampling_default(&it->sampling);
  in->n++;
  return 0;
}

size_t vblip_prompt_count_videos(const char *prompt) {
  size_t n = 0;
  const char *p = prompt ? prompt : "";
  while ((p = strstr(p, "<video>"))) {
    n++;
    p += 7;
  }
  return n;
}

int vblip_input_add_prompt(vblip_input *in, const char *prompt, const vblip_video *const *videos,
                           size_t n_videos) {
  if (!in) return vb_error("no input");
  size_t want = vblip_prompt_count_videos(prompt);
  if (want != n_videos)
    return vb_error("the prompt has %zu <video> placeholder%s but %zu video%s given", want,
                    want == 1 ? "" : "s", n_videos, n_videos == 1 ? " is" : "s are");
  char **pieces = NULL;
  size_t np = 0;
  if (vb_icl_split_prompt(prompt ? prompt : "", &pieces, &np) != 0) return -1;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < np; i++) {
    if (i > 0) rc = vblip_input_add_video(in, videos[i - 1]);
    if (rc == 0 && pieces[i][0]) rc = vblip_input_add_text(in, pieces[i]);
  }
  vb_icl_pieces_free(pieces, np);
  return rc;
}

int vblip_input_encode(vblip_model *m, vblip_input *in) {
  if (!in) return vb_error("no input");
  for (size_t i = 0; i < in->n; i++) {
    vb_input_item *it = &in->items[i];
    if (!it->path || it->video) continue;
    if (vblip_video_load(m, it->path, &it->sampling, &it->owned) != 0 ||
        vblip_video_encode(m, &it->owned) != 0) {
      vblip_video_free(&it->owned);
      return vb_error_context("%s", it->path);
    }
    it->video = &it->owned;
  }
  return 0;
}

size_t vblip_input_n_videos(const vblip_input *in) {
  size_t k = 0;
  for (size_t i = 0; in && i < in->n; i++)
    k += in->items[i].text == NULL;
  return k;
}

const vblip_video *vblip_input_video(const vblip_input *in, size_t k) {
  for (size_t i = 0; in && i < in->n; i++) {
    if (in->items[i].text) continue;
    if (k-- == 0) return in->items[i].video;
  }
  return NULL;
}
