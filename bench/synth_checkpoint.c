/* vblip-synth-checkpoint: writes a full-size BLIP-2 OPT checkpoint directory
 * with random float32 weights in safetensors shards, as the Hub has them, for
 * the conversion benchmark (docs/performance.md) — tensor by tensor, so it
 * needs a few MB of memory whatever the size. OPT-6.7b is ~31 GB: delete it
 * afterwards.
 *
 *   vblip-synth-checkpoint OUT_DIR TOKENIZER_DIR [--lm opt|opt-6.7b] [--shards N]
 *
 * TOKENIZER_DIR: a model directory whose small files (tokenizer, preprocessor
 * and generation configs) are copied, e.g. tests/fixtures/models/videoblip-opt-tiny. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "runtime/common.h"

#define CHUNK ((size_t)1 << 20) /* floats written at a time */

static int copy_small_files(const char *from, const char *to) {
  DIR *d = opendir(from);
  if (!d) return vb_error("cannot list %s", from);
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    const char *n = e->d_name;
    if (n[0] == '.' || !strncmp(n, "model", 5) || !strncmp(n, "pytorch_model", 13) ||
        !strcmp(n, "config.json"))
      continue;
    char *src = vb_path_join(from, n), *dst = vb_path_join(to, n), *data = NULL;
    size_t len = 0;
    FILE *f = NULL;
    rc = src && dst && vb_read_file(src, (size_t)1 << 30, &data, &len) == 0 &&
                 (f = fopen(dst, "wb")) && fwrite(data, 1, len, f) == len
             ? 0
             : vb_error("cannot copy %s", n);
    if (f && fclose(f) != 0) rc = vb_error("cannot write %s", dst);
    free(src), free(dst), free(data);
  }
  closedir(d);
  return rc;
}

static int write_text(const char *dir, const char *name, const char *text) {
  char *p = vb_path_join(dir, name);
  FILE *f = p ? fopen(p, "wb") : NULL;
  int ok = f && fputs(text, f) >= 0;
  if (f && fclose(f) != 0) ok = 0;
  free(p);
  return ok ? 0 : vb_error("cannot write %s", name);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s OUT_DIR TOKENIZER_DIR [--lm opt|opt-6.7b] [--shards N]\n", argv[0]);
    return 2;
  }
  const char *out = argv[1], *tok = argv[2];
  int big = 1, shards = 4;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--lm"))
      big = strcmp(argv[i + 1], "opt") != 0;
    else if (!strcmp(argv[i], "--shards"))
      shards = atoi(argv[i + 1]);
  }
  if (shards < 1 || shards > 999) return fprintf(stderr, "--shards: 1 to 999\n"), 2;
  vb_model_config c;
  vb_weights w;
  if (mkdir(out, 0755) != 0)
    return fprintf(stderr, "cannot create %s (it must not exist)\n", out), 1;
  if (copy_small_files(tok, out) != 0 ||
      write_text(out, "config.json", bench_config_json(VB_LM_OPT, big)) != 0 ||
      bench_config_sized(VB_LM_OPT, big, 0, &c) != 0)
    return fprintf(stderr, "%s\n", vb_error_message()), 1;
  bench_weights_new(&w, VB_COMPUTE_F32, 0);
  bench_shapes_only(1);
  if (bench_build_vision(&w, &c, VB_DT_F32) || bench_build_qformer(&w, &c, VB_DT_F32) ||
      bench_build_lm(&w, &c, VB_DT_F32))
    return fprintf(stderr, "%s\n", vb_error_message()), 1;
  size_t n = w.tt.count, total = 0;
  for (size_t i = 0; i < n; i++)
    total += w.tt.items[i].nbytes;
  float *buf = malloc(CHUNK * sizeof *buf);
  cJSON *index = cJSON_CreateObject(), *map = cJSON_CreateObject();
  cJSON_AddItemToObject(cJSON_AddObjectToObject(index, "metadata"), "total_size",
                        cJSON_CreateNumber((double)total));
  cJSON_AddItemToObject(index, "weight_map", map);
  double t0 = vb_now_ms();
  size_t first = 0, done = 0;
  for (int s = 0; s < shards; s++) {
    size_t last = first, bytes = done;
    while (last < n && (s == shards - 1 || bytes < total / (size_t)shards * (size_t)(s + 1)))
      bytes += w.tt.items[last++].nbytes;
    char name[64];
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
    cJSON *hdr = cJSON_CreateObject();
    size_t off = 0;
    for (size_t i = first; i < last; i++) {
      const vb_tensor_info *t = &w.tt.items[i];
      cJSON *e = cJSON_AddObjectToObject(hdr, t->name);
      cJSON_AddStringToObject(e, "dtype", "F32");
      cJSON *shape = cJSON_AddArrayToObject(e, "shape");
      for (int d = 0; d < t->ndim; d++)
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
      double o[2] = {(double)off, (double)(off + t->nbytes)};
      cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(o, 2));
      off += t->nbytes;
      cJSON_AddStringToObject(map, t->name, name);
    }
    char *h = cJSON_PrintUnformatted(hdr), *path = vb_path_join(out, name);
    size_t hl = strlen(h), padded = (hl + 7) / 8 * 8;
    FILE *f = path ? fopen(path, "wb") : NULL;
    if (!f || !buf) return fprintf(stderr, "cannot write %s\n", name), 1;
    uint64_t le = padded;
    fwrite(&le, 8, 1, f);
    fwrite(h, 1, hl, f);
    for (size_t p = hl; p < padded; p++)
      fputc(' ', f);
    for (size_t i = first; i < last; i++) {
      size_t m = w.tt.items[i].nbytes / sizeof(float);
      for (size_t c0 = 0; c0 < m; c0 += CHUNK) {
        size_t k = m - c0 < CHUNK ? m - c0 : CHUNK;
        bench_fill_random(buf, VB_DT_F32, k, 0.035f, (uint64_t)(i * 4099 + c0 / CHUNK + 1));
        if (fwrite(buf, sizeof *buf, k, f) != k)
          return fprintf(stderr, "write error in %s\n", name), 1;
      }
    }
    if (fclose(f) != 0) return fprintf(stderr, "write error in %s\n", name), 1;
    fprintf(stderr, "%s: %zu tensors, %.2f GB (%.0f s)\n", name, last - first, (double)off / 1e9,
            (vb_now_ms() - t0) / 1e3);
    free(h), free(path);
    cJSON_Delete(hdr);
    first = last;
    done = bytes;
  }
  char *text = cJSON_Print(index);
  if (write_text(out, "model.safetensors.index.json", text) != 0)
    return fprintf(stderr, "%s\n", vb_error_message()), 1;
  printf("wrote %s: %zu tensors, %.2f GB of float32 in %d shards, %.0f s\n", out, n,
         (double)total / 1e9, shards, (vb_now_ms() - t0) / 1e3);
  free(text), free(buf);
  cJSON_Delete(index);
  return 0;
}
