/* config.json: diff-style configs get transformers 4.33's class defaults;
 * wrong types and impossible values are errors. */
#include <string.h>

#include "checkpoint/config.h"
#include "runtime/common.h"
#include "testutil.h"

int main(void) {
  vb_model_config c;
  /* What a real VideoBLIP-OPT checkpoint may store: sub-configs as diffs. */
  const char *diff = "{\"model_type\":\"blip-2\",\"num_query_tokens\":32,"
                     "\"vision_config\":{\"dropout\":0.0,\"initializer_factor\":1.0,\"model_type\":"
                     "\"blip_2_vision_model\","
                     "\"num_channels\":3,\"projection_dim\":512},"
                     "\"qformer_config\":{\"model_type\":\"blip_2_qformer\"},"
                     "\"text_config\":{\"model_type\":\"opt\",\"hidden_size\":2560,\"ffn_dim\":"
                     "10240,\"num_hidden_layers\":32,"
                     "\"num_attention_heads\":32,\"word_embed_proj_dim\":2560,\"eos_token_id\":"
                     "50118,\"vocab_size\":50272}}";
  if (CHECK_OK(vb_config_parse(diff, &c))) {
    CHECK(c.vision.hidden_size == 1408 && c.vision.num_hidden_layers == 39 &&
              c.vision.intermediate_size == 6144 && c.vision.num_attention_heads == 16 &&
              c.vision.image_size == 224 && c.vision.patch_size == 14,
          "vision defaults");
    CHECK(c.vision.layer_norm_eps == 1e-5f && c.vision.qkv_bias, "vision eps %g",
          c.vision.layer_norm_eps);
    CHECK(c.qformer.hidden_size == 768 && c.qformer.num_hidden_layers == 12 &&
              c.qformer.num_attention_heads == 12 && c.qformer.intermediate_size == 3072 &&
              c.qformer.cross_attention_frequency == 2 && c.qformer.encoder_hidden_size == 1408 &&
              c.qformer.layer_norm_eps == 1e-12f,
          "qformer defaults");
    CHECK(c.lm_kind == VB_LM_OPT && c.use_decoder_only_language_model, "opt");
    CHECK(c.opt.hidden_size == 2560 && c.opt.max_position_embeddings == 2048 &&
              c.opt.do_layer_norm_before && c.opt.enable_bias &&
              strcmp(c.opt.activation_function, "relu") == 0,
          "opt defaults");
    CHECK(c.eos_token_id == 50118 && c.bos_token_id == 2 && c.pad_token_id == 1, "opt ids");
    CHECK(c.lm_hidden == 2560 && c.num_query_tokens == 32, "widths");
  }
  /* Flan-T5 style: gated-gelu means the tanh GELU; decoder start defaults to pad */
  const char *t5 =
      "{\"text_config\":{\"model_type\":\"t5\",\"d_model\":2048,\"d_ff\":5120,\"num_layers\":24,"
      "\"num_heads\":32,\"feed_forward_proj\":\"gated-gelu\",\"tie_word_embeddings\":false,"
      "\"eos_token_id\":1}}";
  if (CHECK_OK(vb_config_parse(t5, &c))) {
    CHECK(c.lm_kind == VB_LM_T5 && !c.use_decoder_only_language_model, "t5 kind");
    CHECK(c.t5.gated && strcmp(c.t5.dense_act, "gelu_new") == 0, "gated-gelu -> gelu_new (%s)",
          c.t5.dense_act);
    CHECK(c.t5.d_kv == 64 && c.t5.num_decoder_layers == 24 &&
              c.t5.relative_attention_num_buckets == 32 &&
              c.t5.relative_attention_max_distance == 128 && c.t5.vocab_size == 32128,
          "t5 defaults");
    CHECK(c.decoder_start_token_id == 0 && c.pad_token_id == 0, "decoder start %d",
          c.decoder_start_token_id);
    CHECK(c.num_query_tokens == 32 && c.lm_hidden == 2048, "t5 widths");
  }
  /* no text_config at all: Blip2Config's default language model is OPT */
  CHECK_OK(vb_config_parse("{}", &c));
  CHECK(c.lm_kind == VB_LM_OPT && c.opt.hidden_size == 768, "empty config defaults");
  /* dropout (training only): the class defaults, and what a config sets */
  CHECK(c.qformer.hidden_dropout_prob == 0.1f && c.qformer.attention_probs_dropout_prob == 0.1f &&
            c.opt.dropout == 0.1f && c.opt.attention_dropout == 0.0f && c.opt.layerdrop == 0.0f &&
            c.t5.dropout_rate == 0.1f,
        "dropout defaults");
  if (CHECK_OK(vb_config_parse("{\"qformer_config\":{\"hidden_dropout_prob\":0.25,"
                               "\"attention_probs_dropout_prob\":0},\"text_config\":{"
                               "\"dropout\":0.3,\"attention_dropout\":0.05}}",
                               &c)))
    CHECK(c.qformer.hidden_dropout_prob == 0.25f && c.qformer.attention_probs_dropout_prob == 0 &&
              c.opt.dropout == 0.3f && c.opt.attention_dropout == 0.05f,
          "dropout probabilities read");
  if (CHECK_OK(
          vb_config_parse("{\"text_config\":{\"model_type\":\"t5\",\"dropout_rate\":0.2}}", &c)))
    CHECK(c.t5.dropout_rate == 0.2f, "t5 dropout_rate read");

  const char *bad[] = {
      "not json",
      "[1,2]",
      "{\"model_type\":\"llama\"}",
      "{\"vision_config\":{\"hidden_size\":\"big\"}}",
      "{\"vision_config\":{\"hidden_size\":1.5}}",
      "{\"vision_config\":{\"hidden_size\":-4}}",
      "{\"vision_config\":{\"hidden_size\":100,\"num_attention_heads\":3}}",
      "{\"vision_config\":{\"image_size\":225}}",
      "{\"vision_config\":[]}",
      "{\"text_config\":{\"model_type\":\"gpt2\"}}",
      "{\"text_config\":{\"model_type\":\"t5\",\"feed_forward_proj\":\"gated-weird\"}}",
      "{\"qformer_config\":{\"encoder_hidden_size\":1024}}",
      "{\"text_config\":{\"do_layer_norm_before\":\"yes\"}}",
      "{\"num_query_tokens\":0}",
      "{\"qformer_config\":{\"hidden_dropout_prob\":1.5}}",
      "{\"text_config\":{\"dropout\":-0.1}}",
      "{\"text_config\":{\"model_type\":\"t5\",\"dropout_rate\":\"high\"}}",
      /* beyond int: refused before the conversion (undefined behaviour; found by fuzz_model_files)
       */
      "{\"vision_config\":{\"hidden_size\":2.22222e44}}",
      "{\"text_config\":{\"num_hidden_layers\":-1e300}}",
      "{\"num_query_tokens\":4294967328}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vb_error_clear();
    CHECK(vb_config_parse(bad[i], &c) != 0, "accepted bad config %s", bad[i]);
    CHECK(strlen(vb_error_message()) > 10, "no message for %s", bad[i]);
  }
  /* the fixtures' complete configs */
  CHECK_OK(vb_config_load(tu_fixture("models/videoblip-opt-tiny"), &c));
  CHECK(c.vision.hidden_size == 32 && c.eos_token_id == 202 && c.num_query_tokens == 8,
        "opt fixture config");
  CHECK_OK(vb_config_load(tu_fixture("models/videoblip-flant5-tiny"), &c));
  CHECK(c.lm_kind == VB_LM_T5 && c.decoder_start_token_id == 1000 && c.pad_token_id == 1000 &&
            c.eos_token_id == 2,
        "t5 fixture config");
  CHECK(vb_config_load("/nonexistent", &c) != 0, "missing dir accepted");
  return tu_finish();
}
