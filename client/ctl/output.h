/* output.h — what nneditctl prints: JSON documents and aligned tables on
 * stdout, errors on stderr, and the exit code each error means.
 *
 * Errors. In table mode (the default) an error is one line,
 * "nneditctl: STATUS: message" (a usage error: "nneditctl: message", then
 * the command's usage and a hint). With -o json it is one JSON object on
 * one line of stderr:
 *   {"code": "NOT_FOUND", "message": "..."}
 * where code is the gRPC status name (the daemon's, or libnnedit's for
 * what it found itself), and for a usage error
 *   {"code": "USAGE", "message": "...", "usage": "nneditctl forward ..."}.
 * Each error function returns the exit code: CTL_EXIT_USAGE for usage
 * errors, CTL_EXIT_UNREACHABLE for UNAVAILABLE, else CTL_EXIT_ERROR.
 */
#ifndef NNE_CTL_OUTPUT_H
#define NNE_CTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ctl.h"

/* ---- errors -------------------------------------------------------------- */

/* A usage error of c->cmd (NULL: of the command line as a whole). */
int ctl_usage(const ctl_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* An error with a status code (nne_client_code_t): a failed call, or a
 * local failure named as the library would (INTERNAL, RESOURCE_EXHAUSTED,
 * INVALID_ARGUMENT for a file that cannot be read or written). */
int ctl_fail(const ctl_t *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A failed libnnedit call: ctl_fail with its code and message. */
int ctl_call_error(const ctl_t *c, const nne_client_err_t *err);
/* The exit code of a status code: 3 for UNAVAILABLE, 1 otherwise. */
int ctl_exit_code(int code);

/* Creates the client (c->cli, closed by main) and connects it, trying once
 * for at most --connect-timeout. Returns 0, or the exit code after the
 * error is printed (3: the daemon is unreachable). */
int ctl_connect(ctl_t *c);

/* ---- help ---------------------------------------------------------------- */

/* Prints c->cmd's help on stdout; returns 0. */
int ctl_help(const ctl_t *c);

/* ---- JSON ---------------------------------------------------------------- */

/* Prints one JSON document on stdout and frees it. Returns 0, or 1 (after
 * saying so) when doc is NULL (it could not be built) or cannot be
 * written. */
int ctl_json_out(const ctl_t *c, json_t *doc);
/* Prints doc as one line of JSON lines (compact) and frees it (the caller
 * flushes when a reader should see the line at once). Returns 0, or 1
 * (after saying so) as ctl_json_out. */
int ctl_json_line(const ctl_t *c, json_t *doc);
/* A JSON number for a float that may be inf or nan (JSON has neither:
 * null). */
json_t *ctl_json_num(double v);
/* A JSON array of n strings. */
json_t *ctl_json_strs(const char *const *v, size_t n);
/* A JSON string of s[0..n) (a token's text, which may hold a NUL or a
 * part of a UTF-8 sequence): a byte that is not valid UTF-8 becomes
 * U+FFFD, as JSON strings must be Unicode. NULL when memory runs out. */
json_t *ctl_json_text(const char *s, size_t n);

/* ---- token text ---------------------------------------------------------- */

/* s[0..n) quoted for a table, so that every byte can be told apart:
 * ' Paris', '\n'. Inside single quotes: \\, \', \n, \t, \r; other
 * ASCII controls and bytes that are not valid UTF-8 as \xNN; code points
 * that print as nothing or as a blank (C1 controls, no-break and other
 * spaces, zero-width characters, joiners, bidirectional marks, separators,
 * the byte order mark) as \uXXXX; any other UTF-8 as it is. Writes at most
 * cap bytes with the NUL; a text that does not fit ends in "...'" (cap is
 * at least 8). Returns buf. */
char *ctl_quote_text(const char *s, size_t n, char *buf, size_t cap);

/* ---- tables -------------------------------------------------------------- */

/* Appends printf output to line[*n..cap), never past the end. */
void ctl_line_add(char *line, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints the line without the blanks at its end (noise in a terminal). */
void ctl_print_trimmed(char *line);
/* Prints rows of n columns aligned on their widest cell: cells[r * n + k].
 * align[k] is 'r' for a right-aligned column (numbers); align NULL or any
 * other letter: left. */
void ctl_print_columns(const char *const *cells, size_t rows, size_t n,
                       const char *align);

#endif /* NNE_CTL_OUTPUT_H */
