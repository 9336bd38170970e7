/* In-context learning (EILEV's interleaved layout) against transformers 4.33
 * (tests/fixtures/icl): input ids and video masks position by position, the input
 * embeddings, greedy and EILEV beam generation, the first logits and candidate
 * scores; the Flan-T5-style tokenizer; how blocks form from items; the layout a
 * checkpoint selects; and scoring with the cache against uncached forwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "lm/t5.h"
#include "models/interleave.h"
#include "models/videoblip_internal.h"
#include "runtime/common.h"
#include "testutil.h"
#include "vblip.h"

static cJSON *g_icl;
static vb_tensor_table g_tt;

static cJSON *read_json(const char *rel) {
  char *text = NULL;
  if (vb_read_file(tu_fixture(rel), 16u << 20, &text, NULL) != 0) {
    fprintf(stderr, "cannot read %s: %s\n", rel, vb_error_message());
    exit(2);
  }
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (!j) {
    fprintf(stderr, "%s does not parse\n", rel);
    exit(2);
  }
  return j;
}

static const vb_tensor_info *ref_tensor(const char *name) {
  const vb_tensor_info *t = vb_tt_find(&g_tt, name);
  CHECK(t != NULL, "reference tensor %s missing", name);
  return t;
}

static int json_int(const cJSON *a, int i) {
  return cJSON_GetArrayItem(a, i)->valueint;
}

/* ---- blocks from items (no model) ---- */

static void check_blocks(const char *what, const char *const *texts, size_t n,
                         const char *const *want_text, const int *want_videos, size_t want_n) {
  vb_icl_block *b = NULL;
  size_t nb = 0;
  if (!CHECK_OK(vb_icl_blocks(texts, n, &b, &nb))) return;
  if (CHECK(nb == want_n, "%s: %zu blocks, want %zu", what, nb, want_n))
    for (size_t i = 0; i < nb; i++)
      CHECK(strcmp(b[i].text, want_text[i]) == 0 && b[i].n_videos == want_videos[i],
            "%s block %zu: (\"%s\", %d), want (\"%s\", %d)", what, i, b[i].text, b[i].n_videos,
            want_text[i], want_videos[i]);
  vb_icl_blocks_free(b, nb);
}

static void test_blocks(void) {
  /* EILEV's sample script: a video after text opens a block, texts are stripped and joined */
  const char *t1[] = {NULL, " Question: What? ",  "Answer: cutting.", NULL,
                      NULL, "\tQuestion: What?\n"};
  const char *w1[] = {"Question: What? Answer: cutting.", "Question: What?"};
  check_blocks("sample", t1, 6, w1, (int[]){1, 2}, 2);
  /* text first: a block without video; whitespace-only text is dropped; videos last */
  const char *t2[] = {"Describe:", NULL, "  ", NULL, "A.", NULL};
  const char *w2b[] = {"Describe:", "A.", ""};
  check_blocks("leading text", t2, 6, w2b, (int[]){0, 2, 1}, 3);
  const char *t3[] = {"   ", "\n"};
  check_blocks("only whitespace", t3, 2, NULL, NULL, 0);
  check_blocks("nothing", NULL, 0, NULL, NULL, 0);
  /* placeholders: the fixture's rule, through the prompt splitter */
  char **pieces = NULL;
  size_t np = 0;
  if (CHECK_OK(vb_icl_split_prompt("a<video><video>b <video>", &pieces, &np)) &&
      CHECK(np == 4, "pieces %zu", np))
    CHECK(!strcmp(pieces[0], "a") && !pieces[1][0] && !strcmp(pieces[2], "b ") && !pieces[3][0],
          "pieces \"%s\" \"%s\" \"%s\" \"%s\"", pieces[0], pieces[1], pieces[2], pieces[3]);
  vb_icl_pieces_free(pieces, np);
  CHECK(vblip_prompt_count_videos("<video> x <video><vid") == 2, "placeholder count");
}

/* ---- the fixture cases ---- */

typedef struct {
  const char *kind, *dir;
  vblip_model *m;
  vblip_video video1, image;
  bool ok;
} model_ctx;

