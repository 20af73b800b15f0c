/* bench_edits.c — in-process figures for the edits and trace issues (4, 5).
 *
 * Runs the GPT-2-small-sized fixture through libnne_engine.so (no gRPC, no
 * daemon) and prints, measured side by side in one run:
 *
 *   A. steady-state forward time of the pristine model and of variants
 *      (hooks at every module output with a NULL and a do-nothing hook,
 *      saving every layer's output, saving the 12 residuals and copying
 *      them to host), runs interleaved round by round, medians and ratios
 *      to the pristine forward of the same run;
 *   B. variant build time and first/second forward time;
 *   C. memory per variant: nne_variant_bytes, RSS and heap growth for 10
 *      distinct variants, and what unref'ing them gives back;
 *   D. a stand-in for the daemon's variant cache: canonical site list ->
 *      hash -> strcmp, cost per lookup;
 *   E. the daemon's real cache (built from the top-level project, which
 *      links the daemon's objects, nneditd_core): a request's site strings
 *      resolved by the daemon's names, planned by its compiler and looked up
 *      in its backend cache, for 1, 12 and all-module-output sites.
 *
 * It is a benchmark, not a test: it prints PASS/MISS per target and exits 0
 * unless the model cannot be loaded or run at all.
 *
 *   bench_edits [--model PATH] [--threads N] [--blas-threads N]
 *               [--rounds N] [--seq N] [--vocab N] [--list]
 *               [--build-loop N [--build-set none|one|node|layers|all]]
 *               [--cold none|one|node|layers|all]
 *
 * --build-loop N only builds one variant N times (for perf record).
 * --cold SET measures what a fresh process sees: two pristine forwards,
 * then the set's first build and its first forwards (the modules a variant
 * leaves as calls run through their own executors, which warm up on their
 * first calls in the process), each compared with a pristine forward; run
 * it once per set, each in a new process.
 * --list prints the module tree with arities and exits.
 * --seq and --vocab shape the input (ids are (i * 7919 + 13) % vocab): the
 * defaults fit the GPT-2-small fixture; the tiny gpt2-script fixture needs
 * --seq 64 --vocab 1000 or less.
 */
#include "engine.h"
#ifdef NNE_BENCH_DAEMON
/* Section E links the daemon's own objects (the nneditd_core library). */
#include "edit/backend_cache.h"
#include "edit/compiler.h"
#include "names/names.h"
#include "names/check.h"
#endif

#include <dlfcn.h>
#include <malloc.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const nne_err_t *err) {
  fprintf(stderr, "bench_edits: %s: %s\n", what,
          err != NULL ? err->msg : "failed");
  exit(1);
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (p == NULL) {
    fprintf(stderr, "bench_edits: out of memory\n");
    exit(1);
  }
  return p;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median of n values (the array is sorted in place). */
static double median(double *v, size_t n) {
  if (n == 0)
    return NAN;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double vmin(const double *v, size_t n) {
  double m = INFINITY;
  for (size_t i = 0; i < n; i++)
    m = v[i] < m ? v[i] : m;
  return m;
}

static double vmax(const double *v, size_t n) {
  double m = -INFINITY;
  for (size_t i = 0; i < n; i++)
    m = v[i] > m ? v[i] : m;
  return m;
}

/* Resident set size in bytes, from /proc/self/statm. */
static long long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long long size = 0, res = 0;
  if (f == NULL)
    return -1;
  if (fscanf(f, "%lld %lld", &size, &res) != 2)
    res = -1;
  fclose(f);
  return res < 0 ? -1 : res * (long long)sysconf(_SC_PAGESIZE);
}

/* Bytes malloc has handed out and not had back (glibc). */
static long long heap_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  return (long long)(mi.uordblks + mi.hblkhd);
#else
  return -1;
#endif
}

static void trim_heap(void) {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

/* CPU time of this process (all threads), seconds. */
static double self_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Busy and total CPU time of the whole machine from /proc/stat, seconds. */
static int machine_cpu_s(double *busy, double *total) {
  FILE *f = fopen("/proc/stat", "r");
  unsigned long long v[10] = {0};
  if (f == NULL)
    return -1;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                 &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n < 5)
    return -1;
  double hz = (double)sysconf(_SC_CLK_TCK);
  unsigned long long idle = v[3] + v[4], all = 0;
  for (int i = 0; i < 8; i++)
    all += v[i];
  *busy = (double)(all - idle) / hz;
  *total = (double)all / hz;
  return 0;
}

/* What the rest of the machine used while a section ran: the cores' busy
 * time minus this process's CPU time, as a share of all cores. A figure
 * well above 0 means other work competed with the benchmark. */
typedef struct load_probe {
  double busy, total, self;
} load_probe_t;

static void load_start(load_probe_t *p) {
  if (machine_cpu_s(&p->busy, &p->total) != 0)
    p->total = -1;
  p->self = self_cpu_s();
}

static double load_other(const load_probe_t *p) {
  double busy, total;
  if (p->total < 0 || machine_cpu_s(&busy, &total) != 0 || total <= p->total)
    return NAN;
  double other = (busy - p->busy) - (self_cpu_s() - p->self);
  double share = other / (total - p->total);
  return share < 0 ? 0 : share;
}

static double mib(long long b) {
  return (double)b / (1024.0 * 1024.0);
}

static const char *verdict(int ok) {
  return ok ? "PASS" : "MISS";
}

/* ---- machine ----------------------------------------------------------- */

static void cpu_model(char *out, size_t len) {
  snprintf(out, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  char line[512];
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "model name", 10) == 0) {
      char *p = strchr(line, ':');
      if (p != NULL) {
        p++;
        while (*p == ' ' || *p == '\t')
          p++;
        p[strcspn(p, "\n")] = '\0';
        snprintf(out, len, "%s", p);
      }
      break;
    }
  }
  fclose(f);
}

/* The CPU flags that decide which GEMM kernels OpenBLAS picks. */
static void cpu_simd(char *out, size_t len) {
  static const char *const want[] = {"avx512f", "avx2", "fma", "avx"};
  out[0] = '\0';
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL)
    return;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    if (strncmp(line, "flags", 5) != 0)
      continue;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
      char pat[32];
      snprintf(pat, sizeof pat, " %s ", want[i]);
      if (strstr(line, pat) != NULL) {
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%s", l ? " " : "", want[i]);
      }
    }
    break;
  }
  free(line);
  fclose(f);
}

/* OpenBLAS has its own thread pool, sized from OPENBLAS_NUM_THREADS or the
 * core count when the library loads; libtorch's set_num_threads does not
 * touch it. Set it explicitly when the symbol is there. */
static const char *blas_core(void) {
  typedef char *(*name_fn)(void);
  name_fn f = (name_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "openblas_get_corename");
  const char *n = f != NULL ? f() : NULL;
  return n != NULL ? n : "?";
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v != NULL ? v : dflt;
}

