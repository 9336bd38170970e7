/* The fields of an OpenAI chat completions request that set how the answer is made:
 * OpenAI's meaning of temperature and top_p (0: greedy; otherwise sampling), vblip's
 * extensions (num_beams and the other settings as top-level fields), stop strings,
 * stream_options, and a clear refusal of what the server does not implement. */
#ifndef VBLIP_SERVER_OPENAI_REQUEST_H
#define VBLIP_SERVER_OPENAI_REQUEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "server/stop_seq.h"
#include "vblip.h"

typedef struct {
  vs_stops stops;
  int include_usage; /* stream_options.include_usage */
} vs_openai_extras;

/* Applies root's fields to gen (which holds the server's defaults) and fills x (zeroed
 * first; free it with vs_openai_extras_free). 0, or -1 with msg and *param, the field
 * at fault, and *code, OpenAI's error code (NULL when none fits). */
int vs_openai_request(const cJSON *root, vblip_gen_params *gen, vs_openai_extras *x, char *msg,
                      size_t cap, const char **param, const char **code);
void vs_openai_extras_free(vs_openai_extras *x);

#endif
