/* libFuzzer target: the body of POST /api/chat, /api/score and /v1/chat/completions, read
 * as the server reads it (tools/server/api_chat.c) up to the point where videos are opened:
 * UTF-8 check, one JSON value without repeated keys (the parsers also get bodies with
 * them, which the server refuses, and must stay in bounds), the conversation (chat_request.c),
 * OpenAI's fields (openai_request.c), the "settings" object (gen_settings.c), the candidates, and
 * each data: URL's base64 decoded into a buffer of exactly the documented size. Whatever is
 * accepted is in range; whatever is refused says why. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "runtime/json.h"
#include "server/chat_request.h"
#include "server/gen_settings.h"
#include "server/openai_request.h"
#include "server/server_util.h"

#define REQUIRE(c)                                                                                 \
  do {                                                                                             \
    if (!(c)) __builtin_trap();                                                                    \
  } while (0)

static void require_message(const char *msg, size_t cap) {
  size_t n = strnlen(msg, cap);
  REQUIRE(n > 0 && n < cap);
}

/* the server's defaults, stand-ins that no setting can produce where it matters */
static void gen_defaults(vblip_gen_params *g) {
  memset(g, 0, sizeof *g);
  g->num_beams = 5;
  g->max_new_tokens = 30;
  g->temperature = 1.0f;
  g->top_p = 1.0f;
  g->repetition_penalty = 1.0f;
  g->length_penalty = 1.0f;
}

static void require_gen_in_range(const vblip_gen_params *g) {
  REQUIRE(g->num_beams >= 0 && g->num_beams <= 64);
  REQUIRE(g->max_new_tokens >= 1 && g->max_new_tokens <= 4096);
  REQUIRE(g->min_new_tokens >= 0 && g->min_new_tokens <= 4096);
  REQUIRE(isfinite(g->temperature) && g->temperature >= 0 && g->temperature <= 100);
  REQUIRE(isfinite(g->top_p) && g->top_p >= 0 && g->top_p <= 1);
  REQUIRE(g->top_k >= 0);
  REQUIRE(isfinite(g->repetition_penalty) && g->repetition_penalty > 0);
  REQUIRE(isfinite(g->length_penalty) && fabsf(g->length_penalty) <= 100);
}

/* a data: URL's payload decoded as resolve_video_url does, into the size the decoder asks for */
static void decode_data_url(const char *url) {
  if (strncmp(url, "data:", 5) != 0) return;
  const char *comma = strchr(url, ',');
  if (!comma) return;
  size_t n = strlen(comma + 1);
  unsigned char *out = malloc(n * 3 / 4 + 3);
  if (!out) return;
  long len = vs_base64_decode(comma + 1, n, out);
  REQUIRE(len >= -1 && (len < 0 || (size_t)len <= n * 3 / 4 + 3));
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t bad;
  if (!vb_utf8_valid((const char *)data, size, &bad)) return 0; /* the server's 400 */
  /* the server refuses repeated keys; the parsers below get them anyway, and must hold */
  cJSON *root = vb_json_parse((const char *)data, size, "the request body");
  cJSON *unique = vb_json_parse_unique((const char *)data, size, "the request body");
  REQUIRE(!unique || root);
  if (root && !unique) REQUIRE(strstr(vb_error_message(), "repeats the key '") != NULL);
  cJSON_Delete(unique);
  if (!root) return 0;
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return 0;
  }
  char msg[1024];

  vs_turns t;
  int rc =
      vs_parse_messages(cJSON_GetObjectItemCaseSensitive(root, "messages"), &t, msg, sizeof msg);
  REQUIRE(rc == 0 || rc == -1);
  if (rc == 0) {
    int n_msgs = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "messages"));
    REQUIRE(t.message != NULL);
    REQUIRE(t.n < (size_t)n_msgs);
    for (size_t i = 0; i < t.n; i++)
      REQUIRE(t.users[i] && t.answers[i]);
    const char *last = NULL;
    for (size_t i = 0; i < t.n_parts; i++) {
      REQUIRE((t.parts[i].text != NULL) != (t.parts[i].video != NULL));
      if (t.parts[i].video) {
        last = t.parts[i].video;
        decode_data_url(last);
      } else {
        REQUIRE(strlen(t.parts[i].text) <= size);
      }
    }
    REQUIRE(t.last_video == last);
  } else {
    require_message(msg, sizeof msg);
  }
  vs_turns_free(&t);

  const char *lead[VS_MAX_CHAT_VIDEOS];
  int n_lead = -1;
  rc = vs_lead_videos(root, lead, &n_lead, msg, sizeof msg);
  REQUIRE(rc == 0 || rc == -1);
  REQUIRE(n_lead >= 0 && n_lead <= VS_MAX_CHAT_VIDEOS);
  if (rc == 0)
    for (int i = 0; i < n_lead; i++)
      REQUIRE(lead[i] != NULL);
  else
    require_message(msg, sizeof msg);

  vblip_gen_params gen;
  gen_defaults(&gen);
  vs_openai_extras x;
  const char *param = NULL, *code = NULL;
  rc = vs_openai_request(root, &gen, &x, msg, sizeof msg, &param, &code);
  REQUIRE(rc == 0 || rc == -1);
  if (rc == 0) {
    require_gen_in_range(&gen);
    REQUIRE(x.include_usage == 0 || x.include_usage == 1);
  } else {
    require_message(msg, sizeof msg);
  }
  vs_openai_extras_free(&x);

  gen_defaults(&gen);
  rc = vs_parse_settings(cJSON_GetObjectItemCaseSensitive(root, "settings"), &gen, msg, sizeof msg);
  REQUIRE(rc == 0 || rc == -1);
  if (rc == 0)
    require_gen_in_range(&gen);
  else
    require_message(msg, sizeof msg);

  const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "candidates");
  if (c) {
    char **cands = NULL;
    int n = 0;
    rc = vs_parse_candidates(c, &cands, &n, msg, sizeof msg);
    REQUIRE(rc == 0 || rc == -1);
    REQUIRE(n >= 0 && n <= VS_MAX_CANDIDATES);
    if (rc == 0) {
      REQUIRE(n >= 1);
      for (int i = 0; i < n; i++)
        REQUIRE(cands[i] && strlen(cands[i]) <= VS_MAX_CANDIDATE_BYTES &&
                cands[i][strspn(cands[i], " \t\r\n")]);
    } else {
      require_message(msg, sizeof msg);
    }
    for (int i = 0; i < n; i++)
      free(cands[i]);
    free(cands);
  }
  cJSON_Delete(root);
  return 0;
}
