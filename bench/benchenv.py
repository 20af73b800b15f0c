"""benchenv.py — what the Python benchmarks set before numpy/torch load
OpenBLAS and libgomp (bench/README.md, "Environment"); the daemon they
start inherits it."""

import os


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def setup(as_is, py_gen, nneditd, fixtures):
    """OpenBLAS's kernel for this CPU and OpenMP threads that sleep when
    idle (unless as_is), and where the test helpers find the daemon."""
    if not as_is:
        if not os.environ.get("OPENBLAS_CORETYPE"):
            fl = cpu_flags()
            if "avx512f" in fl:
                os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
            elif "avx2" in fl:
                os.environ["OPENBLAS_CORETYPE"] = "Haswell"
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["NNE_PY_GEN"] = py_gen
    os.environ["NNEDITD"] = nneditd
    os.environ["NNE_FIXTURES_DIR"] = fixtures
