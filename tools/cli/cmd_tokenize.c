/* vblip tokenize: text on stdin to ids, or ids to text with --decode. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *k_help =
    "usage: vblip tokenize --model DIR [--no-special] [--decode]\n"
    "\n"
    "Reads text from stdin and prints the token ids the model's tokenizer gives it\n"
    "(with the special tokens transformers adds, unless --no-special). With --decode,\n"
    "reads whitespace-separated ids and prints the text, special tokens skipped\n"
    "unless --keep-special.\n";

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

int cmd_tokenize(int argc, char **argv) {
  const char *model = NULL;
  int special = 1, decode = 0, keep_special = 0;
  for (int i = 1; i < argc; i++) {
    bool miss;
    const char *v;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(k_help, stdout);
      return 0;
    }
    if ((v = cli_opt(argc, argv, &i, "--model", &miss)) || miss) {
      if (miss) return cli_usage_error("tokenize", "--model needs a directory");
      model = v;
    } else if (strcmp(argv[i], "--no-special") == 0) {
      special = 0;
    } else if (strcmp(argv[i], "--keep-special") == 0) {
      keep_special = 1;
    } else if (strcmp(argv[i], "--decode") == 0) {
      decode = 1;
    } else {
      return cli_usage_error("tokenize", "unknown argument %s", argv[i]);
    }
  }
  if (!model) return cli_usage_error("tokenize", "--model is required");
  vblip_model *m = vblip_model_load(model, NULL);
  if (!m) return cli_fail("%s", vblip_last_error());
  size_t len;
  char *in = read_stdin(&len);
  int rc = 0;
  if (!in) {
    rc = cli_fail("cannot read stdin");
  } else if (strlen(in) != len) {
    rc = cli_fail("input contains a NUL byte");
  } else if (!decode) {
    /* one trailing newline is the shell's, not the text's */
    if (len && in[len - 1] == '\n') in[--len] = 0;
    int32_t *ids;
    size_t n;
    if (vblip_tokenize(m, in, special, &ids, &n) != 0) {
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
    if (!rc && vblip_detokenize(m, ids, n, !keep_special, &text) != 0) rc = cli_fail("%s", vblip_last_error());
    if (!rc) printf("%s\n", text);
    free(text);
    free(ids);
  }
  free(in);
  vblip_model_free(m);
  return rc;
}
