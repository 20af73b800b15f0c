/* test_names.c — daemon/names.{h,c}: family maps, detection, standard names,
 * sites, TransformerLens aliases, user renames, errors and validation marks.
 *
 * Every family map is checked against a synthetic module tree written down
 * here from the Hugging Face layouts (NAMES.md), with the expected raw path
 * of every standard module and the expected canonical form of every
 * standard site stated independently of the maps: a typo in a map fails.
 * The trees of the repository's fixtures (build/fixtures, when generated)
 * are an extra check.
 *
 * Most tests load the builtin maps (the table compiled into nneditd_core
 * from the maps in daemon/names/); test_builtin_table fails loudly when that
 * table is empty or differs from the files, and the override tests load
 * $NNE_SOURCE_DIR/daemon/names as an override directory.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "names.h"
#include "names_builtin.h"

#define N_LAYERS 3

/* ---- synthetic trees ----------------------------------------------------- */

typedef struct tmod {
  const char *path; /* {i}: one copy per layer */
  const char *cls;
} tmod_t;

typedef struct tree {
  nne_names_module_t *mods;
  char **paths, **classes;
  size_t n;
} tree_t;

static int cmp_path(const char *a, const char *b) {
  /* Component-wise, numbers numerically: parents before children, blocks
   * in order. A valid pre-order. */
  while (*a != '\0' && *b != '\0') {
    size_t la = strcspn(a, "."), lb = strcspn(b, ".");
    int c;
    if (la > 0 && lb > 0 && strspn(a, "0123456789") >= la &&
        strspn(b, "0123456789") >= lb) {
      long x = strtol(a, NULL, 10), y = strtol(b, NULL, 10);
      c = (x > y) - (x < y);
    } else {
      c = strncmp(a, b, la < lb ? la : lb);
      if (c == 0)
        c = (la > lb) - (la < lb);
    }
    if (c != 0)
      return c;
    a += la + (a[la] == '.');
    b += lb + (b[lb] == '.');
  }
  return (*a != '\0') - (*b != '\0');
}

static char *expand_i(const char *t, int i) {
  char buf[512], num[16];
  size_t o = 0;
  snprintf(num, sizeof num, "%d", i);
  while (*t != '\0') {
    if (strncmp(t, "{i}", 3) == 0) {
      o += (size_t)snprintf(buf + o, sizeof buf - o, "%s", num);
      t += 3;
    } else {
      buf[o++] = *t++;
    }
  }
  buf[o] = '\0';
  return strdup(buf);
}

static char **g_sort_paths;
static int cmp_idx(const void *a, const void *b) {
  return cmp_path(g_sort_paths[*(const size_t *)a],
                  g_sort_paths[*(const size_t *)b]);
}

/* Builds a pre-order tree from a spec; root_class replaces the class of ""
 * when not NULL. */
static void tree_build(tree_t *t, const tmod_t *spec, int n_layers,
                       const char *root_class) {
  size_t cap = 0, n = 0, i, j, *order;
  char **paths = NULL, **classes = NULL;
  const tmod_t *s;

  for (s = spec; s->path != NULL; s++)
    cap += strstr(s->path, "{i}") ? (size_t)n_layers : 1;
  paths = calloc(cap, sizeof *paths);
  classes = calloc(cap, sizeof *classes);
  ck_assert(paths != NULL && classes != NULL);
  for (s = spec; s->path != NULL; s++) {
    int k, m = strstr(s->path, "{i}") ? n_layers : 1;
    for (k = 0; k < m; k++) {
      paths[n] = expand_i(s->path, k);
      classes[n] =
          strdup(s->path[0] == '\0' && root_class ? root_class : s->cls);
      n++;
    }
  }
  order = malloc(n * sizeof *order);
  for (i = 0; i < n; i++)
    order[i] = i;
  g_sort_paths = paths;
  qsort(order, n, sizeof *order, cmp_idx);
  t->n = n;
  t->mods = calloc(n, sizeof *t->mods);
  t->paths = calloc(n, sizeof *t->paths);
  t->classes = calloc(n, sizeof *t->classes);
  for (i = 0; i < n; i++) {
    t->paths[i] = paths[order[i]];
    t->classes[i] = classes[order[i]];
  }
  free(order);
  free(paths);
  free(classes);
  ck_assert_str_eq(t->paths[0], "");
  for (i = 0; i < n; i++) {
    const char *dot = strrchr(t->paths[i], '.');
    size_t pl = dot ? (size_t)(dot - t->paths[i]) : 0;
    t->mods[i].path = t->paths[i];
    t->mods[i].class_name = t->classes[i];
    t->mods[i].parent = -1;
    if (i == 0)
      continue;
    for (j = i; j-- > 0;)
      if (strlen(t->paths[j]) == pl &&
          strncmp(t->paths[j], t->paths[i], pl) == 0) {
        t->mods[i].parent = (int)j;
        break;
      }
    ck_assert_msg(t->mods[i].parent >= 0, "test tree: %s has no parent",
                  t->paths[i]);
  }
}

static void tree_free(tree_t *t) {
  size_t i;
  for (i = 0; i < t->n; i++) {
    free(t->paths[i]);
    free(t->classes[i]);
  }
  free(t->paths);
  free(t->classes);
  free(t->mods);
  memset(t, 0, sizeof *t);
}

static int tree_find(const tree_t *t, const char *path) {
  size_t i;
  for (i = 0; i < t->n; i++)
    if (strcmp(t->paths[i], path) == 0)
      return (int)i;
  return -1;
}

/* ---- the Hugging Face layouts ------------------------------------------- */