static bool open_model(model_ctx *c, const char *kind, const char *dir) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->dir = dir;
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32;
  lo.layout = VBLIP_LAYOUT_INTERLEAVED;
  c->m = vblip_model_load(tu_fixture(dir), &lo);
  if (!CHECK(c->m != NULL, "load %s: %s", dir, vblip_last_error())) return false;
  CHECK(vblip_model_layout(c->m) == VBLIP_LAYOUT_INTERLEAVED, "layout override");
  const char *files[] = {"media/video1_h264_320x240_30fps_12s.mp4", "media/image_rgb_203x150.png"};
  vblip_video *vs[] = {&c->video1, &c->image};
  int want_frames[] = {8, 1};
  for (int i = 0; i < 2; i++) {
    vblip_sampling s;
    vblip_sampling_default(&s); /* uniform over the whole video, 8 frames */
    if (!CHECK(vblip_video_load(c->m, tu_fixture(files[i]), &s, vs[i]) == 0 &&
                   vblip_video_encode(c->m, vs[i]) == 0,
               "%s: %s", files[i], vblip_last_error()))
      return false;
    CHECK(vs[i]->n_frames == want_frames[i], "%s frames %d", files[i], vs[i]->n_frames);
  }
  c->ok = true;
  return true;
}

static void close_model(model_ctx *c) {
  vblip_video_free(&c->video1);
  vblip_video_free(&c->image);
  vblip_model_free(c->m);
}

/* The case's input from its prompt with placeholders and its videos. */
static vblip_input *case_input(model_ctx *c, cJSON *cs) {
  cJSON *vids = cJSON_GetObjectItem(cs, "videos");
  const vblip_video *v[8];
  int nv = cJSON_GetArraySize(vids);
  for (int i = 0; i < nv && i < 8; i++)
    v[i] = strcmp(cJSON_GetArrayItem(vids, i)->valuestring, "image") == 0 ? &c->image : &c->video1;
  vblip_input *in = vblip_input_new();
  const char *prompt = cJSON_GetObjectItem(cs, "prompt_with_placeholders")->valuestring;
  if (!CHECK(in && vblip_input_add_prompt(in, prompt, v, (size_t)nv) == 0, "input: %s",
             vblip_last_error())) {
    vblip_input_free(in);
    return NULL;
  }
  CHECK(vblip_input_n_videos(in) == (size_t)nv, "input has %zu videos", vblip_input_n_videos(in));
  return in;
}

/* What goes where, position by position: BOS (OPT), each video's Q masked pads and a
 * newline, block texts, EOS (T5); then equality with the reference ids. */
static void check_ids(model_ctx *c, const char *name, cJSON *cs, const vblip_input *in) {
  const vb_model_config *cfg = &c->m->cfg;
  int Q = cfg->num_query_tokens;
  bool opt = cfg->lm_kind == VB_LM_OPT;
  int32_t *ids = NULL;
  uint8_t *mask = NULL;
  size_t n = 0;
  if (!CHECK(vblip_input_ids(c->m, in, &ids, &mask, &n) == 0, "ids: %s", vblip_last_error()))
    return;
  int newline = cJSON_GetObjectItem(cs, "newline_id")->valueint;
  CHECK(c->m->newline_id == newline, "%s %s newline id %d, want %d", c->kind, name,
        c->m->newline_id, newline);
  size_t pos = 0;
  if (opt)
    CHECK(n > 0 && ids[0] == cfg->bos_token_id && !mask[0], "%s %s: BOS first", c->kind, name);
  pos = opt ? 1 : 0;
  cJSON *blocks = cJSON_GetObjectItem(cs, "blocks");
  for (int b = 0; b < cJSON_GetArraySize(blocks); b++) {
    cJSON *blk = cJSON_GetArrayItem(blocks, b);
    int nvid = json_int(blk, 1);
    for (int v = 0; v < nvid; v++) {
      for (int q = 0; q < Q; q++, pos++)
        CHECK(pos < n && mask[pos] == 1 && ids[pos] == cfg->pad_token_id,
              "%s %s block %d video %d query %d at %zu", c->kind, name, b, v, q, pos);
      CHECK(pos < n && mask[pos] == 0 && ids[pos] == newline, "%s %s newline after video at %zu",
            c->kind, name, pos);
      pos++;
    }
    /* then the block's text (and T5's EOS), unmasked, up to the next block's first video */
    while (pos < n && !mask[pos])
      pos++;
  }
  CHECK(pos == n, "%s %s: layout walk ended at %zu of %zu", c->kind, name, pos, n);
  if (!opt) CHECK(n > 0 && ids[n - 1] == cfg->eos_token_id, "%s %s: EOS last", c->kind, name);
  cJSON *want = cJSON_GetObjectItem(cs, "input_ids"),
        *wmask = cJSON_GetObjectItem(cs, "video_input_mask");
  if (CHECK(n == (size_t)cJSON_GetArraySize(want), "%s %s: %zu ids, want %d", c->kind, name, n,
            cJSON_GetArraySize(want)))
    for (size_t i = 0; i < n; i++)
      CHECK(ids[i] == json_int(want, (int)i) && mask[i] == json_int(wmask, (int)i),
            "%s %s position %zu: id %d mask %d, want %d %d", c->kind, name, i, ids[i], mask[i],
            json_int(want, (int)i), json_int(wmask, (int)i));
  free(ids);
  free(mask);
}

