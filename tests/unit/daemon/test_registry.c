/* test_registry.c — daemon/registry.{h,c}: model names, model.json, the
 * repository scan and lookup over a temporary directory, and (when the
 * fixture repository has been generated) loading, acquiring, releasing and
 * unloading a real TorchScript archive through a loader executor on a libuv
 * loop.
 *
 * Fixtures: /usr/bin/python3 tests/fixtures/gen_fixtures.py --out build/fixtures
 * ($NNE_FIXTURES_DIR overrides the build's default). Without them the load
 * tests say so on stderr and pass without checking anything.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"
#include "fixtures.h"
#include "registry.h"

/* ---- file system helpers ---------------------------------------------------- */

static char repo[256];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
  ck_assert_int_eq(fclose(f), 0);
}

static void mkdir_in(const char *dir, const char *name, char *out) {
  snprintf(out, PATH_MAX, "%s/%s", dir, name);
  ck_assert_msg(mkdir(out, 0755) == 0, "mkdir %s: %s", out, strerror(errno));
}

/* <repo>/<name>/ with model.pt and/or model.json holding the given text. */
static void add_model(const char *name, const char *pt, const char *json) {
  char dir[PATH_MAX], path[PATH_MAX + 16];
  mkdir_in(repo, name, dir);
  if (pt != NULL) {
    snprintf(path, sizeof path, "%s/model.pt", dir);
    write_file(path, pt);
  }
  if (json != NULL) {
    snprintf(path, sizeof path, "%s/model.json", dir);
    write_file(path, json);
  }
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void rm_rf(const char *path) {
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_model(const char *name) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/%s", repo, name);
  rm_rf(dir);
}

static void repo_setup(void) {
  snprintf(repo, sizeof repo, "/tmp/nne_test_registry_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(repo));
}

static void repo_teardown(void) {
  if (repo[0] != '\0')
    rm_rf(repo);
  repo[0] = '\0';
}

/* Names of the entries, comma-separated, in list order. */
static void entry_names(const nne_registry_t *reg, char *out, size_t cap) {
  const nne_model_entry_t *e;
  size_t n = 0;
  out[0] = '\0';
  for (e = reg->entries; e != NULL; e = e->next)
    n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", e->name);
}

/* ---- names ---------------------------------------------------------------------- */

static void expect_bad_name(const char *name) {
  nne_err_t err;
  memset(&err, 0, sizeof err);
  ck_assert_msg(nne_registry_check_name("req.model", name, &err) == NNE_EINVAL,
                "name '%s' accepted", name);
  ck_assert_int_eq(err.code, NNE_EINVAL);
  ck_assert_msg(strncmp(err.msg, "req.model: ", 11) == 0,
                "message for '%s' does not start with the field: '%s'", name,
                err.msg);
}

START_TEST(test_check_name_accepts) {
  char n127[128];
  nne_err_t err;
  memset(n127, 'a', 127);
  n127[127] = '\0';
  ck_assert_int_eq(nne_registry_check_name("name", "gpt2-script", &err), 0);
  ck_assert_int_eq(nne_registry_check_name("name", "a", &err), 0);
  ck_assert_int_eq(nne_registry_check_name("name", "Llama_3.1-8B", &err), 0);
  ck_assert_int_eq(nne_registry_check_name("name", "a..b", &err), 0);
  ck_assert_int_eq(nne_registry_check_name("name", n127, &err), 0);
  /* err may be NULL (the scan uses it that way). */
  ck_assert_int_eq(nne_registry_check_name("name", "ok", NULL), 0);
  ck_assert_int_eq(nne_registry_check_name("name", "../x", NULL), NNE_EINVAL);
}
END_TEST

START_TEST(test_check_name_rejects) {
  char n128[129];
  nne_err_t err;
  memset(n128, 'a', 128);
  n128[128] = '\0';
  expect_bad_name("");
  expect_bad_name(".hidden");
  expect_bad_name(".");
  expect_bad_name("..");
  expect_bad_name("../x");
  expect_bad_name("a/b");
  expect_bad_name("/abs");
  expect_bad_name("a\\b");
  expect_bad_name("a b");
  expect_bad_name("a\tb");
  expect_bad_name("a\nb");
  expect_bad_name("caf\xc3\xa9"); /* "café" in UTF-8 */
  expect_bad_name("\xff");
  expect_bad_name("a:b");
  expect_bad_name(n128);

  nne_registry_check_name("req.model", n128, &err);
  ck_assert_ptr_nonnull(strstr(err.msg, "128"));
  nne_registry_check_name("req.model", "caf\xc3\xa9", &err);
  ck_assert_ptr_nonnull(strstr(err.msg, "0xc3"));
  nne_registry_check_name("req.model", "", &err);
  ck_assert_ptr_nonnull(strstr(err.msg, "required"));
}
END_TEST

/* ---- model.json ----------------------------------------------------------------- */

static const char fixture_json[] =
    "{\n"
    " \"family\": \"gpt2\",\n"
    " \"export\": \"script\",\n"
    " \"device\": \"cpu\",\n"
    " \"dtype\": \"float32\",\n"
    " \"config\": {\n"
    "  \"vocab_size\": 1000,\n"
    "  \"d_model\": 64,\n"
    "  \"n_layers\": 2\n"
    " },\n"
    " \"limits\": {\n"
    "  \"max_batch\": 16,\n"
    "  \"max_seq_len\": 64\n"
    " },\n"
    " \"pad_token_id\": 0,\n"
    " \"description\": \"tiny random-weight GPT-2\"\n"
    "}\n";

static int parse_spec(const char *text, nne_model_spec_t *spec,
                      nne_err_t *err) {
  memset(err, 0, sizeof *err);
  return nne_model_spec_parse(text, strlen(text), "m1/model.json", spec, err);
}

/* Expects NNE_EINVAL with a message that starts with the file and contains
 * `needle` (NULL: anything). */
static void expect_bad_spec(const char *text, const char *needle) {
  nne_model_spec_t spec;
  nne_err_t err;
  int rc = parse_spec(text, &spec, &err);
  ck_assert_msg(rc == NNE_EINVAL, "accepted: %s", text);
  ck_assert_int_eq(err.code, NNE_EINVAL);
  ck_assert_msg(strncmp(err.msg, "m1/model.json: ", 15) == 0,
                "no file prefix in '%s'", err.msg);
  if (needle != NULL)
    ck_assert_msg(strstr(err.msg, needle) != NULL,
                  "'%s' does not mention '%s' (input %s)", err.msg, needle,
                  text);
}

START_TEST(test_spec_full) {
  nne_model_spec_t spec;
  nne_err_t err;
  ck_assert_int_eq(parse_spec(fixture_json, &spec, &err), 0);
  ck_assert_str_eq(spec.family, "gpt2");
  ck_assert_str_eq(spec.export_kind, "script");
  ck_assert_str_eq(spec.device, "cpu");
  ck_assert_int_eq(spec.dtype, NNE_DTYPE_F32);
  ck_assert_uint_eq(spec.max_batch, 16);
  ck_assert_uint_eq(spec.max_seq_len, 64);
  ck_assert_int_eq(spec.pad_token_id, 0);
}
END_TEST

START_TEST(test_spec_defaults) {
  nne_model_spec_t spec;
  nne_err_t err;
  memset(&spec, 0x55, sizeof spec);
  ck_assert_int_eq(parse_spec("{}", &spec, &err), 0);
  ck_assert_str_eq(spec.family, "");
  ck_assert_str_eq(spec.export_kind, "");
  ck_assert_str_eq(spec.device, "");
  ck_assert_int_eq(spec.dtype, NNE_DTYPE_INVALID);
  ck_assert_uint_eq(spec.max_batch, 0);
  ck_assert_uint_eq(spec.max_seq_len, 0);
  ck_assert_int_eq(spec.pad_token_id, -1);

  /* null is "not given". */
  ck_assert_int_eq(parse_spec("{\"family\": null, \"dtype\": null, "
                              "\"limits\": null, \"pad_token_id\": null}",
                              &spec, &err),
                   0);
  ck_assert_int_eq(spec.dtype, NNE_DTYPE_INVALID);
  ck_assert_int_eq(spec.pad_token_id, -1);

  /* A partial limits object leaves the other limit at 0. */
  ck_assert_int_eq(parse_spec("{\"limits\": {\"max_seq_len\": 4096}, "
                              "\"pad_token_id\": 50256}",
                              &spec, &err),
                   0);
  ck_assert_uint_eq(spec.max_batch, 0);
  ck_assert_uint_eq(spec.max_seq_len, 4096);
  ck_assert_int_eq(spec.pad_token_id, 50256);

  /* The largest u32 limit is fine. */
  ck_assert_int_eq(
      parse_spec("{\"limits\": {\"max_batch\": 4294967295}}", &spec, &err), 0);
  ck_assert_uint_eq(spec.max_batch, 4294967295u);
}
END_TEST

START_TEST(test_spec_dtypes) {
  nne_model_spec_t spec;
  nne_err_t err;
  ck_assert_int_eq(parse_spec("{\"dtype\": \"bfloat16\"}", &spec, &err), 0);
  ck_assert_int_eq(spec.dtype, NNE_DTYPE_BF16);
  ck_assert_int_eq(parse_spec("{\"dtype\": \"fp16\"}", &spec, &err), 0);
  ck_assert_int_eq(spec.dtype, NNE_DTYPE_F16);
  ck_assert_int_eq(parse_spec("{\"dtype\": \"float64\"}", &spec, &err), 0);
  ck_assert_int_eq(spec.dtype, NNE_DTYPE_F64);
  expect_bad_spec("{\"dtype\": \"float8\"}", "float8");
  expect_bad_spec("{\"dtype\": \"FLOAT32\"}", "dtype");
}
END_TEST

START_TEST(test_spec_wrong_types) {
  expect_bad_spec("{\"family\": 5}", "\"family\"");
  expect_bad_spec("{\"export\": true}", "\"export\"");
  expect_bad_spec("{\"device\": [\"cpu\"]}", "\"device\"");
  expect_bad_spec("{\"dtype\": 1}", "\"dtype\"");
  expect_bad_spec("{\"limits\": \"big\"}", "\"limits\"");
  expect_bad_spec("{\"limits\": [16, 64]}", "\"limits\"");
  expect_bad_spec("{\"limits\": {\"max_batch\": \"16\"}}", "\"max_batch\"");
  expect_bad_spec("{\"limits\": {\"max_batch\": 1.5}}", "\"max_batch\"");
  expect_bad_spec("{\"limits\": {\"max_seq_len\": true}}", "\"max_seq_len\"");
  expect_bad_spec("{\"pad_token_id\": \"0\"}", "\"pad_token_id\"");
  expect_bad_spec("{\"pad_token_id\": 0.0}", "\"pad_token_id\"");
  expect_bad_spec("[1, 2]", "object");
  expect_bad_spec("\"gpt2\"", "line 1"); /* not even JSON text to jansson */
}
END_TEST

START_TEST(test_spec_bad_limits) {
  expect_bad_spec("{\"limits\": {\"max_batch\": 0}}", "\"max_batch\"");
  expect_bad_spec("{\"limits\": {\"max_batch\": -1}}", "\"max_batch\"");
  expect_bad_spec("{\"limits\": {\"max_seq_len\": 0}}", "\"max_seq_len\"");
  expect_bad_spec("{\"limits\": {\"max_seq_len\": -4096}}", "\"max_seq_len\"");
  expect_bad_spec("{\"limits\": {\"max_batch\": 4294967296}}", "\"max_batch\"");
  expect_bad_spec("{\"pad_token_id\": -1}", "\"pad_token_id\"");
}
END_TEST

START_TEST(test_spec_string_lengths) {
  nne_model_spec_t spec;
  nne_err_t err;
  char text[256];
  /* family holds 31 characters; 32 do not fit. */
  snprintf(text, sizeof text, "{\"family\": \"%s\"}",
           "abcdefghijklmnopqrstuvwxyz01234");
  ck_assert_int_eq(parse_spec(text, &spec, &err), 0);
  ck_assert_str_eq(spec.family, "abcdefghijklmnopqrstuvwxyz01234");
  snprintf(text, sizeof text, "{\"family\": \"%s\"}",
           "abcdefghijklmnopqrstuvwxyz012345");
  expect_bad_spec(text, "\"family\"");
  snprintf(text, sizeof text, "{\"export\": \"%s\"}", "scriptscriptscript");
  expect_bad_spec(text, "\"export\"");
}
END_TEST

START_TEST(test_spec_malformed_json) {
  /* Errors from the JSON parser name the file and the line. */
  expect_bad_spec("{\n  \"family\": \"gpt2\",\n  oops\n}\n", "line 3");
  expect_bad_spec("{\"family\": \"gpt2\"", "line 1");
  expect_bad_spec("{\n\"family\": \"a\",\n\"family\": \"b\"\n}", "line");
  expect_bad_spec("{\"family\": \"a\", \"family\": \"b\"}", "duplicate");
  expect_bad_spec("{} trailing", "line 1");
  expect_bad_spec("", NULL);
  expect_bad_spec("{\"limits\": {\"max_batch\": 1, \"max_batch\": 2}}",
                  "duplicate");
}
END_TEST

START_TEST(test_spec_respects_length) {
  /* Only `len` bytes are parsed: the rest of the buffer is not JSON. */
  static const char text[] = "{\"family\": \"gpt2\"}GARBAGE";
  nne_model_spec_t spec;
  nne_err_t err;
  ck_assert_int_eq(nne_model_spec_parse(text, 18, "x/model.json", &spec, &err),
                   0);
  ck_assert_str_eq(spec.family, "gpt2");
  ck_assert_int_eq(
      nne_model_spec_parse(text, sizeof text - 1, "x/model.json", &spec, &err),
      NNE_EINVAL);
  ck_assert(strncmp(err.msg, "x/model.json: line 1", 20) == 0);
}
END_TEST

/* ---- scan and lookup -------------------------------------------------------------- */

START_TEST(test_init_scans_models) {
  nne_registry_t reg;
  nne_err_t err;
  char names[1024], dir[PATH_MAX], sub[PATH_MAX], file[PATH_MAX + 16];
  const nne_model_entry_t *e;

  add_model("beta", NULL, "{}");         /* model.json alone counts */
  add_model("alpha", "not really", NULL); /* model.pt alone counts */
  add_model(".hidden", "x", "{}");        /* hidden: ignored */
  add_model("bad name", "x", NULL);       /* not a valid name: ignored */
  add_model("empty", NULL, NULL);         /* no model files: ignored */
  mkdir_in(repo, "nested", dir);          /* model files one level too deep */
  mkdir_in(dir, "inner", sub);
  snprintf(file, sizeof file, "%s/model.pt", sub);
  write_file(file, "x");
  mkdir_in(repo, "dirpt", dir); /* model.pt that is a directory */
  mkdir_in(dir, "model.pt", sub);
  snprintf(file, sizeof file, "%s/loose.pt", repo);
  write_file(file, "x"); /* a file, not a directory */

  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 1024, 32768, NULL, &err),
                   0);
  entry_names(&reg, names, sizeof names);
  ck_assert_str_eq(names, "alpha,beta");
  for (e = reg.entries; e != NULL; e = e->next) {
    ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
    ck_assert(e->present);
    ck_assert_ptr_null(e->model);
    ck_assert_int_eq(e->in_flight, 0);
    ck_assert_int_eq(e->spec.pad_token_id, -1);
  }
  ck_assert_uint_eq(reg.max_batch, 1024);
  ck_assert_uint_eq(reg.max_seq_len, 32768);
  nne_registry_close(&reg);
  ck_assert_ptr_null(reg.entries);
}
END_TEST

