/* 4-bit accuracy on the fixtures (issue 23): the fixture models converted to
 * q4_0, their language models run from transformers' language_projection
 * and prompt ids with bf16 compute (the Q4_0 kernels, int8 activations) and
 * with f32 compute (the 4-bit weights dequantized), against the f32
 * directory: first-step logits' relative L2 error, and greedy_20's tokens
 * against transformers' where the case's recorded margin allows it, i.e. is
 * more than twice the largest first-step logit error (the others are
 * printed with their margins, not asserted). The kernels' own error (int8
 * activations, bf16 tiles) is the distance between the two q4_0 runs.
 * Measured here: 4-bit weights cost the tiny random fixtures 16-19% of their
 * logits (q8_0: ~1%): their 32-wide layers hold uniform random values, for
 * which a 4-bit step is large, and their logits reach 1.8e3, so no greedy
 * margin (3.2-86) is under twice the error (~250). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "lm/lm.h"
#include "runtime/cpu.h"
#include "runtime/dtype.h"
#include "synth_model.h"
#include "testutil.h"
#include "vblip.h"

typedef struct {
  float *logits;
  int32_t greedy[64];
  int n_greedy;
  int vocab;
} lm_out;

/* quant: the layers quantized at load (--dtype q8_0 / q4_0), or VB_DT_F32. */
static int run_lm_q(const char *dir, const char *weights, vb_compute compute, vb_dtype quant,
                    const char *key, const char *case_name, lm_out *o) {
  memset(o, 0, sizeof *o);
  vb_model_config cfg;
  vb_weights w;
  if (!CHECK_OK(vb_config_load(dir, &cfg)) || !CHECK_OK(vb_weights_open(weights, &w))) return -1;
  w.compute = compute;
  w.quant = quant;
  vb_lm *lm = NULL;
  int rc = -1;
  if (CHECK_OK(cfg.lm_kind == VB_LM_T5 ? vb_t5_create(&w, &cfg, &lm)
                                       : vb_opt_create(&w, &cfg, &lm))) {
    char path[256];
    snprintf(path, sizeof path, "models.%s.cases.%s", key, case_name);
    cJSON *jids = cJSON_GetObjectItem(tu_json_path(tu_expected(), path), "input_ids");
    int n_ids = cJSON_GetArraySize(jids);
    int32_t ids[512];
    for (int i = 0; i < n_ids && i < 512; i++)
      ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
    snprintf(path, sizeof path, "model/%s/%s/language_projection", key, case_name);
    const vb_tensor_info *rp = tu_ref_tensor(path);
    o->vocab = lm->vocab_size;
    o->logits = malloc((size_t)lm->vocab_size * sizeof(float));
    if (rp && o->logits && CHECK_OK(lm->set_input(lm, rp->data, (int)rp->shape[1], ids, n_ids)) &&
        CHECK_OK(lm->gen.prefill(lm, 1, o->logits))) {
      o->n_greedy = tu_greedy(lm, &cfg, rp->data, (int)rp->shape[1], ids, n_ids, 20, o->greedy, 64);
      rc = 0;
    }
    lm->destroy(lm);
  }
  vb_weights_close(&w);
  return rc;
}

static int run_lm(const char *dir, const char *weights, vb_compute compute, const char *key,
                  const char *case_name, lm_out *o) {
  return run_lm_q(dir, weights, compute, VB_DT_F32, key, case_name, o);
}

/* --dtype q8_0 / q4_0 on a directory: the language model quantized at load
 * must be the converted file's, logit for logit. */
static void check_quant_at_load(const char *key, const char *dir, const char *gguf, vb_dtype q,
                                const char *case_name) {
  lm_out a, b;
  if (run_lm_q(dir, dir, VB_COMPUTE_BF16, q, key, case_name, &a) != 0) return;
  if (run_lm(dir, gguf, VB_COMPUTE_BF16, key, case_name, &b) == 0) {
    int same = memcmp(a.logits, b.logits, (size_t)a.vocab * sizeof(float)) == 0 &&
               a.n_greedy == b.n_greedy &&
               memcmp(a.greedy, b.greedy, (size_t)a.n_greedy * sizeof(int32_t)) == 0;
    printf("%s %s: %s at load %s the converted file's logits and greedy tokens\n", key, case_name,
           vb_dtype_name(q), same ? "gives" : "DIFFERS from");
    CHECK(same, "%s %s: %s quantized at load differs from the converted file", key, case_name,
          vb_dtype_name(q));
    free(b.logits);
  }
  free(a.logits);
}

