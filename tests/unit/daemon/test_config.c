/* test_config.c — daemon/config.{h,c}: defaults, every flag, numbers with
 * size suffixes, range and syntax errors (NNE_EINVAL naming the flag),
 * unknown options, missing values, stray arguments, --help and --version.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fault.h"
#include "config.h"

/* Parses a NULL-terminated argument list (argv[0] supplied here). The
 * strings are literals, so what cfg points to outlives the call; the pointer
 * array itself is copied because getopt may permute it. */
static int parse_list(nne_config_t *cfg, nne_err_t *err,
                      const char *const *args) {
  char *argv[256];
  int argc = 0;
  argv[argc++] = (char *)"nneditd";
  while (*args != NULL) {
    ck_assert_int_lt(argc, 255);
    argv[argc++] = (char *)*args++;
  }
  argv[argc] = NULL;
  memset(err, 0, sizeof *err);
  return nne_config_parse(cfg, argc, argv, err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_ARGS ((const char *const[]){NULL})

/* Asserts that parsing the arguments fails with NNE_EINVAL and a message
 * that contains `needle`. */
static void expect_einval(const char *const *args, const char *needle) {
  nne_config_t cfg;
  nne_err_t err;
  int rc;
  nne_config_defaults(&cfg);
  rc = parse_list(&cfg, &err, args);
  ck_assert_msg(rc == NNE_EINVAL, "'%s %s': rc %d (want NNE_EINVAL)", args[0],
                args[1] ? args[1] : "", rc);
  ck_assert_int_eq(err.code, NNE_EINVAL);
  ck_assert_msg(strstr(err.msg, needle) != NULL,
                "'%s %s': message '%s' does not name '%s'", args[0],
                args[1] ? args[1] : "", err.msg, needle);
}

/* Parses one flag with one value and returns the config (asserts success). */
static nne_config_t parse_ok(const char *const *args) {
  nne_config_t cfg;
  nne_err_t err;
  int rc;
  nne_config_defaults(&cfg);
  rc = parse_list(&cfg, &err, args);
  ck_assert_msg(rc == 0, "'%s %s' failed: %d %s", args[0],
                args[1] ? args[1] : "", rc, err.msg);
  return cfg;
}

/* ---- defaults -------------------------------------------------------------- */

START_TEST(test_defaults) {
  nne_config_t cfg;
  memset(&cfg, 0x7f, sizeof cfg);
  nne_config_defaults(&cfg);
  ck_assert_str_eq(cfg.listen, "127.0.0.1:50051"); /* loopback only */
  ck_assert_str_eq(cfg.model_repo, "./models");
  ck_assert_int_eq(cfg.n_loads, 0);
  ck_assert_ptr_null(cfg.device);
  ck_assert_ptr_null(cfg.ready_file);
  ck_assert_ptr_null(cfg.metrics_listen); /* no /metrics unless asked */
  ck_assert_int_eq(cfg.threads, 0);
  ck_assert_int_eq(cfg.workers, 1);
  ck_assert_str_eq(cfg.log_level, "info");
  /* Bounded, and within what the transport accepts. */
  ck_assert_int_eq(cfg.max_queue, 64);
  ck_assert_uint_eq(cfg.max_message_bytes, 64u << 20);
  ck_assert_uint_le(cfg.max_message_bytes, (size_t)INT_MAX);
  ck_assert_uint_eq(cfg.chunk_bytes, 1u << 20);
  ck_assert_uint_lt(cfg.chunk_bytes, 4u << 20); /* gRPC's default limit */
  ck_assert_uint_eq(cfg.max_response_bytes, 1ull << 30);
  ck_assert_uint_eq(cfg.max_batch, 1024);
  ck_assert_uint_eq(cfg.max_seq_len, 32768);
  ck_assert(cfg.drain_timeout_s == 30.0);
}
END_TEST

START_TEST(test_no_arguments_keeps_defaults) {
  nne_config_t cfg, ref;
  nne_err_t err;
  nne_config_defaults(&cfg);
  nne_config_defaults(&ref);
  ck_assert_int_eq(parse_list(&cfg, &err, NO_ARGS), 0);
  ck_assert(memcmp(&cfg, &ref, sizeof cfg) == 0);
}
END_TEST

/* ---- every flag ------------------------------------------------------------ */

START_TEST(test_every_flag) {
  nne_config_t cfg = parse_ok(ARGS(
      "--listen", "0.0.0.0:7000", "--model-repo", "/srv/models", "--load",
      "gpt2-script", "--load", "llama", "--device", "cuda:1", "--threads", "8",
      "--workers", "3", "--max-queue", "5", "--log-level", "debug",
      "--ready-file", "/tmp/ready", "--max-message-bytes", "2M",
      "--max-response-bytes", "3G", "--chunk-bytes", "512K", "--max-batch",
      "7", "--max-seq-len", "99", "--drain-timeout", "5", "--tls-cert",
      "/etc/c.pem", "--tls-key", "/etc/k.pem", "--tls-client-ca", "/etc/ca.pem",
      "--token-file", "/etc/tokens", "--allow-failed-loads",
      "--metrics-listen", ":9100"));
  ck_assert_str_eq(cfg.listen, "0.0.0.0:7000");
  ck_assert_str_eq(cfg.metrics_listen, ":9100");
  ck_assert_str_eq(cfg.tls_cert, "/etc/c.pem");
  ck_assert_str_eq(cfg.tls_key, "/etc/k.pem");
  ck_assert_str_eq(cfg.tls_client_ca, "/etc/ca.pem");
  ck_assert_str_eq(cfg.token_file, "/etc/tokens");
  ck_assert_int_eq(cfg.allow_failed_loads, 1);
  ck_assert_int_eq(cfg.insecure, 0);
  ck_assert_str_eq(cfg.model_repo, "/srv/models");
  ck_assert_int_eq(cfg.n_loads, 2);
  ck_assert_str_eq(cfg.loads[0], "gpt2-script");
  ck_assert_str_eq(cfg.loads[1], "llama");
  ck_assert_str_eq(cfg.device, "cuda:1");
  ck_assert_int_eq(cfg.threads, 8);
  ck_assert_int_eq(cfg.workers, 3);
  ck_assert_int_eq(cfg.max_queue, 5);
  ck_assert_str_eq(cfg.log_level, "debug");
  ck_assert_str_eq(cfg.ready_file, "/tmp/ready");
  ck_assert_uint_eq(cfg.max_message_bytes, 2u << 20);
  ck_assert_uint_eq(cfg.max_response_bytes, 3ull << 30);
  ck_assert_uint_eq(cfg.chunk_bytes, 512u << 10);
  ck_assert_uint_eq(cfg.max_batch, 7);
  ck_assert_uint_eq(cfg.max_seq_len, 99);
  ck_assert(cfg.drain_timeout_s == 5.0);
}
END_TEST

/* Beyond this host only TLS with tokens, unless --insecure says so. */
START_TEST(test_non_loopback_needs_tls_and_tokens) {
  static const char *const loopback[] = {
      "127.0.0.1:0",    "127.1.2.3:50051", "localhost:50051", "[::1]:50051",
      "unix:/tmp/sock", "ipv4:127.0.0.1:1", NULL};
  static const char *const remote[] = {"0.0.0.0:50051", "[::]:50051",
                                       "10.0.0.7:50051", "example.org:443",
                                       "127.0.0.1.example.org:1", NULL};
  size_t i;
  for (i = 0; loopback[i] != NULL; i++)
    ck_assert_msg(nne_config_loopback(loopback[i]), "%s", loopback[i]);
  for (i = 0; remote[i] != NULL; i++)
    ck_assert_msg(!nne_config_loopback(remote[i]), "%s", remote[i]);
  expect_einval(ARGS("--listen", "0.0.0.0:1"), "give --tls-cert/--tls-key and "
                                              "--token-file, or --insecure");
  expect_einval(ARGS("--listen", "0.0.0.0:1", "--tls-cert", "c", "--tls-key",
                   "k"),
              "serve it without tokens on purpose");
  expect_einval(ARGS("--tls-cert", "c"), "--tls-cert and --tls-key go together");
  expect_einval(ARGS("--tls-client-ca", "ca"), "--tls-client-ca needs");
  (void)parse_ok(ARGS("--listen", "0.0.0.0:1", "--insecure"));
  (void)parse_ok(ARGS("--listen", "0.0.0.0:1", "--tls-cert", "c",
                      "--tls-key", "k", "--token-file", "t"));
}
END_TEST

START_TEST(test_equals_form) {
  nne_config_t cfg =
      parse_ok(ARGS("--listen=unix:/tmp/nne.sock", "--workers=4",
                    "--log-level=WARN", "--chunk-bytes=64KiB", "--load=a"));
  ck_assert_str_eq(cfg.listen, "unix:/tmp/nne.sock");
  ck_assert_int_eq(cfg.workers, 4);
  ck_assert_str_eq(cfg.log_level, "WARN"); /* level names are case-blind */
  ck_assert_uint_eq(cfg.chunk_bytes, 64u << 10);
  ck_assert_int_eq(cfg.n_loads, 1);
  ck_assert_str_eq(cfg.loads[0], "a");
}
END_TEST

START_TEST(test_last_value_wins) {
  nne_config_t cfg = parse_ok(
      ARGS("--workers", "2", "--workers", "6", "--listen", "a:1", "--listen",
           "127.0.0.1:0"));
  ck_assert_int_eq(cfg.workers, 6);
  ck_assert_str_eq(cfg.listen, "127.0.0.1:0");
}
END_TEST

START_TEST(test_bounds_inclusive) {
  nne_config_t cfg;
  cfg = parse_ok(ARGS("--threads", "0", "--workers", "1", "--max-queue", "1",
                      "--max-batch", "1", "--max-seq-len", "1",
                      "--drain-timeout", "0", "--chunk-bytes", "1024",
                      "--max-message-bytes", "1024", "--max-response-bytes",
                      "1"));
  ck_assert_int_eq(cfg.threads, 0);
  ck_assert_int_eq(cfg.workers, 1);
  ck_assert_int_eq(cfg.max_queue, 1);
  ck_assert_uint_eq(cfg.max_batch, 1);
  ck_assert_uint_eq(cfg.max_seq_len, 1);
  ck_assert(cfg.drain_timeout_s == 0.0);
  ck_assert_uint_eq(cfg.chunk_bytes, 1024);
  ck_assert_uint_eq(cfg.max_message_bytes, 1024);
  ck_assert_uint_eq(cfg.max_response_bytes, 1);

  cfg = parse_ok(ARGS("--threads", "1024", "--workers", "256", "--max-queue",
                      "1048576", "--max-batch", "65536", "--max-seq-len",
                      "1048576", "--drain-timeout", "3600", "--chunk-bytes",
                      "3M", "--max-message-bytes", "2147483647",
                      "--max-response-bytes", "1024G"));
  ck_assert_int_eq(cfg.threads, 1024);
  ck_assert_int_eq(cfg.workers, 256);
  ck_assert_int_eq(cfg.max_queue, 1 << 20);
  ck_assert_uint_eq(cfg.max_batch, 1u << 16);
  ck_assert_uint_eq(cfg.max_seq_len, 1u << 20);
  ck_assert(cfg.drain_timeout_s == 3600.0);
  ck_assert_uint_eq(cfg.chunk_bytes, 3u << 20);
  ck_assert_uint_eq(cfg.max_message_bytes, 2147483647u);
  ck_assert_uint_eq(cfg.max_response_bytes, 1ull << 40);
}
END_TEST

/* ---- --load ---------------------------------------------------------------- */

START_TEST(test_load_repeatable_and_capped) {
  static const char *names[NNE_CONFIG_MAX_LOADS + 1] = {0};
  static char store[NNE_CONFIG_MAX_LOADS + 1][16];
  const char *args[2 * (NNE_CONFIG_MAX_LOADS + 1) + 1];
  nne_config_t cfg;
  nne_err_t err;
  int i, n = 0;

  for (i = 0; i < NNE_CONFIG_MAX_LOADS + 1; i++) {
    snprintf(store[i], sizeof store[i], "m%d", i);
    names[i] = store[i];
  }
  /* Exactly the cap: accepted, in order. */
  for (i = 0; i < NNE_CONFIG_MAX_LOADS; i++) {
    args[n++] = "--load";
    args[n++] = names[i];
  }
  args[n] = NULL;
  nne_config_defaults(&cfg);
  ck_assert_int_eq(parse_list(&cfg, &err, args), 0);
  ck_assert_int_eq(cfg.n_loads, NNE_CONFIG_MAX_LOADS);
  for (i = 0; i < NNE_CONFIG_MAX_LOADS; i++)
    ck_assert_str_eq(cfg.loads[i], names[i]);

  /* One more: refused, naming the flag. */
  args[n++] = "--load";
  args[n++] = names[NNE_CONFIG_MAX_LOADS];
  args[n] = NULL;
  nne_config_defaults(&cfg);
  ck_assert_int_eq(parse_list(&cfg, &err, args), NNE_EINVAL);
  ck_assert_ptr_nonnull(strstr(err.msg, "--load"));
  ck_assert_int_le(cfg.n_loads, NNE_CONFIG_MAX_LOADS);
}
END_TEST

/* ---- size suffixes ---------------------------------------------------------- */

START_TEST(test_size_suffixes) {
  static const struct {
    const char *text;
    uint64_t want;
  } cases[] = {
      {"4096", 4096},         {"4k", 4ull << 10},   {"4K", 4ull << 10},
      {"4KiB", 4ull << 10},   {"4KB", 4ull << 10},  {"4Ki", 4ull << 10},
      {"2m", 2ull << 20},     {"2M", 2ull << 20},   {"2MiB", 2ull << 20},
      {"1g", 1ull << 30},     {"1G", 1ull << 30},   {"1GiB", 1ull << 30},
      {"1GB", 1ull << 30},    {"1024G", 1ull << 40},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    nne_config_t cfg =
        parse_ok(ARGS("--max-response-bytes", cases[i].text));
    ck_assert_msg(cfg.max_response_bytes == cases[i].want,
                  "'%s' parsed as %llu, want %llu", cases[i].text,
                  (unsigned long long)cfg.max_response_bytes,
                  (unsigned long long)cases[i].want);
  }
  ck_assert_uint_eq(parse_ok(ARGS("--max-message-bytes", "1G"))
                        .max_message_bytes,
                    1u << 30);
  ck_assert_uint_eq(parse_ok(ARGS("--chunk-bytes", "2m")).chunk_bytes,
                    2u << 20);
}
END_TEST

START_TEST(test_size_suffix_garbage_rejected) {
  expect_einval(ARGS("--max-response-bytes", "4Kx"), "--max-response-bytes");
  expect_einval(ARGS("--max-response-bytes", "4T"), "--max-response-bytes");
  expect_einval(ARGS("--max-response-bytes", "K"), "--max-response-bytes");
  expect_einval(ARGS("--max-response-bytes", "4 K"), "--max-response-bytes");
  expect_einval(ARGS("--max-response-bytes", "4KiBx"), "--max-response-bytes");
  expect_einval(ARGS("--max-response-bytes", "1.5G"), "--max-response-bytes");
  /* Doubled unit letters are not a unit. */
  expect_einval(ARGS("--max-response-bytes", "4KBB"), "--max-response-bytes");
  expect_einval(ARGS("--chunk-bytes", "64iB"), "--chunk-bytes");
}
END_TEST

START_TEST(test_suffix_only_where_allowed) {
  /* Counts are plain numbers: a size suffix is an error, not a multiplier. */
  expect_einval(ARGS("--workers", "2K"), "--workers");
  expect_einval(ARGS("--max-batch", "1K"), "--max-batch");
  expect_einval(ARGS("--max-seq-len", "1k"), "--max-seq-len");
  expect_einval(ARGS("--max-queue", "1M"), "--max-queue");
  expect_einval(ARGS("--threads", "1G"), "--threads");
  expect_einval(ARGS("--drain-timeout", "1K"), "--drain-timeout");
}
END_TEST

/* ---- range and syntax errors ---------------------------------------------- */

START_TEST(test_out_of_range) {
  expect_einval(ARGS("--workers", "0"), "--workers");
  expect_einval(ARGS("--workers", "257"), "--workers");
  expect_einval(ARGS("--threads", "1025"), "--threads");
  expect_einval(ARGS("--max-queue", "0"), "--max-queue");
  expect_einval(ARGS("--max-queue", "1048577"), "--max-queue");
  expect_einval(ARGS("--max-batch", "0"), "--max-batch");
  expect_einval(ARGS("--max-batch", "65537"), "--max-batch");
  expect_einval(ARGS("--max-seq-len", "0"), "--max-seq-len");
  expect_einval(ARGS("--max-seq-len", "1048577"), "--max-seq-len");
  expect_einval(ARGS("--drain-timeout", "3601"), "--drain-timeout");
  expect_einval(ARGS("--chunk-bytes", "1023"), "--chunk-bytes");
  expect_einval(ARGS("--chunk-bytes", "3145729"), "--chunk-bytes");
  expect_einval(ARGS("--chunk-bytes", "4M"), "--chunk-bytes");
  expect_einval(ARGS("--max-message-bytes", "1023"), "--max-message-bytes");
  /* gRPC takes an int: 2 GiB is one too many. */
  expect_einval(ARGS("--max-message-bytes", "2G"), "--max-message-bytes");
  expect_einval(ARGS("--max-message-bytes", "2147483648"),
                "--max-message-bytes");
  expect_einval(ARGS("--max-response-bytes", "0"), "--max-response-bytes");
  expect_einval(ARGS("--max-response-bytes", "1025G"), "--max-response-bytes");
  /* A suffix that overflows 64 bits is out of range, not wrapped. */
  expect_einval(ARGS("--max-response-bytes", "18446744073709551615G"),
                "--max-response-bytes");
  /* The message gives the bounds. */
  expect_einval(ARGS("--workers", "300"), "[1, 256]");
}
END_TEST

START_TEST(test_not_numbers) {
  expect_einval(ARGS("--workers", "two"), "--workers");
  expect_einval(ARGS("--workers", ""), "--workers");
  expect_einval(ARGS("--workers", "-1"), "--workers");
  expect_einval(ARGS("--workers", "3x"), "--workers");
  expect_einval(ARGS("--workers", "0x10"), "--workers");
  expect_einval(ARGS("--max-queue", "99999999999999999999999"), "--max-queue");
  expect_einval(ARGS("--drain-timeout", "1.5"), "--drain-timeout");
  expect_einval(ARGS("--threads", "-0"), "--threads");
  expect_einval(ARGS("--max-batch=", ""), "--max-batch");
  /* The value is quoted back. */
  expect_einval(ARGS("--workers", "two"), "'two'");
}
END_TEST

START_TEST(test_rejected_value_leaves_setting_alone) {
  /* A value that fails to parse must not be stored: the caller still holds
   * a valid configuration (the defaults) when it prints the usage. The
   * successful parse first leaves a plausible stale number on the stack. */
  nne_config_t cfg;
  nne_err_t err;
  ck_assert_int_eq(parse_ok(ARGS("--workers", "7")).workers, 7);
  nne_config_defaults(&cfg);
  ck_assert_int_eq(parse_list(&cfg, &err, ARGS("--workers", "300")),
                   NNE_EINVAL);
  ck_assert_msg(cfg.workers == 1, "--workers 300 was refused but stored %d",
                cfg.workers);
  nne_config_defaults(&cfg);
  ck_assert_int_eq(parse_list(&cfg, &err, ARGS("--max-queue", "x")),
                   NNE_EINVAL);
  ck_assert_msg(cfg.max_queue == 64, "--max-queue x was refused but stored %d",
                cfg.max_queue);
}
END_TEST

START_TEST(test_bad_log_level) {
  expect_einval(ARGS("--log-level", "verbose"), "--log-level");
  expect_einval(ARGS("--log-level", ""), "--log-level");
  ck_assert_str_eq(parse_ok(ARGS("--log-level", "off")).log_level, "off");
}
END_TEST

/* ---- option syntax ---------------------------------------------------------- */

START_TEST(test_unknown_option) {
  expect_einval(ARGS("--bogus"), "--bogus");
  expect_einval(ARGS("--workers", "2", "--frobnicate", "x"), "--frobnicate");
  expect_einval(ARGS("-x"), "-x");
  /* A prefix of two long options is ambiguous, hence refused. */
  expect_einval(ARGS("--max", "3"), "--max");
  /* A flag that takes no value given one. */
  expect_einval(ARGS("--version=1"), "--version");
}
END_TEST

START_TEST(test_unknown_short_option_in_cluster_named) {
  /* "-zq": getopt reports 'z' before it leaves this argument, so the message
   * must not name whatever argv[optind - 1] happens to be (argv[0] here). */
  expect_einval(ARGS("-zq"), "-z");
}
END_TEST

START_TEST(test_reparse_after_cluster_error) {
  /* nne_config_parse is a function, not main: a second call must parse its
   * own argv and not resume the previous one's short-option cluster. */
  nne_config_t cfg;
  nne_err_t err;
  nne_config_defaults(&cfg);
  ck_assert_int_eq(parse_list(&cfg, &err, ARGS("-zq")), NNE_EINVAL);
  nne_config_defaults(&cfg);
  ck_assert_msg(parse_list(&cfg, &err, ARGS("--workers", "3")) == 0,
                "second parse failed: %s", err.msg);
  ck_assert_int_eq(cfg.workers, 3);
}
END_TEST

START_TEST(test_missing_value) {
  expect_einval(ARGS("--listen"), "--listen");
  expect_einval(ARGS("--workers", "2", "--max-queue"), "--max-queue");
  expect_einval(ARGS("--load"), "--load");
  expect_einval(ARGS("--chunk-bytes"), "needs a value");
  /* A required value swallows the next word, which must then parse. */
  expect_einval(ARGS("--max-queue", "--workers", "2"), "--max-queue");
}
END_TEST

START_TEST(test_stray_positional) {
  expect_einval(ARGS("extra"), "'extra'");
  expect_einval(ARGS("--workers", "2", "model.pt"), "'model.pt'");
  /* Before the options (getopt permutes): still refused. */
  expect_einval(ARGS("first", "--workers", "2"), "'first'");
  /* After "--" everything is positional. */
  expect_einval(ARGS("--", "--workers"), "'--workers'");
}
END_TEST

/* ---- --help and --version -------------------------------------------------- */

/* Runs a parse with stdout captured; returns rc and the output. */
static int parse_capturing_stdout(const char *const *args, char *out,
                                  size_t cap) {
  char path[] = "/tmp/nne_test_config_XXXXXX";
  nne_config_t cfg;
  nne_err_t err;
  int fd, saved, rc;
  ssize_t n;

  fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  fflush(stdout);
  saved = dup(STDOUT_FILENO);
  ck_assert_int_ge(saved, 0);
  dup2(fd, STDOUT_FILENO);
  nne_config_defaults(&cfg);
  rc = parse_list(&cfg, &err, args);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  n = pread(fd, out, cap - 1, 0);
  close(fd);
  out[n > 0 ? n : 0] = '\0';
  return rc;
}

START_TEST(test_help) {
  char out[8192];
  ck_assert_int_eq(parse_capturing_stdout(ARGS("--help"), out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "usage: nneditd"));
  /* Every flag is documented. */
  ck_assert_ptr_nonnull(strstr(out, "--listen"));
  ck_assert_ptr_nonnull(strstr(out, "--model-repo"));
  ck_assert_ptr_nonnull(strstr(out, "--load"));
  ck_assert_ptr_nonnull(strstr(out, "--device"));
  ck_assert_ptr_nonnull(strstr(out, "--threads"));
  ck_assert_ptr_nonnull(strstr(out, "--workers"));
  ck_assert_ptr_nonnull(strstr(out, "--max-queue"));
  ck_assert_ptr_nonnull(strstr(out, "--max-message-bytes"));
  ck_assert_ptr_nonnull(strstr(out, "--max-response-bytes"));
  ck_assert_ptr_nonnull(strstr(out, "--chunk-bytes"));
  ck_assert_ptr_nonnull(strstr(out, "--max-batch"));
  ck_assert_ptr_nonnull(strstr(out, "--max-seq-len"));
  ck_assert_ptr_nonnull(strstr(out, "--drain-timeout"));
  ck_assert_ptr_nonnull(strstr(out, "--ready-file"));
  ck_assert_ptr_nonnull(strstr(out, "--log-level"));
  ck_assert_ptr_nonnull(strstr(out, "--version"));

  ck_assert_int_eq(parse_capturing_stdout(ARGS("-h"), out, sizeof out), 1);
  ck_assert_ptr_nonnull(strstr(out, "usage: nneditd"));
  /* --help wins over the options after it (they are not parsed). */
  ck_assert_int_eq(
      parse_capturing_stdout(ARGS("--help", "--workers", "0"), out, sizeof out),
      1);
}
END_TEST

START_TEST(test_version) {
  char out[256];
  ck_assert_int_eq(parse_capturing_stdout(ARGS("--version"), out, sizeof out),
                   1);
  ck_assert_str_eq(out, NNE_FAULT_COMPILED
                            ? "nneditd " NNE_VERSION "\ntest build: fault "
                              "injection compiled in (NNE_FAULTS)\n"
                            : "nneditd " NNE_VERSION "\n");
}
END_TEST

static Suite *config_suite(void) {
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_no_arguments_keeps_defaults);
  tcase_add_test(tc, test_every_flag);
  tcase_add_test(tc, test_equals_form);
  tcase_add_test(tc, test_last_value_wins);
  tcase_add_test(tc, test_bounds_inclusive);
  tcase_add_test(tc, test_load_repeatable_and_capped);
  tcase_add_test(tc, test_size_suffixes);
  tcase_add_test(tc, test_size_suffix_garbage_rejected);
  tcase_add_test(tc, test_suffix_only_where_allowed);
  tcase_add_test(tc, test_out_of_range);
  tcase_add_test(tc, test_not_numbers);
  tcase_add_test(tc, test_rejected_value_leaves_setting_alone);
  tcase_add_test(tc, test_bad_log_level);
  tcase_add_test(tc, test_unknown_option);
  tcase_add_test(tc, test_unknown_short_option_in_cluster_named);
  tcase_add_test(tc, test_reparse_after_cluster_error);
  tcase_add_test(tc, test_missing_value);
  tcase_add_test(tc, test_stray_positional);
  tcase_add_test(tc, test_help);
  tcase_add_test(tc, test_version);
  tcase_add_test(tc, test_non_loopback_needs_tls_and_tokens);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(config_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
