/* vblip-bench: full-size random-weight VideoBLIP models built in memory
 * (ViT-g 39x1408, Q-Former 12x768, and OPT-2.7b 32x2560 and/or Flan-T5-XL
 * 24+24x2048), run through the real model code, timed per stage and per
 * compute type against this machine's own ceilings measured in the same run
 * (large-buffer read bandwidth; a large bf16 matmul). Prints tables and
 * writes JSON.
 *
 *   vblip-bench [--lm opt|t5|both] [--frames 8] [--prompt 20] [--tokens 20] [--beams 1]
 *               [--threads N] [--json bench.json] [--no-f32] [--no-f32-lm] [--no-q8]
 *               [--no-bf16-lm] [--no-visual] [--no-onednn] [--vision-repeat N] [--video PATH]
 *               [--tiny]
 *
 * --no-onednn drops the "bf16 (oneDNN)" vision row of AMX CPUs; --vision-repeat N
 * times each vision row's encoder N times and reports the best (noisy machines).
 *
 * Language-model rows, per language model: bf16 weights, q8_0 weights (the
 * synthetic linear weights quantized in memory as `vblip convert --type q8_0`
 * writes them, embeddings kept as in the bf16 model; bf16 compute, so the
 * engine's q8_0 kernels run), and f32. --no-visual skips the vision encoder and
 * Q-Former and feeds the language models random query vectors. --beams N
 * decodes N rows per step, as beam search does (`vblip caption` defaults to 4):
 * the same weight bytes per step, N times the arithmetic.
 *
 * --video PATH runs the caption pipeline end to end instead (bench_e2e.c), for
 * bf16 and for q8_0 language-model weights. --tiny shrinks every stack to 2
 * layers and the vocabulary to 4096 tokens (full widths): a smoke test of
 * seconds, not a benchmark.
 *
 * --dataset MODEL (with --video PATH) measures dataset captioning instead
 * (bench_dataset.c): clips per hour over --clips N (default 100) windows of the video,
 * one at a time against --prefetch N (default 2) videos decoded ahead, --rounds N each.
 *
 * Every configuration runs in a child process of its own, so its peak RSS is
 * its own and the f32 copies never sit beside the bf16 ones. */
#include <cjson/cJSON.h>
#include <dnnl.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench.h"
#include "kernels/kernels.h"
#include "kernels/tile_gemm.h"
#include "runtime/common.h"
#include "runtime/cpu.h"
#include "runtime/memory.h"
#include "vision/qformer.h"
#include "vision/vit.h"

#define GB 1e9

/* ---- one process per configuration ---- */

/* Zeroed memory that parent and children share: the children's results. */
static void *shared_new(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    vb_error("cannot map %zu bytes: %s", bytes, strerror(errno));
    return NULL;
  }
  return p;
}

/* Runs fn(arg) in a child process; *peak_gb (if not NULL) is the child's peak
 * RSS (its VmHWM). In one process the rows inherited each other's memory:
 * glibc keeps freed heap blocks that lie below live ones resident, so a
 * stage's peak included what earlier stages had freed (resetting VmHWM through
 * /proc/self/clear_refs only resets it to that inflated RSS). The parent never
 * starts OpenMP threads or oneDNN: libgomp's thread pool does not survive fork. */
static int in_child(int (*fn)(void *), void *arg, double *peak_gb) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return vb_error("fork: %s", strerror(errno));
  if (pid == 0) {
    int rc = fn(arg);
    if (rc != 0) fprintf(stderr, "%s\n", vb_error_message());
    fflush(NULL);
    _exit(rc != 0);
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) return vb_error("wait4: %s", strerror(errno));
  if (peak_gb) *peak_gb = ru.ru_maxrss * 1024.0 / GB;
  if (WIFSIGNALED(status))
    return vb_error("killed by signal %d (out of memory?)", WTERMSIG(status));
  return WEXITSTATUS(status) == 0 ? 0 : vb_error("failed");
}

static double status_gb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, key, strlen(key)) == 0) kb = atol(line + strlen(key));
  if (f) fclose(f);
  return kb * 1024.0 / GB;
}

static double rss_now_gb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  return kb * 1024.0 / GB;
}

