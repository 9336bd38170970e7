/* VideoBLIP: the public API, gluing video preprocessing, the vision encoder,
 * the Q-Former, the projection, the language model and generation. */
#include <ctype.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "checkpoint/config.h"
#include "checkpoint/model_source.h"
#include "checkpoint/weights.h"
#include "formats/gguf.h"
#include "generate/generate.h"
#include "kernels/tile_gemm.h"
#include "models/input.h"
#include "models/interleave.h"
#include "models/memory_check.h"
#include "models/videoblip_internal.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/escape.h"
#include "runtime/vfs.h"
#include "video/frame_stream.h"
#include "video/video.h"

const char *vblip_last_error(void) {
  return vb_error_message();
}
vblip_error_kind vblip_last_error_kind(void) {
  return vb_error_is_input() ? VBLIP_ERROR_INPUT : VBLIP_ERROR_OTHER;
}
const char *vblip_version(void) {
  return VBLIP_VERSION;
}

static char g_cpu_summary[320];
static pthread_once_t g_cpu_summary_once = PTHREAD_ONCE_INIT;

static void make_cpu_summary(void) {
  snprintf(g_cpu_summary, sizeof g_cpu_summary, "%s; bf16 products %s", vb_cpu_describe(),
           vb_cpu_bf16_products_describe());
}

const char *vblip_cpu_summary(void) {
  pthread_once(&g_cpu_summary_once, make_cpu_summary);
  return g_cpu_summary;
}

void vblip_load_options_default(vblip_load_options *o) {
  memset(o, 0, sizeof *o);
  o->progress = 1;
  o->dtype = VBLIP_DTYPE_AUTO;
  /* VBLIP_DTYPE=f32|bf16|auto changes the default (options set later win) */
  vblip_dtype d;
  if (vblip_dtype_parse(getenv("VBLIP_DTYPE"), &d) == 0) o->dtype = d;
  vblip_vision_dtype v;
  if (vblip_vision_dtype_parse(getenv("VBLIP_VISION_DTYPE"), &v) == 0) o->vision_dtype = v;
}

int vblip_vision_dtype_parse(const char *s, vblip_vision_dtype *out) {
  if (!s) return -1;
  if (strcmp(s, "auto") == 0)
    *out = VBLIP_VISION_AUTO;
  else if (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0)
    *out = VBLIP_VISION_F32;
  else if (strcmp(s, "bf16") == 0 || strcmp(s, "bfloat16") == 0)
    *out = VBLIP_VISION_BF16;
  else if (strcmp(s, "int8") == 0)
    *out = VBLIP_VISION_INT8;
  else
    return -1;
  return 0;
}

const char *vblip_model_vision_dtype(const vblip_model *m) {
  return m->vision_int8 ? "int8" : m->vision_compute == VB_COMPUTE_BF16 ? "bf16" : "f32";
}

/* The compute type of the vision encoder's and Q-Former's products (int8
 * layers aside): --vision-dtype f32|bf16 as asked; auto follows the model's
 * compute type, except that bf16 not asked for (--dtype auto or a quantized
 * language model) becomes f32 where bf16 products are slower than f32 ones
 * (vb_cpu_bf16_products_fast): these products are bound by the arithmetic,
 * not by reading the weights, and f32 is also the exact path. (The loader
 * keeps bf16 where f32 would not fit in memory.) */
static vb_compute vision_compute(const vblip_load_options *o, vb_compute model_compute) {
  if (o->vision_dtype == VBLIP_VISION_F32) return VB_COMPUTE_F32;
  if (o->vision_dtype == VBLIP_VISION_BF16) return VB_COMPUTE_BF16;
  if (model_compute == VB_COMPUTE_BF16 && o->dtype != VBLIP_DTYPE_BF16 &&
      !vb_cpu_bf16_products_fast())
    return VB_COMPUTE_F32;
  return model_compute;
}

/* Whether a checkpoint stores vision weights as int8 (vblip convert --vision-type int8). */
static int has_int8_vision(const vb_weights *w) {
  for (size_t i = 0; i < w->tt.count; i++)
    if (w->tt.items[i].dtype == VB_DT_I8 &&
        (strncmp(w->tt.items[i].name, "vision_model.", 13) == 0 ||
         strncmp(w->tt.items[i].name, "qformer.", 8) == 0))
      return 1;
  return 0;
}

int vblip_dtype_parse(const char *s, vblip_dtype *out) {
  if (!s) return -1;
  if (strcmp(s, "auto") == 0)
    *out = VBLIP_DTYPE_AUTO;
  else if (strcmp(s, "f32") == 0 || strcmp(s, "float32") == 0)
    *out = VBLIP_DTYPE_F32;
  else if (strcmp(s, "bf16") == 0 || strcmp(s, "bfloat16") == 0)
    *out = VBLIP_DTYPE_BF16;
  else if (strcmp(s, "q8_0") == 0)
    *out = VBLIP_DTYPE_Q8_0;
  else if (strcmp(s, "q4_0") == 0)
    *out = VBLIP_DTYPE_Q4_0;
  else if (strcmp(s, "q4_k") == 0)
    *out = VBLIP_DTYPE_Q4_K;
  else
    return -1;
  return 0;
}

