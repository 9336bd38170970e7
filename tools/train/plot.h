/* Loss curves of a training log (vblip train --log) drawn as a PNG. */
#ifndef VBLIP_TRAIN_PLOT_H
#define VBLIP_TRAIN_PLOT_H

#include <stddef.h>
#include <stdint.h>

/* Reads the log (JSON lines or CSV as vblip train writes them) and writes png_path
 * (atomically): the training loss in blue and the validation loss in orange against the
 * step, with the axis ranges printed. Fails when the log has no loss. */
int vb_plot_log(const char *log_path, const char *png_path);

/* An RGB8 image as an uncompressed (stored-deflate) PNG; malloc'd bytes. */
int vb_png_encode(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *len);

#endif
