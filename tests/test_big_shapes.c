/* The bigger checkpoints' shapes, scaled down (issue 23): OPT-6.7b-like
 * (wider, more layers, other head counts) and Flan-T5-XXL-like (d_kv not
 * d_model / heads, encoder and decoder of different depths) language models on
 * the fixtures' vision encoder and Q-Former, as sharded safetensors
 * directories. Each loads (every tensor is looked up with the shape its config
 * gives), answers, and its converted GGUF gives the same outputs (f32 exactly,
 * q8_0 within tolerance); the OPT head count changes the outputs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "synth_model.h"
#include "testutil.h"
#include "vblip.h"

#define IMAGE "media/image_rgb_203x150.png"

typedef struct {
  int32_t tokens[16];
  int n_tokens;
  double score[2]; /* mean log-likelihood of two candidates */
  vblip_model_info info;
} outputs;

static const char *const k_candidates[2] = {"a person is cutting something", "the cat sleeps"};

static int run(const char *model, outputs *o) {
  memset(o, 0, sizeof *o);
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32;
  lo.progress = 0;
  vblip_model *m = vblip_model_load(model, &lo);
  if (!CHECK(m != NULL, "load %s: %s", model, vblip_last_error())) return -1;
  vblip_model_get_info(m, &o->info);
  vblip_sampling s;
  vblip_sampling_default(&s);
  s.n_frames = 1;
  vblip_video v;
  vblip_input *in = NULL;
  vblip_score sc[2] = {{0}};
  int rc = -1;
  if (CHECK(vblip_video_load(m, tu_fixture(IMAGE), &s, &v) == 0, "%s", vblip_last_error()) &&
      CHECK(vblip_video_encode(m, &v) == 0, "%s", vblip_last_error())) {
    vblip_gen_params p;
    vblip_gen_params_default(&p);
    p.num_beams = 1;
    p.max_new_tokens = 8;
    vblip_answer a;
    if (CHECK(vblip_generate(m, &v, "Question: what is it? Answer:", &p, NULL, NULL, &a) == 0, "%s",
              vblip_last_error())) {
      o->n_tokens = a.n_tokens < 16 ? a.n_tokens : 16;
      memcpy(o->tokens, a.token_ids, (size_t)o->n_tokens * sizeof(int32_t));
      vblip_answer_free(&a);
      in = vblip_input_new();
      if (CHECK(in && vblip_input_add_video(in, &v) == 0 &&
                    vblip_input_add_text(in, "Question: what is it? Answer:") == 0,
                "input: %s", vblip_last_error()) &&
          CHECK(vblip_score_candidates(m, in, k_candidates, 2, sc) == 0, "score: %s",
                vblip_last_error())) {
        o->score[0] = sc[0].mean_log_likelihood;
        o->score[1] = sc[1].mean_log_likelihood;
        vblip_score_free(&sc[0]);
        vblip_score_free(&sc[1]);
        rc = 0;
      }
    }
  }
  vblip_input_free(in);
  vblip_video_free(&v);
  vblip_model_free(m);
  return rc;
}

static int same_tokens(const outputs *a, const outputs *b) {
  return a->n_tokens == b->n_tokens &&
         memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t)) == 0;
}

typedef struct {
  const char *label, *fixture, *text_json;
  int lm_width, shards;
} shape;

