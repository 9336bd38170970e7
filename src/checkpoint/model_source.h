/* Where a model comes from, resolved once per load: a checkpoint directory, a .gguf
 * file (vblip convert), or a Hugging Face repo id that the registered resolver (the Hub
 * client) turns into a directory. Every reader - config, preprocessor config, tokenizer,
 * weights - then reads from the source's path: a directory, or a GGUF file whose
 * embedded small files are mounted under it (runtime/vfs.h) and whose tensors were
 * parsed in the same single pass over its header. */
#ifndef VBLIP_CHECKPOINT_MODEL_SOURCE_H
#define VBLIP_CHECKPOINT_MODEL_SOURCE_H

#include <stdbool.h>

#include "checkpoint/weights.h"
#include "formats/tensor_table.h"

typedef struct {
  char *name;         /* as the caller gave it, for messages */
  char *path;         /* the directory, or the .gguf file, that readers use */
  bool gguf;          /* path is a GGUF file with its files mounted */
  vb_tensor_table tt; /* GGUF: its tensors, until vb_model_source_weights takes them */
  bool has_tt;
} vb_model_source;

/* Resolves name (repo id -> directory through the resolver, which shows progress on a
 * terminal when asked) and opens it; 0/-1. Close with vb_model_source_close. */
int vb_model_source_open(const char *name, int progress, vb_model_source *s);
void vb_model_source_close(vb_model_source *s);
/* The weights: a directory's weight files, or the GGUF's tensors parsed at open (taken
 * once; a second call parses the file again). */
int vb_model_source_weights(vb_model_source *s, vb_weights *w);

/* The small files a checkpoint may hold besides its weights that vblip reads (configs,
 * preprocessor settings, tokenizer files); NULL-terminated. */
extern const char *const vb_model_files[];

/* "owner/name" as the Hub spells repo ids (letters, digits, '.', '_', '-'; no "..",
 * no leading '.' or '-'), whether or not a local path has that name. */
bool vb_repo_id_valid(const char *s);
/* A valid repo id that names no local path. */
bool vb_is_repo_id(const char *s);
/* The directory for repo id s via the registered resolver; fails when none is
 * registered (a program built without the Hub client). *dir: a new string. */
int vb_resolve_repo_id(const char *s, int progress, char **dir);

/* What a local model path is, found without opening it (opening a FIFO would block):
 * 0 with *is_gguf = 1 for a GGUF file, 0 with *is_gguf = 0 for a directory; -1 with
 * the reason (missing, a file that is not GGUF, a device, FIFO or socket). The
 * message does not repeat the path: callers name it. */
int vb_model_path_check(const char *path, int *is_gguf);

#endif
