/* The worker thread, the model's only user: encodes videos, answers chats (streaming their
 * pieces, with OpenAI's stop strings), scores candidates and narrates. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "server/server_internal.h"

/* A decoder's message about a stored file, as the client may see it: the server's path
 * replaced by the client's file name. A new string (NULL when out of memory). */
static char *hide_path(const char *msg, const char *path, const char *name) {
  vs_buf b = {0};
  const char *hit;
  vs_buf_puts(&b, "");
  while (*path && (hit = strstr(msg, path))) {
    vs_buf_append(&b, msg, (size_t)(hit - msg));
    vs_buf_puts(&b, name && *name ? name : "the upload");
    msg = hit + strlen(path);
  }
  vs_buf_puts(&b, msg);
  return b.data;
}

/* The worker thread only. Decodes and encodes e unless done already. */
static int ensure_encoded(vblip_server *s, entry *e, job *j) {
  pthread_mutex_lock(&s->mu);
  int state = e->state;
  if (state == V_FAILED) vs_job_fail(j, 422, e->error);
  pthread_mutex_unlock(&s->mu);
  if (state == V_READY) return 0;
  if (state == V_FAILED) return -1;
  double t0 = now_ms();
  vblip_video v;
  memset(&v, 0, sizeof v);
  int rc = vblip_video_load(s->m, e->path, &s->o.sampling, &v);
  int unreadable = rc != 0; /* the client's file (422); what fails after it is the server's */
  if (rc == 0) rc = vblip_video_encode(s->m, &v);
  int T = v.n_frames, S = v.image_size;
  unsigned char **thumbs = NULL;
  size_t *lens = NULL;
  int64_t *idx = NULL;
  double *times = NULL;
  if (rc == 0) {
    thumbs = calloc((size_t)T, sizeof *thumbs);
    lens = calloc((size_t)T, sizeof *lens);
    idx = malloc((size_t)T * sizeof *idx);
    times = malloc((size_t)T * sizeof *times);
    if (!thumbs || !lens || !idx || !times) rc = vb_error("out of memory");
    int factor = S >= 160 ? 2 : 1;
    for (int i = 0; rc == 0 && i < T; i++) {
      idx[i] = v.frame_index[i];
      times[i] = v.frame_time[i];
      if (v.frames)
        thumbs[i] = vs_bmp_encode(v.frames + (size_t)i * S * S * 3, S, S, factor, &lens[i]);
    }
    /* generation needs only the projected query tokens */
    free(v.pixel_values), v.pixel_values = NULL;
    free(v.vision), v.vision = NULL;
    free(v.qformer), v.qformer = NULL;
    free(v.frames), v.frames = NULL;
  }
  const char *err = rc == 0 ? NULL : vblip_last_error();
  pthread_mutex_lock(&s->mu);
  if (rc == 0) {
    e->video = v;
    e->n_frames = T;
    e->frame_index = idx;
    e->frame_time = times;
    e->thumbs = thumbs;
    e->thumb_len = lens;
    e->state = V_READY;
    j->ms_encode = now_ms() - t0;
  } else if (!unreadable) { /* encoding failed (memory?): the video may be tried again */
    vs_job_fail(j, 500, err && *err ? err : "cannot encode the video");
  } else {
    e->state = V_FAILED;
    /* the decoder names the file: show the client its own name, never the server's path */
    e->error = hide_path(err && *err ? err : "cannot read the video", e->path, e->name);
    vs_job_fail(j, 422, e->error ? e->error : "cannot read the video");
  }
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) {
    vblip_video_free(&v);
    if (thumbs)
      for (int i = 0; i < T; i++)
        free(thumbs[i]);
    free(thumbs);
    free(lens);
    free(idx);
    free(times);
  }
  return rc;
}

typedef struct {
  vblip_server *s;
  job *j;
  int leading; /* still dropping leading whitespace */
} piece_ctx;

/* locked: with stop strings, sends what can no longer become part of one; 1 when a stop
 * string has come (the answer ends before it) */