START_TEST(test_init_repo_is_absolute) {
  nne_registry_t reg;
  nne_err_t err;
  char indirect[PATH_MAX + 32], real[PATH_MAX];
  const char *base = strrchr(repo, '/') + 1;
  snprintf(indirect, sizeof indirect, "/tmp/./../tmp/%s/", base);
  ck_assert_ptr_nonnull(realpath(repo, real));
  ck_assert_int_eq(
      nne_registry_init(&reg, indirect, "cpu", 8, 8, NULL, &err), 0);
  ck_assert_str_eq(reg.repo, real);
  ck_assert_str_eq(reg.device_override, "cpu");
  ck_assert_ptr_null(reg.entries);
  nne_registry_close(&reg);
}
END_TEST

START_TEST(test_lookup_rescans_and_forgets) {
  nne_registry_t reg;
  nne_err_t err;
  nne_model_entry_t *e = NULL, *alpha;
  char names[256];

  add_model("alpha", "x", NULL);
  add_model("beta", "x", "{}");
  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 64, 64, NULL, &err), 0);

  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "alpha", &e, &err), 0);
  ck_assert_ptr_nonnull(e);
  ck_assert_str_eq(e->name, "alpha");
  alpha = e;

  /* A model dropped in after start is found by the lookup's rescan. */
  add_model("gamma", "x", NULL);
  e = NULL;
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "gamma", &e, &err), 0);
  ck_assert_ptr_nonnull(e);
  ck_assert_str_eq(e->name, "gamma");
  ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
  entry_names(&reg, names, sizeof names);
  ck_assert_str_eq(names, "alpha,beta,gamma");
  /* Known entries keep their identity across scans. */
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "alpha", &e, &err), 0);
  ck_assert_ptr_eq(e, alpha);

  /* A removed one disappears at the next scan... */
  remove_model("beta");
  ck_assert_int_eq(nne_registry_scan(&reg, &err), 0);
  entry_names(&reg, names, sizeof names);
  ck_assert_str_eq(names, "alpha,gamma");
  /* ...and is then not found, with a message that lists what there is. */
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_registry_lookup(&reg, "req.name", "beta", &e, &err),
                   NNE_ENOTFOUND);
  ck_assert_int_eq(err.code, NNE_ENOTFOUND);
  ck_assert_msg(strstr(err.msg, "req.name") != NULL, "%s", err.msg);
  ck_assert_msg(strstr(err.msg, "'beta'") != NULL, "%s", err.msg);
  ck_assert_msg(strstr(err.msg, "alpha, gamma") != NULL, "%s", err.msg);

  /* Rescanning an unchanged repository changes nothing. */
  ck_assert_int_eq(nne_registry_scan(&reg, &err), 0);
  ck_assert_int_eq(nne_registry_scan(&reg, &err), 0);
  entry_names(&reg, names, sizeof names);
  ck_assert_str_eq(names, "alpha,gamma");
  nne_registry_close(&reg);
}
END_TEST

