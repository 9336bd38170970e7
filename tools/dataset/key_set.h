/* A set of strings (the keys of inputs that already have a result), for resuming. */
#ifndef VBLIP_DATASET_KEY_SET_H
#define VBLIP_DATASET_KEY_SET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  char **slots; /* open addressing; NULL = empty */
  size_t cap, n;
} vb_key_set;

/* Adds a copy of key (a no-op when present). 0, or -1 when out of memory. */
int vb_key_set_add(vb_key_set *s, const char *key);
bool vb_key_set_has(const vb_key_set *s, const char *key);
void vb_key_set_free(vb_key_set *s);

#endif
