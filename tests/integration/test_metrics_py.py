"""Prometheus metrics (issue 11): --metrics-listen serves /metrics in the
text exposition format; the counters move with the calls the test makes;
a real Prometheus server (Debian's `prometheus`) scrapes the daemon and its
HTTP API returns the counter the test moved; a busy or malformed address is
an error naming it.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import grpc

from nnedit_testlib import Daemon, forward, models_pb2

NAME = "gpt2-script"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
PROMETHEUS = shutil.which("prometheus")


def metrics_addr(d):
    m = re.search(r"metrics at http://([0-9.:]+)/metrics", d.log_text())
    assert m, d.log_text()
    return m.group(1)


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse(text):
    """{(name, frozenset(labels)): value}, checking the format as it goes:
    every sample's family has # HELP and # TYPE before it, once."""
    families, samples = {}, {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name = line[2:6], line.split(" ")[2]
            assert (name, kind) not in families, "twice: " + line
            families[(name, kind)] = line.split(" ", 3)[3]
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        fam = name if (name, "TYPE") in families else base
        assert (fam, "HELP") in families and (fam, "TYPE") in families, line
        key = (name, frozenset(LABEL.findall(labels)))
        assert key not in samples, "sample twice: " + line
        samples[key] = float(value)
    return families, samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Metrics(unittest.TestCase):
    def test_document_and_counters(self):
        with Daemon("--load", NAME, "--metrics-listen", "127.0.0.1:0") as d:
            addr = metrics_addr(d)
            for _ in range(3):
                forward(d.inference, NAME, [[1, 2, 3]], top_k=1)
            with self.assertRaises(grpc.RpcError):
                forward(d.inference, "nope", [[1]])
            d.models.Describe(models_pb2.DescribeModelRequest(name=NAME), timeout=30)
            status, headers, text = get("http://%s/metrics" % addr)
            self.assertEqual(status, 200)
            self.assertTrue(headers["Content-Type"].startswith(
                "text/plain; version=0.0.4"), headers)
            fams, s = parse(text)
            fwd = dict(service="nnedit.v1.Inference", method="Forward")
            self.assertEqual(value(s, "nnedit_requests_total", code="OK", **fwd), 3)
            self.assertEqual(value(s, "nnedit_requests_total", code="NOT_FOUND", **fwd), 1)
            self.assertEqual(value(s, "nnedit_requests_total", code="OK",
                                   service="nnedit.v1.Models", method="Describe"), 1)
            # The histogram: cumulative buckets ending in +Inf == _count.
            buckets = sorted(
                (float(dict(k[1])["le"]), v) for k, v in s.items()
                if k[0] == "nnedit_request_duration_seconds_bucket"
                and dict(k[1]).get("method") == "Forward")
            self.assertEqual(buckets[-1], (float("inf"), 4))
            self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets))
            self.assertEqual(value(s, "nnedit_request_duration_seconds_count", **fwd), 4)
            self.assertGreater(value(s, "nnedit_request_duration_seconds_sum", **fwd), 0)
            self.assertGreater(value(s, "nnedit_response_bytes_total", **fwd), 0)
            self.assertEqual(value(s, "nnedit_models", state="loaded"), 1)
            self.assertEqual(value(s, "nnedit_queue_capacity", executor="compute"), 64)
            self.assertEqual(value(s, "nnedit_queue_depth", executor="compute"), 0)
            # 3 OK forward passes ran on the compute executor.
            self.assertGreaterEqual(
                value(s, "nnedit_compute_seconds_count", executor="compute"), 3)
            self.assertEqual(value(s, "nnedit_queue_wait_seconds_count", executor="loader"), 1)
            self.assertEqual(value(s, "nnedit_edit_sets", model=NAME), 0)
            self.assertGreater(value(s, "nnedit_model_parameter_bytes", model=NAME,
                                     device="cpu"), 0)
            self.assertGreater(value(s, "process_resident_memory_bytes"), 10 << 20)
            self.assertEqual(value(s, "nnedit_ready"), 1)
            self.assertEqual(value(s, "nnedit_trace_sessions"), 0)
            for name in ("nnedit_requests_total", "nnedit_backend_cache_hits_total",
                         "nnedit_backend_cache_misses_total",
                         "nnedit_backend_cache_evictions_total", "process_cpu_seconds_total"):
                self.assertEqual(fams[(name, "TYPE")], "counter", name)
            self.assertEqual(fams[("nnedit_backend_compile_seconds", "TYPE")], "histogram")
            # Only /metrics, only GET and HEAD; no body is read.
            self.assertEqual(get("http://%s/" % addr)[0], 404)
            status, headers, _ = get("http://%s/metrics" % addr, method="POST")
            self.assertEqual(status, 405)
            self.assertEqual(headers["Allow"], "GET, HEAD")
            status, _, body = get("http://%s/metrics" % addr, method="HEAD")
            self.assertEqual((status, body), (200, ""))

    def test_busy_or_malformed_address(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = "127.0.0.1:%d" % s.getsockname()[1]
        try:
            for addr, words in ((busy, busy), ("127.0.0.1:http", "port"),
                                ("example.org:9090", "not an IP address")):
                with self.assertRaises(RuntimeError) as cm:
                    Daemon("--metrics-listen", addr, timeout=30)
                self.assertIn("--metrics-listen", str(cm.exception))
                self.assertIn(words, str(cm.exception))
        finally:
            s.close()


@unittest.skipIf(PROMETHEUS is None, "Debian's prometheus is not installed "
                 "(deploy/setup.sh installs it)")
class RealPrometheus(unittest.TestCase):
    """Prometheus itself scrapes nneditd: the document parses by its rules
    (a scrape it cannot parse gives up == 0), and its query API shows the
    Forward counter the test moved, before and after moving it more."""

    def query(self, prom, q):
        url = "http://%s/api/v1/query?%s" % (prom, urllib.parse.urlencode({"query": q}))
        status, _, body = get(url)
        if status != 200:
            return None
        res = json.loads(body)["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def wait_value(self, prom, q, want, log):
        deadline = time.monotonic() + 90
        got = None
        while time.monotonic() < deadline:
            try:
                got = self.query(prom, q)
            except (urllib.error.URLError, ConnectionError, OSError):
                got = None
            if got == want:
                return
            time.sleep(0.5)
        self.fail("Prometheus: %s = %r, want %r\n%s" % (q, got, want, log()))

    def test_prometheus_scrapes_nneditd(self):
        tmp = tempfile.mkdtemp(prefix="nnedit-prom-")
        prom_proc = None
        with Daemon("--load", NAME, "--metrics-listen", "127.0.0.1:0") as d:
            target = metrics_addr(d)
            for _ in range(2):
                forward(d.inference, NAME, [[5, 6]], top_k=1)
            with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                        "scrape_configs:\n  - job_name: nneditd\n"
                        "    static_configs:\n      - targets: ['%s']\n" % target)
            prom = "127.0.0.1:%d" % free_port()
            log_path = os.path.join(tmp, "prometheus.log")
            log = open(log_path, "wb")
            prom_proc = subprocess.Popen(
                [PROMETHEUS, "--config.file", os.path.join(tmp, "prometheus.yml"),
                 "--storage.tsdb.path", os.path.join(tmp, "data"),
                 "--web.listen-address", prom],
                stdout=log, stderr=subprocess.STDOUT)

            def prom_log():
                with open(log_path, "rb") as f:
                    return f.read().decode("utf-8", "replace")[-4000:]
            try:
                self.wait_value(prom, 'up{job="nneditd"}', 1.0, prom_log)
                q = ('nnedit_requests_total{job="nneditd",service="nnedit.v1.Inference",'
                     'method="Forward",code="OK"}')
                self.wait_value(prom, q, 2.0, prom_log)
                for _ in range(3):
                    forward(d.inference, NAME, [[7]], top_k=1)
                self.wait_value(prom, q, 5.0, prom_log)
                self.wait_value(prom, 'nnedit_models{job="nneditd",state="loaded"}', 1.0,
                                prom_log)
            finally:
                prom_proc.terminate()
                try:
                    prom_proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    prom_proc.kill()
                    prom_proc.wait(timeout=10)
                log.close()
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
