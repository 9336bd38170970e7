/* vblip: VideoBLIP (BLIP-2 for video) in C - the core library's whole API.
 *
 * A model is loaded once (a checkpoint directory, a .gguf file or a Hub repo id); a
 * video is decoded, sampled and preprocessed into a vblip_video, encoded once (vision
 * encoder + Q-Former + projection), and then any number of prompts are answered
 * about it:
 *
 *   vblip_model *m = vblip_model_load("video-blip-opt-2.7b-ego4d", NULL);  // or a .gguf
 *   if (!m) { fprintf(stderr, "%s\n", vblip_last_error()); return 1; }
 *   vblip_video v;
 *   vblip_answer a;
 *   vblip_gen_params p;
 *   vblip_gen_params_default(&p);  // the demo's settings: 4 beams, 128 new tokens
 *   if (vblip_video_load(m, "clip.mp4", NULL, &v) == 0 && vblip_video_encode(m, &v) == 0 &&
 *       vblip_generate(m, &v, "Question: What is the camera wearer doing? Answer:", &p,
 *                      NULL, NULL, &a) == 0) {
 *     char *text = vblip_postprocess(a.text);  // as the demo shows it
 *     printf("%s\n", text);
 *     free(text);
 *     vblip_answer_free(&a);
 *   }
 *   vblip_video_free(&v);
 *   vblip_model_free(m);
 *
 * Build with `pkg-config --cflags --libs vblip`. Repo ids need the Hub client
 * (vblip_hub.h, vblip_hub_install); the core itself never touches the network.
 *
 * Errors: functions returning int give 0 on success and -1 on failure, functions
 * returning a pointer give NULL on failure; the reason is vblip_last_error(), one
 * line, kept per thread until that thread's next failure. vblip never aborts or
 * exits the program.
 *
 * Threads: functions that take a const vblip_model * (vblip_video_load,
 * vblip_tokenize, vblip_detokenize, vblip_model_get_info, vblip_model_dtype) may be
 * called from any thread at any time. Those that take a non-const one
 * (vblip_video_encode, vblip_generate) run the model: the language model's state
 * (its key/value caches) and the encoders' workspaces live in the model, so calls
 * on the same model must not overlap - serialize them (vblip serve runs one worker
 * thread). Different models are independent. vblip_set_repo_resolver is for start-up,
 * before other threads use the library. A thread keeps its kernels' scratch buffers
 * between calls and frees them when it ends.
 *
 * Ownership: the caller owns everything a function hands back and frees it as its
 * comment says: models with vblip_model_free, a vblip_video's buffers with
 * vblip_video_free, a vblip_answer's with vblip_answer_free, returned strings and id
 * arrays with free(). Returned const char * (errors, version, names) belong to the
 * library. */
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

/* The calling thread's last error message (never NULL). */
const char *vblip_last_error(void);
/* Whose fault the last failure was: VBLIP_ERROR_INPUT when the caller's input is
 * unusable (a prompt longer than the model takes, text that is not UTF-8), so a server
 * answers 4xx; VBLIP_ERROR_OTHER for everything else. */
typedef enum { VBLIP_ERROR_OTHER = 0, VBLIP_ERROR_INPUT = 1 } vblip_error_kind;
vblip_error_kind vblip_last_error_kind(void);
const char *vblip_version(void);
/* What this CPU runs, for logs and bug reports: its instruction sets (AVX2,
 * AVX-512, AVX512-BF16 / VNNI, AMX) and whether bf16 products outrun f32
 * ones here (measured once, ~2 ms; where not, the vision encoder defaults to
 * f32). A static string, valid for the process's life. */
const char *vblip_cpu_summary(void);

