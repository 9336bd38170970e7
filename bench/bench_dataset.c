/* Dataset throughput: `caption --files-from` over a synthetic list of clips (windows cut
 * from one video), one at a time against the prefetch queue (the next videos decoded on
 * a second thread while the model runs), in clips per hour, alternating the two modes in
 * the same run so that both see the same machine. The model is a real one from disk (the
 * tiny fixture model is fine: its model time is small, so the decoding it hides weighs
 * more than with a full-size model). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "dataset/caption_run.h"
#include "runtime/common.h"

/* Clip i: a 2-second window in the video's first 10 seconds (5 windows, repeated). */
static int write_list(const char *path, const char *video, int clips) {
  FILE *f = fopen(path, "w");
  if (!f) return vb_error("%s: cannot write", path);
  for (int i = 0; i < clips; i++) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", i);
    cJSON_AddStringToObject(o, "video", video);
    cJSON_AddNumberToObject(o, "start", (i % 5) * 2.0);
    cJSON_AddNumberToObject(o, "end", (i % 5) * 2.0 + 2.0);
    char *s = cJSON_PrintUnformatted(o);
    fprintf(f, "%s\n", s ? s : "");
    free(s);
    cJSON_Delete(o);
  }
  return fclose(f) == 0 ? 0 : vb_error("%s: write failed", path);
}

/* One pass over the list; its output file's contents in *out (to compare the modes). */
static int pass(vblip_model *m, const char *list, const char *out_path, int prefetch,
                const vblip_sampling *s, const vblip_gen_params *g, double *seconds, long *failed,
                char **out) {
  vb_input_list in;
  if (vb_input_list_open(&in, list, (vb_shard){0, 1}) != 0) return -1;
  vb_jsonl_out *o = vb_jsonl_open(out_path, false, NULL, NULL);
  if (!o) {
    vb_input_list_close(&in);
    return -1;
  }
  vb_caption_run_opts opts = {.prompt = "", .sampling = s, .gen = g, .prefetch = prefetch};
  vb_caption_run_stats st = {0};
  int rc = vb_caption_run(m, &in, NULL, o, &opts, &st);
  if (vb_jsonl_close(o) != 0) rc = -1;
  vb_input_list_close(&in);
  *seconds = st.seconds;
  *failed = st.failed;
  size_t n;
  if (rc == 0 && out) rc = vb_read_file(out_path, (size_t)1 << 30, out, &n);
  return rc;
}

int bench_dataset(const char *model, const char *video, int clips, int prefetch, int frames,
                  int tokens, int threads, int rounds) {
  if (!video) {
    fprintf(stderr, "--dataset needs --video PATH (the clips are cut from it)\n");
    return 2;
  }
  char dir[] = "/tmp/vblip-bench-dataset.XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char list[sizeof dir + 16], out[sizeof dir + 16];
  snprintf(list, sizeof list, "%s/list", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.n_threads = threads;
  vblip_model *m = NULL;
  int rc = write_list(list, video, clips);
  if (rc == 0) rc = (m = vblip_model_load(model, &lo)) ? 0 : -1;
  if (rc != 0) {
    fprintf(stderr, "%s\n", vblip_last_error());
    remove(list);
    rmdir(dir);
    return 1;
  }
  vblip_sampling s;
  vblip_sampling_default(&s);
  s.n_frames = frames;
  vblip_gen_params g;
  vblip_gen_params_default(&g);
  g.num_beams = 1;
  g.max_new_tokens = tokens;
  fprintf(stderr,
          "dataset: %s, %d clips (2 s windows of %s), %d frames, %d new tokens greedy, "
          "prefetch %d, %d rounds\n",
          model, clips, video, frames, tokens, prefetch, rounds);
  double sum[2] = {0, 0}, t;
  long failed = 0, f;
  char *first[2] = {NULL, NULL};
  /* a warm-up pass (file cache, kernels' first calls) */
  rc = pass(m, list, out, 0, &s, &g, &t, &f, NULL);
  for (int r = 0; rc == 0 && r < rounds; r++)
    for (int k = 0; rc == 0 && k < 2; k++) {
      int mode = (r % 2) ? 1 - k : k; /* ABBA: drift hits both modes alike */
      char *text = NULL;
      rc = pass(m, list, out, mode ? prefetch : 0, &s, &g, &t, &f, &text);
      if (rc != 0) break;
      sum[mode] += t;
      failed += f;
      printf("round %d  %-16s %7.2f s  %9.0f clips/hour\n", r + 1,
             mode ? "prefetch" : "one at a time", t, clips * 3600.0 / t);
      if (!first[mode])
        first[mode] = text;
      else
        free(text);
    }
  if (rc == 0 && (failed || !first[0] || !first[1] || strcmp(first[0], first[1]) != 0)) {
    rc = vb_error("the two modes' results differ or inputs failed (%ld failed)", failed);
  }
  if (rc == 0) {
    double a = clips * rounds * 3600.0 / sum[0], b = clips * rounds * 3600.0 / sum[1];
    printf("one at a time: %.0f clips/hour; prefetch %d: %.0f clips/hour; ratio %.2f\n", a,
           prefetch, b, b / a);
  } else {
    fprintf(stderr, "%s\n", vblip_last_error());
  }
  free(first[0]);
  free(first[1]);
  vblip_model_free(m);
  remove(list);
  remove(out);
  rmdir(dir);
  return rc == 0 ? 0 : 1;
}
