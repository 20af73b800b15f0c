/* names_test.h — what the tests of daemon/names/ share: synthetic module
 * trees written down from the Hugging Face layouts (NAMES.md), the expected
 * names of every family, and small helpers. Header only (static inline
 * functions, static data), included by each tests/unit/daemon/names/test_*.c.
 *
 * Every family map is checked against a synthetic module tree, with the
 * expected raw path of every standard module and the expected canonical
 * form of every standard site stated here independently of the maps: a typo
 * in a map fails. Most tests load the builtin maps (the table compiled into
 * nneditd_core from the maps in daemon/names/); the override tests load
 * $NNE_SOURCE_DIR/daemon/names, or edited copies of its maps, as an override
 * directory.
 */
#ifndef NNE_TEST_NAMES_H
#define NNE_TEST_NAMES_H

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "names/names.h"

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

static inline int cmp_path(const char *a, const char *b) {
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

static inline char *expand_i(const char *t, int i) {
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
static inline int cmp_idx(const void *a, const void *b) {
  return cmp_path(g_sort_paths[*(const size_t *)a],
                  g_sort_paths[*(const size_t *)b]);
}

/* Builds a pre-order tree from a spec; root_class replaces the class of ""
 * when not NULL. */
static inline void tree_build(tree_t *t, const tmod_t *spec, int n_layers,
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

static inline void tree_free(tree_t *t) {
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

static inline int tree_find(const tree_t *t, const char *path) {
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

static inline void load_builtin(void) {
  nne_err_t err;
  int rc = nne_family_set_load(NULL, &g_set, &err);
  ck_assert_msg(rc == 0, "builtin maps: %s", err.msg);
}

static inline void unload(void) {
  nne_family_set_free(g_set);
  g_set = NULL;
}

static inline nne_names_t *build(const tree_t *t, const char *forced,
                                 const nne_names_rename_t *renames,
                                 size_t n_renames) {
  nne_names_t *nm = NULL;
  nne_err_t err;
  int rc = nne_names_build(g_set, forced, t->mods, t->n, renames, n_renames,
                           &nm, &err);
  ck_assert_msg(rc == 0, "build: %s", err.msg);
  return nm;
}

static inline const char *src_dir(void) {
  const char *d = getenv("NNE_SOURCE_DIR");
  ck_assert_msg(d != NULL && d[0] != '\0',
                "NNE_SOURCE_DIR is not set (run through ctest)");
  return d;
}

static inline bool has_warning(const nne_names_t *nm, const char *needle) {
  size_t i;
  for (i = 0; i < nne_names_warning_count(nm); i++)
    if (strstr(nne_names_warning(nm, i), needle) != NULL)
      return true;
  return false;
}

static inline void dump_warnings(const nne_names_t *nm) {
  size_t i;
  for (i = 0; i < nne_names_warning_count(nm); i++)
    fprintf(stderr, "  warning: %s\n", nne_names_warning(nm, i));
}

static inline int resolve_mod(const nne_names_t *nm, const char *name,
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

static inline bool has_alias(const nne_names_t *nm, int module,
                             const char *name, bool standard) {
  size_t k;
  for (k = 0; k < nne_names_module_alias_count(nm, module); k++)
    if (strcmp(nne_names_module_alias(nm, module, k), name) == 0)
      return nne_names_module_alias_is_standard(nm, module, k) == standard;
  return false;
}

static inline char *read_text(const char *path, size_t *len) {
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

/* ---- temporary map directories ------------------------------------------ */

static char tmpdir[64];

static inline int rm_one(const char *path, const struct stat *st, int flag,
                         struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static inline void tmp_setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/nne_test_names_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline void tmp_teardown(void) {
  nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void write_map(const char *file, const char *text) {
  char path[PATH_MAX];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", tmpdir, file);
  f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  fputs(text, f);
  fclose(f);
}

/* text with `from` replaced by `to` (once); text is freed. */
static inline char *text_edit(char *text, const char *from, const char *to) {
  char *p = strstr(text, from), *out;
  ck_assert_msg(p != NULL, "no '%s' to edit", from);
  out = malloc(strlen(text) + strlen(to) + 1);
  memcpy(out, text, (size_t)(p - text));
  strcpy(out + (p - text), to);
  strcat(out, p + strlen(from));
  free(text);
  return out;
}

static inline char *gpt2_text(void) {
  char path[PATH_MAX];
  size_t len;
  snprintf(path, sizeof path, "%s/daemon/names/gpt2.json", src_dir());
  return read_text(path, &len);
}

/* The gpt2 source map with `from` replaced by `to` (once). */
static inline char *gpt2_edit(const char *from, const char *to) {
  return text_edit(gpt2_text(), from, to);
}

/* The line of the first `needle` in the gpt2 source map. */
static inline int gpt2_line(const char *needle) {
  char *text = gpt2_text(), *p = strstr(text, needle), *q;
  int line = 1;
  ck_assert_ptr_nonnull(p);
  for (q = text; q < p; q++)
    line += *q == '\n';
  free(text);
  return line;
}

static inline int load_tmp(nne_family_set_t **set, nne_err_t *err) {
  return nne_family_set_load(tmpdir, set, err);
}

#endif /* NNE_TEST_NAMES_H */
