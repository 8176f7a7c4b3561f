"""QEMU as the oracle of the compatibility tests, live and recorded.

LiveQemu is the real qemu-system-x86_64 with the vCPU count of the QEMU 7.2
reference transcript and a virtio-balloon device, reachable over QMP on a
unix socket: under KVM where /dev/kvm is usable, else under TCG (which
registers no stats provider: every query-stats answers [] there).  No disk
and no kernel: the BIOS finds nothing to boot and idles, which is all the
stats commands need (and the balloon has no guest driver, like in the
transcript).

The transcript (tests/fixtures/qemu-7.2-qmp-transcript.json) is QEMU 7.2's
answers on the KVM host whose stats files are tests/fixtures/recorded-linux-6.18.
derived() gives QEMU's answer to a filtered stats request from its answer to
the unfiltered one, so that requests the transcript lacks still have a
reference without KVM; the compatibility test proves it on the transcript's
own filtered exchanges and, where KVM works, on a live QEMU."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from qstest import FIXTURES, QMP, kvm_usable

BALLOON_ID = "balloon0"
BALLOON_PATH = "/machine/peripheral/" + BALLOON_ID

with open(os.path.join(FIXTURES, "qemu-7.2-qmp-transcript.json")) as _f:
    TRANSCRIPT = json.load(_f)


def qemu_binary():
    return shutil.which("qemu-system-x86_64")


class LiveQemu:
    """qemu-system-x86_64 -accel kvm|tcg -M pc -smp N with QMP on a private socket."""

    def __init__(self, vcpus=2, mem_mb=256, accel=None, balloon=True, timeout=60):
        binary = qemu_binary()
        if not binary:
            raise RuntimeError("qemu-system-x86_64 is not installed (scripts/deps.sh installs it)")
        self.accel = accel or ("kvm" if kvm_usable() else "tcg")
        self.q = None
        self.dir = tempfile.mkdtemp(prefix="qstats-qemu-")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.stderr_path = os.path.join(self.dir, "stderr")
        cmd = [binary, "-accel", self.accel, "-M", "pc", "-smp", str(vcpus), "-m", str(mem_mb),
               "-display", "none", "-nodefaults",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if balloon:
            cmd += ["-device", f"virtio-balloon-pci,id={BALLOON_ID}"]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        try:
            self._wait_for_socket(timeout)
            self.q = QMP(self.qmp_path, timeout=timeout)
            self.greeting = self.q.greeting
            v = self.greeting["QMP"]["version"]["qemu"]
            self.version = f"{v['major']}.{v['minor']}.{v['micro']}"
            # vCPU QOM paths by cpu-index: QEMU numbers its QOM children
            # non-contiguously (device[0], device[2], ...).
            cpus = self.q.ok("query-cpus-fast")
            self.vcpu_paths = [c["qom-path"] for c in sorted(cpus, key=lambda c: c["cpu-index"])]
        except BaseException:
            self.stop()
            raise

    def describe(self):
        return f"QEMU {self.version} (-accel {self.accel})"

    def reconnect(self, negotiate=True):
        """A new QMP connection in place of the current one: QEMU's QMP
        socket serves one client at a time, and a new one starts in
        capabilities negotiation mode."""
        self.q.close()
        self.q = QMP(self.qmp_path, negotiate=negotiate, timeout=30)
        return self.q

    def _wait_for_socket(self, timeout):
        deadline = time.time() + timeout
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited with {self.proc.returncode}: {self.log()}")
            if time.time() > deadline:
                raise RuntimeError("QEMU did not create its QMP socket")
            time.sleep(0.05)

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self):
        if self.q:
            self.q.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------
# Which answers carry KVM statistics

STAT_LINE = re.compile(r"^    (\S+) \(([^)]*)\): (.*)$")


def carries_stats(cmd, reply):
    """Whether a reply holds statistics (a stats result, a schema, an HMP
    stat line): what QEMU under TCG can never answer."""
    ret = reply.get("return")
    if cmd in ("query-stats", "query-stats-schemas"):
        return bool(ret)
    if cmd == "human-monitor-command" and isinstance(ret, str):
        return any(STAT_LINE.match(line) for line in ret.split("\r\n"))
    return False


# --------------------------------------------------------------------------
# QEMU's filters applied to its unfiltered answers (docs/qemu-behaviour.md
# #filters: absent means all, [] means none, each provider request answers on
# its own, a kvm result left without stats is dropped, HMP prints a
# "provider:" line per result unless a provider was named).

def _query_stats(args, full):
    everything = full("query-stats", {"target": args["target"]})["return"]
    vcpus = args.get("vcpus")
    out = []
    for req in args.get("providers", [None]):
        for r in everything:
            if req is not None and req["provider"] != r["provider"]:
                continue
            if vcpus is not None and r.get("qom-path") not in vcpus:
                continue
            names = None if req is None else req.get("names")
            stats = [s for s in r["stats"] if names is None or s["name"] in names]
            if stats:
                out.append(dict(r, stats=stats))
    return {"return": out}


def _schemas(args, full):
    everything = full("query-stats-schemas", {})["return"]
    return {"return": [s for s in everything
                       if "provider" not in args or s["provider"] == args["provider"]]}


def hmp_blocks(text):
    """[(provider or None, [stat lines])] of an `info stats` answer."""
    blocks = []
    for line in text.split("\r\n")[:-1]:
        if line.startswith("provider: "):
            blocks.append((line[len("provider: "):], []))
        elif STAT_LINE.match(line):
            if not blocks:
                blocks.append((None, []))
            blocks[-1][1].append(line)
        else:
            raise ValueError(f"not an info stats answer: {text!r}")
    return blocks


def _info_stats(line, full):
    words = line.split()
    if words[:2] != ["info", "stats"] or not 3 <= len(words) <= 5:
        raise ValueError(f"no derivation for {line!r}")
    target = words[2]
    names = None if len(words) < 4 or words[3] == "*" else set(words[3].split(","))
    provider = words[4] if len(words) == 5 else None
    text = full("human-monitor-command", {"command-line": f"info stats {target}"})["return"]
    out = ""
    for prov, lines in hmp_blocks(text):
        if provider is not None and prov != provider:
            continue
        kept = [ln for ln in lines if names is None or STAT_LINE.match(ln)[1] in names]
        if kept:
            out += ("" if provider else f"provider: {prov}\r\n") + "".join(ln + "\r\n" for ln in kept)
    return {"return": out}


def derived(cmd, args, full):
    """QEMU's answer to a filtered stats request, from full(cmd, args): its
    answer to the same command unfiltered (query-stats {target},
    query-stats-schemas {}, `info stats TARGET`)."""
    if cmd == "query-stats":
        return _query_stats(args, full)
    if cmd == "query-stats-schemas":
        return _schemas(args, full)
    if cmd == "human-monitor-command":
        return _info_stats(args["command-line"], full)
    raise ValueError(f"no derivation for {cmd}")


def transcript_full(canon=lambda x: x):
    """full() for derived(): the transcript's unfiltered answers (the
    first of each), translated by canon."""
    def full(cmd, args):
        for e in TRANSCRIPT:
            req = e.get("request", {})
            if req.get("execute") == cmd and req.get("arguments", {}) == args:
                return canon(e["reply"])
        raise KeyError(f"the transcript has no {cmd} {args}")
    return full


# qstats' own providers with results on the micro-VM (its vCPU threads): a
# documented addition, left out when qstatsd is compared with QEMU unless a
# request names the provider.
QSTATS_ONLY = {"sched"}


def without_qstats_providers(cmd, args, reply):
    ret = reply.get("return")
    named = {p.get("provider") for p in (args or {}).get("providers") or [] if isinstance(p, dict)}
    if cmd in ("query-stats", "query-stats-schemas") and isinstance(ret, list):
        keep = [r for r in ret if r.get("provider") not in QSTATS_ONLY - named]
        return {**reply, "return": keep}
    if cmd == "human-monitor-command" and isinstance(ret, str):
        blocks = re.split(r"(?=^provider: )", ret, flags=re.M)
        keep = [b for b in blocks if not any(b.startswith(f"provider: {p}\r\n")
                                             for p in QSTATS_ONLY)]
        return {**reply, "return": "".join(keep)}
    return reply