/* The directory, its f32 and q8_0 GGUF files: the same model. */
static void check_shape(const shape *s, outputs *dir_out) {
  char dir[512], gguf[560];
  snprintf(dir, sizeof dir, "%s/%s", tu_tmpdir(), s->label);
  if (tu_synth_model(tu_fixture(s->fixture), dir, s->text_json, 23, s->shards) != 0) return;
  outputs d;
  if (run(dir, &d) == 0) {
    *dir_out = d;
    CHECK(d.info.lm_width == s->lm_width, "%s: lm width %d, config says %d", s->label,
          d.info.lm_width, s->lm_width);
    CHECK(d.n_tokens > 0 && isfinite(d.score[0]) && d.score[0] < 0, "%s: no answer or bad score %g",
          s->label, d.score[0]);
    printf("%s: directory (%d shards) answers %d tokens, scores %.6f %.6f\n", s->label, s->shards,
           d.n_tokens, d.score[0], d.score[1]);
    const char *types[2] = {"f32", "q8_0"};
    for (int t = 0; t < 2; t++) {
      snprintf(gguf, sizeof gguf, "%s-%s.gguf", dir, types[t]);
      outputs g;
      if (!CHECK(vblip_convert(dir, gguf, types[t], 0) == 0, "%s convert %s: %s", s->label,
                 types[t], vblip_last_error()) ||
          run(gguf, &g) != 0) {
        remove(gguf);
        continue;
      }
      double e0 = fabs(g.score[0] - d.score[0]), e1 = fabs(g.score[1] - d.score[1]);
      printf("%s %s gguf: tokens %s, score differences %.2e %.2e\n", s->label, types[t],
             same_tokens(&g, &d) ? "identical" : "differ", e0, e1);
      if (t == 0) {
        CHECK(same_tokens(&g, &d) && g.score[0] == d.score[0] && g.score[1] == d.score[1],
              "%s f32 gguf differs from the directory", s->label);
      } else {
        /* q8_0: the mean log-likelihoods within 2% of their size (measured < 0.5%) */
        CHECK(e0 < 0.02 * fabs(d.score[0]) && e1 < 0.02 * fabs(d.score[1]) && e0 + e1 > 0,
              "%s q8_0 gguf scores %g %g vs %g %g", s->label, g.score[0], g.score[1], d.score[0],
              d.score[1]);
      }
      CHECK(g.info.lm_width == d.info.lm_width && g.info.vocab_size == d.info.vocab_size,
            "%s %s gguf: other sizes", s->label, types[t]);
      remove(gguf);
    }
  }
  tu_synth_remove(dir);
}

int main(void) {
  /* OPT-6.7b: 32 layers x 4096 wide, 32 heads of 128, ffn 16384. Scaled down:
   * 3 layers x 64, heads of 16 or 8 dims, ffn 4x; the fixture's vocabulary. */
  static const shape opt_a = {"opt-6.7b-like-4heads", "models/videoblip-opt-tiny",
                              "{\"hidden_size\":64,\"word_embed_proj_dim\":64,\"ffn_dim\":256,"
                              "\"num_hidden_layers\":3,\"num_attention_heads\":4}",
                              64, 3};
  static const shape opt_b = {"opt-6.7b-like-8heads", "models/videoblip-opt-tiny",
                              "{\"hidden_size\":64,\"word_embed_proj_dim\":64,\"ffn_dim\":256,"
                              "\"num_hidden_layers\":3,\"num_attention_heads\":8}",
                              64, 2};
  /* Flan-T5-XXL: d_model 4096, 64 heads of d_kv 64, d_ff 10240, 24 + 24 blocks.
   * Scaled down: d_model 48 with 6 heads of 12 (inner 72, not d_model), d_ff 80,
   * 3 encoder and 2 decoder blocks. */
  static const shape t5 = {"t5-xxl-like", "models/videoblip-flant5-tiny",
                           "{\"d_model\":48,\"num_heads\":6,\"d_kv\":12,\"d_ff\":80,"
                           "\"num_layers\":3,\"num_decoder_layers\":2}",
                           48, 3};
  outputs a = {0}, b = {0}, c = {0};
  check_shape(&opt_a, &a);
  check_shape(&opt_b, &b);
  check_shape(&t5, &c);
  /* the same weights (same seed and shapes) with twice the heads: other attention */
  if (a.n_tokens && b.n_tokens)
    CHECK(a.score[0] != b.score[0] && a.score[1] != b.score[1],
          "OPT with 4 and 8 heads scored alike (%g %g): the head count is not used", a.score[0],
          b.score[0]);
  return tu_finish();
}
