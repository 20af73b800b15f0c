/* help.c — the help table (help.h). One row per command: the usage lines
 * (a line starting with blanks continues the one before), a summary for
 * the global help, and the text `nneditctl COMMAND --help` prints after
 * the usage. */
#include "help.h"

#include <string.h>

#include "nnedit.h"

typedef struct help_row {
  const char *cmd;
  const char *usage;
  const char *summary;
  const char *text;
} help_row_t;

static const help_row_t rows[] = {
    {NULL, "nneditctl [GLOBAL OPTIONS] COMMAND [ARGS]", NULL, NULL},
    {"health", "nneditctl health [SERVICE]",
     "is the server (or SERVICE) serving?",
     "Asks the standard gRPC health service whether the server (or SERVICE,\n"
     "e.g. nnedit.v1.Inference) is serving. Prints SERVING, NOT_SERVING, ...\n"
     "and exits 0 only for SERVING. An unknown service is NOT_FOUND.\n"
     "JSON: {service, status}\n"},
    {"models", "nneditctl models list|load|unload ...", NULL,
     "  models list\n"
     "  models load NAME [--device D] [--dtype T]\n"
     "  models unload NAME\n"
     "'nneditctl models SUBCOMMAND --help' for details.\n"},
    {"models list", "nneditctl models list", "models in the repository",
     "Lists the models of the daemon's repository with their state (and,\n"
     "once loaded, their sizes and tokenizer kind).\n"
     "JSON: {server_version, models: [{name, state, device, dtype, family,\n"
     "       export_kind, error, param_count, param_bytes, vocab_size,\n"
     "       module_count, max_batch, max_seq_len, load_ms, in_flight,\n"
     "       warnings, tokenizer: null | {file, kind, vocab_size, special:\n"
     "       [{id, text}]}, kv_cache, eos_token_ids}]}\n"},
    {"models load", "nneditctl models load NAME [--device D] [--dtype T]",
     "load a model (waits until loaded)",
     "Loads NAME from the repository (waits until loaded; a loaded model is\n"
     "returned as is).\n"
     "  --device D   cpu, cuda:0, ... (default: the model's model.json)\n"
     "  --dtype T    float32, float16, bfloat16, ... (default: model.json)\n"
     "JSON: {model: {...}} (the fields of 'models list')\n"},
    {"models unload", "nneditctl models unload NAME", "unload a model",
     "Unloads NAME (in-flight calls finish first).\n"
     "JSON: {model: {...}}\n"},
    {"modules", "nneditctl modules MODEL [--module NAME] [--all] [--sites]",
     "module tree of a loaded model",
     "Prints the module tree of a loaded model: a line on the model (its\n"
     "class, family and how the family was detected, layer count), then one\n"
     "module a line, indented by depth. A module with a standard name shows\n"
     "it first and its raw path in parentheses:\n"
     "  layers.3.self_attn (transformer.h.3.attn)  GPT2Attention  call 6\n"
     "then its class, the order of its first call in forward, the "
     "parameters\n"
     "it holds directly and its other names (aka: user aliases). The root "
     "is\n"
     "shown as the model's class. Numbered siblings identical to an earlier\n"
     "one (same relative paths and classes) are folded into one line:\n"
     "  layers.1 .. layers.11  (11 more like layers.0)\n"
     "The model's tokenizer (kind, vocabulary size, special tokens, file),\n"
     "how it generates (KV cache or not, EOS ids) and its warnings (renames\n"
     "that matched nothing, names that failed validation) follow the tree.\n"
     "  --module NAME   only that module's subtree; NAME is any spelling\n"
     "                  (raw path, standard name, user alias)\n"
     "  --all           no folding: every module\n"
     "  --sites         the standard sites table too (see 'sites')\n"
     "JSON: {model: {..., family, family_reason, layer_count, warnings,\n"
     "       tokenizer},\n"
     "       module, modules: [{path, class_name, type_name, parent, depth,\n"
     "       call_index, param_count, standard_names, aliases}] in "
     "pre-order,\n"
     "       sites: [...as in 'sites']} (never folded)\n"},
    {"sites", "nneditctl sites MODEL [--module NAME] [--all]",
     "standard sites of a loaded model",
     "Prints the standard sites of a loaded model (embed, "
     "layers.N.resid_pre,\n"
     "layers.N.self_attn.pattern, ..., logits): the standard name, the\n"
     "TransformerLens name, and where it resolved (its raw form) or\n"
     "'unavailable: reason'. Layers whose sites resolve alike are folded\n"
     "into one line unless --all.\n"
     "  --module NAME   only the sites inside that module\n"
     "  --all           every layer\n"
     "JSON: {model: {...}, module, sites: [{name, tl_name, available, "
     "reason,\n"
     "       canonical, module, kind, index, view: null | {parts, part,\n"
     "       heads}}]}\n"},
    {"forward",
     "nneditctl forward MODEL --tokens 1,2,3 [--tokens 4,5,6 ...] [options]\n"
     "nneditctl forward MODEL --prompt TEXT [--prompt TEXT ...] [options]",
     "one forward pass: top-k next tokens, logits, saved sites",
     "Runs one forward pass on a batch of rows (token ids or prompts) and\n"
     "prints the top-k next tokens of each row, with their text quoted and\n"
     "escaped (' Paris', '\\n'; \\xNN for a byte that is not UTF-8, \\uXXXX\n"
     "for an invisible character). A prompt row shows its prompt.\n"
     "  --tokens IDS        one row of token ids (repeat for a batch)\n"
     "  --prompt TEXT       one row of text, tokenized by the daemon with the\n"
     "                      model's tokenizer and template (repeat; mixes\n"
     "                      with --tokens, rows in the order given)\n"
     "  --mask VALUES       one row of the attention mask, 1 = token,\n"
     "                      0 = padding (repeat; one per --tokens row; not\n"
     "                      with --prompt rows, whose mask is the daemon's)\n"
     "  --pad none|left|right  pad rows of different lengths (default "
     "none)\n"
     "  --top-k K           top-k tokens per row (default 5; 0 = none)\n"
     "  --logits none|last|all  also fetch the logits (default none)\n"
     "  --save-logits FILE  save the logits as .npy (implies --logits all)\n"
     "  --save SITE         bring back the value at SITE (repeat for more):\n"
     "                      raw (transformer.h.0.output), standard\n"
     "                      (layers.0.resid_post), TransformerLens\n"
     "                      (blocks.0.hook_resid_post) or a user alias;\n"
     "                      printed with its dtype and shape\n"
     "  --save-dir DIR      write each saved tensor to DIR/<SITE>.npy (made\n"
     "                      if missing; characters other than A-Z a-z 0-9\n"
     "                      . _ - become _)\n"
     "  --values            print the values of saved tensors of at most\n"
     "                      4096 elements, as nested lists\n"
     "  --edit-set ID       run on an edit set ('edits apply') instead of\n"
     "                      the pristine model; its SAVE edits come back\n"
     "                      after the --save sites, named by their name\n"
     "JSON: {model, edit_set, batch, seq_len, timing: {queue_ms, "
     "compute_ms,\n"
     "       total_ms}, rows: [{row, position, top: [{token_id, logit,\n"
     "       prob, text}]}], logits: null | {name, dtype, shape, nbytes, file},\n"
     "       saved: [{name, dtype, shape, nbytes, file, values (--values;\n"
     "       null over 4096 elements)}]}\n"},
    {"generate",
     "nneditctl generate MODEL --prompt TEXT [--prompt TEXT ...] [options]\n"
     "nneditctl generate MODEL --ids 1,2,3 [--ids 4,5 ...] [options]\n"
     "nneditctl generate [MODEL] -f INTERVENTION.json [--prompt TEXT ...] "
     "[options]",
     "generate text: continuations, token by token",
     "Generates continuations of prompts (Inference/Generate): the prompts\n"
     "run as one left-padded batch and each step adds a token to every row\n"
     "that has not finished; tokens are printed as they arrive. Greedy\n"
     "(argmax) unless --temperature is above 0.\n"
     "  --prompt TEXT           a prompt, tokenized by the daemon (repeat)\n"
     "  --ids IDS               a prompt of token ids (repeat; --tokens too)\n"
     "  -n, --max-new-tokens N  new tokens per row, at most (default 16)\n"
     "  --temperature T         sample at temperature T (0 to 100; 0 =\n"
     "                          greedy, the default)\n"
     "  --top-k K               sample from the K most likely (0 = all)\n"
     "  --top-p P               nucleus sampling, mass P (0 to 1; 0 or 1 =\n"
     "                          all); --top-k and --top-p need --temperature\n"
     "  --seed S                the draw's seed (default: the daemon draws\n"
     "                          one and reports it); a prompt generates the\n"
     "                          same tokens with the same seed and settings\n"
     "  --repetition-penalty R  CTRL's penalty on tokens already in the row\n"
     "                          (0 to 10; 0 or 1 = off)\n"
     "  --stop STR              stop a row once its text contains STR; the\n"
     "                          text ends before it (repeat, at most 16; a\n"
     "                          newline in bash: --stop $'\\n')\n"
     "  --stop-id ID[,ID...]    stop a row after one of these ids (at most\n"
     "                          64 in all), as after the model's EOS\n"
     "  --ignore-eos            do not stop at the model's EOS\n"
     "  --alternatives K        list the K most likely tokens (at\n"
     "                          temperature 1) with each new token (0 to 100)\n"
     "  --edit-set ID           generate on an edit set ('edits apply'); its\n"
     "                          edits apply at every step\n"
     "  --save SITE             bring back the value at SITE at every step,\n"
     "                          as SITE@STEP (repeat)\n"
     "  --save-dir DIR          write the saved tensors to DIR as .npy files\n"
     "                          named SITE@STEP (characters other than A-Z\n"
     "                          a-z 0-9 . _ -, the @ too, become _)\n"
     "  --values                print the values of saved tensors of at most\n"
     "                          4096 elements\n"
     "  --no-cache              recompute the whole sequence at every step\n"
     "                          instead of reusing the model's KV cache\n"
     "  -f, --file FILE         an intervention graph run at each step, in\n"
     "                          TRACE-JSON's Generate form (client/TRACE-JSON.md):\n"
     "                          {\"model\", \"prompt\"/\"prompts\"/\"tokens\",\n"
     "                          \"nodes\": [...]}, each node optionally with\n"
     "                          \"steps\": [start, stop] (nnsight's\n"
     "                          iter[start:stop]), {\"start\": k} (from step k\n"
     "                          on), k (step k alone: the k-th .next()) or\n"
     "                          \"all\" (the default: .all()); its saves come\n"
     "                          back as NAME@STEP. MODEL, --prompt/--ids and\n"
     "                          --edit-set override the file's\n"
     "Output (text): one prompt streams its new text as it comes; several\n"
     "print each row's text at the end; with --alternatives, a line per\n"
     "token as it comes (step, row, id, text, logprob, alternatives). Then\n"
     "a line starting with '--': how each row finished (length, stop_token,\n"
     "stop_string and the string), tokens, steps, prefill time, ms/token\n"
     "(decode steps), tokens/s (all new tokens over the whole call), the KV\n"
     "cache and the seed; then the saved tensors. The whole generation is\n"
     "one call: --timeout (default 60 s) bounds it.\n"
     "JSON lines (-o json): one line per token as it comes:\n"
     "  {step, row, id, text, logprob, top: [{token_id, logit, prob, "
     "text}]}\n"
     "then the result as the last line:\n"
     "  {model, edit_set, rows: [{row, ids, text, finish_reason, stop,\n"
     "   prompt_tokens}], steps, seed (a string), kv_cache, kv_cache_bytes,\n"
     "   timing: {queue_ms, prefill_ms, decode_ms, per_token_ms, total_ms},\n"
     "   saved: [{name, dtype, shape, nbytes, file, values}]}\n"},
    {"trace",
     "nneditctl trace MODEL --tokens 1,2,3|--prompt TEXT [...] [--invoke "
     "--tokens ...]\n"
     "                --save SITE [--save SITE ...] [options]\n"
     "nneditctl trace [MODEL] -f TRACE.json [options]",
     "traced forward passes: read, write, save at sites",
     "Runs traced forward passes (Inference/Trace): the model runs once on\n"
     "the rows of a trace's invokes, reading, computing on, writing and\n"
     "saving values at sites along the way; the saved values come back as\n"
     "tensors, with the top-k next tokens of each row.\n"
     "\n"
     "The simple form saves sites of one trace:\n"
     "  --tokens IDS    one row of token ids (repeat for more rows)\n"
     "  --prompt TEXT   one row of text, tokenized by the daemon (repeat)\n"
     "  --mask VALUES   one row of the attention mask, 1 = token, 0 = "
     "padding\n"
     "  --invoke        start a new invoke (batch group) for the --tokens\n"
     "                  and --prompt rows that follow; all invokes run in\n"
     "                  one forward\n"
     "  --save SITE     read SITE for the whole batch and save it under that\n"
     "                  spelling (repeat): layers.3.resid_post,\n"
     "                  layers.0.self_attn.pattern, transformer.h.0.output, "
     "...\n"
     "  --name NAME     the trace's name (its logits stream as NAME/logits;\n"
     "                  unnamed, as 0/logits)\n"
     "\n"
     "The file form (-f FILE, '-' = stdin) holds whole intervention graphs\n"
     "and sessions of traces (client/TRACE-JSON.md has the details):\n"
     "  {\"model\": \"gpt2-script\", \"padding\": \"left\", \"top_k\": 5,\n"
     "   \"traces\": [{\"name\": \"clean\",\n"
     "     \"invokes\": [{\"tokens\": [[1, 2, 3]], \"mask\": [[1, 1, 1]]},\n"
     "                 {\"prompts\": [\"The Eiffel Tower is in\"]}],\n"
     "     \"nodes\": [\n"
     "      {\"id\": 1, \"read\": {\"site\": \"layers.3.resid_post\", "
     "\"invoke\": 0}},\n"
     "      {\"id\": 2, \"call\": {\"fn\": \"mul\", \"args\": [{\"node\": "
     "1}, 2.0]}},\n"
     "      {\"id\": 3, \"write\": {\"site\": \"layers.3.resid_post\", "
     "\"value\": 2}},\n"
     "      {\"id\": 4, \"save\": {\"value\": 1, \"name\": \"resid3\"}},\n"
     "      {\"id\": 5, \"constant\": {\"tensor\": {\"shape\": [64], "
     "\"data\": [...]}}},\n"
     "      {\"id\": 6, \"ref\": {\"name\": \"saved_earlier\"}},\n"
     "      {\"id\": 7, \"call\": {\"fn\": \"index\", \"args\": [{\"node\": "
     "1}],\n"
     "                           \"index\": [0, \":\", -1]}},\n"
     "      {\"id\": 8, \"call\": {\"fn\": \"softmax\", \"args\": "
     "[{\"node\": 7}],\n"
     "                           \"kwargs\": {\"dim\": -1}}}]}]}\n"
     "  read      {site, invoke}: the value at site (any spelling) for the\n"
     "            rows of invoke (default, -1 or \"all\": the whole batch)\n"
     "  write     {site, value, invoke, ranges | rows | positions | last}:\n"
     "            replace the value at site (in those index ranges, written\n"
     "            as in 'edits apply') with node value's\n"
     "  call      {fn, args, kwargs, index}: a whitelisted function. An\n"
     "            argument is a number (an integer is an int, a real a\n"
     "            scalar), true/false, [ints], or an object {\"node\" |\n"
     "            \"scalar\" | \"int\" | \"ints\" | \"bool\" | \"dtype\" |\n"
     "            \"module\": V, \"name\": KEYWORD}; index items: an "
     "integer,\n"
     "            a slice \":\", \"1:3\", \"-1:\", \"::2\" (or {\"slice\":\n"
     "            [start, stop, step]}, null = open), \"...\", null (new "
     "axis)\n"
     "  constant  {tensor: {dtype, shape, data} or {npy: FILE}} or {scalar}\n"
     "  save      {value, name}: stream node value's value back as name\n"
     "            (names are unique in the file)\n"
     "  ref       {name}: the value an earlier trace of the file saved\n"
     "  id        1 to 2^31-1, unique in its trace (default: one more than\n"
     "            the largest before it)\n"
     "\n"
     "Options of both forms (they override the file's):\n"
     "  --edit-set ID   run on an edit set ('edits apply'); its SAVE edits\n"
     "                  come back with each trace's saves\n"
     "  --top-k K       top-k tokens per row (default 5; 0 = none)\n"
     "  --pad none|left|right  pad rows of different lengths (default "
     "none)\n"
     "  --logits none|last|all also fetch each trace's logits (default "
     "none)\n"
     "Output:\n"
     "  -o table        (default) per trace: batch, backend (cache hit or\n"
     "                  miss), timing, top-k per row, saved tensors\n"
     "  -o json         one JSON document (below)\n"
     "  -o npy          write every saved tensor (and the logits) to\n"
     "                  --save-dir DIR (default .) as <name>.npy, then print\n"
     "                  the table with the file names; characters other "
     "than\n"
     "                  A-Z a-z 0-9 . _ - become _\n"
     "  --save-dir DIR  write the .npy files with any output form\n"
     "  --values        print the values of tensors of at most 4096 "
     "elements\n"
     "A file that is not valid is a usage error (exit 2) naming the place\n"
     "(traces[0].nodes[3].call.args[1]: ...); errors from the daemon exit "
     "1.\n"
     "JSON: {model, edit_set, traces: [{trace, name, batch, seq_len,\n"
     "       cache_hit, backend_key, timing: {queue_ms, compute_ms,\n"
     "       total_ms}, rows: [{row, position, top: [{token_id, logit,\n"
     "       prob, text}]}], logits: null | {name, dtype, shape, nbytes, file},\n"
     "       saved: [{name, dtype, shape, nbytes, file, values (--values;\n"
     "       null over 4096 elements)}]}]}\n"},
    {"lens",
     "nneditctl lens MODEL --prompt TEXT [--prompt ...] [--top-k K] "
     "[--edit-set ID]",
     "logit lens: each layer's guess at the next token",
     "The logit lens: one traced forward reads each layer's residual stream\n"
     "(layers.N.resid_post) at each row's last position, puts it through the\n"
     "model's final norm and unembedding (its standard modules ln_final and\n"
     "lm_head) and prints, per row, a line per layer with the top-k tokens\n"
     "of that softmax and their probabilities: where the model's answer\n"
     "first appears. The last layer's line is the model's own answer. Needs\n"
     "a loaded model with a family; token texts need its tokenizer (ids\n"
     "otherwise).\n"
     "  --prompt TEXT   a row of text (repeat; rows of different lengths\n"
     "                  need --pad left)\n"
     "  --tokens IDS    a row of token ids instead\n"
     "  --pad none|left the padding of rows that differ in length\n"
     "  --top-k K       tokens per layer (default 5; 1 to 100)\n"
     "  --edit-set ID   run on an edit set ('edits apply')\n"
     "JSON: {model, edit_set, layers, top_k, rows: [{row, layers: [{layer,\n"
     "       top: [{token_id, prob, text}]}]}]}\n"},
    {"tokenize",
     "nneditctl tokenize MODEL TEXT [TEXT ...] [--pair TEXT ...] [--raw]",
     "text to token ids with a loaded model's tokenizer",
     "Tokenizes each TEXT with MODEL's tokenizer (its tokenizer.json) and\n"
     "template, and prints one table per text: the token's index, its id,\n"
     "its spelling in the vocabulary (TOKEN: 'ĠParis', '<0x0A>'), what it\n"
     "contributes to the text decoded alone (PIECE: ' Paris'), where it\n"
     "came from (OFFSETS: bytes START-END of the text, '-' for the\n"
     "template's BOS/EOS) and whether it is special (BOS, EOS, ...). Token\n"
     "texts are quoted and escaped as in 'forward'. A TEXT that starts\n"
     "with '-' goes after '--'.\n"
     "  --pair TEXT a second text for each TEXT, in order (question and\n"
     "              context): the tokenizer's pair template puts the two\n"
     "              together; OFFSETS says which text, TYPE the type id\n"
     "  --raw       the text's own tokens, without the template's BOS/EOS\n"
     "A model without a tokenizer is FAILED_PRECONDITION.\n"
     "JSON: one line per token: {text, index, id, token, piece, bytes,\n"
     "      special, start, end, source, type_id} (text: the TEXT's\n"
     "      position; a byte that is not UTF-8 shows as U+FFFD in token and\n"
     "      piece, and bytes then has the token's bytes in hex, else null;\n"
     "      start, end: bytes of the text source names: text, pair,\n"
     "      template)\n"},
    {"detokenize", "nneditctl detokenize MODEL IDS [IDS ...] [--skip-special]",
     "token ids back to text",
     "Decodes each IDS (comma-separated token ids: 464,3290) with MODEL's\n"
     "tokenizer and prints the text as it is, one row a line.\n"
     "  --skip-special   leave special tokens (BOS, EOS, ...) out\n"
     "JSON: {model, texts: [...]}\n"},
    {"edits", "nneditctl edits apply|list|get|drop ...", NULL,
     "  edits apply MODEL -f EDITS.json [--label L]\n"
     "  edits list [MODEL]\n"
     "  edits get ID\n"
     "  edits drop ID\n"
     "'nneditctl edits SUBCOMMAND --help' for details; 'edits apply --help'\n"
     "describes the JSON file.\n"},
    {"edits apply", "nneditctl edits apply MODEL -f EDITS.json [--label L]",
     "create an edit set; prints its id",
     "Creates an edit set on a loaded MODEL from a JSON file ('-' = stdin)\n"
     "and prints its id (with -o json, the whole edit set). Apply is "
     "atomic:\n"
     "one bad edit and nothing is created; the daemon's message names it\n"
     "(edits[2]: ...). Run on it with 'forward MODEL ... --edit-set ID'.\n"
     "\n"
     "The file (client/EDITS-JSON.md has the details):\n"
     "  {\"label\": \"optional\",\n"
     "   \"edits\": [\n"
     "     {\"site\": \"layers.0.self_attn.pattern\", \"op\": \"zero\",\n"
     "      \"ranges\": [{\"dim\": 1, \"start\": 3, \"stop\": 4}]},\n"
     "     {\"site\": \"layers.3.resid_post\", \"op\": \"add\",\n"
     "      \"tensor\": {\"dtype\": \"float32\", \"shape\": [64],\n"
     "                 \"data\": [0.1, ...]}},\n"
     "     {\"site\": \"layers.3.resid_post\", \"op\": \"add\",\n"
     "      \"tensor\": {\"npy\": \"steer.npy\"}},\n"
     "     {\"site\": \"layers.1.mlp_out\", \"op\": \"scale\", \"scalar\": "
     "0.5,\n"
     "      \"positions\": -1, \"last\": [128, 192]},\n"
     "     {\"site\": \"layers.2.mlp_out\", \"op\": \"save\", \"name\": "
     "\"mlp2\"}]}\n"
     "  site       any spelling: standard (layers.3.resid_post), raw\n"
     "             (transformer.h.3.output), TransformerLens\n"
     "             (blocks.3.hook_resid_post), node selector\n"
     "             (layers.0.self_attn:aten::softmax#0), alias + .output\n"
     "  op         save | replace | add | scale | zero\n"
     "  tensor     operand of replace/add/scale: {dtype (default float32),\n"
     "             shape (default: from the nesting of data), data (flat or\n"
     "             nested numbers)} or {npy: FILE (relative to the JSON\n"
     "             file), dtype (optional: convert to it)}\n"
     "  scalar     operand of replace/add/scale instead of a tensor\n"
     "  ranges     [{dim, start, stop}] (or [dim, start, stop]): indices\n"
     "             [start, stop) of a dimension; negative dims and indices\n"
     "             count from the end; stop 0 = to the end; one per dim\n"
     "  rows, positions, last\n"
     "             shorthands for a range on dim 0, 1, -1: [start, stop],\n"
     "             [start] (to the end) or one index K (-1 = the last)\n"
     "  name       save: the name its tensor streams back under\n"
     "             (default: the site)\n"
     "  --label L  overrides the file's label\n"
     "A file that is not valid is a usage error (exit 2) whose message\n"
     "names the edit and key (edits[2].tensor.shape: ...); errors from the\n"
     "daemon exit 1.\n"
     "JSON: {edit_set: {id, model, label, edit_count, backend_key,\n"
     "       backend_bytes, compile_ms, cache_hit, created_unix_ms,\n"
     "       in_flight, tensor_bytes}}\n"},
    {"edits list", "nneditctl edits list [MODEL]",
     "edit sets (of MODEL, or all)",
     "Lists the edit sets (of MODEL, or of every model): id, model, label,\n"
     "number of edits, whether the backend came from the cache, compile\n"
     "time, backend and tensor bytes, creation time (UTC).\n"
     "JSON: {edit_sets: [{...as in 'edits apply'}]}\n"},
    {"edits get", "nneditctl edits get ID",
     "an edit set, each edit as resolved",
     "Shows an edit set and, per edit, how the daemon resolved it: its\n"
     "position in the request (#), the site as given (and its standard\n"
     "name), the canonical site, the module instance and graph node it\n"
     "lives in, the op (save as NAME), the operand (dtype[shape] or "
     "scalar),\n"
     "the ranges (d1[3:4] = dim 1, indices 3 to 4; d-1[-1:] = the last\n"
     "index of the last dim) and the hook id in the backend.\n"
     "JSON: {edit_set: {...}, edits: [{index, site, canonical, instance,\n"
     "       node, standard, op, operand: null | {dtype, shape} | {scalar},\n"
     "       ranges: [{dim, start, stop}], hook_id, name}]}\n"},
    {"edits drop", "nneditctl edits drop ID",
     "drop an edit set, free its backend",
     "Drops an edit set (forwards running on it finish first) and prints\n"
     "the backend memory freed (0 while another set shares the backend).\n"
     "JSON: {edit_set: {...}, freed_bytes}\n"},
    {"graph",
     "nneditctl graph MODEL [MODULE] [--edit-set ID] [--no-color] [--color] "
     "[--text]",
     "a module's forward graph, per node",
     "Prints the forward graph of MODULE (any spelling; default the root) "
     "as\n"
     "the pristine model runs it, or as edit set ID's backend runs it, one\n"
     "node a line, after a LEGEND line:\n"
     "    12  %attn_weights.3 = aten::softmax(%attn_weights.2, %4, %5)  "
     "SELECTOR  SHAPE  # SOURCE\n"
     "  the node's index in graph order, its statement (outputs = "
     "op(inputs),\n"
     "  indented by block nesting; '-> PATH' for a submodule call), the\n"
     "  selector an edit names to reach its value\n"
     "  (transformer.h.0.attn:aten::softmax#0), its shape when known and a\n"
     "  source line when known. Nodes an edit inserted (hooks, edited\n"
     "  values) start with [edit]. On a terminal the statement is coloured\n"
     "  by kind: hooks and edited values red, submodule calls blue, tensor\n"
     "  ops green, constants and attributes dim, other nodes magenta.\n"
     "  --edit-set ID   the graph of that edit set's backend\n"
     "  --no-color      no colour (also: NO_COLOR set, or not a terminal)\n"
     "  --color         colour even when not a terminal\n"
     "  --text          TorchScript's own rendering of the graph instead\n"
     "JSON: {model, module, edit_set, edited, nodes: [{index, op, kind "
     "(hook,\n"
     "       call, op, constant, attribute, other), inputs, outputs,\n"
     "       instance, selector, source, shape, inserted, depth, callee}],\n"
     "       text}\n"},
    {"stats", "nneditctl stats", "backend caches, queue, edit sets",
     "The daemon's figures: the compute queue (waiting / capacity), calls\n"
     "(total, live), edit sets, and per loaded model its backend cache:\n"
     "hits, misses, entries, bytes held and the bound, LRU evictions,\n"
     "backends pinned by edit sets, compile time (total and last, ms).\n"
     "JSON: {queue_depth, queue_capacity, calls_total, live_calls, "
     "edit_sets,\n"
     "       caches: [{model, hits, misses, entries, bytes, "
     "capacity_bytes,\n"
     "       evictions, compile_ms_total, compile_ms_last, pinned}]}\n"},
};

