#include "hub/hf_cache.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "runtime/common.h"

int vb_hf_offline(void) {
  const char *v = getenv("HF_HUB_OFFLINE");
  return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
               strcasecmp(v, "on") == 0);
}

static char *join3(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s%s%s", a, b, c);
  return s;
}

char *vb_hf_cache_root(void) {
  const char *v;
  if ((v = getenv("HF_HUB_CACHE")) && *v) return join3(v, "", "");
  if ((v = getenv("HF_HOME")) && *v) return join3(v, "/hub", "");
  if ((v = getenv("XDG_CACHE_HOME")) && *v) return join3(v, "/huggingface/hub", "");
  if ((v = getenv("HOME")) && *v) return join3(v, "/.cache/huggingface/hub", "");
  return NULL;
}

static int is_file(const char *dir, const char *name) {
  char *p = vb_path_join(dir, name);
  struct stat st;
  int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode); /* snapshots link to blobs */
  free(p);
  return ok;
}

/* Every shard that the index names is there (a partial download is not used) */
static int shards_present(const char *dir, const char *index) {
  char *p = vb_path_join(dir, index), *text = NULL;
  int ok = p && vb_read_file(p, 64u << 20, &text, NULL) == 0;
  cJSON *root = ok ? cJSON_Parse(text) : NULL;
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map"), *e;
  ok = cJSON_IsObject(map) && map->child;
  cJSON_ArrayForEach(e, map) {
    if (!ok) break;
    ok = cJSON_IsString(e) && !strchr(e->valuestring, '/') && is_file(dir, e->valuestring);
  }
  cJSON_Delete(root);
  free(text);
  free(p);
  return ok;
}

static int snapshot_complete(const char *dir) {
  if (!is_file(dir, "config.json") || !is_file(dir, "preprocessor_config.json")) return 0;
  if (!(is_file(dir, "tokenizer.json") || is_file(dir, "spiece.model") ||
        (is_file(dir, "vocab.json") && is_file(dir, "merges.txt"))))
    return 0;
  if (is_file(dir, "model.safetensors.index.json"))
    return shards_present(dir, "model.safetensors.index.json");
  if (is_file(dir, "model.safetensors")) return 1;
  if (is_file(dir, "pytorch_model.bin.index.json"))
    return shards_present(dir, "pytorch_model.bin.index.json");
  return is_file(dir, "pytorch_model.bin");
}

static int is_commit(const char *s) {
  if (strlen(s) != 40) return 0;
  for (const char *p = s; *p; p++)
    if (!isxdigit((unsigned char)*p)) return 0;
  return 1;
}

char *vb_hf_cache_snapshot(const char *repo, const char *rev) {
  char *root = vb_hf_cache_root();
  if (!root || strlen(repo) > 200 || strstr(rev, "..")) {
    free(root);
    return NULL;
  }
  /* models--OWNER--NAME */
  char flat[256] = "models--";
  size_t k = strlen(flat);
  for (const char *p = repo; *p && k + 2 < sizeof flat; p++) {
    if (*p == '/')
      flat[k++] = '-', flat[k++] = '-';
    else
      flat[k++] = *p;
  }
  flat[k] = 0;
  char *repo_dir = join3(root, "/", flat), *commit = NULL, *snap = NULL;
  free(root);
  if (!repo_dir) return NULL;
  if (is_commit(rev)) {
    commit = join3(rev, "", "");
  } else {
    char *ref = join3(repo_dir, "/refs/", rev), *text = NULL;
    if (ref && vb_read_file(ref, 256, &text, NULL) == 0) {
      size_t n = strcspn(text, " \t\r\n");
      text[n] = 0;
      if (is_commit(text)) commit = join3(text, "", "");
    }
    free(text);
    free(ref);
  }
  if (commit) {
    char *dir = join3(repo_dir, "/snapshots/", commit);
    if (dir && snapshot_complete(dir))
      snap = dir;
    else
      free(dir);
  }
  free(commit);
  free(repo_dir);
  return snap;
}
