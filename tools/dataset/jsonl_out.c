#include "dataset/jsonl_out.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"

/* A complete line longer than this is not one of ours: it is skipped, not parsed. */
#define MAX_RESULT_LINE (64u << 20)

struct vb_jsonl_out {
  int fd;
  bool own; /* a file we opened (not stdout) */
  char *path;
};

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One complete line (without its '\n'): an object goes to on_line, anything else is
 * reported and skipped. */
static int take_line(const char *path, long line_no, const char *s, size_t n, bool too_long,
                     vb_jsonl_line_fn on_line, void *user) {
  while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' '))
    n--;
  if (n == 0 && !too_long) return 0;
  cJSON *o = too_long ? NULL : cJSON_ParseWithLength(s, n);
  int rc = 0;
  if (!cJSON_IsObject(o))
    fprintf(stderr, "vblip: %s: line %ld is not a JSON object; its input will run again\n", path,
            line_no);
  else if (on_line && on_line(user, o) != 0)
    rc = -1;
  cJSON_Delete(o);
  return rc;
}

/* Reads the file's complete lines; *keep: the length of the part that ends with its last
 * '\n' (what stays). */
static int scan(int fd, const char *path, vb_jsonl_line_fn on_line, void *user, off_t *keep) {
  char chunk[1 << 16];
  char *line = NULL;
  size_t len = 0, cap = 0;
  bool too_long = false;
  long line_no = 0;
  off_t pos = 0;
  *keep = 0;
  int rc = 0;
  for (;;) {
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      rc = vb_error("%s: %s", path, strerror(errno));
      break;
    }
    if (got == 0) break;
    for (ssize_t i = 0; i < got && rc == 0; i++) {
      char c = chunk[i];
      pos++;
      if (c == '\n') {
        rc = take_line(path, ++line_no, line ? line : "", len, too_long, on_line, user);
        len = 0;
        too_long = false;
        *keep = pos;
        continue;
      }
      if (too_long) continue;
      if (len + 1 > MAX_RESULT_LINE) {
        too_long = true;
        continue;
      }
      if (len + 1 > cap) {
        size_t ncap = cap ? cap * 2 : 4096;
        char *p = vb_realloc(line, ncap);
        if (!p) {
          rc = -1;
          break;
        }
        line = p;
        cap = ncap;
      }
      line[len++] = c;
    }
    if (rc != 0) break;
  }
  free(line);
  return rc;
}

vb_jsonl_out *vb_jsonl_open(const char *path, bool resume, vb_jsonl_line_fn on_line, void *user) {
  vb_jsonl_out *o = vb_calloc(1, sizeof *o);
  if (!o) return NULL;
  if (!path || strcmp(path, "-") == 0) {
    if (resume) {
      free(o);
      vb_error("resuming needs an output file, not stdout");
      return NULL;
    }
    o->fd = STDOUT_FILENO;
    return o;
  }
  o->own = true;
  o->path = vb_strdup(path);
  /* not O_TRUNC: another writer may hold it; empty it only once it is ours */
  o->fd = o->path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
  if (o->fd < 0) {
    if (o->path) vb_error("%s: %s", path, strerror(errno));
    goto fail;
  }
  struct stat st;
  if (fstat(o->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    vb_error("%s: not a regular file", path);
    goto fail;
  }
  if (flock(o->fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    vb_error("%s: another process is writing it", path);
    goto fail;
  }
  off_t keep = 0;
  if (resume && scan(o->fd, path, on_line, user, &keep) != 0) goto fail;
  if (resume && keep < st.st_size)
    fprintf(stderr, "vblip: %s: dropping an unfinished last line (%lld bytes)\n", path,
            (long long)(st.st_size - keep));
  if ((resume ? keep < st.st_size : st.st_size > 0) && ftruncate(o->fd, keep) != 0) {
    vb_error("%s: cannot truncate: %s", path, strerror(errno));
    goto fail;
  }
  if (lseek(o->fd, 0, SEEK_END) < 0 || fcntl(o->fd, F_SETFL, O_APPEND) != 0) {
    vb_error("%s: %s", path, strerror(errno));
    goto fail;
  }
  return o;
fail:
  if (o->fd >= 0) close(o->fd);
  free(o->path);
  free(o);
  return NULL;
}

int vb_jsonl_write(vb_jsonl_out *o, const cJSON *obj) {
  char *s = cJSON_PrintUnformatted(obj);
  if (!s) return vb_error("out of memory");
  size_t n = strlen(s);
  char *line = vb_realloc(s, n + 2);
  if (!line) {
    free(s);
    return -1;
  }
  line[n] = '\n';
  int rc = write_all(o->fd, line, n + 1);
  free(line);
  if (rc != 0) return vb_error("%s: %s", o->own ? o->path : "stdout", strerror(errno));
  return 0;
}

int vb_jsonl_close(vb_jsonl_out *o) {
  if (!o) return 0;
  int rc = 0;
  if (o->own && close(o->fd) != 0) rc = vb_error("%s: %s", o->path, strerror(errno));
  free(o->path);
  free(o);
  return rc;
}

void vb_jsonl_add_input(cJSON *o, const char *video, double start, double end, const char *prompt) {
  if (video) cJSON_AddStringToObject(o, "video", video);
  if (start >= 0) cJSON_AddNumberToObject(o, "start", start);
  if (end >= 0) cJSON_AddNumberToObject(o, "end", end);
  if (prompt) cJSON_AddStringToObject(o, "prompt", prompt);
}
