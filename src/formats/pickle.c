#include "formats/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits: a state dict needs a handful of nested MARKs and a stack of a few
 * thousand entries (pickle batches SETITEMS by 1000 pairs). */
#define MAX_STACK (1u << 20)
#define MAX_MARKS 1024
#define MAX_GLOBAL_NAME 256

typedef enum {
  V_NONE,
  V_BOOL,
  V_INT,
  V_FLOAT,
  V_STR,
  V_TUPLE,
  V_LIST,
  V_DICT, /* items hold key, value, key, value, ... */
  V_GLOBAL,
  V_STORAGE,
  V_TENSOR
} vkind;

typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_STORAGE } gkind;

typedef struct value value;
struct value {
  vkind kind;
  union {
    int64_t i;
    double f;
    struct {
      const char *p; /* into the pickle bytes */
      size_t n;
    } s;
    struct {
      value **items;
      size_t n, cap;
    } seq;
    struct {
      gkind g;
      vb_dtype dt;
      const char *name;
    } gl;
    struct {
      vb_dtype dt;
      const uint8_t *data;
      size_t nbytes; /* declared numel * element size, checked against the entry */
    } st;
    struct {
      vb_dtype dt;
      int ndim;
      int64_t shape[VB_MAX_DIMS];
      const void *data;
      size_t nbytes;
    } t;
  } u;
};

typedef struct {
  const uint8_t *p;
  size_t len, pos, op_pos;
  const vb_pickle_opts *o;
  value **stack;
  size_t sp, scap;
  size_t marks[MAX_MARKS];
  size_t nmarks;
  value **memo;
  size_t memo_cap, memo_count;
  value **all; /* every value allocated, freed together (values may share and cycle) */
  size_t nall, allcap;
  void **owned; /* copies of non-contiguous views */
  size_t nowned, owncap;
  size_t copied;
} unpickler;

static const struct {
  uint8_t code;
  const char *name;
} k_opnames[] = {
    {'(', "MARK"},          {'.', "STOP"},          {'0', "POP"},           {'1', "POP_MARK"},
    {'2', "DUP"},           {'F', "FLOAT"},         {'I', "INT"},           {'J', "BININT"},
    {'K', "BININT1"},       {'L', "LONG"},          {'M', "BININT2"},       {'N', "NONE"},
    {'P', "PERSID"},        {'Q', "BINPERSID"},     {'R', "REDUCE"},        {'S', "STRING"},
    {'T', "BINSTRING"},     {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},     {'X', "BINUNICODE"},
    {'a', "APPEND"},        {'b', "BUILD"},         {'c', "GLOBAL"},        {'d', "DICT"},
    {'}', "EMPTY_DICT"},    {'e', "APPENDS"},       {'g', "GET"},           {'h', "BINGET"},
    {'i', "INST"},          {'j', "LONG_BINGET"},   {'l', "LIST"},          {']', "EMPTY_LIST"},
    {'o', "OBJ"},           {'p', "PUT"},           {'q', "BINPUT"},        {'r', "LONG_BINPUT"},
    {'s', "SETITEM"},       {'t', "TUPLE"},         {')', "EMPTY_TUPLE"},   {'u', "SETITEMS"},
    {'G', "BINFLOAT"},      {0x80, "PROTO"},        {0x81, "NEWOBJ"},       {0x82, "EXT1"},
    {0x83, "EXT2"},         {0x84, "EXT4"},         {0x85, "TUPLE1"},       {0x86, "TUPLE2"},
    {0x87, "TUPLE3"},       {0x88, "NEWTRUE"},      {0x89, "NEWFALSE"},     {0x8a, "LONG1"},
    {0x8b, "LONG4"},        {'B', "BINBYTES"},      {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"},
    {0x8d, "BINUNICODE8"},  {0x8e, "BINBYTES8"},    {0x8f, "EMPTY_SET"},    {0x90, "ADDITEMS"},
    {0x91, "FROZENSET"},    {0x92, "NEWOBJ_EX"},    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"},
    {0x95, "FRAME"},        {0x96, "BYTEARRAY8"},   {0x97, "NEXT_BUFFER"},  {0x98, "READONLY_BUFFER"},
};

static const char *op_name(uint8_t op) {
  for (size_t i = 0; i < sizeof k_opnames / sizeof k_opnames[0]; i++)
    if (k_opnames[i].code == op) return k_opnames[i].name;
  return "unknown";
}

static const char *kind_name(const value *v) {
  static const char *const names[] = {"None",  "bool", "int",    "float",   "str",   "tuple",
                                      "list",  "dict", "global", "storage", "tensor"};
  return names[v->kind];
}

static int fail(unpickler *u, const char *fmt, ...) VB_PRINTF(2, 3);
static int fail(unpickler *u, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return vb_error("%s: pickle byte %zu: %s", u->o->label, u->op_pos, msg);
}

/* Grows *arr (element size es) so that it holds at least need elements. */
static int grow(void *arr, size_t *cap, size_t need, size_t es) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 16;
  while (n < need) {
    if (!vb_mul_ok(n, 2, &n)) return vb_error("pickle: allocation size overflow");
  }
  size_t bytes;
  if (!vb_mul_ok(n, es, &bytes)) return vb_error("pickle: allocation size overflow");
  void *p = vb_realloc(*(void **)arr, bytes);
  if (!p) return -1;
  *(void **)arr = p;
  *cap = n;
  return 0;
}