START_TEST(test_lookup_bad_names) {
  nne_registry_t reg;
  nne_err_t err;
  nne_model_entry_t *e = (nne_model_entry_t *)0x1;

  add_model("alpha", "x", NULL);
  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 64, 64, NULL, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&reg, "req.name", "../alpha", &e, &err),
                   NNE_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "req.name"));
  ck_assert_int_eq(nne_registry_lookup(&reg, "req.name", "", &e, &err),
                   NNE_EINVAL);
  /* A hidden directory with a model in it is still not a model. */
  add_model(".secret", "x", NULL);
  ck_assert_int_eq(nne_registry_lookup(&reg, "req.name", ".secret", &e, &err),
                   NNE_EINVAL);
  /* An existing directory without model files is not found. */
  add_model("empty", NULL, NULL);
  ck_assert_int_eq(nne_registry_lookup(&reg, "req.name", "empty", &e, &err),
                   NNE_ENOTFOUND);
  ck_assert_ptr_eq(e, (nne_model_entry_t *)0x1); /* untouched on failure */
  nne_registry_close(&reg);
}
END_TEST

START_TEST(test_lookup_empty_repo_says_none) {
  nne_registry_t reg;
  nne_err_t err;
  nne_model_entry_t *e;
  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 64, 64, NULL, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "gpt2", &e, &err),
                   NNE_ENOTFOUND);
  ck_assert_msg(strstr(err.msg, "available: none") != NULL, "%s", err.msg);
  nne_registry_close(&reg);
}
END_TEST

