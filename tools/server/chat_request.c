/* Parsing a chat request's conversation (chat_request.h). */
#define _GNU_SOURCE
#include "server/chat_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_util.h"

static int conv_add(vs_turns *t, const char *text, const char *video) {
  if (t->n_parts == t->cap_parts) {
    size_t cap = t->cap_parts ? 2 * t->cap_parts : 16;
    vs_conv_part *p = realloc(t->parts, cap * sizeof *p);
    if (!p) return -1;
    t->parts = p;
    t->cap_parts = cap;
  }
  t->parts[t->n_parts++] = (vs_conv_part){text, video};
  if (video) t->last_video = video;
  return 0;
}

void vs_turns_free(vs_turns *t) {
  for (size_t i = 0; i < t->n_owned; i++)
    free(t->owned[i]);
  free(t->owned);
  free(t->users);
  free(t->answers);
  free(t->parts);
}

/* The text of a message's content: a string, or the text parts joined with spaces.
 * Each text and (user messages only: videos) each video part is also recorded in order
 * in t->parts. */
static int content_text(vs_turns *t, const cJSON *content, int user, const char **text, char *msg,
                        size_t cap) {
  if (cJSON_IsString(content)) {
    *text = content->valuestring;
    if (conv_add(t, content->valuestring, NULL) != 0) goto oom;
    return 0;
  }
  if (!cJSON_IsArray(content)) {
    snprintf(msg, cap, "a message's 'content' must be a string or an array of parts");
    return -1;
  }
  vs_buf b = {0};
  vs_buf_puts(&b, "");
  for (const cJSON *part = content->child; part; part = part->next) {
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "type"));
    if (!type) {
      vs_buf_free(&b);
      snprintf(msg, cap, "a content part needs a 'type'");
      return -1;
    }
    if (strcmp(type, "text") == 0) {
      const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "text"));
      if (!s) {
        vs_buf_free(&b);
        snprintf(msg, cap, "a text part needs 'text'");
        return -1;
      }
      if (b.len) vs_buf_puts(&b, " ");
      vs_buf_puts(&b, s);
      if (conv_add(t, s, NULL) != 0) goto oom_buf;
    } else if (strcmp(type, "video_url") == 0 || strcmp(type, "image_url") == 0 ||
               strcmp(type, "video") == 0) {
      int native = strcmp(type, "video") == 0;
      const cJSON *u = cJSON_GetObjectItemCaseSensitive(part, native ? "video" : type);
      const char *url = cJSON_IsString(u)
                            ? u->valuestring
                            : cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(u, "url"));
      if (!url && native)
        url = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(part, "video_id"));
      if (!url) {
        vs_buf_free(&b);
        snprintf(msg, cap,
                 native ? "a video part needs 'video_id'" : "a %s part needs {\"url\": ...}", type);
        return -1;
      }
      if (user && conv_add(t, NULL, url) != 0) goto oom_buf;
    } else {
      vs_buf_free(&b);
      snprintf(msg, cap, "unsupported content part type '%s' (text, video_url, image_url, video)",
               type);
      return -1;
    }
  }
  char **owned = realloc(t->owned, (t->n_owned + 1) * sizeof *owned);
  if (!owned) goto oom_buf;
  t->owned = owned;
  t->owned[t->n_owned++] = b.data;
  *text = b.data;
  return 0;
oom_buf:
  vs_buf_free(&b);
oom:
  snprintf(msg, cap, "out of memory");
  return -1;
}

