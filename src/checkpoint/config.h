/* config.json of a BLIP-2 / VideoBLIP checkpoint. Checkpoints store configs as
 * diffs against transformers' class defaults; those defaults live here, once. */
#ifndef VBLIP_CHECKPOINT_CONFIG_H
#define VBLIP_CHECKPOINT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct { /* Blip2VisionConfig */
  int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
  int image_size, patch_size, num_channels;
  float layer_norm_eps;
  bool qkv_bias;
  char hidden_act[32];
} vb_vision_config;

typedef struct { /* Blip2QFormerConfig */
  int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
  int cross_attention_frequency, encoder_hidden_size;
  float layer_norm_eps;
  float hidden_dropout_prob, attention_probs_dropout_prob; /* training (train mode) only */
  char hidden_act[32];
} vb_qformer_config;

typedef enum { VB_LM_OPT = 1, VB_LM_T5 = 2 } vb_lm_kind;

typedef struct { /* OPTConfig */
  int vocab_size, hidden_size, ffn_dim, num_hidden_layers, num_attention_heads;
  int max_position_embeddings, word_embed_proj_dim;
  bool do_layer_norm_before, enable_bias, layer_norm_elementwise_affine;
  float dropout, attention_dropout, layerdrop; /* training (train mode) only */
  char activation_function[32];
} vb_opt_config;

typedef struct { /* T5Config */
  int vocab_size, d_model, d_kv, d_ff, num_layers, num_decoder_layers, num_heads;
  int relative_attention_num_buckets, relative_attention_max_distance;
  float layer_norm_epsilon;
  float dropout_rate; /* training (train mode) only */
  bool tie_word_embeddings;
  bool gated;         /* feed_forward_proj "gated-*" */
  char dense_act[32]; /* "gelu_new" (tanh) for gated-gelu, "relu" for relu */
} vb_t5_config;

typedef struct {
  vb_lm_kind lm_kind;
  vb_vision_config vision;
  vb_qformer_config qformer;
  vb_opt_config opt;
  vb_t5_config t5;
  int num_query_tokens;
  bool use_decoder_only_language_model;
  /* language model generation ids (text_config) */
  int32_t bos_token_id, eos_token_id, pad_token_id, decoder_start_token_id;
  int lm_hidden; /* the language model's embedding width (what language_projection outputs) */
  /* An EILEV checkpoint (trained on interleaved videos and text): its config's _name_or_path
   * names it (e.g. ".../eilev-checkpoints/eilev-blip2-opt-2.7b-ego4d/"); the class name and
   * every other field are the same as VideoBLIP's. */
  bool eilev;
} vb_model_config;

/* Parses config.json text; missing keys take transformers' class defaults. */
int vb_config_parse(const char *json_text, vb_model_config *c);
int vb_config_load(const char *model_dir, vb_model_config *c);

#endif
