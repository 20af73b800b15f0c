/* trace_json.h — the reader of TRACE-JSON (client/TRACE-JSON.md), the file
 * of `nneditctl trace -f`: the request-wide keys and, per trace, its
 * invokes and its intervention graph, built with nne_client_igraph_*; and
 * its Generate form, the file of `nneditctl generate -f`: one graph whose
 * nodes run at steps (nne_client_igraph_steps).
 * Ranges and tensors are read as in EDITS-JSON (edits_json.h).
 *
 * The simple form of `trace` (--tokens, --save) fills the same struct
 * through ctl_trace_file_traces and ctl_trace_file_alloc, so that both
 * forms make one request the same way.
 *
 * Ownership: the struct is the caller's (zeroed by _load, freed by _free).
 * The traces, their graphs, and everything they point to belong to it:
 * strings borrowed from the parsed document, the rest allocated here.
 */
#ifndef NNE_CTL_TRACE_JSON_H
#define NNE_CTL_TRACE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edits_json.h"

typedef struct ctl_trace_file {
  ctl_json_t j;
  const char *model, *edit_set; /* NULL when the file has none */
  nne_client_padding_t padding;
  uint32_t top_k;
  nne_client_logits_t logits;
  bool has_padding, has_top_k, has_logits; /* given in the file */
  bool generate; /* Generate's form (ctl_trace_file_load_generate) */
  nne_client_trace_t *traces;
  nne_client_igraph_t **graphs; /* graphs[i]: traces[i]'s */
  size_t n_traces;
  struct ctl_trace_block *blocks; /* everything else the traces point to */
} ctl_trace_file_t;

/* Reads and checks a trace file ("-" = stdin). False with tf->j.msg (free
 * tf either way). */
bool ctl_trace_file_load(ctl_trace_file_t *tf, const char *path);
/* The same for `nneditctl generate -f`: one graph (traces[0].graph, the
 * intervention) from a top-level "nodes" whose nodes may carry "steps",
 * optional "model" and "edit_set", and optional prompt rows ("tokens",
 * "prompt" or "prompts": then traces[0] has one invoke holding them). */
bool ctl_trace_file_load_generate(ctl_trace_file_t *tf, const char *path);
void ctl_trace_file_free(ctl_trace_file_t *tf);

/* Room for n traces, each with a new, empty graph. False when memory runs
 * out. */
bool ctl_trace_file_traces(ctl_trace_file_t *tf, size_t n);
/* n zeroed bytes (aligned for anything) that live as long as tf; NULL when
 * memory runs out. */
void *ctl_trace_file_alloc(ctl_trace_file_t *tf, size_t n);

#endif /* NNE_CTL_TRACE_JSON_H */
