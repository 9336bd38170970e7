/* POST /api/chat, /v1/chat/completions (OpenAI) and /api/score: one conversation, parsed
 * (chat_request.c), its videos resolved and encoded, checked against the model's limits
 * before any answer starts; a chat answers it, a score ranks the candidates after it. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "runtime/json.h"
#include "server/chat_request.h"
#include "server/gen_settings.h"
#include "server/server_internal.h"

/* The input as one line: its texts, and "<video>" where a video stands. */
static char *render_items(const chat_item *items, int n) {
  vs_buf b = {0};
  vs_buf_puts(&b, "");
  for (int i = 0; i < n; i++) {
    if (b.len) vs_buf_puts(&b, " ");
    vs_buf_puts(&b, items[i].e ? "<video>" : items[i].text);
  }
  return b.data;
}

/* The input the worker will lay out, checked in the request's thread: its videos are
 * encoded by now. 0, or -1 with msg. */
static int check_input(vblip_server *s, const chat_item *items, int n, char *msg, size_t cap) {
  vblip_input *in = vs_items_input(items, n);
  size_t n_ids;
  int rc = in ? vs_input_positions(s, in, &n_ids) : -1;
  vblip_input_free(in);
  if (rc != 0) snprintf(msg, cap, "%s", vblip_last_error());
  return rc;
}

/* POST /api/chat, /v1/chat/completions (openai) and /api/score (score): the same
 * conversation; a chat answers it, a score ranks the request's candidates after it. */
