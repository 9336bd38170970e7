/* Videos from the command line and the input they form with a prompt: one video then
 * the prompt, or (interleaved) the prompt's "<video>" placeholders filled in order. */
#ifndef VBLIP_CLI_INPUT_H
#define VBLIP_CLI_INPUT_H

#include <cjson/cJSON.h>

#include "vblip.h"

typedef struct {
  vblip_video *v;
  char *const *names; /* the arguments as given */
  int n;
} cli_videos;

/* Loads and encodes each video ("-": stdin); 0, or 1 with the error printed. */
int cli_videos_load(vblip_model *m, const vblip_sampling *s, char *const *names, int n,
                    cli_videos *out);
void cli_videos_free(cli_videos *vs);

/* --interleaved with a layout: forces the interleaved layout (a usage error, exit
 * status 2, when --layout blip2 was asked for) and checks that the prompt has one
 * placeholder per VIDEO. 0 when fine. */
int cli_interleaved_check(const char *cmd, vblip_layout *layout, const char *prompt, int n_videos);

/* The input: every video in the prompt's placeholders (interleaved), or video k followed by
 * the prompt. NULL with the error printed. */
vblip_input *cli_make_input(const cli_videos *vs, int interleaved, int k, const char *prompt);

/* [{index, time}] of a video's frames. */
cJSON *cli_frames_json(const vblip_video *v);
/* {decode, preprocess, vision, qformer} summed over the videos given, plus extra_name. */
cJSON *cli_timings_json(const vblip_video *const *v, int n, const char *extra_name,
                        double extra_ms);

#endif
