#include "server/gen_settings.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int vs_json_number(const cJSON *v, double lo, double hi, int integral, double *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!isfinite(d) || d < lo || d > hi) return 0;
  if (integral && d != floor(d)) return 0;
  *out = d;
  return 1;
}

int vs_apply_setting(vblip_gen_params *p, const cJSON *v, const char *k, char *msg, size_t cap) {
  double d;
#define NUM(name, lo, hi, integ, field, cast, what)                                                \
  if (strcmp(k, name) == 0) {                                                                      \
    if (!vs_json_number(v, lo, hi, integ, &d)) {                                                   \
      snprintf(msg, cap, "setting '%s' needs %s", k, what);                                        \
      return -1;                                                                                   \
    }                                                                                              \
    p->field = (cast)d;                                                                            \
    return 1;                                                                                      \
  }
  NUM("num_beams", 0, 64, 1, num_beams, int, "a whole number from 0 to 64")
  NUM("beams", 0, 64, 1, num_beams, int, "a whole number from 0 to 64")
  NUM("max_new_tokens", 1, 4096, 1, max_new_tokens, int, "a whole number from 1 to 4096")
  NUM("min_new_tokens", 0, 4096, 1, min_new_tokens, int, "a whole number from 0 to 4096")
  NUM("temperature", 1e-6, 100, 0, temperature, float, "a number > 0")
  NUM("top_k", 0, 1000000, 1, top_k, int, "a whole number >= 0")
  NUM("top_p", 1e-9, 1, 0, top_p, float, "a number in (0, 1]")
  NUM("repetition_penalty", 1e-6, 1000, 0, repetition_penalty, float, "a number > 0")
  NUM("no_repeat_ngram_size", 0, 1000, 1, no_repeat_ngram_size, int, "a whole number >= 0")
  NUM("length_penalty", -100, 100, 0, length_penalty, float, "a number from -100 to 100")
  NUM("seed", 0, 9007199254740991.0, 1, seed, uint64_t, "a whole number >= 0")
#undef NUM
  if (strcmp(k, "do_sample") == 0 || strcmp(k, "sample") == 0) {
    if (!cJSON_IsBool(v)) {
      snprintf(msg, cap, "setting '%s' needs true or false", k);
      return -1;
    }
    p->do_sample = cJSON_IsTrue(v);
    return 1;
  }
  return 0;
}

int vs_parse_settings(const cJSON *o, vblip_gen_params *p, char *msg, size_t cap) {
  if (!o || cJSON_IsNull(o)) return 0;
  if (!cJSON_IsObject(o)) {
    snprintf(msg, cap, "'settings' must be an object");
    return -1;
  }
  for (const cJSON *v = o->child; v; v = v->next) {
    int r = vs_apply_setting(p, v, v->string, msg, cap);
    if (r < 0) return -1;
    if (r == 0) {
      snprintf(msg, cap,
               "unknown setting '%s' (known: num_beams, max_new_tokens, min_new_tokens, do_sample, "
               "temperature, "
               "top_k, top_p, seed, repetition_penalty, no_repeat_ngram_size, length_penalty)",
               v->string);
      return -1;
    }
  }
  return 0;
}
