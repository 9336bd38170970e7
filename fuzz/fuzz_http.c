/* libFuzzer target: what a client sends vblip serve. The request head as the connection
 * guard checks it (tools/server/http_head.c), then a JSON body as the chat endpoints read
 * it (UTF-8, one strict JSON value), and the JSON error answer built from what was read,
 * which must always be valid JSON free of control characters. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/escape.h"
#include "runtime/json.h"
#include "server/http_error.h"
#include "server/http_head.h"

#define REQUIRE(c)                                                                                 \
  do {                                                                                             \
    if (!(c)) __builtin_trap();                                                                    \
  } while (0)

static void check_error_body(const char *url, size_t url_len, unsigned status, const char *msg) {
  size_t len = 0;
  char *r = vs_error_response(url, url_len, status, msg, &len);
  if (!r) return;
  const char *body = strstr(r, "\r\n\r\n");
  REQUIRE(body && len == strlen(r));
  cJSON *j = cJSON_Parse(body + 4);
  REQUIRE(j != NULL);
  cJSON_Delete(j);
  for (const char *p = body + 4; *p; p++)
    REQUIRE((unsigned char)*p >= 0x20 && *p != 0x7f);
  free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  vs_http_limits lim = {.max_head = 2048, .max_target = 512, .max_fields = 16};
  vs_http_head h;
  char msg[256];
  int st = vs_http_head_parse(in, size, &lim, &h, msg, sizeof msg);
  const char *body = in;
  size_t n = size;
  if (st == VS_HEAD_OK) {
    REQUIRE(h.head_len <= size && h.head_len <= lim.max_head);
    REQUIRE(h.target >= in && h.target + h.target_len <= in + h.head_len);
    REQUIRE(h.target_len <= lim.max_target && h.method_len >= 1 && h.method_len <= 16);
    REQUIRE(!(h.has_length && h.chunked));
    body = in + h.head_len;
    n = size - h.head_len;
  } else if (st != VS_HEAD_INCOMPLETE) {
    REQUIRE(st >= 400 && st < 600 && msg[0]);
    if (h.target) REQUIRE(h.target >= in && h.target + h.target_len <= in + size);
    check_error_body(h.target, h.target ? h.target_len : 0, (unsigned)st, msg);
  }

  /* the body as /api/chat reads it */
  size_t bad;
  if (vb_utf8_valid(body, n, &bad)) {
    cJSON *j = vb_json_parse(body, n, "the request body");
    if (j) {
      const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "video_id"));
      if (s) check_error_body("/v1/chat/completions", 20, 404, s);
      cJSON_Delete(j);
    }
  } else {
    REQUIRE(bad < n);
  }
  /* any bytes as a message: escaped, bounded, valid JSON in the answer */
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  char out[512];
  vb_escape_controls(text, out, sizeof out);
  REQUIRE(vb_utf8_valid(out, strlen(out), NULL));
  for (const char *p = out; *p; p++)
    REQUIRE((unsigned char)*p >= 0x20 && *p != 0x7f);
  check_error_body("/api/chat", 9, 400, text);
  free(text);
  return 0;
}
