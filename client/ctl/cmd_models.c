/* cmd_models.c — `nneditctl models list|load|unload`, and a model's info
 * as every command shows it (ctl.h, block cmd_models.c). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "output.h"

/* ---- a model's info ------------------------------------------------------ */

/* The tokenizer as JSON: null when the model has none. */
static json_t *tokenizer_json(const nne_client_model_info_t *m) {
  const nne_client_tokenizer_info_t *t = &m->tokenizer;
  json_t *sp;
  size_t i;
  if (!m->has_tokenizer)
    return json_null();
  sp = json_array();
  for (i = 0; i < t->n_special; i++)
    json_array_append_new(
        sp,
        json_pack("{s:I, s:o*}", "id", (json_int_t)t->special[i].id, "text",
                  ctl_json_text(t->special[i].text, t->special[i].text_len)));
  return json_pack("{s:s, s:s, s:I, s:o}", "file", t->file, "kind", t->kind,
                   "vocab_size", (json_int_t)t->vocab_size, "special", sp);
}

void ctl_tokenizer_text(const nne_client_model_info_t *m, char *buf,
                        size_t cap) {
  const nne_client_tokenizer_info_t *t = &m->tokenizer;
  char q[96];
  size_t i, n = 0;
  buf[0] = '\0';
  if (!m->has_tokenizer) {
    ctl_line_add(buf, cap, &n, "none");
    return;
  }
  ctl_line_add(buf, cap, &n, "%s, %" PRIu32 " ids", t->kind[0] ? t->kind : "?",
               t->vocab_size);
  /* A few specials say what the template uses; a vocabulary with many
   * added tokens would drown the line. */
  for (i = 0; i < t->n_special && i < 8; i++)
    ctl_line_add(buf, cap, &n, "%s%" PRId64 " %s",
                 i ? ", " : ", special: ", t->special[i].id,
                 ctl_quote_text(t->special[i].text, t->special[i].text_len, q,
                                sizeof q));
  if (t->n_special > 8)
    ctl_line_add(buf, cap, &n, ", ... (%zu in all)", t->n_special);
  ctl_line_add(buf, cap, &n, " (%s)", t->file);
}

/* The EOS ids as JSON. */
static json_t *eos_json(const nne_client_model_info_t *m) {
  json_t *a = json_array();
  size_t i;
  for (i = 0; i < m->n_eos_token_ids; i++)
    json_array_append_new(a, json_integer((json_int_t)m->eos_token_ids[i]));
  return a;
}

void ctl_generation_text(const nne_client_model_info_t *m, char *buf,
                         size_t cap) {
  size_t i, n = 0;
  buf[0] = '\0';
  ctl_line_add(buf, cap, &n, "%s, eos",
               m->kv_cache ? "kv cache" : "recomputes each step");
  for (i = 0; i < m->n_eos_token_ids; i++)
    ctl_line_add(buf, cap, &n, "%s%" PRId64, i ? ", " : " ",
                 m->eos_token_ids[i]);
  if (m->n_eos_token_ids == 0)
    ctl_line_add(buf, cap, &n, " none");
}

json_t *ctl_info_json(const nne_client_model_info_t *m) {
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, "
      "s:I, s:o, s:I, s:o, s:o, s:b, s:o}",
      "name", m->name, "state", nne_client_model_state_name(m->state), "device",
      m->device, "dtype", nne_client_dtype_name(m->dtype), "family", m->family,
      "family_reason", m->family_reason, "layer_count",
      (json_int_t)m->layer_count, "export_kind", m->export_kind, "error",
      m->error, "param_count", (json_int_t)m->param_count, "param_bytes",
      (json_int_t)m->param_bytes, "vocab_size", (json_int_t)m->vocab_size,
      "module_count", (json_int_t)m->module_count, "max_batch",
      (json_int_t)m->max_batch, "max_seq_len", (json_int_t)m->max_seq_len,
      "load_ms", ctl_json_num(m->load_ms), "in_flight",
      (json_int_t)m->in_flight, "warnings",
      ctl_json_strs(m->warnings, m->n_warnings), "tokenizer", tokenizer_json(m),
      "kv_cache", m->kv_cache, "eos_token_ids", eos_json(m));
}