static int blas_threads(int want) {
  typedef void (*set_fn)(int);
  typedef int (*get_fn)(void);
  set_fn set = (set_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
  get_fn get = (get_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
  if (set != NULL && want > 0)
    set(want);
  return get != NULL ? get() : -1;
}

/* ---- sites ------------------------------------------------------------- */

typedef struct site_set {
  const char *label;
  nne_site_t *sites;
  size_t n;
} site_set_t;

static void set_add(site_set_t *s, size_t cap, int module, nne_site_kind_t kind,
                    int index, const char *node_kind, int occurrence) {
  if (s->n >= cap) {
    fprintf(stderr, "bench_edits: too many sites\n");
    exit(1);
  }
  nne_site_t *x = &s->sites[s->n++];
  x->module = module;
  x->kind = kind;
  x->index = index;
  x->node_kind = node_kind;
  x->node_occurrence = occurrence;
}

static void set_remove(site_set_t *s, size_t i) {
  memmove(&s->sites[i], &s->sites[i + 1], (s->n - i - 1) * sizeof s->sites[0]);
  s->n--;
}

/* Output 0 of every module forward calls (the root included). */
static void all_outputs(nne_model_t *m, site_set_t *s, size_t cap) {
  nne_err_t err;
  size_t nm = nne_model_module_count(m);
  for (size_t i = 0; i < nm; i++) {
    const nne_module_info_t *mi = nne_model_module(m, i);
    if (mi->call_index < 0)
      continue;
    int nin = -1, nout = -1;
    if (nne_model_module_arity(m, (int)i, &nin, &nout, &err) != 0)
      die("module arity", &err);
    if (nout < 1)
      continue;
    set_add(s, cap, (int)i, NNE_SITE_OUTPUT, 0, NULL, 0);
  }
}

static int find_module(nne_model_t *m, const char *path) {
  int i = nne_model_module_find(m, path);
  if (i < 0) {
    fprintf(stderr, "bench_edits: the model has no module '%s'\n", path);
    exit(1);
  }
  return i;
}

/* Builds a variant; a site the engine rejects as "site K (...)" is dropped
 * (reported) and the build retried, so that an output that is not a tensor
 * does not stop the benchmark. */
static nne_variant_t *build_dropping(nne_model_t *m, site_set_t *s) {
  nne_err_t err;
  for (;;) {
    nne_variant_t *v = NULL;
    if (nne_variant_build(m, s->sites, s->n, &v, &err) == 0)
      return v;
    size_t k;
    if (sscanf(err.msg, "site %zu", &k) != 1 || k >= s->n)
      die("variant build", &err);
    printf("  note: %s: dropped site %zu: %s\n", s->label, k, err.msg);
    set_remove(s, k);
  }
}

static nne_variant_t *build(nne_model_t *m, const site_set_t *s) {
  nne_err_t err;
  nne_variant_t *v = NULL;
  if (nne_variant_build(m, s->sites, s->n, &v, &err) != 0)
    die(s->label, &err);
  return v;
}

/* ---- hooks ------------------------------------------------------------- */

/* Counts calls when ctx is a long (the check before timing), else nothing. */
static int hook_noop(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace) {
  if (ctx != NULL)
    ++*(long *)ctx;
  (void)site;
  (void)value;
  (void)replace;
  return 0;
}

#define MAX_SAVED 256

typedef struct save_ctx {
  nne_tensor_t *saved[MAX_SAVED];
  int n;
  int to_host;        /* also nne_tensor_host_data + copy into `wire` */
  unsigned char *wire; /* stand-in for message buffers */
  size_t wire_cap, wire_off;
  double clone_s, host_s, copy_s; /* summed over the run */
  size_t bytes;
} save_ctx_t;

static int hook_save(void *ctx, int site, nne_tensor_t *value,
                     nne_tensor_t **replace) {
  save_ctx_t *s = ctx;
  nne_err_t err;
  (void)site;
  (void)replace;
  if (s->n >= MAX_SAVED)
    return NNE_ERESOURCE;
  double t0 = now_s();
  nne_tensor_t *c = NULL;
  if (nne_tensor_clone(value, &c, &err) != 0)
    return err.code;
  double t1 = now_s();
  s->clone_s += t1 - t0;
  s->saved[s->n++] = c;
  size_t nb = nne_tensor_nbytes(c);
  s->bytes += nb;
  if (s->to_host) {
    const void *p = NULL;
    if (nne_tensor_host_data(c, &p, &err) != 0)
      return err.code;
    double t2 = now_s();
    if (s->wire_off + nb <= s->wire_cap) {
      memcpy(s->wire + s->wire_off, p, nb);
      s->wire_off += nb;
    }
    double t3 = now_s();
    s->host_s += t2 - t1;
    s->copy_s += t3 - t2;
  }
  return 0;
}

static void save_reset(save_ctx_t *s) {
  for (int i = 0; i < s->n; i++)
    nne_tensor_unref(s->saved[i]);
  s->n = 0;
  s->wire_off = 0;
}

/* ---- the cache stand-in ------------------------------------------------- */

/* A minimal string-keyed table, standing in for the daemon's variant cache
 * (which this program does not have): the key is the canonical site list,
 * one "path|kind|index|node_kind|occurrence" line per site, sorted, joined
 * by '\n'. A lookup canonicalises the request's sites, hashes the key
 * (FNV-1a, 64 bits), probes linearly and confirms with strcmp. */

#define TABLE_SLOTS 64

typedef struct table_slot {
  uint64_t hash;
  char *key;
  size_t len;
  const void *value;
} table_slot_t;

typedef struct table {
  table_slot_t slot[TABLE_SLOTS];
} table_t;

typedef struct keybuf {
  char *buf;      /* joined key */
  size_t cap;
  char **lines;   /* per-site lines, into `text` */
  char *text;
  size_t lines_cap, text_cap;
} keybuf_t;

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes the canonical key of the site list into kb->buf; returns its
 * length. */
static size_t canonical_key(nne_model_t *m, const nne_site_t *s, size_t n,
                            keybuf_t *kb) {
  size_t need_text = 0;
  for (size_t i = 0; i < n; i++)
    need_text += strlen(nne_model_module(m, (size_t)s[i].module)->path) +
                 (s[i].node_kind ? strlen(s[i].node_kind) : 0) + 48;
  if (kb->lines_cap < n) {
    free(kb->lines);
    kb->lines = xcalloc(n, sizeof *kb->lines);
    kb->lines_cap = n;
  }
  if (kb->text_cap < need_text) {
    free(kb->text);
    kb->text = xcalloc(need_text, 1);
    kb->text_cap = need_text;
  }
  if (kb->cap < need_text + 1) {
    free(kb->buf);
    kb->buf = xcalloc(need_text + 1, 1);
    kb->cap = need_text + 1;
  }
  char *t = kb->text;
  for (size_t i = 0; i < n; i++) {
    const char *path = nne_model_module(m, (size_t)s[i].module)->path;
    kb->lines[i] = t;
    int w = snprintf(t, kb->text_cap - (size_t)(t - kb->text), "%s|%d|%d|%s|%d",
                     path, (int)s[i].kind, s[i].index,
                     s[i].node_kind ? s[i].node_kind : "",
                     s[i].node_kind ? s[i].node_occurrence : 0);
    t += w + 1;
  }
  qsort(kb->lines, n, sizeof *kb->lines, cmp_str);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(kb->lines[i]);
    memcpy(kb->buf + len, kb->lines[i], l);
    len += l;
    kb->buf[len++] = '\n';
  }
  kb->buf[len] = '\0';
  return len;
}

static void table_put(table_t *tb, const char *key, size_t len,
                      const void *value) {
  uint64_t h = fnv1a(key, len);
  for (size_t i = 0; i < TABLE_SLOTS; i++) {
    table_slot_t *sl = &tb->slot[(h + i) % TABLE_SLOTS];
    if (sl->key == NULL) {
      sl->hash = h;
      sl->key = xcalloc(len + 1, 1);
      memcpy(sl->key, key, len);
      sl->len = len;
      sl->value = value;
      return;
    }
  }
  fprintf(stderr, "bench_edits: table full\n");
  exit(1);
}

static const void *table_get(const table_t *tb, const char *key, size_t len) {
  uint64_t h = fnv1a(key, len);
  for (size_t i = 0; i < TABLE_SLOTS; i++) {
    const table_slot_t *sl = &tb->slot[(h + i) % TABLE_SLOTS];
    if (sl->key == NULL)
      return NULL;
    if (sl->hash == h && strcmp(sl->key, key) == 0)
      return sl->value;
  }
  return NULL;
}

/* The same table with a binary key: the sites sorted as numbers (module,
 * kind, index, occurrence, then node kind) and written as int32s plus the
 * node kind's bytes; compared with memcmp. No formatting, no string sort. */
static int cmp_site(const void *a, const void *b) {
  const nne_site_t *x = a, *y = b;
  if (x->module != y->module)
    return x->module < y->module ? -1 : 1;
  if (x->kind != y->kind)
    return x->kind < y->kind ? -1 : 1;
  if (x->index != y->index)
    return x->index < y->index ? -1 : 1;
  int ox = x->node_kind ? x->node_occurrence : 0;
  int oy = y->node_kind ? y->node_occurrence : 0;
  if (ox != oy)
    return ox < oy ? -1 : 1;
  return strcmp(x->node_kind ? x->node_kind : "", y->node_kind ? y->node_kind : "");
}

typedef struct binkey {
  nne_site_t *sorted;
  size_t sorted_cap;
  unsigned char *buf;
  size_t cap;
} binkey_t;

static size_t binary_key(const nne_site_t *s, size_t n, binkey_t *bk) {
  size_t need = 0;
  for (size_t i = 0; i < n; i++)
    need += 16 + (s[i].node_kind ? strlen(s[i].node_kind) : 0) + 1;
  if (bk->sorted_cap < n) {
    free(bk->sorted);
    bk->sorted = xcalloc(n, sizeof *bk->sorted);
    bk->sorted_cap = n;
  }
  if (bk->cap < need) {
    free(bk->buf);
    bk->buf = xcalloc(need, 1);
    bk->cap = need;
  }
  memcpy(bk->sorted, s, n * sizeof *s);
  qsort(bk->sorted, n, sizeof *s, cmp_site);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    const nne_site_t *x = &bk->sorted[i];
    int32_t w[4] = {x->module, (int32_t)x->kind, x->index,
                    x->node_kind ? x->node_occurrence : 0};
    memcpy(bk->buf + len, w, sizeof w);
    len += sizeof w;
    size_t l = x->node_kind ? strlen(x->node_kind) : 0;
    memcpy(bk->buf + len, x->node_kind ? x->node_kind : "", l);
    len += l;
    bk->buf[len++] = '\0';
  }
  return len;
}

