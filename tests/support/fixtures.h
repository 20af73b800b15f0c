/* fixtures.h — the test model repository and its reference data.
 *
 * tests/fixtures/gen_fixtures.py writes one directory per fixture model:
 *   <repo>/<name>/model.pt              TorchScript archive
 *   <repo>/<name>/model.json            the daemon's model metadata
 *   <repo>/<name>/ref/manifest.json     what Python saw (read into the structs
 * below) <repo>/<name>/ref/<file>.npy         reference tensors (logits, io
 * captures) The repository is $NNE_FIXTURES_DIR, else the build's default
 * (NNE_FIXTURES_DIR_DEFAULT, normally build/fixtures).
 *
 *   char **names; size_t n; char msg[512];
 *   nne_fixtures_list(&names, &n, msg, sizeof msg);
 *   nne_fixture_t *f;
 *   nne_fixture_load(names[0], &f, msg, sizeof msg);
 *   ... f->model_path, f->input_ids, f->logits, f->modules ...
 *   nne_fixture_free(f);
 *   nne_fixtures_list_free(names, n);
 *
 * Plain C data only (no jansson, no engine types): client tests link this
 * too. Every string and array is malloc'd and owned by the fixture.
 */
#ifndef NNE_TEST_FIXTURES_H
#define NNE_TEST_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "npy.h"

/* The repository directory. Static string; never NULL (may be ""). */
const char *nne_fixtures_dir(void);

/* Names of the fixtures in the repository (its subdirectories that hold
 * ref/manifest.json), sorted. *names is a malloc'd array of malloc'd strings,
 * freed with nne_fixtures_list_free. Returns 0, or -1 with a message that
 * says how to build the repository. */
int nne_fixtures_list(char ***names, size_t *count, char *msg, size_t msg_len);
void nne_fixtures_list_free(char **names, size_t count);

/* A [rows, cols] int64 matrix given inline in the manifest (token ids, masks),
 * row-major. */
typedef struct nne_fixture_ids {
  int64_t rows, cols;
  int64_t *data;
} nne_fixture_ids_t;

/* A reference tensor stored as a .npy file. */
typedef struct nne_fixture_ref {
  char *file; /* full path */
  int ndim;
  int64_t shape[NNE_NPY_MAX_DIMS];
  char *dtype; /* numpy's name: "float32", "int64", ... */
} nne_fixture_ref_t;

/* One entry of a traced module's trace_signature: where a traced forward's
 * argument or result comes from in the eager forward. */
typedef enum nne_fixture_sig_kind {
  NNE_FIXTURE_SIG_INPUT = 1,  /* eager positional argument `index` */
  NNE_FIXTURE_SIG_OUTPUT = 2, /* eager output element `index` */
  NNE_FIXTURE_SIG_PARAM = 3   /* a parameter of the model, `param` */
} nne_fixture_sig_kind_t;

typedef struct nne_fixture_sig {
  nne_fixture_sig_kind_t kind;
  int index;   /* INPUT, OUTPUT */
  char *param; /* PARAM: "transformer.wte.weight"; else NULL */
} nne_fixture_sig_t;

typedef struct nne_fixture_module {
  char *path;       /* "" for the root */
  char *class_name; /* Python class name, "GPT2Attention" */
  size_t n_children;
  char **children;    /* child names (last path components), in order */
  int call_index;     /* order of first forward pre-hook; -1 if never */
  uint64_t n_params;  /* elements of the parameters held directly */
  uint64_t n_buffers; /* elements of the buffers held directly */
  /* Traced exports: trace_signature (see tests/fixtures/README.md), one
   * entry per traced forward argument after self and per traced output
   * element. has_trace_signature is 0 for scripted exports and for modules
   * without a forward or never called. */
  int has_trace_signature;
  size_t n_sig_inputs;
  nne_fixture_sig_t *sig_inputs;
  size_t n_sig_outputs;
  nne_fixture_sig_t *sig_outputs;
} nne_fixture_module_t;

/* One captured module input or output of the reference run. */
typedef struct nne_fixture_io {
  char *path; /* module path, "" for the root */
  char *kind; /* "input" or "output" */
  int index;  /* position among the module's tensor args / outputs */
  nne_fixture_ref_t ref;
} nne_fixture_io_t;

typedef struct nne_fixture {
  char *name;          /* "gpt2-script" */
  char *dir;           /* <repo>/<name> */
  char *model_path;    /* <dir>/model.pt */
  char *class_name;    /* root module's Python class */
  char *family;        /* "gpt2", "llama", "gpt_neox" */
  char *export_kind;   /* "script" or "trace" */
  char *torch_version; /* torch that wrote the archive and references */

  /* Reference run: input_ids only (traced archives were run with an
   * all-ones mask), and the eager model's logits. */
  nne_fixture_ids_t input_ids;
  nne_fixture_ref_t logits;
  /* The same input through the saved archive in Python: a C++ engine on the
   * same libtorch and BLAS runs the same graph and must match it exactly. */
  nne_fixture_ref_t logits_jit;
  double jit_vs_eager_max_abs_diff; /* Python: loaded archive vs eager */

  /* Left-padded batch with a mask. */
  nne_fixture_ids_t masked_input_ids;
  nne_fixture_ids_t masked_attention_mask;
  nne_fixture_ref_t masked_logits;
  nne_fixture_ref_t masked_logits_jit;
  double masked_jit_vs_eager_max_abs_diff;

  /* Traced archives only: the example inputs they were traced with. */
  int has_trace_example;
  nne_fixture_ids_t trace_input_ids;
  nne_fixture_ids_t trace_attention_mask;

  size_t n_modules; /* in named_modules() order */
  nne_fixture_module_t *modules;
  size_t n_io; /* in capture order */
  nne_fixture_io_t *io;
} nne_fixture_t;

/* Loads <repo>/<name>/ref/manifest.json. Returns 0 and a fixture to free with
 * nne_fixture_free, or -1 with a message naming the file and field. */
int nne_fixture_load(const char *name, nne_fixture_t **out, char *msg,
                     size_t msg_len);
void nne_fixture_free(nne_fixture_t *f); /* NULL is ignored */

/* Reads a reference tensor and checks it against what the manifest says
 * (dtype and shape). Same contract as nne_npy_load. */
int nne_fixture_ref_load(const nne_fixture_ref_t *ref, nne_npy_t *out,
                         char *msg, size_t msg_len);

#endif /* NNE_TEST_FIXTURES_H */
