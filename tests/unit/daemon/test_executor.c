/* test_executor.c — daemon/executor.{h,c}: work runs on worker threads and
 * done on the loop thread, FIFO per worker; the queue bound (made
 * deterministic by holding the only worker on a condition variable); the
 * pending/queued counts; refusal after close; timestamps; close joining the
 * workers; and every test ends with uv_loop_close returning 0.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "executor.h"

/* The init-failure test below provokes an impossible allocation on purpose;
 * under ASan that must come back as NULL, as it does without ASan. */
const char *__asan_default_options(void) __attribute__((used));
const char *__asan_default_options(void) {
  return "allocator_may_return_null=1";
}

static uv_loop_t loop;
static uv_timer_t tick;
static pthread_t loop_thread;

static void on_tick(uv_timer_t *t) { (void)t; }

static void loop_setup(void) {
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  ck_assert_int_eq(uv_timer_init(&loop, &tick), 0);
  /* Wakes UV_RUN_ONCE regularly so waits can have deadlines. */
  ck_assert_int_eq(uv_timer_start(&tick, on_tick, 10, 10), 0);
  loop_thread = pthread_self();
}

/* Closes the timer and checks that nothing else is left on the loop. */
static void loop_finish(void) {
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
}

static int run_until_atomic(atomic_int *counter, int want, double seconds) {
  uint64_t deadline = uv_hrtime() + (uint64_t)(seconds * 1e9);
  while (atomic_load(counter) < want && uv_hrtime() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  return atomic_load(counter) >= want;
}

/* ---- a gate a job can wait at -------------------------------------------------- */

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int arrived; /* jobs that reached the gate */
  int open;
} gate_t;

static gate_t gate;

static void gate_init(void) {
  pthread_mutex_init(&gate.mu, NULL);
  pthread_cond_init(&gate.cv, NULL);
  gate.arrived = 0;
  gate.open = 0;
}

static void gate_destroy(void) {
  pthread_cond_destroy(&gate.cv);
  pthread_mutex_destroy(&gate.mu);
}

static void deadline_in(struct timespec *ts, double seconds) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += (time_t)seconds;
  ts->tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Waits until `n` jobs arrived at the gate (asserts within 10 s). */
static void gate_wait_arrived(int n) {
  struct timespec ts;
  int rc = 0;
  deadline_in(&ts, 10.0);
  pthread_mutex_lock(&gate.mu);
  while (gate.arrived < n && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&gate.cv, &gate.mu, &ts);
  ck_assert_msg(gate.arrived >= n, "only %d of %d jobs reached the gate",
                gate.arrived, n);
  pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void) {
  pthread_mutex_lock(&gate.mu);
  gate.open = 1;
  pthread_cond_broadcast(&gate.cv);
  pthread_mutex_unlock(&gate.mu);
}

/* ---- test jobs --------------------------------------------------------------------- */

typedef struct tjob {
  nne_job_t job; /* first: the executor hands back &job */
  int id;
  int blocks;    /* waits at the gate */
  pthread_t work_thread, done_thread;
  int work_seq, done_seq;
  atomic_int work_calls, done_calls;
  atomic_int work_finished;
} tjob_t;

static atomic_int work_seq, done_seq, done_count;

static void tjob_work(nne_job_t *j) {
  tjob_t *t = (tjob_t *)j;
  t->work_thread = pthread_self();
  t->work_seq = atomic_fetch_add(&work_seq, 1);
  atomic_fetch_add(&t->work_calls, 1);
  if (t->blocks) {
    pthread_mutex_lock(&gate.mu);
    gate.arrived++;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open)
      pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
  }
  atomic_store(&t->work_finished, 1);
}

static void tjob_done(nne_job_t *j) {
  tjob_t *t = (tjob_t *)j;
  t->done_thread = pthread_self();
  t->done_seq = atomic_fetch_add(&done_seq, 1);
  atomic_fetch_add(&t->done_calls, 1);
  atomic_fetch_add(&done_count, 1);
}

