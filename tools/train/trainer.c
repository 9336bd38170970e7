/* The training step: vision encoder (frozen, run once per example and kept),
 * Q-Former -> language projection -> frozen language model -> loss, backward
 * into the trainable tensors, AdamW; and writing the result as a complete
 * checkpoint directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/model_source.h"
#include "formats/safetensors.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "text/tokenizer.h"
#include "train/trainer.h"
#include "vblip_train.h"
#include "video/preprocess.h"
#include "video/video.h"
#include "vision/vit.h"

struct vblip_trainer {
  vb_model_source source; /* directory, .gguf or repo id: config, tokenizer and weights */
  vb_model_config cfg;
  vb_image_config image;
  vb_weights w;
  vb_vit vit;
  int vit_ready;
  vb_compute vision_compute; /* the frozen vision encoder's products */
  vb_tokenizer *tok;
  int32_t eos_id; /* OPT: the tokenizer's "</s>" */
  tr_params params;
  tr_qformer *qf;
  tr_lin proj;
  tr_lm *lm;
  tr_adamw opt;
  int64_t step;
  int dropout;                   /* train mode in vblip_trainer_accumulate */
  uint64_t seed;                 /* of the dropout masks */
  long drop_micro, drop_example; /* vblip_trainer_set_dropout_position */
};

struct vblip_train_example {
  int n_vis;
  float *vision; /* [n_vis, vision_width] */
  int32_t *ids, *labels;
  int n_ids, n_labels;
};

void vblip_train_options_default(vblip_train_options *o) {
  memset(o, 0, sizeof *o);
  o->lr = 1e-5;
  o->weight_decay = 0.05;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->dropout = 1;
  o->seed = 42;
}

void vblip_trainer_free(vblip_trainer *t) {
  if (!t) return;
  if (t->lm) t->lm->destroy(t->lm);
  tr_qformer_free(t->qf);
  tr_params_free(&t->params);
  if (t->vit_ready) vb_vit_free(&t->vit);
  vb_weights_close(&t->w);
  vb_tokenizer_free(t->tok);
  vb_model_source_close(&t->source);
  free(t);
}

static int32_t find_token(const vb_tokenizer *tok, const char *s, int32_t fallback) {
  int32_t n = vb_tokenizer_vocab_size(tok);
  for (int32_t i = 0; i < n; i++) {
    const char *p = tok->ops->token(tok->impl, i);
    if (p && strcmp(p, s) == 0) return i;
  }
  return fallback;
}

/* The trainable modules and the frozen ones' forms, once t->w and t->cfg are there. */
/* Dropout needs probabilities below 1 (1 would zero the layer and divide by 0) and no
 * LayerDrop (whole OPT layers skipped at random), which this trainer does not do. */
static int check_dropout(const vb_model_config *c) {
  struct {
    const char *name;
    float p;
  } ps[] = {
      {"qformer_config.hidden_dropout_prob", c->qformer.hidden_dropout_prob},
      {"qformer_config.attention_probs_dropout_prob", c->qformer.attention_probs_dropout_prob},
      {"text_config.dropout", c->lm_kind == VB_LM_OPT ? c->opt.dropout : 0},
      {"text_config.attention_dropout", c->lm_kind == VB_LM_OPT ? c->opt.attention_dropout : 0},
      {"text_config.dropout_rate", c->lm_kind == VB_LM_T5 ? c->t5.dropout_rate : 0}};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
    if (ps[i].p >= 1)
      return vb_error("config.json: %s = %g: training with dropout needs a probability below 1 "
                      "(or train without dropout)",
                      ps[i].name, (double)ps[i].p);
  if (c->lm_kind == VB_LM_OPT && c->opt.layerdrop > 0)
    return vb_error("config.json: text_config.layerdrop = %g is not supported in training with "
                    "dropout (train without dropout)",
                    (double)c->opt.layerdrop);
  return 0;
}

static int vision_stored_f32(const vb_weights *w) {
  int any = 0;
  for (size_t i = 0; i < w->tt.count; i++)
    if (strncmp(w->tt.items[i].name, "vision_model.", 13) == 0) {
      if (w->tt.items[i].dtype != VB_DT_F32) return 0;
      any = 1;
    }
  return any;
}

