/* internal.h — libnnedit's internals, shared by the files of client/lib/
 * and never installed. Every name here carries the nne__ prefix, and the
 * version script (client/nnedit.map) keeps all of them inside the shared
 * library: it exports nne_client_* only.
 *
 * One block per file, named after the file that defines it, in the order a
 * call goes through them:
 *
 *   util.c     errors into nne_client_err_t, bounded string copies
 *
 * Every growing array and block grows through the daemon's base vector
 * (daemon/base/vec.h, nne_vec_grow_max with the array's bound), linked in
 * statically from nne_base; the version script keeps it inside too.
 *   conn.c     the client (struct nne_client), one call on its own
 *              completion queue: unary calls and server streams, and the
 *              gRPC status -> nne_client_err_t mapping
 *   decode.c   the one way replies become caller-owned result structs:
 *              repeated messages into growable arrays (nne__rep), repeated
 *              strings (nne__strlist), a string block addressed by offset
 *              while it grows (nne__strs) and the layout tables that turn
 *              those offsets into pointers at the end (nne__fix)
 *   tensor.c   dtypes, tensor checks, and the reassembler that turns a run
 *              of TensorChunk messages into one tensor (nne__asm)
 *   forward.c  token rows on the wire and top-k rows off it, shared with
 *              trace.c and generate.c
 *   igraph.c   the intervention graph builder's view for trace.c and
 *              generate.c: its save nodes, its nodes as Node messages and
 *              their steps as NodeSteps
 *
 *   generate.c Inference/Generate split into check, request, stream
 *              handler and end, for its unit test
 *
 * The files with nothing to share (health.c, models.c, graph.c, edits.c,
 * admin.c, trace.c, tokenize.c, npy.c) have no block: each is one service
 * (or the .npy format) on top of these.
 */
#ifndef NNE_CLIENT_INTERNAL_H
#define NNE_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "base/vec.h"
#include "nne_pb.h"
#include "nnedit.h"
#include "nnedit/v1/inference.pb.h"
#include "nnedit/v1/tensor.pb.h"

/* The size of a struct member, for the static asserts that tie the public
 * header's bounds to the proto's nanopb bounds. */
#define NNE__FIELD_SIZE(type, field) sizeof(((type *)0)->field)

/* ---- util.c -------------------------------------------------------------- */

