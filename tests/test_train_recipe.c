/* VideoBLIP's training recipe around the gradients (tests/fixtures/training): narration
 * clean-up, Python's random as the split uses it, clip windows, the fho_main.json split
 * on a hand-made annotation file, relative video paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/common.h"
#include "testutil.h"
#include "train/dataset.h"
#include "train/py_random.h"
#include "vblip_train.h"

static cJSON *training_fixture(void) {
  static cJSON *root;
  if (!root) {
    char *text = NULL;
    if (!CHECK_OK(vb_read_file(tu_fixture("training/expected.json"), 16u << 20, &text, NULL)))
      exit(1);
    root = cJSON_Parse(text);
    free(text);
    if (!CHECK(root != NULL, "training/expected.json parses")) exit(1);
  }
  return root;
}

static void narration_cleaning(void) {
  const cJSON *ex = tu_json_path(training_fixture(), "recipe.data.narration_cleaning_examples"), *c;
  int n = 0;
  cJSON_ArrayForEach(c, ex) {
    char *got = vblip_clean_narration(c->string);
    CHECK(got && !strcmp(got, c->valuestring), "clean(\"%s\") = \"%s\", want \"%s\"", c->string,
          got ? got : "(null)", c->valuestring);
    free(got);
    n++;
  }
  CHECK(n >= 4, "the fixture lists cleaning examples (%d)", n);
  /* EILEV's variant, kept behind --eilev-cleaning */
  const char *eilev[][2] = {
      {"#C C picks up a knife from the table",
       "The camera wearer picks up a knife from the table."},
      {"  #c   c opens the door.  ", "The camera wearer opens the door."},
      {"#C C looks around #unsure", "The camera wearer looks around."},
      {"#C C holds #unsure in his hand", "The camera wearer holds something in his hand."},
      {"#O man X walks <|eos|>", "#O man X walks."},
      {"#C C stops?", "The camera wearer stops?"},
      {"   ", ""},
  };
  for (size_t i = 0; i < sizeof eilev / sizeof eilev[0]; i++) {
    char *got = vblip_clean_narration_eilev(eilev[i][0]);
    CHECK(got && strcmp(got, eilev[i][1]) == 0, "eilev(\"%s\") = \"%s\", want \"%s\"", eilev[i][0],
          got ? got : "(null)", eilev[i][1]);
    free(got);
  }
  CHECK(vblip_narration_is_camera_wearer("#c C sits"), "#c C matches ^#C C ignoring case");
  CHECK(!vblip_narration_is_camera_wearer("#C  C sits"), "two spaces do not match ^#C C");
  CHECK(!vblip_narration_is_camera_wearer(" #C C sits"), "a leading space does not match");
}

/* Values printed by CPython 3.11: random.seed(42); [random.getrandbits(32) for _ in
 * range(3)] and random.seed(42); random.sample(range(10), k=10). */
static void python_random(void) {
  py_random r;
  py_random_seed(&r, 42);
  const uint32_t bits[] = {2746317213u, 478163327u, 107420369u};
  for (int i = 0; i < 3; i++) {
    uint32_t got = py_random_bits(&r, 32);
    CHECK(got == bits[i], "getrandbits(32) #%d = %u, want %u", i, got, bits[i]);
  }
  const int want[] = {1, 0, 4, 9, 6, 5, 8, 2, 3, 7};
  int order[10];
  py_random_seed(&r, 42);
  py_random_sample_all(&r, 10, order);
  for (int i = 0; i < 10; i++)
    CHECK(order[i] == want[i], "sample[%d] = %d, want %d", i, order[i], want[i]);
}

static void clip_windows(void) {
  const cJSON *ex = tu_json_path(training_fixture(), "recipe.frames"), *c;
  ex = cJSON_GetObjectItemCaseSensitive(ex, "clip_window_examples");
  int n = 0;
  cJSON_ArrayForEach(c, ex) {
    double t = cJSON_GetObjectItemCaseSensitive(c, "timestamp")->valuedouble;
    double d = cJSON_GetObjectItemCaseSensitive(c, "duration")->valuedouble;
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(c, "start_end");
    double s, e;
    vb_ego4d_clip_window(t, d, 8, &s, &e);
    CHECK(fabs(s - cJSON_GetArrayItem(se, 0)->valuedouble) < 1e-9 &&
              fabs(e - cJSON_GetArrayItem(se, 1)->valuedouble) < 1e-9,
          "window(t %g, duration %g) = [%g, %g)", t, d, s, e);
    n++;
  }
  CHECK(n == 4, "four window examples (%d)", n);
}

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fputs(text, f);
  return fclose(f);
}

