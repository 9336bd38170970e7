#include "server/narrate_args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/escape.h"
#include "runtime/json.h"
#include "server/gen_settings.h"

/* a whole number or a decimal, nothing after it */
static int parse_num(const char *v, double lo, double hi, int integral, double *out) {
  char *end = NULL;
  errno = 0;
  double d = strtod(v, &end);
  if (!*v || isspace((unsigned char)*v) || *end || errno || !isfinite(d) || d < lo || d > hi ||
      (integral && d != floor(d)))
    return 0;
  *out = d;
  return 1;
}

static int refuse(vs_narrate_args *a) {
  a->bad = 1;
  return -1;
}

int vs_narrate_arg(vs_narrate_args *a, const char *key, const char *value) {
  if (a->bad) return -1;
  if (!key) key = "";
  if (!value) value = "";
  char k[64];
  vb_escape_controls(key, k, sizeof k);
  double d;
  if (!strcmp(key, "window") || !strcmp(key, "stride") || !strcmp(key, "max_lag")) {
    if (!parse_num(value, 1e-3, 86400, 0, &d)) {
      snprintf(a->msg, sizeof a->msg, "'%s' must be a number of seconds from 0.001 to 86400", k);
      return refuse(a);
    }
    if (!strcmp(key, "window"))
      a->no.window_sec = d;
    else if (!strcmp(key, "stride"))
      a->no.stride_sec = d;
    else
      a->no.max_lag_sec = d;
  } else if (!strcmp(key, "frames")) {
    if (!parse_num(value, 1, VS_NARRATE_MAX_FRAMES, 1, &d)) {
      snprintf(a->msg, sizeof a->msg, "'frames' must be a whole number from 1 to %d",
               VS_NARRATE_MAX_FRAMES);
      return refuse(a);
    }
    a->no.frames = (int)d;
  } else if (!strcmp(key, "prompt")) {
    a->prompt = value;
  } else if (!strcmp(key, "url")) {
    a->url = value;
  } else if (!strcmp(key, "format")) {
    int f = !strcmp(value, "vtt")     ? VS_NF_VTT
            : !strcmp(value, "srt")   ? VS_NF_SRT
            : !strcmp(value, "jsonl") ? VS_NF_JSONL
                                      : -1;
    if (f < 0) {
      snprintf(a->msg, sizeof a->msg, "'format' must be vtt, srt or jsonl");
      return refuse(a);
    }
    a->format = f;
  } else if (!strcmp(key, "merge")) {
    int m = !strcmp(value, "true") || !strcmp(value, "1")    ? 1
            : !strcmp(value, "false") || !strcmp(value, "0") ? 0
                                                             : -1;
    if (m < 0) {
      snprintf(a->msg, sizeof a->msg, "'merge' must be true or false");
      return refuse(a);
    }
    a->merge = m;
  } else {
    /* a generation setting of /api/chat's "settings", its value as JSON (4, 0.7, true) */
    cJSON *v = cJSON_Parse(value);
    int rc = v && !cJSON_IsObject(v) && !cJSON_IsArray(v)
                 ? vs_apply_setting(&a->gen, v, key, a->msg, sizeof a->msg)
                 : 0;
    cJSON_Delete(v);
    if (rc == 0 && !a->msg[0])
      snprintf(a->msg, sizeof a->msg,
               "unknown parameter '%s' (window, stride, frames, prompt, format, merge, url, "
               "max_lag, or a generation setting: num_beams, max_new_tokens, ...)",
               k);
    if (rc <= 0) return refuse(a);
  }
  return 0;
}
