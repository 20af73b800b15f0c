/* cmd_graph.c — `nneditctl graph MODEL [MODULE]`: a module's forward
 * graph, pristine or as an edit set's backend runs it, one node a line. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "output.h"

/* Colours by node kind (ANSI SGR), or none. */
typedef struct palette {
  const char *hook, *call, *op, *constant, *other, *reset;
} palette_t;

static const palette_t ansi_palette = {"\033[1;31m", "\033[1;34m", "\033[32m",
                                       "\033[2m",    "\033[35m",   "\033[0m"};
static const palette_t no_palette = {"", "", "", "", "", ""};

static bool node_is_edit(const nne_client_graph_node_t *n) {
  return n->kind == NNE_CLIENT_NODE_HOOK || n->inserted;
}

static const char *node_colour(const palette_t *p,
                               const nne_client_graph_node_t *n) {
  if (node_is_edit(n))
    return p->hook;
  switch (n->kind) {
  case NNE_CLIENT_NODE_CALL: return p->call;
  case NNE_CLIENT_NODE_OP: return p->op;
  case NNE_CLIENT_NODE_CONSTANT:
  case NNE_CLIENT_NODE_ATTRIBUTE: return p->constant;
  default: return p->other;
  }
}

/* "%a, %b = aten::add(%x, %y)", "-> callee" for a call; heap string. */
static char *node_statement(const nne_client_graph_node_t *n) {
  char *buf = NULL;
  size_t len = 0, k;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL)
    return NULL;
  if (node_is_edit(n))
    fputs("[edit] ", f);
  for (k = 0; k < n->n_outputs; k++)
    fprintf(f, "%s%s", k ? ", " : "", n->outputs[k]);
  if (n->n_outputs > 0)
    fputs(" = ", f);
  fprintf(f, "%s(", n->op[0] ? n->op : "?");
  for (k = 0; k < n->n_inputs; k++)
    fprintf(f, "%s%s", k ? ", " : "", n->inputs[k]);
  fputc(')', f);
  if (n->kind == NNE_CLIENT_NODE_CALL && n->callee[0])
    fprintf(f, " -> %s", n->callee);
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* Nesting shown as indentation, up to this many levels. */
#define GRAPH_MAX_INDENT 16
/* Widest statement the selector column waits for. */
#define GRAPH_STMT_COL 64

static void graph_legend(const palette_t *p) {
  printf("LEGEND: %s[edit] hook / edited value%s | %ssubmodule call%s | "
         "%stensor op%s | %sconstant / attribute%s | %sother%s\n",
         p->hook, p->reset, p->call, p->reset, p->op, p->reset, p->constant,
         p->reset, p->other, p->reset);
}

static int graph_table(const ctl_t *c, const char *model, const char *module,
                       const char *edit_set, const nne_client_graph_t *g,
                       const palette_t *p) {
  size_t i, ws = 0, wsel = 0, wsh = 0, hooks = 0;
  char **stmts = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *stmts);
  if (stmts == NULL)
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  for (i = 0; i < g->n_nodes; i++) {
    const nne_client_graph_node_t *n = &g->nodes[i];
    size_t ind =
        2 * (n->depth < GRAPH_MAX_INDENT ? n->depth : GRAPH_MAX_INDENT);
    if ((stmts[i] = node_statement(n)) == NULL) {
      size_t k;
      for (k = 0; k < i; k++)
        free(stmts[k]);
      free(stmts);
      return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (ind + strlen(stmts[i]) > ws)
      ws = ind + strlen(stmts[i]);
    if (strlen(n->selector) > wsel)
      wsel = strlen(n->selector);
    if (strlen(n->shape) > wsh)
      wsh = strlen(n->shape);
    hooks += node_is_edit(n);
  }
  if (ws > GRAPH_STMT_COL)
    ws = GRAPH_STMT_COL;

  printf("%s %s", model, g->module[0] ? g->module : "(root)");
  if (module != NULL && strcmp(module, g->module) != 0)
    printf(" (%s)", module);
  if (edit_set != NULL)
    printf(", edit set %s (%s)", edit_set, g->edited ? "edited" : "not edited");
  printf(": %zu nodes", g->n_nodes);
  if (hooks > 0)
    printf(", %zu inserted by edits", hooks);
  putchar('\n');
  graph_legend(p);
  for (i = 0; i < g->n_nodes; i++) {
    const nne_client_graph_node_t *n = &g->nodes[i];
    size_t ind =
        2 * (n->depth < GRAPH_MAX_INDENT ? n->depth : GRAPH_MAX_INDENT);
    size_t used = ind + strlen(stmts[i]);
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (f == NULL)
      break;
    /* index, the statement in its kind's colour, then what an edit would
     * name to reach it, the shape and the source line. */
    fprintf(f, "%5" PRIu32 "  %*s%s%s%s", n->index, (int)ind, "",
            node_colour(p, n), stmts[i], node_colour(p, n)[0] ? p->reset : "");
    if (wsel + wsh > 0 || n->source[0]) {
      fprintf(f, "%*s  %-*s", used < ws ? (int)(ws - used) : 0, "", (int)wsel,
              n->selector);
      if (wsh > 0)
        fprintf(f, "  %-*s", (int)wsh, n->shape);
      if (n->source[0])
        fprintf(f, "  # %s", n->source);
    }
    if (fclose(f) == 0 && line != NULL)
      ctl_print_trimmed(line);
    free(line);
  }
  for (i = 0; i < g->n_nodes; i++)
    free(stmts[i]);
  free(stmts);
  return 0;
}

