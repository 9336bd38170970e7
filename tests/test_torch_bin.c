/* PyTorch .bin reader: fixture checkpoints equal their safetensors twins, and
 * crafted hostile archives/pickles fail cleanly with a message naming the problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"
#include "formats/torch_bin.h"
#include "runtime/common.h"
#include "testutil.h"

/* Overwrites n little-endian bytes in place (patching crafted archives). */
static void wr_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put8(tu_bytes *b, int v) { tu_put_le(b, (uint64_t)v, 1); }
static void put_str(tu_bytes *b, const char *s) { tu_put(b, s, strlen(s)); }

/* ---- minimal zip writer (stored entries, optional ZIP64 records) ---- */
typedef struct {
  const char *name;
  const void *data;
  size_t len;
  int method;
} zent;

static tu_bytes make_zip(const zent *e, int n, int zip64) {
  tu_bytes z = {0};
  size_t off[32];
  for (int i = 0; i < n; i++) {
    off[i] = z.n;
    size_t nl = strlen(e[i].name);
    tu_put_le(&z, 0x04034b50u, 4);
    tu_put_le(&z, 45, 2);
    tu_put_le(&z, 0, 2);
    tu_put_le(&z, (uint64_t)e[i].method, 2);
    tu_put_le(&z, 0, 4); /* time, date */
    tu_put_le(&z, 0, 4); /* crc (not checked by the reader) */
    tu_put_le(&z, zip64 ? 0xffffffffu : e[i].len, 4);
    tu_put_le(&z, zip64 ? 0xffffffffu : e[i].len, 4);
    tu_put_le(&z, nl, 2);
    tu_put_le(&z, zip64 ? 20 : 0, 2);
    tu_put(&z, e[i].name, nl);
    if (zip64) {
      tu_put_le(&z, 1, 2);
      tu_put_le(&z, 16, 2);
      tu_put_le(&z, e[i].len, 8);
      tu_put_le(&z, e[i].len, 8);
    }
    tu_put(&z, e[i].data, e[i].len);
  }
  size_t cd = z.n;
  for (int i = 0; i < n; i++) {
    size_t nl = strlen(e[i].name);
    tu_put_le(&z, 0x02014b50u, 4);
    tu_put_le(&z, 45, 2);
    tu_put_le(&z, 45, 2);
    tu_put_le(&z, 0, 2);
    tu_put_le(&z, (uint64_t)e[i].method, 2);
    tu_put_le(&z, 0, 4);
    tu_put_le(&z, 0, 4);
    tu_put_le(&z, zip64 ? 0xffffffffu : e[i].len, 4);
    tu_put_le(&z, zip64 ? 0xffffffffu : e[i].len, 4);
    tu_put_le(&z, nl, 2);
    tu_put_le(&z, zip64 ? 28 : 0, 2);
    tu_put_le(&z, 0, 2); /* comment */
    tu_put_le(&z, 0, 2); /* disk */
    tu_put_le(&z, 0, 2);
    tu_put_le(&z, 0, 4);
    tu_put_le(&z, zip64 ? 0xffffffffu : off[i], 4);
    tu_put(&z, e[i].name, nl);
    if (zip64) {
      tu_put_le(&z, 1, 2);
      tu_put_le(&z, 24, 2);
      tu_put_le(&z, e[i].len, 8);
      tu_put_le(&z, e[i].len, 8);
      tu_put_le(&z, off[i], 8);
    }
  }
  size_t cd_size = z.n - cd;
  if (zip64) {
    size_t rec = z.n;
    tu_put_le(&z, 0x06064b50u, 4);
    tu_put_le(&z, 44, 8);
    tu_put_le(&z, 45, 2);
    tu_put_le(&z, 45, 2);
    tu_put_le(&z, 0, 4);
    tu_put_le(&z, 0, 4);
    tu_put_le(&z, (uint64_t)n, 8);
    tu_put_le(&z, (uint64_t)n, 8);
    tu_put_le(&z, cd_size, 8);
    tu_put_le(&z, cd, 8);
    tu_put_le(&z, 0x07064b50u, 4);
    tu_put_le(&z, 0, 4);
    tu_put_le(&z, rec, 8);
    tu_put_le(&z, 1, 4);
  }
  tu_put_le(&z, 0x06054b50u, 4);
  tu_put_le(&z, 0, 4);
  tu_put_le(&z, zip64 ? 0xffff : (uint64_t)n, 2);
  tu_put_le(&z, zip64 ? 0xffff : (uint64_t)n, 2);
  tu_put_le(&z, zip64 ? 0xffffffffu : cd_size, 4);
  tu_put_le(&z, zip64 ? 0xffffffffu : cd, 4);
  tu_put_le(&z, 0, 2);
  return z;
}

