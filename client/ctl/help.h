/* help.h — nneditctl's help, kept as a table (help.c): per command its
 * usage lines, a one-line summary for the global help, and its text. The
 * command table (main.c) holds no help; both are keyed by the command's
 * name as typed ("edits apply"), NULL naming nneditctl as a whole.
 */
#ifndef NNE_CTL_HELP_H
#define NNE_CTL_HELP_H

#include <stddef.h>
#include <stdio.h>

/* The help of cmd on stdout: "usage: ..." then its text; for NULL the
 * global help (every command's usage and summary, the global options,
 * the error format and the exit codes). */
void ctl_help_print(const char *cmd);
/* The usage lines alone ("usage: nneditctl ..."), for usage errors. */
void ctl_help_usage(FILE *f, const char *cmd);
/* The usage lines joined on one line ("nneditctl ...; nneditctl ..."), for
 * JSON errors. */
void ctl_help_synopsis(const char *cmd, char *buf, size_t cap);

#endif /* NNE_CTL_HELP_H */