/* Compute type of the model's matrix products (activations stay float32). */
typedef enum {
  VBLIP_DTYPE_AUTO = 0, /* bf16 where the CPU has AMX-BF16 or AVX512-BF16, else f32 */
  VBLIP_DTYPE_F32 = 1,  /* exact float32 (what the transformers parity tests use) */
  VBLIP_DTYPE_BF16 = 2, /* bfloat16 weights and inputs, float32 accumulation */
  /* bf16 compute with the language model's linear weights quantized at load, as
   * `vblip convert --type q8_0 / q4_0 / q4_k` stores them (a directory then never
   * holds them in float32; a file already quantized stays as it is) */
  VBLIP_DTYPE_Q8_0 = 3,
  VBLIP_DTYPE_Q4_0 = 4,
  VBLIP_DTYPE_Q4_K = 5
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
/* Compute type of the vision encoder's and Q-Former's matrix products. */
typedef enum {
  VBLIP_VISION_AUTO = 0, /* int8 when the checkpoint's vision weights are int8
                          * (vblip convert --vision-type int8) and the CPU has int8
                          * dot products (AMX-INT8, AVX512-VNNI, AVX-VNNI); else as
                          * dtype (int8 weights dequantized: the portable int8 core
                          * is far slower than f32 there) */
  VBLIP_VISION_F32 = 1,
  VBLIP_VISION_BF16 = 2,
  VBLIP_VISION_INT8 = 3 /* int8 weights (per output channel; quantized at load
                         * unless stored so) x int8 activations (per row), int32
                         * sums; attention, softmax, norms and GELU stay float;
                         * products that int8 hurts stay at dtype (see README) */
} vblip_vision_dtype;

typedef struct {
  int n_threads;                   /* 0: all cores */
  int progress;                    /* show loading progress on stderr when it is a terminal */
  vblip_dtype dtype;               /* default VBLIP_DTYPE_AUTO */
  vblip_layout layout;             /* default VBLIP_LAYOUT_AUTO: the checkpoint decides */
  vblip_vision_dtype vision_dtype; /* default VBLIP_VISION_AUTO (env VBLIP_VISION_DTYPE) */
} vblip_load_options;

/* Defaults: all cores, progress shown, dtype from $VBLIP_DTYPE (auto|f32|bf16), vision_dtype
 * from $VBLIP_VISION_DTYPE (auto|f32|bf16|int8), else auto. */
void vblip_load_options_default(vblip_load_options *o);
/* Parses "auto", "f32", "bf16", "q8_0", "q4_0" or "q4_k"; -1 for anything else. */
int vblip_dtype_parse(const char *s, vblip_dtype *out);
/* The compute type a loaded model uses ("f32" or "bf16"). */
const char *vblip_model_dtype(const vblip_model *m);
/* Parses "auto", "blip2" or "interleaved"; -1 for anything else. */
int vblip_layout_parse(const char *s, vblip_layout *out);
/* The layout a loaded model uses (never AUTO), and its name ("blip2", "interleaved"). */
vblip_layout vblip_model_layout(const vblip_model *m);
const char *vblip_layout_name(vblip_layout l);
/* Parses "auto", "f32", "bf16" or "int8"; -1 for anything else. */
int vblip_vision_dtype_parse(const char *s, vblip_vision_dtype *out);
/* What the loaded model's vision encoder runs: "f32", "bf16" or "int8"
 * (int8: some products may stay at the model's dtype). */
const char *vblip_model_vision_dtype(const vblip_model *m);
/* model: a checkpoint directory, a .gguf file (vblip convert), or a Hugging Face
 * repo id ("owner/name" that names no local path), which needs a repo resolver.
 * o: NULL for the defaults. Free the model with vblip_model_free. */
vblip_model *vblip_model_load(const char *model, const vblip_load_options *o);

/* Turns a repo id into a local directory (*dir: a new string); 0/-1. The Hub client
 * registers one (vblip_hub.h: vblip_hub_install); the core never uses the network. */
typedef int (*vblip_repo_resolver)(const char *repo, int progress, char **dir);
void vblip_set_repo_resolver(vblip_repo_resolver fn);
/* Frees the model and everything it holds (NULL is fine). */
void vblip_model_free(vblip_model *m);

typedef struct {
  const char *language_model; /* "opt" or "t5" (static) */
  int image_size, frame_tokens, vision_width, vision_layers;
  int num_query_tokens, qformer_width, lm_width, vocab_size;
  int max_positions; /* decoder-only: input + answer positions at most; 0: no fixed limit */
} vblip_model_info;
void vblip_model_get_info(const vblip_model *m, vblip_model_info *info);

/* ---- videos ---- */

typedef enum {
  VBLIP_SAMPLE_UNIFORM = 0,
  VBLIP_SAMPLE_DEMO = 1,
  VBLIP_SAMPLE_TIMES = 2 /* the frames shown at times[0..n_frames), as vblip_narrate picks them */
} vblip_sample_mode;

typedef struct {
  vblip_sample_mode mode;
  int n_frames;        /* uniform: how many frames (default 8); times: how many times */
  double start_sec;    /* uniform: window start (default 0) */
  double end_sec;      /* uniform: window end; < 0 = end of video (default) */
  const double *times; /* times mode: ascending seconds after the video's first frame; the
                        * frame shown at t is the last one whose time is <= t (borrowed) */
} vblip_sampling;

void vblip_sampling_default(vblip_sampling *s);

/* A decoded (and, after vblip_video_encode, encoded) video. Every pointer is owned
 * by the struct: vblip_video_free frees them all and zeroes it (the struct itself is
 * the caller's, usually on the stack). */
typedef struct {
  int n_frames;
  int64_t *frame_index; /* the frame's index in the whole video (with a --start window too) */
  double *frame_time;   /* seconds */
  int image_size;
  uint8_t *frames;     /* (T, S, S, 3) resized RGB */
  float *pixel_values; /* (3, T, S, S) */
  /* filled by vblip_video_encode */
  int vision_tokens, vision_width;
  float *vision; /* (T*frame_tokens, vision_width) */
  int n_query, qformer_width;
  float *qformer; /* (n_query, qformer_width) */
  int lm_width;
  float *projected; /* (n_query, lm_width) */
  double ms_decode, ms_preprocess, ms_vision, ms_qformer;
} vblip_video;

/* Decodes, samples and preprocesses a video or image file into *v (s: NULL for the
 * defaults). *v is zeroed first, so vblip_video_free is safe after a failure too. */
int vblip_video_load(const vblip_model *m, const char *path, const vblip_sampling *s,
                     vblip_video *v);
/* Runs the vision encoder, the Q-Former and the language projection. On failure the
 * video counts as not encoded (vblip_generate refuses it). */
int vblip_video_encode(vblip_model *m, vblip_video *v);
void vblip_video_free(vblip_video *v);
/* Writes an encoded video as safetensors: pixel_values (T,3,S,S),
 * vision_last_hidden_state, qformer_last_hidden_state, language_projection
 * (float32), with frame indices and times in the metadata. Atomic. */
int vblip_video_save(const vblip_video *v, const char *path, const char *source_video);

/* ---- stages of vblip_video_encode, for frames encoded once and reused ---- */

/* Runs the vision encoder only (fills vision, vision_tokens, vision_width). Each frame is
 * encoded on its own, so a frame's tokens do not depend on the frames beside it. */
int vblip_video_encode_vision(vblip_model *m, vblip_video *v);
/* Joins videos whose vision tokens are computed (vblip_video_encode_vision) into *out, frames
 * in order, and runs the Q-Former and the projection over them: the same result as
 * vblip_video_encode on a video of those frames. *out is zeroed first (vblip_video_free it);
 * it holds frame times, indices and vision tokens but no pixels. */
int vblip_video_join_encode(vblip_model *m, const vblip_video *const *parts, size_t n,
                            vblip_video *out);

/* ---- generation ---- */

/* When beam search stops (transformers' early_stopping). */
typedef enum {
  VBLIP_EARLY_STOPPING_HEURISTIC = 0, /* False: when the best running beam, scored at its
                                       * current length, cannot beat the finished ones */
  VBLIP_EARLY_STOPPING_ON = 1,        /* True: as soon as num_beams candidates are finished */
  VBLIP_EARLY_STOPPING_NEVER = 2 /* "never": when no running beam can beat them at any length */
} vblip_early_stopping;

typedef struct {
  int num_beams;      /* 0 or 1: greedy (or sampling) */
  int max_new_tokens; /* default 128 (the demo) */
  int min_new_tokens;
  int do_sample;     /* sampling instead of greedy/beam search */
  float temperature; /* with do_sample */
  int top_k;         /* with do_sample; 0 = off */
  float top_p;       /* with do_sample; 1 = off */
  uint64_t seed;
  float repetition_penalty;            /* 1 = off */
  int no_repeat_ngram_size;            /* 0 = off */
  float length_penalty;                /* beam search */
  vblip_early_stopping early_stopping; /* beam search (default heuristic, as transformers) */
} vblip_gen_params;

/* The demo's settings: 4 beams, 128 new tokens, no sampling. */
void vblip_gen_params_default(vblip_gen_params *p);

/* An answer; its buffers are owned by the struct (vblip_answer_free). */
typedef struct {
  char *text;         /* decoded with special tokens skipped, not post-processed */
  int32_t *token_ids; /* the generated ids (without the prompt and the start token) */
  int n_tokens;
  float score;        /* beam search: the sequence score */
  double ms_generate; /* wall time of the whole generation (prefill and decoding) */
} vblip_answer;

/* Called with each new piece of text as it becomes final (greedy and sampling; beam
 * search calls it never). The piece is valid during the call only. Return non-zero
 * to stop: the answer then holds what was generated so far. */
typedef int (*vblip_text_cb)(void *user, const char *piece);

/* Answers prompt (NULL: empty, i.e. a caption) about an encoded video with the
 * settings p; cb (may be NULL) streams the text. *out is zeroed first; free it with
 * vblip_answer_free. */
int vblip_generate(vblip_model *m, const vblip_video *v, const char *prompt,
                   const vblip_gen_params *p, vblip_text_cb cb, void *user, vblip_answer *out);
void vblip_answer_free(vblip_answer *a);

/* The demo's post-processing: strip, and end with a period unless the text ends
 * in punctuation. Returns a new string (free it), NULL when out of memory. */
char *vblip_postprocess(const char *text);

/* ---- narration: captions over time for a long or live video ---- */

/* Windows of window_sec start every stride_sec; each sees `frames` frames of a fixed grid, one
 * every window_sec / frames seconds at the middle of its slot (t_k = (k + 0.5) * window_sec /
 * frames), so overlapping windows share frames and each frame goes through the vision encoder
 * once. stride_sec must be a whole number of grid steps. Window w covers
 * [w * stride_sec, w * stride_sec + window_sec) and is captioned when all its frames exist. */
typedef struct {
  double window_sec;  /* default 8 (the Ego4D clips VideoBLIP was trained on) */
  double stride_sec;  /* default 0: half the window */
  int frames;         /* per window; default 8 */
  int live;           /* -1 (default): "-", URLs and /dev/ devices are live, files are not;
                       * 0: never skip; 1: skip windows when behind */
  double max_lag_sec; /* live: skip windows once this far behind the stream; default 0: one
                       * stride */
  int allow_network;  /* open URLs (rtsp://, http(s):// incl. HLS, udp://) and capture devices */
} vblip_narrate_options;

void vblip_narrate_options_default(vblip_narrate_options *o);

/* One captioned window, handed to the callback as soon as it is ready (valid during the
 * call only). */
typedef struct {
  int index;                 /* w */
  double start_sec, end_sec; /* the window */
  int n_frames;
  const double *frame_times;    /* the grid times of its frames (vblip_sampling's times mode) */
  const vblip_answer *answer;   /* the language model's answer (not post-processed) */
  const vblip_video *video;     /* the window's frames encoded: vision tokens, Q-Former output,
                                 * projection (no pixels) */
  int skipped_before;           /* windows skipped since the previous captioned one */
  int vision_frames;            /* frames this window sent through the vision encoder */
  double lag_sec;               /* live: how far behind the stream the caption came (else 0) */
  double ms_vision, ms_qformer; /* this window's vision encoder and Q-Former time */
} vblip_narration_window;

/* Return non-zero to stop the narration (vblip_narrate then returns 0). */
typedef int (*vblip_window_cb)(void *user, const vblip_narration_window *w);

typedef struct {
  int windows, skipped, vision_frames;
  double media_sec;   /* video time narrated (the end of the last window read) */
  double wall_ms;     /* time vblip_narrate took */
  double max_lag_sec; /* live: the largest lag of a captioned window */
} vblip_narration_stats;

/* Narrates source (a file, "-" for stdin, or with allow_network a URL or a device): answers
 * prompt about each window with p and calls cb per window. stats may be NULL. 0, or -1 (also
 * when the source ends before the first window is complete). */
int vblip_narrate(vblip_model *m, const char *source, const char *prompt,
                  const vblip_narrate_options *o, const vblip_gen_params *p, vblip_window_cb cb,
                  void *user, vblip_narration_stats *stats);
/* Checks the window, stride and frames rule; 0, or -1 with a message of kind INPUT. */
int vblip_narrate_options_check(const vblip_narrate_options *o);

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

/* Checks a prompt before any work, as vblip_generate would lay it out after one video:
 * valid UTF-8, and short enough to leave room for an answer among the language model's
 * positions (OPT: max_positions, the video's query tokens and one answer token among
 * them; T5: 2048 input positions). It tokenizes at most one token past the limit (so does
 * vblip_input_ids for any input). *n_positions (may be NULL): the positions the input
 * takes, the video's included. 0, or -1 with an error of kind VBLIP_ERROR_INPUT. */
int vblip_check_prompt(const vblip_model *m, const char *prompt, size_t *n_positions);

/* ---- tokenizer ---- */

/* The ids transformers' tokenizer gives text (valid UTF-8; add_special: with the
 * special tokens it adds). *ids: a new array of *n ids (free it). */
int vblip_tokenize(const vblip_model *m, const char *text, int add_special, int32_t **ids,
                   size_t *n);
/* Ids back to text (skip_special: without special tokens). *text: a new string (free it). */
int vblip_detokenize(const vblip_model *m, const int32_t *ids, size_t n, int skip_special,
                     char **text);

/* ---- chat ---- */

/* The VideoBLIP demo's conversation rule: each earlier turn contributes
 * users[i] + " " + answers[i], the turns and then the new message are joined with
 * single spaces, and the whole is stripped of surrounding whitespace. NULL strings
 * count as empty. Returns a new string (free it), or NULL when out of memory. */
char *vblip_chat_prompt(const char *const *users, const char *const *answers, size_t n_turns,
                        const char *message);

/* ---- model files: conversion ---- */

/* Writes the model (a directory vblip loads, a GGUF file or a repo id) as one
 * GGUF file: the configs, the preprocessor settings and the tokenizer files as
 * metadata ("vblip.file.<name>"), and the weights with transformers' names.
 * type: "f32" (default when NULL), "f16", "bf16" (every matrix; 1-D tensors stay
 * f32) or "q8_0" (the linear layers' matrices in GGUF's Q8_0 blocks; norms,
 * biases and embeddings f32). Tied duplicates (.bin files' lm_head / embed_tokens
 * copies) are left out; the loaders recreate them. The file is written as
 * "<out_path>.tmp-<pid>" and renamed at the end; on failure nothing is left.
 * progress: a progress bar on stderr when it is a terminal. vblip_model_load
 * accepts the .gguf path in place of a directory. */
int vblip_convert(const char *model, const char *out_path, const char *type, int progress);
/* vblip_convert with a type for the vision encoder's and Q-Former's linear
 * weights: "int8" (per-output-channel int8 + "<name>_scale" float32 tensors;
 * the products --vision-dtype int8 quantizes) or NULL / "same" (as type). */
int vblip_convert_ex(const char *model, const char *out_path, const char *type,
                     const char *vision_type, int progress);
/* Every conversion setting (vblip_convert_with; zero-initialize, then set). */
typedef struct {
  const char *type;        /* as vblip_convert's type (NULL: "f32") */
  const char *vision_type; /* as vblip_convert_ex's (NULL: "same") */
  /* with type "q8_0": the language model's linear layers (not its embeddings
   * or vocabulary head) stored in vblip's own GGUF tensor type Q8X16 (id
   * 0x5642): Q8_0 already in the layout of vblip's AVX512-VNNI kernels,
   * which a load on such a CPU uses where the file is mapped (no copy, no
   * repacking); elsewhere it is unpacked to Q8_0 at load. Other GGUF tools
   * cannot read such files. Any other type with packed is an error. */
  int packed;
  int progress; /* as vblip_convert's */
} vblip_convert_options;
int vblip_convert_with(const char *model, const char *out_path, const vblip_convert_options *o);

#ifdef __cplusplus
}
#endif

#endif