/* inputs_embeds against transformers, and each video's rows equal to its own projection. */
static void check_embeds(model_ctx *c, const char *name, const vblip_input *in) {
  float *e = NULL;
  size_t n = 0;
  if (!CHECK(vblip_input_embeds(c->m, in, &e, &n) == 0, "embeds: %s", vblip_last_error())) return;
  char tname[128];
  snprintf(tname, sizeof tname, "icl/%s/%s/inputs_embeds", c->kind, name);
  const vb_tensor_info *ref = ref_tensor(tname);
  size_t E = (size_t)c->m->cfg.lm_hidden, Q = (size_t)c->m->cfg.num_query_tokens;
  if (ref && CHECK((size_t)vb_tensor_numel(ref) == n * E, "%s: %zu rows", tname, n)) {
    double maxabs, rel;
    size_t bad = tu_compare(e, ref->data, n * E, 1e-4, 1e-4, &maxabs, &rel);
    CHECK(bad == 0, "%s: %zu mismatches (max abs %g, rel %g)", tname, bad, maxabs, rel);
  }
  int32_t *ids = NULL;
  uint8_t *mask = NULL;
  size_t ni = 0;
  if (CHECK_OK(vblip_input_ids(c->m, in, &ids, &mask, &ni))) {
    size_t k = 0;
    for (size_t i = 0; i < ni; i++) {
      if (!mask[i] || (i > 0 && mask[i - 1])) continue;
      const vblip_video *v = vblip_input_video(in, k++);
      CHECK(v && memcmp(e + i * E, v->projected, Q * E * sizeof(float)) == 0,
            "%s %s: video %zu rows at %zu equal its projection", c->kind, name, k, i);
    }
    CHECK(k == vblip_input_n_videos(in), "%s %s: %zu video runs", c->kind, name, k);
  }
  free(ids);
  free(mask);
  free(e);
}

static void check_generation(model_ctx *c, const char *name, cJSON *cs, const vblip_input *in) {
  const char *settings[] = {"greedy_12", "eilev_beam5_12"};
  for (int s = 0; s < 2; s++) {
    cJSON *g = cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "generation"), settings[s]);
    vblip_gen_params p;
    if (s == 0) {
      vblip_gen_params_default(&p);
      p.num_beams = 1;
    } else {
      vblip_gen_params_eilev(&p);
      CHECK(p.num_beams == 5 && p.length_penalty == -1.0f && p.max_new_tokens == 32,
            "EILEV defaults");
    }
    p.max_new_tokens = 12;
    vblip_answer a;
    if (!CHECK(vblip_generate_input(c->m, in, &p, NULL, NULL, &a) == 0, "%s %s %s: %s", c->kind,
               name, settings[s], vblip_last_error()))
      continue;
    cJSON *want = cJSON_GetObjectItem(g, "token_ids");
    bool same = a.n_tokens == cJSON_GetArraySize(want);
    for (int i = 0; same && i < a.n_tokens; i++)
      same = a.token_ids[i] == json_int(want, i);
    CHECK(same, "%s %s %s: %d tokens, first %d, want %d tokens", c->kind, name, settings[s],
          a.n_tokens, a.n_tokens ? a.token_ids[0] : -1, cJSON_GetArraySize(want));
    const char *text = cJSON_GetObjectItem(g, "text")->valuestring;
    CHECK(strcmp(a.text, text) == 0, "%s %s %s text \"%s\", want \"%s\"", c->kind, name,
          settings[s], a.text, text);
    vblip_answer_free(&a);
  }
}

