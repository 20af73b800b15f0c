/* trace_json.c — TRACE-JSON (trace_json.h): a file of traces becomes an
 * nne_client_trace_req_t's traces, graphs built node by node. */
#include "trace_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

/* One allocation of a trace file, linked to the ones before: everything
 * the request points to is freed together, and nothing grows. */
struct ctl_trace_block {
  struct ctl_trace_block *next;
  _Alignas(max_align_t) unsigned char data[];
};

void ctl_trace_file_free(ctl_trace_file_t *tf) {
  size_t i;
  while (tf->blocks != NULL) {
    struct ctl_trace_block *b = tf->blocks;
    tf->blocks = b->next;
    free(b);
  }
  for (i = 0; tf->graphs != NULL && i < tf->n_traces; i++)
    nne_client_igraph_free(tf->graphs[i]);
  free(tf->graphs);
  free(tf->traces);
  ctl_json_free(&tf->j);
  memset(tf, 0, sizeof *tf);
}

void *ctl_trace_file_alloc(ctl_trace_file_t *tf, size_t n) {
  struct ctl_trace_block *b;
  if (n > SIZE_MAX - sizeof *b)
    return NULL;
  if ((b = calloc(1, sizeof *b + (n ? n : 1))) == NULL)
    return NULL;
  b->next = tf->blocks;
  tf->blocks = b;
  return b->data;
}

bool ctl_trace_file_traces(ctl_trace_file_t *tf, size_t n) {
  size_t i;
  tf->traces = calloc(n ? n : 1, sizeof *tf->traces);
  tf->graphs = calloc(n ? n : 1, sizeof *tf->graphs);
  if (tf->traces == NULL || tf->graphs == NULL)
    return false;
  tf->n_traces = n;
  for (i = 0; i < n; i++) {
    if ((tf->graphs[i] = nne_client_igraph_new()) == NULL)
      return false;
    tf->traces[i].graph = tf->graphs[i];
  }
  return true;
}

/* Rows of integers in [lo, hi]: [[1, 2], [3]], or one flat row [1, 2, 3].
 * *rows[i] points into one allocation of tf (int64 or int32 by `wide`). */
static bool parse_int_rows(ctl_trace_file_t *tf, const char *path, json_t *v,
                           int64_t lo, int64_t hi, bool wide, void ***rows,
                           size_t **lens, size_t *n_rows) {
  ctl_json_t *j = &tf->j;
  size_t r, k, n;
  json_t *row, *x;
  bool flat;

  if (!json_is_array(v) || json_array_size(v) == 0)
    return ctl_json_fail(
        j, "%s: expected a non-empty array of rows of integers", path);
  flat = !json_is_array(json_array_get(v, 0));
  n = flat ? 1 : json_array_size(v);
  *rows = ctl_trace_file_alloc(tf, n * sizeof **rows);
  *lens = ctl_trace_file_alloc(tf, n * sizeof **lens);
  if (*rows == NULL || *lens == NULL)
    return ctl_json_fail(j, "%s: out of memory", path);
  for (r = 0; r < n; r++) {
    char rpath[200];
    row = flat ? v : json_array_get(v, r);
    if (flat)
      snprintf(rpath, sizeof rpath, "%s", path);
    else
      snprintf(rpath, sizeof rpath, "%s[%zu]", path, r);
    if (!json_is_array(row))
      return ctl_json_fail(j, "%s: expected an array of integers (a row)",
                           rpath);
    (*rows)[r] =
        ctl_trace_file_alloc(tf, json_array_size(row) * (wide ? 8 : 4));
    if ((*rows)[r] == NULL)
      return ctl_json_fail(j, "%s: out of memory", rpath);
    json_array_foreach(row, k, x) {
      int64_t val;
      if (!ctl_json_int64(x, &val) || val < lo || val > hi)
        return ctl_json_fail(
            j, "%s[%zu]: expected %s", rpath, k,
            wide ? "a token id (an integer)"
                 : "a mask value (an int32: 1 token, 0 padding)");
      if (wide)
        ((int64_t *)(*rows)[r])[k] = val;
      else
        ((int32_t *)(*rows)[r])[k] = (int32_t)val;
    }
    (*lens)[r] = json_array_size(row);
  }
  *n_rows = n;
  return true;
}

/* Text rows: "prompt": "text" (one row) or "prompts": ["text", ...], keys
 * of the object at `pre` (its place and a dot: "traces[0].invokes[1].",
 * or "" at the top). The texts are borrowed from the document. */
static bool parse_prompts(ctl_trace_file_t *tf, const char *pre, json_t *one,
                          json_t *many, nne_client_invoke_t *inv) {
  ctl_json_t *j = &tf->j;
  nne_client_token_row_t *tr;
  size_t n = one != NULL ? 1 : json_array_size(many), r;
  if (one == NULL && (!json_is_array(many) || n == 0))
    return ctl_json_fail(j, "%sprompts: expected a non-empty array of texts",
                         pre);
  if ((tr = ctl_trace_file_alloc(tf, n * sizeof *tr)) == NULL)
    return ctl_json_fail(j, "%sprompts: out of memory", pre);
  for (r = 0; r < n; r++) {
    json_t *x = one != NULL ? one : json_array_get(many, r);
    char rpath[200];
    if (one != NULL)
      snprintf(rpath, sizeof rpath, "%sprompt", pre);
    else
      snprintf(rpath, sizeof rpath, "%sprompts[%zu]", pre, r);
    /* An empty text would go on the wire as an empty id row. */
    if (!json_is_string(x) || json_string_length(x) == 0)
      return ctl_json_fail(j, "%s: expected a text (a non-empty string)",
                           rpath);
    if (json_string_length(x) > NNE_CLIENT_TEXT_MAX)
      return ctl_json_fail(j, "%s: a text of %zu bytes, over %zu", rpath,
                           json_string_length(x), NNE_CLIENT_TEXT_MAX);
    tr[r] = (nne_client_token_row_t){.text = json_string_value(x)};
  }
  inv->rows = tr;
  inv->n_rows = n;
  return true;
}

