/* Run-time CPU feature detection and start-up (AMX permission, oneDNN ISA cap).
 * vb_cpu_init must run before any OpenMP worker thread or oneDNN primitive
 * exists: the kernel grants AMX state per process only to threads created
 * after the request, and oneDNN fixes its ISA at its first primitive. */
#ifndef VBLIP_RUNTIME_CPU_H
#define VBLIP_RUNTIME_CPU_H

#include <stdbool.h>

typedef struct {
  bool avx2, fma;               /* with OS support for YMM state */
  bool avx512f, avx512bw, avx512vl, avx512dq; /* with OS support for ZMM state */
  bool avx512_bf16;             /* VDPBF16PS / VCVTNE2PS2BF16 */
  bool avx512_vnni;             /* VPDPBUSD (int8 dot products) */
  bool avx_vnni;                /* VPDPBUSD on ymm (VEX), e.g. CPUs without AVX-512 */
  bool amx_tile, amx_bf16;      /* CPU reports them */
  bool amx_int8;                /* TDPBSSD and friends (with amx_usable) */
  bool amx_usable;              /* ... and the kernel granted XTILEDATA, not disabled */
  bool amx_refused;             /* the kernel refused (or VBLIP_NO_AMX=1 forced it off) */
} vb_cpu_features;

/* Detects features, requests AMX permission once, caps oneDNN's ISA when AMX
 * cannot be used. Idempotent and thread-safe; cheap after the first call. */
void vb_cpu_init(void);
/* The detected features (calls vb_cpu_init if needed). */
const vb_cpu_features *vb_cpu(void);
/* True when the AVX-512 bf16 kernels can run (AVX-512F/BW/VL present). */
bool vb_cpu_has_avx512(void);
/* Whether bf16 compute is fast here (AMX-BF16 usable or AVX512-BF16): the "auto" dtype. */
bool vb_cpu_prefers_bf16(void);
/* Whether bf16 products outrun f32 ones here: AMX-BF16 usable, or VDPBF16PS
 * measured at >= 1.25x the flops of VFMADD231PS (once, ~2 ms, bf16_probe.c;
 * $VBLIP_BF16_PRODUCTS=fast|slow overrides). Where false, the compute-bound
 * products (vision encoder, Q-Former, prompt prefill of quantized layers)
 * run in f32 unless bf16 was asked for. */
bool vb_cpu_bf16_products_fast(void);
/* The probe's register loops, for benchmarks too: the flops of reps x 3072
 * independent VFMADD231PS / VDPBF16PS (zmm) on the calling thread, 0 where the
 * CPU lacks the instruction. */
double vb_cpu_fma_f32_loop(int reps);
double vb_cpu_vdpbf16ps_loop(int reps);
/* VDPBF16PS flops over VFMADD231PS flops where measured, else 0. */
double vb_cpu_bf16_products_ratio(void);
/* "fast (...)" or "slow (...)": the decision and its reason, for logs. */
const char *vb_cpu_bf16_products_describe(void);
/* One line describing the features, for logs and the benchmark. */
const char *vb_cpu_describe(void);

#endif
