/* post.c — the post-processors: what the reference does to a text's tokens
 * (or a pair's) after the model: the template's special tokens around and
 * between the sequences, their type ids, and the offsets' trimming.
 *
 * Every post-processor is read into steps run in order: a template (from
 * TemplateProcessing, RobertaProcessing or BertProcessing) merges the one or
 * two sequences into one, placing the special tokens (offsets (0, 0)) and
 * setting the type ids; a trim (ByteLevel's or RobertaProcessing's
 * trim_offsets) moves each token's offsets inside its leading and trailing
 * spaces. ByteLevel otherwise changes nothing, so it leaves no step when it
 * does not trim. Without a post-processor the sequences are put one after
 * the other with type ids 0 and 1, as in the reference.
 */
#include <stdlib.h>
#include <string.h>

#include "base/vec.h"
#include "text/internal.h"

enum { ITEM_A, ITEM_B, ITEM_SPECIAL };

typedef struct item {
  int kind;
  uint32_t type_id;
  int32_t *ids; /* ITEM_SPECIAL: its ids */
  size_t nids;
} item_t;

typedef struct step {
  bool trim;         /* else a template */
  bool prefix_space; /* trim: the first token's one space was added */
  item_t *single, *pair;
  size_t nsingle, npair;
  bool has_pair; /* a pair form, possibly empty ("pair": []) */
} step_t;

struct nne__post {
  step_t *steps;
  size_t n, cap;
};

static void items_free(item_t *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(v[i].ids);
  free(v);
}

void nne__post_free(nne__post_t *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++) {
    items_free(p->steps[i].single, p->steps[i].nsingle);
    items_free(p->steps[i].pair, p->steps[i].npair);
  }
  free(p->steps);
  free(p);
}

static step_t *step_new(nne__post_t *p) {
  if (p->n == p->cap && NNE_VEC_GROW(&p->steps, &p->cap, p->n + 1) != 0)
    return NULL;
  step_t *s = &p->steps[p->n++];
  memset(s, 0, sizeof *s);
  return s;
}

/* ---- loading ------------------------------------------------------------ */

/* Appends an item to a template being read. */
static int item_add(item_t **v, size_t *n, int kind, uint32_t type_id,
                    const int32_t *ids, size_t nids) {
  item_t *nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv)
    return NNE_ENOMEM;
  *v = nv;
  item_t *it = &nv[(*n)++];
  *it = (item_t){kind, type_id, NULL, nids};
  if (nids) {
    if (!(it->ids = malloc(nids * sizeof *ids)))
      return NNE_ENOMEM;
    memcpy(it->ids, ids, nids * sizeof *ids);
  }
  return 0;
}

static int pair_id(json_t *o, const char *key, int32_t *id, nne__path_t *path,
                   nne_err_t *err) {
  json_t *v = json_object_get(o, key);
  if (!json_is_array(v) || json_array_size(v) != 2 ||
      !json_is_integer(json_array_get(v, 1)))
    return nne_err_set(err, NNE_EINVAL, "%s.%s: must be [token, id]", path->s,
                       key);
  *id = (int32_t)json_integer_value(json_array_get(v, 1));
  return 0;
}

/* A template's "type_id" (0 when absent, as in the reference). */
static int type_id_of(json_t *o, uint32_t *out, nne__path_t *path,
                      nne_err_t *err) {
  json_t *v = json_object_get(o, "type_id");
  if (!v || json_is_null(v)) {
    *out = 0;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) > 255)
    return nne_err_set(err, NNE_EINVAL, "%s.type_id: must be in [0, 255]",
                       path->s);
  *out = (uint32_t)json_integer_value(v);
  return 0;
}

/* One of TemplateProcessing's templates (key "single" or "pair"): each
 * sequence it names exactly once (A; A and B for "pair"). */