START_TEST(test_lookup_long_list_is_bounded) {
  nne_registry_t reg;
  nne_err_t err;
  nne_model_entry_t *e;
  char name[128];
  int i;
  for (i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "model-%02d-%0100d", i, 0);
    add_model(name, "x", NULL);
  }
  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 64, 64, NULL, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "nope", &e, &err),
                   NNE_ENOTFOUND);
  ck_assert_uint_lt(strnlen(err.msg, sizeof err.msg), sizeof err.msg);
  ck_assert_msg(strstr(err.msg, "model-00-") != NULL, "%s", err.msg);
  ck_assert_msg(strstr(err.msg, "...") != NULL, "not truncated: %s", err.msg);
  ck_assert_msg(strstr(err.msg, "model-39-") == NULL, "%s", err.msg);
  nne_registry_close(&reg);
}
END_TEST

START_TEST(test_scan_keeps_models_in_use) {
  nne_registry_t reg;
  nne_err_t err;
  nne_model_entry_t *a, *b, *c;
  char names[256];

  add_model("a", "x", NULL);
  add_model("b", "x", NULL);
  add_model("c", "x", NULL);
  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 64, 64, NULL, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "a", &a, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "b", &b, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "c", &c, &err), 0);
  /* Pretend: a is loaded, b failed, c is held by a call. */
  a->state = NNE_MODEL_LOADED;
  b->state = NNE_MODEL_FAILED;
  c->in_flight = 1;
  remove_model("a");
  remove_model("b");
  remove_model("c");
  ck_assert_int_eq(nne_registry_scan(&reg, &err), 0);
  entry_names(&reg, names, sizeof names);
  ck_assert_str_eq(names, "a,c");
  ck_assert(!a->present);
  ck_assert(!c->present);
  /* Once free, they go at the next scan. */
  a->state = NNE_MODEL_AVAILABLE;
  c->in_flight = 0;
  ck_assert_int_eq(nne_registry_scan(&reg, &err), 0);
  ck_assert_ptr_null(reg.entries);
  nne_registry_close(&reg);
}
END_TEST

