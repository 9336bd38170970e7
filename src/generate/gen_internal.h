/* Internal pieces of the generator shared by generate.c, the decoding loops,
 * the logits processors/warpers and the RNG. Not part of the public API. */
#ifndef VBLIP_GENERATE_GEN_INTERNAL_H
#define VBLIP_GENERATE_GEN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "generate/generate.h"

/* Settings after defaults and overrides are resolved (see vb_generate). */
typedef struct {
  int max_len;      /* total length including the start token */
  int num_beams;    /* >= 1 */
  int nrs;          /* num_return_sequences, >= 1 */
  int32_t out_pad;  /* pad written into results (pad id, else EOS as transformers does) */
  int32_t feed_pad; /* token fed to the model for finished rows: any valid id */
} vb_gen_eff;

/* ---- rng.c: xoshiro256** seeded through splitmix64 ---- */
typedef struct {
  uint64_t s[4];
} vb_rng;
void vb_rng_seed(vb_rng *r, uint64_t seed);
uint64_t vb_rng_next(vb_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double vb_rng_uniform(vb_rng *r);

/* ---- logits_process.c ---- */
/* Fails (message) if a raw logits row holds NaN or +inf. */
int vb_lp_check_row(const float *x, int vocab);
/* In-place log_softmax; fails on NaN or when no entry is finite. */
int vb_lp_log_softmax(float *x, int vocab);
/* The enabled processors in transformers' order: repetition penalty,
 * no_repeat_ngram, min_new_tokens. ids/cur_len is the row's input_ids
 * (start token included). scratch holds >= cur_len floats. */
void vb_lp_process(const vb_gen_config *c, float *scores, int vocab, const int32_t *ids,
                   int cur_len, float *scratch);
void vb_lp_repetition_penalty(float *scores, const int32_t *ids, int n, float penalty,
                              float *scratch);
void vb_lp_no_repeat_ngram(float *scores, const int32_t *ids, int n, int size);
void vb_lp_min_new_tokens(float *scores, int cur_len, int min_new, int32_t eos);

/* Warper scratch, sized once for a vocabulary. */
typedef struct {
  float v;
  int32_t i;
} vb_idxval;
typedef struct {
  float *heap; /* top_k selection, capacity heap_cap */
  int heap_cap;
  vb_idxval *sorted; /* top_p, capacity vocab */
} vb_warp_ws;
int vb_warp_ws_init(vb_warp_ws *ws, const vb_gen_config *c, int vocab, int min_keep);
void vb_warp_ws_free(vb_warp_ws *ws);
/* temperature, top_k, top_p (the enabled ones, in that order), -inf filter. */
void vb_warp_apply(const vb_gen_config *c, float *scores, int vocab, int min_keep, vb_warp_ws *ws);
void vb_warp_temperature(float *scores, int vocab, float t);
void vb_warp_top_k(float *scores, int vocab, int k, int min_keep, float *heap);
void vb_warp_top_p(float *scores, int vocab, float p, int min_keep, vb_idxval *sorted);

/* Index of the first maximum. */
int32_t vb_lp_argmax(const float *x, int vocab);
/* One draw from softmax(x); fails when every entry is -inf. */
int vb_sample_row(const float *x, int vocab, vb_rng *rng, int32_t *tok);

/* ---- decoding loops ---- */
int vb_gen_greedy_sample(const vb_lm_iface *lm, void *ctx, const vb_gen_config *c,
                         const vb_gen_eff *e, vb_token_cb cb, void *user, vb_gen_result *out);
int vb_gen_beam(const vb_lm_iface *lm, void *ctx, const vb_gen_config *c, const vb_gen_eff *e,
                vb_gen_result *out);

/* gen_result.c: allocates n sequences of `width` ids, all set to pad. */
int vb_gen_result_alloc(vb_gen_result *r, int n, int width, int32_t pad);

#endif