static int build(vblip_trainer *t, const vblip_train_options *o) {
  t->opt = (tr_adamw){o->lr, o->beta1, o->beta2, o->eps, o->weight_decay};
  t->dropout = o->dropout != 0;
  t->seed = o->seed;
  if (t->dropout && check_dropout(&t->cfg)) return -1;
  t->w.compute = VB_COMPUTE_F32;
  t->w.pack = 0;
  if (o->bf16) {
    if (!vb_cpu_prefers_bf16())
      return vb_error("bf16 training needs a CPU with AMX-BF16 or AVX512-BF16");
    t->w.compute = VB_COMPUTE_BF16; /* the frozen layers only: trained ones are tr_params */
    t->w.pack = 1;
  }
  /* where bf16 products are slower than f32 ones (VDPBF16PS at half the FMA's
   * flops: a Xeon whose AMX the hypervisor hides) the frozen vision encoder,
   * bound by its arithmetic, runs in f32 when its weights are stored f32: read
   * where they lie, no copy, the exact values (as inference's --vision-dtype auto) */
  vb_compute frozen = t->w.compute;
  if (o->bf16 && !vb_cpu_bf16_products_fast() && vision_stored_f32(&t->w)) {
    t->w.compute = VB_COMPUTE_F32;
    t->w.pack = 0;
  }
  t->vision_compute = t->w.compute;
  if (vb_vit_init(&t->vit, &t->w, &t->cfg.vision)) return -1;
  t->vit_ready = 1;
  t->w.compute = frozen;
  t->w.pack = o->bf16;
  if (tr_qformer_create(&t->params, &t->w, &t->cfg.qformer, t->cfg.num_query_tokens, &t->qf))
    return -1;
  if (tr_params_linear(&t->params, &t->w, "language_projection", t->cfg.lm_hidden,
                       t->cfg.qformer.hidden_size, &t->proj))
    return -1;
  t->w.pack = 0;
  return (t->cfg.lm_kind == VB_LM_OPT ? tr_opt_create : tr_t5_create)(&t->w, &t->cfg, &t->lm);
}

static const vblip_train_options *or_default(const vblip_train_options *o,
                                             vblip_train_options *def) {
  if (o) return o;
  vblip_train_options_default(def);
  return def;
}

vblip_trainer *vblip_trainer_open(const char *model, const vblip_train_options *o) {
  vblip_train_options def;
  o = or_default(o, &def);
  vb_cpu_init();
  if (o->n_threads > 0) omp_set_num_threads(o->n_threads);
  vblip_trainer *t = vb_calloc(1, sizeof *t);
  if (!t) return NULL;
  if (vb_model_source_open(model, 1, &t->source)) goto fail;
  const char *dir = t->source.path;
  if (vb_config_load(dir, &t->cfg) || vb_image_config_load(dir, &t->image)) goto fail;
  if (vb_tokenizer_load(dir, &t->tok)) goto fail;
  if (vb_model_source_weights(&t->source, &t->w)) goto fail;
  if (build(t, o)) goto fail;
  t->eos_id = t->cfg.lm_kind == VB_LM_OPT ? find_token(t->tok, "</s>", t->cfg.eos_token_id)
                                          : t->cfg.eos_token_id;
  return t;
fail:
  vb_error_context("preparing %s for training", model);
  vblip_trainer_free(t);
  return NULL;
}

vblip_trainer *vb_trainer_open_table(vb_weights *w, const vb_model_config *cfg,
                                     const vblip_train_options *o) {
  vblip_train_options def;
  o = or_default(o, &def);
  vb_cpu_init();
  if (o->n_threads > 0) omp_set_num_threads(o->n_threads);
  vblip_trainer *t = vb_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->w = *w;
  memset(w, 0, sizeof *w);
  t->cfg = *cfg;
  vb_image_config_default(&t->image);
  t->eos_id = cfg->eos_token_id;
  if (build(t, o)) {
    vb_error_context("preparing the weights for training");
    vblip_trainer_free(t);
    return NULL;
  }
  return t;
}

