/* A Hugging Face Hub look-alike on 127.0.0.1 for tests (tests/fake_hub.c). */
#ifndef VBLIP_TESTS_FAKE_HUB_H
#define VBLIP_TESTS_FAKE_HUB_H

#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* The commit every listing names. */
#define COMMIT "0123456789abcdef0123456789abcdef01234567"

typedef struct {
  char name[256];
  uint8_t *data;
  size_t size;
  int lfs;
  char hash[65]; /* sha256 (LFS) or git blob sha1 */
} sfile;

typedef struct {
  const char *repo;
  sfile files[32];
  int n;
} srepo;

typedef struct {
  struct MHD_Daemon *d;
  int port;
  srepo repos[2];
  int nrepos;
  pthread_mutex_t mu; /* guards the log and the behaviours */
  char log[256][320]; /* "METHOD URL|range=...|auth=..." per request */
  int nlog;
  /* behaviours */
  char cut_name[128]; /* the next download of this file stops after cut_after bytes */
  size_t cut_after;
  int cut_pending;
  char corrupt_name[128]; /* this file is served with one byte flipped */
  int no_revision_api;    /* /api/models/REPO/revision/REV answers 404 */
  int require_token;      /* everything needs "Authorization: Bearer secret-token" */
  int offline;            /* everything answers 503 */
} fake_hub;

extern fake_hub g_hub;

/* Starts serving owner/opt and owner/sharded; points HF_ENDPOINT at it (and short
 * retry delays, no HF_TOKEN). Exits the test on failure. */
void fake_hub_start(void);
void fake_hub_stop(void);
void fake_hub_clear_log(void);
/* The first log line containing a and, when given, b (NULL if none). */
const char *fake_hub_logged(const char *a, const char *b);
int fake_hub_count_logged(const char *a);

#endif
