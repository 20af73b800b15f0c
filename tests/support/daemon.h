/* daemon.h — real servers for the C integration tests: nneditd, or a
 * test's own fake server, each a child process on a free loopback port
 * that announces its address through a ready file.
 *
 * A daemon shared by the tests of a libcheck case starts in an unchecked
 * fixture, in the parent, before libcheck forks a process per test:
 *
 *   static nne_test_daemon_t g_daemon;
 *   static void setup(void) { nne_test_daemon_setup(&g_daemon, NULL); }
 *   static void teardown(void) { nne_test_daemon_teardown(&g_daemon); }
 *   ...
 *   tcase_add_unchecked_fixture(tc, setup, teardown);
 *   ... a test talks to g_daemon.addr (127.0.0.1:PORT) ...
 *
 * A test's own daemon: nne_test_daemon_start, then nne_test_daemon_stop
 * (SIGTERM, bounded wait, its exit status) or nne_test_daemon_signal and
 * nne_test_daemon_wait.
 *
 * Whatever happens, nothing is left behind: a server is killed with its
 * test process (PR_SET_PDEATHSIG), and one still running when the process
 * that started it exits (a failed assertion ends a forked test with
 * exit()) is stopped then, by that process only. Every wait is bounded.
 * Each server has a temporary directory (d->dir) holding its ready file,
 * its log (shown when something fails) and whatever it writes there; it
 * is removed with the server.
 *
 * Ownership: the caller owns *d, which must outlive the server (use a
 * static: the at-exit stop keeps a pointer to it).
 */
#ifndef NNE_TEST_DAEMON_H
#define NNE_TEST_DAEMON_H

#include <sys/types.h>

typedef struct nne_test_daemon {
  pid_t pid;          /* 0: not running */
  pid_t owner;        /* the process that started it */
  char addr[128];     /* "127.0.0.1:PORT" once started */
  char dir[256];      /* its temporary directory */
  char log_path[300]; /* its stdout and stderr */
} nne_test_daemon_t;

/* In a server's arguments, this prefix stands for its directory
 * ("@DIR@/ready" is the ready file it must write "host:port\n" to). */
#define NNE_TEST_DIR "@DIR@"

/* Path of the nneditd binary: $NNEDITD, else "nneditd". */
const char *nne_test_nneditd(void);

/* Starts argv[0] with the NULL-terminated argv (NNE_TEST_DIR expanded) and
 * waits up to 60 s for its address in NNE_TEST_DIR/ready. Returns 0, or -1
 * (after printing its log) when it exits or stays silent. */
int nne_test_server_start(nne_test_daemon_t *d, const char *const *argv);

/* nneditd --listen 127.0.0.1:0 --ready-file ... plus args (NULL-terminated;
 * NULL: --model-repo with the fixtures). */
int nne_test_daemon_start(nne_test_daemon_t *d, const char *const *args);

/* For an unchecked fixture: nne_test_daemon_start, or the program exits
 * (status 1) saying why. */
void nne_test_daemon_setup(nne_test_daemon_t *d, const char *const *args);
/* Stops the daemon; the program exits (status 1) unless it exited 0. */
void nne_test_daemon_teardown(nne_test_daemon_t *d);

/* Sends sig to the server (no wait). */
void nne_test_daemon_signal(nne_test_daemon_t *d, int sig);

/* Waits up to timeout_s for the server to exit. Returns its exit code
 * (0..255), 128+signal if a signal killed it, or -1 on timeout (then it is
 * killed with SIGKILL and reaped). Prints its log unless it exited 0.
 * Removes its directory. */
int nne_test_daemon_wait(nne_test_daemon_t *d, double timeout_s);

/* SIGTERM then nne_test_daemon_wait(d, 30). */
int nne_test_daemon_stop(nne_test_daemon_t *d);

/* SIGKILL, reap, remove the directory; no log (for fake servers, which
 * have nothing to drain). */
void nne_test_server_kill(nne_test_daemon_t *d);

/* Prints the server's log to stderr (for failing tests). */
void nne_test_daemon_dump_log(const nne_test_daemon_t *d);

#endif /* NNE_TEST_DAEMON_H */
