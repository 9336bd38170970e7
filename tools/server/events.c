/* What a job sends: Server-Sent Events (vblip's native events and OpenAI's chunks) and the
 * JSON of finished chats, scores and narration cues. Every function here runs with s->mu held. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/http_error.h"
#include "server/narrate_args.h"
#include "server/server_internal.h"

/* locked */
void vs_sse_event(job *j, const char *event, cJSON *data) {
  char *txt = cJSON_PrintUnformatted(data);
  if (!txt) return;
  if (event) {
    vs_buf_puts(&j->out, "event: ");
    vs_buf_puts(&j->out, event);
    vs_buf_puts(&j->out, "\n");
  }
  vs_buf_puts(&j->out, "data: ");
  vs_buf_puts(&j->out, txt);
  vs_buf_puts(&j->out, "\n\n");
  free(txt);
}

/* OpenAI's envelope of a chat answer (a chunk or the whole): id, object, created, model and
 * "choices" holding one choice, index 0, returned in *choice for its fields */
static cJSON *oa_envelope(vblip_server *s, job *j, const char *object, cJSON **choice) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", j->oa_id);
  cJSON_AddStringToObject(o, "object", object);
  cJSON_AddNumberToObject(o, "created", (double)j->created);
  cJSON_AddStringToObject(o, "model", s->model_name);
  cJSON *choices = cJSON_AddArrayToObject(o, "choices");
  *choice = cJSON_CreateObject();
  cJSON_AddNumberToObject(*choice, "index", 0);
  cJSON_AddItemToArray(choices, *choice);
  return o;
}

cJSON *vs_oa_chunk(vblip_server *s, job *j, const char *role, const char *content,
                   const char *finish) {
  cJSON *c;
  cJSON *o = oa_envelope(s, j, "chat.completion.chunk", &c);
  cJSON *delta = cJSON_AddObjectToObject(c, "delta");
  if (role) cJSON_AddStringToObject(delta, "role", role);
  if (content) cJSON_AddStringToObject(delta, "content", content);
  if (finish)
    cJSON_AddStringToObject(c, "finish_reason", finish);
  else
    cJSON_AddNullToObject(c, "finish_reason");
  if (j->oa.include_usage) cJSON_AddNullToObject(o, "usage"); /* the last chunk has it */
  return o;
}

/* locked */
void vs_emit_piece(vblip_server *s, job *j, const char *piece) {
  if (!*piece) return;
  vs_buf_puts(&j->streamed, piece);
  if (!j->stream) return;
  cJSON *o;
  if (j->format == FMT_OPENAI) {
    o = vs_oa_chunk(s, j, NULL, piece, NULL);
    vs_sse_event(j, NULL, o);
  } else {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", piece);
    vs_sse_event(j, "token", o);
  }
  cJSON_Delete(o);
  pthread_cond_broadcast(&j->cv);
}

static const char *finish_reason(const job *j) {
  return j->truncated && !j->stop_hit ? "length" : "stop";
}

/* "video_id" (the first video, for clients of the one-video API) and "video_ids" (all, in order) */
static void add_video_ids(cJSON *o, const job *j) {
  cJSON *ids = cJSON_CreateArray();
  const char *first = "";
  for (int i = 0; i < j->n_items; i++)
    if (j->items[i].e) {
      if (!*first) first = j->items[i].e->id;
      cJSON_AddItemToArray(ids, cJSON_CreateString(j->items[i].e->id));
    }
  cJSON_AddStringToObject(o, "video_id", first);
  cJSON_AddItemToObject(o, "video_ids", ids);
}

cJSON *vs_native_result(vblip_server *s, job *j) {
  (void)s;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "answer", j->answer ? j->answer : "");
  cJSON_AddStringToObject(o, "raw", j->raw ? j->raw : "");
  cJSON_AddStringToObject(o, "prompt", j->prompt ? j->prompt : "");
  add_video_ids(o, j);
  cJSON_AddNumberToObject(o, "tokens", j->n_tokens);
  cJSON_AddStringToObject(o, "finish_reason", finish_reason(j));
  cJSON *t = cJSON_AddObjectToObject(o, "timings_ms");
  cJSON_AddNumberToObject(t, "queue", j->ms_queue);
  cJSON_AddNumberToObject(t, "encode", j->ms_encode);
  cJSON_AddNumberToObject(t, "generate", j->ms_generate);
  return o;
}