static const void *table_get_bin(const table_t *tb, const unsigned char *key,
                                 size_t len) {
  uint64_t h = fnv1a((const char *)key, len);
  for (size_t i = 0; i < TABLE_SLOTS; i++) {
    const table_slot_t *sl = &tb->slot[(h + i) % TABLE_SLOTS];
    if (sl->key == NULL)
      return NULL;
    if (sl->hash == h && sl->len == len && memcmp(sl->key, key, len) == 0)
      return sl->value;
  }
  return NULL;
}

/* ---- the daemon's real cache (section E) ------------------------------ */

#ifdef NNE_BENCH_DAEMON
/* What a request does between its site strings and a cached backend, with
 * the daemon's own code (nneditd_core): every site string is resolved
 * (nne_names_resolve_site: rpc_inference.c prepare_hooks for a Forward's
 * saves, trace.c resolve_site for a Trace's graph), the set is planned
 * (nne_compiler_plan: grouping by hierarchy, hook numbering, the sorted
 * canonical key), the key looked up (nne_compiler_get_backend ->
 * nne_backend_cache_get, a list scan with strcmp) and a reference taken to
 * the hit's variant (prepare_hooks; rpc_trace.c prepare_backend). Each step is timed on
 * its own as well, so that a miss of the target can be attributed. */
typedef struct cache_req {
  const char *label;
  const nne_names_t *names;
  nne_model_t *m;
  nne_backend_cache_t *cache;
  char **text;                /* the request's site strings */
  size_t n;
  nne_names_site_t *rs;       /* resolved (filled by req_resolve) */
  const nne_backend_t *want;  /* the entry a hit must return */
  char *key;                  /* the plan's key, a copy (for req_get) */
} cache_req_t;

/* Name resolution, as prepare_hooks does it (the field name is formatted per
 * site for the error message, so it is part of the per-site cost). */
static void req_resolve(cache_req_t *q) {
  nne_err_t err;
  char field[32];
  for (size_t i = 0; i < q->n; i++) {
    snprintf(field, sizeof field, "save[%zu]", i);
    if (nne_names_resolve_site(q->names, field, q->text[i], &q->rs[i], &err) !=
        0)
      die(q->text[i], &err);
  }
}

/* Plan + lookup + the reference a request takes, on resolved sites. */
static void req_plan_get(cache_req_t *q) {
  nne_err_t err;
  nne_compile_plan_t plan;
  if (nne_compiler_plan(q->m, q->rs, q->n, &plan, &err) != 0)
    die("nne_compiler_plan", &err);
  nne_backend_t *b = nne_compiler_get_backend(q->cache, &plan);
  if (b == NULL || b != q->want) {
    fprintf(stderr, "bench_edits: %s: the daemon's cache missed\n", q->label);
    exit(1);
  }
  nne_variant_unref(nne_variant_ref(b->variant));
  nne_compiler_plan_free(&plan);
}

/* Grouping alone (the first step of nne_compiler_plan). */
static void req_group(cache_req_t *q) {
  nne_err_t err;
  nne_edit_group_t *g = NULL;
  size_t ng = 0;
  if (nne_compiler_group_by_hierarchy(q->m, q->rs, q->n, &g, &ng, &err) != 0)
    die("nne_compiler_group_by_hierarchy", &err);
  free(g);
}

/* The lookup alone, on a ready key. */
static void req_get(cache_req_t *q) {
  if (nne_backend_cache_get(q->cache, q->key) != q->want) {
    fprintf(stderr, "bench_edits: %s: the daemon's cache missed\n", q->label);
    exit(1);
  }
}

static void req_full(cache_req_t *q) {
  req_resolve(q);
  req_plan_get(q);
}

/* Median and min over batches of the mean time per call, in us. A batch is
 * sized to take >= ~1 ms, so that the clock's own cost (~20-50 ns) and its
 * granularity do not count, and short enough that a preemption by other
 * work spoils one batch, not the figure: the min is the estimate least
 * disturbed by the rest of the machine. */
static void time_us(void (*fn)(cache_req_t *), cache_req_t *q, double *med,
                    double *lo) {
  enum { BATCHES = 51 };
  int per = 1;
  for (;;) {
    double a = now_s();
    for (int j = 0; j < per; j++)
      fn(q);
    if (now_s() - a >= 1e-3 || per >= (1 << 20))
      break;
    per *= 2;
  }
  double t[BATCHES];
  for (int b = 0; b < BATCHES; b++) {
    double a = now_s();
    for (int j = 0; j < per; j++)
      fn(q);
    t[b] = (now_s() - a) / per * 1e6;
  }
  *lo = vmin(t, BATCHES);
  *med = median(t, BATCHES);
}

/* A request's site strings: the canonical raw spelling of each engine site
 * ("transformer.h.6.output", "output" for the root, "X:KIND#K" for nodes),
 * or, with std_layer_output, the standard name of a layer output
 * ("layers.6.resid_post") that a researcher would more likely type. */
static char **site_texts(nne_model_t *m, const nne_site_t *s, size_t n,
                         int std_layer_output) {
  char **t = xcalloc(n, sizeof *t);
  for (size_t i = 0; i < n; i++) {
    const char *path = nne_model_module(m, (size_t)s[i].module)->path;
    char buf[320];
    int layer = -1;
    if (std_layer_output && s[i].kind == NNE_SITE_OUTPUT && s[i].index == 0 &&
        sscanf(path, "transformer.h.%d", &layer) == 1 &&
        strchr(path + strlen("transformer.h."), '.') == NULL)
      snprintf(buf, sizeof buf, "layers.%d.resid_post", layer);
    else if (s[i].kind == NNE_SITE_OUTPUT && s[i].index == 0)
      snprintf(buf, sizeof buf, "%s%soutput", path, path[0] ? "." : "");
    else if (s[i].kind == NNE_SITE_NODE && s[i].index == 0)
      snprintf(buf, sizeof buf, "%s:%s#%d", path, s[i].node_kind,
               s[i].node_occurrence);
    else {
      fprintf(stderr, "bench_edits: no site text for this site kind\n");
      exit(1);
    }
    t[i] = xcalloc(strlen(buf) + 1, 1);
    memcpy(t[i], buf, strlen(buf) + 1);
  }
  return t;
}

static void free_texts(char **t, size_t n) {
  for (size_t i = 0; t != NULL && i < n; i++)
    free(t[i]);
  free(t);
}

/* Resolves, plans, misses and builds as the daemon does on a miss
 * (nne_variant_build on the plan's engine sites), then puts the variant in
 * the cache; returns its entry. */
static nne_backend_t *cache_fill(nne_model_t *m, const nne_names_t *names,
                                 nne_backend_cache_t *cache, char **text,
                                 size_t n) {
  nne_err_t err;
  nne_compile_plan_t plan;
  nne_names_site_t *rs = xcalloc(n, sizeof *rs);
  cache_req_t q = {.label = "fill", .names = names, .text = text, .n = n,
                   .rs = rs};
  req_resolve(&q);
  if (nne_compiler_plan(m, rs, n, &plan, &err) != 0)
    die("nne_compiler_plan", &err);
  nne_backend_t *b = nne_compiler_get_backend(cache, &plan);
  if (b == NULL) {
    nne_variant_t *v = NULL;
    if (nne_variant_build(m, plan.engine_sites, plan.n_hooks, &v, &err) != 0 ||
        nne_backend_cache_put(cache, plan.key, v, nne_variant_build_ms(v), &b,
                              &err) != 0)
      die("backend for the cache", &err);
    nne_variant_unref(v); /* the cache holds its own reference */
  }
  nne_compiler_plan_free(&plan);
  free(rs);
  return b;
}
#endif /* NNE_BENCH_DAEMON */

/* ---- runs -------------------------------------------------------------- */

enum run_kind { RUN_PRISTINE, RUN_VARIANT };

typedef struct runner {
  const char *label;
  enum run_kind kind;
  nne_variant_t *v;
  nne_hook_fn fn;
  save_ctx_t *save; /* ctx for hook_save, else NULL */
  int n_sites;
  double *t;        /* per round, seconds */
  double *ratio;    /* per round, t / pristine's t of the same round */
  double extra_clone_s, extra_host_s, extra_copy_s;
  size_t extra_bytes;
  int saves_per_run;
} runner_t;

