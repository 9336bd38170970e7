#include "dataset/input_list.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/common.h"
#include "runtime/escape.h"
#include "runtime/json.h"

void vb_input_item_free(vb_input_item *it) {
  cJSON_Delete(it->id);
  free(it->video);
  free(it->prompt);
  free(it->error);
  memset(it, 0, sizeof *it);
}

char *vb_input_key(const cJSON *id, const char *video, double start, double end, long line) {
  if (id) return cJSON_PrintUnformatted(id);
  if (!video) {
    char buf[48];
    snprintf(buf, sizeof buf, "line %ld", line);
    return vb_strdup(buf);
  }
  cJSON *a = cJSON_CreateArray();
  cJSON_AddItemToArray(a, cJSON_CreateString(video));
  cJSON_AddItemToArray(a, start >= 0 ? cJSON_CreateNumber(start) : cJSON_CreateNull());
  cJSON_AddItemToArray(a, end >= 0 ? cJSON_CreateNumber(end) : cJSON_CreateNull());
  char *s = cJSON_PrintUnformatted(a);
  cJSON_Delete(a);
  return s;
}

static double number_or_unset(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

char *vb_result_key(const cJSON *r) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
  const cJSON *video = cJSON_GetObjectItemCaseSensitive(r, "video");
  const cJSON *line = cJSON_GetObjectItemCaseSensitive(r, "line");
  if (!id && !cJSON_IsString(video) && !cJSON_IsNumber(line)) {
    vb_error("a result line has no id, video or line");
    return NULL;
  }
  return vb_input_key(id, cJSON_IsString(video) ? video->valuestring : NULL,
                      number_or_unset(r, "start"), number_or_unset(r, "end"),
                      cJSON_IsNumber(line) ? (long)line->valuedouble : 0);
}

int vb_input_list_open(vb_input_list *l, const char *path, vb_shard shard) {
  memset(l, 0, sizeof *l);
  l->shard = shard;
  if (strcmp(path, "-") == 0) {
    l->f = stdin;
  } else {
    l->f = fopen(path, "rb");
    if (!l->f) return vb_error("%s: %s", path, strerror(errno));
    l->own = true;
  }
  l->name = vb_strdup(strcmp(path, "-") == 0 ? "stdin" : path);
  return l->name ? 0 : -1;
}

void vb_input_list_close(vb_input_list *l) {
  if (l->own && l->f) fclose(l->f);
  free(l->name);
  free(l->buf);
  memset(l, 0, sizeof *l);
}

/* Reads one line into l->buf (without '\n'); 1, 0 at the end, -1 on a read error.
 * *too_long: the line was cut at VB_INPUT_MAX_LINE (the rest is read and dropped). */
static int read_line(vb_input_list *l, size_t *len, bool *too_long) {
  *len = 0;
  *too_long = false;
  int c = EOF;
  bool any = false;
  while ((c = getc(l->f)) != EOF) {
    any = true;
    if (c == '\n') break;
    if (*len >= VB_INPUT_MAX_LINE) {
      *too_long = true;
      continue;
    }
    if (*len + 2 > l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 1024;
      char *b = vb_realloc(l->buf, cap);
      if (!b) return -1;
      l->buf = b;
      l->cap = cap;
    }
    l->buf[(*len)++] = (char)c;
  }
  if (ferror(l->f)) return vb_error("%s: %s", l->name, strerror(errno));
  if (!any) return 0;
  if (l->buf) l->buf[*len] = 0;
  return 1;
}

static int item_error(vb_input_item *it, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  free(it->video);
  it->video = NULL;
  it->error = vb_strdup(msg);
  return it->error ? 1 : -1;
}

/* A JSON line's fields into it. */
static int parse_object(vb_input_item *it, const char *s, size_t n) {
  /* one value, no text after it, no key twice (which of two "video"s would count?) */
  cJSON *o = vb_json_parse_unique(s, n, "the line");
  if (!cJSON_IsObject(o)) {
    char why[256];
    snprintf(why, sizeof why, "%s", o ? "" : vb_error_message());
    cJSON_Delete(o);
    return item_error(it, "line %ld: not a JSON object%s%s%s", it->line, *why ? " (" : "", why,
                      *why ? ")" : "");
  }
  const cJSON *video = cJSON_GetObjectItemCaseSensitive(o, "video");
  const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(o, "prompt");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
  const cJSON *start = cJSON_GetObjectItemCaseSensitive(o, "start");
  const cJSON *end = cJSON_GetObjectItemCaseSensitive(o, "end");
  int rc = 1;
  /* the id first, so that even a failed line's result carries it */
  if (id && (cJSON_IsString(id) || cJSON_IsNumber(id))) it->id = cJSON_Duplicate(id, 1);
  size_t bad;
  if (id && !it->id)
    rc = item_error(it, "line %ld: \"id\" must be a string or a number", it->line);
  else if (!cJSON_IsString(video) || !*video->valuestring)
    rc = item_error(it, "line %ld: \"video\" must be a non-empty string", it->line);
  else if (prompt && !cJSON_IsString(prompt))
    rc = item_error(it, "line %ld: \"prompt\" must be a string", it->line);
  else if (prompt && !vb_utf8_valid(prompt->valuestring, strlen(prompt->valuestring), &bad))
    rc = item_error(it, "line %ld: \"prompt\" is not valid UTF-8 (byte %zu)", it->line, bad);
  else if (start &&
           (!cJSON_IsNumber(start) || !(start->valuedouble >= 0) || !isfinite(start->valuedouble)))
    rc = item_error(it, "line %ld: \"start\" must be a number of seconds >= 0", it->line);
  else if (end && (!cJSON_IsNumber(end) || !(end->valuedouble >= 0) || !isfinite(end->valuedouble)))
    rc = item_error(it, "line %ld: \"end\" must be a number of seconds >= 0", it->line);
  else if (start && end && end->valuedouble <= start->valuedouble)
    rc = item_error(it, "line %ld: \"end\" (%g) must be after \"start\" (%g)", it->line,
                    end->valuedouble, start->valuedouble);
  else {
    it->video = vb_strdup(video->valuestring);
    it->prompt = prompt ? vb_strdup(prompt->valuestring) : NULL;
    it->start = start ? start->valuedouble : -1;
    it->end = end ? end->valuedouble : -1;
    if (!it->video || (prompt && !it->prompt)) rc = -1;
  }
  cJSON_Delete(o);
  return rc;
}

int vb_input_list_next(vb_input_list *l, vb_input_item *it) {
  memset(it, 0, sizeof *it);
  it->start = it->end = -1;
  for (;;) {
    size_t len;
    bool too_long;
    int rc = read_line(l, &len, &too_long);
    if (rc <= 0) return rc;
    long index = l->line++;
    if (!vb_shard_takes(&l->shard, index)) continue;
    it->line = index + 1;
    if (too_long)
      return item_error(it, "line %ld: longer than %u bytes", it->line, VB_INPUT_MAX_LINE);
    char *s = l->buf;
    while (len > 0 && (s[len - 1] == '\r'))
      s[--len] = 0;
    size_t lead = 0;
    while (lead < len && isspace((unsigned char)s[lead]))
      lead++;
    if (lead == len) continue; /* blank */
    if (memchr(s, 0, len)) return item_error(it, "line %ld: holds a NUL byte", it->line);
    if (s[lead] == '{') return parse_object(it, s + lead, len - lead);
    it->video = vb_strdup(s);
    return it->video ? 1 : -1;
  }
}
