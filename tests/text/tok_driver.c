/* tok_driver.c — runs daemon/text's tokenizer over a corpus for the
 * conformance test (conformance.js) and the benchmark (bench/).
 *
 *   tok_driver TOKENIZER.json CORPUS.jsonl OUT.jsonl
 *     each corpus line is {"s": text} or {"hex": bytes}; each output line
 *     is {"ids": [...], "ids0": [...], "text": ..., "skip": ..., "offs":
 *     [[start, end], ...], "types": [...], "seq": [...]} (ids with and without the
 *     template; the ids decoded with and without special tokens; the byte
 *     offsets and type ids of the first) or {"error": message}. A line
 *     {"ids": [...]} of the input is decoded only: {"text": ..., "skip":
 *     ...}; a line {"s": text, "p": pair} is encoded as a pair: {"ids",
 *     "ids0", "types", "offs", "seq"} (seq: 0 text, 1 pair, 255 template).
 *   tok_driver --bench TOKENIZER.json CORPUS.jsonl SECONDS [offsets]
 *     encodes the corpus's valid strings over and over for about SECONDS
 *     on one thread and prints one JSON line: load time, memory, MB/s
 *     ("offsets": with each token's offsets, nne_tokenizer_encode_pair).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"

typedef struct item {
  char *s;
  size_t n;
  char *p; /* a pair's second text, or NULL */
  size_t pn;
  int32_t *ids; /* a line {"ids": [...]}: ids to decode, not text */
  size_t nids;
  int is_ids;
} item_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long rss_kb(void) {
  long kb = -1;
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6))
      kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : -1;
}

static item_t *read_corpus(const char *path, size_t *count) {
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    exit(2);
  }
  item_t *v = NULL;
  size_t n = 0, cap = 0;
  json_error_t je;
  json_t *j;
  while ((j = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je))) {
    if (n == cap) {
      cap = cap ? 2 * cap : 1024;
      v = realloc(v, cap * sizeof *v);
    }
    json_t *s = json_object_get(j, "s"), *h = json_object_get(j, "hex");
    json_t *ids = json_object_get(j, "ids"), *p = json_object_get(j, "p");
    memset(&v[n], 0, sizeof v[n]);
    if (p) {
      v[n].pn = json_string_length(p);
      v[n].p = malloc(v[n].pn + 1);
      memcpy(v[n].p, json_string_value(p), v[n].pn);
    }
    if (ids) {
      v[n].is_ids = 1;
      v[n].nids = json_array_size(ids);
      v[n].ids = malloc((v[n].nids + 1) * sizeof *v[n].ids);
      for (size_t i = 0; i < v[n].nids; i++)
        v[n].ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
      v[n].s = malloc(1);
    } else if (s) {
      v[n].n = json_string_length(s);
      v[n].s = malloc(v[n].n + 1);
      memcpy(v[n].s, json_string_value(s), v[n].n);
    } else {
      const char *x = json_string_value(h);
      v[n].n = strlen(x) / 2;
      v[n].s = malloc(v[n].n + 1);
      for (size_t i = 0; i < v[n].n; i++)
        v[n].s[i] = (char)(hexval(x[2 * i]) * 16 + hexval(x[2 * i + 1]));
    }
    n++;
    json_decref(j);
  }
  fclose(f);
  *count = n;
  return v;
}

static json_t *ids_json(const int32_t *ids, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_integer(ids[i]));
  return a;
}

/* The fields of an encoding with offsets: "offs", "types", "seq"; and whether its ids are ids[0..n) (the encode without offsets
 * must give the same). */
static int enc_json(json_t *o, const nne_tokenizer_encoding_t *e,
                    const int32_t *ids, size_t n) {
  json_t *offs = json_array(), *types = json_array(), *seq = json_array();
  for (size_t i = 0; i < e->n; i++) {
    json_array_append_new(offs, json_pack("[I,I]", (json_int_t)e->offsets[2 * i],
                                          (json_int_t)e->offsets[2 * i + 1]));
    json_array_append_new(types, json_integer(e->type_ids[i]));
    json_array_append_new(seq, json_integer(e->seq[i]));
  }
  json_object_set_new(o, "offs", offs);
  json_object_set_new(o, "types", types);
  json_object_set_new(o, "seq", seq);
  return ids == NULL ||
         (e->n == n && (n == 0 || !memcmp(e->ids, ids, n * sizeof *ids)));
}

/* A pair line: both encodings, with offsets. */
static void encode_pair_line(const nne_tokenizer_t *tok, const item_t *it,
                             json_t *o) {
  nne_tokenizer_encoding_t e, e0;
  nne_err_t err;
  if (nne_tokenizer_encode_pair(tok, it->s, it->n, it->p, it->pn,
                                NNE_TOK_ADD_SPECIAL | NNE_TOK_OFFSETS, &e,
                                &err) != 0) {
    json_object_set_new(o, "error", json_string(err.msg));
    return;
  }
  if (nne_tokenizer_encode_pair(tok, it->s, it->n, it->p, it->pn, 0, &e0,
                                &err) != 0) {
    json_object_set_new(o, "error", json_string(err.msg));
    nne_tokenizer_encoding_free(&e);
    return;
  }
  json_object_set_new(o, "ids", ids_json(e.ids, e.n));
  json_object_set_new(o, "ids0", ids_json(e0.ids, e0.n));
  json_t *t0 = json_array();
  for (size_t i = 0; i < e0.n; i++)
    json_array_append_new(t0, json_integer(e0.type_ids[i]));
  json_object_set_new(o, "types0", t0);
  enc_json(o, &e, NULL, 0);
  nne_tokenizer_encoding_free(&e);
  nne_tokenizer_encoding_free(&e0);
}

