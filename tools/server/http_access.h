/* Who may use vblip serve: cross-origin browsers (--cors) and API keys (--api-key), and
 * the names clients are known by in the fair queue and the access log. */
#ifndef VBLIP_SERVER_HTTP_ACCESS_H
#define VBLIP_SERVER_HTTP_ACCESS_H

#include <stddef.h>
#include <sys/socket.h>

/* The Access-Control-Allow-Origin value for a request from origin (NULL: none) under
 * allowed, "*" or a comma-separated list of origins: "*", origin itself when listed,
 * else NULL (no CORS headers: the browser refuses the answer). */
const char *vs_cors_allow(const char *allowed, const char *origin);
/* 1 when the Authorization header value is "Bearer KEY" (the scheme's case ignored),
 * compared in time independent of where it differs from key. */
int vs_bearer_matches(const char *authorization, const char *key);
/* A client's address as text in out (at least 48 bytes); with group, an IPv6 address as
 * its /64 prefix (one client may own the whole prefix: the fair queue's unit). */
void vs_client_name(const struct sockaddr *a, int group, char *out, size_t cap);

#endif
