/* main.c — nneditd: flags → the daemon (daemon.h) → the server on a libuv
 * loop, run until a signal drains it. Exit 0 after a clean drain, 1 when
 * the daemon or the server cannot start, 2 for bad flags. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <grpc/grpc.h>
#include <uv.h>

#include "config.h"
#include "daemon.h"
#include "metrics.h"
#include "engine/engine.h"
#include "base/fault.h"
#include "base/log.h"
#include "rpc/rpc.h"
#include "server/server.h"

int main(int argc, char **argv) {
  nne_config_t cfg;
  nne_engine_opts_t eopts;
  nne_daemon_t d;
  nne_server_opts_t opts;
  nne_server_t srv;
  nne_err_t err;
  uv_loop_t *loop;
  int rc;

  nne_config_defaults(&cfg);
  rc = nne_config_parse(&cfg, argc, argv, &err);
  if (rc == 1)
    return 0;
  if (rc != 0) {
    fprintf(stderr, "nneditd: %s\n", err.msg);
    fprintf(stderr, "usage: %s [options]   (--help for the list)\n", argv[0]);
    return 2;
  }
  nne_log_set_level((nne_log_level_t)nne_log_level_parse(cfg.log_level));
  nne_log_set_format((nne_log_format_t)nne_log_format_parse(cfg.log_format));
#if NNE_FAULT_COMPILED
  {
    /* A test build: say what it injects, and refuse a switch that does not
     * parse (a test would otherwise pass without its fault). */
    char what[512];
    if (nne_fault_describe(what, sizeof what) != 0) {
      fprintf(stderr, "nneditd: %s\n", what);
      return 2;
    }
    if (what[0] != '\0')
      nne_log_warn("fault injection (test build): %s fail", what);
  }
#endif
  /* A client that disappears must not kill the daemon with SIGPIPE. */
  signal(SIGPIPE, SIG_IGN);

  eopts.intra_op_threads = cfg.threads;
  if (nne_engine_init(&eopts, &err) != 0) {
    nne_log_error("engine: %s", err.msg);
    return 1;
  }
  loop = uv_default_loop();
  if (nne_daemon_init(&d, &cfg, loop, &err) != 0) {
    nne_log_error("%s", err.msg);
    return 1;
  }
  nne_daemon_server_opts(&d, nne_rpc_methods, nne_rpc_method_count, &opts);
  if (nne_metrics_start(&d, &err) != 0 ||
      nne_server_start(&srv, &opts, loop, &err) != 0) {
    nne_log_error("%s", err.msg);
    nne_daemon_close(&d);
    uv_run(loop, UV_RUN_DEFAULT); /* the executors' handles close */
    return 1;
  }
  nne_daemon_start(&d, &srv);
  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  if (rc != 0)
    nne_log_warn("loop closed with handles open: %s", uv_strerror(rc));
  grpc_shutdown_blocking();
  return srv.exit_code;
}
