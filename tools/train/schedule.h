/* The Hugging Face Trainer's bookkeeping as VideoBLIP's training ran under it
 * (tests/fixtures/training/README.md): learning-rate schedules, the number of optimizer
 * steps, the logged loss, and which checkpoints a save keeps. */
#ifndef VBLIP_TRAIN_SCHEDULE_H
#define VBLIP_TRAIN_SCHEDULE_H

typedef enum {
  VB_SCHED_LINEAR,               /* warmup, then linear decay to 0 at the last step */
  VB_SCHED_COSINE,               /* warmup, then half a cosine down to 0 */
  VB_SCHED_CONSTANT_WITH_WARMUP, /* warmup, then constant */
  VB_SCHED_CONSTANT,             /* no warmup */
} vb_sched_kind;

/* "linear", "cosine", "constant_with_warmup", "constant"; -1 for anything else. */
int vb_sched_parse(const char *name, vb_sched_kind *out);
/* m(s): the learning rate is base * m(s) after s scheduler steps. Optimizer step k
 * (1-based) uses m(k - 1). */
double vb_lr_multiplier(vb_sched_kind kind, long s, long warmup, long total);
/* warmup_steps if > 0, else ceil(total * warmup_ratio). */
long vb_warmup_steps(long warmup_steps, double warmup_ratio, long total);

typedef struct {
  long len_dataloader;    /* micro-batches per epoch: ceil(n / batch) */
  long updates_per_epoch; /* max(len_dataloader / grad_accum, 1) */
  long total_steps;       /* max_steps if > 0, else ceil(epochs * updates_per_epoch) */
  long epochs;            /* epochs started at most */
} vb_train_plan;

void vb_train_plan_make(long n_examples, long batch, long grad_accum, double epochs, long max_steps,
                        vb_train_plan *p);
/* Whether the micro-batch that brought the running counter (never reset between epochs)
 * to `counter` ends an optimizer window; batch_index is its place in its epoch. */
int vb_train_window_ends(long counter, long grad_accum, long batch_index, long len_dataloader);

/* The logged training loss: a float32 accumulator of loss / grad_accum per micro-batch
 * (a NaN or inf loss adds the running mean instead); a log takes its mean over the steps
 * since the last log, rounded to 4 decimals. */
typedef struct {
  float tr_loss;
  double logged_total; /* every tr_loss taken by a log */
  long last_logged_step;
} vb_loss_log;

void vb_loss_log_add(vb_loss_log *l, double loss, long grad_accum, long global_step);
double vb_loss_log_take(vb_loss_log *l, long global_step);
/* train_loss at the end: (logged_total + tr_loss) / global_step. */
double vb_loss_log_final(const vb_loss_log *l, long global_step);

/* Checkpoint rotation after a save. steps[0..n) are the kept checkpoints' steps, oldest
 * first; best is the best one's step or -1; limit > 0. Writes the steps to delete into
 * del and returns how many. With at_end, limit 1 keeps only the best. */
int vb_rotation_plan(const long *steps, int n, long best, long limit, int at_end, long *del);

#endif
