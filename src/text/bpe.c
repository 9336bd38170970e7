/* Byte-level BPE (GPT-2 / OPT), reproducing transformers 4.33's slow
 * GPT2Tokenizer from vocab.json + merges.txt (+ tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json), or the same model described by
 * a Hugging Face tokenizer.json. Text flow of encode: added tokens are cut out
 * first (longest match), the rest is split by GPT-2's regex (bpe_split.c), each
 * piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged
 * by merge rank, and the final symbols are looked up in the vocabulary. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/json.h"
#include "text/bpe_split.h"
#include "text/cleanup.h"
#include "text/tokenizer.h"

#define BPE_MAX_FILE ((size_t)256 << 20)
/* Ids index a dense table; this bound keeps a corrupt file from asking for a huge one. */
#define BPE_MAX_ID ((1 << 24) - 1)
/* Pieces up to this many bytes are memoised; the cache is emptied when full. */
#define BPE_CACHE_KEY_MAX 256
#define BPE_CACHE_LIMIT 65536

enum { F_SPECIAL = 1, F_LEGACY_ADDED = 2 };

static uint64_t hash_bytes(const void *p, size_t n) {
  const uint8_t *s = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

/* ---------------------------------------------------------------- symbols */

/* Every string the model knows (vocabulary entries, merge operands and
 * results, the 256 byte characters) is interned once; BPE then works on
 * symbol indices. */
typedef struct {
  char *pool; /* NUL-terminated strings back to back */
  size_t pool_len, pool_cap;
  uint32_t *off, *len;
  uint32_t *hash; /* low bits of each string's hash: cheap rejects and rehashing */
  int32_t *vid;   /* vocabulary id, -1 if the string is not a vocabulary entry */
  uint32_t n, cap;
  uint32_t *slots; /* open addressing: symbol index + 1, 0 = empty */
  size_t nslots;
} symtab;

static void sym_free(symtab *t) {
  free(t->pool);
  free(t->off);
  free(t->len);
  free(t->hash);
  free(t->vid);
  free(t->slots);
  memset(t, 0, sizeof *t);
}

static int32_t sym_find_h(const symtab *t, const char *s, size_t n, uint32_t h) {
  if (!t->nslots) return -1;
  size_t mask = t->nslots - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t v = t->slots[i];
    if (!v) return -1;
    uint32_t k = v - 1;
    if (t->hash[k] == h && t->len[k] == n && memcmp(t->pool + t->off[k], s, n) == 0)
      return (int32_t)k;
  }
}

static int32_t sym_find(const symtab *t, const char *s, size_t n) {
  return sym_find_h(t, s, n, (uint32_t)hash_bytes(s, n));
}

static int sym_rehash(symtab *t, size_t nslots) {
  uint32_t *slots = vb_calloc(nslots, sizeof *slots);
  if (!slots) return -1;
  size_t mask = nslots - 1;
  for (uint32_t k = 0; k < t->n; k++) {
    size_t i = t->hash[k] & mask;
    while (slots[i])
      i = (i + 1) & mask;
    slots[i] = k + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->nslots = nslots;
  return 0;
}

/* Index of s (added with vocabulary id -1 if new), or -1 on error. */
/* Room for `more` new symbols without rehashing (sizes the table up front). */
static int sym_reserve(symtab *t, size_t more) {
  size_t want = 4096;
  while (want < (t->n + more) * 2)
    want *= 2;
  return want > t->nslots ? sym_rehash(t, want) : 0;
}

static int32_t sym_intern(symtab *t, const char *s, size_t n) {
  uint32_t h = (uint32_t)hash_bytes(s, n);
  int32_t found = sym_find_h(t, s, n, h);
  if (found >= 0) return found;
  if (n > UINT32_MAX / 2 || t->n >= (uint32_t)INT32_MAX - 1)
    return vb_error("tokenizer vocabulary too large");
  if (t->n == t->cap) {
    uint32_t nc = t->cap ? t->cap * 2 : 1024;
    uint32_t *off = vb_realloc(t->off, nc * sizeof *off);
    if (!off) return -1;
    t->off = off;
    uint32_t *len = vb_realloc(t->len, nc * sizeof *len);
    if (!len) return -1;
    t->len = len;
    uint32_t *hash = vb_realloc(t->hash, nc * sizeof *hash);
    if (!hash) return -1;
    t->hash = hash;
    int32_t *vid = vb_realloc(t->vid, nc * sizeof *vid);
    if (!vid) return -1;
    t->vid = vid;
    t->cap = nc;
  }
  if (t->pool_len + n + 1 > t->pool_cap) {
    size_t nc = t->pool_cap ? t->pool_cap : 1 << 16;
    while (nc < t->pool_len + n + 1)
      nc *= 2;
    if (nc > UINT32_MAX) return vb_error("tokenizer vocabulary too large");
    char *p = vb_realloc(t->pool, nc);
    if (!p) return -1;
    t->pool = p;
    t->pool_cap = nc;
  }
  if ((size_t)(t->n + 1) * 2 > t->nslots && sym_rehash(t, t->nslots ? t->nslots * 2 : 4096) != 0)
    return -1;
  uint32_t k = t->n++;
  t->off[k] = (uint32_t)t->pool_len;
  t->len[k] = (uint32_t)n;
  t->vid[k] = -1;
  t->hash[k] = h;
  memcpy(t->pool + t->pool_len, s, n);
  t->pool[t->pool_len + n] = 0;
  t->pool_len += n + 1;
  size_t mask = t->nslots - 1;
  size_t i = h & mask;
  while (t->slots[i])
    i = (i + 1) & mask;
  t->slots[i] = k + 1;
  return (int32_t)k;
}

static const char *sym_str(const symtab *t, int32_t k) {
  return t->pool + t->off[k];
}

/* ------------------------------------------------------------------ merges */

typedef struct {
  uint64_t key; /* (left + 1) << 32 | right; 0 = empty */
  int32_t rank, result;
} pair_slot;

typedef struct {
  pair_slot *slots;
  size_t nslots, n;
} pair_table;

static uint64_t pair_key(int32_t a, int32_t b) {
  return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)b;
}

static size_t pair_hash(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  return (size_t)key;
}

static int pair_init(pair_table *p, size_t expected) {
  size_t n = 64;
  while (n < expected * 2 + 16)
    n *= 2;
  p->slots = vb_calloc(n, sizeof *p->slots);
  p->nslots = p->slots ? n : 0;
  p->n = 0;
  return p->slots ? 0 : -1;
}

/* A repeated pair keeps the last rank, as Python's dict(zip(merges, range(n))). */
static void pair_put(pair_table *p, int32_t a, int32_t b, int32_t rank, int32_t result) {
  uint64_t key = pair_key(a, b);
  size_t mask = p->nslots - 1;
  size_t i = pair_hash(key) & mask;
  while (p->slots[i].key && p->slots[i].key != key)
    i = (i + 1) & mask;
  if (!p->slots[i].key) p->n++;
  p->slots[i] = (pair_slot){key, rank, result};
}