/* ---- pickle builders (protocol 2, like torch.save) ---- */
static void p_str(tu_bytes *b, const char *s) {
  put8(b, 'X');
  tu_put_le(b, strlen(s), 4);
  put_str(b, s);
}
static void p_int(tu_bytes *b, int64_t v) {
  if (v >= 0 && v < 256) {
    put8(b, 'K');
    put8(b, (int)v);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    put8(b, 'J');
    tu_put_le(b, (uint64_t)v, 4);
  } else {
    put8(b, 0x8a);
    put8(b, 8);
    tu_put_le(b, (uint64_t)v, 8);
  }
}
static void p_global(tu_bytes *b, const char *mod, const char *name) {
  put8(b, 'c');
  put_str(b, mod);
  put8(b, '\n');
  put_str(b, name);
  put8(b, '\n');
}
static void p_ints_tuple(tu_bytes *b, int n, const int64_t *v) {
  put8(b, '(');
  for (int i = 0; i < n; i++) p_int(b, v[i]);
  put8(b, 't');
}

typedef struct {
  const char *name, *storage_class, *key;
  int64_t numel, offset;
  int ndim;
  int64_t size[4], stride[4];
} tspec;

/* name: _rebuild_tensor_v2((persistent storage), offset, size, stride, False, OrderedDict()) */
static void p_tensor(tu_bytes *b, const tspec *t) {
  p_str(b, t->name);
  p_global(b, "torch._utils", "_rebuild_tensor_v2");
  put8(b, '(');
  put8(b, '(');
  p_str(b, "storage");
  p_global(b, "torch", t->storage_class);
  p_str(b, t->key);
  p_str(b, "cpu");
  p_int(b, t->numel);
  put8(b, 't');
  put8(b, 'Q');
  p_int(b, t->offset);
  p_ints_tuple(b, t->ndim, t->size);
  p_ints_tuple(b, t->ndim, t->stride);
  put8(b, 0x89);
  p_global(b, "collections", "OrderedDict");
  put8(b, ')');
  put8(b, 'R');
  put8(b, 't');
  put8(b, 'R');
}

static tu_bytes state_dict_pickle(const tspec *t, int n) {
  tu_bytes b = {0};
  put8(&b, 0x80);
  put8(&b, 2);
  put8(&b, '}');
  put8(&b, '(');
  for (int i = 0; i < n; i++) p_tensor(&b, &t[i]);
  put8(&b, 'u');
  put8(&b, '.');
  return b;
}

static const float k_six[6] = {0, 1, 2, 3, 4, 5};

/* Archive "arch/" holding the pickle and storage 0 = k_six (24 bytes). */
static int parse_archive(vb_tensor_table *tt, const tu_bytes *pkl, int method, int zip64, tu_bytes *zip) {
  zent e[3] = {{"arch/data.pkl", pkl->p, pkl->n, method},
               {"arch/data/0", k_six, sizeof k_six, 0},
               {"arch/version", "3\n", 2, 0}};
  *zip = make_zip(e, 3, zip64);
  return vb_torch_bin_parse(tt, zip->p, zip->n, "crafted.bin");
}

/* Expects the pickle to be rejected with a message containing want. */
static void expect_reject(const char *what, const tu_bytes *pkl, const char *want) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  tu_bytes zip;
  vb_error_clear();
  int rc = parse_archive(&tt, pkl, 0, 0, &zip);
  if (getenv("TB_VERBOSE")) printf("%s -> %s\n", what, vb_error_message());
  CHECK(rc != 0, "%s: accepted", what);
  if (rc != 0)
    CHECK(strstr(vb_error_message(), want) != NULL, "%s: message '%s' lacks '%s'", what,
          vb_error_message(), want);
  CHECK(tt.count == 0, "%s: %zu tensors added despite the error", what, tt.count);
  vb_tt_free(&tt);
  free(zip.p);
}

