#include "server/openai_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/gen_settings.h"

void vs_openai_extras_free(vs_openai_extras *x) {
  vs_stops_free(&x->stops);
}

static int parse_stop(const cJSON *v, vs_stops *st, char *msg, size_t cap) {
  const cJSON *one = cJSON_IsString(v) ? v : NULL;
  if (!one && !cJSON_IsArray(v)) {
    snprintf(msg, cap, "'stop' must be a string or an array of at most %d strings", VS_MAX_STOPS);
    return -1;
  }
  if (!one && cJSON_GetArraySize(v) > VS_MAX_STOPS) {
    snprintf(msg, cap, "'stop' holds at most %d strings", VS_MAX_STOPS);
    return -1;
  }
  for (const cJSON *s = one ? one : v->child; s; s = one ? NULL : s->next) {
    size_t n = cJSON_IsString(s) ? strlen(s->valuestring) : 0;
    if (n == 0 || n > VS_MAX_STOP_BYTES) {
      snprintf(msg, cap, "each stop sequence must be a non-empty string of at most %d bytes",
               VS_MAX_STOP_BYTES);
      return -1;
    }
    if (st->n >= VS_MAX_STOPS) { /* never reached while the body's keys are unique */
      snprintf(msg, cap, "'stop' holds at most %d strings", VS_MAX_STOPS);
      return -1;
    }
    if (!(st->seq[st->n] = strdup(s->valuestring))) {
      snprintf(msg, cap, "out of memory");
      return -1;
    }
    st->n++;
  }
  return 0;
}

/* A field the server does not implement, unless its value asks for nothing */
static int unsupported(const char *k, const cJSON *v, char *msg, size_t cap) {
  if (strcmp(k, "n") == 0) {
    if (cJSON_IsNumber(v) && v->valuedouble == 1) return 0;
    snprintf(msg, cap, "only n = 1 is supported: send one request per answer");
    return 1;
  }
  if (strcmp(k, "logprobs") == 0) {
    if (cJSON_IsFalse(v)) return 0;
    snprintf(msg, cap,
             "logprobs are not supported (POST /api/score gives the likelihood of "
             "given answers)");
    return 1;
  }
  if (strcmp(k, "top_logprobs") == 0) {
    snprintf(msg, cap, "top_logprobs is not supported");
    return 1;
  }
  if (strcmp(k, "tools") == 0 || strcmp(k, "functions") == 0) {
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0) return 0;
    snprintf(msg, cap, "'%s' is not supported: the model cannot call tools", k);
    return 1;
  }
  if (strcmp(k, "tool_choice") == 0 || strcmp(k, "function_call") == 0) {
    if (cJSON_IsString(v) && strcmp(v->valuestring, "none") == 0) return 0;
    snprintf(msg, cap, "'%s' is not supported: the model cannot call tools", k);
    return 1;
  }
  if (strcmp(k, "response_format") == 0) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (cJSON_IsString(t) && strcmp(t->valuestring, "text") == 0) return 0;
    snprintf(msg, cap, "only response_format {\"type\": \"text\"} is supported");
    return 1;
  }
  if (strcmp(k, "presence_penalty") == 0 || strcmp(k, "frequency_penalty") == 0) {
    if (cJSON_IsNumber(v) && v->valuedouble == 0) return 0;
    snprintf(msg, cap, "'%s' is not supported (the setting repetition_penalty is)", k);
    return 1;
  }
  if (strcmp(k, "logit_bias") == 0) {
    if (cJSON_IsObject(v) && !v->child) return 0;
    snprintf(msg, cap, "logit_bias is not supported");
    return 1;
  }
  return 0;
}

int vs_openai_request(const cJSON *root, vblip_gen_params *gen, vs_openai_extras *x, char *msg,
                      size_t cap, const char **param, const char **code) {
  memset(x, 0, sizeof *x);
  *param = NULL;
  *code = NULL;
  double temperature = -1, top_p = -1;
  int explicit_beams = 0, explicit_sample = 0, explicit_top_k = 0;
  for (const cJSON *v = root->child; v; v = v->next) {
    const char *k = v->string;
    if (cJSON_IsNull(v)) continue;
    *param = k;
    if (unsupported(k, v, msg, cap)) {
      *code = "unsupported_parameter";
      return -1;
    }
    if (strcmp(k, "temperature") == 0 || strcmp(k, "top_p") == 0) {
      int t = k[0] == 't' && k[1] == 'e';
      double d;
      if (!vs_json_number(v, 0, t ? 100 : 1, 0, &d)) {
        snprintf(msg, cap,
                 t ? "'temperature' needs a number from 0 to 100"
                   : "'top_p' needs a number from 0 to 1");
        return -1;
      }
      *(t ? &temperature : &top_p) = d;
    } else if (strcmp(k, "stop") == 0) {
      if (parse_stop(v, &x->stops, msg, cap) != 0) return -1;
    } else if (strcmp(k, "stream_options") == 0) {
      const cJSON *u = cJSON_GetObjectItemCaseSensitive(v, "include_usage");
      if (!cJSON_IsObject(v) || (u && !cJSON_IsBool(u) && !cJSON_IsNull(u))) {
        snprintf(msg, cap, "'stream_options' must be an object {\"include_usage\": true|false}");
        return -1;
      }
      x->include_usage = cJSON_IsTrue(u);
    } else {
      const char *name = k;
      if (strcmp(k, "max_tokens") == 0 || strcmp(k, "max_completion_tokens") == 0)
        name = "max_new_tokens";
      int r = vs_apply_setting(gen, v, name, msg, cap);
      if (r < 0) return -1;
      if (r > 0) {
        explicit_beams |= strcmp(k, "num_beams") == 0 || strcmp(k, "beams") == 0;
        explicit_sample |= strcmp(k, "do_sample") == 0 || strcmp(k, "sample") == 0;
        explicit_top_k |= strcmp(k, "top_k") == 0;
      }
      /* other fields (model, messages, user, metadata...) are not settings */
    }
  }
  *param = NULL;
  if (temperature < 0 && top_p < 0) return 0; /* the server's defaults */
  /* OpenAI's meaning: 0 is greedy decoding, anything else samples; beam search only
   * when num_beams asks for it */
  if (!explicit_beams) gen->num_beams = 1;
  if (temperature == 0 || top_p == 0) {
    if (explicit_sample && gen->do_sample) {
      *param = temperature == 0 ? "temperature" : "top_p";
      snprintf(msg, cap, "%s 0 means greedy decoding: it contradicts do_sample true", *param);
      return -1;
    }
    gen->do_sample = 0;
    return 0;
  }
  if (!explicit_sample) gen->do_sample = 1;
  gen->temperature = temperature > 0 ? (float)temperature : 1.0f;
  gen->top_p = top_p > 0 ? (float)top_p : 1.0f;
  if (!explicit_top_k) gen->top_k = 0; /* OpenAI samples from the whole distribution */
  return 0;
}