int vb_trainer_example_ids(vblip_trainer *t, const float *pixel_values, int n_frames,
                           const int32_t *ids, int n_ids, const int32_t *labels, int n_labels,
                           vblip_train_example **out) {
  *out = NULL;
  vblip_train_example *e = vb_calloc(1, sizeof *e);
  if (!e) return -1;
  e->n_vis = n_frames * t->vit.seq;
  e->vision = vb_malloc((size_t)e->n_vis * t->cfg.vision.hidden_size * sizeof(float));
  e->ids = vb_malloc((size_t)n_ids * sizeof *ids + 1);
  e->labels = vb_malloc((size_t)n_labels * sizeof *labels + 1);
  if (!e->vision || !e->ids || !e->labels ||
      vb_vit_forward(&t->vit, pixel_values, n_frames, e->vision)) {
    vblip_train_example_free(e);
    return -1;
  }
  memcpy(e->ids, ids, (size_t)n_ids * sizeof *ids);
  memcpy(e->labels, labels, (size_t)n_labels * sizeof *labels);
  e->n_ids = n_ids;
  e->n_labels = n_labels;
  *out = e;
  return 0;
}

tr_params *vb_trainer_params(vblip_trainer *t) {
  return &t->params;
}
tr_lm *vb_trainer_lm(vblip_trainer *t) {
  return t->lm;
}
tr_qformer *vb_trainer_qformer(vblip_trainer *t) {
  return t->qf;
}
tr_lin *vb_trainer_projection(vblip_trainer *t) {
  return &t->proj;
}
const vb_model_config *vb_trainer_config(const vblip_trainer *t) {
  return &t->cfg;
}

int vblip_trainer_tokens(vblip_trainer *t, const char *prompt, const char *text, int32_t **ids,
                         int *n_ids, int32_t **labels, int *n_labels) {
  *ids = *labels = NULL;
  int32_t *p = NULL, *x = NULL;
  size_t np = 0, nx = 0;
  if (vb_tokenizer_encode(t->tok, prompt, strlen(prompt), true, &p, &np)) return -1;
  if (t->cfg.lm_kind == VB_LM_OPT) {
    size_t len = strlen(text);
    char *spaced = vb_malloc(len + 2);
    if (!spaced) goto fail;
    spaced[0] = ' ';
    memcpy(spaced + 1, text, len + 1);
    int rc = vb_tokenizer_encode(t->tok, spaced, len + 1, false, &x, &nx);
    free(spaced);
    if (rc) goto fail;
    size_t n = np + nx + 1;
    int32_t *a = vb_malloc(n * sizeof *a), *l = vb_malloc(n * sizeof *l);
    if (!a || !l) {
      free(a);
      free(l);
      goto fail;
    }
    memcpy(a, p, np * sizeof *a);
    memcpy(a + np, x, nx * sizeof *a);
    a[n - 1] = t->eos_id;
    for (size_t i = 0; i < n; i++)
      l[i] = i < np ? -100 : a[i];
    *ids = a;
    *labels = l;
    *n_ids = *n_labels = (int)n;
    free(p);
    free(x);
    return 0;
  }
  if (vb_tokenizer_encode(t->tok, text, strlen(text), true, &x, &nx)) goto fail;
  *ids = p;
  *n_ids = (int)np;
  *labels = x;
  *n_labels = (int)nx;
  return 0;
fail:
  free(p);
  free(x);
  return -1;
}

int vblip_trainer_example_pixels(vblip_trainer *t, const float *pixel_values, int n_frames,
                                 const char *prompt, const char *text, vblip_train_example **out) {
  *out = NULL;
  vblip_train_example *e = vb_calloc(1, sizeof *e);
  if (!e) return -1;
  e->n_vis = n_frames * t->vit.seq;
  e->vision = vb_malloc((size_t)e->n_vis * t->cfg.vision.hidden_size * sizeof(float));
  if (!e->vision || vb_vit_forward(&t->vit, pixel_values, n_frames, e->vision) ||
      vblip_trainer_tokens(t, prompt, text, &e->ids, &e->n_ids, &e->labels, &e->n_labels)) {
    vblip_train_example_free(e);
    return -1;
  }
  *out = e;
  return 0;
}