/* The rows of an object (an invoke, or Generate's file): exactly one of
 * "tokens", "prompt" and "prompts", and with tokens an optional "mask" (the
 * caller's key list says whether it may have one). `path` is the object's
 * place ("traces[0].invokes[1]", or "" at the top). */
static bool parse_rows(ctl_trace_file_t *tf, const char *path, json_t *obj,
                       nne_client_invoke_t *inv) {
  ctl_json_t *j = &tf->j;
  char pre[168], fpath[180];
  json_t *mask = json_object_get(obj, "mask"), *one, *many, *tokens;
  void **rows;
  size_t *lens, n, r;

  snprintf(pre, sizeof pre, "%s%s", path, *path ? "." : "");
  tokens = json_object_get(obj, "tokens");
  one = json_object_get(obj, "prompt");
  many = json_object_get(obj, "prompts");
  /* One kind of rows per invoke, as a write has one of ranges, rows,
   * positions or last: an object has no order to mix them in. */
  if ((tokens != NULL) + (one != NULL) + (many != NULL) != 1)
    return ctl_json_fail(j,
                         "%s%sexpected exactly one of \"tokens\", "
                         "\"prompt\" or \"prompts\"",
                         path, *path ? ": " : "");
  if (tokens == NULL) {
    if (mask != NULL)
      return ctl_json_fail(j,
                           "%smask: prompt rows take no mask (the daemon "
                           "makes theirs)",
                           pre);
    return parse_prompts(tf, pre, one, many, inv);
  }
  snprintf(fpath, sizeof fpath, "%stokens", pre);
  if (!parse_int_rows(tf, fpath, tokens, INT64_MIN, INT64_MAX, true, &rows,
                      &lens, &n))
    return false;
  {
    nne_client_token_row_t *tr = ctl_trace_file_alloc(tf, n * sizeof *tr);
    if (tr == NULL)
      return ctl_json_fail(j, "%s: out of memory", path);
    for (r = 0; r < n; r++)
      tr[r] = (nne_client_token_row_t){.ids = rows[r], .n_ids = lens[r]};
    inv->rows = tr;
    inv->n_rows = n;
  }
  if (mask != NULL) {
    nne_client_mask_row_t *mr;
    snprintf(fpath, sizeof fpath, "%smask", pre);
    if (!parse_int_rows(tf, fpath, mask, INT32_MIN, INT32_MAX, false, &rows,
                        &lens, &n))
      return false;
    if ((mr = ctl_trace_file_alloc(tf, n * sizeof *mr)) == NULL)
      return ctl_json_fail(j, "%s: out of memory", path);
    for (r = 0; r < n; r++)
      mr[r] = (nne_client_mask_row_t){rows[r], lens[r]};
    inv->mask = mr;
    inv->n_mask = n;
  }
  return true;
}

static bool parse_invoke(ctl_trace_file_t *tf, const char *tpath, size_t i,
                         json_t *obj, nne_client_invoke_t *inv) {
  static const char *const keys[] = {"tokens", "prompt", "prompts", "mask",
                                     NULL};
  char path[160];
  snprintf(path, sizeof path, "%s.invokes[%zu]", tpath, i);
  if (!json_is_object(obj))
    return ctl_json_fail(&tf->j,
                         "%s: expected an object {\"tokens\": [[...]]} or "
                         "{\"prompts\": [\"...\"]}",
                         path);
  return ctl_json_keys(&tf->j, path, obj, keys) &&
         parse_rows(tf, path, obj, inv);
}

/* The ids of one trace's nodes, in file order, and sorted for look-ups. */
typedef struct node_ids {
  int *ids;    /* ids[k]: nodes[k]'s */
  int *sorted; /* the same, ascending */
  size_t n;
} node_ids_t;

