/* Accuracy gate for bf16 compute on the fixture VideoBLIP models (OPT and
 * Flan-T5, the 8-frame video and the still image): vision encoder, Q-Former,
 * projection and first-step logits within 2e-2 relative (L2) of the exact f32
 * path, and greedy generation (greedy_20) producing the same tokens as
 * transformers. The reference's smallest top-1/top-2 logit margin along each
 * greedy run is printed next to the bf16 logits' error, so a failure can be
 * told apart from a near tie. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "generate/generate.h"
#include "lm/lm.h"
#include "testutil.h"
#include "vision/qformer.h"
#include "vision/vit.h"

typedef struct {
  float *vis, *q, *proj, *logits;
  int32_t greedy[64];
  int n_greedy;
} stage_out;

typedef struct {
  const char *key, *dir; /* expected.json's model key, fixture directory */
} model_case;

static void run(vb_compute compute, const model_case *mc, const char *case_name, const char *media,
                stage_out *o) {
  const char *dir = tu_fixture(mc->dir);
  vb_model_config cfg;
  vb_weights w;
  memset(o, 0, sizeof *o);
  if (!CHECK_OK(vb_config_load(dir, &cfg)) || !CHECK_OK(vb_weights_open(dir, &w))) return;
  w.compute = compute;
  w.pack = 1;
  vb_vit vit;
  vb_qformer qf;
  vb_linear proj;
  vb_lm *lm = NULL;
  CHECK_OK(vb_vit_init(&vit, &w, &cfg.vision));
  CHECK_OK(vb_qformer_init(&qf, &w, &cfg.qformer, cfg.num_query_tokens));
  w.pack = 0;
  CHECK_OK(vb_weights_linear(&w, "language_projection", cfg.lm_hidden, cfg.qformer.hidden_size, 1, &proj));
  if (cfg.lm_kind == VB_LM_T5)
    CHECK_OK(vb_t5_create(&w, &cfg, &lm));
  else
    CHECK_OK(vb_opt_create(&w, &cfg, &lm));
  char name[256];
  snprintf(name, sizeof name, "media/%s/pixel_values", media);
  const vb_tensor_info *pv = tu_ref_tensor(name);
  if (pv && lm) {
    int T = (int)pv->shape[2], seq = vit.seq, D = cfg.vision.hidden_size, Q = cfg.num_query_tokens;
    o->vis = malloc((size_t)T * seq * D * sizeof(float));
    o->q = malloc((size_t)Q * cfg.qformer.hidden_size * sizeof(float));
    o->proj = malloc((size_t)Q * cfg.lm_hidden * sizeof(float));
    o->logits = malloc((size_t)lm->vocab_size * sizeof(float));
    CHECK_OK(vb_vit_forward(&vit, pv->data, T, o->vis));
    CHECK_OK(vb_qformer_forward(&qf, o->vis, T * seq, o->q));
    CHECK_OK(vb_linear_forward(&proj, o->q, Q, o->proj));
    char path[256];
    snprintf(path, sizeof path, "models.%s.cases.%s", mc->key, case_name);
    cJSON *c = tu_json_path(tu_expected(), path);
    cJSON *jids = cJSON_GetObjectItem(c, "input_ids");
    int n_ids = cJSON_GetArraySize(jids);
    int32_t ids[512];
    for (int i = 0; i < n_ids && i < 512; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
    /* the language model starts from the reference projection so that its
     * tokens can be compared with transformers' */
    snprintf(name, sizeof name, "model/%s/%s/language_projection", mc->key, case_name);
    const vb_tensor_info *rp = tu_ref_tensor(name);
    if (rp) {
      CHECK_OK(lm->set_input(lm, rp->data, (int)rp->shape[1], ids, n_ids));
      CHECK_OK(lm->gen.prefill(lm, 1, o->logits));
      o->n_greedy = tu_greedy(lm, &cfg, rp->data, (int)rp->shape[1], ids, n_ids, 20, o->greedy, 64);
    }
  }
  if (lm) lm->destroy(lm);
  vb_linear_release(&proj);
  vb_qformer_free(&qf);
  vb_vit_free(&vit);
  vb_weights_close(&w);
}

static void free_out(stage_out *o) {
  free(o->vis), free(o->q), free(o->proj), free(o->logits);
}

static void check_case(const model_case *mc, const char *case_name, const char *media) {
  stage_out f, b;
  run(VB_COMPUTE_F32, mc, case_name, media, &f);
  run(VB_COMPUTE_BF16, mc, case_name, media, &b);
  vb_model_config cfg;
  if (!CHECK_OK(vb_config_load(tu_fixture(mc->dir), &cfg)) || !f.vis || !b.vis || !f.logits) {
    free_out(&f), free_out(&b);
    return;
  }
  char name[256];
  snprintf(name, sizeof name, "media/%s/pixel_values", media);
  const vb_tensor_info *pv = tu_ref_tensor(name);
  int T = (int)pv->shape[2];
  int P = cfg.vision.image_size / cfg.vision.patch_size, seq = P * P + 1;
  int V = cfg.lm_kind == VB_LM_T5 ? cfg.t5.vocab_size : cfg.opt.vocab_size;
  struct {
    const char *what;
    float *a, *r;
    size_t n;
  } st[] = {
      {"vision", b.vis, f.vis, (size_t)T * seq * cfg.vision.hidden_size},
      {"qformer", b.q, f.q, (size_t)cfg.num_query_tokens * cfg.qformer.hidden_size},
      {"projection", b.proj, f.proj, (size_t)cfg.num_query_tokens * cfg.lm_hidden},
      {"logits", b.logits, f.logits, (size_t)V},
  };
  for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
    double e = tu_rel_l2f(st[i].a, st[i].r, st[i].n);
    printf("%s %s: bf16 vs f32 %-10s relative error %.3g\n", mc->key, case_name, st[i].what, e);
    CHECK(e < 2e-2, "%s %s bf16 %s: relative error %g vs f32", mc->key, case_name, st[i].what, e);
    CHECK(e > 0, "%s %s bf16 %s: identical to f32 (did bf16 run?)", mc->key, case_name, st[i].what);
  }
  char path[256];
  snprintf(path, sizeof path, "models.%s.cases.%s.generation.greedy_20", mc->key, case_name);
  cJSON *gen = tu_json_path(tu_expected(), path);
  cJSON *want = cJSON_GetArrayItem(cJSON_GetObjectItem(gen, "sequences"), 0);
  cJSON *margins = cJSON_GetObjectItem(gen, "margin_top1_top2_per_step");
  double min_margin = INFINITY;
  for (int i = 0; i < cJSON_GetArraySize(margins); i++)
    min_margin = fmin(min_margin, cJSON_GetArrayItem(margins, i)->valuedouble);
  int n = cJSON_GetArraySize(want);
  int same_f = f.n_greedy == n, same_b = b.n_greedy == n;
  for (int i = 0; i < n; i++) {
    int t = cJSON_GetArrayItem(want, i)->valueint;
    if (same_f && f.greedy[i] != t) same_f = 0;
    if (same_b && b.greedy[i] != t) same_b = 0;
  }
  printf("%s %s: greedy_20 smallest reference margin %.3g, bf16 first-step logits max error %.3g\n",
         mc->key, case_name, min_margin, tu_max_abs_diff(b.logits, f.logits, (size_t)V));
  CHECK(same_f, "%s %s: f32 greedy_20 differs from transformers", mc->key, case_name);
  CHECK(same_b, "%s %s: bf16 greedy_20 differs from transformers (%d vs %d tokens)", mc->key, case_name,
        b.n_greedy, n);
  free_out(&f);
  free_out(&b);
}

int main(void) {
  const model_case models[] = {{"opt", "models/videoblip-opt-tiny"}, {"t5", "models/videoblip-flant5-tiny"}};
  const char *cases[][2] = {{"video1_uniform", "video1/uniform"}, {"image", "image/image"}};
  for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
    for (size_t j = 0; j < sizeof cases / sizeof cases[0]; j++) check_case(&models[i], cases[j][0], cases[j][1]);
  return tu_finish();
}
