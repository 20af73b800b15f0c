#!/usr/bin/env python3
"""Generates the Python stubs of proto/ for the grpcio tests.

    gen_py.py PROTOC PROTO_DIR OUT_DIR FILE.proto...

Messages (*_pb2.py) come from PROTOC, the protoc the build uses; the service
stubs (*_pb2_grpc.py) from grpc_tools' plugin, fed PROTOC's descriptor set.
Not grpc_tools' protoc alone: Debian's grpc_tools (1.14) bundles protoc 3.5,
which predates proto3 `optional` (ReadNode.invoke, Slice.start, ...); its
gRPC plugin only needs the services, which a descriptor set carries whole.
"""

import os
import subprocess
import sys

from grpc_tools import protoc as grpc_protoc


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    protoc, proto_dir, out_dir = sys.argv[1:4]
    files = sys.argv[4:]
    os.makedirs(out_dir, exist_ok=True)
    desc = os.path.join(out_dir, "protos.desc")
    subprocess.run([protoc, "-I" + proto_dir, "--python_out=" + out_dir,
                    "--include_imports", "--descriptor_set_out=" + desc] + files,
                   check=True, cwd=proto_dir)
    # grpc_tools.protoc.main, not `python -m grpc_tools.protoc`: the module's
    # entry point adds an -I of its own, which --descriptor_set_in refuses.
    rc = grpc_protoc.main(["protoc", "--descriptor_set_in=" + desc,
                           "--grpc_python_out=" + out_dir] + files)
    if rc != 0:
        sys.exit("gen_py.py: grpc_tools failed on " + " ".join(files))


if __name__ == "__main__":
    main()
