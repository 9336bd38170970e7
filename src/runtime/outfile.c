#include "runtime/outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"

void vb_outfile_tmp_name(const char *path, char *out, size_t n) {
  snprintf(out, n, "%s.tmp-%ld", path, (long)getpid());
}

int vb_outfile_check(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return 0;
    return vb_error("cannot write %s: %s", path, strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return 0;
  if (S_ISLNK(st.st_mode)) {
    char to[1024];
    ssize_t n = readlink(path, to, sizeof to - 1);
    to[n > 0 ? n : 0] = 0;
    return vb_error("%s is a symbolic link%s%s%s: vblip writes no file through a link; give the "
                    "path it points to",
                    path, n > 0 ? " (to " : "", to, n > 0 ? ")" : "");
  }
  return vb_error("%s is %s: vblip writes its output to a new file and renames it over the "
                  "target, which would replace it; choose a regular file's path",
                  path, vb_file_kind(st.st_mode));
}

/* Removes PATH.tmp-PID files whose process has gone (a kill -9 or a crash left them).
 * The process is asked with kill(pid, 0): ESRCH means no such process. */
static void remove_stale_temporaries(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  const char *base = slash ? slash + 1 : path;
  size_t bl = strlen(base);
  DIR *d = dir ? opendir(dir) : NULL;
  struct dirent *de;
  while (d && (de = readdir(d))) {
    const char *n = de->d_name;
    if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp-", 5) != 0) continue;
    char *end;
    long pid = strtol(n + bl + 5, &end, 10);
    if (*end || pid <= 0 || pid == (long)getpid()) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    char *p = vb_path_join(dir, n);
    struct stat st;
    if (p && lstat(p, &st) == 0 && S_ISREG(st.st_mode)) unlink(p);
    free(p);
  }
  if (d) closedir(d);
  free(dir);
}

int vb_outfile_open(vb_outfile *o, const char *path) {
  memset(o, 0, sizeof *o);
  if (vb_outfile_check(path) != 0) return -1;
  remove_stale_temporaries(path);
  size_t n = strlen(path) + 32;
  o->path = vb_strdup(path);
  o->tmp = vb_malloc(n);
  if (!o->path || !o->tmp) {
    vb_outfile_abort(o);
    return -1;
  }
  vb_outfile_tmp_name(path, o->tmp, n);
  unlink(o->tmp); /* a leftover of an earlier process with our pid */
  int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
    vb_error("cannot create %s: %s", o->tmp, strerror(errno));
    if (fd >= 0) close(fd);
    free(o->tmp); /* not ours to remove */
    o->tmp = NULL;
    vb_outfile_abort(o);
    return -1;
  }
  return 0;
}

int vb_outfile_commit(vb_outfile *o) {
  int rc = 0;
  FILE *f = o->f;
  o->f = NULL;
  if (fflush(f) != 0 || fsync(fileno(f)) != 0)
    rc = vb_error("error writing %s: %s", o->tmp, strerror(errno));
  if (fclose(f) != 0 && rc == 0) rc = vb_error("error writing %s: %s", o->tmp, strerror(errno));
  /* the target may have changed while we wrote */
  if (rc == 0 && vb_outfile_check(o->path) != 0) rc = -1;
  if (rc == 0 && rename(o->tmp, o->path) != 0)
    rc = vb_error("cannot rename %s to %s: %s", o->tmp, o->path, strerror(errno));
  if (rc == 0) {
    free(o->tmp);
    o->tmp = NULL;
  }
  vb_outfile_abort(o);
  return rc;
}

void vb_outfile_abort(vb_outfile *o) {
  if (o->f) fclose(o->f);
  if (o->tmp) unlink(o->tmp);
  free(o->tmp);
  free(o->path);
  memset(o, 0, sizeof *o);
}
