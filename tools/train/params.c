#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "train/train.h"

int tr_param_decays(const char *name) {
  if (strstr(name, "bias")) return 0;
  /* module names of the LayerNorms among the trained tensors */
  if (strstr(name, ".LayerNorm.") || strstr(name, ".layernorm.") || strstr(name, "layer_norm."))
    return 0;
  return 1;
}

int tr_params_add(tr_params *ps, vb_weights *w, const char *name, float **data, float **grad,
                  int ndim, int64_t d0, int64_t d1, int64_t d2) {
  const float *src = ndim == 1   ? vb_weights_f32(w, name, 1, d0)
                     : ndim == 2 ? vb_weights_f32(w, name, 2, d0, d1)
                                 : vb_weights_f32(w, name, 3, d0, d1, d2);
  if (!src) return -1;
  if (ps->n == ps->cap) {
    int cap = ps->cap ? ps->cap * 2 : 64;
    tr_param *p = vb_realloc(ps->p, (size_t)cap * sizeof *p);
    if (!p) return -1;
    ps->p = p;
    ps->cap = cap;
  }
  tr_param *p = &ps->p[ps->n];
  memset(p, 0, sizeof *p);
  p->ndim = ndim;
  int64_t dims[3] = {d0, d1, d2};
  p->n = 1;
  for (int i = 0; i < ndim; i++) {
    p->shape[i] = dims[i];
    p->n *= (size_t)dims[i];
  }
  p->name = vb_strdup(name);
  p->data = vb_malloc(p->n * sizeof(float));
  p->grad = vb_calloc(p->n, sizeof(float));
  p->m = vb_calloc(p->n, sizeof(float));
  p->v = vb_calloc(p->n, sizeof(float));
  if (!p->name || !p->data || !p->grad || !p->m || !p->v) {
    free(p->name);
    free(p->data);
    free(p->grad);
    free(p->m);
    free(p->v);
    return -1;
  }
  memcpy(p->data, src, p->n * sizeof(float));
  p->decay = tr_param_decays(name);
  ps->n++;
  *data = p->data;
  if (grad) *grad = p->grad;
  return 0;
}

int tr_params_linear(tr_params *ps, vb_weights *w, const char *prefix, int out, int in, tr_lin *l) {
  char n[256];
  float *wd, *bd;
  memset(l, 0, sizeof *l);
  snprintf(n, sizeof n, "%s.weight", prefix);
  if (tr_params_add(ps, w, n, &wd, &l->gw, 2, out, in, 0)) return -1;
  snprintf(n, sizeof n, "%s.bias", prefix);
  if (tr_params_add(ps, w, n, &bd, &l->gb, 1, out, 0, 0)) return -1;
  l->w = wd;
  l->b = bd;
  l->out = out;
  l->in = in;
  return 0;
}

tr_param *tr_params_find(const tr_params *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (strcmp(ps->p[i].name, name) == 0) return &ps->p[i];
  return NULL;
}

void tr_params_zero_grad(tr_params *ps) {
  for (int i = 0; i < ps->n; i++) memset(ps->p[i].grad, 0, ps->p[i].n * sizeof(float));
}

void tr_params_free(tr_params *ps) {
  for (int i = 0; i < ps->n; i++) {
    free(ps->p[i].name);
    free(ps->p[i].data);
    free(ps->p[i].grad);
    free(ps->p[i].m);
    free(ps->p[i].v);
  }
  free(ps->p);
  memset(ps, 0, sizeof *ps);
}
