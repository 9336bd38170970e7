/* Generation tests over mock language models: processors, greedy, beam search
 * (hand-derived cases and an exhaustive-search cross-check), sampling, config
 * validation, streaming and error propagation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate/gen_internal.h"
#include "generate/generate.h"
#include "runtime/common.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Mock LM: the cache of row r is the list of tokens fed to it, and logits are
 * a function of that prefix, so wrong reordering shows up as wrong logits. */

#define MAXROWS 80
#define MAXLEN 64
#define TV 16 /* max vocab for table models */

typedef struct {
  int n;
  int32_t prefix[8];
  float probs[TV];
} tab_entry;

typedef struct mock_lm mock_lm;
struct mock_lm {
  int V;
  int rows;
  int32_t hist[MAXROWS][MAXLEN];
  int len[MAXROWS];
  void (*fn)(const mock_lm *m, const int32_t *prefix, int n, float *out);
  const tab_entry *tab;
  int ntab;
  float deflt[TV]; /* default probabilities for prefixes not in the table */
  uint64_t salt;
  int prefill_calls, step_calls, reorder_calls;
  int fail_step; /* step call number that fails (0: never) */
  int nan_step;  /* step call number that returns NaN logits (0: never) */
};

static void table_fn(const mock_lm *m, const int32_t *prefix, int n, float *out) {
  const float *p = m->deflt;
  for (int e = 0; e < m->ntab; e++) {
    if (m->tab[e].n != n) continue;
    if (n && memcmp(m->tab[e].prefix, prefix, (size_t)n * sizeof(int32_t))) continue;
    p = m->tab[e].probs;
    break;
  }
  for (int t = 0; t < m->V; t++)
    out[t] = p[t] > 0 ? logf(p[t]) : -40.0f;
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* Pseudo-random logits in [-3, 3] keyed by (salt, prefix, token). */
static void hash_fn(const mock_lm *m, const int32_t *prefix, int n, float *out) {
  uint64_t h = mix64(m->salt + 0x1234567);
  for (int i = 0; i < n; i++)
    h = mix64(h ^ (uint64_t)(prefix[i] + 1) * 0x9E3779B97F4A7C15ull);
  for (int t = 0; t < m->V; t++)
    out[t] = (float)((mix64(h + (uint64_t)t) % 6001) / 1000.0 - 3.0);
}

static int m_prefill(void *lm, int n, float *logits) {
  mock_lm *m = lm;
  if (n < 1 || n > MAXROWS) return vb_error("mock: bad row count %d", n);
  m->rows = n;
  for (int r = 0; r < n; r++)
    m->len[r] = 0;
  m->prefill_calls++;
  m->fn(m, NULL, 0, logits);
  return 0;
}

static int m_step(void *lm, const int32_t *toks, int n, float *logits) {
  mock_lm *m = lm;
  if (n != m->rows) return vb_error("mock: step with %d rows, prefill had %d", n, m->rows);
  m->step_calls++;
  if (m->fail_step && m->step_calls == m->fail_step) return vb_error("mock: injected failure");
  for (int r = 0; r < n; r++) {
    if (toks[r] < 0 || toks[r] >= m->V) return vb_error("mock: token %d out of range", toks[r]);
    if (m->len[r] >= MAXLEN) return vb_error("mock: history overflow");
    m->hist[r][m->len[r]++] = toks[r];
    m->fn(m, m->hist[r], m->len[r], logits + (size_t)r * m->V);
    if (m->nan_step && m->step_calls == m->nan_step) logits[(size_t)r * m->V] = NAN;
  }
  return 0;
}

static int m_reorder(void *lm, const int *src, int n) {
  mock_lm *m = lm;
  static int32_t tmp[MAXROWS][MAXLEN];
  static int tl[MAXROWS];
  if (n != m->rows) return vb_error("mock: reorder with %d rows", n);
  m->reorder_calls++;
  for (int r = 0; r < n; r++) {
    if (src[r] < 0 || src[r] >= n) return vb_error("mock: bad reorder source %d", src[r]);
    memcpy(tmp[r], m->hist[src[r]], sizeof tmp[r]);
    tl[r] = m->len[src[r]];
  }
  memcpy(m->hist, tmp, sizeof(tmp[0]) * (size_t)n);
  memcpy(m->len, tl, sizeof(int) * (size_t)n);
  return 0;
}

static vb_lm_iface iface_for(mock_lm *m) {
  vb_lm_iface it = {m->V, m_prefill, m_step, m_reorder};
  return it;
}

static void mock_table(mock_lm *m, int V, const tab_entry *tab, int ntab, const float *deflt) {
  memset(m, 0, sizeof *m);
  m->V = V;
  m->fn = table_fn;
  m->tab = tab;
  m->ntab = ntab;
  for (int t = 0; t < V; t++)
    m->deflt[t] = deflt[t];
}

static void mock_hash(mock_lm *m, int V, uint64_t salt) {
  memset(m, 0, sizeof *m);
  m->V = V;
  m->fn = hash_fn;
  m->salt = salt;
}

static vb_gen_config base_cfg(int32_t start, int32_t eos) {
  vb_gen_config c;
  vb_gen_config_default(&c);
  c.start_token_id = start;
  c.eos_token_id = eos;
  c.pad_token_id = -1;
  return c;
}

static int run(mock_lm *m, const vb_gen_config *c, vb_gen_result *r) {
  vb_lm_iface it = iface_for(m);
  return vb_generate(&it, m, c, NULL, NULL, r);
}

static bool seq_eq(const vb_gen_result *r, int i, const int32_t *want, int n) {
  if (i >= r->n || r->lens[i] != n) return false;
  return memcmp(r->seqs[i], want, (size_t)n * sizeof(int32_t)) == 0;
}

static void print_seq(const char *tag, const vb_gen_result *r, int i) {
  fprintf(stderr, "  %s[%d] (len %d, score %.6f):", tag, i, r->lens[i], (double)r->scores[i]);
  for (int j = 0; j < r->lens[i]; j++)
    fprintf(stderr, " %d", r->seqs[i][j]);
  fputc('\n', stderr);
}

#define CHECK_SEQ(r, i, ...)                                                                       \
  do {                                                                                             \
    const int32_t want_[] = {__VA_ARGS__};                                                         \
    int nw_ = (int)(sizeof want_ / sizeof want_[0]);                                               \
    if (!CHECK(seq_eq((r), (i), want_, nw_), "sequence %d differs", (i)))                          \
      print_seq("got", (r), (i));                                                                  \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Processors, directly. */

static void test_processors(void) {
  float scratch[16];
  {
    float s[6] = {2.0f, -1.0f, 4.0f, -3.0f, 0.5f, 1.0f};
    int32_t ids[] = {0, 1, 0, 3, 1}; /* duplicates penalised once */
    vb_lp_repetition_penalty(s, ids, 5, 2.0f, scratch);
    CHECK(s[0] == 1.0f && s[1] == -2.0f && s[2] == 4.0f && s[3] == -6.0f && s[4] == 0.5f,
          "repetition penalty: %g %g %g %g %g", (double)s[0], (double)s[1], (double)s[2],
          (double)s[3], (double)s[4]);
  }
  {
    float s[6] = {0};
    int32_t ids[] = {5, 2, 5}; /* bigram (5,2) exists; last token 5 -> ban 2 */
    vb_lp_no_repeat_ngram(s, ids, 3, 2);
    CHECK(isinf(s[2]) && s[2] < 0, "2-gram ban of 2");
    int banned = 0;
    for (int i = 0; i < 6; i++)
      banned += isinf(s[i]) ? 1 : 0;
    CHECK(banned == 1, "2-gram bans exactly one token (%d)", banned);
  }
  {
    float s[6] = {0};
    int32_t ids[] = {5, 2, 3, 1, 5, 2}; /* prefix (5,2) seen before 3 */
    vb_lp_no_repeat_ngram(s, ids, 6, 3);
    int banned = 0;
    for (int i = 0; i < 6; i++)
      banned += isinf(s[i]) ? 1 : 0;
    CHECK(isinf(s[3]) && banned == 1, "3-gram ban of 3 only (%d banned)", banned);
  }
  {
    float s[6] = {0};
    int32_t ids[] = {5, 2};
    vb_lp_no_repeat_ngram(s, ids, 2, 3); /* no complete 3-gram yet */
    int banned = 0;
    for (int i = 0; i < 6; i++)
      banned += isinf(s[i]) ? 1 : 0;
    CHECK(banned == 0, "3-gram: nothing banned on 2 tokens");
    vb_lp_no_repeat_ngram(s, ids, 2, 1); /* 1-gram bans all seen */
    CHECK(isinf(s[5]) && isinf(s[2]) && !isinf(s[0]), "1-gram bans seen tokens");
  }
  {
    float s[4] = {0};
    vb_lp_min_new_tokens(s, 3, 2, 1); /* 2 new tokens so far: allowed */
    CHECK(s[1] == 0.0f, "min_new_tokens allows EOS at cur_len 3, m 2");
    vb_lp_min_new_tokens(s, 2, 2, 1);
    CHECK(isinf(s[1]), "min_new_tokens blocks EOS at cur_len 2, m 2");
  }
  {
    float s[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    CHECK_OK(vb_lp_log_softmax(s, 4));
    double tot = 0;
    for (int i = 0; i < 4; i++)
      tot += exp(s[i]);
    CHECK(fabs(tot - 1.0) < 1e-6 && fabs(s[3] - s[2] - 1.0f) < 1e-6, "log_softmax");
    float bad[3] = {0, NAN, 1};
    CHECK(vb_lp_log_softmax(bad, 3) != 0, "log_softmax rejects NaN");
  }
  {
    float s[6] = {1, 5, 3, 5, 2, 0}, heap[8];
    vb_warp_top_k(s, 6, 2, 1, heap);
    CHECK(s[1] == 5 && s[3] == 5 && isinf(s[0]) && isinf(s[2]) && isinf(s[4]), "top_k 2");
    float t[6] = {1, 5, 3, 5, 2, 0};
    vb_warp_top_k(t, 6, 3, 1, heap); /* ties at the cut survive */
    CHECK(t[2] == 3 && isinf(t[4]), "top_k 3");
  }
  {
    /* probs 0.5 0.3 0.1 0.05 0.05: top_p 0.75 keeps {0,1} */
    float s[5] = {logf(0.5f), logf(0.3f), logf(0.1f), logf(0.05f), logf(0.05f)};
    vb_idxval sorted[5];
    vb_warp_top_p(s, 5, 0.75f, 1, sorted);
    CHECK(!isinf(s[0]) && !isinf(s[1]) && isinf(s[2]) && isinf(s[3]) && isinf(s[4]), "top_p 0.75");
    float u[5] = {logf(0.5f), logf(0.3f), logf(0.1f), logf(0.05f), logf(0.05f)};
    vb_warp_top_p(u, 5, 1e-6f, 1, sorted);
    CHECK(!isinf(u[0]) && isinf(u[1]), "top_p tiny keeps the best only");
    float w[5] = {logf(0.5f), logf(0.3f), logf(0.1f), logf(0.05f), logf(0.05f)};
    vb_warp_top_p(w, 5, 1e-6f, 2, sorted);
    CHECK(!isinf(w[0]) && !isinf(w[1]) && isinf(w[2]), "top_p min_tokens_to_keep 2");
  }
  {
    float s[4] = {2.0f, 4.0f, -2.0f, 0.0f};
    vb_warp_temperature(s, 4, 0.5f);
    CHECK(s[0] == 4.0f && s[1] == 8.0f && s[2] == -4.0f, "temperature");
    float a[5] = {1, 3, 3, 2, -1};
    CHECK(vb_lp_argmax(a, 5) == 1, "argmax: first on ties");
  }
}

/* ------------------------------------------------------------------------ */
/* Greedy and the processors through generate(). */

static void test_greedy(void) {
  vb_gen_result r;
  mock_lm m;
  {
    vb_gen_config c = base_cfg(2, -1);
    mock_hash(&m, 8, 1);
    c.max_length = 20;
    CHECK_OK(run(&m, &c, &r));
    CHECK(r.n == 1 && r.lens[0] == 20 && r.seqs[0][0] == 2,
          "max_length 20 -> 19 new tokens (len %d)", r.lens[0]);
    CHECK(m.prefill_calls == 1 && m.step_calls == 18, "19 tokens need prefill + 18 steps (%d)",
          m.step_calls);
    vb_gen_result_free(&r);
    c.max_new_tokens = 5;
    c.max_length = 3; /* overridden */
    mock_hash(&m, 8, 1);
    CHECK_OK(run(&m, &c, &r));
    CHECK(r.lens[0] == 6, "max_new_tokens 5 -> len 6 (%d)", r.lens[0]);
    /* greedy equals step-wise argmax of the hash model */
    float lg[8];
    bool ok = true;
    for (int i = 1; i < r.lens[0]; i++) {
      hash_fn(&m, r.seqs[0] + 1, i - 1, lg);
      if (vb_lp_argmax(lg, 8) != r.seqs[0][i]) ok = false;
    }
    CHECK(ok, "greedy follows argmax of the model");
    vb_gen_result_free(&r);
  }
  {
    /* EOS early: EOS (3) best after [1]. */
    static const tab_entry tab[] = {
        {0, {0}, {0.1f, 0.6f, 0.2f, 0.1f}},
        {1, {1}, {0.1f, 0.1f, 0.2f, 0.6f}},
    };
    float d[TV] = {0.25f, 0.25f, 0.25f, 0.25f};
    mock_table(&m, 4, tab, 2, d);
    vb_gen_config c = base_cfg(0, 3);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 0, 1, 3);
    CHECK(r.scores[0] == 0.0f, "greedy score 0");
    vb_gen_result_free(&r);
    /* min_new_tokens 3: EOS blocked for the first 3 new tokens. */
    static const tab_entry eos_tab[] = {{0, {0}, {0.2f, 0.1f, 0.1f, 0.6f}}};
    float d2[TV] = {0.3f, 0.05f, 0.05f, 0.6f};
    mock_table(&m, 4, eos_tab, 1, d2);
    c.min_new_tokens = 3;
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 0, 0, 0, 0, 3);
    vb_gen_result_free(&r);
    c.min_new_tokens = 0;
    mock_table(&m, 4, eos_tab, 1, d2);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 0, 3);
    vb_gen_result_free(&r);
  }
  {
    /* Repetition penalty counts the start token (5): positive logits. */
    float d[TV] = {0.05f, 0.05f, 0.05f, 0.05f, 0.3f, 0.5f, 0.0f, 0.0f};
    /* raw logits are log(p) < 0 here: the penalty multiplies them */
    mock_table(&m, 8, NULL, 0, d);
    vb_gen_config c = base_cfg(5, 7);
    c.max_new_tokens = 1;
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 5, 5);
    vb_gen_result_free(&r);
    /* log-probs: token 5 -0.69, token 4 -1.20; penalty 2: 5 -> -1.39 < -1.20 */
    c.repetition_penalty = 2.0f;
    mock_table(&m, 8, NULL, 0, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 5, 4);
    vb_gen_result_free(&r);
    /* penalty 1.5: -1.04 > -1.20, start token still wins */
    c.repetition_penalty = 1.5f;
    mock_table(&m, 8, NULL, 0, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 5, 5);
    vb_gen_result_free(&r);
  }
  {
    /* positive logits: start token 0 best by 5 vs 3.5 until divided by 2 */
    float s[4] = {5.0f, 3.5f, 1.0f, 0.0f}, scratch[4];
    int32_t ids[1] = {0};
    vb_lp_repetition_penalty(s, ids, 1, 2.0f, scratch);
    CHECK(vb_lp_argmax(s, 4) == 1, "positive logit of the start token divided by the penalty");
  }
  {
    /* no_repeat_ngram 2 sees the start token 5: [] -> 2, [2] -> 5, [2,5] -> 2 (banned: (5,2) seen).
     */
    static const tab_entry tab[] = {
        {0, {0}, {0.05f, 0.05f, 0.6f, 0.05f, 0.05f, 0.1f, 0.05f, 0.05f}},
        {1, {2}, {0.05f, 0.05f, 0.05f, 0.05f, 0.05f, 0.6f, 0.1f, 0.05f}},
        {2, {2, 5}, {0.05f, 0.05f, 0.5f, 0.05f, 0.2f, 0.05f, 0.05f, 0.05f}},
    };
    float d[TV] = {0, 0, 0, 0, 0, 0, 0, 1.0f};
    mock_table(&m, 8, tab, 3, d);
    vb_gen_config c = base_cfg(5, 7);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 5, 2, 5, 2, 7);
    vb_gen_result_free(&r);
    c.no_repeat_ngram_size = 2;
    mock_table(&m, 8, tab, 3, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 5, 2, 5, 4, 7);
    vb_gen_result_free(&r);
    /* 3-grams: (5,2,5) is new, nothing banned until a 2-token prefix repeats */
    c.no_repeat_ngram_size = 3;
    mock_table(&m, 8, tab, 3, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 5, 2, 5, 2, 7);
    vb_gen_result_free(&r);
  }
  {
    /* 3-gram with the start token: start 1, chain 1 2 1 -> next would be 2 again,
     * completing (1,2)... prefix (2,1) -> 2? ids [1,2,1,2]: prefix (1,2) seen -> ban 1 */
    static const tab_entry tab[] = {
        {0, {0}, {0.05f, 0.1f, 0.7f, 0.15f}},
        {1, {2}, {0.05f, 0.7f, 0.1f, 0.15f}},
        {2, {2, 1}, {0.05f, 0.1f, 0.7f, 0.15f}},
        {3, {2, 1, 2}, {0.05f, 0.6f, 0.1f, 0.25f}},
    };
    float d[TV] = {0, 0, 0, 1.0f};
    mock_table(&m, 4, tab, 4, d);
    vb_gen_config c = base_cfg(1, 3);
    c.no_repeat_ngram_size = 3;
    CHECK_OK(run(&m, &c, &r));
    /* [1,2,1]: prefix (2,1) new; [1,2,1,2]: prefix (1,2) seen followed by 1 -> ban 1 -> EOS */
    CHECK_SEQ(&r, 0, 1, 2, 1, 2, 3);
    vb_gen_result_free(&r);
  }
}