static value *new_value(unpickler *u, vkind kind) {
  if (grow(&u->all, &u->allcap, u->nall + 1, sizeof *u->all) != 0) return NULL;
  value *v = vb_calloc(1, sizeof *v);
  if (!v) return NULL;
  v->kind = kind;
  u->all[u->nall++] = v;
  return v;
}

static void free_all(unpickler *u) {
  for (size_t i = 0; i < u->nall; i++) {
    value *v = u->all[i];
    if (v->kind == V_TUPLE || v->kind == V_LIST || v->kind == V_DICT) free(v->u.seq.items);
    free(v);
  }
  free(u->all);
  for (size_t i = 0; i < u->nowned; i++) free(u->owned[i]);
  free(u->owned);
  free(u->stack);
  free(u->memo);
}

static int seq_push(value *seq, value *item) {
  if (grow(&seq->u.seq.items, &seq->u.seq.cap, seq->u.seq.n + 1, sizeof(value *)) != 0) return -1;
  seq->u.seq.items[seq->u.seq.n++] = item;
  return 0;
}

static size_t fence(const unpickler *u) { return u->nmarks ? u->marks[u->nmarks - 1] : 0; }

static int push(unpickler *u, value *v) {
  if (!v) return -1;
  if (u->sp >= MAX_STACK) return fail(u, "stack deeper than %u entries", MAX_STACK);
  if (grow(&u->stack, &u->scap, u->sp + 1, sizeof *u->stack) != 0) return -1;
  u->stack[u->sp++] = v;
  return 0;
}

static int pop(unpickler *u, value **out) {
  if (u->sp <= fence(u)) return fail(u, "stack underflow");
  *out = u->stack[--u->sp];
  return 0;
}

static int pop_mark(unpickler *u, size_t *start) {
  if (!u->nmarks) return fail(u, "%s without a MARK", op_name(u->p[u->op_pos]));
  *start = u->marks[--u->nmarks];
  return 0;
}

static int need(unpickler *u, size_t n) {
  if (n > u->len - u->pos) return fail(u, "%s argument runs past the end of the pickle (truncated)",
                                       op_name(u->p[u->op_pos]));
  return 0;
}

static uint64_t rd_le(const uint8_t *p, int n) {
  uint64_t x = 0;
  for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
  return x;
}

/* Reads an n-byte little-endian argument. */
static int arg_le(unpickler *u, int n, uint64_t *out) {
  if (need(u, (size_t)n) != 0) return -1;
  *out = rd_le(u->p + u->pos, n);
  u->pos += (size_t)n;
  return 0;
}

static int push_tuple(unpickler *u, size_t start) {
  value *t = new_value(u, V_TUPLE);
  if (!t) return -1;
  for (size_t i = start; i < u->sp; i++)
    if (seq_push(t, u->stack[i]) != 0) return -1;
  u->sp = start;
  return push(u, t);
}