int vblip_trainer_example_video(vblip_trainer *t, const char *path, double start, double end,
                                int n_frames, const char *prompt, const char *text,
                                vblip_train_example **out) {
  *out = NULL;
  vb_sampling s;
  vb_sampling_default(&s);
  s.n_frames = n_frames;
  s.start_sec = start > 0 ? start : 0; /* VideoBLIP's windows can start before 0 */
  s.end_sec = end;
  vb_frames f;
  if (vb_video_read(path, &s, &f)) return vb_error_context("%s", path);
  int S = t->image.width;
  float *px = vb_malloc((size_t)f.count * S * S * 3 * sizeof(float));
  int rc = -1;
  if (px && vb_preprocess_frames(&f, &t->image, NULL, px) == 0)
    rc = vblip_trainer_example_pixels(t, px, f.count, prompt, text, out);
  free(px);
  vb_frames_free(&f);
  return rc;
}

void vblip_train_example_free(vblip_train_example *e) {
  if (!e) return;
  free(e->vision);
  free(e->ids);
  free(e->labels);
  free(e);
}

/* Forward (and backward with weight != 0: gradients += weight * d loss); train_mode: with the
 * dropout of the current step and position (when the trainer has dropout on). */
static int run_example(vblip_trainer *t, const vblip_train_example *e, double weight,
                       int train_mode, double *loss) {
  int Q = t->cfg.num_query_tokens, H = t->cfg.qformer.hidden_size, E = t->cfg.lm_hidden;
  float *qo = vb_malloc((size_t)Q * H * sizeof(float)),
        *pr = vb_malloc((size_t)Q * E * sizeof(float));
  float *dpr = weight != 0 ? vb_malloc((size_t)Q * E * sizeof(float)) : NULL;
  float *dqo = weight != 0 ? vb_malloc((size_t)Q * H * sizeof(float)) : NULL;
  int rc = -1;
  if (!qo || !pr || (weight != 0 && (!dpr || !dqo))) goto done;
  tr_drop_ctx drop = {0};
  if (train_mode && t->dropout)
    drop = (tr_drop_ctx){1, tr_drop_key(t->seed, t->step, t->drop_micro, t->drop_example)};
  if (tr_qformer_forward(t->qf, e->vision, e->n_vis, &drop, qo)) goto done;
  tr_lin_fwd(&t->proj, qo, Q, pr);
  if (t->lm->loss(t->lm, pr, Q, e->ids, e->n_ids, e->labels, e->n_labels, &drop, loss, dpr))
    goto done;
  if (weight != 0) {
    if (weight != 1)
      for (size_t i = 0; i < (size_t)Q * E; i++)
        dpr[i] *= (float)weight;
    if (tr_lin_bwd(&t->proj, qo, dpr, Q, dqo, 0)) goto done;
    if (tr_qformer_backward(t->qf, dqo)) goto done;
  }
  rc = 0;
done:
  tr_qformer_release(t->qf);
  free(qo);
  free(pr);
  free(dpr);
  free(dqo);
  return rc;
}

int vblip_trainer_loss(vblip_trainer *t, const vblip_train_example *e, double *loss) {
  return run_example(t, e, 0.0, 0, loss);
}

int vb_trainer_train_loss(vblip_trainer *t, const vblip_train_example *e, double *loss) {
  return run_example(t, e, 0.0, 1, loss);
}

int vblip_trainer_accumulate(vblip_trainer *t, const vblip_train_example *e, double weight,
                             double *loss) {
  if (weight == 0) return vb_error("vblip_trainer_accumulate: zero weight");
  return run_example(t, e, weight, 1, loss);
}

void vblip_trainer_set_dropout_position(vblip_trainer *t, long micro_batch, long example) {
  t->drop_micro = micro_batch;
  t->drop_example = example;
}

int vb_trainer_dropout(const vblip_trainer *t) {
  return t->dropout;
}

int vblip_trainer_step(vblip_trainer *t) {
  t->step++;
  tr_adamw_step(&t->opt, &t->params, t->step);
  tr_params_zero_grad(&t->params);
  return 0;
}

void vblip_trainer_zero_grad(vblip_trainer *t) {
  tr_params_zero_grad(&t->params);
}

int vblip_train_example_tokens(const vblip_trainer *t, const vblip_train_example *e) {
  int n = 0;
  /* OPT's row j predicts labels[j + 1]: the first label is never scored */
  for (int i = t->cfg.lm_kind == VB_LM_OPT ? 1 : 0; i < e->n_labels; i++)
    n += e->labels[i] != -100;
  return n;
}

double vblip_trainer_clip_grad_norm(vblip_trainer *t, double max_norm) {
  return tr_clip_grad_norm(&t->params, max_norm);
}