static double run_once(runner_t *r, nne_model_t *m, const nne_tensor_t *ids,
                       nne_tensor_t **keep_logits) {
  nne_err_t err;
  nne_tensor_t *logits = NULL;
  double t0 = now_s();
  int rc;
  if (r->kind == RUN_PRISTINE)
    rc = nne_model_forward(m, ids, NULL, &logits, &err);
  else
    rc = nne_variant_forward(r->v, ids, NULL, r->fn, r->save, &logits, &err);
  if (rc != 0)
    die(r->label, &err);
  if (r->save != NULL)
    r->saves_per_run = r->save->n;
  if (r->save != NULL)
    save_reset(r->save);
  double t1 = now_s();
  if (keep_logits != NULL)
    *keep_logits = logits;
  else
    nne_tensor_unref(logits);
  return t1 - t0;
}

static double max_abs_diff(nne_tensor_t *a, nne_tensor_t *b) {
  nne_err_t err;
  const void *pa, *pb;
  if (nne_tensor_numel(a) != nne_tensor_numel(b) ||
      nne_tensor_dtype(a) != NNE_DTYPE_F32 || nne_tensor_dtype(b) != NNE_DTYPE_F32)
    return INFINITY;
  if (nne_tensor_host_data(a, &pa, &err) != 0 ||
      nne_tensor_host_data(b, &pb, &err) != 0)
    die("host data", &err);
  const float *x = pa, *y = pb;
  double d = 0;
  for (int64_t i = 0; i < nne_tensor_numel(a); i++) {
    double e = fabs((double)x[i] - (double)y[i]);
    if (!(e <= d))
      d = e; /* NaN propagates */
  }
  return d;
}