static const tmod_t gpt2_tree[] = {
    {"", "GPT2LMHeadModel"},
    {"transformer", "GPT2Model"},
    {"transformer.wte", "Embedding"},
    {"transformer.wpe", "Embedding"},
    {"transformer.drop", "Dropout"},
    {"transformer.h", "ModuleList"},
    {"transformer.h.{i}", "GPT2Block"},
    {"transformer.h.{i}.ln_1", "LayerNorm"},
    {"transformer.h.{i}.attn", "GPT2Attention"},
    {"transformer.h.{i}.attn.c_attn", "Conv1D"},
    {"transformer.h.{i}.attn.c_proj", "Conv1D"},
    {"transformer.h.{i}.attn.attn_dropout", "Dropout"},
    {"transformer.h.{i}.attn.resid_dropout", "Dropout"},
    {"transformer.h.{i}.ln_2", "LayerNorm"},
    {"transformer.h.{i}.mlp", "GPT2MLP"},
    {"transformer.h.{i}.mlp.c_fc", "Conv1D"},
    {"transformer.h.{i}.mlp.c_proj", "Conv1D"},
    {"transformer.h.{i}.mlp.act", "NewGELUActivation"},
    {"transformer.h.{i}.mlp.dropout", "Dropout"},
    {"transformer.ln_f", "LayerNorm"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

static const tmod_t llama_tree[] = {
    {"", "LlamaForCausalLM"},
    {"model", "LlamaModel"},
    {"model.embed_tokens", "Embedding"},
    {"model.layers", "ModuleList"},
    {"model.layers.{i}", "LlamaDecoderLayer"},
    {"model.layers.{i}.self_attn", "LlamaAttention"},
    {"model.layers.{i}.self_attn.q_proj", "Linear"},
    {"model.layers.{i}.self_attn.k_proj", "Linear"},
    {"model.layers.{i}.self_attn.v_proj", "Linear"},
    {"model.layers.{i}.self_attn.o_proj", "Linear"},
    {"model.layers.{i}.mlp", "LlamaMLP"},
    {"model.layers.{i}.mlp.gate_proj", "Linear"},
    {"model.layers.{i}.mlp.up_proj", "Linear"},
    {"model.layers.{i}.mlp.down_proj", "Linear"},
    {"model.layers.{i}.mlp.act_fn", "SiLU"},
    {"model.layers.{i}.input_layernorm", "LlamaRMSNorm"},
    {"model.layers.{i}.post_attention_layernorm", "LlamaRMSNorm"},
    {"model.norm", "LlamaRMSNorm"},
    {"model.rotary_emb", "LlamaRotaryEmbedding"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

static const tmod_t gemma_tree[] = {
    {"", "Gemma2ForCausalLM"},
    {"model", "Gemma2Model"},
    {"model.embed_tokens", "Embedding"},
    {"model.layers", "ModuleList"},
    {"model.layers.{i}", "Gemma2DecoderLayer"},
    {"model.layers.{i}.self_attn", "Gemma2Attention"},
    {"model.layers.{i}.self_attn.q_proj", "Linear"},
    {"model.layers.{i}.self_attn.k_proj", "Linear"},
    {"model.layers.{i}.self_attn.v_proj", "Linear"},
    {"model.layers.{i}.self_attn.o_proj", "Linear"},
    {"model.layers.{i}.mlp", "Gemma2MLP"},
    {"model.layers.{i}.mlp.gate_proj", "Linear"},
    {"model.layers.{i}.mlp.up_proj", "Linear"},
    {"model.layers.{i}.mlp.down_proj", "Linear"},
    {"model.layers.{i}.mlp.act_fn", "PytorchGELUTanh"},
    {"model.layers.{i}.input_layernorm", "Gemma2RMSNorm"},
    {"model.layers.{i}.post_attention_layernorm", "Gemma2RMSNorm"},
    {"model.layers.{i}.pre_feedforward_layernorm", "Gemma2RMSNorm"},
    {"model.layers.{i}.post_feedforward_layernorm", "Gemma2RMSNorm"},
    {"model.norm", "Gemma2RMSNorm"},
    {"model.rotary_emb", "Gemma2RotaryEmbedding"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

static const tmod_t neox_tree[] = {
    {"", "GPTNeoXForCausalLM"},
    {"gpt_neox", "GPTNeoXModel"},
    {"gpt_neox.embed_in", "Embedding"},
    {"gpt_neox.emb_dropout", "Dropout"},
    {"gpt_neox.layers", "ModuleList"},
    {"gpt_neox.layers.{i}", "GPTNeoXLayer"},
    {"gpt_neox.layers.{i}.input_layernorm", "LayerNorm"},
    {"gpt_neox.layers.{i}.post_attention_layernorm", "LayerNorm"},
    {"gpt_neox.layers.{i}.post_attention_dropout", "Dropout"},
    {"gpt_neox.layers.{i}.post_mlp_dropout", "Dropout"},
    {"gpt_neox.layers.{i}.attention", "GPTNeoXAttention"},
    {"gpt_neox.layers.{i}.attention.query_key_value", "Linear"},
    {"gpt_neox.layers.{i}.attention.dense", "Linear"},
    {"gpt_neox.layers.{i}.attention.attention_dropout", "Dropout"},
    {"gpt_neox.layers.{i}.mlp", "GPTNeoXMLP"},
    {"gpt_neox.layers.{i}.mlp.dense_h_to_4h", "Linear"},
    {"gpt_neox.layers.{i}.mlp.dense_4h_to_h", "Linear"},
    {"gpt_neox.layers.{i}.mlp.act", "GELUActivation"},
    {"gpt_neox.final_layer_norm", "LayerNorm"},
    {"gpt_neox.rotary_emb", "GPTNeoXRotaryEmbedding"},
    {"embed_out", "Linear"},
    {NULL, NULL}};

static const tmod_t opt_tree[] = {
    {"", "OPTForCausalLM"},
    {"model", "OPTModel"},
    {"model.decoder", "OPTDecoder"},
    {"model.decoder.embed_tokens", "Embedding"},
    {"model.decoder.embed_positions", "OPTLearnedPositionalEmbedding"},
    {"model.decoder.final_layer_norm", "LayerNorm"},
    {"model.decoder.layers", "ModuleList"},
    {"model.decoder.layers.{i}", "OPTDecoderLayer"},
    {"model.decoder.layers.{i}.self_attn", "OPTAttention"},
    {"model.decoder.layers.{i}.self_attn.k_proj", "Linear"},
    {"model.decoder.layers.{i}.self_attn.v_proj", "Linear"},
    {"model.decoder.layers.{i}.self_attn.q_proj", "Linear"},
    {"model.decoder.layers.{i}.self_attn.out_proj", "Linear"},
    {"model.decoder.layers.{i}.activation_fn", "ReLU"},
    {"model.decoder.layers.{i}.self_attn_layer_norm", "LayerNorm"},
    {"model.decoder.layers.{i}.fc1", "Linear"},
    {"model.decoder.layers.{i}.fc2", "Linear"},
    {"model.decoder.layers.{i}.final_layer_norm", "LayerNorm"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

static const tmod_t gptj_tree[] = {
    {"", "GPTJForCausalLM"},
    {"transformer", "GPTJModel"},
    {"transformer.wte", "Embedding"},
    {"transformer.drop", "Dropout"},
    {"transformer.h", "ModuleList"},
    {"transformer.h.{i}", "GPTJBlock"},
    {"transformer.h.{i}.ln_1", "LayerNorm"},
    {"transformer.h.{i}.attn", "GPTJAttention"},
    {"transformer.h.{i}.attn.attn_dropout", "Dropout"},
    {"transformer.h.{i}.attn.resid_dropout", "Dropout"},
    {"transformer.h.{i}.attn.k_proj", "Linear"},
    {"transformer.h.{i}.attn.v_proj", "Linear"},
    {"transformer.h.{i}.attn.q_proj", "Linear"},
    {"transformer.h.{i}.attn.out_proj", "Linear"},
    {"transformer.h.{i}.mlp", "GPTJMLP"},
    {"transformer.h.{i}.mlp.fc_in", "Linear"},
    {"transformer.h.{i}.mlp.fc_out", "Linear"},
    {"transformer.h.{i}.mlp.act", "NewGELUActivation"},
    {"transformer.h.{i}.mlp.dropout", "Dropout"},
    {"transformer.ln_f", "LayerNorm"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

static const tmod_t phi_tree[] = {
    {"", "PhiForCausalLM"},
    {"model", "PhiModel"},
    {"model.embed_tokens", "Embedding"},
    {"model.embed_dropout", "Dropout"},
    {"model.layers", "ModuleList"},
    {"model.layers.{i}", "PhiDecoderLayer"},
    {"model.layers.{i}.self_attn", "PhiAttention"},
    {"model.layers.{i}.self_attn.q_proj", "Linear"},
    {"model.layers.{i}.self_attn.k_proj", "Linear"},
    {"model.layers.{i}.self_attn.v_proj", "Linear"},
    {"model.layers.{i}.self_attn.dense", "Linear"},
    {"model.layers.{i}.mlp", "PhiMLP"},
    {"model.layers.{i}.mlp.fc1", "Linear"},
    {"model.layers.{i}.mlp.fc2", "Linear"},
    {"model.layers.{i}.mlp.activation_fn", "NewGELUActivation"},
    {"model.layers.{i}.input_layernorm", "LayerNorm"},
    {"model.layers.{i}.resid_dropout", "Dropout"},
    {"model.final_layernorm", "LayerNorm"},
    {"model.rotary_emb", "PhiRotaryEmbedding"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

static const tmod_t bloom_tree[] = {
    {"", "BloomForCausalLM"},
    {"transformer", "BloomModel"},
    {"transformer.word_embeddings", "Embedding"},
    {"transformer.word_embeddings_layernorm", "LayerNorm"},
    {"transformer.h", "ModuleList"},
    {"transformer.h.{i}", "BloomBlock"},
    {"transformer.h.{i}.input_layernorm", "LayerNorm"},
    {"transformer.h.{i}.self_attention", "BloomAttention"},
    {"transformer.h.{i}.self_attention.query_key_value", "Linear"},
    {"transformer.h.{i}.self_attention.dense", "Linear"},
    {"transformer.h.{i}.self_attention.attention_dropout", "Dropout"},
    {"transformer.h.{i}.post_attention_layernorm", "LayerNorm"},
    {"transformer.h.{i}.mlp", "BloomMLP"},
    {"transformer.h.{i}.mlp.dense_h_to_4h", "Linear"},
    {"transformer.h.{i}.mlp.gelu_impl", "BloomGelu"},
    {"transformer.h.{i}.mlp.dense_4h_to_h", "Linear"},
    {"transformer.ln_f", "LayerNorm"},
    {"lm_head", "Linear"},
    {NULL, NULL}};

/* ---- what each family must give ----------------------------------------- */

/* In the order of std_mod_names. NULL: unavailable in the family. */
static const char *const std_mod_names[] = {"embed_tokens",
                                            "embed_positions",
                                            "layers",
                                            "layers.{i}",
                                            "layers.{i}.ln_attn",
                                            "layers.{i}.self_attn",
                                            "layers.{i}.ln_mlp",
                                            "layers.{i}.mlp",
                                            "ln_final",
                                            "lm_head"};
#define N_STD_MODS 10

/* In the order nne_names_site lists them within a layer. */
static const char *const std_site_names[] = {"embed",
                                             "layers.{i}.resid_pre",
                                             "layers.{i}.self_attn.q",
                                             "layers.{i}.self_attn.k",
                                             "layers.{i}.self_attn.v",
                                             "layers.{i}.self_attn.scores",
                                             "layers.{i}.self_attn.pattern",
                                             "layers.{i}.self_attn.z",
                                             "layers.{i}.attn_out",
                                             "layers.{i}.resid_mid",
                                             "layers.{i}.mlp.pre",
                                             "layers.{i}.mlp.post",
                                             "layers.{i}.mlp_out",
                                             "layers.{i}.resid_post",
                                             "logits"};
#define N_STD_SITES 15

/* The generic TransformerLens table, written from TL's hook names. */
static const char *const tl_site_names[] = {"hook_embed",
                                            "blocks.{i}.hook_resid_pre",
                                            "blocks.{i}.attn.hook_q",
                                            "blocks.{i}.attn.hook_k",
                                            "blocks.{i}.attn.hook_v",
                                            "blocks.{i}.attn.hook_attn_scores",
                                            "blocks.{i}.attn.hook_pattern",
                                            "blocks.{i}.attn.hook_z",
                                            "blocks.{i}.hook_attn_out",
                                            "blocks.{i}.hook_resid_mid",
                                            "blocks.{i}.mlp.hook_pre",
                                            "blocks.{i}.mlp.hook_post",
                                            "blocks.{i}.hook_mlp_out",
                                            "blocks.{i}.hook_resid_post",
                                            NULL};

enum { QKV_SEPARATE, QKV_FUSED, QKV_FUSED_HEADS };

typedef struct family_case {
  const char *family;
  const char *alias; /* another accepted spelling */
  const tmod_t *tree;
  const char *mods[N_STD_MODS];
  const char *sites[N_STD_SITES]; /* canonical templates; NULL: unavailable */
  int qkv;
  const char *extra_name, *extra_path; /* one family-specific name, or NULL */
} family_case_t;

static const family_case_t cases[] = {
    {"gpt2",
     "GPT-2",
     gpt2_tree,
     {"transformer.wte", "transformer.wpe", "transformer.h",
      "transformer.h.{i}", "transformer.h.{i}.ln_1", "transformer.h.{i}.attn",
      "transformer.h.{i}.ln_2", "transformer.h.{i}.mlp", "transformer.ln_f",
      "lm_head"},
     {"transformer.wte.output", "transformer.h.{i}.input",
      "transformer.h.{i}.attn.c_attn.output",
      "transformer.h.{i}.attn.c_attn.output",
      "transformer.h.{i}.attn.c_attn.output",
      "transformer.h.{i}.attn:aten::softmax#0.input",
      "transformer.h.{i}.attn:aten::softmax#0",
      "transformer.h.{i}.attn.c_proj.input", "transformer.h.{i}.attn.output",
      "transformer.h.{i}.ln_2.input", "transformer.h.{i}.mlp.c_fc.output",
      "transformer.h.{i}.mlp.c_proj.input", "transformer.h.{i}.mlp.output",
      "transformer.h.{i}.output", "lm_head.output"},
     QKV_FUSED,
     NULL,
     NULL},
    {"llama",
     "Mistral",
     llama_tree,
     {"model.embed_tokens", NULL, "model.layers", "model.layers.{i}",
      "model.layers.{i}.input_layernorm", "model.layers.{i}.self_attn",
      "model.layers.{i}.post_attention_layernorm", "model.layers.{i}.mlp",
      "model.norm", "lm_head"},
     {"model.embed_tokens.output", "model.layers.{i}.input",
      "model.layers.{i}.self_attn.q_proj.output",
      "model.layers.{i}.self_attn.k_proj.output",
      "model.layers.{i}.self_attn.v_proj.output",
      "model.layers.{i}.self_attn:aten::softmax#0.input",
      "model.layers.{i}.self_attn:aten::softmax#0",
      "model.layers.{i}.self_attn.o_proj.input",
      "model.layers.{i}.self_attn.output",
      "model.layers.{i}.post_attention_layernorm.input",
      "model.layers.{i}.mlp.gate_proj.output",
      "model.layers.{i}.mlp.down_proj.input", "model.layers.{i}.mlp.output",
      "model.layers.{i}.output", "lm_head.output"},
     QKV_SEPARATE,
     NULL,
     NULL},
    {"gemma",
     "gemma2",
     gemma_tree,
     {"model.embed_tokens", NULL, "model.layers", "model.layers.{i}",
      "model.layers.{i}.input_layernorm", "model.layers.{i}.self_attn",
      "model.layers.{i}.pre_feedforward_layernorm", "model.layers.{i}.mlp",
      "model.norm", "lm_head"},
     {"model.embed_tokens.output", "model.layers.{i}.input",
      "model.layers.{i}.self_attn.q_proj.output",
      "model.layers.{i}.self_attn.k_proj.output",
      "model.layers.{i}.self_attn.v_proj.output",
      "model.layers.{i}.self_attn:aten::softmax#0.input",
      "model.layers.{i}.self_attn:aten::softmax#0",
      "model.layers.{i}.self_attn.o_proj.input",
      /* TransformerLens: what is added to the residual, after the post-norm */
      "model.layers.{i}.post_attention_layernorm.output",
      "model.layers.{i}.pre_feedforward_layernorm.input",
      "model.layers.{i}.mlp.gate_proj.output",
      "model.layers.{i}.mlp.down_proj.input",
      "model.layers.{i}.post_feedforward_layernorm.output",
      "model.layers.{i}.output", "lm_head.output"},
     QKV_SEPARATE,
     "layers.{i}.ln_post_mlp",
     "model.layers.{i}.post_feedforward_layernorm"},
    {"gpt_neox",
     "pythia",
     neox_tree,
     {"gpt_neox.embed_in", NULL, "gpt_neox.layers", "gpt_neox.layers.{i}",
      "gpt_neox.layers.{i}.input_layernorm", "gpt_neox.layers.{i}.attention",
      "gpt_neox.layers.{i}.post_attention_layernorm", "gpt_neox.layers.{i}.mlp",
      "gpt_neox.final_layer_norm", "embed_out"},
     {"gpt_neox.embed_in.output", "gpt_neox.layers.{i}.input",
      "gpt_neox.layers.{i}.attention.query_key_value.output",
      "gpt_neox.layers.{i}.attention.query_key_value.output",
      "gpt_neox.layers.{i}.attention.query_key_value.output",
      "gpt_neox.layers.{i}.attention:aten::softmax#0.input",
      "gpt_neox.layers.{i}.attention:aten::softmax#0",
      "gpt_neox.layers.{i}.attention.dense.input",
      "gpt_neox.layers.{i}.attention.output", NULL,
      "gpt_neox.layers.{i}.mlp.dense_h_to_4h.output",
      "gpt_neox.layers.{i}.mlp.dense_4h_to_h.input",
      "gpt_neox.layers.{i}.mlp.output", "gpt_neox.layers.{i}.output",
      "embed_out.output"},
     QKV_FUSED_HEADS,
     NULL,
     NULL},
    {"opt",
     "OPT",
     opt_tree,
     {"model.decoder.embed_tokens", "model.decoder.embed_positions",
      "model.decoder.layers", "model.decoder.layers.{i}",
      "model.decoder.layers.{i}.self_attn_layer_norm",
      "model.decoder.layers.{i}.self_attn",
      "model.decoder.layers.{i}.final_layer_norm", NULL,
      "model.decoder.final_layer_norm", "lm_head"},
     {"model.decoder.embed_tokens.output", "model.decoder.layers.{i}.input",
      "model.decoder.layers.{i}.self_attn.q_proj.output",
      "model.decoder.layers.{i}.self_attn.k_proj.output",
      "model.decoder.layers.{i}.self_attn.v_proj.output",
      "model.decoder.layers.{i}.self_attn:aten::softmax#0.input",
      "model.decoder.layers.{i}.self_attn:aten::softmax#0",
      "model.decoder.layers.{i}.self_attn.out_proj.input",
      "model.decoder.layers.{i}.self_attn.output",
      "model.decoder.layers.{i}.final_layer_norm.input",
      "model.decoder.layers.{i}.fc1.output",
      "model.decoder.layers.{i}.fc2.input",
      "model.decoder.layers.{i}.fc2.output", "model.decoder.layers.{i}.output",
      "lm_head.output"},
     QKV_SEPARATE,
     NULL,
     NULL},
    {"gptj",
     "gpt-j",
     gptj_tree,
     {"transformer.wte", NULL, "transformer.h", "transformer.h.{i}",
      "transformer.h.{i}.ln_1", "transformer.h.{i}.attn", NULL,
      "transformer.h.{i}.mlp", "transformer.ln_f", "lm_head"},
     {"transformer.wte.output", "transformer.h.{i}.input",
      "transformer.h.{i}.attn.q_proj.output",
      "transformer.h.{i}.attn.k_proj.output",
      "transformer.h.{i}.attn.v_proj.output",
      "transformer.h.{i}.attn:aten::softmax#0.input",
      "transformer.h.{i}.attn:aten::softmax#0",
      "transformer.h.{i}.attn.out_proj.input", "transformer.h.{i}.attn.output",
      NULL, "transformer.h.{i}.mlp.fc_in.output",
      "transformer.h.{i}.mlp.fc_out.input", "transformer.h.{i}.mlp.output",
      "transformer.h.{i}.output", "lm_head.output"},
     QKV_SEPARATE,
     NULL,
     NULL},
    {"phi",
     "phi-2",
     phi_tree,
     {"model.embed_tokens", NULL, "model.layers", "model.layers.{i}",
      "model.layers.{i}.input_layernorm", "model.layers.{i}.self_attn", NULL,
      "model.layers.{i}.mlp", "model.final_layernorm", "lm_head"},
     {"model.embed_tokens.output", "model.layers.{i}.input",
      "model.layers.{i}.self_attn.q_proj.output",
      "model.layers.{i}.self_attn.k_proj.output",
      "model.layers.{i}.self_attn.v_proj.output",
      "model.layers.{i}.self_attn:aten::softmax#0.input",
      "model.layers.{i}.self_attn:aten::softmax#0",
      "model.layers.{i}.self_attn.dense.input",
      "model.layers.{i}.self_attn.output", NULL,
      "model.layers.{i}.mlp.fc1.output", "model.layers.{i}.mlp.fc2.input",
      "model.layers.{i}.mlp.output", "model.layers.{i}.output",
      "lm_head.output"},
     QKV_SEPARATE,
     NULL,
     NULL},
    {"bloom",
     "BLOOM",
     bloom_tree,
     {"transformer.word_embeddings", NULL, "transformer.h", "transformer.h.{i}",
      "transformer.h.{i}.input_layernorm", "transformer.h.{i}.self_attention",
      "transformer.h.{i}.post_attention_layernorm", "transformer.h.{i}.mlp",
      "transformer.ln_f", "lm_head"},
     {"transformer.word_embeddings.output", "transformer.h.{i}.input",
      "transformer.h.{i}.self_attention.query_key_value.output",
      "transformer.h.{i}.self_attention.query_key_value.output",
      "transformer.h.{i}.self_attention.query_key_value.output",
      "transformer.h.{i}.self_attention:aten::softmax#0.input",
      "transformer.h.{i}.self_attention:aten::softmax#0",
      "transformer.h.{i}.self_attention.dense.input",
      /* BloomAttention/BloomMLP return residual + output */
      "transformer.h.{i}.self_attention.dense.output",
      "transformer.h.{i}.post_attention_layernorm.input",
      "transformer.h.{i}.mlp.dense_h_to_4h.output",
      "transformer.h.{i}.mlp.dense_4h_to_h.input",
      "transformer.h.{i}.mlp.dense_4h_to_h.output", "transformer.h.{i}.output",
      "lm_head.output"},
     QKV_FUSED_HEADS,
     "ln_embed",
     "transformer.word_embeddings_layernorm"},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static const char *const all_families[] = {"bloom", "gemma", "gpt2", "gpt_neox",
                                           "gptj",  "llama", "opt",  "phi"};

/* ---- helpers ------------------------------------------------------------- */

static nne_family_set_t *g_set;

static void load_builtin(void) {
  nne_err_t err;
  int rc = nne_family_set_load(NULL, &g_set, &err);
  ck_assert_msg(rc == 0, "builtin maps: %s", err.msg);
}

static void unload(void) {
  nne_family_set_free(g_set);
  g_set = NULL;
}

static nne_names_t *build(const tree_t *t, const char *forced,
                          const nne_names_rename_t *renames, size_t n_renames) {
  nne_names_t *nm = NULL;
  nne_err_t err;
  int rc = nne_names_build(g_set, forced, t->mods, t->n, renames, n_renames,
                           &nm, &err);
  ck_assert_msg(rc == 0, "build: %s", err.msg);
  return nm;
}

static const char *src_dir(void) {
  const char *d = getenv("NNE_SOURCE_DIR");
  ck_assert_msg(d != NULL && d[0] != '\0',
                "NNE_SOURCE_DIR is not set (run through ctest)");
  return d;
}

static bool has_warning(const nne_names_t *nm, const char *needle) {
  size_t i;
  for (i = 0; i < nne_names_warning_count(nm); i++)
    if (strstr(nne_names_warning(nm, i), needle) != NULL)
      return true;
  return false;
}

static void dump_warnings(const nne_names_t *nm) {
  size_t i;
  for (i = 0; i < nne_names_warning_count(nm); i++)
    fprintf(stderr, "  warning: %s\n", nne_names_warning(nm, i));
}

static int resolve_mod(const nne_names_t *nm, const char *name,
                       nne_err_t *err) {
  int m = -7;
  int rc = nne_names_resolve_module(nm, "module", name, &m, err);
  return rc == 0 ? m : rc - 1000;
}

#define ASSERT_ERR(rc, code, err, needle)                                      \
  do {                                                                         \
    ck_assert_msg((rc) == (code), "rc %d, expected %d (%s)", (rc), (code),     \
                  (err).msg);                                                  \
    ck_assert_msg(strstr((err).msg, (needle)) != NULL,                         \
                  "message '%s' lacks '%s'", (err).msg, (needle));             \
  } while (0)

static bool has_alias(const nne_names_t *nm, int module, const char *name,
                      bool standard) {
  size_t k;
  for (k = 0; k < nne_names_module_alias_count(nm, module); k++)
    if (strcmp(nne_names_module_alias(nm, module, k), name) == 0)
      return nne_names_module_alias_is_standard(nm, module, k) == standard;
  return false;
}

/* ---- per family ---------------------------------------------------------- */

static void check_family_names(const family_case_t *fc, const tree_t *t,
                               const nne_names_t *nm) {
  int i, k, m;
  nne_err_t err;
  char name[256], tl[256];

  ck_assert_int_eq(nne_names_layer_count(nm), N_LAYERS);
  /* standard modules */
  for (k = 0; k < N_STD_MODS; k++) {
    int n = strstr(std_mod_names[k], "{i}") ? N_LAYERS : 1;
    for (i = 0; i < n; i++) {
      char *nmx = expand_i(std_mod_names[k], i);
      m = -7;
      int rc = nne_names_resolve_module(nm, "module", nmx, &m, &err);
      if (fc->mods[k] == NULL) {
        ck_assert_msg(rc == NNE_ESTATE, "%s %s: rc %d (%s), expected ESTATE",
                      fc->family, nmx, rc, rc ? err.msg : "resolved");
        ck_assert_msg(strstr(err.msg, nmx) != NULL, "%s", err.msg);
      } else {
        char *want = expand_i(fc->mods[k], i);
        ck_assert_msg(rc == 0, "%s %s: %s", fc->family, nmx, err.msg);
        ck_assert_msg(m == tree_find(t, want), "%s %s → %s, expected %s",
                      fc->family, nmx, m >= 0 ? t->paths[m] : "?", want);
        ck_assert_msg(has_alias(nm, m, nmx, true), "%s: %s not an alias of %s",
                      fc->family, nmx, want);
        /* the raw path resolves to the same module */
        ck_assert_int_eq(resolve_mod(nm, want, &err), m);
        free(want);
      }
      free(nmx);
    }
  }
  if (fc->extra_name != NULL) {
    for (i = 0; i < N_LAYERS; i++) {
      char *nmx = expand_i(fc->extra_name, i),
           *want = expand_i(fc->extra_path, i);
      m = resolve_mod(nm, nmx, &err);
      ck_assert_msg(m == tree_find(t, want), "%s %s: %s", fc->family, nmx,
                    m < 0 ? err.msg : t->paths[m]);
      ck_assert(has_alias(nm, m, nmx, true));
      free(nmx);
      free(want);
    }
  }

  /* standard sites, through both spellings */
  for (k = 0; k < N_STD_SITES; k++) {
    int n = strstr(std_site_names[k], "{i}") ? N_LAYERS : 1;
    for (i = 0; i < n; i++) {
      nne_names_site_t s, s2;
      int rc;
      {
        char *x = expand_i(std_site_names[k], i);
        snprintf(name, sizeof name, "%s", x);
        free(x);
      }
      memset(&s, 0x5a, sizeof s);
      rc = nne_names_resolve_site(nm, "site", name, &s, &err);
      if (fc->sites[k] == NULL) {
        ck_assert_msg(rc == NNE_ESTATE, "%s %s: rc %d, expected ESTATE",
                      fc->family, name, rc);
        continue;
      }
      ck_assert_msg(rc == 0, "%s %s: %s", fc->family, name, err.msg);
      {
        char *want = expand_i(fc->sites[k], i);
        ck_assert_msg(strcmp(s.canonical, want) == 0, "%s %s → %s, expected %s",
                      fc->family, name, s.canonical, want);
        free(want);
      }
      ck_assert_str_eq(s.standard, name);
      ck_assert_int_ge(s.module, 0);
      /* q/k/v views */
      if (k >= 2 && k <= 4 && fc->qkv != QKV_SEPARATE) {
        ck_assert_int_eq(s.view.parts, 3);
        ck_assert_int_eq(s.view.part, k - 2);
        ck_assert(s.view.heads_view == (fc->qkv == QKV_FUSED_HEADS));
      } else {
        ck_assert_int_eq(s.view.parts, 0);
      }
      /* node sites */
      if (strstr(fc->sites[k], ":aten::softmax#0") != NULL) {
        ck_assert_str_eq(s.node_kind, "aten::softmax");
        ck_assert_int_eq(s.node_occurrence, 0);
        ck_assert_int_eq(s.kind, k == 5 ? NNE_NAMES_SITE_NODE_INPUT
                                        : NNE_NAMES_SITE_NODE);
      }
      /* the canonical form resolves to the same place */
      rc = nne_names_resolve_site(nm, "site", s.canonical, &s2, &err);
      ck_assert_msg(rc == 0, "%s: %s", s.canonical, err.msg);
      ck_assert_int_eq(s2.module, s.module);
      ck_assert_int_eq(s2.kind, s.kind);
      ck_assert_int_eq(s2.index, s.index);
      ck_assert_str_eq(s2.canonical, s.canonical);
      if (s.view.parts == 0)
        ck_assert_str_eq(s2.standard, name);
      /* TransformerLens */
      if (tl_site_names[k] != NULL) {
        char *x = expand_i(tl_site_names[k], i);
        snprintf(tl, sizeof tl, "%s", x);
        free(x);
        rc = nne_names_resolve_site(nm, "site", tl, &s2, &err);
        ck_assert_msg(rc == 0, "%s %s: %s", fc->family, tl, err.msg);
        ck_assert_msg(memcmp(&s, &s2, sizeof s) == 0 ||
                          (s.module == s2.module && s.kind == s2.kind &&
                           s.index == s2.index &&
                           strcmp(s.canonical, s2.canonical) == 0 &&
                           strcmp(s.standard, s2.standard) == 0 &&
                           s.view.parts == s2.view.parts &&
                           s.view.part == s2.view.part &&
                           s.view.heads_view == s2.view.heads_view),
                      "%s and %s differ", name, tl);
      }
    }
  }

  /* the listing: embed, per layer, logits */
  ck_assert_uint_eq(nne_names_site_count(nm), 2 + 13 * N_LAYERS);
  ck_assert_str_eq(nne_names_site(nm, 0)->name, "embed");
  ck_assert_str_eq(nne_names_site(nm, 0)->tl_name, "hook_embed");
  ck_assert_str_eq(nne_names_site(nm, 1)->name, "layers.0.resid_pre");
  ck_assert_str_eq(nne_names_site(nm, 14)->name, "layers.1.resid_pre");
  ck_assert_str_eq(nne_names_site(nm, 1 + 13 * N_LAYERS)->name, "logits");
  ck_assert_ptr_null(nne_names_site(nm, 1 + 13 * N_LAYERS)->tl_name);
  for (k = 0; k < (int)nne_names_site_count(nm); k++) {
    const nne_names_site_entry_t *e = nne_names_site(nm, (size_t)k);
    if (!e->available)
      ck_assert_msg(e->reason != NULL && e->reason[0] != '\0', "%s", e->name);
  }

  /* checks: layers BSD in and out, lm_head BSV */
  {
    size_t c;
    bool saw_layer = false, saw_head = false;
    for (c = 0; c < nne_names_check_count(nm); c++) {
      const nne_names_check_t *ck = nne_names_check(nm, c);
      if (strcmp(ck->name, "layers.2") == 0) {
        saw_layer = true;
        ck_assert_int_eq(ck->input0, NNE_NAMES_SHAPE_BSD);
        ck_assert_int_eq(ck->output0, NNE_NAMES_SHAPE_BSD);
        {
          char *want = expand_i(fc->mods[3], 2);
          ck_assert_int_eq(ck->module, tree_find(t, want));
          free(want);
        }
      }
      if (strcmp(ck->name, "lm_head") == 0) {
        saw_head = true;
        ck_assert_int_eq(ck->output0, NNE_NAMES_SHAPE_BSV);
        ck_assert_int_eq(ck->module, tree_find(t, fc->mods[9]));
      }
      ck_assert_msg(strcmp(ck->name, "layers.0.mlp") != 0 || fc->mods[7],
                    "%s: a check for an unavailable module", fc->family);
    }
    ck_assert(saw_layer && saw_head);
    /* embed_tokens, 3 per layer (+ mlp), ln_final, lm_head */
    ck_assert_uint_eq(nne_names_check_count(nm),
                      3 + (size_t)N_LAYERS * (fc->mods[7] ? 3 : 2));
  }

  /* layer range */
  {
    int rc =
        nne_names_resolve_module(nm, "module", "layers.3.self_attn", &m, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err,
               "layers.3.self_attn: the model has 3 layers (0..2)");
    rc = nne_names_resolve_site(nm, "site", "layers.7.resid_post",
                                (nne_names_site_t[1]){{0}}, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
    rc = nne_names_resolve_site(nm, "site", "blocks.3.hook_resid_pre",
                                (nne_names_site_t[1]){{0}}, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
    rc = nne_names_resolve_site(nm, "site", "layers.40.self_attn.output",
                                (nne_names_site_t[1]){{0}}, &err);
    ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
    /* the raw spelling too */
    {
      char *raw = expand_i(fc->mods[3], 12);
      rc = nne_names_resolve_module(nm, "module", raw, &m, &err);
      ASSERT_ERR(rc, NNE_EINVAL, err, "the model has 3 layers (0..2)");
      free(raw);
    }
  }
}

START_TEST(test_family_by_class) {
  const family_case_t *fc = &cases[_i];
  tree_t t;
  nne_names_t *nm;
  char reason[128];

  load_builtin();
  tree_build(&t, fc->tree, N_LAYERS, NULL);
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), fc->family);
  snprintf(reason, sizeof reason, "class %s", t.classes[0]);
  ck_assert_str_eq(nne_names_family_reason(nm), reason);
  if (nne_names_warning_count(nm) != 0)
    dump_warnings(nm);
  ck_assert_uint_eq(nne_names_warning_count(nm), 0);
  check_family_names(fc, &t, nm);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_family_by_structure) {
  const family_case_t *fc = &cases[_i];
  tree_t t;
  nne_names_t *nm;

  load_builtin();
  tree_build(&t, fc->tree, N_LAYERS, "ExportedModel");
  nm = build(&t, NULL, NULL, 0);
  ck_assert_msg(strcmp(nne_names_family(nm), fc->family) == 0,
                "structure of %s detected as '%s'", fc->family,
                nne_names_family(nm));
  ck_assert_str_eq(nne_names_family_reason(nm), "structure");
  check_family_names(fc, &t, nm);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_family_forced) {
  const family_case_t *fc = &cases[_i];
  tree_t t;
  nne_names_t *nm;

  load_builtin();
  tree_build(&t, fc->tree, N_LAYERS, "ExportedModel");
  nm = build(&t, fc->alias, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), fc->family);
  ck_assert_str_eq(nne_names_family_reason(nm), "model.json");
  check_family_names(fc, &t, nm);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* A family's tree wrapped in another module: the outer module is not part
 * of the family's paths. */
START_TEST(test_family_wrapped) {
  const family_case_t *fc = &cases[_i];
  tmod_t spec[64];
  char paths[64][160];
  size_t k;
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  char *want;

  spec[0].path = "";
  spec[0].cls = "Wrapper";
  for (k = 0; fc->tree[k].path != NULL; k++) {
    snprintf(paths[k], sizeof paths[k], "%s%s%s", "inner",
             fc->tree[k].path[0] ? "." : "", fc->tree[k].path);
    spec[k + 1].path = paths[k];
    spec[k + 1].cls = fc->tree[k].cls;
  }
  spec[k + 1].path = NULL;
  load_builtin();
  tree_build(&t, spec, N_LAYERS, NULL);
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), fc->family);
  ck_assert(strstr(nne_names_family_reason(nm), "at inner") != NULL);
  want = expand_i(fc->mods[5], 1);
  snprintf(paths[0], sizeof paths[0], "inner.%s", want);
  ck_assert_int_eq(resolve_mod(nm, "layers.1.self_attn", &err),
                   tree_find(&t, paths[0]));
  free(want);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* The Llama map covers Mistral and Qwen2/3 by class; Gemma 1 has the Llama
 * layout. */
START_TEST(test_llama_classes) {
  static const char *const classes[] = {"MistralForCausalLM",
                                        "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                                        "GemmaForCausalLM"};
  size_t k;
  load_builtin();
  for (k = 0; k < 4; k++) {
    tree_t t;
    nne_names_t *nm;
    tree_build(&t, llama_tree, 2, classes[k]);
    nm = build(&t, NULL, NULL, 0);
    ck_assert_str_eq(nne_names_family(nm), "llama");
    ck_assert_uint_eq(nne_names_warning_count(nm), 0);
    nne_names_free(nm);
    tree_free(&t);
  }
  unload();
}
END_TEST

/* ---- the family set -------------------------------------------------------
 */

static char *read_text(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

START_TEST(test_builtin_table) {
  size_t i, k;
  char path[PATH_MAX];

  ck_assert_msg(nne_names_builtin_count >= 8,
                "the builtin name map table has %zu entries: the build did "
                "not embed the maps of daemon/names/",
                nne_names_builtin_count);
  /* Every embedded text is the file in the source tree, byte for byte. */
  for (i = 0; i < nne_names_builtin_count; i++) {
    size_t len;
    char *text;
    snprintf(path, sizeof path, "%s/daemon/names/%s", src_dir(),
             nne_names_builtin[i].name);
    text = read_text(path, &len);
    ck_assert_msg(len == nne_names_builtin[i].len &&
                      memcmp(text, nne_names_builtin[i].text, len) == 0,
                  "embedded %s differs from %s (rebuild)",
                  nne_names_builtin[i].name, path);
    ck_assert_int_eq(nne_names_builtin[i].text[len], '\0');
    free(text);
  }
  load_builtin();
  ck_assert_uint_eq(nne_family_set_count(g_set), 8);
  for (k = 0; k < 8; k++)
    ck_assert_str_eq(nne_family_set_name(g_set, k), all_families[k]);
  ck_assert_ptr_null(nne_family_set_name(g_set, 8));
  unload();
}
END_TEST

/* The source maps as an override directory: the same 8 families. */
START_TEST(test_override_dir_sources) {
  nne_family_set_t *set;
  nne_err_t err;
  char dir[PATH_MAX];
  size_t k;
  tree_t t;
  nne_names_t *nm;

  snprintf(dir, sizeof dir, "%s/daemon/names", src_dir());
  ck_assert_msg(nne_family_set_load(dir, &set, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq(nne_family_set_count(set), 8);
  for (k = 0; k < 8; k++)
    ck_assert_str_eq(nne_family_set_name(set, k), all_families[k]);
  tree_build(&t, neox_tree, 2, NULL);
  ck_assert_msg(nne_names_build(set, NULL, t.mods, t.n, NULL, 0, &nm, &err) ==
                    0,
                "%s", err.msg);
  ck_assert_str_eq(nne_names_family(nm), "gpt_neox");
  nne_names_free(nm);
  tree_free(&t);
  nne_family_set_free(set);
  /* A missing directory is no overrides. */
  ck_assert_int_eq(nne_family_set_load("/nonexistent/nne-names", &set, &err),
                   0);
  ck_assert_uint_eq(nne_family_set_count(set), nne_names_builtin_count);
  nne_family_set_free(set);
}
END_TEST

/* ---- temporary map directories ------------------------------------------ */

static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void tmp_setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/nne_test_names_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void) {
  nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_map(const char *file, const char *text) {
  char path[PATH_MAX];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", tmpdir, file);
  f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
}

/* text with `from` replaced by `to` (once); text is freed. */
static char *text_edit(char *text, const char *from, const char *to) {
  char *p = strstr(text, from), *out;
  ck_assert_msg(p != NULL, "no '%s' to edit", from);
  out = malloc(strlen(text) + strlen(to) + 1);
  memcpy(out, text, (size_t)(p - text));
  strcpy(out + (p - text), to);
  strcat(out, p + strlen(from));
  free(text);
  return out;
}

static char *gpt2_text(void) {
  char path[PATH_MAX];
  size_t len;
  snprintf(path, sizeof path, "%s/daemon/names/gpt2.json", src_dir());
  return read_text(path, &len);
}

/* The gpt2 source map with `from` replaced by `to` (once). */
static char *gpt2_edit(const char *from, const char *to) {
  return text_edit(gpt2_text(), from, to);
}

/* The line of the first `needle` in the gpt2 source map. */
static int gpt2_line(const char *needle) {
  char *text = gpt2_text(), *p = strstr(text, needle), *q;
  int line = 1;
  ck_assert_ptr_nonnull(p);
  for (q = text; q < p; q++)
    line += *q == '\n';
  free(text);
  return line;
}

static int load_tmp(nne_family_set_t **set, nne_err_t *err) {
  return nne_family_set_load(tmpdir, set, err);
}

/* A malformed map fails the whole load naming the file and the line. */
START_TEST(test_map_syntax_error) {
  nne_family_set_t *set = (nne_family_set_t *)1;
  nne_err_t err;
  char *t = gpt2_edit("\"family\": \"gpt2\",", "\"family\": \"gpt2\"");
  char want[64];
  write_map("broken.json", t);
  free(t);
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err, "broken.json: line ");
  ck_assert_ptr_null(set);
  /* the line of the next key, where the comma is missing */
  snprintf(want, sizeof want, "broken.json: line %d column",
           gpt2_line("\"aliases\""));
  ck_assert_msg(strstr(err.msg, want) != NULL, "%s lacks %s", err.msg, want);
}
END_TEST

/* from, to, what the message says; on_line: the message gives the line of
 * `from` (the entry's key is on it). */
static const struct {
  const char *from, *to, *needle;
  bool on_line;
} semantic_errors[] = {
    /* an unknown standard name */
    {"\"layers.{i}.mlp\": \"transformer.h.{i}.mlp\"",
     "\"layers.{i}.mpl\": \"transformer.h.{i}.mlp\"",
     "modules: \"layers.{i}.mpl\": not a standard module name", true},
    /* a per-layer template without {i} */
    {"\"layers.{i}.ln_mlp\": \"transformer.h.{i}.ln_2\"",
     "\"layers.{i}.ln_mlp\": \"transformer.h.ln_2\"",
     "modules: \"layers.{i}.ln_mlp\": template \"transformer.h.ln_2\" has no "
     "{i}",
     true},
    /* a template outside the layer list */
    {"\"layers.{i}.ln_mlp\": \"transformer.h.{i}.ln_2\"",
     "\"layers.{i}.ln_mlp\": \"transformer.hh.{i}.ln_2\"",
     "is not under the layer list \"transformer.h.{i}\"", true},
    /* a site string that does not parse */
    {"\"layers.{i}.self_attn:aten::softmax#0\"",
     "\"layers.{i}.self_attn:aten::softmax\"",
     "sites: \"layers.{i}.self_attn.pattern\": \"layers.{i}.self_attn:aten::"
     "softmax\" is not a site: a node selector is MODULE:KIND#K",
     true},
    {"\"layers.{i}.mlp.c_fc.output\"", "\"layers.{i}.mlp.c_fc.outptu\"",
     "sites: \"layers.{i}.mlp.pre\": \"layers.{i}.mlp.c_fc.outptu\" is not a "
     "site",
     true},
    /* an unknown site */
    {"\"layers.{i}.resid_mid\"", "\"layers.{i}.resid_middle\"",
     "sites: \"layers.{i}.resid_middle\": not a standard site", true},
    /* an unknown top-level key */
    {"\"checks\": {", "\"chekcs\": {", "\"chekcs\": unknown key", true},
    /* a view out of range */
    {"\"parts\": 3, \"part\": 2", "\"parts\": 3, \"part\": 3",
     "sites: \"layers.{i}.self_attn.v\": view: \"part\" must be 0..parts-1",
     true},
    /* a missing module */
    {"\"ln_final\": \"transformer.ln_f\",", "", "\"ln_final\" is missing",
     false},
    /* a check of an unknown shape */
    {"\"lm_head\": {\"output\": \"BSV\"}", "\"lm_head\": {\"output\": \"BVS\"}",
     "checks: \"lm_head\": a shape is", true},
    /* a class name that is not one */
    {"\"GPT2LMHeadModel\"", "\"GPT2 LMHeadModel\"",
     "detect: \"classes\": entry 0 is not well formed", true},
    /* no family name */
    {"\"family\": \"gpt2\"", "\"family\": \"GPT2\"", "\"family\": required",
     true},
    /* layers.{i} is derived */
    {"\"layers\": \"transformer.h\",",
     "\"layers\": \"transformer.h\", \"layers.{i}\": \"transformer.h.{i}\",",
     "modules: \"layers.{i}\": is always", true},
};

START_TEST(test_map_semantic_error) {
  nne_family_set_t *set = NULL;
  nne_err_t err;
  char *t = gpt2_edit(semantic_errors[_i].from, semantic_errors[_i].to);
  char want[64];
  write_map("gpt2.json", t);
  free(t);
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err, semantic_errors[_i].needle);
  ck_assert_msg(strstr(err.msg, "/gpt2.json: line ") != NULL, "%s", err.msg);
  if (semantic_errors[_i].on_line) {
    snprintf(want, sizeof want,
             "/gpt2.json: line %d: ", gpt2_line(semantic_errors[_i].from));
    ck_assert_msg(strstr(err.msg, want) != NULL, "%s lacks %s", err.msg, want);
  }
  ck_assert_ptr_null(set);
}
END_TEST

/* An override replaces the builtin map of its family (by "family", not by
 * file name); two overrides of one family, or an alias that names another
 * family, fail. */
START_TEST(test_map_override) {
  nne_family_set_t *set;
  nne_err_t err;
  tree_t t;
  nne_names_t *nm;
  int m;
  char *text = gpt2_edit("\"aliases\": [\"gpt-2\"]",
                         "\"aliases\": [\"gpt-2\", \"my-gpt\"]");
  char *text2;

  write_map("zz-local.json", text);
  ck_assert_msg(load_tmp(&set, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq(nne_family_set_count(set), 8);
  tree_build(&t, gpt2_tree, 2, "Custom");
  ck_assert_msg(
      nne_names_build(set, "MY-GPT", t.mods, t.n, NULL, 0, &nm, &err) == 0,
      "%s", err.msg);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  ck_assert_int_eq(nne_names_resolve_module(nm, NULL, "ln_final", &m, &err), 0);
  nne_names_free(nm);
  nne_family_set_free(set);
  /* without the override, the alias is unknown */
  load_builtin();
  ASSERT_ERR(nne_names_build(g_set, "my-gpt", t.mods, t.n, NULL, 0, &nm, &err),
             NNE_EINVAL, err,
             "'my-gpt' is not a known family (known: bloom, "
             "gemma, gpt2, gpt_neox, gptj, llama, opt, phi)");
  ck_assert_ptr_null(nm);
  unload();

  /* two overrides of one family */
  write_map("aa-local.json", text);
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err,
             "family \"gpt2\" is also defined by");
  /* a new family whose alias is another family's name */
  text2 = gpt2_edit("\"family\": \"gpt2\"", "\"family\": \"gpt2x\"");
  free(text);
  text = text2;
  text2 = NULL;
  {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/aa-local.json", tmpdir);
    remove(path);
  }
  write_map("zz-local.json", text);
  /* gpt2x keeps gpt2's alias "gpt-2" */
  ASSERT_ERR(load_tmp(&set, &err), NNE_EINVAL, err, "alias \"gpt-2\"");
  free(text);
  tree_free(&t);
}
END_TEST

/* Two families with the same structural signature: no guess. */
START_TEST(test_detection_tie) {
  nne_family_set_t *set;
  nne_err_t err;
  tree_t t;
  nne_names_t *nm;
  char *text =
      text_edit(gpt2_edit("\"family\": \"gpt2\"", "\"family\": \"twin\""),
                "\"aliases\": [\"gpt-2\"]", "\"aliases\": []");
  write_map("twin.json", text);
  ck_assert_msg(load_tmp(&set, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq(nne_family_set_count(set), 9);
  tree_build(&t, gpt2_tree, 2, "Custom");
  ck_assert_int_eq(nne_names_build(set, NULL, t.mods, t.n, NULL, 0, &nm, &err),
                   0);
  ck_assert_str_eq(nne_names_family(nm), "");
  ck_assert(has_warning(nm, "equally"));
  nne_names_free(nm);
  /* the class still decides */
  tree_free(&t);
  tree_build(&t, gpt2_tree, 2, NULL);
  ck_assert_int_eq(nne_names_build(set, NULL, t.mods, t.n, NULL, 0, &nm, &err),
                   0);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  nne_names_free(nm);
  tree_free(&t);
  nne_family_set_free(set);
  free(text);
}
END_TEST

/* ---- resolution ---------------------------------------------------------- */

START_TEST(test_unknown_names_suggest) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, rc;

  load_builtin();
  tree_build(&t, gpt2_tree, 12, NULL);
  nm = build(&t, NULL, NULL, 0);

  rc = nne_names_resolve_module(nm, "modules[0]", "layers.5.mpl", &m, &err);
  ASSERT_ERR(
      rc, NNE_ENOTFOUND, err,
      "modules[0]: unknown module 'layers.5.mpl'; closest: layers.5.mlp");
  /* the same layer only */
  ck_assert_msg(strstr(err.msg, "layers.0.") == NULL, "%s", err.msg);
  rc = nne_names_resolve_module(nm, "module", "transformer.h.3.atn", &m, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "closest: transformer.h.3.attn");
  rc = nne_names_resolve_module(nm, "module", "ln_finl", &m, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "closest: ln_final");
  /* at most 5 */
  {
    const char *p = strstr(err.msg, "closest: ");
    int commas = 0;
    for (; p && *p; p++)
      commas += *p == ',';
    ck_assert_int_le(commas, 4);
  }
  /* range */
  rc = nne_names_resolve_module(nm, "module", "layers.40.mlp", &m, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err,
             "module: layers.40.mlp: the model has 12 layers (0..11)");

  /* sites */
  rc = nne_names_resolve_site(nm, "site", "layers.0.mlp.outptu", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "unknown site 'layers.0.mlp.outptu'");
  ck_assert_msg(strstr(err.msg, "layers.0.mlp.output") != NULL, "%s", err.msg);
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn:softmax#0", &s,
                              &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "'softmax' is not a node kind");
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn:aten::softmax",
                              &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "MODULE:KIND#K");
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn:aten::softmax#x",
                              &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "node number");
  rc = nne_names_resolve_site(
      nm, "site", "layers.2.self_attn:aten::softmax#0.inptu", &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "expected .input[.N] or .output[.N]");
  rc = nne_names_resolve_site(nm, "site", "layers.2.mlp", &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err,
             "'layers.2.mlp' is a module, not a site: say layers.2.mlp.output");
  rc = nne_names_resolve_site(nm, "site", "layers.2.self_attn.qq", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "layers.2.self_attn.q");
  rc = nne_names_resolve_site(nm, "site", "layers.2.mpl.output", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err,
             "site 'layers.2.mpl.output': unknown module 'layers.2.mpl'; "
             "closest: layers.2.mlp.output");
  rc =
      nne_names_resolve_site(nm, "site", "blocks.2.attn.hook_patern", &s, &err);
  ASSERT_ERR(rc, NNE_ENOTFOUND, err, "blocks.2.attn.hook_pattern");
  rc = nne_names_resolve_site(nm, "site", "resid_post", &s, &err);
  ck_assert_int_eq(rc, NNE_ENOTFOUND);
  rc =
      nne_names_resolve_site(nm, "site", "layers.0.mlp.output.99999", &s, &err);
  ASSERT_ERR(rc, NNE_EINVAL, err, "too large");
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_site_grammar) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  static const struct {
    const char *in, *canonical, *standard;
    nne_names_site_kind_t kind;
    int index;
  } cases_[] = {
      {"layers.1.mlp.output", "transformer.h.1.mlp.output", "layers.1.mlp_out",
       NNE_NAMES_SITE_OUTPUT, 0},
      {"layers.1.mlp.output.0", "transformer.h.1.mlp.output",
       "layers.1.mlp_out", NNE_NAMES_SITE_OUTPUT, 0},
      {"layers.1.output.1", "transformer.h.1.output.1", "",
       NNE_NAMES_SITE_OUTPUT, 1},
      {"transformer.h.1.input", "transformer.h.1.input", "layers.1.resid_pre",
       NNE_NAMES_SITE_INPUT, 0},
      {"layers.1.input.2", "transformer.h.1.input.2", "", NNE_NAMES_SITE_INPUT,
       2},
      {"layers.1.mlp.c_fc.output", "transformer.h.1.mlp.c_fc.output",
       "layers.1.mlp.pre", NNE_NAMES_SITE_OUTPUT, 0},
      {"layers.1.self_attn:aten::softmax#0",
       "transformer.h.1.attn:aten::softmax#0", "layers.1.self_attn.pattern",
       NNE_NAMES_SITE_NODE, 0},
      {"transformer.h.1.attn:aten::softmax#0.output.0",
       "transformer.h.1.attn:aten::softmax#0", "layers.1.self_attn.pattern",
       NNE_NAMES_SITE_NODE, 0},
      {"layers.1.self_attn:aten::matmul#1.input.1",
       "transformer.h.1.attn:aten::matmul#1.input.1", "",
       NNE_NAMES_SITE_NODE_INPUT, 1},
      {"layers.1.self_attn:prim::CallMethod#2.output.1",
       "transformer.h.1.attn:prim::CallMethod#2.output.1", "",
       NNE_NAMES_SITE_NODE, 1},
      {"output", "output", "", NNE_NAMES_SITE_OUTPUT, 0},
      {"lm_head.output", "lm_head.output", "logits", NNE_NAMES_SITE_OUTPUT, 0},
      {"logits", "lm_head.output", "logits", NNE_NAMES_SITE_OUTPUT, 0},
      {"hook_embed", "transformer.wte.output", "embed", NNE_NAMES_SITE_OUTPUT,
       0},
  };
  size_t k;

  load_builtin();
  tree_build(&t, gpt2_tree, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  for (k = 0; k < sizeof cases_ / sizeof cases_[0]; k++) {
    int rc = nne_names_resolve_site(nm, "site", cases_[k].in, &s, &err);
    ck_assert_msg(rc == 0, "%s: %s", cases_[k].in, err.msg);
    ck_assert_str_eq(s.canonical, cases_[k].canonical);
    ck_assert_str_eq(s.standard, cases_[k].standard);
    ck_assert_int_eq(s.kind, cases_[k].kind);
    ck_assert_int_eq(s.index, cases_[k].index);
  }
  /* q of a fused c_attn: the standard name carries the view, the raw
   * spelling does not */
  ck_assert_int_eq(nne_names_resolve_site(
                       nm, "s", "transformer.h.0.attn.c_attn.output", &s, &err),
                   0);
  ck_assert_int_eq(s.view.parts, 0);
  ck_assert_str_eq(s.standard, "");
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_unavailable) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, rc;

  load_builtin();
  /* OPT: no MLP module; its MLP sites live on the layer's fc1/fc2 */
  tree_build(&t, opt_tree, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  rc = nne_names_resolve_module(nm, "module", "layers.1.mlp", &m, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err,
             "layers.1.mlp is unavailable: OPT has no MLP module");
  rc = nne_names_resolve_module(nm, "module", "layers.1.mlp.fc1", &m, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err, "layers.1.mlp is unavailable");
  ck_assert_int_eq(resolve_mod(nm, "layers.1.fc1", &err),
                   tree_find(&t, "model.decoder.layers.1.fc1"));
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.1.mlp_out", &s, &err), 0);
  ck_assert_str_eq(s.canonical, "model.decoder.layers.1.fc2.output");
  rc = nne_names_resolve_site(nm, "s", "layers.1.mlp.output", &s, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err, "no MLP module");
  ck_assert_uint_eq(nne_names_warning_count(nm), 0);
  nne_names_free(nm);
  tree_free(&t);

  /* NeoX: parallel residual */
  tree_build(&t, neox_tree, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  rc = nne_names_resolve_site(nm, "s", "blocks.1.hook_resid_mid", &s, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err,
             "layers.1.resid_mid is unavailable: parallel residual");
  nne_names_free(nm);
  tree_free(&t);

  /* a map path missing from the model (an HF rename): unavailable with the
   * reason, one warning for all layers, not an error */
  {
    static tmod_t renamed[64];
    size_t k, o = 0;
    for (k = 0; gpt2_tree[k].path != NULL; k++)
      if (strcmp(gpt2_tree[k].path, "transformer.h.{i}.ln_2") != 0)
        renamed[o++] = gpt2_tree[k];
    renamed[o].path = NULL;
    tree_build(&t, renamed, 4, NULL);
  }
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  rc = nne_names_resolve_module(nm, "module", "layers.2.ln_mlp", &m, &err);
  ASSERT_ERR(
      rc, NNE_ESTATE, err,
      "the gpt2 map says transformer.h.2.ln_2, which is not in this model");
  rc = nne_names_resolve_site(nm, "s", "layers.2.resid_mid", &s, &err);
  ASSERT_ERR(rc, NNE_ESTATE, err, "layers.2.ln_mlp is unavailable");
  ck_assert(has_warning(nm, "layers.{i}.ln_mlp: the gpt2 map says "
                            "transformer.h.{i}.ln_2, which is not in this "
                            "model (layers 0..3)"));
  ck_assert_uint_eq(nne_names_warning_count(nm), 1);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* No family: raw paths and user aliases only. */
START_TEST(test_no_family) {
  static const tmod_t odd[] = {{"", "MyNet"},
                               {"enc", "Encoder"},
                               {"enc.blocks", "ModuleList"},
                               {"enc.blocks.{i}", "Block"},
                               {"enc.blocks.{i}.ff", "Linear"},
                               {"head", "Linear"},
                               {NULL, NULL}};
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m;
  const char *const to[] = {"ffn{i}"};
  nne_names_rename_t r = {"enc.blocks.{i}.ff", to, 1};

  load_builtin();
  tree_build(&t, odd, 2, NULL);
  nm = build(&t, NULL, &r, 1);
  ck_assert_str_eq(nne_names_family(nm), "");
  ck_assert_int_eq(nne_names_layer_count(nm), 0);
  ck_assert_uint_eq(nne_names_site_count(nm), 0);
  ck_assert_uint_eq(nne_names_check_count(nm), 0);
  ck_assert(has_warning(nm, "no family map matches this model"));
  ck_assert_int_eq(resolve_mod(nm, "enc.blocks.1.ff", &err),
                   tree_find(&t, "enc.blocks.1.ff"));
  ck_assert_int_eq(resolve_mod(nm, "ffn1", &err),
                   tree_find(&t, "enc.blocks.1.ff"));
  ck_assert_int_eq(nne_names_resolve_site(nm, "s", "ffn0.output", &s, &err), 0);
  ck_assert_str_eq(s.canonical, "enc.blocks.0.ff.output");
  ASSERT_ERR(nne_names_resolve_module(nm, "module", "layers.0.mlp", &m, &err),
             NNE_ESTATE, err, "no family map matched");
  ASSERT_ERR(
      nne_names_resolve_site(nm, "site", "blocks.0.hook_resid_pre", &s, &err),
      NNE_ESTATE, err, "no family map matched");
  nne_names_free(nm);
  /* the same tree forced to a family it is not: names unavailable, warned */
  nm = build(&t, "llama", NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "llama");
  ck_assert(has_warning(nm, "layers: the llama map says model.layers"));
  ASSERT_ERR(nne_names_resolve_module(nm, "module", "lm_head", &m, &err),
             NNE_ESTATE, err, "which is not in this model");
  nne_names_free(nm);
  tree_free(&t);
  /* an unknown forced family */
  tree_build(&t, gpt2_tree, 1, NULL);
  ASSERT_ERR(nne_names_build(g_set, "gpt5", t.mods, t.n, NULL, 0, &nm, &err),
             NNE_EINVAL, err,
             "'gpt5' is not a known family (known: bloom, gemma, gpt2");
  tree_free(&t);
  unload();
}
END_TEST

/* A class of one family with the structure of none: the class decides,
 * with a warning, and the missing names are unavailable. */
START_TEST(test_class_without_structure) {
  static const tmod_t odd[] = {{"", "GPT2LMHeadModel"},
                               {"transformer", "GPT2Model"},
                               {"transformer.wte", "Embedding"},
                               {"transformer.blocks", "ModuleList"},
                               {"transformer.blocks.{i}", "GPT2Block"},
                               {"lm_head", "Linear"},
                               {NULL, NULL}};
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;

  load_builtin();
  tree_build(&t, odd, 2, NULL);
  nm = build(&t, NULL, NULL, 0);
  ck_assert_str_eq(nne_names_family(nm), "gpt2");
  ck_assert(has_warning(nm, "class GPT2LMHeadModel is of the family gpt2, but "
                            "the module structure does not match"));
  ck_assert_int_eq(resolve_mod(nm, "lm_head", &err), tree_find(&t, "lm_head"));
  ck_assert_int_eq(nne_names_layer_count(nm), 0);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_renames) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, attn1;
  const char *const to_exact[] = {"first_attn"};
  const char *const to_pat[] = {"attn{i}", "a{i}"};
  const char *const to_raw[] = {"ff{i}"};
  const char *const to_bad[] = {"x{i}"};
  const char *const to_clash[] = {"ln_final"};
  const char *const to_noi[] = {"head{i}"};
  const char *const to_invalid[] = {"bad name", "unembed.output", "unembed"};
  nne_names_rename_t r[] = {
      {"transformer.h.0.attn", to_exact, 1},
      {"layers.{i}.self_attn", to_pat, 2},
      {"transformer.h.{i}.mlp", to_raw, 1},
      {"transformer.h.{i}.atn", to_bad, 1},
      {"lm_head", to_clash, 1},
      {"lm_head", to_noi, 1},
      {"lm_head", to_invalid, 3},
  };

  load_builtin();
  tree_build(&t, gpt2_tree, 3, NULL);
  nm = build(&t, NULL, r, sizeof r / sizeof r[0]);
  attn1 = tree_find(&t, "transformer.h.1.attn");
  ck_assert_int_eq(resolve_mod(nm, "first_attn", &err),
                   tree_find(&t, "transformer.h.0.attn"));
  ck_assert_int_eq(resolve_mod(nm, "attn1", &err), attn1);
  ck_assert_int_eq(resolve_mod(nm, "a1", &err), attn1);
  ck_assert_int_eq(resolve_mod(nm, "layers.1.self_attn", &err), attn1);
  ck_assert_int_eq(resolve_mod(nm, "ff2", &err),
                   tree_find(&t, "transformer.h.2.mlp"));
  ck_assert_int_eq(resolve_mod(nm, "unembed", &err), tree_find(&t, "lm_head"));
  /* an alias followed by a raw sub-path */
  ck_assert_int_eq(resolve_mod(nm, "attn1.c_attn", &err),
                   tree_find(&t, "transformer.h.1.attn.c_attn"));
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "a2:aten::softmax#0", &s, &err), 0);
  ck_assert_str_eq(s.canonical, "transformer.h.2.attn:aten::softmax#0");
  ck_assert_str_eq(s.standard, "layers.2.self_attn.pattern");
  /* aliases of a module: standard first */
  ck_assert_uint_eq(nne_names_module_alias_count(nm, attn1), 3);
  ck_assert_str_eq(nne_names_module_alias(nm, attn1, 0), "layers.1.self_attn");
  ck_assert(nne_names_module_alias_is_standard(nm, attn1, 0));
  ck_assert_str_eq(nne_names_module_alias(nm, attn1, 1), "attn1");
  ck_assert(!nne_names_module_alias_is_standard(nm, attn1, 1));
  ck_assert_str_eq(nne_names_module_alias(nm, attn1, 2), "a1");
  ck_assert_ptr_null(nne_names_module_alias(nm, attn1, 3));
  ck_assert_uint_eq(nne_names_module_alias_count(nm, -1), 0);
  /* warnings name the entries */
  ck_assert(
      has_warning(nm, "names: 'transformer.h.{i}.atn' matches no module"));
  ck_assert(has_warning(nm, "transformer.h.0.attn")); /* the suggestion */
  ck_assert(has_warning(nm, "alias 'ln_final' for 'lm_head' is already the "
                            "name of transformer.ln_f"));
  ck_assert(has_warning(nm, "alias 'head{i}' for 'lm_head' uses {i}"));
  ck_assert(
      has_warning(nm, "alias 'bad name' for 'lm_head' is not a valid name"));
  ck_assert(has_warning(
      nm, "alias 'unembed.output' for 'lm_head' is not a valid name"));
  ck_assert_uint_eq(nne_names_warning_count(nm), 5);
  ck_assert_int_eq(nne_names_resolve_module(nm, "m", "x0", &m, &err),
                   NNE_ENOTFOUND);
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_mark_unavailable) {
  tree_t t;
  nne_names_t *nm;
  nne_err_t err;
  nne_names_site_t s;
  int m, mlp1 = -1;
  size_t i, nw;

  load_builtin();
  tree_build(&t, gpt2_tree, 4, NULL);
  nm = build(&t, NULL, NULL, 0);
  nw = nne_names_warning_count(nm);
  ck_assert_uint_eq(nw, 0);

  /* a site, in several layers: one warning */
  nne_names_mark_unavailable(nm, "layers.1.self_attn.pattern",
                             "the module's own code has no aten::softmax");
  nne_names_mark_unavailable(nm, "blocks.2.attn.hook_pattern",
                             "the module's own code has no aten::softmax");
  nne_names_mark_unavailable(nm, "layers.3.self_attn.pattern",
                             "the module's own code has no aten::softmax");
  ASSERT_ERR(
      nne_names_resolve_site(nm, "s", "layers.2.self_attn.pattern", &s, &err),
      NNE_ESTATE, err, "no aten::softmax");
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.0.self_attn.pattern", &s, &err),
      0);
  ck_assert_uint_eq(nne_names_warning_count(nm), 1);
  ck_assert_str_eq(nne_names_warning(nm, 0),
                   "layers.{i}.self_attn.pattern is unavailable in 3 layers "
                   "(1..3): the module's own code has no aten::softmax");
  /* the raw spelling still works, without a standard name */
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "transformer.h.2.attn:aten::softmax#0",
                             &s, &err),
      0);
  ck_assert_str_eq(s.standard, "");
  for (i = 0; i < nne_names_site_count(nm); i++) {
    const nne_names_site_entry_t *e = nne_names_site(nm, i);
    if (strcmp(e->name, "layers.2.self_attn.pattern") == 0)
      ck_assert(!e->available && strstr(e->reason, "aten::softmax"));
  }

  /* a standard module: its name goes, its raw path stays, the sites that
   * are its boundaries go with it */
  nne_names_mark_unavailable(nm, "layers.1.mlp", "output 0 is [2, 5]");
  ASSERT_ERR(nne_names_resolve_module(nm, "module", "layers.1.mlp", &m, &err),
             NNE_ESTATE, err,
             "layers.1.mlp is unavailable: output 0 is [2, 5]");
  mlp1 = resolve_mod(nm, "transformer.h.1.mlp", &err);
  ck_assert_int_eq(mlp1, tree_find(&t, "transformer.h.1.mlp"));
  ck_assert_uint_eq(nne_names_module_alias_count(nm, mlp1), 0);
  ASSERT_ERR(nne_names_resolve_site(nm, "s", "layers.1.mlp_out", &s, &err),
             NNE_ESTATE, err, "layers.1.mlp is unavailable");
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.1.mlp.pre", &s, &err), 0);
  ck_assert_int_eq(
      nne_names_resolve_site(nm, "s", "layers.2.mlp_out", &s, &err), 0);
  ck_assert(has_warning(nm, "layers.1.mlp is unavailable: output 0 is [2, 5]"));
  nw = nne_names_warning_count(nm);
  /* again, and unknown names: nothing */
  nne_names_mark_unavailable(nm, "layers.1.mlp", "again");
  nne_names_mark_unavailable(nm, "layers.1.nothing", "x");
  nne_names_mark_unavailable(nm, "transformer.h.1.mlp", "a raw path");
  ck_assert_uint_eq(nne_names_warning_count(nm), nw);
  ck_assert_int_eq(resolve_mod(nm, "transformer.h.1.mlp", &err), mlp1);
  /* lm_head: a standard name spelled like its raw path */
  nne_names_mark_unavailable(nm, "lm_head",
                             "output is not [batch, seq, vocab]");
  ASSERT_ERR(nne_names_resolve_site(nm, "s", "logits", &s, &err), NNE_ESTATE,
             err, "lm_head is unavailable");
  ck_assert_int_eq(resolve_mod(nm, "lm_head", &err), tree_find(&t, "lm_head"));
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

START_TEST(test_bad_tree) {
  nne_names_module_t mods[3] = {{"", "Root", -1}, {"a", "A", 0}, {"a", "A", 0}};
  nne_names_t *nm;
  nne_err_t err;
  load_builtin();
  ASSERT_ERR(nne_names_build(g_set, NULL, mods, 3, NULL, 0, &nm, &err),
             NNE_EINVAL, err, "duplicate path 'a'");
  mods[2].path = "b";
  mods[2].parent = 2;
  ASSERT_ERR(nne_names_build(g_set, NULL, mods, 3, NULL, 0, &nm, &err),
             NNE_EINVAL, err, "pre-order");
  ASSERT_ERR(nne_names_build(g_set, NULL, mods, 0, NULL, 0, &nm, &err),
             NNE_EINVAL, err, "0 modules");
  unload();
}
END_TEST

/* ---- speed ----------------------------------------------------------------
 */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

START_TEST(test_speed_80_layers) {
  tree_t t;
  nne_names_t *nm = NULL;
  nne_err_t err;
  nne_names_site_t s;
  double t0, build_ms, best = 1e9, resolve_us;
  int k, m, rc;
  const char *const to[] = {"attn{i}"};
  nne_names_rename_t r = {"layers.{i}.self_attn", to, 1};
  static const char *const names[] = {
      "layers.57.self_attn",
      "model.layers.57.mlp.down_proj",
      "attn57",
      "layers.57.mlp.gate_proj",
  };
  static const char *const sites[] = {
      "layers.57.self_attn.pattern",
      "blocks.57.hook_resid_post",
      "model.layers.57.mlp.output",
      "layers.57.self_attn:aten::softmax#0.input.0",
  };
  const int n_res = 200000;

  load_builtin();
  tree_build(&t, llama_tree, 80, NULL);
  for (k = 0; k < 20; k++) {
    t0 = now_ms();
    ck_assert_int_eq(
        nne_names_build(g_set, NULL, t.mods, t.n, &r, 1, &nm, &err), 0);
    build_ms = now_ms() - t0;
    if (build_ms < best)
      best = build_ms;
    if (k < 19)
      nne_names_free(nm);
  }
  ck_assert_int_eq(nne_names_layer_count(nm), 80);
  t0 = now_ms();
  for (k = 0; k < n_res; k++) {
    rc = nne_names_resolve_module(nm, "m", names[k & 3], &m, &err);
    rc |= nne_names_resolve_site(nm, "s", sites[k & 3], &s, &err);
    ck_assert(rc == 0);
  }
  resolve_us = (now_ms() - t0) * 1e3 / (2.0 * n_res);
  t0 = now_ms();
  for (k = 0; k < 1000; k++)
    nne_names_resolve_module(nm, "m", "layers.57.mpl", &m, &err);
  fprintf(stderr,
          "names: 80-layer Llama (%zu modules): build %.3f ms (best of 20), "
          "resolve %.3f us (mean of module + site spellings), not-found with "
          "suggestions %.1f us\n",
          t.n, best, resolve_us, (now_ms() - t0));
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
  ck_assert_msg(best < 50, "build took %.3f ms", best);
#else
  ck_assert_msg(best < 5, "build took %.3f ms (budget 5 ms)", best);
#endif
  nne_names_free(nm);
  tree_free(&t);
  unload();
}
END_TEST

/* ---- the repository's fixtures ------------------------------------------- */

START_TEST(test_fixtures) {
  char **list = NULL, msg[512];
  size_t n = 0, i, k;

  if (nne_fixtures_list(&list, &n, msg, sizeof msg) != 0 || n == 0) {
    fprintf(stderr, "test_fixtures: no fixtures (%s); nothing checked\n", msg);
    return;
  }
  load_builtin();
  for (i = 0; i < n; i++) {
    nne_fixture_t *f;
    nne_names_module_t *mods;
    nne_names_t *nm;
    nne_err_t err;
    int forced;

    if (nne_fixture_load(list[i], &f, msg, sizeof msg) != 0) {
      ck_abort_msg("%s: %s", list[i], msg);
    }
    if (strcmp(f->class_name, "GPT2LMHeadModel") != 0 &&
        strcmp(f->class_name, "LlamaForCausalLM") != 0 &&
        strcmp(f->class_name, "GPTNeoXForCausalLM") != 0) {
      nne_fixture_free(f);
      continue; /* a benchmark model or a future family */
    }
    mods = calloc(f->n_modules, sizeof *mods);
    for (k = 0; k < f->n_modules; k++) {
      const char *path = f->modules[k].path, *dot = strrchr(path, '.');
      size_t pl = dot ? (size_t)(dot - path) : 0, j;
      mods[k].path = path;
      mods[k].class_name = f->modules[k].class_name;
      mods[k].parent = -1;
      for (j = 0; k > 0 && j < k; j++)
        if (strlen(f->modules[j].path) == pl &&
            strncmp(f->modules[j].path, path, pl) == 0)
          mods[k].parent = (int)j;
    }
    for (forced = 0; forced < 2; forced++) {
      size_t c, unavailable = 0;
      int m;
      ck_assert_msg(nne_names_build(g_set, forced ? f->family : NULL, mods,
                                    f->n_modules, NULL, 0, &nm, &err) == 0,
                    "%s: %s", f->name, err.msg);
      ck_assert_msg(strcmp(nne_names_family(nm), f->family) == 0,
                    "%s: detected '%s', model.json says '%s'", f->name,
                    nne_names_family(nm), f->family);
      if (nne_names_warning_count(nm) != 0)
        dump_warnings(nm);
      ck_assert_uint_eq(nne_names_warning_count(nm), 0);
      ck_assert_int_gt(nne_names_layer_count(nm), 0);
      for (c = 0; c < N_STD_MODS; c++) {
        int l, nl = strstr(std_mod_names[c], "{i}") ? nne_names_layer_count(nm)
                                                    : 1;
        for (l = 0; l < nl; l++) {
          char *x = expand_i(std_mod_names[c], l);
          int rc = nne_names_resolve_module(nm, "m", x, &m, &err);
          if (rc != 0) {
            ck_assert_msg(strcmp(x, "embed_positions") == 0 && rc == NNE_ESTATE,
                          "%s: %s: %s", f->name, x, err.msg);
            unavailable++;
          }
          free(x);
        }
      }
      ck_assert_uint_eq(unavailable, strcmp(f->family, "gpt2") == 0 ? 0 : 1);
      for (c = 0; c < nne_names_site_count(nm); c++) {
        const nne_names_site_entry_t *e = nne_names_site(nm, c);
        ck_assert_msg(e->available || strstr(e->name, "resid_mid"),
                      "%s: %s: %s", f->name, e->name, e->reason);
      }
      nne_names_free(nm);
    }
    free(mods);
    nne_fixture_free(f);
  }
  nne_fixtures_list_free(list, n);
  unload();
}
END_TEST

/* ---- suite ----------------------------------------------------------------
 */

static Suite *names_suite(void) {
  Suite *s = suite_create("names");
  TCase *tc = tcase_create("families");
  tcase_add_test(tc, test_builtin_table);
  tcase_add_loop_test(tc, test_family_by_class, 0, (int)N_CASES);
  tcase_add_loop_test(tc, test_family_by_structure, 0, (int)N_CASES);
  tcase_add_loop_test(tc, test_family_forced, 0, (int)N_CASES);
  tcase_add_loop_test(tc, test_family_wrapped, 0, (int)N_CASES);
  tcase_add_test(tc, test_llama_classes);
  tcase_add_test(tc, test_fixtures);
  suite_add_tcase(s, tc);

  tc = tcase_create("maps");
  tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
  tcase_add_test(tc, test_override_dir_sources);
  tcase_add_test(tc, test_map_syntax_error);
  tcase_add_loop_test(
      tc, test_map_semantic_error, 0,
      (int)(sizeof semantic_errors / sizeof semantic_errors[0]));
  tcase_add_test(tc, test_map_override);
  tcase_add_test(tc, test_detection_tie);
  suite_add_tcase(s, tc);

  tc = tcase_create("resolve");
  tcase_add_test(tc, test_unknown_names_suggest);
  tcase_add_test(tc, test_site_grammar);
  tcase_add_test(tc, test_unavailable);
  tcase_add_test(tc, test_no_family);
  tcase_add_test(tc, test_class_without_structure);
  tcase_add_test(tc, test_renames);
  tcase_add_test(tc, test_mark_unavailable);
  tcase_add_test(tc, test_bad_tree);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_speed_80_layers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(names_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