/* Fills err (if any) with code and the formatted message; returns -code. */
int nne__err_set(nne_client_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int nne__err_setv(nne_client_err_t *err, int code, const char *fmt, va_list ap);

/* Copies a NUL-terminated string (NULL: "") into dst[cap]; false when it
 * does not fit (dst is then left ""). */
bool nne__copy_str(char *dst, size_t cap, const char *src);

/* A required string argument: non-NULL and shorter than cap, else
 * INVALID_ARGUMENT naming `what`. */
int nne__check_name(const char *what, const char *name, size_t cap,
                    nne_client_err_t *err);
/* An optional one (NULL is fine): shorter than cap. */
int nne__check_opt_str(const char *what, const char *s, size_t cap,
                       nne_client_err_t *err);

/* ---- conn.c -------------------------------------------------------------- */

struct nne_client {
  grpc_channel *channel;
  char *address;
  int64_t timeout_ms;
  size_t max_recv_bytes;
  uint64_t max_tensor_bytes;
  char *authz;   /* "Bearer <token>", or NULL */
};

/* "Models/List" for "/nnedit.v1.Models/List": how messages name a method. */
const char *nne__method_name(const char *method);

typedef struct nne__dec nne__dec_t;

/* A unary call: encodes req, sends it, receives one reply and decodes it
 * into resp, whose decode callbacks the caller has set (they report their
 * refusals in *dec, which may be NULL when there are none). */
int nne__unary(nne_client_t *cli, const char *method,
               const pb_msgdesc_t *req_desc, const void *req,
               const pb_msgdesc_t *resp_desc, void *resp, nne__dec_t *dec,
               nne_client_err_t *err);

/* What a stream's message handler says: go on, stop here (enough messages:
 * the call is cancelled and its CANCELLED status is not an error), or
 * fail (the handler filled err; the call is cancelled). */
enum { NNE__STREAM_MORE = 0, NNE__STREAM_ENOUGH = 1 };
typedef int (*nne__msg_fn)(void *ctx, grpc_byte_buffer *msg,
                           nne_client_err_t *err);

/* A server-streaming call: one request, then on_msg for every message
 * until the stream ends, on_msg stops it, or the deadline (timeout_ms from
 * now; 0 = none) passes. Returns 0 when the server ended the stream with
 * OK or on_msg said ENOUGH; on_msg's error when it failed; else the
 * call's status. */
int nne__stream(nne_client_t *cli, const char *method,
                const pb_msgdesc_t *req_desc, const void *req,
                int64_t timeout_ms, nne__msg_fn on_msg, void *ctx,
                nne_client_err_t *err);

/* ---- decode.c ------------------------------------------------------------ */

/* The first reason a decode callback refused the bytes. Callbacks can only
 * return false to nanopb; they say why here, and the call reports it. */
struct nne__dec {
  int code; /* 0: no callback refused */
  char msg[512];
};

/* Records the first refusal (later ones are consequences); returns false so
 * that a callback can `return nne__dec_fail(...)`. */
bool nne__dec_fail(nne__dec_t *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The error of a reply that failed to decode: the refusal in d (may be
 * NULL), else nanopb's reason `why`, prefixed with the method's name.
 * Returns -code. */
int nne__dec_error(const nne__dec_t *d, const char *method, const char *why,
                   nne_client_err_t *err);

/* Decodes a whole message from a byte buffer; on failure fills err as
 * nne__dec_error does. */
int nne__decode_bb(grpc_byte_buffer *bb, const pb_msgdesc_t *fields, void *msg,
                   const nne__dec_t *d, const char *method,
                   nne_client_err_t *err);

/* A string field being decoded, read into buf[cap] (NUL-terminated). A
 * string of cap bytes or more, or with a NUL inside, is refused: INTERNAL
 * naming `what`. */
bool nne__dec_str(pb_istream_t *s, char *buf, size_t cap, nne__dec_t *d,
                  const char *what);

/* A block of NUL-terminated strings appended back to back. While it grows
 * (and moves) a string is named by its offset; the string fields of the
 * decoded items hold that offset, cast to a pointer, until nne__fix turns
 * it into one. Bounded by the reply it comes from, itself bounded. */
typedef struct nne__strs {
  char *p;
  size_t len, cap;
} nne__strs_t;

/* Appends s; *slot receives its offset. False when memory runs out. */
bool nne__strs_add(nne__strs_t *b, const char *s, const char **slot);
/* Appends the string field being decoded (at most max_len bytes); *slot
 * receives its offset. On failure says why in d, naming `what`. */
bool nne__strs_read(nne__strs_t *b, pb_istream_t *s, size_t max_len,
                    const char **slot, nne__dec_t *d, const char *what);

/* A growable array of strings (offsets until fixed): every module's names
 * of a Describe reply, every node's value names of a Graph reply. */
typedef struct nne__names {
  const char **v;
  size_t n, cap, max;
} nne__names_t;

/* A repeated string field of one message, gathered into `block` while the
 * message decodes (its repeated fields may interleave on the wire, so each
 * list is gathered apart). Set block, max (strings), max_len (bytes of
 * one), what (names the field in messages: "modules[3].aliases", filled
 * by the owner before each message), noun ("names") and dec; the decode
 * callback is nne__strlist_dec. */
typedef struct nne__strlist {
  nne__strs_t *block;
  const char **v; /* offsets into block */
  size_t n, cap, max, max_len;
  char what[64];
  const char *noun;
  nne__dec_t *dec;
} nne__strlist_t;

bool nne__strlist_dec(pb_istream_t *s, const pb_field_t *f, void **arg);
/* Moves the gathered strings to the end of `all`; *first receives the index
 * where they start (as a pointer, fixed by nne__fix) and *n their number.
 * The list is emptied for the next message. */
bool nne__strlist_move(nne__strlist_t *l, nne__names_t *all,
                       const char *const **first, size_t *n);
/* Packs the gathered strings into one allocation (the pointer array, then
 * the strings), which *out owns (NULL when there are none); the list and
 * its block, which must be the list's own, are emptied. False when memory
 * runs out. */
bool nne__strlist_pack(nne__strlist_t *l, const char *const **out, size_t *n);
/* Frees what the list holds (not the block). */
void nne__strlist_free(nne__strlist_t *l);

/* A repeated submessage field decoded into the caller's growable array of
 * result items (nanopb hands each element to nne__rep_dec, the callback,
 * with the rep as its arg):
 *   - item i is zeroed and counted in *n before it is filled, so that the
 *     result's _free finds whatever it was given even if a later step
 *     fails;
 *   - more than `max` items is over_code ("<what>: more than <max> <noun>",
 *     or with `bound`, "<what>: more <noun> than <bound> <max>");
 *   - the element is decoded into `msg` (msg_size bytes, zeroed first;
 *     arm, when set, hooks its own callbacks), then take fills the item.
 * `ctx` is the owner's, for arm and take. */
typedef struct nne__rep nne__rep_t;
struct nne__rep {
  void **items;
  size_t *n;
  size_t cap;
  size_t item_size;
  size_t max;
  int over_code;
  const char *what, *noun, *bound;
  const pb_msgdesc_t *fields;
  void *msg;
  size_t msg_size;
  void (*arm)(nne__rep_t *r, void *msg, size_t i);
  bool (*take)(nne__rep_t *r, const void *msg, void *item, size_t i);
  void *ctx;
  nne__dec_t *dec;
};

bool nne__rep_dec(pb_istream_t *s, const pb_field_t *f, void **arg);

/* Where a result item keeps its strings (const char * members) and string
 * lists (a const char *const * member and its size_t count), by offsetof:
 * the table nne__fix walks to turn the offsets of a decode into pointers. */
typedef struct nne__list_field {
  size_t list, count;
} nne__list_field_t;

typedef struct nne__layout {
  const size_t *strs;
  size_t n_strs;
  const nne__list_field_t *lists;
  size_t n_lists;
} nne__layout_t;

/* Once the block stops moving: every string of items[0..n) points into
 * `base`, every list into `names` (NULL when empty). Fix `names` itself
 * first with nne__fix_names. */
void nne__fix(void *items, size_t n, size_t item_size, const nne__layout_t *l,
              const char *base, const char **names);
void nne__fix_names(const char **names, size_t n, const char *base);

/* ---- tensor.c ------------------------------------------------------------ */

/* numel(shape) * itemsize(dtype) without overflow; false on a negative dim
 * or an overflow. */
bool nne__tensor_size(int dtype, const int64_t *shape, size_t ndim,
                      uint64_t *out);

/* A tensor a caller hands over (an edit's operand, a graph constant): a
 * known dtype, at most NNE_CLIENT_MAX_DIMS dims, none negative, nbytes
 * matching the shape, data where there are bytes. False with the reason
 * in why[cap] (no prefix: the caller names the tensor). */
bool nne__tensor_check(const nne_client_tensor_t *t, char *why, size_t cap);

/* A result's saved tensors: freed with their array; the first named
 * `name` (NULL when none is, or name is NULL). */
void nne__tensors_free(nne_client_tensor_t *v, size_t n);
const nne_client_tensor_t *nne__tensor_find(const nne_client_tensor_t *v,
                                            size_t n, const char *name);
/* A result's list of the tensors it streamed (`saved`): its k-th entry,
 * `name`, must be the k-th of the v[0..n) that came; else false with the
 * reason in d, naming `what` ("result.saved[2]"). */
bool nne__saved_listed(nne__dec_t *d, const char *what, const char *name,
                       const nne_client_tensor_t *v, size_t n, size_t k);

/* The tensor reassembler turns a run of TensorChunk messages into one
 * nne_client_tensor_t. Any RPC whose stream carries tensors uses it the
 * same way, once per TensorChunk it meets:
 *
 *   nne__asm_t a;
 *   nne__asm_init(&a, cli->max_tensor_bytes);
 *   for each TensorChunk in the stream:
 *     nne__asm_arm(&a, &msg);             // zeroes msg, hooks `data`
 *     pb_decode(..., nnedit_v1_TensorChunk_fields, &msg) (on failure:
 *         nne__asm_error(&a, err) says whether the reassembler refused
 *         the bytes and why)
 *     nne__asm_feed(&a, &done, err);      // checks the chunk, advances
 *     if (done) nne__asm_take(&a, &tensor);  // caller owns it now
 *   at the end of the stream: a->active means a tensor was cut short;
 *   nne__asm_reset(&a);                    // frees anything not taken
 *
 * The `data` bytes are decoded straight into the tensor's buffer at the
 * chunk's offset (one copy, from the gRPC slices to the destination). The
 * buffer is allocated once, at the first chunk, from its total_bytes, which
 * must equal numel(shape) * itemsize(dtype) and stay under the limit. Only
 * when a first chunk puts `data` before `total_bytes` on the wire (legal
 * protobuf, though no encoder we know does it) are its bytes held aside and
 * copied once the header is known.
 *
 * Checks, each failing with INTERNAL (RESOURCE_EXHAUSTED for the size limit)
 * and a message naming the tensor: a known dtype, 0 <= dims, at most 8 dims,
 * no overflow in the size, offsets contiguous from 0, chunks of one tensor
 * under one name and never interleaved with another's, `last` set exactly on
 * the chunk that completes the tensor. */
typedef struct nne__asm {
  uint64_t max_bytes;
  nne_client_tensor_t t; /* the tensor being assembled (owns t.data) */
  uint64_t got;          /* bytes of t received so far */
  bool active;           /* t is started and not complete */
  bool complete;         /* t is complete and not yet taken */
  /* State of the chunk being decoded (between arm and feed). */
  nnedit_v1_TensorChunk *msg;
  uint64_t placed; /* bytes the data callback put into t.data at `got` */
  bool allocated;  /* the data callback allocated t.data for a first chunk */
  uint8_t *stash;  /* data of a first chunk whose header came after it */
  size_t stash_len;
  nne_client_err_t err; /* why the data callback refused (code 0: it did not) */
} nne__asm_t;

void nne__asm_init(nne__asm_t *a, uint64_t max_bytes);
/* Zeroes *msg and points its data callback at the reassembler. msg must stay
 * alive until nne__asm_feed. */
void nne__asm_arm(nne__asm_t *a, nnedit_v1_TensorChunk *msg);
/* After a failed decode of an armed chunk: records in d why the data
 * callback refused the chunk, if it did (nanopb only says it failed). */
void nne__asm_refused(const nne__asm_t *a, nne__dec_t *d);
/* Checks the decoded chunk and advances; *done is set when it completed a
 * tensor, which nne__asm_take then hands over. False with the reason in d. */
bool nne__asm_feed(nne__asm_t *a, bool *done, nne__dec_t *d);
/* Moves the completed tensor into *out (the caller frees it with
 * nne_client_tensor_free) and makes the reassembler ready for the next. */
void nne__asm_take(nne__asm_t *a, nne_client_tensor_t *out);
/* After a stream the server ended with OK: a tensor still in progress was
 * cut short (INTERNAL naming it and the method). Returns 0 or -code. */
int nne__asm_end(const nne__asm_t *a, const char *method,
                 nne_client_err_t *err);
/* Frees everything held and returns to the state after init. */
void nne__asm_reset(nne__asm_t *a);

/* ---- forward.c ----------------------------------------------------------- */

/* Token rows and mask rows as TokenRow / MaskRow lists, built one row at a
 * time (nne_pb_list_enc): set rows/mask and tmp (room for the longest mask
 * row, which is widened to int64), then nne__rows_enc. A text row goes as
 * TokenRow.text alone. */
typedef struct nne__rows_enc {
  const nne_client_token_row_t *rows;
  const nne_client_mask_row_t *mask;
  nne_pb_i64_enc_t cur; /* the row being encoded (one at a time) */
  int64_t *tmp;
  nne_pb_list_enc_t ids_list, mask_list;
} nne__rows_enc_t;

/* Points ids and mask (the request's two list fields) at e's rows. */
void nne__rows_enc(nne__rows_enc_t *e, size_t n_rows, size_t n_mask,
                   pb_callback_t *ids, pb_callback_t *mask);

/* Rows of one invoke or request: non-NULL where counted, ids or text but
 * not both; *max_mask grows to the longest mask row. INVALID_ARGUMENT naming `where` ("forward",
 * "trace: traces[0].invokes[1]"). */
int nne__rows_check(const char *where, const nne_client_token_row_t *rows,
                    size_t n_rows, const nne_client_mask_row_t *mask,
                    size_t n_mask, size_t *max_mask, nne_client_err_t *err);

/* The RowTopK list of a result (ForwardResult.rows, TraceResult.rows) into
 * *rows / *n_rows: at most max_rows rows (the request's) of at most max_top
 * scores (its top_k). Point the result message's `rows` callback at
 * nne__rep_dec with &t->rows as its arg after nne__topk_init. */
typedef struct nne__topk {
  nne__rep_t rows, top;
  nnedit_v1_RowTopK row_msg;
  nnedit_v1_TokenScore score_msg;
  char top_what[32];
  /* The row being decoded and its scores' texts (the block is the row's:
   * row->strings follows texts.p as it moves). */
  nne_client_row_topk_t *row;
  nne__strs_t texts;
  const char *text_off; /* the current score's text, as an offset */
  size_t text_len;
  bool has_text;
} nne__topk_t;

void nne__topk_init(nne__topk_t *t, nne_client_row_topk_t **rows,
                    size_t *n_rows, size_t max_rows, size_t max_top,
                    nne__dec_t *dec);
void nne__rows_free(nne_client_row_topk_t *rows, size_t n);
/* Frees what rows[0..n) hold and zeroes them; the array stays. */
void nne__rows_clear(nne_client_row_topk_t *rows, size_t n);

/* Scores of one row outside a RowTopK list (GeneratedToken.top), with a t
 * set up by nne__topk_init (its max_top bounds them): before the message
 * holding them decodes, nne__topk_row_begin points its repeated
 * TokenScore field `top` at row's scores (`what` names them in messages,
 * at most 31 bytes); once it decoded, nne__topk_row_end makes their texts
 * pointers. */
void nne__topk_row_begin(nne__topk_t *t, nne_client_row_topk_t *row,
                         const char *what, pb_callback_t *top);
void nne__topk_row_end(nne__topk_t *t, nne_client_row_topk_t *row);

/* ---- igraph.c ------------------------------------------------------------ */

/* The save nodes of g, one at a time: *pos starts at 0; false after the
 * last. */
bool nne__igraph_next_save(const nne_client_igraph_t *g, size_t *pos,
                           const char **name, uint32_t *id);

/* The nodes of g as a Node list (Trace.nodes), and their steps as a
 * NodeSteps list (GenerateRequest.steps). e must live until the request is
 * encoded; one e serves one graph at a time. */
typedef struct nne__igraph_enc {
  const nne_client_igraph_t *g;
  nne_pb_bytes_enc_t data; /* a constant's bytes */
  nne_pb_list_enc_t list;
  nne_pb_list_enc_t steps;
} nne__igraph_enc_t;

void nne__igraph_enc(nne__igraph_enc_t *e, const nne_client_igraph_t *g,
                     pb_callback_t *nodes);
void nne__igraph_steps_enc(nne__igraph_enc_t *e, const nne_client_igraph_t *g,
                           pb_callback_t *steps);
/* Whether any node of g has steps; *node: the first one given. */
bool nne__igraph_first_steps(const nne_client_igraph_t *g, uint32_t *node);

/* ---- generate.c ---------------------------------------------------------- */

/* Inference/Generate in three parts, so that the unit tests drive the very
 * code the call runs (tests/unit/client/lib/test_generate.c):
 *
 *   nne__gen_check(req, err)              what cannot go on the wire
 *   nne__gen_req(req, &msg, &enc)         the request message (enc holds
 *                                         its lists until it is encoded)
 *   g = nne__gen_new(req, cb, ctx, out, max_tensor_bytes)
 *   nne__stream(..., nne__gen_msg, g, ...) each GenerateResponse: steps to
 *                                         the callback, chunks to the
 *                                         reassembler, then the result
 *   rc = nne__gen_end(g, rc, err)          after the stream: was it whole
 *   nne__gen_free(g)
 */
typedef struct nne__gen_enc {
  nne__rows_enc_t rows;
  pb_callback_t no_mask; /* GenerateRequest has no mask field */
  nne_pb_i64_enc_t stop_ids;
  nne_pb_str_list_enc_t stop_strings, save;
  /* The intervention: one Trace (a list of one) holding its nodes. */
  const nne_client_igraph_t *ivn_graph;
  nne_pb_list_enc_t ivn;
  nne__igraph_enc_t ivn_nodes;
} nne__gen_enc_t;

typedef struct nne__gen nne__gen_t;

int nne__gen_check(const nne_client_generate_req_t *req, nne_client_err_t *err);
void nne__gen_req(const nne_client_generate_req_t *req,
                  nnedit_v1_GenerateRequest *m, nne__gen_enc_t *enc);
/* NULL when memory runs out. out is zeroed here. */
nne__gen_t *nne__gen_new(const nne_client_generate_req_t *req,
                         nne_client_token_cb cb, void *ctx,
                         nne_client_generate_result_t *out,
                         uint64_t max_tensor_bytes);
/* The stream's message handler (nne__msg_fn); ctx is the nne__gen_t. */
int nne__gen_msg(void *ctx, grpc_byte_buffer *msg, nne_client_err_t *err);
/* rc: the stream's; returns the call's (CANCELLED when the callback
 * stopped it, INTERNAL when an OK stream was not whole). */
int nne__gen_end(nne__gen_t *g, int rc, nne_client_err_t *err);
void nne__gen_free(nne__gen_t *g);

#endif /* NNE_CLIENT_INTERNAL_H */
