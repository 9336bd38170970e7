/* The OpenAI request fields of vblip serve (tools/server/openai_request.c) and the stop
 * string scanner (tools/server/stop_seq.c), without a server. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/openai_request.h"
#include "server/stop_seq.h"
#include "testutil.h"

static void test_stop_scan(void) {
  vs_stops st = {{strdup("END"), strdup("\n\n")}, 2};
  int hit;
  const char *t = "a cat EN";
  CHECK(vs_stops_scan(&st, t, strlen(t), &hit) == 6 && !hit, "'EN' may become END: held back");
  t = "a cat E";
  CHECK(vs_stops_scan(&st, t, strlen(t), &hit) == 6 && !hit, "'E' held back");
  t = "a cat ENDS here";
  CHECK(vs_stops_scan(&st, t, strlen(t), &hit) == 6 && hit, "END found at 6");
  t = "one\n\ntwo END";
  CHECK(vs_stops_scan(&st, t, strlen(t), &hit) == 3 && hit, "the first stop string wins");
  t = "nothing here";
  CHECK(vs_stops_scan(&st, t, strlen(t), &hit) == strlen(t) && !hit, "no stop: all final");
  t = "line\n";
  CHECK(vs_stops_scan(&st, t, strlen(t), &hit) == 4 && !hit, "a newline may start the blank line");
  CHECK(vs_stops_scan(&st, "", 0, &hit) == 0 && !hit, "empty text");
  vs_stops_free(&st);
}

/* Applies the request body to the default settings; 0 or -1 with the param at fault */
static int apply(const char *body, vblip_gen_params *g, vs_openai_extras *x, char *param,
                 size_t cap) {
  vblip_gen_params_default(g);
  cJSON *o = cJSON_Parse(body);
  char msg[512];
  const char *p = NULL, *code = NULL;
  int rc = vs_openai_request(o, g, x, msg, sizeof msg, &p, &code);
  snprintf(param, cap, "%s", rc ? (p ? p : "(none)") : "");
  if (rc) CHECK(*msg != 0, "%s: a message", body);
  cJSON_Delete(o);
  return rc;
}

static void test_request(void) {
  vblip_gen_params g;
  vs_openai_extras x;
  char param[64];
  /* no temperature or top_p: the server's defaults (4 beams) */
  CHECK(apply("{\"max_tokens\": 9}", &g, &x, param, sizeof param) == 0 && g.num_beams == 4 &&
            !g.do_sample && g.max_new_tokens == 9,
        "defaults kept");
  vs_openai_extras_free(&x);
  CHECK(apply("{\"temperature\": 0}", &g, &x, param, sizeof param) == 0 && g.num_beams == 1 &&
            !g.do_sample,
        "temperature 0: greedy");
  vs_openai_extras_free(&x);
  CHECK(apply("{\"temperature\": 0, \"num_beams\": 3}", &g, &x, param, sizeof param) == 0 &&
            g.num_beams == 3 && !g.do_sample,
        "num_beams: beam search");
  vs_openai_extras_free(&x);
  CHECK(apply("{\"temperature\": 0.7}", &g, &x, param, sizeof param) == 0 && g.num_beams == 1 &&
            g.do_sample && g.temperature == 0.7f && g.top_k == 0 && g.top_p == 1.0f,
        "temperature 0.7: sampling from the whole distribution");
  vs_openai_extras_free(&x);
  CHECK(apply("{\"top_p\": 0.5, \"top_k\": 5}", &g, &x, param, sizeof param) == 0 && g.do_sample &&
            g.temperature == 1.0f && g.top_p == 0.5f && g.top_k == 5,
        "top_p alone samples at temperature 1; top_k kept when given");
  vs_openai_extras_free(&x);
  CHECK(apply("{\"temperature\": 0, \"do_sample\": true}", &g, &x, param, sizeof param) == -1 &&
            strcmp(param, "temperature") == 0,
        "temperature 0 with do_sample: refused");
  vs_openai_extras_free(&x);
  CHECK(apply("{\"stop\": \"X\", \"stream_options\": {\"include_usage\": true}}", &g, &x, param,
              sizeof param) == 0 &&
            x.stops.n == 1 && strcmp(x.stops.seq[0], "X") == 0 && x.include_usage,
        "stop string, include_usage");
  vs_openai_extras_free(&x);
  CHECK(
      apply("{\"n\": 1, \"logprobs\": false, \"tools\": [], \"tool_choice\": \"none\", "
            "\"response_format\": {\"type\": \"text\"}, \"presence_penalty\": 0, \"user\": \"u\"}",
            &g, &x, param, sizeof param) == 0,
      "fields that ask for nothing unsupported pass");
  vs_openai_extras_free(&x);
  const char *bad[][2] = {{"{\"n\": 2}", "n"},
                          {"{\"logprobs\": true}", "logprobs"},
                          {"{\"top_logprobs\": 2}", "top_logprobs"},
                          {"{\"tools\": [{}]}", "tools"},
                          {"{\"tool_choice\": \"auto\"}", "tool_choice"},
                          {"{\"response_format\": {\"type\": \"json_object\"}}", "response_format"},
                          {"{\"frequency_penalty\": 0.5}", "frequency_penalty"},
                          {"{\"stop\": [\"\"]}", "stop"},
                          {"{\"stop\": 3}", "stop"},
                          {"{\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop"},
                          {"{\"temperature\": \"hot\"}", "temperature"},
                          {"{\"top_p\": 1.5}", "top_p"},
                          {"{\"max_tokens\": 0}", "max_tokens"},
                          {"{\"stream_options\": 1}", "stream_options"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int rc = apply(bad[i][0], &g, &x, param, sizeof param);
    CHECK(rc == -1 && strcmp(param, bad[i][1]) == 0, "%s: refused naming '%s' (got '%s')",
          bad[i][0], bad[i][1], param);
    vs_openai_extras_free(&x);
  }
}

int main(void) {
  test_stop_scan();
  test_request();
  return tu_finish();
}
