/* engine_helpers.h — small helpers for unit tests of the engine shim
 * (daemon/engine) that work on fixture models: loading, building tensors,
 * reading them back, finding modules by class. Header-only (static inline)
 * so that a test uses what it needs; include <check.h> first: failures are
 * ck_assert()s in the calling test.
 *
 *   nne_model_t *m = nne_th_load(f->model_path);
 *   int att = nne_th_nth_of_class(m, "Attention", 0);
 *   nne_tensor_t *x = nne_th_f32(shape, 3, data);
 *   const float *p = nne_th_host_f32(x);
 */
#ifndef NNE_TEST_ENGINE_HELPERS_H
#define NNE_TEST_ENGINE_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "fixtures.h"

static inline double nne_th_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline nne_fixture_t *nne_th_fixture(const char *name) {
  nne_fixture_t *f = NULL;
  char msg[512];
  ck_assert_msg(nne_fixture_load(name, &f, msg, sizeof msg) == 0, "%s", msg);
  return f;
}

/* On the CPU, in the archive's dtype. */
static inline nne_model_t *nne_th_load(const char *path) {
  nne_model_t *m = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_model_load(path, "cpu", NNE_DTYPE_INVALID, &m, &err) == 0,
                "load %s: %s", path, err.msg);
  return m;
}

/* A host tensor of dtype dt holding a copy of data (NULL: zeros). */
static inline nne_tensor_t *nne_th_tensor(nne_dtype_t dt, const int64_t *shape,
                                          int ndim, const void *data) {
  nne_tensor_t *t = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_tensor_from_host(dt, shape, ndim, data, &t, &err) == 0,
                "%s", err.msg);
  return t;
}

static inline nne_tensor_t *nne_th_f32(const int64_t *shape, int ndim,
                                       const float *data) {
  return nne_th_tensor(NNE_DTYPE_F32, shape, ndim, data);
}

static inline nne_tensor_t *nne_th_ids(const nne_fixture_ids_t *ids) {
  int64_t shape[2] = {ids->rows, ids->cols};
  return nne_th_tensor(NNE_DTYPE_I64, shape, 2, ids->data);
}

static inline const void *nne_th_host(nne_tensor_t *t) {
  const void *p = NULL;
  nne_err_t err = {0};
  ck_assert_msg(nne_tensor_host_data(t, &p, &err) == 0, "%s", err.msg);
  return p;
}

static inline const float *nne_th_host_f32(nne_tensor_t *t) {
  ck_assert_int_eq(nne_tensor_dtype(t), NNE_DTYPE_F32);
  return (const float *)nne_th_host(t);
}

/* 1 when a and b have the same dtype, shape and bytes. */
static inline int nne_th_same(nne_tensor_t *a, nne_tensor_t *b) {
  int i;
  if (nne_tensor_dtype(a) != nne_tensor_dtype(b) ||
      nne_tensor_ndim(a) != nne_tensor_ndim(b))
    return 0;
  for (i = 0; i < nne_tensor_ndim(a); i++)
    if (nne_tensor_shape(a)[i] != nne_tensor_shape(b)[i])
      return 0;
  return memcmp(nne_th_host(a), nne_th_host(b), nne_tensor_nbytes(a)) == 0;
}

static inline int nne_th_find(nne_model_t *m, const char *path) {
  int i = nne_model_module_find(m, path);
  ck_assert_msg(i >= 0, "module '%s' not found", path);
  return i;
}

/* The index of the k-th module (in tree order) whose class name contains
 * `cls`, or -1. */
static inline int nne_th_nth_of_class(nne_model_t *m, const char *cls, int k) {
  size_t i;
  for (i = 0; i < nne_model_module_count(m); i++)
    if (strstr(nne_model_module(m, i)->class_name, cls) != NULL && k-- == 0)
      return (int)i;
  return -1;
}

/* The child of `parent` named `name`; fails the test when there is none. */
static inline int nne_th_child(nne_model_t *m, int parent, const char *name) {
  const nne_module_info_t *p = nne_model_module(m, (size_t)parent);
  int k;
  for (k = 0; k < p->n_children; k++)
    if (strcmp(nne_model_module(m, (size_t)p->children[k])->name, name) == 0)
      return p->children[k];
  ck_abort_msg("%s has no child '%s'", p->path, name);
  return -1;
}

/* The decoder block class of a fixture family (NAMES.md). */
static inline const char *nne_th_block_class(const nne_fixture_t *f) {
  if (strcmp(f->family, "gpt2") == 0)
    return "GPT2Block";
  if (strcmp(f->family, "llama") == 0)
    return "LlamaDecoderLayer";
  return "GPTNeoXLayer";
}

/* Runs in each forked test process: the fixtures' references were computed
 * with one intra-op thread. */
static inline void nne_th_one_thread(void) {
  nne_engine_opts_t opts = {.intra_op_threads = 1};
  nne_err_t err = {0};
  ck_assert_msg(nne_engine_init(&opts, &err) == 0, "%s", err.msg);
}

#endif /* NNE_TEST_ENGINE_HELPERS_H */
