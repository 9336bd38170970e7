#define _GNU_SOURCE
#include "serve_child.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

int tu_server_start(tu_server *s, const char *model, const char *const *extra, const char *delay_ms,
                    const char *stderr_path) {
  memset(s, 0, sizeof *s);
  snprintf(s->tmp, sizeof s->tmp, "%s/srv-XXXXXX", tu_tmpdir());
  if (!mkdtemp(s->tmp)) return -1;
  if (stderr_path) snprintf(s->log, sizeof s->log, "%s", stderr_path);
  const char *argv[64] = {VBLIP_BINARY, "serve",  "--model", model,       "--host",
                          "127.0.0.1",  "--port", "0",       "--threads", "2"};
  int n = 10;
  for (int i = 0; extra && extra[i] && n < 63; i++)
    argv[n++] = extra[i];
  argv[n] = NULL;
  int p[2];
  if (pipe(p) != 0) return -1;
  s->pid = fork();
  if (s->pid < 0) return -1;
  if (s->pid == 0) {
    dup2(p[1], 1);
    if (s->log[0]) {
      int e = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (e >= 0) dup2(e, 2);
    }
    close(p[0]);
    close(p[1]);
    setenv("TMPDIR", s->tmp, 1);
    if (delay_ms) setenv("VBLIP_SERVE_TEST_DELAY_MS", delay_ms, 1);
    execv(VBLIP_BINARY, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  s->out_fd = p[0];
  char line[512];
  s->port = tu_serve_port(s->out_fd, line, sizeof line, 60);
  if (!s->port) {
    fprintf(stderr, "server did not start: '%s'\n", line);
    return -1;
  }
  snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
  return 0;
}

int tu_server_stop(tu_server *s) {
  if (s->pid <= 0) return -1;
  kill(s->pid, SIGTERM);
  int st = 0;
  for (int i = 0; i < 150; i++) {
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      close(s->out_fd);
      s->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    usleep(100000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &st, 0);
  close(s->out_fd);
  s->pid = 0;
  return -1;
}
