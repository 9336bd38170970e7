/* Test models of other shapes than the fixtures: a fixture model's tokenizer,
 * preprocessor, vision encoder and Q-Former with a language model of the sizes
 * a test asks for (random weights), written as a checkpoint directory the way
 * transformers saves one (safetensors, sharded or not). */
#ifndef VBLIP_TESTS_SYNTH_MODEL_H
#define VBLIP_TESTS_SYNTH_MODEL_H

#include <stdint.h>

/* Writes out_dir (created): the files of the fixture model directory `fixture`
 * except its weights, its config.json with the members of text_json (a JSON
 * object, e.g. {"num_heads":6,"d_kv":12}) set in text_config, and weights for
 * that config: the fixture's vision encoder and Q-Former, a new
 * language_projection and language model drawn from `seed`, in n_shards
 * safetensors files (1: model.safetensors; more: model-0000i-of-0000n with
 * model.safetensors.index.json). 0, or -1 with a failed check's message. */
int tu_synth_model(const char *fixture, const char *out_dir, const char *text_json, uint64_t seed,
                   int n_shards);
/* Removes a directory tu_synth_model wrote (its plain files, then itself). */
void tu_synth_remove(const char *dir);

#endif
