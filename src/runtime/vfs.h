/* Virtual files: in-memory files registered under a directory path, seen by
 * vb_read_file, vb_file_exists and vb_map_file (runtime/common.c) before the
 * real file system. A GGUF model is "a directory in one file": mounting its
 * embedded config, preprocessor and tokenizer files under the .gguf path lets
 * every loader read "<file.gguf>/config.json" unchanged.
 *
 * Thread-safe. Mounts are reference counted: mounting a path that is already
 * mounted keeps the existing files and adds a reference. */
#ifndef VBLIP_RUNTIME_VFS_H
#define VBLIP_RUNTIME_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  const char *name; /* a plain file name (no '/') */
  const void *data;
  size_t size;
} vb_vfs_file;

/* Registers copies of files under dir_path (trailing '/' ignored). */
int vb_vfs_mount(const char *dir_path, const vb_vfs_file *files, size_t n);
/* Drops one reference; the files go with the last one. */
void vb_vfs_unmount(const char *dir_path);
/* Whether dir_path is mounted. */
bool vb_vfs_is_mounted(const char *dir_path);

/* Looks a path up ("<mounted dir>/<name>"). Returns 1 when it names a virtual
 * file (then *copy, if copy is non-NULL, receives a malloc'd copy of the bytes plus
 * a NUL terminator, and *size its length), 0 when it does not, -1 when out of memory. */
int vb_vfs_lookup(const char *path, char **copy, size_t *size);

#endif
