/* `vblip serve` as a child process of a test, on 127.0.0.1 and a port the kernel picks
 * (shared by the tests that talk HTTP to the real program). */
#ifndef VBLIP_TESTS_SERVE_CHILD_H
#define VBLIP_TESTS_SERVE_CHILD_H

#include <sys/types.h>

typedef struct {
  pid_t pid;
  int out_fd; /* the server's stdout */
  int port;
  char base[128]; /* http://127.0.0.1:PORT */
  char tmp[256];  /* the server's own TMPDIR (its uploads), made fresh per start */
  char log[512];  /* where its stderr goes, or "" (inherited) */
} tu_server;

/* Starts `vblip serve --model MODEL --host 127.0.0.1 --port 0 --threads 2 EXTRA...` (extra
 * NULL-terminated, may be NULL) with VBLIP_SERVE_TEST_DELAY_MS=delay_ms when not NULL and
 * its stderr into stderr_path when not NULL; waits up to 60 s for the port it prints.
 * 0, or -1 after printing what the server said instead. */
int tu_server_start(tu_server *s, const char *model, const char *const *extra, const char *delay_ms,
                    const char *stderr_path);
/* SIGTERM, then its exit status; -1 (after SIGKILL) when it has not exited within 15 s. */
int tu_server_stop(tu_server *s);

#endif
