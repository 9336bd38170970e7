#include "runtime/json.h"

#include "runtime/common.h"

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
