/* onednn-matmul: oneDNN's bf16 matmul at the vision encoder's shapes, built
 * against oneDNN 2.x (Debian 12's 2.6, what vblip links) or 3.x (e.g. Intel's
 * PyPI wheels `onednn-cpu-gomp` + `onednn-devel-cpu-gomp`; see README's
 * Performance) with the same source: the alternative to vblip's own AMX tile
 * product, measured rather than assumed. Not part of vblip.
 *
 *   onednn-matmul [--frames T] [--dst bf16] [--repeat N]
 *
 * For each shape (ViT-g's qkv, proj, fc1, fc2 at M = T x 257, and 4096^3):
 * bf16 source, weights in the layout the primitive asks for (format_tag_any,
 * reordered once), f32 bias, f32 (or bf16) destination; prints the best of N
 * runs in TFLOP/s and the implementation oneDNN picked. */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vit_shapes.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    if ((x) != dnnl_success) {                                                                     \
      fprintf(stderr, "onednn-matmul: %s failed\n", #x);                                           \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

/* The two API generations differ in how descriptors are made. */
#if DNNL_VERSION_MAJOR >= 3
typedef dnnl_memory_desc_t md_t;
static md_t md_tag(int nd, const dnnl_dims_t d, dnnl_data_type_t t, dnnl_format_tag_t tag) {
  md_t m;
  CHECK(dnnl_memory_desc_create_with_tag(&m, nd, d, t, tag));
  return m;
}
static dnnl_primitive_desc_t matmul_pd(dnnl_engine_t e, md_t s, md_t w, md_t b, md_t d) {
  dnnl_primitive_desc_t pd;
  CHECK(dnnl_matmul_primitive_desc_create(&pd, e, s, w, b, d, NULL));
  return pd;
}
static md_t md_query(dnnl_primitive_desc_t pd, dnnl_query_t q) {
  md_t m;
  CHECK(dnnl_memory_desc_clone(&m, dnnl_primitive_desc_query_md(pd, q, 0)));
  return m;
}
#define MD(m) (m)
#else
typedef dnnl_memory_desc_t md_t;
static md_t md_tag(int nd, const dnnl_dims_t d, dnnl_data_type_t t, dnnl_format_tag_t tag) {
  md_t m;
  CHECK(dnnl_memory_desc_init_by_tag(&m, nd, d, t, tag));
  return m;
}
static dnnl_primitive_desc_t matmul_pd(dnnl_engine_t e, md_t s, md_t w, md_t b, md_t d) {
  dnnl_matmul_desc_t mm;
  CHECK(dnnl_matmul_desc_init(&mm, &s, &w, &b, &d));
  dnnl_primitive_desc_t pd;
  CHECK(dnnl_primitive_desc_create(&pd, &mm, NULL, e, NULL));
  return pd;
}
static md_t md_query(dnnl_primitive_desc_t pd, dnnl_query_t q) {
  return *dnnl_primitive_desc_query_md(pd, q, 0);
}
#define MD(m) (&(m))
#endif

int main(int argc, char **argv) {
  int T = 8, dst_bf16 = 0, repeat = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--frames") && i + 1 < argc)
      T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--dst") && i + 1 < argc)
      dst_bf16 = !strcmp(argv[++i], "bf16");
    else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
      repeat = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--frames T] [--dst f32|bf16] [--repeat N]\n", argv[0]);
      return 2;
    }
  }
#if defined(__x86_64__)
  syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */);
#endif
  const dnnl_version_t *v = dnnl_version();
  printf("oneDNN %d.%d.%d, %d frames, %s destination\n", v->major, v->minor, v->patch, T,
         dst_bf16 ? "bf16" : "f32");
  dnnl_engine_t eng;
  dnnl_stream_t st;
  CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  CHECK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
  vit_shape shapes[VIT_SHAPES];
  vit_shapes(T, shapes);
  double total_flop = 0, total_s = 0;
  for (int s = 0; s < VIT_SHAPES; s++) {
    int m = shapes[s].M, n = shapes[s].N, k = shapes[s].K;
    dnnl_dims_t sd = {m, k}, wd = {k, n}, bd = {1, n}, dd = {m, n};
    md_t smd = md_tag(2, sd, dnnl_bf16, dnnl_ab),
         wany = md_tag(2, wd, dnnl_bf16, dnnl_format_tag_any);
    md_t bmd = md_tag(2, bd, dnnl_f32, dnnl_ab),
         dmd = md_tag(2, dd, dst_bf16 ? dnnl_bf16 : dnnl_f32, dnnl_ab);
    dnnl_primitive_desc_t pd = matmul_pd(eng, smd, wany, bmd, dmd);
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    md_t wmd = md_query(pd, dnnl_query_weights_md);
    dnnl_primitive_t p;
    CHECK(dnnl_primitive_create(&p, pd));
    size_t wbytes = dnnl_memory_desc_get_size(MD(wmd));
    void *src = aligned_alloc(64, (size_t)m * k * 2),
         *w = aligned_alloc(64, (wbytes + 63) / 64 * 64);
    void *b = aligned_alloc(64, (size_t)n * 4), *d = aligned_alloc(64, (size_t)m * n * 4);
    memset(src, 0x3f, (size_t)m * k * 2); /* bf16 ~0.75: finite values, no denormals */
    memset(w, 0x3c, wbytes);
    memset(b, 0, (size_t)n * 4);
    dnnl_memory_t ms, mw, mb, mdst;
    CHECK(dnnl_memory_create(&ms, MD(smd), eng, src));
    CHECK(dnnl_memory_create(&mw, MD(wmd), eng, w));
    CHECK(dnnl_memory_create(&mb, MD(bmd), eng, b));
    CHECK(dnnl_memory_create(&mdst, MD(dmd), eng, d));
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, mdst}};
    double best = 1e30;
    for (int r = 0; r <= repeat; r++) { /* the first run is a warm-up */
      double t0 = now_s();
      CHECK(dnnl_primitive_execute(p, st, 4, args));
      CHECK(dnnl_stream_wait(st));
      double t = now_s() - t0;
      if (r > 0 && t < best) best = t;
    }
    double flop = 2.0 * m * n * k;
    printf("%-7s %5d x %5d x %5d  %-28s %6.2f TFLOP/s\n", shapes[s].name, m, n, k, impl,
           flop / best / 1e12);
    if (s < 4) total_flop += flop, total_s += best;
    dnnl_memory_destroy(ms), dnnl_memory_destroy(mw), dnnl_memory_destroy(mb),
        dnnl_memory_destroy(mdst);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
    free(src), free(w), free(b), free(d);
  }
  printf("ViT-g layer's four products together: %.2f TFLOP/s\n", total_flop / total_s / 1e12);
  dnnl_stream_destroy(st);
  dnnl_engine_destroy(eng);
  return 0;
}
