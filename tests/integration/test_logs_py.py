"""--log-format json (issue 11): every line nneditd writes is one JSON
object (time, level, pid, message), and every call that reached the daemon
gets one line with method, model, request_id (the client's x-request-id or
one of the daemon's), peer, duration_ms and code — what log shippers index.
Strings a client controls (a model name with a newline, quotes, bytes that
are not UTF-8) stay one valid line. The default text format is unchanged
and keeps those per-call lines at debug.
"""

import json
import re
import unittest

import grpc

from nnedit_testlib import Daemon, forward, health_pb2, models_pb2

NAME = "gpt2-script"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class JsonLogs(unittest.TestCase):
    def test_json_lines_and_one_line_per_call(self):
        d = Daemon("--load", NAME, "--log-format", "json")
        try:
            forward(d.inference, NAME, [[1, 2, 3]], top_k=1)
            # A call tagged with a request id, a failing call, a weird name.
            req = models_pb2.DescribeModelRequest(name=NAME)
            d.models.Describe(req, metadata=(("x-request-id", "req-42"),), timeout=30)
            with self.assertRaises(grpc.RpcError):
                d.models.Describe(models_pb2.DescribeModelRequest(name="nope"),
                                  metadata=(("x-request-id", "has space"),), timeout=30)
            weird = 'a\nb"c\\d'
            with self.assertRaises(grpc.RpcError):
                d.models.Describe(models_pb2.DescribeModelRequest(name=weird), timeout=30)
            d.health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        finally:
            self.assertEqual(d.stop(), 0)
        lines = [l for l in d.log_text().split("\n") if l]
        objs = []
        for l in lines:
            o = json.loads(l)  # every line is one JSON object
            self.assertTrue(TIME.match(o["time"]), o)
            self.assertIn(o["level"], ("debug", "info", "warn", "error"))
            self.assertIsInstance(o["pid"], int)
            self.assertIsInstance(o["message"], str)
            objs.append(o)
        calls = [o for o in objs if o["message"] == "call"]
        fwd = [o for o in calls if o["method"] == "/nnedit.v1.Inference/Forward"]
        self.assertEqual(len(fwd), 1, calls)
        f = fwd[0]
        self.assertEqual((f["model"], f["code"], f["level"]), (NAME, "OK", "info"))
        self.assertTrue(re.match(r"^r\d+$", f["request_id"]), f)
        self.assertTrue(f["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:")), f)
        self.assertGreater(f["duration_ms"], 0)
        desc = {o["request_id"]: o for o in calls
                if o["method"] == "/nnedit.v1.Models/Describe"}
        self.assertEqual(desc["req-42"]["code"], "OK")
        self.assertEqual(desc["req-42"]["model"], NAME)
        bad = [o for o in calls if o.get("model") == "nope"]
        self.assertEqual(len(bad), 1)
        self.assertEqual(bad[0]["code"], "NOT_FOUND")
        self.assertNotEqual(bad[0]["request_id"], "has space")  # ours instead
        weird_lines = [o for o in calls if o.get("model") == 'a\nb"c\\d']
        self.assertEqual(len(weird_lines), 1)
        self.assertEqual(weird_lines[0]["code"], "INVALID_ARGUMENT")
        # Health probes are logged too.
        self.assertTrue(any(o["method"] == "/grpc.health.v1.Health/Check" and
                            o["code"] == "OK" for o in calls))

    def test_text_by_default_without_call_lines(self):
        d = Daemon("--load", NAME)
        try:
            forward(d.inference, NAME, [[1, 2, 3]], top_k=1)
        finally:
            self.assertEqual(d.stop(), 0)
        lines = [l for l in d.log_text().split("\n") if l]
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, r"^\d{4}-\d\d-\d\dT\S+Z nneditd\[\d+\] (DEBUG|INFO |WARN |ERROR) ")
            self.assertNotIn(" call method=", l)

    def test_bad_format_is_a_usage_error(self):
        import subprocess
        from nnedit_testlib import NNEDITD, FIXTURES
        p = subprocess.run([NNEDITD, "--model-repo", FIXTURES, "--log-format", "xml"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--log-format: 'xml' is not text or json", p.stderr)


if __name__ == "__main__":
    unittest.main()
