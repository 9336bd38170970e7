#include "runtime/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/escape.h"
#include "runtime/vfs.h"

static _Thread_local char g_error[1024];
static _Thread_local bool g_error_input;

/* Messages quote names and strings from files and requests: control characters in
 * them are escaped here, once, for every message (runtime/escape.h). */
static void set_message(const char *fmt, va_list ap) {
  char raw[sizeof g_error];
  vsnprintf(raw, sizeof raw, fmt, ap);
  vb_escape_controls(raw, g_error, sizeof g_error);
}

int vb_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(fmt, ap);
  va_end(ap);
  g_error_input = false;
  return -1;
}

int vb_input_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  set_message(fmt, ap);
  va_end(ap);
  g_error_input = true;
  return -1;
}

bool vb_error_is_input(void) {
  return g_error_input;
}

int vb_error_context(const char *fmt, ...) {
  char raw[512], prefix[512], old[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(raw, sizeof raw, fmt, ap);
  va_end(ap);
  vb_escape_controls(raw, prefix, sizeof prefix);
  memcpy(old, g_error, sizeof old);
  size_t n = strlen(prefix);
  memcpy(g_error, prefix, n);
  const char *tail = old[0] ? old : "failed";
  size_t room = sizeof g_error - n - 3;
  size_t tl = strnlen(tail, room);
  memcpy(g_error + n, ": ", 2);
  memcpy(g_error + n + 2, tail, tl);
  g_error[n + 2 + tl] = 0;
  return -1;
}

const char *vb_error_message(void) { return g_error[0] ? g_error : "unknown error"; }
void vb_error_clear(void) {
  g_error[0] = 0;
  g_error_input = false;
}

/* Large blocks (weights converted at load, packed weights, activation
 * workspaces, KV caches) come from fresh mappings that nothing has touched
 * yet; asking for transparent huge pages on their 2 MB-aligned interior makes
 * the first touch one fault per 2 MB instead of per 4 KB. That matters most on
 * virtual machines: on the project machine (a Firecracker VM) first-touching
 * memory costs ~3 ms per MB with 4 KB pages and ~0.15 ms per MB with huge ones.
 * Where THP is off or unsupported, madvise fails and nothing changes. */
#define HUGE_HINT_MIN ((size_t)8 << 20)
static void huge_page_hint(void *p, size_t n) {
  if (!p || n < HUGE_HINT_MIN) return;
  uintptr_t a = ((uintptr_t)p + ((uintptr_t)2 << 20) - 1) & ~(((uintptr_t)2 << 20) - 1);
  uintptr_t b = ((uintptr_t)p + n) & ~(((uintptr_t)2 << 20) - 1);
  if (b > a) madvise((void *)a, b - a, MADV_HUGEPAGE);
}

void *vb_malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) vb_error("out of memory allocating %zu bytes", n);
  huge_page_hint(p, n);
  return p;
}

void *vb_calloc(size_t count, size_t size) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) vb_error("out of memory allocating %zu x %zu bytes", count, size);
  else if (size && count <= SIZE_MAX / size) huge_page_hint(p, count * size);
  return p;
}

void *vb_realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) vb_error("out of memory reallocating %zu bytes", n);
  return q;
}

char *vb_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = vb_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void *vb_malloc_aligned(size_t n) {
  void *p = NULL;
  size_t rounded = (n + 63) & ~(size_t)63;
  if (rounded < n || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
    vb_error("out of memory allocating %zu bytes", n);
    return NULL;
  }
  huge_page_hint(p, n);
  return p;
}

void vb_free_aligned(void *p) { free(p); }

void *vb_scratch_grow(void **p, size_t *cap, size_t bytes) {
  if (bytes > *cap) {
    vb_free_aligned(*p);
    *p = vb_malloc_aligned(bytes);
    *cap = *p ? bytes : 0;
  }
  return *p;
}

/* ---- thread exit: what a thread's own buffers need done when it ends ---- */

#define MAX_THREAD_EXITS 64
typedef struct {
  int n;
  struct {
    void (*fn)(void *);
    void *arg;
  } e[MAX_THREAD_EXITS];
} thread_exits;

static pthread_key_t g_exit_key;
static int g_exit_key_ok;
static pthread_once_t g_exit_once = PTHREAD_ONCE_INIT;

/* the key's destructor: the thread's functions, last recorded first */
static void run_thread_exits(void *v) {
  thread_exits *t = v;
  for (int i = t->n - 1; i >= 0; i--)
    t->e[i].fn(t->e[i].arg);
  free(t);
}

static void make_exit_key(void) {
  g_exit_key_ok = pthread_key_create(&g_exit_key, run_thread_exits) == 0;
}

/* A shared libvblip unloaded (dlclose) while threads that used it live on: their exit must
 * not call into the unloaded code (their buffers stay, as before this existed). */
__attribute__((destructor)) static void delete_exit_key(void) {
  if (g_exit_key_ok) pthread_key_delete(g_exit_key);
  g_exit_key_ok = 0;
}

int vb_at_thread_exit(void (*fn)(void *), void *arg) {
  pthread_once(&g_exit_once, make_exit_key);
  if (!g_exit_key_ok) return -1;
  thread_exits *t = pthread_getspecific(g_exit_key);
  if (!t) {
    if (!(t = calloc(1, sizeof *t))) return -1;
    if (pthread_setspecific(g_exit_key, t) != 0) {
      free(t);
      return -1;
    }
  }
  if (t->n == MAX_THREAD_EXITS) return -1;
  t->e[t->n].fn = fn;
  t->e[t->n].arg = arg;
  t->n++;
  return 0;
}