static int stop_scan_piece(vblip_server *s, job *j, const char *piece) {
  if (vs_buf_puts(&j->text, piece) != 0) return 0;
  int hit;
  size_t safe = vs_stops_scan(&j->oa.stops, j->text.data, j->text.len, &hit);
  size_t sent = j->streamed.len;
  if (safe > sent) {
    char *add = strndup(j->text.data + sent, safe - sent);
    if (add) vs_emit_piece(s, j, add);
    free(add);
  }
  j->stop_hit = hit;
  return hit;
}

static int on_piece(void *user, const char *piece) {
  piece_ctx *c = user;
  vblip_server *s = c->s;
  if (s->test_delay_ms > 0) sleep_ms(s->test_delay_ms);
  pthread_mutex_lock(&s->mu);
  int stop = c->j->cancelled || s->stopping;
  if (!stop) {
    if (c->leading) {
      while (*piece && isspace((unsigned char)*piece))
        piece++;
      if (*piece) c->leading = 0;
    }
    if (c->j->oa.stops.n)
      stop = stop_scan_piece(s, c->j, piece);
    else
      vs_emit_piece(s, c->j, piece);
  }
  pthread_mutex_unlock(&s->mu);
  return stop;
}

/* The input of items, their videos encoded (and immutable from then on); NULL with the
 * library's error. */
vblip_input *vs_items_input(const chat_item *items, int n) {
  vblip_input *in = vblip_input_new();
  int rc = in ? 0 : vb_error("out of memory");
  for (int i = 0; rc == 0 && i < n; i++)
    rc = items[i].e ? vblip_input_add_video(in, &items[i].e->video)
                    : vblip_input_add_text(in, items[i].text);
  if (rc != 0) {
    vblip_input_free(in);
    return NULL;
  }
  return in;
}

/* The positions the input takes as the model lays it out, tokenized only up to the
 * model's limit (the tokenizer is thread-safe). 0, or -1 with the library's error. */
int vs_input_positions(vblip_server *s, const vblip_input *in, size_t *n) {
  int32_t *ids = NULL;
  uint8_t *mask = NULL;
  int rc = vblip_input_ids(s->m, in, &ids, &mask, n);
  free(ids);
  free(mask);
  return rc;
}

/* The worker only: the job's input, its videos encoded; NULL when the job failed. */
static vblip_input *job_input(vblip_server *s, job *j) {
  for (int i = 0; i < j->n_items; i++)
    if (j->items[i].e && ensure_encoded(s, j->items[i].e, j) != 0) return NULL;
  vblip_input *in = vs_items_input(j->items, j->n_items);
  size_t n_ids = 0;
  int rc = in ? vs_input_positions(s, in, &n_ids) : -1;
  /* an input with no room left for an answer is the client's to shorten */
  if (rc == 0 && s->info.max_positions > 0 && n_ids >= (size_t)s->info.max_positions)
    rc = vb_error("the conversation is %zu positions; the model takes at most %d", n_ids,
                  s->info.max_positions - 1);
  pthread_mutex_lock(&s->mu);
  if (rc != 0)
    vs_job_fail(j, 400, vblip_last_error());
  else
    j->n_prompt_tokens = (int)n_ids;
  pthread_mutex_unlock(&s->mu);
  if (rc != 0) {
    vblip_input_free(in);
    return NULL;
  }
  return in;
}

static void run_score(vblip_server *s, job *j) {
  vblip_input *in = job_input(s, j);
  if (!in) return;
  vblip_score *sc = calloc((size_t)j->n_cands, sizeof *sc);
  double *ll = calloc((size_t)j->n_cands, sizeof *ll);
  int *nt = calloc((size_t)j->n_cands, sizeof *nt);
  double t0 = now_ms();
  int rc = sc && ll && nt ? vblip_score_candidates(s->m, in, (const char *const *)j->cands,
                                                   (size_t)j->n_cands, sc)
                          : vb_error("out of memory");
  vblip_input_free(in);
  pthread_mutex_lock(&s->mu);
  j->ms_generate = now_ms() - t0;
  if (rc != 0) { /* a candidate the model cannot take is the client's to fix */
    vs_job_fail(j, vblip_last_error_kind() == VBLIP_ERROR_INPUT ? 400 : 500, vblip_last_error());
  } else {
    for (int i = 0; i < j->n_cands; i++) {
      ll[i] = sc[i].mean_log_likelihood;
      nt[i] = sc[i].n_tokens;
      vblip_score_free(&sc[i]);
    }
    j->cand_ll = ll;
    j->cand_tokens = nt;
    ll = NULL;
    nt = NULL;
  }
  pthread_mutex_unlock(&s->mu);
  free(sc);
  free(ll);
  free(nt);
}