/* messages → earlier turns and the new message (the last, a user message) */
int vs_parse_messages(const cJSON *msgs, vs_turns *t, char *msg, size_t cap) {
  memset(t, 0, sizeof *t);
  if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
    snprintf(msg, cap, "'messages' must be a non-empty array");
    return -1;
  }
  size_t n = (size_t)cJSON_GetArraySize(msgs);
  t->users = calloc(n, sizeof *t->users);
  t->answers = calloc(n, sizeof *t->answers);
  if (!t->users || !t->answers) {
    snprintf(msg, cap, "out of memory");
    return -1;
  }
  const char *pending = NULL;
  int have_pending = 0, last_user = 0;
  for (const cJSON *m = msgs->child; m; m = m->next) {
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsObject(m) || !role) {
      snprintf(msg, cap, "each message needs a 'role'");
      return -1;
    }
    if (!content || (cJSON_IsNull(content) && strcmp(role, "assistant") != 0)) {
      snprintf(msg, cap, "each message needs 'content'");
      return -1;
    }
    const char *text = "";
    int system = strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
    if (!cJSON_IsNull(content) && !system &&
        content_text(t, content, strcmp(role, "user") == 0, &text, msg, cap) != 0)
      return -1;
    if (strcmp(role, "user") == 0) {
      if (have_pending) { /* two user messages in a row: the first had no answer */
        t->users[t->n] = pending;
        t->answers[t->n++] = "";
      }
      pending = text;
      have_pending = 1;
      last_user = 1;
    } else if (strcmp(role, "assistant") == 0) {
      t->users[t->n] = have_pending ? pending : "";
      t->answers[t->n++] = text;
      have_pending = 0;
      last_user = 0;
    } else if (system) {
      /* the model has no system prompt: ignored */
    } else {
      snprintf(msg, cap, "unknown role '%s' (user, assistant or system)", role);
      return -1;
    }
  }
  if (!last_user) {
    snprintf(msg, cap, "the last message must be the user's");
    return -1;
  }
  t->message = pending;
  return 0;
}

/* The request's "video_id" (a string) and "video_ids" (an array of strings): videos that
 * come before the messages. */
int vs_lead_videos(const cJSON *root, const char **lead, int *n, char *msg, size_t cap) {
  *n = 0;
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(root, "video_id");
  const cJSON *many = cJSON_GetObjectItemCaseSensitive(root, "video_ids");
  if (one && !cJSON_IsNull(one)) {
    if (!cJSON_IsString(one)) {
      snprintf(msg, cap, "'video_id' must be a string");
      return -1;
    }
    lead[(*n)++] = one->valuestring;
  }
  if (many && !cJSON_IsNull(many)) {
    if (!cJSON_IsArray(many)) {
      snprintf(msg, cap, "'video_ids' must be an array of strings");
      return -1;
    }
    for (const cJSON *v = many->child; v; v = v->next) {
      if (!cJSON_IsString(v)) {
        snprintf(msg, cap, "'video_ids' must be an array of strings");
        return -1;
      }
      if (*n == VS_MAX_CHAT_VIDEOS) {
        snprintf(msg, cap, "more than %d videos in one conversation", VS_MAX_CHAT_VIDEOS);
        return -1;
      }
      lead[(*n)++] = v->valuestring;
    }
  }
  return 0;
}

/* POST /api/score's "candidates" (chat_request.h) */
int vs_parse_candidates(const cJSON *a, char ***cands, int *n_cands, char *msg, size_t cap) {
  int n = cJSON_GetArraySize(a);
  if (!cJSON_IsArray(a) || n < 1 || n > VS_MAX_CANDIDATES) {
    snprintf(msg, cap, "'candidates' must be an array of 1 to %d strings", VS_MAX_CANDIDATES);
    return -1;
  }
  if (!(*cands = calloc((size_t)n, sizeof **cands))) {
    snprintf(msg, cap, "out of memory");
    return -1;
  }
  for (const cJSON *v = a->child; v; v = v->next) {
    if (!cJSON_IsString(v) || strlen(v->valuestring) > VS_MAX_CANDIDATE_BYTES ||
        !v->valuestring[strspn(v->valuestring, " \t\r\n")]) {
      snprintf(msg, cap, "each candidate must be a non-blank string of at most %d bytes",
               VS_MAX_CANDIDATE_BYTES);
      return -1;
    }
    if (!((*cands)[(*n_cands)++] = strdup(v->valuestring))) {
      snprintf(msg, cap, "out of memory");
      return -1;
    }
  }
  return 0;
}
