#include "formats/tensor_table.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int64_t vb_tensor_numel(const vb_tensor_info *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

void vb_tt_init(vb_tensor_table *tt) { memset(tt, 0, sizeof *tt); }

void vb_tt_free(vb_tensor_table *tt) {
  for (size_t i = 0; i < tt->count; i++) free(tt->items[i].name);
  free(tt->items);
  free(tt->slots);
  for (size_t i = 0; i < tt->nmaps; i++) vb_unmap_file(&tt->maps[i]);
  free(tt->maps);
  for (size_t i = 0; i < tt->nowned; i++) free(tt->owned[i]);
  free(tt->owned);
  memset(tt, 0, sizeof *tt);
}

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static int rehash(vb_tensor_table *tt, size_t nslots) {
  int64_t *slots = vb_malloc(nslots * sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < nslots; i++) slots[i] = -1;
  for (size_t i = 0; i < tt->count; i++) {
    size_t s = hash_str(tt->items[i].name) & (nslots - 1);
    while (slots[s] >= 0) s = (s + 1) & (nslots - 1);
    slots[s] = (int64_t)i;
  }
  free(tt->slots);
  tt->slots = slots;
  tt->nslots = nslots;
  return 0;
}

const vb_tensor_info *vb_tt_find(const vb_tensor_table *tt, const char *name) {
  if (!tt->nslots) return NULL;
  size_t s = hash_str(name) & (tt->nslots - 1);
  while (tt->slots[s] >= 0) {
    const vb_tensor_info *t = &tt->items[tt->slots[s]];
    if (strcmp(t->name, name) == 0) return t;
    s = (s + 1) & (tt->nslots - 1);
  }
  return NULL;
}

int vb_tt_add(vb_tensor_table *tt, const char *name, vb_dtype dtype, int ndim,
              const int64_t *shape, const void *data, size_t nbytes) {
  if (ndim < 0 || ndim > VB_MAX_DIMS)
    return vb_error("tensor %s has %d dimensions (at most %d supported)", name, ndim, VB_MAX_DIMS);
  if (vb_tt_find(tt, name)) return vb_error("tensor %s appears twice", name);
  if (tt->count == tt->cap) {
    size_t cap = tt->cap ? tt->cap * 2 : 64;
    vb_tensor_info *items = vb_realloc(tt->items, cap * sizeof *items);
    if (!items) return -1;
    tt->items = items;
    tt->cap = cap;
  }
  vb_tensor_info *t = &tt->items[tt->count];
  memset(t, 0, sizeof *t);
  t->name = vb_strdup(name);
  if (!t->name) return -1;
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->data = data;
  t->nbytes = nbytes;
  tt->count++;
  if (tt->count * 2 > tt->nslots) {
    if (rehash(tt, tt->nslots ? tt->nslots * 2 : 128) != 0) return -1;
  } else {
    size_t s = hash_str(name) & (tt->nslots - 1);
    while (tt->slots[s] >= 0) s = (s + 1) & (tt->nslots - 1);
    tt->slots[s] = (int64_t)(tt->count - 1);
  }
  return 0;
}

int vb_tt_keep_map(vb_tensor_table *tt, vb_mapped_file *m) {
  vb_mapped_file *maps = vb_realloc(tt->maps, (tt->nmaps + 1) * sizeof *maps);
  if (!maps) return -1;
  tt->maps = maps;
  tt->maps[tt->nmaps++] = *m;
  memset(m, 0, sizeof *m);
  return 0;
}

int vb_tt_keep(vb_tensor_table *tt, void *heap_ptr) {
  void **owned = vb_realloc(tt->owned, (tt->nowned + 1) * sizeof *owned);
  if (!owned) {
    free(heap_ptr);
    return -1;
  }
  tt->owned = owned;
  tt->owned[tt->nowned++] = heap_ptr;
  return 0;
}

void vb_tt_drop_pages(const vb_tensor_table *tt, const void *data, size_t bytes) {
  uintptr_t a = (uintptr_t)data, b = a + bytes;
  for (size_t i = 0; i < tt->nmaps; i++) {
    const vb_mapped_file *m = &tt->maps[i];
    uintptr_t ma = (uintptr_t)m->data, mb = ma + m->size;
    if (m->is_mmap != 1 || a < ma || b > mb) continue;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t pa = (a + page - 1) & ~(page - 1), pb = b & ~(page - 1);
    if (pb > pa) madvise((void *)pa, pb - pa, MADV_DONTNEED);
    return;
  }
}