void vblip_trainer_set_steps(vblip_trainer *t, long steps) {
  t->step = steps;
}
long vblip_trainer_steps(const vblip_trainer *t) {
  return (long)t->step;
}
void vblip_trainer_set_lr(vblip_trainer *t, double lr) {
  t->opt.lr = lr;
}

/* ---- checkpoints ---- */

static int copy_file(const char *src, const char *dst) {
  char *data = NULL;
  size_t len = 0;
  if (vb_read_file(src, (size_t)1 << 31, &data, &len)) return -1;
  FILE *f = fopen(dst, "wb");
  int rc = -1;
  if (!f)
    vb_error("cannot create %s: %s", dst, strerror(errno));
  else if (fwrite(data, 1, len, f) != len || fflush(f) || fsync(fileno(f)))
    vb_error("cannot write %s", dst);
  else
    rc = 0;
  if (f && fclose(f) && rc == 0) rc = vb_error("cannot write %s", dst);
  free(data);
  return rc;
}

#define MARKER "vblip_train.json"
#define OPTIMIZER_FILE "optimizer.safetensors"
#define STATE_FILE "trainer_state.json"

static int write_text_file(const char *dir, const char *name, const char *text) {
  char *p = vb_path_join(dir, name);
  FILE *f = p ? fopen(p, "w") : NULL;
  int rc = 0;
  if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) rc = -1;
  if (f && fclose(f)) rc = -1;
  if (rc) vb_error("cannot write %s", p ? p : name);
  free(p);
  return rc;
}

/* Removes a flat directory this code wrote (files only). */
static void remove_flat_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char *p = vb_path_join(dir, e->d_name);
    if (p) unlink(p);
    free(p);
  }
  closedir(d);
  rmdir(dir);
}

/* Whether out_dir may receive a checkpoint: not the model's own directory, and either
 * absent or an earlier save's output; *exists says which. */
static int check_output(vblip_trainer *t, const char *out_dir, int *exists) {
  char real_src[4096], real_out[4096];
  if (realpath(t->source.path, real_src) && realpath(out_dir, real_out) &&
      !strcmp(real_src, real_out))
    return vb_error("the output directory %s is the model directory", out_dir);
  struct stat st;
  *exists = stat(out_dir, &st) == 0;
  if (*exists) {
    char *marker = vb_path_join(out_dir, MARKER);
    int ok = marker && vb_file_exists(marker);
    free(marker);
    if (!ok || !S_ISDIR(st.st_mode))
      return vb_error("%s exists and is not a vblip training output (no %s): not replacing it",
                      out_dir, MARKER);
  }
  return 0;
}

int vblip_trainer_check_output(vblip_trainer *t, const char *out_dir) {
  int exists;
  if (check_output(t, out_dir, &exists)) return -1;
  /* the save writes a sibling directory and renames it: try that now */
  size_t len = strlen(out_dir) + 64;
  char *probe = vb_malloc(len);
  if (!probe) return -1;
  snprintf(probe, len, "%s.tmp-%ld", out_dir, (long)getpid());
  remove_flat_dir(probe);
  int rc = 0;
  if (mkdir(probe, 0755))
    rc = vb_error("cannot create %s: %s", probe, strerror(errno));
  else
    rmdir(probe);
  free(probe);
  return rc;
}

/* Writes a complete model directory into the new directory tmp (and, with opt, the
 * optimizer moments and extra text files: a checkpoint to resume from). */
