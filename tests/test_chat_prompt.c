/* vblip_chat_prompt: the VideoBLIP demo's conversation rule. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "vblip.h"

static void expect(const char *const *u, const char *const *a, size_t n, const char *msg, const char *want) {
  char *got = vblip_chat_prompt(u, a, n, msg);
  CHECK(got && strcmp(got, want) == 0, "got '%s', want '%s'", got ? got : "(null)", want);
  free(got);
}

int main(void) {
  expect(NULL, NULL, 0, "What is the camera wearer doing?", "What is the camera wearer doing?");
  expect(NULL, NULL, 0, "  padded \n", "padded");
  expect(NULL, NULL, 0, "", "");
  expect(NULL, NULL, 0, NULL, "");
  const char *u[] = {"What is he doing?", "Where?"}, *a[] = {"He is cooking.", "In a kitchen."};
  expect(u, a, 1, "Why?", "What is he doing? He is cooking. Why?");
  expect(u, a, 2, "Why?", "What is he doing? He is cooking. Where? In a kitchen. Why?");
  /* the whole is stripped, the inside is kept as is */
  const char *u2[] = {" a  "}, *a2[] = {"b "};
  expect(u2, a2, 1, " c ", "a   b   c");
  /* an empty new message leaves no trailing space */
  expect(u, a, 1, "", "What is he doing? He is cooking.");
  const char *u3[] = {NULL}, *a3[] = {NULL};
  expect(u3, a3, 1, "x", "x");
  return tu_finish();
}
