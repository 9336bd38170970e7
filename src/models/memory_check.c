#include "models/memory_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/memory.h"

#define GB 1e9
/* the process without the model: libraries, oneDNN, tokenizer, buffers */
#define RUNTIME_BYTES ((uint64_t)300 << 20)
#define BEAMS 4
#define PROMPT_TOKENS 64
#define NEW_TOKENS 128
#define FRAMES 8

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Tables looked up by row (kept float32), not multiplied. */
static int is_lookup(const char *name) {
  return strstr(name, "embed") || ends_with(name, "shared.weight") ||
         strstr(name, "query_tokens") || strstr(name, "relative_attention_bias");
}

/* Copies of another tensor that .bin checkpoints store and the loaders skip. */
static int is_tied_copy(const vb_model_config *cfg, const vb_tensor_table *tt, const char *name) {
  if (cfg->lm_kind == VB_LM_OPT)
    return strcmp(name, "language_model.lm_head.weight") == 0 &&
           vb_tt_find(tt, "language_model.model.decoder.embed_tokens.weight");
  return (strcmp(name, "language_model.encoder.embed_tokens.weight") == 0 ||
          strcmp(name, "language_model.decoder.embed_tokens.weight") == 0) &&
         vb_tt_find(tt, "language_model.shared.weight");
}

/* Bytes of n values of a linear layer stored as dt when run at compute. */
static uint64_t linear_bytes(vb_dtype dt, uint64_t n, size_t stored, vb_compute compute) {
  if (dt == VB_DT_I8) return stored; /* int8 vision: as stored */
  if (compute == VB_COMPUTE_BF16 && (dt == VB_DT_Q8_0 || dt == VB_DT_Q4_0 || dt == VB_DT_Q4_K))
    return stored; /* run where it lies */
  return n * (compute == VB_COMPUTE_BF16 ? 2 : 4);
}

void vb_memory_estimate(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                        vb_compute vision_compute, vb_dtype lm_quant, vb_memory_need *need) {
  memset(need, 0, sizeof *need);
  const char *head = cfg->lm_kind == VB_LM_OPT
                         ? "language_model.model.decoder.embed_tokens.weight"
                         : (cfg->t5.tie_word_embeddings ? "language_model.shared.weight"
                                                        : "language_model.lm_head.weight");
  for (size_t i = 0; i < tt->count; i++) {
    const vb_tensor_info *t = &tt->items[i];
    if (is_tied_copy(cfg, tt, t->name) || ends_with(t->name, ".weight_scale")) continue;
    uint64_t n = (uint64_t)vb_tensor_numel(t);
    if (strcmp(t->name, head) == 0) { /* float32, and a bf16 copy for the full rows */
      uint64_t b = n * 4 + (compute == VB_COMPUTE_BF16 ? n * 2 : 0);
      need->weights += b;
      need->weights_q8 += b;
    } else if (t->ndim == 2 && ends_with(t->name, ".weight") && !is_lookup(t->name)) {
      size_t qb = 0;
      /* as weights.c quantizes: the head q8_0, Q4_K rows not of whole
       * super-blocks Q4_0 */
      vb_dtype qt = strstr(t->name, "lm_head")                         ? VB_DT_Q8_0
                    : lm_quant == VB_DT_Q4_K && t->shape[1] % 256 != 0 ? VB_DT_Q4_0
                                                                       : lm_quant;
      int quant = lm_quant && strncmp(t->name, "language_model.", 15) == 0 &&
                  t->shape[1] % 32 == 0 && vb_dtype_bytes(qt, (int64_t)n, &qb);
      int vision =
          strncmp(t->name, "vision_model.", 13) == 0 || strncmp(t->name, "qformer.", 8) == 0;
      need->weights +=
          quant ? qb : linear_bytes(t->dtype, n, t->nbytes, vision ? vision_compute : compute);
      need->weights_q8 += t->shape[1] % 32 == 0 ? n / 32 * 34 : n * 4;
    } else {
      need->weights += n * 4;
      need->weights_q8 += n * 4;
    }
  }
  /* KV caches (float32), and the beam search's spare copy of each */
  uint64_t positions = (uint64_t)cfg->num_query_tokens + PROMPT_TOKENS + NEW_TOKENS;
  if (cfg->lm_kind == VB_LM_OPT) {
    need->kv = 2ull * BEAMS * 2 * cfg->opt.num_hidden_layers * positions * cfg->opt.hidden_size * 4;
  } else {
    uint64_t inner = (uint64_t)cfg->t5.num_heads * cfg->t5.d_kv;
    need->kv = 2ull * BEAMS * 2 * cfg->t5.num_decoder_layers * positions * inner * 4;
  }
  /* a frame's tokens through a ViT layer: residual, norm, qkv, attention out, MLP */
  const vb_vision_config *v = &cfg->vision;
  uint64_t side = v->patch_size > 0 ? (uint64_t)(v->image_size / v->patch_size) : 0;
  uint64_t seq = side * side + 1;
  need->vision = (uint64_t)FRAMES * seq * (6ull * v->hidden_size + v->intermediate_size) * 4 * 2;
  need->total = need->weights + need->kv + need->vision + RUNTIME_BYTES;
}

