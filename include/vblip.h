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

/* The library's version; vblip_version() returns VBLIP_VERSION. */
#define VBLIP_VERSION_MAJOR 0
#define VBLIP_VERSION_MINOR 1
#define VBLIP_VERSION_PATCH 0
#define VBLIP_VERSION "0.1.0"

typedef struct vblip_model vblip_model;

const char *vblip_last_error(void);
const char *vblip_version(void);

/* Compute type of the model's matrix products (activations stay float32). */
typedef enum {
  VBLIP_DTYPE_AUTO = 0, /* bf16 where the CPU has AMX-BF16 or AVX512-BF16, else f32 */
  VBLIP_DTYPE_F32 = 1,  /* exact float32 (what the transformers parity tests use) */
  VBLIP_DTYPE_BF16 = 2  /* bfloat16 weights and inputs, float32 accumulation */
} vblip_dtype;

/* How videos and text are laid out for the language model.
 * BLIP-2 (VideoBLIP, BLIP-2): one video's query outputs in front of the tokenized prompt.
 * Interleaved (EILEV, the VideoBLIP author's in-context-learning models): a sequence of
 * text and videos; each video's query outputs replace as many placeholder positions,
 * followed by a newline, where the video stands in the text. */
typedef enum {
  VBLIP_LAYOUT_AUTO = 0, /* load option: from the checkpoint (EILEV's config -> interleaved) */
  VBLIP_LAYOUT_BLIP2 = 1,
  VBLIP_LAYOUT_INTERLEAVED = 2
} vblip_layout;

typedef struct {
  int n_threads; /* 0: all cores */
  int progress;  /* show loading progress on stderr when it is a terminal */
  vblip_dtype dtype; /* default VBLIP_DTYPE_AUTO */
  vblip_layout layout; /* default VBLIP_LAYOUT_AUTO: the checkpoint decides */
} vblip_load_options;

void vblip_load_options_default(vblip_load_options *o);
/* Parses "auto", "f32" or "bf16"; -1 for anything else. */
int vblip_dtype_parse(const char *s, vblip_dtype *out);
/* The compute type a loaded model uses ("f32" or "bf16"). */
const char *vblip_model_dtype(const vblip_model *m);
/* Parses "auto", "blip2" or "interleaved"; -1 for anything else. */
int vblip_layout_parse(const char *s, vblip_layout *out);
/* The layout a loaded model uses (never AUTO), and its name ("blip2", "interleaved"). */
vblip_layout vblip_model_layout(const vblip_model *m);
const char *vblip_layout_name(vblip_layout l);
/* model_dir: a checkpoint directory, a .gguf file (vblip convert), or a Hugging Face
 * repo id ("owner/name" that names no local path), which needs a repo resolver. */
vblip_model *vblip_model_load(const char *model_dir, const vblip_load_options *o);

/* Turns a repo id into a local directory (*dir: a new string); 0/-1. The Hub client
 * registers one (vblip_hub.h: vblip_hub_install); the core never uses the network. */
typedef int (*vblip_repo_resolver)(const char *repo, int progress, char **dir);
void vblip_set_repo_resolver(vblip_repo_resolver fn);
void vblip_model_free(vblip_model *m);

typedef struct {
  const char *language_model; /* "opt" or "t5" */
  int image_size, frame_tokens, vision_width, vision_layers;
  int num_query_tokens, qformer_width, lm_width, vocab_size;
  int max_positions; /* decoder-only: input + answer positions at most; 0: no fixed limit */
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

/* ---- interleaved input: text and videos in order (in-context learning) ---- */

/* An ordered list of text and video items. In the interleaved layout the items form
 * EILEV's blocks: each run of videos starts a block and the text after them (stripped,
 * several text items joined with single spaces) is that block's text; text before the
 * first video is a block of its own. In the BLIP-2 layout the input must be one video
 * followed by text (the prompt, taken verbatim). */
typedef struct vblip_input vblip_input;

vblip_input *vblip_input_new(void);
void vblip_input_free(vblip_input *in);
int vblip_input_add_text(vblip_input *in, const char *text);
/* An encoded video, borrowed: it must stay valid while the input is used. */
int vblip_input_add_video(vblip_input *in, const vblip_video *v);
/* A video file with its own frame options (NULL: vblip_sampling_default); the input loads
 * and encodes it in vblip_input_encode and owns the result. */
int vblip_input_add_video_file(vblip_input *in, const char *path, const vblip_sampling *s);
/* Adds a prompt written with "<video>" placeholders: the text between them and
 * videos[0..n_videos) in their places. The number of placeholders must be n_videos. */
int vblip_input_add_prompt(vblip_input *in, const char *prompt, const vblip_video *const *videos,
                           size_t n_videos);
/* Number of "<video>" placeholders in a prompt. */
size_t vblip_prompt_count_videos(const char *prompt);
/* Loads and encodes the video files added with vblip_input_add_video_file (once). */
int vblip_input_encode(vblip_model *m, vblip_input *in);
size_t vblip_input_n_videos(const vblip_input *in);
/* The k-th video in order (encoded, or NULL before vblip_input_encode for a file). */
const vblip_video *vblip_input_video(const vblip_input *in, size_t k);

/* The language model's input in the model's layout: token ids, and video_mask[i] = 1 where a
 * video's query output replaces the id (the ids there are the pad id). New arrays. */
int vblip_input_ids(const vblip_model *m, const vblip_input *in, int32_t **ids,
                    uint8_t **video_mask, size_t *n);
/* The input embeddings (n rows of the language model's width) in the model's layout. */
int vblip_input_embeds(const vblip_model *m, const vblip_input *in, float **embeds, size_t *n);

/* Generates the answer that follows the input (any number of videos in the interleaved
 * layout). In the interleaved layout a decoder-only model (OPT) stops at a newline, as EILEV
 * generates. */
int vblip_generate_input(vblip_model *m, const vblip_input *in, const vblip_gen_params *p,
                         vblip_text_cb cb, void *user, vblip_answer *out);

/* EILEV's generation defaults: 5 beams, 32 new tokens, length penalty -1. */
void vblip_gen_params_eilev(vblip_gen_params *p);
/* EILEV's frames: 8 uniform frames from the first 8 seconds of a clip. */
void vblip_sampling_eilev(vblip_sampling *s);

/* Scoring candidate continuations (EILEV's classify). */
typedef struct {
  double mean_log_likelihood; /* mean over the candidate's tokens of log p(token | before) */
  int32_t *token_ids;         /* the candidate's tokens */
  int n_tokens;
} vblip_score;

/* For each candidate, the mean log-likelihood of its tokens after the input. Decoder-only
 * models (OPT) score " " + candidate (no special tokens) after the prompt; T5 scores the
 * candidate's tokens (no special tokens) as the decoder's output for the encoded input. The
 * input runs once and its cache is reused for every candidate. out[i] belongs to
 * candidates[i]; free each with vblip_score_free. */
int vblip_score_candidates(vblip_model *m, const vblip_input *in, const char *const *candidates,
                           size_t n_candidates, vblip_score *out);
void vblip_score_free(vblip_score *s);

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

/* ---- model files: conversion ---- */

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

#ifdef __cplusplus
}
#endif

#endif
