#!/usr/bin/python3
"""Checks deploy/k8s/ against the daemon the image runs.

    check_manifests.py [--nneditd PATH] [--manifests DIR] [--dockerfile FILE]

Every manifest is parsed (Debian's python3-yaml). For each Deployment the
nneditd command line is the image's ENTRYPOINT (read from the Dockerfile's
last stage) followed by the container's args, as the container runtime runs
it; that line is held against `nneditd --help`:

  - every --flag is one --help lists;
  - a non-loopback --listen has --tls-cert, --tls-key and --token-file, or
    --insecure (the daemon's own rule);
  - every probe reaches the --listen port: a native gRPC probe by its port, an
    exec probe (nneditctl) by its --addr; liveness asks for service "", readiness
    and startup for the readiness service --help names;
  - the metrics port is the same in --metrics-listen, the container's port
    named metrics, the prometheus.io/port annotation and the Service;
  - terminationGracePeriodSeconds is above --drain-timeout;
  - --model-repo and every file flag lie under a volume mount, file flags
    under a Secret's mount whose Secret (in these manifests) has that key;
  - --device cuda asks for nvidia.com/gpu, and no other device does;
  - the pod runs as the image's USER.

The nneditd path comes from --nneditd, else $NNEDITD, else build/nneditd.
Exits 0 when every check passes; prints each failure otherwise.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Flags whose value is a file the daemon opens.
FILE_FLAGS = ("--token-file", "--tls-cert", "--tls-key", "--tls-client-ca")

failures = []
notes = []


def fail(where, msg):
    failures.append(f"{where}: {msg}")


def port_of(addr):
    """The port of host:port, [v6]:port; None for unix: or a malformed one."""
    if addr is None or addr.startswith("unix"):
        return None
    m = re.fullmatch(r"(\[[^\]]*\]|[^:]*):(\d+)", addr)
    return int(m.group(2)) if m else None


def loopback(addr):
    host = addr.rsplit(":", 1)[0].strip("[]")
    return addr.startswith("unix") or host in ("localhost", "::1") or host.startswith("127.")


def parse_flags(argv, where, known):
    """argv (flags only) -> {flag: [values]}; a flag's value is '=V' or the next word.

    Which flags take a value is read from --help: "--flag WORD" takes one.
    """
    out = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            fail(where, f"argument {a!r} is not a --flag")
            i += 1
            continue
        name, eq, val = a.partition("=")
        if not eq and known.get(name):
            i += 1
            val = argv[i] if i < len(argv) else None
        out.setdefault(name, []).append(val if (eq or known.get(name)) else None)
        i += 1
    return out


def help_flags(help_text):
    """{--flag: takes_value} from --help's option lines."""
    flags = {}
    for m in re.finditer(r"(?m)^\s+(--[a-z][a-z0-9-]*)((?:\s[A-Z]+)?)", help_text):
        flags[m.group(1)] = bool(m.group(2).strip())
    # Lines such as "--tls-cert PEM --tls-key PEM" name two flags.
    for m in re.finditer(r"(--[a-z][a-z0-9-]*)\s([A-Z]{2,})\b", help_text):
        flags.setdefault(m.group(1), True)
        flags[m.group(1)] = True
    for m in re.finditer(r"--[a-z][a-z0-9-]*", help_text):
        flags.setdefault(m.group(0), False)
    return flags


def dockerfile_final_stage(path):
    """(entrypoint list, user) of the Dockerfile's last stage."""
    text = open(path).read().replace("\\\n", " ")
    stages = re.split(r"(?m)^FROM\s", text)
    last = stages[-1]
    entry = user = None
    for line in last.splitlines():
        line = line.strip()
        if line.startswith("ENTRYPOINT "):
            entry = json.loads(line[len("ENTRYPOINT "):])
        elif line.startswith("USER "):
            user = line.split()[1]
    return entry, user


def probe_target(probe, where, listen_port, want_service, ready_service):
    if not probe:
        fail(where, "missing")
        return
    if "grpc" in probe:
        g = probe["grpc"]
        if g.get("port") != listen_port:
            fail(where, f"grpc port {g.get('port')} is not the --listen port {listen_port}")
        svc = g.get("service", "")
        if svc != want_service:
            fail(where, f"grpc service {svc!r}, want {want_service!r}")
    elif "exec" in probe:
        cmd = probe["exec"]["command"]
        if not cmd or os.path.basename(cmd[0]) != "nneditctl":
            fail(where, f"exec probe runs {cmd[:1]}, not nneditctl")
            return
        addr, rest, i = None, [], 1
        while i < len(cmd):
            a = cmd[i]
            if a.startswith("--addr="):
                addr = a.split("=", 1)[1]
            elif a == "--addr":
                i += 1
                addr = cmd[i]
            elif a.startswith("--"):
                if "=" not in a and a not in ("--tls",):
                    i += 1  # nneditctl's global options take a value
            else:
                rest.append(a)
            i += 1
        if port_of(addr) != listen_port:
            fail(where, f"nneditctl --addr {addr} is not the --listen port {listen_port}")
        if not rest or rest[0] != "health":
            fail(where, f"nneditctl command {rest}, want health")
        svc = rest[1] if len(rest) > 1 else ""
        if svc != want_service:
            fail(where, f"health service {svc!r}, want {want_service!r}")
    else:
        fail(where, f"neither a grpc nor an exec probe: {sorted(probe)}")


