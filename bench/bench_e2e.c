/* End to end: `vblip caption`'s pipeline (src/models/videoblip.c) on a real
 * video with a synthesized model: decode and sample frames, preprocess, vision
 * encoder, Q-Former, projection, then greedy generation through vb_generate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "generate/generate.h"
#include "kernels/kernels.h"
#include "vision/qformer.h"
#include "vision/vit.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "video/preprocess.h"
#include "video/video.h"

/* The language model behind generation's interface, timing its calls. */
typedef struct {
  vb_lm *lm;
  double ms_prefill, ms_steps;
  int steps;
} timed_lm;

static int timed_prefill(void *ctx, int n_beams, float *logits) {
  timed_lm *t = ctx;
  double t0 = vb_now_ms();
  int rc = t->lm->gen.prefill(t->lm, n_beams, logits);
  t->ms_prefill += vb_now_ms() - t0;
  return rc;
}

static int timed_step(void *ctx, const int32_t *tokens, int n_beams, float *logits) {
  timed_lm *t = ctx;
  double t0 = vb_now_ms();
  int rc = t->lm->gen.step(t->lm, tokens, n_beams, logits);
  t->ms_steps += vb_now_ms() - t0;
  t->steps++;
  return rc;
}

static int timed_reorder(void *ctx, const int *src, int n_beams) { /* vb_generate requires it */
  timed_lm *t = ctx;
  return t->lm->gen.reorder(t->lm, src, n_beams);
}

typedef struct {
  vb_vit vit;
  vb_qformer qf;
  vb_linear proj;
  vb_lm *lm;
} pipeline;

static int caption(pipeline *p, const vb_model_config *c, const char *video, int n_frames,
                   int n_tokens, bench_e2e_result *res, bench_e2e_run *r) {
  double t0 = vb_now_ms();
  vb_sampling s;
  vb_sampling_default(&s); /* uniform over the whole video, as vblip caption */
  s.n_frames = n_frames;
  vb_frames f;
  if (vb_video_read(video, &s, &f) != 0) return -1;
  double t1 = vb_now_ms();
  vb_image_config ic;
  vb_image_config_default(&ic);
  int T = f.count, S = ic.width, seq = p->vit.seq, D = c->vision.hidden_size;
  int Q = c->num_query_tokens, H = c->qformer.hidden_size, E = c->lm_hidden;
  res->frames = T, res->width = f.width, res->height = f.height;
  float *pix = vb_malloc((size_t)3 * T * S * S * sizeof(float));
  float *vis = vb_malloc((size_t)T * seq * D * sizeof(float));
  float *q = vb_malloc((size_t)Q * H * sizeof(float));
  float *proj = vb_malloc((size_t)Q * E * sizeof(float));
  if (!pix || !vis || !q || !proj || vb_preprocess_frames(&f, &ic, NULL, pix) != 0) return -1;
  vb_frames_free(&f);
  double t2 = vb_now_ms();
  if (vb_vit_forward(&p->vit, pix, T, vis) != 0) return -1;
  double t3 = vb_now_ms();
  if (vb_qformer_forward(&p->qf, vis, T * seq, q) != 0) return -1;
  if (vb_linear_forward(&p->proj, q, Q, proj) != 0) return -1;
  double t4 = vb_now_ms();
  /* vblip caption's default prompt is empty: the tokenizer's BOS (OPT) or EOS (T5) alone */
  int32_t id;
  bench_prompt_ids(c, &id, 1);
  if (p->lm->set_input(p->lm, proj, Q, &id, 1) != 0) return -1;
  vb_gen_config g;
  vb_gen_config_default(&g);
  g.max_new_tokens = g.min_new_tokens = n_tokens; /* random weights must not stop early at EOS */
  g.eos_token_id = c->eos_token_id;
  g.pad_token_id = c->pad_token_id;
  g.start_token_id = c->lm_kind == VB_LM_OPT ? c->bos_token_id : c->decoder_start_token_id;
  timed_lm t = {.lm = p->lm};
  vb_lm_iface iface = {.vocab_size = p->lm->gen.vocab_size,
                       .prefill = timed_prefill,
                       .step = timed_step,
                       .reorder = timed_reorder};
  vb_gen_result out;
  if (vb_generate(&iface, &t, &g, NULL, NULL, &out) != 0) return -1;
  double t5 = vb_now_ms();
  *r = (bench_e2e_run){.ms_decode = t1 - t0,
                       .ms_preprocess = t2 - t1,
                       .ms_vision = t3 - t2,
                       .ms_qformer = t4 - t3,
                       .ms_prefill = t.ms_prefill,
                       .ms_steps = t.ms_steps,
                       .ms_total = t5 - t0,
                       .steps = t.steps,
                       .new_tokens = out.lens[0] - 1}; /* sequences start with the start token */
  vb_gen_result_free(&out);
  free(pix), free(vis), free(q), free(proj);
  return 0;
}

int bench_e2e(const vb_model_config *c, vb_dtype lm_dt, bench_vision vision, const char *video,
              int n_frames, int n_tokens, bench_e2e_result *r) {
  int vision_int8 = vision == BENCH_VISION_INT8;
  vb_weights w;
  pipeline p;
  bench_weights_new(&w, VB_COMPUTE_BF16, 1);
  if (bench_build_vision(&w, c, VB_DT_BF16) != 0 || bench_build_qformer(&w, c, VB_DT_BF16) != 0 ||
      bench_build_lm(&w, c, lm_dt) != 0)
    return -1;
  r->weight_bytes = r->held_bytes = bench_weight_bytes(&w);
  if (bench_weights_via_file(&w) != 0) return -1;
  /* prepared as vblip_model_load does: vision and Q-Former packed (int8 as
   * --vision-dtype int8 quantizes at load), the projection and the language
   * model plain */
  w.int8 = vision_int8;
  w.int8_kinds = vision_int8 ? VB_I8_DEFAULT : 0;
  vb_compute lm_compute = w.compute;
  /* as the loader: f32 vision asked for, or int8 vision whose other products
   * (Q-Former) follow the vision compute type, f32 where bf16 products are slow */
  if (vision == BENCH_VISION_F32 || (vision_int8 && !vb_cpu_bf16_products_fast()))
    w.compute = VB_COMPUTE_F32;
  for (size_t i = 0; w.compute == VB_COMPUTE_F32 && i < w.tt.count; i++) {
    const vb_tensor_info *t = &w.tt.items[i]; /* widened to f32: 2 more bytes per value */
    if (t->dtype == VB_DT_BF16 && t->ndim == 2 &&
        ((!vision_int8 && strncmp(t->name, "vision_model.", 13) == 0) ||
         strncmp(t->name, "qformer.", 8) == 0))
      r->held_bytes += (double)t->nbytes;
  }
  if (vb_vit_init(&p.vit, &w, &c->vision) != 0 ||
      vb_qformer_init(&p.qf, &w, &c->qformer, c->num_query_tokens) != 0)
    return -1;
  w.compute = lm_compute;
  w.pack = 0;
  w.int8 = 0;
  if (vb_weights_linear(&w, "language_projection", c->lm_hidden, c->qformer.hidden_size, 1,
                        &p.proj) != 0 ||
      bench_lm_create(&w, c, &p.lm) != 0)
    return -1;
  for (int i = 0; i < 2; i++)
    if (caption(&p, c, video, n_frames, n_tokens, r, &r->runs[i]) != 0) return -1;
  p.lm->destroy(p.lm);
  vb_linear_release(&p.proj);
  vb_qformer_free(&p.qf);
  vb_vit_free(&p.vit);
  vb_weights_close(&w);
  return 0;
}