static void expect_zip_reject(const char *what, const uint8_t *buf, size_t len, const char *want) {
  vb_tensor_table tt;
  vb_tt_init(&tt);
  vb_error_clear();
  int rc = vb_torch_bin_parse(&tt, buf, len, "crafted.bin");
  if (getenv("TB_VERBOSE")) printf("%s -> %s\n", what, vb_error_message());
  CHECK(rc != 0, "%s: accepted", what);
  if (rc != 0 && want)
    CHECK(strstr(vb_error_message(), want) != NULL, "%s: message '%s' lacks '%s'", what,
          vb_error_message(), want);
  vb_tt_free(&tt);
}

/* ---- fixtures: .bin equals safetensors ---- */
static const vb_tensor_info *tied_source(const vb_tensor_table *st, const char *missing) {
  if (strcmp(missing, "language_model.lm_head.weight") == 0)
    return vb_tt_find(st, "language_model.model.decoder.embed_tokens.weight");
  if (strstr(missing, "embed_tokens.weight")) return vb_tt_find(st, "language_model.shared.weight");
  return NULL;
}

static int same_tensor(const vb_tensor_info *a, const vb_tensor_info *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return memcmp(a->data, b->data, a->nbytes) == 0;
}

static void check_model(const char *dir, const char *model, const char *const *bins,
                        const char *const *sts, int nfiles) {
  char path[512];
  vb_tensor_table bin, st;
  vb_tt_init(&bin);
  vb_tt_init(&st);
  for (int i = 0; i < nfiles; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, bins[i]);
    CHECK_OK(vb_torch_bin_load(&bin, tu_fixture(path)));
    snprintf(path, sizeof path, "%s/%s", dir, sts[i]);
    CHECK_OK(vb_safetensors_load(&st, tu_fixture(path)));
  }
  char key[128];
  snprintf(key, sizeof key, "models.%s.keys_missing_from_safetensors", model);
  cJSON *missing = tu_json_path(tu_expected(), key);
  CHECK(cJSON_IsArray(missing), "%s missing from expected.json", key);
  size_t nmissing = (size_t)cJSON_GetArraySize(missing);
  CHECK(st.count > 0 && bin.count == st.count + nmissing, "%s: %zu .bin tensors, %zu safetensors + %zu tied",
        dir, bin.count, st.count, nmissing);
  size_t mismatched = 0;
  for (size_t i = 0; i < st.count; i++) {
    const vb_tensor_info *s = &st.items[i], *b = vb_tt_find(&bin, s->name);
    if (!b || !same_tensor(b, s)) {
      if (mismatched++ < 5) CHECK(0, "%s: tensor %s differs or is absent from the .bin", dir, s->name);
    }
  }
  CHECK(mismatched == 0, "%s: %zu tensors differ", dir, mismatched);
  cJSON *m;
  cJSON_ArrayForEach(m, missing) {
    const vb_tensor_info *b = vb_tt_find(&bin, m->valuestring), *src = tied_source(&st, m->valuestring);
    CHECK(b != NULL, "%s: tied tensor %s absent from the .bin", dir, m->valuestring);
    CHECK(src != NULL, "%s: no tie source known for %s", dir, m->valuestring);
    if (b && src) {
      CHECK(same_tensor(b, src), "%s: tied tensor %s differs from its source", dir, m->valuestring);
      /* Tied weights share one storage: both names view the same mapped bytes. */
      const vb_tensor_info *bsrc = vb_tt_find(&bin, src->name);
      CHECK(bsrc && bsrc->data == b->data, "%s: %s does not share storage with %s", dir,
            m->valuestring, src->name);
    }
  }
  vb_tt_free(&bin);
  vb_tt_free(&st);
}

