/* vblip convert's memory is bounded by a part of one tensor, not by the model
 * (issue 23): a synthetic ~170 MB OPT checkpoint in 4 safetensors shards is
 * converted by the CLI to q8_0 and bf16, and the process's peak RSS stays
 * within the peak of converting the 13 MB fixture plus one shard (without
 * dropping the pages it has read, the whole checkpoint would be resident at
 * the end). test_big_shapes checks that converted files answer as their
 * directories do. Loading the directory with --dtype q4_0 (quantized at load)
 * likewise stays within what the 4-bit model holds. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "synth_model.h"
#include "testutil.h"

/* Runs vblip with argv; its peak RSS in MB, or -1. */
static double peak_mb(char **argv) {
  /* fork, not posix_spawn: a vfork-style child shares this process's memory
   * until exec and would start with this process's peak RSS as its own */
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stdout)) _exit(127); /* captions are not the point */
    execv(VBLIP_BINARY, argv);
    _exit(127);
  }
  if (!CHECK(pid > 0, "cannot run %s", VBLIP_BINARY)) return -1;
  int status;
  struct rusage ru;
  if (!CHECK(wait4(pid, &status, 0, &ru) == pid, "wait4 failed")) return -1;
  if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "vblip %s %s failed (status %d)",
             argv[1], argv[3], status))
    return -1;
  return ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB */
}

/* `vblip convert -m model -o out --type type --quiet` */
static double convert_peak_mb(const char *model, const char *out, const char *type) {
  char *argv[] = {VBLIP_BINARY, "convert", "-m",         (char *)model, "-o",
                  (char *)out,  "--type",  (char *)type, "--quiet",     NULL};
  return peak_mb(argv);
}

/* `vblip caption -m model --dtype dtype` on the still image, 2 greedy tokens */
static double caption_peak_mb(const char *model, const char *dtype) {
  char *argv[] = {VBLIP_BINARY,  "caption", "-m",
                  (char *)model, "--dtype", (char *)dtype,
                  "--beams",     "1",       "-n",
                  "2",           "--quiet", (char *)tu_fixture("media/image_rgb_203x150.png"),
                  NULL};
  return peak_mb(argv);
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int main(void) {
  char dir[512], out[600], shard[700];
  snprintf(dir, sizeof dir, "%s/opt-wide-4shards", tu_tmpdir());
  snprintf(out, sizeof out, "%s.gguf", dir);
  /* 12 layers of 256 with a 4096-wide feed-forward: 113 MB of layers and a
   * 51 MB vocabulary matrix in f32, in 4 shards of ~41 MB */
  if (tu_synth_model(tu_fixture("models/videoblip-opt-tiny"), dir,
                     "{\"hidden_size\":256,\"word_embed_proj_dim\":256,\"ffn_dim\":4096,"
                     "\"num_hidden_layers\":12,\"num_attention_heads\":8}",
                     5, 4) != 0)
    return tu_finish();
  long long total = 0, biggest = 0;
  for (int s = 1; s <= 4; s++) {
    snprintf(shard, sizeof shard, "%s/model-%05d-of-00004.safetensors", dir, s);
    long long n = file_size(shard);
    CHECK(n > 0, "shard %s missing", shard);
    total += n;
    if (n > biggest) biggest = n;
  }
  const char *types[2] = {"q8_0", "bf16"};
  for (int t = 0; t < 2; t++) {
    /* the constant: converting the 13 MB fixture (libraries, tokenizer files, buffers) */
    double base = convert_peak_mb(tu_fixture("models/videoblip-opt-tiny"), out, types[t]);
    double peak = convert_peak_mb(dir, out, types[t]);
    if (base < 0 || peak < 0) continue;
    double bound = base + biggest / 1048576.0;
    printf("convert %.0f MB checkpoint (4 shards, largest %.0f MB) to %s: peak RSS %.1f MB; the "
           "fixture's %.1f MB "
           "(bound %.1f MB; output %.0f MB)\n",
           total / 1048576.0, biggest / 1048576.0, types[t], peak, base, bound,
           file_size(out) / 1048576.0);
    CHECK(peak <= bound, "%s: peak RSS %.1f MB over %.1f MB (the fixture's peak + one shard)",
          types[t], peak, bound);
    remove(out);
  }
  /* --dtype q4_0 on the directory: the layers quantized at load, never all in
   * float32. What the model must hold beyond the fixture's run: the 51 MB
   * float32 embedding (looked up by row; also OPT's tied head), its q8_0 head
   * copy and the 4-bit layers; the 113 MB of float32 layers must not be
   * resident (--dtype f32 holds them: printed for comparison). */
  double base = caption_peak_mb(tu_fixture("models/videoblip-opt-tiny"), "q4_0");
  double q4 = caption_peak_mb(dir, "q4_0"), f32 = caption_peak_mb(dir, "f32");
  double embed = 50272.0 * 256 * 4 / 1048576, head = embed * 34 / 128,
         layers = 12.0 * (4 * 256 * 256 + 2 * 256 * 4096) * 18 / 32 / 1048576;
  double bound = base + embed + head + layers + 16; /* 16 MB: buffers, positions, activations */
  if (base > 0 && q4 > 0 && f32 > 0) {
    printf("caption from the directory: --dtype q4_0 peak RSS %.1f MB (bound %.1f: the fixture's "
           "%.1f + "
           "%.0f MB held + 16), --dtype f32 %.1f MB\n",
           q4, bound, base, embed + head + layers, f32);
    CHECK(q4 <= bound, "--dtype q4_0: peak RSS %.1f MB over %.1f MB", q4, bound);
  }
  tu_synth_remove(dir);
  return tu_finish();
}
