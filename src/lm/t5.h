/* T5-specific entry points beyond the generic vb_lm interface: the encoder
 * output and a cache-free decoder pass (teacher forcing, and a reference the
 * cached generation path is checked against). */
#ifndef VBLIP_MODELS_T5_H
#define VBLIP_MODELS_T5_H

#include <stdint.h>

#include "lm/lm.h"

/* Runs the encoder on the input given by set_input; *out is a malloc'd
 * [*n_rows, d_model] array (final RMS norm applied) the caller frees. */
int vb_t5_encode(vb_lm *lm, float **out, int *n_rows);

/* Runs the encoder and then the decoder over dec_ids[0..n) at once (causal
 * self-attention, no cache); writes logits [n, vocab_size]. Row i is the
 * distribution of the token after dec_ids[i]. Independent of generation state. */
int vb_t5_decode_full(vb_lm *lm, const int32_t *dec_ids, int n, float *logits);

#endif