static int load_template(json_t *j, const char *key, item_t **v, size_t *n,
                         nne__path_t *path, nne_err_t *err) {
  json_t *arr = json_object_get(j, key), *specials;
  bool pair = !strcmp(key, "pair");
  int seen[2] = {0, 0}, rc;
  if (pair && (!arr || json_is_null(arr)))
    return 0; /* no pair template: encoding a pair is refused */
  if (!json_is_array(arr))
    return nne_err_set(err, NNE_EINVAL, "%s.%s: must be an array", path->s,
                       key);
  specials = json_object_get(j, "special_tokens");
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *it = json_array_get(arr, i), *st, *seq;
    uint32_t type_id;
    size_t mark = nne__path_push(path, ".%s[%zu]", key, i);
    if ((seq = json_object_get(it, "Sequence"))) {
      const char *sid = json_string_value(json_object_get(seq, "id"));
      int which = sid && !strcmp(sid, "A") ? 0 : sid && !strcmp(sid, "B") ? 1
                                                                          : -1;
      if (which < 0 || (which == 1 && !pair) || seen[which]++)
        return nne_err_set(err, NNE_EUNIMPL, "%s.Sequence: %s", path->s,
                           pair ? "sequences \"A\" and \"B\", once each, in "
                                  "\"pair\""
                                : "only one sequence \"A\" is supported in "
                                  "\"single\"");
      if ((rc = type_id_of(seq, &type_id, path, err)) ||
          (rc = item_add(v, n, which ? ITEM_B : ITEM_A, type_id, NULL, 0)))
        return rc;
    } else if ((st = json_object_get(it, "SpecialToken"))) {
      const char *name = json_string_value(json_object_get(st, "id"));
      json_t *ids =
          json_object_get(json_object_get(specials, name ? name : ""), "ids");
      int32_t buf[64];
      size_t k;
      if (!name || !json_is_array(ids))
        return nne_err_set(err, NNE_EINVAL,
                           "%s.SpecialToken: \"%s\" is not in special_tokens",
                           path->s, name ? name : "(no id)");
      if (json_array_size(ids) > 64)
        return nne_err_set(err, NNE_EINVAL,
                           "special_tokens[\"%s\"].ids: must be up to 64 ids",
                           name);
      for (k = 0; k < json_array_size(ids); k++) {
        json_t *x = json_array_get(ids, k);
        if (!json_is_integer(x))
          return nne_err_set(err, NNE_EINVAL,
                             "special_tokens[\"%s\"].ids: must be ids", name);
        buf[k] = (int32_t)json_integer_value(x);
      }
      if ((rc = type_id_of(st, &type_id, path, err)) ||
          (rc = item_add(v, n, ITEM_SPECIAL, type_id, buf, k)))
        return rc;
    } else
      return nne_err_set(err, NNE_EINVAL,
                         "%s: must be {\"SpecialToken\": ...} or "
                         "{\"Sequence\": ...}",
                         path->s);
    nne__path_pop(path, mark);
  }
  /* A "pair" template without both sequences loads, as in the reference
   * (which then encodes a pair to the template's special tokens alone:
   * "pair": [] gives no ids at all). */
  if (!pair && !seen[0])
    return nne_err_set(err, NNE_EUNIMPL, "%s.%s: must name %s", path->s, key,
                       "sequence \"A\"");
  return 0;
}

/* RobertaProcessing and BertProcessing as templates: <s> A </s> (</s> B
 * </s>), every type id 0 for Roberta; [CLS] A [SEP] (B [SEP]), B's part
 * type 1 for Bert. */
static int load_cls_sep(json_t *j, step_t *s, bool roberta, nne__path_t *path,
                        nne_err_t *err) {
  int32_t cls, sep;
  uint32_t tb = roberta ? 0 : 1;
  int rc;
  if ((rc = pair_id(j, "cls", &cls, path, err)) ||
      (rc = pair_id(j, "sep", &sep, path, err)))
    return rc;
  if (item_add(&s->single, &s->nsingle, ITEM_SPECIAL, 0, &cls, 1) ||
      item_add(&s->single, &s->nsingle, ITEM_A, 0, NULL, 0) ||
      item_add(&s->single, &s->nsingle, ITEM_SPECIAL, 0, &sep, 1) ||
      item_add(&s->pair, &s->npair, ITEM_SPECIAL, 0, &cls, 1) ||
      item_add(&s->pair, &s->npair, ITEM_A, 0, NULL, 0) ||
      item_add(&s->pair, &s->npair, ITEM_SPECIAL, 0, &sep, 1) ||
      (roberta && item_add(&s->pair, &s->npair, ITEM_SPECIAL, 0, &sep, 1)) ||
      item_add(&s->pair, &s->npair, ITEM_B, tb, NULL, 0) ||
      item_add(&s->pair, &s->npair, ITEM_SPECIAL, tb, &sep, 1))
    return NNE_ENOMEM;
  return 0;
}

/* A trim step when the processor asks for one (trim_offsets, default
 * true). */
static int load_trim(nne__post_t *p, json_t *j, nne__path_t *path,
                     nne_err_t *err) {
  bool trim, aps;
  int rc;
  if ((rc = nne__json_bool(j, "trim_offsets", true, &trim, path, err)) ||
      (rc = nne__json_bool(j, "add_prefix_space", true, &aps, path, err)))
    return rc;
  if (!trim)
    return 0;
  step_t *s = step_new(p);
  if (!s)
    return NNE_ENOMEM;
  s->trim = true;
  s->prefix_space = aps;
  return 0;
}