/* ------------------------------------------------------------------------ */
/* Beam search, hand-derived cases. */

static double lnf(float p) {
  return (double)logf(p);
}

static void test_beam_hand(void) {
  vb_gen_result r;
  mock_lm m;
  {
    /* Greedy and beam differ. V 4, EOS 3. */
    static const tab_entry tab[] = {
        {0, {0}, {0.04f, 0.5f, 0.45f, 0.01f}},
        {1, {1}, {0.3f, 0.3f, 0.3f, 0.1f}},
        {1, {2}, {0.04f, 0.03f, 0.03f, 0.9f}},
    };
    float d[TV] = {0.25f, 0.25f, 0.25f, 0.25f};
    mock_table(&m, 4, tab, 3, d);
    vb_gen_config c = base_cfg(0, 3);
    c.max_new_tokens = 2;
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 0, 1, 0); /* argmax, first index on the 0.3 tie */
    vb_gen_result_free(&r);

    c.num_beams = 2;
    c.num_return_sequences = 2;
    mock_table(&m, 4, tab, 3, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK(r.n == 2, "two sequences");
    CHECK_SEQ(&r, 0, 0, 2, 3);
    CHECK_SEQ(&r, 1, 0, 1, 0); /* [1,0] beats the equal [1,1]: lower flat index */
    double s0 = (lnf(0.45f) + lnf(0.9f)) / 2.0, s1 = (lnf(0.5f) + lnf(0.3f)) / 3.0;
    CHECK(fabs(r.scores[0] - s0) < 1e-4 && fabs(r.scores[1] - s1) < 1e-4, "scores %g %g want %g %g",
          (double)r.scores[0], (double)r.scores[1], s0, s1);
    vb_gen_result_free(&r);

    /* length_penalty 0: raw sums; [1,0] -1.897 < [2,EOS] -0.904 still */
    c.length_penalty = 0.0f;
    mock_table(&m, 4, tab, 3, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 0, 2, 3);
    CHECK(fabs(r.scores[0] - (lnf(0.45f) + lnf(0.9f))) < 1e-4, "lp 0 score");
    vb_gen_result_free(&r);
  }
  {
    /* An EOS candidate ranked >= num_beams is skipped (length_penalty -1 makes
     * it matter: it would otherwise enter the top two). */
    static const tab_entry tab[] = {
        {0, {0}, {0.15f, 0.5f, 0.3f, 0.05f}},
        {1, {1}, {0.45f, 0.03f, 0.02f, 0.5f}},
        {1, {2}, {0.2f, 0.05f, 0.05f, 0.7f}},
    };
    float d[TV] = {0.25f, 0.25f, 0.25f, 0.25f};
    mock_table(&m, 4, tab, 3, d);
    vb_gen_config c = base_cfg(0, 3);
    c.max_new_tokens = 2;
    c.num_beams = 2;
    c.num_return_sequences = 2;
    c.length_penalty = -1.0f;
    CHECK_OK(run(&m, &c, &r));
    /* ranks at step 2: [1,EOS] -1.386 (hyp), [1,0] -1.492, [2,EOS] -1.561 (rank 2: skipped), [2,0]
     */
    CHECK_SEQ(&r, 0, 0, 1, 3);
    CHECK_SEQ(&r, 1, 0, 1, 0);
    double s0 = (lnf(0.5f) + lnf(0.5f)) * 2.0, s1 = (lnf(0.5f) + lnf(0.45f)) * 3.0;
    CHECK(fabs(r.scores[0] - s0) < 1e-4 && fabs(r.scores[1] - s1) < 1e-4, "skip-rule scores %g %g",
          (double)r.scores[0], (double)r.scores[1]);
    vb_gen_result_free(&r);
  }
  {
    /* early_stopping: True stops once num_beams hypotheses exist, False when
     * the step's best / cur_len cannot beat the worst, "never" only when the
     * best / max_length cannot (and then finds a better long sequence). */
    static const tab_entry tab[] = {
        {0, {0}, {0.05f, 0.3f, 0.15f, 0, 0, 0, 0, 0.5f}},
        {1, {1}, {0.2f, 0.1f, 0.1f, 0, 0, 0, 0, 0.6f}},
        {1, {2}, {0.97f, 0.01f, 0.01f, 0, 0, 0, 0, 0.01f}},
        {2, {2, 0}, {0.14f, 0.14f, 0.14f, 0.14f, 0.14f, 0.14f, 0.14f, 0.02f}},
        {2, {1, 0}, {0.14f, 0.14f, 0.14f, 0.14f, 0.14f, 0.14f, 0.14f, 0.02f}},
    };
    float d[TV] = {0.9999f, 0.00001f, 0.00001f, 0.00001f, 0.00001f, 0.00001f, 0.00001f, 0.00004f};
    vb_gen_config c = base_cfg(4, 7);
    c.pad_token_id = 6;
    c.max_new_tokens = 5;
    c.num_beams = 2;
    c.num_return_sequences = 2;
    double A = lnf(0.5f), B = (lnf(0.3f) + lnf(0.6f)) / 2.0;

    c.early_stopping = VB_EARLY_TRUE;
    mock_table(&m, 8, tab, 5, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 4, 7);
    CHECK_SEQ(&r, 1, 4, 1, 7);
    CHECK(r.seqs[0][2] == 6, "padded with pad_token_id");
    CHECK(m.step_calls == 1, "early_stopping true: done after step 2 (%d model steps)",
          m.step_calls);
    CHECK(fabs(r.scores[0] - A) < 1e-4 && fabs(r.scores[1] - B) < 1e-4, "true scores");
    vb_gen_result_free(&r);

    c.early_stopping = VB_EARLY_FALSE;
    mock_table(&m, 8, tab, 5, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 4, 7);
    CHECK_SEQ(&r, 1, 4, 1, 7);
    CHECK(m.step_calls == 2, "early_stopping false: done after step 3 (%d model steps)",
          m.step_calls);
    vb_gen_result_free(&r);

    c.early_stopping = VB_EARLY_NEVER;
    mock_table(&m, 8, tab, 5, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK(m.step_calls == 4, "never: runs to max length (%d model steps)", m.step_calls);
    /* equal scores: the later-added hypothesis comes first */
    CHECK_SEQ(&r, 0, 4, 2, 0, 1, 0, 0);
    CHECK_SEQ(&r, 1, 4, 2, 0, 0, 0, 0);
    CHECK(r.scores[0] == r.scores[1] && r.scores[0] > A, "never: long hypotheses win (%g)",
          (double)r.scores[0]);
    vb_gen_result_free(&r);

    /* num_return_sequences 1 returns the best only */
    c.num_return_sequences = 1;
    c.early_stopping = VB_EARLY_FALSE;
    mock_table(&m, 8, tab, 5, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK(r.n == 1, "one sequence");
    CHECK_SEQ(&r, 0, 4, 7);
    vb_gen_result_free(&r);
  }
  {
    /* repetition penalty in beam search acts on log-probs (multiplied). */
    static const tab_entry tab[] = {{0, {0}, {0.1f, 0.45f, 0.4f, 0.05f}}};
    float d[TV] = {0.25f, 0.25f, 0.25f, 0.25f};
    vb_gen_config c = base_cfg(1, 3);
    c.max_new_tokens = 1;
    c.num_beams = 2;
    mock_table(&m, 4, tab, 1, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 1, 1);
    vb_gen_result_free(&r);
    c.repetition_penalty = 1.3f;
    mock_table(&m, 4, tab, 1, d);
    CHECK_OK(run(&m, &c, &r));
    CHECK_SEQ(&r, 0, 1, 2);
    CHECK(fabs(r.scores[0] - lnf(0.4f) / 2.0) < 1e-4, "score of unpenalised token");
    vb_gen_result_free(&r);
  }
}

/* ------------------------------------------------------------------------ */
/* Beam search against exhaustive search. With num_beams at least the number
 * of live candidates at every step, every real continuation survives and every
 * EOS candidate ranks below num_beams, so the result is the best sequences by
 * sum_logprobs / len**lp when the stopping rule's bound is exact (early
 * stopping "never", or "false" with length_penalty 0). */

typedef struct {
  int32_t toks[8];
  int n; /* output length incl. start */
  double score;
} cand_t;

static void log_softmax_d(const float *x, int V, double *out) {
  float lg[TV];
  memcpy(lg, x, (size_t)V * sizeof(float));
  vb_lp_log_softmax(lg, V);
  for (int i = 0; i < V; i++)
    out[i] = lg[i];
}

static void enumerate(const mock_lm *m, int32_t eos, int max_new, double lp, int32_t *pre, int n,
                      float sum, int32_t start, cand_t *out, int *nout) {
  float lg[TV];
  double ls[TV];
  m->fn(m, pre, n, lg);
  log_softmax_d(lg, m->V, ls);
  for (int t = 0; t < m->V; t++) {
    float s = sum + (float)ls[t];
    if (t == eos || n + 1 == max_new) {
      cand_t *c = &out[(*nout)++];
      c->toks[0] = start;
      for (int i = 0; i < n; i++)
        c->toks[i + 1] = pre[i];
      c->toks[n + 1] = t;
      c->n = n + 2;
      int hyp_len = t == eos ? n + 1 : n + 2;
      c->score = (double)s / pow(hyp_len, lp);
    } else {
      pre[n] = t;
      enumerate(m, eos, max_new, lp, pre, n + 1, s, start, out, nout);
    }
  }
}

static int cmp_cand(const void *a, const void *b) {
  const cand_t *x = a, *y = b;
  return (x->score < y->score) - (x->score > y->score);
}

static void test_beam_exhaustive(void) {
  const double lps[] = {1.0, 2.0, 0.5, -0.5, 0.0, 0.0};
  const vb_early_stopping es[] = {VB_EARLY_NEVER, VB_EARLY_NEVER, VB_EARLY_NEVER,
                                  VB_EARLY_NEVER, VB_EARLY_FALSE, VB_EARLY_NEVER};
  int mismatches = 0, cases = 0;
  for (uint64_t salt = 1; salt <= 6; salt++) {
    for (int k = 0; k < 6; k++) {
      mock_lm m;
      mock_hash(&m, 4, salt * 77);
      cand_t all[128];
      int nall = 0;
      int32_t pre[8];
      enumerate(&m, 3, 3, lps[k], pre, 0, 0.0f, 9, all, &nall);
      qsort(all, (size_t)nall, sizeof *all, cmp_cand);
      vb_gen_config c = base_cfg(0, 3);
      c.max_new_tokens = 3;
      c.num_beams = 36;
      c.num_return_sequences = 6;
      c.length_penalty = (float)lps[k];
      c.early_stopping = es[k];
      vb_gen_result r;
      vb_lm_iface it = iface_for(&m);
      /* start token 9 is outside this vocab: use 0 for generate, compare the rest */
      if (!CHECK_OK(vb_generate(&it, &m, &c, NULL, NULL, &r))) continue;
      cases++;
      for (int i = 0; i < 6; i++) {
        bool ok = r.lens[i] == all[i].n && fabs(r.scores[i] - all[i].score) < 1e-4;
        for (int j = 1; ok && j < all[i].n; j++)
          ok = r.seqs[0 + i][j] == all[i].toks[j];
        if (!ok) {
          mismatches++;
          fprintf(stderr, "  salt %llu lp %g rank %d: want score %.6f len %d\n",
                  (unsigned long long)salt, lps[k], i, all[i].score, all[i].n);
          print_seq("got", &r, i);
        }
      }
      vb_gen_result_free(&r);
    }
  }
  CHECK(cases == 36 && mismatches == 0, "beam search equals exhaustive search (%d mismatches)",
        mismatches);
}

/* ------------------------------------------------------------------------ */
/* Sampling. */

static void test_sampling(void) {
  vb_gen_result g, r, r2;
  mock_lm m;
  vb_gen_config c = base_cfg(0, 7);
  c.max_new_tokens = 12;
  mock_hash(&m, 16, 5);
  CHECK_OK(run(&m, &c, &g));

  c.do_sample = true;
  c.top_k = 1;
  c.seed = 11;
  mock_hash(&m, 16, 5);
  CHECK_OK(run(&m, &c, &r));
  CHECK(r.lens[0] == g.lens[0] && !memcmp(r.seqs[0], g.seqs[0], (size_t)g.lens[0] * 4),
        "top_k 1 == greedy");
  vb_gen_result_free(&r);

  c.top_k = 0;
  c.temperature = 1e-4f;
  mock_hash(&m, 16, 5);
  CHECK_OK(run(&m, &c, &r));
  CHECK(r.lens[0] == g.lens[0] && !memcmp(r.seqs[0], g.seqs[0], (size_t)g.lens[0] * 4),
        "temperature 1e-4 == greedy");
  vb_gen_result_free(&r);

  c.temperature = 1.0f;
  c.top_p = 1e-6f;
  mock_hash(&m, 16, 5);
  CHECK_OK(run(&m, &c, &r));
  CHECK(r.lens[0] == g.lens[0] && !memcmp(r.seqs[0], g.seqs[0], (size_t)g.lens[0] * 4),
        "top_p tiny == greedy");
  vb_gen_result_free(&r);
  vb_gen_result_free(&g);

  /* Same seed repeats; other seeds differ over a flat distribution. */
  float flat[TV];
  for (int t = 0; t < 16; t++)
    flat[t] = 1.0f / 16;
  c = base_cfg(0, -1);
  c.do_sample = true;
  c.top_k = 0;
  c.max_new_tokens = 19;
  c.seed = 1234;
  mock_table(&m, 16, NULL, 0, flat);
  CHECK_OK(run(&m, &c, &r));
  mock_table(&m, 16, NULL, 0, flat);
  CHECK_OK(run(&m, &c, &r2));
  CHECK(r.lens[0] == 20 && r2.lens[0] == 20 && !memcmp(r.seqs[0], r2.seqs[0], 20 * 4),
        "fixed seed repeats");
  vb_gen_result_free(&r2);
  int differ = 0;
  for (uint64_t s = 1; s <= 5; s++) {
    c.seed = 1234 + s;
    mock_table(&m, 16, NULL, 0, flat);
    CHECK_OK(run(&m, &c, &r2));
    if (memcmp(r.seqs[0], r2.seqs[0], 20 * 4)) differ++;
    vb_gen_result_free(&r2);
  }
  CHECK(differ == 5, "different seeds give different samples (%d/5)", differ);
  vb_gen_result_free(&r);

  /* Empirical frequencies, straight from vb_sample_row. */
  {
    float x[4] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f)};
    vb_rng rng;
    vb_rng_seed(&rng, 42);
    int cnt[4] = {0};
    for (int i = 0; i < 20000; i++) {
      int32_t t;
      vb_sample_row(x, 4, &rng, &t);
      cnt[t]++;
    }
    bool ok = true;
    for (int t = 0; t < 4; t++)
      ok = ok && fabs(cnt[t] / 20000.0 - 0.1 * (t + 1)) < 0.015;
    CHECK(ok, "frequencies %d %d %d %d of 20000", cnt[0], cnt[1], cnt[2], cnt[3]);
  }
  /* Nucleus through generate, many rows via num_return_sequences. */
  {
    float p[TV] = {0.05f, 0.3f, 0.1f, 0.5f, 0.05f, 0, 0, 0};
    c = base_cfg(0, -1);
    c.do_sample = true;
    c.top_k = 0;
    c.top_p = 0.75f;
    c.max_new_tokens = 1;
    c.num_return_sequences = 64;
    int cnt[8] = {0}, total = 0;
    for (uint64_t s = 0; s < 60; s++) {
      c.seed = s;
      mock_table(&m, 8, NULL, 0, p);
      if (!CHECK_OK(run(&m, &c, &r))) break;
      for (int i = 0; i < r.n; i++) {
        cnt[r.seqs[i][1]]++;
        total++;
      }
      vb_gen_result_free(&r);
    }
    CHECK(cnt[0] + cnt[2] + cnt[4] == 0, "only the nucleus {1,3} is sampled");
    CHECK(fabs(cnt[3] / (double)total - 0.625) < 0.03, "nucleus renormalised: %d/%d", cnt[3],
          total);
  }
  /* Sampling with several sequences: finished rows are padded after EOS. */
  {
    static const tab_entry tab[] = {{0, {0}, {0.5f, 0, 0, 0.5f}}};
    float d[TV] = {0, 0, 0, 1.0f};
    c = base_cfg(2, 3);
    c.pad_token_id = 1;
    c.do_sample = true;
    c.num_return_sequences = 8;
    c.seed = 3;
    mock_table(&m, 4, tab, 1, d);
    CHECK_OK(run(&m, &c, &r));
    bool ok = r.n == 8;
    int width = 0;
    for (int i = 0; ok && i < 8; i++)
      width = r.lens[i] > width ? r.lens[i] : width;
    for (int i = 0; ok && i < 8; i++) {
      if (r.seqs[i][1] == 3)
        ok = r.lens[i] == 2 && (width < 3 || r.seqs[i][2] == 1);
      else
        ok = r.lens[i] == 3 && r.seqs[i][1] == 0 && r.seqs[i][2] == 3;
    }
    CHECK(ok, "multi-row sampling lengths and padding");
    vb_gen_result_free(&r);
  }
}

