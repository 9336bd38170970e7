#include "server/http_error.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/escape.h"

const char *vs_status_text(unsigned status) {
  switch (status) {
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 422:
    return "Unprocessable Content";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return status < 500 ? "Client Error" : "Server Error";
  }
}

const char *vs_error_code(unsigned status) {
  switch (status) {
  case 401:
    return "invalid_api_key";
  case 404:
    return "not_found";
  case 405:
    return "method_not_allowed";
  case 408:
    return "timeout";
  case 413:
    return "request_too_large";
  case 422:
    return "unreadable_media";
  case 429:
    return "rate_limit_exceeded";
  case 503:
    return "server_busy";
  default:
    return NULL;
  }
}

char *vs_error_json(const char *url, size_t url_len, unsigned status, const char *msg) {
  return vs_error_json_param(url, url_len, status, msg, NULL, NULL);
}

char *vs_error_json_param(const char *url, size_t url_len, unsigned status, const char *msg,
                          const char *param, const char *code) {
  char safe[2048];
  vb_escape_controls(msg ? msg : "error", safe, sizeof safe);
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  if (url && url_len >= 4 && memcmp(url, "/v1/", 4) == 0) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", safe);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    if (param)
      cJSON_AddStringToObject(e, "param", param);
    else
      cJSON_AddNullToObject(e, "param");
    if (!code) code = vs_error_code(status);
    if (code)
      cJSON_AddStringToObject(e, "code", code);
    else
      cJSON_AddNullToObject(e, "code");
  } else {
    cJSON_AddStringToObject(o, "error", safe);
  }
  char *txt = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return txt;
}

char *vs_error_response(const char *url, size_t url_len, unsigned status, const char *msg,
                        size_t *len) {
  char *body = vs_error_json(url, url_len, status, msg);
  if (!body) return NULL;
  size_t bl = strlen(body), cap = bl + 512;
  char *r = malloc(cap);
  if (r) {
    int n = snprintf(r, cap,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s"
                     "Connection: close\r\n\r\n%s",
                     status, vs_status_text(status), bl, status == 503 ? "Retry-After: 2\r\n" : "",
                     body);
    *len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
  }
  free(body);
  return r;
}