START_TEST(test_init_errors) {
  nne_registry_t reg;
  nne_err_t err;
  char path[PATH_MAX + 32];

  snprintf(path, sizeof path, "%s/does-not-exist", repo);
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_registry_init(&reg, path, NULL, 64, 64, NULL, &err),
                   NNE_EIO);
  ck_assert_int_eq(err.code, NNE_EIO);
  ck_assert_msg(strstr(err.msg, "does-not-exist") != NULL, "%s", err.msg);

  snprintf(path, sizeof path, "%s/plain-file", repo);
  write_file(path, "x");
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_registry_init(&reg, path, NULL, 64, 64, NULL, &err),
                   NNE_EINVAL);
  ck_assert_int_eq(err.code, NNE_EINVAL);
  ck_assert_msg(strstr(err.msg, "plain-file") != NULL, "%s", err.msg);
  ck_assert_msg(strstr(err.msg, "not a directory") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_scan_vanished_repo) {
  nne_registry_t reg;
  nne_err_t err;
  char moved[PATH_MAX + 8];
  add_model("a", "x", NULL);
  ck_assert_int_eq(nne_registry_init(&reg, repo, NULL, 64, 64, NULL, &err), 0);
  snprintf(moved, sizeof moved, "%s.gone", repo);
  ck_assert_int_eq(rename(repo, moved), 0);
  ck_assert_int_eq(nne_registry_scan(&reg, &err), NNE_EIO);
  ck_assert_ptr_nonnull(strstr(err.msg, repo));
  ck_assert_int_eq(rename(moved, repo), 0);
  nne_registry_close(&reg);
}
END_TEST

static void never_cb(void *ctx, nne_model_entry_t *e, const nne_err_t *err) {
  (void)e;
  (void)err;
  (*(int *)ctx)++;
}

START_TEST(test_load_refused_when_loader_stopped) {
  /* If the load cannot start, it returns the error and never calls back,
   * and the entry is left as it was (no stray waiter, not LOADING). */
  uv_loop_t loop;
  nne_executor_t loader;
  nne_registry_t reg;
  nne_err_t err;
  nne_model_entry_t *e;
  int calls = 0;

  add_model("alpha", "x", NULL);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  ck_assert_int_eq(nne_executor_init(&loader, &loop, "loader", 1, 4, &err), 0);
  ck_assert_int_eq(
      nne_registry_init(&reg, repo, NULL, 64, 64, &loader, &err), 0);
  nne_executor_close(&loader);
  ck_assert_int_eq(nne_registry_lookup(&reg, "name", "alpha", &e, &err), 0);
  ck_assert_int_eq(nne_registry_load(&reg, e, NULL, NNE_DTYPE_INVALID,
                                     never_cb, &calls, &err),
                   NNE_EUNAVAIL);
  ck_assert_int_eq(calls, 0);
  ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
  ck_assert_ptr_null(e->waiters);
  ck_assert_int_eq(reg.busy, 0);
  /* Too long a device is refused up front, also without a callback. */
  ck_assert_int_eq(
      nne_registry_load(&reg, e, "cuda:0123456789012345678901234567890",
                        NNE_DTYPE_INVALID, never_cb, &calls, &err),
      NNE_EINVAL);
  ck_assert_int_eq(calls, 0);
  ck_assert_ptr_null(e->waiters);
  nne_registry_close(&reg);
  uv_run(&loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- loading a real archive ----------------------------------------------------- */

typedef struct cb_rec {
  int calls;
  int code;                    /* 0 when err was NULL */
  char msg[NNE_ERR_MSG_MAX];
  nne_model_entry_t *entry;
  int seq;                     /* global order of the last call */
} cb_rec_t;

static int cb_seq;

static void rec_cb(void *ctx, nne_model_entry_t *entry, const nne_err_t *err) {
  cb_rec_t *r = ctx;
  r->calls++;
  r->entry = entry;
  r->seq = ++cb_seq;
  r->code = err != NULL ? err->code : 0;
  snprintf(r->msg, sizeof r->msg, "%s", err != NULL ? err->msg : "");
  if (err != NULL)
    ck_assert_int_lt(err->code, 0);
}

static struct load_env {
  int have_fixture;
  char fixture_dir[PATH_MAX];
  uv_loop_t loop;
  uv_timer_t tick;
  nne_executor_t loader;
  nne_registry_t reg;
  int idle_calls;
  int reg_open;
  int loader_closed;
} env;

static void on_tick(uv_timer_t *t) { (void)t; }
static void on_idle(void *ctx) { ((struct load_env *)ctx)->idle_calls++; }

/* Runs the loop until *counter >= want or `seconds` pass. */
static int run_until(const int *counter, int want, double seconds) {
  uint64_t deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);
  while (*counter < want && uv_hrtime() < deadline)
    uv_run(&env.loop, UV_RUN_ONCE);
  return *counter >= want;
}

/* Runs the loop for a while regardless (to show that nothing happens). */
static void run_for(double seconds) {
  uint64_t deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);
  while (uv_hrtime() < deadline)
    uv_run(&env.loop, UV_RUN_ONCE);
}

static void load_setup(void) {
  char path[PATH_MAX + 32], dir[PATH_MAX];
  nne_err_t err;
  struct stat st;

  memset(&env, 0, sizeof env);
  repo_setup();
  snprintf(env.fixture_dir, sizeof env.fixture_dir, "%s/gpt2-script",
           nne_fixtures_dir());
  snprintf(path, sizeof path, "%s/model.pt", env.fixture_dir);
  env.have_fixture = stat(path, &st) == 0 && S_ISREG(st.st_mode);
  if (!env.have_fixture) {
    fprintf(stderr,
            "test_registry: %s not found; load tests skipped (generate with "
            "/usr/bin/python3 tests/fixtures/gen_fixtures.py --out "
            "build/fixtures)\n",
            path);
    return;
  }
  /* gpt2: the fixture, through a symlink. */
  snprintf(path, sizeof path, "%s/gpt2", repo);
  ck_assert_int_eq(symlink(env.fixture_dir, path), 0);
  /* garbage: a model.pt that is no archive. */
  add_model("garbage", "this is not a TorchScript archive\n", NULL);
  /* badjson: a real archive with a broken model.json. */
  mkdir_in(repo, "badjson", dir);
  snprintf(path, sizeof path, "%s/model.pt", dir);
  {
    char target[PATH_MAX + 16];
    snprintf(target, sizeof target, "%s/model.pt", env.fixture_dir);
    ck_assert_int_eq(symlink(target, path), 0);
  }
  snprintf(path, sizeof path, "%s/model.json", dir);
  write_file(path, "{\n  \"family\": \"gpt2\"\n  \"dtype\": \"float32\"\n}\n");
  /* jsononly: model.json and no archive. */
  add_model("jsononly", NULL, "{\"family\": \"gpt2\"}");

  ck_assert_int_eq(uv_loop_init(&env.loop), 0);
  ck_assert_int_eq(uv_timer_init(&env.loop, &env.tick), 0);
  /* Keeps UV_RUN_ONCE from blocking past a deadline. */
  ck_assert_int_eq(uv_timer_start(&env.tick, on_tick, 20, 20), 0);
  ck_assert_int_eq(nne_executor_init(&env.loader, &env.loop, "loader", 1, 8,
                                     &err),
                   0);
  /* Caps: batch below the model's 16, sequence above its 64. */
  ck_assert_int_eq(nne_registry_init(&env.reg, repo, NULL, 8, 4096,
                                     &env.loader, &err),
                   0);
  env.reg_open = 1;
  env.reg.on_idle = on_idle;
  env.reg.on_idle_ctx = &env;
}

