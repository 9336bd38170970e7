/* The web page's files, embedded at build time (CMake turns the files under src/server/web into a
 * generated C source in the build directory; see the top-level CMakeLists.txt). */
#ifndef VBLIP_SERVER_WEB_ASSETS_H
#define VBLIP_SERVER_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
  const char *path; /* relative to src/server/web, e.g. "index.html" */
  const unsigned char *data;
  size_t len;
} vb_web_asset;

extern const vb_web_asset vb_web_assets[];
extern const int vb_web_n_assets;

#endif
