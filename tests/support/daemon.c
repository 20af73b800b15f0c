/* daemon.c — see daemon.h. */
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"

#define MAX_ARGS 64
#define ARG_MAX_LEN 512
/* Servers a process may have running at once (the at-exit stop's list). */
#define MAX_SERVERS 16

const char *nne_test_nneditd(void) {
  const char *p = getenv("NNEDITD");
  return p != NULL && p[0] != '\0' ? p : "nneditd";
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

void nne_test_daemon_dump_log(const nne_test_daemon_t *d) {
  FILE *f = fopen(d->log_path, "r");
  char line[1024];
  if (f == NULL)
    return;
  fprintf(stderr, "---- server log (%s) ----\n", d->log_path);
  while (fgets(line, sizeof line, f) != NULL)
    fputs(line, stderr);
  fprintf(stderr, "---- end of log ----\n");
  fclose(f);
}

/* Removes the directory and every file the server left in it. */
static void remove_dir(nne_test_daemon_t *d) {
  DIR *dir;
  struct dirent *e;
  char p[600];
  if (d->dir[0] == '\0')
    return;
  if ((dir = opendir(d->dir)) != NULL) {
    while ((e = readdir(dir)) != NULL)
      if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
        snprintf(p, sizeof p, "%s/%s", d->dir, e->d_name);
        unlink(p);
      }
    closedir(dir);
  }
  rmdir(d->dir);
  d->dir[0] = '\0';
}

/* ---- stopped at exit ----------------------------------------------------- */

static nne_test_daemon_t *g_running[MAX_SERVERS];

/* libcheck's forked children run atexit handlers too: only the process
 * that started a server stops it. */
static void stop_at_exit(void) {
  size_t i;
  for (i = 0; i < MAX_SERVERS; i++)
    if (g_running[i] != NULL && g_running[i]->pid > 0 &&
        g_running[i]->owner == getpid())
      nne_test_daemon_stop(g_running[i]);
}

static void keep(nne_test_daemon_t *d) {
  static bool registered;
  size_t i, free_slot = MAX_SERVERS;
  if (!registered && atexit(stop_at_exit) == 0)
    registered = true;
  for (i = 0; i < MAX_SERVERS; i++) {
    if (g_running[i] == d)
      return;
    if (free_slot == MAX_SERVERS &&
        (g_running[i] == NULL || g_running[i]->pid <= 0))
      free_slot = i;
  }
  if (free_slot < MAX_SERVERS)
    g_running[free_slot] = d;
}

/* ---- starting ------------------------------------------------------------ */

/* The ready file's first line, the address; false until it is whole. */
static bool read_ready(nne_test_daemon_t *d, const char *ready) {
  FILE *f = fopen(ready, "r");
  char *ok;
  if (f == NULL)
    return false;
  ok = fgets(d->addr, sizeof d->addr, f);
  fclose(f);
  if (ok == NULL || strchr(d->addr, '\n') == NULL)
    return false;
  d->addr[strcspn(d->addr, "\r\n")] = '\0';
  return true;
}

