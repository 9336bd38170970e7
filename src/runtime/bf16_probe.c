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

/* 12 independent chains of 256 steps each per rep, from registers; distinct
 * starting values (identical chains would be merged by the compiler), the
 * operand b kept opaque (nothing folded or hoisted). */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECLARE(i) __m512 c##i = _mm512_set1_ps(i);
#define STEP_FMA(i) c##i = _mm512_fmadd_ps(a, b, c##i);
#define STEP_DP(i) c##i = _mm512_dpbf16_ps(c##i, a, b);
#define ADD(i) s = _mm512_add_ps(s, c##i);
#define REGISTER_LOOP(STEP)                                                                        \
  CHAINS(DECLARE)                                                                                  \
  for (int r = 0; r < reps; r++)                                                                   \
    for (int i = 0; i < 256; i++) {                                                                \
      __asm__ volatile("" : "+v"(b));                                                              \
      CHAINS(STEP)                                                                                 \
    }                                                                                              \
  __m512 s = _mm512_setzero_ps();                                                                  \
  CHAINS(ADD)                                                                                      \
  volatile float sink = _mm512_reduce_add_ps(s);                                                   \
  (void)sink;

__attribute__((target("avx512f"), noinline)) static double fma_loop(int reps) {
  __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0x1p-30f);
  REGISTER_LOOP(STEP_FMA)
  return (double)reps * 256 * 12 * 32; /* 16 lanes, 2 flops */
}

__attribute__((target("avx512f,avx512bf16"), noinline)) static double dp_loop(int reps) {
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x30803080);
  REGISTER_LOOP(STEP_DP)
  return (double)reps * 256 * 12 * 64; /* 16 lanes x 2 products, 2 flops each */
}
#endif

double vb_cpu_fma_f32_loop(int reps) {
#if defined(__x86_64__)
  if (vb_cpu_has_avx512()) return fma_loop(reps);
#endif
  (void)reps;
  return 0;
}

double vb_cpu_vdpbf16ps_loop(int reps) {
#if defined(__x86_64__)
  if (vb_cpu()->avx512_bf16) return dp_loop(reps);
#endif
  (void)reps;
  return 0;
}

#if defined(__x86_64__)
/* flops per ms of one run of `loop`: 128 reps, ~0.1 ms of FMAs and ~0.3 ms of
 * VDPBF16PS where it is slow (long against the clock's resolution) */
static double rate(double (*loop)(int)) {
  double t0 = vb_now_ms();
  double flops = loop(128);
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