static void run_chat(vblip_server *s, job *j) {
  vblip_input *in = job_input(s, j);
  if (!in) return;
  piece_ctx ctx = {s, j, 1};
  vblip_answer a;
  double t0 = now_ms();
  int rc = vblip_generate_input(s->m, in, &j->gen, on_piece, &ctx, &a);
  double ms = now_ms() - t0;
  vblip_input_free(in);
  if (rc != 0) {
    /* the request's fault (a prompt the model cannot take) or the server's */
    int status = vblip_last_error_kind() == VBLIP_ERROR_INPUT ? 400 : 500;
    pthread_mutex_lock(&s->mu);
    vs_job_fail(j, status, vblip_last_error());
    pthread_mutex_unlock(&s->mu);
    return;
  }
  /* a stop string (seen while streaming, or in beam search's whole text) ends the answer
   * where it starts, without the post-processing's final period */
  char *answer = NULL;
  if (j->stop_hit) { /* the worker alone writes these */
    answer = strdup(j->streamed.data ? j->streamed.data : "");
  } else if (j->oa.stops.n) {
    const char *t = a.text ? a.text : "";
    while (*t && isspace((unsigned char)*t))
      t++;
    int hit;
    size_t cut = vs_stops_scan(&j->oa.stops, t, strlen(t), &hit);
    if (hit) {
      answer = strndup(t, cut);
      pthread_mutex_lock(&s->mu);
      j->stop_hit = 1;
      pthread_mutex_unlock(&s->mu);
    }
  }
  if (!j->stop_hit) answer = vblip_postprocess(a.text ? a.text : "");
  pthread_mutex_lock(&s->mu);
  j->ms_generate = ms;
  j->raw = a.text;
  a.text = NULL;
  j->answer = answer;
  j->n_tokens = a.n_tokens;
  j->truncated = a.n_tokens >= j->gen.max_new_tokens;
  if (!answer)
    vs_job_fail(j, 500, "out of memory");
  else if (j->cancelled || s->stopping)
    vs_job_fail(j, 503, "cancelled");
  else {
    /* the pieces lack the post-processing's final touch (and beam search sends none):
     * send what is missing so that the pieces add up to the answer */
    size_t sent = j->streamed.len;
    if (sent <= strlen(answer) &&
        strncmp(answer, j->streamed.data ? j->streamed.data : "", sent) == 0)
      vs_emit_piece(s, j, answer + sent);
  }
  pthread_mutex_unlock(&s->mu);
  vblip_answer_free(&a);
}

static int on_narration_window(void *user, const vblip_narration_window *w) {
  piece_ctx *c = user;
  vblip_server *s = c->s;
  job *j = c->j;
  if (s->test_delay_ms > 0) sleep_ms(s->test_delay_ms);
  char *text = vblip_postprocess(w->answer && w->answer->text ? w->answer->text : "");
  pthread_mutex_lock(&s->mu);
  int stop = j->cancelled || s->stopping || !text;
  if (!stop) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", w->index);
    cJSON_AddNumberToObject(o, "start", w->start_sec);
    cJSON_AddNumberToObject(o, "end", w->end_sec);
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddNumberToObject(o, "skipped_before", w->skipped_before);
    cJSON_AddNumberToObject(o, "lag", w->lag_sec);
    cJSON_AddNumberToObject(o, "vision_frames", w->vision_frames);
    vs_sse_event(j, "window", o);
    cJSON_Delete(o);
    vb_cue done;
    int got = vb_cues_add(&j->merger, w->index, w->start_sec, w->end_sec, text, w->skipped_before,
                          w->lag_sec, &done);
    if (got < 0) vs_job_fail(j, 500, "out of memory"), stop = 1;
    if (got > 0) {
      vs_emit_cue(j, &done);
      vb_cue_free(&done);
    }
    j->nar->n_windows++;
    pthread_cond_broadcast(&j->cv);
  }
  if (!text) vs_job_fail(j, 500, "out of memory");
  pthread_mutex_unlock(&s->mu);
  free(text);
  return stop;
}