const char *vblip_model_dtype(const vblip_model *m) {
  return m->compute == VB_COMPUTE_BF16 ? "bf16" : "f32";
}

int vblip_layout_parse(const char *s, vblip_layout *out) {
  if (!s) return -1;
  if (strcmp(s, "auto") == 0)
    *out = VBLIP_LAYOUT_AUTO;
  else if (strcmp(s, "blip2") == 0)
    *out = VBLIP_LAYOUT_BLIP2;
  else if (strcmp(s, "interleaved") == 0)
    *out = VBLIP_LAYOUT_INTERLEAVED;
  else
    return -1;
  return 0;
}

vblip_layout vblip_model_layout(const vblip_model *m) {
  return m->layout;
}

const char *vblip_layout_name(vblip_layout l) {
  return l == VBLIP_LAYOUT_INTERLEAVED ? "interleaved" : l == VBLIP_LAYOUT_BLIP2 ? "blip2" : "auto";
}

/* Loading a large model (mapping, converting and packing its weights) takes seconds: with
 * progress on a terminal, one status row on stderr names the stage, cleared at the end. */
typedef struct {
  int show;
  char name[48];
  double t0;
} load_status;

static void load_stage(load_status *ls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void load_stage(load_status *ls, const char *fmt, ...) {
  if (!ls->show) return;
  char what[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  char line[256];
  snprintf(line, sizeof line, "vblip: loading %s: %s (%.1f s)", ls->name, what,
           (vb_now_ms() - ls->t0) / 1e3);
  /* within one terminal row: erasing the row must erase all of it */
  struct winsize ws;
  int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col : 80;
  fprintf(stderr, "\r\033[K%.*s", cols - 1, line);
  fflush(stderr);
}

static void load_done(load_status *ls) {
  if (ls->show) fputs("\r\033[K", stderr);
  ls->show = 0;
}

vblip_model *vblip_model_load(const char *path, const vblip_load_options *o) {
  vblip_load_options def;
  if (!o) {
    vblip_load_options_default(&def);
    o = &def;
  }
  /* AMX permission must be requested before any worker thread exists, and
   * oneDNN's ISA capped before its first primitive: CPU set-up comes first. */
  vb_cpu_init();
  if (o->n_threads > 0) omp_set_num_threads(o->n_threads);
  vblip_model *m = vb_calloc(1, sizeof *m);
  if (!m) return NULL;
  if (vb_model_source_open(path, o->progress, &m->source) != 0) {
    free(m);
    return NULL;
  }
  const char *dir = m->source.path;
  load_status ls = {.show = o->progress && isatty(STDERR_FILENO), .t0 = vb_now_ms()};
  { /* the last part of the path: the row stays short */
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
      n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
      b--;
    snprintf(ls.name, sizeof ls.name, "%.*s", (int)(n - b < 32 ? n - b : 32), path + b);
  }
  load_stage(&ls, "configuration and tokenizer");
  vb_dtype lm_quant = o->dtype == VBLIP_DTYPE_Q8_0   ? VB_DT_Q8_0
                      : o->dtype == VBLIP_DTYPE_Q4_0 ? VB_DT_Q4_0
                      : o->dtype == VBLIP_DTYPE_Q4_K ? VB_DT_Q4_K
                                                     : VB_DT_F32;
  m->compute = o->dtype == VBLIP_DTYPE_BF16 || lm_quant ? VB_COMPUTE_BF16
               : o->dtype == VBLIP_DTYPE_F32            ? VB_COMPUTE_F32
               : vb_cpu_prefers_bf16()                  ? VB_COMPUTE_BF16
                                                        : VB_COMPUTE_F32;
  if (vb_config_load(dir, &m->cfg) != 0 || vb_image_config_load(dir, &m->image) != 0) goto fail;
  if (m->image.width != m->cfg.vision.image_size || m->image.height != m->cfg.vision.image_size) {
    vb_error("%s: preprocessor size %dx%d differs from the vision model's image_size %d", dir,
             m->image.width, m->image.height, m->cfg.vision.image_size);
    goto fail;
  }
  m->layout = o->layout != VBLIP_LAYOUT_AUTO ? o->layout
              : m->cfg.eilev                 ? VBLIP_LAYOUT_INTERLEAVED
                                             : VBLIP_LAYOUT_BLIP2;
  /* EILEV's processor loads the checkpoint's fast tokenizer (tokenizer.json); VideoBLIP's
   * reference is the slow one. They differ on Flan-T5: the published tokenizer.json keeps
   * a "\n" as a word-boundary token that the SentencePiece model drops. */
  if (vb_tokenizer_load_pref(dir, m->layout == VBLIP_LAYOUT_INTERLEAVED, &m->tok) != 0) goto fail;
  if (m->layout == VBLIP_LAYOUT_INTERLEAVED && vb_icl_newline_id(m->tok, &m->newline_id) != 0)
    goto fail;
  load_stage(&ls, "mapping the weights");
  if (vb_model_source_weights(&m->source, &m->weights) != 0) goto fail;
  /* before anything is converted or allocated: a model that does not fit is
   * refused with numbers, not killed by the OOM killer half-way */
  vblip_vision_dtype vd = o->vision_dtype;
  m->vision_compute = vision_compute(o, m->compute);
  /* f32 vision where bf16 is slow is a choice, not a need: not at the price of
   * a model that no longer fits (a 16-bit file's ViT-g doubles to 4 GB) */
  if (vd != VBLIP_VISION_F32 && vd != VBLIP_VISION_BF16 && m->vision_compute != m->compute &&
      !vb_memory_fits(&m->cfg, &m->weights.tt, m->compute, m->vision_compute, lm_quant))
    m->vision_compute = m->compute;
  if (vb_memory_check(&m->cfg, &m->weights.tt, m->compute, m->vision_compute, lm_quant) != 0)
    goto fail;
  /* vision encoder and Q-Former always run with many rows: pack their bf16
   * weights for oneDNN; the language model also decodes row by row: plain. */
  m->weights.compute = m->vision_compute;
  m->weights.pack = 1;
  /* auto takes an int8 checkpoint's products as int8 only where the CPU has int8 dot products
   * (AMX-INT8, AVX512-VNNI, AVX-VNNI): the portable int8 core ran the ViT ~15x slower than f32
   * sgemm on an AVX2 CPU, so there the int8 weights are dequantized to the compute type */
  int auto_int8 =
      vd == VBLIP_VISION_AUTO && has_int8_vision(&m->weights) && vb_tile_i8_best() != VB_TILE_I8_C;
  if (vd == VBLIP_VISION_INT8 || auto_int8) {
    m->weights.int8 = m->vision_int8 = 1;
    /* quantized at load: the default kinds, or VBLIP_INT8_LAYERS (a tuning aid) */
    m->weights.int8_kinds = vd == VBLIP_VISION_INT8 ? VB_I8_DEFAULT : 0;
    const char *kinds = getenv("VBLIP_INT8_LAYERS");
    if (vd == VBLIP_VISION_INT8 && kinds && vb_i8_kinds_parse(kinds, &m->weights.int8_kinds) != 0) {
      vb_error("VBLIP_INT8_LAYERS=%s: expected a comma-separated list of qkv, proj, fc1, fc2, "
               "qformer, all, none",
               kinds);
      goto fail;
    }
  }
  load_stage(&ls, "vision encoder (%d layers, %s)", m->cfg.vision.num_hidden_layers,
             vblip_model_vision_dtype(m));
  if (vb_vit_init(&m->vit, &m->weights, &m->cfg.vision) != 0) goto fail;
  load_stage(&ls, "Q-Former");
  if (vb_qformer_init(&m->qformer, &m->weights, &m->cfg.qformer, m->cfg.num_query_tokens) != 0)
    goto fail;
  m->weights.pack = 0;
  m->weights.int8 = 0;
  m->weights.compute = m->compute;
  if (vb_weights_linear(&m->weights, "language_projection", m->cfg.lm_hidden,
                        m->cfg.qformer.hidden_size, 1, &m->projection) != 0)
    goto fail;
  load_stage(&ls, "language model (%s)", m->cfg.lm_kind == VB_LM_OPT ? "OPT" : "T5");
  m->weights.quant = lm_quant; /* the language model's layers only */
  int rc = m->cfg.lm_kind == VB_LM_OPT ? vb_opt_create(&m->weights, &m->cfg, &m->lm)
                                       : vb_t5_create(&m->weights, &m->cfg, &m->lm);
  m->weights.quant = VB_DT_F32;
  if (rc != 0) goto fail;
  load_done(&ls);
  return m;
fail:
  load_done(&ls);
  vb_error_context("loading %s", path);
  vblip_model_free(m);
  return NULL;
}

void vblip_model_free(vblip_model *m) {
  if (!m) return;
  if (m->lm) m->lm->destroy(m->lm);
  vb_linear_release(&m->projection);
  vb_qformer_free(&m->qformer);
  vb_vit_free(&m->vit);
  vb_weights_close(&m->weights);
  vb_tokenizer_free(m->tok);
  vb_model_source_close(&m->source);
  free(m);
}

void vblip_model_get_info(const vblip_model *m, vblip_model_info *info) {
  memset(info, 0, sizeof *info);
  info->language_model = m->cfg.lm_kind == VB_LM_OPT ? "opt" : "t5";
  info->image_size = m->cfg.vision.image_size;
  info->frame_tokens = m->vit.seq;
  info->vision_width = m->cfg.vision.hidden_size;
  info->vision_layers = m->cfg.vision.num_hidden_layers;
  info->num_query_tokens = m->cfg.num_query_tokens;
  info->qformer_width = m->cfg.qformer.hidden_size;
  info->lm_width = m->cfg.lm_hidden;
  info->vocab_size = m->lm->vocab_size;
  info->max_positions = m->lm->max_positions;
}

void vblip_sampling_default(vblip_sampling *s) {
  s->mode = VBLIP_SAMPLE_UNIFORM;
  s->n_frames = 8;
  s->start_sec = 0;
  s->end_sec = -1;
  s->times = NULL;
}

int vblip_video_load(const vblip_model *m, const char *path, const vblip_sampling *s,
                     vblip_video *v) {
  memset(v, 0, sizeof *v);
  vb_sampling vs;
  vb_sampling_default(&vs);
  if (s) {
    vs.mode = s->mode == VBLIP_SAMPLE_DEMO ? VB_SAMPLE_DEMO : VB_SAMPLE_UNIFORM;
    vs.n_frames = s->n_frames;
    vs.start_sec = s->start_sec;
    vs.end_sec = s->end_sec;
  }
  double t0 = vb_now_ms();
  vb_frames f;
  if (s && s->mode == VBLIP_SAMPLE_TIMES) {
    if (!s->times) return vb_error("frame sampling by times needs the times");
    if (vb_frames_at_times(path, s->times, s->n_frames, &f) != 0) return -1;
  } else if (vb_video_read(path, &vs, &f) != 0) {
    return -1;
  }
  double t1 = vb_now_ms();
  int S = m->image.width, T = f.count;
  v->n_frames = T;
  v->image_size = S;
  v->frame_index = vb_malloc((size_t)T * sizeof *v->frame_index);
  v->frame_time = vb_malloc((size_t)T * sizeof *v->frame_time);
  v->frames = vb_malloc((size_t)T * S * S * 3);
  v->pixel_values = vb_malloc((size_t)T * S * S * 3 * sizeof(float));
  int rc = -1;
  if (v->frame_index && v->frame_time && v->frames && v->pixel_values) {
    for (int i = 0; i < T; i++) {
      v->frame_index[i] = f.first_index + f.index[i]; /* in the whole video */
      v->frame_time[i] = f.seconds[i];
    }
    rc = vb_preprocess_frames(&f, &m->image, v->frames, v->pixel_values);
  }
  vb_frames_free(&f);
  v->ms_decode = t1 - t0;
  v->ms_preprocess = vb_now_ms() - t1;
  if (rc != 0) vblip_video_free(v);
  return rc;
}

int vblip_video_encode_vision(vblip_model *m, vblip_video *v) {
  int T = v->n_frames, D = m->cfg.vision.hidden_size, seq = m->vit.seq;
  if (T <= 0 || !v->pixel_values) return vb_error("the video has no frames to encode");
  if (v->image_size != m->cfg.vision.image_size)
    return vb_error("frames are %dx%d, the model needs %dx%d", v->image_size, v->image_size,
                    m->cfg.vision.image_size, m->cfg.vision.image_size);
  free(v->vision);
  free(v->qformer);
  free(v->projected); /* earlier query outputs no longer match: the video counts as not encoded */
  v->qformer = v->projected = NULL;
  v->vision_tokens = 0;
  v->vision = vb_malloc((size_t)T * seq * D * sizeof(float));
  if (!v->vision) return -1;
  double t0 = vb_now_ms();
  if (vb_vit_forward(&m->vit, v->pixel_values, T, v->vision) != 0) {
    free(v->vision);
    v->vision = NULL;
    return -1;
  }
  v->ms_vision = vb_now_ms() - t0;
  v->vision_tokens = T * seq;
  v->vision_width = D;
  return 0;
}

/* The Q-Former and the projection over v's vision tokens. */
static int encode_queries(vblip_model *m, vblip_video *v) {
  int Q = m->cfg.num_query_tokens, H = m->cfg.qformer.hidden_size, E = m->cfg.lm_hidden;
  free(v->qformer);
  free(v->projected);
  v->qformer = vb_malloc((size_t)Q * H * sizeof(float));
  v->projected = vb_malloc((size_t)Q * E * sizeof(float));
  if (!v->qformer || !v->projected) {
    free(v->projected);
    v->projected = NULL;
    return -1;
  }
  double t0 = vb_now_ms();
  int rc = vb_qformer_forward(&m->qformer, v->vision, v->vision_tokens, v->qformer);
  if (rc == 0) rc = vb_linear_forward(&m->projection, v->qformer, Q, v->projected);
  if (rc != 0) {
    free(v->projected); /* half-encoded: vblip_generate must refuse it */
    v->projected = NULL;
    return -1;
  }
  v->ms_qformer = vb_now_ms() - t0;
  v->n_query = Q;
  v->qformer_width = H;
  v->lm_width = E;
  return 0;
}

int vblip_video_encode(vblip_model *m, vblip_video *v) {
  if (vblip_video_encode_vision(m, v) != 0) return -1;
  return encode_queries(m, v);
}

int vblip_video_join_encode(vblip_model *m, const vblip_video *const *parts, size_t n,
                            vblip_video *out) {
  memset(out, 0, sizeof *out);
  int D = m->cfg.vision.hidden_size, seq = m->vit.seq;
  size_t T = 0;
  for (size_t i = 0; i < n; i++) {
    const vblip_video *p = parts[i];
    if (!p || !p->vision || p->vision_width != D || p->vision_tokens != p->n_frames * seq)
      return vb_error("video %zu of %zu has no vision tokens from this model", i + 1, n);
    T += (size_t)p->n_frames;
  }
  if (T == 0 || T > 100000) return vb_error("cannot join %zu frames", T);
  out->n_frames = (int)T;
  out->image_size = parts[0]->image_size;
  out->frame_index = vb_malloc(T * sizeof *out->frame_index);
  out->frame_time = vb_malloc(T * sizeof *out->frame_time);
  out->vision = vb_malloc(T * seq * D * sizeof(float));
  if (!out->frame_index || !out->frame_time || !out->vision) {
    vblip_video_free(out);
    return -1;
  }
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    const vblip_video *p = parts[i];
    for (int k = 0; k < p->n_frames; k++) {
      out->frame_index[at + k] = p->frame_index ? p->frame_index[k] : (int64_t)(at + k);
      out->frame_time[at + k] = p->frame_time ? p->frame_time[k] : 0;
    }
    memcpy(out->vision + at * seq * D, p->vision, (size_t)p->n_frames * seq * D * sizeof(float));
    at += (size_t)p->n_frames;
  }
  out->vision_tokens = (int)T * seq;
  out->vision_width = D;
  if (encode_queries(m, out) != 0) {
    vblip_video_free(out);
    return -1;
  }
  return 0;
}

void vblip_video_free(vblip_video *v) {
  free(v->frame_index);
  free(v->frame_time);
  free(v->frames);
  free(v->pixel_values);
  free(v->vision);
  free(v->qformer);
  free(v->projected);
  memset(v, 0, sizeof *v);
}

void vblip_gen_params_default(vblip_gen_params *p) {
  memset(p, 0, sizeof *p);
  p->num_beams = 4;
  p->max_new_tokens = 128;
  p->temperature = 1.0f;
  p->top_k = 50;
  p->top_p = 1.0f;
  p->repetition_penalty = 1.0f;
  p->length_penalty = 1.0f;
}

void vblip_gen_params_eilev(vblip_gen_params *p) {
  vblip_gen_params_default(p);
  p->num_beams = 5;
  p->max_new_tokens = 32;
  p->length_penalty = -1.0f;
}

void vblip_sampling_eilev(vblip_sampling *s) {
  vblip_sampling_default(s);
  s->end_sec = 8.0;
}

int vb_check_encoded(const vblip_model *m, const vblip_video *v) {
  if (!v || !v->projected || v->lm_width != m->lm->embed_dim ||
      v->n_query != m->cfg.num_query_tokens)
    return vb_error("the video has not been encoded with this model");
  return 0;
}

/* T5's encoder has relative positions and no length limit, but its cost grows with the
 * square of the input: inputs are bounded all the same (Flan-T5 was trained on 512). */
#define T5_MAX_INPUT_POSITIONS 2048

/* The most positions an input may take: OPT shares its positions between the input and
 * the answer, which needs at least one. Tokenization stops as soon as an input passes
 * this, so a huge prompt is never tokenized whole. */
static size_t input_limit(const vblip_model *m) {
  int P = m->lm->max_positions;
  return m->cfg.lm_kind == VB_LM_OPT && P > 1 ? (size_t)P - 1 : T5_MAX_INPUT_POSITIONS;
}

/* The input error for an input over the limit (the tokenizer's "longer than" message). */
static int too_long(const vblip_model *m, size_t limit, size_t n_query) {
  if (m->cfg.lm_kind == VB_LM_OPT && m->lm->max_positions > 0)
    return vb_input_error("the prompt is longer than %zu tokens: the language model takes %d "
                          "positions, %zu for the video and at least 1 for the answer",
                          limit - n_query, m->lm->max_positions, n_query);
  return vb_input_error("the input is longer than %zu positions, the limit for this model", limit);
}

/* BLIP-2: one video, then the prompt (text items joined with spaces, verbatim) tokenized
 * with the tokenizer's special tokens; the video's queries take the first positions. */
static int blip2_ids(const vblip_model *m, const vblip_input *in, int32_t **ids, uint8_t **mask,
                     size_t *n) {
  size_t nv = vblip_input_n_videos(in);
  if (nv != 1 || in->items[0].text)
    return vb_error("the BLIP-2 layout takes one video followed by the prompt (this input has %zu "
                    "video%s%s); several videos need the interleaved layout",
                    nv, nv == 1 ? "" : "s", nv == 1 ? " after text" : "");
  size_t len = 1;
  for (size_t i = 1; i < in->n; i++)
    len += strlen(in->items[i].text) + 1;
  char *prompt = vb_malloc(len);
  if (!prompt) return -1;
  prompt[0] = 0;
  for (size_t i = 1; i < in->n; i++) {
    if (i > 1) strcat(prompt, " ");
    strcat(prompt, in->items[i].text);
  }
  int32_t *tok = NULL;
  size_t nt = 0, Q = (size_t)m->cfg.num_query_tokens, limit = input_limit(m);
  if (limit <= Q) {
    free(prompt);
    return vb_error("the language model's %d positions leave no room for a prompt",
                    m->lm->max_positions);
  }
  int rc = vb_tokenizer_encode_max(m->tok, prompt, strlen(prompt), true, limit - Q, &tok, &nt);
  free(prompt);
  if (rc != 0) return vb_error_is_input() ? too_long(m, limit, Q) : -1;
  *ids = vb_malloc((Q + nt) * sizeof **ids);
  *mask = vb_calloc(Q + nt, 1);
  if (!*ids || !*mask) {
    free(tok);
    free(*ids);
    free(*mask);
    *ids = NULL;
    *mask = NULL;
    return -1;
  }
  for (size_t i = 0; i < Q; i++) {
    (*ids)[i] = m->cfg.pad_token_id;
    (*mask)[i] = 1;
  }
  memcpy(*ids + Q, tok, nt * sizeof *tok);
  free(tok);
  *n = Q + nt;
  return 0;
}

static int interleaved_ids(const vblip_model *m, const vblip_input *in, int32_t **ids,
                           uint8_t **mask, size_t *n) {
  const char **texts = vb_calloc(in->n ? in->n : 1, sizeof *texts);
  if (!texts) return -1;
  for (size_t i = 0; i < in->n; i++)
    texts[i] = in->items[i].text;
  vb_icl_block *blocks = NULL;
  size_t nb = 0;
  int rc = vb_icl_blocks(texts, in->n, &blocks, &nb);
  free(texts);
  if (rc != 0) return -1;
  vb_icl_spec spec = {.max_ids = input_limit(m),
                      .decoder_only = m->cfg.lm_kind == VB_LM_OPT,
                      .bos_id = m->cfg.bos_token_id,
                      .eos_id = m->cfg.eos_token_id,
                      .pad_id = m->cfg.pad_token_id,
                      .newline_id = m->newline_id,
                      .n_query = m->cfg.num_query_tokens};
  rc = vb_icl_ids(m->tok, &spec, blocks, nb, ids, mask, n);
  vb_icl_blocks_free(blocks, nb);
  /* the only input error left here is the limit: the texts are valid UTF-8 */
  if (rc != 0 && vb_error_is_input() && m->cfg.lm_kind == VB_LM_OPT && m->lm->max_positions > 0)
    return vb_input_error("the input is longer than %zu positions: the language model takes %d, "
                          "at least 1 of them for the answer",
                          spec.max_ids, m->lm->max_positions);
  return rc;
}

int vblip_input_ids(const vblip_model *m, const vblip_input *in, int32_t **ids,
                    uint8_t **video_mask, size_t *n) {
  *ids = NULL;
  *video_mask = NULL;
  *n = 0;
  if (!in) return vb_error("no input");
  /* text that is not UTF-8 is the caller's error, named before any tokenizing */
  for (size_t i = 0; i < in->n; i++) {
    size_t bad;
    const char *t = in->items[i].text;
    if (t && !vb_utf8_valid(t, strlen(t), &bad))
      return vb_input_error("the prompt is not valid UTF-8 (byte %zu)", bad);
  }
  return m->layout == VBLIP_LAYOUT_INTERLEAVED ? interleaved_ids(m, in, ids, video_mask, n)
                                               : blip2_ids(m, in, ids, video_mask, n);
}

int vblip_input_embeds(const vblip_model *m, const vblip_input *in, float **embeds, size_t *n) {
  *embeds = NULL;
  *n = 0;
  for (size_t k = 0; k < vblip_input_n_videos(in); k++) {
    const vblip_video *v = vblip_input_video(in, k);
    if (!v) return vb_error("video %zu has not been loaded (vblip_input_encode)", k + 1);
    if (vb_check_encoded(m, v) != 0) return vb_error_context("video %zu", k + 1);
  }
  int32_t *ids = NULL;
  uint8_t *mask = NULL;
  size_t len = 0;
  if (vblip_input_ids(m, in, &ids, &mask, &len) != 0) return -1;
  size_t E = (size_t)m->lm->embed_dim, Q = (size_t)m->cfg.num_query_tokens;
  float *out = vb_malloc(len * E * sizeof(float));
  int rc = out ? 0 : -1;
  /* masked rows take the videos' query outputs in order, Q rows each; runs of
   * other ids go through the language model's embedding table */
  size_t video = 0, row = 0;
  const vblip_video *v = NULL;
  for (size_t i = 0; rc == 0 && i < len;) {
    size_t j = i;
    while (j < len && mask[j] == mask[i])
      j++;
    if (!mask[i]) {
      rc = m->lm->embed(m->lm, ids + i, (int)(j - i), out + i * E);
    } else {
      for (size_t r = i; r < j; r++) {
        if (row == 0) v = vblip_input_video(in, video++);
        memcpy(out + r * E, v->projected + row * E, E * sizeof(float));
        row = (row + 1) % Q;
      }
    }
    i = j;
  }
  free(ids);
  free(mask);
  if (rc != 0) {
    free(out);
    return -1;
  }
  *embeds = out;
  *n = len;
  return 0;
}

/* Streams text: decodes the tokens so far and hands out what is new, holding
 * back trailing whitespace (clean-up may still remove it) and incomplete UTF-8.
 * A piece handed out cannot be taken back: when a later decode changes text
 * already shown (clean-up joining across it), nothing more streams and the
 * caller's final text stands. */
typedef struct {
  vblip_model *m;
  vblip_text_cb cb;
  void *user;
  int32_t eos;
  int32_t *ids;
  int n, cap;
  char *shown; /* the text handed out so far (emitted bytes) */
  size_t emitted;
  int stop;
} stream_state;

static int on_token(void *user, int32_t token) {
  stream_state *s = user;
  if (token == s->eos) return 0;
  if (s->n == s->cap) {
    int cap = s->cap ? s->cap * 2 : 64;
    int32_t *ids = realloc(s->ids, (size_t)cap * sizeof *ids);
    if (!ids) return 0;
    s->ids = ids;
    s->cap = cap;
  }
  s->ids[s->n++] = token;
  char *text = NULL;
  if (vb_tokenizer_decode(s->m->tok, s->ids, (size_t)s->n, true, true, &text) != 0) return 0;
  size_t len = strlen(text);
  while (len > 0 && isspace((unsigned char)text[len - 1]))
    len--;
  /* an unfinished multi-byte character decodes to U+FFFD (EF BF BD): wait for the rest */
  if (len >= 3 && memcmp(text + len - 3, "\xef\xbf\xbd", 3) == 0) len -= 3;
  int rc = 0;
  if (len > s->emitted && (s->emitted == 0 || memcmp(text, s->shown, s->emitted) == 0)) {
    char *shown = realloc(s->shown, len + 1);
    if (shown) {
      memcpy(shown, text, len);
      shown[len] = 0;
      s->shown = shown;
      rc = s->cb(s->user, shown + s->emitted);
      s->emitted = len;
    }
  }
  free(text);
  s->stop = rc;
  return rc;
}

int vblip_generate_input(vblip_model *m, const vblip_input *in, const vblip_gen_params *p,
                         vblip_text_cb cb, void *user, vblip_answer *out) {
  memset(out, 0, sizeof *out);
  vb_gen_config g;
  vb_gen_config_default(&g);
  g.num_beams = p->num_beams;
  g.num_return_sequences = 1;
  g.max_new_tokens = p->max_new_tokens;
  g.min_new_tokens = p->min_new_tokens;
  g.do_sample = p->do_sample != 0;
  g.temperature = p->temperature;
  g.top_k = p->top_k;
  g.top_p = p->top_p;
  g.seed = p->seed;
  g.repetition_penalty = p->repetition_penalty;
  g.no_repeat_ngram_size = p->no_repeat_ngram_size;
  g.length_penalty = p->length_penalty;
  switch (p->early_stopping) {
  case VBLIP_EARLY_STOPPING_HEURISTIC:
    g.early_stopping = VB_EARLY_FALSE;
    break;
  case VBLIP_EARLY_STOPPING_ON:
    g.early_stopping = VB_EARLY_TRUE;
    break;
  case VBLIP_EARLY_STOPPING_NEVER:
    g.early_stopping = VB_EARLY_NEVER;
    break;
  default:
    return vb_error("early_stopping %d is not a vblip_early_stopping", (int)p->early_stopping);
  }
  g.eos_token_id = m->cfg.eos_token_id;
  /* EILEV generates with OPT's "\n" as the end of an answer (BLIP-2's convention) */
  if (m->layout == VBLIP_LAYOUT_INTERLEAVED && m->cfg.lm_kind == VB_LM_OPT)
    g.eos_token_id = m->newline_id;
  g.pad_token_id = m->cfg.pad_token_id;
  g.start_token_id =
      m->cfg.lm_kind == VB_LM_OPT ? m->cfg.bos_token_id : m->cfg.decoder_start_token_id;
  if (vb_gen_config_check(&g) != 0) return -1;
  float *emb = NULL;
  size_t n_emb = 0;
  if (vblip_input_embeds(m, in, &emb, &n_emb) != 0) return -1;
  int rc = -1;
  if (m->lm->set_input(m->lm, emb, (int)n_emb, NULL, 0) != 0) goto done;
  /* Decoder-only models share positions between input and output. */
  if (m->lm->max_positions > 0 && m->cfg.lm_kind == VB_LM_OPT) {
    int room = m->lm->max_positions - (int)n_emb;
    if (g.max_new_tokens > room) g.max_new_tokens = room;
    if (g.max_new_tokens <= 0) {
      vb_error("the prompt leaves no room to generate within the model's %d positions",
               m->lm->max_positions);
      goto done;
    }
  }
  stream_state st = {.m = m, .cb = cb, .user = user, .eos = g.eos_token_id};
  vb_gen_result r;
  double t0 = vb_now_ms();
  int can_stream = cb && (g.num_beams <= 1);
  if (vb_generate(&m->lm->gen, m->lm, &g, can_stream ? on_token : NULL, &st, &r) != 0) {
    free(st.ids);
    free(st.shown);
    goto done;
  }
  out->ms_generate = vb_now_ms() - t0;
  free(st.ids);
  free(st.shown);
  int len = r.lens[0];
  const int32_t *seq = r.seqs[0];
  /* drop the start token */
  int start = len > 0 && seq[0] == g.start_token_id ? 1 : 0;
  out->n_tokens = len - start;
  out->token_ids = vb_malloc((size_t)(out->n_tokens + 1) * sizeof(int32_t));
  if (out->token_ids) {
    memcpy(out->token_ids, seq + start, (size_t)out->n_tokens * sizeof(int32_t));
    out->score = r.scores ? r.scores[0] : 0;
    if (vb_tokenizer_decode(m->tok, seq, (size_t)len, true, true, &out->text) == 0) rc = 0;
  }
  vb_gen_result_free(&r);
done:
  free(emb);
  if (rc != 0) vblip_answer_free(out);
  return rc;
}

int vblip_check_prompt(const vblip_model *m, const char *prompt, size_t *n_positions) {
  /* the input vblip_generate builds; the video is only counted here, never read */
  static const vblip_video placeholder;
  vb_input_item items[2] = {{.video = &placeholder}, {.text = (char *)(prompt ? prompt : "")}};
  vblip_input in = {.items = items, .n = 2, .cap = 2};
  int32_t *ids = NULL;
  uint8_t *mask = NULL;
  size_t n = 0;
  int rc = vblip_input_ids(m, &in, &ids, &mask, &n);
  free(ids);
  free(mask);
  if (rc == 0 && n_positions) *n_positions = n;
  return rc;
}

int vblip_generate(vblip_model *m, const vblip_video *v, const char *prompt,
                   const vblip_gen_params *p, vblip_text_cb cb, void *user, vblip_answer *out) {
  memset(out, 0, sizeof *out);
  if (vb_check_encoded(m, v) != 0) return -1;
  /* the video, then the prompt: BLIP-2's layout, or EILEV's one-block input */
  vb_input_item items[2] = {{.video = v}, {.text = (char *)(prompt ? prompt : "")}};
  vblip_input in = {.items = items, .n = 2, .cap = 2};
  return vblip_generate_input(m, &in, p, cb, user, out);
}

void vblip_answer_free(vblip_answer *a) {
  free(a->text);
  free(a->token_ids);
  memset(a, 0, sizeof *a);
}

char *vblip_postprocess(const char *text) {
  const char *b = text;
  while (*b && isspace((unsigned char)*b))
    b++;
  size_t len = strlen(b);
  while (len > 0 && isspace((unsigned char)b[len - 1]))
    len--;
  char *out = vb_malloc(len + 2);
  if (!out) return NULL;
  memcpy(out, b, len);
  out[len] = 0;
  /* Python's string.punctuation */
  if (len == 0 || !strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", out[len - 1])) {
    out[len] = '.';
    out[len + 1] = 0;
  }
  return out;
}

int vblip_tokenize(const vblip_model *m, const char *text, int add_special, int32_t **ids,
                   size_t *n) {
  return vb_tokenizer_encode(m->tok, text, strlen(text), add_special != 0, ids, n);
}

int vblip_detokenize(const vblip_model *m, const int32_t *ids, size_t n, int skip_special,
                     char **text) {
  return vb_tokenizer_decode(m->tok, ids, n, skip_special != 0, true, text);
}