static json_t *graph_json(const char *model, const char *edit_set,
                          const nne_client_graph_t *g) {
  json_t *nodes = json_array();
  size_t i;
  for (i = 0; i < g->n_nodes; i++) {
    const nne_client_graph_node_t *n = &g->nodes[i];
    json_array_append_new(
        nodes,
        json_pack("{s:I, s:s, s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:b, s:I, "
                  "s:s}",
                  "index", (json_int_t)n->index, "op", n->op, "kind",
                  nne_client_node_kind_name(n->kind), "inputs",
                  ctl_json_strs(n->inputs, n->n_inputs), "outputs",
                  ctl_json_strs(n->outputs, n->n_outputs), "instance",
                  n->instance, "selector", n->selector, "source", n->source,
                  "shape", n->shape, "inserted", (int)n->inserted, "depth",
                  (json_int_t)n->depth, "callee", n->callee));
  }
  return json_pack(
      "{s:s, s:s, s:o, s:b, s:o, s:s%}", "model", model, "module", g->module,
      "edit_set", edit_set ? json_string(edit_set) : json_null(), "edited",
      (int)g->edited, "nodes", nodes, "text", g->text, g->text_len);
}

enum {
  OPT_EDIT_SET,
  OPT_NO_COLOR,
  OPT_NO_COLOUR,
  OPT_COLOR,
  OPT_COLOUR,
  OPT_TEXT
};

static int run_graph(ctl_t *c, int argc, char **argv) {
  const char *model = NULL, *module = NULL, *edit_set = NULL, *env;
  int colour = -1; /* -1: decide by the terminal */
  bool text = false;
  nne_client_graph_t g;
  nne_client_err_t err;
  ctl_args_t a;
  int k, rc = 0;

  ctl_args_init(&a, c, argc, argv);
  while (rc == 0 && (k = ctl_args_next(&a)) != CTL_ARG_END) {
    switch (k) {
    case CTL_ARG_HELP: return ctl_help(c);
    case CTL_ARG_BAD: return CTL_EXIT_USAGE;
    case CTL_ARG_POS:
      if (model == NULL)
        rc = ctl_arg_word(&a, "MODEL", NNE_CLIENT_MODEL_NAME_MAX, &model);
      else if (module == NULL)
        rc = ctl_arg_word(&a, "MODULE", NNE_CLIENT_MODULE_NAME_MAX, &module);
      else
        rc = ctl_args_unexpected(&a);
      break;
    case OPT_EDIT_SET: rc = ctl_arg_edit_set(&a, &edit_set); break;
    case OPT_NO_COLOR:
    case OPT_NO_COLOUR: colour = 0; break;
    case OPT_COLOR:
    case OPT_COLOUR: colour = 1; break;
    case OPT_TEXT: text = true; break;
    }
  }
  if (rc != 0)
    return rc;
  if (model == NULL)
    return ctl_usage(c, "missing MODEL");
  /* Colour only for a terminal, and never when NO_COLOR is set
   * (no-color.org); --color and --no-color decide over both. */
  if (colour < 0) {
    env = getenv("NO_COLOR");
    colour = isatty(STDOUT_FILENO) && (env == NULL || env[0] == '\0');
  }
  if ((rc = ctl_connect(c)) != 0)
    return rc;
  if (nne_client_models_graph(c->cli, model, module, edit_set, &g, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c, graph_json(model, edit_set, &g));
  else if (text)
    rc = fwrite(g.text, 1, g.text_len, stdout) == g.text_len ? 0
                                                             : CTL_EXIT_ERROR;
  else
    rc = graph_table(c, model, module, edit_set, &g,
                     colour ? &ansi_palette : &no_palette);
  nne_client_graph_free(&g);
  return rc;
}

static const ctl_opt_t graph_opts[] = {
    [OPT_EDIT_SET] = CTL_OPT_EDIT_SET,
    [OPT_NO_COLOR] = {"--no-color", NULL, false},
    [OPT_NO_COLOUR] = {"--no-colour", NULL, false},
    [OPT_COLOR] = {"--color", NULL, false},
    [OPT_COLOUR] = {"--colour", NULL, false},
    [OPT_TEXT] = {"--text", NULL, false},
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_graph = {"graph", graph_opts, run_graph, false};