static void check_case(const char *key, const char *dir, const char *gguf, const char *case_name) {
  lm_out ref;
  if (run_lm(dir, dir, VB_COMPUTE_F32, key, case_name, &ref) != 0) return;
  char path[256];
  snprintf(path, sizeof path, "models.%s.cases.%s.generation.greedy_20", key, case_name);
  cJSON *gen = tu_json_path(tu_expected(), path);
  cJSON *want = cJSON_GetArrayItem(cJSON_GetObjectItem(gen, "sequences"), 0);
  double margin = cJSON_GetObjectItem(gen, "min_margin")->valuedouble;
  int n = cJSON_GetArraySize(want);
  const struct {
    const char *name;
    vb_compute compute;
  } modes[] = {{"bf16 compute (q4_0 kernels)", VB_COMPUTE_BF16},
               {"f32 compute (dequantized)", VB_COMPUTE_F32}};
  lm_out first = {0};
  for (size_t k = 0; k < 2; k++) {
    lm_out q;
    if (run_lm(dir, gguf, modes[k].compute, key, case_name, &q) != 0) continue;
    double rel = tu_rel_l2f(q.logits, ref.logits, (size_t)ref.vocab);
    double err = tu_max_abs_diff(q.logits, ref.logits, (size_t)ref.vocab);
    int same = q.n_greedy == n;
    for (int i = 0; same && i < n; i++)
      same = q.greedy[i] == cJSON_GetArrayItem(want, i)->valueint;
    int asserted = margin > 2 * err;
    printf("%s %s q4_0, %s: first-step logits relative error %.2e (max abs %.3g); greedy_20 margin "
           "%.3g: "
           "tokens %s%s\n",
           key, case_name, modes[k].name, rel, err, margin,
           same ? "equal to transformers'" : "differ",
           asserted ? "" : " (not asserted: the margin is under twice the logit error)");
    /* measured 0.16-0.19 */
    CHECK(rel < 0.25 && rel > 0, "%s %s q4_0 %s: logits relative error %g", key, case_name,
          modes[k].name, rel);
    if (asserted)
      CHECK(same,
            "%s %s q4_0 %s: greedy_20 differs though its margin %g is over twice the error %g", key,
            case_name, modes[k].name, margin, err);
    if (k == 0) {
      first = q;
      continue;
    }
    if (first.logits) { /* the kernels against the dequantized weights: measured 0.7-1.5% */
      double kr = tu_rel_l2f(first.logits, q.logits, (size_t)ref.vocab);
      printf("%s %s q4_0: the kernels' own error (bf16 compute vs f32 compute) %.2e\n", key,
             case_name, kr);
      CHECK(kr < 3e-2, "%s %s q4_0: kernels vs dequantized weights %g", key, case_name, kr);
    }
    free(q.logits);
  }
  free(first.logits);
  free(ref.logits);
}

/* ---- Q4_K (issue 23) ----
 * The fixtures' layers are 32 and 64 wide: no whole 256-value super-block,
 * so a q4_k conversion stores them Q4_0 (the rule for such rows) and is the
 * q4_0 file, logit for logit (checked below). Q4_K itself is measured on
 * synthetic language models 256 and more wide (tu_synth_model: the
 * fixture's vision side and vocabulary, random layers): first-step logits
 * from a random prefix and prompt against the f32 directory, for q4_0 and
 * q4_k files with bf16 compute (the 4-bit kernels) and the q4_k file with f32
 * compute (its weights dequantized). */

