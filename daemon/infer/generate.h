/* generate.h — Inference.Generate on the inference pipeline: prompts
 * grown token by token, with the model's KV cache when it has one.
 *
 *   loop      nne_infer_generate_new()       for the call
 *             nne_infer_generate_hold()      the model and the edit set
 *             nne_infer_generate_prepare()   prompts tokenized, checked and
 *                                            left-padded; options, stop
 *                                            criteria and saves checked;
 *                                            the KV cache sized against
 *                                            --max-kv-bytes and the daemon's
 *                                            budget; the backend planned
 *             nne_infer_generate_submit()    the call's user data from here
 *   executor  one job for the whole generation: the backend made ready,
 *             then step after step: a forward (step 0 on the prompts, then
 *             only the new token's position with the cache, or the whole
 *             sequence without), each row's next token (infer/sample.h),
 *             its text, the stop criteria; the step is published and the
 *             loop asked to send it (nne_executor_progress); saves of the
 *             step go into the outbox as "<site>@<step>"
 *   loop      each step is sent as soon as it exists and the previous send
 *             is done (one in flight); after the job, the outbox streams
 *             the saves and the result, or the call fails
 *
 * Semantics are nnsight's: an edit set applies at every step; step 0 sees
 * the prompts' positions and later steps the new token's (with the cache;
 * recomputing, every step sees the whole sequence). Position ids follow
 * the mask, so a padded prompt generates what it would alone (with the
 * cache; recomputing goes through forward, whose positions are its own).
 *
 * A client that leaves stops the job at its next step (and at the next
 * hook inside one); the cache is freed with the job.
 */
#ifndef NNE_INFER_GENERATE_H
#define NNE_INFER_GENERATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "edit/runtime.h"
#include "executor.h"
#include "infer/backend.h"
#include "infer/batch.h"
#include "infer/hold.h"
#include "infer/outbox.h"
#include "infer/sample.h"
#include "trace/trace.h"

/* Limits of a request's options (the wire's comments say the same). */
#define NNE_GEN_MAX_STOP_IDS 64
#define NNE_GEN_MAX_STOP_STRINGS 16
#define NNE_GEN_MAX_STOP_LEN 256
#define NNE_GEN_MAX_ALTERNATIVES 100
#define NNE_GEN_MAX_SAVES 64
/* Tokens and alternatives a generation keeps: steps x rows x (1 + k). */
#define NNE_GEN_MAX_STEP_ENTRIES (1 << 22)

/* Why a row stopped (the numbers equal nnedit.v1.FinishReason). */
typedef enum nne_gen_finish {
  NNE_GEN_RUNNING = 0,
  NNE_GEN_LENGTH = 1,
  NNE_GEN_STOP_TOKEN = 2,
  NNE_GEN_STOP_STRING = 3,
} nne_gen_finish_t;

/* The steps a node of the intervention runs at: [start, stop). */
typedef struct nne_gen_steps {
  uint32_t node;            /* its id */
  uint32_t start;
  bool has_stop;
  uint32_t stop;
} nne_gen_steps_t;

/* Steps [start, the next segment's start) and the intervention's nodes
 * that run at them, as a trace of its own session (validated, bound to
 * the generation's backend); t NULL: no node runs there. */
typedef struct nne_gen_seg {
  uint32_t start;
  nne_trace_session_t *sess; /* owned; NULL when t is the request's trace */
  nne_trace_t *t;
} nne_gen_seg_t;

/* What the request asks for, checked by nne_infer_generate_prepare. */
typedef struct nne_gen_opts {
  uint32_t max_new_tokens;
  float temperature, top_p, repetition_penalty;
  uint32_t top_k;
  bool has_seed;
  uint64_t seed;
  const int64_t *stop_ids;  /* borrowed during prepare */
  size_t n_stop_ids;
  char **stop_strings;      /* taken by prepare (also on failure) */
  size_t n_stop_strings;
  bool ignore_eos;
  uint32_t alternatives;
  bool cache_off;
  char **saves;             /* taken by prepare (also on failure) */
  size_t n_saves;
  const nne_gen_steps_t *steps; /* borrowed during prepare */
  size_t n_steps;
  bool save_sequence;       /* SAVE_LAYOUT_SEQUENCE: one tensor per save */
} nne_gen_opts_t;

/* A save's values over the steps, for SAVE_LAYOUT_SEQUENCE. */
typedef struct nne_gen_stack {
  const char *name;         /* borrowed from the request or the set */
  nne_tensor_t **t;         /* [max_new_tokens] references */
  size_t n;
  uint32_t first_step;
} nne_gen_stack_t;

/* One row's token at one step. */
typedef struct nne_gen_token {
  int64_t id;
  float logprob;
  char *text;               /* what it adds to the row's text (malloc'd) */
  bool live;                /* the row was still generating */
} nne_gen_token_t;

