/* test_health.c — daemon/server/health.c, without gRPC: statuses per
 * service, names that are refused, and the watchers.
 *
 * Proves: a status set is the status read back, per service; a name never
 * set reads SERVICE_UNKNOWN; a name of NNE_HEALTH_SERVICE_MAX bytes or more
 * is refused and changes nothing; every watcher is told exactly once per
 * change and not at all when a status does not change (nor for a refused
 * name); set_all tells once however many services change; a watcher may
 * unwatch itself, or another watcher, from inside its callback (the other
 * one may even be freed there: the ASan build catches a use after free),
 * and the remaining watchers are still told once; close tells every
 * watcher once more and closing() turns true; the status names.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "server/health.h"
#include "unit_main.h"

/* A watcher that counts its notifications and may act on the health from
 * inside its callback. */
typedef struct counter {
  nne_health_watcher_t w; /* first: the callback gets &c->w */
  nne_health_t *h;
  int calls;
  nne_health_status_t seen; /* get(service) at the last call */
  const char *service;
  bool unwatch_self;             /* on the first call */
  struct counter *unwatch_other; /* on the first call (not freed) */
  struct counter **free_other;   /* unwatch and free *free_other */
} counter_t;

static void counter_changed(nne_health_watcher_t *w) {
  counter_t *c = (counter_t *)w;
  c->calls++;
  if (c->service != NULL)
    c->seen = nne_health_get(c->h, c->service);
  if (c->unwatch_self) {
    c->unwatch_self = false;
    nne_health_unwatch(c->h, &c->w);
  }
  if (c->unwatch_other != NULL) {
    nne_health_unwatch(c->h, &c->unwatch_other->w);
    c->unwatch_other = NULL;
  }
  if (c->free_other != NULL && *c->free_other != NULL) {
    /* health.h: a watcher must be unwatched before it is freed; then it is
     * the caller's to free, even inside a notification. */
    nne_health_unwatch(c->h, &(*c->free_other)->w);
    free(*c->free_other);
    *c->free_other = NULL;
    c->free_other = NULL;
  }
}

static void counter_init(counter_t *c, nne_health_t *h) {
  memset(c, 0, sizeof *c);
  c->w.changed = counter_changed;
  c->h = h;
}

static void set_ok(nne_health_t *h, const char *service,
                   nne_health_status_t st) {
  nne_err_t err;
  ck_assert_msg(nne_health_set(h, service, st, &err) == 0, "set '%s': %s",
                service, err.msg);
}