static const pair_slot *pair_get(const pair_table *p, int32_t a, int32_t b) {
  uint64_t key = pair_key(a, b);
  size_t mask = p->nslots - 1;
  for (size_t i = pair_hash(key) & mask;; i = (i + 1) & mask) {
    if (p->slots[i].key == key) return &p->slots[i];
    if (!p->slots[i].key) return NULL;
  }
}

/* ------------------------------------------------------------------- model */

typedef struct {
  char *content;
  size_t len;
  int32_t id;
  bool lstrip, rstrip; /* drop whitespace on that side of the match */
} added_tok;

typedef struct cache_entry {
  uint64_t h;
  uint32_t klen, nids;
  int32_t ids[]; /* followed by the key bytes */
} cache_entry;

typedef struct {
  symtab syms;
  pair_table pairs;
  int32_t byte_sym[256];   /* symbol of each byte's alphabet character */
  int16_t byte_of_cp[324]; /* inverse alphabet: code point -> byte, -1 if none */
  int32_t *id_sym;         /* vocabulary id -> symbol, -1 for gaps */
  int32_t n_ids;           /* highest id + 1 */
  int32_t n_entries;       /* number of distinct vocabulary strings */
  int32_t base_size;       /* entries before added tokens (Python's vocab_size) */
  uint8_t *id_flags;
  added_tok *added; /* sorted longest first */
  size_t n_added;
  bool added_first[256];
  int32_t prefix[8], suffix[8]; /* ids the post-processor puts around the text */
  size_t n_prefix, n_suffix;
  int32_t unk_id;
  bool prefix_space_text;    /* slow tokenizer: " " + text */
  bool prefix_space_segment; /* tokenizers: each segment not starting with ' ' */
  bool use_regex;
  bool ignore_merges;
  pthread_mutex_t cache_lock;
  cache_entry **cache;
  size_t cache_slots, cache_n;
} bpe_model;

static void cache_clear(bpe_model *m) {
  for (size_t i = 0; i < m->cache_slots; i++) {
    free(m->cache[i]);
    m->cache[i] = NULL;
  }
  m->cache_n = 0;
}

static void bpe_destroy(void *impl) {
  bpe_model *m = impl;
  if (!m) return;
  sym_free(&m->syms);
  free(m->pairs.slots);
  free(m->id_sym);
  free(m->id_flags);
  for (size_t i = 0; i < m->n_added; i++)
    free(m->added[i].content);
  free(m->added);
  if (m->cache) {
    cache_clear(m);
    free(m->cache);
    pthread_mutex_destroy(&m->cache_lock);
  }
  free(m);
}

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes get the code points 256.. in byte order. */
static int build_byte_alphabet(bpe_model *m) {
  for (int i = 0; i < 324; i++)
    m->byte_of_cp[i] = -1;
  int extra = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    int cp = printable ? b : 256 + extra++;
    m->byte_of_cp[cp] = (int16_t)b;
    char s[3];
    size_t n;
    if (cp < 0x80) {
      s[0] = (char)cp;
      n = 1;
    } else {
      s[0] = (char)(0xC0 | (cp >> 6));
      s[1] = (char)(0x80 | (cp & 0x3F));
      n = 2;
    }
    m->byte_sym[b] = sym_intern(&m->syms, s, n);
    if (m->byte_sym[b] < 0) return -1;
  }
  return 0;
}

/* Gives string s the vocabulary id `id` (the last assignment wins, as when
 * Python builds a dict from the file). */
static int set_vocab(bpe_model *m, const char *s, size_t n, double v, const char *what) {
  if (!(v >= 0 && v <= BPE_MAX_ID) || v != (double)(int32_t)v)
    return vb_error("%s: id of \"%.40s\" is not an integer in [0, %d]", what, s, BPE_MAX_ID);
  int32_t k = sym_intern(&m->syms, s, n);
  if (k < 0) return -1;
  m->syms.vid[k] = (int32_t)v;
  return 0;
}

/* Builds id -> symbol and the entry count once all ids are known. */
static int build_id_table(bpe_model *m) {
  int32_t max_id = -1, count = 0;
  for (uint32_t k = 0; k < m->syms.n; k++) {
    if (m->syms.vid[k] < 0) continue;
    count++;
    if (m->syms.vid[k] > max_id) max_id = m->syms.vid[k];
  }
  free(m->id_sym);
  free(m->id_flags);
  m->n_ids = max_id + 1;
  m->n_entries = count;
  m->id_sym = vb_malloc(((size_t)m->n_ids + 1) * sizeof *m->id_sym);
  m->id_flags = vb_calloc((size_t)m->n_ids + 1, 1);
  if (!m->id_sym || !m->id_flags) return -1;
  for (int32_t i = 0; i < m->n_ids; i++)
    m->id_sym[i] = -1;
  for (uint32_t k = 0; k < m->syms.n; k++) {
    int32_t id = m->syms.vid[k];
    if (id < 0) continue;
    /* Python would keep the last; a vocabulary whose ids collide cannot decode, and
     * would fail only at generation time: refuse it while loading */
    if (m->id_sym[id] >= 0)
      return vb_error("vocabulary: \"%.40s\" and \"%.40s\" both have id %d",
                      sym_str(&m->syms, m->id_sym[id]), sym_str(&m->syms, (int32_t)k), id);
    m->id_sym[id] = (int32_t)k;
  }
  return 0;
}

static int add_merge(bpe_model *m, const char *a, size_t na, const char *b, size_t nb,
                     int32_t rank) {
  int32_t sa = sym_intern(&m->syms, a, na);
  if (sa < 0) return -1;
  int32_t sb = sym_intern(&m->syms, b, nb);
  if (sb < 0) return -1;
  char small[256];
  char *cat = na + nb <= sizeof small ? small : vb_malloc(na + nb);
  if (!cat) return -1;
  memcpy(cat, a, na);
  memcpy(cat + na, b, nb);
  int32_t sr = sym_intern(&m->syms, cat, na + nb);
  if (cat != small) free(cat);
  if (sr < 0) return -1;
  pair_put(&m->pairs, sa, sb, rank, sr);
  return 0;
}

/* Registers an added token (matched in the text before splitting). */
static int add_added(bpe_model *m, const char *content, int32_t id, bool lstrip, bool rstrip) {
  size_t n = strlen(content);
  if (n == 0) return vb_error("empty added token");
  size_t bad;
  if (!vb_bpe_utf8_valid((const uint8_t *)content, n, &bad))
    return vb_error("added token \"%.40s\" is not valid UTF-8", content);
  for (size_t i = 0; i < m->n_added; i++)
    if (strcmp(m->added[i].content, content) == 0) return 0;
  added_tok *a = vb_realloc(m->added, (m->n_added + 1) * sizeof *a);
  if (!a) return -1;
  m->added = a;
  char *c = vb_strdup(content);
  if (!c) return -1;
  m->added[m->n_added++] = (added_tok){c, n, id, lstrip, rstrip};
  m->added_first[(uint8_t)content[0]] = true;
  return 0;
}

