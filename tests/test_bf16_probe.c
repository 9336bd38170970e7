/* Where bf16 products are slower than f32 ones (bf16_probe.c), the vision
 * encoder and Q-Former of a model loaded with the defaults run in f32:
 *  - the probe's decision follows $VBLIP_BF16_PRODUCTS=fast|slow; measured,
 *    it is "fast" exactly where AMX-BF16 is usable or VDPBF16PS gave at least
 *    1.25x the f32 FMA flops, and "slow" without any bf16 instructions;
 *  - the fixture model loaded with the defaults on a bf16 CPU: vision f32
 *    where bf16 products are slow, bf16 where fast; --dtype bf16 and
 *    --vision-dtype bf16 keep bf16, --vision-dtype f32 and a q8_0 language
 *    model follow the same rule;
 *  - the f32 vision that auto picks gives the Q-Former output and projection
 *    of --vision-dtype f32 bit for bit, and those differ from bf16's;
 *  - auto (and int8's other products) keeps bf16 where the memory check
 *    (VBLIP_MEMORY_AVAILABLE) passes the model with bf16 vision but not with
 *    f32 vision.
 * Runs itself again with the decision forced each way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "models/memory_check.h"
#include "runtime/cpu.h"
#include "testutil.h"
#include "vblip.h"

#define MODEL "models/videoblip-opt-tiny"
#define VIDEO "media/video1_h264_320x240_30fps_12s.mp4"

static void check_decision(void) {
  const vb_cpu_features *f = vb_cpu();
  const char *env = getenv("VBLIP_BF16_PRODUCTS");
  int fast = vb_cpu_bf16_products_fast();
  double ratio = vb_cpu_bf16_products_ratio();
  printf("bf16 products: %s\n", vb_cpu_bf16_products_describe());
  if (env && strcmp(env, "slow") == 0) {
    CHECK(!fast, "VBLIP_BF16_PRODUCTS=slow gave fast");
  } else if (env && strcmp(env, "fast") == 0) {
    CHECK(fast == (f->amx_usable || f->avx512_bf16), "VBLIP_BF16_PRODUCTS=fast: %d", fast);
  } else if (f->amx_usable) {
    CHECK(fast, "AMX-BF16 usable, yet bf16 products slow");
  } else if (f->avx512_bf16) {
    CHECK(ratio > 0.05 && ratio < 20, "VDPBF16PS / FMA flops measured as %g", ratio);
    CHECK(fast == (ratio >= 1.25), "ratio %.2f, decision %d", ratio, fast);
  } else {
    CHECK(!fast && ratio == 0, "no bf16 instructions: fast %d ratio %g", fast, ratio);
  }
  CHECK(strncmp(vb_cpu_bf16_products_describe(), fast ? "fast" : "slow", 4) == 0, "description %s",
        vb_cpu_bf16_products_describe());
}

static vblip_model *load(vblip_dtype dt, vblip_vision_dtype vd) {
  vblip_load_options o;
  vblip_load_options_default(&o);
  o.progress = 0;
  o.dtype = dt;
  o.vision_dtype = vd;
  vblip_model *m = vblip_model_load(tu_fixture(MODEL), &o);
  CHECK(m != NULL, "load: %s", vblip_last_error());
  return m;
}

static void check_vision_dtype(vblip_dtype dt, vblip_vision_dtype vd, const char *want,
                               const char *what) {
  vblip_model *m = load(dt, vd);
  if (!m) return;
  CHECK(strcmp(vblip_model_vision_dtype(m), want) == 0, "%s: vision %s, expected %s", what,
        vblip_model_vision_dtype(m), want);
  vblip_model_free(m);
}

/* The Q-Former output and projection of the fixture video (n floats each) */
static int encode(vblip_dtype dt, vblip_vision_dtype vd, vblip_video *v) {
  vblip_model *m = load(dt, vd);
  if (!m) return -1;
  int rc = vblip_video_load(m, tu_fixture(VIDEO), NULL, v);
  if (rc == 0) rc = vblip_video_encode(m, v);
  CHECK(rc == 0, "encode: %s", vblip_last_error());
  vblip_model_free(m);
  return rc;
}

