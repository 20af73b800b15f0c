/* args.h — a command's arguments, one at a time, and one parser per kind
 * of option value, shared by every command that takes it (curl's
 * tool_paramhlp idea): token rows, padding, top-k, logits mode, sites,
 * directories and files, edit set ids, dtypes, seconds, counts and real
 * numbers within bounds, seeds, id lists.
 *
 *   ctl_args_t a;
 *   int k, rc;
 *   ctl_args_init(&a, c, argc, argv);       // options: c->cmd->opts
 *   while ((k = ctl_args_next(&a)) != CTL_ARG_END) {
 *     if (k == CTL_ARG_HELP) return ctl_help(c);
 *     if (k == CTL_ARG_BAD) return CTL_EXIT_USAGE;   // already reported
 *     if (k == CTL_ARG_POS) { ... a.arg ... continue; }
 *     if (k == OPT_PAD && (rc = ctl_arg_padding(&a, &pad)) != 0) return rc;
 *   }
 *
 * Every parser returns 0, or reports a usage error (output.h) and returns
 * CTL_EXIT_USAGE. Messages name the option as the user typed it and quote
 * the value: "--pad 'up': expected none, left or right".
 *
 * Ownership: values point into argv (borrowed for the run), except token
 * and mask rows, which ctl_rows_t owns.
 */
#ifndef NNE_CTL_ARGS_H
#define NNE_CTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

/* What a command's parse returns when it printed the help (the command
 * then ends with exit 0). */
#define CTL_HELP_SHOWN (-1)

enum {
  CTL_ARG_END = -1,  /* no more arguments */
  CTL_ARG_POS = -2,  /* a positional argument: a.arg */
  CTL_ARG_HELP = -3, /* -h or --help */
  CTL_ARG_BAD = -4,  /* an unknown option or a missing value (reported) */
};

typedef struct ctl_args {
  ctl_t *c;
  int argc;
  char **argv;
  int i;
  bool only_pos;     /* after "--": every argument is positional */
  const char *typed; /* the option just matched, as typed ("-f", "--pad") */
  char typed_buf[48];
  const char *val; /* its value (NULL for a flag) */
  const char *arg; /* the positional argument just read */
} ctl_args_t;

void ctl_args_init(ctl_args_t *a, ctl_t *c, int argc, char **argv);
/* The next argument: an index into c->cmd->opts (a.typed, a.val set), or
 * one of the CTL_ARG_* above. */
int ctl_args_next(ctl_args_t *a);

/* Which of opts (a table ended by a NULL name) `arg` is: "--name",
 * "--name=VALUE", "-x" or, for an alias that takes a value, "-xVALUE".
 * Returns its index and sets *inline_val to the VALUE written in the same
 * argument (else NULL); -1 when none matches. */
int ctl_opt_match(const ctl_opt_t *opts, const char *arg,
                  const char **inline_val);

/* A positional argument the command has no place for: a usage error. */
int ctl_args_unexpected(const ctl_args_t *a);

/* The arguments of a command that takes no options and at most one word
 * (`what`, 1 to cap - 1 bytes, into *word; NULL when absent; what NULL: no
 * word at all). Returns 0, CTL_HELP_SHOWN, or the exit code of a usage
 * error (also when `required` and it is missing). */
int ctl_args_one(ctl_t *c, int argc, char **argv, const char *what, size_t cap,
                 bool required, const char **word);

/* ---- plain value parsers (no messages; for the ones below and tests) ---- */

/* A comma-separated list of integers within [lo, hi] ("1,2,3"; "" is the
 * empty list). *out is malloc'ed (freed by the caller, also when *n is 0);
 * false on anything else (nothing to free). */
bool ctl_parse_int_list(const char *s, int64_t lo, int64_t hi, int64_t **out,
                        size_t *n);
/* A decimal number from 0 to UINT32_MAX, nothing else. */
bool ctl_parse_u32(const char *s, uint32_t *out);
/* A decimal number from 0 to UINT64_MAX, nothing else. */
bool ctl_parse_u64(const char *s, uint64_t *out);
/* A finite decimal number (fractions and exponents allowed) within
 * [lo, hi], nothing else. */
bool ctl_parse_number(const char *s, double lo, double hi, double *out);
/* Seconds (a decimal number, fractions allowed, 0 to 1e9) as milliseconds;
 * a positive value never rounds to 0 (which means "no limit"). */