static int bench(const char *tokpath, const char *corpus, double seconds,
                 int offsets) {
  long rss0 = rss_kb();
  double t0 = now();
  nne_err_t err;
  nne_tokenizer_t *tok;
  if (nne_tokenizer_load_file(tokpath, &tok, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  double load = now() - t0;
  long rss1 = rss_kb();
  size_t n;
  item_t *v = read_corpus(corpus, &n);
  size_t bytes = 0, tokens = 0, rounds = 0;
  t0 = now();
  double el;
  do {
    for (size_t i = 0; i < n; i++) {
      int32_t *ids;
      size_t k;
      nne_tokenizer_encoding_t e;
      if (v[i].is_ids)
        continue;
      if (offsets) {
        if (nne_tokenizer_encode_pair(tok, v[i].s, v[i].n, NULL, 0,
                                      NNE_TOK_ADD_SPECIAL | NNE_TOK_OFFSETS,
                                      &e, &err) != 0)
          continue;
        k = e.n;
        nne_tokenizer_encoding_free(&e);
      } else if (nne_tokenizer_encode(tok, v[i].s, v[i].n, NNE_TOK_ADD_SPECIAL,
                                      &ids, &k, &err) != 0) {
        continue; /* the invalid UTF-8 lines: not part of the figure */
      } else {
        free(ids);
      }
      bytes += v[i].n;
      tokens += k;
    }
    rounds++;
    el = now() - t0;
  } while (el < seconds);
  printf(
      "{\"impl\":\"nnedit\",\"load_s\":%.3f,\"load_rss_mb\":%.1f,\"bytes\":%zu,"
      "\"tokens\":%zu,\"rounds\":%zu,\"seconds\":%.3f,\"mb_per_s\":%.2f}\n",
      load, (double)(rss1 - rss0) / 1024.0, bytes, tokens, rounds, el,
      (double)bytes / el / 1e6);
  for (size_t i = 0; i < n; i++) {
    free(v[i].s);
    free(v[i].ids);
  }
  free(v);
  nne_tokenizer_free(tok);
  return 0;
}

int main(int argc, char **argv) {
  if ((argc == 5 || argc == 6) && !strcmp(argv[1], "--bench"))
    return bench(argv[2], argv[3], atof(argv[4]),
                 argc == 6 && !strcmp(argv[5], "offsets"));
  if (argc != 4) {
    fprintf(stderr,
            "usage: %s TOKENIZER.json CORPUS.jsonl OUT.jsonl\n"
            "       %s --bench TOKENIZER.json CORPUS.jsonl SECONDS [offsets]\n",
            argv[0], argv[0]);
    return 2;
  }
  nne_err_t err;
  nne_tokenizer_t *tok;
  if (nne_tokenizer_load_file(argv[1], &tok, &err) != 0) {
    fprintf(stderr, "load: %s\n", err.msg);
    return 1;
  }
  size_t n;
  item_t *v = read_corpus(argv[2], &n);
  FILE *out = fopen(argv[3], "w");
  if (!out) {
    perror(argv[3]);
    return 2;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_object();
    int32_t *ids = NULL, *ids0 = NULL;
    size_t k = 0, k0 = 0;
    char *text = NULL, *skip = NULL;
    size_t tl, sl;
    nne_tokenizer_encoding_t enc;
    if (v[i].p) {
      encode_pair_line(tok, &v[i], o);
    } else if (v[i].is_ids) { /* decode only */
      if (nne_tokenizer_decode(tok, v[i].ids, v[i].nids, 0, &text, &tl, &err) !=
              0 ||
          nne_tokenizer_decode(tok, v[i].ids, v[i].nids, NNE_TOK_SKIP_SPECIAL,
                               &skip, &sl, &err) != 0) {
        json_object_set_new(o, "error", json_string(err.msg));
      } else {
        json_object_set_new(o, "text", json_stringn(text, tl));
        json_object_set_new(o, "skip", json_stringn(skip, sl));
      }
    } else if (nne_tokenizer_encode(tok, v[i].s, v[i].n, NNE_TOK_ADD_SPECIAL,
                                    &ids, &k, &err) != 0 ||
               nne_tokenizer_encode(tok, v[i].s, v[i].n, 0, &ids0, &k0, &err) !=
                   0 ||
               nne_tokenizer_decode(tok, ids, k, 0, &text, &tl, &err) != 0 ||
               nne_tokenizer_decode(tok, ids, k, NNE_TOK_SKIP_SPECIAL, &skip,
                                    &sl, &err) != 0) {
      json_object_set_new(o, "error", json_string(err.msg));
    } else if (nne_tokenizer_encode_pair(tok, v[i].s, v[i].n, NULL, 0,
                                         NNE_TOK_ADD_SPECIAL | NNE_TOK_OFFSETS,
                                         &enc, &err) != 0) {
      json_object_set_new(o, "error", json_string(err.msg));
    } else {
      if (!enc_json(o, &enc, ids, k))
        json_object_set_new(o, "error",
                            json_string("the ids with offsets differ"));
      nne_tokenizer_encoding_free(&enc);
      json_object_set_new(o, "ids", ids_json(ids, k));
      json_object_set_new(o, "ids0", ids_json(ids0, k0));
      json_object_set_new(o, "text", json_stringn(text, tl));
      json_object_set_new(o, "skip", json_stringn(skip, sl));
    }
    json_dumpf(o, out, JSON_COMPACT);
    fputc('\n', out);
    json_decref(o);
    free(ids);
    free(ids0);
    free(text);
    free(skip);
    free(v[i].s);
    free(v[i].p);
    free(v[i].ids);
  }
  fclose(out);
  free(v);
  nne_tokenizer_free(tok);
  return 0;
}