static void check_outputs(int slow) {
  vblip_video a, b, c;
  if (encode(VBLIP_DTYPE_AUTO, VBLIP_VISION_AUTO, &a) != 0) return;
  if (encode(VBLIP_DTYPE_AUTO, VBLIP_VISION_F32, &b) != 0 ||
      encode(VBLIP_DTYPE_AUTO, VBLIP_VISION_BF16, &c) != 0) {
    vblip_video_free(&a);
    return;
  }
  size_t nq = (size_t)a.n_query * a.qformer_width, np = (size_t)a.n_query * a.lm_width;
  int same_f32 = memcmp(a.qformer, b.qformer, nq * sizeof(float)) == 0 &&
                 memcmp(a.projected, b.projected, np * sizeof(float)) == 0;
  int same_bf16 = memcmp(a.qformer, c.qformer, nq * sizeof(float)) == 0;
  printf("auto vs f32 vision: Q-Former rel %.3g; auto vs bf16 vision: %.3g\n",
         tu_rel_l2f(a.qformer, b.qformer, nq), tu_rel_l2f(a.qformer, c.qformer, nq));
  /* f32 vision differs from bf16's on every CPU with bf16 kernels */
  CHECK(memcmp(b.qformer, c.qformer, nq * sizeof(float)) != 0 || !vb_cpu_prefers_bf16(),
        "f32 and bf16 vision agree bit for bit: the dtype was not applied");
  if (slow)
    CHECK(same_f32, "auto vision with bf16 products slow differs from f32 vision (rel %g)",
          tu_rel_l2f(a.qformer, b.qformer, nq));
  else
    CHECK(same_bf16, "auto vision with bf16 products fast differs from bf16 vision (rel %g)",
          tu_rel_l2f(a.qformer, c.qformer, nq));
  vblip_video_free(&a), vblip_video_free(&b), vblip_video_free(&c);
}

/* Where auto would pick f32 vision: with the memory available between the
 * estimates of bf16 and f32 vision, it keeps bf16; above both, f32. */
static void check_memory_fallback(void) {
  vb_model_config cfg;
  vb_weights w;
  if (!CHECK_OK(vb_config_load(tu_fixture(MODEL), &cfg)) ||
      !CHECK_OK(vb_weights_open(tu_fixture(MODEL), &w)))
    return;
  vb_memory_need lo, hi;
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_BF16, VB_COMPUTE_BF16, VB_DT_F32, &lo);
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_BF16, VB_COMPUTE_F32, VB_DT_F32, &hi);
  vb_weights_close(&w);
  if (!CHECK(hi.total > lo.total, "f32 vision estimated at %llu bytes, bf16 at %llu",
             (unsigned long long)hi.total, (unsigned long long)lo.total))
    return;
  char v[32];
  snprintf(v, sizeof v, "%llu", (unsigned long long)(lo.total + hi.total) / 2);
  setenv("VBLIP_MEMORY_AVAILABLE", v, 1);
  check_vision_dtype(VBLIP_DTYPE_AUTO, VBLIP_VISION_AUTO, "bf16", "f32 vision would not fit");
  /* int8 asked for: its other products (Q-Former) fall back the same way, not refused */
  check_vision_dtype(VBLIP_DTYPE_AUTO, VBLIP_VISION_INT8, "int8", "int8, f32 would not fit");
  /* asked for, f32 is not traded away: the model is refused with the numbers */
  vblip_load_options o;
  vblip_load_options_default(&o);
  o.progress = 0;
  o.vision_dtype = VBLIP_VISION_F32;
  vblip_model *m = vblip_model_load(tu_fixture(MODEL), &o);
  CHECK(m == NULL && strstr(vblip_last_error(), "GB of memory"),
        "--vision-dtype f32 that does not fit: %s", m ? "loaded" : vblip_last_error());
  vblip_model_free(m);
  snprintf(v, sizeof v, "%llu", (unsigned long long)hi.total + 1000000);
  setenv("VBLIP_MEMORY_AVAILABLE", v, 1);
  check_vision_dtype(VBLIP_DTYPE_AUTO, VBLIP_VISION_AUTO, "f32", "f32 vision fits");
  unsetenv("VBLIP_MEMORY_AVAILABLE");
}

int main(void) {
  check_decision();
  int bf16_cpu = vb_cpu_prefers_bf16(), fast = vb_cpu_bf16_products_fast();
  /* the default: bf16 compute where the CPU has bf16 kernels, vision f32 there when slow */
  const char *auto_vision = bf16_cpu && fast ? "bf16" : "f32";
  check_vision_dtype(VBLIP_DTYPE_AUTO, VBLIP_VISION_AUTO, auto_vision, "defaults");
  check_vision_dtype(VBLIP_DTYPE_Q8_0, VBLIP_VISION_AUTO, fast ? "bf16" : "f32",
                     "--dtype q8_0 (bf16 compute)");
  check_vision_dtype(VBLIP_DTYPE_BF16, VBLIP_VISION_AUTO, "bf16", "--dtype bf16");
  check_vision_dtype(VBLIP_DTYPE_AUTO, VBLIP_VISION_BF16, "bf16", "--vision-dtype bf16");
  check_vision_dtype(VBLIP_DTYPE_AUTO, VBLIP_VISION_F32, "f32", "--vision-dtype f32");
  check_vision_dtype(VBLIP_DTYPE_F32, VBLIP_VISION_AUTO, "f32", "--dtype f32");
  check_outputs(!fast);
  if (bf16_cpu && !fast) check_memory_fallback();
  tu_rerun_with_env("VBLIP_BF16_PRODUCTS=slow");
  tu_rerun_with_env("VBLIP_BF16_PRODUCTS=fast");
  return tu_finish();
}
