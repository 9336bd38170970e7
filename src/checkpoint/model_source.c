#include "checkpoint/model_source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "runtime/common.h"
#include "runtime/vfs.h"
#include "vblip.h"

const char *const vb_model_files[] = {
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "tokenizer.json",
    NULL,
};

/* Set once at start-up by the Hub client (vblip_hub_install); the core itself
 * never touches the network. */
static vblip_repo_resolver g_resolver;

void vblip_set_repo_resolver(vblip_repo_resolver fn) { g_resolver = fn; }

static bool part_ok(const char *s, size_t n) {
  if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-') return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  const char *dots = strstr(s, "..");
  return dots == NULL || (size_t)(dots - s) >= n;
}

bool vb_repo_id_valid(const char *s) {
  const char *slash = s ? strchr(s, '/') : NULL;
  if (!slash || strchr(slash + 1, '/')) return false;
  return part_ok(s, (size_t)(slash - s)) && part_ok(slash + 1, strlen(slash + 1));
}

bool vb_is_repo_id(const char *s) {
  struct stat st;
  return vb_repo_id_valid(s) && stat(s, &st) != 0;
}

int vb_model_path_check(const char *path, int *is_gguf) {
  struct stat st;
  *is_gguf = 0;
  if (stat(path, &st) != 0) return vb_error("%s", strerror(errno));
  if (S_ISDIR(st.st_mode)) return 0;
  if (!S_ISREG(st.st_mode))
    return vb_error("%s, not a model directory or .gguf file", vb_file_kind(st.st_mode));
  if (!vb_gguf_is_file(path))
    return vb_error("a file that is not GGUF (it does not start with \"GGUF\"); a model is a "
                    "checkpoint directory or a .gguf file written by 'vblip convert'");
  *is_gguf = 1;
  return 0;
}

int vb_resolve_repo_id(const char *s, int progress, char **dir) {
  if (!g_resolver) {
    vb_error("%s is no local path, and this program has no Hugging Face Hub client to fetch it "
             "as a repo id",
             s);
    return -1;
  }
  return g_resolver(s, progress, dir);
}

int vb_model_source_open(const char *name, int progress, vb_model_source *s) {
  memset(s, 0, sizeof *s);
  vb_tt_init(&s->tt);
  if (!(s->name = vb_strdup(name))) return -1;
  /* a Hub repo id ("owner/name" that is no local path): pulled, or found complete in the cache */
  if (vb_is_repo_id(name)) {
    if (vb_resolve_repo_id(name, progress, &s->path) != 0) {
      vb_error_context("loading %s (not a local path, so a Hugging Face Hub repo id)", name);
      vb_model_source_close(s);
      return -1;
    }
  } else if (!(s->path = vb_strdup(name))) {
    vb_model_source_close(s);
    return -1;
  }
  /* what the path is, before anything opens it (a FIFO would block the open) */
  int is_gguf;
  if (vb_model_path_check(s->path, &is_gguf) != 0) {
    vb_error_context("loading %s", name);
    vb_model_source_close(s);
    return -1;
  }
  if (is_gguf) {
    if (vb_gguf_open_model(s->path, &s->tt) != 0) {
      vb_error_context("loading %s", name);
      vb_model_source_close(s);
      return -1;
    }
    s->gguf = s->has_tt = true;
  }
  return 0;
}

void vb_model_source_close(vb_model_source *s) {
  if (s->gguf) vb_vfs_unmount(s->path);
  vb_tt_free(&s->tt);
  free(s->name);
  free(s->path);
  memset(s, 0, sizeof *s);
}

int vb_model_source_weights(vb_model_source *s, vb_weights *w) {
  if (!s->has_tt) return vb_weights_open(s->path, w);
  memset(w, 0, sizeof *w);
  if (!(w->source = vb_strdup(s->path))) return -1;
  w->tt = s->tt; /* the table (and the file mapping it keeps) moves to the weights */
  vb_tt_init(&s->tt);
  s->has_tt = false;
  return 0;
}
