#!/usr/bin/env python3
"""Checks proto/nnedit/v1/*.proto against the conventions in proto/README.md
(the parts of buf's default lint rules and Google's API design guide the
project follows), from the descriptors protoc itself produces.

    check_proto.py PROTO_DIR        exit 0 when clean, 1 with one line per
                                    violation (file: element: rule)

Run by the test command (ctest: proto.lint). Uses protoc, the one the build
already needs (NNE_PROTOC, else protoc on PATH), and Python's protobuf
package; no other tool. Not grpc_tools' own protoc: Debian's (grpc_tools
1.14) bundles protoc 3.5, which predates proto3 `optional`.
"""

import os
import re
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

PASCAL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def upper_snake(name):
    """DType -> DTYPE, LogitsMode -> LOGITS_MODE, EditOp -> EDIT_OP."""
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return s.upper()


def descriptors(proto_dir, files):
    protoc = os.environ.get("NNE_PROTOC") or "protoc"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        cmd = [protoc, "-I" + proto_dir,
               "--include_source_info", "--descriptor_set_out=" + out] + files
        subprocess.run(cmd, check=True, cwd=proto_dir)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    return fds


def comments(fd):
    """path tuple -> leading comment, from the source info."""
    out = {}
    for loc in fd.source_code_info.location:
        out[tuple(loc.path)] = loc.leading_comments + loc.trailing_comments
    return out


def check_file(fd, bad):
    where = fd.name
    cm = comments(fd)
    if not re.match(r"^[a-z0-9_]+(\.[a-z0-9_]+)*\.v[0-9]+$", fd.package):
        bad.append("%s: package %s: must end with a version (.v1)" % (where, fd.package))

    def check_enum(en, path, prefix_name):
        if not PASCAL.match(en.name):
            bad.append("%s: enum %s: names are PascalCase" % (where, en.name))
        prefix = upper_snake(prefix_name) + "_"
        for i, v in enumerate(en.value):
            if not UPPER_SNAKE.match(v.name):
                bad.append("%s: %s.%s: values are UPPER_SNAKE_CASE" % (where, en.name, v.name))
            if not v.name.startswith(prefix):
                bad.append("%s: %s.%s: values carry the enum's prefix %s"
                           % (where, en.name, v.name, prefix))
            if v.number == 0 and not v.name.endswith("_UNSPECIFIED"):
                bad.append("%s: %s.%s: the zero value is %sUNSPECIFIED"
                           % (where, en.name, v.name, prefix))

    def check_message(m, path):
        if not PASCAL.match(m.name):
            bad.append("%s: message %s: names are PascalCase" % (where, m.name))
        for i, f in enumerate(m.field):
            if not SNAKE.match(f.name):
                bad.append("%s: %s.%s: fields are lower_snake_case" % (where, m.name, f.name))
            if f.type == f.TYPE_BOOL and re.match(r"^(use|has)_", f.name):
                bad.append("%s: %s.%s: presence is a oneof or `optional`, never a "
                           "use_/has_ flag" % (where, m.name, f.name))
        # proto3 `optional` fields sit in a oneof of their own that protoc
        # names "_<field>"; only the oneofs written in the file are checked.
        synthetic = {f.oneof_index for f in m.field
                     if f.HasField("oneof_index") and f.proto3_optional}
        for i, o in enumerate(m.oneof_decl):
            if i in synthetic:
                continue
            if not SNAKE.match(o.name):
                bad.append("%s: %s.%s: oneofs are lower_snake_case" % (where, m.name, o.name))
        for i, en in enumerate(m.enum_type):
            check_enum(en, path + (4, i), en.name)
        for i, sub in enumerate(m.nested_type):
            if sub.options.map_entry:
                continue
            check_message(sub, path + (3, i))

    for i, en in enumerate(fd.enum_type):
        check_enum(en, (5, i), en.name)
    for i, m in enumerate(fd.message_type):
        check_message(m, (4, i))
        if not cm.get((4, i), "").strip():
            bad.append("%s: message %s: say what it is in a comment" % (where, m.name))
    used = {}
    for si, svc in enumerate(fd.service):
        if not PASCAL.match(svc.name):
            bad.append("%s: service %s: names are PascalCase" % (where, svc.name))
        for mi, rpc in enumerate(svc.method):
            name = "%s.%s" % (svc.name, rpc.name)
            if not PASCAL.match(rpc.name):
                bad.append("%s: rpc %s: names are PascalCase" % (where, name))
            if not cm.get((6, si, 2, mi), "").strip():
                bad.append("%s: rpc %s: say what it does in a comment" % (where, name))
            req = rpc.input_type.split(".")[-1]
            resp = rpc.output_type.split(".")[-1]
            if not req.endswith("Request"):
                bad.append("%s: rpc %s: its request is named ...Request, not %s"
                           % (where, name, req))
            if not resp.endswith("Response"):
                bad.append("%s: rpc %s: its response is named ...Response, not %s"
                           % (where, name, resp))
            for t in (req, resp):
                if t in used:
                    bad.append("%s: rpc %s: %s is already the message of %s (one "
                               "request and one response per rpc)" % (where, name, t, used[t]))
                used[t] = name


def main():
    proto_dir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "proto")
    files = sorted(os.path.join("nnedit/v1", f)
                   for f in os.listdir(os.path.join(proto_dir, "nnedit/v1"))
                   if f.endswith(".proto"))
    fds = descriptors(proto_dir, files)
    bad = []
    for fd in fds.file:
        if fd.name.startswith("nnedit/"):
            check_file(fd, bad)
    for line in bad:
        print(line)
    print("%s: %d files, %d violations" % (os.path.basename(sys.argv[0]),
                                           len(files), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
