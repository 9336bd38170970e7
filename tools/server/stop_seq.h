/* OpenAI's "stop": up to four strings at which an answer ends. The generated text is
 * scanned as it grows; what could still be the start of a stop string is held back, so
 * a streamed answer never shows part of a stop string. */
#ifndef VBLIP_SERVER_STOP_SEQ_H
#define VBLIP_SERVER_STOP_SEQ_H

#include <stddef.h>

#define VS_MAX_STOPS 4
#define VS_MAX_STOP_BYTES 256

typedef struct {
  char *seq[VS_MAX_STOPS];
  int n;
} vs_stops;

/* How much of text[0..len) is final. With a stop string in it, *hit = 1 and the
 * result is where the first one starts; else *hit = 0 and the result leaves out the
 * longest tail that begins some stop string. */
size_t vs_stops_scan(const vs_stops *st, const char *text, size_t len, int *hit);
void vs_stops_free(vs_stops *st);

#endif
