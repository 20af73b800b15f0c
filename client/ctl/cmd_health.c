/* cmd_health.c — `nneditctl health [SERVICE]`: grpc.health.v1 Check. */
#include "args.h"
#include "output.h"

static int run_health(ctl_t *c, int argc, char **argv) {
  const char *service;
  nne_client_health_t st;
  nne_client_err_t err;
  int rc;

  if ((rc = ctl_args_one(c, argc, argv, "SERVICE", NNE_CLIENT_NAME_MAX, false,
                         &service)) != 0 ||
      (rc = ctl_connect(c)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  if (nne_client_health_check(c->cli, service, &st, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c,
                      json_pack("{s:s, s:s}", "service", service ? service : "",
                                "status", nne_client_health_name(st)));
  else
    printf("%s\n", nne_client_health_name(st));
  /* Only SERVING is healthy: a script may test the exit code alone. */
  if (rc == 0 && st != NNE_CLIENT_HEALTH_SERVING)
    rc = CTL_EXIT_ERROR;
  return rc;
}

static const ctl_opt_t health_opts[] = {CTL_OPT_END};
const ctl_cmd_t ctl_cmd_health = {"health", health_opts, run_health, false};