static void test_beam_sample(void) {
  vb_gen_result r, r2;
  mock_lm m;
  vb_gen_config c = base_cfg(0, 3);
  c.do_sample = true;
  c.num_beams = 3;
  c.num_return_sequences = 2;
  c.max_new_tokens = 6;
  c.seed = 9;
  c.top_k = 0;
  mock_hash(&m, 12, 3);
  CHECK_OK(run(&m, &c, &r));
  mock_hash(&m, 12, 3);
  CHECK_OK(run(&m, &c, &r2));
  bool ok = r.n == 2 && r2.n == 2;
  for (int i = 0; ok && i < 2; i++) {
    ok = r.lens[i] == r2.lens[i] && !memcmp(r.seqs[i], r2.seqs[i], (size_t)r.lens[i] * 4) &&
         r.scores[i] == r2.scores[i] && r.seqs[i][0] == 0 && r.lens[i] >= 2 && r.lens[i] <= 7;
  }
  CHECK(ok, "beam sampling: deterministic per seed, valid sequences");
  CHECK(m.rows == 6, "beam sampling runs num_return_sequences groups (%d rows)", m.rows);
  vb_gen_result_free(&r);
  vb_gen_result_free(&r2);
  /* top_k 2 leaves 2 candidates per group but 2*num_beams are needed. */
  c.top_k = 2;
  c.num_beams = 2;
  c.num_return_sequences = 1;
  mock_hash(&m, 12, 3);
  CHECK(run(&m, &c, &r) != 0 && strstr(vb_error_message(), "beam sampling"),
        "beam sampling shortage: %s", vb_error_message());
}