/* What the global help says after the commands. */
static const char global_text[] =
    "global options (anywhere on the line, before or after the command):\n"
    "  --addr ADDR            daemon address (default: $NNEDIT_ADDR, else "
    "" NNE_CLIENT_DEFAULT_ADDRESS ")\n"
    "  --timeout SEC          deadline of each call in seconds, from its "
    "start;\n"
    "                         0 = none (default 60)\n"
    "  --connect-timeout SEC  how long connecting may take (default 10)\n"
    "  --token-file F         bearer token for a daemon with --token-file (its\n"
    "                         first line; default: $NNEDIT_TOKEN)\n"
    "  --tls                  connect with TLS (gRPC's default roots)\n"
    "  --ca PEM               TLS, trusting this CA for the daemon's certificate\n"
    "  --cert PEM --key PEM   TLS client certificate (a daemon with mTLS)\n"
    "  -o, --output F         table (default) or json; trace also npy\n"
    "  -h, --help             this help; 'nneditctl COMMAND --help' for a "
    "command\n"
    "  --version              print the version\n"
    "\n"
    "errors go to stderr: 'nneditctl: STATUS: message' (STATUS is the gRPC\n"
    "status name), or with -o json one line {\"code\": STATUS, \"message\":\n"
    "...}; a usage error has code \"USAGE\" and the command's \"usage\".\n"
    "\n"
    "exit status:\n"
    "  0  ok\n"
    "  1  the daemon answered with an error (also: health is not SERVING,\n"
    "     or a local failure such as a file that cannot be written)\n"
    "  2  usage error: a bad command line or input file\n"
    "  3  the daemon is unreachable: connection refused, no such host, no\n"
    "     connection within --connect-timeout, or UNAVAILABLE\n";