static void tjob_init(tjob_t *t, int id, int blocks) {
  memset(t, 0, sizeof *t);
  t->job.work = tjob_work;
  t->job.done = tjob_done;
  t->id = id;
  t->blocks = blocks;
  atomic_init(&t->work_calls, 0);
  atomic_init(&t->done_calls, 0);
  atomic_init(&t->work_finished, 0);
}

static void counters_reset(void) {
  atomic_store(&work_seq, 0);
  atomic_store(&done_seq, 0);
  atomic_store(&done_count, 0);
}

static void setup(void) {
  counters_reset();
  gate_init();
  loop_setup();
}

static void teardown(void) { gate_destroy(); }

/* ---- tests ----------------------------------------------------------------------------- */

#define N_ORDER 20

START_TEST(test_threads_and_order) {
  nne_executor_t ex;
  nne_err_t err;
  tjob_t jobs[N_ORDER];
  int i;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", 1, 64, &err), 0);
  for (i = 0; i < N_ORDER; i++) {
    tjob_init(&jobs[i], i, 0);
    ck_assert_int_eq(nne_executor_submit(&ex, &jobs[i].job, &err), 0);
  }
  ck_assert_msg(run_until_atomic(&done_count, N_ORDER, 10.0), "jobs timed out");
  for (i = 0; i < N_ORDER; i++) {
    tjob_t *t = &jobs[i];
    ck_assert_int_eq(atomic_load(&t->work_calls), 1);
    ck_assert_int_eq(atomic_load(&t->done_calls), 1);
    /* work off the loop, done on it */
    ck_assert(!pthread_equal(t->work_thread, loop_thread));
    ck_assert(pthread_equal(t->done_thread, loop_thread));
    /* one worker: one thread, FIFO for work and for done */
    ck_assert(pthread_equal(t->work_thread, jobs[0].work_thread));
    ck_assert_int_eq(t->work_seq, i);
    ck_assert_int_eq(t->done_seq, i);
    /* submit <= start <= end, and jobs do not overlap on one worker */
    ck_assert_uint_gt(t->job.t_submit_ns, 0);
    ck_assert_uint_le(t->job.t_submit_ns, t->job.t_start_ns);
    ck_assert_uint_le(t->job.t_start_ns, t->job.t_end_ns);
    if (i > 0) {
      ck_assert_uint_le(jobs[i - 1].job.t_submit_ns, t->job.t_submit_ns);
      ck_assert_uint_le(jobs[i - 1].job.t_end_ns, t->job.t_start_ns);
    }
  }
  ck_assert_int_eq(nne_executor_pending(&ex), 0);
  ck_assert_int_eq(nne_executor_queued(&ex), 0);
  nne_executor_close(&ex);
  loop_finish();
}
END_TEST

START_TEST(test_queue_bound_is_exact) {
  enum { MAXQ = 3 };
  nne_executor_t ex;
  nne_err_t err;
  tjob_t blocker, q[MAXQ], refused, later;
  int i;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", 1, MAXQ, &err), 0);
  tjob_init(&blocker, 100, 1);
  ck_assert_int_eq(nne_executor_submit(&ex, &blocker.job, &err), 0);
  gate_wait_arrived(1); /* the only worker is now held; the queue is empty */
  ck_assert_int_eq(nne_executor_queued(&ex), 0);
  ck_assert_int_eq(nne_executor_pending(&ex), 1);

  for (i = 0; i < MAXQ; i++) {
    tjob_init(&q[i], i, 0);
    ck_assert_int_eq(nne_executor_submit(&ex, &q[i].job, &err), 0);
    ck_assert_int_eq(nne_executor_queued(&ex), i + 1);
    ck_assert_int_eq(nne_executor_pending(&ex), i + 2);
  }
  /* Exactly at max_queue: refused with RESOURCE_EXHAUSTED's code. */
  tjob_init(&refused, 99, 0);
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_executor_submit(&ex, &refused.job, &err), NNE_ERESOURCE);
  ck_assert_int_eq(err.code, NNE_ERESOURCE);
  ck_assert_msg(strstr(err.msg, "compute") != NULL, "%s", err.msg);
  ck_assert_msg(strstr(err.msg, "full") != NULL, "%s", err.msg);
  ck_assert_int_eq(nne_executor_queued(&ex), MAXQ);
  ck_assert_int_eq(nne_executor_pending(&ex), MAXQ + 1);
  /* Refused twice in a row: still exact. */
  ck_assert_int_eq(nne_executor_submit(&ex, &refused.job, NULL), NNE_ERESOURCE);

  gate_open();
  ck_assert_msg(run_until_atomic(&done_count, MAXQ + 1, 10.0), "timed out");
  ck_assert_int_eq(nne_executor_pending(&ex), 0);
  ck_assert_int_eq(nne_executor_queued(&ex), 0);
  /* The refused job was never touched by either callback. */
  ck_assert_int_eq(atomic_load(&refused.work_calls), 0);
  ck_assert_int_eq(atomic_load(&refused.done_calls), 0);
  ck_assert_uint_eq(refused.job.t_submit_ns, 0);
  /* Order: the blocker first, then the queue in order. */
  ck_assert_int_eq(blocker.done_seq, 0);
  for (i = 0; i < MAXQ; i++)
    ck_assert_int_eq(q[i].done_seq, i + 1);

  /* Room again once the queue drained. */
  tjob_init(&later, 7, 0);
  ck_assert_int_eq(nne_executor_submit(&ex, &later.job, &err), 0);
  ck_assert_msg(run_until_atomic(&done_count, MAXQ + 2, 10.0), "timed out");
  nne_executor_close(&ex);
  loop_finish();
}
END_TEST