static int cmp_added(const void *x, const void *y) {
  const added_tok *a = x, *b = y;
  if (a->len != b->len) return a->len > b->len ? -1 : 1;
  return strcmp(a->content, b->content);
}

static int finish_model(bpe_model *m) {
  qsort(m->added, m->n_added, sizeof *m->added, cmp_added);
  m->cache_slots = (size_t)BPE_CACHE_LIMIT * 2;
  m->cache = vb_calloc(m->cache_slots, sizeof *m->cache);
  if (!m->cache) return -1;
  if (pthread_mutex_init(&m->cache_lock, NULL) != 0) {
    free(m->cache);
    m->cache = NULL;
    return vb_error("cannot create tokenizer cache lock");
  }
  return 0;
}

/* ------------------------------------------------------------------ encode */

typedef struct {
  int32_t *v;
  size_t n, cap;
  size_t limit; /* the caller's token limit, 0 = none: checked as the ids grow */
} idvec;

static int idvec_push(idvec *v, int32_t x) {
  if (v->limit && v->n >= v->limit)
    return vb_input_error("the text is longer than %zu tokens", v->limit);
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 64;
    int32_t *p = vb_realloc(v->v, nc * sizeof *p);
    if (!p) return -1;
    v->v = p;
    v->cap = nc;
  }
  v->v[v->n++] = x;
  return 0;
}

typedef struct {
  int32_t rank, pos, a, b;
} heap_item;

/* Per-call scratch for merging one piece (no shared mutable state). */
typedef struct {
  int32_t *sym, *prev, *next;
  size_t cap;
  heap_item *heap, *pending;
  size_t nheap, npending, hcap, pcap;
  char *seg; /* segment copy when a prefix space is added */
  size_t seg_cap;
} work;

static void work_free(work *w) {
  free(w->sym);
  free(w->prev);
  free(w->next);
  free(w->heap);
  free(w->pending);
  free(w->seg);
}

static int grow_items(heap_item **p, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : 64;
  while (nc < need)
    nc *= 2;
  heap_item *q = vb_realloc(*p, nc * sizeof *q);
  if (!q) return -1;
  *p = q;
  *cap = nc;
  return 0;
}

static bool item_less(const heap_item *x, const heap_item *y) {
  return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static int heap_push(work *w, heap_item it) {
  if (grow_items(&w->heap, &w->hcap, w->nheap + 1) != 0) return -1;
  size_t i = w->nheap++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!item_less(&it, &w->heap[p])) break;
    w->heap[i] = w->heap[p];
    i = p;
  }
  w->heap[i] = it;
  return 0;
}

static heap_item heap_pop(work *w) {
  heap_item top = w->heap[0], last = w->heap[--w->nheap];
  size_t i = 0, n = w->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && item_less(&w->heap[c + 1], &w->heap[c])) c++;
    if (!item_less(&w->heap[c], &last)) break;
    w->heap[i] = w->heap[c];
    i = c;
  }
  if (n) w->heap[i] = last;
  return top;
}

static int pend_pair(const bpe_model *m, work *w, int32_t left) {
  int32_t right = w->next[left];
  if (right < 0) return 0;
  const pair_slot *ps = pair_get(&m->pairs, w->sym[left], w->sym[right]);
  if (!ps) return 0;
  if (grow_items(&w->pending, &w->pcap, w->npending + 1) != 0) return -1;
  w->pending[w->npending++] = (heap_item){ps->rank, left, w->sym[left], w->sym[right]};
  return 0;
}

static bool item_valid(const work *w, const heap_item *it) {
  int32_t r = w->next[it->pos];
  return w->sym[it->pos] == it->a && r >= 0 && w->sym[r] == it->b;
}

static void merge_at(const bpe_model *m, work *w, const heap_item *it) {
  int32_t p = it->pos, q = w->next[p];
  w->sym[p] = pair_get(&m->pairs, it->a, it->b)->result;
  w->next[p] = w->next[q];
  if (w->next[q] >= 0) w->prev[w->next[q]] = p;
  w->sym[q] = -1;
}

/* Merges the byte-alphabet symbols of one piece. Like GPT2Tokenizer.bpe(), each
 * round takes the lowest-ranked adjacent pair and merges all of its
 * occurrences left to right; pairs created during a round only compete from
 * the next round on. A heap keyed by (rank, position) keeps this O(n log n). */
