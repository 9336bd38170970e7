#include "server/http_access.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *vs_cors_allow(const char *allowed, const char *origin) {
  if (!allowed || !*allowed) return NULL;
  if (strcmp(allowed, "*") == 0) return "*";
  if (!origin || !*origin) return NULL;
  size_t n = strlen(origin);
  for (const char *p = allowed; *p;) {
    while (*p == ' ' || *p == ',')
      p++;
    size_t len = strcspn(p, ", ");
    if (len == n && strncmp(p, origin, n) == 0) return origin;
    p += len;
  }
  return NULL;
}

int vs_bearer_matches(const char *authorization, const char *key) {
  if (!authorization || !key || strncasecmp(authorization, "Bearer ", 7) != 0) return 0;
  const char *given = authorization + 7;
  while (*given == ' ')
    given++;
  size_t n = strlen(key), m = strlen(given);
  unsigned diff = (unsigned)(n != m);
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)key[i] ^ (unsigned char)given[i < m ? i : 0];
  return diff == 0 && n > 0;
}

void vs_client_name(const struct sockaddr *a, int group, char *out, size_t cap) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (a && a->sa_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, buf, sizeof buf);
  } else if (a && a->sa_family == AF_INET6) {
    struct in6_addr x = ((const struct sockaddr_in6 *)a)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&x)) {
      inet_ntop(AF_INET, &x.s6_addr[12], buf, sizeof buf);
    } else if (group) {
      memset(&x.s6_addr[8], 0, 8);
      inet_ntop(AF_INET6, &x, buf, sizeof buf);
      snprintf(out, cap, "%s/64", buf);
      return;
    } else {
      inet_ntop(AF_INET6, &x, buf, sizeof buf);
    }
  }
  snprintf(out, cap, "%s", buf);
}
