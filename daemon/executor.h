/* executor.h — worker threads with a bounded job queue, reporting to a loop.
 *
 * The libuv loop thread owns all daemon state and must never block on model
 * work, so forward passes, loads and compiles run here. A job is submitted
 * from the loop thread; a worker runs job->work (off the loop, touching only
 * what the job carries); then job->done runs back on the loop thread, where
 * it may touch daemon state again and reply to the call.
 *
 * The queue is bounded: a full queue refuses the job (NNE_ERESOURCE) rather
 * than letting memory or latency grow without limit, and the caller answers
 * RESOURCE_EXHAUSTED. libuv's shared thread pool is not used because it has
 * no such admission control.
 *
 * If nne_executor_submit fails, neither callback is ever called.
 */
#ifndef NNE_EXECUTOR_H
#define NNE_EXECUTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "base/error.h"
#include "base/prom.h"

typedef struct nne_job nne_job_t;

/* Embedded by the owner in its own request struct (container_of style).
 * The executor only links it into its lists and stamps the times. */
struct nne_job {
  void (*work)(nne_job_t *job); /* on a worker thread */
  void (*done)(nne_job_t *job); /* on the loop thread, after work */
  /* Optional: on the loop thread after the work called
   * nne_executor_progress(), always before done (a long job that streams,
   * e.g. Generate's steps). */
  void (*progress)(nne_job_t *job);
  nne_job_t *next;
  nne_job_t *progress_next;     /* on the progress list */
  bool progress_listed;         /* guarded by the executor's mutex */
  uint64_t t_submit_ns, t_start_ns, t_end_ns; /* monotonic clock */
};

/* Optional calls on each worker thread, for state that is per thread (the
 * engine's streams). Both run outside the executor's lock. */
typedef struct nne_executor_hooks {
  void (*thread_start)(void *ctx); /* before the worker's first job */
  void (*after_work)(void *ctx);   /* after each job's work, before its done */
  void *ctx;
} nne_executor_hooks_t;

typedef struct nne_executor {
  const char *name;
  uv_loop_t *loop;
  uv_async_t done_async;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  nne_job_t *head, *tail;        /* queued, FIFO */
  nne_job_t *done_head, *done_tail; /* finished, waiting for the loop */
  nne_job_t *progress_head, *progress_tail; /* asked for job->progress */
  int queued;
  int max_queue;
  int running;                   /* jobs inside work() */
  int n_workers;
  pthread_t *workers;
  bool stopping;
  nne_executor_hooks_t hooks;
  atomic_int pending;            /* submitted and not yet done()'d */
  /* Optional: runs on the loop after each batch of done() callbacks (the
   * daemon lets a drain move on once the last job is done). */
  void (*after_done)(void *ctx);
  void *after_done_ctx;
  /* Seconds each job waited in the queue and ran, recorded on the loop
   * thread as its done() comes (for /metrics). */
  nne_prom_hist_t wait_hist, run_hist;
} nne_executor_t;

/* Starts n_workers threads (1..4096; max_queue >= 1). The executor struct is
 * caller-owned and must stay put until the loop has run once more after
 * nne_executor_close (the async handle closes asynchronously). Returns
 * NNE_EINVAL for bad counts, NNE_ENOMEM / NNE_EINTERNAL if threads cannot
 * start; on failure nothing is left open on the loop (the handle it opened
 * is already closing). */
int nne_executor_init(nne_executor_t *ex, uv_loop_t *loop, const char *name,
                      int n_workers, int max_queue, nne_err_t *err);
/* The same, with per-thread hooks (copied; NULL for none). */
int nne_executor_init_hooks(nne_executor_t *ex, uv_loop_t *loop,
                            const char *name, int n_workers, int max_queue,
                            const nne_executor_hooks_t *hooks, nne_err_t *err);

/* Queues a job (loop thread only). NNE_ERESOURCE when the queue holds
 * max_queue jobs already, NNE_EUNAVAIL when the executor is stopping. */
int nne_executor_submit(nne_executor_t *ex, nne_job_t *job, nne_err_t *err);

/* From a job's work (worker thread): asks the loop to call job->progress
 * soon. Calls coalesce (one progress call may answer several); every call
 * made before work returns is answered before done. */
void nne_executor_progress(nne_executor_t *ex, nne_job_t *job);

/* Jobs submitted and not yet completed (queued + running + awaiting done). */
int nne_executor_pending(nne_executor_t *ex);

/* Jobs waiting in the queue (not yet started). */
int nne_executor_queued(nne_executor_t *ex);

/* Stops the workers once the queue is empty, joins them (blocks until the
 * running jobs end: call it when nothing is pending), and closes the async
 * handle. Loop thread only. */
void nne_executor_close(nne_executor_t *ex);

/* Monotonic clock in nanoseconds. */
uint64_t nne_now_ns(void);

#endif /* NNE_EXECUTOR_H */
