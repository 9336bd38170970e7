/* vblip: VideoBLIP (BLIP-2 for video) in C.
 *
 * The whole public API. A model is loaded once from a Hugging Face checkpoint
 * directory; a video is decoded, sampled and preprocessed into a vblip_video,
 * encoded once (vision encoder + Q-Former + projection), and then any number
 * of prompts can be answered about it.
 *
 * Functions returning int give 0 on success and -1 on failure; the reason is
 * in vblip_last_error() (per thread). */
#ifndef VBLIP_H
#define VBLIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vblip_model vblip_model;

const char *vblip_last_error(void);
const char *vblip_version(void);

/* Compute type of the model's matrix products (activations stay float32). */
typedef enum {
  VBLIP_DTYPE_AUTO = 0, /* bf16 where the CPU has AMX-BF16 or AVX512-BF16, else f32 */
  VBLIP_DTYPE_F32 = 1,  /* exact float32 (what the transformers parity tests use) */
  VBLIP_DTYPE_BF16 = 2  /* bfloat16 weights and inputs, float32 accumulation */
} vblip_dtype;

typedef struct {
  int n_threads; /* 0: all cores */
  int progress;  /* show loading progress on stderr when it is a terminal */
  vblip_dtype dtype; /* default VBLIP_DTYPE_AUTO */
} vblip_load_options;

void vblip_load_options_default(vblip_load_options *o);
/* Parses "auto", "f32" or "bf16"; -1 for anything else. */
int vblip_dtype_parse(const char *s, vblip_dtype *out);
/* The compute type a loaded model uses ("f32" or "bf16"). */
const char *vblip_model_dtype(const vblip_model *m);
vblip_model *vblip_model_load(const char *model_dir, const vblip_load_options *o);
void vblip_model_free(vblip_model *m);

typedef struct {
  const char *language_model; /* "opt" or "t5" */
  int image_size, frame_tokens, vision_width, vision_layers;
  int num_query_tokens, qformer_width, lm_width, vocab_size;
} vblip_model_info;
void vblip_model_get_info(const vblip_model *m, vblip_model_info *info);

/* ---- videos ---- */

typedef enum { VBLIP_SAMPLE_UNIFORM = 0, VBLIP_SAMPLE_DEMO = 1 } vblip_sample_mode;

typedef struct {
  vblip_sample_mode mode;
  int n_frames;     /* uniform: how many frames (default 8) */
  double start_sec; /* uniform: window start (default 0) */
  double end_sec;   /* uniform: window end; < 0 = end of video (default) */
} vblip_sampling;

void vblip_sampling_default(vblip_sampling *s);

typedef struct {
  int n_frames;
  int64_t *frame_index; /* index within the decoded window */
  double *frame_time;   /* seconds */
  int image_size;
  uint8_t *frames;      /* (T, S, S, 3) resized RGB */
  float *pixel_values;  /* (3, T, S, S) */
  /* filled by vblip_video_encode */
  int vision_tokens, vision_width;
  float *vision;        /* (T*frame_tokens, vision_width) */
  int n_query, qformer_width;
  float *qformer;       /* (n_query, qformer_width) */
  int lm_width;
  float *projected;     /* (n_query, lm_width) */
  double ms_decode, ms_preprocess, ms_vision, ms_qformer;
} vblip_video;

/* Decodes, samples and preprocesses a video or image file. */
int vblip_video_load(const vblip_model *m, const char *path, const vblip_sampling *s, vblip_video *v);
/* Runs the vision encoder, the Q-Former and the language projection. */
int vblip_video_encode(vblip_model *m, vblip_video *v);
void vblip_video_free(vblip_video *v);
/* Writes an encoded video as safetensors: pixel_values (T,3,S,S),
 * vision_last_hidden_state, qformer_last_hidden_state, language_projection
 * (float32), with frame indices and times in the metadata. Atomic. */
int vblip_video_save(const vblip_video *v, const char *path, const char *source_video);