static int str_eq(const value *v, const char *s) {
  return v->kind == V_STR && v->u.s.n == strlen(s) && memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

/* The only callables and classes a state dict may name; anything else is refused. */
static int resolve_global(unpickler *u, const char *mod, size_t mlen, const char *name,
                          size_t nlen) {
  static const struct {
    const char *mod, *name;
    gkind g;
    vb_dtype dt;
  } allowed[] = {
      {"collections", "OrderedDict", G_ORDERED_DICT, VB_DT_F32},
      {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, VB_DT_F32},
      {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, VB_DT_F32},
      {"torch", "FloatStorage", G_STORAGE, VB_DT_F32},
      {"torch", "HalfStorage", G_STORAGE, VB_DT_F16},
      {"torch", "BFloat16Storage", G_STORAGE, VB_DT_BF16},
      {"torch", "DoubleStorage", G_STORAGE, VB_DT_F64},
      {"torch", "LongStorage", G_STORAGE, VB_DT_I64},
      {"torch", "IntStorage", G_STORAGE, VB_DT_I32},
      {"torch", "ShortStorage", G_STORAGE, VB_DT_I16},
      {"torch", "CharStorage", G_STORAGE, VB_DT_I8},
      {"torch", "ByteStorage", G_STORAGE, VB_DT_U8},
      {"torch", "BoolStorage", G_STORAGE, VB_DT_BOOL},
  };
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
    if (strlen(allowed[i].mod) == mlen && memcmp(allowed[i].mod, mod, mlen) == 0 &&
        strlen(allowed[i].name) == nlen && memcmp(allowed[i].name, name, nlen) == 0) {
      value *v = new_value(u, V_GLOBAL);
      if (!v) return -1;
      v->u.gl.g = allowed[i].g;
      v->u.gl.dt = allowed[i].dt;
      v->u.gl.name = allowed[i].name;
      return push(u, v);
    }
  }
  /* At most 64 bytes of each part; vb_error escapes control characters. */
  int a = (int)(mlen < 64 ? mlen : 64), b = (int)(nlen < 64 ? nlen : 64);
  return fail(u, "forbidden global %.*s.%.*s (only state-dict tensors can be loaded)", a, mod, b,
              name);
}

/* Reads one '\n'-terminated line of a GLOBAL argument. */
static int read_line(unpickler *u, const char **s, size_t *n) {
  size_t max = u->len - u->pos;
  if (max > MAX_GLOBAL_NAME + 1) max = MAX_GLOBAL_NAME + 1;
  const uint8_t *nl = memchr(u->p + u->pos, '\n', max);
  if (!nl) return fail(u, "GLOBAL name is unterminated or longer than %d bytes", MAX_GLOBAL_NAME);
  *s = (const char *)u->p + u->pos;
  *n = (size_t)(nl - (u->p + u->pos));
  u->pos += *n + 1;
  return 0;
}

static int get_int(unpickler *u, const value *v, const char *what, int64_t *out) {
  if (v->kind != V_INT) return fail(u, "%s is a %s, expected an int", what, kind_name(v));
  if (v->u.i < 0) return fail(u, "%s is negative (%lld)", what, (long long)v->u.i);
  *out = v->u.i;
  return 0;
}

static int persistent_load(unpickler *u, value *pid) {
  value **it = pid->u.seq.items;
  if (pid->kind != V_TUPLE || pid->u.seq.n != 5 || !str_eq(it[0], "storage"))
    return fail(u, "persistent id is not a ('storage', class, key, location, numel) tuple");
  if (it[1]->kind != V_GLOBAL || it[1]->u.gl.g != G_STORAGE)
    return fail(u, "persistent id names a %s instead of a storage class", kind_name(it[1]));
  if (it[2]->kind != V_STR) return fail(u, "persistent id key is a %s, not a str", kind_name(it[2]));
  int64_t numel = 0;
  if (get_int(u, it[4], "storage element count", &numel) != 0) return -1;
  const char *key = it[2]->u.s.p;
  size_t klen = it[2]->u.s.n;
  const uint8_t *data = NULL;
  size_t size = 0, nbytes = 0;
  if (u->o->storage(u->o->ctx, key, klen, &data, &size) != 0) return -1;
  vb_dtype dt = it[1]->u.gl.dt;
  if (!vb_dtype_bytes(dt, numel, &nbytes) || nbytes > size)
    return fail(u, "storage data/%.*s declares %lld %s elements but its entry has only %zu bytes",
                (int)(klen > 64 ? 64 : klen), key, (long long)numel, it[1]->u.gl.name, size);
  value *s = new_value(u, V_STORAGE);
  if (!s) return -1;
  s->u.st.dt = dt;
  s->u.st.data = data;
  s->u.st.nbytes = nbytes;
  return push(u, s);
}

