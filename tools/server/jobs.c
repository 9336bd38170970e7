/* Jobs: made by the request threads, queued (bounded), taken by the worker fairly
 * (the client served least recently first), waited for or cancelled when the client
 * goes away. Guarded by s->mu. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

job *vs_job_new(int kind) {
  job *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = kind;
  j->refs = 1;
  pthread_cond_init(&j->cv, NULL);
  return j;
}

/* locked */
void vs_job_release(vblip_server *s, job *j) {
  if (!j || --j->refs > 0) return;
  vs_entry_release(s, j->e);
  for (int i = 0; i < j->n_items; i++) {
    vs_entry_release(s, j->items[i].e);
    free(j->items[i].text);
  }
  free(j->items);
  for (int i = 0; i < j->n_cands; i++)
    free(j->cands[i]);
  free(j->cands);
  free(j->cand_ll);
  free(j->cand_tokens);
  pthread_cond_destroy(&j->cv);
  vs_buf_free(&j->out);
  vs_buf_free(&j->streamed);
  vs_buf_free(&j->text);
  vs_openai_extras_free(&j->oa);
  free(j->prompt);
  free(j->error);
  free(j->answer);
  free(j->raw);
  free(j->source);
  if (j->merger.has) vb_cue_free(&j->merger.open);
  vs_narration_release(s, j->nar);
  free(j);
}

/* locked: 0, or -1 when the queue is full or the server is stopping */
int vs_job_enqueue(vblip_server *s, job *j) {
  if (s->stopping || s->q_count >= s->q_cap) return -1;
  s->queue[(s->q_head + s->q_count) % s->q_cap] = j;
  s->q_count++;
  j->refs++;
  j->queued = 1;
  j->t_enqueue = now_ms();
  pthread_cond_signal(&s->work_cv);
  return 0;
}

/* locked: stops j (a disconnected client or shutdown): a waiting job leaves the
 * queue at once; a running one stops at its next piece of text. */
void vs_job_cancel(vblip_server *s, job *j) {
  j->cancelled = 1;
  if (j->queued && !j->started) {
    for (int k = 0; k < s->q_count; k++) {
      int at = (s->q_head + k) % s->q_cap;
      if (s->queue[at] != j) continue;
      for (int m = k; m < s->q_count - 1; m++)
        s->queue[(s->q_head + m) % s->q_cap] = s->queue[(s->q_head + m + 1) % s->q_cap];
      s->q_count--;
      j->queued = 0;
      if (!j->done) {
        vs_job_fail(j, 503, s->stopping ? "the server is shutting down" : "cancelled");
        vs_emit_error_event(s, j);
        j->done = 1;
      }
      pthread_cond_broadcast(&j->cv);
      vs_job_release(s, j);
      return;
    }
  }
}

void vs_job_fail(job *j, int status, const char *msg) {
  if (j->error) return;
  j->status = status;
  j->error = strdup(msg ? msg : "error");
}

/* locked: when client was last served (0: never, or forgotten) */
static uint64_t client_served(vblip_server *s, const char *client) {
  for (int i = 0; i < MAX_FAIR_CLIENTS; i++)
    if (s->clients[i].served && strcmp(s->clients[i].name, client) == 0)
      return s->clients[i].served;
  return 0;
}

/* locked: remembers that client is served now, forgetting the least recent one if full */
static void client_mark_served(vblip_server *s, const char *client) {
  int at = 0;
  for (int i = 0; i < MAX_FAIR_CLIENTS; i++) {
    if (s->clients[i].served && strcmp(s->clients[i].name, client) == 0) {
      at = i;
      break;
    }
    if (s->clients[i].served < s->clients[at].served) at = i;
  }
  snprintf(s->clients[at].name, sizeof s->clients[at].name, "%s", client);
  s->clients[at].served = ++s->serve_tick;
}

/* locked: takes the next job off the queue, fairly: the job of the client served least
 * recently (so one client's burst cannot keep others waiting behind it), the oldest of
 * that client's; the queue keeps its order otherwise. */
job *vs_queue_take_fair(vblip_server *s) {
  int best = 0;
  uint64_t best_served = UINT64_MAX;
  for (int k = 0; k < s->q_count; k++) {
    uint64_t t = client_served(s, s->queue[(s->q_head + k) % s->q_cap]->client);
    if (t < best_served) best_served = t, best = k;
  }
  job *j = s->queue[(s->q_head + best) % s->q_cap];
  for (int m = best; m > 0; m--) /* close the gap: the jobs before it move up one place */
    s->queue[(s->q_head + m) % s->q_cap] = s->queue[(s->q_head + m - 1) % s->q_cap];
  s->q_head = (s->q_head + 1) % s->q_cap;
  s->q_count--;
  client_mark_served(s, j->client);
  return j;
}

/* Waits for j; cancels it when the client goes away or the server stops. */
void vs_wait_job(vblip_server *s, job *j, struct MHD_Connection *c) {
  pthread_mutex_lock(&s->mu);
  while (!j->done) {
    struct timespec ts;
    deadline_in(&ts, 200);
    pthread_cond_timedwait(&j->cv, &s->mu, &ts);
    if (j->done) break;
    if (s->stopping || (c && vs_peer_gone(c))) {
      vs_job_cancel(s, j);
      if (s->stopping && !j->done) {
        vs_job_fail(j, 503, "the server is shutting down");
        break;
      }
    }
  }
  pthread_mutex_unlock(&s->mu);
}

/* Encodes e in the worker (if not done yet). 0, or an HTTP status with msg. */
int vs_encode_entry(vblip_server *s, entry *e, struct MHD_Connection *c, char *msg, size_t cap) {
  pthread_mutex_lock(&s->mu);
  if (e->state == V_READY) {
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  if (e->state == V_FAILED) {
    snprintf(msg, cap, "%s", e->error ? e->error : "cannot read the video");
    pthread_mutex_unlock(&s->mu);
    return 422;
  }
  job *j = vs_job_new(JOB_ENCODE);
  if (!j) {
    pthread_mutex_unlock(&s->mu);
    snprintf(msg, cap, "out of memory");
    return 500;
  }
  j->e = e;
  e->refs++;
  if (vs_tl_req) snprintf(j->client, sizeof j->client, "%s", vs_tl_req->client_group);
  if (vs_job_enqueue(s, j) != 0) {
    snprintf(msg, cap,
             s->stopping ? "the server is shutting down"
                         : "the server is busy: too many requests waiting");
    vs_job_release(s, j);
    pthread_mutex_unlock(&s->mu);
    return 503;
  }
  pthread_mutex_unlock(&s->mu);
  vs_wait_job(s, j, c);
  pthread_mutex_lock(&s->mu);
  int status = 0;
  if (j->error) {
    status = j->status ? j->status : 500;
    snprintf(msg, cap, "%s", j->error);
  }
  vs_job_release(s, j);
  pthread_mutex_unlock(&s->mu);
  return status;
}