static int write_model_dir(vblip_trainer *t, const char *tmp, const char *info_json, int opt,
                           const char *const *extra_names, const char *const *extra_texts,
                           int n_extra) {
  vb_tensor_table converted; /* owns float32 copies of block-quantized frozen tensors */
  vb_tt_init(&converted);
  vb_st_entry *ents = vb_calloc(t->w.tt.count + 2 * (size_t)t->params.n + 1, sizeof *ents);
  char **names = opt ? vb_calloc(2 * (size_t)t->params.n + 1, sizeof *names) : NULL;
  int rc = -1;
  if (!ents || (opt && !names)) goto done;
  remove_flat_dir(tmp);
  if (mkdir(tmp, 0755)) {
    vb_error("cannot create %s: %s", tmp, strerror(errno));
    goto done;
  }
  /* the source's configs, preprocessor settings and tokenizer (a GGUF's embedded copies) */
  for (const char *const *file = vb_model_files; *file; file++) {
    char *src = vb_path_join(t->source.path, *file), *dst = vb_path_join(tmp, *file);
    int r = !src || !dst ? -1 : vb_file_exists(src) ? copy_file(src, dst) : 0;
    free(src);
    free(dst);
    if (r) goto done;
  }
  for (size_t i = 0; i < t->w.tt.count; i++) {
    const vb_tensor_info *ti = &t->w.tt.items[i];
    tr_param *p = tr_params_find(&t->params, ti->name);
    ents[i].name = ti->name;
    ents[i].ndim = ti->ndim;
    memcpy(ents[i].shape, ti->shape, sizeof ti->shape);
    ents[i].dtype = p ? VB_DT_F32 : ti->dtype;
    ents[i].data = p ? p->data : ti->data;
    /* safetensors has no block types: a GGUF's frozen layers as float32 */
    if (!p && (ti->dtype == VB_DT_Q8_0 || ti->dtype == VB_DT_Q4_0 || ti->dtype == VB_DT_Q4_K ||
               ti->dtype == VB_DT_Q8X16)) {
      int64_t n = vb_tensor_numel(ti);
      float *f32 = vb_malloc((size_t)n * sizeof *f32);
      if (!f32 || vb_tt_keep(&converted, f32) ||
          (ti->dtype == VB_DT_Q8X16 /* vblip convert --packed */
               ? vb_q8x16_to_f32(ti->data, ti->shape[0], ti->shape[1], f32)
               : vb_convert_to_f32(ti->dtype, ti->data, n, f32)))
        goto done;
      ents[i].dtype = VB_DT_F32;
      ents[i].data = f32;
    }
  }
  char stepbuf[32];
  snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)t->step);
  const char *keys[] = {"format", "vblip_train_steps"}, *vals[] = {"pt", stepbuf};
  char *st_path = vb_path_join(tmp, "model.safetensors");
  int wr = st_path ? vb_safetensors_write(st_path, ents, t->w.tt.count, keys, vals, 2) : -1;
  free(st_path);
  if (wr) goto done;
  if (opt) {
    /* AdamW's moments per trained tensor; the step count in the metadata */
    int n = 0;
    for (int i = 0; i < t->params.n; i++) {
      const tr_param *p = &t->params.p[i];
      for (int k = 0; k < 2; k++) {
        size_t len = strlen(p->name) + 16;
        if (!(names[n] = vb_malloc(len))) goto done;
        snprintf(names[n], len, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
        ents[n].name = names[n];
        ents[n].dtype = VB_DT_F32;
        ents[n].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++)
          ents[n].shape[d] = p->shape[d];
        ents[n].data = k ? p->v : p->m;
        n++;
      }
    }
    char *op = vb_path_join(tmp, OPTIMIZER_FILE);
    const char *okeys[] = {"step"}, *ovals[] = {stepbuf};
    wr = op ? vb_safetensors_write(op, ents, (size_t)n, okeys, ovals, 1) : -1;
    free(op);
    if (wr) goto done;
  }
  for (int i = 0; i < n_extra; i++)
    if (write_text_file(tmp, extra_names[i], extra_texts[i])) goto done;
  if (write_text_file(tmp, MARKER, info_json ? info_json : "{}")) goto done;
  rc = 0;
done:
  if (rc) remove_flat_dir(tmp);
  if (names)
    for (int i = 0; i < 2 * t->params.n; i++)
      free(names[i]);
  free(names);
  vb_tt_free(&converted);
  free(ents);
  return rc;
}

