/* executor.c — see executor.h. */
#include "executor.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

uint64_t nne_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg) {
  nne_executor_t *ex = arg;

  if (ex->hooks.thread_start != NULL)
    ex->hooks.thread_start(ex->hooks.ctx);
  pthread_mutex_lock(&ex->mu);
  for (;;) {
    nne_job_t *job;
    while (ex->head == NULL && !ex->stopping)
      pthread_cond_wait(&ex->cv, &ex->mu);
    if (ex->head == NULL) /* stopping and nothing left */
      break;
    job = ex->head;
    ex->head = job->next;
    if (ex->head == NULL)
      ex->tail = NULL;
    ex->queued--;
    ex->running++;
    pthread_mutex_unlock(&ex->mu);

    job->t_start_ns = nne_now_ns();
    job->work(job);
    if (ex->hooks.after_work != NULL)
      ex->hooks.after_work(ex->hooks.ctx);
    job->t_end_ns = nne_now_ns();

    pthread_mutex_lock(&ex->mu);
    ex->running--;
    job->next = NULL;
    if (ex->done_tail)
      ex->done_tail->next = job;
    else
      ex->done_head = job;
    ex->done_tail = job;
    /* uv_async_send coalesces; the callback drains the whole done list. */
    uv_async_send(&ex->done_async);
  }
  pthread_mutex_unlock(&ex->mu);
  return NULL;
}

void nne_executor_progress(nne_executor_t *ex, nne_job_t *job) {
  pthread_mutex_lock(&ex->mu);
  if (!job->progress_listed) {
    job->progress_listed = true;
    job->progress_next = NULL;
    if (ex->progress_tail)
      ex->progress_tail->progress_next = job;
    else
      ex->progress_head = job;
    ex->progress_tail = job;
  }
  uv_async_send(&ex->done_async);
  pthread_mutex_unlock(&ex->mu);
}

static void on_done(uv_async_t *h) {
  nne_executor_t *ex = h->data;
  nne_job_t *list;

  /* The done list first, then every progress call asked so far: a job
   * that asked and then finished gets its progress call before its done.
   * Progress entries are taken a few at a time under the lock (a worker may
   * list its job again as soon as it is taken). */
  pthread_mutex_lock(&ex->mu);
  list = ex->done_head;
  ex->done_head = ex->done_tail = NULL;
  pthread_mutex_unlock(&ex->mu);
  for (;;) {
    nne_job_t *batch[16];
    size_t n = 0, i;
    pthread_mutex_lock(&ex->mu);
    while (ex->progress_head != NULL && n < 16) {
      nne_job_t *j = ex->progress_head;
      ex->progress_head = j->progress_next;
      j->progress_listed = false;
      batch[n++] = j;
    }
    if (ex->progress_head == NULL)
      ex->progress_tail = NULL;
    pthread_mutex_unlock(&ex->mu);
    for (i = 0; i < n; i++)
      if (batch[i]->progress != NULL)
        batch[i]->progress(batch[i]);
    if (n < 16)
      break;
  }
  while (list != NULL) {
    nne_job_t *job = list;
    list = job->next;
    job->next = NULL;
    atomic_fetch_sub(&ex->pending, 1);
    nne_prom_hist_observe(&ex->wait_hist,
                          (double)(job->t_start_ns - job->t_submit_ns) / 1e9);
    nne_prom_hist_observe(&ex->run_hist,
                          (double)(job->t_end_ns - job->t_start_ns) / 1e9);
    job->done(job); /* may free the job */
  }
  if (ex->after_done != NULL)
    ex->after_done(ex->after_done_ctx);
}

static void close_noop(uv_handle_t *h) { (void)h; }

int nne_executor_init(nne_executor_t *ex, uv_loop_t *loop, const char *name,
                      int n_workers, int max_queue, nne_err_t *err) {
  return nne_executor_init_hooks(ex, loop, name, n_workers, max_queue, NULL,
                                 err);
}