void ctl_family_text(const nne_client_model_info_t *m, char *buf, size_t cap) {
  if (m->family[0] == '\0')
    snprintf(buf, cap, "none");
  else if (m->family_reason[0] == '\0')
    snprintf(buf, cap, "%s", m->family);
  else
    snprintf(buf, cap, "%s (%s)", m->family, m->family_reason);
}

void ctl_warnings_table(const nne_client_model_info_t *m) {
  size_t i;
  if (m->n_warnings == 0)
    return;
  printf("warnings:\n");
  for (i = 0; i < m->n_warnings; i++)
    printf("  %s\n", m->warnings[i]);
}

void ctl_info_table(const nne_client_model_info_t *m) {
  char fam[200], tok[1200], gen[400];
  ctl_family_text(m, fam, sizeof fam);
  printf("name:         %s\n", m->name);
  printf("state:        %s\n", nne_client_model_state_name(m->state));
  if (m->state == NNE_CLIENT_MODEL_FAILED || m->error[0] != '\0')
    printf("error:        %s\n", m->error);
  printf("device:       %s\n", m->device);
  printf("dtype:        %s\n", nne_client_dtype_name(m->dtype));
  printf("family:       %s\n", fam);
  if (m->layer_count > 0)
    printf("layers:       %" PRIu32 "\n", m->layer_count);
  printf("export:       %s\n", m->export_kind);
  printf("parameters:   %" PRIu64 " (%" PRIu64 " bytes)\n", m->param_count,
         m->param_bytes);
  printf("vocab size:   %" PRId64 "\n", m->vocab_size);
  ctl_tokenizer_text(m, tok, sizeof tok);
  printf("tokenizer:    %s\n", tok);
  printf("modules:      %" PRIu32 "\n", m->module_count);
  printf("limits:       batch %" PRIu32 ", sequence %" PRIu32 "\n",
         m->max_batch, m->max_seq_len);
  /* Known once loaded, as the sizes. */
  if (m->state == NNE_CLIENT_MODEL_LOADED) {
    ctl_generation_text(m, gen, sizeof gen);
    printf("generation:   %s\n", gen);
  }
  printf("load time:    %.1f ms\n", m->load_ms);
  printf("in flight:    %" PRIu32 "\n", m->in_flight);
  ctl_warnings_table(m);
}

/* ---- models list --------------------------------------------------------- */

static void list_table(const nne_client_model_list_t *list) {
  int wn = 4, wd = 6, wf = 6;
  size_t i, k;
  for (i = 0; i < list->n_models; i++) {
    const nne_client_model_info_t *m = &list->models[i];
    if ((int)strlen(m->name) > wn)
      wn = (int)strlen(m->name);
    if ((int)strlen(m->device) > wd)
      wd = (int)strlen(m->device);
    if ((int)strlen(m->family) > wf)
      wf = (int)strlen(m->family);
  }
  printf("%-*s  %-9s  %-*s  %-8s  %-*s  %12s  %6s  %s\n", wn, "NAME", "STATE",
         wd, "DEVICE", "DTYPE", wf, "FAMILY", "PARAMS", "VOCAB", "TOKENIZER");
  for (i = 0; i < list->n_models; i++) {
    const nne_client_model_info_t *m = &list->models[i];
    char params[24] = "-", vocab[24] = "-";
    /* Sizes are known once a model is loaded: "-" says "not yet". */
    if (m->param_count > 0)
      snprintf(params, sizeof params, "%" PRIu64, m->param_count);
    if (m->vocab_size > 0)
      snprintf(vocab, sizeof vocab, "%" PRId64, m->vocab_size);
    /* The tokenizer's kind ("BPE"); "-": none, or not loaded yet. */
    printf("%-*s  %-9s  %-*s  %-8s  %-*s  %12s  %6s  %s\n", wn, m->name,
           nne_client_model_state_name(m->state), wd,
           m->device[0] ? m->device : "-",
           m->dtype ? nne_client_dtype_name(m->dtype) : "-", wf,
           m->family[0] ? m->family : "-", params, vocab,
           m->has_tokenizer && m->tokenizer.kind[0] ? m->tokenizer.kind : "-");
    if (m->error[0] != '\0')
      printf("%*s  error: %s\n", wn, "", m->error);
    for (k = 0; k < m->n_warnings; k++)
      printf("%*s  warning: %s\n", wn, "", m->warnings[k]);
  }
  if (list->server_version[0] != '\0')
    printf("(server: %s)\n", list->server_version);
}