/* The first logits (the distribution of the first new token) through the LM interface. */
static float *first_logits(model_ctx *c, const vblip_input *in) {
  float *e = NULL, *logits = NULL;
  size_t n = 0;
  vb_lm *lm = c->m->lm;
  if (vblip_input_embeds(c->m, in, &e, &n) == 0 && lm->set_input(lm, e, (int)n, NULL, 0) == 0 &&
      (logits = malloc((size_t)lm->vocab_size * sizeof(float))) &&
      lm->gen.prefill(lm, 1, logits) != 0) {
    free(logits);
    logits = NULL;
  }
  free(e);
  return logits;
}

static double log_softmax_at(const float *row, int vocab, int id) {
  double mx = row[0], sum = 0;
  for (int i = 1; i < vocab; i++)
    mx = row[i] > mx ? row[i] : mx;
  for (int i = 0; i < vocab; i++)
    sum += exp(row[i] - mx);
  return row[id] - mx - log(sum);
}

/* The candidate's mean log-likelihood with no cache: one full forward of the input and
 * the candidate per token (OPT: each prefix through prefill; T5: the encoder again and the
 * whole decoder sequence at once). */
static double uncached_score(model_ctx *c, const vblip_input *in, const vblip_score *s) {
  vb_lm *lm = c->m->lm;
  int V = lm->vocab_size, E = lm->embed_dim, k = s->n_tokens;
  float *ctx = NULL;
  size_t n = 0;
  double sum = 0;
  if (!CHECK_OK(vblip_input_embeds(c->m, in, &ctx, &n))) return NAN;
  float *logits = malloc((size_t)V * (k + 1) * sizeof(float));
  if (lm->kind == VB_LM_OPT) {
    float *all = malloc((n + k) * E * sizeof(float));
    memcpy(all, ctx, n * E * sizeof(float));
    CHECK_OK(lm->embed(lm, s->token_ids, k, all + n * E));
    for (int j = 0; j < k; j++) {
      if (!CHECK_OK(lm->set_input(lm, all, (int)n + j, NULL, 0)) ||
          !CHECK_OK(lm->gen.prefill(lm, 1, logits)))
        sum = NAN;
      else
        sum += log_softmax_at(logits, V, s->token_ids[j]);
    }
    free(all);
  } else {
    int32_t *dec = malloc((k + 1) * sizeof *dec);
    dec[0] = c->m->cfg.decoder_start_token_id;
    memcpy(dec + 1, s->token_ids, k * sizeof *dec);
    if (CHECK_OK(lm->set_input(lm, ctx, (int)n, NULL, 0)) &&
        CHECK_OK(vb_t5_decode_full(lm, dec, k, logits)))
      for (int j = 0; j < k; j++)
        sum += log_softmax_at(logits + (size_t)j * V, V, s->token_ids[j]);
    else
      sum = NAN;
    free(dec);
  }
  free(logits);
  free(ctx);
  return sum / k;
}

