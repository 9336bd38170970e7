/* The source layout stays layered: the graph of #include "folder/file.h" between the
 * folders of src/ and tools/ has no cycle, src/ never includes a tool (tools/ folders
 * or their public headers), and the public headers include only each other. Run from
 * the repository root. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

enum { MAX_FOLDERS = 64 };

typedef struct {
  char name[MAX_FOLDERS][64];
  int tool[MAX_FOLDERS]; /* folder lives under tools/ */
  int n;
  /* edge[a][b]: a file of folder a includes "b/..."; why[a][b]: the first such file */
  int edge[MAX_FOLDERS][MAX_FOLDERS];
  char why[MAX_FOLDERS][MAX_FOLDERS][160];
} graph;

static int folder_index(const graph *g, const char *name, size_t len) {
  for (int i = 0; i < g->n; i++)
    if (strlen(g->name[i]) == len && strncmp(g->name[i], name, len) == 0) return i;
  return -1;
}

static void add_folders(graph *g, const char *root, int tool) {
  DIR *d = opendir(root);
  struct dirent *e;
  while (d && (e = readdir(d)) && g->n < MAX_FOLDERS) {
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", root, e->d_name);
    if (e->d_name[0] == '.' || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    snprintf(g->name[g->n], sizeof g->name[0], "%.63s", e->d_name);
    g->tool[g->n++] = tool;
  }
  if (d) closedir(d);
}

/* The quoted includes of one file, checked and added to the graph. */
static void scan_file(graph *g, const char *path, int from) {
  FILE *f = fopen(path, "r");
  char line[1024];
  while (f && fgets(line, sizeof line, f)) {
    const char *s = line;
    while (*s == ' ' || *s == '\t')
      s++;
    if (strncmp(s, "#include \"", 10) != 0) continue;
    const char *inc = s + 10, *end = strchr(inc, '"');
    if (!end) continue;
    size_t len = (size_t)(end - inc);
    const char *slash = memchr(inc, '/', len);
    if (from >= 0 && !g->tool[from] && strncmp(inc, "vblip_", 6) == 0)
      CHECK(0, "%s includes the tool header %.*s", path, (int)len, inc);
    if (!slash) continue;
    int to = folder_index(g, inc, (size_t)(slash - inc));
    if (to < 0 || to == from) continue;
    if (from < 0) {
      CHECK(0, "the public header %s includes %.*s from the sources", path, (int)len, inc);
      continue;
    }
    CHECK(g->tool[from] || !g->tool[to], "%s (src/) includes %.*s from tools/", path, (int)len,
          inc);
    if (!g->edge[from][to]) snprintf(g->why[from][to], sizeof g->why[0][0], "%.159s", path);
    g->edge[from][to] = 1;
  }
  if (f) fclose(f);
}

static void scan_tree(graph *g, const char *dir, int folder) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (e->d_name[0] == '.' || stat(p, &st) != 0) continue;
    size_t n = strlen(e->d_name);
    if (S_ISDIR(st.st_mode))
      scan_tree(g, p, folder);
    else if (n > 2 &&
             (strcmp(e->d_name + n - 2, ".c") == 0 || strcmp(e->d_name + n - 2, ".h") == 0))
      scan_file(g, p, folder);
  }
  if (d) closedir(d);
}

/* Depth-first search; on a cycle, writes it ("a -> b -> a") into out and returns 1. */
static int find_cycle_from(const graph *g, int v, int *state, int *stack, int depth, char *out,
                           size_t size) {
  state[v] = 1;
  stack[depth] = v;
  for (int w = 0; w < g->n; w++) {
    if (!g->edge[v][w]) continue;
    if (state[w] == 1) {
      size_t used = 0;
      int k = depth;
      while (stack[k] != w)
        k--;
      for (; k <= depth; k++)
        used += (size_t)snprintf(out + used, size - used, "%s (%s) -> ", g->name[stack[k]],
                                 g->why[stack[k]][k < depth ? stack[k + 1] : w]);
      snprintf(out + used, size - used, "%s", g->name[w]);
      return 1;
    }
    if (state[w] == 0 && find_cycle_from(g, w, state, stack, depth + 1, out, size)) return 1;
  }
  state[v] = 2;
  return 0;
}

static int find_cycle(const graph *g, char *out, size_t size) {
  int state[MAX_FOLDERS] = {0}, stack[MAX_FOLDERS + 1];
  for (int v = 0; v < g->n; v++)
    if (state[v] == 0 && find_cycle_from(g, v, state, stack, 0, out, size)) return 1;
  return 0;
}

/* The detector itself finds a planted cycle (so a pass below means something). */
static void detector_finds_cycles(void) {
  graph *g = calloc(1, sizeof *g);
  if (!g) return;
  g->n = 3;
  strcpy(g->name[0], "a"), strcpy(g->name[1], "b"), strcpy(g->name[2], "c");
  g->edge[0][1] = g->edge[1][2] = 1;
  char msg[1024];
  CHECK(!find_cycle(g, msg, sizeof msg), "a -> b -> c has no cycle, found %s", msg);
  g->edge[2][0] = 1;
  CHECK(find_cycle(g, msg, sizeof msg) && strstr(msg, "a (") && strstr(msg, "c ("),
        "planted cycle: %s", find_cycle(g, msg, sizeof msg) ? msg : "none found");
  free(g);
}

int main(void) {
  detector_finds_cycles();
  graph *g = calloc(1, sizeof *g);
  if (!CHECK(g != NULL, "out of memory")) return tu_finish();
  add_folders(g, "src", 0);
  add_folders(g, "tools", 1);
  CHECK(folder_index(g, "runtime", 7) >= 0 && folder_index(g, "cli", 3) >= 0,
        "run from the repository root");
  for (int i = 0; i < g->n; i++) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/%s", g->tool[i] ? "tools" : "src", g->name[i]);
    scan_tree(g, dir, i);
  }
  scan_tree(g, "include", -1);
  char msg[4096];
  CHECK(!find_cycle(g, msg, sizeof msg), "folder include cycle: %s", msg);
  printf("folders: %d; include edges:", g->n);
  for (int a = 0; a < g->n; a++)
    for (int b = 0; b < g->n; b++)
      if (g->edge[a][b]) printf(" %s->%s", g->name[a], g->name[b]);
  printf("\n");
  free(g);
  return tu_finish();
}
