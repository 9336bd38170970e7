/* vblip tokenize: text on stdin to ids, or ids to text with --decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
  const char *model;
  int no_special, decode, keep_special;
} tokenize_opts;

static const cli_option k_options[] = {
    CLI_GROUP(cli_model_option, tokenize_opts, model),
    CLI_OPT_FLAG("--no-special", 0, tokenize_opts, no_special,
                 "without the special tokens transformers adds"),
    CLI_OPT_FLAG("--decode", 0, tokenize_opts, decode,
                 "read whitespace-separated ids, print the text"),
    CLI_OPT_FLAG("--keep-special", 0, tokenize_opts, keep_special,
                 "with --decode: keep the special tokens"),
    CLI_TABLE_END};

static int run(int argc, char **argv);

const cli_command cli_cmd_tokenize = {
    .name = "tokenize",
    .summary = "tokenize stdin with a model's tokenizer (or --decode ids)",
    .run = run,
    .usage = "--model MODEL [--no-special] [--decode [--keep-special]]",
    .about = "Reads text from stdin and prints the token ids the model's tokenizer gives it\n"
             "(with the special tokens transformers adds, unless --no-special). With --decode,\n"
             "reads whitespace-separated ids and prints the text, special tokens skipped\n"
             "unless --keep-special.\n",
    .options = k_options,
    .max_positional = 0,
};

static char *read_stdin(size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  size_t got;
  while ((got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
    n += got;
    if (n + 1 == cap) {
      if (cap > (size_t)1 << 31) break;
      char *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
    }
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

static int run(int argc, char **argv) {
  tokenize_opts o = {0};
  int n_pos, status = cli_parse(&cli_cmd_tokenize, &o, argc, argv, &n_pos);
  if (status != CLI_RUN) return status;
  vblip_model *m = cli_load_model(o.model, NULL);
  if (!m) return 1;
  size_t len;
  char *in = read_stdin(&len);
  int rc = 0;
  if (!in) {
    rc = cli_fail("cannot read stdin");
  } else if (strlen(in) != len) {
    rc = cli_fail("input contains a NUL byte");
  } else if (!o.decode) {
    /* one trailing newline is the shell's, not the text's */
    if (len && in[len - 1] == '\n') in[--len] = 0;
    int32_t *ids;
    size_t n;
    if (vblip_tokenize(m, in, !o.no_special, &ids, &n) != 0) {
      rc = cli_fail("%s", vblip_last_error());
    } else {
      for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", ids[i]);
      printf("\n");
      free(ids);
    }
  } else {
    size_t cap = 1024, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *save = NULL;
    for (char *tok = strtok_r(in, " \t\r\n,", &save); tok && !rc; tok = strtok_r(NULL, " \t\r\n,", &save)) {
      long v;
      if (!cli_int(tok, 0, 0x7fffffff, &v)) {
        rc = cli_fail("'%s' is not a token id", tok);
        break;
      }
      if (n == cap) {
        int32_t *nb = realloc(ids, (cap *= 2) * sizeof *ids);
        if (!nb) {
          rc = cli_fail("out of memory");
          break;
        }
        ids = nb;
      }
      ids[n++] = (int32_t)v;
    }
    char *text = NULL;
    if (!rc && vblip_detokenize(m, ids, n, !o.keep_special, &text) != 0)
      rc = cli_fail("%s", vblip_last_error());
    if (!rc) printf("%s\n", text);
    free(text);
    free(ids);
  }
  free(in);
  vblip_model_free(m);
  return rc;
}
