/* The store of uploaded videos: files under the server's private directory, listed by a
 * random id, least recently used ones dropped over the limit; a data: URL stored (and
 * deduplicated by content) like an upload. Reference counted; s->mu guards the list. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "runtime/escape.h"
#include "server/server_internal.h"

void vs_entry_destroy(entry *e) {
  if (e->path[0]) unlink(e->path);
  vblip_video_free(&e->video);
  for (int i = 0; i < e->n_frames; i++)
    free(e->thumbs ? e->thumbs[i] : NULL);
  free(e->thumbs);
  free(e->thumb_len);
  free(e->frame_index);
  free(e->frame_time);
  free(e->error);
  free(e);
}

/* locked */
void vs_entry_unlist(vblip_server *s, entry *e) {
  if (e->removed) return;
  e->removed = 1;
  for (entry **p = &s->videos; *p; p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      s->n_videos--;
      break;
    }
}

/* locked */
void vs_entry_release(vblip_server *s, entry *e) {
  (void)s;
  if (!e) return;
  if (--e->refs == 0 && e->removed) vs_entry_destroy(e);
}

static const char *ext_for(const char *mime, const char *name) {
  static const char *const known[] = {"mp4",  "webm", "avi",  "mkv", "mov", "m4v",
                                      "ogv",  "mpg",  "mpeg", "gif", "png", "jpg",
                                      "jpeg", "bmp",  "webp", "ts",  "flv", "3gp"};
  const char *dot = name ? strrchr(name, '.') : NULL;
  if (dot)
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
      if (strcasecmp(dot + 1, known[i]) == 0) return known[i];
  if (mime) {
    const char *slash = strchr(mime, '/');
    if (slash)
      for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        size_t n = strlen(known[i]);
        if (strncasecmp(slash + 1, known[i], n) == 0 && !isalnum((unsigned char)slash[1 + n]))
          return known[i];
      }
    if (strncasecmp(mime, "video/quicktime", 15) == 0) return "mov";
    if (strncasecmp(mime, "video/x-msvideo", 15) == 0) return "avi";
    if (strncasecmp(mime, "video/x-matroska", 16) == 0) return "mkv";
  }
  return "bin";
}

/* names from the client are shown (and logged): control characters escaped */
static void copy_display(char *dst, size_t cap, const char *src) {
  vb_escape_controls(src, dst, cap);
}

/* A new, unlisted entry with its file created (O_EXCL, 0600) under the private
 * directory; the name is generated. Returns the entry (refs 1) and the open fd. */