static int load_into(nne__post_t *p, json_t *j, nne__path_t *path,
                     nne_err_t *err) {
  const char *type;
  int rc;
  if ((rc = nne__json_type(j, &type, path, err)))
    return rc;
  if (!strcmp(type, "ByteLevel"))
    return load_trim(p, j, path, err);
  if (!strcmp(type, "Sequence")) {
    json_t *arr = json_object_get(j, "processors");
    if (!json_is_array(arr))
      return nne_err_set(err, NNE_EINVAL, "%s.processors: must be an array",
                         path->s);
    for (size_t i = 0; i < json_array_size(arr); i++) {
      size_t mark = nne__path_push(path, ".processors[%zu]", i);
      if ((rc = load_into(p, json_array_get(arr, i), path, err)))
        return rc;
      nne__path_pop(path, mark);
    }
    return 0;
  }
  bool roberta = !strcmp(type, "RobertaProcessing");
  if (roberta && (rc = load_trim(p, j, path, err)))
    return rc;
  if (!roberta && strcmp(type, "BertProcessing") != 0 &&
      strcmp(type, "TemplateProcessing") != 0)
    return nne__unsupported(path, type, err);
  step_t *s = step_new(p);
  if (!s)
    return NNE_ENOMEM;
  if (strcmp(type, "TemplateProcessing") != 0) {
    s->has_pair = true;
    return load_cls_sep(j, s, roberta, path, err);
  }
  if ((rc = load_template(j, "single", &s->single, &s->nsingle, path, err)))
    return rc;
  s->has_pair = json_is_array(json_object_get(j, "pair"));
  return load_template(j, "pair", &s->pair, &s->npair, path, err);
}