static void test_fixtures(void) {
  const char *bin1[] = {"pytorch_model.bin"}, *st1[] = {"model.safetensors"};
  check_model("models/videoblip-opt-tiny", "opt", bin1, st1, 1);
  check_model("models/videoblip-flant5-tiny", "t5", bin1, st1, 1);
  const char *bin2[] = {"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"};
  const char *st2[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  check_model("models/videoblip-flant5-tiny-sharded", "t5", bin2, st2, 2);

  /* Contiguous tensors point into the mapping, not into copies. */
  vb_tensor_table tt;
  vb_tt_init(&tt);
  CHECK_OK(vb_torch_bin_load(&tt, tu_fixture("models/videoblip-opt-tiny/pytorch_model.bin")));
  CHECK(tt.nmaps == 1 && tt.nowned == 0, "expected one mapping and no copies (%zu, %zu)", tt.nmaps,
        tt.nowned);
  for (size_t i = 0; tt.nmaps == 1 && i < tt.count; i++) {
    const uint8_t *d = tt.items[i].data;
    if (!(d >= tt.maps[0].data && d + tt.items[i].nbytes <= tt.maps[0].data + tt.maps[0].size)) {
      CHECK(0, "tensor %s is not inside the mapping", tt.items[i].name);
      break;
    }
  }
  vb_tt_free(&tt);
}

/* ---- truncated and malformed archives ---- */
static void test_truncated(void) {
  vb_mapped_file m;
  if (!CHECK_OK(vb_map_file(tu_fixture("models/videoblip-flant5-tiny/pytorch_model.bin"), &m)))
    return;
  size_t cuts[] = {0, 1, 21, 22, 100, m.size / 3, m.size / 2, m.size - 200, m.size - 99,
                   m.size - 60, m.size - 42, m.size - 23, m.size - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    /* A heap copy of exactly the cut length so ASan catches any over-read. */
    uint8_t *copy = malloc(cuts[i] ? cuts[i] : 1);
    memcpy(copy, m.data, cuts[i]);
    char what[64];
    snprintf(what, sizeof what, "fixture cut at %zu bytes", cuts[i]);
    expect_zip_reject(what, copy, cuts[i], NULL);
    free(copy);
  }
  /* Cutting away the middle (the data) while keeping the directory. */
  size_t keep = 4096;
  uint8_t *hole = malloc(m.size - keep);
  memcpy(hole, m.data, m.size / 2);
  memcpy(hole + m.size / 2, m.data + m.size / 2 + keep, m.size - m.size / 2 - keep);
  expect_zip_reject("fixture with 4 KiB removed", hole, m.size - keep, NULL);
  free(hole);
  vb_unmap_file(&m);
}

static void test_zip_structure(void) {
  tspec t = {"w", "FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};
  tu_bytes pkl = state_dict_pickle(&t, 1), zip;
  vb_tensor_table tt;

  /* The well-formed archive loads, in both classic and ZIP64 layouts. */
  for (int zip64 = 0; zip64 < 2; zip64++) {
    vb_tt_init(&tt);
    CHECK(parse_archive(&tt, &pkl, 0, zip64, &zip) == 0, "zip64=%d: %s", zip64, vb_error_message());
    const vb_tensor_info *w = vb_tt_find(&tt, "w");
    CHECK(w && w->dtype == VB_DT_F32 && w->ndim == 2 && w->shape[0] == 2 && w->shape[1] == 3 &&
              w->nbytes == 24 && memcmp(w->data, k_six, 24) == 0,
          "zip64=%d: tensor w wrong", zip64);
    CHECK(w && (const uint8_t *)w->data > zip.p && (const uint8_t *)w->data < zip.p + zip.n,
          "contiguous tensor was copied");
    vb_tt_free(&tt);

    /* Central directory offset beyond the end of the file. */
    tu_bytes bad = {0};
    tu_put(&bad, zip.p, zip.n);
    if (zip64) {
      /* zip64 record: cd offset at record+48; the record precedes the 20-byte locator */
      size_t rec = bad.n - 22 - 20 - 56;
      wr_le(bad.p + rec + 48, (uint64_t)1 << 40, 8);
    } else {
      wr_le(bad.p + bad.n - 6, 0x7ffffff0u, 4);
    }
    expect_zip_reject(zip64 ? "zip64 cd offset past end" : "cd offset past end", bad.p, bad.n,
                      "outside");
    /* Entry count larger than the directory can hold. */
    memcpy(bad.p, zip.p, zip.n);
    if (!zip64) {
      wr_le(bad.p + bad.n - 12, 5000, 2);
      expect_zip_reject("entry count too large", bad.p, bad.n, "entries");
    }
    if (!zip64) {
      /* Central entries start right after the three local entries; the second
       * (data/0) is patched: local header offset, then stored size, past the end. */
      size_t cd = zip.n - 22 - (46 + 11) - (46 + 12) - (46 + 13);
      size_t second = cd + 46 + 13;
      memcpy(bad.p, zip.p, zip.n);
      wr_le(bad.p + second + 42, zip.n - 10, 4);
      expect_zip_reject("local header offset past end", bad.p, bad.n, "local header offset");
      memcpy(bad.p, zip.p, zip.n);
      wr_le(bad.p + second + 20, 0x7fffffffu, 4);
      wr_le(bad.p + second + 24, 0x7fffffffu, 4);
      expect_zip_reject("entry size past end", bad.p, bad.n, "run past the end");
    }
    free(bad.p);
    free(zip.p);
  }

  /* A compressed (deflate) data.pkl is refused by name. */
  vb_tt_init(&tt);
  vb_error_clear();
  CHECK(parse_archive(&tt, &pkl, 8, 0, &zip) != 0, "compressed entry accepted");
  CHECK(strstr(vb_error_message(), "arch/data.pkl") && strstr(vb_error_message(), "compressed"),
        "message: %s", vb_error_message());
  vb_tt_free(&tt);
  free(zip.p);

  /* Not a zip at all, legacy torch pickle, and no data.pkl. */
  expect_zip_reject("text file", (const uint8_t *)"hello world, this is not a zip archive", 38,
                    "not a zip");
  expect_zip_reject("legacy pickle", pkl.p, pkl.n, "legacy");
  zent only[1] = {{"arch/data/0", k_six, sizeof k_six, 0}};
  zip = make_zip(only, 1, 0);
  expect_zip_reject("archive without data.pkl", zip.p, zip.n, "data.pkl");
  free(zip.p);

  /* Big-endian checkpoints are refused. */
  zent be[3] = {{"arch/data.pkl", pkl.p, pkl.n, 0},
                {"arch/data/0", k_six, sizeof k_six, 0},
                {"arch/byteorder", "big", 3, 0}};
  zip = make_zip(be, 3, 0);
  expect_zip_reject("byteorder big", zip.p, zip.n, "big");
  free(zip.p);

  /* The storage key names an entry that does not exist. */
  zent nodata[1] = {{"arch/data.pkl", pkl.p, pkl.n, 0}};
  zip = make_zip(nodata, 1, 0);
  expect_zip_reject("missing storage entry", zip.p, zip.n, "not in the archive");
  free(zip.p);
  free(pkl.p);
}

/* ---- hostile pickles ---- */
static void test_hostile_pickles(void) {
  tu_bytes b = {0};
  /* os.system("...") via GLOBAL + REDUCE */
  put8(&b, 0x80), put8(&b, 2);
  p_global(&b, "os", "system");
  p_str(&b, "touch /tmp/vblip_pwned");
  put8(&b, 0x85), put8(&b, 'R'), put8(&b, '.');
  expect_reject("GLOBAL os.system", &b, "forbidden global os.system");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2);
  p_global(&b, "builtins", "eval");
  p_str(&b, "1+1");
  put8(&b, 0x85), put8(&b, 'R'), put8(&b, '.');
  expect_reject("GLOBAL builtins.eval", &b, "forbidden global builtins.eval");
  /* STACK_GLOBAL of forbidden names (protocol 4 style) */
  const char *forbidden[][2] = {{"posix", "system"}, {"subprocess", "Popen"}, {"torch", "load"},
                                {"collections", "OrderedDictX"}};
  for (int i = 0; i < 4; i++) {
    b.n = 0;
    put8(&b, 0x80), put8(&b, 4);
    put8(&b, 0x8c), put8(&b, (int)strlen(forbidden[i][0])), put_str(&b, forbidden[i][0]);
    put8(&b, 0x94);
    put8(&b, 0x8c), put8(&b, (int)strlen(forbidden[i][1])), put_str(&b, forbidden[i][1]);
    put8(&b, 0x94);
    put8(&b, 0x93), put8(&b, ')'), put8(&b, 'R'), put8(&b, '.');
    char want[80];
    snprintf(want, sizeof want, "forbidden global %s.%s", forbidden[i][0], forbidden[i][1]);
    expect_reject(want, &b, want);
  }
  /* Calling an allowed storage class, and REDUCE on a non-callable. */
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2);
  p_global(&b, "torch", "FloatStorage");
  put8(&b, ')'), put8(&b, 'R'), put8(&b, '.');
  expect_reject("REDUCE storage class", &b, "not allowed");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), p_str(&b, "x"), put8(&b, ')'), put8(&b, 'R'), put8(&b, '.');
  expect_reject("REDUCE of a string", &b, "REDUCE of a str");
  /* Unknown and forbidden opcodes. */
  const uint8_t ops[] = {0xff, 'i', 'o', 0x81, 0x82, 'P', 'S', 'd', 0x92};
  const char *names[] = {"0xff", "INST", "OBJ", "NEWOBJ", "EXT1", "PERSID", "STRING", "DICT",
                         "NEWOBJ_EX"};
  for (size_t i = 0; i < sizeof ops; i++) {
    b.n = 0;
    put8(&b, 0x80), put8(&b, 2), put8(&b, ']'), put8(&b, ops[i]), put8(&b, '.');
    char what[64];
    snprintf(what, sizeof what, "opcode %s", names[i]);
    expect_reject(what, &b, names[i]);
  }
  /* Deeply nested MARKs hit the stack limit. */
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2);
  for (int i = 0; i < 100000; i++) put8(&b, '(');
  put8(&b, '.');
  expect_reject("100000 nested MARKs", &b, "MARKs nested deeper");
  /* A huge flat stack (no MARKs) is bounded too. */
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2);
  for (int i = 0; i < (1 << 21); i++) put8(&b, 'N');
  put8(&b, '.');
  expect_reject("2M stack entries", &b, "stack deeper");
  /* Truncated pickle, strings past the end, memo misuse, stack underflow. */
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, '}');
  expect_reject("no STOP", &b, "without STOP");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, 'X'), tu_put_le(&b, 0xfffffff0u, 4), put_str(&b, "abc");
  expect_reject("string past end", &b, "past the end");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, 0x8d), tu_put_le(&b, ~(uint64_t)0, 8);
  expect_reject("BINUNICODE8 of 2^64-1 bytes", &b, "past the end");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, 'h'), put8(&b, 7), put8(&b, '.');
  expect_reject("BINGET undefined", &b, "memo entry 7");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, '}'), put8(&b, 'r'), tu_put_le(&b, 0xfffffff0u, 4);
  put8(&b, '.');
  expect_reject("LONG_BINPUT huge index", &b, "memo index");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, 's'), put8(&b, '.');
  expect_reject("SETITEM on empty stack", &b, "underflow");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, 'u'), put8(&b, '.');
  expect_reject("SETITEMS without MARK", &b, "without a MARK");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, ']'), put8(&b, 'N'), put8(&b, 'N'), put8(&b, 's');
  put8(&b, '.');
  expect_reject("SETITEM on a list", &b, "SETITEM(S) on a list");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 9), put8(&b, '.');
  expect_reject("protocol 9", &b, "protocol");
  /* Wrong top-level objects. */
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, ']'), put8(&b, '.');
  expect_reject("top-level list", &b, "expected a dict");
  b.n = 0;
  put8(&b, 0x80), put8(&b, 2), put8(&b, '}'), p_str(&b, "sub"), put8(&b, '}'), put8(&b, 's');
  put8(&b, '.');
  expect_reject("nested dict", &b, "not a tensor");
  free(b.p);
}