int vblip_trainer_save(vblip_trainer *t, const char *out_dir, const char *info_json) {
  int exists;
  if (check_output(t, out_dir, &exists)) return -1;
  size_t len = strlen(out_dir) + 64;
  char *tmp = vb_malloc(len);
  if (!tmp) return -1;
  snprintf(tmp, len, "%s.tmp-%ld", out_dir, (long)getpid());
  int rc = write_model_dir(t, tmp, info_json, 0, NULL, NULL, 0);
  if (rc == 0 && !exists && mkdir(out_dir, 0755) && errno != EEXIST)
    rc = vb_error("cannot create %s: %s", out_dir, strerror(errno));
  /* each file is renamed into place (atomic per file; out_dir may hold checkpoints);
   * the marker goes last */
  for (int pass = 0; rc == 0 && pass < 2; pass++) {
    DIR *d = opendir(tmp);
    struct dirent *e;
    while (rc == 0 && d && (e = readdir(d))) {
      if (e->d_name[0] == '.' || (strcmp(e->d_name, MARKER) == 0) != pass) continue;
      char *from = vb_path_join(tmp, e->d_name), *to = vb_path_join(out_dir, e->d_name);
      if (!from || !to || rename(from, to))
        rc = vb_error("cannot move %s into %s: %s", e->d_name, out_dir, strerror(errno));
      free(from);
      free(to);
    }
    if (d) closedir(d);
  }
  remove_flat_dir(tmp);
  free(tmp);
  return rc;
}

int vblip_trainer_save_checkpoint(vblip_trainer *t, const char *dir, const char *info_json,
                                  const char *state_json) {
  int exists;
  if (check_output(t, dir, &exists)) return -1;
  size_t len = strlen(dir) + 64;
  char *tmp = vb_malloc(len), *old = vb_malloc(len);
  int rc = -1;
  if (!tmp || !old) goto done;
  snprintf(tmp, len, "%s.tmp-%ld", dir, (long)getpid());
  snprintf(old, len, "%s.old-%ld", dir, (long)getpid());
  const char *names[] = {STATE_FILE}, *texts[] = {state_json};
  if (write_model_dir(t, tmp, info_json, 1, names, texts, 1)) goto done;
  /* a checkpoint appears whole, by one rename; a kill leaves the earlier ones intact */
  if (exists && rename(dir, old)) {
    vb_error("cannot move %s aside: %s", dir, strerror(errno));
    remove_flat_dir(tmp);
    goto done;
  }
  if (rename(tmp, dir)) {
    vb_error("cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    if (exists) rename(old, dir);
    remove_flat_dir(tmp);
    goto done;
  }
  if (exists) remove_flat_dir(old);
  rc = 0;
done:
  free(tmp);
  free(old);
  return rc;
}

int vblip_trainer_load_checkpoint(vblip_trainer *t, const char *dir) {
  vb_tensor_table model, opt;
  vb_tt_init(&model);
  vb_tt_init(&opt);
  char *mp = vb_path_join(dir, "model.safetensors"), *op = vb_path_join(dir, OPTIMIZER_FILE);
  char *step = op ? vb_safetensors_metadata(op, "step") : NULL;
  int rc = -1;
  if (!mp || !op || vb_safetensors_load(&model, mp) || vb_safetensors_load(&opt, op)) goto done;
  if (!step) {
    vb_error("%s has no step count", op);
    goto done;
  }
  for (int i = 0; i < t->params.n; i++) {
    tr_param *p = &t->params.p[i];
    char name[512];
    float *dst[3] = {p->data, p->m, p->v};
    for (int k = 0; k < 3; k++) {
      snprintf(name, sizeof name, "%s%s",
               k == 0   ? ""
               : k == 1 ? "exp_avg."
                        : "exp_avg_sq.",
               p->name);
      const vb_tensor_info *ti = vb_tt_find(k ? &opt : &model, name);
      if (!ti || ti->dtype != VB_DT_F32 || (size_t)vb_tensor_numel(ti) != p->n) {
        vb_error("%s: %s is missing or not float32 of %zu values", dir, name, p->n);
        goto done;
      }
      memcpy(dst[k], ti->data, p->n * sizeof(float));
    }
  }
  char *end = NULL;
  long long s = strtoll(step, &end, 10);
  if (!end || *end || s < 0) {
    vb_error("%s: bad step count \"%s\"", op, step);
    goto done;
  }
  t->step = s;
  rc = 0;
done:
  if (rc) vb_error_context("resuming from %s", dir);
  free(step);
  free(mp);
  free(op);
  vb_tt_free(&model);
  vb_tt_free(&opt);
  return rc;
}

vb_compute vb_trainer_vision_compute(const vblip_trainer *t) {
  return t->vision_compute;
}

const float *vb_train_example_vision(const vblip_train_example *e, int *n_vis) {
  *n_vis = e->n_vis;
  return e->vision;
}