START_TEST(test_pending_counts_until_done_runs) {
  nne_executor_t ex;
  nne_err_t err;
  tjob_t a, b;
  uint64_t deadline;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", 1, 8, &err), 0);
  ck_assert_int_eq(nne_executor_pending(&ex), 0);
  tjob_init(&a, 1, 1);
  tjob_init(&b, 2, 0);
  ck_assert_int_eq(nne_executor_submit(&ex, &a.job, &err), 0);
  ck_assert_int_eq(nne_executor_submit(&ex, &b.job, &err), 0);
  gate_wait_arrived(1);
  ck_assert_int_eq(nne_executor_pending(&ex), 2); /* running + queued */
  ck_assert_int_eq(nne_executor_queued(&ex), 1);
  gate_open();
  /* Both finish their work without the loop running: they are still
   * pending until their done() has run on the loop. */
  deadline = uv_hrtime() + 10ull * 1000000000ull;
  while (!atomic_load(&b.work_finished) && uv_hrtime() < deadline)
    usleep(1000);
  ck_assert(atomic_load(&b.work_finished));
  usleep(20000);
  ck_assert_int_eq(nne_executor_queued(&ex), 0);
  ck_assert_int_eq(nne_executor_pending(&ex), 2);
  ck_assert_int_eq(atomic_load(&done_count), 0);
  ck_assert_msg(run_until_atomic(&done_count, 2, 10.0), "timed out");
  ck_assert_int_eq(nne_executor_pending(&ex), 0);
  nne_executor_close(&ex);
  loop_finish();
}
END_TEST

START_TEST(test_submit_after_close_refused) {
  nne_executor_t ex;
  nne_err_t err;
  tjob_t t;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "loader", 2, 8, &err), 0);
  nne_executor_close(&ex);
  tjob_init(&t, 1, 0);
  memset(&err, 0, sizeof err);
  ck_assert_int_eq(nne_executor_submit(&ex, &t.job, &err), NNE_EUNAVAIL);
  ck_assert_int_eq(err.code, NNE_EUNAVAIL);
  ck_assert_msg(strstr(err.msg, "loader") != NULL, "%s", err.msg);
  ck_assert_int_eq(nne_executor_pending(&ex), 0);
  loop_finish();
  ck_assert_int_eq(atomic_load(&t.work_calls), 0);
  ck_assert_int_eq(atomic_load(&t.done_calls), 0);
}
END_TEST

static void *open_gate_later(void *arg) {
  (void)arg;
  usleep(100000);
  gate_open();
  return NULL;
}

