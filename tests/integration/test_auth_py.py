"""Bearer tokens with roles, checked at one choke point (issue 11): every
method of the method table called with no token, a wrong token and a token
of each role, through Python grpcio; the health service needs none; SIGHUP
reloads the token file (a broken file keeps the old tokens); nneditctl
(libnnedit) sends a token from --token-file or $NNEDIT_TOKEN; a malformed
token file stops the start naming its line. No message ever holds a token.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from nnedit_testlib import (Daemon, FIXTURES, NNEDITD, _die_with_parent, health_pb2,
                            health_pb2_grpc, inference_pb2, models_pb2, wait_loaded)

sys.path.insert(0, os.environ.get("NNE_PY_GEN", ""))
from nnedit.v1 import admin_pb2, admin_pb2_grpc, edits_pb2, edits_pb2_grpc  # noqa: E402
from nnedit.v1 import inference_pb2_grpc, models_pb2_grpc  # noqa: E402

NNEDITCTL = os.environ.get("NNEDITCTL", "nneditctl")
TOKENS = {
    "infer": "infer-token-0123456789abcdef",
    "edit": "edit-token-0123456789abcdef",
    "admin": "admin-token-0123456789abcdef",
}
WRONG = "wrong-token-0123456789abcdef"
NAME = "gpt2-script"
I = inference_pb2


def token_file(path, tokens):
    with open(path, "w") as f:
        f.write("# roles token\n")
        for role, tok in tokens.items():
            f.write("%s %s\n" % (role, tok))


def methods(channel):
    """(name, role, call(metadata)) for every method of nnedit.v1."""
    m = models_pb2_grpc.ModelsStub(channel)
    inf = inference_pb2_grpc.InferenceStub(channel)
    ed = edits_pb2_grpc.EditsStub(channel)
    adm = admin_pb2_grpc.AdminStub(channel)
    row = I.TokenRow(ids=[1, 2, 3])
    return [
        ("Models/List", "infer", lambda md: m.List(models_pb2.ListModelsRequest(), metadata=md,
                                                   timeout=30)),
        ("Models/Load", "admin", lambda md: m.Load(models_pb2.LoadModelRequest(name=NAME),
                                                   metadata=md, timeout=60)),
        ("Models/Unload", "admin", lambda md: m.Unload(
            models_pb2.UnloadModelRequest(name="llama-script"), metadata=md, timeout=60)),
        ("Models/Describe", "infer", lambda md: m.Describe(
            models_pb2.DescribeModelRequest(name=NAME), metadata=md, timeout=30)),
        ("Models/Graph", "infer", lambda md: m.Graph(models_pb2.GraphRequest(model=NAME),
                                                     metadata=md, timeout=30)),
        ("Inference/Forward", "infer", lambda md: list(inf.Forward(
            I.ForwardRequest(model=NAME, input_ids=[row]), metadata=md, timeout=30))),
        ("Inference/Trace", "infer", lambda md: list(inf.Trace(
            I.TraceRequest(model=NAME, traces=[I.Trace(invokes=[I.Invoke(input_ids=[row])])]),
            metadata=md, timeout=30))),
        ("Inference/Tokenize", "infer", lambda md: inf.Tokenize(
            I.TokenizeRequest(model=NAME, texts=["hi"]), metadata=md, timeout=30)),
        ("Inference/Detokenize", "infer", lambda md: inf.Detokenize(
            I.DetokenizeRequest(model=NAME, rows=[row]), metadata=md, timeout=30)),
        ("Inference/Generate", "infer", lambda md: list(inf.Generate(
            I.GenerateRequest(model=NAME, prompts=[row], max_new_tokens=2), metadata=md,
            timeout=30))),
        ("Edits/Apply", "edit", lambda md: ed.Apply(edits_pb2.ApplyEditsRequest(
            model=NAME, edits=[edits_pb2.Edit(site="layers.0.resid_post",
                                              op=edits_pb2.EDIT_OP_ZERO)]),
            metadata=md, timeout=60)),
        ("Edits/List", "edit", lambda md: ed.List(edits_pb2.ListEditSetsRequest(), metadata=md,
                                                  timeout=30)),
        ("Edits/Get", "edit", lambda md: ed.Get(edits_pb2.GetEditSetRequest(id="es-0"),
                                                metadata=md, timeout=30)),
        ("Edits/Drop", "edit", lambda md: ed.Drop(edits_pb2.DropEditSetRequest(id="es-0"),
                                                  metadata=md, timeout=30)),
        ("Admin/Stats", "admin", lambda md: adm.Stats(admin_pb2.StatsRequest(), metadata=md,
                                                      timeout=30)),
    ]


def code_of(fn, md):
    try:
        fn(md)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def bearer(tok):
    return (("authorization", "Bearer " + tok),)


class Auth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="nnedit-auth-")
        cls.tokens = os.path.join(cls.dir, "tokens")
        token_file(cls.tokens, TOKENS)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_every_method_with_every_token(self):
        with Daemon("--load", NAME, "--token-file", self.tokens) as d:
            health = health_pb2_grpc.HealthStub(d.channel)
            # Probes carry no token.
            self.assertEqual(health.Check(health_pb2.HealthCheckRequest(), timeout=10).status,
                             health_pb2.HealthCheckResponse.SERVING)
            table = methods(d.channel)
            # Every method of every nnedit.v1 service, as the proto has them.
            every = sorted("%s/%s" % (svc.name, m.name)
                           for pb in (models_pb2, I, edits_pb2, admin_pb2)
                           for svc in pb.DESCRIPTOR.services_by_name.values()
                           for m in svc.methods)
            self.assertEqual(sorted(name for name, _, _ in table), every)
            for name, role, fn in table:
                with self.subTest(method=name):
                    code, msg = code_of(fn, ())
                    self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, msg)
                    self.assertIn("bearer token", msg)
                    code, msg = code_of(fn, bearer(WRONG))
                    self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, msg)
                    self.assertNotIn(WRONG, msg)
                    code, msg = code_of(fn, (("authorization", "Basic " + WRONG),))
                    self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, msg)
                    for r, tok in TOKENS.items():
                        code, msg = code_of(fn, bearer(tok))
                        for t in TOKENS.values():
                            self.assertNotIn(t, msg)
                        if r == role:
                            self.assertNotIn(code, (grpc.StatusCode.UNAUTHENTICATED,
                                                    grpc.StatusCode.PERMISSION_DENIED),
                                             "%s with the %s token: %s" % (name, r, msg))
                        else:
                            self.assertEqual(code, grpc.StatusCode.PERMISSION_DENIED,
                                             "%s with the %s token: %s" % (name, r, msg))
                            self.assertIn("'%s'" % role, msg)
            self.assertNotIn(TOKENS["admin"], d.log_text())

    def test_sighup_reloads_and_a_broken_file_keeps_the_tokens(self):
        path = os.path.join(self.dir, "reload")
        token_file(path, TOKENS)
        with Daemon("--token-file", path) as d:
            models = models_pb2_grpc.ModelsStub(d.channel)

            def list_code(tok):
                return code_of(lambda md: models.List(models_pb2.ListModelsRequest(),
                                                      metadata=md, timeout=10), bearer(tok))[0]

            self.assertEqual(list_code(TOKENS["infer"]), grpc.StatusCode.OK)
            fresh = "fresh-infer-token-0123456789"
            token_file(path, {"infer": fresh, "admin": TOKENS["admin"]})
            d.signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while list_code(fresh) != grpc.StatusCode.OK:
                self.assertLess(time.monotonic(), deadline, d.log_text())
                time.sleep(0.02)
            self.assertEqual(list_code(TOKENS["infer"]), grpc.StatusCode.UNAUTHENTICATED)
            # A typo in the file: the tokens loaded before stay.
            with open(path, "w") as f:
                f.write("infre %s\n" % WRONG)
            d.signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "keeping the 2 tokens" not in d.log_text():
                self.assertLess(time.monotonic(), deadline, d.log_text())
                time.sleep(0.02)
            self.assertIn("reload:1:", d.log_text())
            self.assertEqual(list_code(fresh), grpc.StatusCode.OK)
            self.assertEqual(list_code(WRONG), grpc.StatusCode.UNAUTHENTICATED)

    def test_nneditctl_sends_the_token(self):
        with Daemon("--token-file", self.tokens) as d:
            env = dict(os.environ, NNEDIT_ADDR=d.addr)
            env.pop("NNEDIT_TOKEN", None)
            p = subprocess.run([NNEDITCTL, "models", "list"], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("UNAUTHENTICATED", p.stderr)
            env["NNEDIT_TOKEN"] = TOKENS["infer"]
            p = subprocess.run([NNEDITCTL, "models", "list"], env=env, capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(NAME, p.stdout)
            # --token-file wins over the environment; a role it lacks is
            # PERMISSION_DENIED.
            tf = os.path.join(self.dir, "ctl-token")
            with open(tf, "w") as f:
                f.write(TOKENS["edit"] + "\n")
            p = subprocess.run([NNEDITCTL, "stats", "--token-file", tf, "-o", "json"], env=env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn('"PERMISSION_DENIED"', p.stderr)
            self.assertNotIn(TOKENS["edit"], p.stderr)
            p = subprocess.run([NNEDITCTL, "--token-file", tf, "edits", "list"], env=env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_malformed_token_file_stops_the_start(self):
        bad = os.path.join(self.dir, "bad")
        with open(bad, "w") as f:
            f.write("# ok\ninfer %s\nadmin short\n" % TOKENS["infer"])
        p = subprocess.run(_die_with_parent([NNEDITD, "--listen", "127.0.0.1:0",
                                             "--model-repo", FIXTURES, "--token-file", bad]),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("bad:3:", p.stderr)
        self.assertNotIn("short", p.stderr)


if __name__ == "__main__":
    unittest.main()