/* ---- main -------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: bench_edits [--model PATH] [--threads N] [--blas-threads N] "
          "[--rounds N] [--seq N] [--vocab N] [--list]\n"
          "                   [--build-loop N [--build-set "
          "none|one|node|layers|all]] [--cold SET]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *model_path = "build/fixtures-bench/gpt2-small/model.pt";
  int threads = 2, blas_want = 0, rounds = 21, seq = 128, build_loop = 0;
  int list = 0, vocab = 50257;
  const char *build_set = "all";
  const char *cold_set = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--list") == 0) {
      list = 1;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    if (strcmp(a, "--model") == 0)
      model_path = argv[++i];
    else if (strcmp(a, "--threads") == 0)
      threads = atoi(argv[++i]);
    else if (strcmp(a, "--blas-threads") == 0)
      blas_want = atoi(argv[++i]);
    else if (strcmp(a, "--rounds") == 0)
      rounds = atoi(argv[++i]);
    else if (strcmp(a, "--seq") == 0)
      seq = atoi(argv[++i]);
    else if (strcmp(a, "--vocab") == 0)
      vocab = atoi(argv[++i]);
    else if (strcmp(a, "--build-loop") == 0)
      build_loop = atoi(argv[++i]);
    else if (strcmp(a, "--build-set") == 0)
      build_set = argv[++i];
    else if (strcmp(a, "--cold") == 0)
      cold_set = argv[++i];
    else
      usage();
  }
  if (threads < 1 || blas_want < 0 || rounds < 3 || seq < 1 || vocab < 1)
    usage();
  if (blas_want == 0)
    blas_want = threads;

  setvbuf(stdout, NULL, _IOLBF, 0);
  nne_err_t err;
  nne_engine_opts_t eo = {.intra_op_threads = threads};
  if (nne_engine_init(&eo, &err) != 0)
    die("engine init", &err);
  int blas = blas_threads(blas_want);

  /* Machine. */
  char cpu[256], simd[128];
  struct utsname un;
  cpu_model(cpu, sizeof cpu);
  cpu_simd(simd, sizeof simd);
  uname(&un);
  printf("== nnedit bench_edits (in-process, libnne_engine.so; no gRPC)\n");
  printf("machine : %ld CPUs online (nproc), %s [%s]\n",
         sysconf(_SC_NPROCESSORS_ONLN), cpu, simd);
  printf("kernel  : %s %s %s\n", un.sysname, un.release, un.machine);
  Dl_info dli;
  if (dladdr((void *)(uintptr_t)nne_engine_init, &dli) != 0 &&
      dli.dli_fname != NULL) {
    struct stat st;
    char when[64] = "?";
    if (stat(dli.dli_fname, &st) == 0)
      strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S",
               localtime(&st.st_mtime));
    printf("engine  : %s (built %s)\n", dli.dli_fname, when);
  }
  printf("libtorch: %s; intra-op threads %d (nne_engine_init); OpenBLAS "
         "threads %d%s, kernels for core '%s'\n",
         nne_engine_torch_version(), threads, blas,
         blas < 0 ? " (not OpenBLAS?)" : "", blas_core());
  printf("env     : OPENBLAS_CORETYPE=%s OMP_WAIT_POLICY=%s OMP_NUM_THREADS=%s "
         "OPENBLAS_NUM_THREADS=%s\n",
         env_or("OPENBLAS_CORETYPE", "(unset)"),
         env_or("OMP_WAIT_POLICY", "(unset)"),
         env_or("OMP_NUM_THREADS", "(unset)"),
         env_or("OPENBLAS_NUM_THREADS", "(unset)"));

  /* Model. */
  double t0 = now_s();
  nne_model_t *m = NULL;
  if (nne_model_load(model_path, "cpu", NNE_DTYPE_INVALID, &m, &err) != 0)
    die(model_path, &err);
  double load_s = now_s() - t0;
  size_t nmod = nne_model_module_count(m);
  printf("model   : %s (%.1f M params, %.0f MiB, %zu modules, loaded in %.2f s)\n",
         model_path, (double)nne_model_param_count(m) / 1e6,
         mib((long long)nne_model_param_bytes(m)), nmod, load_s);

  if (list) {
    for (size_t i = 0; i < nmod; i++) {
      const nne_module_info_t *mi = nne_model_module(m, i);
      int nin = -1, nout = -1;
      nne_model_module_arity(m, (int)i, &nin, &nout, &err);
      printf("%4zu call %4d in %2d out %2d  %s (%s)\n", i, mi->call_index, nin,
             nout, mi->path[0] ? mi->path : "(root)", mi->class_name);
    }
    nne_model_unref(m);
    return 0;
  }

  /* Input: batch 1 x seq fixed token ids. */
  int64_t shape[2] = {1, seq};
  int64_t *ids_host = xcalloc((size_t)seq, sizeof *ids_host);
  for (int i = 0; i < seq; i++)
    ids_host[i] = (int64_t)((i * 7919 + 13) % vocab);
  nne_tensor_t *ids = NULL;
  if (nne_tensor_from_host(NNE_DTYPE_I64, shape, 2, ids_host, &ids, &err) != 0)
    die("input", &err);

  /* Site sets. */
  size_t cap = nmod + 16;
  site_set_t s_all = {"all-outputs", xcalloc(cap, sizeof(nne_site_t)), 0};
  all_outputs(m, &s_all, cap);
  int n_layers = 0;
  site_set_t s_layers = {"layer-outputs", xcalloc(64, sizeof(nne_site_t)), 0};
  for (int i = 0; i < 64; i++) {
    char path[64];
    snprintf(path, sizeof path, "transformer.h.%d", i);
    int mi = nne_model_module_find(m, path);
    if (mi < 0)
      break;
    set_add(&s_layers, 64, mi, NNE_SITE_OUTPUT, 0, NULL, 0);
    n_layers++;
  }
  if (n_layers == 0) {
    fprintf(stderr, "bench_edits: no transformer.h.N modules: not a GPT-2\n");
    return 1;
  }
  site_set_t s_one = {"one-site", xcalloc(1, sizeof(nne_site_t)), 0};
  {
    char path[64];
    snprintf(path, sizeof path, "transformer.h.%d", n_layers / 2);
    set_add(&s_one, 1, find_module(m, path), NNE_SITE_OUTPUT, 0, NULL, 0);
  }
  /* A one-site variant on a node inside an attention module, which inlines
   * the block and the attention instance. */
  site_set_t s_node = {"one-node-site", xcalloc(1, sizeof(nne_site_t)), 0};
  set_add(&s_node, 1, find_module(m, "transformer.h.0.attn"), NNE_SITE_NODE, 0,
          "aten::softmax", 0);

  site_set_t s_none = {"no sites", NULL, 0};
  if (cold_set != NULL) {
    site_set_t *bs = strcmp(cold_set, "none") == 0     ? &s_none
                     : strcmp(cold_set, "one") == 0    ? &s_one
                     : strcmp(cold_set, "node") == 0   ? &s_node
                     : strcmp(cold_set, "layers") == 0 ? &s_layers
                     : strcmp(cold_set, "all") == 0    ? &s_all
                                                       : NULL;
    if (bs == NULL)
      usage();
    runner_t pr = {.label = "pristine", .kind = RUN_PRISTINE};
    double p1 = run_once(&pr, m, ids, NULL) * 1e3;
    double p2 = run_once(&pr, m, ids, NULL) * 1e3;
    trim_heap();
    long long h0 = heap_bytes();
    nne_variant_t *v = build_dropping(m, bs);
    long long h1 = heap_bytes();
    double b1 = nne_variant_build_ms(v);
    size_t bytes1 = nne_variant_bytes(v);
    runner_t vr = {.label = bs->label, .kind = RUN_VARIANT, .v = v};
    double f[4], p[4], fc[4], pc[4];
    for (int i = 0; i < 4; i++) {
      double c0 = self_cpu_s();
      f[i] = run_once(&vr, m, ids, NULL) * 1e3;
      double c1 = self_cpu_s();
      p[i] = run_once(&pr, m, ids, NULL) * 1e3;
      fc[i] = (c1 - c0) * 1e3;
      pc[i] = (self_cpu_s() - c1) * 1e3;
    }
    long long h2 = heap_bytes();
    nne_variant_t *v2 = build(m, bs);
    double b2 = nne_variant_build_ms(v2);
    long long h3 = heap_bytes();
    printf("cold %-14s sites %3zu: pristine 1st %.1f 2nd %.1f ms; build 1st "
           "%.2f ms, 2nd %.2f ms; variant forwards 1-4 %.1f %.1f %.1f %.1f "
           "ms (pristine between: %.1f %.1f %.1f %.1f); nne_variant_bytes "
           "%.3f MiB (%.3f after the forwards); heap growth: 1st build %.3f "
           "MiB, its 4 forwards %.3f MiB, 2nd build %.3f MiB\n"
           "     CPU ms of the forwards 1-4 (all threads): variant %.0f %.0f "
           "%.0f %.0f, pristine %.0f %.0f %.0f %.0f\n",
           bs->label, bs->n, p1, p2, b1, b2, f[0], f[1], f[2], f[3], p[0],
           p[1], p[2], p[3], mib((long long)bytes1),
           mib((long long)nne_variant_bytes(v)), mib(h1 - h0), mib(h2 - h1),
           mib(h3 - h2), fc[0], fc[1], fc[2], fc[3], pc[0], pc[1], pc[2],
           pc[3]);
    nne_variant_unref(v2);
    nne_variant_unref(v);
    nne_tensor_unref(ids);
    nne_model_unref(m);
    return 0;
  }
  if (build_loop > 0) {
    site_set_t *bs = strcmp(build_set, "none") == 0     ? &s_none
                     : strcmp(build_set, "one") == 0    ? &s_one
                     : strcmp(build_set, "node") == 0   ? &s_node
                     : strcmp(build_set, "layers") == 0 ? &s_layers
                     : strcmp(build_set, "all") == 0    ? &s_all
                                                        : NULL;
    if (bs == NULL)
      usage();
    nne_variant_t *v = build_dropping(m, bs);
    nne_variant_unref(v);
    double *b = xcalloc((size_t)build_loop, sizeof *b);
    for (int i = 0; i < build_loop; i++) {
      v = build(m, bs);
      b[i] = nne_variant_build_ms(v);
      nne_variant_unref(v);
    }
    printf("build-loop: %d builds of %s (%zu sites): median %.2f ms, min %.2f\n",
           build_loop, bs->label, bs->n, median(b, (size_t)build_loop),
           vmin(b, (size_t)build_loop));
    free(b);
    nne_model_unref(m);
    return 0;
  }

  double bench_t0 = now_s();

  /* ---- A: steady-state forward, interleaved --------------------------- */
  printf("\n-- A. forward, batch 1 x %d tokens, %d rounds, variants "
         "interleaved (order rotated each round)\n",
         seq, rounds);
  nne_variant_t *v_empty = build(m, &s_none);
  nne_variant_t *v_all = build_dropping(m, &s_all);
  nne_variant_t *v_layers = build(m, &s_layers);
  nne_variant_t *v_resid = build(m, &s_layers);

  save_ctx_t save_layers = {0}, save_resid = {0};
  save_resid.to_host = 1;
  save_resid.wire_cap = (size_t)n_layers * (size_t)seq * 768 * 4 * 2 + (1u << 20);
  save_resid.wire = xcalloc(save_resid.wire_cap, 1);

  runner_t runners[] = {
      {.label = "pristine nne_model_forward", .kind = RUN_PRISTINE},
      {.label = "variant, no sites (simple executor)", .kind = RUN_VARIANT,
       .v = v_empty},
      {.label = "all module outputs, NULL hook fn", .kind = RUN_VARIANT,
       .v = v_all, .n_sites = (int)s_all.n},
      {.label = "all module outputs, no-op hook fn", .kind = RUN_VARIANT,
       .v = v_all, .fn = hook_noop, .n_sites = (int)s_all.n},
      {.label = "save 12 layer outputs (clone)", .kind = RUN_VARIANT,
       .v = v_layers, .fn = hook_save, .save = &save_layers,
       .n_sites = (int)s_layers.n},
      {.label = "save 12 residuals + host copy", .kind = RUN_VARIANT,
       .v = v_resid, .fn = hook_save, .save = &save_resid,
       .n_sites = (int)s_layers.n},
  };
  const size_t nr = sizeof runners / sizeof runners[0];
  char lbl_save[64], lbl_resid[64];
  snprintf(lbl_save, sizeof lbl_save, "save %d layer outputs (clone)", n_layers);
  snprintf(lbl_resid, sizeof lbl_resid, "save %d residuals + host copy", n_layers);
  runners[4].label = lbl_save;
  runners[5].label = lbl_resid;

  /* Warm-up (the profiling executor's first calls are slow) and a check
   * that every variant computes the pristine logits. */
  nne_tensor_t *ref = NULL;
  for (int w = 0; w < 3; w++) {
    nne_tensor_unref(ref);
    ref = NULL;
    run_once(&runners[0], m, ids, &ref);
  }
  printf("  logits max|variant - pristine|:");
  for (size_t r = 1; r < nr; r++) {
    nne_tensor_t *lg = NULL;
    run_once(&runners[r], m, ids, NULL);
    run_once(&runners[r], m, ids, &lg);
    printf(" %.1e", max_abs_diff(lg, ref));
    nne_tensor_unref(lg);
  }
  long fired = 0;
  {
    nne_tensor_t *lg = NULL;
    if (nne_variant_forward(v_all, ids, NULL, hook_noop, &fired, &lg, &err) != 0)
      die("all-outputs variant", &err);
    nne_tensor_unref(lg);
  }
  printf("\n  hooks fired per forward: all-outputs %ld; saves per forward: "
         "layers %d, residuals %d\n",
         fired, runners[4].saves_per_run, runners[5].saves_per_run);
  nne_tensor_unref(ref);

  for (size_t r = 0; r < nr; r++) {
    runners[r].t = xcalloc((size_t)rounds, sizeof(double));
    runners[r].ratio = xcalloc((size_t)rounds, sizeof(double));
  }
  save_resid.clone_s = save_resid.host_s = save_resid.copy_s = 0;
  save_resid.bytes = 0;
  save_layers.clone_s = 0;
  save_layers.bytes = 0;
  load_probe_t lp;
  load_start(&lp);
  for (int round = 0; round < rounds; round++) {
    for (size_t k = 0; k < nr; k++) {
      size_t r = (k + (size_t)round) % nr;
      runners[r].t[round] = run_once(&runners[r], m, ids, NULL);
    }
    for (size_t r = 0; r < nr; r++)
      runners[r].ratio[round] = runners[r].t[round] / runners[0].t[round];
  }
  double other_a = load_other(&lp);

  double med[16], rmed[16], rlo[16], rhi[16], tmin[16];
  for (size_t r = 0; r < nr; r++) {
    double *tmp = xcalloc((size_t)rounds, sizeof *tmp);
    memcpy(tmp, runners[r].t, (size_t)rounds * sizeof *tmp);
    med[r] = median(tmp, (size_t)rounds);
    double lo = vmin(runners[r].t, (size_t)rounds);
    tmin[r] = lo;
    double hi = vmax(runners[r].t, (size_t)rounds);
    memcpy(tmp, runners[r].ratio, (size_t)rounds * sizeof *tmp);
    rmed[r] = median(tmp, (size_t)rounds);
    /* interquartile range of the per-round ratios */
    rlo[r] = tmp[(size_t)rounds / 4];
    rhi[r] = tmp[((size_t)rounds * 3) / 4];
    free(tmp);
    if (r == 0)
      printf("  %-38s %5s %9s %8s %8s %7s %7s %7s %15s\n", "run", "sites",
             "median ms", "min ms", "max ms", "ratio", "min r", "paired",
             "paired IQR");
    printf("  %-38s %5d %9.1f %8.1f %8.1f %7.3f %7.3f %7.3f  [%5.3f, %5.3f]\n",
           runners[r].label, runners[r].n_sites, med[r] * 1e3, lo * 1e3,
           hi * 1e3, med[r] / med[0], tmin[r] / tmin[0], rmed[r], rlo[r],
           rhi[r]);
  }
  printf("  ratio = median / pristine median; min r = min / pristine min; "
         "paired = median over rounds of (run / pristine run of the same "
         "round)\n");
  printf("  other load on the machine during A: %.0f%% of the CPUs (0%% = "
         "quiet; above ~10%% the ratios are mostly noise)\n",
         other_a * 100);
  double clone_rate = save_layers.clone_s > 0
                          ? (double)save_layers.bytes / save_layers.clone_s
                          : NAN;
  double resid_clone_rate = save_resid.clone_s > 0
                                ? (double)save_resid.bytes / save_resid.clone_s
                                : NAN;
  double copy_rate =
      save_resid.copy_s > 0 ? (double)save_resid.bytes / save_resid.copy_s : NAN;
  double per_fwd_bytes = (double)save_resid.bytes / rounds;
  printf("  saved per forward: %.2f MiB; clone %.2f GB/s (layers) %.2f GB/s "
         "(residuals); nne_tensor_host_data %.1f us per forward (CPU: no copy); "
         "memcpy to a wire buffer %.2f GB/s\n",
         per_fwd_bytes / 1048576.0, clone_rate / 1e9, resid_clone_rate / 1e9,
         save_resid.host_s / rounds * 1e6, copy_rate / 1e9);
  double resid_cost_ms = (save_resid.clone_s + save_resid.host_s + save_resid.copy_s) /
                         rounds * 1e3;
  printf("  time in the residual hooks: %.2f ms per forward (clone + host + "
         "memcpy), %.2f%% of the pristine forward\n",
         resid_cost_ms, resid_cost_ms / (med[0] * 1e3) * 100);

  /* ---- B: build time ---------------------------------------------------- */
  /* 21 builds per set: since variants inline only the path to their sites a
   * build takes milliseconds, and on a shared machine a median of 6 moved by
   * 3x between runs. */
  enum { NB = 21, NF = 2, NBS = 5 };
  printf("\n-- B. variant build (nne_variant_build) and first forwards: %d "
         "builds per set (the set's first build in this process listed "
         "apart), forwards after %d of them\n",
         NB, NF);
  printf("  %-24s %5s %9s %9s %9s %9s %10s %9s %9s\n", "variant", "sites",
         "1st build", "build med", "build min", "build max", "est. MiB",
         "1st fwd", "2nd fwd");
  const site_set_t *bsets[NBS] = {&s_none, &s_one, &s_node, &s_layers, &s_all};
  double build_med[NBS] = {0}, build_min[NBS] = {0}, first_fwd_med[NBS] = {0};
  load_start(&lp);
  for (size_t b = 0; b < NBS; b++) {
    double bms[NB], f1[NF], f2[NF];
    size_t bytes = 0;
    for (int i = 0; i < NB; i++) {
      nne_variant_t *v = build(m, bsets[b]);
      bms[i] = nne_variant_build_ms(v);
      if (i >= 1 && i <= NF) {
        runner_t rr = {.label = bsets[b]->label, .kind = RUN_VARIANT, .v = v,
                       .fn = hook_noop};
        f1[i - 1] = run_once(&rr, m, ids, NULL) * 1e3;
        f2[i - 1] = run_once(&rr, m, ids, NULL) * 1e3;
        bytes = nne_variant_bytes(v);
      }
      nne_variant_unref(v);
    }
    double first = bms[0];
    build_med[b] = median(bms + 1, NB - 1); /* sorts bms[1..] */
    build_min[b] = bms[1];
    first_fwd_med[b] = median(f1, NF);
    printf("  %-24s %5zu %9.2f %9.2f %9.2f %9.2f %10.2f %9.1f %9.1f\n",
           bsets[b]->label, bsets[b]->n, first, build_med[b], bms[1],
           bms[NB - 1], mib((long long)bytes), first_fwd_med[b],
           median(f2, NF));
  }
  double other_b = load_other(&lp);
  printf("  ms (build: nne_variant_build_ms; est. MiB: nne_variant_bytes after "
         "two runs); steady pristine forward %.1f ms (table A); other load "
         "during B: %.0f%%\n",
         med[0] * 1e3, other_b * 100);

  /* ---- C: memory ------------------------------------------------------- */
  printf("\n-- C. memory: 10 distinct variants (variant k: output of "
         "transformer.h.k + its attn's softmax node), built, then run once "
         "each\n");
  enum { NV = 10 };
  nne_variant_t *vs[NV] = {0};
  site_set_t mem_sets[NV];
  nne_site_t mem_sites[NV][2];
  int nv = n_layers < NV ? n_layers : NV;
  trim_heap();
  long long rss0 = rss_bytes(), heap0 = heap_bytes();
  size_t vbytes_sum = 0;
  for (int k = 0; k < nv; k++) {
    char p1[64], p2[64];
    snprintf(p1, sizeof p1, "transformer.h.%d", k);
    snprintf(p2, sizeof p2, "transformer.h.%d.attn", k);
    mem_sets[k] = (site_set_t){"memory variant", mem_sites[k], 0};
    set_add(&mem_sets[k], 2, find_module(m, p1), NNE_SITE_OUTPUT, 0, NULL, 0);
    set_add(&mem_sets[k], 2, find_module(m, p2), NNE_SITE_NODE, 0,
            "aten::softmax", 0);
    vs[k] = build(m, &mem_sets[k]);
  }
  long long heap_built = heap_bytes();
  for (int k = 0; k < nv; k++) {
    runner_t rr = {.label = "memory variant", .kind = RUN_VARIANT, .v = vs[k],
                   .fn = hook_noop};
    run_once(&rr, m, ids, NULL);
  }
  for (int k = 0; k < nv; k++)
    vbytes_sum += nne_variant_bytes(vs[k]);
  long long rss1_raw = rss_bytes(), heap1 = heap_bytes();
  trim_heap();
  long long rss1 = rss_bytes();
  for (int k = 0; k < nv; k++)
    nne_variant_unref(vs[k]);
  long long heap2 = heap_bytes();
  long long rss2_raw = rss_bytes();
  trim_heap();
  long long rss2 = rss_bytes();
  printf("  nne_variant_bytes: %.2f MiB per variant (sum %.2f MiB); held in A: "
         "all-outputs %.2f MiB, layer outputs %.2f MiB, no sites %.2f MiB\n",
         mib((long long)vbytes_sum) / nv, mib((long long)vbytes_sum),
         mib((long long)nne_variant_bytes(v_all)),
         mib((long long)nne_variant_bytes(v_layers)),
         mib((long long)nne_variant_bytes(v_empty)));
  printf("  %-28s %12s %12s %12s\n", "", "before", "10 built+run",
         "after unref");
  printf("  %-28s %12.2f %12.2f %12.2f   (MiB, after malloc_trim(0))\n",
         "RSS", mib(rss0), mib(rss1), mib(rss2));
  printf("  %-28s %12s %12.2f %12.2f   (MiB, before malloc_trim: freed heap "
         "that glibc keeps)\n",
         "RSS, untrimmed", "", mib(rss1_raw), mib(rss2_raw));
  printf("  %-28s %12.2f %12.2f %12.2f   (MiB, mallinfo2 in use)\n",
         "heap in use", mib(heap0), mib(heap1), mib(heap2));
  double rss_per = mib(rss1 - rss0) / nv, heap_per = mib(heap1 - heap0) / nv;
  double heap_freed = heap1 - heap0 != 0
                          ? (double)(heap1 - heap2) / (double)(heap1 - heap0)
                          : NAN;
  double rss_freed = rss1 - rss0 != 0
                         ? (double)(rss1 - rss2) / (double)(rss1 - rss0)
                         : NAN;
  printf("  growth per variant: RSS %.2f MiB, heap %.2f MiB (%.2f MiB of it "
         "by the build, %.2f MiB by the first run); unref gives back %.0f%% of "
         "the heap growth, %.0f%% of the RSS growth\n",
         rss_per, heap_per, mib(heap_built - heap0) / nv,
         mib(heap1 - heap_built) / nv, heap_freed * 100, rss_freed * 100);

  /* ---- D: cache-hit stand-in ------------------------------------------- */
  printf("\n-- D. cache hit (stand-in: canonical sorted site list -> FNV-1a "
         "-> probe -> strcmp; NOT the daemon's cache)\n");
  table_t tb;
  memset(&tb, 0, sizeof tb);
  keybuf_t kb = {0};
  const site_set_t *csets[] = {&s_one, &s_node, &s_layers, &s_all};
  for (size_t i = 0; i < 4; i++) {
    size_t l = canonical_key(m, csets[i]->sites, csets[i]->n, &kb);
    table_put(&tb, kb.buf, l, csets[i]);
  }
  for (int k = 0; k < nv; k++) {
    size_t l = canonical_key(m, mem_sets[k].sites, mem_sets[k].n, &kb);
    table_put(&tb, kb.buf, l, &mem_sets[k]);
  }
  table_t tbb;
  memset(&tbb, 0, sizeof tbb);
  binkey_t bk = {0};
  for (size_t i = 0; i < 4; i++) {
    size_t l = binary_key(csets[i]->sites, csets[i]->n, &bk);
    table_put(&tbb, (const char *)bk.buf, l, csets[i]);
  }
  for (int k = 0; k < nv; k++) {
    size_t l = binary_key(mem_sets[k].sites, mem_sets[k].n, &bk);
    table_put(&tbb, (const char *)bk.buf, l, &mem_sets[k]);
  }
  double hit_us[4] = {0}, hit_bin_us[4] = {0};
  printf("  %-24s %5s %9s %12s %12s %9s %12s\n", "lookup of", "sites",
         "key bytes", "full us", "hash+cmp us", "bin bytes", "bin full us");
  for (size_t i = 0; i < 4; i++) {
    enum { BATCHES = 41, PER = 200 };
    double full[BATCHES], only[BATCHES], bin[BATCHES];
    size_t keylen = 0, binlen = 0;
    for (int b = 0; b < BATCHES; b++) {
      double a = now_s();
      for (int j = 0; j < PER; j++) {
        keylen = canonical_key(m, csets[i]->sites, csets[i]->n, &kb);
        if (table_get(&tb, kb.buf, keylen) != csets[i]) {
          fprintf(stderr, "bench_edits: stand-in cache missed\n");
          return 1;
        }
      }
      full[b] = (now_s() - a) / PER * 1e6;
      a = now_s();
      for (int j = 0; j < PER; j++)
        if (table_get(&tb, kb.buf, keylen) != csets[i]) {
          fprintf(stderr, "bench_edits: stand-in cache missed\n");
          return 1;
        }
      only[b] = (now_s() - a) / PER * 1e6;
      a = now_s();
      for (int j = 0; j < PER; j++) {
        binlen = binary_key(csets[i]->sites, csets[i]->n, &bk);
        if (table_get_bin(&tbb, bk.buf, binlen) != csets[i]) {
          fprintf(stderr, "bench_edits: stand-in cache missed\n");
          return 1;
        }
      }
      bin[b] = (now_s() - a) / PER * 1e6;
    }
    hit_us[i] = median(full, BATCHES);
    hit_bin_us[i] = median(bin, BATCHES);
    printf("  %-24s %5zu %9zu %12.3f %12.3f %9zu %12.3f\n", csets[i]->label,
           csets[i]->n, keylen, hit_us[i], median(only, BATCHES), binlen,
           hit_bin_us[i]);
  }
  printf("  full = canonicalise the request's sites (format, sort, join) + "
         "hash + probe + strcmp; bin = the same with a binary key (sort "
         "structs, memcmp)\n");

  /* ---- E: the daemon's cache ------------------------------------------- */
  /* Rows: (site set, spelling). The 1-site and 12-site sets are measured in
   * the raw spelling and with standard names; all-outputs in the raw one
   * (most modules have no standard name). */
  enum { NE = 5 };
  /* [row][0 = median, 1 = min], us; judged in the summary */
  double e_res[NE][2] = {{0}}, e_pg[NE][2] = {{0}}, e_full[NE][2] = {{0}};
  size_t e_n[NE] = {0};
  double other_e = NAN;
  int e_ran = 0;
