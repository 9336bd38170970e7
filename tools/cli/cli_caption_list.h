/* caption --files-from: the options of a dataset run (the list, its shard, the results
 * file, resuming, prefetching) and running it (tools/dataset). */
#ifndef VBLIP_CLI_CAPTION_LIST_H
#define VBLIP_CLI_CAPTION_LIST_H

#include "cli/cli_options.h"
#include "vblip.h"

typedef struct {
  const char *files_from; /* the list, "-" for stdin; NULL: not a dataset run */
  const char *shard;      /* "K/N" */
  int shards;             /* N for JOB_COMPLETION_INDEX */
  const char *output;     /* results file; NULL: stdout */
  int resume;
  int prefetch; /* videos decoded ahead */
} cli_caption_list;

/* --files-from, --shard, --shards, --output, --resume, --prefetch into a cli_caption_list.
 * Set prefetch's default (cli_caption_list_default) before parsing. */
extern const cli_option cli_caption_list_options[];
void cli_caption_list_default(cli_caption_list *l);

/* After parsing: the options fit together (VIDEOs or --files-from, not both; no
 * --interleaved with a list; --resume with --output; ...). 0, or 2 after a usage error. */
int cli_caption_list_check(const char *cmd, const cli_caption_list *l, int n_videos,
                           int interleaved);

typedef struct {
  const char *prompt;
  const vblip_sampling *sampling;
  const vblip_gen_params *gen;
  int raw;
} cli_caption_settings;

/* Captions the list's shard into the results; the exit status (0 even when some inputs
 * failed: their lines say so; 1 when the list or the results file fails; 2 for a shard
 * the environment gives wrongly). */
int cli_caption_list_run(vblip_model *m, const cli_caption_list *l, const cli_caption_settings *s);

#endif
