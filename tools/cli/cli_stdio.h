/* "-" where a command takes a file: stdin or stdout, through a private temporary file.
 * Videos are decoded with seeks and outputs are written atomically (write, then
 * rename), so both need a real file. The files live in one mode-0700 directory made
 * on first use and removed at exit (or by cli_stdio_cleanup from a signal handler). */
#ifndef VBLIP_CLI_STDIO_H
#define VBLIP_CLI_STDIO_H

/* arg itself, or for "-" a file holding all of stdin (read once per process);
 * NULL with the error printed. */
const char *cli_input_path(const char *arg);
/* arg itself, or for "-" a file to write; pass it to cli_output_done afterwards.
 * NULL with the error printed (stdout a terminal, no temporary directory). */
const char *cli_output_path(const char *arg);
/* For "-": copies the written file to stdout and removes it. 0, or 1 with the error
 * printed (an exit status). Nothing to do for other paths. */
int cli_output_done(const char *arg, const char *path);
/* Removes the temporary files and directory; async-signal-safe. */
void cli_stdio_cleanup(void);

#endif