static int bpe_piece(const bpe_model *m, work *w, const uint8_t *s, size_t n, idvec *out) {
  if (n == 0) return 0;
  if (n > (size_t)INT32_MAX - 1) return vb_error("text piece too long");
  if (n > w->cap) {
    size_t nc = w->cap ? w->cap : 64;
    while (nc < n)
      nc *= 2;
    int32_t *a = vb_realloc(w->sym, nc * sizeof *a);
    if (!a) return -1;
    w->sym = a;
    a = vb_realloc(w->prev, nc * sizeof *a);
    if (!a) return -1;
    w->prev = a;
    a = vb_realloc(w->next, nc * sizeof *a);
    if (!a) return -1;
    w->next = a;
    w->cap = nc;
  }
  for (size_t i = 0; i < n; i++) {
    w->sym[i] = m->byte_sym[s[i]];
    w->prev[i] = (int32_t)i - 1;
    w->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  w->nheap = w->npending = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if (pend_pair(m, w, (int32_t)i) != 0) return -1;
  for (size_t i = 0; i < w->npending; i++)
    if (heap_push(w, w->pending[i]) != 0) return -1;
  w->npending = 0;
  while (w->nheap) {
    heap_item it = heap_pop(w);
    if (!item_valid(w, &it)) continue;
    int32_t rank = it.rank;
    for (;;) {
      merge_at(m, w, &it);
      if (w->prev[it.pos] >= 0 && pend_pair(m, w, w->prev[it.pos]) != 0) return -1;
      if (pend_pair(m, w, it.pos) != 0) return -1;
      /* the rest of this round: further occurrences of the same pair */
      bool more = false;
      while (w->nheap && w->heap[0].rank == rank) {
        it = heap_pop(w);
        if (item_valid(w, &it)) {
          more = true;
          break;
        }
      }
      if (!more) break;
    }
    for (size_t i = 0; i < w->npending; i++)
      if (heap_push(w, w->pending[i]) != 0) return -1;
    w->npending = 0;
  }
  for (int32_t i = 0; i >= 0; i = w->next[i]) {
    int32_t id = m->syms.vid[w->sym[i]];
    if (id < 0) id = m->unk_id;
    if (id < 0)
      return vb_error("token \"%.40s\" is not in the vocabulary and there is no unknown token",
                      sym_str(&m->syms, w->sym[i]));
    if (idvec_push(out, id) != 0) return -1;
  }
  return 0;
}

static bool cache_get(bpe_model *m, uint64_t h, const char *s, size_t n, idvec *out, int *err) {
  bool hit = false;
  pthread_mutex_lock(&m->cache_lock);
  size_t mask = m->cache_slots - 1;
  for (size_t i = h & mask; m->cache[i]; i = (i + 1) & mask) {
    cache_entry *e = m->cache[i];
    if (e->h == h && e->klen == n && memcmp((char *)(e->ids + e->nids), s, n) == 0) {
      for (uint32_t j = 0; j < e->nids && !*err; j++)
        *err = idvec_push(out, e->ids[j]);
      hit = true;
      break;
    }
  }
  pthread_mutex_unlock(&m->cache_lock);
  return hit;
}

static void cache_put(bpe_model *m, uint64_t h, const char *s, size_t n, const int32_t *ids,
                      size_t nids) {
  cache_entry *e = malloc(sizeof *e + nids * sizeof(int32_t) + n);
  if (!e) return; /* the cache is only an optimisation */
  e->h = h;
  e->klen = (uint32_t)n;
  e->nids = (uint32_t)nids;
  memcpy(e->ids, ids, nids * sizeof(int32_t));
  memcpy((char *)(e->ids + nids), s, n);
  pthread_mutex_lock(&m->cache_lock);
  if (m->cache_n >= BPE_CACHE_LIMIT) cache_clear(m);
  size_t mask = m->cache_slots - 1, i = h & mask;
  while (m->cache[i]) {
    cache_entry *o = m->cache[i];
    if (o->h == h && o->klen == n && memcmp((char *)(o->ids + o->nids), s, n) == 0) break;
    i = (i + 1) & mask;
  }
  if (m->cache[i]) {
    free(e); /* another thread stored it meanwhile */
  } else {
    m->cache[i] = e;
    m->cache_n++;
  }
  pthread_mutex_unlock(&m->cache_lock);
}

static int encode_piece(const bpe_model *cm, work *w, const char *s, size_t n, idvec *out) {
  /* The cache is the only state encode changes; it has its own lock. */
  bpe_model *m = (bpe_model *)cm;
  if (m->ignore_merges) {
    /* tokenizers' ignore_merges: a piece that is a whole vocabulary entry stays one token */
    char *mapped = vb_malloc(n * 2 + 1);
    if (!mapped) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      const char *c = sym_str(&m->syms, m->byte_sym[(uint8_t)s[i]]);
      size_t cl = strlen(c);
      memcpy(mapped + k, c, cl);
      k += cl;
    }
    int32_t sym = sym_find(&m->syms, mapped, k);
    free(mapped);
    if (sym >= 0 && m->syms.vid[sym] >= 0) return idvec_push(out, m->syms.vid[sym]);
  }
  bool cacheable = n <= BPE_CACHE_KEY_MAX;
  uint64_t h = 0;
  int err = 0;
  if (cacheable) {
    h = hash_bytes(s, n);
    if (cache_get(m, h, s, n, out, &err)) return err;
  }
  size_t start = out->n;
  if (bpe_piece(m, w, (const uint8_t *)s, n, out) != 0) return -1;
  if (cacheable) cache_put(m, h, s, n, out->v + start, out->n - start);
  return 0;
}

static int encode_segment(const bpe_model *m, work *w, const char *t, size_t n, idvec *out) {
  if (n == 0) return 0;
  if (m->prefix_space_segment && t[0] != ' ') {
    if (n + 2 > w->seg_cap) {
      char *p = vb_realloc(w->seg, n + 2);
      if (!p) return -1;
      w->seg = p;
      w->seg_cap = n + 2;
    }
    w->seg[0] = ' ';
    memcpy(w->seg + 1, t, n);
    t = w->seg;
    n++;
  }
  if (!m->use_regex) return encode_piece(m, w, t, n, out);
  for (size_t pos = 0; pos < n;) {
    size_t k = vb_bpe_next_piece(t, n, pos);
    if (encode_piece(m, w, t + pos, k, out) != 0) return -1;
    pos += k;
  }
  return 0;
}

static size_t skip_space_fwd(const char *t, size_t pos, size_t end) {
  while (pos < end) {
    int32_t cp;
    size_t k = vb_bpe_utf8_next((const uint8_t *)t + pos, end - pos, &cp);
    if (!k || !vb_bpe_py_isspace(cp)) break;
    pos += k;
  }
  return pos;
}

/* End of s[start..end) with trailing whitespace removed. */
static size_t trim_space_back(const char *t, size_t start, size_t end) {
  size_t keep = start;
  for (size_t pos = start; pos < end;) {
    int32_t cp;
    size_t k = vb_bpe_utf8_next((const uint8_t *)t + pos, end - pos, &cp);
    if (!k) return end;
    pos += k;
    if (!vb_bpe_py_isspace(cp)) keep = pos;
  }
  return keep;
}

static const added_tok *match_added(const bpe_model *m, const char *t, size_t pos, size_t len) {
  if (!m->added_first[(uint8_t)t[pos]]) return NULL;
  for (size_t i = 0; i < m->n_added; i++) { /* longest first */
    const added_tok *a = &m->added[i];
    if (a->len <= len - pos && memcmp(t + pos, a->content, a->len) == 0) return a;
  }
  return NULL;
}

static int bpe_encode(const void *impl, const char *text, size_t len, bool add_special,
                      size_t max_ids, int32_t **ids, size_t *n) {
  const bpe_model *m = impl;
  *ids = NULL;
  *n = 0;
  if (!text && len) return vb_error("encode: NULL text");
  size_t bad;
  if (len && !vb_bpe_utf8_valid((const uint8_t *)text, len, &bad))
    return vb_input_error("input is not valid UTF-8 at byte %zu", bad);
  char *owned = NULL;
  if (m->prefix_space_text) {
    owned = vb_malloc(len + 2);
    if (!owned) return -1;
    owned[0] = ' ';
    if (len) memcpy(owned + 1, text, len);
    text = owned;
    len++;
  }
  idvec out = {0};
  work w = {0};
  int rc = -1;
  if (idvec_push(&out, 0) != 0) goto done; /* ensures a non-NULL result */
  out.n = 0;
  out.limit = max_ids;
  if (add_special)
    for (size_t i = 0; i < m->n_prefix; i++)
      if (idvec_push(&out, m->prefix[i]) != 0) goto done;
  size_t cur = 0;
  bool strip_next = false; /* the previous added token eats whitespace on its right */
  for (size_t pos = 0; pos < len; pos++) {
    const added_tok *a = match_added(m, text, pos, len);
    if (!a) continue;
    size_t s = strip_next ? skip_space_fwd(text, cur, pos) : cur;
    size_t e = a->lstrip ? trim_space_back(text, s, pos) : pos;
    if (encode_segment(m, &w, text + s, e - s, &out) != 0) goto done;
    if (idvec_push(&out, a->id) != 0) goto done;
    strip_next = a->rstrip;
    cur = pos + a->len;
    pos = cur - 1;
  }
  if (cur < len) {
    size_t s = strip_next ? skip_space_fwd(text, cur, len) : cur;
    if (encode_segment(m, &w, text + s, len - s, &out) != 0) goto done;
  }
  if (add_special)
    for (size_t i = 0; i < m->n_suffix; i++)
      if (idvec_push(&out, m->suffix[i]) != 0) goto done;
  rc = 0;
done:
  work_free(&w);
  free(owned);
  if (rc != 0) {
    free(out.v);
    return -1;
  }
  *ids = out.v;
  *n = out.n;
  return 0;
}