/* A row's state and, at the end, its result. */
typedef struct nne_gen_row {
  int64_t *ids;             /* [max_new] new tokens */
  size_t n;
  nne_gen_finish_t finish;
  int stop_string;          /* index into the stop strings, or -1 */
  char *text;               /* decoded new text so far (malloc'd) */
  size_t text_len;          /* bytes of it that count (before a stop) */
  size_t emitted;           /* bytes of text already streamed */
  uint32_t prompt_tokens;
  nne_rng_t rng;
} nne_gen_row_t;

typedef struct nne_infer_generate {
  nne_outbox_t ob;          /* first: the call's user data is the request */
  nne_job_t job;
  nne_daemon_t *d;
  nne_call_t *call;         /* a reference while the job runs */
  nne_infer_hold_t hold;
  nne_batch_t batch;        /* the prompts, left-padded: [B, P0] */
  nne_gen_opts_t o;
  nne_sample_opts_t sample;
  uint64_t seed;
  int64_t *stop_ids;        /* the request's, then the model's EOS */
  size_t n_stop_ids;
  size_t max_stop_len;
  bool cached;              /* steps reuse the KV cache */
  uint64_t kv_bytes;        /* the cache's size, checked at prepare */
  uint64_t kv_held;         /* taken from the daemon's budget (submit) */
  /* Hooks: the edit set's and the saves'. */
  bool use_backend;
  nne_infer_backend_t bk;
  nne_runtime_t rt;
  nne_names_view_t *save_view;
  char **save_tensor_names; /* "<site>@<step>" per step and save (owned) */
  size_t n_save_tensor_names;
  int n_heads;
  /* The intervention: decoded into `sess` (its one trace, if any), and
   * the segments of steps with the nodes that run there. */
  nne_trace_session_t sess;
  nne_gen_seg_t *segs;
  size_t n_segs;
  bool needs_order;         /* some segment's write depends on a read */
  uint64_t used;            /* bytes the intervention's saves took */
  nne_gen_stack_t *stacks;  /* SAVE_LAYOUT_SEQUENCE, in first-save order */
  size_t n_stacks, cap_stacks;
  /* Steps: written by the job, published through n_ready (release), read
   * by the loop (acquire). tokens[step * B + row]; alt_* [step][row][k]. */
  nne_gen_token_t *tokens;
  int64_t *alt_ids;
  float *alt_logits, *alt_probs;
  char **alt_text;
  atomic_size_t n_ready;
  size_t n_sent;
  bool job_done;            /* loop: done ran */
  bool ended;               /* loop: the call was failed or handed to the
                               outbox */
  nne_gen_row_t *rows;
  size_t steps;             /* steps run */
  int rc;
  nne_err_t err;
  double queue_ms, prefill_ms, decode_ms;
  uint64_t kv_final_bytes;
  /* For the RPC: encodes a step / the result. */
  int (*send_step)(nne_call_t *call, struct nne_infer_generate *g,
                   size_t step, void (*on_sent)(nne_call_t *, bool));
} nne_infer_generate_t;

/* NULL when out of memory. The outbox's last item is the result
 * (send_result with index 0). */
nne_infer_generate_t *nne_infer_generate_new(
    nne_daemon_t *d, nne_call_t *call, nne_outbox_result_fn send_result,
    int (*send_step)(nne_call_t *, nne_infer_generate_t *, size_t,
                     void (*)(nne_call_t *, bool)),
    uint32_t chunk_tag);

int nne_infer_generate_hold(nne_infer_generate_t *g, const char *model,
                            const char *edit_set, nne_err_t *err);

/* The session the RPC decodes GenerateRequest.intervention into (its
 * first trace is the intervention). */
nne_trace_session_t *nne_infer_generate_session(nne_infer_generate_t *g);

/* Rewrites "traces[0]" (the trace machinery's name for the intervention)
 * to "intervention" in a message. */
void nne_infer_generate_field(nne_err_t *err);

/* Prompts and options (n_invokes: the intervention's, which must be
 * none); every failure names its field. */
int nne_infer_generate_prepare(nne_infer_generate_t *g,
                               const nne_batch_group_t *prompts,
                               size_t n_invokes, nne_gen_opts_t *o,
                               nne_err_t *err);

/* Queues the job; the call owns g from here (its user data). On failure
 * the caller frees g and fails the call. */
int nne_infer_generate_submit(nne_infer_generate_t *g, nne_err_t *err);

/* Frees a request that was not submitted (loop thread). */
void nne_infer_generate_free(nne_infer_generate_t *g);

/* The step's token of a row, and its alternatives (k of them). */
const nne_gen_token_t *nne_infer_generate_token(const nne_infer_generate_t *g,
                                                size_t step, size_t row);

#endif /* NNE_INFER_GENERATE_H */