/* ---- hostile tensor metadata ---- */
static void test_hostile_tensors(void) {
  struct {
    const char *what, *want;
    tspec t;
  } cases[] = {
      {"storage numel beyond its entry", "declares 100", {"w", "FloatStorage", "0", 100, 0, 1, {100}, {1}}},
      {"double storage beyond its entry", "declares 6", {"w", "DoubleStorage", "0", 6, 0, 1, {6}, {1}}},
      {"view past storage", "reaches element", {"w", "FloatStorage", "0", 6, 3, 1, {4}, {1}}},
      {"stride past storage", "reaches element", {"w", "FloatStorage", "0", 6, 0, 2, {2, 3}, {4, 1}}},
      {"offset past storage", "past the storage", {"w", "FloatStorage", "0", 6, 7, 1, {0}, {1}}},
      {"overflowing numel", "overflows",
       {"w", "FloatStorage", "0", 6, 0, 3, {1ll << 40, 1ll << 40, 1ll << 40}, {1, 1, 1}}},
      {"overflowing view offset", "overflow",
       {"w", "FloatStorage", "0", 6, 0, 2, {3, 3}, {INT64_MAX, INT64_MAX}}},
      {"stride-0 expansion beyond the copy budget", "copies",
       {"w", "FloatStorage", "0", 6, 0, 2, {1ll << 20, 1ll << 10}, {0, 0}}},
      {"negative size", "negative", {"w", "FloatStorage", "0", 6, 0, 1, {-1}, {1}}},
      {"unknown storage class", "forbidden global torch.ComplexFloatStorage",
       {"w", "ComplexFloatStorage", "0", 6, 0, 1, {6}, {1}}},
      {"nine dimensions", "dimensions", {"w", "FloatStorage", "0", 6, 0, 0, {0}, {0}}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tu_bytes pkl = state_dict_pickle(&cases[i].t, 1);
    if (cases[i].t.ndim == 0 && strcmp(cases[i].what, "nine dimensions") == 0) {
      /* Hand-build a 9-d size tuple. */
      free(pkl.p);
      pkl = (tu_bytes){0};
      tspec t = cases[i].t;
      put8(&pkl, 0x80), put8(&pkl, 2), put8(&pkl, '}'), put8(&pkl, '(');
      p_str(&pkl, t.name);
      p_global(&pkl, "torch._utils", "_rebuild_tensor_v2");
      put8(&pkl, '('), put8(&pkl, '('), p_str(&pkl, "storage");
      p_global(&pkl, "torch", "FloatStorage");
      p_str(&pkl, "0"), p_str(&pkl, "cpu"), p_int(&pkl, 6), put8(&pkl, 't'), put8(&pkl, 'Q');
      p_int(&pkl, 0);
      int64_t ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
      p_ints_tuple(&pkl, 9, ones), p_ints_tuple(&pkl, 9, ones);
      put8(&pkl, 0x89), put8(&pkl, '}'), put8(&pkl, 't'), put8(&pkl, 'R');
      put8(&pkl, 'u'), put8(&pkl, '.');
    }
    expect_reject(cases[i].what, &pkl, cases[i].want);
    free(pkl.p);
  }
  /* Two tensors under one name. */
  tspec dup[2] = {{"w", "FloatStorage", "0", 6, 0, 1, {6}, {1}},
                  {"w", "FloatStorage", "0", 6, 0, 1, {3}, {1}}};
  tu_bytes pkl = state_dict_pickle(dup, 2);
  vb_tensor_table tt;
  vb_tt_init(&tt);
  tu_bytes zip;
  CHECK(parse_archive(&tt, &pkl, 0, 0, &zip) != 0 && strstr(vb_error_message(), "twice"),
        "duplicate names: %s", vb_error_message());
  vb_tt_free(&tt);
  free(zip.p);
  free(pkl.p);
}

/* ---- non-contiguous views become contiguous copies; tied views share data ---- */
static void test_views(void) {
  /* k_six as a 3x2 matrix [[0,1],[2,3],[4,5]]; its transpose is 2x3 with stride (1,2). */
  tspec t[4] = {
      {"transposed", "FloatStorage", "0", 6, 0, 2, {2, 3}, {1, 2}},
      {"tail", "FloatStorage", "0", 6, 2, 2, {2, 2}, {2, 1}},
      {"column", "FloatStorage", "0", 6, 1, 2, {3, 1}, {1, 7}}, /* size-1 dim: stride irrelevant */
      {"scalar", "FloatStorage", "0", 6, 5, 0, {0}, {0}},
  };
  tu_bytes pkl = state_dict_pickle(t, 4);
  zent e[2] = {{"checkpoint/data.pkl", pkl.p, pkl.n, 0}, {"checkpoint/data/0", k_six, 24, 0}};
  tu_bytes zip = make_zip(e, 2, 1);
  char *path = vb_path_join(tu_tmpdir(), "views.bin");
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(zip.p, 1, zip.n, f) == zip.n && fclose(f) == 0, "cannot write %s", path);
  vb_tensor_table tt;
  vb_tt_init(&tt);
  if (CHECK_OK(vb_torch_bin_load(&tt, path))) {
    const vb_tensor_info *tr = vb_tt_find(&tt, "transposed"), *tail = vb_tt_find(&tt, "tail");
    const vb_tensor_info *col = vb_tt_find(&tt, "column"), *sc = vb_tt_find(&tt, "scalar");
    const float want_tr[6] = {0, 2, 4, 1, 3, 5};
    CHECK(tr && tr->ndim == 2 && tr->shape[0] == 2 && tr->shape[1] == 3 && tr->nbytes == 24 &&
              memcmp(tr->data, want_tr, 24) == 0,
          "transposed view not converted to contiguous [[0,2,4],[1,3,5]]");
    CHECK(tt.nowned == 1, "expected exactly one owned copy, got %zu", tt.nowned);
    CHECK(tail && tail->nbytes == 16 && memcmp(tail->data, k_six + 2, 16) == 0 &&
              (const uint8_t *)tail->data >= tt.maps[0].data &&
              (const uint8_t *)tail->data < tt.maps[0].data + tt.maps[0].size,
          "offset view should point into the mapping");
    CHECK(col && col->shape[0] == 3 && col->shape[1] == 1 && tail &&
              (const uint8_t *)col->data + 4 == (const uint8_t *)tail->data,
          "column view should be contiguous, starting at element 1 of the mapping");
    CHECK(sc && sc->ndim == 0 && sc->nbytes == 4 && *(const float *)sc->data == 5, "scalar wrong");
  }
  vb_tt_free(&tt);
  free(path);
  free(zip.p);
  free(pkl.p);
}

