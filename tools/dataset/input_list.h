/* The list of inputs of a dataset run, read as a stream (a file or stdin): each line is a
 * path, or a JSON object {"video": PATH, "prompt": ..., "start": S, "end": E, "id": ...}
 * where every field but "video" may be left out (and others are ignored). Blank lines are
 * skipped but keep their line numbers, which shards go by. */
#ifndef VBLIP_DATASET_INPUT_LIST_H
#define VBLIP_DATASET_INPUT_LIST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

#include "dataset/shard.h"

/* Lines longer than this fail (as that input's error), the rest of the list goes on. */
#define VB_INPUT_MAX_LINE (1u << 20)

typedef struct {
  long line;         /* 1-based line number in the list */
  cJSON *id;         /* as given (a string or a number), or NULL */
  char *video;       /* NULL when the line could not be read */
  char *prompt;      /* NULL: the run's prompt */
  double start, end; /* seconds; < 0: not given */
  char *error;       /* why the line could not be read, or NULL */
} vb_input_item;

void vb_input_item_free(vb_input_item *it);

/* The key that identifies an input's result: its id as JSON, else [video, start, end]
 * (null where not given), else (an unreadable line) "line N". A new string. */
char *vb_input_key(const cJSON *id, const char *video, double start, double end, long line);
/* The same for a result line (its "id", "video", "start", "end", "line" fields); NULL
 * with the error when it has none of them. */
char *vb_result_key(const cJSON *result);

typedef struct {
  FILE *f;
  bool own;
  char *name;
  long line; /* lines read so far */
  vb_shard shard;
  char *buf;
  size_t cap;
} vb_input_list;

/* path "-" is stdin. 0, or -1 with the error. */
int vb_input_list_open(vb_input_list *l, const char *path, vb_shard shard);
/* The next line of the shard: 1 with *it filled (its error set for a line that is not a
 * usable input), 0 at the end, -1 when the list cannot be read. */
int vb_input_list_next(vb_input_list *l, vb_input_item *it);
void vb_input_list_close(vb_input_list *l);

#endif
