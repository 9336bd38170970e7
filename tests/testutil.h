/* Test helpers: checks that count passes/failures, fixture access, tensor comparison.
 * Every test program ends with `return tu_finish();`, which prints
 * "N passed, N failed" and exits non-zero if anything failed. */
#ifndef VBLIP_TESTUTIL_H
#define VBLIP_TESTUTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/config.h"
#include "formats/tensor_table.h"
#include "lm/lm.h"

/* The condition is evaluated first (comma operator), then the message's
 * arguments: function arguments are evaluated in an unspecified order, and
 * messages often print what the condition just produced (a command's output). */
extern _Thread_local bool tu_cond;
#define CHECK(cond, ...)                                                                           \
  (tu_cond = (cond), tu_check(tu_cond, __FILE__, __LINE__, #cond, __VA_ARGS__))
#define CHECK_OK(expr)                                                                             \
  (tu_cond = (expr) == 0, tu_check(tu_cond, __FILE__, __LINE__, #expr, "%s", vb_error_message()))

bool tu_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int tu_finish(void);

/* Path of a file under tests/fixtures; valid until the program exits (do not free). */
const char *tu_fixture(const char *rel);
/* expected.json, parsed once. */
cJSON *tu_expected(void);
/* Follows a dotted path ("models.opt.cases.image") through objects. */
cJSON *tu_json_path(cJSON *root, const char *dotted);
/* A tensor from expected.safetensors, or NULL (and a failed check). */
const vb_tensor_info *tu_ref_tensor(const char *name);

/* max |got-ref| - (atol + rtol*|ref|) > 0 counts as a mismatch; returns the number of
 * mismatching elements and reports the worst one and the relative L2 error. */
size_t tu_compare(const float *got, const float *ref, size_t n, double atol, double rtol,
                  double *max_abs_err, double *rel_l2);

/* Runs a shell command; captures stdout (and stderr if merge) into a heap string.
 * Returns the exit status (or -1). */
int tu_run(const char *cmd, char **output);
/* Kernel tests run their checks once more in child processes of the same
 * program with AMX forced off (VBLIP_NO_AMX=1) and with AVX-512 forced off
 * (VBLIP_NO_AVX512=1): each child must pass too. Does nothing inside a child. */
void tu_rerun_with_cpu_paths_off(void);
/* The same with one more setting, e.g. "VBLIP_NO_AVX2=1" (the portable paths). */
void tu_rerun_with_env(const char *env);
/* The first line `vblip serve` prints on fd ("... listening on http://127.0.0.1:PORT/"),
 * read for at most timeout_s seconds into line; returns PORT, or 0 when it did not come. */
int tu_serve_port(int fd, char *line, size_t cap, int timeout_s);
/* A fresh empty temporary directory, one per process; tu_finish removes it with
 * everything in it when no check failed (VBLIP_TEST_KEEP_TMP=1 keeps it). */
const char *tu_tmpdir(void);

/* A xorshift64 stream for reproducible random test data (seed it non-zero). */
typedef struct {
  uint64_t s;
} tu_rng;
/* Uniform in [-1, 1). */
float tu_frand(tu_rng *r);
/* n values tu_frand * scale, malloc'd. */
float *tu_rand_buf(tu_rng *r, size_t n, float scale);

/* Relative L2 error of got against a double reference. */
double tu_rel_l2(const float *got, const double *ref, size_t n);
/* The same against a float reference, and the largest |a - b|. */
double tu_rel_l2f(const float *got, const float *ref, size_t n);
double tu_max_abs_diff(const float *a, const float *b, size_t n);
/* Central difference of loss() in *x with the step rel * max(|x|, 0.1): the loss at x + h and
 * x - h, divided by the two steps as float rounded them; *x is put back. -1 when loss fails. */
int tu_central_difference(float *x, float rel, int (*loss)(void *ctx, double *out), void *ctx,
                          double *fd);
/* ref[M,N] = x W^T + b (b may be NULL) in double and, when mag is not NULL, the
 * per-element scale sum |x w| (+ |b|) for error bounds. */
void tu_linear_ref(const float *x, const float *w, const float *b, int M, int N, int K, double *ref,
                   double *mag);

/* Greedy decoding as the fixtures' greedy_N cases run it: max_new tokens from
 * the projected queries proj [Q, LM width] and the prompt ids, into seq (at
 * most cap ids); the sequence's length (0 after a failed check, or when
 * longer than cap). */
int tu_greedy(vb_lm *lm, const vb_model_config *cfg, const float *proj, int Q, const int32_t *ids,
              int n_ids, int max_new, int32_t *seq, int cap);

/* A growable byte buffer for crafting binary files in tests. */
typedef struct {
  uint8_t *p;
  size_t n, cap;
} tu_bytes;
void tu_put(tu_bytes *b, const void *src, size_t n);
/* Appends the low n bytes of v, little-endian. */
void tu_put_le(tu_bytes *b, uint64_t v, int n);

#endif