/* The estimate and the memory available: 1 when they are to be compared, 0
 * when the check is off (VBLIP_MEMORY_CHECK=0), -1 when the available memory
 * cannot be read (an error is set). */
static int need_and_avail(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                          vb_compute vision_compute, vb_dtype lm_quant, vb_memory_need *need,
                          uint64_t *avail, const char **source) {
  const char *off = getenv("VBLIP_MEMORY_CHECK");
  if (off && strcmp(off, "0") == 0) return 0;
  if (vb_memory_available(avail, source) != 0) return -1;
  vb_memory_estimate(cfg, tt, compute, vision_compute, lm_quant, need);
  return 1;
}

int vb_memory_fits(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                   vb_compute vision_compute, vb_dtype lm_quant) {
  vb_memory_need need;
  uint64_t avail;
  const char *source;
  /* off or unreadable: fits as far as this knows (vb_memory_check says why) */
  if (need_and_avail(cfg, tt, compute, vision_compute, lm_quant, &need, &avail, &source) != 1)
    return 1;
  return need.total <= avail;
}

int vb_memory_check(const vb_model_config *cfg, const vb_tensor_table *tt, vb_compute compute,
                    vb_compute vision_compute, vb_dtype lm_quant) {
  vb_memory_need need;
  uint64_t avail;
  const char *source;
  int rc = need_and_avail(cfg, tt, compute, vision_compute, lm_quant, &need, &avail, &source);
  if (rc == 0) return 0;
  /* a malformed VBLIP_MEMORY_AVAILABLE is the user's mistake; no /proc is not */
  if (rc < 0) return getenv("VBLIP_MEMORY_AVAILABLE") ? -1 : 0;
  if (need.total <= avail) return 0;
  char hint[320] = "";
  uint64_t q8_total = need.total - need.weights + need.weights_q8;
  if (need.weights_q8 < need.weights)
    snprintf(hint, sizeof hint,
             "a smaller weight type (--dtype q8_0, q4_0 or q4_k, or vblip convert --type q8_0: "
             "about %.1f GB in all at q8_0); ",
             q8_total / GB);
  if (compute == VB_COMPUTE_F32)
    snprintf(hint + strlen(hint), sizeof hint - strlen(hint), "bf16 compute (--dtype bf16); ");
  return vb_error(
      "the model needs about %.1f GB of memory (weights %.1f GB %s, KV caches "
      "%.1f GB for %d beams of %d tokens, vision %.1f GB for %d frames) but %.1f GB are "
      "available (%s). Options: %s%sVBLIP_MEMORY_CHECK=0 to load it anyway (fewer "
      "--beams and --frames need less than this estimate)",
      need.total / GB, need.weights / GB,
      lm_quant == VB_DT_Q4_K       ? "with the language model in q4_k"
      : lm_quant == VB_DT_Q4_0     ? "with the language model in q4_0"
      : lm_quant == VB_DT_Q8_0     ? "with the language model in q8_0"
      : compute == VB_COMPUTE_BF16 ? "for bf16 compute"
                                   : "for f32 compute",
      need.kv / GB, BEAMS, PROMPT_TOKENS + NEW_TOKENS, need.vision / GB, FRAMES, avail / GB, source,
      hint, hint[0] ? "or " : "");
}
