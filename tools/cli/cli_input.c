#include "cli/cli_input.h"

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_videos_load(vblip_model *m, const vblip_sampling *s, char *const *names, int n,
                    cli_videos *out) {
  out->names = names;
  out->n = 0;
  out->v = calloc((size_t)(n > 0 ? n : 1), sizeof *out->v);
  if (!out->v) return cli_fail("out of memory");
  for (int k = 0; k < n; k++) {
    const char *path = cli_input_path(names[k]);
    if (!path) return 1;
    if (cli_load_video(m, path, s, &out->v[k]) != 0) return 1;
    out->n = k + 1;
  }
  return 0;
}

void cli_videos_free(cli_videos *vs) {
  for (int k = 0; vs->v && k < vs->n; k++)
    vblip_video_free(&vs->v[k]);
  free(vs->v);
  memset(vs, 0, sizeof *vs);
}

int cli_interleaved_check(const char *cmd, vblip_layout *layout, const char *prompt, int n_videos) {
  if (*layout == VBLIP_LAYOUT_BLIP2)
    return cli_usage_error(cmd, "--interleaved needs the interleaved layout, not --layout blip2");
  *layout = VBLIP_LAYOUT_INTERLEAVED;
  size_t want = vblip_prompt_count_videos(prompt);
  if (want != (size_t)n_videos)
    return cli_usage_error(cmd, "--prompt has %zu <video> placeholder%s for %d VIDEO%s", want,
                           want == 1 ? "" : "s", n_videos, n_videos == 1 ? "" : "s");
  return 0;
}

vblip_input *cli_make_input(const cli_videos *vs, int interleaved, int k, const char *prompt) {
  vblip_input *in = vblip_input_new();
  int rc = in ? 0 : -1;
  if (rc == 0 && interleaved) {
    const vblip_video **list = calloc((size_t)vs->n + 1, sizeof *list);
    for (int i = 0; list && i < vs->n; i++)
      list[i] = &vs->v[i];
    rc = list ? vblip_input_add_prompt(in, prompt, list, (size_t)vs->n) : -1;
    free(list);
  } else if (rc == 0) {
    rc = vblip_input_add_video(in, &vs->v[k]);
    if (rc == 0) rc = vblip_input_add_text(in, prompt);
  }
  if (rc != 0) {
    cli_fail("%s", vblip_last_error());
    vblip_input_free(in);
    return NULL;
  }
  return in;
}

cJSON *cli_frames_json(const vblip_video *v) {
  cJSON *frames = cJSON_CreateArray();
  for (int i = 0; i < v->n_frames; i++) {
    cJSON *f = cJSON_CreateObject();
    cJSON_AddNumberToObject(f, "index", (double)v->frame_index[i]);
    cJSON_AddNumberToObject(f, "time", v->frame_time[i]);
    cJSON_AddItemToArray(frames, f);
  }
  return frames;
}

cJSON *cli_timings_json(const vblip_video *const *v, int n, const char *extra_name,
                        double extra_ms) {
  double d = 0, p = 0, vi = 0, q = 0;
  for (int i = 0; i < n; i++) {
    d += v[i]->ms_decode;
    p += v[i]->ms_preprocess;
    vi += v[i]->ms_vision;
    q += v[i]->ms_qformer;
  }
  cJSON *t = cJSON_CreateObject();
  cJSON_AddNumberToObject(t, "decode", d);
  cJSON_AddNumberToObject(t, "preprocess", p);
  cJSON_AddNumberToObject(t, "vision", vi);
  cJSON_AddNumberToObject(t, "qformer", q);
  cJSON_AddNumberToObject(t, extra_name, extra_ms);
  return t;
}
