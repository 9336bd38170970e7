/* Output files written safely: the bytes go to PATH.tmp-PID beside the target, which
 * is synced and renamed over PATH at the end, so an interrupted write never leaves a
 * truncated file. The target must be missing or a regular file: renaming over a
 * device, a FIFO or a socket would replace it (as root, --out /dev/null would destroy
 * /dev/null), and a symbolic link is not written through silently. */
#ifndef VBLIP_RUNTIME_OUTFILE_H
#define VBLIP_RUNTIME_OUTFILE_H

#include <stdio.h>

typedef struct {
  char *path, *tmp;
  FILE *f;
} vb_outfile;

/* Whether path may be written: missing, or a regular file. 0, or -1 with a message
 * (commands call it before any work, so that a bad --out fails at once). */
int vb_outfile_check(const char *path);
/* Checks the target, removes the temporaries that processes no longer running left
 * for it (PATH.tmp-PID), and creates this process's temporary (mode 0644 less the
 * umask). 0, or -1 with a message naming the target. */
int vb_outfile_open(vb_outfile *o, const char *path);
/* Flushes, syncs and renames the temporary over the target (checked again). 0, or -1
 * with the temporary removed. Either way o is closed. */
int vb_outfile_commit(vb_outfile *o);
/* Closes and removes the temporary (after a failed write). */
void vb_outfile_abort(vb_outfile *o);
/* The temporary's name for path and this process ("PATH.tmp-PID", n bytes). */
void vb_outfile_tmp_name(const char *path, char *out, size_t n);

#endif