#ifdef NNE_BENCH_DAEMON
  {
    printf("\n-- E. cache hit through the daemon's own code (nneditd_core): "
           "site strings -> nne_names_resolve_site -> nne_compiler_plan -> "
           "nne_compiler_get_backend (hit) -> variant ref\n");
    /* The names as the registry builds them at load (registry.c
     * build_names): builtin family maps, detection, then load-time
     * validation, which can mark standard names unavailable. n_heads 0:
     * only the q/k/v head views depend on it, and no row uses them. */
    nne_family_set_t *fams = NULL;
    nne_names_t *names = NULL;
    if (nne_family_set_load(NULL, &fams, &err) != 0)
      die("family maps", &err);
    nne_names_module_t *mods = xcalloc(nmod, sizeof *mods);
    for (size_t i = 0; i < nmod; i++) {
      const nne_module_info_t *mi = nne_model_module(m, i);
      mods[i].path = mi->path;
      mods[i].class_name = mi->class_name;
      mods[i].parent = mi->parent;
    }
    if (nne_names_build(fams, NULL, mods, nmod, NULL, 0, &names, &err) != 0)
      die("names", &err);
    {
      /* What a load spends on names (moved here from a unit test's time
       * budget, which failed on loaded machines): the median of 21 builds,
       * per module, against the target of an 80-layer Llama (1366
       * modules) in 5 ms. */
      double tb[21], per_mod_us;
      for (int k = 0; k < 21; k++) {
        nne_names_t *nb = NULL;
        double t0 = now_s();
        if (nne_names_build(fams, NULL, mods, nmod, NULL, 0, &nb, &err) != 0)
          die("names", &err);
        tb[k] = now_s() - t0;
        nne_names_free(nb);
      }
      qsort(tb, 21, sizeof tb[0], cmp_double);
      per_mod_us = tb[10] * 1e6 / (double)nmod;
      printf("  names build: %.3f ms for %zu modules (median of 21), %.2f us "
             "per module -> an 80-layer Llama (1366 modules) in ~%.2f ms: %s "
             "(target 5 ms)\n",
             tb[10] * 1e3, nmod, per_mod_us, per_mod_us * 1366 / 1e3,
             verdict(per_mod_us * 1366 / 1e3 <= 5));
    }
    free(mods);
    if (nne_validate_names(m, names, vocab, 0, &err) != 0)
      die("name validation", &err);
    /* The daemon's default capacity (--backend-cache-bytes, config.c). */
    nne_backend_cache_t cache;
    nne_backend_cache_init(&cache, (size_t)512 << 20);

    const site_set_t *esets[NE] = {&s_one, &s_one, &s_layers, &s_layers,
                                   &s_all};
    const int estd[NE] = {0, 1, 0, 1, 0};
    char **etext[NE];
    nne_backend_t *ewant[NE];
    /* The three measured backends go in first: get() scans the list from
     * the newest entry, so they sit behind the fillers, the worst place. */
    for (size_t r = 0; r < NE; r++) {
      e_n[r] = esets[r]->n;
      etext[r] = site_texts(m, esets[r]->sites, esets[r]->n, estd[r]);
      ewant[r] = cache_fill(m, names, &cache, etext[r], e_n[r]);
    }
    /* Fillers: the 10 two-site sets of C, each its own backend, as a model
     * serving a few edit sets and traces would hold. */
    for (int k = 0; k < nv; k++) {
      char **t = site_texts(m, mem_sets[k].sites, mem_sets[k].n, 0);
      cache_fill(m, names, &cache, t, mem_sets[k].n);
      free_texts(t, mem_sets[k].n);
    }
    printf("  names: family '%s' (%s), %zu warnings after validation; cache: "
           "%zu backends, %.1f MiB of %.0f MiB; the measured entries are the "
           "oldest (last in get()'s scan)\n",
           nne_names_family(names), nne_names_family_reason(names),
           nne_names_warning_count(names), cache.count,
           mib((long long)cache.bytes), mib((long long)cache.capacity_bytes));
    for (size_t i = 0; i < nne_names_warning_count(names) && i < 3; i++)
      printf("  names warning: %s\n", nne_names_warning(names, i));

    double e_grp[NE][2], e_get[NE][2]; /* printed only */
    uint64_t hits0 = cache.hits, misses0 = cache.misses;
    printf("  %-30s %5s %6s %15s %15s %15s %15s %15s\n", "request (spelling)",
           "sites", "key B", "resolve us", "group us", "plan+get us",
           "get alone us", "all us");
    load_probe_t lpe;
    load_start(&lpe);
    for (size_t r = 0; r < NE; r++) {
      char lbl[64];
      snprintf(lbl, sizeof lbl, "%s (%s)", esets[r]->label,
               estd[r] ? "standard" : "raw");
      cache_req_t q = {.label = lbl, .names = names, .m = m, .cache = &cache,
                       .text = etext[r], .n = e_n[r],
                       .rs = xcalloc(e_n[r], sizeof(nne_names_site_t)),
                       .want = ewant[r]};
      req_resolve(&q);
      nne_compile_plan_t plan;
      if (nne_compiler_plan(m, q.rs, q.n, &plan, &err) != 0)
        die("nne_compiler_plan", &err);
      q.key = plan.key; /* a copy of the entry's key, as a request has */
      time_us(req_resolve, &q, &e_res[r][0], &e_res[r][1]);
      time_us(req_group, &q, &e_grp[r][0], &e_grp[r][1]);
      time_us(req_plan_get, &q, &e_pg[r][0], &e_pg[r][1]);
      time_us(req_get, &q, &e_get[r][0], &e_get[r][1]);
      time_us(req_full, &q, &e_full[r][0], &e_full[r][1]);
      printf("  %-30s %5zu %6zu %7.2f/%7.2f %7.2f/%7.2f %7.2f/%7.2f "
             "%7.3f/%7.3f %7.2f/%7.2f\n",
             lbl, q.n, strlen(plan.key), e_res[r][0], e_res[r][1],
             e_grp[r][0], e_grp[r][1], e_pg[r][0], e_pg[r][1], e_get[r][0],
             e_get[r][1], e_full[r][0], e_full[r][1]);
      nne_compiler_plan_free(&plan);
      free(q.rs);
    }
    other_e = load_other(&lpe);
    printf("  us per request, median/min over 51 batches of >= 1 ms; "
           "plan+get = nne_compiler_plan + get + variant ref/unref + "
           "plan_free (what a request does after resolving); all = resolve "
           "+ plan+get; group = nne_compiler_group_by_hierarchy alone; "
           "cache hits %llu, misses %llu while timing; other load during E: "
           "%.0f%%\n",
           (unsigned long long)(cache.hits - hits0),
           (unsigned long long)(cache.misses - misses0), other_e * 100);
    for (size_t r = 0; r < NE; r++)
      free_texts(etext[r], e_n[r]);
    nne_backend_cache_clear(&cache);
    nne_names_free(names);
    nne_family_set_free(fams);
    e_ran = 1;
  }