static void load_teardown(void) {
  if (env.have_fixture) {
    /* Let any unfinished job deliver before the workers stop. */
    {
      uint64_t deadline = uv_hrtime() + 30ull * 1000000000ull;
      while (env.reg.busy > 0 && uv_hrtime() < deadline)
        uv_run(&env.loop, UV_RUN_ONCE);
    }
    ck_assert_int_eq(env.reg.busy, 0);
    if (!env.loader_closed)
      nne_executor_close(&env.loader);
    if (env.reg_open)
      nne_registry_close(&env.reg);
    uv_timer_stop(&env.tick);
    uv_close((uv_handle_t *)&env.tick, NULL);
    uv_run(&env.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&env.loop), 0);
  }
  repo_teardown();
}

static nne_model_entry_t *must_lookup(const char *name) {
  nne_model_entry_t *e = NULL;
  nne_err_t err;
  ck_assert_msg(nne_registry_lookup(&env.reg, "name", name, &e, &err) == 0,
                "%s", err.msg);
  return e;
}

/* Loads `name` and waits for the callback. */
static void load_and_wait(nne_model_entry_t *e, cb_rec_t *rec) {
  nne_err_t err;
  int before = rec->calls;
  ck_assert_msg(nne_registry_load(&env.reg, e, NULL, NNE_DTYPE_INVALID, rec_cb,
                                  rec, &err) == 0,
                "load %s: %s", e->name, err.msg);
  ck_assert_msg(run_until(&rec->calls, before + 1, 60.0), "load %s timed out",
                e->name);
}

START_TEST(test_load_fixture) {
  nne_model_entry_t *e;
  nne_model_t *m;
  cb_rec_t r1 = {0}, r2 = {0}, r3 = {0};
  nne_err_t err;

  if (!env.have_fixture)
    return;
  e = must_lookup("gpt2");
  ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
  ck_assert_int_eq(nne_registry_load(&env.reg, e, NULL, NNE_DTYPE_INVALID,
                                     rec_cb, &r1, &err),
                   0);
  ck_assert_int_eq(e->state, NNE_MODEL_LOADING);
  ck_assert_int_eq(env.reg.busy, 1);
  ck_assert_int_eq(r1.calls, 0); /* not before the loop runs */

  /* While loading: a second load joins, calls are told to retry, unload is
   * refused. */
  ck_assert_int_eq(nne_registry_load(&env.reg, e, NULL, NNE_DTYPE_INVALID,
                                     rec_cb, &r2, &err),
                   0);
  ck_assert_int_eq(env.reg.busy, 1); /* joined, no second job */
  ck_assert_int_eq(nne_registry_acquire(&env.reg, e, &m, &err), NNE_EUNAVAIL);
  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &r3, &err),
                   NNE_ESTATE);
  ck_assert_int_eq(r3.calls, 0);

  ck_assert_msg(run_until(&r2.calls, 1, 60.0), "load timed out");
  ck_assert_int_eq(r1.calls, 1);
  ck_assert_int_eq(r2.calls, 1);
  ck_assert_int_lt(r1.seq, r2.seq); /* waiters in the order they came */
  ck_assert_int_eq(r1.code, 0);
  ck_assert_int_eq(r2.code, 0);
  ck_assert_ptr_eq(r1.entry, e);

  ck_assert_int_eq(e->state, NNE_MODEL_LOADED);
  ck_assert_ptr_nonnull(e->model);
  ck_assert_int_eq(e->vocab_size, 1000);
  ck_assert_str_eq(e->device, "cpu");
  ck_assert_int_eq(e->dtype, NNE_DTYPE_F32);
  ck_assert_str_eq(e->spec.family, "gpt2");
  ck_assert_str_eq(e->spec.export_kind, "script");
  ck_assert_uint_eq(e->max_batch, 8);     /* the daemon's cap is lower */
  ck_assert_uint_eq(e->max_seq_len, 64);  /* model.json's limit is lower */
  ck_assert_int_eq(e->pad_token_id, 0);
  ck_assert_str_eq(e->error, "");
  ck_assert(e->load_ms > 0.0);
  ck_assert_int_eq(e->in_flight, 0);
  ck_assert_int_eq(env.reg.busy, 0);
  ck_assert_int_eq(env.idle_calls, 1);
  ck_assert_int_eq(nne_executor_pending(&env.loader), 0);

  /* Loading a loaded model calls back at once, before returning. */
  ck_assert_int_eq(nne_registry_load(&env.reg, e, NULL, NNE_DTYPE_INVALID,
                                     rec_cb, &r3, &err),
                   0);
  ck_assert_int_eq(r3.calls, 1);
  ck_assert_int_eq(r3.code, 0);
  ck_assert_int_eq(env.reg.busy, 0);
}
END_TEST