bool ctl_parse_seconds(const char *s, int64_t *ms);
/* The words of a mode: none|left|right, none|last|all, table|json|npy. */
bool ctl_parse_padding(const char *s, nne_client_padding_t *out);
bool ctl_parse_logits(const char *s, nne_client_logits_t *out);
bool ctl_parse_output(const char *s, ctl_output_t *out);
const char *ctl_padding_name(nne_client_padding_t p);
const char *ctl_logits_name(nne_client_logits_t l);

/* ---- option values ------------------------------------------------------- */

/* The options more than one command takes, spelled once (for the commands'
 * option tables). */
#define CTL_OPT_TOKENS                                                         \
  { "--tokens", NULL, true }
#define CTL_OPT_PROMPT                                                         \
  { "--prompt", NULL, true }
#define CTL_OPT_MASK                                                           \
  { "--mask", NULL, true }
#define CTL_OPT_PAD                                                            \
  { "--pad", NULL, true }
#define CTL_OPT_TOP_K                                                          \
  { "--top-k", NULL, true }
#define CTL_OPT_LOGITS                                                         \
  { "--logits", NULL, true }
#define CTL_OPT_SAVE                                                           \
  { "--save", NULL, true }
#define CTL_OPT_SAVE_DIR                                                       \
  { "--save-dir", NULL, true }
#define CTL_OPT_EDIT_SET                                                       \
  { "--edit-set", NULL, true }
#define CTL_OPT_VALUES                                                         \
  { "--values", NULL, false }
#define CTL_OPT_FILE                                                           \
  { "--file", "-f", true }
#define CTL_OPT_END                                                            \
  { NULL, NULL, false }

/* Token rows (--tokens, --prompt) and mask rows (--mask) in the order
 * given. Room for
 * one row per argument is made once, so adding never grows anything. The
 * rows and their values belong to the struct. */
typedef struct ctl_rows {
  nne_client_token_row_t *ids;
  size_t n_ids;
  nne_client_mask_row_t *mask;
  size_t n_mask;
  size_t cap;
} ctl_rows_t;

int ctl_rows_init(ctl_rows_t *r, const ctl_t *c, int argc);
void ctl_rows_free(ctl_rows_t *r);

int ctl_arg_tokens(ctl_args_t *a, ctl_rows_t *r); /* --tokens 1,2,3 */
/* --prompt TEXT: a text row (the daemon tokenizes it); the text is
 * borrowed from argv. Not empty, at most NNE_CLIENT_TEXT_MAX bytes. */
int ctl_arg_prompt(ctl_args_t *a, ctl_rows_t *r);
int ctl_arg_mask(ctl_args_t *a, ctl_rows_t *r); /* --mask 1,1,0 (int32) */
int ctl_arg_padding(ctl_args_t *a, nne_client_padding_t *out);
int ctl_arg_top_k(ctl_args_t *a, uint32_t *out);
int ctl_arg_logits(ctl_args_t *a, nne_client_logits_t *out);
int ctl_arg_dtype(ctl_args_t *a, nne_client_dtype_t *out);
int ctl_arg_seconds(ctl_args_t *a, int64_t *ms);
/* A count within [lo, hi] (--max-new-tokens, --alternatives):
 * "--alternatives '200': expected a number from 0 to 100". */
int ctl_arg_count(ctl_args_t *a, uint32_t lo, uint32_t hi, uint32_t *out);
/* A real number within [lo, hi] (--temperature, --top-p). */
int ctl_arg_number(ctl_args_t *a, double lo, double hi, float *out);
/* --seed S: 0 to UINT64_MAX. */
int ctl_arg_u64(ctl_args_t *a, uint64_t *out);
/* --stop-id ID[,ID...]: token ids (0 to INT64_MAX) appended to
 * ids[*n..cap); more than cap in all is a usage error naming the bound. */
int ctl_arg_ids(ctl_args_t *a, int64_t *ids, size_t *n, size_t cap);
/* --save SITE: a site spelling, which names its tensor too (shorter than
 * NNE_CLIENT_NAME_MAX). */
int ctl_arg_site(ctl_args_t *a, const char **out);
/* --save-dir DIR, -f FILE ('-' = stdin): not empty. */
int ctl_arg_path(ctl_args_t *a, const char **out);
/* --edit-set ID. */
int ctl_arg_edit_set(ctl_args_t *a, const char **out);
/* Any other text value (--label, --device, --name, --module): shorter than
 * cap bytes; empty only when empty_ok. */
int ctl_arg_text(ctl_args_t *a, size_t cap, bool empty_ok, const char **out);
/* The positional argument just read (a.arg) as `what` ("MODEL", "ID"): 1 to
 * cap - 1 bytes. */
int ctl_arg_word(ctl_args_t *a, const char *what, size_t cap, const char **out);

#endif /* NNE_CTL_ARGS_H */