START_TEST(test_set_get) {
  nne_health_t h;
  nne_health_init(&h);
  ck_assert_int_eq(nne_health_get(&h, ""), NNE_HEALTH_SERVICE_UNKNOWN);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Models"),
                   NNE_HEALTH_SERVICE_UNKNOWN);
  set_ok(&h, "", NNE_HEALTH_SERVING);
  set_ok(&h, "nnedit.v1.Models", NNE_HEALTH_NOT_SERVING);
  set_ok(&h, "nnedit.v1.Infer", NNE_HEALTH_UNKNOWN);
  ck_assert_int_eq(nne_health_get(&h, ""), NNE_HEALTH_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Models"),
                   NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Infer"), NNE_HEALTH_UNKNOWN);
  /* names are compared whole */
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Model"),
                   NNE_HEALTH_SERVICE_UNKNOWN);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Models "),
                   NNE_HEALTH_SERVICE_UNKNOWN);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.models"),
                   NNE_HEALTH_SERVICE_UNKNOWN);
  /* changing one leaves the others; setting again does not add another */
  set_ok(&h, "nnedit.v1.Models", NNE_HEALTH_SERVING);
  set_ok(&h, "nnedit.v1.Models", NNE_HEALTH_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Models"), NNE_HEALTH_SERVING);
  ck_assert_int_eq(nne_health_get(&h, ""), NNE_HEALTH_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Infer"), NNE_HEALTH_UNKNOWN);
  ck_assert_uint_eq(h.n, 3);
  ck_assert(!nne_health_closing(&h));
  nne_health_free(&h);
}
END_TEST

START_TEST(test_long_name_refused) {
  nne_health_t h;
  nne_err_t err;
  char name[NNE_HEALTH_SERVICE_MAX + 8];
  counter_t c;

  nne_health_init(&h);
  counter_init(&c, &h);
  nne_health_watch(&h, &c.w);
  /* 255 bytes + NUL fits */
  memset(name, 'a', sizeof name);
  name[NNE_HEALTH_SERVICE_MAX - 1] = '\0';
  set_ok(&h, name, NNE_HEALTH_SERVING);
  ck_assert_int_eq(nne_health_get(&h, name), NNE_HEALTH_SERVING);
  ck_assert_int_eq(c.calls, 1);
  /* 256 bytes does not, and changes nothing */
  memset(name, 'b', sizeof name);
  name[NNE_HEALTH_SERVICE_MAX] = '\0';
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_health_set(&h, name, NNE_HEALTH_SERVING, &err),
                   NNE_EINVAL);
  ck_assert_int_eq(err.code, NNE_EINVAL);
  ck_assert_msg(strstr(err.msg, "256 bytes") != NULL &&
                    strstr(err.msg, "at most 255") != NULL,
                "message: %s", err.msg);
  ck_assert_int_eq(nne_health_get(&h, name), NNE_HEALTH_SERVICE_UNKNOWN);
  ck_assert_uint_eq(h.n, 1);
  ck_assert_int_eq(c.calls, 1);
  /* far longer, and a refused name that is already present (the 255-byte
   * one extended) */
  {
    size_t big = 4096;
    char *p = malloc(big + 1);
    ck_assert_ptr_nonnull(p);
    memset(p, 'a', big);
    p[big] = '\0';
    ck_assert_int_eq(nne_health_set(&h, p, NNE_HEALTH_NOT_SERVING, &err),
                     NNE_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "4096 bytes"));
    free(p);
  }
  ck_assert_uint_eq(h.n, 1);
  ck_assert_int_eq(c.calls, 1);
  nne_health_unwatch(&h, &c.w);
  nne_health_free(&h);
}
END_TEST

START_TEST(test_watchers_once_per_change) {
  nne_health_t h;
  counter_t a, b, c;
  int i;

  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(&b, &h);
  counter_init(&c, &h);
  a.service = b.service = c.service = "svc";
  nne_health_watch(&h, &a.w);
  nne_health_watch(&h, &b.w);
  nne_health_watch(&h, &c.w);

  set_ok(&h, "svc", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 1);
  /* watchers are told after the change: they read the new status */
  ck_assert_int_eq(a.seen, NNE_HEALTH_SERVING);
  ck_assert_int_eq(c.seen, NNE_HEALTH_SERVING);

  /* the same status again: nobody is told */
  for (i = 0; i < 5; i++)
    set_ok(&h, "svc", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 1);

  set_ok(&h, "svc", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 2);
  ck_assert_int_eq(b.calls, 2);
  ck_assert_int_eq(c.calls, 2);
  ck_assert_int_eq(b.seen, NNE_HEALTH_NOT_SERVING);

  /* another service changing tells them too (a watcher filters itself) */
  set_ok(&h, "other", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 3);
  ck_assert_int_eq(b.calls, 3);
  ck_assert_int_eq(c.calls, 3);
  ck_assert_int_eq(a.seen, NNE_HEALTH_NOT_SERVING);

  /* an unwatched watcher is not told; the others still are, once */
  nne_health_unwatch(&h, &b.w);
  set_ok(&h, "svc", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 4);
  ck_assert_int_eq(b.calls, 3);
  ck_assert_int_eq(c.calls, 4);
  /* unwatching twice, or one never watched, is harmless */
  nne_health_unwatch(&h, &b.w);
  set_ok(&h, "svc", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 5);
  ck_assert_int_eq(b.calls, 3);
  ck_assert_int_eq(c.calls, 5);

  nne_health_unwatch(&h, &a.w);
  nne_health_unwatch(&h, &c.w);
  ck_assert_ptr_null(h.watchers);
  set_ok(&h, "svc", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 5);
  ck_assert_int_eq(c.calls, 5);
  nne_health_free(&h);
}
END_TEST