/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t got[64];
  int n, stop_after;
} stream_t;

static int on_token(void *user, int32_t tok) {
  stream_t *s = user;
  s->got[s->n++] = tok;
  return s->stop_after && s->n >= s->stop_after;
}

static void test_stream_and_errors(void) {
  vb_gen_result r;
  mock_lm m;
  vb_gen_config c = base_cfg(0, -1);
  c.max_new_tokens = 8;
  mock_hash(&m, 10, 8);
  vb_lm_iface it = iface_for(&m);
  stream_t s = {{0}, 0, 0};
  CHECK_OK(vb_generate(&it, &m, &c, on_token, &s, &r));
  CHECK(s.n == 8 && r.lens[0] == 9 && !memcmp(s.got, r.seqs[0] + 1, 8 * 4),
        "streamed tokens = result");
  vb_gen_result_free(&r);
  stream_t s2 = {{0}, 0, 3};
  mock_hash(&m, 10, 8);
  CHECK_OK(vb_generate(&it, &m, &c, on_token, &s2, &r));
  CHECK(s2.n == 3 && r.lens[0] == 4 && m.step_calls == 2, "callback stop after 3 tokens (len %d)",
        r.lens[0]);
  vb_gen_result_free(&r);

  mock_hash(&m, 10, 8);
  m.fail_step = 3;
  CHECK(vb_generate(&it, &m, &c, NULL, NULL, &r) != 0 && strstr(vb_error_message(), "injected") &&
            strstr(vb_error_message(), "step"),
        "step failure propagates: %s", vb_error_message());
  CHECK(r.n == 0 && r.seqs == NULL, "no result on failure");
  c.num_beams = 3;
  mock_hash(&m, 10, 8);
  m.fail_step = 2;
  CHECK(vb_generate(&it, &m, &c, NULL, NULL, &r) != 0, "beam step failure propagates");
  mock_hash(&m, 10, 8);
  m.nan_step = 2;
  CHECK(vb_generate(&it, &m, &c, NULL, NULL, &r) != 0 && strstr(vb_error_message(), "NaN"),
        "NaN logits rejected (beam): %s", vb_error_message());
  c.num_beams = 1;
  mock_hash(&m, 10, 8);
  m.nan_step = 2;
  CHECK(vb_generate(&it, &m, &c, NULL, NULL, &r) != 0, "NaN logits rejected (greedy)");
  c.eos_token_id = 10;
  mock_hash(&m, 10, 8);
  CHECK(vb_generate(&it, &m, &c, NULL, NULL, &r) != 0 && strstr(vb_error_message(), "eos_token_id"),
        "eos outside vocab");
}

