/* The public API end to end: video file -> frames -> every stage's tensors and
 * the generated answer, for each fixture input and both language models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vblip.h"

static void compare(const char *what, const float *got, size_t n, const char *ref_name) {
  const vb_tensor_info *ref = tu_ref_tensor(ref_name);
  if (!ref || !CHECK((size_t)vb_tensor_numel(ref) == n, "%s: size %zu vs %lld", what, n,
                     (long long)vb_tensor_numel(ref)))
    return;
  double maxabs, rel;
  size_t bad = tu_compare(got, ref->data, n, 1e-4, 1e-4, &maxabs, &rel);
  CHECK(bad == 0, "%s: %zu mismatches (max abs err %g, rel %g)", what, bad, maxabs, rel);
}

static void run(const char *kind, const char *model_dir, const char *case_name) {
  char path[256];
  snprintf(path, sizeof path, "models.%s.cases.%s", kind, case_name);
  cJSON *c = tu_json_path(tu_expected(), path);
  const char *media = cJSON_GetObjectItem(c, "media")->valuestring;
  const char *mode = cJSON_GetObjectItem(c, "mode")->valuestring;
  const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
  snprintf(path, sizeof path, "media.%s.file", media);
  const char *file = tu_json_path(tu_expected(), path)->valuestring;

  /* float32: transformers' reference precision */
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32;
  vblip_model *m = vblip_model_load(tu_fixture(model_dir), &lo);
  if (!CHECK(m != NULL, "load %s: %s", model_dir, vblip_last_error())) return;
  vblip_sampling s;
  vblip_sampling_default(&s);
  if (strcmp(mode, "demo") == 0) s.mode = VBLIP_SAMPLE_DEMO;
  vblip_video v;
  if (CHECK(vblip_video_load(m, tu_fixture(file), &s, &v) == 0, "video %s: %s", file, vblip_last_error())) {
    snprintf(path, sizeof path, "media.%s.modes.%s.frame_indices", media, mode);
    cJSON *idx = tu_json_path(tu_expected(), path);
    CHECK(v.n_frames == cJSON_GetArraySize(idx), "%s frames %d", case_name, v.n_frames);
    for (int i = 0; i < v.n_frames && i < cJSON_GetArraySize(idx); i++)
      CHECK(v.frame_index[i] == cJSON_GetArrayItem(idx, i)->valueint, "%s frame %d index", case_name, i);
    if (CHECK(vblip_video_encode(m, &v) == 0, "encode: %s", vblip_last_error())) {
      char name[256], what[256];
      const char *stages[][2] = {{"vision_last_hidden_state", "vision"},
                                 {"qformer_last_hidden_state", "qformer"},
                                 {"language_projection", "projected"}};
      const float *got[] = {v.vision, v.qformer, v.projected};
      size_t n[] = {(size_t)v.vision_tokens * v.vision_width, (size_t)v.n_query * v.qformer_width,
                    (size_t)v.n_query * v.lm_width};
      for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "model/%s/%s/%s", kind, case_name, stages[i][0]);
        snprintf(what, sizeof what, "%s %s %s", kind, case_name, stages[i][1]);
        compare(what, got[i], n[i], name);
      }
      /* greedy answer through the public API, text as transformers decodes it */
      cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "generation"), "greedy_20");
      vblip_gen_params p;
      vblip_gen_params_default(&p);
      p.num_beams = 1;
      p.max_new_tokens = 20;
      vblip_answer a;
      if (CHECK(vblip_generate(m, &v, prompt, &p, NULL, NULL, &a) == 0, "generate: %s", vblip_last_error())) {
        const char *want = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "text"), 0)->valuestring;
        CHECK(strcmp(a.text, want) == 0, "%s %s text \"%s\" vs \"%s\"", kind, case_name, a.text, want);
        char *pp = vblip_postprocess(a.text);
        const char *want_pp = cJSON_GetArrayItem(cJSON_GetObjectItem(g, "demo_postprocessed_text"), 0)->valuestring;
        CHECK(pp && strcmp(pp, want_pp) == 0, "postprocessed \"%s\" vs \"%s\"", pp, want_pp);
        free(pp);
        vblip_answer_free(&a);
      }
      /* early stopping is an enum: the default is transformers' (False), others are refused */
      CHECK(p.early_stopping == VBLIP_EARLY_STOPPING_HEURISTIC, "default early_stopping %d",
            (int)p.early_stopping);
      p.early_stopping = (vblip_early_stopping)7;
      CHECK(vblip_generate(m, &v, prompt, &p, NULL, NULL, &a) == -1 &&
                strstr(vblip_last_error(), "early_stopping") && a.text == NULL,
            "early_stopping 7: %s", vblip_last_error());
    }
    vblip_video_free(&v);
  }
  vblip_model_free(m);
}

int main(void) {
  const char *cases[] = {"video1_uniform", "video1_demo", "image"};
  for (int i = 0; i < 3; i++) {
    run("opt", "models/videoblip-opt-tiny", cases[i]);
    run("t5", "models/videoblip-flant5-tiny", cases[i]);
  }
  run("t5", "models/videoblip-flant5-tiny-sharded", "video1_uniform");
  /* a diff-style config (only non-default keys) loads with transformers' defaults */
  return tu_finish();
}