int nne_executor_init_hooks(nne_executor_t *ex, uv_loop_t *loop,
                            const char *name, int n_workers, int max_queue,
                            const nne_executor_hooks_t *hooks, nne_err_t *err) {
  int i, rc;

  memset(ex, 0, sizeof *ex);
  if (hooks != NULL)
    ex->hooks = *hooks;
  if (n_workers < 1 || n_workers > 4096 || max_queue < 1)
    return nne_err_set(err, NNE_EINVAL,
                       "executor %s: %d workers and a queue of %d (need at "
                       "least 1 of each, at most 4096 workers)",
                       name, n_workers, max_queue);
  ex->name = name;
  ex->loop = loop;
  ex->max_queue = max_queue;
  atomic_init(&ex->pending, 0);
  nne_prom_hist_init(&ex->wait_hist, nne_prom_seconds_buckets,
                     nne_prom_seconds_n);
  nne_prom_hist_init(&ex->run_hist, nne_prom_seconds_buckets,
                     nne_prom_seconds_n);
  ex->workers = calloc((size_t)n_workers, sizeof *ex->workers);
  if (ex->workers == NULL)
    return nne_err_set(err, NNE_ENOMEM, "executor %s: out of memory", name);
  rc = uv_async_init(loop, &ex->done_async, on_done);
  if (rc != 0) {
    free(ex->workers);
    ex->workers = NULL;
    return nne_err_set(err, NNE_EINTERNAL, "executor %s: %s", name,
                       uv_strerror(rc));
  }
  ex->done_async.data = ex;
  pthread_mutex_init(&ex->mu, NULL);
  pthread_cond_init(&ex->cv, NULL);
  for (i = 0; i < n_workers; i++) {
    rc = pthread_create(&ex->workers[i], NULL, worker_main, ex);
    if (rc != 0) {
      /* Stop the ones that did start, and leave the loop as we found it:
       * an open async handle would keep uv_run from ever returning. */
      pthread_mutex_lock(&ex->mu);
      ex->stopping = true;
      pthread_cond_broadcast(&ex->cv);
      pthread_mutex_unlock(&ex->mu);
      while (i-- > 0)
        pthread_join(ex->workers[i], NULL);
      free(ex->workers);
      ex->workers = NULL;
      ex->n_workers = 0;
      uv_close((uv_handle_t *)&ex->done_async, close_noop);
      pthread_cond_destroy(&ex->cv);
      pthread_mutex_destroy(&ex->mu);
      return nne_err_set(err, NNE_EINTERNAL, "executor %s: %s", name,
                         strerror(rc));
    }
    ex->n_workers++;
  }
  return 0;
}

int nne_executor_submit(nne_executor_t *ex, nne_job_t *job, nne_err_t *err) {
  pthread_mutex_lock(&ex->mu);
  if (ex->stopping) {
    pthread_mutex_unlock(&ex->mu);
    return nne_err_set(err, NNE_EUNAVAIL, "the %s executor is shutting down",
                       ex->name);
  }
  if (ex->queued >= ex->max_queue) {
    pthread_mutex_unlock(&ex->mu);
    return nne_err_set(err, NNE_ERESOURCE,
                       "the %s queue is full (%d jobs waiting; --max-queue)",
                       ex->name, ex->max_queue);
  }
  job->next = NULL;
  job->t_submit_ns = nne_now_ns();
  job->t_start_ns = job->t_end_ns = 0;
  if (ex->tail)
    ex->tail->next = job;
  else
    ex->head = job;
  ex->tail = job;
  ex->queued++;
  atomic_fetch_add(&ex->pending, 1);
  pthread_cond_signal(&ex->cv);
  pthread_mutex_unlock(&ex->mu);
  return 0;
}

int nne_executor_pending(nne_executor_t *ex) {
  return atomic_load(&ex->pending);
}

int nne_executor_queued(nne_executor_t *ex) {
  int n;
  pthread_mutex_lock(&ex->mu);
  n = ex->queued;
  pthread_mutex_unlock(&ex->mu);
  return n;
}

void nne_executor_close(nne_executor_t *ex) {
  int i;

  pthread_mutex_lock(&ex->mu);
  ex->stopping = true;
  pthread_cond_broadcast(&ex->cv);
  pthread_mutex_unlock(&ex->mu);
  for (i = 0; i < ex->n_workers; i++)
    pthread_join(ex->workers[i], NULL);
  free(ex->workers);
  ex->workers = NULL;
  ex->n_workers = 0;
  if (ex->done_head != NULL)
    nne_log_warn("executor %s closed with finished jobs not delivered",
                 ex->name);
  uv_close((uv_handle_t *)&ex->done_async, NULL);
}
