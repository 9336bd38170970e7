#include "runtime/memory.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"

int vb_parse_bytes(const char *s, uint64_t *bytes) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !isfinite(v) || v < 0) return -1;
  double mul = 1;
  if (*end) {
    const char *units = "KMGT";
    const char *u = strchr(units, *end == 'k' ? 'K' : *end);
    if (!u || !*u) return -1;
    mul = pow(1024, (double)(u - units + 1));
    end++;
    if (*end == 'B' || *end == 'i') end++; /* "1GB", "1Gi" */
    if (*end == 'B') end++;
    if (*end) return -1;
  }
  if (v * mul >= 1.8e19) return -1;
  *bytes = (uint64_t)(v * mul);
  return 0;
}

/* A "Key:   123 kB" line of /proc/meminfo, in bytes; -1 when absent. */
static int meminfo(const char *key, uint64_t *bytes) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  size_t n = strlen(key);
  int rc = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      unsigned long long kb;
      if (sscanf(line + n + 1, "%llu", &kb) == 1) {
        *bytes = (uint64_t)kb * 1024;
        rc = 0;
      }
      break;
    }
  fclose(f);
  return rc;
}

/* One number in a file (cgroup v2's memory.max says "max" for no limit). */
static int read_u64(const char *path, uint64_t *v) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  unsigned long long x;
  int ok = fscanf(f, "%llu", &x) == 1;
  fclose(f);
  if (ok) *v = (uint64_t)x;
  return ok ? 0 : -1;
}

int vb_memory_available(uint64_t *bytes, const char **source) {
  const char *env = getenv("VBLIP_MEMORY_AVAILABLE");
  if (env && *env) {
    if (vb_parse_bytes(env, bytes) != 0)
      return vb_error("VBLIP_MEMORY_AVAILABLE=%s: expected bytes, or a number with K, M, G or T",
                      env);
    *source = "VBLIP_MEMORY_AVAILABLE";
    return 0;
  }
  if (meminfo("MemAvailable", bytes) != 0)
    return vb_error("cannot read MemAvailable from /proc/meminfo");
  *source = "MemAvailable";
  /* a container's limit: cgroup v2, then v1 */
  uint64_t limit, used;
  if ((read_u64("/sys/fs/cgroup/memory.max", &limit) == 0 &&
       read_u64("/sys/fs/cgroup/memory.current", &used) == 0) ||
      (read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit) == 0 &&
       read_u64("/sys/fs/cgroup/memory/memory.usage_in_bytes", &used) == 0)) {
    uint64_t left = limit > used ? limit - used : 0;
    if (left < *bytes) {
      *bytes = left;
      *source = "the cgroup's memory limit";
    }
  }
  return 0;
}