static void relative_paths(void) {
  char a[600], b[600];
  snprintf(a, sizeof a, "%s/rel/x/y", tu_tmpdir());
  snprintf(b, sizeof b, "%s/rel/v", tu_tmpdir());
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "mkdir -p %s %s", a, b);
  CHECK(system(cmd) == 0, "mkdir");
  const char *cases[][3] = {{a, b, "../../v"}, {b, a, "../x/y"}, {a, a, "."}, {b, "/", NULL}};
  for (int i = 0; i < 4; i++) {
    char *got = vb_relative_path(cases[i][0], cases[i][1]);
    if (cases[i][2])
      CHECK(got && !strcmp(got, cases[i][2]), "relative(%s, %s) = %s, want %s", cases[i][0],
            cases[i][1], got ? got : "(null)", cases[i][2]);
    else /* up to the root: as many ../ as b has components */
      CHECK(got && !strncmp(got, "../", 3) && got[strlen(got) - 1] == '.', "relative to / = %s",
            got ? got : "(null)");
    free(got);
  }
  char *missing = vb_relative_path(a, "/nonexistent/dir");
  CHECK(missing == NULL, "a missing target is an error");
  free(missing);
}

/* One action of a hand-made fho_main.json. */
static void action(char *buf, size_t cap, const char *text, double t, int rejected, int valid) {
  size_t n = strlen(buf);
  snprintf(buf + n, cap - n,
           "%s{\"narration_text\": \"%s\", \"narration_timestamp_sec\": %g, \"is_rejected\": %s, "
           "\"is_valid_action\": %s}",
           buf[n - 1] == '[' ? "" : ",", text, t, rejected ? "true" : "false",
           valid ? "true" : "false");
}

/* The original's rules worked out by hand on six videos:
 *   v1 on disk: 2 kept actions (one is rejected; one starts with a space: the original
 *      matches ^#C C on the raw text, so it is dropped too)
 *   v2 on disk: 2 kept (one invalid, one "#O ..." dropped)
 *   v3 not on disk (dropped before anything else)
 *   v4 on disk: no "#C C" action, so the video is dropped
 *   v5 on disk, 6 s long: 1 kept ("#c c", any case), at 5 s: window moved back to [-2, 6)
 *   v6 on disk: 2 kept, in two annotated intervals
 * Kept videos in file order: v1 v2 v5 v6, 7 actions, goal round(7 * 0.75) = 5 in train.
 * random.seed(42); random.sample(range(4), k=4) is [0, 3, 1, 2] (CPython 3.11), so the
 * videos come as v1 (train, 2), v6 (train, 4), v2 (4 < 5 so it goes in: 6), v5 (6 >= 5:
 * validation). */