START_TEST(test_close_joins_workers) {
  nne_executor_t ex;
  nne_err_t err;
  tjob_t running, queued1, queued2;
  pthread_t opener;
  uint64_t t0;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", 1, 8, &err), 0);
  tjob_init(&running, 1, 1);
  tjob_init(&queued1, 2, 0);
  tjob_init(&queued2, 3, 0);
  ck_assert_int_eq(nne_executor_submit(&ex, &running.job, &err), 0);
  gate_wait_arrived(1);
  ck_assert_int_eq(nne_executor_submit(&ex, &queued1.job, &err), 0);
  ck_assert_int_eq(nne_executor_submit(&ex, &queued2.job, &err), 0);

  ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
  t0 = nne_now_ns();
  nne_executor_close(&ex); /* blocks until the worker has finished */
  ck_assert_uint_ge(nne_now_ns() - t0, 50ull * 1000000ull);
  /* The running job ended and the queue was worked off before the worker
   * left. */
  ck_assert_int_eq(atomic_load(&running.work_finished), 1);
  ck_assert_int_eq(atomic_load(&queued1.work_finished), 1);
  ck_assert_int_eq(atomic_load(&queued2.work_finished), 1);
  ck_assert_ptr_null(ex.workers);
  ck_assert_int_eq(ex.n_workers, 0);
  pthread_join(opener, NULL);
  loop_finish();
}
END_TEST

/* Jobs that meet: each waits until all N have started (or 5 s). */
#define N_PAR 4
static pthread_mutex_t par_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t par_cv = PTHREAD_COND_INITIALIZER;
static int par_started;
static int par_met;

static void par_work(nne_job_t *j) {
  struct timespec ts;
  int rc = 0;
  (void)j;
  deadline_in(&ts, 5.0);
  pthread_mutex_lock(&par_mu);
  par_started++;
  pthread_cond_broadcast(&par_cv);
  while (par_started < N_PAR && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&par_cv, &par_mu, &ts);
  if (par_started >= N_PAR)
    par_met++;
  pthread_mutex_unlock(&par_mu);
}

static void par_done(nne_job_t *j) {
  (void)j;
  atomic_fetch_add(&done_count, 1);
}

START_TEST(test_workers_run_in_parallel) {
  nne_executor_t ex;
  nne_err_t err;
  nne_job_t jobs[N_PAR];
  int i;

  par_started = par_met = 0;
  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", N_PAR, 8, &err), 0);
  ck_assert_int_eq(ex.n_workers, N_PAR);
  for (i = 0; i < N_PAR; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].work = par_work;
    jobs[i].done = par_done;
    ck_assert_int_eq(nne_executor_submit(&ex, &jobs[i], &err), 0);
  }
  ck_assert_msg(run_until_atomic(&done_count, N_PAR, 20.0), "timed out");
  ck_assert_int_eq(par_met, N_PAR);
  nne_executor_close(&ex);
  loop_finish();
}
END_TEST

/* A heap job that frees itself in done and submits the next one. */
typedef struct chain_job {
  nne_job_t job;
  nne_executor_t *ex;
  int left;
} chain_job_t;

static void chain_work(nne_job_t *j) { (void)j; }

static void chain_done(nne_job_t *j) {
  chain_job_t *c = (chain_job_t *)j;
  atomic_fetch_add(&done_count, 1);
  if (c->left > 0) {
    chain_job_t *n = calloc(1, sizeof *n);
    nne_err_t err;
    ck_assert_ptr_nonnull(n);
    n->job.work = chain_work;
    n->job.done = chain_done;
    n->ex = c->ex;
    n->left = c->left - 1;
    ck_assert_int_eq(nne_executor_submit(c->ex, &n->job, &err), 0);
  }
  free(c); /* done may free its job */
}

/* ---- progress: a long job asks the loop to look at it ------------------- */

typedef struct prog_job {
  nne_job_t job;
  nne_executor_t *ex;
  atomic_int published;   /* steps the work made */
  int seen_max;           /* the most the loop saw in a progress call */
  int calls;
  int calls_at_done;
  int seen_at_done;
  atomic_int done;
} prog_job_t;

static void prog_work(nne_job_t *job) {
  prog_job_t *p = (prog_job_t *)job;
  int i;
  for (i = 1; i <= 50; i++) {
    atomic_store(&p->published, i);
    nne_executor_progress(p->ex, job);
    if (i % 10 == 0)
      usleep(2000); /* let the loop run some of them */
  }
}