static const help_row_t *find(const char *cmd) {
  size_t i;
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (cmd == NULL ? rows[i].cmd == NULL
                    : rows[i].cmd != NULL && strcmp(rows[i].cmd, cmd) == 0)
      return &rows[i];
  return &rows[0];
}

void ctl_help_usage(FILE *f, const char *cmd) {
  const char *p = find(cmd)->usage;
  const char *prefix = "usage: ";
  while (*p != '\0') {
    size_t n = strcspn(p, "\n");
    fprintf(f, "%s%.*s\n", prefix, (int)n, p);
    prefix = "       ";
    p += n + (p[n] == '\n');
  }
}

void ctl_help_synopsis(const char *cmd, char *buf, size_t cap) {
  const char *p = find(cmd)->usage;
  size_t len = 0;
  if (cap == 0)
    return;
  buf[0] = '\0';
  for (; *p != '\0' && len + 1 < cap; p++) {
    if (*p == '\n') {
      /* A continuation joins with a blank, a new form with "; ". */
      const char *sep = p[1] == ' ' ? "" : ";";
      while (p[1] == ' ')
        p++;
      for (; *sep && len + 1 < cap; sep++)
        buf[len++] = *sep;
      if (len + 1 < cap)
        buf[len++] = ' ';
      continue;
    }
    buf[len++] = *p;
  }
  buf[len] = '\0';
}