/* ---- generation ---- */

typedef struct {
  int num_beams;           /* 0 or 1: greedy (or sampling) */
  int max_new_tokens;      /* default 128 (the demo) */
  int min_new_tokens;
  int do_sample;           /* sampling instead of greedy/beam search */
  float temperature;       /* with do_sample */
  int top_k;               /* with do_sample; 0 = off */
  float top_p;             /* with do_sample; 1 = off */
  uint64_t seed;
  float repetition_penalty;  /* 1 = off */
  int no_repeat_ngram_size;  /* 0 = off */
  float length_penalty;      /* beam search */
  int early_stopping;        /* 0 false, 1 true, 2 never */
} vblip_gen_params;

/* The demo's settings: 4 beams, 128 new tokens, no sampling. */
void vblip_gen_params_default(vblip_gen_params *p);

typedef struct {
  char *text;          /* decoded with special tokens skipped, not post-processed */
  int32_t *token_ids;  /* the generated ids (without the prompt and the start token) */
  int n_tokens;
  float score;         /* beam search: the sequence score */
  double ms_prefill, ms_generate;
} vblip_answer;

/* Called with each new piece of text as it becomes final (greedy and sampling).
 * Return non-zero to stop. */
typedef int (*vblip_text_cb)(void *user, const char *piece);

int vblip_generate(vblip_model *m, const vblip_video *v, const char *prompt,
                   const vblip_gen_params *p, vblip_text_cb cb, void *user, vblip_answer *out);
void vblip_answer_free(vblip_answer *a);

/* The demo's post-processing: strip, and end with a period unless the text ends
 * in punctuation. Returns a new string. */
char *vblip_postprocess(const char *text);

/* ---- tokenizer ---- */

int vblip_tokenize(const vblip_model *m, const char *text, int add_special, int32_t **ids, size_t *n);
int vblip_detokenize(const vblip_model *m, const int32_t *ids, size_t n, int skip_special, char **text);

/* ---- chat ---- */

/* The VideoBLIP demo's conversation rule: each earlier turn contributes
 * users[i] + " " + answers[i], the turns and then the new message are joined with
 * single spaces, and the whole is stripped of surrounding whitespace. NULL strings
 * count as empty. Returns a new string (free it), or NULL when out of memory. */
char *vblip_chat_prompt(const char *const *users, const char *const *answers, size_t n_turns,
                        const char *message);

/* ---- HTTP server (vblip serve) ---- */

typedef struct vblip_server vblip_server;

typedef struct {
  const char *host;          /* address to listen on (default "127.0.0.1") */
  int port;                  /* default 8080; 0 = any free port (see vblip_server_port) */
  int queue_size;            /* requests that may wait for the model (default 8); more: 503 */
  size_t max_upload_bytes;   /* larger uploads: 413 (default 100 MiB) */
  int max_videos;            /* videos kept; the least recently used go first (default 64) */
  const char *examples_dir;  /* videos offered as example rows on the page; NULL: none */
  const char *model_name;    /* reported by /api/health and /v1/models (default "videoblip") */
  vblip_sampling sampling;   /* how uploaded videos are sampled */
  vblip_gen_params gen;      /* default generation settings */
  int verbose;               /* log requests on stderr */
} vblip_server_options;

void vblip_server_options_default(vblip_server_options *o);
/* Starts listening (own threads; the model is used by one worker thread only and
 * must outlive the server). Returns NULL with vblip_last_error() on failure. */
vblip_server *vblip_server_start(vblip_model *m, const vblip_server_options *o);
/* The port actually bound. */
int vblip_server_port(const vblip_server *s);
/* Stops: cancels queued and running requests, closes connections, removes the
 * uploaded files and the server's temporary directory, frees s. */
void vblip_server_stop(vblip_server *s);


/* ---- model files: conversion and the Hugging Face Hub ---- */