/* A service set for the first time goes from SERVICE_UNKNOWN (what get()
 * said before) to its status: that is a change, and a Watch stream on that
 * service must send it (grpc.health.v1: "if at some future point, the
 * serving status of the service becomes known, the server will send a new
 * message"). Setting an existing service's status to what it already is
 * tells nobody. */
START_TEST(test_new_service_is_a_change) {
  nne_health_t h;
  counter_t a;

  nne_health_init(&h);
  counter_init(&a, &h);
  a.service = "late";
  nne_health_watch(&h, &a.w);
  ck_assert_int_eq(nne_health_get(&h, "late"), NNE_HEALTH_SERVICE_UNKNOWN);
  set_ok(&h, "late", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(a.seen, NNE_HEALTH_SERVING);

  a.calls = 0;
  a.service = "later";
  set_ok(&h, "later", NNE_HEALTH_UNKNOWN);
  ck_assert_int_eq(nne_health_get(&h, "later"), NNE_HEALTH_UNKNOWN);
  ck_assert_msg(a.calls == 1,
                "get('later') went from SERVICE_UNKNOWN to UNKNOWN, but the "
                "watcher was told %d times",
                a.calls);
  set_ok(&h, "later", NNE_HEALTH_UNKNOWN);
  ck_assert_int_eq(a.calls, 1);
  nne_health_unwatch(&h, &a.w);
  nne_health_free(&h);
}
END_TEST

START_TEST(test_set_all_notifies_once) {
  nne_health_t h;
  counter_t a, b;

  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(&b, &h);
  /* with nothing set, set_all changes nothing and tells nobody */
  nne_health_watch(&h, &a.w);
  nne_health_set_all(&h, NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 0);
  ck_assert_uint_eq(h.n, 0);

  set_ok(&h, "", NNE_HEALTH_SERVING);
  set_ok(&h, "nnedit.v1.Models", NNE_HEALTH_SERVING);
  set_ok(&h, "nnedit.v1.Infer", NNE_HEALTH_SERVING);
  set_ok(&h, "nnedit.v1.Edit", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 4);
  nne_health_watch(&h, &b.w);
  a.calls = 0;

  /* three of four change: one notification each */
  nne_health_set_all(&h, NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(nne_health_get(&h, ""), NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Models"),
                   NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Infer"),
                   NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Edit"),
                   NNE_HEALTH_NOT_SERVING);
  /* no service is added */
  ck_assert_int_eq(nne_health_get(&h, "nnedit.v1.Trace"),
                   NNE_HEALTH_SERVICE_UNKNOWN);
  ck_assert_uint_eq(h.n, 4);

  /* nothing changes: nobody is told */
  nne_health_set_all(&h, NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);

  /* one of four changes: still one notification */
  set_ok(&h, "nnedit.v1.Edit", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 2);
  nne_health_set_all(&h, NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 3);
  ck_assert_int_eq(b.calls, 3);
  ck_assert_int_eq(nne_health_get(&h, ""), NNE_HEALTH_SERVING);

  nne_health_unwatch(&h, &a.w);
  nne_health_unwatch(&h, &b.w);
  nne_health_free(&h);
}
END_TEST

/* A watcher that unwatches itself from inside its callback: it is told
 * once, not again, and the watchers on either side of it are told once.
 * Run in the sanitizer build, a walk through freed or stale links fails. */
START_TEST(test_unwatch_self_in_callback) {
  nne_health_t h;
  counter_t a, b, c;

  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(&b, &h);
  counter_init(&c, &h);
  b.unwatch_self = true;
  nne_health_watch(&h, &a.w);
  nne_health_watch(&h, &b.w);
  nne_health_watch(&h, &c.w); /* list: c, b, a */

  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 1);
  set_ok(&h, "", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 2);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 2);

  /* the head and the tail of the list too */
  c.unwatch_self = true;
  a.unwatch_self = true;
  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 3);
  ck_assert_int_eq(c.calls, 3);
  ck_assert_ptr_null(h.watchers);
  set_ok(&h, "", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 3);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 3);
  nne_health_free(&h);
}
END_TEST