/* A command in the global help: each form of its usage (continuation
 * lines left out), the summary beside the last form or, when that form is
 * long, on the next line. */
static void summary_line(const help_row_t *r) {
  const char *p, *last = r->usage;
  for (p = r->usage; *p != '\0'; p++)
    if (p[0] == '\n' && p[1] != ' ' && p[1] != '\0')
      last = p + 1;
  for (p = r->usage; *p != '\0';) {
    size_t n = strcspn(p, "\n");
    const char *u = p + strlen("nneditctl ");
    int w = (int)(n - strlen("nneditctl "));
    if (p[0] == ' ')
      ; /* a continuation */
    else if (p != last)
      printf("  %.*s\n", w, u);
    else if (w <= 32)
      printf("  %-32.*s %s\n", w, u, r->summary);
    else
      printf("  %.*s\n  %32s %s\n", w, u, "", r->summary);
    p += n + (p[n] == '\n');
  }
}

void ctl_help_print(const char *cmd) {
  const help_row_t *r = find(cmd);
  size_t i;
  ctl_help_usage(stdout, cmd);
  if (cmd != NULL) {
    printf("\n%s", r->text);
    return;
  }
  printf("\ncommands:\n");
  for (i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (rows[i].summary != NULL)
      summary_line(&rows[i]);
  printf("\n%s", global_text);
}
