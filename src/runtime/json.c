#include "runtime/json.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/escape.h"

cJSON *vb_json_parse(const char *text, size_t len, const char *what) {
  if (!what) what = "the text";
  if (!text) text = "", len = 0;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
  if (!root) {
    vb_error("%s is not valid JSON (byte %zu)", what, at);
    return NULL;
  }
  for (size_t i = at; i < len; i++) {
    char c = text[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      cJSON_Delete(root);
      vb_error("%s has more after its JSON value (byte %zu)", what, i);
      return NULL;
    }
  }
  return root;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first repeated key of an object within v, found by sorting each object's names
 * (a body of many keys stays O(k log k)); cJSON's nesting limit bounds the recursion.
 * 1 with *key, 0 when none, -1 when out of memory. */
static int find_repeat(const cJSON *v, const char **key) {
  if (cJSON_IsObject(v)) {
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next)
      n++;
    if (n > 1) {
      const char **names = malloc(n * sizeof *names);
      if (!names) return -1;
      size_t k = 0;
      for (const cJSON *c = v->child; c; c = c->next)
        names[k++] = c->string ? c->string : "";
      qsort(names, n, sizeof *names, cmp_name);
      for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
          *key = names[i];
          free(names);
          return 1;
        }
      free(names);
    }
  }
  if (cJSON_IsObject(v) || cJSON_IsArray(v))
    for (const cJSON *c = v->child; c; c = c->next) {
      int rc = find_repeat(c, key);
      if (rc != 0) return rc;
    }
  return 0;
}

cJSON *vb_json_parse_unique(const char *text, size_t len, const char *what) {
  cJSON *root = vb_json_parse(text, len, what);
  if (!root) return NULL;
  const char *key = NULL;
  int rc = find_repeat(root, &key);
  if (rc != 0) {
    char safe[96];
    if (rc < 0)
      vb_error("out of memory checking %s", what ? what : "the text");
    else
      vb_error("%s repeats the key '%s' in one object", what ? what : "the text",
               vb_escape_controls(key, safe, sizeof safe));
    cJSON_Delete(root);
    return NULL;
  }
  return root;
}