static void expect_bad(vb_gen_config c, const char *word) {
  int rc = vb_gen_config_check(&c);
  CHECK(rc != 0 && strstr(vb_error_message(), word), "config check for %s: %s", word,
        rc ? vb_error_message() : "accepted");
}

static void test_config(void) {
  vb_gen_config d = base_cfg(2, 50118);
  CHECK_OK(vb_gen_config_check(&d));
  vb_gen_config c;
  c = d, c.num_beams = -1, expect_bad(c, "num_beams");
  c = d, c.max_new_tokens = -1, expect_bad(c, "max_new_tokens");
  c = d, c.max_length = 1, expect_bad(c, "max_length");
  c = d, c.min_new_tokens = -2, expect_bad(c, "min_new_tokens");
  c = d, c.top_p = 0.0f, expect_bad(c, "top_p");
  c = d, c.top_p = 1.5f, expect_bad(c, "top_p");
  c = d, c.top_k = -1, expect_bad(c, "top_k");
  c = d, c.do_sample = true, c.temperature = 0.0f, expect_bad(c, "temperature");
  c = d, c.repetition_penalty = 0.0f, expect_bad(c, "repetition_penalty");
  c = d, c.repetition_penalty = -1.0f, expect_bad(c, "repetition_penalty");
  c = d, c.no_repeat_ngram_size = -1, expect_bad(c, "no_repeat_ngram_size");
  c = d, c.num_beams = 2, c.num_return_sequences = 3, expect_bad(c, "num_return_sequences");
  c = d, c.num_return_sequences = 2, expect_bad(c, "num_return_sequences");
  c = d, c.length_penalty = INFINITY, expect_bad(c, "length_penalty");
  c = d, c.early_stopping = (vb_early_stopping)7, expect_bad(c, "early_stopping");
  c = d, c.start_token_id = -1, expect_bad(c, "start_token_id");
  c = d, c.eos_token_id = -5, expect_bad(c, "eos_token_id");
  /* temperature without sampling is ignored (the demo passes 0.7 with beams) */
  c = d, c.temperature = 0.0f;
  CHECK_OK(vb_gen_config_check(&c));
  vb_gen_config def;
  vb_gen_config_default(&def);
  CHECK(def.max_length == 20 && def.top_k == 50 && def.top_p == 1.0f && def.temperature == 1.0f &&
            def.num_beams == 1 && def.length_penalty == 1.0f &&
            def.early_stopping == VB_EARLY_FALSE,
        "transformers defaults");
}

