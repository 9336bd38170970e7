/* Shared runtime helpers: error reporting, checked allocation, file access.
 * Every fallible function in vblip returns 0 on success and -1 on failure
 * after recording a one-line message with vb_error(); callers propagate -1. */
#ifndef VBLIP_RUNTIME_COMMON_H
#define VBLIP_RUNTIME_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define VB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define VB_PRINTF(a, b)
#endif

/* Records a formatted error message for this thread; always returns -1. */
int vb_error(const char *fmt, ...) VB_PRINTF(1, 2);
/* The same for a failure that is the caller's input's fault (a prompt too long for the
 * model, text that is not UTF-8): servers answer those with 4xx. vb_error resets it. */
int vb_input_error(const char *fmt, ...) VB_PRINTF(1, 2);
bool vb_error_is_input(void);
/* Prepends context ("loading X: ") to the current message, keeping its kind; returns -1.
 * Control characters in messages are escaped (runtime/escape.h). */
int vb_error_context(const char *fmt, ...) VB_PRINTF(1, 2);
const char *vb_error_message(void);
void vb_error_clear(void);

/* Allocation that records an error instead of returning silently NULL. */
void *vb_malloc(size_t n);
void *vb_calloc(size_t count, size_t size);
void *vb_realloc(void *p, size_t n);
char *vb_strdup(const char *s);
/* 64-byte aligned allocation for SIMD/oneDNN buffers; free with vb_free_aligned. */
void *vb_malloc_aligned(size_t n);
void vb_free_aligned(void *p);
/* A scratch buffer (*p, *cap bytes, from vb_malloc_aligned) that only grows:
 * returns one of at least `bytes` (old contents not kept), NULL when out of memory. */
void *vb_scratch_grow(void **p, size_t *cap, size_t bytes);
/* vb_scratch_grow for a thread's own buffer (*p and *cap thread-local): the buffer is
 * freed when the thread exits, so that a program calling vblip from short-lived threads
 * (one per request) does not keep every exited thread's workspace, up to tens of MB each. */
void *vb_tls_scratch_grow(void **p, size_t *cap, size_t bytes);
/* Runs fn(arg) when the calling thread exits (pthread thread-specific data: not for the
 * main thread, whose memory the process's exit returns). 0, or -1 when it cannot be
 * recorded (out of memory, or more than 64 per thread), fn then never runs. */
int vb_at_thread_exit(void (*fn)(void *), void *arg);
/* Bytes held by thread-local scratch buffers of all threads (for tests and diagnostics). */
size_t vb_tls_scratch_bytes(void);
/* Carves n float arrays of counts[i] elements, each 64-byte aligned, out of
 * the scratch buffer (*p, *cap), growing it as needed: out[i] points at array
 * i. Returns -1 when out of memory. */
int vb_scratch_carve(void **p, size_t *cap, const size_t *counts, int n, float **out);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool vb_mul_ok(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool vb_add_ok(size_t a, size_t b, size_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

/* A read-only memory mapping of a whole file (or an owned copy). */
typedef struct {
  const uint8_t *data;
  size_t size;
  int is_mmap; /* 1: mmap'd; 2: an owned heap copy (a virtual file, runtime/vfs.h) */
} vb_mapped_file;

/* vb_map_file, vb_read_file and vb_file_exists see the virtual files of
 * runtime/vfs.h (files embedded in a mounted GGUF model) before the disk. */

/* Both refuse anything but a regular file without blocking (a FIFO, a device). */
int vb_map_file(const char *path, vb_mapped_file *out);
void vb_unmap_file(vb_mapped_file *m);
/* Reads a whole file into a NUL-terminated heap buffer, refusing files over max_bytes. */
int vb_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);
/* Present and not a directory (a FIFO counts: opening it then fails with a message). */
bool vb_file_exists(const char *path);
/* What a st_mode is, for messages: "a directory", "a FIFO", "a character device",
 * "a block device", "a socket", "a symbolic link" or "a regular file". */
const char *vb_file_kind(unsigned mode);
/* Joins dir and name with '/' into a heap string. */
char *vb_path_join(const char *dir, const char *name);

/* Monotonic clock in milliseconds. */
double vb_now_ms(void);

#endif