static int int_cmp(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* A node named as input (an "id" of this trace). */
static bool parse_node_ref(ctl_trace_file_t *tf, const char *path, json_t *v,
                           const node_ids_t *ids, int *out) {
  int64_t id;
  int key;
  if (!ctl_json_int64(v, &id) || id < 1 || id > NNE_CLIENT_MAX_NODE_ID)
    return ctl_json_fail(&tf->j, "%s: expected a node id (an integer from 1)",
                         path);
  key = (int)id;
  if (ids->n == 0 ||
      bsearch(&key, ids->sorted, ids->n, sizeof key, int_cmp) == NULL)
    return ctl_json_fail(&tf->j, "%s: no node %d in this trace", path, key);
  *out = key;
  return true;
}

/* An invoke index: an integer from -1 (the whole batch) below n_invokes,
 * or "all"; default (absent) the whole batch. */
static bool parse_invoke_ref(ctl_trace_file_t *tf, const char *path, json_t *v,
                             size_t n_invokes, int *out) {
  int64_t k;
  *out = NNE_CLIENT_INVOKE_ALL;
  if (v == NULL ||
      (json_is_string(v) && strcmp(json_string_value(v), "all") == 0))
    return true;
  if (n_invokes == 0 && !(ctl_json_int64(v, &k) && k == -1))
    return ctl_json_fail(&tf->j,
                         "%s: expected -1 or \"all\": Generate's prompts are "
                         "the batch (there are no invokes)",
                         path);
  if (!ctl_json_int64(v, &k) || k < -1 || k >= (int64_t)n_invokes)
    return ctl_json_fail(
        &tf->j,
        "%s: expected an invoke of this trace (0 to %zu) or -1 / "
        "\"all\" for the whole batch",
        path, n_invokes - 1);
  *out = (int)k;
  return true;
}

/* One argument: a bare number (integer: int, real: scalar), boolean or list
 * of integers, or an object {kind: value} with an optional "name" (never in
 * kwargs, whose key is the name). */
static bool parse_arg(ctl_trace_file_t *tf, const char *path, json_t *v,
                      const node_ids_t *ids, const char *kw,
                      nne_client_arg_t *a) {
  static const char *const kinds[] = {"node", "scalar", "int",    "ints",
                                      "bool", "dtype",  "module", NULL};
  static const char *const keys[] = {"node",  "scalar", "int",  "ints", "bool",
                                     "dtype", "module", "name", NULL};
  ctl_json_t *j = &tf->j;
  json_t *x = NULL, *name;
  const char *kind = NULL;
  char sub[224];
  size_t k, found = 0;
  int64_t iv;

  memset(a, 0, sizeof *a);
  a->name = kw;
  if (json_is_integer(v)) {
    *a = nne_client_arg_int((int64_t)json_integer_value(v));
    a->name = kw;
    return true;
  }
  if (json_is_real(v)) {
    *a = nne_client_arg_scalar(json_real_value(v));
    a->name = kw;
    return true;
  }
  if (json_is_boolean(v)) {
    *a = nne_client_arg_bool(json_is_true(v));
    a->name = kw;
    return true;
  }
  if (json_is_array(v)) {
    kind = "ints";
    x = v;
  } else if (json_is_object(v)) {
    if (!ctl_json_keys(j, path, v, keys))
      return false;
    for (k = 0; kinds[k] != NULL; k++)
      if (json_object_get(v, kinds[k]) != NULL) {
        kind = kinds[k];
        x = json_object_get(v, kinds[k]);
        found++;
      }
    if (found != 1)
      return ctl_json_fail(
          j,
          "%s: expected exactly one of node, scalar, int, ints, "
          "bool, dtype, module (found %zu)",
          path, found);
    if ((name = json_object_get(v, "name")) != NULL) {
      snprintf(sub, sizeof sub, "%s.name", path);
      if (kw != NULL)
        return ctl_json_fail(j, "%s: a keyword argument is named by its key",
                             sub);
      if (!ctl_json_str(j, sub, name, NNE_CLIENT_ARG_NAME_MAX, &a->name))
        return false;
    }
  } else {
    return ctl_json_fail(
        j,
        "%s: expected a number, a boolean, a list of integers or "
        "an object such as {\"node\": 3}, {\"dtype\": \"float16\"}",
        path);
  }
  snprintf(sub, sizeof sub, "%s%s%s", path, x == v ? "" : ".",
           x == v ? "" : kind);
  a->kind = 0;
  if (strcmp(kind, "node") == 0) {
    a->kind = NNE_CLIENT_ARG_NODE;
    return parse_node_ref(tf, sub, x, ids, &a->node);
  }
  if (strcmp(kind, "scalar") == 0) {
    if (!json_is_number(x))
      return ctl_json_fail(j, "%s: expected a number", sub);
    a->kind = NNE_CLIENT_ARG_SCALAR;
    a->scalar = json_number_value(x);
    return true;
  }
  if (strcmp(kind, "int") == 0) {
    if (!ctl_json_int64(x, &a->integer))
      return ctl_json_fail(j, "%s: expected an integer", sub);
    a->kind = NNE_CLIENT_ARG_INT;
    return true;
  }
  if (strcmp(kind, "ints") == 0) {
    int64_t *vals;
    json_t *e;
    if (!json_is_array(x) || json_array_size(x) > NNE_CLIENT_MAX_INTS)
      return ctl_json_fail(j, "%s: expected a list of at most %d integers", sub,
                           NNE_CLIENT_MAX_INTS);
    if ((vals = ctl_trace_file_alloc(tf, json_array_size(x) * sizeof *vals)) ==
        NULL)
      return ctl_json_fail(j, "%s: out of memory", sub);
    json_array_foreach(x, k, e) {
      if (!ctl_json_int64(e, &iv))
        return ctl_json_fail(j, "%s[%zu]: expected an integer", sub, k);
      vals[k] = iv;
    }
    a->kind = NNE_CLIENT_ARG_INTS;
    a->ints = vals;
    a->n_ints = json_array_size(x);
    return true;
  }
  if (strcmp(kind, "bool") == 0) {
    if (!json_is_boolean(x))
      return ctl_json_fail(j, "%s: expected true or false", sub);
    a->kind = NNE_CLIENT_ARG_BOOL;
    a->boolean = json_is_true(x);
    return true;
  }
  if (strcmp(kind, "dtype") == 0) {
    nne_client_err_t err;
    if (!json_is_string(x))
      return ctl_json_fail(j, "%s: expected a dtype name", sub);
    if (nne_client_dtype_parse(json_string_value(x), &a->dtype, &err) < 0)
      return ctl_json_fail(j, "%s: %s", sub, err.message);
    a->kind = NNE_CLIENT_ARG_DTYPE;
    return true;
  }
  a->kind = NNE_CLIENT_ARG_MODULE;
  return ctl_json_str(j, sub, x, NNE_CLIENT_SITE_MAX, &a->module);
}

/* One end of a slice: an integer, or null (open). */
static bool slice_end(json_t *v, bool *has, int64_t *out) {
  *has = false;
  *out = 0;
  if (v == NULL || json_is_null(v))
    return true;
  *has = true;
  return ctl_json_int64(v, out);
}

/* A slice written as in Python: "a:b", ":", "-1:", "::2", "1:7:2". */
static bool slice_text(const char *s, nne_client_index_item_t *it) {
  int64_t v[3] = {0, 0, 0};
  bool has[3] = {false, false, false};
  int part = 0;
  const char *p = s;
  if (strchr(s, ':') == NULL)
    return false;
  for (;;) {
    if (*p != ':' && *p != '\0') {
      char *end;
      errno = 0;
      v[part] = strtoll(p, &end, 10);
      if (errno != 0 || end == p)
        return false;
      has[part] = true;
      p = end;
    }
    if (*p == '\0')
      break;
    if (*p != ':' || part == 2)
      return false;
    part++;
    p++;
  }
  if (has[2] && v[2] == 0)
    return false; /* Python refuses a zero step too */
  *it = nne_client_idx_slice_ex(has[0], v[0], has[1], v[1], has[2] ? v[2] : 0);
  return true;
}

/* One index item: an integer, "..." (or {"ellipsis": true}), null (or
 * {"newaxis": true}), a slice {"slice": [start, stop(, step)]} with nulls
 * for open ends, or a slice as text ("1:3", ":", "-1:", "::2"). */
static bool parse_item(ctl_trace_file_t *tf, const char *path, json_t *v,
                       nne_client_index_item_t *it) {
  ctl_json_t *j = &tf->j;
  int64_t k;
  if (ctl_json_int64(v, &k)) {
    *it = nne_client_idx(k);
    return true;
  }
  if (json_is_null(v)) {
    *it = nne_client_idx_newaxis();
    return true;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (strcmp(s, "...") == 0) {
      *it = nne_client_idx_ellipsis();
      return true;
    }
    if (slice_text(s, it))
      return true;
    return ctl_json_fail(j,
                         "%s: '%.40s' is neither \"...\" nor a slice such as "
                         "\"1:3\", \":\", \"-1:\", \"::2\"",
                         path, s);
  }
  if (json_is_object(v) && json_object_size(v) == 1) {
    json_t *x;
    if ((x = json_object_get(v, "ellipsis")) != NULL && json_is_true(x)) {
      *it = nne_client_idx_ellipsis();
      return true;
    }
    if ((x = json_object_get(v, "newaxis")) != NULL && json_is_true(x)) {
      *it = nne_client_idx_newaxis();
      return true;
    }
    if ((x = json_object_get(v, "slice")) != NULL && json_is_array(x) &&
        json_array_size(x) >= 1 && json_array_size(x) <= 3) {
      bool hs, ht, hp;
      int64_t a, b, c;
      if (slice_end(json_array_get(x, 0), &hs, &a) &&
          slice_end(json_array_get(x, 1), &ht, &b) &&
          slice_end(json_array_get(x, 2), &hp, &c) && !(hp && c == 0)) {
        *it = nne_client_idx_slice_ex(hs, a, ht, b, c);
        return true;
      }
    }
  }
  return ctl_json_fail(j,
                       "%s: expected an index (integer), \"...\", null (a new "
                       "axis), a slice {\"slice\": [start, stop, step]} (null: "
                       "open; step not 0) or \"start:stop:step\"",
                       path);
}

static bool parse_call(ctl_trace_file_t *tf, const char *npath, json_t *obj,
                       const node_ids_t *ids, nne_client_igraph_t *g) {
  static const char *const keys[] = {"fn", "args", "kwargs", "index", NULL};
  ctl_json_t *j = &tf->j;
  nne_client_arg_t args[NNE_CLIENT_MAX_ARGS];
  nne_client_index_item_t items[NNE_CLIENT_MAX_INDEX_ITEMS];
  json_t *jargs = json_object_get(obj, "args"),
         *jkw = json_object_get(obj, "kwargs"),
         *jidx = json_object_get(obj, "index"), *x;
  char path[200], sub[256];
  const char *fn, *key;
  size_t n = 0, k;

  snprintf(path, sizeof path, "%s.call", npath);
  if (!json_is_object(obj))
    return ctl_json_fail(j, "%s: expected an object {fn, args, kwargs, index}",
                         path);
  if (!ctl_json_keys(j, path, obj, keys))
    return false;
  snprintf(sub, sizeof sub, "%s.fn", path);
  if (!ctl_json_str(j, sub, json_object_get(obj, "fn"), NNE_CLIENT_FN_MAX, &fn))
    return false;
  if (jargs != NULL && !json_is_array(jargs))
    return ctl_json_fail(j, "%s.args: expected an array of arguments", path);
  if (jkw != NULL && !json_is_object(jkw))
    return ctl_json_fail(j, "%s.kwargs: expected an object {\"dim\": -1, ...}",
                         path);
  if (json_array_size(jargs) + json_object_size(jkw) > NNE_CLIENT_MAX_ARGS)
    return ctl_json_fail(j, "%s: %zu arguments, more than %d", path,
                         json_array_size(jargs) + json_object_size(jkw),
                         NNE_CLIENT_MAX_ARGS);
  json_array_foreach(jargs, k, x) {
    snprintf(sub, sizeof sub, "%s.args[%zu]", path, k);
    if (!parse_arg(tf, sub, x, ids, NULL, &args[n++]))
      return false;
  }
  json_object_foreach(jkw, key, x) {
    snprintf(sub, sizeof sub, "%s.kwargs.%.31s", path, key);
    if (strlen(key) == 0 || strlen(key) >= NNE_CLIENT_ARG_NAME_MAX)
      return ctl_json_fail(j, "%s.kwargs: a keyword of 1 to %d bytes expected",
                           path, NNE_CLIENT_ARG_NAME_MAX - 1);
    if (!parse_arg(tf, sub, x, ids, key, &args[n++]))
      return false;
  }
  if (jidx != NULL && (!json_is_array(jidx) ||
                       json_array_size(jidx) > NNE_CLIENT_MAX_INDEX_ITEMS))
    return ctl_json_fail(j, "%s.index: expected an array of at most %d items",
                         path, NNE_CLIENT_MAX_INDEX_ITEMS);
  json_array_foreach(jidx, k, x) {
    snprintf(sub, sizeof sub, "%s.index[%zu]", path, k);
    if (!parse_item(tf, sub, x, &items[k]))
      return false;
  }
  if (nne_client_igraph_call(g, fn, args, n, items, json_array_size(jidx)) <
      0) {
    /* What the builder refused that the checks above let through. */
    nne_client_err_t err;
    nne_client_igraph_error(g, &err);
    return ctl_json_fail(j, "%s: %s", path, err.message);
  }
  return true;
}

/* A node's steps (Generate): "all" (every step, as without the key), k
 * (step k alone: nnsight's k-th .next()), [start, stop] (iter[start:stop];
 * stop null or left out: to the end) or {"start": a, "stop": b} (stop
 * optional, the same). */
static bool parse_steps(ctl_trace_file_t *tf, const char *npath, json_t *v,
                        int id, nne_client_igraph_t *g) {
  static const char *const keys[] = {"start", "stop", NULL};
  ctl_json_t *j = &tf->j;
  char path[200];
  json_t *a = NULL, *b = NULL;
  bool has_start, has_stop;
  int64_t start, stop;

  snprintf(path, sizeof path, "%s.steps", npath);
  if (json_is_string(v) && strcmp(json_string_value(v), "all") == 0)
    return true;
  if (json_is_integer(v)) {
    a = v;
  } else if (json_is_array(v) && json_array_size(v) >= 1 &&
             json_array_size(v) <= 2) {
    a = json_array_get(v, 0);
    b = json_array_get(v, 1);
  } else if (json_is_object(v)) {
    if (!ctl_json_keys(j, path, v, keys))
      return false;
    a = json_object_get(v, "start");
    b = json_object_get(v, "stop");
  }
  if (a == NULL || !slice_end(a, &has_start, &start) || !has_start ||
      !slice_end(b, &has_stop, &stop) || start < 0 || start >= UINT32_MAX)
    return ctl_json_fail(j,
                         "%s: expected \"all\", a step k, [start, stop] or "
                         "{\"start\": a, \"stop\": b} (stop null or left "
                         "out: to the end; steps from 0)",
                         path);
  if (v == a)
    stop = start + 1;
  else if (!has_stop)
    stop = NNE_CLIENT_STEPS_END;
  else if (stop <= start || stop > UINT32_MAX)
    return ctl_json_fail(j, "%s: stop %" PRId64 " is not after start %" PRId64,
                         path, stop, start);
  if (nne_client_igraph_steps(g, id, (uint32_t)start, stop) < 0) {
    nne_client_err_t err;
    nne_client_igraph_error(g, &err);
    return ctl_json_fail(j, "%s: %s", path, err.message);
  }
  return true;
}

static bool parse_node(ctl_trace_file_t *tf, const char *tpath, size_t i,
                       json_t *obj, const node_ids_t *ids, size_t n_invokes,
                       nne_client_igraph_t *g) {
  static const char *const ops[] = {"read",     "write", "call",
                                    "constant", "save",  "ref"};
  ctl_json_t *j = &tf->j;
  char npath[160], path[200], sub[256];
  const char *op = NULL, *str;
  json_t *x = NULL, *steps = json_object_get(obj, "steps");
  size_t k, found = 0;
  int rc = -1, value, invoke;

  snprintf(npath, sizeof npath, "%s%snodes[%zu]", tpath, *tpath ? "." : "",
           i);
  if (steps != NULL && !tf->generate)
    return ctl_json_fail(j,
                         "%s.steps: only Generate's intervention runs nodes "
                         "at steps (nneditctl generate -f); a trace is one "
                         "forward",
                         npath);
  for (k = 0; k < sizeof ops / sizeof ops[0]; k++)
    if (json_object_get(obj, ops[k]) != NULL) {
      op = ops[k];
      x = json_object_get(obj, ops[k]);
      found++;
    }
  if (found != 1)
    return ctl_json_fail(
        j,
        "%s: expected exactly one of read, write, call, constant, "
        "save, ref (found %zu)",
        npath, found);
  snprintf(path, sizeof path, "%s.%s", npath, op);
  if (strcmp(op, "call") != 0 && !json_is_object(x))
    return ctl_json_fail(j, "%s: expected an object", path);
  nne_client_igraph_next_id(g, ids->ids[i]);
  if (strcmp(op, "read") == 0) {
    static const char *const rk[] = {"site", "invoke", NULL};
    snprintf(sub, sizeof sub, "%s.site", path);
    if (!ctl_json_keys(j, path, x, rk) ||
        !ctl_json_str(j, sub, json_object_get(x, "site"), NNE_CLIENT_SITE_MAX,
                      &str))
      return false;
    snprintf(sub, sizeof sub, "%s.invoke", path);
    if (!parse_invoke_ref(tf, sub, json_object_get(x, "invoke"), n_invokes,
                          &invoke))
      return false;
    rc = nne_client_igraph_read(g, str, invoke);
  } else if (strcmp(op, "write") == 0) {
    static const char *const wk[] = {"site", "value", "invoke",    "ranges",
                                     "rows", "last",  "positions", NULL};
    nne_client_dim_range_t ranges[NNE_CLIENT_MAX_RANGES];
    size_t n_ranges = 0;
    snprintf(sub, sizeof sub, "%s.site", path);
    if (!ctl_json_keys(j, path, x, wk) ||
        !ctl_json_str(j, sub, json_object_get(x, "site"), NNE_CLIENT_SITE_MAX,
                      &str))
      return false;
    snprintf(sub, sizeof sub, "%s.value", path);
    if (!parse_node_ref(tf, sub, json_object_get(x, "value"), ids, &value))
      return false;
    snprintf(sub, sizeof sub, "%s.invoke", path);
    if (!parse_invoke_ref(tf, sub, json_object_get(x, "invoke"), n_invokes,
                          &invoke) ||
        !ctl_json_ranges(j, path, x, ranges, &n_ranges))
      return false;
    rc = nne_client_igraph_write(g, str, value, invoke, ranges, n_ranges);
  } else if (strcmp(op, "call") == 0) {
    if (!parse_call(tf, npath, x, ids, g))
      return false;
    rc = 0;
  } else if (strcmp(op, "constant") == 0) {
    static const char *const ck[] = {"tensor", "scalar", NULL};
    json_t *t = json_object_get(x, "tensor"), *s = json_object_get(x, "scalar");
    if (!ctl_json_keys(j, path, x, ck))
      return false;
    if ((t == NULL) == (s == NULL))
      return ctl_json_fail(j, "%s: give exactly one of 'tensor' and 'scalar'",
                           path);
    if (s != NULL) {
      if (!json_is_number(s))
        return ctl_json_fail(j, "%s.scalar: expected a number", path);
      rc = nne_client_igraph_const_scalar(g, json_number_value(s));
    } else {
      nne_client_tensor_t tensor;
      if (!ctl_json_tensor(j, path, t, &tensor))
        return false;
      rc = nne_client_igraph_const_tensor(g, &tensor);
      nne_client_tensor_free(&tensor); /* the graph has its own copy */
    }
  } else if (strcmp(op, "save") == 0) {
    static const char *const sk[] = {"value", "name", NULL};
    snprintf(sub, sizeof sub, "%s.value", path);
    if (!ctl_json_keys(j, path, x, sk) ||
        !parse_node_ref(tf, sub, json_object_get(x, "value"), ids, &value))
      return false;
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!ctl_json_str(j, sub, json_object_get(x, "name"), NNE_CLIENT_NAME_MAX,
                      &str))
      return false;
    rc = nne_client_igraph_save(g, value, str);
  } else {
    static const char *const fk[] = {"name", NULL};
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!ctl_json_keys(j, path, x, fk) ||
        !ctl_json_str(j, sub, json_object_get(x, "name"), NNE_CLIENT_NAME_MAX,
                      &str))
      return false;
    rc = nne_client_igraph_ref(g, str);
  }
  if (rc < 0) {
    /* What the builder refused that the checks above let through. */
    nne_client_err_t err;
    nne_client_igraph_error(g, &err);
    return ctl_json_fail(j, "%s: %s", path, err.message);
  }
  return steps == NULL || parse_steps(tf, npath, steps, ids->ids[i], g);
}