/* Extra opcodes torch/pickle may emit: FRAME, MEMOIZE, BINUNICODE8, LONG1, BINFLOAT,
 * OrderedDict top level with BUILD(_metadata), _rebuild_parameter, metadata arg. */
static void test_protocol4_ordereddict(void) {
  tu_bytes b = {0};
  put8(&b, 0x80), put8(&b, 4);
  put8(&b, 0x95), tu_put_le(&b, 0, 8); /* FRAME hint */
  p_global(&b, "collections", "OrderedDict");
  put8(&b, 0x94), put8(&b, ')'), put8(&b, 'R'), put8(&b, 0x94);
  put8(&b, '(');
  put8(&b, 0x8d), tu_put_le(&b, 5, 8), put_str(&b, "param");
  put8(&b, 0x8c), put8(&b, 12), put_str(&b, "torch._utils");
  put8(&b, 0x8c), put8(&b, 18), put_str(&b, "_rebuild_parameter");
  put8(&b, 0x93);
  tspec t = {"", "HalfStorage", "0", 12, 0, 1, {12}, {1}};
  tu_bytes inner = {0};
  p_tensor(&inner, &t); /* name "" + rebuild; drop the name string (5 bytes) */
  tu_put(&b, inner.p + 5, inner.n - 5);
  free(inner.p);
  /* wrap: _rebuild_parameter((tensor, True, OrderedDict())) */
  put8(&b, 0x88), put8(&b, '}'), put8(&b, 0x87), put8(&b, 'R');
  put8(&b, 0x8c), put8(&b, 1), put_str(&b, "n");
  p_global(&b, "torch._utils", "_rebuild_tensor_v2");
  put8(&b, '(');
  put8(&b, '('), p_str(&b, "storage"), p_global(&b, "torch", "LongStorage"), p_str(&b, "0");
  p_str(&b, "cpu"), put8(&b, 0x8a), put8(&b, 1), put8(&b, 3), put8(&b, 't'), put8(&b, 'Q');
  p_int(&b, 0), put8(&b, ')'), put8(&b, ')'), put8(&b, 0x89), put8(&b, '}');
  put8(&b, '}'); /* metadata argument */
  put8(&b, 't'), put8(&b, 'R');
  put8(&b, 'u');
  /* BUILD with torch's {'_metadata': OrderedDict({'': {'version': 1}})} state */
  put8(&b, '}'), put8(&b, 0x8c), put8(&b, 9), put_str(&b, "_metadata");
  put8(&b, '}'), put8(&b, 0x8c), put8(&b, 0), put8(&b, '}'), put8(&b, 0x8c), put8(&b, 7);
  put_str(&b, "version"), p_int(&b, 1), put8(&b, 's'), put8(&b, 's'), put8(&b, 's');
  put8(&b, 'b'), put8(&b, '.');
  vb_tensor_table tt;
  vb_tt_init(&tt);
  tu_bytes zip;
  if (CHECK(parse_archive(&tt, &b, 0, 0, &zip) == 0, "protocol 4 OrderedDict: %s",
            vb_error_message())) {
    const vb_tensor_info *p = vb_tt_find(&tt, "param"), *n = vb_tt_find(&tt, "n");
    CHECK(p && p->dtype == VB_DT_F16 && p->ndim == 1 && p->shape[0] == 12 && p->nbytes == 24,
          "param wrong");
    CHECK(n && n->dtype == VB_DT_I64 && n->ndim == 0 && n->nbytes == 8, "scalar long wrong");
  }
  vb_tt_free(&tt);
  free(zip.p);
  free(b.p);
}

int main(void) {
  test_fixtures();
  test_truncated();
  test_zip_structure();
  test_hostile_pickles();
  test_hostile_tensors();
  test_views();
  test_protocol4_ordereddict();
  return tu_finish();
}
