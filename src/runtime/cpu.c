/* CPU features from cpuid/xgetbv, AMX permission from the kernel, and the
 * matching cap on oneDNN's instruction set. On other processors (aarch64)
 * every x86 feature reads false and every kernel takes its portable path. */
#include "runtime/cpu.h"

#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VB_ARCH_GET_XCOMP_PERM 0x1022
#define VB_ARCH_REQ_XCOMP_PERM 0x1023
#define VB_XFEATURE_XTILEDATA 18
#endif

static vb_cpu_features g_cpu;
static char g_desc[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
static unsigned long long xgetbv0(void) {
  unsigned int lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

/* Asks the kernel for the AMX tile-data state. Returns true when granted. */
static bool request_amx(void) {
  unsigned long long bits = 0;
  /* Kernels before 5.16 have no such call and no AMX support at all. */
  if (syscall(SYS_arch_prctl, VB_ARCH_REQ_XCOMP_PERM, VB_XFEATURE_XTILEDATA) != 0) return false;
  if (syscall(SYS_arch_prctl, VB_ARCH_GET_XCOMP_PERM, &bits) != 0) return false;
  return (bits >> VB_XFEATURE_XTILEDATA) & 1;
}
#endif

static bool env_flag(const char *name) {
  const char *v = getenv(name);
  return v && v[0] && strcmp(v, "0") != 0;
}

static void detect(void) {
  memset(&g_cpu, 0, sizeof g_cpu);
#if defined(__x86_64__)
  unsigned a, b, c, d;
  unsigned max_leaf = __get_cpuid_max(0, NULL);
  if (max_leaf >= 1) {
    __cpuid(1, a, b, c, d);
    bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = ymm_os && (xcr0 & 0xe0) == 0xe0;
    bool tile_os = (xcr0 & (3ull << 17)) == (3ull << 17);
    if (max_leaf >= 7) {
      __cpuid_count(7, 0, a, b, c, d);
      unsigned sub_max = a;
      g_cpu.avx2 = avx && ymm_os && ((b >> 5) & 1);
      g_cpu.fma = avx && ymm_os && fma;
      g_cpu.avx512f = zmm_os && ((b >> 16) & 1);
      g_cpu.avx512dq = g_cpu.avx512f && ((b >> 17) & 1);
      g_cpu.avx512bw = g_cpu.avx512f && ((b >> 30) & 1);
      g_cpu.avx512vl = g_cpu.avx512f && ((b >> 31) & 1);
      g_cpu.avx512_vnni = g_cpu.avx512f && ((c >> 11) & 1);
      g_cpu.amx_bf16 = tile_os && ((d >> 22) & 1);
      g_cpu.amx_tile = tile_os && ((d >> 24) & 1);
      g_cpu.amx_int8 = tile_os && ((d >> 25) & 1);
      if (sub_max >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        g_cpu.avx_vnni = g_cpu.avx2 && ((a >> 4) & 1);
        g_cpu.avx512_bf16 = g_cpu.avx512bw && g_cpu.avx512vl && ((a >> 5) & 1);
      }
    }
  }
  if (g_cpu.amx_tile && g_cpu.amx_bf16) {
    if (env_flag("VBLIP_NO_AMX") || !request_amx())
      g_cpu.amx_refused = true;
    else
      g_cpu.amx_usable = true;
  }
#endif
  if (env_flag("VBLIP_NO_AVX512")) { /* testing aid: the portable paths */
    g_cpu.avx512f = g_cpu.avx512bw = g_cpu.avx512vl = g_cpu.avx512dq = false;
    g_cpu.avx512_bf16 = g_cpu.avx512_vnni = false;
  }
  if (env_flag("VBLIP_NO_AVX_VNNI")) g_cpu.avx_vnni = false; /* testing aid */
  if (env_flag("VBLIP_NO_AVX2")) { /* testing aid: portable C where a kernel has an AVX2 path */
    g_cpu.avx2 = g_cpu.fma = g_cpu.avx_vnni = false;
    g_cpu.avx512f = g_cpu.avx512bw = g_cpu.avx512vl = g_cpu.avx512dq = false;
    g_cpu.avx512_bf16 = g_cpu.avx512_vnni = false;
  }
#if defined(__x86_64__)
  /* oneDNN must never emit AMX instructions without the permission, and its
   * ISA choice is fixed at its first primitive: cap it now. (Elsewhere the
   * cap's values are not the CPU's ISAs: oneDNN picks its own.) */
  if (!g_cpu.amx_usable) {
    dnnl_cpu_isa_t cap = g_cpu.avx512_bf16 ? dnnl_cpu_isa_avx512_core_bf16
                         : g_cpu.avx512bw  ? dnnl_cpu_isa_avx512_core
                         : g_cpu.avx2      ? dnnl_cpu_isa_avx2
                                           : dnnl_cpu_isa_sse41;
    dnnl_set_max_cpu_isa(cap); /* fails only after a primitive exists: nothing to do then */
  }
#endif
  snprintf(g_desc, sizeof g_desc,
           "avx2=%d avx_vnni=%d avx512=%d avx512_bf16=%d avx512_vnni=%d amx=%s amx_int8=%d",
           g_cpu.avx2, g_cpu.avx_vnni, g_cpu.avx512f && g_cpu.avx512bw && g_cpu.avx512vl,
           g_cpu.avx512_bf16, g_cpu.avx512_vnni,
           g_cpu.amx_usable    ? "on"
           : g_cpu.amx_refused ? "refused"
                               : "absent",
           g_cpu.amx_usable && g_cpu.amx_int8);
}

void vb_cpu_init(void) { pthread_once(&g_once, detect); }

const vb_cpu_features *vb_cpu(void) {
  vb_cpu_init();
  return &g_cpu;
}

bool vb_cpu_has_avx512(void) {
  const vb_cpu_features *f = vb_cpu();
  return f->avx512f && f->avx512bw && f->avx512vl;
}

bool vb_cpu_prefers_bf16(void) {
  const vb_cpu_features *f = vb_cpu();
  return f->amx_usable || f->avx512_bf16;
}

const char *vb_cpu_describe(void) {
  vb_cpu_init();
  return g_desc;
}