/* Node ids of a trace's "nodes": given ("id") or one more than the largest
 * before; unique, 1 to 2^31 - 1. */
static bool collect_ids(ctl_trace_file_t *tf, const char *tpath, json_t *nodes,
                        node_ids_t *out) {
  static const char *const keys[] = {"id",   "read", "write", "call", "constant",
                                     "save", "ref",  "steps", NULL};
  ctl_json_t *j = &tf->j;
  size_t k, n = json_array_size(nodes);
  int64_t max = 0;
  json_t *x;
  char pre[80], path[160];

  snprintf(pre, sizeof pre, "%s%snodes", tpath, *tpath ? "." : "");
  out->n = n;
  out->ids = ctl_trace_file_alloc(tf, n * sizeof *out->ids);
  out->sorted = ctl_trace_file_alloc(tf, n * sizeof *out->sorted);
  if (out->ids == NULL || out->sorted == NULL)
    return ctl_json_fail(j, "%s: out of memory", pre);
  json_array_foreach(nodes, k, x) {
    json_t *jid;
    int64_t id;
    snprintf(path, sizeof path, "%s[%zu]", pre, k);
    if (!json_is_object(x))
      return ctl_json_fail(
          j, "%s: expected an object {\"id\": N, \"read\": ...}", path);
    if (!ctl_json_keys(j, path, x, keys))
      return false;
    jid = json_object_get(x, "id");
    if (jid == NULL) {
      id = max + 1;
      if (id > NNE_CLIENT_MAX_NODE_ID)
        return ctl_json_fail(j, "%s: no id left after %" PRId64, path, max);
    } else if (!ctl_json_int64(jid, &id) || id < 1 ||
               id > NNE_CLIENT_MAX_NODE_ID) {
      return ctl_json_fail(j, "%s.id: expected an integer from 1 to %d", path,
                           NNE_CLIENT_MAX_NODE_ID);
    }
    if (id > max)
      max = id;
    out->ids[k] = (int)id;
  }
  memcpy(out->sorted, out->ids, n * sizeof *out->ids);
  qsort(out->sorted, n, sizeof *out->sorted, int_cmp);
  for (k = 1; k < n; k++)
    if (out->sorted[k] == out->sorted[k - 1]) {
      size_t a, b;
      for (a = 0; out->ids[a] != out->sorted[k]; a++)
        ;
      for (b = a + 1; out->ids[b] != out->sorted[k]; b++)
        ;
      return ctl_json_fail(j, "%s[%zu].id: %d is already the id of nodes[%zu]",
                           pre, b, out->sorted[k], a);
    }
  return true;
}

