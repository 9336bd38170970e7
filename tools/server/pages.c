/* The web page's files (embedded at build time), /api/examples and /examples/NAME (the
 * videos of --examples DIR). */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/common.h"
#include "server/server_internal.h"

#define EXAMPLE_PROMPT_1 "What is the camera wearer doing?"
#define EXAMPLE_PROMPT_2 "Question: What is the camera wearer doing? Answer:"
#include "server/web_assets.h"

static const char *mime_of(const char *name) {
  const char *dot = strrchr(name, '.');
  static const char *const map[][2] = {{"html", "text/html; charset=utf-8"},
                                       {"css", "text/css; charset=utf-8"},
                                       {"js", "text/javascript; charset=utf-8"},
                                       {"svg", "image/svg+xml"},
                                       {"png", "image/png"},
                                       {"ico", "image/x-icon"},
                                       {"mp4", "video/mp4"},
                                       {"m4v", "video/mp4"},
                                       {"webm", "video/webm"},
                                       {"avi", "video/x-msvideo"},
                                       {"mkv", "video/x-matroska"},
                                       {"mov", "video/quicktime"},
                                       {"ogv", "video/ogg"},
                                       {"gif", "image/gif"},
                                       {"jpg", "image/jpeg"},
                                       {"jpeg", "image/jpeg"},
                                       {"bmp", "image/bmp"},
                                       {"webp", "image/webp"}};
  if (dot)
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
      if (strcasecmp(dot + 1, map[i][0]) == 0) return map[i][1];
  return "application/octet-stream";
}

enum MHD_Result vs_serve_asset(struct MHD_Connection *c, const char *rel) {
  for (int i = 0; i < vb_web_n_assets; i++)
    if (strcmp(vb_web_assets[i].path, rel) == 0)
      return vs_send_bytes(c, 200, mime_of(rel), vb_web_assets[i].data, vb_web_assets[i].len,
                           "no-cache");
  return vs_send_error(c, "/", 404, "not found");
}

static int is_media_name(const char *n) {
  const char *dot = strrchr(n, '.');
  if (!dot || n[0] == '.') return 0;
  for (const char *p = n; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return 0;
  static const char *const ok[] = {"mp4", "webm", "avi", "mkv", "mov", "m4v",
                                   "ogv", "gif",  "png", "jpg", "jpeg"};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    if (strcasecmp(dot + 1, ok[i]) == 0) return 1;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int vs_scan_examples(vblip_server *s, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return vb_error("--examples %s: %s", dir, strerror(errno));
  snprintf(s->examples_dir, sizeof s->examples_dir, "%s", dir);
  struct dirent *de;
  while ((de = readdir(d)) && s->n_examples < MAX_EXAMPLES) {
    if (!is_media_name(de->d_name)) continue;
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    s->examples[s->n_examples++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(s->examples, (size_t)s->n_examples, sizeof *s->examples, cmp_str);
  return 0;
}

enum MHD_Result vs_serve_example(vblip_server *s, struct MHD_Connection *c, const char *url,
                                 const char *name) {
  for (int i = 0; i < s->n_examples; i++) {
    if (!s->examples[i] || strcmp(s->examples[i], name) != 0) continue;
    char path[PATH_MAX];
    int fd = -1;
    if (snprintf(path, sizeof path, "%s/%s", s->examples_dir, s->examples[i]) < (int)sizeof path)
      fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO put there must not block */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) close(fd);
      return vs_send_error(c, url, 404, "example %s is gone", name);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!resp) {
      close(fd);
      return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", mime_of(name));
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return vs_queue_response(c, 200, resp, (uint64_t)st.st_size);
  }
  return vs_send_error(c, url, 404, "no example named %s", name);
}

enum MHD_Result vs_handle_examples(vblip_server *s, struct MHD_Connection *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON *a = cJSON_AddArrayToObject(o, "examples");
  static const char *const prompts[] = {EXAMPLE_PROMPT_1, EXAMPLE_PROMPT_2};
  for (int i = 0; i < s->n_examples; i++)
    for (int k = 0; k < 2; k++) {
      cJSON *x = cJSON_CreateObject();
      char url[PATH_MAX];
      snprintf(url, sizeof url, "/examples/%s", s->examples[i]);
      cJSON_AddStringToObject(x, "video", s->examples[i]);
      cJSON_AddStringToObject(x, "url", url);
      cJSON_AddStringToObject(x, "mime", mime_of(s->examples[i]));
      cJSON_AddStringToObject(x, "prompt", prompts[k]);
      cJSON_AddItemToArray(a, x);
    }
  return vs_send_json(c, 200, o);
}
