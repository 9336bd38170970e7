/* Generation results: n sequences of token ids with their lengths and scores,
 * filled by the decoding loops (greedy_sample.c, beam_search.c), freed by the caller. */
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"
#include "generate/generate.h"
#include "runtime/common.h"

int vb_gen_result_alloc(vb_gen_result *r, int n, int width, int32_t pad) {
  memset(r, 0, sizeof *r);
  r->seqs = vb_calloc((size_t)n, sizeof *r->seqs);
  r->lens = vb_calloc((size_t)n, sizeof *r->lens);
  r->scores = vb_calloc((size_t)n, sizeof *r->scores);
  if (!r->seqs || !r->lens || !r->scores) goto fail;
  r->n = n;
  for (int i = 0; i < n; i++) {
    r->seqs[i] = vb_malloc((size_t)(width > 0 ? width : 1) * sizeof(int32_t));
    if (!r->seqs[i]) goto fail;
    for (int j = 0; j < width; j++)
      r->seqs[i][j] = pad;
  }
  return 0;
fail:
  r->n = n;
  vb_gen_result_free(r);
  return -1;
}

void vb_gen_result_free(vb_gen_result *r) {
  if (!r) return;
  if (r->seqs)
    for (int i = 0; i < r->n; i++)
      free(r->seqs[i]);
  free(r->seqs);
  free(r->lens);
  free(r->scores);
  memset(r, 0, sizeof *r);
}