/* ------------------------------------------------------------------ decode */

static bool id_known(const bpe_model *m, int32_t id) {
  return id >= 0 && id < m->n_ids && m->id_sym[id] >= 0;
}

static const char *bpe_token(const void *impl, int32_t id) {
  const bpe_model *m = impl;
  return id_known(m, id) ? sym_str(&m->syms, m->id_sym[id]) : NULL;
}

static int32_t bpe_vocab_size(const void *impl) {
  return ((const bpe_model *)impl)->n_entries;
}

static bool bpe_is_special(const void *impl, int32_t id) {
  const bpe_model *m = impl;
  return id_known(m, id) && (m->id_flags[id] & F_SPECIAL);
}

typedef struct {
  uint8_t *b;
  size_t n, cap;
} bytebuf;

static int bytes_add(bytebuf *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n)
      nc *= 2;
    uint8_t *q = vb_realloc(b->b, nc);
    if (!q) return -1;
    b->b = q;
    b->cap = nc;
  }
  memcpy(b->b + b->n, p, n);
  b->n += n;
  return 0;
}

/* Token string -> bytes through the inverse alphabet; characters outside the
 * alphabet (possible in added tokens) keep their own UTF-8 bytes. */
static int token_bytes(const bpe_model *m, const char *s, size_t n, bytebuf *out) {
  for (size_t i = 0; i < n;) {
    int32_t cp;
    size_t k = vb_bpe_utf8_next((const uint8_t *)s + i, n - i, &cp);
    if (k == 0) k = 1, cp = -1;
    if (cp >= 0 && cp < 324 && m->byte_of_cp[cp] >= 0) {
      uint8_t b = (uint8_t)m->byte_of_cp[cp];
      if (bytes_add(out, &b, 1) != 0) return -1;
    } else if (bytes_add(out, s + i, k) != 0) {
      return -1;
    }
    i += k;
  }
  return 0;
}

/* Ends one of transformers' sub-texts; they are joined with single spaces
 * (spaces_between_special_tokens defaults to true in 4.33). */
static int flush_sub(bytebuf *cur, int *nsub, char **out, size_t *len, size_t *cap) {
  if (*nsub > 0 && vb_bpe_utf8_append_lossy((const uint8_t *)" ", 1, out, len, cap) != 0) return -1;
  if (vb_bpe_utf8_append_lossy(cur->b, cur->n, out, len, cap) != 0) return -1;
  cur->n = 0;
  (*nsub)++;
  return 0;
}

static int bpe_decode(const void *impl, const int32_t *ids, size_t n, bool skip_special,
                      bool cleanup, char **text) {
  const bpe_model *m = impl;
  *text = NULL;
  if (!ids && n) return vb_error("decode: NULL ids");
  bytebuf cur = {0};
  char *out = NULL;
  size_t len = 0, cap = 0;
  int nsub = 0;
  int rc = -1;
  if (vb_bpe_utf8_append_lossy(NULL, 0, &out, &len, &cap) != 0) goto done;
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (!id_known(m, id)) {
      vb_error("token id %d is out of range (vocabulary of %d ids)", id, m->n_ids);
      goto done;
    }
    if (skip_special && (m->id_flags[id] & F_SPECIAL)) continue;
    int32_t k = m->id_sym[id];
    const char *s = sym_str(&m->syms, k);
    if (m->id_flags[id] & F_LEGACY_ADDED) {
      /* tokens added beyond the base vocabulary are their own sub-text, verbatim */
      if (cur.n && flush_sub(&cur, &nsub, &out, &len, &cap) != 0) goto done;
      if (bytes_add(&cur, s, m->syms.len[k]) != 0) goto done;
      if (flush_sub(&cur, &nsub, &out, &len, &cap) != 0) goto done;
    } else if (token_bytes(m, s, m->syms.len[k], &cur) != 0) {
      goto done;
    }
  }
  if (cur.n && flush_sub(&cur, &nsub, &out, &len, &cap) != 0) goto done;
  if (cleanup) vb_clean_up_tokenization(out);
  rc = 0;
done:
  free(cur.b);
  if (rc != 0) {
    free(out);
    return -1;
  }
  *text = out;
  return 0;
}

static const vb_tokenizer_ops bpe_ops = {
    .encode = bpe_encode,
    .decode = bpe_decode,
    .token = bpe_token,
    .vocab_size = bpe_vocab_size,
    .is_special = bpe_is_special,
    .destroy = bpe_destroy,
};

/* ------------------------------------------------------------ slow files */

static cJSON *read_json(const char *dir, const char *name, bool optional, int *err) {
  *err = 0;
  char *path = vb_path_join(dir, name);
  if (!path) {
    *err = -1;
    return NULL;
  }
  cJSON *j = NULL;
  if (optional && !vb_file_exists(path)) {
    free(path);
    return NULL;
  }
  char *text;
  size_t n;
  if (vb_read_file(path, BPE_MAX_FILE, &text, &n) != 0) {
    *err = -1;
  } else {
    j = vb_json_parse(text, n, name);
    free(text);
    if (!j) *err = -1;
  }
  free(path);
  return j;
}

static int load_vocab_json(bpe_model *m, const char *dir) {
  int err;
  cJSON *j = read_json(dir, "vocab.json", false, &err);
  if (!j) return -1;
  int rc = 0;
  if (!cJSON_IsObject(j))
    rc = vb_error("vocab.json: expected an object of token -> id");
  else
    rc = sym_reserve(&m->syms, (size_t)cJSON_GetArraySize(j) + 256);
  for (cJSON *c = j->child; c && rc == 0; c = c->next) {
    if (!c->string || !cJSON_IsNumber(c)) {
      rc = vb_error("vocab.json: entry \"%.40s\" is not a number", c->string ? c->string : "");
      break;
    }
    rc = set_vocab(m, c->string, strlen(c->string), c->valuedouble, "vocab.json");
  }
  cJSON_Delete(j);
  return rc;
}