/* First-step logits of the language model in `weights` (dir's config). */
static float *synth_logits(const char *dir, const char *weights, vb_compute compute, vb_dtype quant,
                           int *vocab) {
  vb_model_config cfg;
  vb_weights w;
  if (!CHECK_OK(vb_config_load(dir, &cfg)) || !CHECK_OK(vb_weights_open(weights, &w))) return NULL;
  w.compute = compute;
  w.quant = quant;
  vb_lm *lm = NULL;
  float *logits = NULL;
  if (CHECK_OK(cfg.lm_kind == VB_LM_T5 ? vb_t5_create(&w, &cfg, &lm)
                                       : vb_opt_create(&w, &cfg, &lm))) {
    int nq = 8, width = lm->embed_dim;
    tu_rng rng = {77};
    float *prefix = tu_rand_buf(&rng, (size_t)nq * width, 1.0f);
    int32_t ids[6] = {2, 101, 713, 2054, 9, 400};
    for (int i = 0; i < 6; i++)
      ids[i] %= lm->vocab_size;
    *vocab = lm->vocab_size;
    logits = malloc((size_t)lm->vocab_size * sizeof(float));
    if (!CHECK_OK(lm->set_input(lm, prefix, nq, ids, 6)) ||
        !CHECK_OK(lm->gen.prefill(lm, 1, logits)))
      free(logits), logits = NULL;
    free(prefix);
    lm->destroy(lm);
  }
  vb_weights_close(&w);
  return logits;
}

static vb_dtype stored_dtype(const char *gguf, const char *name) {
  vb_weights w;
  if (!CHECK_OK(vb_weights_open(gguf, &w))) return VB_DT_COUNT;
  const vb_tensor_info *t = vb_tt_find(&w.tt, name);
  vb_dtype dt = t ? t->dtype : VB_DT_COUNT;
  vb_weights_close(&w);
  return dt;
}

static void check_synth_q4k(const char *label, const char *fixture, const char *text_json,
                            const char *wide, const char *narrow) {
  char dir[512], g0[560], gk[560];
  snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), label);
  snprintf(g0, sizeof g0, "%s/%s-q4_0.gguf", tu_tmpdir(), label);
  snprintf(gk, sizeof gk, "%s/%s-q4_k.gguf", tu_tmpdir(), label);
  if (tu_synth_model(tu_fixture(fixture), dir, text_json, 23, 1) != 0) return;
  if (CHECK(vblip_convert(dir, g0, "q4_0", 0) == 0, "convert: %s", vblip_last_error()) &&
      CHECK(vblip_convert(dir, gk, "q4_k", 0) == 0, "convert: %s", vblip_last_error())) {
    vb_dtype dw = stored_dtype(gk, wide), dn = narrow ? stored_dtype(gk, narrow) : VB_DT_Q4_0;
    CHECK(dw == VB_DT_Q4_K, "%s: %s stored %s, not Q4_K", label, wide, vb_dtype_name(dw));
    CHECK(dn == VB_DT_Q4_0, "%s: %s (not whole super-blocks) stored %s, not Q4_0", label,
          narrow ? narrow : "", vb_dtype_name(dn));
    int vocab = 0;
    float *ref = synth_logits(dir, dir, VB_COMPUTE_F32, VB_DT_F32, &vocab);
    float *a = synth_logits(dir, g0, VB_COMPUTE_BF16, VB_DT_F32, &vocab);
    float *b = synth_logits(dir, gk, VB_COMPUTE_BF16, VB_DT_F32, &vocab);
    float *c = synth_logits(dir, gk, VB_COMPUTE_F32, VB_DT_F32, &vocab);
    float *d = synth_logits(dir, dir, VB_COMPUTE_BF16, VB_DT_Q4_K, &vocab);
    if (ref && a && b && c && d) {
      double e0 = tu_rel_l2f(a, ref, vocab), ek = tu_rel_l2f(b, ref, vocab),
             ekf = tu_rel_l2f(c, ref, vocab);
      printf("%s: first-step logits relative error vs f32: q4_0 %.4f, q4_k %.4f (bf16 compute, "
             "4-bit kernels); q4_k dequantized (f32 compute) %.4f\n",
             label, e0, ek, ekf);
      CHECK(ek > 0 && ek < e0, "%s: q4_k logits error %.4f not below q4_0's %.4f", label, ek, e0);
      CHECK(fabs(ekf - ek) < 0.25 * ek, "%s: q4_k kernels %.4f vs dequantized %.4f", label, ek,
            ekf);
      CHECK(memcmp(b, d, (size_t)vocab * sizeof *b) == 0,
            "%s: --dtype q4_k at load differs from the converted file", label);
    }
    free(ref), free(a), free(b), free(c), free(d);
  }
  remove(g0), remove(gk);
  tu_synth_remove(dir);
}