def check_deployment(doc, name, secrets, services, known, help_text, entry, user):
    pod = doc["spec"]["template"]
    spec = pod["spec"]
    annotations = pod["metadata"].get("annotations", {})
    containers = spec["containers"]
    if len(containers) != 1:
        fail(name, f"{len(containers)} containers; the checks expect nneditd alone")
    c = containers[0]
    where = f"{name} container {c['name']}"
    if "command" in c:
        fail(where, "sets command: the image's ENTRYPOINT (nneditd and its defaults) would be lost")
    argv = list(entry) + [str(a) for a in c.get("args", [])]
    if os.path.basename(argv[0]) != "nneditd":
        fail(where, f"the image runs {argv[0]}, not nneditd")
    flags = parse_flags(argv[1:], where, known)

    # Every flag is the daemon's.
    for f in flags:
        if f not in known:
            fail(where, f"{f} is not an nneditd flag (nneditd --help)")

    def last(flag, default=None):
        v = flags.get(flag)
        return v[-1] if v else default

    listen = last("--listen", "127.0.0.1:50051")
    listen_port = port_of(listen)
    if listen_port is None:
        fail(where, f"--listen {listen} has no TCP port the probes could reach")
    if not loopback(listen) and "--insecure" not in flags:
        missing = [f for f in ("--tls-cert", "--tls-key", "--token-file") if f not in flags]
        if missing:
            fail(where, f"--listen {listen} without {', '.join(missing)} or --insecure: nneditd refuses to start")
    if "--tls-cert" in flags and "--insecure" in flags:
        notes.append(f"{where}: both TLS and --insecure")

    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if ports.get("grpc") != listen_port:
        fail(where, f"container port grpc {ports.get('grpc')} is not the --listen port {listen_port}")

    # Probes: the readiness service as --help documents it.
    ready_service = "nnedit.ready"
    if f'"{ready_service}"' not in help_text:
        fail(where, f'--help does not name the readiness service "{ready_service}"')
    if '"" is liveness' not in help_text:
        fail(where, '--help does not say that service "" is liveness')
    tls = "--tls-cert" in flags
    for kind, want in (("livenessProbe", ""), ("readinessProbe", ready_service),
                       ("startupProbe", ready_service)):
        probe = c.get(kind)
        probe_target(probe, f"{where} {kind}", listen_port, want, ready_service)
        if probe and "grpc" in probe and tls:
            fail(f"{where} {kind}", "a native gRPC probe speaks plaintext; this daemon serves TLS")

    # Metrics: flag, port, annotations, Service agree.
    metrics = last("--metrics-listen")
    if metrics is None:
        fail(where, "no --metrics-listen: Prometheus has nothing to scrape")
    else:
        mport = port_of(metrics)
        if ports.get("metrics") != mport:
            fail(where, f"container port metrics {ports.get('metrics')} is not --metrics-listen's {mport}")
        if annotations.get("prometheus.io/scrape") != "true":
            fail(name, 'pod annotation prometheus.io/scrape is not "true"')
        if annotations.get("prometheus.io/port") != str(mport):
            fail(name, f"pod annotation prometheus.io/port {annotations.get('prometheus.io/port')!r} "
                       f"is not --metrics-listen's {mport}")
        if annotations.get("prometheus.io/path") != "/metrics":
            fail(name, "pod annotation prometheus.io/path is not /metrics")

    # Grace: SIGKILL only after the drain.
    m = re.search(r"--drain-timeout SEC.*?\(default (\d+)\)", help_text, re.S)
    drain = int(last("--drain-timeout", m.group(1) if m else "30"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if not grace > drain:
        fail(name, f"terminationGracePeriodSeconds {grace} is not above --drain-timeout {drain}")

    # Files and the model repository lie under mounts; secret files under a
    # Secret that has the key.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = c.get("volumeMounts", [])

    def mount_of(path):
        best = None
        for mnt in mounts:
            mp = mnt["mountPath"].rstrip("/")
            if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
                best = mnt
        return best

    repo = last("--model-repo", "./models")
    if mount_of(repo) is None:
        fail(where, f"--model-repo {repo} is not a volume mount")
    def secret_file(flag, path):
        mnt = mount_of(path)
        if mnt is None:
            fail(where, f"{flag} {path} is under no volume mount")
            return
        vol = volumes.get(mnt["name"], {})
        if "secret" not in vol:
            fail(where, f"{flag} {path} is not from a Secret")
            return
        sname = vol["secret"]["secretName"]
        key = os.path.relpath(path, mnt["mountPath"])
        items = vol["secret"].get("items")
        if items is not None:
            by_path = {i["path"]: i["key"] for i in items}
            if key not in by_path:
                fail(where, f"{flag} {path}: the mount's items do not include {key}")
                return
            key = by_path[key]
        if sname not in secrets:
            fail(where, f"{flag}: Secret {sname} is not among the manifests")
        elif key not in secrets[sname]:
            fail(where, f"{flag}: Secret {sname} has no key {key}")

    for f in FILE_FLAGS:
        if last(f) is not None:
            secret_file(f, last(f))
    # The files exec probes hand to nneditctl (its CA, client certificate).
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        for a in (c.get(kind) or {}).get("exec", {}).get("command", []):
            flag, eq, val = str(a).partition("=")
            if eq and flag in ("--ca", "--cert", "--key", "--token-file"):
                secret_file(f"{kind} nneditctl {flag}", val)
    for mnt in mounts:
        if mnt["name"] not in volumes:
            fail(where, f"volume mount {mnt['name']} has no volume")

    # GPUs: asked for exactly when the daemon uses one.
    device = last("--device", "cpu")
    gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    if device.startswith("cuda") and not gpus:
        fail(where, f"--device {device} without an nvidia.com/gpu limit")
    if not device.startswith("cuda") and gpus:
        fail(where, f"nvidia.com/gpu limit with --device {device}")

    # The image's user.
    sc = spec.get("securityContext", {})
    if user is not None and str(sc.get("runAsUser")) != user.split(":")[0]:
        fail(name, f"runAsUser {sc.get('runAsUser')} is not the image's USER {user}")
    if not sc.get("runAsNonRoot"):
        fail(name, "runAsNonRoot is not set")

    # Some Service selects these pods and exposes both ports by name.
    labels = pod["metadata"].get("labels", {})
    found = False
    for sname, svc in services.items():
        sel = svc["spec"].get("selector", {})
        if sel and all(labels.get(k) == v for k, v in sel.items()):
            found = True
            targets = {p["name"]: p.get("targetPort") for p in svc["spec"]["ports"]}
            for pname in ("grpc", "metrics"):
                t = targets.get(pname)
                if t not in (pname, ports.get(pname)):
                    fail(f"Service {sname}", f"port {pname} targets {t!r}, not the container's {pname} port")
    if not found:
        fail(name, "no Service selects these pods")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nneditd", default=os.environ.get("NNEDITD", os.path.join(ROOT, "build", "nneditd")))
    ap.add_argument("--manifests", default=os.path.join(ROOT, "deploy", "k8s"))
    ap.add_argument("--dockerfile", default=os.path.join(ROOT, "Dockerfile"))
    args = ap.parse_args()

    help_text = subprocess.run([args.nneditd, "--help"], check=True, capture_output=True,
                               text=True, timeout=60).stdout
    known = help_flags(help_text)
    entry, user = dockerfile_final_stage(args.dockerfile)
    if not entry:
        fail(args.dockerfile, "the last stage has no ENTRYPOINT")
        entry = ["nneditd"]

    docs = []
    files = sorted(f for f in os.listdir(args.manifests) if f.endswith((".yaml", ".yml")))
    if not files:
        fail(args.manifests, "no manifests")
    for f in files:
        with open(os.path.join(args.manifests, f)) as fh:
            for d in yaml.safe_load_all(fh):
                if d:
                    docs.append((f, d))
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for f, d in docs if d["kind"] == "Secret"}
    services = {d["metadata"]["name"]: d for f, d in docs if d["kind"] == "Service"}
    pvcs = {d["metadata"]["name"] for f, d in docs if d["kind"] == "PersistentVolumeClaim"}
    deployments = [(f, d) for f, d in docs if d["kind"] == "Deployment"]
    if not deployments:
        fail(args.manifests, "no Deployment")
    for f, d in deployments:
        name = f"{f}: Deployment {d['metadata']['name']}"
        check_deployment(d, name, secrets, services, known, help_text, entry, user)
        for v in d["spec"]["template"]["spec"].get("volumes", []):
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in pvcs:
                fail(name, f"PersistentVolumeClaim {claim} is not among the manifests")
        gpu = any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
                  for c in d["spec"]["template"]["spec"]["containers"])
        print(f"checked {name} ({'GPU' if gpu else 'CPU'}): nneditd "
              + shlex.join(entry[1:] + [str(a) for a in d['spec']['template']['spec']['containers'][0].get('args', [])]))

    for n in sorted(set(notes)):
        print(f"note: {n}")
    for msg in failures:
        print(f"FAIL: {msg}")
    print(f"check_manifests: {len(files)} manifests, {len(deployments)} Deployments, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
