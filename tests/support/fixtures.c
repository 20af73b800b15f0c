/* fixtures.c — see fixtures.h. The manifest is read with jansson; every
 * field is checked, and a missing or mistyped one fails the load with its
 * JSON path ("modules[3].call_index"), so a change in the generator's format
 * shows up as a clear message rather than a wrong comparison. */
#include "fixtures.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/vec.h"

#ifndef NNE_FIXTURES_DIR_DEFAULT
#define NNE_FIXTURES_DIR_DEFAULT ""
#endif

#define GEN_HINT                                                               \
  "generate it with '/usr/bin/python3 tests/fixtures/gen_fixtures.py --out "   \
  "DIR' and point NNE_FIXTURES_DIR at DIR"

static int fail(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *msg, size_t msg_len, const char *fmt, ...) {
  va_list ap;
  if (msg != NULL && msg_len > 0) {
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p != NULL)
    memcpy(p, s, n);
  return p;
}

static char *path_join(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *p = malloc(na + nb + 2);
  if (p == NULL)
    return NULL;
  memcpy(p, a, na);
  p[na] = '/';
  memcpy(p + na + 1, b, nb + 1);
  return p;
}

const char *nne_fixtures_dir(void) {
  const char *d = getenv("NNE_FIXTURES_DIR");
  return d != NULL && d[0] != '\0' ? d : NNE_FIXTURES_DIR_DEFAULT;
}

/* ---- listing ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void nne_fixtures_list_free(char **names, size_t count) {
  size_t i;
  if (names == NULL)
    return;
  for (i = 0; i < count; i++)
    free(names[i]);
  free(names);
}

int nne_fixtures_list(char ***names, size_t *count, char *msg, size_t msg_len) {
  const char *dir = nne_fixtures_dir();
  DIR *d;
  struct dirent *e;
  char **v = NULL;
  size_t n = 0, cap = 0;

  if (dir[0] == '\0')
    return fail(msg, msg_len, "no fixture repository configured: " GEN_HINT);
  d = opendir(dir);
  if (d == NULL)
    return fail(msg, msg_len, "fixture repository '%s': %s; " GEN_HINT, dir,
                strerror(errno));
  while ((e = readdir(d)) != NULL) {
    struct stat st;
    char *sub, *man;
    int ok;
    if (e->d_name[0] == '.') /* ".", "..", and the generator's temp dirs */
      continue;
    sub = path_join(dir, e->d_name);
    man = sub != NULL ? path_join(sub, "ref/manifest.json") : NULL;
    ok = man != NULL && stat(man, &st) == 0 && S_ISREG(st.st_mode);
    free(man);
    free(sub);
    if (!ok)
      continue;
    if (NNE_VEC_GROW(&v, &cap, n + 1) != 0)
      goto oom;
    if ((v[n] = xstrdup(e->d_name)) == NULL)
      goto oom;
    n++;
  }
  closedir(d);
  if (n == 0) {
    free(v);
    return fail(msg, msg_len,
                "fixture repository '%s' holds no fixtures; " GEN_HINT, dir);
  }
  qsort(v, n, sizeof *v, cmp_str);
  *names = v;
  *count = n;
  return 0;
oom:
  closedir(d);
  nne_fixtures_list_free(v, n);
  return fail(msg, msg_len, "out of memory");
}

/* ---- manifest fields ----------------------------------------------------- */

/* Parsing context: where the manifest is, for messages and relative files. */
typedef struct ctx {
  const char *file;    /* manifest path, for messages */
  const char *ref_dir; /* directory that "file" fields are relative to */
  char *msg;
  size_t msg_len;
} ctx_t;

static int bad(ctx_t *c, const char *field, const char *what) {
  return fail(c->msg, c->msg_len, "%s: %s: %s", c->file, field, what);
}

static json_t *field(ctx_t *c, json_t *obj, const char *key, const char *where,
                     json_type type, int *rc) {
  json_t *v = json_object_get(obj, key);
  char name[160];
  snprintf(name, sizeof name, "%s%s%s", where, where[0] ? "." : "", key);
  if (v == NULL || json_typeof(v) != type ||
      (type == JSON_INTEGER && !json_is_integer(v))) {
    static const char *tn[] = {"an object",  "an array", "a string",
                               "an integer", "a number", "true",
                               "false",      "null"};
    char what[64];
    snprintf(what, sizeof what, v == NULL ? "missing" : "expected %s",
             tn[type]);
    *rc = bad(c, name, what);
    return NULL;
  }
  return v;
}

