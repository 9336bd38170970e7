/* transformers' clean_up_tokenization (text/cleanup.c). */
#ifndef VBLIP_TEXT_CLEANUP_H
#define VBLIP_TEXT_CLEANUP_H

/* In place: " ." -> ".", " n't" -> "n't", ... in transformers' order. */
void vb_clean_up_tokenization(char *s);

#endif
