/* proc.c — see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 64

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
  fprintf(stderr, "---- nneditd log (%s) ----\n", d->log_path);
  while (fgets(line, sizeof line, f) != NULL)
    fputs(line, stderr);
  fprintf(stderr, "---- end of log ----\n");
  fclose(f);
}

static void remove_dir(nne_test_daemon_t *d) {
  char p[400];
  if (d->dir[0] == '\0')
    return;
  snprintf(p, sizeof p, "%s/ready", d->dir);
  unlink(p);
  unlink(d->log_path);
  rmdir(d->dir);
  d->dir[0] = '\0';
}

int nne_test_daemon_start(nne_test_daemon_t *d, const char *const *args) {
  char ready[400];
  const char *argv[MAX_ARGS];
  int argc = 0, i;
  double deadline;

  memset(d, 0, sizeof *d);
  snprintf(d->dir, sizeof d->dir, "/tmp/nnedit-test-XXXXXX");
  if (mkdtemp(d->dir) == NULL) {
    perror("mkdtemp");
    return -1;
  }
  snprintf(ready, sizeof ready, "%s/ready", d->dir);
  snprintf(d->log_path, sizeof d->log_path, "%s/nneditd.log", d->dir);
  argv[argc++] = nne_test_nneditd();
  argv[argc++] = "--listen";
  argv[argc++] = "127.0.0.1:0";
  argv[argc++] = "--ready-file";
  argv[argc++] = ready;
  for (i = 0; args != NULL && args[i] != NULL && argc < MAX_ARGS - 1; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;

  d->pid = fork();
  if (d->pid < 0) {
    perror("fork");
    return -1;
  }
  if (d->pid == 0) {
    int fd;
    /* A test killed by ctest's timeout must not leave its daemon behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  deadline = now_s() + 60.0;
  while (now_s() < deadline) {
    FILE *f = fopen(ready, "r");
    int status;
    if (f != NULL) {
      char *ok = fgets(d->addr, sizeof d->addr, f);
      fclose(f);
      if (ok != NULL) {
        d->addr[strcspn(d->addr, "\r\n")] = '\0';
        return 0;
      }
    }
    if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
      fprintf(stderr, "nneditd exited during start (status 0x%x)\n", status);
      nne_test_daemon_dump_log(d);
      d->pid = 0;
      remove_dir(d);
      return -1;
    }
    sleep_ms(20);
  }
  fprintf(stderr, "nneditd did not become ready in 60 s\n");
  nne_test_daemon_dump_log(d);
  kill(d->pid, SIGKILL);
  waitpid(d->pid, NULL, 0);
  d->pid = 0;
  remove_dir(d);
  return -1;
}

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
      fprintf(stderr, "nneditd did not exit in %.0f s; killing it\n",
              timeout_s);
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