static int get_str(ctx_t *c, json_t *obj, const char *key, const char *where,
                   char **out) {
  int rc = 0;
  json_t *v = field(c, obj, key, where, JSON_STRING, &rc);
  if (v == NULL)
    return rc;
  if ((*out = xstrdup(json_string_value(v))) == NULL)
    return bad(c, key, "out of memory");
  return 0;
}

static int get_int(ctx_t *c, json_t *obj, const char *key, const char *where,
                   int64_t *out) {
  int rc = 0;
  json_t *v = field(c, obj, key, where, JSON_INTEGER, &rc);
  if (v == NULL)
    return rc;
  *out = (int64_t)json_integer_value(v);
  return 0;
}

/* A number that may be written as an integer (0) or a real (1.4e-06). */
static int get_num(ctx_t *c, json_t *obj, const char *key, const char *where,
                   double *out) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL || !json_is_number(v)) {
    char name[160];
    snprintf(name, sizeof name, "%s%s%s", where, where[0] ? "." : "", key);
    return bad(c, name, v == NULL ? "missing" : "expected a number");
  }
  *out = json_number_value(v);
  return 0;
}

/* [[1, 2], [3, 4]] -> a rows x cols matrix; rows must have equal length. */
static int get_ids(ctx_t *c, json_t *obj, const char *key, const char *where,
                   nne_fixture_ids_t *out) {
  int rc = 0;
  size_t r, k, rows, cols;
  char name[160];
  json_t *v = field(c, obj, key, where, JSON_ARRAY, &rc);
  if (v == NULL)
    return rc;
  snprintf(name, sizeof name, "%s%s%s", where, where[0] ? "." : "", key);
  rows = json_array_size(v);
  if (rows == 0 || !json_is_array(json_array_get(v, 0)))
    return bad(c, name, "expected a non-empty list of rows");
  cols = json_array_size(json_array_get(v, 0));
  if (cols == 0)
    return bad(c, name, "rows are empty");
  out->data = malloc(rows * cols * sizeof *out->data);
  if (out->data == NULL)
    return bad(c, name, "out of memory");
  out->rows = (int64_t)rows;
  out->cols = (int64_t)cols;
  for (r = 0; r < rows; r++) {
    json_t *row = json_array_get(v, r);
    if (!json_is_array(row) || json_array_size(row) != cols)
      return bad(c, name, "rows differ in length");
    for (k = 0; k < cols; k++) {
      json_t *x = json_array_get(row, k);
      if (!json_is_integer(x))
        return bad(c, name, "expected integers");
      out->data[r * cols + k] = (int64_t)json_integer_value(x);
    }
  }
  return 0;
}

static int get_shape(ctx_t *c, json_t *arr, const char *name, int *ndim,
                     int64_t *shape) {
  size_t i, n = json_array_size(arr);
  if (!json_is_array(arr))
    return bad(c, name, "expected a list of sizes");
  if (n > NNE_NPY_MAX_DIMS)
    return bad(c, name, "too many dimensions");
  for (i = 0; i < n; i++) {
    json_t *x = json_array_get(arr, i);
    if (!json_is_integer(x) || json_integer_value(x) < 0)
      return bad(c, name, "expected non-negative integers");
    shape[i] = (int64_t)json_integer_value(x);
  }
  *ndim = (int)n;
  return 0;
}

/* {"file": "logits.npy", "shape": [...], "dtype": "float32"}, or the same
 * fields inline in an io entry. */
static int get_ref_fields(ctx_t *c, json_t *obj, const char *where,
                          nne_fixture_ref_t *out) {
  char *rel = NULL;
  char name[160];
  int rc;
  if ((rc = get_str(c, obj, "file", where, &rel)) != 0)
    return rc;
  out->file = path_join(c->ref_dir, rel);
  free(rel);
  if (out->file == NULL)
    return bad(c, where, "out of memory");
  if ((rc = get_str(c, obj, "dtype", where, &out->dtype)) != 0)
    return rc;
  snprintf(name, sizeof name, "%s.shape", where);
  return get_shape(c, json_object_get(obj, "shape"), name, &out->ndim,
                   out->shape);
}

static int get_ref(ctx_t *c, json_t *obj, const char *key, const char *where,
                   nne_fixture_ref_t *out) {
  int rc = 0;
  char name[160];
  json_t *v = field(c, obj, key, where, JSON_OBJECT, &rc);
  if (v == NULL)
    return rc;
  snprintf(name, sizeof name, "%s%s%s", where, where[0] ? "." : "", key);
  return get_ref_fields(c, v, name, out);
}

