/* transformers' clean_up_tokenization, shared by the BPE and SentencePiece decoders. */
#include "text/cleanup.h"

#include <string.h>

static void replace_all(char *s, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to);
  char *r = s, *w = s;
  while (*r) {
    if (strncmp(r, from, fl) == 0) {
      memmove(w, to, tl);
      w += tl;
      r += fl;
    } else {
      *w++ = *r++;
    }
  }
  *w = 0;
}

void vb_clean_up_tokenization(char *s) {
  /* The order is transformers' (tokenization_utils_base.clean_up_tokenization). */
  static const char *const pairs[][2] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    replace_all(s, pairs[i][0], pairs[i][1]);
}
