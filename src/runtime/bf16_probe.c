/* Whether bf16 products beat f32 ones on this CPU, measured once.
 *
 * Why measure: AVX512-BF16 alone does not make bf16 fast. On AMD Zen 5
 * VDPBF16PS retires twice the flops of VFMADD231PS; on an Intel Xeon whose
 * AMX the hypervisor hides (or with VBLIP_NO_AMX=1) it retires half as many,
 * so oneDNN's bf16 matmul there ran the ViT-g 1.7x slower than f32 sgemm,
 * and less exactly. Which kind a CPU is shows in neither cpuid nor the
 * model name, so two register loops (12 independent chains each, no memory
 * traffic) are timed on the calling thread, alternating, best of three:
 * about 2 ms, once per process, only when a caller asks. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/cpu.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define CHAINS 12
#define STEPS 256

/* flops of `reps` x STEPS x CHAINS VFMADD231PS zmm (16 lanes, 2 flops) */
__attribute__((target("avx512f"), noinline)) static double fma_loop(int reps) {
  __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0x1p-30f);
  /* distinct starting values: identical chains would be merged into one */
  __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2),
         c3 = _mm512_set1_ps(3), c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5),
         c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7), c8 = _mm512_set1_ps(8),
         c9 = _mm512_set1_ps(9), c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
  for (int r = 0; r < reps; r++)
    for (int i = 0; i < STEPS; i++) {
      /* the asm keeps b opaque: the compiler can neither fold nor hoist the chains */
      __asm__ volatile("" : "+v"(b));
      c0 = _mm512_fmadd_ps(a, b, c0), c1 = _mm512_fmadd_ps(a, b, c1);
      c2 = _mm512_fmadd_ps(a, b, c2), c3 = _mm512_fmadd_ps(a, b, c3);
      c4 = _mm512_fmadd_ps(a, b, c4), c5 = _mm512_fmadd_ps(a, b, c5);
      c6 = _mm512_fmadd_ps(a, b, c6), c7 = _mm512_fmadd_ps(a, b, c7);
      c8 = _mm512_fmadd_ps(a, b, c8), c9 = _mm512_fmadd_ps(a, b, c9);
      c10 = _mm512_fmadd_ps(a, b, c10), c11 = _mm512_fmadd_ps(a, b, c11);
    }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                           _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return (double)reps * STEPS * CHAINS * 32;
}

/* flops of `reps` x STEPS x CHAINS VDPBF16PS zmm (16 lanes x 2 products, 2 flops each) */
__attribute__((target("avx512f,avx512bf16"), noinline)) static double dp_loop(int reps) {
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x30803080);
  __m512 c0 = _mm512_set1_ps(0), c1 = _mm512_set1_ps(1), c2 = _mm512_set1_ps(2),
         c3 = _mm512_set1_ps(3), c4 = _mm512_set1_ps(4), c5 = _mm512_set1_ps(5),
         c6 = _mm512_set1_ps(6), c7 = _mm512_set1_ps(7), c8 = _mm512_set1_ps(8),
         c9 = _mm512_set1_ps(9), c10 = _mm512_set1_ps(10), c11 = _mm512_set1_ps(11);
  for (int r = 0; r < reps; r++)
    for (int i = 0; i < STEPS; i++) {
      __asm__ volatile("" : "+v"(b));
      c0 = _mm512_dpbf16_ps(c0, a, b), c1 = _mm512_dpbf16_ps(c1, a, b);
      c2 = _mm512_dpbf16_ps(c2, a, b), c3 = _mm512_dpbf16_ps(c3, a, b);
      c4 = _mm512_dpbf16_ps(c4, a, b), c5 = _mm512_dpbf16_ps(c5, a, b);
      c6 = _mm512_dpbf16_ps(c6, a, b), c7 = _mm512_dpbf16_ps(c7, a, b);
      c8 = _mm512_dpbf16_ps(c8, a, b), c9 = _mm512_dpbf16_ps(c9, a, b);
      c10 = _mm512_dpbf16_ps(c10, a, b), c11 = _mm512_dpbf16_ps(c11, a, b);
    }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                           _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return (double)reps * STEPS * CHAINS * 64;
}

/* flops per ms of one run of `loop`, ~0.3 ms */
static double rate(double (*loop)(int)) {
  double t0 = vb_now_ms();
  double flops = loop(32);
  double ms = vb_now_ms() - t0;
  return ms > 0 ? flops / ms : 0;
}
#endif

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static double g_ratio; /* VDPBF16PS flops over VFMADD231PS flops; 0: not measured */
static bool g_fast;
static const char *g_how = "";

static void probe(void) {
  const vb_cpu_features *f = vb_cpu();
  const char *env = getenv("VBLIP_BF16_PRODUCTS");
  if (env && strcmp(env, "fast") == 0) {
    g_fast = f->amx_usable || f->avx512_bf16, g_how = "VBLIP_BF16_PRODUCTS=fast";
    return;
  }
  if (env && strcmp(env, "slow") == 0) {
    g_fast = false, g_how = "VBLIP_BF16_PRODUCTS=slow";
    return;
  }
  if (env && env[0])
    fprintf(stderr, "vblip: VBLIP_BF16_PRODUCTS=%s: expected fast or slow; measuring instead\n",
            env);
  if (f->amx_usable) {
    g_fast = true, g_how = "AMX-BF16";
    return;
  }
  if (!f->avx512_bf16) {
    g_fast = false, g_how = "no bf16 instructions";
    return;
  }
#if defined(__x86_64__)
  double fma = 0, dp = 0;
  (void)rate(fma_loop); /* both kinds run at the same AVX-512 clock: one warm-up suffices */
  for (int i = 0; i < 3; i++) {
    double a = rate(fma_loop), b = rate(dp_loop);
    if (a > fma) fma = a;
    if (b > dp) dp = b;
  }
  g_ratio = fma > 0 ? dp / fma : 0;
  /* 1.25: clear of the timer's noise, and bf16's halved weight traffic does
   * not make up for fewer flops in compute-bound products */
  g_fast = g_ratio >= 1.25;
  g_how = "measured";
#endif
}

bool vb_cpu_bf16_products_fast(void) {
  pthread_once(&g_once, probe);
  return g_fast;
}

double vb_cpu_bf16_products_ratio(void) {
  pthread_once(&g_once, probe);
  return g_ratio;
}

const char *vb_cpu_bf16_products_describe(void) {
  static __thread char buf[96];
  pthread_once(&g_once, probe);
  if (g_ratio > 0)
    snprintf(buf, sizeof buf, "%s (VDPBF16PS %.2fx the f32 FMA flops, measured)",
             g_fast ? "fast" : "slow", g_ratio);
  else
    snprintf(buf, sizeof buf, "%s (%s)", g_fast ? "fast" : "slow", g_how);
  return buf;
}