static void check_scores(model_ctx *c, const char *name, cJSON *cs, const vblip_input *in) {
  cJSON *cands = cJSON_GetObjectItem(g_icl, "candidates");
  int nc = cJSON_GetArraySize(cands);
  const char *texts[8];
  for (int i = 0; i < nc && i < 8; i++)
    texts[i] = cJSON_GetArrayItem(cands, i)->valuestring;
  vblip_score sc[8];
  if (!CHECK(vblip_score_candidates(c->m, in, texts, (size_t)nc, sc) == 0, "%s %s score: %s",
             c->kind, name, vblip_last_error()))
    return;
  cJSON *want = cJSON_GetObjectItem(cs, "scores");
  for (int i = 0; i < nc; i++) {
    /* the cache reused for every candidate equals a full forward without it */
    double full = uncached_score(c, in, &sc[i]);
    CHECK(fabs(sc[i].mean_log_likelihood - full) <= 1e-5 * fabs(full),
          "%s %s \"%s\": cached %.9g, uncached %.9g", c->kind, name, texts[i],
          sc[i].mean_log_likelihood, full);
    if (!want) continue; /* the reference has scores for decoder-only models only */
    cJSON *w = cJSON_GetArrayItem(want, i);
    cJSON *wid = cJSON_GetObjectItem(w, "token_ids");
    bool same = sc[i].n_tokens == cJSON_GetArraySize(wid);
    for (int t = 0; same && t < sc[i].n_tokens; t++)
      same = sc[i].token_ids[t] == json_int(wid, t);
    CHECK(same, "%s %s \"%s\": candidate tokens differ", c->kind, name, texts[i]);
    double ref = cJSON_GetObjectItem(w, "mean_log_likelihood")->valuedouble;
    CHECK(fabs(sc[i].mean_log_likelihood - ref) <= 1e-5 * fabs(ref),
          "%s %s \"%s\": %.9g, want %.9g", c->kind, name, texts[i], sc[i].mean_log_likelihood, ref);
  }
  for (int i = 0; i < nc; i++)
    vblip_score_free(&sc[i]);
}

/* Single-token candidates: the greedy first token ranks first. The candidates are the
 * decoded top tokens of the first step that tokenize back to themselves as candidates. */
static bool check_greedy_ranks_first(model_ctx *c, const char *name, cJSON *cs,
                                     const vblip_input *in) {
  int greedy = json_int(
      cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "generation"), "greedy_12"),
                          "token_ids"),
      0);
  float *logits = first_logits(c, in);
  if (!CHECK(logits != NULL, "first logits: %s", vblip_last_error())) return false;
  int V = c->m->lm->vocab_size;
  /* the greedy token and tokens spread over the vocabulary */
  int pool[64], np = 0;
  pool[np++] = greedy;
  for (int i = 1; np < 64 && i < V; i += V / 97 + 1)
    pool[np++] = i;
  char *cand[64];
  const char *cp[64];
  int nc = 0;
  bool has_greedy = false;
  for (int i = 0; i < np; i++) {
    char *t = NULL;
    if (vblip_detokenize(c->m, &pool[i], 1, 1, &t) != 0) continue;
    const char *b = t;
    if (c->m->cfg.lm_kind == VB_LM_OPT && b[0] == ' ') b++; /* scoring puts the space back */
    int32_t *ids = NULL;
    size_t n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", c->m->cfg.lm_kind == VB_LM_OPT ? " " : "", b);
    bool single = *b && vblip_tokenize(c->m, buf, 0, &ids, &n) == 0 && n == 1 && ids[0] == pool[i];
    free(ids);
    if (single) {
      cand[nc] = strdup(b);
      cp[nc] = cand[nc];
      if (pool[i] == greedy) has_greedy = true;
      nc++;
    }
    free(t);
  }
  bool asserted = false;
  vblip_score sc[64];
  if (has_greedy && nc > 1 &&
      CHECK(vblip_score_candidates(c->m, in, cp, (size_t)nc, sc) == 0, "score: %s",
            vblip_last_error())) {
    int best = 0;
    for (int i = 1; i < nc; i++)
      if (sc[i].mean_log_likelihood > sc[best].mean_log_likelihood) best = i;
    CHECK(sc[best].token_ids[0] == greedy,
          "%s %s: best single-token candidate %d, greedy %d (%d candidates)", c->kind, name,
          sc[best].token_ids[0], greedy, nc);
    /* a single-token score is that token's log-probability under the first logits */
    CHECK(fabs(sc[0].mean_log_likelihood - log_softmax_at(logits, V, greedy)) <=
              1e-6 * fabs(sc[0].mean_log_likelihood) + 1e-9,
          "single-token score");
    for (int i = 0; i < nc; i++)
      vblip_score_free(&sc[i]);
    asserted = true;
  }
  for (int i = 0; i < nc; i++)
    free(cand[i]);
  free(logits);
  return asserted;
}

