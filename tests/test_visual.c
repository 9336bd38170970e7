/* Vision encoder, Q-Former and language projection against transformers'
 * tensors, fed with the reference pixel values. */
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "testutil.h"
#include "vision/qformer.h"
#include "vision/vit.h"

static void check_stage(const char *what, const float *got, const char *ref_name, size_t n) {
  const vb_tensor_info *ref = tu_ref_tensor(ref_name);
  if (!ref) return;
  CHECK((size_t)vb_tensor_numel(ref) == n, "%s: %zu values, reference has %lld", what, n,
        (long long)vb_tensor_numel(ref));
  if ((size_t)vb_tensor_numel(ref) != n) return;
  double maxabs, rel;
  size_t bad = tu_compare(got, ref->data, n, 1e-4, 1e-4, &maxabs, &rel);
  CHECK(bad == 0, "%s: %zu of %zu values outside atol/rtol 1e-4 (max abs err %g)", what, bad, n, maxabs);
  CHECK(rel < 1e-4, "%s: relative error %g", what, rel);
}

static void run_model(const char *kind, const char *dir) {
  vb_model_config cfg;
  vb_weights w;
  vb_vit vit;
  vb_qformer qf;
  vb_linear proj;
  if (!CHECK_OK(vb_config_load(tu_fixture(dir), &cfg))) return;
  if (!CHECK_OK(vb_weights_open(tu_fixture(dir), &w))) return;
  CHECK_OK(vb_vit_init(&vit, &w, &cfg.vision));
  CHECK_OK(vb_qformer_init(&qf, &w, &cfg.qformer, cfg.num_query_tokens));
  CHECK_OK(vb_weights_linear(&w, "language_projection", cfg.lm_hidden, cfg.qformer.hidden_size, 1, &proj));
  const char *cases[][2] = {{"video1_uniform", "media/video1/uniform/pixel_values"},
                            {"image", "media/image/image/pixel_values"}};
  for (int c = 0; c < 2; c++) {
    const vb_tensor_info *pv = tu_ref_tensor(cases[c][1]);
    if (!pv) continue;
    int T = (int)pv->shape[2];
    int seq = vit.seq, D = cfg.vision.hidden_size, Q = cfg.num_query_tokens;
    float *vis = malloc((size_t)T * seq * D * sizeof(float));
    float *q = malloc((size_t)Q * cfg.qformer.hidden_size * sizeof(float));
    float *p = malloc((size_t)Q * cfg.lm_hidden * sizeof(float));
    char name[256], what[128];
    CHECK_OK(vb_vit_forward(&vit, pv->data, T, vis));
    snprintf(name, sizeof name, "model/%s/%s/vision_last_hidden_state", kind, cases[c][0]);
    snprintf(what, sizeof what, "%s %s vision", kind, cases[c][0]);
    check_stage(what, vis, name, (size_t)T * seq * D);
    /* feed the reference vision states so each stage is checked on its own */
    const vb_tensor_info *rv = tu_ref_tensor(name);
    CHECK_OK(vb_qformer_forward(&qf, rv ? rv->data : vis, T * seq, q));
    snprintf(name, sizeof name, "model/%s/%s/qformer_last_hidden_state", kind, cases[c][0]);
    snprintf(what, sizeof what, "%s %s qformer", kind, cases[c][0]);
    check_stage(what, q, name, (size_t)Q * cfg.qformer.hidden_size);
    CHECK_OK(vb_linear_forward(&proj, q, Q, p));
    snprintf(name, sizeof name, "model/%s/%s/language_projection", kind, cases[c][0]);
    snprintf(what, sizeof what, "%s %s projection", kind, cases[c][0]);
    check_stage(what, p, name, (size_t)Q * cfg.lm_hidden);
    free(vis);
    free(q);
    free(p);
  }
  vb_linear_release(&proj);
  vb_qformer_free(&qf);
  vb_vit_free(&vit);
  vb_weights_close(&w);
}

int main(void) {
  run_model("opt", "models/videoblip-opt-tiny");
  run_model("t5", "models/videoblip-flant5-tiny");
  run_model("t5", "models/videoblip-flant5-tiny-sharded");
  return tu_finish();
}
