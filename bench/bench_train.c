/* vblip-bench-train: the time of one training step (`vblip train`) on a synthesized
 * VideoBLIP-OPT-2.7b or -Flan-T5-XL at full width, in float32 and with --bf16's mixed
 * precision. The full model does not fit beside its bf16 copies on a small machine, so
 * the frozen stacks are built L and 2L layers deep and the per-layer cost is
 * extrapolated to the real depths (ViT-g 39 layers; OPT 32; T5 24 + 24); the Q-Former
 * (trained), the embeddings and the vocabulary projection are full size.
 *
 *   vblip-bench-train [opt|t5] [L] [frames] [threads] [dropout]   (defaults: opt 2 8 all 1)
 *
 * dropout 1 trains as `vblip train` does by default (the Trainer's train mode), 0 as with
 * --no-dropout.
 * Prints, per configuration, the vision encoder's time per example (run once per clip)
 * and the step time (forward + backward + clip + AdamW, batch 1), then the extrapolation. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "train/trainer.h"

static int run(vb_lm_kind lm, int layers, int frames, int bf16, int dropout, double *ms_vision,
               double *ms_step) {
  vb_model_config c;
  if (bench_config(lm, 0, &c)) return -1;
  c.vision.num_hidden_layers = layers;
  c.opt.num_hidden_layers = c.t5.num_layers = c.t5.num_decoder_layers = layers;
  vb_weights w;
  bench_weights_new(&w, VB_COMPUTE_F32, 0);
  if (bench_build_vision(&w, &c, VB_DT_F32) || bench_build_qformer(&w, &c, VB_DT_F32) ||
      bench_build_lm(&w, &c, VB_DT_F32))
    return -1;
  vblip_train_options o;
  vblip_train_options_default(&o);
  o.bf16 = bf16;
  o.dropout = dropout;
  vblip_trainer *t = vb_trainer_open_table(&w, &c, &o);
  if (!t) return -1;
  int S = c.vision.image_size;
  size_t n = (size_t)3 * frames * S * S;
  float *px = malloc(n * sizeof *px);
  bench_fill_random(px, VB_DT_F32, n, 1.0f, 7);
  /* the recipe's text: prompt (12 tokens with BOS) + a narration of 12 + EOS */
  int32_t ids[32], labels[32];
  int n_ids = 25;
  bench_prompt_ids(&c, ids, n_ids);
  int rc = -1;
  vblip_train_example *ex = NULL;
  if (lm == VB_LM_OPT) {
    for (int i = 0; i < n_ids; i++)
      labels[i] = i < 12 ? -100 : ids[i];
    rc = 0;
  } else { /* T5: encoder prompt, decoder targets */
    n_ids = 12;
    bench_prompt_ids(&c, labels, 13);
    rc = 0;
  }
  /* the vision encoder twice: the first run packs the weights and creates oneDNN's
   * primitives, the second is what every further clip costs */
  double t0 = 0;
  for (int k = 0; rc == 0 && k < 2; k++) {
    vblip_train_example_free(ex);
    ex = NULL;
    t0 = vb_now_ms();
    rc = vb_trainer_example_ids(t, px, frames, ids, n_ids, labels, lm == VB_LM_OPT ? n_ids : 13,
                                &ex);
  }
  *ms_vision = vb_now_ms() - t0;
  const int steps = 3;
  double loss;
  for (int s = 0; rc == 0 && s <= steps; s++) {
    if (s == 1) t0 = vb_now_ms(); /* the first step creates oneDNN's primitives */
    vblip_trainer_set_lr(t, 1e-5);
    rc = vblip_trainer_accumulate(t, ex, 1.0, &loss);
    vblip_trainer_clip_grad_norm(t, 1.0);
    if (rc == 0) rc = vblip_trainer_step(t);
  }
  *ms_step = (vb_now_ms() - t0) / steps;
  vblip_train_example_free(ex);
  free(px);
  vblip_trainer_free(t);
  return rc;
}

int main(int argc, char **argv) {
  vb_lm_kind lm = argc > 1 && !strcmp(argv[1], "t5") ? VB_LM_T5 : VB_LM_OPT;
  int L = argc > 2 ? atoi(argv[2]) : 2, frames = argc > 3 ? atoi(argv[3]) : 8;
  if (argc > 4) omp_set_num_threads(atoi(argv[4]));
  int dropout = argc > 5 ? atoi(argv[5]) : 1;
  if (L < 1 || frames < 1 || (dropout != 0 && dropout != 1)) {
    fprintf(stderr,
            "usage: vblip-bench-train [opt|t5] [layers] [frames] [threads] [dropout 0|1]\n");
    return 2;
  }
  vb_cpu_init();
  int depth_vit = 39, depth_lm = lm == VB_LM_OPT ? 32 : 24; /* T5: 24 encoder + 24 decoder */
  printf("vblip-bench-train: %s at full width, frozen stacks %d and %d layers deep, %d frames, "
         "batch 1, %d threads, random weights, dropout %s\n",
         bench_model_name(lm), L, 2 * L, frames, omp_get_max_threads(), dropout ? "on" : "off");
  for (int bf16 = 0; bf16 < 2; bf16++) {
    if (bf16 && !vb_cpu_prefers_bf16()) {
      printf("bf16: skipped (no AMX-BF16 / AVX512-BF16)\n");
      break;
    }
    double v[2], st[2];
    for (int k = 0; k < 2; k++) {
      if (run(lm, L << k, frames, bf16, dropout, &v[k], &st[k])) {
        fprintf(stderr, "vblip-bench-train: %s\n", vb_error_message());
        return 1;
      }
      printf("%-4s depth %2d: vision %8.0f ms/example, step %8.0f ms\n", bf16 ? "bf16" : "f32",
             L << k, v[k], st[k]);
    }
    /* per-layer slopes, extrapolated to the real depths */
    double v_full = v[0] + (v[1] - v[0]) / L * (depth_vit - L);
    double s_full = st[0] + (st[1] - st[0]) / L * (depth_lm - L);
    printf("%-4s extrapolated to ViT-g %d and %d LM layers: vision %.1f s/example, step %.1f s\n",
           bf16 ? "bf16" : "f32", depth_vit, depth_lm, v_full / 1000, s_full / 1000);
  }
  return 0;
}