#else
  printf("\n-- E. skipped: built stand-alone, without the daemon's objects "
         "(nneditd_core); build bench_edits from the top-level project\n");
#endif

  /* ---- summary ---------------------------------------------------------- */
  double total_s = now_s() - bench_t0;
  /* The ratios judged: medians on a quiet machine. When other work took
   * more than 10% of the CPUs during table A, interference only ever adds
   * time, and the fastest of the rounds is the better estimate of what a
   * run costs: the minimum-based ratio is judged then (both are printed). */
  int busy = !(other_a <= 0.10);
  double jr[16]; /* the judged ratios */
  for (size_t i = 0; i < nr; i++)
    jr[i] = busy ? tmin[i] / tmin[0] : med[i] / med[0];
  const char *est = busy ? "min" : "median";
  double worst_hit = vmax(hit_us, 4), worst_bin = vmax(hit_bin_us, 4);
  printf("\n== targets (%.0f s measured after the model load; ratios from "
         "table A, same run)\n",
         total_s);
  if (busy)
    printf("  note: other work used %.0f%% of the CPUs during A: the ratios "
           "judged are min/min (medians: NULL fn %.3f, no-op fn %.3f, save "
           "%.3f, residuals %.3f)\n",
           other_a * 100, med[2] / med[0], med[3] / med[0], med[4] / med[0],
           med[5] / med[0]);
  printf("  [%s] no-op hooks at every module output (%zu sites), NULL fn: "
         "%.3f x pristine (%s; target <= 1.03)\n",
         verdict(jr[2] <= 1.03), s_all.n, jr[2], est);
  printf("  [%s] no-op hooks at every module output (%zu sites), no-op fn: "
         "%.3f x pristine (%s; target <= 1.03)\n",
         verdict(jr[3] <= 1.03), s_all.n, jr[3], est);
  printf("  [%s] saving every layer's output (%zu clones): %.3f x pristine "
         "(%s; target <= 1.10)\n",
         verdict(jr[4] <= 1.10), s_layers.n, jr[4], est);
  static const char *const bnames[NBS] = {"no-sites (floor)", "one-site",
                                          "one-node-site", "layer-outputs",
                                          "all-outputs"};
  /* Builds are judged by table A's rule on B's own load: the median on a
   * quiet machine, the fastest build when other work took > 10%. */
  int bbusy = !(other_b <= 0.10);
  for (size_t b = 0; b < NBS; b++) {
    double jb = bbusy ? build_min[b] : build_med[b];
    printf("  [%s] build, %s variant: %.2f ms (%s; median %.2f, min %.2f; "
           "target <= 10 ms); first forward %.0f ms = %.3f x steady "
           "pristine\n",
           verdict(jb <= 10), bnames[b], jb, bbusy ? "min" : "median",
           build_med[b], build_min[b], first_fwd_med[b],
           first_fwd_med[b] / (med[0] * 1e3));
  }
  printf("  [%s] cache hit (stand-in, string key, worst of 4 keys = %zu "
         "sites): %.2f us (target <= 20 us); binary key %.2f us; %zu sites: "
         "%.2f us\n",
         verdict(worst_hit <= 20), s_all.n, worst_hit, worst_bin, s_layers.n,
         hit_us[2]);
  if (e_ran) {
    /* The judged figure follows table A's rule, applied to E's own load:
     * medians on a quiet machine, the min over batches when other work took
     * more than 10% of the CPUs (it only ever adds time). */
    int ebusy = !(other_e <= 0.10);
    int ej = ebusy ? 1 : 0;
    const char *eest = ebusy ? "min" : "median";
    /* rows (one raw, one std), (layers raw, layers std), (all raw) */
    static const size_t first[3] = {0, 2, 4}, last[3] = {1, 3, 4};
    for (size_t c = 0; c < 3; c++) {
      size_t a = first[c], b = last[c];
      double pg = e_pg[a][ej] > e_pg[b][ej] ? e_pg[a][ej] : e_pg[b][ej];
      printf("  [%s] cache hit, daemon's cache, %zu site%s: plan + get %.2f "
             "us (%s; median %.2f, min %.2f; target <= 20 us)\n",
             verdict(pg <= 20), e_n[a], e_n[a] == 1 ? "" : "s", pg, eest,
             e_pg[a][0], e_pg[a][1]);
      if (a != b)
        printf("  [%s]   with name resolution: %.2f us raw names, %.2f us "
               "standard names (resolution alone %.2f / %.2f us)\n",
               verdict(e_full[a][ej] <= 20 && e_full[b][ej] <= 20),
               e_full[a][ej], e_full[b][ej], e_res[a][ej], e_res[b][ej]);
      else
        printf("  [%s]   with name resolution: %.2f us raw names "
               "(resolution alone %.2f us)\n",
               verdict(e_full[a][ej] <= 20), e_full[a][ej], e_res[a][ej]);
    }
  }
  printf("  [info] memory per variant: %.2f MiB by nne_variant_bytes, RSS "
         "+%.2f MiB, heap +%.2f MiB; unref frees %.0f%% of the heap growth\n",
         mib((long long)vbytes_sum) / nv, rss_per, heap_per, heap_freed * 100);
  printf("  [info] issue 5 (in-process part): save 12 residuals + host copy: "
         "%.3f x pristine (%s); clone %.2f GB/s, memcpy %.2f GB/s, %.2f MiB "
         "per forward\n",
         jr[5], est, resid_clone_rate / 1e9, copy_rate / 1e9,
         per_fwd_bytes / 1048576.0);

  for (size_t r = 0; r < nr; r++) {
    free(runners[r].t);
    free(runners[r].ratio);
  }
  nne_variant_unref(v_empty);
  nne_variant_unref(v_all);
  nne_variant_unref(v_layers);
  nne_variant_unref(v_resid);
  save_reset(&save_layers);
  save_reset(&save_resid);
  free(save_resid.wire);
  for (size_t i = 0; i < TABLE_SLOTS; i++)
    free(tb.slot[i].key);
  free(kb.buf);
  free(kb.lines);
  free(kb.text);
  for (size_t i = 0; i < TABLE_SLOTS; i++)
    free(tbb.slot[i].key);
  free(bk.sorted);
  free(bk.buf);
  free(s_all.sites);
  free(s_layers.sites);
  free(s_one.sites);
  free(s_node.sites);
  free(ids_host);
  nne_tensor_unref(ids);
  nne_model_unref(m);
  return 0;
}
