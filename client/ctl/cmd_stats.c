/* cmd_stats.c — `nneditctl stats`: Admin/Stats, the daemon's figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "output.h"

static json_t *stats_json(const nne_client_stats_t *st) {
  json_t *arr = json_array();
  size_t k;
  for (k = 0; k < st->n_caches; k++) {
    const nne_client_cache_stats_t *s = &st->caches[k];
    json_array_append_new(
        arr, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I}",
                       "model", s->model, "hits", (json_int_t)s->hits, "misses",
                       (json_int_t)s->misses, "entries", (json_int_t)s->entries,
                       "bytes", (json_int_t)s->bytes, "capacity_bytes",
                       (json_int_t)s->capacity_bytes, "evictions",
                       (json_int_t)s->evictions, "compile_ms_total",
                       ctl_json_num(s->compile_ms_total), "compile_ms_last",
                       ctl_json_num(s->compile_ms_last), "pinned",
                       (json_int_t)s->pinned));
  }
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "queue_depth",
                   (json_int_t)st->queue_depth, "queue_capacity",
                   (json_int_t)st->queue_capacity, "calls_total",
                   (json_int_t)st->calls_total, "live_calls",
                   (json_int_t)st->live_calls, "edit_sets",
                   (json_int_t)st->edit_sets, "caches", arr);
}

static int stats_table(const ctl_t *c, const nne_client_stats_t *st) {
  enum { NC = 10 };
  static const char *const head[NC] = {
      "MODEL",    "HITS",      "MISSES", "ENTRIES",    "BYTES",
      "CAPACITY", "EVICTIONS", "PINNED", "COMPILE_MS", "LAST_MS"};
  const char **cells;
  char(*num)[NC - 1][40];
  size_t k, j;

  printf("queue %" PRIu32 " / %" PRIu32 "  calls %" PRIu64 " (%" PRIu32
         " live)  edit sets %" PRIu32 "\n",
         st->queue_depth, st->queue_capacity, st->calls_total, st->live_calls,
         st->edit_sets);
  if (st->n_caches == 0) {
    printf("no backend caches (no model loaded)\n");
    return 0;
  }
  cells = calloc((st->n_caches + 1) * NC, sizeof *cells);
  num = calloc(st->n_caches, sizeof *num);
  if (cells == NULL || num == NULL) {
    free(cells);
    free(num);
    return ctl_fail(c, NNE_CLIENT_RESOURCE_EXHAUSTED, "out of memory");
  }
  putchar('\n');
  memcpy(cells, head, sizeof head);
  for (k = 0; k < st->n_caches; k++) {
    const nne_client_cache_stats_t *s = &st->caches[k];
    const char **row = cells + (k + 1) * NC;
    snprintf(num[k][0], 40, "%" PRIu64, s->hits);
    snprintf(num[k][1], 40, "%" PRIu64, s->misses);
    snprintf(num[k][2], 40, "%" PRIu64, s->entries);
    snprintf(num[k][3], 40, "%" PRIu64, s->bytes);
    snprintf(num[k][4], 40, "%" PRIu64, s->capacity_bytes);
    snprintf(num[k][5], 40, "%" PRIu64, s->evictions);
    snprintf(num[k][6], 40, "%" PRIu32, s->pinned);
    snprintf(num[k][7], 40, "%.2f", s->compile_ms_total);
    snprintf(num[k][8], 40, "%.2f", s->compile_ms_last);
    row[0] = s->model;
    for (j = 0; j < NC - 1; j++)
      row[j + 1] = num[k][j];
  }
  ctl_print_columns(cells, st->n_caches + 1, NC, "lrrrrrrrrr");
  free(cells);
  free(num);
  return 0;
}

static int run_stats(ctl_t *c, int argc, char **argv) {
  nne_client_stats_t st;
  nne_client_err_t err;
  const char *none;
  int rc;

  if ((rc = ctl_args_one(c, argc, argv, NULL, 0, false, &none)) != 0 ||
      (rc = ctl_connect(c)) != 0)
    return rc == CTL_HELP_SHOWN ? 0 : rc;
  if (nne_client_admin_stats(c->cli, &st, &err) < 0)
    return ctl_call_error(c, &err);
  if (c->output == CTL_OUT_JSON)
    rc = ctl_json_out(c, stats_json(&st));
  else
    rc = stats_table(c, &st);
  nne_client_stats_free(&st);
  return rc;
}

static const ctl_opt_t stats_opts[] = {CTL_OPT_END};
const ctl_cmd_t ctl_cmd_stats = {"stats", stats_opts, run_stats, false};
