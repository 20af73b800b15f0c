/* main.c — nneditctl: the global options, wherever they are on the line,
 * and the command table.
 *
 *   nneditctl [GLOBAL OPTIONS] COMMAND [ARGS]   (global options may also
 *                                               come after the command)
 *
 * The line is read once, left to right: global options are taken out
 * wherever they are (kubectl-style); the first words name the command
 * ("models load"); once it is known, a value taken by one of its options
 * stays with that option even when it looks like a global option; the
 * rest goes to the command, in order. Errors found here are reported once
 * the whole line is read, so that -o json anywhere makes them JSON too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "help.h"
#include "output.h"

/* The groups: words before a subcommand ("models list"). */
static const ctl_cmd_t group_models = {"models", NULL, NULL, false};
static const ctl_cmd_t group_edits = {"edits", NULL, NULL, false};

static const ctl_cmd_t *const commands[] = {
    &ctl_cmd_health,      &group_models,          &ctl_cmd_models_list,
    &ctl_cmd_models_load, &ctl_cmd_models_unload, &ctl_cmd_modules,
    &ctl_cmd_sites,       &ctl_cmd_forward,       &ctl_cmd_generate,
    &ctl_cmd_trace,       &ctl_cmd_lens,          &ctl_cmd_tokenize,
    &ctl_cmd_detokenize,  &group_edits,           &ctl_cmd_edits_apply,
    &ctl_cmd_edits_list,  &ctl_cmd_edits_get,     &ctl_cmd_edits_drop,
    &ctl_cmd_graph,       &ctl_cmd_stats,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

enum {
  G_ADDR,
  G_TIMEOUT,
  G_CONNECT_TIMEOUT,
  G_TOKEN_FILE,
  G_TLS,
  G_CA,
  G_CERT,
  G_KEY,
  G_OUTPUT,
  G_HELP,
  G_VERSION
};

static const ctl_opt_t global_opts[] = {
    [G_ADDR] = {"--addr", NULL, true},
    [G_TIMEOUT] = {"--timeout", NULL, true},
    [G_CONNECT_TIMEOUT] = {"--connect-timeout", NULL, true},
    [G_TOKEN_FILE] = {"--token-file", NULL, true},
    [G_TLS] = {"--tls", NULL, false},
    [G_CA] = {"--ca", NULL, true},
    [G_CERT] = {"--cert", NULL, true},
    [G_KEY] = {"--key", NULL, true},
    [G_OUTPUT] = {"--output", "-o", true},
    [G_HELP] = {"--help", "-h", false},
    [G_VERSION] = {"--version", NULL, false},
    CTL_OPT_END,
};

/* Why the connection may take this long by default: a local daemon answers
 * at once, a remote one within a few round trips; ten seconds tells a
 * blackholed address from a slow network without making a script wait
 * the whole call deadline. */
#define CONNECT_TIMEOUT_MS 10000

/* The line as read: the command's arguments, and what was asked of
 * nneditctl itself. */
typedef struct scan {
  char **rest; /* the command's arguments, in order */
  int n_rest;
  const ctl_cmd_t *cmd; /* the command, or its group, or NULL */
  bool resolved;        /* no more words name the command */
  bool help, version;
  char err[600]; /* the first usage error */
} scan_t;

static const ctl_cmd_t *find(const char *group, const char *word) {
  char name[64];
  size_t k;
  if (group != NULL)
    snprintf(name, sizeof name, "%s %s", group, word);
  else
    snprintf(name, sizeof name, "%s", word);
  for (k = 0; k < N_COMMANDS; k++)
    if (strcmp(commands[k]->name, name) == 0)
      return commands[k];
  return NULL;
}

static void scan_error(scan_t *s, const char *fmt, const char *a,
                       const char *b) {
  if (s->err[0] == '\0')
    snprintf(s->err, sizeof s->err, fmt, a, b);
}

/* A global option (k) with its value (NULL: the next argument's). Returns
 * the index of the last argument it used. */
static int global_opt(ctl_t *c, scan_t *s, int k, const char *arg,
                      const char *val, int argc, char **argv, int i) {
  char typed[24];
  snprintf(typed, sizeof typed, "%s",
           strncmp(arg, "--", 2) == 0 ? global_opts[k].name
                                      : global_opts[k].alias);
  if (k == G_HELP) {
    s->help = true;
    return i;
  }
  if (k == G_VERSION) {
    s->version = true;
    return i;
  }
  if (k == G_TLS) {
    c->tls = true;
    return i;
  }
  if (val == NULL && i + 1 >= argc) {
    scan_error(s, "%s needs a value", typed, "");
    return i;
  }
  if (val == NULL)
    val = argv[++i];
  if (k == G_ADDR && val[0] == '\0')
    scan_error(s, "%s '%s': expected an address (host:port)", typed, val);
  else if (k == G_ADDR)
    c->addr = val;
  else if (k == G_TIMEOUT && !ctl_parse_seconds(val, &c->timeout_ms))
    scan_error(s, "%s '%s': expected a number of seconds (0 = no limit)", typed,
               val);
  else if (k == G_CONNECT_TIMEOUT &&
           !ctl_parse_seconds(val, &c->connect_timeout_ms))
    scan_error(s, "%s '%s': expected a number of seconds (0 = no limit)", typed,
               val);
  else if (k == G_TOKEN_FILE && val[0] == '\0')
    scan_error(s, "%s '%s': expected a file holding the token", typed, val);
  else if (k == G_TOKEN_FILE)
    c->token_file = val;
  else if ((k == G_CA || k == G_CERT || k == G_KEY) && val[0] == '\0')
    scan_error(s, "%s '%s': expected a PEM file", typed, val);
  else if (k == G_CA)
    c->tls_ca = val;
  else if (k == G_CERT)
    c->tls_cert = val;
  else if (k == G_KEY)
    c->tls_key = val;
  else if (k == G_OUTPUT && !ctl_parse_output(val, &c->output))
    scan_error(s, "%s '%s': expected table, json or npy (npy: trace only)",
               typed, val);
  return i;
}

/* A word while the command is not known yet: the command, its group, or a
 * group's subcommand. */
static void scan_word(scan_t *s, char *arg) {
  const ctl_cmd_t *sub;
  if (s->cmd == NULL) {
    s->cmd = find(NULL, arg);
    if (s->cmd == NULL) {
      scan_error(s, "unknown command '%s'%s", arg, "");
      s->resolved = true;
    } else {
      s->resolved = s->cmd->run != NULL;
    }
    return;
  }
  /* A group's word: its subcommand, or an argument its handler refuses. */
  s->resolved = true;
  if ((sub = find(s->cmd->name, arg)) != NULL)
    s->cmd = sub;
  else
    s->rest[s->n_rest++] = arg;
}

static void scan(ctl_t *c, scan_t *s, int argc, char **argv) {
  bool only_rest = false;
  int i, k;
  for (i = 1; i < argc; i++) {
    char *arg = argv[i];
    const char *val;
    if (only_rest || strcmp(arg, "--") == 0) {
      only_rest = true;
      s->rest[s->n_rest++] = arg;
      continue;
    }
    k = ctl_opt_match(global_opts, arg, &val);
    if (k == G_HELP && s->cmd != NULL) {
      s->rest[s->n_rest++] = arg; /* the command's help */
      continue;
    }
    if (k >= 0) {
      i = global_opt(c, s, k, arg, val, argc, argv, i);
      continue;
    }
    /* A value of the command's own stays with its option. */
    if (s->cmd != NULL && (k = ctl_opt_match(s->cmd->opts, arg, &val)) >= 0 &&
        s->cmd->opts[k].value && val == NULL && i + 1 < argc) {
      s->rest[s->n_rest++] = arg;
      s->rest[s->n_rest++] = argv[++i];
      continue;
    }
    if (s->cmd == NULL && arg[0] == '-' && arg[1] != '\0') {
      scan_error(s, "unknown option '%s'%s", arg,
                 " (a command's own options go after the command)");
      continue;
    }
    if (!s->resolved && (arg[0] != '-' || arg[1] == '\0'))
      scan_word(s, arg);
    else if (s->cmd != NULL)
      s->rest[s->n_rest++] = arg;
  }
}

/* A group without a known subcommand. */
static int run_group(ctl_t *c, int argc, char **argv) {
  char subs[128];
  size_t k, n = 0, len = strlen(c->cmd->name);
  int i;
  subs[0] = '\0';
  for (k = 0; k < N_COMMANDS; k++)
    if (strncmp(commands[k]->name, c->cmd->name, len) == 0 &&
        commands[k]->name[len] == ' ')
      ctl_line_add(subs, sizeof subs, &n, "%s%s", n ? ", " : "",
                   commands[k]->name + len + 1);
  for (i = 0; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return ctl_help(c);
  if (argc == 0)
    return ctl_usage(c, "missing subcommand (%s)", subs);
  if (argv[0][0] == '-')
    return ctl_usage(c, "unknown option '%s'", argv[0]);
  return ctl_usage(c, "unknown subcommand '%s' (%s)", argv[0], subs);
}

int main(int argc, char **argv) {
  ctl_t c;
  scan_t s;
  const char *env;
  int rc;

  memset(&c, 0, sizeof c);
  memset(&s, 0, sizeof s);
  env = getenv("NNEDIT_ADDR");
  c.addr = env && *env ? env : NNE_CLIENT_DEFAULT_ADDRESS;
  c.timeout_ms = NNE_CLIENT_DEFAULT_TIMEOUT_MS;
  c.connect_timeout_ms = CONNECT_TIMEOUT_MS;
  if ((s.rest = calloc((size_t)argc + 1, sizeof *s.rest)) == NULL)
    return ctl_fail(&c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  scan(&c, &s, argc, argv);
  c.cmd = s.cmd;
  if (s.version) {
    printf("nneditctl %s\n", nne_client_version());
    rc = 0;
  } else if (s.help && s.cmd == NULL) {
    ctl_help_print(NULL);
    rc = 0;
  } else if (s.err[0] != '\0') {
    rc = ctl_usage(&c, "%s", s.err);
  } else if (s.cmd == NULL) {
    rc = ctl_usage(&c, "missing COMMAND");
  } else if (c.output == CTL_OUT_NPY && !s.cmd->npy) {
    rc = ctl_usage(&c, "-o npy: only trace writes .npy files (use table or "
                       "json)");
  } else {
    rc = s.cmd->run != NULL ? s.cmd->run(&c, s.n_rest, s.rest)
                            : run_group(&c, s.n_rest, s.rest);
  }
  nne_client_close(c.cli);
  free(s.rest);
  if (fflush(stdout) != 0 && rc == 0)
    rc = CTL_EXIT_ERROR;
  return rc;
}
