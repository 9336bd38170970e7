/* The memory check before loading (issue 23): a model that needs more than is
 * available is refused before any work with the numbers and the options, exit
 * status 1 and one line; VBLIP_MEMORY_CHECK=0 loads it anyway; sizes parse;
 * the estimate follows the compute type. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "models/memory_check.h"
#include "runtime/memory.h"
#include "testutil.h"

#define MODEL "models/videoblip-opt-tiny"
#define IMAGE "media/image_rgb_203x150.png"

static void check_parse(void) {
  static const struct {
    const char *s;
    int ok;
    uint64_t v;
  } cases[] = {{"123", 1, 123},
               {"1K", 1, 1024},
               {"512M", 1, 512ull << 20},
               {"1.5G", 1, 3ull << 29},
               {"2GiB", 1, 2ull << 30},
               {"1T", 1, 1ull << 40},
               {"", 0, 0},
               {"x", 0, 0},
               {"-1G", 0, 0},
               {"1Q", 0, 0},
               {"1GBx", 0, 0},
               {"1e30", 0, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t v = 0;
    int rc = vb_parse_bytes(cases[i].s, &v);
    CHECK(cases[i].ok ? rc == 0 && v == cases[i].v : rc != 0, "\"%s\": rc %d, %llu", cases[i].s, rc,
          (unsigned long long)v);
  }
  uint64_t avail = 0;
  const char *src = NULL;
  unsetenv("VBLIP_MEMORY_AVAILABLE");
  CHECK(vb_memory_available(&avail, &src) == 0 && avail > 0 && src, "available: %s",
        vb_error_message());
}

/* The fixture's weights: bf16 compute holds the linear layers in half the f32 bytes. */
static void check_estimate(void) {
  vb_model_config cfg;
  vb_weights w;
  if (!CHECK_OK(vb_config_load(tu_fixture(MODEL), &cfg)) ||
      !CHECK_OK(vb_weights_open(tu_fixture(MODEL), &w)))
    return;
  vb_memory_need f32, bf16, q4;
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_F32, VB_COMPUTE_F32, VB_DT_F32, &f32);
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_BF16, VB_COMPUTE_BF16, VB_DT_F32, &bf16);
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_BF16, VB_COMPUTE_BF16, VB_DT_Q4_0, &q4);
  CHECK(q4.weights < bf16.weights, "q4_0 at load %llu vs bf16 %llu", (unsigned long long)q4.weights,
        (unsigned long long)bf16.weights);
  /* q4_k at load: counted at 4.5 bits a value like q4_0 (the fixture's 32- and 64-wide
   * layers are quantized Q4_0: no whole 256-value super-block) */
  vb_memory_need q4k;
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_BF16, VB_COMPUTE_BF16, VB_DT_Q4_K, &q4k);
  CHECK(q4k.weights == q4.weights, "q4_k at load %llu vs q4_0 %llu on narrow layers",
        (unsigned long long)q4k.weights, (unsigned long long)q4.weights);
  /* f32 vision (--vision-dtype f32, or bf16 products slow) beside a bf16 language model:
   * the vision and Q-Former layers at 4 bytes, the rest at 2; each tensor counts under
   * exactly one of the two compute types */
  vb_memory_need mixed, mixed2;
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_BF16, VB_COMPUTE_F32, VB_DT_F32, &mixed);
  vb_memory_estimate(&cfg, &w.tt, VB_COMPUTE_F32, VB_COMPUTE_BF16, VB_DT_F32, &mixed2);
  CHECK(mixed.weights > bf16.weights && mixed2.weights < f32.weights,
        "bf16 LM + f32 vision %llu (all bf16 %llu), f32 LM + bf16 vision %llu (all f32 %llu)",
        (unsigned long long)mixed.weights, (unsigned long long)bf16.weights,
        (unsigned long long)mixed2.weights, (unsigned long long)f32.weights);
  CHECK(mixed.weights + mixed2.weights == f32.weights + bf16.weights,
        "mixed estimates %llu + %llu != f32 %llu + bf16 %llu", (unsigned long long)mixed.weights,
        (unsigned long long)mixed2.weights, (unsigned long long)f32.weights,
        (unsigned long long)bf16.weights);
  uint64_t stored = 0;
  for (size_t i = 0; i < w.tt.count; i++)
    stored += w.tt.items[i].nbytes;
  /* f32 checkpoint, f32 compute: every tensor once (the tied head is not stored in safetensors) */
  CHECK(f32.weights == stored, "f32 estimate %llu, stored %llu", (unsigned long long)f32.weights,
        (unsigned long long)stored);
  CHECK(bf16.weights > stored / 2 && bf16.weights != f32.weights, "bf16 estimate %llu vs f32 %llu",
        (unsigned long long)bf16.weights, (unsigned long long)f32.weights);
  CHECK(f32.kv > 0 && f32.kv == bf16.kv && f32.vision > 0 &&
            f32.total > f32.weights + f32.kv + f32.vision,
        "kv %llu vision %llu", (unsigned long long)f32.kv, (unsigned long long)f32.vision);
  vb_weights_close(&w);
}

static void check_cli(void) {
  char cmd[2048], *out = NULL;
  const char *base = "%s %s caption -m %s --max-new-tokens 2 --beams 1 %s 2>&1";
  snprintf(cmd, sizeof cmd, base, "VBLIP_MEMORY_AVAILABLE=100M", VBLIP_BINARY, tu_fixture(MODEL),
           tu_fixture(IMAGE));
  int rc = tu_run(cmd, &out);
  CHECK(rc == 1 && out && strstr(out, "needs about") &&
            strstr(out, "are available (VBLIP_MEMORY_AVAILABLE)") &&
            strstr(out, "VBLIP_MEMORY_CHECK=0") && strchr(out, '\n') == out + strlen(out) - 1,
        "too little memory: rc %d, %s", rc, out ? out : "");
  free(out);
  snprintf(cmd, sizeof cmd, base, "VBLIP_MEMORY_AVAILABLE=100M VBLIP_MEMORY_CHECK=0", VBLIP_BINARY,
           tu_fixture(MODEL), tu_fixture(IMAGE));
  rc = tu_run(cmd, &out);
  CHECK(rc == 0, "VBLIP_MEMORY_CHECK=0: rc %d, %s", rc, out ? out : "");
  free(out);
  snprintf(cmd, sizeof cmd, base, "VBLIP_MEMORY_AVAILABLE=64G", VBLIP_BINARY, tu_fixture(MODEL),
           tu_fixture(IMAGE));
  rc = tu_run(cmd, &out);
  CHECK(rc == 0, "enough memory: rc %d, %s", rc, out ? out : "");
  free(out);
  snprintf(cmd, sizeof cmd, base, "VBLIP_MEMORY_AVAILABLE=lots", VBLIP_BINARY, tu_fixture(MODEL),
           tu_fixture(IMAGE));
  rc = tu_run(cmd, &out);
  CHECK(rc == 1 && out && strstr(out, "VBLIP_MEMORY_AVAILABLE=lots"), "malformed: rc %d, %s", rc,
        out ? out : "");
  free(out);
}

int main(void) {
  check_parse();
  check_estimate();
  check_cli();
  return tu_finish();
}
