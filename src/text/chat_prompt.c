/* The VideoBLIP demo's conversation rule (see vblip_chat_prompt in vblip.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "vblip.h"

char *vblip_chat_prompt(const char *const *users, const char *const *answers, size_t n_turns,
                        const char *message) {
  size_t len = 1 + (message ? strlen(message) : 0);
  for (size_t i = 0; i < n_turns; i++)
    len += (users && users[i] ? strlen(users[i]) : 0) + (answers && answers[i] ? strlen(answers[i]) : 0) + 2;
  char *buf = vb_malloc(len);
  if (!buf) return NULL;
  char *p = buf;
  for (size_t i = 0; i < n_turns; i++) {
    const char *u = users && users[i] ? users[i] : "";
    const char *a = answers && answers[i] ? answers[i] : "";
    size_t nu = strlen(u), na = strlen(a);
    memcpy(p, u, nu);
    p += nu;
    *p++ = ' ';
    memcpy(p, a, na);
    p += na;
    *p++ = ' ';
  }
  const char *msg = message ? message : "";
  size_t nm = strlen(msg);
  memcpy(p, msg, nm);
  p += nm;
  *p = 0;
  /* strip (Python's str.strip(): ASCII whitespace is what the demo's text holds) */
  char *b = buf;
  while (*b && isspace((unsigned char)*b)) b++;
  size_t n = strlen(b);
  while (n > 0 && isspace((unsigned char)b[n - 1])) n--;
  memmove(buf, b, n);
  buf[n] = 0;
  return buf;
}