START_TEST(test_load_failures_are_isolated) {
  nne_model_entry_t *gpt2, *garbage, *badjson, *jsononly;
  nne_model_t *m = NULL;
  cb_rec_t ok = {0}, bad = {0}, bj = {0}, jo = {0}, again = {0};
  nne_err_t err;

  if (!env.have_fixture)
    return;
  gpt2 = must_lookup("gpt2");
  garbage = must_lookup("garbage");
  badjson = must_lookup("badjson");
  jsononly = must_lookup("jsononly");

  load_and_wait(gpt2, &ok);
  ck_assert_int_eq(ok.code, 0);
  ck_assert_int_eq(gpt2->state, NNE_MODEL_LOADED);

  load_and_wait(garbage, &bad);
  ck_assert_int_lt(bad.code, 0);
  ck_assert_uint_gt(strlen(bad.msg), 0);
  ck_assert_int_eq(garbage->state, NNE_MODEL_FAILED);
  ck_assert_str_eq(garbage->error, bad.msg);
  ck_assert_ptr_null(garbage->model);

  load_and_wait(badjson, &bj);
  ck_assert_int_eq(bj.code, NNE_EINVAL);
  ck_assert_int_eq(badjson->state, NNE_MODEL_FAILED);
  ck_assert_msg(strstr(badjson->error, "badjson/model.json") != NULL, "%s",
                badjson->error);
  ck_assert_msg(strstr(badjson->error, "line 3") != NULL, "%s",
                badjson->error);

  load_and_wait(jsononly, &jo);
  ck_assert_int_lt(jo.code, 0);
  ck_assert_int_eq(jsononly->state, NNE_MODEL_FAILED);
  ck_assert_uint_gt(strlen(jsononly->error), 0);

  /* The good one is untouched by its neighbours' failures. */
  ck_assert_int_eq(gpt2->state, NNE_MODEL_LOADED);
  ck_assert_int_eq(nne_registry_acquire(&env.reg, gpt2, &m, &err), 0);
  ck_assert_ptr_nonnull(m);
  ck_assert_str_eq(nne_model_device(m), "cpu");
  nne_registry_release(&env.reg, gpt2, m);

  /* A failed model refuses calls and says why. */
  ck_assert_int_eq(nne_registry_acquire(&env.reg, garbage, &m, &err),
                   NNE_ESTATE);
  ck_assert_msg(strstr(err.msg, "failed to load") != NULL, "%s", err.msg);
  ck_assert_int_eq(garbage->in_flight, 0);

  /* A failed model may be loaded again (and fails again). */
  load_and_wait(garbage, &again);
  ck_assert_int_lt(again.code, 0);
  ck_assert_int_eq(garbage->state, NNE_MODEL_FAILED);
  ck_assert_int_eq(env.reg.busy, 0);
  ck_assert_int_eq(env.idle_calls, 5);

  /* Unloading a failed model is a no-op that calls back at once. */
  memset(&again, 0, sizeof again);
  ck_assert_int_eq(nne_registry_unload(&env.reg, garbage, rec_cb, &again, &err),
                   0);
  ck_assert_int_eq(again.calls, 1);
  ck_assert_int_eq(again.code, 0);
}
END_TEST

START_TEST(test_unload_waits_for_release) {
  nne_model_entry_t *e;
  nne_model_t *m1 = NULL, *m2 = NULL, *m3 = NULL;
  cb_rec_t ld = {0}, ul = {0}, ul2 = {0}, ld2 = {0};
  nne_err_t err;

  if (!env.have_fixture)
    return;
  e = must_lookup("gpt2");
  load_and_wait(e, &ld);
  ck_assert_int_eq(e->state, NNE_MODEL_LOADED);

  ck_assert_int_eq(nne_registry_acquire(&env.reg, e, &m1, &err), 0);
  ck_assert_int_eq(nne_registry_acquire(&env.reg, e, &m2, &err), 0);
  ck_assert_ptr_eq(m1, e->model);
  ck_assert_int_eq(e->in_flight, 2);

  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &ul, &err), 0);
  ck_assert_int_eq(e->state, NNE_MODEL_UNLOADING);
  /* A second unload joins. */
  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &ul2, &err), 0);
  run_for(0.2);
  ck_assert_int_eq(ul.calls, 0); /* calls still hold the model */
  ck_assert_int_eq(e->state, NNE_MODEL_UNLOADING);
  ck_assert_ptr_nonnull(e->model);

  /* New work is refused at once; so is a load. */
  ck_assert_int_eq(nne_registry_acquire(&env.reg, e, &m3, &err), NNE_ESTATE);
  ck_assert_int_eq(e->in_flight, 2);
  ck_assert_int_eq(nne_registry_load(&env.reg, e, NULL, NNE_DTYPE_INVALID,
                                     rec_cb, &ld2, &err),
                   NNE_ESTATE);
  ck_assert_int_eq(ld2.calls, 0);

  /* The holders' references stay valid until they release. */
  ck_assert_str_eq(nne_model_device(m1), "cpu");
  nne_registry_release(&env.reg, e, m1);
  run_for(0.1);
  ck_assert_int_eq(ul.calls, 0);
  ck_assert_int_eq(e->state, NNE_MODEL_UNLOADING);
  ck_assert_str_eq(nne_model_device(m2), "cpu");
  nne_registry_release(&env.reg, e, m2);

  ck_assert_msg(run_until(&ul2.calls, 1, 30.0), "unload timed out");
  ck_assert_int_eq(ul.calls, 1);
  ck_assert_int_lt(ul.seq, ul2.seq);
  ck_assert_int_eq(ul.code, 0);
  ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
  ck_assert_ptr_null(e->model);
  ck_assert_int_eq(e->in_flight, 0);
  ck_assert_int_eq(env.reg.busy, 0);

  /* Not loaded: unload calls back at once; acquire says to load first. */
  memset(&ul, 0, sizeof ul);
  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &ul, &err), 0);
  ck_assert_int_eq(ul.calls, 1);
  ck_assert_int_eq(nne_registry_acquire(&env.reg, e, &m3, &err), NNE_ESTATE);
  ck_assert_msg(strstr(err.msg, "not loaded") != NULL, "%s", err.msg);

  /* And it loads again. */
  memset(&ld, 0, sizeof ld);
  load_and_wait(e, &ld);
  ck_assert_int_eq(ld.code, 0);
  ck_assert_int_eq(e->state, NNE_MODEL_LOADED);
  ck_assert_int_eq(e->vocab_size, 1000);
  /* Closed with the model loaded: nne_registry_close drops it. */
}
END_TEST