int nne__post_load(json_t *j, nne__post_t **out, nne__path_t *path,
                   nne_err_t *err) {
  nne__post_t *p = calloc(1, sizeof *p);
  int rc;
  *out = NULL;
  if (!p)
    return NNE_ENOMEM;
  if ((rc = load_into(p, j, path, err))) {
    nne__post_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

int nne__post_check(const nne__post_t *p, size_t nids, nne_err_t *err) {
  for (size_t i = 0; p && i < p->n; i++)
    for (int w = 0; w < 2; w++) {
      const item_t *v = w ? p->steps[i].pair : p->steps[i].single;
      size_t n = w ? p->steps[i].npair : p->steps[i].nsingle;
      for (size_t k = 0; k < n; k++)
        for (size_t m = 0; m < v[k].nids; m++)
          if (v[k].ids[m] < 0 || (size_t)v[k].ids[m] >= nids)
            return nne_err_set(err, NNE_EINVAL,
                               "post_processor: id %d is not in the "
                               "vocabulary",
                               v[k].ids[m]);
    }
  return 0;
}

bool nne__post_has_pair(const nne__post_t *p) {
  /* Only the first template sees two sequences; a later one wraps the one
   * the first made, with its single form. */
  for (size_t i = 0; p && i < p->n; i++)
    if (!p->steps[i].trim)
      return p->steps[i].has_pair;
  return true;
}

/* ---- running ------------------------------------------------------------ */

void nne__enc_free(nne__enc_t *e) {
  free(e->ids);
  free(e->offs);
  free(e->types);
  free(e->seq);
  memset(e, 0, sizeof *e);
}

/* Room for n tokens in every array e keeps. */
static int enc_room(nne__enc_t *e, size_t n) {
  if (n <= e->cap)
    return 0;
  size_t cap = n > 2 * e->cap ? n : 2 * e->cap;
  int32_t *ids = realloc(e->ids, cap * sizeof *ids);
  if (!ids)
    return NNE_ENOMEM;
  e->ids = ids;
  if (e->offsets) {
    uint32_t *o = realloc(e->offs, 2 * cap * sizeof *o);
    if (!o)
      return NNE_ENOMEM;
    e->offs = o;
  }
  if (e->track) {
    uint32_t *ty = realloc(e->types, cap * sizeof *ty);
    if (!ty)
      return NNE_ENOMEM;
    e->types = ty;
    uint8_t *sq = realloc(e->seq, cap);
    if (!sq)
      return NNE_ENOMEM;
    e->seq = sq;
  }
  e->cap = cap;
  return 0;
}

/* Appends tokens [from, to) of src to dst with the type id given. */
static int enc_append(nne__enc_t *dst, const nne__enc_t *src, size_t from,
                      size_t to, uint32_t type_id) {
  size_t k = to - from;
  if (k == 0)
    return 0;
  if (enc_room(dst, dst->n + k))
    return NNE_ENOMEM;
  memcpy(dst->ids + dst->n, src->ids + from, k * sizeof *src->ids);
  if (dst->offsets)
    memcpy(dst->offs + 2 * dst->n, src->offs + 2 * from,
           2 * k * sizeof *src->offs);
  if (dst->track) {
    memcpy(dst->seq + dst->n, src->seq + from, k);
    for (size_t i = 0; i < k; i++)
      dst->types[dst->n + i] = type_id;
  }
  dst->n += k;
  return 0;
}

static int enc_special(nne__enc_t *dst, const item_t *it) {
  if (enc_room(dst, dst->n + it->nids))
    return NNE_ENOMEM;
  for (size_t i = 0; i < it->nids; i++, dst->n++) {
    dst->ids[dst->n] = it->ids[i];
    if (dst->offsets)
      dst->offs[2 * dst->n] = dst->offs[2 * dst->n + 1] = 0;
    if (dst->track) {
      dst->types[dst->n] = it->type_id;
      dst->seq[dst->n] = NNE_TOK_SEQ_TEMPLATE;
    }
  }
  return 0;
}

/* The template for one or two sequences: the result is one sequence. */
static int apply_template(const step_t *s, nne__enc_t *e, unsigned flags) {
  bool two = e->two;
  const item_t *v = two ? s->pair : s->single;
  size_t n = two ? s->npair : s->nsingle;
  nne__enc_t out = {0};
  out.offsets = e->offsets;
  out.track = e->track;
  if (enc_room(&out, e->n + 8))
    goto nomem;
  for (size_t i = 0; i < n; i++) {
    int rc = v[i].kind == ITEM_A   ? enc_append(&out, e, 0, e->split, v[i].type_id)
             : v[i].kind == ITEM_B ? enc_append(&out, e, e->split, e->n,
                                                v[i].type_id)
             : (flags & NNE_TOK_ADD_SPECIAL) ? enc_special(&out, &v[i])
                                             : 0;
    if (rc)
      goto nomem;
  }
  nne__enc_free(e);
  *e = out;
  e->split = e->n;
  return 0;
nomem:
  nne__enc_free(&out);
  return NNE_ENOMEM;
}

static bool trims(uint32_t cp) {
  return cp == 0x120 || nne__is_space(cp); /* 'Ġ', the byte-level space */
}

/* The byte offset `count` characters after (or, back, before) at in
 * s[0..n); -1 when there are not that many before. */
static long step_chars(const char *s, size_t n, size_t at, size_t count,
                       bool back) {
  for (size_t i = 0; i < count; i++) {
    if (back) {
      if (at == 0)
        return -1;
      do
        at--;
      while (at > 0 && ((unsigned char)s[at] & 0xC0) == 0x80);
    } else if (at < n) {
      at += nne__u8len((unsigned char)s[at]);
    }
  }
  return (long)at;
}

/* The reference's process_offsets over tokens [from, to): a token with
 * leading or trailing spaces in its vocabulary entry has its offsets moved
 * inside them. The reference's bindings count the move in characters of
 * the input (their offsets are characters by then), so it is done here
 * in whole characters of the text the token came from. */
static void trim_range(const step_t *s, const nne_tokenizer_t *t,
                       nne__enc_t *e, size_t from, size_t to,
                       const char *const texts[2], const size_t lens[2]) {
  for (size_t i = from; i < to; i++) {
    size_t len, lead = 0, trail = 0, adv;
    const char *tok = nne_tokenizer_id_to_token(t, e->ids[i], &len);
    if (!tok || e->seq[i] > 1)
      continue;
    for (size_t k = 0; k < len && trims(nne__u8dec(tok + k, &adv)); k += adv)
      lead++;
    for (size_t k = len; k > 0;) {
      size_t st = k - 1;
      while (st > 0 && ((unsigned char)tok[st] & 0xC0) == 0x80)
        st--;
      if (!trims(nne__u8dec(tok + st, &adv)))
        break;
      trail++;
      k = st;
    }
    uint32_t *o = e->offs + 2 * i;
    const char *x = texts[e->seq[i]];
    size_t xn = lens[e->seq[i]];
    if (lead > 0) {
      bool first = i == from || o[0] == 0;
      if (first && s->prefix_space && lead == 1)
        lead = 0;
      long a = step_chars(x, xn, o[0], lead, false);
      o[0] = (uint32_t)a < o[1] ? (uint32_t)a : o[1];
    }
    long b;
    if (trail > 0 && (b = step_chars(x, xn, o[1], trail, true)) >= 0)
      o[1] = (uint32_t)b > o[0] ? (uint32_t)b : o[0];
  }
}

int nne__post_run(const nne__post_t *p, const nne_tokenizer_t *t,
                  nne__enc_t *e, unsigned flags, const char *const texts[2],
                  const size_t lens[2]) {
  for (size_t i = 0; p && i < p->n; i++) {
    const step_t *s = &p->steps[i];
    if (!s->trim) {
      if (apply_template(s, e, flags))
        return NNE_ENOMEM;
      e->two = false;
    } else if (e->offsets && e->track) {
      trim_range(s, t, e, 0, e->split, texts, lens);
      trim_range(s, t, e, e->split, e->n, texts, lens);
    }
  }
  return 0;
}