static int load_merges_txt(bpe_model *m, const char *dir) {
  char *path = vb_path_join(dir, "merges.txt");
  if (!path) return -1;
  char *text;
  size_t n;
  int rc = vb_read_file(path, BPE_MAX_FILE, &text, &n);
  free(path);
  if (rc != 0) return -1;
  size_t lines = 1;
  for (size_t i = 0; i < n; i++)
    lines += text[i] == '\n';
  if (sym_reserve(&m->syms, lines) != 0 || pair_init(&m->pairs, lines) != 0) {
    free(text);
    return -1;
  }
  int32_t rank = 0;
  size_t lineno = 0;
  for (size_t pos = 0; pos < n && rc == 0;) {
    size_t e = pos;
    while (e < n && text[e] != '\n')
      e++;
    size_t next = e + 1;
    lineno++;
    if (e > pos && text[e - 1] == '\r') e--;
    /* The first line is the "#version" header, which GPT2Tokenizer always skips. */
    bool header = lineno == 1 && e > pos && text[pos] == '#';
    if (!header && e > pos) {
      /* Python's str.split(): the two symbols separated by whitespace */
      const char *f[3];
      size_t fl[3], nf = 0;
      for (size_t i = pos; i < e;) {
        while (i < e && (text[i] == ' ' || text[i] == '\t'))
          i++;
        if (i == e) break;
        size_t s = i;
        while (i < e && text[i] != ' ' && text[i] != '\t')
          i++;
        if (nf < 3) f[nf] = text + s, fl[nf] = i - s;
        nf++;
      }
      if (nf != 2) {
        rc = vb_error("merges.txt line %zu: expected two symbols, got %zu", lineno, nf);
      } else if (memchr(text + pos, 0, e - pos)) {
        rc = vb_error("merges.txt line %zu: NUL byte", lineno);
      } else {
        rc = add_merge(m, f[0], fl[0], f[1], fl[1], rank++);
      }
    }
    pos = next;
  }
  free(text);
  return rc;
}

/* A special-token value from tokenizer_config.json / special_tokens_map.json:
 * a string, or an AddedToken dict. Only AddedToken keeps its own strip flags;
 * plain strings get transformers 4.33's default of stripping both sides. */
typedef struct {
  char *content;
  bool lstrip, rstrip;
} spec_tok;

static int parse_spec(const cJSON *v, spec_tok *out, const char *what) {
  const cJSON *c = v;
  bool dict = cJSON_IsObject(v);
  if (dict) c = cJSON_GetObjectItemCaseSensitive(v, "content");
  if (cJSON_IsNull(v)) { /* an explicit null unsets the token */
    free(out->content);
    out->content = NULL;
    return 0;
  }
  if (!cJSON_IsString(c) || !c->valuestring)
    return vb_error("%s: special token is neither a string nor an AddedToken", what);
  char *s = vb_strdup(c->valuestring);
  if (!s) return -1;
  free(out->content);
  out->content = s;
  out->lstrip = out->rstrip = !dict;
  if (dict) {
    out->lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "lstrip"));
    out->rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "rstrip"));
  }
  return 0;
}

#define N_NAMED 7
static const char *const named_keys[N_NAMED] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                "pad_token", "cls_token", "mask_token"};

typedef struct {
  spec_tok named[N_NAMED];
  spec_tok *extra; /* additional_special_tokens */
  size_t n_extra;
} spec_set;

static void spec_free(spec_set *s) {
  for (int i = 0; i < N_NAMED; i++)
    free(s->named[i].content);
  for (size_t i = 0; i < s->n_extra; i++)
    free(s->extra[i].content);
  free(s->extra);
}

/* from_config: GPT2Tokenizer.__init__ wraps string bos/eos/unk/pad tokens into
 * AddedToken(lstrip=False, rstrip=False); special_tokens_map.json strings are
 * set as they are. */
static int read_specs(const cJSON *j, spec_set *s, const char *what, bool from_config) {
  if (!j) return 0;
  if (!cJSON_IsObject(j)) return vb_error("%s: expected a JSON object", what);
  for (int i = 0; i < N_NAMED; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, named_keys[i]);
    if (v && parse_spec(v, &s->named[i], what) != 0) return -1;
    if (v && from_config && (i == 0 || i == 1 || i == 2 || i == 4))
      s->named[i].lstrip = s->named[i].rstrip = false;
  }
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "additional_special_tokens");
  if (ex && !cJSON_IsNull(ex)) {
    if (!cJSON_IsArray(ex)) return vb_error("%s: additional_special_tokens is not a list", what);
    for (size_t i = 0; i < s->n_extra; i++)
      free(s->extra[i].content);
    free(s->extra);
    s->n_extra = 0;
    int cnt = cJSON_GetArraySize(ex);
    s->extra = vb_calloc((size_t)cnt + 1, sizeof *s->extra);
    if (!s->extra) return -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, ex) {
      if (parse_spec(v, &s->extra[s->n_extra], what) != 0) return -1;
      if (s->extra[s->n_extra].content) s->n_extra++;
    }
  }
  return 0;
}

/* Id of a special token, appending it to the vocabulary when absent (as
 * transformers' sanitize_special_tokens does). */
static int special_id(bpe_model *m, const spec_tok *t, int32_t *id) {
  int32_t k = sym_find(&m->syms, t->content, strlen(t->content));
  if (k >= 0 && m->syms.vid[k] >= 0) {
    *id = m->syms.vid[k];
    return 0;
  }
  if (m->n_entries > BPE_MAX_ID) return vb_error("too many tokens");
  if (set_vocab(m, t->content, strlen(t->content), m->n_entries, "special tokens") != 0) return -1;
  *id = m->n_entries;
  return build_id_table(m);
}

typedef struct {
  const char *content;
  int32_t id;
} added_entry;

static int cmp_entry(const void *x, const void *y) {
  const added_entry *a = x, *b = y;
  return (a->id > b->id) - (a->id < b->id);
}

/* added_tokens.json: tokens appended after the vocabulary, with consecutive ids
 * (from_pretrained adds them in id order and rejects gaps). */
static int load_added_json(bpe_model *m, const cJSON *added) {
  if (!cJSON_IsObject(added))
    return vb_error("added_tokens.json: expected an object of token -> id");
  int cnt = cJSON_GetArraySize(added);
  added_entry *e = vb_calloc((size_t)cnt + 1, sizeof *e);
  if (!e) return -1;
  int n = 0, rc = 0;
  for (const cJSON *c = added->child; c; c = c->next) {
    if (!c->string || !cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble > BPE_MAX_ID ||
        c->valuedouble != (double)(int32_t)c->valuedouble) {
      rc = vb_error("added_tokens.json: entry \"%.40s\" is not token -> integer id",
                    c->string ? c->string : "");
      break;
    }
    e[n++] = (added_entry){c->string, (int32_t)c->valuedouble};
  }
  if (rc == 0) qsort(e, (size_t)n, sizeof *e, cmp_entry);
  for (int i = 0; i < n && rc == 0; i++) {
    int32_t k = sym_find(&m->syms, e[i].content, strlen(e[i].content));
    if (k >= 0 && m->syms.vid[k] >= 0) continue; /* already known: add_tokens ignores it */
    if (e[i].id != m->n_entries) {
      rc = vb_error("added_tokens.json: token \"%.40s\" has id %d, expected %d", e[i].content,
                    e[i].id, m->n_entries);
      break;
    }
    rc = set_vocab(m, e[i].content, strlen(e[i].content), e[i].id, "added_tokens.json");
    if (rc == 0) rc = build_id_table(m);
  }
  free(e);
  return rc;
}

