#define _GNU_SOURCE /* nftw */
#include "testutil.h"

#include "generate/generate.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "formats/safetensors.h"
#include "runtime/common.h"

static int g_pass, g_fail;

_Thread_local bool tu_cond;

bool tu_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...) {
  if (ok) {
    g_pass++;
    return true;
  }
  g_fail++;
  fprintf(stderr, "FAIL %s:%d: %s: ", file, line, expr);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return false;
}

static char g_tmpdir[256];
static pid_t g_tmpdir_owner;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path) != 0 ? -1 : 0;
}

int tu_finish(void) {
  printf("%d passed, %d failed\n", g_pass, g_fail);
  /* a passing test's files go (some tests write hundreds of MB); a failing
   * test's stay for a look, as does everything under VBLIP_TEST_KEEP_TMP=1 */
  if (g_tmpdir[0] && g_tmpdir_owner == getpid()) {
    const char *keep = getenv("VBLIP_TEST_KEEP_TMP");
    if (g_fail || (keep && *keep && strcmp(keep, "0") != 0))
      fprintf(stderr, "test files kept in %s\n", g_tmpdir);
    else if (nftw(g_tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
      fprintf(stderr, "could not remove %s: %s\n", g_tmpdir, strerror(errno));
  }
  return g_fail ? 1 : 0;
}

/* Every path handed out stays valid until exit (tests hold several at once)
 * and is freed then, so leak checkers stay quiet. */
static char **g_paths;
static size_t g_npaths;

static void free_paths(void) {
  for (size_t i = 0; i < g_npaths; i++)
    free(g_paths[i]);
  free(g_paths);
}

const char *tu_fixture(const char *rel) {
  size_t n = strlen(VBLIP_FIXTURES) + strlen(rel) + 2;
  char *b = malloc(n);
  char **list = realloc(g_paths, (g_npaths + 1) * sizeof *list);
  if (!b || !list) exit(2);
  if (!g_paths) atexit(free_paths);
  g_paths = list;
  g_paths[g_npaths++] = b;
  snprintf(b, n, "%s/%s", VBLIP_FIXTURES, rel);
  return b;
}

cJSON *tu_expected(void) {
  static cJSON *root;
  if (!root) {
    char *text;
    if (vb_read_file(tu_fixture("expected.json"), 64u << 20, &text, NULL) != 0) {
      fprintf(stderr, "cannot read expected.json: %s\n", vb_error_message());
      exit(2);
    }
    root = cJSON_Parse(text);
    free(text);
    if (!root) {
      fprintf(stderr, "expected.json does not parse\n");
      exit(2);
    }
  }
  return root;
}

cJSON *tu_json_path(cJSON *root, const char *dotted) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", dotted);
  cJSON *cur = root;
  for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur;
       tok = strtok_r(NULL, ".", &save))
    cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
  return cur;
}

const vb_tensor_info *tu_ref_tensor(const char *name) {
  static vb_tensor_table tt;
  static int loaded;
  if (!loaded) {
    vb_tt_init(&tt);
    if (vb_safetensors_load(&tt, tu_fixture("expected.safetensors")) != 0) {
      fprintf(stderr, "cannot load expected.safetensors: %s\n", vb_error_message());
      exit(2);
    }
    loaded = 1;
  }
  const vb_tensor_info *t = vb_tt_find(&tt, name);
  CHECK(t != NULL, "reference tensor %s missing", name);
  return t;
}

size_t tu_compare(const float *got, const float *ref, size_t n, double atol, double rtol,
                  double *max_abs_err, double *rel_l2) {
  size_t bad = 0;
  double worst = 0, num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)ref[i]);
    if (!(d <= atol + rtol * fabs((double)ref[i]))) bad++;
    if (d > worst || isnan(d)) worst = d;
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  if (max_abs_err) *max_abs_err = worst;
  if (rel_l2) *rel_l2 = den > 0 ? sqrt(num / den) : sqrt(num);
  return bad;
}

int tu_run(const char *cmd, char **output) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t got;
  while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += got;
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  int st = pclose(p);
  if (output)
    *output = buf;
  else
    free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tu_serve_port(int fd, char *line, size_t cap, int timeout_s) {
  size_t len = 0;
  time_t deadline = time(NULL) + timeout_s;
  while (len + 1 < cap && time(NULL) < deadline) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 1000) <= 0) continue;
    if (read(fd, line + len, 1) != 1 || line[len] == '\n') break;
    len++;
  }
  line[len] = 0;
  const char *u = strstr(line, "http://127.0.0.1:");
  return u ? atoi(u + strlen("http://127.0.0.1:")) : 0;
}