static void exec_child(const nne_test_daemon_t *d, char *const *argv) {
  int fd;
  /* A test killed by ctest's timeout must not leave its server behind. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  execv(argv[0], argv);
  fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

int nne_test_server_start(nne_test_daemon_t *d, const char *const *argv) {
  static char args[MAX_ARGS][ARG_MAX_LEN];
  char *av[MAX_ARGS + 1], ready[400];
  size_t n = strlen(NNE_TEST_DIR);
  double deadline;
  int argc;

  memset(d, 0, sizeof *d);
  snprintf(d->dir, sizeof d->dir, "/tmp/nnedit-test-XXXXXX");
  if (mkdtemp(d->dir) == NULL) {
    perror("mkdtemp");
    d->dir[0] = '\0';
    return -1;
  }
  snprintf(ready, sizeof ready, "%s/ready", d->dir);
  snprintf(d->log_path, sizeof d->log_path, "%s/server.log", d->dir);
  for (argc = 0; argv[argc] != NULL && argc < MAX_ARGS; argc++) {
    /* The script of `python -c` may be long: expanded arguments are
     * copied, others passed as they are. */
    if (strncmp(argv[argc], NNE_TEST_DIR, n) == 0) {
      snprintf(args[argc], ARG_MAX_LEN, "%s%s", d->dir, argv[argc] + n);
      av[argc] = args[argc];
    } else {
      av[argc] = (char *)argv[argc];
    }
  }
  av[argc] = NULL;

  d->owner = getpid();
  d->pid = fork();
  if (d->pid < 0) {
    perror("fork");
    d->pid = 0;
    remove_dir(d);
    return -1;
  }
  if (d->pid == 0)
    exec_child(d, av);
  keep(d);
  deadline = now_s() + 60.0;
  while (now_s() < deadline) {
    int status;
    if (read_ready(d, ready))
      return 0;
    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
      fprintf(stderr, "%s exited during start (status 0x%x)\n", av[0], status);
      nne_test_daemon_dump_log(d);
      d->pid = 0;
      remove_dir(d);
      return -1;
    }
    sleep_ms(20);
  }
  fprintf(stderr, "%s did not become ready in 60 s\n", av[0]);
  nne_test_daemon_dump_log(d);
  nne_test_server_kill(d);
  return -1;
}

int nne_test_daemon_start(nne_test_daemon_t *d, const char *const *args) {
  const char *argv[MAX_ARGS];
  const char *repo[] = {"--model-repo", nne_fixtures_dir(), NULL};
  int argc = 0, i;
  argv[argc++] = nne_test_nneditd();
  argv[argc++] = "--listen";
  argv[argc++] = "127.0.0.1:0";
  argv[argc++] = "--ready-file";
  argv[argc++] = NNE_TEST_DIR "/ready";
  if (args == NULL)
    args = repo;
  for (i = 0; args[i] != NULL && argc < MAX_ARGS - 1; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  return nne_test_server_start(d, argv);
}

void nne_test_daemon_setup(nne_test_daemon_t *d, const char *const *args) {
  if (nne_test_daemon_start(d, args) != 0) {
    fprintf(stderr, "cannot start nneditd (%s)\n", nne_test_nneditd());
    exit(1);
  }
}

void nne_test_daemon_teardown(nne_test_daemon_t *d) {
  int code;
  if (d->pid <= 0)
    return;
  code = nne_test_daemon_stop(d);
  if (code != 0) {
    fprintf(stderr, "nneditd exited with %d\n", code);
    exit(1);
  }
}

/* ---- stopping ------------------------------------------------------------ */

void nne_test_daemon_signal(nne_test_daemon_t *d, int sig) {
  if (d->pid > 0)
    kill(d->pid, sig);
}

int nne_test_daemon_wait(nne_test_daemon_t *d, double timeout_s) {
  double deadline = now_s() + timeout_s;
  int status, rc = -1;

  if (d->pid <= 0)
    return -1;
  for (;;) {
    pid_t p = waitpid(d->pid, &status, WNOHANG);
    if (p == d->pid) {
      if (WIFEXITED(status))
        rc = WEXITSTATUS(status);
      else if (WIFSIGNALED(status))
        rc = 128 + WTERMSIG(status);
      break;
    }
    if (p < 0 && errno != EINTR)
      break;
    if (now_s() >= deadline) {
      fprintf(stderr, "server did not exit in %.0f s; killing it\n", timeout_s);
      nne_test_daemon_dump_log(d);
      kill(d->pid, SIGKILL);
      waitpid(d->pid, NULL, 0);
      rc = -1;
      break;
    }
    sleep_ms(10);
  }
  if (rc != 0 && rc != -1)
    nne_test_daemon_dump_log(d);
  d->pid = 0;
  remove_dir(d);
  return rc;
}

int nne_test_daemon_stop(nne_test_daemon_t *d) {
  nne_test_daemon_signal(d, SIGTERM);
  return nne_test_daemon_wait(d, 30.0);
}

void nne_test_server_kill(nne_test_daemon_t *d) {
  if (d->pid > 0) {
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
  }
  remove_dir(d);
}