/* ---- ceilings ---- */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double read_sum_avx512(const float *p, size_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
#endif
static double read_sum_c(const float *p, size_t n) {
  float s[8] = {0};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      s[j] += p[i + j];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}
static double read_sum(const float *p, size_t n, int avx) {
#if defined(__x86_64__)
  if (avx) return read_sum_avx512(p, n);
#endif
  (void)avx;
  return read_sum_c(p, n);
}

/* One all-thread read of buf (n floats), ms. */
static double read_once_ms(const float *buf, size_t n) {
  double sink = 0, t0 = vb_now_ms();
  int avx = vb_cpu_has_avx512();
#pragma omp parallel reduction(+ : sink)
  {
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
    size_t a = (n / 64) * t / nt * 64, b = (n / 64) * (t + 1) / nt * 64;
    sink += read_sum(buf + a, b - a, avx);
  }
  double ms = vb_now_ms() - t0;
  if (sink == 12345.0) fprintf(stderr, " ");
  return ms;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Best of several all-thread reads of a large buffer, GB/s. */
static double measure_bandwidth(size_t bytes) {
  size_t n = bytes / sizeof(float);
  float *buf = vb_malloc_aligned(bytes);
  if (!buf) return 0;
  bench_fill_random(buf, VB_DT_F32, n, 1.0f, 99);
  double best = 0;
  for (int r = 0; r < 5; r++) {
    double gbs = bytes / GB / (read_once_ms(buf, n) / 1e3);
    if (gbs > best) best = gbs;
  }
  vb_free_aligned(buf);
  return best;
}

/* A large bf16 product through the engine (packed weights): TFLOP/s. With
 * VBLIP_AMX_ONEDNN=1 in the environment oneDNN's matmul runs, else, on AMX
 * CPUs, vblip's own tile product. */
static double measure_matmul(int M, int N, int K) {
  float *w = vb_malloc_aligned((size_t)N * K * sizeof(float));
  float *x = vb_malloc_aligned((size_t)M * K * sizeof(float));
  float *y = vb_malloc_aligned((size_t)M * N * sizeof(float));
  if (!w || !x || !y) return 0;
  bench_fill_random(w, VB_DT_F32, (size_t)N * K, 0.03f, 7);
  bench_fill_random(x, VB_DT_F32, (size_t)M * K, 1.0f, 8);
  vb_linear l = {
      .out = N, .in = K, .dtype = VB_DT_F32, .w = w, .compute = VB_COMPUTE_BF16, .pack = 1};
  double best = 0;
  if (vb_linear_prepare(&l) == 0 && vb_linear_forward(&l, x, M, y) == 0) { /* primitive creation */
    for (int r = 0; r < 5; r++) {
      double t0 = vb_now_ms();
      if (vb_linear_forward(&l, x, M, y) != 0) break;
      double tf = 2.0 * M * N * K / ((vb_now_ms() - t0) / 1e3) / 1e12;
      if (tf > best) best = tf;
    }
  }
  vb_linear_release(&l);
  vb_free_aligned(w), vb_free_aligned(x), vb_free_aligned(y);
  return best;
}

/* The product paths whose register peaks the bench measures. */
enum {
  PEAK_AMX_BF16,
  PEAK_AMX_INT8,
  PEAK_VDPBF16PS,
  PEAK_VPDPBUSD,
  PEAK_AVX_VNNI,
  PEAK_FMA_F32,
  PEAKS
};
static const char *const k_peak_name[PEAKS] = {"AMX-BF16", "AMX-INT8", "VDPBF16PS",
                                               "VPDPBUSD", "AVX-VNNI", "FMA-F32"};

typedef struct {
  size_t bw_bytes;
  int mm_n;
  double read_gbs, mm_tflops, mm_own_tflops;
  double peak[PEAKS]; /* TFLOP/s or TOP/s; 0: the CPU lacks the path */
} ceilings;

static int run_ceilings(void *arg) {
  ceilings *c = arg;
  c->read_gbs = measure_bandwidth(c->bw_bytes);
  const double ms = 300;
  c->peak[PEAK_AMX_BF16] = vb_tile_peak(VB_TILE_BF16_AMX, ms);
  c->peak[PEAK_AMX_INT8] = vb_tile_peak(VB_TILE_I8_AMX, ms);
  c->peak[PEAK_VDPBF16PS] = bench_peak_vdpbf16ps(ms);
  c->peak[PEAK_VPDPBUSD] = vb_tile_peak(VB_TILE_I8_AVX512VNNI, ms);
  c->peak[PEAK_AVX_VNNI] = vb_tile_peak(VB_TILE_I8_AVXVNNI, ms);
  c->peak[PEAK_FMA_F32] = bench_peak_fma_f32(ms);
  if (vb_tile_kind_usable(VB_TILE_BF16_AMX))
    c->mm_own_tflops = measure_matmul(c->mm_n, c->mm_n, c->mm_n);
  setenv("VBLIP_AMX_ONEDNN", "1", 1); /* the library's ceiling: oneDNN's matmul */
  c->mm_tflops = measure_matmul(c->mm_n, c->mm_n, c->mm_n);
  return 0;
}

static double rel_l2(const float *a, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - ref[i];
    num += d * d, den += (double)ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : 0;
}

static const char *dt_name(vb_dtype dt) {
  return dt == VB_DT_Q8_0   ? "q8_0"
         : dt == VB_DT_Q4_0 ? "q4_0"
         : dt == VB_DT_Q4_K ? "q4_k"
         : dt == VB_DT_BF16 ? "bf16"
                            : "f32";
}

/* ---- stages (each in a child; the structs live in shared memory) ---- */

/* One vision row: how the ViT and the Q-Former run. */
typedef struct {
  const char *name;     /* the row's label */
  vb_compute compute;   /* the model's compute: Q-Former, and ViT unless int8 */
  int int8;             /* the ViT's products in int8 (VB_I8_DEFAULT), as --vision-dtype int8 */
  vb_tile_kind i8_kind; /* VB_TILE_KINDS: the fastest int8 kind here */
  int onednn;           /* bf16 through oneDNN even where vblip's AMX tiles would run */
} visual_conf;

typedef struct {
  const vb_model_config *c;
  visual_conf conf;
  int T;
  int repeat; /* timed vision-encoder runs; the best is reported */
  double ms_vision, tflops, ms_qformer, peak_gb;
  char path[32];   /* what the ViT's fc1 ran on */
  float *vis;      /* [T*seq, D], shared memory: the encoder's output */
  float queries[]; /* [Q, H]: the Q-Former's output */
} visual_stage;

static double vision_flops(const vb_model_config *c, int T) {
  const vb_vision_config *v = &c->vision;
  double D = v->hidden_size, F = v->intermediate_size, P = v->patch_size;
  double np = (v->image_size / P) * (v->image_size / P), seq = np + 1;
  double per_layer = 2 * seq * (3 * D * D + D * D + 2 * D * F) + 4 * seq * seq * D;
  return T * (per_layer * v->num_hidden_layers + 2 * np * D * 3 * P * P);
}

/* Vision encoder + Q-Former (+ projection) for one row. */
static int run_visual(void *arg) {
  visual_stage *s = arg;
  const vb_model_config *c = s->c;
  const visual_conf *vc = &s->conf;
  int T = s->T;
  if (vc->onednn) setenv("VBLIP_AMX_ONEDNN", "1", 1);
  if (vc->i8_kind != VB_TILE_KINDS) vb_linear_tile_force_i8(vc->i8_kind);
  vb_weights w;
  /* the same random values for every row: bf16 and int8 rows store them
   * rounded to bf16 (a bf16 checkpoint; int8 quantizes those at load, and
   * needs half the memory of an f32 copy), the f32 row as they are */
  bench_weights_new(&w, vc->compute, 1);
  vb_dtype dt = vc->compute == VB_COMPUTE_BF16 ? VB_DT_BF16 : VB_DT_F32;
  if (bench_build_vision(&w, c, dt) != 0 || bench_build_qformer(&w, c, dt) != 0) return -1;
  w.int8 = vc->int8;
  w.int8_kinds = vc->int8 ? VB_I8_DEFAULT : 0;
  vb_vit vit;
  vb_qformer qf;
  vb_linear proj;
  double t0 = vb_now_ms();
  if (vb_vit_init(&vit, &w, &c->vision) != 0 ||
      vb_qformer_init(&qf, &w, &c->qformer, c->num_query_tokens) != 0)
    return -1;
  w.pack = 0;
  w.int8 = 0;
  if (vb_weights_linear(&w, "language_projection", c->lm_hidden, c->qformer.hidden_size, 1,
                        &proj) != 0)
    return -1;
  double t_prep = vb_now_ms() - t0;
  const char *kind = vb_linear_tile_kind(&vit.layers[0].fc1);
  snprintf(s->path, sizeof s->path, "%s",
           kind                             ? kind
           : vc->compute == VB_COMPUTE_BF16 ? "oneDNN"
                                            : "sgemm");
  int S = c->vision.image_size, seq = vit.seq, Q = c->num_query_tokens;
  float *pix = vb_malloc((size_t)3 * T * S * S * sizeof(float));
  float *projected = vb_malloc((size_t)Q * c->lm_hidden * sizeof(float));
  if (!pix || !projected) return -1;
  bench_fill_random(pix, VB_DT_F32, (size_t)3 * T * S * S, 1.5f, 5);
  /* warm-up: one frame, then T frames once (creates the T-frame primitives) */
  if (vb_vit_forward(&vit, pix, 1, s->vis) != 0) return -1;
  if (vb_vit_forward(&vit, pix, T, s->vis) != 0) return -1;
  s->ms_vision = 0;
  for (int r = 0; r < (s->repeat > 1 ? s->repeat : 1); r++) {
    t0 = vb_now_ms();
    if (vb_vit_forward(&vit, pix, T, s->vis) != 0) return -1;
    double ms = vb_now_ms() - t0;
    if (r == 0 || ms < s->ms_vision) s->ms_vision = ms;
  }
  s->tflops = vision_flops(c, T) / (s->ms_vision / 1e3) / 1e12;
  if (vb_qformer_forward(&qf, s->vis, T * seq, s->queries) != 0) return -1;
  t0 = vb_now_ms();
  if (vb_qformer_forward(&qf, s->vis, T * seq, s->queries) != 0) return -1;
  /* timed as part of the pipeline; the language-model rows project the
   * queries themselves, to their own widths */
  if (vb_linear_forward(&proj, s->queries, Q, projected) != 0) return -1;
  s->ms_qformer = vb_now_ms() - t0;
  fprintf(stderr, "  %s visual (%s): prepare %.0f ms, vision %.0f ms, qformer %.0f ms\n", vc->name,
          s->path, t_prep, s->ms_vision, s->ms_qformer);
  free(pix), free(projected);
  vb_linear_release(&proj);
  vb_qformer_free(&qf);
  vb_vit_free(&vit);
  vb_weights_close(&w);
  return 0;
}

/* The register peak of the path a vision row ran on. */
static int row_peak(const visual_stage *s) {
  if (!strcmp(s->path, "amx-bf16")) return PEAK_AMX_BF16;
  if (!strcmp(s->path, "amx-int8")) return PEAK_AMX_INT8;
  if (!strcmp(s->path, "avx512-vnni")) return PEAK_VPDPBUSD;
  if (!strcmp(s->path, "avx-vnni")) return PEAK_AVX_VNNI;
  if (!strcmp(s->path, "oneDNN")) return vb_cpu()->amx_usable ? PEAK_AMX_BF16 : PEAK_VDPBF16PS;
  if (!strcmp(s->path, "sgemm")) return PEAK_FMA_F32;
  return -1;
}

#define VB_BENCH_MAX_BEAMS 16

typedef struct {
  const vb_model_config *c;
  const char *label; /* "opt", "t5-xxl", ... */
  vb_dtype dt;
  const float *queries; /* [Q, H] from a visual stage, or NULL: random */
  double ms_load;       /* the model built from the mapped file (layers prepared, repacked) */
  int n_prompt, n_tokens, beams;
  double ms_prefill, ms_token, decode_gb, peak_gb;
  double peak_model_gb; /* VmHWM before the interleaved read buffer exists */
  double
      ratio_interleaved; /* median over steps of step time / (bytes / bandwidth read around it) */
  float logits[];        /* the first step's [vocab] */
} lm_stage;

/* Weight bytes one decoding step reads, which bounds it: every linear layer
 * the step runs plus the vocabulary head, as stored (q8_0: 34 bytes per 32).
 *   OPT: L (4 E^2 + 2 E F) at dt, plus V E f32: opt.c keeps the tied head f32.
 *   T5:  L_dec (6 d inner + 3 d d_ff) + V d, all at dt: self-attention q,k,v,o
 *        and cross-attention q,o, the gated feed-forward's wi_0, wi_1, wo, and
 *        the untied lm_head. The encoder and the cross-attention k,v run once,
 *        in prefill; the step reads their f32 K/V output instead (2 L_dec n_in
 *        inner x 4 bytes, 20 MB for 52 inputs), an activation left out like
 *        the self-attention caches. */
static double decode_bytes(const vb_model_config *c, vb_dtype dt) {
  double per = dt == VB_DT_Q8_0   ? 34.0 / 32
               : dt == VB_DT_Q4_0 ? 18.0 / 32
               : dt == VB_DT_Q4_K ? 144.0 / 256
               : dt == VB_DT_BF16 ? 2
                                  : 4;
  /* 4-bit models keep their vocabulary head in q8_0 (convert; OPT's tied head's copy) */
  double head_per = dt == VB_DT_Q4_0 || dt == VB_DT_Q4_K ? 34.0 / 32 : per;
  if (c->lm_kind == VB_LM_T5) {
    const vb_t5_config *t = &c->t5;
    double d = t->d_model, inner = (double)t->num_heads * t->d_kv;
    double lin = t->num_decoder_layers * (6 * d * inner + (t->gated ? 3 : 2) * d * t->d_ff);
    return lin * per + (double)t->vocab_size * d * head_per;
  }
  const vb_opt_config *o = &c->opt;
  double lin = (double)o->num_hidden_layers *
               (4.0 * o->hidden_size * o->hidden_size + 2.0 * o->hidden_size * o->ffn_dim);
  /* the tied head: f32 with f32 compute, else its bf16 / q8_0 copy (lm_head.h;
   * the few rows it recomputes in f32 are not counted) */
  return lin * per + (double)o->vocab_size * o->hidden_size * head_per;
}

/* Bytes of the whole language model as built (the encoder too; embeddings
 * bf16), for the memory a row needs. */
static double model_bytes(const vb_model_config *c, vb_dtype dt) {
  double per = dt == VB_DT_Q8_0   ? 34.0 / 32
               : dt == VB_DT_Q4_0 ? 18.0 / 32
               : dt == VB_DT_Q4_K ? 144.0 / 256
               : dt == VB_DT_BF16 ? 2
                                  : 4;
  if (c->lm_kind == VB_LM_T5) {
    const vb_t5_config *t = &c->t5;
    double d = t->d_model, inner = (double)t->num_heads * t->d_kv,
           ff = (t->gated ? 3 : 2) * d * t->d_ff;
    double lin =
        t->num_layers * (4 * d * inner + ff) + t->num_decoder_layers * (8 * d * inner + ff);
    return lin * per + 2.0 * t->vocab_size * d * (dt == VB_DT_F32 ? 4 : 2);
  }
  const vb_opt_config *o = &c->opt;
  double lin = (double)o->num_hidden_layers *
               (4.0 * o->hidden_size * o->hidden_size + 2.0 * o->hidden_size * o->ffn_dim);
  return lin * per + (double)o->vocab_size * o->hidden_size * (dt == VB_DT_F32 ? 4 : 2);
}

/* The language model with weights stored as dt (computing in bf16 unless f32). */
static int run_lm(void *arg) {
  lm_stage *s = arg;
  const vb_model_config *c = s->c;
  vb_weights w;
  bench_weights_new(&w, s->dt == VB_DT_F32 ? VB_COMPUTE_F32 : VB_COMPUTE_BF16, 0);
  if (bench_build_lm(&w, c, s->dt) != 0 || bench_weights_via_file(&w) != 0) return -1;
  vb_lm *lm = NULL;
  double t_load = vb_now_ms();
  if (bench_lm_create(&w, c, &lm) != 0) return -1;
  t_load = vb_now_ms() - t_load;
  s->ms_load = t_load;
  int V = lm->vocab_size, Q = c->num_query_tokens, H = c->qformer.hidden_size, E = c->lm_hidden;
  float *q = vb_malloc((size_t)Q * H * sizeof(float));
  float *pw = vb_malloc((size_t)E * H * sizeof(float));
  float *in = vb_malloc((size_t)Q * E * sizeof(float));
  int B = s->beams;
  float *logits = vb_malloc((size_t)B * V * sizeof(float));
  int32_t *ids = vb_malloc((size_t)s->n_prompt * sizeof *ids), tok[VB_BENCH_MAX_BEAMS];
  if (!q || !pw || !in || !logits || !ids) return -1;
  /* the input: the queries through one fixed random f32 projection, the same
   * for every dtype */
  if (s->queries)
    memcpy(q, s->queries, (size_t)Q * H * sizeof(float));
  else
    bench_fill_random(q, VB_DT_F32, (size_t)Q * H, 1.0f, 6);
  bench_fill_random(pw, VB_DT_F32, (size_t)E * H, 0.035f, 9);
  vb_gemm(Q, E, H, q, H, pw, H, 1, 1.0f, 0.0f, in, E);
  bench_prompt_ids(c, ids, s->n_prompt);
  /* warm-up prefill (primitive creation), then the timed one; T5's prefill is
   * the encoder over queries + prompt and the first decoder step */
  if (lm->set_input(lm, in, Q, ids, s->n_prompt) != 0 || lm->gen.prefill(lm, B, logits) != 0)
    return -1;
  if (lm->set_input(lm, in, Q, ids, s->n_prompt) != 0) return -1;
  double t0 = vb_now_ms();
  if (lm->gen.prefill(lm, B, logits) != 0) return -1;
  for (int b = 1; b < B; b++) /* prefill gives one row: every beam starts from it */
    memcpy(logits + (size_t)b * V, logits, (size_t)V * sizeof(float));
  s->ms_prefill = vb_now_ms() - t0;
  memcpy(s->logits, logits, (size_t)V * sizeof(float));
  s->decode_gb = decode_bytes(c, s->dt) / GB;
  /* Neighbours on a shared machine change the bandwidth within seconds, so
   * each timed step is bracketed by reads of a 1 GiB buffer (the read after
   * one step is the read before the next), and the step is compared with the
   * time its bytes take at the mean of the two bandwidths around it. */
  s->peak_model_gb = status_gb("VmHWM:");
  size_t rn = ((size_t)1 << 30) / sizeof(float);
  float *rbuf = vb_malloc_aligned(rn * sizeof(float));
  double *ratio = vb_malloc((size_t)s->n_tokens * sizeof(double));
  if (!rbuf || !ratio) return -1;
  bench_fill_random(rbuf, VB_DT_F32, rn, 1.0f, 98);
  double t_dec = 0, read_gb = (double)rn * sizeof(float) / GB, gbs_before = 0;
  int n_ratio = 0;
  for (int i = 0; i < s->n_tokens; i++) {
    for (int b = 0; b < B; b++) { /* each row's best token: B rows, no reordering */
      const float *row = logits + (size_t)b * V;
      tok[b] = 0;
      for (int j = 1; j < V; j++)
        if (row[j] > row[tok[b]]) tok[b] = j;
    }
    t0 = vb_now_ms();
    if (lm->gen.step(lm, tok, B, logits) != 0) return -1;
    double ms = vb_now_ms() - t0;
    double gbs_after = read_gb / (read_once_ms(rbuf, rn) / 1e3);
    if (i > 0) { /* the first step is a warm-up */
      t_dec += ms;
      ratio[n_ratio++] = ms / (s->decode_gb / ((gbs_before + gbs_after) / 2) * 1e3);
    }
    gbs_before = gbs_after;
  }
  qsort(ratio, n_ratio, sizeof *ratio, cmp_double);
  s->ratio_interleaved = ratio[n_ratio / 2];
  vb_free_aligned(rbuf);
  free(ratio);
  s->ms_token = t_dec / (s->n_tokens - 1);
  fprintf(stderr,
          "  %s %s lm: model ready in %.0f ms (from the mapped file), prefill %.0f ms, decode %.1f "
          "ms/token\n",
          s->label, dt_name(s->dt), t_load, s->ms_prefill, s->ms_token);
  free(q), free(pw), free(in), free(logits), free(ids);
  lm->destroy(lm);
  vb_weights_close(&w);
  return 0;
}

typedef struct {
  const vb_model_config *c;
  vb_dtype lm_dt;
  bench_vision vision;
  const char *video;
  int T, n_tokens;
  double peak_gb;
  bench_e2e_result r;
} e2e_stage;

static int run_e2e(void *arg) {
  e2e_stage *s = arg;
  if (bench_e2e(s->c, s->lm_dt, s->vision, s->video, s->T, s->n_tokens, &s->r) != 0) return -1;
  return 0;
}

/* ---- output ---- */

static int write_json(cJSON *root, const char *path) {
  char *text = cJSON_Print(root);
  FILE *f = fopen(path, "w");
  int ok = f && text && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
  if (f && fclose(f) != 0) ok = 0;
  free(text);
  cJSON_Delete(root);
  if (!ok) {
    fprintf(stderr, "cannot write %s\n", path);
    return 1;
  }
  printf("wrote %s\n", path);
  return 0;
}

static cJSON *json_header(const vb_lm_kind *lms, int n_lm, int tiny, int nthr) {
  cJSON *root = cJSON_CreateObject();
  cJSON *models = cJSON_AddArrayToObject(root, "models");
  for (int i = 0; i < n_lm; i++)
    cJSON_AddItemToArray(models, cJSON_CreateString(bench_model_name(lms[i])));
  cJSON_AddStringToObject(root, "weights",
                          tiny ? "random, tiny (2 layers per stack, 4096 tokens)" : "random");
  cJSON_AddStringToObject(root, "cpu", vb_cpu_describe());
  cJSON_AddStringToObject(root, "bf16_products", vb_cpu_bf16_products_describe());
  cJSON_AddNumberToObject(root, "threads", nthr);
  return root;
}

/* The caption pipeline on a video, bf16 and q8_0 language-model weights;
 * where bf16 products are slow, also f32 vision (what the defaults pick). */
#define E2E_CONFS 4

static int e2e_mode(const vb_model_config *cfg, const vb_lm_kind *lms, int n_lm, const char *video,
                    int T, int n_tokens, int do_bf16, int do_q8, int do_int8, int tiny, int nthr,
                    const char *json_path) {
  const vb_dtype lm_dt[E2E_CONFS] = {VB_DT_BF16, VB_DT_Q8_0, VB_DT_Q8_0, VB_DT_Q8_0};
  const bench_vision vision[E2E_CONFS] = {BENCH_VISION_BF16, BENCH_VISION_BF16, BENCH_VISION_INT8,
                                          BENCH_VISION_F32};
  const int on[E2E_CONFS] = {do_bf16, do_q8, do_q8 && do_int8,
                             do_q8 && !vb_cpu_bf16_products_fast()};
  const char *conf_name[E2E_CONFS] = {"bf16", "q8_0 LM", "q8_0 LM + int8 vision",
                                      "q8_0 LM + f32 vision"};
  e2e_stage *st[2][E2E_CONFS] = {{0}};
  double rss0 = rss_now_gb();
  for (int i = 0; i < n_lm; i++)
    for (int k = 0; k < E2E_CONFS; k++) {
      if (!on[k]) continue;
      e2e_stage *s = st[i][k] = shared_new(sizeof *s);
      if (!s) return 1;
      *s = (e2e_stage){.c = &cfg[i],
                       .lm_dt = lm_dt[k],
                       .vision = vision[k],
                       .video = video,
                       .T = T,
                       .n_tokens = n_tokens};
      fprintf(stderr, "%s %s: building and captioning %s\n", bench_model_name(lms[i]), conf_name[k],
              video);
      if (in_child(run_e2e, s, &s->peak_gb) != 0) {
        fprintf(stderr, "%s %s: %s\n", bench_lm_name(lms[i]), conf_name[k], vb_error_message());
        return 1;
      }
    }
  const e2e_stage *any = st[0][0] ? st[0][0] : st[0][1];
  printf("\nvblip bench end to end: %s (%dx%d), %d frames sampled uniformly, empty prompt, "
         "%d new tokens (greedy), %d threads, random weights%s\n",
         video, any->r.width, any->r.height, any->r.frames, n_tokens, nthr,
         tiny ? " (--tiny: 2 layers per stack, 4096-token vocabulary)" : "");
  printf("cpu: %s; bf16 products %s\n", vb_cpu_describe(), vb_cpu_bf16_products_describe());
  printf("each configuration builds its model in a process of its own (started at %.2f GB RSS);\n"
         "times exclude building; 'first' is a caption right after loading, 'again' a second one; "
         "GB = 1e9 bytes\n",
         rss0);
  printf(
      "RSS bound: 1.15 x weight bytes as held + 1 GB (the loader's budget; f32 vision holds the\n"
      "16-bit ViT and Q-Former weights in f32)\n\n");
  printf("%-4s %-21s %-6s %9s %10s %9s %10s %10s %11s %8s %8s %10s %8s %9s\n", "lm", "config",
         "run", "video ms", "preproc ms", "vision ms", "qformer ms", "prefill ms", "decode ms/t",
         "gen ms", "total s", "weights GB", "peak GB", "bound GB");
  cJSON *root = json_header(lms, n_lm, tiny, nthr);
  cJSON_AddStringToObject(root, "video", video);
  cJSON_AddNumberToObject(root, "frames", T);
  cJSON_AddNumberToObject(root, "new_tokens", n_tokens);
  cJSON *arr = cJSON_AddArrayToObject(root, "end_to_end");
  const char *run_name[2] = {"first", "again"};
  for (int i = 0; i < n_lm; i++)
    for (int k = 0; k < E2E_CONFS; k++) {
      e2e_stage *s = st[i][k];
      if (!s) continue;
      /* the budget of the weights as held (f32 vision from 16-bit weights: twice theirs) */
      double wgb = s->r.weight_bytes / GB, rss_target = 1.15 * s->r.held_bytes / GB + 1;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "lm", bench_lm_name(lms[i]));
      cJSON_AddStringToObject(o, "model", bench_model_name(lms[i]));
      cJSON_AddStringToObject(o, "config", conf_name[k]);
      cJSON_AddNumberToObject(o, "video_width", s->r.width);
      cJSON_AddNumberToObject(o, "video_height", s->r.height);
      cJSON_AddNumberToObject(o, "frames", s->r.frames);
      cJSON_AddNumberToObject(o, "weight_gb", wgb);
      cJSON_AddNumberToObject(o, "peak_rss_gb", s->peak_gb);
      cJSON_AddNumberToObject(o, "peak_rss_bound_gb", rss_target);
      cJSON *runs = cJSON_AddArrayToObject(o, "runs");
      for (int r = 0; r < 2; r++) {
        const bench_e2e_run *x = &s->r.runs[r];
        double ms_tok = x->steps ? x->ms_steps / x->steps : 0;
        printf("%-4s %-21s %-6s %9.0f %10.0f %9.0f %10.0f %10.0f %11.1f %8.0f %8.2f %10.2f %8.2f "
               "%9.2f\n",
               bench_lm_name(lms[i]), conf_name[k], run_name[r], x->ms_decode, x->ms_preprocess,
               x->ms_vision, x->ms_qformer, x->ms_prefill, ms_tok, x->ms_prefill + x->ms_steps,
               x->ms_total / 1e3, wgb, s->peak_gb, rss_target);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "run", run_name[r]);
        cJSON_AddNumberToObject(j, "video_decode_ms", x->ms_decode);
        cJSON_AddNumberToObject(j, "preprocess_ms", x->ms_preprocess);
        cJSON_AddNumberToObject(j, "vision_ms", x->ms_vision);
        cJSON_AddNumberToObject(j, "qformer_ms", x->ms_qformer);
        cJSON_AddNumberToObject(j, "prefill_ms", x->ms_prefill);
        cJSON_AddNumberToObject(j, "decode_ms_per_token", ms_tok);
        cJSON_AddNumberToObject(j, "generate_ms", x->ms_prefill + x->ms_steps);
        cJSON_AddNumberToObject(j, "total_s", x->ms_total / 1e3);
        cJSON_AddNumberToObject(j, "new_tokens", x->new_tokens);
        cJSON_AddItemToArray(runs, j);
      }
      cJSON_AddItemToArray(arr, o);
    }
  for (int i = 0; i < n_lm; i++) /* the fastest vision against bf16 vision, both with the q8_0 LM */
    if (st[i][1] && st[i][2]) {
      double first = st[i][2]->r.runs[0].ms_total / st[i][1]->r.runs[0].ms_total;
      double again = st[i][2]->r.runs[1].ms_total / st[i][1]->r.runs[1].ms_total;
      printf("%s: q8_0 LM + int8 vision over q8_0 LM (bf16 vision), total time: first %.2f, again "
             "%.2f\n",
             bench_lm_name(lms[i]), first, again);
      cJSON_AddNumberToObject(root, i ? "int8_vision_total_ratio_t5" : "int8_vision_total_ratio",
                              again);
    }
  for (int i = 0; i < n_lm; i++) /* f32 vision (the default where bf16 is slow) against bf16 */
    if (st[i][1] && st[i][3])
      printf("%s: q8_0 LM + f32 vision over q8_0 LM (bf16 vision), total time: first %.2f, again "
             "%.2f\n",
             bench_lm_name(lms[i]), st[i][3]->r.runs[0].ms_total / st[i][1]->r.runs[0].ms_total,
             st[i][3]->r.runs[1].ms_total / st[i][1]->r.runs[1].ms_total);
  return write_json(root, json_path);
}