/* The fixtures converted to q4_k: every language-model layer falls back to
 * Q4_0 (32 and 64 wide), so the file gives the q4_0 file's logits. */
static void check_fixture_q4k(const char *key, const char *dir) {
  char g0[512], gk[512];
  snprintf(g0, sizeof g0, "%s/%s-fx-q4_0.gguf", tu_tmpdir(), key);
  snprintf(gk, sizeof gk, "%s/%s-fx-q4_k.gguf", tu_tmpdir(), key);
  if (CHECK(vblip_convert(dir, g0, "q4_0", 0) == 0, "convert: %s", vblip_last_error()) &&
      CHECK(vblip_convert(dir, gk, "q4_k", 0) == 0, "convert: %s", vblip_last_error())) {
    lm_out a, b;
    if (run_lm(dir, g0, VB_COMPUTE_BF16, key, "image", &a) == 0) {
      if (run_lm(dir, gk, VB_COMPUTE_BF16, key, "image", &b) == 0) {
        CHECK(memcmp(a.logits, b.logits, (size_t)a.vocab * sizeof(float)) == 0,
              "%s: the q4_k file (all rows narrower than 256: Q4_0) differs from the q4_0 file",
              key);
        free(b.logits);
      }
      free(a.logits);
    }
  }
  remove(g0), remove(gk);
}

int main(void) {
  const char *models[][2] = {{"opt", "models/videoblip-opt-tiny"},
                             {"t5", "models/videoblip-flant5-tiny"}};
  const char *cases[] = {"video1_uniform", "image"};
  for (size_t i = 0; i < 2; i++) {
    char gguf[512];
    snprintf(gguf, sizeof gguf, "%s/%s-q4_0.gguf", tu_tmpdir(), models[i][0]);
    if (!CHECK(vblip_convert(tu_fixture(models[i][1]), gguf, "q4_0", 0) == 0, "convert: %s",
               vblip_last_error()))
      continue;
    for (size_t j = 0; j < 2; j++)
      check_case(models[i][0], tu_fixture(models[i][1]), gguf, cases[j]);
    check_quant_at_load(models[i][0], tu_fixture(models[i][1]), gguf, VB_DT_Q4_0, "image");
    remove(gguf);
    snprintf(gguf, sizeof gguf, "%s/%s-q8_0.gguf", tu_tmpdir(), models[i][0]);
    if (CHECK(vblip_convert(tu_fixture(models[i][1]), gguf, "q8_0", 0) == 0, "convert: %s",
              vblip_last_error()))
      check_quant_at_load(models[i][0], tu_fixture(models[i][1]), gguf, VB_DT_Q8_0, "image");
    remove(gguf);
    check_fixture_q4k(models[i][0], tu_fixture(models[i][1]));
  }
  /* OPT: 256 wide, ffn 1024 (every layer Q4_K); T5: d_model 256, d_ff 320
   * (wo's rows of 320: Q4_0) */
  check_synth_q4k("opt-256", "models/videoblip-opt-tiny",
                  "{\"hidden_size\":256,\"word_embed_proj_dim\":256,\"ffn_dim\":1024,"
                  "\"num_hidden_layers\":2,\"num_attention_heads\":4}",
                  "language_model.model.decoder.layers.1.fc2.weight", NULL);
  check_synth_q4k("t5-256", "models/videoblip-flant5-tiny",
                  "{\"d_model\":256,\"num_heads\":4,\"d_kv\":64,\"d_ff\":320,"
                  "\"num_layers\":2,\"num_decoder_layers\":2}",
                  "language_model.decoder.block.1.layer.2.DenseReluDense.wi_0.weight",
                  "language_model.decoder.block.1.layer.2.DenseReluDense.wo.weight");
  return tu_finish();
}
