/* Deterministic shards of an input list: shard k of n takes the lines whose 0-based
 * line number is k modulo n, so the shards of one list are disjoint and together the
 * whole list on any machine, and every shard is known without counting the list first
 * (a pipe works). Schedulers tell each task its k through the environment. */
#ifndef VBLIP_DATASET_SHARD_H
#define VBLIP_DATASET_SHARD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  long k, n; /* 0 <= k < n; n = 1: the whole list */
} vb_shard;

/* "K/N" with 0 <= K < N. 0, or -1. */
int vb_shard_parse(const char *s, vb_shard *out);

/* The shard a task takes when no --shard is given: a Slurm job array's task
 * (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT), else a Kubernetes
 * Indexed Job's JOB_COMPLETION_INDEX of `shards` (0: not given). *out is the whole list when
 * none is set; *from names the source ("" for none). 0, or -1 with a one-line message in
 * err (an unusable variable, or JOB_COMPLETION_INDEX without shards). */
int vb_shard_from_env(long shards, vb_shard *out, const char **from, char *err, size_t err_size);

static inline bool vb_shard_takes(const vb_shard *s, long line_index) {
  return line_index % s->n == s->k;
}

#endif
