"""TLS and mTLS (issue 11), with certificates made at test time by openssl:
a CA, a server certificate for 127.0.0.1/localhost, a client certificate,
and a second CA nobody trusts. From Python grpcio and from nneditctl
(libnnedit): TLS works with the right CA and fails cleanly with the wrong
one or in plaintext; with --tls-client-ca a client needs a certificate the
CA signed; tokens travel over TLS.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

from nnedit_testlib import Daemon, forward, health_pb2, health_pb2_grpc, inference_pb2
from nnedit_testlib import inference_pb2_grpc

NNEDITCTL = os.environ.get("NNEDITCTL", "nneditctl")
NAME = "gpt2-script"
TOKEN = "tls-admin-token-0123456789"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.pem/key, server.pem/key (127.0.0.1, localhost), client.pem/key,
    other-ca.pem (an unrelated CA)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                "-subj", "/CN=nnedit test " + ca, cwd=d)
    for who, usage, san in (("server", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
                            ("client", "clientAuth", "DNS:nnedit-test-client")):
        openssl("req", *ec, "-keyout", who + ".key", "-out", who + ".csr",
                "-subj", "/CN=" + who, cwd=d)
        with open(os.path.join(d, who + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n"
                    % (san, usage))
        openssl("x509", "-req", "-in", who + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", who + ".pem", "-days", "2", "-extfile", who + ".ext",
                cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="nnedit-pki-")
        make_pki(cls.pki)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.pki, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.pki, name)

    def channel(self, addr, ca="ca.pem", cert=None):
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(self.pki, ca),
            private_key=read(self.pki, cert + ".key") if cert else None,
            certificate_chain=read(self.pki, cert + ".pem") if cert else None)
        return grpc.secure_channel(addr, creds)

    def check_code(self, channel):
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                      timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def ctl(self, addr, *args, token=None):
        env = dict(os.environ, NNEDIT_ADDR=addr)
        env.pop("NNEDIT_TOKEN", None)
        if token:
            env["NNEDIT_TOKEN"] = token
        return subprocess.run([NNEDITCTL, "--connect-timeout", "5"] + list(args), env=env,
                              capture_output=True, text=True, timeout=60)

    def test_tls(self):
        with Daemon("--load", NAME, "--tls-cert", self.path("server.pem"),
                    "--tls-key", self.path("server.key")) as d:
            ch = self.channel(d.addr)
            self.assertEqual(self.check_code(ch), grpc.StatusCode.OK)
            result, _ = forward(inference_pb2_grpc.InferenceStub(ch), NAME, [[1, 2, 3]], top_k=2)
            self.assertEqual(len(result.rows[0].top), 2)
            ch.close()
            # Plaintext against the TLS port, or trusting another CA: a clean
            # failure, not a hang.
            self.assertEqual(self.check_code(grpc.insecure_channel(d.addr)),
                             grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(self.check_code(self.channel(d.addr, ca="other-ca.pem")),
                             grpc.StatusCode.UNAVAILABLE)
            p = self.ctl(d.addr, "--ca", self.path("ca.pem"), "models", "list")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(NAME, p.stdout)
            p = self.ctl(d.addr, "models", "list")
            self.assertEqual(p.returncode, 3, p.stderr)  # unreachable in plaintext
            p = self.ctl(d.addr, "--ca", self.path("other-ca.pem"), "models", "list")
            self.assertEqual(p.returncode, 3, p.stderr)
            p = self.ctl(d.addr, "--ca", self.path("missing.pem"), "models", "list")
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("missing.pem", p.stderr)

    def test_mtls_with_tokens(self):
        tokens = os.path.join(self.pki, "tokens")
        with open(tokens, "w") as f:
            f.write("all %s\n" % TOKEN)
        with Daemon("--tls-cert", self.path("server.pem"), "--tls-key", self.path("server.key"),
                    "--tls-client-ca", self.path("ca.pem"), "--token-file", tokens) as d:
            ch = self.channel(d.addr, cert="client")
            self.assertEqual(self.check_code(ch), grpc.StatusCode.OK)
            ch.close()
            # No client certificate (or one this CA did not sign: the
            # server's own chain is not a client cert): refused.
            self.assertEqual(self.check_code(self.channel(d.addr)), grpc.StatusCode.UNAVAILABLE)
            p = self.ctl(d.addr, "--ca", self.path("ca.pem"), "--cert", self.path("client.pem"),
                         "--key", self.path("client.key"), "stats", token=TOKEN)
            self.assertEqual(p.returncode, 0, p.stderr)
            p = self.ctl(d.addr, "--ca", self.path("ca.pem"), "--cert", self.path("client.pem"),
                         "--key", self.path("client.key"), "stats")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("UNAUTHENTICATED", p.stderr)
            p = self.ctl(d.addr, "--ca", self.path("ca.pem"), "stats", token=TOKEN)
            self.assertEqual(p.returncode, 3, p.stderr)
            p = self.ctl(d.addr, "--ca", self.path("ca.pem"), "--cert", self.path("client.pem"),
                         "stats", token=TOKEN)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("go together", p.stderr)


if __name__ == "__main__":
    unittest.main()