static void run_narrate(vblip_server *s, job *j) {
  piece_ctx ctx = {s, j, 0};
  vblip_narration_stats st;
  memset(&st, 0, sizeof st);
  j->merger.merge = j->nmerge;
  const char *prompt = j->prompt ? j->prompt : "";
  int rc =
      vblip_narrate(s->m, j->source, prompt, &j->nopts, &j->gen, on_narration_window, &ctx, &st);
  pthread_mutex_lock(&s->mu);
  if (rc != 0) {
    /* the client's video (unreadable, shorter than a window) or prompt: 422 / 400 */
    const char *err = vblip_last_error();
    char *msg = hide_path(err && *err ? err : "cannot narrate the video", j->e ? j->e->path : "",
                          j->e ? j->e->name : NULL);
    /* what fails in the narration is the video's reading (or the prompt): the client's to
     * fix, as an upload that cannot be decoded is; running out of memory is the server's */
    int ours =
        !msg || (strstr(msg, "out of memory") && vblip_last_error_kind() != VBLIP_ERROR_INPUT);
    vs_job_fail(j, ours ? 500 : 422, msg ? msg : "out of memory");
    free(msg);
  } else if (!j->cancelled && !s->stopping) {
    vb_cue last;
    if (vb_cues_finish(&j->merger, &last)) {
      vs_emit_cue(j, &last);
      vb_cue_free(&last);
    }
    j->nar->stats = st;
  }
  pthread_mutex_unlock(&s->mu);
}

void *vs_worker_main(void *arg) {
  vblip_server *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->stopping && s->q_count == 0)
      pthread_cond_wait(&s->work_cv, &s->mu);
    if (s->stopping) break;
    job *j = vs_queue_take_fair(s);
    j->queued = 0;
    j->started = 1;
    j->ms_queue = now_ms() - j->t_enqueue;
    s->running = j;
    if (j->stream && j->format == FMT_NATIVE) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "queue_ms", j->ms_queue);
      if (j->nar) cJSON_AddStringToObject(o, "id", j->nar->id);
      vs_sse_event(j, "start", o);
      cJSON_Delete(o);
      pthread_cond_broadcast(&j->cv);
    }
    int cancelled = j->cancelled;
    pthread_mutex_unlock(&s->mu);
    if (s->test_delay_ms > 0 && !cancelled) sleep_ms(s->test_delay_ms);
    if (!cancelled) {
      if (j->kind == JOB_ENCODE)
        ensure_encoded(s, j->e, j);
      else if (j->kind == JOB_SCORE)
        run_score(s, j);
      else if (j->kind == JOB_NARRATE)
        run_narrate(s, j);
      else
        run_chat(s, j);
    }
    pthread_mutex_lock(&s->mu);
    if (j->cancelled) vs_job_fail(j, 503, "cancelled");
    if (j->error)
      vs_emit_error_event(s, j);
    else if (j->kind == JOB_CHAT)
      vs_emit_done(s, j);
    else if (j->kind == JOB_NARRATE)
      vs_emit_narration_done(j);
    if (j->nar) {
      j->nar->done = 1;
      j->nar->failed = j->error != NULL;
      j->nar->cancelled = j->cancelled;
    }
    j->done = 1;
    s->running = NULL;
    pthread_cond_broadcast(&j->cv);
    vs_job_release(s, j);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}