static void check_logits_last(model_ctx *c, const char *name, const vblip_input *in) {
  char tname[128];
  snprintf(tname, sizeof tname, "icl/%s/%s/logits_last", c->kind, name);
  const vb_tensor_info *ref = vb_tt_find(&g_tt, tname);
  if (!ref) return; /* decoder-only models only */
  float *logits = first_logits(c, in);
  if (CHECK(logits != NULL, "first logits: %s", vblip_last_error()) &&
      CHECK(vb_tensor_numel(ref) == c->m->lm->vocab_size, "%s size", tname)) {
    double maxabs, rel;
    size_t bad =
        tu_compare(logits, ref->data, (size_t)c->m->lm->vocab_size, 5e-3, 1e-5, &maxabs, &rel);
    CHECK(bad == 0, "%s: %zu mismatches (max abs %g)", tname, bad, maxabs);
  }
  free(logits);
}

static void run_model(const char *kind, const char *dir) {
  model_ctx c;
  if (!open_model(&c, kind, dir)) {
    close_model(&c);
    return;
  }
  char path[128];
  snprintf(path, sizeof path, "models.%s.cases", kind);
  cJSON *cases = tu_json_path(g_icl, path), *cs;
  int ranked = 0;
  cJSON_ArrayForEach(cs, cases) {
    vblip_input *in = case_input(&c, cs);
    if (!in) continue;
    check_ids(&c, cs->string, cs, in);
    check_embeds(&c, cs->string, in);
    check_generation(&c, cs->string, cs, in);
    check_logits_last(&c, cs->string, in);
    check_scores(&c, cs->string, cs, in);
    ranked += check_greedy_ranks_first(&c, cs->string, cs, in);
    vblip_input_free(in);
  }
  CHECK(ranked > 0, "%s: the greedy-ranks-first check ran on no case", kind);
  close_model(&c);
}

/* ---- the Flan-T5-style tokenizer.json (Metaspace without WhitespaceSplit) ---- */

static void link_model(const char *src, const char *dst, const char *skip) {
  const char *files[] = {"config.json",       "model.safetensors",       "preprocessor_config.json",
                         "spiece.model",      "special_tokens_map.json", "tokenizer_config.json",
                         "added_tokens.json", "tokenizer.json",          "vocab.json",
                         "merges.txt"};
  mkdir(dst, 0755);
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    if (skip && strcmp(files[i], skip) == 0) continue;
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s", src, files[i]);
    snprintf(b, sizeof b, "%s/%s", dst, files[i]);
    if (access(a, F_OK) == 0) CHECK(symlink(a, b) == 0, "symlink %s", b);
  }
}

static void test_flan_style(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/flan-style", tu_tmpdir());
  link_model(tu_fixture("models/videoblip-flant5-tiny"), dir, "tokenizer.json");
  char tj[600];
  snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
  CHECK(symlink(tu_fixture("icl/flan_style/tokenizer.json"), tj) == 0, "symlink tokenizer.json");
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32;
  lo.layout = VBLIP_LAYOUT_INTERLEAVED;
  vblip_model *m = vblip_model_load(dir, &lo);
  if (!CHECK(m != NULL, "flan-style model: %s", vblip_last_error())) return;
  cJSON *fx = read_json("icl/flan_style/expected.json"), *cs;
  vblip_video dummy = {0}; /* ids need no encoded video */
  cJSON_ArrayForEach(cs, cJSON_GetObjectItem(fx, "cases")) {
    CHECK(m->newline_id == cJSON_GetObjectItem(cs, "newline_id")->valueint, "flan newline id %d",
          m->newline_id);
    vblip_input *in = vblip_input_new();
    cJSON *blk;
    cJSON_ArrayForEach(blk, cJSON_GetObjectItem(cs, "blocks")) {
      for (int v = 0; v < json_int(blk, 1); v++)
        vblip_input_add_video(in, &dummy);
      vblip_input_add_text(in, cJSON_GetArrayItem(blk, 0)->valuestring);
    }
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    size_t n = 0;
    cJSON *want = cJSON_GetObjectItem(cs, "input_ids"),
          *wm = cJSON_GetObjectItem(cs, "video_input_mask");
    if (CHECK(vblip_input_ids(m, in, &ids, &mask, &n) == 0, "flan ids: %s", vblip_last_error()) &&
        CHECK(n == (size_t)cJSON_GetArraySize(want), "flan %s: %zu ids, want %d", cs->string, n,
              cJSON_GetArraySize(want)))
      for (size_t i = 0; i < n; i++)
        CHECK(ids[i] == json_int(want, (int)i) && mask[i] == json_int(wm, (int)i),
              "flan %s position %zu: %d/%d, want %d/%d", cs->string, i, ids[i], mask[i],
              json_int(want, (int)i), json_int(wm, (int)i));
    free(ids);
    free(mask);
    vblip_input_free(in);
  }
  cJSON_Delete(fx);
  vblip_model_free(m);
}

