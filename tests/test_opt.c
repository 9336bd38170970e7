/* OPT language model against transformers: first-step logits and every
 * generation case of the fixture, token for token, from the reference
 * projected queries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "generate/generate.h"
#include "lm/lm.h"
#include "testutil.h"

static void gen_config_from_settings(const cJSON *settings, const vb_model_config *mc, vb_gen_config *g) {
  vb_gen_config_default(g);
  const cJSON *v;
  if ((v = cJSON_GetObjectItem(settings, "max_new_tokens"))) g->max_new_tokens = v->valueint;
  if ((v = cJSON_GetObjectItem(settings, "max_length"))) g->max_length = v->valueint;
  if ((v = cJSON_GetObjectItem(settings, "min_new_tokens"))) g->min_new_tokens = v->valueint;
  if ((v = cJSON_GetObjectItem(settings, "num_beams"))) g->num_beams = v->valueint;
  if ((v = cJSON_GetObjectItem(settings, "repetition_penalty"))) g->repetition_penalty = (float)v->valuedouble;
  if ((v = cJSON_GetObjectItem(settings, "no_repeat_ngram_size"))) g->no_repeat_ngram_size = v->valueint;
  if ((v = cJSON_GetObjectItem(settings, "length_penalty"))) g->length_penalty = (float)v->valuedouble;
  if ((v = cJSON_GetObjectItem(settings, "num_return_sequences"))) g->num_return_sequences = v->valueint;
  /* temperature without do_sample has no effect in transformers: ignore it too */
  g->eos_token_id = mc->eos_token_id;
  g->pad_token_id = mc->pad_token_id;
  g->start_token_id = mc->lm_kind == VB_LM_OPT ? mc->bos_token_id : mc->decoder_start_token_id;
}

static void run_case(vb_lm *lm, const vb_model_config *mc, const char *case_name) {
  char path[256];
  snprintf(path, sizeof path, "models.opt.cases.%s", case_name);
  cJSON *c = tu_json_path(tu_expected(), path);
  if (!CHECK(c != NULL, "case %s missing", case_name)) return;
  cJSON *jids = cJSON_GetObjectItem(c, "input_ids");
  int n_ids = cJSON_GetArraySize(jids);
  int32_t *ids = malloc(sizeof(int32_t) * n_ids);
  for (int i = 0; i < n_ids; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
  char name[256];
  snprintf(name, sizeof name, "model/opt/%s/language_projection", case_name);
  const vb_tensor_info *proj = tu_ref_tensor(name);
  if (!proj) return;
  int Q = (int)proj->shape[1];

  /* first-step logits */
  float *logits = malloc(sizeof(float) * lm->vocab_size);
  CHECK_OK(lm->set_input(lm, proj->data, Q, ids, n_ids));
  CHECK_OK(lm->gen.prefill(lm, 1, logits));
  snprintf(name, sizeof name, "model/opt/%s/logits_last", case_name);
  const vb_tensor_info *ref = tu_ref_tensor(name);
  if (ref) {
    double maxabs, rel;
    size_t bad = tu_compare(logits, ref->data, (size_t)lm->vocab_size, 5e-3, 1e-5, &maxabs, &rel);
    CHECK(bad == 0, "%s logits: %zu mismatches, max abs err %g", case_name, bad, maxabs);
    int arg = 0;
    for (int i = 1; i < lm->vocab_size; i++)
      if (logits[i] > logits[arg]) arg = i;
    cJSON *fw = cJSON_GetObjectItem(c, "forward");
    CHECK(arg == cJSON_GetObjectItem(fw, "logits_last_argmax")->valueint, "%s argmax %d", case_name, arg);
  }
  free(logits);

  /* every generation setting */
  cJSON *gens = cJSON_GetObjectItem(c, "generation"), *gc;
  cJSON_ArrayForEach(gc, gens) {
    vb_gen_config g;
    gen_config_from_settings(cJSON_GetObjectItem(gc, "settings"), mc, &g);
    vb_gen_result r;
    CHECK_OK(lm->set_input(lm, proj->data, Q, ids, n_ids));
    if (!CHECK_OK(vb_generate(&lm->gen, lm, &g, NULL, NULL, &r))) continue;
    cJSON *seqs = cJSON_GetObjectItem(gc, "sequences");
    cJSON *want = cJSON_GetArrayItem(seqs, 0);
    int n = cJSON_GetArraySize(want), same = r.n >= 1 && r.lens[0] == n;
    for (int i = 0; same && i < n; i++) same = r.seqs[0][i] == cJSON_GetArrayItem(want, i)->valueint;
    CHECK(same, "%s/%s: generated sequence differs (len %d vs %d)", case_name, gc->string,
          r.n ? r.lens[0] : -1, n);
    cJSON *scores = cJSON_GetObjectItem(gc, "sequences_scores");
    if (scores && r.n >= 1) {
      double want_s = cJSON_GetArrayItem(scores, 0)->valuedouble;
      CHECK(fabs(r.scores[0] - want_s) <= 1e-3, "%s/%s: score %g vs %g", case_name, gc->string,
            r.scores[0], want_s);
    }
    vb_gen_result_free(&r);
  }
  free(ids);
}

int main(void) {
  const char *dir = tu_fixture("models/videoblip-opt-tiny");
  vb_model_config mc;
  vb_weights w;
  vb_lm *lm;
  if (!CHECK_OK(vb_config_load(dir, &mc)) || !CHECK_OK(vb_weights_open(dir, &w))) return tu_finish();
  if (!CHECK_OK(vb_opt_create(&w, &mc, &lm))) return tu_finish();
  CHECK(mc.eos_token_id == 202, "generation eos %d", mc.eos_token_id);
  const char *cases[] = {"video1_uniform", "video1_demo", "image"};
  for (int i = 0; i < 3; i++) run_case(lm, &mc, cases[i]);

  /* a prompt longer than the model's positions is an error, not a crash */
  int n = mc.opt.max_position_embeddings + 1;
  int32_t *ids = calloc((size_t)n, sizeof *ids);
  for (int i = 0; i < n; i++) ids[i] = 100;
  CHECK(lm->set_input(lm, NULL, 0, ids, n) != 0, "over-long input accepted");
  CHECK(strstr(vb_error_message(), "positions") != NULL, "message: %s", vb_error_message());
  ids[0] = 1 << 30;
  CHECK(lm->set_input(lm, NULL, 0, ids, 4) != 0, "out-of-vocabulary id accepted");
  free(ids);
  lm->destroy(lm);
  vb_weights_close(&w);
  return tu_finish();
}
