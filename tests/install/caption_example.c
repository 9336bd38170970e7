/* The embedding example (docs/library.md): caption a video with the installed
 * library, built against pkg-config's vblip by tests/install/install.sh.
 * usage: caption_example MODEL VIDEO [PROMPT] */
#include <stdio.h>
#include <stdlib.h>
#include <vblip.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL VIDEO [PROMPT]\n", argv[0]);
    return 2;
  }
  vblip_load_options lo;
  vblip_load_options_default(&lo);
  lo.dtype = VBLIP_DTYPE_F32; /* exact float32, as transformers computes */
  lo.progress = 0;
  vblip_model *m = vblip_model_load(argv[1], &lo);
  if (!m) {
    fprintf(stderr, "%s\n", vblip_last_error());
    return 1;
  }
  vblip_gen_params p;
  vblip_gen_params_default(&p); /* the demo's settings, here made greedy and short */
  p.num_beams = 1;
  p.max_new_tokens = 8;
  vblip_video v;
  vblip_answer a;
  int rc = 1;
  if (vblip_video_load(m, argv[2], NULL, &v) == 0 && vblip_video_encode(m, &v) == 0 &&
      vblip_generate(m, &v, argc > 3 ? argv[3] : "", &p, NULL, NULL, &a) == 0) {
    char *text = vblip_postprocess(a.text);
    if (text) {
      printf("%s\n", text);
      rc = 0;
    }
    free(text);
    vblip_answer_free(&a);
  } else {
    fprintf(stderr, "%s: %s\n", argv[2], vblip_last_error());
  }
  vblip_video_free(&v);
  vblip_model_free(m);
  return rc;
}
