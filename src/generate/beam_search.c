/* Beam search and beam sampling with transformers 4.33 semantics
 * (GenerationMixin.beam_search / beam_sample, BeamSearchScorer, BeamHypotheses).
 *
 * Rows are grouped: beam search runs one group of num_beams rows and keeps
 * num_return_sequences hypotheses; beam sampling (like 4.33, which expands the
 * batch by num_return_sequences) runs num_return_sequences independent groups
 * and keeps the best hypothesis of each. Row g*B+b is beam b of group g. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"
#include "runtime/common.h"

typedef struct {
  double score;
  int len;
  int32_t *toks;
} hyp_t;

/* BeamHypotheses: a list in insertion order (order matters for ties). */
typedef struct {
  hyp_t *slot; /* B+1 slots */
  bool *used;
  int *order; /* slot indices in list order */
  int n;
  double worst;
  bool done;
} hyp_list;

typedef struct {
  const vb_gen_config *c;
  int B, L;
  double lp;
} beam_params;

static void hyp_add(hyp_list *h, const beam_params *p, const int32_t *toks, int len,
                    float sum_logprobs) {
  double score = (double)sum_logprobs / pow((double)len, p->lp);
  if (h->n >= p->B && !(score > h->worst)) return;
  int s = 0;
  while (h->used[s])
    s++;
  h->used[s] = true;
  h->slot[s].score = score;
  h->slot[s].len = len;
  memcpy(h->slot[s].toks, toks, (size_t)len * sizeof(int32_t));
  h->order[h->n++] = s;
  if (h->n > p->B) {
    // Drop the worst (earliest on ties, as sorting (score, index) pairs does);
    // the new worst is the next one in that order.
    int wi = 0;
    for (int i = 1; i < h->n; i++)
      if (h->slot[h->order[i]].score < h->slot[h->order[wi]].score) wi = i;
    h->used[h->order[wi]] = false;
    memmove(h->order + wi, h->order + wi + 1, (size_t)(h->n - wi - 1) * sizeof(int));
    h->n--;
    double w = h->slot[h->order[0]].score;
    for (int i = 1; i < h->n; i++)
      if (h->slot[h->order[i]].score < w) w = h->slot[h->order[i]].score;
    h->worst = w;
  } else {
    h->worst = score < h->worst ? score : h->worst;
  }
}

/* BeamHypotheses.is_done(best_sum_logprobs, cur_len). */
static bool hyp_is_done(const hyp_list *h, const beam_params *p, float best_sum, int cur_len) {
  if (h->n < p->B) return false;
  vb_early_stopping es = p->c->early_stopping;
  if (es == VB_EARLY_TRUE) return true;
  // "never": the best reachable score assumes the longest possible sequence
  // when a positive length penalty favours length.
  int len = (es == VB_EARLY_NEVER && p->lp > 0.0) ? p->L : cur_len;
  double highest = (double)best_sum / pow((double)len, p->lp);
  return h->worst >= highest;
}

/* Top k of x[0..n) into (score, index), descending; ties keep the lower index
 * first. Partial selection: one pass with a small sorted buffer. */
static int top_k_flat(const float *x, size_t n, int k, float *sc, int64_t *ix) {
  int cnt = 0;
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    if (cnt == k && !(v > sc[k - 1])) continue;
    int j = cnt < k ? cnt++ : k - 1;
    while (j > 0 && v > sc[j - 1]) {
      sc[j] = sc[j - 1];
      ix[j] = ix[j - 1];
      j--;
    }
    sc[j] = v;
    ix[j] = (int64_t)i;
  }
  return cnt;
}

/* beam_sample's choice: softmax over the group's flattened scores, k draws
 * without replacement, then sorted by score descending (stable in draw order). */
static int sample_k_flat(const float *x, size_t n, int k, vb_rng *rng, float *w, float *sc,
                         int64_t *ix) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; i++)
    if (x[i] > m) m = x[i];
  if (!(m > -INFINITY) || isinf(m) || isnan(m))
    return vb_error("generate: beam sampling: no candidate has a finite score");
  double total = 0.0;
  for (size_t i = 0; i < n; i++) {
    w[i] = expf(x[i] - m);
    total += w[i];
  }
  for (int d = 0; d < k; d++) {
    double target = vb_rng_uniform(rng) * total, cum = 0.0;
    int64_t pick = -1, last = -1;
    for (size_t i = 0; i < n; i++) {
      if (w[i] <= 0.0f) continue;
      last = (int64_t)i;
      cum += w[i];
      if (cum > target) {
        pick = (int64_t)i;
        break;
      }
    }
    if (pick < 0) pick = last;
    if (pick < 0)
      return vb_error(
          "generate: beam sampling: fewer than 2*num_beams (%d) candidates have non-zero "
          "probability; sampling with num_beams > 1 is beam sampling: for plain sampling set "
          "num_beams to 1 (--beams 1), or raise top_k/top_p",
          k);
    total -= w[pick];
    if (total < 0) total = 0;
    w[pick] = 0.0f;
    int j = d;
    float v = x[pick];
    while (j > 0 && v > sc[j - 1]) {
      sc[j] = sc[j - 1];
      ix[j] = ix[j - 1];
      j--;
    }
    sc[j] = v;
    ix[j] = pick;
  }
  return 0;
}

