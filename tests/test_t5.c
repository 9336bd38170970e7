/* T5 language model against the transformers reference: first-step logits,
 * encoder determinism, cached vs. recomputed decoding (including beam
 * reordering), every recorded generation, sharded and .bin weights, tied
 * heads, non-gated FFN loading, and errors naming bad tensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "formats/torch_bin.h"
#include "generate/generate.h"
#include "lm/lm.h"
#include "lm/t5.h"
#include "runtime/common.h"
#include "testutil.h"

#define LM "language_model."

static const char *k_cases[] = {"video1_uniform", "video1_demo", "image"};

typedef struct {
  vb_model_config cfg;
  vb_weights w;
  vb_lm *lm;
} model;

static int model_open(model *m, const char *dir) {
  memset(m, 0, sizeof *m);
  if (vb_config_load(dir, &m->cfg) != 0) return -1;
  if (vb_weights_open(dir, &m->w) != 0) return -1;
  return vb_t5_create(&m->w, &m->cfg, &m->lm);
}

static void model_close(model *m) {
  if (m->lm) m->lm->destroy(m->lm);
  vb_weights_close(&m->w);
  memset(m, 0, sizeof *m);
}

static int json_ints(cJSON *a, int32_t *out, int max) {
  int n = 0;
  cJSON *e;
  cJSON_ArrayForEach(e, a) {
    if (n < max) out[n] = (int32_t)e->valueint;
    n++;
  }
  return n;
}

/* Gives the model the case's projected queries and prompt ids. */
static int set_case_input(vb_lm *lm, const char *c) {
  char path[256];
  snprintf(path, sizeof path, "model/t5/%s/language_projection", c);
  const vb_tensor_info *proj = tu_ref_tensor(path);
  if (!proj) return -1;
  snprintf(path, sizeof path, "models.t5.cases.%s.input_ids", c);
  int32_t ids[256];
  int n = json_ints(tu_json_path(tu_expected(), path), ids, 256);
  CHECK(proj->ndim == 3 && proj->shape[2] == lm->embed_dim, "%s: projection shape", c);
  return lm->set_input(lm, proj->data, (int)proj->shape[1], ids, n);
}