/* Sum over {"name": [shape], ...} of the product of each shape. */
static int count_elems(ctx_t *c, json_t *obj, const char *name, uint64_t *out) {
  const char *k;
  json_t *shape;
  uint64_t total = 0;
  if (!json_is_object(obj))
    return bad(c, name, "expected an object of shapes");
  json_object_foreach(obj, k, shape) {
    int64_t dims[NNE_NPY_MAX_DIMS];
    int nd, i, rc;
    uint64_t n = 1;
    if ((rc = get_shape(c, shape, name, &nd, dims)) != 0)
      return rc;
    for (i = 0; i < nd; i++)
      n *= (uint64_t)dims[i];
    total += n;
  }
  *out = total;
  return 0;
}

/* [{"input": 0}, {"param": "x.weight"}, {"output": 1}] */
static int get_sig_list(ctx_t *c, json_t *arr, const char *name,
                        nne_fixture_sig_t **out, size_t *n) {
  size_t k;
  if (!json_is_array(arr))
    return bad(c, name, "expected a list");
  *out = calloc(json_array_size(arr) + 1, sizeof **out);
  if (*out == NULL)
    return bad(c, name, "out of memory");
  for (k = 0; k < json_array_size(arr); k++) {
    json_t *e = json_array_get(arr, k), *x;
    nne_fixture_sig_t *s = &(*out)[k];
    if (!json_is_object(e) || json_object_size(e) != 1)
      return bad(c, name, "expected {\"input\"|\"output\"|\"param\": ...}");
    *n = k + 1; /* so that free sees what was filled */
    if ((x = json_object_get(e, "input")) != NULL && json_is_integer(x)) {
      s->kind = NNE_FIXTURE_SIG_INPUT;
      s->index = (int)json_integer_value(x);
    } else if ((x = json_object_get(e, "output")) != NULL &&
               json_is_integer(x)) {
      s->kind = NNE_FIXTURE_SIG_OUTPUT;
      s->index = (int)json_integer_value(x);
    } else if ((x = json_object_get(e, "param")) != NULL && json_is_string(x)) {
      s->kind = NNE_FIXTURE_SIG_PARAM;
      s->index = -1;
      if ((s->param = xstrdup(json_string_value(x))) == NULL)
        return bad(c, name, "out of memory");
    } else {
      return bad(c, name, "expected {\"input\"|\"output\"|\"param\": ...}");
    }
  }
  return 0;
}

static int get_signature(ctx_t *c, json_t *m, const char *where,
                         nne_fixture_module_t *mod) {
  json_t *sig = json_object_get(m, "trace_signature");
  char name[96];
  int rc;
  if (sig == NULL || json_is_null(sig))
    return 0;
  snprintf(name, sizeof name, "%s.trace_signature", where);
  if (!json_is_object(sig))
    return bad(c, name, "expected an object or null");
  snprintf(name, sizeof name, "%s.trace_signature.inputs", where);
  if ((rc = get_sig_list(c, json_object_get(sig, "inputs"), name,
                         &mod->sig_inputs, &mod->n_sig_inputs)) != 0)
    return rc;
  snprintf(name, sizeof name, "%s.trace_signature.outputs", where);
  if ((rc = get_sig_list(c, json_object_get(sig, "outputs"), name,
                         &mod->sig_outputs, &mod->n_sig_outputs)) != 0)
    return rc;
  mod->has_trace_signature = 1;
  return 0;
}

static int get_modules(ctx_t *c, json_t *root, nne_fixture_t *f) {
  int rc = 0;
  size_t i;
  json_t *arr = field(c, root, "modules", "", JSON_ARRAY, &rc);
  if (arr == NULL)
    return rc;
  f->modules = calloc(json_array_size(arr) + 1, sizeof *f->modules);
  if (f->modules == NULL)
    return bad(c, "modules", "out of memory");
  for (i = 0; i < json_array_size(arr); i++) {
    json_t *m = json_array_get(arr, i), *ch;
    nne_fixture_module_t *mod = &f->modules[i];
    char where[64], name[96];
    int64_t ci = -1;
    size_t k;
    snprintf(where, sizeof where, "modules[%zu]", i);
    if (!json_is_object(m))
      return bad(c, where, "expected an object");
    f->n_modules = i + 1; /* so that free sees what was filled */
    if ((rc = get_str(c, m, "path", where, &mod->path)) != 0 ||
        (rc = get_str(c, m, "class", where, &mod->class_name)) != 0 ||
        (rc = get_int(c, m, "call_index", where, &ci)) != 0)
      return rc;
    mod->call_index = (int)ci;
    if ((ch = field(c, m, "children", where, JSON_ARRAY, &rc)) == NULL)
      return rc;
    mod->children = calloc(json_array_size(ch) + 1, sizeof *mod->children);
    if (mod->children == NULL)
      return bad(c, where, "out of memory");
    for (k = 0; k < json_array_size(ch); k++) {
      json_t *s = json_array_get(ch, k);
      snprintf(name, sizeof name, "%s.children[%zu]", where, k);
      if (!json_is_string(s))
        return bad(c, name, "expected a string");
      if ((mod->children[k] = xstrdup(json_string_value(s))) == NULL)
        return bad(c, name, "out of memory");
      mod->n_children = k + 1;
    }
    snprintf(name, sizeof name, "%s.parameters", where);
    if ((rc = count_elems(c, json_object_get(m, "parameters"), name,
                          &mod->n_params)) != 0)
      return rc;
    snprintf(name, sizeof name, "%s.buffers", where);
    if ((rc = count_elems(c, json_object_get(m, "buffers"), name,
                          &mod->n_buffers)) != 0)
      return rc;
    if ((rc = get_signature(c, m, where, mod)) != 0)
      return rc;
  }
  return 0;
}

