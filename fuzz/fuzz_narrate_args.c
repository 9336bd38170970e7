/* libFuzzer target: POST /api/narrate's query string, split into key=value
 * pairs at '&' and the first '=' (libmicrohttpd hands the server decoded
 * pairs; any bytes but NUL can arrive), applied in order by vs_narrate_arg
 * (tools/server/narrate_args.c) as the server does. Whatever is accepted is in
 * range; whatever is refused says why, without control characters. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/narrate_args.h"

#define REQUIRE(c)                                                                                 \
  do {                                                                                             \
    if (!(c)) __builtin_trap();                                                                    \
  } while (0)

static int seconds_ok(double d, double unset) {
  return d == unset || (isfinite(d) && d >= 1e-3 && d <= 86400);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *q = malloc(size + 1);
  if (!q) return 0;
  memcpy(q, data, size);
  q[size] = 0;
  vs_narrate_args a;
  memset(&a, 0, sizeof a);
  const double unset = -1;
  a.no.window_sec = a.no.stride_sec = a.no.max_lag_sec = unset;
  a.no.frames = -1;
  a.format = -1, a.merge = -1;
  a.gen.num_beams = -7;
  int rc = 0;
  for (char *p = q, *next; p && rc == 0; p = next) {
    next = strchr(p, '&');
    if (next) *next++ = 0;
    char *eq = strchr(p, '=');
    if (eq) *eq++ = 0;
    rc = vs_narrate_arg(&a, p, eq);
    REQUIRE(rc == 0 || rc == -1);
    REQUIRE(a.bad == (rc != 0));
  }
  REQUIRE(seconds_ok(a.no.window_sec, unset) && seconds_ok(a.no.stride_sec, unset) &&
          seconds_ok(a.no.max_lag_sec, unset));
  REQUIRE(a.no.frames == -1 || (a.no.frames >= 1 && a.no.frames <= VS_NARRATE_MAX_FRAMES));
  REQUIRE(a.format >= -1 && a.format <= VS_NF_JSONL && a.merge >= -1 && a.merge <= 1);
  REQUIRE(a.gen.num_beams == -7 || (a.gen.num_beams >= 0 && a.gen.num_beams <= 64));
  /* a key without '=' (value NULL) reads as empty; any other value is the caller's bytes */
  if (a.prompt) REQUIRE(!*a.prompt || (a.prompt >= q && a.prompt <= q + size));
  if (a.url) REQUIRE(!*a.url || (a.url >= q && a.url <= q + size));
  if (a.bad) {
    size_t n = strnlen(a.msg, sizeof a.msg);
    REQUIRE(n > 0 && n < sizeof a.msg);
    for (size_t i = 0; i < n; i++)
      REQUIRE((unsigned char)a.msg[i] >= 0x20 && a.msg[i] != 0x7f);
    /* refused stays refused */
    REQUIRE(vs_narrate_arg(&a, "frames", "4") == -1);
  }
  free(q);
  return 0;
}
