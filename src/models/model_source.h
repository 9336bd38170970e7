/* Where a model comes from: a checkpoint directory, a .gguf file, or a Hugging
 * Face repo id that the registered resolver (the Hub client) turns into a directory. */
#ifndef VBLIP_MODELS_MODEL_SOURCE_H
#define VBLIP_MODELS_MODEL_SOURCE_H

#include <stdbool.h>

/* "owner/name" as the Hub spells repo ids (letters, digits, '.', '_', '-'; no "..",
 * no leading '.' or '-'), whether or not a local path has that name. */
bool vb_repo_id_valid(const char *s);
/* A valid repo id that names no local path. */
bool vb_is_repo_id(const char *s);
/* The directory for repo id s via the registered resolver; fails when none is
 * registered (a program built without the Hub client). *dir: a new string. */
int vb_resolve_repo_id(const char *s, int progress, char **dir);

#endif