static cJSON *oa_usage(job *j) {
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", j->n_prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", j->n_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", j->n_prompt_tokens + j->n_tokens);
  return u;
}

cJSON *vs_oa_result(vblip_server *s, job *j) {
  cJSON *c;
  cJSON *o = oa_envelope(s, j, "chat.completion", &c);
  cJSON *msg = cJSON_AddObjectToObject(c, "message");
  cJSON_AddStringToObject(msg, "role", "assistant");
  cJSON_AddStringToObject(msg, "content", j->answer ? j->answer : "");
  cJSON_AddStringToObject(c, "finish_reason", finish_reason(j));
  cJSON_AddItemToObject(o, "usage", oa_usage(j));
  cJSON *x = cJSON_AddObjectToObject(o, "vblip");
  add_video_ids(x, j);
  cJSON_AddStringToObject(x, "prompt", j->prompt ? j->prompt : "");
  return o;
}

/* locked */
void vs_emit_error_event(vblip_server *s, job *j) {
  (void)s;
  if (!j->stream) return;
  cJSON *o = cJSON_CreateObject();
  if (j->format == FMT_OPENAI) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", j->error ? j->error : "error");
    cJSON_AddStringToObject(e, "type", j->status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    const char *code = vs_error_code((unsigned)j->status);
    if (code)
      cJSON_AddStringToObject(e, "code", code);
    else
      cJSON_AddNullToObject(e, "code");
    vs_sse_event(j, NULL, o);
    vs_buf_puts(&j->out, "data: [DONE]\n\n");
  } else {
    cJSON_AddStringToObject(o, "error", j->error ? j->error : "error");
    cJSON_AddNumberToObject(o, "status", j->status);
    vs_sse_event(j, "error", o);
  }
  cJSON_Delete(o);
}

/* locked: the final events of a finished chat */
void vs_emit_done(vblip_server *s, job *j) {
  if (!j->stream) return;
  if (j->format == FMT_OPENAI) {
    cJSON *o = vs_oa_chunk(s, j, NULL, NULL, finish_reason(j));
    vs_sse_event(j, NULL, o);
    cJSON_Delete(o);
    if (j->oa.include_usage) { /* OpenAI's usage chunk: no choices */
      o = vs_oa_chunk(s, j, NULL, NULL, NULL);
      cJSON_ReplaceItemInObject(o, "choices", cJSON_CreateArray());
      cJSON_ReplaceItemInObject(o, "usage", oa_usage(j));
      vs_sse_event(j, NULL, o);
      cJSON_Delete(o);
    }
    vs_buf_puts(&j->out, "data: [DONE]\n\n");
  } else {
    cJSON *o = vs_native_result(s, j);
    vs_sse_event(j, "done", o);
    cJSON_Delete(o);
  }
}

/* A cue as narrate's JSON Lines write it: the fields every vblip JSONL result shares
 * (tools/dataset/jsonl_out.h: video, start, end, prompt, text; "video" the client's name for
 * the upload, or the URL, and left out when unnamed), then windows [first, last],
 * skipped_before, lag */
static cJSON *cue_json(const vb_cue *c, const char *video, const char *prompt) {
  cJSON *o = cJSON_CreateObject();
  if (video && *video) cJSON_AddStringToObject(o, "video", video);
  cJSON_AddNumberToObject(o, "start", c->start);
  cJSON_AddNumberToObject(o, "end", c->end);
  cJSON_AddStringToObject(o, "prompt", prompt ? prompt : "");
  cJSON_AddStringToObject(o, "text", c->text);
  cJSON *w = cJSON_AddArrayToObject(o, "windows");
  cJSON_AddItemToArray(w, cJSON_CreateNumber(c->first_window));
  cJSON_AddItemToArray(w, cJSON_CreateNumber(c->last_window));
  cJSON_AddNumberToObject(o, "skipped_before", c->skipped_before);
  cJSON_AddNumberToObject(o, "lag", c->lag);
  return o;
}