/* The "nodes" of the object at tpath ("traces[0]", or "" at the top) into
 * graph g, whose reads and writes name invokes below n_invokes. */
static bool parse_nodes(ctl_trace_file_t *tf, const char *tpath, json_t *nodes,
                        size_t n_invokes, nne_client_igraph_t *g) {
  node_ids_t ids;
  json_t *x;
  size_t k;
  if (!json_is_array(nodes))
    return ctl_json_fail(&tf->j, "%s%snodes: expected an array of nodes",
                         tpath, *tpath ? "." : "");
  if (!collect_ids(tf, tpath, nodes, &ids))
    return false;
  json_array_foreach(nodes, k, x) {
    if (!parse_node(tf, tpath, k, x, &ids, n_invokes, g))
      return false;
  }
  return true;
}

static bool parse_trace(ctl_trace_file_t *tf, size_t t, json_t *obj) {
  static const char *const keys[] = {"name", "invokes", "nodes", NULL};
  ctl_json_t *j = &tf->j;
  nne_client_trace_t *tr = &tf->traces[t];
  nne_client_invoke_t *inv;
  json_t *invokes = json_object_get(obj, "invokes"),
         *nodes = json_object_get(obj, "nodes"), *x;
  char path[64], sub[96];
  size_t k;

  snprintf(path, sizeof path, "traces[%zu]", t);
  if (!json_is_object(obj))
    return ctl_json_fail(j, "%s: expected an object {name, invokes, nodes}",
                         path);
  if (!ctl_json_keys(j, path, obj, keys))
    return false;
  if (json_object_get(obj, "name") != NULL) {
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!ctl_json_str(j, sub, json_object_get(obj, "name"),
                      NNE_CLIENT_TRACE_NAME_MAX, &tr->name))
      return false;
  }
  if (!json_is_array(invokes) || json_array_size(invokes) == 0)
    return ctl_json_fail(j,
                         "%s.invokes: expected a non-empty array of invokes "
                         "{\"tokens\": [[...]]}",
                         path);
  inv = ctl_trace_file_alloc(tf, json_array_size(invokes) * sizeof *inv);
  if (inv == NULL)
    return ctl_json_fail(j, "%s: out of memory", path);
  json_array_foreach(invokes, k, x) {
    if (!parse_invoke(tf, path, k, x, &inv[k]))
      return false;
  }
  tr->invokes = inv;
  tr->n_invokes = json_array_size(invokes);
  return nodes == NULL || parse_nodes(tf, path, nodes, tr->n_invokes,
                                      tf->graphs[t]);
}

