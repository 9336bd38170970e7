/* /api/videos: uploads (the raw body, or a multipart form's file field) written to the store
 * as they arrive within the size limit, then encoded; GET a video's description or a frame's
 * thumbnail; DELETE. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server_internal.h"

/* POST /api/videos, multipart: the first file field */
enum MHD_Result vs_post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                             const char *filename, const char *content_type,
                             const char *transfer_encoding, const char *data, uint64_t off,
                             size_t size) {
  (void)kind;
  (void)transfer_encoding;
  (void)off;
  req *r = cls;
  vblip_server *s = r->s;
  if (r->too_large || r->failed || !key) return MHD_YES;
  if (!filename && strcmp(key, "file") != 0 && strcmp(key, "video") != 0) return MHD_YES;
  if (!r->e) {
    r->e = vs_entry_create(s, content_type, filename, &r->fd);
    if (!r->e) {
      r->failed = 1;
      r->store_errno = errno;
      return MHD_YES;
    }
    snprintf(r->file_key, sizeof r->file_key, "%s", key);
  } else if (strcmp(key, r->file_key) != 0 || r->committed) {
    return MHD_YES;
  }
  if (r->bytes + size > s->o.max_upload_bytes) {
    r->too_large = 1;
    return MHD_YES;
  }
  if (size && vs_write_all(r->fd, data, size) != 0) r->failed = 1, r->store_errno = errno;
  r->e->hash = vs_hash(data, size, r->e->hash);
  r->bytes += size;
  return MHD_YES;
}

enum MHD_Result vs_upload_data(req *r, struct MHD_Connection *c, const char *data, size_t size) {
  vblip_server *s = r->s;
  if (r->too_large || r->failed || r->malformed) return MHD_YES;
  if (r->pp) {
    if (MHD_post_process(r->pp, data, size) != MHD_YES) r->malformed = 1;
    return MHD_YES;
  }
  if (!r->e) {
    r->e = vs_entry_create(s, vs_header(c, "Content-Type"), vs_header(c, "X-Filename"), &r->fd);
    if (!r->e) {
      r->failed = 1;
      r->store_errno = errno;
      return MHD_YES;
    }
  }
  if (r->bytes + size > s->o.max_upload_bytes) {
    r->too_large = 1;
    return MHD_YES;
  }
  if (vs_write_all(r->fd, data, size) != 0) r->failed = 1, r->store_errno = errno;
  r->e->hash = vs_hash(data, size, r->e->hash);
  r->bytes += size;
  return MHD_YES;
}

/* The 413 messages (kept in r: they outlive the call that answers) */
const char *vs_upload_too_large(vblip_server *s, req *r) {
  snprintf(r->limit_msg, sizeof r->limit_msg, "the upload is larger than the limit of %g MiB",
           max_upload_mib(s));
  return r->limit_msg;
}

const char *vs_json_too_large(vblip_server *s, req *r) {
  snprintf(r->limit_msg, sizeof r->limit_msg,
           "the request body is larger than the limit of %g KiB for JSON requests: upload videos "
           "with POST /api/videos and refer to them by id",
           (double)s->o.max_json_bytes / 1024.0);
  return r->limit_msg;
}

enum MHD_Result vs_finish_upload(vblip_server *s, req *r, struct MHD_Connection *c,
                                 const char *url) {
  if (r->too_large) return vs_send_error(c, url, 413, "%s", vs_upload_too_large(s, r));
  if (r->failed)
    return vs_send_error(c, url, 500, "cannot store the upload: %s", strerror(r->store_errno));
  if (r->malformed) return vs_send_error(c, url, 400, "malformed multipart upload");
  if (!r->e || r->bytes == 0)
    return vs_send_error(c, url, 400,
                         r->pp || !r->e
                             ? "no file in the upload (send the video as the request body "
                               "or as a multipart field 'file')"
                             : "the upload is empty");
  close(r->fd);
  r->fd = -1;
  entry *e = r->e;
  pthread_mutex_lock(&s->mu);
  e->bytes = r->bytes;
  vs_entry_list(s, e);
  r->committed = 1;
  pthread_mutex_unlock(&s->mu);
  char msg[1024];
  int status = vs_encode_entry(s, e, c, msg, sizeof msg);
  if (status) {
    pthread_mutex_lock(&s->mu);
    vs_entry_unlist(s, e);
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, (unsigned)status, "%s", msg);
  }
  pthread_mutex_lock(&s->mu);
  cJSON *o = vs_video_json(s, e);
  pthread_mutex_unlock(&s->mu);
  return vs_send_json(c, 201, o);
}

enum MHD_Result vs_handle_video_get(vblip_server *s, struct MHD_Connection *c, const char *url,
                                    const char *rest, const char *method) {
  char id[2 * ID_BYTES + 1];
  size_t n = strcspn(rest, "/");
  if (n != 2 * ID_BYTES) return vs_send_error(c, url, 404, "no such video");
  memcpy(id, rest, n);
  id[n] = 0;
  const char *tail = rest + n;
  pthread_mutex_lock(&s->mu);
  entry *e = vs_valid_id(id) ? vs_entry_get(s, id) : NULL;
  if (!e) {
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, 404, "no video with id %s", id);
  }
  enum MHD_Result r;
  if (!*tail && strcmp(method, "DELETE") == 0) {
    vs_entry_unlist(s, e);
    vs_entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "deleted", 1);
    cJSON_AddStringToObject(o, "id", id);
    return vs_send_json(c, 200, o);
  }
  if (strcmp(method, "GET") != 0) {
    vs_entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, 405, "method not allowed");
  }
  if (!*tail) {
    cJSON *o = vs_video_json(s, e);
    vs_entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    return vs_send_json(c, 200, o);
  }
  long k = -1;
  char *end = NULL;
  if (strncmp(tail, "/frames/", 8) == 0 && isdigit((unsigned char)tail[8]))
    k = strtol(tail + 8, &end, 10);
  if (k < 0 || !end || *end || k >= e->n_frames || !e->thumbs || !e->thumbs[k]) {
    vs_entry_release(s, e);
    pthread_mutex_unlock(&s->mu);
    return vs_send_error(c, url, 404, "no such frame");
  }
  /* immutable once ready, and kept alive by our reference */
  const unsigned char *img = e->thumbs[k];
  size_t len = e->thumb_len[k];
  pthread_mutex_unlock(&s->mu);
  r = vs_send_bytes(c, 200, "image/bmp", img, len, "private, max-age=3600");
  pthread_mutex_lock(&s->mu);
  vs_entry_release(s, e);
  pthread_mutex_unlock(&s->mu);
  return r;
}