static void fho_split(void) {
  char dir[600], vids[700], out[700], fho[700], p[800];
  snprintf(dir, sizeof dir, "%s/fho", tu_tmpdir());
  snprintf(vids, sizeof vids, "%s/videos", dir);
  snprintf(out, sizeof out, "%s/data", dir);
  snprintf(fho, sizeof fho, "%s/fho_main.json", dir);
  char cmd[2000];
  snprintf(cmd, sizeof cmd, "mkdir -p %s && cd %s && touch v1.mp4 v2.mp4 v4.mp4 v5.mp4 v6.mp4",
           vids, vids);
  CHECK(system(cmd) == 0, "make the videos");
  static char j[8000];
  strcpy(j, "{\"videos\": [");
  const struct {
    const char *uid;
    double dur;
  } v[] = {{"v1", 100}, {"v2", 50}, {"v3", 30}, {"v4", 30}, {"v5", 6}, {"v6", 20}};
  for (int i = 0; i < 6; i++) {
    size_t n = strlen(j);
    snprintf(j + n, sizeof j - n,
             "%s{\"video_uid\": \"%s\", \"video_metadata\": {\"duration_sec\": %g}, "
             "\"annotated_intervals\": [{\"narrated_actions\": [",
             i ? "," : "", v[i].uid, v[i].dur);
    switch (i) {
    case 0:
      action(j, sizeof j, "#C C picks a cup", 2.5, 0, 1);
      action(j, sizeof j, "#C C drops the cup", 50.25, 1, 1);
      action(j, sizeof j, "  #C C washes the cup ", 50.5, 0, 1);
      action(j, sizeof j, "#C C dries the cup", 98, 0, 1);
      break;
    case 1:
      action(j, sizeof j, "#C C opens a door", 10, 0, 1);
      action(j, sizeof j, "#C C closes a door", 20, 0, 0);
      action(j, sizeof j, "#O man X walks", 25, 0, 1);
      action(j, sizeof j, "#C C sits", 30, 0, 1);
      break;
    case 2:
      action(j, sizeof j, "#C C runs", 5, 0, 1);
      break;
    case 3:
      action(j, sizeof j, "#O woman Y reads", 5, 0, 1);
      break;
    case 4:
      action(j, sizeof j, "#c c waves", 5, 0, 1);
      break;
    case 5:
      action(j, sizeof j, "#C C cuts bread", 6, 0, 1);
      strcat(j, "]}, {\"narrated_actions\": [");
      action(j, sizeof j, "#C C eats", 12, 0, 1);
      break;
    }
    strcat(j, "]}]}");
  }
  strcat(j, "]}");
  CHECK(write_text(fho, j) == 0, "write %s", fho);
  vb_ego4d_split_options o = {.fho_main = fho,
                              .out_dir = out,
                              .video_dir = vids,
                              .val_fraction = 0.25,
                              .seed = 42,
                              .clip_seconds = 8};
  vb_ego4d_split_stats st;
  if (!CHECK_OK(vb_ego4d_fho_split(&o, &st))) return;
  CHECK(st.videos == 6 && st.missing_videos == 1 && st.skipped_videos == 1,
        "videos %d missing %d skipped %d", st.videos, st.missing_videos, st.skipped_videos);
  CHECK(st.train_videos == 3 && st.train_clips == 6 && st.val_videos == 1 && st.val_clips == 1,
        "train %d/%d val %d/%d", st.train_videos, st.train_clips, st.val_videos, st.val_clips);
  char *train = NULL, *val = NULL;
  snprintf(p, sizeof p, "%s/train.jsonl", out);
  CHECK_OK(vb_read_file(p, 1 << 20, &train, NULL));
  snprintf(p, sizeof p, "%s/val.jsonl", out);
  CHECK_OK(vb_read_file(p, 1 << 20, &val, NULL));
  if (!train || !val) return;
  const char *want_train =
      "{\"video\":\"../videos/v1.mp4\",\"start\":0,\"end\":8,\"text\":\"The camera wearer picks a "
      "cup\",\"video_uid\":\"v1\",\"clip_index\":0,\"narration_timestamp_sec\":2.5}\n"
      "{\"video\":\"../videos/v1.mp4\",\"start\":92,\"end\":100,\"text\":\"The camera wearer dries "
      "the cup\",\"video_uid\":\"v1\",\"clip_index\":1,\"narration_timestamp_sec\":98}\n"
      "{\"video\":\"../videos/v6.mp4\",\"start\":2,\"end\":10,\"text\":\"The camera wearer cuts "
      "bread\",\"video_uid\":\"v6\",\"clip_index\":0,\"narration_timestamp_sec\":6}\n"
      "{\"video\":\"../videos/v6.mp4\",\"start\":8,\"end\":16,\"text\":\"The camera wearer "
      "eats\",\"video_uid\":\"v6\",\"clip_index\":1,\"narration_timestamp_sec\":12}\n"
      "{\"video\":\"../videos/v2.mp4\",\"start\":6,\"end\":14,\"text\":\"The camera wearer opens a "
      "door\",\"video_uid\":\"v2\",\"clip_index\":0,\"narration_timestamp_sec\":10}\n"
      "{\"video\":\"../videos/v2.mp4\",\"start\":26,\"end\":34,\"text\":\"The camera wearer "
      "sits\",\"video_uid\":\"v2\",\"clip_index\":1,\"narration_timestamp_sec\":30}\n";
  const char *want_val =
      "{\"video\":\"../videos/v5.mp4\",\"start\":-2,\"end\":6,\"text\":\"The camera wearer "
      "waves\",\"video_uid\":\"v5\",\"clip_index\":0,\"narration_timestamp_sec\":5}\n";
  CHECK(!strcmp(train, want_train), "train.jsonl:\n%s\nwant:\n%s", train, want_train);
  CHECK(!strcmp(val, want_val), "val.jsonl:\n%s\nwant:\n%s", val, want_val);
  free(train);
  free(val);
  /* the lists load, and their relative paths reach the videos */
  vb_dataset d;
  snprintf(p, sizeof p, "%s/val.jsonl", out);
  if (CHECK_OK(vb_dataset_load(p, NULL, &d))) {
    struct stat sb;
    CHECK(d.n == 1 && stat(d.items[0].video, &sb) == 0, "val clip's video %s exists",
          d.n ? d.items[0].video : "?");
    vb_dataset_free(&d);
  }
  /* bad input: a clear error, no output */
  CHECK(write_text(fho, "{\"videos\": [{\"video_uid\": \"v1\"}]}") == 0, "write");
  CHECK(vb_ego4d_fho_split(&o, &st) != 0 && strstr(vblip_last_error(), "duration_sec"),
        "a video without metadata is named: %s", vblip_last_error());
  CHECK(write_text(fho, "[1, 2]") == 0, "write");
  CHECK(vb_ego4d_fho_split(&o, &st) != 0, "not fho_main.json");
}

int main(void) {
  narration_cleaning();
  python_random();
  clip_windows();
  relative_paths();
  fho_split();
  return tu_finish();
}