/* Save names are unique in a request: checked here so that a file that
 * breaks the rule is a usage error naming both places. */
typedef struct save_ref {
  const char *name;
  size_t trace, node;
} save_ref_t;

static int save_ref_cmp(const void *a, const void *b) {
  const save_ref_t *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c != 0)
    return c;
  if (x->trace != y->trace)
    return x->trace < y->trace ? -1 : 1;
  return (x->node > y->node) - (x->node < y->node);
}

/* The save nodes of every trace into v[0..*n) (v NULL: counted only). */
static void collect_saves(json_t *traces, save_ref_t *v, size_t *n) {
  json_t *tr, *nd;
  size_t t, k;
  *n = 0;
  json_array_foreach(traces, t, tr) {
    json_array_foreach(json_object_get(tr, "nodes"), k, nd) {
      json_t *s = json_object_get(nd, "save");
      if (s == NULL)
        continue;
      if (v != NULL)
        v[*n] =
            (save_ref_t){json_string_value(json_object_get(s, "name")), t, k};
      (*n)++;
    }
  }
}

static bool check_save_names(ctl_trace_file_t *tf) {
  json_t *traces = json_object_get(tf->j.doc, "traces");
  save_ref_t *v;
  size_t n, k;
  bool ok = true;
  collect_saves(traces, NULL, &n);
  if (n < 2)
    return true;
  if ((v = malloc(n * sizeof *v)) == NULL)
    return ctl_json_fail(&tf->j, "out of memory");
  collect_saves(traces, v, &n);
  qsort(v, n, sizeof *v, save_ref_cmp);
  for (k = 1; k < n && ok; k++)
    if (strcmp(v[k].name, v[k - 1].name) == 0)
      ok = ctl_json_fail(&tf->j,
                         "traces[%zu].nodes[%zu].save.name: '%.200s' is "
                         "already saved by traces[%zu].nodes[%zu] (save "
                         "names are unique in a request)",
                         v[k].trace, v[k].node, v[k].name, v[k - 1].trace,
                         v[k - 1].node);
  free(v);
  return ok;
}