static int run_list(ctl_t *c, int argc, char **argv) {
  nne_client_model_list_t list;
  nne_client_err_t err;
  const char *none;
  json_t *arr;
  size_t i;
  int rc;

  if ((rc = ctl_args_one(c, argc, argv, NULL, 0, false, &none)) != 0 ||
      (rc = ctl_connect(c)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  if (nne_client_models_list(c->cli, &list, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON) {
    arr = json_array();
    for (i = 0; i < list.n_models; i++)
      json_array_append_new(arr, ctl_info_json(&list.models[i]));
    rc = ctl_json_out(c, json_pack("{s:s, s:o}", "server_version",
                                   list.server_version, "models", arr));
  } else {
    list_table(&list);
  }
  nne_client_model_list_free(&list);
  return rc;
}

/* ---- models load and unload ---------------------------------------------- */

enum { OPT_DEVICE, OPT_DTYPE };

static int load_unload(ctl_t *c, bool load, int argc, char **argv) {
  const char *name = NULL, *device = NULL;
  nne_client_dtype_t dtype = NNE_CLIENT_DTYPE_UNSPECIFIED;
  nne_client_model_info_t info;
  nne_client_err_t err;
  ctl_args_t a;
  int k, rc;

  ctl_args_init(&a, c, argc, argv);
  while ((k = ctl_args_next(&a)) != CTL_ARG_END) {
    rc = 0;
    if (k == CTL_ARG_HELP)
      return ctl_help(c);
    if (k == CTL_ARG_BAD)
      return CTL_EXIT_USAGE;
    if (k == CTL_ARG_POS && name != NULL)
      return ctl_args_unexpected(&a);
    if (k == CTL_ARG_POS)
      rc = ctl_arg_word(&a, "NAME", NNE_CLIENT_MODEL_NAME_MAX, &name);
    else if (k == OPT_DEVICE)
      rc = ctl_arg_text(&a, NNE_CLIENT_DEVICE_MAX, false, &device);
    else if (k == OPT_DTYPE)
      rc = ctl_arg_dtype(&a, &dtype);
    if (rc != 0)
      return rc;
  }
  if (name == NULL)
    return ctl_usage(c, "missing model NAME");
  if ((rc = ctl_connect(c)) != 0)
    return rc;
  if (load)
    rc = nne_client_models_load(c->cli, name, device, dtype, &info, &err);
  else
    rc = nne_client_models_unload(c->cli, name, &info, &err);
  if (rc < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c, json_pack("{s:o}", "model", ctl_info_json(&info)));
  else
    ctl_info_table(&info);
  nne_client_model_info_free(&info);
  return rc;
}

static int run_load(ctl_t *c, int argc, char **argv) {
  return load_unload(c, true, argc, argv);
}

static int run_unload(ctl_t *c, int argc, char **argv) {
  return load_unload(c, false, argc, argv);
}

static const ctl_opt_t no_opts[] = {CTL_OPT_END};
static const ctl_opt_t load_opts[] = {
    [OPT_DEVICE] = {"--device", NULL, true},
    [OPT_DTYPE] = {"--dtype", NULL, true},
    CTL_OPT_END,
};

const ctl_cmd_t ctl_cmd_models_list = {"models list", no_opts, run_list, false};
const ctl_cmd_t ctl_cmd_models_load = {"models load", load_opts, run_load,
                                       false};
const ctl_cmd_t ctl_cmd_models_unload = {"models unload", no_opts, run_unload,
                                         false};
