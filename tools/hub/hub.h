/* Hugging Face Hub downloads (vblip pull, and repo ids given as --model). */
#ifndef VBLIP_HUB_HUB_H
#define VBLIP_HUB_HUB_H

#include <stdbool.h>

/* The cached copy of repo's main revision when it is complete (no network),
 * else pulls it. *dir: a new string. */
int vb_hub_ensure(const char *repo, int progress, char **dir);

#endif