static int get_io(ctx_t *c, json_t *root, nne_fixture_t *f) {
  size_t i;
  json_t *arr = json_object_get(root, "io");
  if (arr == NULL) /* models generated without io capture */
    return 0;
  if (!json_is_array(arr))
    return bad(c, "io", "expected a list");
  f->io = calloc(json_array_size(arr) + 1, sizeof *f->io);
  if (f->io == NULL)
    return bad(c, "io", "out of memory");
  for (i = 0; i < json_array_size(arr); i++) {
    json_t *e = json_array_get(arr, i);
    nne_fixture_io_t *io = &f->io[i];
    char where[64];
    int64_t idx = 0;
    int rc;
    snprintf(where, sizeof where, "io[%zu]", i);
    if (!json_is_object(e))
      return bad(c, where, "expected an object");
    f->n_io = i + 1;
    if ((rc = get_str(c, e, "path", where, &io->path)) != 0 ||
        (rc = get_str(c, e, "kind", where, &io->kind)) != 0 ||
        (rc = get_int(c, e, "index", where, &idx)) != 0 ||
        (rc = get_ref_fields(c, e, where, &io->ref)) != 0)
      return rc;
    io->index = (int)idx;
  }
  return 0;
}

static int parse_manifest(ctx_t *c, json_t *root, nne_fixture_t *f) {
  int rc;
  json_t *masked, *te;
  if (!json_is_object(root))
    return bad(c, "(top level)", "expected an object");
  if ((rc = get_str(c, root, "class", "", &f->class_name)) != 0 ||
      (rc = get_str(c, root, "family", "", &f->family)) != 0 ||
      (rc = get_str(c, root, "export", "", &f->export_kind)) != 0 ||
      (rc = get_str(c, root, "torch_version", "", &f->torch_version)) != 0)
    return rc;
  if ((te = field(c, root, "inputs", "", JSON_OBJECT, &rc)) == NULL ||
      (rc = get_ids(c, te, "input_ids", "inputs", &f->input_ids)) != 0 ||
      (rc = get_ref(c, root, "logits", "", &f->logits)) != 0 ||
      (rc = get_ref(c, root, "logits_jit", "", &f->logits_jit)) != 0 ||
      (rc = get_num(c, root, "jit_vs_eager_max_abs_diff", "",
                    &f->jit_vs_eager_max_abs_diff)) != 0)
    return rc ? rc : -1;
  if ((masked = field(c, root, "masked", "", JSON_OBJECT, &rc)) == NULL ||
      (rc = get_ids(c, masked, "input_ids", "masked", &f->masked_input_ids)) !=
          0 ||
      (rc = get_ids(c, masked, "attention_mask", "masked",
                    &f->masked_attention_mask)) != 0 ||
      (rc = get_ref(c, masked, "logits", "masked", &f->masked_logits)) != 0 ||
      (rc = get_ref(c, masked, "logits_jit", "masked",
                    &f->masked_logits_jit)) != 0 ||
      (rc = get_num(c, masked, "jit_vs_eager_max_abs_diff", "masked",
                    &f->masked_jit_vs_eager_max_abs_diff)) != 0)
    return rc ? rc : -1;
  if (f->masked_input_ids.rows != f->masked_attention_mask.rows ||
      f->masked_input_ids.cols != f->masked_attention_mask.cols)
    return bad(c, "masked", "input_ids and attention_mask differ in shape");
  te = json_object_get(root, "trace_example_inputs");
  if (te != NULL) {
    if (!json_is_object(te))
      return bad(c, "trace_example_inputs", "expected an object");
    if ((rc = get_ids(c, te, "input_ids", "trace_example_inputs",
                      &f->trace_input_ids)) != 0 ||
        (rc = get_ids(c, te, "attention_mask", "trace_example_inputs",
                      &f->trace_attention_mask)) != 0)
      return rc;
    f->has_trace_example = 1;
  }
  if ((rc = get_modules(c, root, f)) != 0)
    return rc;
  return get_io(c, root, f);
}

