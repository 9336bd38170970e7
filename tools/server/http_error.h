/* The server's error answers: {"error": message} under /api (and everywhere outside
 * /v1), OpenAI's {"error": {"message", "type", "param", "code"}} under /v1. Used for the
 * answers the handlers queue with libmicrohttpd and for those the connection guard
 * writes on a socket itself (a request head refused before the library saw it). */
#ifndef VBLIP_SERVER_HTTP_ERROR_H
#define VBLIP_SERVER_HTTP_ERROR_H

#include <stddef.h>

/* The JSON body for an error on url (NULL or unknown: the /api shape). Control
 * characters and bytes that are not UTF-8 in msg are escaped. New string or NULL. */
char *vs_error_json(const char *url, size_t url_len, unsigned status, const char *msg);
/* The same with OpenAI's "param" (the request field at fault) and "code" (a short
 * string); NULL for either gives JSON null (code: the status's usual code, if any). */
char *vs_error_json_param(const char *url, size_t url_len, unsigned status, const char *msg,
                          const char *param, const char *code);
/* OpenAI's error code for a status without a more precise one ("invalid_api_key" for
 * 401, "rate_limit_exceeded" for 429, "server_busy" for 503...), or NULL. */
const char *vs_error_code(unsigned status);
/* A whole HTTP/1.1 response carrying that body, with Connection: close. New string
 * (*len bytes) or NULL. */
char *vs_error_response(const char *url, size_t url_len, unsigned status, const char *msg,
                        size_t *len);
/* "Bad Request" for 400 and so on. */
const char *vs_status_text(unsigned status);

#endif
