/* vblip-bench internals shared by its files: the synthesized random-weight
 * models (bench_model.c) and the end-to-end video run (bench_e2e.c). */
#ifndef VBLIP_BENCH_BENCH_H
#define VBLIP_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "lm/lm.h"

/* The full-size VideoBLIP-OPT-2.7b or VideoBLIP-Flan-T5-XL config; tiny: every
 * stack 2 layers deep and a 4096-token vocabulary (full widths), for smoke runs. */
int bench_config(vb_lm_kind lm, int tiny, vb_model_config *c);
/* big: BLIP-2 OPT-6.7b or Flan-T5-XXL instead (the same tiny shrinking). */
int bench_config_sized(vb_lm_kind lm, int big, int tiny, vb_model_config *c);
const char *bench_model_name(vb_lm_kind lm);
const char *bench_lm_name(vb_lm_kind lm); /* "opt" or "t5" */
const char *bench_model_name_sized(vb_lm_kind lm, int big);
/* The config.json text behind bench_config_sized (full size). */
const char *bench_config_json(vb_lm_kind lm, int big);
/* on: bench_build_* only record names, types and shapes (data NULL), for
 * writing a checkpoint tensor by tensor; OPT only (T5's builder reads norms). */
void bench_shapes_only(int on);
const char *bench_lm_label(vb_lm_kind lm, int big); /* "opt", "t5", "opt-6.7b", "t5-xxl" */

/* Uniform values in [-scale, scale): element i of stream `seed` is the same
 * whatever the type it is stored as and however the threads split the work. */
void bench_fill_random(void *dst, vb_dtype dt, size_t n, float scale, uint64_t seed);

void bench_weights_new(vb_weights *w, vb_compute compute, int pack);
/* Adds random tensors stored as dt: the vision encoder, or the Q-Former with
 * query tokens and language_projection, or the language model of c. With
 * VB_DT_Q8_0 the linear layers' matrices are quantized as `vblip convert --type
 * q8_0` does and the embeddings stay bf16. Each stage has its own seeds, so a
 * stage's weights are the same values whatever else the table holds. */
int bench_build_vision(vb_weights *w, const vb_model_config *c, vb_dtype dt);
int bench_build_qformer(vb_weights *w, const vb_model_config *c, vb_dtype dt);
int bench_build_lm(vb_weights *w, const vb_model_config *c, vb_dtype dt);
/* The language model of c from the table (vb_opt_create / vb_t5_create). */
int bench_lm_create(vb_weights *w, const vb_model_config *c, vb_lm **out);
/* Bytes of every tensor in the table as stored. */
double bench_weight_bytes(const vb_weights *w);
/* Replaces the built (heap) weights with the same tensors mapped from a GGUF
 * file, as a user's converted checkpoint is loaded: the loader can then drop
 * the pages of layers it repacks (src/models/weights.c), so peak RSS is what a
 * user sees. The file is unlinked at once. */
int bench_weights_via_file(vb_weights *w);
/* Prompt ids the way the tokenizers frame them: OPT starts with BOS, T5 ends
 * with EOS; the rest are arbitrary in-vocabulary ids. */
void bench_prompt_ids(const vb_model_config *c, int32_t *ids, int n);

/* The caption pipeline on a real video with a synthesized model: vision and
 * Q-Former bf16, the language model's weights stored as lm_dt, bf16 compute.
 * runs[0] is the first caption after building (what `vblip caption` does for
 * one video: oneDNN primitives are created on the way), runs[1] a second one. */
typedef struct {
  double ms_decode, ms_preprocess, ms_vision, ms_qformer, ms_prefill, ms_steps, ms_total;
  int steps, new_tokens;
} bench_e2e_run;

typedef struct {
  int frames, width, height;
  double weight_bytes; /* as stored */
  double held_bytes; /* as the pipeline holds them: f32 vision widens the 16-bit ViT and Q-Former */
  bench_e2e_run runs[2];
} bench_e2e_result;

/* The vision encoder's and Q-Former's products: bf16; the ViT's in int8
 * (quantized at load, as --vision-dtype int8); or f32 (--vision-dtype f32,
 * what the defaults pick where bf16 products are slow). */
typedef enum { BENCH_VISION_BF16, BENCH_VISION_INT8, BENCH_VISION_F32 } bench_vision;
int bench_e2e(const vb_model_config *c, vb_dtype lm_dt, bench_vision vision, const char *video,
              int n_frames, int n_tokens, bench_e2e_result *r);

/* AVX-512 VFMADD231PS register peak on all threads, TFLOP/s (0 without AVX-512). */
double bench_peak_fma_f32(double ms);
/* VDPBF16PS register peak on all threads, TFLOP/s (0 without AVX512-BF16). */
double bench_peak_vdpbf16ps(double ms);

/* The PyTorch peer (bench/peer/vit_qformer.py): BLIP-2's ViT-g and Q-Former
 * with random weights in PyTorch bf16, T frames, `threads` threads. 0 with the
 * second run's vision and Q-Former times (its first run is a warm-up), -1
 * (error set) when it could not run (no python3 with torch, say). */
int bench_peer_run(const char *python, int T, int threads, double *ms_vision, double *ms_qformer,
                   char *version, size_t version_len);
/* The peer's interpreters: $VBLIP_PEER_PYTHON, several separated by ':' (each
 * runs in turn, e.g. Debian's PyTorch and a current one from PyPI), else
 * Debian's /usr/bin/python3 (where apt's python3-torch lives), else python3 on
 * PATH. The count (at most max, each path cut to len bytes). */
int bench_peer_pythons(char (*out)[512], int max);

/* --dataset MODEL: caption --files-from over `clips` windows of video, one at a time
 * against `prefetch` videos decoded ahead, `rounds` times each (bench_dataset.c). The exit
 * status. */
int bench_dataset(const char *model, const char *video, int clips, int prefetch, int frames,
                  int tokens, int threads, int rounds);

#endif
