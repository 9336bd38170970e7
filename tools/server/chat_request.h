/* A chat request's conversation, as the server's chat endpoints take it: OpenAI's
 * "messages" (string or parts content: text, video_url, image_url, vblip's video), the
 * videos named in front of them ("video_id", "video_ids") and /api/score's candidates.
 * Only parsing and checking: no video is opened and no server state is touched, so a
 * fuzzer can drive it (fuzz/fuzz_chat_request.c). */
#ifndef VBLIP_SERVER_CHAT_REQUEST_H
#define VBLIP_SERVER_CHAT_REQUEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define VS_MAX_CHAT_VIDEOS 32 /* per conversation; each takes the queries + 1 positions */
#define VS_MAX_CANDIDATES 256
#define VS_MAX_CANDIDATE_BYTES 1024

/* One part of the conversation in order (interleaved layout): a text, or a video reference. */
typedef struct {
  const char *text, *video;
} vs_conv_part;

typedef struct {
  const char **users, **answers;
  char **owned; /* strings joined from content parts */
  size_t n, n_owned;
  const char *message;
  vs_conv_part *parts; /* every message's text and the user messages' videos, in order */
  size_t n_parts, cap_parts;
  const char *last_video; /* the last video of the user messages */
} vs_turns;

/* messages -> the earlier turns and the new message (the last, a user message's text).
 * Strings point into msgs (or t->owned): msgs must outlive t. 0, or -1 with msg; free t
 * with vs_turns_free either way. */
int vs_parse_messages(const cJSON *msgs, vs_turns *t, char *msg, size_t cap);
void vs_turns_free(vs_turns *t);

/* The request's "video_id" (a string) and "video_ids" (an array of strings): videos that come
 * before the messages; lead holds VS_MAX_CHAT_VIDEOS. 0, or -1 with msg. */
int vs_lead_videos(const cJSON *root, const char **lead, int *n, char *msg, size_t cap);

/* /api/score's "candidates": 1 to VS_MAX_CANDIDATES non-blank strings of at most
 * VS_MAX_CANDIDATE_BYTES, copied into *cands (*n_cands of them, also on failure: the caller
 * frees them). 0, or -1 with msg. */
int vs_parse_candidates(const cJSON *a, char ***cands, int *n_cands, char *msg, size_t cap);

#endif
