/* The vision encoder's per-op time breakdown (profile.h). */
#include "kernels/profile.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int g_on = -1;
static double g_ms[VB_PROF_CLASSES];
static _Atomic int g_product = VB_PROF_QKV;

int vb_prof_on(void) {
  int v = atomic_load_explicit(&g_on, memory_order_relaxed);
  if (v < 0) {
    const char *e = getenv("VBLIP_PROFILE");
    v = e && e[0] && strcmp(e, "0") != 0;
    atomic_store_explicit(&g_on, v, memory_order_relaxed);
  }
  return v;
}

void vb_prof_reset(void) {
#pragma omp critical(vb_prof)
  memset(g_ms, 0, sizeof g_ms);
}

void vb_prof_add(vb_prof_class c, double ms) {
  if (c < 0 || c >= VB_PROF_CLASSES) return;
#pragma omp critical(vb_prof)
  g_ms[c] += ms;
}

double vb_prof_total(void) {
  double sum = 0;
#pragma omp critical(vb_prof)
  for (int c = 0; c < VB_PROF_CLASSES; c++)
    sum += g_ms[c];
  return sum;
}

void vb_prof_set_product(vb_prof_class c) {
  atomic_store_explicit(&g_product, (int)c, memory_order_relaxed);
}

vb_prof_class vb_prof_product(void) {
  return (vb_prof_class)atomic_load_explicit(&g_product, memory_order_relaxed);
}

const char *vb_prof_name(vb_prof_class c) {
  static const char *const names[VB_PROF_CLASSES] = {
      "patch embedding",   "layernorm",         "qkv product",
      "proj product",      "fc1 product",       "fc2 product",
      "activation prep",   "output stage",      "gelu",
      "thread idle",       "attention pack",    "attention products",
      "attention softmax", "attention (other)", "other"};
  return c >= 0 && c < VB_PROF_CLASSES ? names[c] : "?";
}

void vb_prof_print(const char *title, double total_ms) {
  double sum = 0;
  for (int c = 0; c < VB_PROF_CLASSES; c++)
    sum += g_ms[c];
  fprintf(stderr, "profile: %s: total %.3f ms (classes sum to %.3f)\n", title, total_ms, sum);
  for (int c = 0; c < VB_PROF_CLASSES; c++)
    fprintf(stderr, "profile:   %-20s %10.3f ms %5.1f%%\n", vb_prof_name(c), g_ms[c],
            total_ms > 0 ? 100 * g_ms[c] / total_ms : 0.0);
}