static int load_slow(bpe_model *m, const char *dir) {
  if (load_vocab_json(m, dir) != 0) return -1;
  if (m->syms.n == 0) return vb_error("vocab.json has no entries");
  if (build_byte_alphabet(m) != 0 || build_id_table(m) != 0) return -1;
  if (load_merges_txt(m, dir) != 0) return -1;
  m->base_size = m->n_entries;
  m->use_regex = true;
  m->unk_id = -1;

  int err;
  spec_set specs = {0};
  /* GPT2Tokenizer's own defaults for bos/eos/unk (AddedTokens without stripping) */
  for (int i = 0; i < 3; i++) {
    specs.named[i].content = vb_strdup("<|endoftext|>");
    if (!specs.named[i].content) return -1;
  }
  bool add_bos = false;
  int rc = -1;
  cJSON *cfg = read_json(dir, "tokenizer_config.json", true, &err);
  cJSON *map = NULL, *added = NULL;
  if (err) goto done;
  if (cfg) {
    if (read_specs(cfg, &specs, "tokenizer_config.json", true) != 0) goto done;
    add_bos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token"));
    m->prefix_space_text = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "add_prefix_space"));
  }
  /* special_tokens_map.json overrides the config, as in from_pretrained */
  map = read_json(dir, "special_tokens_map.json", true, &err);
  if (err || read_specs(map, &specs, "special_tokens_map.json", false) != 0) goto done;
  added = read_json(dir, "added_tokens.json", true, &err);
  if (err || (added && load_added_json(m, added) != 0)) goto done;

  /* Special tokens (named ones, then additional): ids, appended to the
   * vocabulary when missing, as sanitize_special_tokens does. */
  enum { MAX_SPEC = N_NAMED + 256 };
  spec_tok *all[MAX_SPEC];
  int32_t ids[MAX_SPEC];
  int32_t named_id[N_NAMED];
  size_t n_all = 0;
  for (int i = 0; i < N_NAMED; i++) {
    named_id[i] = -1;
    if (!specs.named[i].content) continue;
    all[n_all] = &specs.named[i];
    if (special_id(m, all[n_all], &ids[n_all]) != 0) goto done;
    named_id[i] = ids[n_all++];
  }
  if (specs.n_extra > MAX_SPEC - N_NAMED) {
    vb_error("too many additional_special_tokens (%zu)", specs.n_extra);
    goto done;
  }
  for (size_t i = 0; i < specs.n_extra; i++) {
    all[n_all] = &specs.extra[i];
    if (special_id(m, all[n_all], &ids[n_all]) != 0) goto done;
    n_all++;
  }
  /* All of them are cut out of the text before splitting; the special ones
   * first so that their strip flags win. */
  for (size_t i = 0; i < n_all; i++)
    if (add_added(m, all[i]->content, ids[i], all[i]->lstrip, all[i]->rstrip) != 0) goto done;
  for (const cJSON *c = added ? added->child : NULL; c; c = c->next) {
    int32_t k = sym_find(&m->syms, c->string, strlen(c->string));
    if (k >= 0 && m->syms.vid[k] >= m->base_size &&
        add_added(m, c->string, m->syms.vid[k], true, true) != 0)
      goto done;
  }
  if (build_id_table(m) != 0) goto done;
  for (size_t i = 0; i < n_all; i++)
    m->id_flags[ids[i]] |= F_SPECIAL;
  /* decode() gives tokens beyond the base vocabulary their own space-separated
   * sub-text, unless they are named special tokens (4.33's legacy_added_tokens) */
  for (size_t i = 0; i < m->n_added; i++) {
    int32_t id = m->added[i].id;
    bool named = false;
    for (int j = 0; j < N_NAMED; j++)
      named |= named_id[j] == id;
    if (id >= m->base_size && !named) m->id_flags[id] |= F_LEGACY_ADDED;
  }
  m->unk_id = named_id[2];
  if (add_bos && named_id[0] >= 0) m->prefix[m->n_prefix++] = named_id[0];
  rc = 0;
done:
  cJSON_Delete(cfg);
  cJSON_Delete(map);
  cJSON_Delete(added);
  spec_free(&specs);
  return rc;
}

/* --------------------------------------------------------- tokenizer.json */

static int json_token_id(bpe_model *m, const char *s, int32_t *id, const char *what) {
  int32_t k = sym_find(&m->syms, s, strlen(s));
  if (k < 0 || m->syms.vid[k] < 0) return vb_error("%s: unknown token \"%.40s\"", what, s);
  *id = m->syms.vid[k];
  return 0;
}

static int push_post(bpe_model *m, bool before, int32_t id) {
  if (!id_known(m, id)) return vb_error("post_processor: token id %d is not in the vocabulary", id);
  int32_t *arr = before ? m->prefix : m->suffix;
  size_t *n = before ? &m->n_prefix : &m->n_suffix;
  if (*n >= 8) return vb_error("post_processor: too many special tokens");
  arr[(*n)++] = id;
  return 0;
}

static int load_post(bpe_model *m, const cJSON *pp) {
  if (!pp || cJSON_IsNull(pp)) return 0;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(pp, "type");
  if (!cJSON_IsString(type)) return vb_error("post_processor has no type");
  const char *t = type->valuestring;
  if (!strcmp(t, "ByteLevel")) return 0; /* only adjusts offsets */
  if (!strcmp(t, "Sequence")) {
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
      if (load_post(m, p) != 0) return -1;
    }
    return 0;
  }
  if (!strcmp(t, "RobertaProcessing") || !strcmp(t, "BertProcessing")) {
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls");
    const cJSON *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
    const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
    if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si) || !(ci->valuedouble >= 0) ||
        !(si->valuedouble >= 0) || ci->valuedouble > BPE_MAX_ID || si->valuedouble > BPE_MAX_ID)
      return vb_error("post_processor %s: malformed cls/sep", t);
    if (push_post(m, true, (int32_t)ci->valuedouble) != 0) return -1;
    return push_post(m, false, (int32_t)si->valuedouble);
  }
  if (!strcmp(t, "TemplateProcessing")) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
    if (!cJSON_IsArray(single)) return vb_error("TemplateProcessing: no single template");
    bool before = true;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
      if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
        before = false;
        continue;
      }
      const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
      const cJSON *sid = cJSON_GetObjectItemCaseSensitive(st, "id");
      if (!cJSON_IsString(sid)) return vb_error("TemplateProcessing: malformed template item");
      const cJSON *entry = cJSON_GetObjectItemCaseSensitive(table, sid->valuestring);
      const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
      if (!cJSON_IsArray(ids))
        return vb_error("TemplateProcessing: special token \"%.40s\" is not defined",
                        sid->valuestring);
      const cJSON *x;
      cJSON_ArrayForEach(x, ids) {
        if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > BPE_MAX_ID)
          return vb_error("TemplateProcessing: bad id");
        if (push_post(m, before, (int32_t)x->valuedouble) != 0) return -1;
      }
    }
    return 0;
  }
  return vb_error("unsupported post_processor %s", t);
}

