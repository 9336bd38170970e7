#include "runtime/vfs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

typedef struct {
  char *name;
  uint8_t *data;
  size_t size;
} vfile;

typedef struct {
  char *dir;
  int refs;
  vfile *files;
  size_t n;
} vmount;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static vmount *g_mounts;
static size_t g_nmounts;

/* Length of a directory path without trailing slashes (keeps a lone "/"). */
static size_t dir_len(const char *d) {
  size_t n = strlen(d);
  while (n > 1 && d[n - 1] == '/') n--;
  return n;
}

static vmount *find_mount(const char *dir, size_t len) {
  for (size_t i = 0; i < g_nmounts; i++)
    if (strlen(g_mounts[i].dir) == len && memcmp(g_mounts[i].dir, dir, len) == 0) return &g_mounts[i];
  return NULL;
}

static void free_mount(vmount *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->files[i].name);
    free(m->files[i].data);
  }
  free(m->files);
  free(m->dir);
}

int vb_vfs_mount(const char *dir_path, const vb_vfs_file *files, size_t n) {
  size_t len = dir_len(dir_path);
  pthread_mutex_lock(&g_mu);
  vmount *ex = find_mount(dir_path, len);
  if (ex) {
    ex->refs++;
    pthread_mutex_unlock(&g_mu);
    return 0;
  }
  vmount m = {0};
  m.refs = 1;
  m.dir = vb_malloc(len + 1);
  m.files = vb_calloc(n + 1, sizeof *m.files);
  int ok = m.dir && m.files;
  if (m.dir) {
    memcpy(m.dir, dir_path, len);
    m.dir[len] = 0;
  }
  for (size_t i = 0; ok && i < n; i++) {
    if (!files[i].name[0] || strchr(files[i].name, '/')) {
      vb_error("virtual file name \"%s\" is not a plain file name", files[i].name);
      ok = 0;
      break;
    }
    m.files[i].name = vb_strdup(files[i].name);
    m.files[i].data = vb_malloc(files[i].size);
    m.n = i + 1;
    if (!m.files[i].name || !m.files[i].data) {
      ok = 0;
      break;
    }
    if (files[i].size) memcpy(m.files[i].data, files[i].data, files[i].size);
    m.files[i].size = files[i].size;
  }
  if (ok) {
    vmount *grown = vb_realloc(g_mounts, (g_nmounts + 1) * sizeof *grown);
    if (grown) {
      g_mounts = grown;
      g_mounts[g_nmounts++] = m;
    } else {
      ok = 0;
    }
  }
  if (!ok) free_mount(&m);
  pthread_mutex_unlock(&g_mu);
  return ok ? 0 : -1;
}

void vb_vfs_unmount(const char *dir_path) {
  size_t len = dir_len(dir_path);
  pthread_mutex_lock(&g_mu);
  vmount *m = find_mount(dir_path, len);
  if (m && --m->refs == 0) {
    free_mount(m);
    size_t i = (size_t)(m - g_mounts);
    memmove(m, m + 1, (g_nmounts - i - 1) * sizeof *m);
    if (--g_nmounts == 0) {
      free(g_mounts);
      g_mounts = NULL;
    }
  }
  pthread_mutex_unlock(&g_mu);
}

bool vb_vfs_is_mounted(const char *dir_path) {
  pthread_mutex_lock(&g_mu);
  bool r = find_mount(dir_path, dir_len(dir_path)) != NULL;
  pthread_mutex_unlock(&g_mu);
  return r;
}

int vb_vfs_lookup(const char *path, char **copy, size_t *size) {
  if (copy) *copy = NULL;
  pthread_mutex_lock(&g_mu);
  int rc = 0;
  for (size_t i = 0; i < g_nmounts && rc == 0; i++) {
    const vmount *m = &g_mounts[i];
    size_t dl = strlen(m->dir);
    if (strncmp(path, m->dir, dl) != 0) continue;
    const char *rest = path + dl;
    if (*rest != '/' && !(dl == 1 && m->dir[0] == '/')) continue;
    while (*rest == '/') rest++;
    for (size_t j = 0; j < m->n; j++) {
      if (strcmp(m->files[j].name, rest) != 0) continue;
      rc = 1;
      if (size) *size = m->files[j].size;
      if (copy) {
        char *c = vb_malloc(m->files[j].size + 1);
        if (!c) {
          rc = -1;
          break;
        }
        memcpy(c, m->files[j].data, m->files[j].size);
        c[m->files[j].size] = 0;
        *copy = c;
      }
      break;
    }
  }
  pthread_mutex_unlock(&g_mu);
  return rc;
}
