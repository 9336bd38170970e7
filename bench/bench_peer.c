/* Runs the PyTorch peer (bench/peer/vit_qformer.py) for vblip-bench and reads
 * its one JSON line. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "runtime/common.h"

int bench_peer_pythons(char (*out)[512], int max) {
  const char *env = getenv("VBLIP_PEER_PYTHON");
  int n = 0;
  if (env && env[0]) {
    for (const char *p = env; *p && n < max;) {
      size_t len = strcspn(p, ":");
      if (len > 0 && len < 512) {
        memcpy(out[n], p, len);
        out[n++][len] = 0;
      }
      p += len + (p[len] == ':');
    }
    if (n > 0) return n;
  }
  snprintf(out[0], 512, "%s",
           access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
  return 1;
}

int bench_peer_run(const char *py, int T, int threads, double *ms_vision, double *ms_qformer,
                   char *version, size_t version_len) {
  if (strchr(py, '\'') != NULL) return vb_error("peer interpreter path with a quote: %s", py);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "'%s' '%s' --frames %d --threads %d 2>&1", py, VBLIP_PEER_SCRIPT, T,
           threads);
  FILE *p = popen(cmd, "r");
  if (!p) return vb_error("cannot run %s", cmd);
  char line[4096], last[4096] = "";
  while (fgets(line, sizeof line, p))
    if (line[0] == '{')
      snprintf(last, sizeof last, "%s", line);
    else
      fprintf(stderr, "  peer: %s", line);
  int st = pclose(p);
  cJSON *j = cJSON_Parse(last);
  const cJSON *v = cJSON_GetObjectItem(j, "vision_ms"), *q = cJSON_GetObjectItem(j, "qformer_ms");
  const cJSON *tv = cJSON_GetObjectItem(j, "torch");
  int ok = st == 0 && cJSON_IsNumber(v) && cJSON_IsNumber(q);
  if (ok) {
    *ms_vision = v->valuedouble;
    *ms_qformer = q->valuedouble;
    snprintf(version, version_len, "%s", cJSON_IsString(tv) ? tv->valuestring : "?");
  }
  cJSON_Delete(j);
  return ok ? 0
            : vb_error("the PyTorch peer failed (status %d): %s (set VBLIP_PEER_PYTHON to a "
                       "python3 with torch)",
                       st, cmd);
}