static int load_pretok(bpe_model *m, const cJSON *pt) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(pt, "type");
  if (!cJSON_IsString(type)) return vb_error("tokenizer.json: BPE needs a ByteLevel pre_tokenizer");
  if (!strcmp(type->valuestring, "Sequence")) {
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    if (cJSON_GetArraySize(subs) != 1) return vb_error("unsupported pre_tokenizer Sequence");
    return load_pretok(m, cJSON_GetArrayItem(subs, 0));
  }
  if (strcmp(type->valuestring, "ByteLevel") != 0)
    return vb_error("unsupported pre_tokenizer %s", type->valuestring);
  const cJSON *aps = cJSON_GetObjectItemCaseSensitive(pt, "add_prefix_space");
  const cJSON *ur = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
  /* tokenizers' defaults are true for both */
  m->prefix_space_segment = !cJSON_IsFalse(aps);
  m->use_regex = !cJSON_IsFalse(ur);
  return 0;
}

static int load_tokenizer_json(bpe_model *m, cJSON *root) {
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
  const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
  if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
    return vb_error("tokenizer.json: BPE model without vocab/merges");
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0)
    return vb_error("tokenizer.json: BPE dropout is not supported");
  static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
    if (cJSON_IsString(a) && a->valuestring[0])
      return vb_error("tokenizer.json: %s is not supported for byte-level BPE", affixes[i]);
  }
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
  if (norm && !cJSON_IsNull(norm)) return vb_error("tokenizer.json: normalizers are not supported");
  m->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));

  size_t nv = (size_t)cJSON_GetArraySize(vocab), nm = (size_t)cJSON_GetArraySize(merges);
  if (sym_reserve(&m->syms, nv + nm + 256) != 0) return -1;
  for (const cJSON *c = vocab->child; c; c = c->next) {
    if (!c->string || !cJSON_IsNumber(c))
      return vb_error("tokenizer.json: vocab entry is not token -> id");
    if (set_vocab(m, c->string, strlen(c->string), c->valuedouble, "tokenizer.json vocab") != 0)
      return -1;
  }
  if (build_byte_alphabet(m) != 0) return -1;
  if (pair_init(&m->pairs, nm) != 0) return -1;
  int32_t rank = 0;
  const cJSON *mg;
  cJSON_ArrayForEach(mg, merges) {
    const char *a, *b;
    size_t na, nb;
    if (cJSON_IsString(mg)) {
      /* "a b": exactly one space */
      const char *s = mg->valuestring, *sp = strchr(s, ' ');
      if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
        return vb_error("tokenizer.json: merge %d \"%.40s\" is not \"a b\"", rank, s);
      a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(sp + 1);
    } else if (cJSON_IsArray(mg) && cJSON_GetArraySize(mg) == 2 &&
               cJSON_IsString(cJSON_GetArrayItem(mg, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(mg, 1))) {
      a = cJSON_GetArrayItem(mg, 0)->valuestring, na = strlen(a);
      b = cJSON_GetArrayItem(mg, 1)->valuestring, nb = strlen(b);
      if (!na || !nb) return vb_error("tokenizer.json: merge %d has an empty side", rank);
    } else {
      return vb_error("tokenizer.json: merge %d is neither \"a b\" nor [a, b]", rank);
    }
    if (add_merge(m, a, na, b, nb, rank++) != 0) return -1;
  }

  /* added tokens keep their ids; matched in the text first */
  const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
  const cJSON *at;
  cJSON_ArrayForEach(at, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(at, "id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(at, "content");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
      return vb_error("tokenizer.json: malformed added token");
    if (set_vocab(m, content->valuestring, strlen(content->valuestring), id->valuedouble,
                  "tokenizer.json added_tokens") != 0)
      return -1;
  }
  if (build_id_table(m) != 0) return -1;
  m->base_size = m->n_entries;
  cJSON_ArrayForEach(at, added) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(at, "content");
    int32_t id = (int32_t)cJSON_GetObjectItemCaseSensitive(at, "id")->valuedouble;
    if (add_added(m, content->valuestring, id,
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(at, "lstrip")),
                  cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(at, "rstrip"))) != 0)
      return -1;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(at, "special"))) m->id_flags[id] |= F_SPECIAL;
  }
  m->unk_id = -1;
  const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
  if (cJSON_IsString(unk) && json_token_id(m, unk->valuestring, &m->unk_id, "unk_token") != 0)
    return -1;
  if (load_pretok(m, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) != 0) return -1;
  return load_post(m, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
}

/* ------------------------------------------------------------------- entry */

static bool has_file(const char *dir, const char *name) {
  char *p = vb_path_join(dir, name);
  bool ok = p && vb_file_exists(p);
  free(p);
  return ok;
}

int vb_bpe_load(const char *model_dir, vb_tokenizer *out) {
  return vb_bpe_load_pref(model_dir, false, out);
}

int vb_bpe_load_pref(const char *model_dir, bool prefer_json, vb_tokenizer *out) {
  bool slow = has_file(model_dir, "vocab.json") && has_file(model_dir, "merges.txt");
  if (prefer_json && has_file(model_dir, "tokenizer.json")) slow = false;
  cJSON *root = NULL;
  if (!slow) {
    /* SentencePiece's own file takes precedence over a tokenizer.json (unless that is preferred) */
    if ((!prefer_json && has_file(model_dir, "spiece.model")) ||
        !has_file(model_dir, "tokenizer.json"))
      return 1;
    int err;
    root = read_json(model_dir, "tokenizer.json", false, &err);
    if (!root) return -1;
    const cJSON *type =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0) {
      cJSON_Delete(root);
      return 1;
    }
  }
  bpe_model *m = vb_calloc(1, sizeof *m);
  if (!m) {
    cJSON_Delete(root);
    return -1;
  }
  int rc = slow ? load_slow(m, model_dir) : load_tokenizer_json(m, root);
  cJSON_Delete(root);
  if (rc == 0) rc = finish_model(m);
  if (rc != 0) {
    vb_error_context("tokenizer"); /* the caller names the model */
    bpe_destroy(m);
    return -1;
  }
  out->kind = VB_TOK_BPE;
  out->ops = &bpe_ops;
  out->impl = m;
  return 0;
}