/* A watcher that frees itself after unwatching (what a finished Watch
 * stream does): the list walk must not touch it again. */
static void free_self_changed(nne_health_watcher_t *w) {
  counter_t *c = (counter_t *)w;
  nne_health_unwatch(c->h, w);
  free(c);
}

START_TEST(test_unwatch_and_free_self_in_callback) {
  nne_health_t h;
  counter_t a, *b = malloc(sizeof *b);

  ck_assert_ptr_nonnull(b);
  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(b, &h);
  b->w.changed = free_self_changed;
  nne_health_watch(&h, &a.w);
  nne_health_watch(&h, &b->w); /* list: b, a */
  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_ptr_eq(h.watchers, &a.w);
  nne_health_unwatch(&h, &a.w);
  nne_health_free(&h);
}
END_TEST

/* A watcher that unwatches another one from inside its callback: the other
 * one, unwatched, is not told (its owner may already have freed it), and
 * every watcher still watching is told exactly once. */
START_TEST(test_unwatch_other_in_callback) {
  nne_health_t h;
  counter_t a, b, c, d;

  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(&b, &h);
  counter_init(&c, &h);
  counter_init(&d, &h);
  nne_health_watch(&h, &d.w);
  nne_health_watch(&h, &c.w);
  nne_health_watch(&h, &b.w);
  nne_health_watch(&h, &a.w); /* list: a, b, c, d */

  /* a unwatches the one after it (b), which has not been told yet */
  a.unwatch_other = &b;
  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_msg(b.calls == 0 && c.calls == 1 && d.calls == 1,
                "a unwatched b in its callback: b (unwatched before its turn) "
                "was told %d times (want 0); c and d, still watching, were "
                "told %d and %d times (want 1 each)",
                b.calls, c.calls, d.calls);

  /* c unwatches one already told this time (a, first in the list): every
   * watcher is told once, and a not again after */
  c.unwatch_other = &a;
  set_ok(&h, "", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 2);
  ck_assert_int_eq(c.calls, 2);
  ck_assert_int_eq(d.calls, 2);
  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert_int_eq(a.calls, 2);
  ck_assert_int_eq(b.calls, 0);
  ck_assert_int_eq(c.calls, 3);
  ck_assert_int_eq(d.calls, 3);

  nne_health_unwatch(&h, &c.w);
  nne_health_unwatch(&h, &d.w);
  nne_health_free(&h);
}
END_TEST

/* As above, but the unwatched watcher is freed inside the callback: under
 * ASan, calling it afterwards is a heap use after free. */
START_TEST(test_unwatch_and_free_other_in_callback) {
  nne_health_t h;
  counter_t a, c, *b = malloc(sizeof *b);

  ck_assert_ptr_nonnull(b);
  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(b, &h);
  counter_init(&c, &h);
  nne_health_watch(&h, &c.w);
  nne_health_watch(&h, &b->w);
  nne_health_watch(&h, &a.w); /* list: a, b, c */
  a.free_other = &b;
  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(a.calls, 1);
  ck_assert_msg(c.calls == 1, "c was told %d times (want 1)", c.calls);
  nne_health_unwatch(&h, &a.w);
  nne_health_unwatch(&h, &c.w);
  nne_health_free(&h);
}
END_TEST