/* The request-wide keys: model, edit_set, padding, logits, top_k. */
static bool parse_request(ctl_trace_file_t *tf) {
  ctl_json_t *j = &tf->j;
  json_t *x;
  if ((x = json_object_get(j->doc, "model")) != NULL &&
      !ctl_json_str(j, "model", x, NNE_CLIENT_MODEL_NAME_MAX, &tf->model))
    return false;
  if ((x = json_object_get(j->doc, "edit_set")) != NULL &&
      !ctl_json_str(j, "edit_set", x, NNE_CLIENT_EDIT_SET_ID_MAX,
                    &tf->edit_set))
    return false;
  if ((x = json_object_get(j->doc, "padding")) != NULL) {
    if (!json_is_string(x) ||
        !ctl_parse_padding(json_string_value(x), &tf->padding))
      return ctl_json_fail(j, "padding: expected \"none\", \"left\" or "
                              "\"right\"");
    tf->has_padding = true;
  }
  if ((x = json_object_get(j->doc, "logits")) != NULL) {
    if (!json_is_string(x) ||
        !ctl_parse_logits(json_string_value(x), &tf->logits))
      return ctl_json_fail(j, "logits: expected \"none\", \"last\" or "
                              "\"all\"");
    tf->has_logits = true;
  }
  if ((x = json_object_get(j->doc, "top_k")) != NULL) {
    int64_t k;
    if (!ctl_json_int64(x, &k) || k < 0 || k > UINT32_MAX)
      return ctl_json_fail(j, "top_k: expected an integer from 0");
    tf->top_k = (uint32_t)k;
    tf->has_top_k = true;
  }
  return true;
}