/* ---- public -------------------------------------------------------------- */

int nne_fixture_load(const char *name, nne_fixture_t **out, char *msg,
                     size_t msg_len) {
  nne_fixture_t *f;
  char *ref_dir = NULL, *man = NULL;
  json_t *root = NULL;
  json_error_t jerr;
  ctx_t c;
  int rc = -1;

  if (name == NULL || name[0] == '\0' || strchr(name, '/') != NULL)
    return fail(msg, msg_len, "fixture name '%s' is not a directory name",
                name ? name : "(null)");
  f = calloc(1, sizeof *f);
  if (f == NULL)
    return fail(msg, msg_len, "out of memory");
  f->name = xstrdup(name);
  f->dir = path_join(nne_fixtures_dir(), name);
  f->model_path = f->dir ? path_join(f->dir, "model.pt") : NULL;
  ref_dir = f->dir ? path_join(f->dir, "ref") : NULL;
  man = ref_dir ? path_join(ref_dir, "manifest.json") : NULL;
  if (f->name == NULL || man == NULL) {
    rc = fail(msg, msg_len, "out of memory");
    goto done;
  }
  root = json_load_file(man, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    rc = fail(msg, msg_len, "%s: %s (line %d)", man, jerr.text, jerr.line);
    goto done;
  }
  c.file = man;
  c.ref_dir = ref_dir;
  c.msg = msg;
  c.msg_len = msg_len;
  rc = parse_manifest(&c, root, f);
done:
  json_decref(root);
  free(man);
  free(ref_dir);
  if (rc != 0) {
    nne_fixture_free(f);
    return rc;
  }
  *out = f;
  return 0;
}

static void ref_free(nne_fixture_ref_t *r) {
  free(r->file);
  free(r->dtype);
}

void nne_fixture_free(nne_fixture_t *f) {
  size_t i, k;
  if (f == NULL)
    return;
  free(f->name);
  free(f->dir);
  free(f->model_path);
  free(f->class_name);
  free(f->family);
  free(f->export_kind);
  free(f->torch_version);
  free(f->input_ids.data);
  ref_free(&f->logits);
  ref_free(&f->logits_jit);
  free(f->masked_input_ids.data);
  free(f->masked_attention_mask.data);
  ref_free(&f->masked_logits);
  ref_free(&f->masked_logits_jit);
  free(f->trace_input_ids.data);
  free(f->trace_attention_mask.data);
  for (i = 0; f->modules != NULL && i < f->n_modules; i++) {
    nne_fixture_module_t *m = &f->modules[i];
    free(m->path);
    free(m->class_name);
    for (k = 0; k < m->n_children; k++)
      free(m->children[k]);
    free(m->children);
    for (k = 0; m->sig_inputs != NULL && k < m->n_sig_inputs; k++)
      free(m->sig_inputs[k].param);
    free(m->sig_inputs);
    for (k = 0; m->sig_outputs != NULL && k < m->n_sig_outputs; k++)
      free(m->sig_outputs[k].param);
    free(m->sig_outputs);
  }
  free(f->modules);
  for (i = 0; f->io != NULL && i < f->n_io; i++) {
    free(f->io[i].path);
    free(f->io[i].kind);
    ref_free(&f->io[i].ref);
  }
  free(f->io);
  free(f);
}

int nne_fixture_ref_load(const nne_fixture_ref_t *ref, nne_npy_t *out,
                         char *msg, size_t msg_len) {
  nne_npy_t a;
  int i, same;
  if (nne_npy_load(ref->file, &a, msg, msg_len) != 0)
    return -1;
  same = strcmp(nne_npy_dtype_name(a.dtype), ref->dtype) == 0 &&
         a.ndim == ref->ndim;
  for (i = 0; same && i < a.ndim; i++)
    same = a.shape[i] == ref->shape[i];
  if (!same) {
    nne_npy_free(&a);
    return fail(msg, msg_len, "%s: dtype or shape differ from the manifest's",
                ref->file);
  }
  *out = a;
  return 0;
}
