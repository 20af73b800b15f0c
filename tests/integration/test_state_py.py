"""Edit sets survive a restart (issue 13): with --state-dir, every set an
Apply created is on disk before the Apply answers; after SIGKILL the next
start restores all of them under the same ids, labels and creation times,
and each gives bit-identical results; a dropped set stays dropped; a
damaged record is reported, renamed and skipped while the others come back;
readiness waits for the restores.
"""

import glob
import os
import shutil
import signal
import tempfile
import unittest

import numpy as np

from nnedit_testlib import Daemon, forward, models_pb2
from nnedit.v1 import edits_pb2, edits_pb2_grpc, tensor_pb2

NAMES = ["gpt2-script", "llama-trace"]
ROWS = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]]
D = 64  # the fixtures' width


def tensor_msg(a):
    a = np.ascontiguousarray(a, dtype=np.float32)
    return tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=list(a.shape),
                             data=a.tobytes())


def edit_batches(rng):
    """Five different edit sets: steering tensors, scalars, ranges, saves."""
    for k in range(5):
        yield "set-%d" % k, [
            edits_pb2.Edit(site="layers.%d.resid_post" % (k % 2), op=edits_pb2.EDIT_OP_ADD,
                           tensor=tensor_msg(rng.normal(size=D))),
            edits_pb2.Edit(site="layers.0.mlp_out", op=edits_pb2.EDIT_OP_SCALE,
                           scalar=0.25 * (k + 1)),
            edits_pb2.Edit(site="layers.1.self_attn.z", op=edits_pb2.EDIT_OP_ZERO,
                           ranges=[edits_pb2.DimRange(dim=-1, start=16 * (k % 4),
                                                      stop=16 * (k % 4) + 16)]),
            edits_pb2.Edit(site="layers.1.resid_post", op=edits_pb2.EDIT_OP_SAVE,
                           name="r%d" % k),
        ]


class State(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="nnedit-state-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        args = ["--state-dir", self.dir]
        for n in NAMES:
            args += ["--load", n]
        d = Daemon(*args)
        d.edits = edits_pb2_grpc.EditsStub(d.channel)
        return d

    def results(self, d, sets):
        out = {}
        for es in sets:
            res, tensors = forward(d.inference, es.model, ROWS, top_k=2, logits=2,
                                   edit_set=es.id)
            out[es.id] = (tensors["logits"].copy(), {k: v.copy() for k, v in tensors.items()},
                          [[(t.token_id, t.logit) for t in r.top] for r in res.rows])
        return out

    def listed(self, d):
        got = d.edits.List(edits_pb2.ListEditSetsRequest(), timeout=30).edit_sets
        return {s.id: (s.model, s.label, s.edit_count, s.created_unix_ms) for s in got}

    def test_sigkill_then_every_set_back(self):
        rng = np.random.default_rng(7)
        d = self.start()
        try:
            sets = [d.edits.Apply(edits_pb2.ApplyEditsRequest(model=m, edits=e, label=label),
                                  timeout=60).edit_set
                    for m in NAMES for label, e in edit_batches(rng)]
            before = self.results(d, sets)
            listed = self.listed(d)
            dropped = sets[3]
            d.edits.Drop(edits_pb2.DropEditSetRequest(id=dropped.id), timeout=30)
            del listed[dropped.id]
        finally:
            d.kill()  # SIGKILL: no drain, no chance to write anything more
            d.stop()
        self.assertEqual(len(glob.glob(os.path.join(self.dir, "sets", "*", "*.es"))),
                         len(sets) - 1)

        d = self.start()  # ready only once every set is back
        try:
            self.assertEqual(self.listed(d), listed)
            after = self.results(d, [s for s in sets if s.id != dropped.id])
            for sid, (logits, tensors, top) in after.items():
                want = before[sid]
                self.assertTrue(np.array_equal(logits, want[0]), sid)
                self.assertEqual(sorted(tensors), sorted(want[1]), sid)
                for k in tensors:
                    self.assertTrue(np.array_equal(tensors[k], want[1][k]), (sid, k))
                self.assertEqual(top, want[2], sid)
            with self.assertRaises(Exception) as cm:
                forward(d.inference, dropped.model, ROWS, edit_set=dropped.id)
            self.assertIn(dropped.id, str(cm.exception))
            self.assertIn("restored", d.log_text())
        finally:
            self.assertEqual(d.stop(), 0)

    def test_damaged_record_skipped(self):
        rng = np.random.default_rng(8)
        d = self.start()
        try:
            sets = [d.edits.Apply(edits_pb2.ApplyEditsRequest(model=NAMES[0], edits=e,
                                                              label=label), timeout=60).edit_set
                    for label, e in list(edit_batches(rng))[:3]]
        finally:
            self.assertEqual(d.stop(), 0)  # a clean stop keeps the sets too
        files = {s.id: os.path.join(self.dir, "sets", NAMES[0], s.id + ".es") for s in sets}
        with open(files[sets[0].id], "r+b") as f:  # one flipped byte in the request
            f.seek(-3, os.SEEK_END)
            b = f.read(1)
            f.seek(-3, os.SEEK_END)
            f.write(bytes([b[0] ^ 0xFF]))
        with open(files[sets[1].id], "r+b") as f:  # cut short
            f.truncate(os.path.getsize(files[sets[1].id]) // 2)
        with open(os.path.join(self.dir, "sets", NAMES[0], "es-zz.es"), "w") as f:
            f.write("not a record")  # not an id: ignored
        d = self.start()
        try:
            self.assertEqual(set(self.listed(d)), {sets[2].id})
            log = d.log_text()
            self.assertIn("checksum mismatch", log)
            self.assertIn("truncated", log)
            for s in sets[:2]:
                self.assertTrue(os.path.exists(files[s.id] + ".bad"), s.id)
            # The daemon serves on: a new set, then a restart brings it back.
            new = d.edits.Apply(edits_pb2.ApplyEditsRequest(
                model=NAMES[0], edits=list(edit_batches(rng))[0][1]), timeout=60).edit_set
        finally:
            self.assertEqual(d.stop(), 0)
        d = self.start()
        try:
            self.assertEqual(set(self.listed(d)), {sets[2].id, new.id})
        finally:
            self.assertEqual(d.stop(), 0)

    def test_bad_state_dir(self):
        path = os.path.join(self.dir, "file")
        with open(path, "w") as f:
            f.write("x")
        with self.assertRaises(RuntimeError) as cm:
            Daemon("--state-dir", path, timeout=30)
        self.assertIn("--state-dir", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