/* Vocabulary of OPT size: checks the per-step work stays cheap. */
static void big_fn(const mock_lm *m, const int32_t *prefix, int n, float *out) {
  uint64_t h = mix64(m->salt);
  for (int i = 0; i < n; i++)
    h = mix64(h ^ (uint64_t)prefix[i]);
  for (int t = 0; t < m->V; t++)
    out[t] = (float)((t * 2654435761u + (uint32_t)h) % 1000) * 0.01f;
}

static void test_large_vocab(void) {
  static mock_lm m; /* big, but the history arrays are fixed */
  memset(&m, 0, sizeof m);
  m.V = 50272;
  m.fn = big_fn;
  m.salt = 5;
  vb_gen_config c = base_cfg(2, 202);
  c.num_beams = 4;
  c.max_new_tokens = 30;
  c.no_repeat_ngram_size = 3;
  c.repetition_penalty = 1.2f;
  vb_gen_result r;
  double t0 = vb_now_ms();
  CHECK_OK(run(&m, &c, &r));
  double ms = vb_now_ms() - t0;
  CHECK(r.n == 1 && r.lens[0] >= 2, "large-vocab beam search ran");
  printf("beam4 x 30 steps over vocab 50272 (mock): %.1f ms\n", ms);
  vb_gen_result_free(&r);
  memset(&m, 0, sizeof m);
  m.V = 50272;
  m.fn = big_fn;
  c.num_beams = 1;
  c.do_sample = true;
  c.top_p = 0.9f;
  t0 = vb_now_ms();
  CHECK_OK(run(&m, &c, &r));
  printf("sampling top_k 50 top_p 0.9 x 30 steps over vocab 50272: %.1f ms\n", vb_now_ms() - t0);
  vb_gen_result_free(&r);
}

int main(void) {
  test_processors();
  test_greedy();
  test_beam_hand();
  test_beam_exhaustive();
  test_sampling();
  test_beam_sample();
  test_stream_and_errors();
  test_config();
  test_large_vocab();
  return tu_finish();
}
