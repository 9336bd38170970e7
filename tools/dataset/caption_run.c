#include "dataset/caption_run.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

/* One input made ready on the decoding side: read, checked, decoded. */
typedef struct {
  int status; /* 1: an input, 0: the end of the list, -1: the list failed (error) */
  vb_input_item item;
  bool done;   /* already has a result */
  bool loaded; /* video holds the decoded frames */
  vblip_video video;
  char *error; /* this input failed, or (status -1) the list did */
} prepared;

static void prepared_free(prepared *p) {
  vb_input_item_free(&p->item);
  if (p->loaded) vblip_video_free(&p->video);
  free(p->error);
  memset(p, 0, sizeof *p);
}

typedef struct {
  vblip_model *m;
  vb_input_list *in;
  const vb_key_set *done;
  const vb_caption_run_opts *o;
} run_ctx;

/* Reads the next input and decodes its video (never touches the model's state). */
static void prepare(const run_ctx *c, prepared *p) {
  memset(p, 0, sizeof *p);
  p->status = vb_input_list_next(c->in, &p->item);
  if (p->status < 0) p->error = vb_strdup(vblip_last_error());
  if (p->status <= 0) return;
  vb_input_item *it = &p->item;
  if (c->done && c->done->n) {
    char *key = vb_input_key(it->id, it->video, it->start, it->end, it->line);
    p->done = key && vb_key_set_has(c->done, key);
    free(key);
  }
  if (p->done || it->error) return;
  vblip_sampling s = *c->o->sampling;
  if (it->start >= 0 || it->end >= 0) {
    if (s.mode != VBLIP_SAMPLE_UNIFORM) {
      p->error = vb_strdup("\"start\"/\"end\" need --sampling uniform");
      return;
    }
    if (it->start >= 0) s.start_sec = it->start;
    if (it->end >= 0) s.end_sec = it->end;
    if (s.end_sec >= 0 && s.end_sec <= s.start_sec) {
      char msg[128];
      snprintf(msg, sizeof msg, "the window's end (%g s) must be after its start (%g s)", s.end_sec,
               s.start_sec);
      p->error = vb_strdup(msg);
      return;
    }
  }
  if (vblip_video_load(c->m, it->video, &s, &p->video) == 0)
    p->loaded = true;
  else
    p->error = vb_strdup(vblip_last_error());
}

/* The result line's fields that describe the input. */
static cJSON *result_head(const vb_input_item *it, const char *prompt) {
  cJSON *r = cJSON_CreateObject();
  if (it->id) cJSON_AddItemToObject(r, "id", cJSON_Duplicate(it->id, 1));
  cJSON_AddNumberToObject(r, "line", (double)it->line);
  vb_jsonl_add_input(r, it->video, it->start, it->end,
                     it->video ? (it->prompt ? it->prompt : prompt) : NULL);
  return r;
}

/* Encodes and answers; the text (new string), or NULL with *error set. */
static char *answer(const run_ctx *c, prepared *p, char **error) {
  const char *prompt = p->item.prompt ? p->item.prompt : c->o->prompt;
  char *text = NULL;
  vblip_input *in = NULL;
  vblip_answer a = {0};
  int rc = vblip_video_encode(c->m, &p->video);
  if (rc == 0) rc = (in = vblip_input_new()) ? 0 : -1;
  if (rc == 0) rc = vblip_input_add_video(in, &p->video);
  if (rc == 0) rc = vblip_input_add_text(in, prompt);
  if (rc == 0) rc = vblip_generate_input(c->m, in, c->o->gen, NULL, NULL, &a);
  if (rc == 0) {
    text = c->o->raw ? strdup(a.text) : vblip_postprocess(a.text);
    if (!text) vb_error("out of memory");
  }
  if (!text) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", p->item.video, vblip_last_error());
    *error = vb_strdup(msg);
  }
  vblip_answer_free(&a);
  vblip_input_free(in);
  return text;
}

