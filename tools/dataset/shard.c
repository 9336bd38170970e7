#include "dataset/shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* The whole string as a number in [lo, hi]. */
static bool whole_number(const char *s, long lo, long hi, long *out) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi || *s == ' ' || *s == '+') return false;
  *out = v;
  return true;
}

#define MAX_SHARDS 100000000L

int vb_shard_parse(const char *s, vb_shard *out) {
  long k, n;
  char a[32], b[32];
  int used = 0;
  if (sscanf(s, "%31[0-9]/%31[0-9]%n", a, b, &used) != 2 || s[used]) return -1;
  if (!whole_number(a, 0, MAX_SHARDS, &k) || !whole_number(b, 1, MAX_SHARDS, &n) || k >= n)
    return -1;
  out->k = k;
  out->n = n;
  return 0;
}

int vb_shard_from_env(long shards, vb_shard *out, const char **from, char *err, size_t err_size) {
  out->k = 0;
  out->n = 1;
  *from = "";
  const char *id = getenv("SLURM_ARRAY_TASK_ID"), *count = getenv("SLURM_ARRAY_TASK_COUNT");
  if (id && count) {
    const char *min = getenv("SLURM_ARRAY_TASK_MIN");
    long i, n, lo = 0;
    if (!whole_number(id, 0, MAX_SHARDS, &i) || !whole_number(count, 1, MAX_SHARDS, &n) ||
        (min && !whole_number(min, 0, MAX_SHARDS, &lo))) {
      snprintf(err, err_size, "SLURM_ARRAY_TASK_ID/_COUNT/_MIN are not whole numbers");
      return -1;
    }
    if (shards > 0 && shards != n) {
      snprintf(err, err_size, "--shards %ld differs from SLURM_ARRAY_TASK_COUNT %ld", shards, n);
      return -1;
    }
    if (i < lo || i - lo >= n) {
      snprintf(err, err_size,
               "SLURM_ARRAY_TASK_ID %ld is not among %ld tasks from %ld: give the array as a "
               "range without steps (--array=0-%ld) or pass --shard K/N",
               i, n, lo, n - 1);
      return -1;
    }
    out->k = i - lo;
    out->n = n;
    *from = "SLURM_ARRAY_TASK_ID";
    return 0;
  }
  const char *index = getenv("JOB_COMPLETION_INDEX");
  if (index) {
    long i;
    if (!whole_number(index, 0, MAX_SHARDS, &i)) {
      snprintf(err, err_size, "JOB_COMPLETION_INDEX '%.40s' is not a whole number", index);
      return -1;
    }
    if (shards <= 0) {
      snprintf(err, err_size,
               "JOB_COMPLETION_INDEX is set: give --shards N (the Job's completions) or "
               "--shard K/N");
      return -1;
    }
    if (i >= shards) {
      snprintf(err, err_size, "JOB_COMPLETION_INDEX %ld is not below --shards %ld", i, shards);
      return -1;
    }
    out->k = i;
    out->n = shards;
    *from = "JOB_COMPLETION_INDEX";
    return 0;
  }
  if (shards > 0) {
    snprintf(err, err_size,
             "--shards needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or a Slurm array; "
             "elsewhere use --shard K/N");
    return -1;
  }
  return 0;
}
