/* JSON Lines results that a crash never tears: each object goes out as one whole line in
 * one write, and reopening a file to resume reads only its complete lines and cuts off a
 * torn last one, so appending never glues a new line onto half an old one. Shared by the
 * commands that write one result per input (caption --files-from). */
#ifndef VBLIP_DATASET_JSONL_OUT_H
#define VBLIP_DATASET_JSONL_OUT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct vb_jsonl_out vb_jsonl_out;

/* Called with each complete line of a file being resumed that parses as a JSON object;
 * non-zero stops the open with an error. */
typedef int (*vb_jsonl_line_fn)(void *user, const cJSON *line);

/* Opens path for results; NULL or "-" is stdout. A file is locked (a second writer gets
 * an error) and then emptied, unless resume: then every complete line is passed to
 * on_line (lines that are not JSON objects are skipped with a warning on stderr), an
 * unterminated last line is truncated away, and writes append. NULL with the error
 * (vblip_last_error). */
vb_jsonl_out *vb_jsonl_open(const char *path, bool resume, vb_jsonl_line_fn on_line, void *user);

/* Writes obj as one line. 0, or -1 with the error. */
int vb_jsonl_write(vb_jsonl_out *o, const cJSON *obj);

/* The fields that say what a result line is about, with the names, meanings and order that
 * every JSON Lines writer of vblip shares (caption --files-from's results, narrate's cues;
 * the server's narration downloads write the same): "video" (the input as it was named;
 * left out when NULL), "start" and "end" (seconds from the video's first frame; each left
 * out when < 0), "prompt" (left out when NULL). The answer follows as "text" (or "error").
 * So a narrate line is also a valid caption --files-from input line for its window. */
void vb_jsonl_add_input(cJSON *o, const char *video, double start, double end, const char *prompt);

/* Closes the file (not stdout); 0, or -1 when the last writes failed to reach it. */
int vb_jsonl_close(vb_jsonl_out *o);

#endif