/* Copies a strided view into a fresh contiguous buffer. */
static void gather(uint8_t *dst, const uint8_t *base, size_t es, int ndim, const int64_t *shape,
                   const int64_t *stride, size_t numel) {
  int64_t idx[VB_MAX_DIMS] = {0};
  size_t off = 0; /* element offset of idx from base */
  for (size_t n = 0; n < numel; n++) {
    memcpy(dst + n * es, base + off * es, es);
    for (int d = ndim - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) {
        off += (size_t)stride[d];
        break;
      }
      off -= (size_t)stride[d] * (size_t)(shape[d] - 1);
      idx[d] = 0;
    }
  }
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) without running it: validates the view against
 * its storage and produces a contiguous tensor. */
static int rebuild_tensor(unpickler *u, value *args, value **out) {
  if (args->u.seq.n != 6 && args->u.seq.n != 7)
    return fail(u, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", args->u.seq.n);
  value **a = args->u.seq.items;
  if (a[0]->kind != V_STORAGE)
    return fail(u, "_rebuild_tensor_v2 storage argument is a %s", kind_name(a[0]));
  if (a[2]->kind != V_TUPLE || a[3]->kind != V_TUPLE)
    return fail(u, "_rebuild_tensor_v2 size and stride must be tuples");
  if (a[4]->kind != V_BOOL || a[5]->kind != V_DICT)
    return fail(u, "_rebuild_tensor_v2 requires_grad/backward_hooks have unexpected types");
  int64_t off = 0;
  if (get_int(u, a[1], "storage offset", &off) != 0) return -1;
  size_t ndim = a[2]->u.seq.n;
  if (ndim > VB_MAX_DIMS) return fail(u, "tensor has %zu dimensions (at most %d)", ndim, VB_MAX_DIMS);
  if (a[3]->u.seq.n != ndim)
    return fail(u, "tensor has %zu sizes but %zu strides", ndim, a[3]->u.seq.n);
  int64_t shape[VB_MAX_DIMS] = {0}, stride[VB_MAX_DIMS] = {0};
  size_t numel = 1;
  int overflow = 0;
  for (size_t d = 0; d < ndim; d++) {
    if (get_int(u, a[2]->u.seq.items[d], "tensor size", &shape[d]) != 0 ||
        get_int(u, a[3]->u.seq.items[d], "tensor stride", &stride[d]) != 0)
      return -1;
    if (!vb_mul_ok(numel, (size_t)shape[d], &numel)) overflow = 1;
  }
  const vb_dtype dt = a[0]->u.st.dt;
  const size_t es = vb_dtype_size(dt), st_numel = a[0]->u.st.nbytes / es;
  size_t nbytes;
  if (overflow || !vb_mul_ok(numel, es, &nbytes) || numel > (size_t)INT64_MAX)
    return fail(u, "tensor shape overflows (absurd dimensions)");
  const uint8_t *base = a[0]->u.st.data;
  value *t = new_value(u, V_TENSOR);
  if (!t) return -1;
  t->u.t.dt = dt;
  t->u.t.ndim = (int)ndim;
  memcpy(t->u.t.shape, shape, ndim * sizeof shape[0]);
  t->u.t.nbytes = nbytes;
  *out = t;
  if ((size_t)off > st_numel)
    return fail(u, "storage offset %lld is past the storage's %zu elements", (long long)off, st_numel);
  if (numel == 0) {
    t->u.t.data = base + (size_t)off * es;
    return 0;
  }
  /* Highest element the view touches must lie inside the storage. */
  size_t last = (size_t)off;
  for (size_t d = 0; d < ndim; d++) {
    size_t span;
    if (!vb_mul_ok((size_t)(shape[d] - 1), (size_t)stride[d], &span) || !vb_add_ok(last, span, &last))
      return fail(u, "tensor view offset overflows");
  }
  if (last >= st_numel)
    return fail(u, "tensor view reaches element %zu but its storage has %zu elements", last,
                st_numel);
  int contiguous = 1;
  size_t expect = 1;
  for (size_t d = ndim; d-- > 0;) {
    if (shape[d] != 1 && (size_t)stride[d] != expect) contiguous = 0;
    expect *= (size_t)shape[d]; /* cannot overflow: bounded by numel */
  }
  if (contiguous) {
    t->u.t.data = base + (size_t)off * es;
    return 0;
  }
  size_t total;
  if (!vb_add_ok(u->copied, nbytes, &total) || total > u->o->copy_budget)
    return fail(u, "non-contiguous tensors would need %zu bytes of copies, more than the %zu "
                "allowed for this file",
                nbytes, u->o->copy_budget);
  if (grow(&u->owned, &u->owncap, u->nowned + 1, sizeof *u->owned) != 0) return -1;
  uint8_t *copy = vb_malloc(nbytes);
  if (!copy) return -1;
  u->owned[u->nowned++] = copy;
  u->copied = total;
  gather(copy, base + (size_t)off * es, es, (int)ndim, shape, stride, numel);
  t->u.t.data = copy;
  return 0;
}

static int reduce(unpickler *u) {
  value *args = NULL, *fn = NULL;
  if (pop(u, &args) != 0 || pop(u, &fn) != 0) return -1;
  if (fn->kind != V_GLOBAL) return fail(u, "REDUCE of a %s is not allowed", kind_name(fn));
  if (args->kind != V_TUPLE) return fail(u, "REDUCE arguments are a %s, not a tuple", kind_name(args));
  value *res = NULL;
  switch (fn->u.gl.g) {
  case G_ORDERED_DICT:
    if (args->u.seq.n != 0) return fail(u, "OrderedDict called with arguments");
    res = new_value(u, V_DICT);
    break;
  case G_REBUILD_TENSOR_V2:
    if (rebuild_tensor(u, args, &res) != 0) return -1;
    break;
  case G_REBUILD_PARAMETER:
    /* _rebuild_parameter(data, requires_grad, backward_hooks): the tensor itself. */
    if (args->u.seq.n != 3 || args->u.seq.items[0]->kind != V_TENSOR)
      return fail(u, "_rebuild_parameter expects (tensor, requires_grad, backward_hooks)");
    res = args->u.seq.items[0];
    break;
  case G_STORAGE:
    return fail(u, "calling storage class torch.%s is not allowed", fn->u.gl.name);
  }
  return push(u, res);
}

static int memo_put(unpickler *u, uint64_t idx) {
  if (u->sp <= fence(u)) return fail(u, "memo store from an empty stack");
  /* Picklers number memo entries sequentially, so indices beyond the pickle's
   * length are bogus; this bounds the memo array by the input size. */
  if (idx >= u->len) return fail(u, "memo index %llu is implausibly large", (unsigned long long)idx);
  if (grow(&u->memo, &u->memo_cap, (size_t)idx + 1, sizeof *u->memo) != 0) return -1;
  /* memo_count is one past the highest index stored; the gap below it is unset. */
  for (size_t i = u->memo_count; i <= idx; i++) u->memo[i] = NULL;
  if (idx >= u->memo_count) u->memo_count = (size_t)idx + 1;
  u->memo[idx] = u->stack[u->sp - 1];
  return 0;
}

static int memo_get(unpickler *u, uint64_t idx) {
  if (idx >= u->memo_count || !u->memo[idx])
    return fail(u, "memo entry %llu is not defined", (unsigned long long)idx);
  return push(u, u->memo[idx]);
}

static int add_items(unpickler *u, value *target, size_t start, int dict) {
  if (dict && target->kind != V_DICT)
    return fail(u, "SETITEM(S) on a %s (only dicts are supported)", kind_name(target));
  if (!dict && target->kind != V_LIST)
    return fail(u, "APPEND(S) on a %s (only lists are supported)", kind_name(target));
  if (dict && (u->sp - start) % 2)
    return fail(u, "SETITEMS with an odd number of stack items");
  for (size_t i = start; i < u->sp; i++)
    if (seq_push(target, u->stack[i]) != 0) return -1;
  u->sp = start;
  return 0;
}

/* Runs the opcode loop; *result is the object STOP returns. */
static int run(unpickler *u, value **result) {
  for (;;) {
    if (u->pos >= u->len) return fail(u, "pickle ends without STOP (truncated)");
    u->op_pos = u->pos;
    uint8_t op = u->p[u->pos++];
    uint64_t x = 0;
    value *v = NULL, *w = NULL;
    size_t start = 0;
    switch (op) {
    case 0x80: /* PROTO */
      if (arg_le(u, 1, &x) != 0) return -1;
      if (x < 2 || x > 5) return fail(u, "unsupported pickle protocol %llu", (unsigned long long)x);
      break;
    case 0x95: /* FRAME: a length hint; the data follows inline */
      if (arg_le(u, 8, &x) != 0) return -1;
      if (x > u->len - u->pos) return fail(u, "FRAME of %llu bytes runs past the end",
                                           (unsigned long long)x);
      break;
    case '}':
      if (push(u, new_value(u, V_DICT)) != 0) return -1;
      break;
    case ']':
      if (push(u, new_value(u, V_LIST)) != 0) return -1;
      break;
    case ')':
      if (push(u, new_value(u, V_TUPLE)) != 0) return -1;
      break;
    case '(':
      if (u->nmarks >= MAX_MARKS) return fail(u, "MARKs nested deeper than %d", MAX_MARKS);
      u->marks[u->nmarks++] = u->sp;
      break;
    case 't':
      if (pop_mark(u, &start) != 0 || push_tuple(u, start) != 0) return -1;
      break;
    case 0x85:
    case 0x86:
    case 0x87: {
      size_t n = (size_t)(op - 0x84);
      if (u->sp - fence(u) < n) return fail(u, "stack underflow in %s", op_name(op));
      if (push_tuple(u, u->sp - n) != 0) return -1;
      break;
    }
    case 'J':
      if (arg_le(u, 4, &x) != 0 || !(v = new_value(u, V_INT))) return -1;
      v->u.i = (int32_t)(uint32_t)x;
      if (push(u, v) != 0) return -1;
      break;
    case 'K':
    case 'M':
      if (arg_le(u, op == 'K' ? 1 : 2, &x) != 0 || !(v = new_value(u, V_INT))) return -1;
      v->u.i = (int64_t)x;
      if (push(u, v) != 0) return -1;
      break;
    case 0x8a: { /* LONG1: n-byte little-endian two's complement */
      if (arg_le(u, 1, &x) != 0) return -1;
      size_t n = (size_t)x;
      if (n > 8) return fail(u, "LONG1 integer of %zu bytes does not fit in 64 bits", n);
      if (need(u, n) != 0 || !(v = new_value(u, V_INT))) return -1;
      uint64_t val = n ? rd_le(u->p + u->pos, (int)n) : 0;
      if (n && n < 8 && (u->p[u->pos + n - 1] & 0x80)) val |= ~(uint64_t)0 << (8 * n);
      u->pos += n;
      v->u.i = (int64_t)val;
      if (push(u, v) != 0) return -1;
      break;
    }
    case 'G': { /* BINFLOAT: big-endian double */
      if (need(u, 8) != 0 || !(v = new_value(u, V_FLOAT))) return -1;
      uint64_t bits = 0;
      for (int i = 0; i < 8; i++) bits = bits << 8 | u->p[u->pos + i];
      u->pos += 8;
      memcpy(&v->u.f, &bits, 8);
      if (push(u, v) != 0) return -1;
      break;
    }
    case 'X':
    case 0x8c:
    case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8: point into the input */
      if (arg_le(u, op == 'X' ? 4 : op == 0x8c ? 1 : 8, &x) != 0) return -1;
      if (x > u->len - u->pos)
        return fail(u, "string of %llu bytes runs past the end of the pickle",
                    (unsigned long long)x);
      if (!(v = new_value(u, V_STR))) return -1;
      v->u.s.p = (const char *)u->p + u->pos;
      v->u.s.n = (size_t)x;
      u->pos += (size_t)x;
      if (push(u, v) != 0) return -1;
      break;
    case 'N':
      if (push(u, new_value(u, V_NONE)) != 0) return -1;
      break;
    case 0x88:
    case 0x89:
      if (!(v = new_value(u, V_BOOL))) return -1;
      v->u.i = op == 0x88;
      if (push(u, v) != 0) return -1;
      break;
    case 'q':
    case 'r':
      if (arg_le(u, op == 'q' ? 1 : 4, &x) != 0 || memo_put(u, x) != 0) return -1;
      break;
    case 0x94: /* MEMOIZE */
      if (memo_put(u, u->memo_count) != 0) return -1;
      break;
    case 'h':
    case 'j':
      if (arg_le(u, op == 'h' ? 1 : 4, &x) != 0 || memo_get(u, x) != 0) return -1;
      break;
    case 's':
    case 'a': { /* SETITEM (key, value) / APPEND (value) onto the object below */
      size_t n = op == 's' ? 2 : 1;
      if (u->sp - fence(u) < n + 1) return fail(u, "stack underflow in %s", op_name(op));
      if (add_items(u, u->stack[u->sp - n - 1], u->sp - n, op == 's') != 0) return -1;
      break;
    }
    case 'u':
    case 'e':
      if (pop_mark(u, &start) != 0) return -1;
      if (start == 0 || start <= fence(u))
        return fail(u, "stack underflow in %s", op_name(op));
      if (add_items(u, u->stack[start - 1], start, op == 'u') != 0) return -1;
      break;
    case 'c': {
      const char *mod = NULL, *name = NULL;
      size_t ml = 0, nl = 0;
      if (read_line(u, &mod, &ml) != 0 || read_line(u, &name, &nl) != 0 ||
          resolve_global(u, mod, ml, name, nl) != 0)
        return -1;
      break;
    }
    case 0x93: /* STACK_GLOBAL */
      if (pop(u, &w) != 0 || pop(u, &v) != 0) return -1;
      if (v->kind != V_STR || w->kind != V_STR)
        return fail(u, "STACK_GLOBAL needs two strings, got %s and %s", kind_name(v), kind_name(w));
      if (resolve_global(u, v->u.s.p, v->u.s.n, w->u.s.p, w->u.s.n) != 0) return -1;
      break;
    case 'R':
      if (reduce(u) != 0) return -1;
      break;
    case 'b': /* BUILD: only an OrderedDict's attribute state (torch's _metadata), ignored */
      if (pop(u, &w) != 0) return -1;
      if (u->sp <= fence(u)) return fail(u, "stack underflow in BUILD");
      v = u->stack[u->sp - 1];
      if (v->kind != V_DICT) return fail(u, "BUILD on a %s is not allowed", kind_name(v));
      break;
    case 'Q':
      if (pop(u, &v) != 0 || persistent_load(u, v) != 0) return -1;
      break;
    case '.':
      return pop(u, result);
    default:
      return fail(u, "opcode 0x%02x (%s) is not allowed in a state dict", op, op_name(op));
    }
  }
}

int vb_pickle_load_state_dict(vb_tensor_table *tt, const uint8_t *pkl, size_t len,
                              const vb_pickle_opts *opts) {
  unpickler u;
  memset(&u, 0, sizeof u);
  u.p = pkl;
  u.len = len;
  u.o = opts;
  value *root = NULL;
  int rc = run(&u, &root);
  if (rc == 0 && root->kind != V_DICT)
    rc = fail(&u, "the pickle holds a %s, expected a dict of name -> tensor", kind_name(root));
  /* Check every entry before adding any, so a bad file adds nothing. */
  for (size_t i = 0; rc == 0 && i < root->u.seq.n; i += 2) {
    value *k = root->u.seq.items[i], *t = root->u.seq.items[i + 1];
    if (k->kind != V_STR)
      rc = fail(&u, "state dict key is a %s, not a str", kind_name(k));
    else if (memchr(k->u.s.p, 0, k->u.s.n))
      rc = fail(&u, "state dict key contains a NUL byte");
    else if (t->kind != V_TENSOR)
      rc = fail(&u, "state dict entry %.*s is a %s, not a tensor (nested dicts are not supported)",
                (int)(k->u.s.n > 200 ? 200 : k->u.s.n), k->u.s.p, kind_name(t));
  }
  /* Copies go to the table first so that no added tensor can outlive its data. */
  for (size_t i = 0; rc == 0 && i < u.nowned; i++) {
    void *buf = u.owned[i];
    u.owned[i] = NULL;
    rc = vb_tt_keep(tt, buf);
  }
  char *name = NULL;
  for (size_t i = 0; rc == 0 && i < root->u.seq.n; i += 2) {
    value *k = root->u.seq.items[i], *t = root->u.seq.items[i + 1];
    free(name);
    name = vb_malloc(k->u.s.n + 1);
    if (!name) {
      rc = -1;
      break;
    }
    memcpy(name, k->u.s.p, k->u.s.n);
    name[k->u.s.n] = 0;
    rc = vb_tt_add(tt, name, t->u.t.dt, t->u.t.ndim, t->u.t.shape, t->u.t.data, t->u.t.nbytes);
    if (rc != 0) vb_error_context("%s", opts->label);
  }
  free(name);
  free_all(&u);
  return rc;
}
