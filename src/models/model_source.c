#include "models/model_source.h"

#include <string.h>
#include <sys/stat.h>

#include "runtime/common.h"
#include "vblip.h"

/* Set once at start-up by the Hub client (vblip_hub_install); the core itself
 * never touches the network. */
static vblip_repo_resolver g_resolver;

void vblip_set_repo_resolver(vblip_repo_resolver fn) { g_resolver = fn; }

static bool part_ok(const char *s, size_t n) {
  if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-') return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  const char *dots = strstr(s, "..");
  return dots == NULL || (size_t)(dots - s) >= n;
}

bool vb_repo_id_valid(const char *s) {
  const char *slash = s ? strchr(s, '/') : NULL;
  if (!slash || strchr(slash + 1, '/')) return false;
  return part_ok(s, (size_t)(slash - s)) && part_ok(slash + 1, strlen(slash + 1));
}

bool vb_is_repo_id(const char *s) {
  struct stat st;
  return vb_repo_id_valid(s) && stat(s, &st) != 0;
}

int vb_resolve_repo_id(const char *s, int progress, char **dir) {
  if (!g_resolver) {
    vb_error("%s is no local path, and this program has no Hugging Face Hub client to fetch it "
             "as a repo id",
             s);
    return -1;
  }
  return g_resolver(s, progress, dir);
}