/* Answers one prepared input and writes its result; 0, or -1 when writing failed. */
static int finish(const run_ctx *c, prepared *p, vb_jsonl_out *out, vb_caption_run_stats *st) {
  if (p->done) {
    st->skipped++;
    return 0;
  }
  char *error = p->item.error ? vb_strdup(p->item.error) : p->error ? vb_strdup(p->error) : NULL;
  char *text = error ? NULL : answer(c, p, &error);
  cJSON *r = result_head(&p->item, c->o->prompt);
  if (text)
    cJSON_AddStringToObject(r, "text", text);
  else
    cJSON_AddStringToObject(r, "error", error ? error : "out of memory");
  int rc = vb_jsonl_write(out, r);
  cJSON_Delete(r);
  if (text)
    st->captioned++;
  else
    st->failed++;
  free(text);
  free(error);
  return rc;
}

/* ---- the prefetch queue: a ring of prepared inputs, filled in order by one thread ---- */

typedef struct {
  const run_ctx *c;
  prepared *ring;
  int cap, head, count;
  bool stop; /* the consumer gave up */
  pthread_mutex_t mu;
  pthread_cond_t not_full, not_empty;
} queue;

static void *producer(void *arg) {
  queue *q = arg;
  /* frame preprocessing runs OpenMP loops: one thread here, the cores stay the model's */
  omp_set_num_threads(1);
  for (;;) {
    prepared p;
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap && !q->stop)
      pthread_cond_wait(&q->not_full, &q->mu);
    bool stop = q->stop;
    pthread_mutex_unlock(&q->mu);
    if (stop) break;
    prepare(q->c, &p);
    pthread_mutex_lock(&q->mu);
    q->ring[(q->head + q->count) % q->cap] = p;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    if (p.status <= 0) break;
  }
  return NULL;
}

static void pop(queue *q, prepared *p) {
  pthread_mutex_lock(&q->mu);
  while (q->count == 0)
    pthread_cond_wait(&q->not_empty, &q->mu);
  *p = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->count--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->mu);
}

static void show_progress(const vb_caption_run_stats *st, double t0) {
  double s = (vb_now_ms() - t0) / 1000;
  long n = st->captioned + st->failed;
  fprintf(stderr, "\r\033[Kvblip: %ld done (%ld failed), %ld skipped, %.0f clips/hour", n,
          st->failed, st->skipped, s > 0 ? n * 3600.0 / s : 0.0);
  fflush(stderr);
}

int vb_caption_run(vblip_model *m, vb_input_list *in, const vb_key_set *done, vb_jsonl_out *out,
                   const vb_caption_run_opts *o, vb_caption_run_stats *stats) {
  run_ctx c = {m, in, done, o};
  vb_caption_run_stats st = {0};
  double t0 = vb_now_ms();
  int rc = 0;
  queue q = {.c = &c, .cap = o->prefetch};
  pthread_t thread;
  bool threaded = o->prefetch > 0;
  if (threaded) {
    q.ring = vb_calloc((size_t)q.cap, sizeof *q.ring);
    if (!q.ring) return -1;
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.not_full, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    if (pthread_create(&thread, NULL, producer, &q) != 0) {
      free(q.ring);
      return vb_error("cannot start the decoding thread");
    }
  }
  for (;;) {
    prepared p;
    if (threaded)
      pop(&q, &p);
    else
      prepare(&c, &p);
    if (p.status < 0) rc = vb_error("%s", p.error ? p.error : "reading the input list failed");
    if (p.status <= 0) {
      prepared_free(&p);
      break;
    }
    rc = finish(&c, &p, out, &st);
    prepared_free(&p);
    if (o->progress) show_progress(&st, t0);
    if (rc != 0) break;
  }
  if (threaded) {
    pthread_mutex_lock(&q.mu);
    q.stop = true;
    pthread_cond_signal(&q.not_full);
    pthread_mutex_unlock(&q.mu);
    pthread_join(thread, NULL);
    for (int i = 0; i < q.count; i++)
      prepared_free(&q.ring[(q.head + i) % q.cap]);
    free(q.ring);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.not_full);
    pthread_cond_destroy(&q.not_empty);
  }
  if (o->progress) fputc('\n', stderr);
  st.seconds = (vb_now_ms() - t0) / 1000;
  if (stats) *stats = st;
  return rc;
}