/* locked: a finished cue: into the narration's three documents and, as an event, to the
 * client (with the cue in the requested format) */
void vs_emit_cue(job *j, const vb_cue *c) {
  narration *n = j->nar;
  cJSON *o = cue_json(c, n->name, j->prompt);
  char *line = cJSON_PrintUnformatted(o);
  char *vtt = vb_cue_vtt(c), *srt = vb_cue_srt(c, n->n_cues + 1);
  int fail = !line || !vtt || !srt;
  if (!fail) {
    vs_buf_puts(&n->vtt, vtt);
    vs_buf_puts(&n->srt, srt);
    vs_buf_puts(&n->jsonl, line);
    vs_buf_puts(&n->jsonl, "\n");
    cJSON_AddNumberToObject(o, "index", n->n_cues);
    const char *as = j->nformat == VS_NF_VTT ? vtt : j->nformat == VS_NF_SRT ? srt : line;
    cJSON_AddStringToObject(o, "cue", as);
    vs_sse_event(j, "cue", o);
    n->n_cues++;
  }
  if (fail) vs_job_fail(j, 500, "out of memory");
  cJSON_Delete(o);
  free(line);
  free(vtt);
  free(srt);
}

/* locked: the last event of a finished narration */
void vs_emit_narration_done(job *j) {
  narration *n = j->nar;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", n->id);
  cJSON_AddNumberToObject(o, "windows", n->stats.windows);
  cJSON_AddNumberToObject(o, "skipped", n->stats.skipped);
  cJSON_AddNumberToObject(o, "cues", n->n_cues);
  cJSON_AddNumberToObject(o, "vision_frames", n->stats.vision_frames);
  cJSON_AddNumberToObject(o, "independent_frames", n->stats.windows * j->nopts.frames);
  cJSON_AddNumberToObject(o, "media_sec", n->stats.media_sec);
  cJSON_AddNumberToObject(o, "wall_ms", n->stats.wall_ms);
  cJSON_AddNumberToObject(o, "max_lag", n->stats.max_lag_sec);
  cJSON_AddNumberToObject(o, "real_time_factor",
                          n->stats.media_sec > 0 ? n->stats.wall_ms / 1000.0 / n->stats.media_sec
                                                 : 0);
  char url[96];
  cJSON *d = cJSON_AddObjectToObject(o, "downloads");
  static const char *const ext[] = {"vtt", "srt", "jsonl"};
  for (int i = 0; i < 3; i++) {
    snprintf(url, sizeof url, "/api/narrations/%s.%s", n->id, ext[i]);
    cJSON_AddStringToObject(d, ext[i], url);
  }
  cJSON_AddNumberToObject(o, "queue_ms", j->ms_queue);
  vs_sse_event(j, "done", o);
  cJSON_Delete(o);
}

/* locked: the candidates best first */
cJSON *vs_score_result(job *j) {
  cJSON *o = cJSON_CreateObject();
  cJSON *a = cJSON_AddArrayToObject(o, "scores");
  int *order = malloc((size_t)j->n_cands * sizeof *order);
  for (int i = 0; order && i < j->n_cands; i++) {
    int k = i; /* insertion: stable, so equal scores keep the request's order */
    while (k > 0 && j->cand_ll[order[k - 1]] < j->cand_ll[i]) {
      order[k] = order[k - 1];
      k--;
    }
    order[k] = i;
  }
  for (int i = 0; order && i < j->n_cands; i++) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "candidate", j->cands[order[i]]);
    cJSON_AddNumberToObject(c, "mean_log_likelihood", j->cand_ll[order[i]]);
    cJSON_AddNumberToObject(c, "tokens", j->cand_tokens[order[i]]);
    cJSON_AddNumberToObject(c, "index", order[i]);
    cJSON_AddItemToArray(a, c);
  }
  free(order);
  cJSON_AddStringToObject(o, "prompt", j->prompt ? j->prompt : "");
  add_video_ids(o, j);
  cJSON *t = cJSON_AddObjectToObject(o, "timings_ms");
  cJSON_AddNumberToObject(t, "queue", j->ms_queue);
  cJSON_AddNumberToObject(t, "score", j->ms_generate);
  return o;
}