static void prog_progress(nne_job_t *job) {
  prog_job_t *p = (prog_job_t *)job;
  ck_assert(pthread_equal(pthread_self(), loop_thread));
  ck_assert_int_eq(atomic_load(&p->done), 0); /* never after done */
  p->calls++;
  p->seen_max = atomic_load(&p->published);
}

static void prog_done(nne_job_t *job) {
  prog_job_t *p = (prog_job_t *)job;
  p->calls_at_done = p->calls;
  p->seen_at_done = p->seen_max;
  atomic_store(&p->done, 1);
}

START_TEST(test_progress_before_done) {
  /* Progress calls run on the loop, coalesce (fewer calls than requests),
   * and the last one, which sees everything published, comes before done. */
  nne_executor_t ex;
  nne_err_t err;
  prog_job_t p[3];
  atomic_int all;
  int i, k;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", 2, 8, &err), 0);
  for (k = 0; k < 20; k++) {
    memset(p, 0, sizeof p);
    for (i = 0; i < 3; i++) {
      p[i].job.work = prog_work;
      p[i].job.done = prog_done;
      p[i].job.progress = prog_progress;
      p[i].ex = &ex;
      ck_assert_int_eq(nne_executor_submit(&ex, &p[i].job, &err), 0);
    }
    atomic_init(&all, 0);
    while (atomic_load(&all) < 3) {
      uv_run(&loop, UV_RUN_ONCE);
      atomic_store(&all, atomic_load(&p[0].done) + atomic_load(&p[1].done) +
                             atomic_load(&p[2].done));
    }
    for (i = 0; i < 3; i++) {
      ck_assert_int_ge(p[i].calls_at_done, 1);
      ck_assert_int_le(p[i].calls_at_done, 50);
      ck_assert_int_eq(p[i].seen_at_done, 50);
    }
  }
  nne_executor_close(&ex);
  loop_finish();
}
END_TEST

START_TEST(test_done_may_free_and_resubmit) {
  nne_executor_t ex;
  nne_err_t err;
  chain_job_t *first[3];
  int i;

  ck_assert_int_eq(nne_executor_init(&ex, &loop, "compute", 2, 8, &err), 0);
  for (i = 0; i < 3; i++) {
    first[i] = calloc(1, sizeof *first[i]);
    ck_assert_ptr_nonnull(first[i]);
    first[i]->job.work = chain_work;
    first[i]->job.done = chain_done;
    first[i]->ex = &ex;
    first[i]->left = 9;
    ck_assert_int_eq(nne_executor_submit(&ex, &first[i]->job, &err), 0);
  }
  ck_assert_msg(run_until_atomic(&done_count, 30, 10.0), "timed out");
  ck_assert_int_eq(nne_executor_pending(&ex), 0);
  nne_executor_close(&ex);
  loop_finish();
}
END_TEST

START_TEST(test_init_failure_leaves_loop_clean) {
  /* A failed init reports an error and leaves nothing on the loop (the
   * caller has no executor to close). An absurd worker count makes the
   * thread array allocation fail. */
  nne_executor_t ex;
  nne_err_t err;
  int rc;
  memset(&err, 0, sizeof err);
  rc = nne_executor_init(&ex, &loop, "compute", -1, 8, &err);
  ck_assert_int_lt(rc, 0);
  ck_assert_int_eq(err.code, rc);
  ck_assert_msg(strstr(err.msg, "compute") != NULL, "%s", err.msg);
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  ck_assert_msg(uv_loop_close(&loop) == 0,
                "nne_executor_init failed but left a handle on the loop "
                "(uv_loop_close: %s)",
                uv_strerror(uv_loop_close(&loop)));
}
END_TEST

/* ---- per-thread hooks ---------------------------------------------------- */

#define HOOK_WORKERS 3
#define HOOK_JOBS 12

typedef struct hjob {
  nne_job_t job;
  pthread_t work_thread;
  atomic_int after_ran;   /* set by after_work on the job's own thread */
  bool after_before_done; /* seen set when done ran */
} hjob_t;

