/* vblip_video_save: an encoded video as a safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "runtime/common.h"
#include "vblip.h"

/* "[a,b,...]" of the values, for safetensors' string metadata. */
static char *json_list(const int64_t *iv, const double *dv, int n) {
  size_t cap = (size_t)n * 32 + 3;
  char *s = vb_malloc(cap);
  if (!s) return NULL;
  size_t o = 0;
  s[o++] = '[';
  for (int i = 0; i < n; i++) {
    if (iv) o += (size_t)snprintf(s + o, cap - o, "%s%lld", i ? "," : "", (long long)iv[i]);
    else o += (size_t)snprintf(s + o, cap - o, "%s%.6f", i ? "," : "", dv[i]);
  }
  snprintf(s + o, cap - o, "]");
  return s;
}

int vblip_video_save(const vblip_video *v, const char *path, const char *source_video) {
  if (!v->projected) return vb_error("the video has not been encoded");
  int T = v->n_frames, S = v->image_size;
  /* The file keeps frames first: (T, 3, S, S), the layout a per-frame consumer wants. */
  float *pix = vb_malloc((size_t)T * 3 * S * S * sizeof(float));
  if (!pix) return -1;
  size_t plane = (size_t)S * S;
  for (int t = 0; t < T; t++)
    for (int c = 0; c < 3; c++)
      memcpy(pix + ((size_t)t * 3 + c) * plane, v->pixel_values + ((size_t)c * T + t) * plane,
             plane * sizeof(float));
  vb_st_entry e[4] = {
      {"pixel_values", VB_DT_F32, 4, {T, 3, S, S}, pix},
      {"vision_last_hidden_state", VB_DT_F32, 2, {v->vision_tokens, v->vision_width}, v->vision},
      {"qformer_last_hidden_state", VB_DT_F32, 2, {v->n_query, v->qformer_width}, v->qformer},
      {"language_projection", VB_DT_F32, 2, {v->n_query, v->lm_width}, v->projected},
  };
  char *idx = json_list(v->frame_index, NULL, T), *times = json_list(NULL, v->frame_time, T);
  int rc = -1;
  if (idx && times) {
    const char *keys[] = {"frame_indices", "frame_times", "video", "format"};
    const char *vals[] = {idx, times, source_video ? source_video : "", "pt"};
    rc = vb_safetensors_write(path, e, 4, keys, vals, 4);
  }
  free(idx);
  free(times);
  free(pix);
  return rc;
}
