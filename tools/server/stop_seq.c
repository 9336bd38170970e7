#include "server/stop_seq.h"

#include <stdlib.h>
#include <string.h>

size_t vs_stops_scan(const vs_stops *st, const char *text, size_t len, int *hit) {
  *hit = 0;
  size_t first = len;
  for (int k = 0; k < st->n; k++) {
    size_t n = strlen(st->seq[k]);
    if (n == 0 || n > len) continue;
    for (size_t at = 0; at + n <= len && at < first; at++)
      if (memcmp(text + at, st->seq[k], n) == 0) {
        first = at;
        *hit = 1;
        break;
      }
  }
  if (*hit) return first;
  /* no stop string yet: hold back a tail that a stop string may still complete */
  size_t keep = len;
  for (int k = 0; k < st->n; k++) {
    size_t n = strlen(st->seq[k]);
    for (size_t tail = n > len ? len : n - 1; tail > 0; tail--)
      if (memcmp(text + len - tail, st->seq[k], tail) == 0) {
        if (len - tail < keep) keep = len - tail;
        break;
      }
  }
  return keep;
}

void vs_stops_free(vs_stops *st) {
  for (int k = 0; k < st->n; k++)
    free(st->seq[k]);
  st->n = 0;
}
