/* Internal: a per-op time breakdown of the vision encoder (VBLIP_PROFILE=1).
 * Classes are charged in wall-clock milliseconds of the calling (master)
 * thread, except where a parallel region splits its wall time between
 * classes: there each thread's time in a class is summed and divided by the
 * thread count (vb_prof_add_threads), and what the threads spent waiting for
 * the slowest one at the region's end is charged to VB_PROF_IDLE. Relative
 * fractions within one run are what to read; absolute times move with the
 * machine's load. */
#ifndef VBLIP_KERNELS_PROFILE_H
#define VBLIP_KERNELS_PROFILE_H

typedef enum {
  VB_PROF_PATCH = 0, /* patch embedding, class token, positions */
  VB_PROF_LAYERNORM,
  VB_PROF_QKV, /* the products' core time, per layer kind */
  VB_PROF_PROJ,
  VB_PROF_FC1,
  VB_PROF_FC2,
  VB_PROF_ACT_PREP,    /* activations rounded to bf16 / quantized to int8 (and copies) */
  VB_PROF_OUTPUT,      /* output stage: scales, bias, residual add, bf16 / f32 store */
  VB_PROF_GELU,        /* fc1's GELU (portable output stage; AVX-512: inside OUTPUT) */
  VB_PROF_IDLE,        /* threads waiting at the end of a product's parallel region */
  VB_PROF_ATT_PACK,    /* attention: Q, K, V rounded / packed for the tiles, output copied */
  VB_PROF_ATT_PRODUCT, /* attention: Q K^T and P V */
  VB_PROF_ATT_SOFTMAX, /* attention: softmax and P rounded */
  VB_PROF_ATTENTION,   /* attention off the tiles (f32), or what the split above missed */
  VB_PROF_OTHER,       /* the rest of the forward pass (residual adds off the tiles, ...) */
  VB_PROF_CLASSES
} vb_prof_class;

/* Whether VBLIP_PROFILE is set (non-empty, not "0"); read once. */
int vb_prof_on(void);
void vb_prof_reset(void);
/* Adds ms to a class (any thread). */
void vb_prof_add(vb_prof_class c, double ms);
/* The sum over all classes so far (a section charges what its callees did
 * not: its wall time less the growth of this sum). */
double vb_prof_total(void);
/* The product class charged by the next tile products (the caller's layer kind). */
void vb_prof_set_product(vb_prof_class c);
vb_prof_class vb_prof_product(void);
const char *vb_prof_name(vb_prof_class c);
/* Prints the breakdown (ms, fraction of total) to stderr under a title. */
void vb_prof_print(const char *title, double total_ms);

#endif
