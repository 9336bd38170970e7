#include "server/http_head.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar */
static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* visible ASCII or obs-text (bytes >= 0x80) */
static int is_vchar(unsigned char c) {
  return (c > 0x20 && c != 0x7f);
}

static int fail(char *msg, size_t cap, int status, const char *what) {
  snprintf(msg, cap, "%s", what);
  return status;
}

/* The line at p (up to end): its length without the CR LF or LF, and *next after it;
 * -1 when no LF was received yet. A CR anywhere but before the LF is refused later. */
static long line_len(const char *p, const char *end, const char **next) {
  const char *lf = memchr(p, '\n', (size_t)(end - p));
  if (!lf) return -1;
  *next = lf + 1;
  return (long)(lf > p && lf[-1] == '\r' ? lf - 1 - p : lf - p);
}

static int parse_request_line(const char *p, size_t n, int complete, const vs_http_limits *lim,
                              vs_http_head *out, char *msg, size_t cap) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i]))
    i++;
  if (i == n && !complete)
    return i > 16 ? fail(msg, cap, 400, "the request method is too long") : 0;
  if (i == 0 || i > 16 || i == n || p[i] != ' ')
    return fail(msg, cap, 400, "malformed request line (expected METHOD /path HTTP/1.1)");
  out->method = p, out->method_len = i;
  size_t t = ++i;
  while (i < n && is_vchar((unsigned char)p[i]))
    i++;
  out->target = p + t, out->target_len = i - t;
  if (i - t > lim->max_target) {
    snprintf(msg, cap, "the request target is longer than %zu bytes", lim->max_target);
    return 414;
  }
  if (i == n && !complete) return 0;
  if (i == t || i == n || p[i] != ' ')
    return fail(msg, cap, 400, "malformed request line (expected METHOD /path HTTP/1.1)");
  if (p[t] != '/' && !(i - t == 1 && p[t] == '*'))
    return fail(msg, cap, 400, "the request target must be a path starting with '/'");
  const char *v = p + i + 1;
  size_t vn = n - i - 1;
  if (!complete) return 0;
  if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
      v[7] < '0' || v[7] > '9')
    return fail(msg, cap, 400, "malformed request line (expected METHOD /path HTTP/1.1)");
  if (v[5] != '1') {
    snprintf(msg, cap, "HTTP/%c.%c is not supported: use HTTP/1.1 or HTTP/1.0", v[5], v[7]);
    return 505;
  }
  out->minor = v[7] - '0';
  return 0;
}

/* "chunked", any case, with optional whitespace around it */
static int is_chunked(const char *v, size_t n) {
  return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

static int parse_field(const char *p, size_t n, vs_http_head *out, int *hosts, char *msg,
                       size_t cap) {
  if (n && (p[0] == ' ' || p[0] == '\t'))
    return fail(msg, cap, 400, "header fields folded over several lines are not accepted");
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i]))
    i++;
  if (i == 0 || i == n || p[i] != ':')
    return fail(msg, cap, 400, "malformed header field (expected Name: value)");
  size_t name_len = i++;
  for (size_t k = i; k < n; k++) {
    unsigned char c = (unsigned char)p[k];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return fail(msg, cap, 400, "a header field's value holds a control character");
  }
  while (i < n && (p[i] == ' ' || p[i] == '\t'))
    i++;
  size_t e = n;
  while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
    e--;
  const char *v = p + i;
  size_t vn = e - i;
  if (name_len == 4 && strncasecmp(p, "Host", 4) == 0) {
    (*hosts)++;
  } else if (name_len == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
    uint64_t x = 0;
    if (vn == 0 || vn > 18) return fail(msg, cap, 400, "malformed Content-Length");
    for (size_t k = 0; k < vn; k++) {
      if (v[k] < '0' || v[k] > '9') return fail(msg, cap, 400, "malformed Content-Length");
      x = x * 10 + (uint64_t)(v[k] - '0');
    }
    if (out->has_length && x != out->content_length)
      return fail(msg, cap, 400, "several different Content-Length fields");
    out->has_length = 1;
    out->content_length = x;
  } else if (name_len == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
    if (!is_chunked(v, vn) || out->chunked) {
      snprintf(msg, cap, "Transfer-Encoding '%.*s' is not supported (only chunked, once)",
               (int)(vn < 40 ? vn : 40), v);
      return 501;
    }
    out->chunked = 1;
  }
  return 0;
}

int vs_http_head_parse(const char *buf, size_t len, const vs_http_limits *lim, vs_http_head *out,
                       char *msg, size_t cap) {
  memset(out, 0, sizeof *out);
  msg[0] = 0;
  const char *end = buf + len, *next = NULL;
  long n = line_len(buf, end, &next);
  int st = parse_request_line(buf, n < 0 ? len : (size_t)n, n >= 0, lim, out, msg, cap);
  if (st) return st;
  if (n < 0) {
    if (len > lim->max_head) {
      snprintf(msg, cap, "the request head is larger than %zu bytes", lim->max_head);
      return 431;
    }
    return VS_HEAD_INCOMPLETE;
  }
  if (memchr(buf, '\r', (size_t)n)) return fail(msg, cap, 400, "a stray CR in the request line");
  int fields = 0, hosts = 0;
  for (const char *p = next;;) {
    if ((size_t)(p - buf) > lim->max_head) {
      snprintf(msg, cap, "the request head is larger than %zu bytes", lim->max_head);
      return 431;
    }
    long k = line_len(p, end, &next);
    if (k < 0) {
      if (len > lim->max_head) {
        snprintf(msg, cap, "the request head is larger than %zu bytes", lim->max_head);
        return 431;
      }
      return VS_HEAD_INCOMPLETE;
    }
    if (k == 0) { /* the blank line */
      out->head_len = (size_t)(next - buf);
      if (out->head_len > lim->max_head) {
        snprintf(msg, cap, "the request head is larger than %zu bytes", lim->max_head);
        return 431;
      }
      break;
    }
    if (memchr(p, '\r', (size_t)k)) return fail(msg, cap, 400, "a stray CR in a header field");
    if (++fields > lim->max_fields) {
      snprintf(msg, cap, "more than %d header fields", lim->max_fields);
      return 431;
    }
    st = parse_field(p, (size_t)k, out, &hosts, msg, cap);
    if (st) return st;
    p = next;
  }
  if (out->minor >= 1 && hosts != 1)
    return fail(msg, cap, 400,
                hosts ? "several Host fields" : "an HTTP/1.1 request needs a Host field");
  if (out->has_length && out->chunked)
    return fail(msg, cap, 400, "both Content-Length and Transfer-Encoding (send one of them)");
  if (out->chunked && out->minor == 0)
    return fail(msg, cap, 400, "Transfer-Encoding in an HTTP/1.0 request");
  return VS_HEAD_OK;
}