/* Writes the model at model_dir (a directory vblip loads, or a GGUF file) as one
 * GGUF file: the configs, the preprocessor settings and the tokenizer files as
 * metadata ("vblip.file.<name>"), and the weights with transformers' names.
 * type: "f32" (default when NULL), "f16", "bf16" (every matrix; 1-D tensors stay
 * f32) or "q8_0" (the linear layers' matrices in GGUF's Q8_0 blocks; norms,
 * biases and embeddings f32). Tied duplicates (.bin files' lm_head / embed_tokens
 * copies) are left out; the loaders recreate them. The file is written as
 * "<out_path>.tmp-<pid>" and renamed at the end; on failure nothing is left.
 * progress: a progress bar on stderr when it is a terminal. vblip_model_load
 * accepts the .gguf path in place of a directory. */
int vblip_convert(const char *model_dir, const char *out_path, const char *type, int progress);

/* Downloads what vblip needs from a Hugging Face Hub model repository ("owner/name"):
 * the configs, the tokenizer files and the weights in the best format there
 * (safetensors, single or sharded, else PyTorch .bin). revision: branch, tag or
 * commit (NULL: "main"). dir: where the files go (NULL: the cache,
 * $VBLIP_CACHE or ~/.cache/vblip/hub, then "<owner>--<name>/<revision>").
 * $HF_ENDPOINT overrides https://huggingface.co; $HF_TOKEN is sent as a bearer
 * token. Partial downloads ("<file>.incomplete") resume; sizes, LFS sha256 and
 * git blob ids are verified. *out_dir (if non-NULL) receives the directory (free it).
 * vblip_model_load accepts a repo id that is no local path: it uses the cached
 * copy when complete (no network) and pulls otherwise. */
int vblip_pull(const char *repo, const char *revision, const char *dir, int progress, char **out_dir);

/* ---- fine-tuning (vblip train) ----
 *
 * VideoBLIP's recipe: the vision encoder and the language model stay frozen;
 * the Q-Former, the query tokens and the language projection are trained with
 * AdamW (torch.optim.AdamW semantics; no weight decay for biases and LayerNorm
 * parameters) on (video clip, prompt, text) examples. The loss is the language
 * model's mean cross-entropy on the text tokens, as Blip2ForConditionalGeneration
 * computes it (float32, dropout off). */

typedef struct vblip_trainer vblip_trainer;
typedef struct vblip_train_example vblip_train_example;

typedef struct {
  double lr;           /* default 1e-5 */
  double weight_decay; /* default 0.05 */
  double beta1, beta2; /* default 0.9, 0.999 */
  double eps;          /* default 1e-8 */
  int n_threads;       /* 0: all cores */
} vblip_train_options;

void vblip_train_options_default(vblip_train_options *o);
/* Loads a checkpoint directory for training (float32 throughout). */
vblip_trainer *vblip_trainer_open(const char *model_dir, const vblip_train_options *o);
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
/* One AdamW update from the accumulated gradients, which are then cleared. */
int vblip_trainer_step(vblip_trainer *t);
void vblip_trainer_zero_grad(vblip_trainer *t);
long vblip_trainer_steps(const vblip_trainer *t);
void vblip_trainer_set_lr(vblip_trainer *t, double lr);
/* Writes a complete checkpoint directory (the source's config, tokenizer and
 * preprocessor files, and model.safetensors with every tensor: trained ones in
 * float32, frozen ones as stored) that vblip_model_load reads. Atomic: written
 * beside out_dir and renamed; an existing out_dir is replaced only if an earlier
 * save made it (it holds vblip_train.json, whose content is info_json). */
int vblip_trainer_save(vblip_trainer *t, const char *out_dir, const char *info_json);

/* Ego4D narrations: VideoBLIP's text clean-up ("#C C picks ..." -> "The camera
 * wearer picks ...", drops a trailing <|eos|> or #unsure, "#unsure" elsewhere ->
 * "something", ends with a period unless it ends in punctuation). New string. */
char *vblip_clean_narration(const char *text);

#ifdef __cplusplus
}
#endif

#endif
