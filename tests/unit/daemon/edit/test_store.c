/* test_store.c — daemon/edit/store.{h,c}: records round-trip byte for byte
 * and come back oldest first; put replaces, remove forgets (absent is
 * fine); every kind of damage (bad magic, header naming another id, size
 * out of range, truncation, trailing bytes, a flipped byte) is skipped and
 * renamed .bad while the sound records load; names that are not ids and
 * temporaries are ignored; ids are checked; a directory that cannot be made
 * is an error naming it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "edit/store.h"
#include "unit_main.h"

static char g_dir[64];

static void setup(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/nne-store-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_dir));
  nne_log_set_level(NNE_LOG_OFF); /* damaged records warn */
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  ck_assert_int_eq(system(cmd), 0);
}

static nne_edit_record_t rec(const char *id, int64_t created, const char *b) {
  nne_edit_record_t r;
  memset(&r, 0, sizeof r);
  snprintf(r.id, sizeof r.id, "%s", id);
  r.created_unix_ms = created;
  r.request = (uint8_t *)b;
  r.request_len = strlen(b);
  return r;
}

static void put(nne_edit_store_t *st, const char *id, int64_t created,
                const char *bytes) {
  nne_edit_record_t r = rec(id, created, bytes);
  nne_err_t err;
  ck_assert_msg(nne_edit_store_put(st, "m", &r, &err) == 0, "%s", err.msg);
}

static void path_of(char *out, size_t n, const char *id, const char *ext) {
  snprintf(out, n, "%s/sets/m/%s%s", g_dir, id, ext);
}

static void write_file(const char *id, const char *text, size_t len) {
  char p[256];
  FILE *f;
  path_of(p, sizeof p, id, ".es");
  f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  fclose(f);
}

