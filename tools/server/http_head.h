/* The request head (request line and header fields) of an HTTP/1.x request, read and
 * checked by vblip serve before libmicrohttpd sees the connection: everything the
 * library would refuse with its own (HTML) error page is refused here first, in the
 * server's JSON error shape. Pure functions over bytes, so that they can be fuzzed. */
#ifndef VBLIP_SERVER_HTTP_HEAD_H
#define VBLIP_SERVER_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  size_t max_head;   /* request line + header fields + blank line, bytes */
  size_t max_target; /* the request target (path and query), bytes */
  int max_fields;    /* header fields */
} vs_http_limits;

typedef struct {
  size_t head_len;             /* bytes up to and including the blank line */
  const char *method, *target; /* into the buffer, not NUL-terminated */
  size_t method_len, target_len;
  int minor;      /* HTTP/1.minor */
  int has_length; /* a Content-Length field */
  uint64_t content_length;
  int chunked; /* Transfer-Encoding: chunked */
} vs_http_head;

enum { VS_HEAD_INCOMPLETE = 0, VS_HEAD_OK = 1 };

/* Parses buf[0..len), the bytes received so far. VS_HEAD_OK: a complete, acceptable
 * head (out filled). VS_HEAD_INCOMPLETE: no blank line yet and nothing wrong so far.
 * Otherwise the HTTP status to answer (400 malformed, 414 target too long, 431 head too
 * large, 501 unsupported transfer coding, 505 version) with a one-line message in msg;
 * out->target is then set when the request line was read (for the error's shape). */
int vs_http_head_parse(const char *buf, size_t len, const vs_http_limits *lim, vs_http_head *out,
                       char *msg, size_t cap);

#endif