entry *vs_entry_create(vblip_server *s, const char *mime, const char *name, int *fd) {
  entry *e = calloc(1, sizeof *e);
  if (!e) return NULL;
  if (vs_random_hex(e->id, ID_BYTES) != 0) {
    free(e);
    return NULL;
  }
  snprintf(e->path, sizeof e->path, "%s/%s.%s", s->dir, e->id, ext_for(mime, name));
  copy_display(e->name, sizeof e->name, name);
  copy_display(e->mime, sizeof e->mime, mime);
  e->hash = VS_HASH_INIT;
  e->refs = 1;
  e->removed = 1; /* not in the list until entry_list */
  *fd = open(e->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (*fd < 0) {
    e->path[0] = 0;
    free(e);
    return NULL;
  }
  return e;
}

/* locked: makes e findable; drops the least recently used unreferenced videos over the limit */
void vs_entry_list(vblip_server *s, entry *e) {
  e->removed = 0;
  e->listed = 1;
  e->last_used = ++s->clock;
  e->next = s->videos;
  s->videos = e;
  s->n_videos++;
  while (s->n_videos > s->o.max_videos) {
    entry *old = NULL;
    for (entry *p = s->videos; p; p = p->next)
      if (p->refs == 0 && (!old || p->last_used < old->last_used)) old = p;
    if (!old) break;
    vs_entry_unlist(s, old);
    vs_entry_destroy(old);
  }
}

/* locked: a listed video by id (refs + 1), or NULL */
entry *vs_entry_get(vblip_server *s, const char *id) {
  for (entry *p = s->videos; p; p = p->next)
    if (strcmp(p->id, id) == 0) {
      p->refs++;
      p->last_used = ++s->clock;
      return p;
    }
  return NULL;
}

int vs_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

cJSON *vs_video_json(vblip_server *s, entry *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", e->id);
  cJSON_AddStringToObject(o, "name", e->name);
  cJSON_AddNumberToObject(o, "bytes", (double)e->bytes);
  cJSON_AddStringToObject(o, "state",
                          e->state == V_READY    ? "ready"
                          : e->state == V_FAILED ? "failed"
                                                 : "new");
  cJSON *fr = cJSON_AddArrayToObject(o, "frames");
  for (int i = 0; i < e->n_frames; i++) {
    cJSON *f = cJSON_CreateObject();
    char url[128];
    snprintf(url, sizeof url, "/api/videos/%s/frames/%d", e->id, i);
    cJSON_AddNumberToObject(f, "index", (double)e->frame_index[i]);
    cJSON_AddNumberToObject(f, "time", e->frame_time[i]);
    if (e->thumbs && e->thumbs[i]) cJSON_AddStringToObject(f, "thumbnail", url);
    cJSON_AddItemToArray(fr, f);
  }
  (void)s;
  return o;
}

int vs_valid_id(const char *id) {
  if (!id || strlen(id) != 2 * ID_BYTES) return 0;
  for (const char *p = id; *p; p++)
    if (!isxdigit((unsigned char)*p) || isupper((unsigned char)*p)) return 0;
  return 1;
}

/* A video reference from an OpenAI part: a data: URL (stored, deduplicated by
 * content) or an uploaded id (bare, "vblip:ID" or ".../api/videos/ID"). Returns the
 * entry (refs + 1) or NULL with an HTTP status and msg. */
entry *vs_resolve_video_url(vblip_server *s, const char *url, int *status, char *msg, size_t cap) {
  if (strncmp(url, "data:", 5) == 0) {
    const char *comma = strchr(url, ',');
    if (!comma) {
      *status = 400;
      snprintf(msg, cap, "malformed data: URL");
      return NULL;
    }
    char mime[64] = "";
    size_t ml = strcspn(url + 5, ";,");
    if (ml < sizeof mime) memcpy(mime, url + 5, ml), mime[ml] = 0;
    if (!memmem(url, (size_t)(comma - url), ";base64", 7)) {
      *status = 400;
      snprintf(msg, cap, "data: URLs must be base64-encoded");
      return NULL;
    }
    size_t n = strlen(comma + 1);
    if (n / 4 * 3 > s->o.max_upload_bytes + 3) {
      *status = 413;
      snprintf(msg, cap, "the video is larger than the limit of %g MiB", max_upload_mib(s));
      return NULL;
    }
    unsigned char *bytes = malloc(n / 4 * 3 + 4);
    if (!bytes) {
      *status = 500;
      snprintf(msg, cap, "out of memory");
      return NULL;
    }
    long len = vs_base64_decode(comma + 1, n, bytes);
    if (len <= 0) {
      free(bytes);
      *status = 400;
      snprintf(msg, cap, len == 0 ? "the data: URL is empty" : "the data: URL is not valid base64");
      return NULL;
    }
    if ((size_t)len > s->o.max_upload_bytes) {
      free(bytes);
      *status = 413;
      snprintf(msg, cap, "the video is larger than the limit of %g MiB", max_upload_mib(s));
      return NULL;
    }
    uint64_t h = vs_hash(bytes, (size_t)len, VS_HASH_INIT);
    pthread_mutex_lock(&s->mu);
    for (entry *p = s->videos; p; p = p->next)
      if (p->hash == h && p->bytes == (size_t)len && p->state != V_FAILED) {
        p->refs++;
        p->last_used = ++s->clock;
        pthread_mutex_unlock(&s->mu);
        free(bytes);
        return p;
      }
    pthread_mutex_unlock(&s->mu);
    int fd;
    entry *e = vs_entry_create(s, mime, NULL, &fd);
    if (!e || vs_write_all(fd, bytes, (size_t)len) != 0) {
      if (e) {
        close(fd);
        vs_entry_destroy(e);
      }
      free(bytes);
      *status = 500;
      snprintf(msg, cap, "cannot store the video: %s", strerror(errno));
      return NULL;
    }
    close(fd);
    free(bytes);
    snprintf(e->name, sizeof e->name, "data-url.%s", ext_for(mime, NULL));
    e->bytes = (size_t)len;
    e->hash = h;
    pthread_mutex_lock(&s->mu);
    vs_entry_list(s, e);
    pthread_mutex_unlock(&s->mu);
    return e;
  }
  const char *id = url;
  if (strncmp(id, "vblip:", 6) == 0) id += 6;
  const char *slash = strstr(id, "/api/videos/");
  if (slash) id = slash + strlen("/api/videos/");
  if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
    if (!slash || !vs_valid_id(id)) {
      *status = 400;
      snprintf(msg, cap,
               "remote URLs are not fetched: send a data: URL or the id of an uploaded video");
      return NULL;
    }
  }
  if (!vs_valid_id(id)) {
    *status = 400;
    snprintf(msg, cap, "'%.80s' is neither a data: URL nor a video id", url);
    return NULL;
  }
  pthread_mutex_lock(&s->mu);
  entry *e = vs_entry_get(s, id);
  pthread_mutex_unlock(&s->mu);
  if (!e) {
    *status = 404;
    snprintf(msg, cap, "no video with id %s (it may have expired: upload it again)", id);
  }
  return e;
}