static int usage(const char *argv0) {
  fprintf(
      stderr,
      "usage: %s [--lm opt|t5|both|opt-6.7b|t5-xxl|big] [--frames N] [--prompt N] [--tokens N]\n"
      "         [--beams N] [--threads N] [--json PATH] [--no-f32] [--no-f32-lm] [--no-q8]\n"
      "         [--no-q4] [--no-bf16-lm]\n"
      "         [--no-visual] [--no-int8] [--all-int8] [--no-onednn] [--vision-repeat N] [--peer]\n"
      "         [--video PATH] [--tiny]\n"
      "       %s --dataset MODEL --video PATH [--clips N] [--prefetch N] [--rounds N]\n"
      "         [--frames N] [--tokens N] [--threads N]\n",
      argv0, argv0);
  return 2;
}

int main(int argc, char **argv) {
  int T = 8, n_prompt = 20, n_tokens = 20, beams = 1, threads = 0, do_f32 = 1, do_f32_lm = 1,
      do_q8 = 1;
  int do_onednn = 1;     /* the "bf16 (oneDNN)" vision row on AMX CPUs */
  int vision_repeat = 1; /* --vision-repeat N: each vision row's best of N timed runs */
  int do_visual = 1, do_bf16_lm = 1, tiny = 0, do_int8 = 1, all_int8 = 0, peer = 0, do_q4 = 1;
  const char *json_path = "bench.json", *video = NULL, *lm_arg = "opt", *dataset = NULL;
  int clips = 100, prefetch = 2, rounds = 2;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--frames") && i + 1 < argc)
      T = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
      n_prompt = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
      n_tokens = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--beams") && i + 1 < argc)
      beams = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json") && i + 1 < argc)
      json_path = argv[++i];
    else if (!strcmp(argv[i], "--lm") && i + 1 < argc)
      lm_arg = argv[++i];
    else if (!strcmp(argv[i], "--video") && i + 1 < argc)
      video = argv[++i];
    else if (!strcmp(argv[i], "--no-f32"))
      do_f32 = 0;
    else if (!strcmp(argv[i], "--no-f32-lm"))
      do_f32_lm = 0;
    else if (!strcmp(argv[i], "--no-q8"))
      do_q8 = 0;
    else if (!strcmp(argv[i], "--no-q4"))
      do_q4 = 0;
    else if (!strcmp(argv[i], "--no-visual"))
      do_visual = 0;
    else if (!strcmp(argv[i], "--no-bf16-lm"))
      do_bf16_lm = 0;
    else if (!strcmp(argv[i], "--tiny"))
      tiny = 1;
    else if (!strcmp(argv[i], "--vision-repeat") && i + 1 < argc)
      vision_repeat = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-int8"))
      do_int8 = 0;
    else if (!strcmp(argv[i], "--no-onednn"))
      do_onednn = 0;
    else if (!strcmp(argv[i], "--all-int8"))
      all_int8 = 1;
    else if (!strcmp(argv[i], "--peer"))
      peer = 1;
    else if (!strcmp(argv[i], "--dataset") && i + 1 < argc)
      dataset = argv[++i];
    else if (!strcmp(argv[i], "--clips") && i + 1 < argc)
      clips = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--prefetch") && i + 1 < argc)
      prefetch = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else
      return usage(argv[0]);
  }
  if (vision_repeat < 1 || vision_repeat > 100) {
    fprintf(stderr, "--vision-repeat must be 1 to 100\n");
    return 2;
  }
  if (dataset) {
    if (clips < 1 || prefetch < 1 || rounds < 1 || T < 1 || n_tokens < 1) {
      fprintf(stderr, "--clips, --prefetch, --rounds, --frames and --tokens must be >= 1\n");
      return 2;
    }
    return bench_dataset(dataset, video, clips, prefetch, T, n_tokens, threads, rounds);
  }
  vb_lm_kind lms[2];
  int n_lm = 0, big[2] = {0, 0};
  if (!strcmp(lm_arg, "opt") || !strcmp(lm_arg, "both")) lms[n_lm++] = VB_LM_OPT;
  if (!strcmp(lm_arg, "t5") || !strcmp(lm_arg, "both")) lms[n_lm++] = VB_LM_T5;
  /* the bigger BLIP-2 language models: q8_0 and q4_0 rows only (bf16 and f32
   * would need 13-45 GB) */
  if (!strcmp(lm_arg, "opt-6.7b") || !strcmp(lm_arg, "big")) big[n_lm] = 1, lms[n_lm++] = VB_LM_OPT;
  if (!strcmp(lm_arg, "t5-xxl") || !strcmp(lm_arg, "big")) big[n_lm] = 1, lms[n_lm++] = VB_LM_T5;
  if (n_lm == 0) return usage(argv[0]);
  if (big[0] && video) {
    fprintf(stderr, "--video runs VideoBLIP's own sizes: --lm opt, t5 or both\n");
    return 2;
  }
  if (T < 1 || n_prompt < 1 || n_tokens < 2 || beams < 1 || beams > VB_BENCH_MAX_BEAMS) {
    fprintf(stderr, "frames, prompt >= 1, tokens >= 2 and 1 <= beams <= %d please\n",
            VB_BENCH_MAX_BEAMS);
    return 2;
  }
  if (video && beams != 1) {
    fprintf(stderr, "--beams is for the language-model rows; --video decodes greedily\n");
    return 2;
  }
  if (video && !do_bf16_lm && !do_q8) {
    fprintf(stderr, "--video with --no-bf16-lm and --no-q8 leaves nothing to run\n");
    return 2;
  }
  vb_cpu_init(); /* before any thread: AMX permission, inherited by the children */
  if (threads > 0) omp_set_num_threads(threads);
  vb_model_config cfg[2];
  for (int i = 0; i < n_lm; i++)
    if (bench_config_sized(lms[i], big[i], tiny, &cfg[i]) != 0) {
      fprintf(stderr, "config: %s\n", vb_error_message());
      return 1;
    }
  int nthr = omp_get_max_threads();
  fprintf(stderr, "cpu: %s, %d threads; bf16 products %s\n", vb_cpu_describe(), nthr,
          vb_cpu_bf16_products_describe());
  if (video)
    return e2e_mode(cfg, lms, n_lm, video, T, n_tokens, do_bf16_lm, do_q8, do_int8, tiny, nthr,
                    json_path);

  ceilings *ceil = shared_new(sizeof *ceil);
  if (!ceil) return 1;
  ceil->bw_bytes = tiny ? (size_t)256 << 20 : (size_t)2 << 30;
  ceil->mm_n = tiny ? 1024 : 4096;
  if (in_child(run_ceilings, ceil, NULL) != 0) {
    fprintf(stderr, "ceilings: %s\n", vb_error_message());
    return 1;
  }
  double bw = ceil->read_gbs, mm = ceil->mm_tflops;
  fprintf(stderr, "ceilings: read %.1f GB/s, oneDNN bf16 matmul %.2f TFLOP/s\n", bw, mm);

  /* the vision encoder and Q-Former are the same for both language models;
   * the projection is timed at the first one's width */
  const vb_model_config *c0 = &cfg[0];
  size_t qn = (size_t)c0->num_query_tokens * c0->qformer.hidden_size;
  int seq0 = (c0->vision.image_size / c0->vision.patch_size) *
                 (c0->vision.image_size / c0->vision.patch_size) +
             1;
  size_t vn = (size_t)T * seq0 * c0->vision.hidden_size;
  /* the rows: the default bf16 path, oneDNN's where AMX runs vblip's tiles
   * instead, int8 on the fastest kind (and on every other with --all-int8), f32 */
  visual_conf confs[8];
  int n_conf = 0;
  int amx = vb_tile_kind_usable(VB_TILE_BF16_AMX);
  confs[n_conf++] =
      (visual_conf){amx ? "bf16 (own AMX)" : "bf16", VB_COMPUTE_BF16, 0, VB_TILE_KINDS, 0};
  if (amx && do_onednn)
    confs[n_conf++] = (visual_conf){"bf16 (oneDNN)", VB_COMPUTE_BF16, 0, VB_TILE_KINDS, 1};
  if (do_int8) {
    confs[n_conf++] = (visual_conf){"int8", VB_COMPUTE_BF16, 1, VB_TILE_KINDS, 0};
    for (int k = VB_TILE_I8_AMX; all_int8 && k < VB_TILE_I8_C; k++)
      if (vb_tile_kind_usable(k) && k != (int)vb_tile_i8_best())
        confs[n_conf++] = (visual_conf){vb_tile_kind_name(k), VB_COMPUTE_BF16, 1, k, 0};
  }
  if (do_f32) confs[n_conf++] = (visual_conf){"f32", VB_COMPUTE_F32, 0, VB_TILE_KINDS, 0};
  visual_stage *vis[8] = {0}, *vis_f32 = NULL;
  /* the peer runs between vblip's rows (after each of the first two), so both
   * see the same state of a shared machine */
  enum { MAX_PEERS = 4 };
  char peer_py[MAX_PEERS][512];
  int n_py = peer ? bench_peer_pythons(peer_py, MAX_PEERS) : 0;
  double peer_ms[MAX_PEERS][8] = {{0}}, peer_qf_ms[MAX_PEERS][8] = {{0}};
  int n_peer = 0;
  char peer_version[MAX_PEERS][64] = {""};
  for (int k = 0; k < n_conf && do_visual; k++) {
    visual_stage *s = vis[k] = shared_new(sizeof *s + qn * sizeof(float));
    if (!s) return 1;
    *s = (visual_stage){.c = c0, .conf = confs[k], .T = T, .repeat = vision_repeat};
    if (!(s->vis = shared_new(vn * sizeof(float)))) return 1;
    fprintf(stderr, "visual row %s\n", confs[k].name);
    if (in_child(run_visual, s, &s->peak_gb) != 0) {
      fprintf(stderr, "visual %s: %s\n", confs[k].name, vb_error_message());
      return 1;
    }
    if (confs[k].compute == VB_COMPUTE_F32) vis_f32 = s;
    if (peer && k < 2) {
      for (int p = 0; p < n_py; p++) {
        fprintf(stderr, "PyTorch peer (%s), %d frames\n", peer_py[p], T);
        if (bench_peer_run(peer_py[p], T, nthr, &peer_ms[p][n_peer], &peer_qf_ms[p][n_peer],
                           peer_version[p], sizeof peer_version[p]) != 0) {
          fprintf(stderr, "peer: %s\n", vb_error_message());
          return 1;
        }
        fprintf(stderr, "  peer: vision %.0f ms, qformer %.0f ms\n", peer_ms[p][n_peer],
                peer_qf_ms[p][n_peer]);
      }
      n_peer++;
    }
  }
  const visual_stage *vis_ref = vis_f32 ? vis_f32 : vis[0];
  /* every language model starts from the f32 pipeline's queries when there is one */
  const float *queries = vis_ref ? vis_ref->queries : NULL;
  enum { LM_DTS = 5, LM_F32 = 4 };
  const vb_dtype lm_dt[LM_DTS] = {VB_DT_BF16, VB_DT_Q8_0, VB_DT_Q4_0, VB_DT_Q4_K, VB_DT_F32};
  const int lm_on[LM_DTS] = {do_bf16_lm, do_q8, do_q4, do_q4, do_f32 && do_f32_lm};
  lm_stage *lm[2][LM_DTS] = {{0}};
  for (int i = 0; i < n_lm; i++) {
    int V = lms[i] == VB_LM_T5 ? cfg[i].t5.vocab_size : cfg[i].opt.vocab_size;
    for (int k = 0; k < LM_DTS; k++) {
      if (!lm_on[k] || (big[i] && (lm_dt[k] == VB_DT_BF16 || lm_dt[k] == VB_DT_F32))) continue;
      /* the weights are built in memory, written to a file and mapped back:
       * a row that cannot fit is skipped with the numbers, not OOM-killed */
      double need = model_bytes(&cfg[i], lm_dt[k]) * 1.15 + 1e9;
      uint64_t avail = 0;
      const char *src = "";
      if (vb_memory_available(&avail, &src) == 0 && need > (double)avail) {
        fprintf(stderr, "%s %s lm: not run: needs about %.1f GB, %.1f GB available (%s)\n",
                bench_lm_label(lms[i], big[i]), dt_name(lm_dt[k]), need / GB, avail / GB, src);
        continue;
      }
      lm_stage *s = lm[i][k] = shared_new(sizeof *s + (size_t)V * sizeof(float));
      if (!s) return 1;
      *s = (lm_stage){.c = &cfg[i],
                      .label = bench_lm_label(lms[i], big[i]),
                      .dt = lm_dt[k],
                      .queries = queries,
                      .n_prompt = n_prompt,
                      .n_tokens = n_tokens,
                      .beams = beams};
      if (in_child(run_lm, s, &s->peak_gb) != 0) {
        fprintf(stderr, "%s %s lm: %s\n", bench_lm_label(lms[i], big[i]), dt_name(lm_dt[k]),
                vb_error_message());
        return 1;
      }
      if (s->peak_model_gb > 0) s->peak_gb = s->peak_model_gb; /* without the read buffer */
    }
  }

  printf("\nvblip bench: random weights%s, %d threads, every row in a process of its own "
         "(started at %.2f GB RSS); GB = 1e9 bytes\n",
         tiny ? " (--tiny: 2 layers per stack, 4096-token vocabulary)" : "", nthr, rss_now_gb());
  printf("cpu: %s; bf16 products %s\n", vb_cpu_describe(), vb_cpu_bf16_products_describe());
  printf("ceilings: read bandwidth %.1f GB/s, oneDNN %d.%d bf16 matmul (%d^3) %.2f TFLOP/s", bw,
         dnnl_version()->major, dnnl_version()->minor, ceil->mm_n, mm);
  if (ceil->mm_own_tflops > 0) printf(", own AMX tiles %.2f TFLOP/s", ceil->mm_own_tflops);
  printf("\nregister peaks (all threads, TFLOP/s; int8: TOP/s):");
  for (int p = 0; p < PEAKS; p++)
    if (ceil->peak[p] > 0) printf(" %s %.2f", k_peak_name[p], ceil->peak[p]);
  printf("\n");
  cJSON *root = json_header(lms, n_lm, tiny, nthr);
  cJSON_AddNumberToObject(root, "frames", T);
  cJSON_AddNumberToObject(root, "prompt_tokens", c0->num_query_tokens + n_prompt);
  cJSON_AddNumberToObject(root, "new_tokens", n_tokens);
  cJSON_AddNumberToObject(root, "decode_rows_per_step", beams);
  cJSON_AddNumberToObject(root, "read_bandwidth_gbs", bw);
  cJSON_AddNumberToObject(root, "bf16_matmul_tflops", mm);
  cJSON_AddNumberToObject(root, "bf16_matmul_size", ceil->mm_n);
  if (ceil->mm_own_tflops > 0)
    cJSON_AddNumberToObject(root, "bf16_matmul_own_amx_tflops", ceil->mm_own_tflops);
  cJSON *pk = cJSON_AddObjectToObject(root, "register_peaks");
  for (int p = 0; p < PEAKS; p++)
    if (ceil->peak[p] > 0) cJSON_AddNumberToObject(pk, k_peak_name[p], ceil->peak[p]);
  if (vis[0]) {
    printf(
        "\nvisual: ViT %dx%d, Q-Former %dx%d (+ projection to %d), %d frames; vision %.2f TFLOP\n",
        c0->vision.num_hidden_layers, c0->vision.hidden_size, c0->qformer.num_hidden_layers,
        c0->qformer.hidden_size, c0->lm_hidden, T, vision_flops(c0, T) / 1e12);
    printf("of mm: of oneDNN's matmul above; of peak: of the register peak of the row's path;\n"
           "errors: relative L2 against the %s row (vision output, Q-Former output)\n",
           vis_f32 ? "f32" : "first");
    printf("%-16s %-11s %9s %8s %6s %7s %10s %9s %9s %7s\n", "row", "path", "vision ms", "TFLOP/s",
           "of mm", "of peak", "qformer ms", "vis err", "query err", "peak GB");
    cJSON *arr = cJSON_AddArrayToObject(root, "visual");
    double ms_bf16 = vis[0]->ms_vision, ms_int8 = 0;
    for (int k = 0; k < n_conf; k++) {
      visual_stage *s = vis[k];
      if (!s) continue;
      int pk = row_peak(s);
      double frac = pk >= 0 && ceil->peak[pk] > 0 ? s->tflops / ceil->peak[pk] : 0;
      double ev = s == vis_ref ? 0 : rel_l2(s->vis, vis_ref->vis, vn);
      double eq = s == vis_ref ? 0 : rel_l2(s->queries, vis_ref->queries, qn);
      if (s->conf.int8 && !ms_int8) ms_int8 = s->ms_vision;
      printf("%-16s %-11s %9.0f %8.2f %5.0f%% %6.0f%% %10.0f %9.3g %9.3g %7.2f\n", s->conf.name,
             s->path, s->ms_vision, s->tflops, 100 * s->tflops / mm, 100 * frac, s->ms_qformer, ev,
             eq, s->peak_gb);
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "row", s->conf.name);
      cJSON_AddStringToObject(o, "path", s->path);
      cJSON_AddNumberToObject(o, "vision_ms", s->ms_vision);
      cJSON_AddNumberToObject(o, "vision_tflops", s->tflops);
      cJSON_AddNumberToObject(o, "vision_ratio_to_matmul", s->tflops / mm);
      cJSON *fr = cJSON_AddObjectToObject(o, "vision_ratio_to_peak");
      for (int p = 0; p < PEAKS; p++)
        if (ceil->peak[p] > 0)
          cJSON_AddNumberToObject(fr, k_peak_name[p], s->tflops / ceil->peak[p]);
      cJSON_AddNumberToObject(o, "qformer_ms", s->ms_qformer);
      cJSON_AddNumberToObject(o, "vision_rel_err", ev);
      cJSON_AddNumberToObject(o, "query_rel_err", eq);
      cJSON_AddNumberToObject(o, "peak_rss_gb", s->peak_gb);
      cJSON_AddItemToArray(arr, o);
    }
    if (ms_int8 > 0) {
      printf("int8 / bf16 vision time: %.2f\n", ms_int8 / ms_bf16);
      cJSON_AddNumberToObject(root, "vision_int8_over_bf16", ms_int8 / ms_bf16);
    }
    cJSON *peers = n_peer > 0 ? cJSON_AddArrayToObject(root, "peers") : NULL;
    for (int p = 0; p < n_py && n_peer > 0; p++) {
      double best = peer_ms[p][0], best_qf = peer_qf_ms[p][0];
      for (int i = 1; i < n_peer; i++)
        best = fmin(best, peer_ms[p][i]), best_qf = fmin(best_qf, peer_qf_ms[p][i]);
      printf("PyTorch peer (torch %s, %s, bf16, %d threads, bench/peer/vit_qformer.py), runs "
             "between the rows above:\n"
             "  vision",
             peer_version[p], peer_py[p], nthr);
      for (int i = 0; i < n_peer; i++)
        printf(" %.0f", peer_ms[p][i]);
      printf(" ms, Q-Former");
      for (int i = 0; i < n_peer; i++)
        printf(" %.0f", peer_qf_ms[p][i]);
      printf(" ms; peer vision time over each row's (best peer run):");
      for (int k = 0; k < n_conf; k++)
        printf(" %s %.2fx;", vis[k]->conf.name, best / vis[k]->ms_vision);
      printf("\n");
      /* "peer": the first interpreter (as before several could be given); "peers": all */
      cJSON *pj = p == 0 ? cJSON_AddObjectToObject(root, "peer") : cJSON_CreateObject();
      cJSON_AddStringToObject(pj, "torch", peer_version[p]);
      cJSON_AddStringToObject(pj, "python", peer_py[p]);
      cJSON_AddItemToObject(pj, "vision_ms", cJSON_CreateDoubleArray(peer_ms[p], n_peer));
      cJSON_AddItemToObject(pj, "qformer_ms", cJSON_CreateDoubleArray(peer_qf_ms[p], n_peer));
      cJSON_AddNumberToObject(pj, "vision_speedup_bf16", best / ms_bf16);
      if (ms_int8 > 0) cJSON_AddNumberToObject(pj, "vision_speedup_int8", best / ms_int8);
      cJSON_AddNumberToObject(pj, "qformer_ms_best", best_qf);
      cJSON_AddItemToArray(peers, p == 0 ? cJSON_Duplicate(pj, 1) : pj);
    }
  }
  int any_lm = 0;
  for (int i = 0; i < n_lm; i++)
    for (int k = 0; k < LM_DTS; k++)
      any_lm |= lm[i][k] != NULL;
  if (any_lm) {
    printf(
        "\nlanguage models: prompt %d+%d tokens (%s), %d decode steps timed, %d row%s per step%s;\n"
        "GB/token: the weights a decoding step reads\n",
        c0->num_query_tokens, n_prompt, queries ? "queries from the visual rows" : "random queries",
        n_tokens - 1, beams, beams > 1 ? "s" : "", beams > 1 ? " (as beam search)" : "");
    for (int i = 0; i < n_lm; i++)
      if (lms[i] == VB_LM_T5)
        printf("  %s: %s, encoder %d + decoder %d x %d, %d heads, d_ff %d, vocab %d; "
               "prefill = encoder + first decoder step\n",
               bench_lm_label(lms[i], big[i]), bench_model_name_sized(lms[i], big[i]),
               cfg[i].t5.num_layers, cfg[i].t5.num_decoder_layers, cfg[i].t5.d_model,
               cfg[i].t5.num_heads, cfg[i].t5.d_ff, cfg[i].t5.vocab_size);
      else
        printf("  %s: %s, %d x %d, %d heads, ffn %d, vocab %d\n", bench_lm_label(lms[i], big[i]),
               bench_model_name_sized(lms[i], big[i]), cfg[i].opt.num_hidden_layers,
               cfg[i].opt.hidden_size, cfg[i].opt.num_attention_heads, cfg[i].opt.ffn_dim,
               cfg[i].opt.vocab_size);
    printf("ms/t/ideal: decode time over weight bytes / bandwidth, with the run's best read\n"
           "bandwidth (best) and with reads timed right before and after each step (median, "
           "interleaved)\n");
    printf("%-8s %-6s %8s %10s %11s %9s %9s %7s %10s %11s %8s\n", "lm", "dtype", "build ms",
           "prefill ms", "decode ms/t", "GB/token", "GB/s", "of bw", "best", "interleaved",
           "peak GB");
    cJSON *arr = cJSON_AddArrayToObject(root, "language_models");
    for (int i = 0; i < n_lm; i++) {
      int V = lms[i] == VB_LM_T5 ? cfg[i].t5.vocab_size : cfg[i].opt.vocab_size;
      for (int k = 0; k < LM_DTS; k++) {
        lm_stage *s = lm[i][k];
        if (!s) continue;
        double gbs = s->decode_gb / (s->ms_token / 1e3), ideal = s->decode_gb / bw * 1e3;
        printf("%-8s %-6s %8.0f %10.0f %11.1f %9.2f %9.1f %6.0f%% %10.2f %11.2f %8.2f\n",
               bench_lm_label(lms[i], big[i]), dt_name(s->dt), s->ms_load, s->ms_prefill,
               s->ms_token, s->decode_gb, gbs, 100 * gbs / bw, s->ms_token / ideal,
               s->ratio_interleaved, s->peak_gb);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "lm", bench_lm_label(lms[i], big[i]));
        cJSON_AddStringToObject(o, "model", bench_model_name_sized(lms[i], big[i]));
        cJSON_AddStringToObject(o, "dtype", dt_name(s->dt));
        cJSON_AddNumberToObject(o, "build_ms", s->ms_load);
        cJSON_AddNumberToObject(o, "prefill_ms", s->ms_prefill);
        cJSON_AddNumberToObject(o, "decode_ms_per_token", s->ms_token);
        cJSON_AddNumberToObject(o, "decode_weight_gb", s->decode_gb);
        cJSON_AddNumberToObject(o, "decode_gbs", gbs);
        cJSON_AddNumberToObject(o, "decode_ratio_to_ideal", s->ms_token / ideal);
        cJSON_AddNumberToObject(o, "decode_ratio_to_ideal_interleaved", s->ratio_interleaved);
        cJSON_AddNumberToObject(o, "peak_rss_gb", s->peak_gb);
        /* first-step logits against f32 (q8_0 and 4-bit against bf16 when there
         * is no f32 row, 4-bit against q8_0 when there is neither) */
        const lm_stage *ref = lm[i][LM_F32]        ? lm[i][LM_F32]
                              : k >= 1 && lm[i][0] ? lm[i][0]
                              : k >= 2 && lm[i][1] ? lm[i][1]
                                                   : NULL;
        if (ref && ref != s) {
          double e = rel_l2(s->logits, ref->logits, (size_t)V);
          printf("     first-step logits vs %s: relative error %.3g\n", dt_name(ref->dt), e);
          cJSON_AddStringToObject(o, "logits_rel_err_against", dt_name(ref->dt));
          cJSON_AddNumberToObject(o, "logits_rel_err", e);
        }
        cJSON_AddItemToArray(arr, o);
      }
      for (int k = 2; k <= 3; k++) /* 4-bit against 8-bit decoding, the same run */
        if (lm[i][1] && lm[i][k]) {
          double r = lm[i][k]->ms_token / lm[i][1]->ms_token;
          printf("     %s %s / q8_0 decode time: %.2f (bytes per token %.2f)\n",
                 bench_lm_label(lms[i], big[i]), dt_name(lm_dt[k]), r,
                 lm[i][k]->decode_gb / lm[i][1]->decode_gb);
          cJSON *o = cJSON_CreateObject();
          cJSON_AddStringToObject(o, "lm", bench_lm_label(lms[i], big[i]));
          cJSON_AddNumberToObject(o, k == 2 ? "q4_0_over_q8_0_decode" : "q4_k_over_q8_0_decode", r);
          cJSON_AddItemToArray(arr, o);
        }
      if (lm[i][2] && lm[i][3]) {
        double r = lm[i][3]->ms_token / lm[i][2]->ms_token,
               p = lm[i][3]->ms_prefill / lm[i][2]->ms_prefill;
        printf("     %s q4_k / q4_0: decode time %.2f, prefill time %.2f\n",
               bench_lm_label(lms[i], big[i]), r, p);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "lm", bench_lm_label(lms[i], big[i]));
        cJSON_AddNumberToObject(o, "q4_k_over_q4_0_decode", r);
        cJSON_AddNumberToObject(o, "q4_k_over_q4_0_prefill", p);
        cJSON_AddItemToArray(arr, o);
      }
    }
  }
  return write_json(root, json_path);
}