/* A thread-local scratch slot: the addresses of the thread's own *p and *cap */
typedef struct {
  void **p;
  size_t *cap;
} tls_slot;

static size_t g_tls_scratch_bytes; /* atomic */

size_t vb_tls_scratch_bytes(void) {
  return __atomic_load_n(&g_tls_scratch_bytes, __ATOMIC_RELAXED);
}

static void free_tls_slot(void *arg) {
  tls_slot *s = arg;
  __atomic_fetch_sub(&g_tls_scratch_bytes, *s->cap, __ATOMIC_RELAXED);
  vb_free_aligned(*s->p);
  *s->p = NULL;
  *s->cap = 0;
  free(s);
}

void *vb_tls_scratch_grow(void **p, size_t *cap, size_t bytes) {
  if (bytes <= *cap) return *p;
  int first = *p == NULL; /* a slot registers with its first buffer; freed, it may again */
  size_t before = *cap;
  void *q = vb_scratch_grow(p, cap, bytes);
  __atomic_fetch_sub(&g_tls_scratch_bytes, before, __ATOMIC_RELAXED);
  __atomic_fetch_add(&g_tls_scratch_bytes, *cap, __ATOMIC_RELAXED);
  if (q && first) {
    tls_slot *s = malloc(sizeof *s);
    if (s) {
      s->p = p;
      s->cap = cap;
      if (vb_at_thread_exit(free_tls_slot, s) != 0) free(s); /* kept until the process ends */
    }
  }
  return q;
}

int vb_scratch_carve(void **p, size_t *cap, const size_t *counts, int n, float **out) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += (counts[i] + 15) & ~(size_t)15;
  float *base = vb_scratch_grow(p, cap, total * sizeof(float));
  if (!base) return -1;
  for (int i = 0; i < n; i++) out[i] = base, base += (counts[i] + 15) & ~(size_t)15;
  return 0;
}

/* Opens a regular file for reading. O_NONBLOCK: opening a FIFO must not wait for a
 * writer; anything but a regular file is refused once fstat has said what it is. */
static int open_regular(const char *path, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return vb_error("cannot open %s: %s", path, strerror(errno));
  if (fstat(fd, st) != 0) {
    int e = errno;
    close(fd);
    return vb_error("cannot stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st->st_mode)) {
    close(fd);
    return vb_error("%s is %s, not a regular file", path, vb_file_kind(st->st_mode));
  }
  /* reads from a regular file ignore O_NONBLOCK; clear it all the same */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

int vb_map_file(const char *path, vb_mapped_file *out) {
  memset(out, 0, sizeof *out);
  char *copy = NULL;
  size_t vsize = 0;
  int v = vb_vfs_lookup(path, &copy, &vsize);
  if (v < 0) return -1;
  if (v > 0) { /* a virtual file: an owned copy */
    out->data = (const uint8_t *)copy;
    out->size = vsize;
    out->is_mmap = 2;
    return 0;
  }
  struct stat st;
  int fd = open_regular(path, &st);
  if (fd < 0) return -1;
  out->size = (size_t)st.st_size;
  if (out->size == 0) {
    close(fd);
    out->data = (const uint8_t *)"";
    return 0;
  }
  void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return vb_error("cannot map %s: %s", path, strerror(errno));
  out->data = p;
  out->is_mmap = 1;
  return 0;
}

void vb_unmap_file(vb_mapped_file *m) {
  if (m->is_mmap == 1 && m->data) munmap((void *)m->data, m->size);
  else if (m->is_mmap == 2) free((void *)m->data);
  memset(m, 0, sizeof *m);
}

int vb_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len) {
  *out = NULL;
  size_t vsize = 0;
  int v = vb_vfs_lookup(path, out, &vsize);
  if (v < 0) return -1;
  if (v > 0) {
    if (vsize > max_bytes) {
      free(*out);
      *out = NULL;
      return vb_error("%s is larger than the %zu-byte limit", path, max_bytes);
    }
    if (out_len) *out_len = vsize;
    return 0;
  }
  struct stat st;
  int fd = open_regular(path, &st);
  FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return fd >= 0 ? vb_error("cannot read %s: %s", path, strerror(errno)) : -1;
  }
  size_t cap = 4096, len = 0;
  char *buf = vb_malloc(cap);
  if (!buf) {
    fclose(f);
    return -1;
  }
  for (;;) {
    if (len + 1 >= cap) {
      if (cap > max_bytes) {
        free(buf);
        fclose(f);
        return vb_error("%s is larger than the %zu-byte limit", path, max_bytes);
      }
      char *nb = vb_realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) break;
  }
  int err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    return vb_error("error reading %s", path);
  }
  if (len > max_bytes) {
    free(buf);
    return vb_error("%s is larger than the %zu-byte limit", path, max_bytes);
  }
  buf[len] = 0;
  *out = buf;
  if (out_len) *out_len = len;
  return 0;
}

bool vb_file_exists(const char *path) {
  if (vb_vfs_lookup(path, NULL, NULL) > 0) return true;
  /* anything but a directory: a FIFO or device named like a model file is then
   * refused with a message when it is opened, instead of looking absent */
  struct stat st;
  return stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

const char *vb_file_kind(unsigned mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a regular file";
}

char *vb_path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = vb_malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  size_t o = a;
  if (a && dir[a - 1] != '/') p[o++] = '/';
  memcpy(p + o, name, b + 1);
  return p;
}

double vb_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
