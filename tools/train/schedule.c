/* Formulas from transformers' optimization.py schedules and Trainer loop, restated in
 * tests/fixtures/training/README.md sections 1, 2, 5 and 6. */
#include "train/schedule.h"

#include <math.h>
#include <string.h>

int vb_sched_parse(const char *name, vb_sched_kind *out) {
  static const char *const names[] = {"linear", "cosine", "constant_with_warmup", "constant"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i])) {
      *out = (vb_sched_kind)i;
      return 0;
    }
  return -1;
}

static double max1(long x) {
  return x > 1 ? (double)x : 1.0;
}

double vb_lr_multiplier(vb_sched_kind kind, long s, long warmup, long total) {
  if (kind == VB_SCHED_CONSTANT) return 1.0;
  if (s < warmup) return (double)s / max1(warmup);
  switch (kind) {
  case VB_SCHED_LINEAR:
    return fmax(0.0, (double)(total - s) / max1(total - warmup));
  case VB_SCHED_COSINE: {
    double p = (double)(s - warmup) / max1(total - warmup);
    return fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * p)));
  }
  default:
    return 1.0;
  }
}

long vb_warmup_steps(long warmup_steps, double warmup_ratio, long total) {
  return warmup_steps > 0 ? warmup_steps : (long)ceil((double)total * warmup_ratio);
}

void vb_train_plan_make(long n_examples, long batch, long grad_accum, double epochs, long max_steps,
                        vb_train_plan *p) {
  p->len_dataloader = (n_examples + batch - 1) / batch;
  p->updates_per_epoch = p->len_dataloader / grad_accum;
  if (p->updates_per_epoch < 1) p->updates_per_epoch = 1;
  if (max_steps > 0) {
    p->total_steps = max_steps;
    p->epochs = max_steps / p->updates_per_epoch + (max_steps % p->updates_per_epoch > 0);
  } else {
    p->total_steps = (long)ceil(epochs * (double)p->updates_per_epoch);
    p->epochs = (long)ceil(epochs);
  }
}

int vb_train_window_ends(long counter, long grad_accum, long batch_index, long len_dataloader) {
  return counter % grad_accum == 0 ||
         (len_dataloader <= grad_accum && batch_index + 1 == len_dataloader);
}

void vb_loss_log_add(vb_loss_log *l, double loss, long grad_accum, long global_step) {
  float x = (float)loss / (float)grad_accum;
  if (isfinite(x))
    l->tr_loss += x;
  else
    l->tr_loss += l->tr_loss / (float)(1 + global_step - l->last_logged_step);
}

double vb_loss_log_take(vb_loss_log *l, long global_step) {
  double v = (double)l->tr_loss;
  long span = global_step - l->last_logged_step;
  double mean = span > 0 ? v / (double)span : v;
  l->logged_total += v;
  l->tr_loss = 0;
  l->last_logged_step = global_step;
  return nearbyint(mean * 1e4) / 1e4; /* Python round(): half to even */
}

double vb_loss_log_final(const vb_loss_log *l, long global_step) {
  return global_step > 0 ? (l->logged_total + (double)l->tr_loss) / (double)global_step : 0.0;
}

int vb_rotation_plan(const long *steps, int n, long best, long limit, int at_end, long *del) {
  long order[n > 0 ? n : 1];
  int bi = -1;
  for (int i = 0; i < n; i++) {
    order[i] = steps[i];
    if (steps[i] == best) bi = i;
  }
  int nd = 0;
  if (at_end) {
    if (limit == 1 && bi >= 0)
      for (int i = 0; i < n; i++)
        if (i != bi) del[nd++] = steps[i];
    return nd;
  }
  /* the best moves up by adjacent swaps until it is second to last */
  if (bi >= 0)
    for (int i = bi; i < n - 2; i++) {
      long x = order[i];
      order[i] = order[i + 1];
      order[i + 1] = x;
    }
  /* limit 1 keeps 2 while the best is not the newest, so that both survive */
  if (limit == 1 && bi >= 0 && bi != n - 1) limit = 2;
  for (int i = 0; i < n - limit; i++)
    del[nd++] = order[i];
  return nd;
}
