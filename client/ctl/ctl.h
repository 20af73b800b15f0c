/* ctl.h — what every part of nneditctl shares: the run's context, the
 * command table's entries, the exit codes, and the few pieces one command
 * borrows from another.
 *
 * A run: main.c takes the global options from anywhere on the line (so
 * `nneditctl models list -o json` and `nneditctl -o json models list` are
 * the same), finds the command (ctl_cmd_t, one per cmd_*.c), and calls its
 * run function with the command's own arguments only. A command parses
 * them with args.h (one parser per kind of value), connects with
 * ctl_connect (output.h), makes its calls, and prints with output.h (and
 * tensors.h): a table, or one JSON document; errors go to stderr through
 * output.h, as text or (with -o json) as JSON, and decide the exit code.
 *
 * Every name shared between nneditctl's files starts with ctl_ (as curl's
 * tool_); what one file keeps to itself is static.
 */
#ifndef NNE_CTL_H
#define NNE_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "nnedit.h"

/* Exit codes (nneditctl --help and README say the same). */
enum {
  CTL_EXIT_OK = 0,
  CTL_EXIT_ERROR = 1,       /* the daemon answered with an error, health is
                               not SERVING, or a local failure (a file that
                               cannot be written, memory) */
  CTL_EXIT_USAGE = 2,       /* a bad command line or input file */
  CTL_EXIT_UNREACHABLE = 3, /* no connection to the daemon (UNAVAILABLE) */
};

/* How results are printed (-o). */
typedef enum ctl_output {
  CTL_OUT_TABLE = 0,
  CTL_OUT_JSON,
  CTL_OUT_NPY, /* trace: .npy files, then the table */
} ctl_output_t;

/* An option of a command: its long name, a one-letter alias (or NULL),
 * and whether it takes a value. A command's options are a table ended by
 * a NULL name; args.h reports them by their index in it. */
typedef struct ctl_opt {
  const char *name;
  const char *alias;
  bool value;
} ctl_opt_t;

typedef struct ctl ctl_t;

/* A command of the table: its name as typed ("health", "models load"),
 * its options, and its run function (argc/argv: the command's own
 * arguments, global options taken out). A group ("models", "edits") has
 * no run function: its subcommands are the entries named "GROUP SUB".
 * `npy`: the command takes -o npy. Its help is help.c's, by name. */
typedef struct ctl_cmd {
  const char *name;
  const ctl_opt_t *opts;
  int (*run)(ctl_t *c, int argc, char **argv);
  bool npy;
} ctl_cmd_t;

/* The run: global options, the command running, the client once
 * connected (closed by main). */
struct ctl {
  const char *addr;
  int64_t timeout_ms;         /* deadline of each call, from its start */
  int64_t connect_timeout_ms; /* how long connecting may take */
  const char *token_file;     /* --token-file, or NULL */
  bool tls;                   /* --tls (or any of the files below) */
  const char *tls_ca, *tls_cert, *tls_key; /* --ca, --cert, --key */
  ctl_output_t output;
  const ctl_cmd_t *cmd; /* NULL until a command is known */
  nne_client_t *cli;
};

/* The commands, one per cmd_*.c (main.c lists them in its table). */
extern const ctl_cmd_t ctl_cmd_health;
extern const ctl_cmd_t ctl_cmd_models_list, ctl_cmd_models_load,
    ctl_cmd_models_unload;
extern const ctl_cmd_t ctl_cmd_modules, ctl_cmd_sites;
extern const ctl_cmd_t ctl_cmd_forward;
extern const ctl_cmd_t ctl_cmd_generate;
extern const ctl_cmd_t ctl_cmd_trace;
extern const ctl_cmd_t ctl_cmd_tokenize, ctl_cmd_detokenize;
extern const ctl_cmd_t ctl_cmd_lens;
extern const ctl_cmd_t ctl_cmd_edits_apply, ctl_cmd_edits_list,
    ctl_cmd_edits_get, ctl_cmd_edits_drop;
extern const ctl_cmd_t ctl_cmd_graph;
extern const ctl_cmd_t ctl_cmd_stats;

/* ---- cmd_models.c: a model's info, also shown by modules and sites ----- */

json_t *ctl_info_json(const nne_client_model_info_t *m);
void ctl_info_table(const nne_client_model_info_t *m);
/* "gpt2 (class GPT2LMHeadModel)", "gpt2" or "none". */
void ctl_family_text(const nne_client_model_info_t *m, char *buf, size_t cap);
/* "BPE, 50257 ids, special: 50256 '<|endoftext|>' (DIR/tokenizer.json)",
 * or "none"; at most 8 special tokens, then "... (N in all)". */
void ctl_tokenizer_text(const nne_client_model_info_t *m, char *buf,
                        size_t cap);
/* How the model generates: "kv cache, eos 50256" or "recomputes each
 * step, eos none". */
void ctl_generation_text(const nne_client_model_info_t *m, char *buf,
                         size_t cap);
/* The model's warnings, one a line under "warnings:" (nothing if none). */
void ctl_warnings_table(const nne_client_model_info_t *m);

/* ---- cmd_forward.c: result parts trace prints too ------------------------ */

/* Scores as [{token_id, logit, prob, text}] (generate's alternatives too). */
json_t *ctl_scores_json(const nne_client_token_score_t *top, size_t n);
json_t *ctl_rows_json(const nne_client_row_topk_t *rows, size_t n);
/* Each row's position and top-k table, lines starting with `indent`; with
 * `in` (the request's rows, or NULL), a text row's prompt after its
 * position, so that a batch of prompts reads row by row. */
void ctl_rows_table(const nne_client_row_topk_t *rows, size_t n,
                    const char *indent, const nne_client_token_row_t *in);
json_t *ctl_timing_json(const nne_client_timing_t *t);

/* ---- cmd_generate.c: its command line, for the unit tests -------------- */

/* generate's arguments, parsed and checked. */
typedef struct ctl_gen ctl_gen_t;

/* Parses generate's arguments (argc/argv as a command's run gets them)
 * into a new *out (free with ctl_gen_free): 0, CTL_HELP_SHOWN (args.h)
 * after printing the help, or the exit code after a usage error (*out
 * NULL then). */
int ctl_gen_parse(ctl_t *c, int argc, char **argv, ctl_gen_t **out);
/* The request the arguments make (borrowed: lives as long as g). */
const nne_client_generate_req_t *ctl_gen_req(const ctl_gen_t *g);
void ctl_gen_free(ctl_gen_t *g);

#endif /* NNE_CTL_H */
