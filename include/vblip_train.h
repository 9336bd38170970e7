/* vblip_train: fine-tuning the Q-Former (vblip train), over the core library. */
#ifndef VBLIP_TRAIN_H
#define VBLIP_TRAIN_H

#include "vblip.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fine-tuning (vblip train) ----
 *
 * VideoBLIP's recipe: the vision encoder and the language model stay frozen;
 * the Q-Former, the query tokens and the language projection are trained with
 * AdamW (torch.optim.AdamW semantics; no weight decay for biases and LayerNorm
 * parameters) on (video clip, prompt, text) examples. The loss is the language
 * model's mean cross-entropy on the text tokens, as Blip2ForConditionalGeneration
 * computes it (float32). vblip_trainer_accumulate runs in the Trainer's train mode: dropout
 * in the Q-Former and the frozen language model with the probabilities of config.json,
 * unless the options turn it off; vblip_trainer_loss runs in eval mode (no dropout). */

typedef struct vblip_trainer vblip_trainer;
typedef struct vblip_train_example vblip_train_example;

typedef struct {
  double lr;           /* default 1e-5 */
  double weight_decay; /* default 0.05 */
  double beta1, beta2; /* default 0.9, 0.999 */
  double eps;          /* default 1e-8 */
  int n_threads;       /* 0: all cores */
  int bf16;    /* the frozen parts (vision encoder, language model forward and backward to its
                * inputs) in bfloat16 products with float32 sums; trained tensors, gradients
                * and AdamW stay float32. Needs a CPU with AMX-BF16 or AVX512-BF16. */
  int dropout; /* default 1: vblip_trainer_accumulate drops as the Trainer's train mode (the
                * configs' probabilities); 0: off, the loss and gradients of eval mode */
  unsigned long long seed; /* default 42: with the step count and the position set by
                            * vblip_trainer_set_dropout_position, keys the dropout masks */
} vblip_train_options;

void vblip_train_options_default(vblip_train_options *o);
/* Loads a model for training (float32 throughout): a checkpoint directory, a .gguf file
 * (vblip convert; q8_0 layers are dequantized) or a Hub repo id (as vblip_model_load). */
vblip_trainer *vblip_trainer_open(const char *model, const vblip_train_options *o);
void vblip_trainer_free(vblip_trainer *t);

/* Token ids of one example. OPT: ids = tok(prompt) + tok(" " + text, no specials) + </s>,
 * labels = ids with the prompt positions -100. T5: ids = tok(prompt), labels = tok(text).
 * Both arrays are malloc'd. */
int vblip_trainer_tokens(vblip_trainer *t, const char *prompt, const char *text, int32_t **ids,
                         int *n_ids, int32_t **labels, int *n_labels);
/* An example from preprocessed pixel values (3, T, S, S): runs the frozen vision
 * encoder once and keeps its output with the tokenized prompt and text. */
int vblip_trainer_example_pixels(vblip_trainer *t, const float *pixel_values, int n_frames,
                                 const char *prompt, const char *text, vblip_train_example **out);
/* The same from a video file: n_frames sampled uniformly over [start, end) seconds
 * (end < 0: to the end). */
int vblip_trainer_example_video(vblip_trainer *t, const char *path, double start, double end,
                                int n_frames, const char *prompt, const char *text,
                                vblip_train_example **out);
void vblip_train_example_free(vblip_train_example *e);

/* Loss without gradients (validation). */
int vblip_trainer_loss(vblip_trainer *t, const vblip_train_example *e, double *loss);
/* Loss, and gradients += weight * d loss / d parameters (weight 1/batch for a mean). */
int vblip_trainer_accumulate(vblip_trainer *t, const vblip_train_example *e, double weight,
                             double *loss);
/* Where the next vblip_trainer_accumulate calls stand in the current optimizer step: the
 * micro-batch of the window and the example in it (default 0, 0). The dropout masks are a
 * function of (seed, optimizer steps done, micro_batch, example): a run resumed from a
 * checkpoint draws the masks an uninterrupted one does, whatever the thread count. */
void vblip_trainer_set_dropout_position(vblip_trainer *t, long micro_batch, long example);
/* Label tokens the example's loss averages over (a micro-batch's loss is the mean over
 * all its tokens, as the Trainer's model computes it). */
int vblip_train_example_tokens(const vblip_trainer *t, const vblip_train_example *e);
/* clip_grad_norm_ over every trained tensor: scales the gradients by
 * min(1, max_norm / (norm + 1e-6)); returns the norm before clipping. */
double vblip_trainer_clip_grad_norm(vblip_trainer *t, double max_norm);
void vblip_trainer_set_steps(vblip_trainer *t, long steps);
/* One AdamW update from the accumulated gradients, which are then cleared. */
int vblip_trainer_step(vblip_trainer *t);
void vblip_trainer_zero_grad(vblip_trainer *t);
long vblip_trainer_steps(const vblip_trainer *t);
void vblip_trainer_set_lr(vblip_trainer *t, double lr);
/* Writes a complete checkpoint directory (the source's config, tokenizer and
 * preprocessor files, and model.safetensors with every tensor: trained ones in
 * float32, frozen ones as stored) that vblip_model_load reads. Written beside out_dir,
 * then each file renamed into it (out_dir may also hold checkpoints); an existing
 * out_dir is used only if an earlier save made it (it holds vblip_train.json, whose
 * content is info_json). */
int vblip_trainer_save(vblip_trainer *t, const char *out_dir, const char *info_json);
/* A checkpoint to resume from: a complete model directory as above plus the AdamW moments
 * (optimizer.safetensors) and state_json (trainer_state.json), appearing by one rename. */
int vblip_trainer_save_checkpoint(vblip_trainer *t, const char *dir, const char *info_json,
                                  const char *state_json);
/* Restores the trained tensors, the AdamW moments and the step count from such a
 * checkpoint (the trainer opened on the original model). */
int vblip_trainer_load_checkpoint(vblip_trainer *t, const char *dir);
/* Fails (with the reason) where vblip_trainer_save(out_dir) would: run it before training. */
int vblip_trainer_check_output(vblip_trainer *t, const char *out_dir);

/* Ego4D narrations, VideoBLIP's clean_narration_text: surrounding white space stripped and
 * a leading "#C C" (any case) replaced by "The camera wearer". New string. */
char *vblip_clean_narration(const char *text);
/* EILEV's variant: also "#C  c" with any white space, a trailing <|eos|> or #unsure
 * dropped, "#unsure" elsewhere -> "something", and a final period. New string. */
char *vblip_clean_narration_eilev(const char *text);
/* Whether a narration starts with "#C C" (any case): VideoBLIP keeps only those. */
int vblip_narration_is_camera_wearer(const char *text);

#ifdef __cplusplus
}
#endif

#endif
