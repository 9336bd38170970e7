#include "cli/cli_caption_list.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dataset/caption_run.h"

static int parse_shard(const char *v, void *field) {
  vb_shard s;
  if (vb_shard_parse(v, &s) != 0) return -1;
  *(const char **)field = v;
  return 0;
}

const cli_option cli_caption_list_options[] = {
    CLI_HEADING("Datasets (docs/datasets.md):"),
    CLI_OPT_STRING("--files-from", 0, "LIST", cli_caption_list, files_from,
                   "caption the inputs listed in LIST ('-': stdin), one per line:\n"
                   "a path or {\"video\", \"prompt\", \"start\", \"end\", \"id\"}; one JSON\n"
                   "line per input, in order (instead of VIDEOs)",
                   .flags = CLI_NONEMPTY),
    CLI_OPT_CUSTOM("--shard", 0, "K/N", cli_caption_list, shard, const char *, parse_shard,
                   "only the lines whose 0-based number is K modulo N (default:\n"
                   "from SLURM_ARRAY_TASK_ID/_COUNT, or JOB_COMPLETION_INDEX of\n"
                   "--shards)",
                   .need = "needs K/N with 0 <= K < N"),
    CLI_OPT_INT("--shards", 0, "N", cli_caption_list, shards, 1, 100000000,
                "how many shards a Kubernetes Indexed Job's JOB_COMPLETION_INDEX\n"
                "counts (its completions)"),
    CLI_OPT_STRING("--output", 'o', "FILE", cli_caption_list, output,
                   "write the results to FILE (default: stdout)", .flags = CLI_NONEMPTY),
    CLI_OPT_FLAG("--resume", 0, cli_caption_list, resume,
                 "keep FILE's complete results and caption only the inputs that\n"
                 "have none (by id, else by video, start and end)"),
    CLI_OPT_INT("--prefetch", 0, "N", cli_caption_list, prefetch, 0, 64,
                "decode up to N videos ahead while the model runs (default 2;\n"
                "0: one at a time)"),
    CLI_TABLE_END};

void cli_caption_list_default(cli_caption_list *l) {
  memset(l, 0, sizeof *l);
  l->prefetch = 2;
}

int cli_caption_list_check(const char *cmd, const cli_caption_list *l, int n_videos,
                           int interleaved) {
  if (!l->files_from) {
    if (n_videos == 0) return cli_usage_error(cmd, "no VIDEO given (or --files-from LIST)");
    if (l->shard || l->shards || l->output || l->resume)
      return cli_usage_error(cmd, "--%s needs --files-from",
                             l->shard    ? "shard"
                             : l->shards ? "shards"
                             : l->output ? "output"
                                         : "resume");
    return 0;
  }
  if (n_videos > 0) return cli_usage_error(cmd, "give VIDEOs or --files-from, not both");
  if (interleaved) return cli_usage_error(cmd, "--interleaved does not take --files-from");
  if (l->resume && !l->output) return cli_usage_error(cmd, "--resume needs --output FILE");
  if (l->shard && l->shards) return cli_usage_error(cmd, "give --shard K/N or --shards N");
  return 0;
}

typedef struct {
  vb_key_set *done;
  const char *path;
} resume_ctx;

static int remember(void *user, const cJSON *line) {
  resume_ctx *r = user;
  char *key = vb_result_key(line);
  if (!key) {
    fprintf(stderr, "vblip: %s: %s; skipped\n", r->path, vblip_last_error());
    return 0;
  }
  int rc = vb_key_set_add(r->done, key);
  free(key);
  return rc;
}

int cli_caption_list_run(vblip_model *m, const cli_caption_list *l, const cli_caption_settings *s) {
  vb_shard shard = {0, 1};
  const char *from = "--shard";
  char err[256];
  if (l->shard)
    vb_shard_parse(l->shard, &shard); /* checked while parsing */
  else if (vb_shard_from_env(l->shards, &shard, &from, err, sizeof err) != 0)
    return cli_usage_error("caption", "%s", err);
  if (shard.n > 1 && !l->shard)
    fprintf(stderr, "vblip: shard %ld/%ld (from %s)\n", shard.k, shard.n, from);
  vb_key_set done = {0};
  resume_ctx rc_ctx = {&done, l->output};
  vb_jsonl_out *out = vb_jsonl_open(l->output, l->resume, remember, &rc_ctx);
  if (!out) {
    vb_key_set_free(&done);
    return cli_fail("%s", vblip_last_error());
  }
  vb_input_list in;
  if (vb_input_list_open(&in, l->files_from, shard) != 0) {
    vb_jsonl_close(out);
    vb_key_set_free(&done);
    return cli_fail("%s", vblip_last_error());
  }
  vb_caption_run_opts o = {.prompt = s->prompt,
                           .sampling = s->sampling,
                           .gen = s->gen,
                           .raw = s->raw,
                           .prefetch = l->prefetch,
                           .progress = cli_status_on() && (l->output || !isatty(1))};
  vb_caption_run_stats st = {0};
  int status = 0;
  if (vb_caption_run(m, &in, &done, out, &o, &st) != 0) status = cli_fail("%s", vblip_last_error());
  if (vb_jsonl_close(out) != 0 && status == 0) status = cli_fail("%s", vblip_last_error());
  vb_input_list_close(&in);
  vb_key_set_free(&done);
  if (st.failed > 0)
    fprintf(stderr, "vblip: %ld of %ld inputs failed (see their \"error\" fields)\n", st.failed,
            st.failed + st.captioned);
  return status;
}