static pthread_mutex_t hook_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t hook_started[HOOK_WORKERS + 1];
static int hook_n_started, hook_n_after;
static _Thread_local hjob_t *hook_current; /* the job this worker just ran */

static void hook_start(void *ctx) {
  (void)ctx;
  pthread_mutex_lock(&hook_mu);
  if (hook_n_started <= HOOK_WORKERS)
    hook_started[hook_n_started] = pthread_self();
  hook_n_started++;
  pthread_mutex_unlock(&hook_mu);
}

static void hook_work(nne_job_t *job) {
  hjob_t *h = (hjob_t *)job;
  h->work_thread = pthread_self();
  hook_current = h;
}

static void hook_after(void *ctx) {
  (void)ctx;
  if (hook_current != NULL)
    atomic_store(&hook_current->after_ran, 1);
  hook_current = NULL;
  pthread_mutex_lock(&hook_mu);
  hook_n_after++;
  pthread_mutex_unlock(&hook_mu);
}

static void hook_done(nne_job_t *job) {
  hjob_t *h = (hjob_t *)job;
  h->after_before_done = atomic_load(&h->after_ran) == 1;
  atomic_fetch_add(&done_count, 1);
}

/* Each worker runs thread_start once, on itself, before any job; each job
 * is followed by after_work on its own worker before its done runs (the
 * engine's streams: attached per thread, waited for before results are
 * used). */
START_TEST(test_thread_hooks) {
  nne_executor_t ex;
  nne_err_t err;
  nne_executor_hooks_t hooks = {hook_start, hook_after, NULL};
  hjob_t jobs[HOOK_JOBS];
  int i, j;

  hook_n_started = hook_n_after = 0;
  ck_assert_int_eq(nne_executor_init_hooks(&ex, &loop, "compute", HOOK_WORKERS,
                                           64, &hooks, &err),
                   0);
  memset(jobs, 0, sizeof jobs);
  for (i = 0; i < HOOK_JOBS; i++) {
    jobs[i].job.work = hook_work;
    jobs[i].job.done = hook_done;
    atomic_init(&jobs[i].after_ran, 0);
    ck_assert_int_eq(nne_executor_submit(&ex, &jobs[i].job, &err), 0);
  }
  ck_assert_msg(run_until_atomic(&done_count, HOOK_JOBS, 10.0),
                "jobs timed out");
  nne_executor_close(&ex);
  ck_assert_int_eq(hook_n_started, HOOK_WORKERS);
  ck_assert_int_eq(hook_n_after, HOOK_JOBS);
  for (i = 0; i < HOOK_JOBS; i++) {
    bool found = false;
    ck_assert_msg(jobs[i].after_before_done,
                  "job %d was done before after_work ran", i);
    for (j = 0; j < HOOK_WORKERS; j++)
      found |= pthread_equal(jobs[i].work_thread, hook_started[j]) != 0;
    ck_assert_msg(found, "job %d ran on a thread without thread_start", i);
  }
  loop_finish();
}
END_TEST

START_TEST(test_now_ns_monotonic) {
  uint64_t a = nne_now_ns(), b;
  usleep(10000);
  b = nne_now_ns();
  ck_assert_uint_ge(b - a, 10ull * 1000000ull);
  ck_assert_uint_lt(b - a, 5ull * 1000000000ull);
  loop_finish();
}
END_TEST

static Suite *executor_suite(void) {
  Suite *s = suite_create("executor");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_threads_and_order);
  tcase_add_test(tc, test_queue_bound_is_exact);
  tcase_add_test(tc, test_pending_counts_until_done_runs);
  tcase_add_test(tc, test_submit_after_close_refused);
  tcase_add_test(tc, test_close_joins_workers);
  tcase_add_test(tc, test_workers_run_in_parallel);
  tcase_add_test(tc, test_done_may_free_and_resubmit);
  tcase_add_test(tc, test_progress_before_done);
  tcase_add_test(tc, test_init_failure_leaves_loop_clean);
  tcase_add_test(tc, test_now_ns_monotonic);
  tcase_add_test(tc, test_thread_hooks);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(executor_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
