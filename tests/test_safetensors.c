/* safetensors reading and writing, hostile files, and weight checks that name
 * the tensor at fault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/config.h"
#include "checkpoint/weights.h"
#include "formats/safetensors.h"
#include "testutil.h"
#include "vision/vit.h"

static int parse_str(const char *header, size_t data_len) {
  size_t hl = strlen(header), n = 8 + hl + data_len;
  uint8_t *buf = calloc(1, n);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  vb_tensor_table tt;
  vb_tt_init(&tt);
  int rc = vb_safetensors_parse(&tt, buf, n, "test");
  vb_tt_free(&tt);
  free(buf);
  return rc;
}

static void hostile(void) {
  CHECK(parse_str("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8) == 0, "valid file rejected: %s",
        vb_error_message());
  const char *bad[] = {
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}",         /* past the end */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",          /* size lies */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",              /* overlap */
      "{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}",           /* dtype */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", /* overflow */
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8.5]}}",
      "{\"a\":5}",
      "[1,2,3]",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
      "{not json",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    vb_error_clear();
    CHECK(parse_str(bad[i], 8) != 0, "accepted %s", bad[i]);
    CHECK(strstr(vb_error_message(), "test") != NULL, "message lacks the file: %s", vb_error_message());
  }
  /* header length larger than the file, and tiny files */
  uint8_t small[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
  vb_tensor_table tt;
  vb_tt_init(&tt);
  CHECK(vb_safetensors_parse(&tt, small, 8, "test") != 0, "header past end accepted");
  CHECK(vb_safetensors_parse(&tt, small, 3, "test") != 0, "3-byte file accepted");
  vb_tt_free(&tt);
  /* every truncation of a real file is an error, never a crash */
  vb_mapped_file m;
  if (CHECK_OK(vb_map_file(tu_fixture("models/videoblip-flant5-tiny/model.safetensors"), &m))) {
    for (size_t cut = 0; cut < m.size; cut += m.size / 97 + 1) {
      vb_tt_init(&tt);
      CHECK(vb_safetensors_parse(&tt, m.data, cut, "cut") != 0, "truncated at %zu accepted", cut);
      vb_tt_free(&tt);
    }
    vb_unmap_file(&m);
  }
}

static void roundtrip(void) {
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t h[2] = {vb_float_to_bf16(1.5f), vb_float_to_bf16(-2.25f)};
  vb_st_entry e[2] = {{"x", VB_DT_F32, 2, {2, 3}, a}, {"y", VB_DT_BF16, 1, {2}, h}};
  const char *k[] = {"note"}, *v[] = {"hello"};
  char path[512];
  snprintf(path, sizeof path, "%s/rt.safetensors", tu_tmpdir());
  CHECK_OK(vb_safetensors_write(path, e, 2, k, v, 1));
  vb_tensor_table tt;
  vb_tt_init(&tt);
  if (CHECK_OK(vb_safetensors_load(&tt, path))) {
    const vb_tensor_info *x = vb_tt_find(&tt, "x"), *y = vb_tt_find(&tt, "y");
    CHECK(x && x->ndim == 2 && x->shape[1] == 3 && memcmp(x->data, a, sizeof a) == 0, "x round trip");
    float yf[2];
    CHECK(y && vb_convert_to_f32(y->dtype, y->data, 2, yf) == 0 && yf[0] == 1.5f && yf[1] == -2.25f, "bf16 round trip");
  }
  vb_tt_free(&tt);
  char *note = vb_safetensors_metadata(path, "note");
  CHECK(note && strcmp(note, "hello") == 0, "metadata");
  free(note);
  CHECK(vb_half_to_float(vb_float_to_half(0.333f)) - 0.333f < 1e-3f, "f16 round trip");
}

/* A copy of the OPT fixture with one tensor dropped or reshaped. */
static void write_variant(const char *dir, const char *drop, const char *reshape) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_safetensors_load(&tt, tu_fixture("models/videoblip-opt-tiny/model.safetensors"));
  vb_st_entry *e = calloc(tt.count, sizeof *e);
  size_t n = 0;
  for (size_t i = 0; i < tt.count; i++) {
    const vb_tensor_info *t = &tt.items[i];
    if (drop && strcmp(t->name, drop) == 0) continue;
    e[n].name = t->name;
    e[n].dtype = t->dtype;
    e[n].ndim = t->ndim;
    memcpy(e[n].shape, t->shape, sizeof t->shape);
    e[n].data = t->data;
    if (reshape && strcmp(t->name, reshape) == 0 && t->ndim == 2) { /* same bytes, transposed shape */
      e[n].shape[0] = t->shape[1];
      e[n].shape[1] = t->shape[0];
    }
    n++;
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  CHECK_OK(vb_safetensors_write(path, e, n, NULL, NULL, 0));
  free(e);
  vb_tt_free(&tt);
}

static void weight_checks(void) {
  vb_model_config c;
  CHECK_OK(vb_config_load(tu_fixture("models/videoblip-opt-tiny"), &c));
  const char *name = "vision_model.encoder.layers.1.mlp.fc1.weight";
  const char *cases[][2] = {{name, NULL}, {NULL, name}};
  for (int i = 0; i < 2; i++) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/variant%d", tu_tmpdir(), i);
    mkdir(dir, 0700);
    write_variant(dir, cases[i][0], cases[i][1]);
    vb_weights w;
    vb_vit vit;
    if (!CHECK_OK(vb_weights_open(dir, &w))) continue;
    vb_error_clear();
    CHECK(vb_vit_init(&vit, &w, &c.vision) != 0, "variant %d accepted", i);
    CHECK(strstr(vb_error_message(), name) != NULL, "message does not name the tensor: %s", vb_error_message());
    CHECK(strstr(vb_error_message(), i == 0 ? "missing" : "shape") != NULL, "message: %s", vb_error_message());
    vb_vit_free(&vit);
    vb_weights_close(&w);
  }
  /* sharded index naming a shard outside the directory */
  char dir[512], path[1024];
  snprintf(dir, sizeof dir, "%s/evil", tu_tmpdir());
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  FILE *f = fopen(path, "w");
  fputs("{\"weight_map\":{\"a\":\"../../etc/passwd\"}}", f);
  fclose(f);
  vb_weights w;
  CHECK(vb_weights_open(dir, &w) != 0 && strstr(vb_error_message(), "plain file name"), "index path escape: %s",
        vb_error_message());
  snprintf(dir, sizeof dir, "%s/empty", tu_tmpdir());
  mkdir(dir, 0700);
  CHECK(vb_weights_open(dir, &w) != 0 && strstr(vb_error_message(), "no weights"), "empty dir: %s",
        vb_error_message());
}

int main(void) {
  hostile();
  roundtrip();
  weight_checks();
  return tu_finish();
}