START_TEST(test_unload_idle_model) {
  nne_model_entry_t *e;
  cb_rec_t ld = {0}, ul = {0};
  nne_err_t err;

  if (!env.have_fixture)
    return;
  e = must_lookup("gpt2");
  load_and_wait(e, &ld);
  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &ul, &err), 0);
  ck_assert_int_eq(e->state, NNE_MODEL_UNLOADING);
  ck_assert_int_eq(ul.calls, 0); /* freed on the loader, reported later */
  ck_assert_int_eq(env.reg.busy, 1);
  ck_assert_msg(run_until(&ul.calls, 1, 30.0), "unload timed out");
  ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
  ck_assert_int_eq(env.reg.busy, 0);
}
END_TEST

START_TEST(test_removed_while_loaded_stays_until_unloaded) {
  nne_model_entry_t *e;
  cb_rec_t ld = {0}, ul = {0};
  nne_err_t err;
  char link[PATH_MAX + 16];

  if (!env.have_fixture)
    return;
  e = must_lookup("gpt2");
  load_and_wait(e, &ld);
  snprintf(link, sizeof link, "%s/gpt2", repo);
  ck_assert_int_eq(unlink(link), 0);
  ck_assert_int_eq(nne_registry_scan(&env.reg, &err), 0);
  ck_assert_ptr_eq(must_lookup("gpt2"), e);
  ck_assert_int_eq(e->state, NNE_MODEL_LOADED);
  ck_assert(!e->present);

  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &ul, &err), 0);
  ck_assert_msg(run_until(&ul.calls, 1, 30.0), "unload timed out");
  ck_assert_int_eq(nne_registry_scan(&env.reg, &err), 0);
  ck_assert_int_eq(nne_registry_lookup(&env.reg, "name", "gpt2", &e, &err),
                   NNE_ENOTFOUND);
}
END_TEST

START_TEST(test_unload_with_loader_stopped_frees_inline) {
  nne_model_entry_t *e;
  cb_rec_t ld = {0}, ul = {0};
  nne_err_t err;

  if (!env.have_fixture)
    return;
  e = must_lookup("gpt2");
  load_and_wait(e, &ld);
  ck_assert_int_eq(e->state, NNE_MODEL_LOADED);
  nne_executor_close(&env.loader);
  env.loader_closed = 1;
  /* The loader refuses the job: the model is dropped here and the callback
   * still runs, so an Unload call is always answered. */
  ck_assert_int_eq(nne_registry_unload(&env.reg, e, rec_cb, &ul, &err), 0);
  ck_assert_int_eq(ul.calls, 1);
  ck_assert_int_eq(ul.code, 0);
  ck_assert_int_eq(e->state, NNE_MODEL_AVAILABLE);
  ck_assert_ptr_null(e->model);
  ck_assert_int_eq(env.reg.busy, 0);
}
END_TEST

static Suite *registry_suite(void) {
  Suite *s = suite_create("registry");
  TCase *tc;

  tc = tcase_create("names");
  tcase_add_test(tc, test_check_name_accepts);
  tcase_add_test(tc, test_check_name_rejects);
  suite_add_tcase(s, tc);

  tc = tcase_create("spec");
  tcase_add_test(tc, test_spec_full);
  tcase_add_test(tc, test_spec_defaults);
  tcase_add_test(tc, test_spec_dtypes);
  tcase_add_test(tc, test_spec_wrong_types);
  tcase_add_test(tc, test_spec_bad_limits);
  tcase_add_test(tc, test_spec_string_lengths);
  tcase_add_test(tc, test_spec_malformed_json);
  tcase_add_test(tc, test_spec_respects_length);
  suite_add_tcase(s, tc);

  tc = tcase_create("scan");
  tcase_add_checked_fixture(tc, repo_setup, repo_teardown);
  tcase_add_test(tc, test_init_scans_models);
  tcase_add_test(tc, test_init_repo_is_absolute);
  tcase_add_test(tc, test_lookup_rescans_and_forgets);
  tcase_add_test(tc, test_lookup_bad_names);
  tcase_add_test(tc, test_lookup_empty_repo_says_none);
  tcase_add_test(tc, test_lookup_long_list_is_bounded);
  tcase_add_test(tc, test_scan_keeps_models_in_use);
  tcase_add_test(tc, test_init_errors);
  tcase_add_test(tc, test_scan_vanished_repo);
  tcase_add_test(tc, test_load_refused_when_loader_stopped);
  suite_add_tcase(s, tc);

  tc = tcase_create("load");
  tcase_add_checked_fixture(tc, load_setup, load_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_load_fixture);
  tcase_add_test(tc, test_load_failures_are_isolated);
  tcase_add_test(tc, test_unload_waits_for_release);
  tcase_add_test(tc, test_unload_idle_model);
  tcase_add_test(tc, test_removed_while_loaded_stays_until_unloaded);
  tcase_add_test(tc, test_unload_with_loader_stopped_frees_inline);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(registry_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
