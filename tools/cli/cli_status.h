/* A one-line status on stderr while long work runs (loading a model, reading and encoding
 * videos): shown on a terminal only, never with --quiet, and cleared before anything else
 * is printed, so pipes and logs see nothing of it. */
#ifndef VBLIP_CLI_STATUS_H
#define VBLIP_CLI_STATUS_H

#include "cli/cli_options.h"
#include "vblip.h"

/* --quiet (no progress on the terminal) into an int field of the command's options. */
extern const cli_option cli_quiet_option[];
/* After parsing: quiet, or a stderr that is not a terminal, turns progress off (the
 * status line and the model's loading progress in lo, which may be NULL). */
void cli_status_setup(int quiet, vblip_load_options *lo);
/* Whether progress is shown (a terminal, no --quiet). */
int cli_status_on(void);
/* Replaces the status line (no-op when progress is off). */
void cli_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Removes the status line, if one is shown. */
void cli_status_clear(void);

#endif