bool ctl_trace_file_load(ctl_trace_file_t *tf, const char *path) {
  static const char *const keys[] = {"model",  "edit_set", "padding", "top_k",
                                     "logits", "traces",   NULL};
  ctl_json_t *j = &tf->j;
  json_t *traces, *x;
  size_t t;

  memset(tf, 0, sizeof *tf);
  if (!ctl_json_load(j, path))
    return false;
  if (!json_is_object(j->doc))
    return ctl_json_fail(j, "expected an object {\"model\": ..., \"traces\": "
                            "[...]}");
  if (!ctl_json_keys(j, "", j->doc, keys) || !parse_request(tf))
    return false;
  traces = json_object_get(j->doc, "traces");
  if (!json_is_array(traces) || json_array_size(traces) == 0)
    return ctl_json_fail(j, "traces: expected a non-empty array of traces");
  if (!ctl_trace_file_traces(tf, json_array_size(traces)))
    return ctl_json_fail(j, "out of memory");
  json_array_foreach(traces, t, x) {
    if (!parse_trace(tf, t, x))
      return false;
  }
  return check_save_names(tf);
}

bool ctl_trace_file_load_generate(ctl_trace_file_t *tf, const char *path) {
  static const char *const keys[] = {"model",  "edit_set", "prompt",
                                     "prompts", "tokens",  "nodes", NULL};
  ctl_json_t *j = &tf->j;
  json_t *doc;

  memset(tf, 0, sizeof *tf);
  tf->generate = true;
  if (!ctl_json_load(j, path))
    return false;
  doc = j->doc;
  if (!json_is_object(doc))
    return ctl_json_fail(j, "expected an object {\"model\": ..., \"nodes\": "
                            "[...]}");
  if (!ctl_json_keys(j, "", doc, keys) || !parse_request(tf))
    return false;
  if (!ctl_trace_file_traces(tf, 1))
    return ctl_json_fail(j, "out of memory");
  if (json_object_get(doc, "tokens") != NULL ||
      json_object_get(doc, "prompt") != NULL ||
      json_object_get(doc, "prompts") != NULL) {
    nne_client_invoke_t *inv = ctl_trace_file_alloc(tf, sizeof *inv);
    if (inv == NULL)
      return ctl_json_fail(j, "out of memory");
    if (!parse_rows(tf, "", doc, inv))
      return false;
    tf->traces[0].invokes = inv;
    tf->traces[0].n_invokes = 1;
  }
  if (json_object_get(doc, "nodes") == NULL)
    return ctl_json_fail(j, "nodes: expected an array of nodes (the "
                            "intervention)");
  /* No invokes in the graph: the prompts are Generate's whole batch. */
  return parse_nodes(tf, "", json_object_get(doc, "nodes"), 0, tf->graphs[0]);
}