int vb_gen_beam(const vb_lm_iface *lm, void *ctx, const vb_gen_config *c, const vb_gen_eff *e,
                vb_gen_result *out) {
  const int V = lm->vocab_size, L = e->max_len, B = e->num_beams;
  const bool sample = c->do_sample;
  const int G = sample ? e->nrs : 1;    /* groups */
  const int keep = sample ? 1 : e->nrs; /* hypotheses returned per group */
  const int NR = G * B, K = 2 * B;
  const int32_t eos = c->eos_token_id;
  beam_params p = {c, B, L, (double)c->length_penalty};
  int rc = -1;

  size_t nlog, nseq;
  if (!vb_mul_ok((size_t)NR, (size_t)V, &nlog) || !vb_mul_ok((size_t)NR, (size_t)L, &nseq))
    return vb_error("generate: beam buffers too large");
  float *logits = vb_malloc(nlog * sizeof(float));
  float *wbuf = sample ? vb_malloc((size_t)B * (size_t)V * sizeof(float)) : NULL;
  int32_t *seqs = vb_malloc(nseq * sizeof(int32_t));
  int32_t *seqs2 = vb_malloc(nseq * sizeof(int32_t));
  float *beam_scores = vb_malloc((size_t)NR * sizeof(float));
  float *next_scores = vb_malloc((size_t)NR * sizeof(float));
  int32_t *next_tok = vb_malloc((size_t)NR * sizeof(int32_t));
  int *next_src = vb_malloc((size_t)NR * sizeof(int));
  float *cand_sc = vb_malloc((size_t)K * sizeof(float));
  int64_t *cand_ix = vb_malloc((size_t)K * sizeof(int64_t));
  float *scratch = vb_malloc((size_t)L * sizeof(float));
  hyp_list *hyps = vb_calloc((size_t)G, sizeof(hyp_list));
  int32_t *hyp_toks = vb_malloc((size_t)G * (size_t)(B + 1) * (size_t)L * sizeof(int32_t));
  vb_warp_ws ws = {0};
  vb_rng rng;
  vb_rng_seed(&rng, c->seed);
  if (!logits || (sample && !wbuf) || !seqs || !seqs2 || !beam_scores || !next_scores ||
      !next_tok || !next_src || !cand_sc || !cand_ix || !scratch || !hyps || !hyp_toks)
    goto done;
  // 4.33 keeps len(eos)+1 = 2 tokens in top_k/top_p when beams > 1.
  if (sample && vb_warp_ws_init(&ws, c, V, 2)) goto done;
  for (int g = 0; g < G; g++) {
    hyp_list *h = &hyps[g];
    h->slot = vb_calloc((size_t)(B + 1), sizeof(hyp_t));
    h->used = vb_calloc((size_t)(B + 1), sizeof(bool));
    h->order = vb_calloc((size_t)(B + 1), sizeof(int));
    if (!h->slot || !h->used || !h->order) goto done;
    for (int s = 0; s <= B; s++)
      h->slot[s].toks = hyp_toks + ((size_t)g * (B + 1) + s) * L;
    h->worst = 1e9;
  }

  for (int r = 0; r < NR; r++) {
    seqs[(size_t)r * L] = c->start_token_id;
    // Only the first beam of a group is live at first: the others start at
    // -1e9 so the identical rows do not yield duplicate candidates.
    beam_scores[r] = (r % B == 0) ? 0.0f : -1e9f;
  }
  int cur_len = 1;
  if (lm->prefill(ctx, NR, logits)) {
    vb_error_context("generate: prefill: ");
    goto done;
  }
  for (int r = 1; r < NR; r++)
    memcpy(logits + (size_t)r * V, logits, (size_t)V * sizeof(float));

  for (;;) {
    for (int g = 0; g < G; g++) {
      hyp_list *h = &hyps[g];
      if (h->done) {
        // A finished group only keeps its rows busy: pad tokens, own caches.
        for (int b = 0; b < B; b++) {
          next_scores[g * B + b] = 0.0f;
          next_tok[g * B + b] = e->feed_pad;
          next_src[g * B + b] = g * B + b;
        }
        continue;
      }
      for (int b = 0; b < B; b++) {
        int r = g * B + b;
        float *row = logits + (size_t)r * V;
        if (vb_lp_log_softmax(row, V)) goto done;
        vb_lp_process(c, row, V, seqs + (size_t)r * L, cur_len, scratch);
        float bs = beam_scores[r];
        for (int i = 0; i < V; i++)
          row[i] += bs;
        // beam_sample warps after adding the running score (4.33 order).
        if (sample) vb_warp_apply(c, row, V, 2, &ws);
      }
      const float *flat = logits + (size_t)g * B * V;
      size_t nflat = (size_t)B * V;
      int ncand;
      if (sample) {
        if (sample_k_flat(flat, nflat, K, &rng, wbuf, cand_sc, cand_ix)) goto done;
        ncand = K;
      } else {
        ncand = top_k_flat(flat, nflat, K, cand_sc, cand_ix);
      }
      // BeamSearchScorer.process: EOS candidates ranked in the top B finish a
      // hypothesis (without the EOS); the first B others continue.
      int nb = 0;
      for (int rank = 0; rank < ncand && nb < B; rank++) {
        int beam = (int)(cand_ix[rank] / V);
        int32_t tok = (int32_t)(cand_ix[rank] % V);
        int src = g * B + beam;
        if (eos >= 0 && tok == eos) {
          if (rank >= B) continue;
          hyp_add(h, &p, seqs + (size_t)src * L, cur_len, cand_sc[rank]);
        } else {
          next_scores[g * B + nb] = cand_sc[rank];
          next_tok[g * B + nb] = tok;
          next_src[g * B + nb] = src;
          nb++;
        }
      }
      if (nb < B) {
        vb_error("generate: beam search: fewer than num_beams non-EOS candidates");
        goto done;
      }
      h->done = hyp_is_done(h, &p, cand_sc[0], cur_len + 1);
    }

    for (int r = 0; r < NR; r++) {
      int32_t *dst = seqs2 + (size_t)r * L;
      memcpy(dst, seqs + (size_t)next_src[r] * L, (size_t)cur_len * sizeof(int32_t));
      dst[cur_len] = next_tok[r];
      beam_scores[r] = next_scores[r];
    }
    int32_t *t = seqs;
    seqs = seqs2;
    seqs2 = t;
    cur_len++;

    bool all_done = true;
    for (int g = 0; g < G; g++)
      if (!hyps[g].done) all_done = false;
    if (all_done || cur_len >= L) break;

    bool identity = true;
    for (int r = 0; r < NR; r++)
      if (next_src[r] != r) identity = false;
    if (!identity && lm->reorder(ctx, next_src, NR)) {
      vb_error_context("generate: reorder at length %d: ", cur_len);
      goto done;
    }
    if (lm->step(ctx, next_tok, NR, logits)) {
      vb_error_context("generate: step at length %d: ", cur_len);
      goto done;
    }
  }

  // finalize: open beams of unfinished groups become hypotheses.
  for (int g = 0; g < G; g++) {
    if (hyps[g].done) continue;
    for (int b = 0; b < B; b++) {
      int r = g * B + b;
      hyp_add(&hyps[g], &p, seqs + (size_t)r * L, cur_len, beam_scores[r]);
    }
  }
  // Best first: stable ascending sort + pop() means equal scores go to the
  // later-added hypothesis first.
  int nout = G * keep;
  const hyp_t **best = vb_calloc((size_t)nout, sizeof *best);
  if (!best) goto done;
  int maxlen = 0;
  for (int g = 0; g < G; g++) {
    hyp_list *h = &hyps[g];
    for (int j = 0; j < keep; j++) {
      int bi = -1;
      for (int i = 0; i < h->n; i++) {
        if (h->order[i] < 0) continue;
        if (bi < 0 || h->slot[h->order[i]].score >= h->slot[h->order[bi]].score) bi = i;
      }
      if (bi < 0) {
        free(best);
        vb_error("generate: beam search finished with too few hypotheses");
        goto done;
      }
      best[g * keep + j] = &h->slot[h->order[bi]];
      h->order[bi] = -1;
      if (best[g * keep + j]->len > maxlen) maxlen = best[g * keep + j]->len;
    }
  }
  int width = maxlen + 1 < L ? maxlen + 1 : L;
  if (vb_gen_result_alloc(out, nout, width, e->out_pad)) {
    free(best);
    goto done;
  }
  for (int i = 0; i < nout; i++) {
    const hyp_t *hy = best[i];
    memcpy(out->seqs[i], hy->toks, (size_t)hy->len * sizeof(int32_t));
    out->lens[i] = hy->len;
    // Hypotheses shorter than the output width ended with EOS: put it back.
    if (hy->len < width && eos >= 0) out->seqs[i][out->lens[i]++] = eos;
    out->scores[i] = (float)hy->score;
  }
  free(best);
  rc = 0;
done:
  if (hyps)
    for (int g = 0; g < G; g++) {
      free(hyps[g].slot);
      free(hyps[g].used);
      free(hyps[g].order);
    }
  free(hyps);
  free(hyp_toks);
  free(logits);
  free(wbuf);
  free(seqs);
  free(seqs2);
  free(beam_scores);
  free(next_scores);
  free(next_tok);
  free(next_src);
  free(cand_sc);
  free(cand_ix);
  free(scratch);
  vb_warp_ws_free(&ws);
  return rc;
}