static int argmax(const float *x, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

static void test_first_logits(model *m, const char *c, float *logits_out) {
  vb_lm *lm = m->lm;
  int V = lm->vocab_size;
  CHECK_OK(set_case_input(lm, c));
  float *logits = malloc((size_t)V * sizeof(float));
  CHECK_OK(lm->gen.prefill(lm, 1, logits));
  char path[256];
  snprintf(path, sizeof path, "model/t5/%s/logits_last", c);
  const vb_tensor_info *ref = tu_ref_tensor(path);
  if (ref) {
    CHECK(vb_tensor_numel(ref) == V, "%s: reference has %lld logits", c,
          (long long)vb_tensor_numel(ref));
    double maxabs, rel;
    size_t bad = tu_compare(logits, ref->data, (size_t)V, 5e-3, 1e-5, &maxabs, &rel);
    CHECK(bad == 0, "%s: %zu logits off, max abs err %g, rel l2 %g", c, bad, maxabs, rel);
    printf("%s: first-step logits max abs err %.3g (rel l2 %.2g)\n", c, maxabs, rel);
  }
  snprintf(path, sizeof path, "models.t5.cases.%s.forward.logits_last_argmax", c);
  cJSON *am = tu_json_path(tu_expected(), path);
  CHECK(am && argmax(logits, V) == am->valueint, "%s: argmax %d, expected %d", c, argmax(logits, V),
        am ? am->valueint : -1);
  if (logits_out) memcpy(logits_out, logits, (size_t)V * sizeof(float));
  free(logits);
}

/* The encoder output is deterministic, finite and not degenerate; the
 * cache-free decoder on [start] gives the prefill logits. */
static void test_encoder_and_full_decode(model *m, const char *c) {
  vb_lm *lm = m->lm;
  int V = lm->vocab_size, d = lm->embed_dim;
  CHECK_OK(set_case_input(lm, c));
  float *a = NULL, *b = NULL;
  int na = 0, nb = 0;
  CHECK_OK(vb_t5_encode(lm, &a, &na));
  CHECK_OK(vb_t5_encode(lm, &b, &nb));
  if (!a || !b) goto done;
  CHECK(na == 8 + 25 && nb == na, "%s: encoder rows %d / %d", c, na, nb);
  CHECK(memcmp(a, b, (size_t)na * d * sizeof(float)) == 0, "%s: encoder output not deterministic",
        c);
  int finite = 1;
  double ss = 0;
  for (size_t i = 0; i < (size_t)na * d; i++) {
    finite &= isfinite(a[i]);
    ss += (double)a[i] * a[i];
  }
  CHECK(finite && ss > 0, "%s: encoder output not finite or all zero", c);
  float *lp = malloc((size_t)V * sizeof(float)), *lf = malloc((size_t)V * sizeof(float));
  int32_t start = m->cfg.decoder_start_token_id;
  CHECK_OK(lm->gen.prefill(lm, 1, lp));
  CHECK_OK(vb_t5_decode_full(lm, &start, 1, lf));
  double maxabs;
  CHECK(tu_compare(lp, lf, (size_t)V, 1e-3, 1e-6, &maxabs, NULL) == 0,
        "%s: full decode vs prefill max abs %g", c, maxabs);
  free(lp);
  free(lf);
done:
  free(a);
  free(b);
}

/* Greedy decoding step by step with the cache equals recomputing the whole
 * decoder prefix from scratch at every step. */
static void test_cache_vs_recompute(model *m, const char *c) {
  vb_lm *lm = m->lm;
  int V = lm->vocab_size;
  CHECK_OK(set_case_input(lm, c));
  enum { STEPS = 24 };
  int32_t seq[STEPS + 1];
  seq[0] = m->cfg.decoder_start_token_id;
  float *step = malloc((size_t)V * sizeof(float));
  float *full = malloc((size_t)(STEPS + 1) * V * sizeof(float));
  float *cached = malloc((size_t)(STEPS + 1) * V * sizeof(float));
  CHECK_OK(lm->gen.prefill(lm, 1, step));
  memcpy(cached, step, (size_t)V * sizeof(float));
  for (int t = 1; t <= STEPS; t++) {
    /* follow the argmax but avoid EOS so the sequence keeps going */
    float *prev = cached + (size_t)(t - 1) * V;
    float eos = prev[2];
    prev[2] = -INFINITY;
    seq[t] = argmax(prev, V);
    prev[2] = eos;
    if (lm->gen.step(lm, &seq[t], 1, step) != 0) {
      CHECK_OK(-1);
      break;
    }
    memcpy(cached + (size_t)t * V, step, (size_t)V * sizeof(float));
  }
  CHECK_OK(vb_t5_decode_full(lm, seq, STEPS + 1, full));
  double maxabs, rel;
  size_t bad = tu_compare(cached, full, (size_t)(STEPS + 1) * V, 5e-3, 1e-5, &maxabs, &rel);
  CHECK(bad == 0, "%s: cached vs recomputed: %zu off, max abs %g", c, bad, maxabs);
  free(step);
  free(full);
  free(cached);
}

/* Beam caches survive reorders: each beam's step logits equal a from-scratch
 * decode of that beam's own history, through duplicating and permuting
 * reorders. */
static void test_reorder(model *m, const char *c) {
  vb_lm *lm = m->lm;
  int V = lm->vocab_size;
  enum { B = 3, T = 7 };
  CHECK_OK(set_case_input(lm, c));
  int32_t hist[B][T + 2];
  int len = 1;
  for (int b = 0; b < B; b++)
    hist[b][0] = m->cfg.decoder_start_token_id;
  float *logits = malloc((size_t)B * V * sizeof(float));
  float *full = malloc((size_t)(T + 2) * V * sizeof(float));
  CHECK_OK(lm->gen.prefill(lm, B, logits));
  static const int reorders[T][B] = {{0, 0, 0}, {2, 1, 0}, {1, 1, 2}, {0, 1, 2},
                                     {2, 2, 2}, {1, 0, 0}, {0, 2, 1}};
  for (int t = 0; t < T; t++) {
    int32_t tok[B];
    for (int b = 0; b < B; b++)
      tok[b] = (int32_t)(3 + 37 * t + 101 * b) % V;
    if (lm->gen.step(lm, tok, B, logits) != 0) {
      CHECK_OK(-1);
      break;
    }
    for (int b = 0; b < B; b++)
      hist[b][len] = tok[b];
    len++;
    for (int b = 0; b < B; b++) {
      CHECK_OK(vb_t5_decode_full(lm, hist[b], len, full));
      double maxabs;
      size_t bad = tu_compare(logits + (size_t)b * V, full + (size_t)(len - 1) * V, (size_t)V, 5e-3,
                              1e-5, &maxabs, NULL);
      CHECK(bad == 0, "%s: step %d beam %d differs from recompute (max abs %g)", c, t, b, maxabs);
    }
    CHECK_OK(lm->gen.reorder(lm, reorders[t], B));
    int32_t nh[B][T + 2];
    for (int b = 0; b < B; b++)
      memcpy(nh[b], hist[reorders[t][b]], sizeof nh[b]);
    memcpy(hist, nh, sizeof hist);
  }
  /* bad arguments are refused, not crashed on */
  int badsrc[B] = {0, 5, 1};
  CHECK(lm->gen.reorder(lm, badsrc, B) != 0, "reorder accepted source 5");
  int32_t badtok[B] = {0, (int32_t)V, 1};
  CHECK(lm->gen.step(lm, badtok, B, logits) != 0, "step accepted token %d", V);
  CHECK(lm->gen.step(lm, badtok, B + 1, logits) != 0, "step accepted more beams than prefill");
  free(logits);
  free(full);
}

static void test_generation(model *m, const char *c) {
  vb_lm *lm = m->lm;
  cJSON *root = tu_expected();
  char path[256];
  snprintf(path, sizeof path, "models.t5.cases.%s.generation", c);
  cJSON *gens = tu_json_path(root, path);
  CHECK(gens != NULL, "%s: no generation cases", c);
  cJSON *g;
  cJSON_ArrayForEach(g, gens) {
    cJSON *st = cJSON_GetObjectItemCaseSensitive(g, "settings");
    vb_gen_config gc;
    vb_gen_config_default(&gc);
    gc.eos_token_id = (int32_t)tu_json_path(root, "models.t5.generation_eos_token_id")->valueint;
    gc.pad_token_id = (int32_t)tu_json_path(root, "models.t5.generation_pad_token_id")->valueint;
    gc.start_token_id = (int32_t)tu_json_path(root, "models.t5.decoder_start_token_id")->valueint;
    cJSON *s;
    cJSON_ArrayForEach(s, st) {
      if (!strcmp(s->string, "max_new_tokens"))
        gc.max_new_tokens = s->valueint;
      else if (!strcmp(s->string, "num_beams"))
        gc.num_beams = s->valueint;
      else if (!strcmp(s->string, "repetition_penalty"))
        gc.repetition_penalty = (float)s->valuedouble;
      else if (!strcmp(s->string, "no_repeat_ngram_size"))
        gc.no_repeat_ngram_size = s->valueint;
      else if (!strcmp(s->string, "min_new_tokens"))
        gc.min_new_tokens = s->valueint;
      else if (!strcmp(s->string, "length_penalty"))
        gc.length_penalty = (float)s->valuedouble;
      else if (!strcmp(s->string, "temperature"))
        gc.temperature = (float)s->valuedouble;
      else
        CHECK(0, "%s/%s: unknown setting %s", c, g->string, s->string);
    }
    CHECK_OK(set_case_input(lm, c));
    vb_gen_result r;
    memset(&r, 0, sizeof r);
    double t0 = vb_now_ms();
    int rc = vb_generate(&lm->gen, lm, &gc, NULL, NULL, &r);
    double ms = vb_now_ms() - t0;
    if (!CHECK(rc == 0, "%s/%s: %s", c, g->string, vb_error_message())) continue;
    cJSON *seqs = cJSON_GetObjectItemCaseSensitive(g, "sequences");
    cJSON *want = cJSON_GetArrayItem(seqs, 0);
    int32_t exp[512];
    int ne = json_ints(want, exp, 512);
    int same = r.n >= 1 && r.lens[0] == ne;
    for (int i = 0; same && i < ne; i++)
      same = r.seqs[0][i] == exp[i];
    if (!CHECK(same, "%s/%s: generated sequence differs (len %d vs %d)", c, g->string,
               r.n >= 1 ? r.lens[0] : -1, ne)) {
      fprintf(stderr, "  got:");
      for (int i = 0; r.n >= 1 && i < r.lens[0]; i++)
        fprintf(stderr, " %d", r.seqs[0][i]);
      fprintf(stderr, "\n  exp:");
      for (int i = 0; i < ne; i++)
        fprintf(stderr, " %d", exp[i]);
      fprintf(stderr, "\n");
    }
    cJSON *scores = cJSON_GetObjectItemCaseSensitive(g, "sequences_scores");
    if (scores && r.n >= 1) {
      double es = cJSON_GetArrayItem(scores, 0)->valuedouble;
      CHECK(fabs(r.scores[0] - es) <= 1e-3, "%s/%s: sequences_score %g, expected %g", c, g->string,
            r.scores[0], es);
    }
    printf("%s/%s: %d tokens in %.1f ms\n", c, g->string, r.n >= 1 ? r.lens[0] : 0, ms);
    vb_gen_result_free(&r);
  }
}

/* The sharded safetensors copy and the .bin file (with the tied duplicates
 * present) give identical first-step logits. */
static void test_other_weight_files(const float *ref_logits, int V) {
  model sh;
  if (!CHECK_OK(model_open(&sh, tu_fixture("models/videoblip-flant5-tiny-sharded")))) {
    model_close(&sh);
    return;
  }
  float *l = malloc((size_t)V * sizeof(float));
  CHECK_OK(set_case_input(sh.lm, "video1_uniform"));
  CHECK_OK(sh.lm->gen.prefill(sh.lm, 1, l));
  CHECK(memcmp(l, ref_logits, (size_t)V * sizeof(float)) == 0, "sharded logits differ");
  model_close(&sh);

  model bin;
  memset(&bin, 0, sizeof bin);
  CHECK_OK(vb_config_load(tu_fixture("models/videoblip-flant5-tiny"), &bin.cfg));
  vb_tt_init(&bin.w.tt);
  CHECK_OK(
      vb_torch_bin_load(&bin.w.tt, tu_fixture("models/videoblip-flant5-tiny/pytorch_model.bin")));
  CHECK(vb_tt_find(&bin.w.tt, LM "encoder.embed_tokens.weight") != NULL,
        ".bin lacks the tied embedding duplicate");
  if (CHECK_OK(vb_t5_create(&bin.w, &bin.cfg, &bin.lm))) {
    CHECK_OK(set_case_input(bin.lm, "video1_uniform"));
    CHECK_OK(bin.lm->gen.prefill(bin.lm, 1, l));
    CHECK(memcmp(l, ref_logits, (size_t)V * sizeof(float)) == 0, ".bin logits differ");
  }
  model_close(&bin);
  free(l);
}

/* A weights object over src's tensors minus the `drop` names, plus `extra`
 * (data stays owned by src / the caller). */
typedef struct {
  const char *name;
  int ndim;
  int64_t shape[2];
  const void *data;
} extra_tensor;

static void table_variant(const vb_weights *src, const char *const *drop, int ndrop,
                          const extra_tensor *extra, int nextra, vb_weights *out) {
  memset(out, 0, sizeof *out);
  vb_tt_init(&out->tt);
  for (size_t i = 0; i < src->tt.count; i++) {
    const vb_tensor_info *t = &src->tt.items[i];
    int skip = 0;
    for (int k = 0; k < ndrop; k++)
      skip |= strcmp(t->name, drop[k]) == 0;
    if (!skip) vb_tt_add(&out->tt, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes);
  }
  for (int k = 0; k < nextra; k++) {
    int64_t n = 1;
    for (int j = 0; j < extra[k].ndim; j++)
      n *= extra[k].shape[j];
    vb_tt_add(&out->tt, extra[k].name, VB_DT_F32, extra[k].ndim, extra[k].shape, extra[k].data,
              (size_t)n * sizeof(float));
  }
}

static void expect_error(const vb_weights *src, const vb_model_config *cfg, const char *drop,
                         const extra_tensor *extra, const char *mention) {
  /* an extra tensor replaces the original of the same name */
  vb_weights w;
  const char *drops[2];
  int nd = 0;
  if (drop) drops[nd++] = drop;
  if (extra) drops[nd++] = extra->name;
  table_variant(src, drops, nd, extra, extra ? 1 : 0, &w);
  vb_lm *lm = NULL;
  int rc = vb_t5_create(&w, cfg, &lm);
  CHECK(rc != 0 && lm == NULL, "model built despite %s", mention);
  if (rc != 0)
    CHECK(strstr(vb_error_message(), mention) != NULL, "error \"%s\" does not name %s",
          vb_error_message(), mention);
  if (lm) lm->destroy(lm);
  vb_weights_close(&w);
}

static void test_errors(model *m) {
  const vb_weights *w = &m->w;
  const char *dec_k = LM "decoder.block.1.layer.1.EncDecAttention.k.weight";
  expect_error(w, &m->cfg, dec_k, NULL, dec_k);
  const char *rel = LM "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
  expect_error(w, &m->cfg, rel, NULL, rel);
  const char *ffn = LM "encoder.block.1.layer.1.DenseReluDense.wi_1.weight";
  expect_error(w, &m->cfg, ffn, NULL, ffn);
  const char *fln = LM "decoder.final_layer_norm.weight";
  expect_error(w, &m->cfg, fln, NULL, fln);
  expect_error(w, &m->cfg, LM "shared.weight", NULL, LM "shared.weight");
  expect_error(w, &m->cfg, LM "lm_head.weight", NULL, LM "lm_head.weight");

  static float junk[1000 * 32];
  extra_tensor bad_head = {LM "lm_head.weight", 2, {1000, 32}, junk};
  expect_error(w, &m->cfg, NULL, &bad_head, LM "lm_head.weight");
  extra_tensor bad_ln = {LM "encoder.block.0.layer.0.layer_norm.weight", 1, {31, 0}, junk};
  expect_error(w, &m->cfg, NULL, &bad_ln, LM "encoder.block.0.layer.0.layer_norm.weight");
  extra_tensor bad_q = {LM "decoder.block.0.layer.0.SelfAttention.q.weight", 2, {32, 31}, junk};
  expect_error(w, &m->cfg, NULL, &bad_q, LM "decoder.block.0.layer.0.SelfAttention.q.weight");

  /* a config that is not T5, or that the weights do not match */
  vb_model_config c = m->cfg;
  vb_lm *lm = NULL;
  c.lm_kind = VB_LM_OPT;
  CHECK(vb_t5_create(&m->w, &c, &lm) != 0 && !lm, "accepted an OPT config");
  c = m->cfg;
  c.t5.num_layers = 3;
  CHECK(vb_t5_create(&m->w, &c, &lm) != 0 && !lm &&
            strstr(vb_error_message(), LM "encoder.block.2.layer.0.SelfAttention.q.weight"),
        "3 encoder layers: %s", vb_error_message());
  c = m->cfg;
  c.t5.d_ff = 65;
  CHECK(vb_t5_create(&m->w, &c, &lm) != 0 && !lm &&
            strstr(vb_error_message(), "DenseReluDense.wi_0.weight"),
        "d_ff 65: %s", vb_error_message());
  c = m->cfg;
  c.decoder_start_token_id = 5000;
  CHECK(vb_t5_create(&m->w, &c, &lm) != 0 && !lm &&
            strstr(vb_error_message(), "decoder_start_token_id"),
        "start id 5000: %s", vb_error_message());

  /* interface misuse is refused */
  vb_lm *fresh = NULL;
  if (CHECK_OK(vb_t5_create(&m->w, &m->cfg, &fresh))) {
    float l[1001];
    int32_t t = 5;
    CHECK(fresh->gen.prefill(fresh, 1, l) != 0, "prefill without input accepted");
    CHECK(fresh->gen.step(fresh, &t, 1, l) != 0, "step without prefill accepted");
    int32_t bad_id = 1001;
    CHECK(fresh->set_input(fresh, NULL, 0, &bad_id, 1) != 0, "out-of-vocabulary prompt accepted");
    CHECK(fresh->set_input(fresh, NULL, 0, NULL, 0) != 0, "empty input accepted");
    fresh->destroy(fresh);
  }
}

/* Tied head: scaling the decoder output by d^-0.5 before the shared
 * embedding equals an untied head holding shared * d^-0.5. */
static void test_tied_head(model *m) {
  int V = m->lm->vocab_size, d = m->lm->embed_dim;
  const vb_tensor_info *shared = vb_tt_find(&m->w.tt, LM "shared.weight");
  if (!CHECK(shared != NULL, "no shared.weight")) return;
  vb_model_config tied = m->cfg;
  tied.t5.tie_word_embeddings = true;
  vb_lm *a = NULL, *b = NULL;
  float *scaled = malloc((size_t)V * d * sizeof(float));
  float s = (float)pow(d, -0.5);
  for (size_t i = 0; i < (size_t)V * d; i++)
    scaled[i] = ((const float *)shared->data)[i] * s;
  vb_weights wb;
  extra_tensor head = {LM "lm_head.weight", 2, {V, d}, scaled};
  const char *drop[1] = {LM "lm_head.weight"};
  table_variant(&m->w, drop, 1, &head, 1, &wb);
  /* tied model built without any lm_head tensor: it must not need one */
  vb_weights wa;
  table_variant(&m->w, drop, 1, NULL, 0, &wa);
  float *la = malloc((size_t)V * sizeof(float)), *lb = malloc((size_t)V * sizeof(float));
  if (CHECK_OK(vb_t5_create(&wa, &tied, &a)) && CHECK_OK(vb_t5_create(&wb, &m->cfg, &b))) {
    CHECK_OK(set_case_input(a, "image"));
    CHECK_OK(set_case_input(b, "image"));
    CHECK_OK(a->gen.prefill(a, 1, la));
    CHECK_OK(b->gen.prefill(b, 1, lb));
    double maxabs;
    CHECK(tu_compare(la, lb, (size_t)V, 1e-4, 1e-5, &maxabs, NULL) == 0,
          "tied head differs from pre-scaled untied head (max abs %g)", maxabs);
  }
  if (a) a->destroy(a);
  if (b) b->destroy(b);
  vb_weights_close(&wa);
  vb_weights_close(&wb);
  free(la);
  free(lb);
  free(scaled);
}

/* A non-gated (relu, "wi"/"wo") T5 builds from "wi" tensors and refuses
 * gated names; run it to check the path produces finite logits. */
static void test_relu_ffn(model *m) {
  vb_model_config c = m->cfg;
  c.t5.gated = false;
  strcpy(c.t5.dense_act, "relu");
  vb_weights w;
  extra_tensor extra[4];
  const char *drop[8];
  int nd = 0;
  char names[4][128], wi0[4][128], wi1[4][128];
  for (int i = 0; i < 2; i++) {
    const char *stack = i ? "decoder" : "encoder";
    int ff = i ? 2 : 1;
    for (int l = 0; l < 2; l++) {
      int k = i * 2 + l;
      snprintf(wi0[k], sizeof wi0[k], LM "%s.block.%d.layer.%d.DenseReluDense.wi_0.weight", stack,
               l, ff);
      snprintf(wi1[k], sizeof wi1[k], LM "%s.block.%d.layer.%d.DenseReluDense.wi_1.weight", stack,
               l, ff);
      snprintf(names[k], sizeof names[k], LM "%s.block.%d.layer.%d.DenseReluDense.wi.weight", stack,
               l, ff);
      const vb_tensor_info *t = vb_tt_find(&m->w.tt, wi0[k]);
      extra[k] = (extra_tensor){names[k], 2, {t->shape[0], t->shape[1]}, t->data};
      drop[nd++] = wi0[k];
      drop[nd++] = wi1[k];
    }
  }
  table_variant(&m->w, drop, nd, extra, 4, &w);
  vb_lm *lm = NULL;
  if (CHECK_OK(vb_t5_create(&w, &c, &lm))) {
    int V = lm->vocab_size;
    float *l = malloc((size_t)V * sizeof(float));
    CHECK_OK(set_case_input(lm, "image"));
    CHECK_OK(lm->gen.prefill(lm, 2, l));
    int finite = 1;
    for (int i = 0; i < V; i++)
      finite &= isfinite(l[i]);
    CHECK(finite, "relu T5 logits not finite");
    int32_t tok[2] = {5, 6};
    float *l2 = malloc((size_t)2 * V * sizeof(float));
    CHECK_OK(lm->gen.step(lm, tok, 2, l2));
    free(l2);
    free(l);
    lm->destroy(lm);
  }
  vb_weights_close(&w);
  /* the gated config over the relu table names a missing gated tensor */
  lm = NULL;
  table_variant(&m->w, drop, nd, extra, 4, &w);
  CHECK(vb_t5_create(&w, &m->cfg, &lm) != 0 && strstr(vb_error_message(), "wi_0.weight"),
        "gated config over relu weights: %s", vb_error_message());
  if (lm) lm->destroy(lm);
  vb_weights_close(&w);
}

int main(void) {
  model m;
  if (!CHECK_OK(model_open(&m, tu_fixture("models/videoblip-flant5-tiny")))) {
    model_close(&m);
    return tu_finish();
  }
  CHECK(m.lm->kind == VB_LM_T5 && m.lm->embed_dim == 32 && m.lm->vocab_size == 1001 &&
            m.lm->max_positions == 0 && m.lm->gen.vocab_size == 1001,
        "model description");
  int V = m.lm->vocab_size;
  float *first = malloc((size_t)V * sizeof(float));
  for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
    test_first_logits(&m, k_cases[i], i == 0 ? first : NULL);
    test_encoder_and_full_decode(&m, k_cases[i]);
    test_cache_vs_recompute(&m, k_cases[i]);
  }
  test_reorder(&m, "video1_uniform");
  for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++)
    test_generation(&m, k_cases[i]);
  test_other_weight_files(first, V);
  test_tied_head(&m);
  test_relu_ffn(&m);
  test_errors(&m);
  free(first);
  model_close(&m);
  return tu_finish();
}
