/* Generation settings from JSON: the native API's "settings" object and the same names
 * as top-level fields of OpenAI requests. */
#ifndef VBLIP_SERVER_GEN_SETTINGS_H
#define VBLIP_SERVER_GEN_SETTINGS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "vblip.h"

/* A number within [lo, hi] (whole when integral) into *out: 1, else 0. */
int vs_json_number(const cJSON *v, double lo, double hi, int integral, double *out);
/* Applies setting k = v to p: 1 when applied, 0 when k is no setting, -1 with msg when v
 * is out of range. */
int vs_apply_setting(vblip_gen_params *p, const cJSON *v, const char *k, char *msg, size_t cap);
/* Applies the "settings" object (NULL or null: nothing); unknown names are errors.
 * 0, or -1 with msg. */
int vs_parse_settings(const cJSON *o, vblip_gen_params *p, char *msg, size_t cap);

#endif
