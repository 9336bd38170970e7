/* GGUF (version 2 and 3, little-endian): the ggml ecosystem's single-file
 * model format (header, typed key/value metadata, tensor infos, aligned data).
 *
 * The reader memory-maps the file and checks every count, length, offset and
 * alignment against the file before using it. A vblip GGUF holds the model
 * directory's small files as metadata ("vblip.file.<name>": a string for text
 * files, an array of uint8 for binary ones); vb_gguf_mount exposes them as
 * virtual files under the .gguf path (runtime/vfs.h) so that every loader
 * reads "<model.gguf>/config.json" as if it were a directory. */
#ifndef VBLIP_FORMATS_GGUF_H
#define VBLIP_FORMATS_GGUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/tensor_table.h"

#define VB_GGUF_MAGIC "GGUF"
#define VB_GGUF_VERSION 3
#define VB_GGUF_DEFAULT_ALIGNMENT 32
#define VB_GGUF_FILE_PREFIX "vblip.file."
#define VB_GGUF_ARCH "videoblip"

typedef enum {
  VB_GGUF_UINT8 = 0,
  VB_GGUF_INT8 = 1,
  VB_GGUF_UINT16 = 2,
  VB_GGUF_INT16 = 3,
  VB_GGUF_UINT32 = 4,
  VB_GGUF_INT32 = 5,
  VB_GGUF_FLOAT32 = 6,
  VB_GGUF_BOOL = 7,
  VB_GGUF_STRING = 8,
  VB_GGUF_ARRAY = 9,
  VB_GGUF_UINT64 = 10,
  VB_GGUF_INT64 = 11,
  VB_GGUF_FLOAT64 = 12,
  VB_GGUF_TYPE_COUNT
} vb_gguf_type;

/* ggml tensor type ids vblip reads and writes */
enum {
  VB_GGML_F32 = 0,
  VB_GGML_F16 = 1,
  VB_GGML_Q4_0 = 2,
  VB_GGML_Q8_0 = 8,
  VB_GGML_Q4_K = 12,
  VB_GGML_I8 = 24,
  VB_GGML_I16 = 25,
  VB_GGML_I32 = 26,
  VB_GGML_I64 = 27,
  VB_GGML_F64 = 28,
  VB_GGML_BF16 = 30,
  /* vblip's own, far from ggml's ids ("VB"): a Q8_0 [N, K] matrix (ne0 = K,
   * ne1 = N) stored in the q8x16 layout of vblip's VNNI kernels
   * (runtime/dtype.h), vb_q8x16_size bytes, 64-byte aligned in the file.
   * Written by vblip convert --packed only; other GGUF readers do not know it. */
  VB_GGML_Q8X16 = 0x5642
};
/* The data alignment of files with VB_GGML_Q8X16 tensors. */
#define VB_GGUF_PACKED_ALIGNMENT 64

typedef struct {
  char *key;
  vb_gguf_type type;
  vb_gguf_type arr_type; /* ARRAY: the element type */
  uint64_t arr_n;        /* ARRAY: the element count */
  const uint8_t *data;   /* scalar: its bytes; STRING: the characters; ARRAY: the encoded elements */
  size_t len;            /* bytes at data */
} vb_gguf_kv;

typedef struct {
  uint32_t version;
  vb_gguf_kv *kv;
  size_t n_kv;
  uint64_t n_tensors;
  size_t alignment;
  size_t data_offset; /* start of the tensor data section */
} vb_gguf_meta;

/* Parses a whole GGUF image. meta and tt may each be NULL; tensors point into buf. */
int vb_gguf_parse(const uint8_t *buf, size_t len, const char *label, vb_gguf_meta *meta,
                  vb_tensor_table *tt);
void vb_gguf_meta_free(vb_gguf_meta *m);
const vb_gguf_kv *vb_gguf_get(const vb_gguf_meta *m, const char *key);
/* Scalar integer value of any integer type (false if absent or not an integer). */
bool vb_gguf_get_uint(const vb_gguf_meta *m, const char *key, uint64_t *out);

/* A regular file that starts with the GGUF magic. */
bool vb_gguf_is_file(const char *path);
/* Maps path and adds its tensors to tt (the table keeps the mapping). */
int vb_gguf_load(vb_tensor_table *tt, const char *path);
/* Checks that path is a vblip GGUF and mounts its embedded files (runtime/vfs.h)
 * under path; undo with vb_vfs_unmount(path). */
int vb_gguf_mount(const char *path);
/* A model file in one pass: maps path, parses it once, mounts its embedded files
 * (as vb_gguf_mount) and adds its tensors to tt, which keeps the mapping. */
int vb_gguf_open_model(const char *path, vb_tensor_table *tt);

/* ---- writing (formats/gguf_write.c) ---- */

typedef struct vb_gguf_writer vb_gguf_writer;

vb_gguf_writer *vb_gguf_writer_new(void);
void vb_gguf_writer_free(vb_gguf_writer *w);
int vb_gguf_add_string(vb_gguf_writer *w, const char *key, const char *s, size_t len);
int vb_gguf_add_u32(vb_gguf_writer *w, const char *key, uint32_t v);
int vb_gguf_add_bytes(vb_gguf_writer *w, const char *key, const void *p, size_t n);
/* Declares the next tensor (row-major PyTorch shape); data is written later, in order. */
int vb_gguf_add_tensor(vb_gguf_writer *w, const char *name, vb_dtype dt, int ndim,
                       const int64_t *shape);
/* Size of the finished file. */
uint64_t vb_gguf_total_size(const vb_gguf_writer *w);
/* Writes header, metadata, tensor infos and the padding before the data. */
int vb_gguf_write_header(vb_gguf_writer *w, FILE *f);
/* Writes tensor i's data (exactly its declared byte size) and its padding. */
int vb_gguf_write_tensor(vb_gguf_writer *w, FILE *f, size_t i, const void *data, size_t nbytes);
/* The same in parts (a tensor larger than memory): vb_gguf_write_part for each
 * piece in order, then vb_gguf_end_tensor, which checks that the pieces added
 * up to tensor i's size and writes its padding. */
int vb_gguf_write_part(FILE *f, const void *data, size_t n);
int vb_gguf_end_tensor(vb_gguf_writer *w, FILE *f, size_t i, uint64_t written);

/* The ggml type id of a vblip dtype (-1 when GGUF has none). */
int vb_gguf_type_of(vb_dtype dt);

#endif
