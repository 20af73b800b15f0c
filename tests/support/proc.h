/* proc.h — start and stop a real nneditd for integration tests.
 *
 *   nne_test_daemon_t d;
 *   nne_test_daemon_start(&d, (const char *[]){"--model-repo", repo, NULL});
 *   ... talk to d.addr (127.0.0.1:PORT) ...
 *   int status = nne_test_daemon_stop(&d);   SIGTERM, wait, exit status
 *
 * The daemon listens on 127.0.0.1:0 (a free port) and announces its address
 * through --ready-file; start waits for that file with a bounded wait. Its
 * stderr goes to a log file that start/stop print when something fails.
 * Every wait is bounded; a daemon that does not stop in time is killed.
 */
#ifndef NNE_TEST_PROC_H
#define NNE_TEST_PROC_H

#include <sys/types.h>

typedef struct nne_test_daemon {
  pid_t pid;
  char addr[128];     /* "127.0.0.1:PORT" once started */
  char dir[256];      /* temp dir with the ready file and the log */
  char log_path[300];
} nne_test_daemon_t;

/* Path of the nneditd binary: $NNEDITD, else "nneditd" next to the tests'
 * build directory as configured by CMake. */
const char *nne_test_nneditd(void);

/* Starts nneditd with --listen 127.0.0.1:0 --ready-file ... plus the given
 * NULL-terminated extra arguments. Waits up to 60 s for it to serve.
 * Returns 0, or -1 (after printing the daemon's log) on failure. */
int nne_test_daemon_start(nne_test_daemon_t *d, const char *const *args);

/* Sends sig to the daemon (no wait). */
void nne_test_daemon_signal(nne_test_daemon_t *d, int sig);

/* Waits up to timeout_s for the daemon to exit. Returns its exit code
 * (0..255), 128+signal if a signal killed it, or -1 on timeout (then it is
 * killed with SIGKILL and reaped). Removes the temp dir. */
int nne_test_daemon_wait(nne_test_daemon_t *d, double timeout_s);

/* SIGTERM then nne_test_daemon_wait(d, 30). */
int nne_test_daemon_stop(nne_test_daemon_t *d);

/* Prints the daemon's log to stderr (for failing tests). */
void nne_test_daemon_dump_log(const nne_test_daemon_t *d);

#endif /* NNE_TEST_PROC_H */