enum MHD_Result vs_handle_chat(vblip_server *s, req *r, struct MHD_Connection *c, const char *url,
                               int openai) {
  char msg[1024];
  int score = strcmp(url, "/api/score") == 0;
  /* JSON is UTF-8 (RFC 8259): other bytes would reach the tokenizer, and the logs */
  const char *body = r->body.data ? r->body.data : "";
  size_t bad;
  if (!vb_utf8_valid(body, r->body.len, &bad))
    return vs_send_error(c, url, 400, "the request body is not valid UTF-8 (byte %zu)", bad);
  /* one JSON value and nothing after it */
  cJSON *root = vb_json_parse_unique(body, r->body.len, "the request body");
  if (!root) return vs_send_error(c, url, 400, "%s", vb_error_message());
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return vs_send_error(c, url, 400, "the request body must be a JSON object");
  }
  vblip_gen_params gen = s->o.gen;
  int stream = 0;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "stream");
  if (st && !cJSON_IsNull(st)) {
    if (!cJSON_IsBool(st)) {
      cJSON_Delete(root);
      return vs_send_error(c, url, 400, "'stream' must be true or false");
    }
    stream = cJSON_IsTrue(st);
  }
  if (score && stream) {
    cJSON_Delete(root);
    return vs_send_error(c, url, 400, "scores are not streamed");
  }
  vs_turns t;
  chat_item *items = NULL;
  int n_items = 0, status = 400;
  char *prompt = NULL;
  const char *lead[VS_MAX_CHAT_VIDEOS]; /* videos named outside the messages, in front */
  int n_lead = 0;
  vs_openai_extras oa;
  memset(&oa, 0, sizeof oa);
  char err_param[64] = ""; /* OpenAI's "param" of an error */
  const char *err_code = NULL;
  if (vs_parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), &t, msg, sizeof msg) !=
      0)
    goto fail;
  if (openai) {
    const char *param, *code;
    if (vs_openai_request(root, &gen, &oa, msg, sizeof msg, &param, &code) != 0) {
      snprintf(err_param, sizeof err_param, "%s", param ? param : "");
      err_code = code;
      goto fail;
    }
  }
  if (vs_parse_settings(cJSON_GetObjectItemCaseSensitive(root, "settings"), &gen, msg,
                        sizeof msg) != 0)
    goto fail;
  if (vs_lead_videos(root, lead, &n_lead, msg, sizeof msg) != 0) goto fail;
  if (vblip_model_layout(s->m) == VBLIP_LAYOUT_INTERLEAVED) {
    /* the conversation as it came: videos in front, then every message's text and videos */
    size_t n_videos = (size_t)n_lead;
    for (size_t i = 0; i < t.n_parts; i++)
      n_videos += t.parts[i].video != NULL;
    if (n_videos > VS_MAX_CHAT_VIDEOS) {
      snprintf(msg, sizeof msg, "%zu videos in one conversation; at most %d", n_videos,
               VS_MAX_CHAT_VIDEOS);
      goto fail;
    }
    items = calloc((size_t)n_lead + t.n_parts + 1, sizeof *items);
    if (!items) goto oom;
    for (int i = 0; i < n_lead; i++, n_items++)
      if (!(items[n_items].e = vs_resolve_video_url(s, lead[i], &status, msg, sizeof msg)))
        goto fail;
    for (size_t i = 0; i < t.n_parts; i++, n_items++) {
      if (t.parts[i].video) {
        if (!(items[n_items].e =
                  vs_resolve_video_url(s, t.parts[i].video, &status, msg, sizeof msg)))
          goto fail;
      } else if (!(items[n_items].text = strdup(t.parts[i].text))) {
        goto oom;
      }
    }
    prompt = render_items(items, n_items);
  } else {
    /* BLIP-2: one video (the last one named) and the demo's conversation prompt */
    const char *ref = t.last_video ? t.last_video : n_lead ? lead[n_lead - 1] : NULL;
    if (!ref) {
      snprintf(
          msg, sizeof msg,
          openai
              ? "no video: add a content part {\"type\": \"video_url\", \"video_url\": {\"url\": "
                "\"data:video/mp4;base64,...\" or an uploaded video id}} to a user message"
              : "missing field 'video_id' (upload the video with POST /api/videos first)");
      goto fail;
    }
    items = calloc(2, sizeof *items);
    if (!items) goto oom;
    if (!(items[0].e = vs_resolve_video_url(s, ref, &status, msg, sizeof msg))) goto fail;
    n_items = 1;
    prompt = vblip_chat_prompt(t.users, t.answers, t.n, t.message);
    if (!prompt || !(items[1].text = strdup(prompt))) goto oom;
    n_items = 2;
  }
  if (!prompt) goto oom;
  /* videos not encoded yet (new data: URLs) are checked before any answer starts */
  for (int i = 0; i < n_items; i++) {
    if (!items[i].e) continue;
    status = vs_encode_entry(s, items[i].e, c, msg, sizeof msg);
    if (status) {
      if (status == 422 && openai) {
        pthread_mutex_lock(&s->mu);
        vs_entry_unlist(s, items[i].e);
        pthread_mutex_unlock(&s->mu);
      }
      goto fail;
    }
  }
  /* an input the model cannot take (too long, text that is not UTF-8) is the client's
   * error, found before the answer starts (and before a stream's 200), tokenized only up
   * to the model's limit */
  if (check_input(s, items, n_items, msg, sizeof msg) != 0) {
    status = 400;
    goto fail;
  }
  job *j = vs_job_new(score ? JOB_SCORE : JOB_CHAT);
  if (!j) goto oom;
  if (score && vs_parse_candidates(cJSON_GetObjectItemCaseSensitive(root, "candidates"), &j->cands,
                                   &j->n_cands, msg, sizeof msg) != 0) {
    pthread_mutex_lock(&s->mu);
    vs_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    goto fail;
  }
  j->items = items;
  j->n_items = n_items;
  items = NULL;
  n_items = 0;
  j->prompt = prompt;
  prompt = NULL;
  vs_turns_free(&t);
  cJSON_Delete(root);
  root = NULL;
  j->gen = gen;
  snprintf(j->client, sizeof j->client, "%s", r->client_group);
  j->oa = oa; /* the job owns the stop strings now */
  memset(&oa, 0, sizeof oa);
  j->stream = stream;
  j->format = openai ? FMT_OPENAI : FMT_NATIVE;
  j->created = (long)time(NULL);
  char rnd[25];
  if (vs_random_hex(rnd, 12) != 0) snprintf(rnd, sizeof rnd, "%lx", (unsigned long)j->created);
  snprintf(j->oa_id, sizeof j->oa_id, "chatcmpl-%s", rnd);
  pthread_mutex_lock(&s->mu);
  if (stream && openai) {
    cJSON *o = vs_oa_chunk(s, j, "assistant", "", NULL);
    vs_sse_event(j, NULL, o);
    cJSON_Delete(o);
  }
  int qrc = vs_job_enqueue(s, j);
  int waiting = s->q_count, stopping = s->stopping;
  pthread_mutex_unlock(&s->mu);
  if (qrc != 0) {
    pthread_mutex_lock(&s->mu);
    vs_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return vs_send_not_queued(c, url, stopping, waiting);
  }
  if (stream) {
    struct MHD_Response *resp = vs_event_stream_response(s, j, r);
    return resp ? vs_queue_response(c, 200, resp, 0) : MHD_NO;
  }
  vs_wait_job(s, j, c);
  pthread_mutex_lock(&s->mu);
  cJSON *o = NULL;
  unsigned code = 200;
  if (j->error) {
    code = j->status ? (unsigned)j->status : 500;
    snprintf(msg, sizeof msg, "%s", j->error);
  } else {
    o = score ? vs_score_result(j) : openai ? vs_oa_result(s, j) : vs_native_result(s, j);
  }
  vs_job_release(s, j);
  pthread_mutex_unlock(&s->mu);
  if (!o) return vs_send_error(c, url, code, "%s", msg);
  return vs_send_json(c, 200, o);
oom:
  status = 500;
  snprintf(msg, sizeof msg, "out of memory");
fail:
  if (root) vs_turns_free(&t);
  cJSON_Delete(root);
  free(prompt);
  pthread_mutex_lock(&s->mu);
  for (int i = 0; i < n_items; i++) {
    vs_entry_release(s, items[i].e);
    free(items[i].text);
  }
  pthread_mutex_unlock(&s->mu);
  free(items);
  vs_openai_extras_free(&oa);
  return vs_send_error_param(c, url, (unsigned)status, err_param[0] ? err_param : NULL, err_code,
                             msg);
}