const char *tu_tmpdir(void) {
  if (!g_tmpdir[0]) { /* a forked child shares it; only its maker removes it */
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/vblip-test-XXXXXX");
    if (!mkdtemp(g_tmpdir)) {
      perror("mkdtemp");
      exit(2);
    }
    g_tmpdir_owner = getpid();
  }
  return g_tmpdir;
}

float tu_frand(tu_rng *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return (float)((r->s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

float *tu_rand_buf(tu_rng *r, size_t n, float scale) {
  float *p = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    p[i] = tu_frand(r) * scale;
  return p;
}

double tu_rel_l2(const float *got, const double *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = got[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

double tu_rel_l2f(const float *got, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

double tu_max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

int tu_central_difference(float *x, float rel, int (*loss)(void *ctx, double *out), void *ctx,
                          double *fd) {
  float x0 = *x, h = rel * fmaxf(fabsf(x0), 0.1f);
  double lp, lm;
  *x = x0 + h;
  float hp = *x - x0;
  int rc = loss(ctx, &lp);
  *x = x0 - h;
  float hm = x0 - *x;
  if (rc == 0) rc = loss(ctx, &lm);
  *x = x0;
  if (rc != 0) return -1;
  *fd = (lp - lm) / ((double)hp + hm);
  return 0;
}

int tu_greedy(vb_lm *lm, const vb_model_config *cfg, const float *proj, int Q, const int32_t *ids,
              int n_ids, int max_new, int32_t *seq, int cap) {
  vb_gen_config g;
  vb_gen_config_default(&g);
  g.max_new_tokens = max_new;
  g.eos_token_id = cfg->eos_token_id;
  g.pad_token_id = cfg->pad_token_id;
  g.start_token_id = cfg->lm_kind == VB_LM_T5 ? cfg->decoder_start_token_id : cfg->bos_token_id;
  vb_gen_result r;
  if (!CHECK_OK(lm->set_input(lm, proj, Q, ids, n_ids)) ||
      !CHECK_OK(vb_generate(&lm->gen, lm, &g, NULL, NULL, &r)))
    return 0;
  int n = r.n >= 1 && r.lens[0] <= cap ? r.lens[0] : 0;
  for (int i = 0; i < n; i++)
    seq[i] = r.seqs[0][i];
  vb_gen_result_free(&r);
  return n;
}

void tu_linear_ref(const float *x, const float *w, const float *b, int M, int N, int K, double *ref,
                   double *mag) {
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double s = b ? b[n] : 0, a = b ? fabs(b[n]) : 0;
      for (int k = 0; k < K; k++) {
        double p = (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
        s += p;
        a += fabs(p);
      }
      ref[(size_t)m * N + n] = s;
      if (mag) mag[(size_t)m * N + n] = a;
    }
}

void tu_put(tu_bytes *b, const void *src, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

void tu_put_le(tu_bytes *b, uint64_t v, int n) {
  for (int i = 0; i < n; i++) {
    uint8_t c = (uint8_t)(v >> (8 * i));
    tu_put(b, &c, 1);
  }
}

static int run_child(const char *self, const char *env) {
  char cmd[4600];
  /* a cross build's tests run emulated (tests/CMakeLists.txt): so does the child */
  const char *emu = getenv("VBLIP_TEST_EMULATOR");
  snprintf(cmd, sizeof cmd, "%s VBLIP_KERNELS_CHILD=1 %s%s%s", env, emu ? emu : "", emu ? " " : "",
           self);
  char *out = NULL;
  int rc = tu_run(cmd, &out);
  if (rc != 0) fprintf(stderr, "--- %s:\n%s\n", env, out ? out : "");
  free(out);
  return rc;
}

void tu_rerun_with_env(const char *env) {
  if (getenv("VBLIP_KERNELS_CHILD")) return;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (!CHECK(n > 0, "cannot find own executable")) return;
  self[n] = 0;
  CHECK(run_child(self, env) == 0, "%s: kernels differ", env);
}

void tu_rerun_with_cpu_paths_off(void) {
  if (getenv("VBLIP_KERNELS_CHILD")) return;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (!CHECK(n > 0, "cannot find own executable")) return;
  self[n] = 0;
  CHECK(run_child(self, "VBLIP_NO_AMX=1") == 0, "AMX forced off: kernels differ");
  CHECK(run_child(self, "VBLIP_NO_AVX512=1") == 0, "AVX-512 forced off: kernels differ");
}