START_TEST(test_round_trip_oldest_first) {
  nne_edit_store_t st;
  nne_edit_record_t *v;
  nne_err_t err;
  size_t n;
  static const char bin[] = "\x0a\x01m\x00\xff binary";

  ck_assert_int_eq(nne_edit_store_open(&st, g_dir, &err), 0);
  put(&st, "es-00000000000000b2", 200, "second");
  put(&st, "es-00000000000000a1", 100, "first");
  {
    nne_edit_record_t r = rec("es-00000000000000c3", 300, "x");
    r.request = (uint8_t *)bin;
    r.request_len = sizeof bin - 1; /* a NUL inside */
    ck_assert_int_eq(nne_edit_store_put(&st, "m", &r, &err), 0);
  }
  put(&st, "es-00000000000000b2", 200, "second, replaced");
  ck_assert_int_eq(nne_edit_store_load(&st, "m", &v, &n, &err), 0);
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(v[0].id, "es-00000000000000a1");
  ck_assert_int_eq(v[0].created_unix_ms, 100);
  ck_assert_uint_eq(v[0].request_len, 5);
  ck_assert(memcmp(v[0].request, "first", 5) == 0);
  ck_assert_str_eq(v[1].id, "es-00000000000000b2");
  ck_assert(memcmp(v[1].request, "second, replaced", 16) == 0);
  ck_assert_uint_eq(v[2].request_len, sizeof bin - 1);
  ck_assert(memcmp(v[2].request, bin, sizeof bin - 1) == 0);
  nne_edit_records_free(v, n);
  /* Another model has none; a removed record is gone, twice is fine. */
  ck_assert_int_eq(nne_edit_store_load(&st, "other", &v, &n, &err), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(nne_edit_store_remove(&st, "m", "es-00000000000000a1", &err),
                   0);
  ck_assert_int_eq(nne_edit_store_remove(&st, "m", "es-00000000000000a1", &err),
                   0);
  ck_assert_int_eq(nne_edit_store_load(&st, "m", &v, &n, &err), 0);
  ck_assert_uint_eq(n, 2);
  nne_edit_records_free(v, n);
  nne_edit_store_close(&st);
}
END_TEST

START_TEST(test_damage_skipped_and_renamed) {
  static const char *const bad_ids[] = {
      "es-0000000000000001", "es-0000000000000002", "es-0000000000000003",
      "es-0000000000000004", "es-0000000000000005", "es-0000000000000006"};
  nne_edit_store_t st;
  nne_edit_record_t *v;
  nne_err_t err;
  char p[256], text[256];
  size_t n, i;
  int len;

  ck_assert_int_eq(nne_edit_store_open(&st, g_dir, &err), 0);
  put(&st, "es-00000000000000aa", 1, "sound");
  /* Bad magic; a header naming another id; a size out of range. */
  write_file(bad_ids[0], "hello\nxyz", 9);
  len = snprintf(text, sizeof text,
                 "nnedit-edit-set 1 es-00000000000000aa 1 3 0\nabc");
  write_file(bad_ids[1], text, (size_t)len);
  len = snprintf(text, sizeof text,
                 "nnedit-edit-set 1 %s 1 0 0\n", bad_ids[2]);
  write_file(bad_ids[2], text, (size_t)len);
  /* Truncated, trailing bytes, a flipped byte: from a sound record. */
  for (i = 3; i < 6; i++) {
    FILE *f;
    long size;
    put(&st, bad_ids[i], 2, "payload");
    path_of(p, sizeof p, bad_ids[i], ".es");
    f = fopen(p, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    if (i == 3) {
      fclose(f);
      ck_assert_int_eq(truncate(p, size - 2), 0);
      continue;
    }
    if (i == 4) {
      fputc('!', f);
    } else {
      fseek(f, size - 1, SEEK_SET);
      fputc('X', f);
    }
    fclose(f);
  }
  /* Ignored: not an id, a temporary, an old .bad. */
  write_file("notanid", "x", 1);
  path_of(p, sizeof p, ".es-00000000000000ab", ".tmp");
  fclose(fopen(p, "w"));
  ck_assert_int_eq(nne_edit_store_load(&st, "m", &v, &n, &err), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_str_eq(v[0].id, "es-00000000000000aa");
  nne_edit_records_free(v, n);
  for (i = 0; i < 6; i++) {
    path_of(p, sizeof p, bad_ids[i], ".es.bad");
    ck_assert_msg(access(p, F_OK) == 0, "%s not renamed", bad_ids[i]);
  }
  /* A second load finds the same sound record and nothing else. */
  ck_assert_int_eq(nne_edit_store_load(&st, "m", &v, &n, &err), 0);
  ck_assert_uint_eq(n, 1);
  nne_edit_records_free(v, n);
  nne_edit_store_close(&st);
}
END_TEST

START_TEST(test_ids_and_bad_dir) {
  nne_edit_store_t st;
  nne_err_t err;
  char p[128];
  FILE *f;
  ck_assert(nne_edit_set_id_valid("es-0123456789abcdef"));
  ck_assert(!nne_edit_set_id_valid("es-0123456789ABCDEF"));
  ck_assert(!nne_edit_set_id_valid("es-0123456789abcde"));
  ck_assert(!nne_edit_set_id_valid("xs-0123456789abcdef"));
  ck_assert(!nne_edit_set_id_valid("es-0123456789abcdef0"));
  snprintf(p, sizeof p, "%s/file", g_dir);
  f = fopen(p, "w");
  fclose(f);
  ck_assert_int_ne(nne_edit_store_open(&st, p, &err), 0);
  ck_assert_ptr_nonnull(strstr(err.msg, "--state-dir"));
  ck_assert_ptr_nonnull(strstr(err.msg, p));
  ck_assert_ptr_null(st.dir);
}
END_TEST

static Suite *store_suite(void) {
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_round_trip_oldest_first);
  tcase_add_test(tc, test_damage_skipped_and_renamed);
  tcase_add_test(tc, test_ids_and_bad_dir);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nne_test_run_suite(store_suite()); }