/* ---- which layout a checkpoint selects, and the BLIP-2 layout's rules ---- */

static void test_layout_choice(void) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/eilev-config", tu_tmpdir());
  link_model(tu_fixture("models/videoblip-opt-tiny"), dir, "config.json");
  cJSON *cfg = read_json("models/videoblip-opt-tiny/config.json");
  cJSON_ReplaceItemInObject(cfg, "_name_or_path",
                            cJSON_CreateString("/nfs/checkpoints/EILEV-blip2-opt-2.7b-ego4d/"));
  char *text = cJSON_Print(cfg), path[600];
  snprintf(path, sizeof path, "%s/config.json", dir);
  FILE *f = fopen(path, "w");
  if (CHECK(f && text, "write %s", path)) fputs(text, f);
  if (f) fclose(f);
  free(text);
  cJSON_Delete(cfg);
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32;
  const char *dirs[] = {dir, tu_fixture("models/videoblip-opt-tiny")};
  vblip_layout auto_want[] = {VBLIP_LAYOUT_INTERLEAVED, VBLIP_LAYOUT_BLIP2};
  for (int d = 0; d < 2; d++) {
    vblip_layout modes[] = {VBLIP_LAYOUT_AUTO, VBLIP_LAYOUT_BLIP2, VBLIP_LAYOUT_INTERLEAVED};
    for (int k = 0; k < 3; k++) {
      lo.layout = modes[k];
      vblip_model *m = vblip_model_load(dirs[d], &lo);
      vblip_layout want = k == 0 ? auto_want[d] : modes[k];
      if (CHECK(m != NULL, "load: %s", vblip_last_error()))
        CHECK(vblip_model_layout(m) == want, "dir %d option %d: layout %s", d, k,
              vblip_layout_name(vblip_model_layout(m)));
      vblip_model_free(m);
    }
  }
  vblip_layout l;
  CHECK(vblip_layout_parse("interleaved", &l) == 0 && l == VBLIP_LAYOUT_INTERLEAVED, "parse");
  CHECK(vblip_layout_parse("eilev", &l) == -1, "parse rejects unknown names");

  /* BLIP-2 layout: the video's queries first, then the prompt with special tokens */
  lo.layout = VBLIP_LAYOUT_AUTO;
  vblip_model *m = vblip_model_load(tu_fixture("models/videoblip-opt-tiny"), &lo);
  if (!CHECK(m != NULL, "load: %s", vblip_last_error())) return;
  vblip_video v;
  vblip_sampling s;
  vblip_sampling_default(&s);
  s.n_frames = 2;
  if (CHECK(vblip_video_load(m, tu_fixture("media/image_rgb_203x150.png"), &s, &v) == 0 &&
                vblip_video_encode(m, &v) == 0,
            "image: %s", vblip_last_error())) {
    const char *prompt = "Question: what? Answer:";
    vblip_input *in = vblip_input_new();
    vblip_input_add_video(in, &v);
    vblip_input_add_text(in, prompt);
    int32_t *ids = NULL, *pids = NULL;
    uint8_t *mask = NULL;
    size_t n = 0, np = 0;
    int Q = m->cfg.num_query_tokens;
    if (CHECK_OK(vblip_input_ids(m, in, &ids, &mask, &n)) &&
        CHECK_OK(vblip_tokenize(m, prompt, 1, &pids, &np)) &&
        CHECK(n == (size_t)Q + np, "blip2 length %zu", n)) {
      for (int i = 0; i < Q; i++)
        CHECK(mask[i] == 1, "blip2 query %d masked", i);
      CHECK(memcmp(ids + Q, pids, np * sizeof *ids) == 0 && !memchr(mask + Q, 1, np),
            "blip2 prompt ids");
    }
    free(ids);
    free(mask);
    free(pids);
    /* the same answer as vblip_generate */
    vblip_gen_params p;
    vblip_gen_params_default(&p);
    p.num_beams = 1;
    p.max_new_tokens = 6;
    vblip_answer a, b;
    if (CHECK_OK(vblip_generate_input(m, in, &p, NULL, NULL, &a))) {
      if (CHECK_OK(vblip_generate(m, &v, prompt, &p, NULL, NULL, &b))) {
        CHECK(a.n_tokens == b.n_tokens &&
                  !memcmp(a.token_ids, b.token_ids, a.n_tokens * sizeof(int32_t)),
              "input and prompt generation agree");
        vblip_answer_free(&b);
      }
      vblip_answer_free(&a);
    }
    /* two videos, or text before the video, need the interleaved layout */
    vblip_input_add_video(in, &v);
    CHECK(vblip_input_ids(m, in, &ids, &mask, &n) == -1 &&
              strstr(vblip_last_error(), "interleaved"),
          "two videos in the BLIP-2 layout: %s", vblip_last_error());
    vblip_input_free(in);
    in = vblip_input_new();
    vblip_input_add_text(in, "x");
    vblip_input_add_video(in, &v);
    CHECK(vblip_input_ids(m, in, &ids, &mask, &n) == -1,
          "text before the video in the BLIP-2 layout");
    vblip_input_free(in);
    /* wrong placeholder count, unloaded file, empty candidate */
    in = vblip_input_new();
    const vblip_video *vv[] = {&v};
    CHECK(vblip_input_add_prompt(in, "<video> a <video> b", vv, 1) == -1 &&
              strstr(vblip_last_error(), "2 <video>"),
          "placeholder count: %s", vblip_last_error());
    vblip_sampling three;
    vblip_sampling_default(&three);
    three.n_frames = 3;
    CHECK(vblip_input_add_video_file(in, tu_fixture("media/video3_mjpeg_97x61_15fps_3s.avi"),
                                     &three) == 0,
          "add file");
    float *e = NULL;
    CHECK(vblip_input_embeds(m, in, &e, &n) == -1, "an unloaded video file is refused");
    CHECK_OK(vblip_input_encode(m, in));
    CHECK(vblip_input_video(in, 0) && vblip_input_video(in, 0)->n_frames == 3,
          "file encoded with its options");
    vblip_input_add_text(in, "Answer:");
    vblip_score sc[2];
    const char *bad[] = {"dog", " "};
    CHECK(vblip_score_candidates(m, in, bad, 2, sc) == -1 && strstr(vblip_last_error(), "empty"),
          "empty candidate: %s", vblip_last_error());
    vblip_input_free(in);
    /* a video encoded by no model */
    vblip_video raw = {0};
    in = vblip_input_new();
    vblip_input_add_video(in, &raw);
    CHECK(vblip_input_embeds(m, in, &e, &n) == -1, "an unencoded video is refused");
    vblip_input_free(in);
  }
  vblip_video_free(&v);
  vblip_model_free(m);
}

int main(void) {
  g_icl = read_json("icl/expected.json");
  vb_tt_init(&g_tt);
  if (vb_safetensors_load(&g_tt, tu_fixture("icl/expected.safetensors")) != 0) {
    fprintf(stderr, "cannot load icl/expected.safetensors: %s\n", vb_error_message());
    return 2;
  }
  test_blocks();
  run_model("opt", "models/videoblip-opt-tiny");
  run_model("t5", "models/videoblip-flant5-tiny");
  test_flan_style();
  test_layout_choice();
  vb_tt_free(&g_tt);
  cJSON_Delete(g_icl);
  return tu_finish();
}