START_TEST(test_close) {
  nne_health_t h;
  counter_t a, b, c;

  nne_health_init(&h);
  counter_init(&a, &h);
  counter_init(&b, &h);
  counter_init(&c, &h);
  a.service = "svc";
  set_ok(&h, "svc", NNE_HEALTH_SERVING);
  nne_health_watch(&h, &a.w);
  nne_health_watch(&h, &b.w);
  nne_health_watch(&h, &c.w);
  b.unwatch_self = true; /* a stream that ends on the last message */
  ck_assert(!nne_health_closing(&h));

  /* close changes no status but tells every watcher once */
  nne_health_close(&h);
  ck_assert(nne_health_closing(&h));
  ck_assert_int_eq(a.calls, 1);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(a.seen, NNE_HEALTH_SERVING);
  /* statuses stay readable */
  ck_assert_int_eq(nne_health_get(&h, "svc"), NNE_HEALTH_SERVING);
  ck_assert_int_eq(nne_health_get(&h, "nope"), NNE_HEALTH_SERVICE_UNKNOWN);
  /* b unwatched itself; a and c remain watched and hear later changes */
  set_ok(&h, "svc", NNE_HEALTH_NOT_SERVING);
  ck_assert_int_eq(a.calls, 2);
  ck_assert_int_eq(b.calls, 1);
  ck_assert_int_eq(c.calls, 2);
  ck_assert(nne_health_closing(&h));

  nne_health_unwatch(&h, &a.w);
  nne_health_unwatch(&h, &c.w);
  nne_health_free(&h);
}
END_TEST

/* closing() is true by the time the watchers are told (a Watch stream reads
 * it in its callback to decide to end). */
static bool g_closing_seen;
static void closing_changed(nne_health_watcher_t *w) {
  counter_t *c = (counter_t *)w;
  c->calls++;
  g_closing_seen = nne_health_closing(c->h);
}

START_TEST(test_closing_visible_in_callback) {
  nne_health_t h;
  counter_t a;

  nne_health_init(&h);
  counter_init(&a, &h);
  a.w.changed = closing_changed;
  nne_health_watch(&h, &a.w);
  g_closing_seen = true;
  set_ok(&h, "", NNE_HEALTH_SERVING);
  ck_assert(!g_closing_seen);
  nne_health_close(&h);
  ck_assert_int_eq(a.calls, 2);
  ck_assert(g_closing_seen);
  nne_health_unwatch(&h, &a.w);
  nne_health_free(&h);
  /* a freed health is empty and may be freed again */
  ck_assert_uint_eq(h.n, 0);
  ck_assert_ptr_null(h.entries);
  nne_health_free(&h);
}
END_TEST

START_TEST(test_status_names) {
  ck_assert_str_eq(nne_health_status_name(NNE_HEALTH_UNKNOWN), "UNKNOWN");
  ck_assert_str_eq(nne_health_status_name(NNE_HEALTH_SERVING), "SERVING");
  ck_assert_str_eq(nne_health_status_name(NNE_HEALTH_NOT_SERVING),
                   "NOT_SERVING");
  ck_assert_str_eq(nne_health_status_name(NNE_HEALTH_SERVICE_UNKNOWN),
                   "SERVICE_UNKNOWN");
  ck_assert_str_eq(nne_health_status_name((nne_health_status_t)42), "UNKNOWN");
  /* the numbers are grpc.health.v1's */
  ck_assert_int_eq(NNE_HEALTH_UNKNOWN, 0);
  ck_assert_int_eq(NNE_HEALTH_SERVING, 1);
  ck_assert_int_eq(NNE_HEALTH_NOT_SERVING, 2);
  ck_assert_int_eq(NNE_HEALTH_SERVICE_UNKNOWN, 3);
}
END_TEST

static Suite *health_suite(void) {
  Suite *s = suite_create("health");
  TCase *tc = tcase_create("health");
  tcase_add_test(tc, test_set_get);
  tcase_add_test(tc, test_long_name_refused);
  tcase_add_test(tc, test_watchers_once_per_change);
  tcase_add_test(tc, test_new_service_is_a_change);
  tcase_add_test(tc, test_set_all_notifies_once);
  tcase_add_test(tc, test_unwatch_self_in_callback);
  tcase_add_test(tc, test_unwatch_and_free_self_in_callback);
  tcase_add_test(tc, test_unwatch_other_in_callback);
  tcase_add_test(tc, test_unwatch_and_free_other_in_callback);
  tcase_add_test(tc, test_close);
  tcase_add_test(tc, test_closing_visible_in_callback);
  tcase_add_test(tc, test_status_names);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return nne_test_run_suite(health_suite());
}
