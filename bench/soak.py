#!/usr/bin/env python3
"""soak.py - qstatsd under a long run of mixed, partly hostile traffic: does
it stay up, stay clean under the sanitizers and stay the same size?

One qstatsd (this build's) serves a recorded VM (scripts/recording.py make,
default 16 vCPUs, advanced every second like an idle guest) with --qmp,
--hmp unix:, --balloon unix: and --metrics, and for --duration seconds
(default 600) 32 client processes talk to it at once:

  qmp        valid QMP: query-stats with filters (checked against the
             filter), query-stats-schemas, qom-list/get/set,
             human-monitor-command, query-stats-failures, query-balloon ...
  churn      a session per command: connect, negotiate, one command, close
  pipeline   valid QMP, 50-300 requests sent at once and read late (backlog)
  events     a session that reads STATS_SCHEMA_CHANGED events, slowly
  probe      query-version every 100 ms: the loop's worst answer time
  bad-qmp    invalid QMP: parse errors, bad arguments, huge and deep JSON,
             too many tokens, a reply over --max-reply-bytes, partial input
             then disconnect, requests never read, sessions that never
             negotiate (the 10 s deadline), fds sent with the wrong command
  hmp        console sessions on the HMP socket, valid and invalid lines
             (unknown commands, bad expressions, 300-deep parentheses, NUL
             bytes, a 200 KB line), some left mid-output
  metrics    GET/HEAD /metrics plain and OpenMetrics, 404s, bad methods,
             garbage, oversized headers, keep-alive, half-sent requests
  idle-http  connections that send nothing (or half a request) until the
             server's idle timeout closes them
  agent      the real qstats-guest-agent (--proc fixtures), killed and
             restarted every 2-20 s
  bad-agent  agents that send garbage, announce too much, answer unasked,
             stall mid-answer, connect second, or report unknown tags
  vmm        a VMM handing over memfd vCPU stats files (getfd +
             add-stats-fd) and removing them (remove-stats-fd), truncating
             some (a failing source in query-stats-failures), handing over
             refused fds (a pipe, a malformed file, another schema, taken
             paths), replacing the VM's file and restoring it

Every second the daemon's RSS, fds, threads and CPU time are sampled and the
recording advanced.  At the end of the warm-up, then every --quiet-every
seconds and at the end, the driver takes a quiet sample: every client drops
what it holds (closes its connections; a VMM removes its vCPUs and puts the
VM's file back; the agent is stopped) and waits, the daemon is left alone
for --quiet-settle seconds and its RSS is read.  Quiet samples compare the
daemon in the same state each time, so that a leak shows and the requests
in flight at that second do not.  When the clients are stopped for good,
the daemon must come back to its starting fd count, answer query-stats for
exactly the recorded vCPUs with no failing source, then exit 0 on SIGTERM.

Checks (exit status 1 if one fails):
  * the daemon never died and exits 0 on SIGTERM;
  * its stderr holds no sanitizer report (AddressSanitizer, LeakSanitizer at
    exit, UBSan "runtime error:");
  * RSS growth after warm-up < --rss-limit-kib (default 1024): the trend
    of the quiet samples from the end of the warm-up (Theil-Sen: the median
    of the slopes between every two samples) times their span.  A trend,
    not last minus first, because buffers under QS_KEEP_BYTES (1 MiB) are
    kept by design after a large request (the results arena, a reply
    buffer ...): one sample may sit up to about 2 MiB above another
    depending on the requests just before it, and a buffer reaching its
    high-water mark after the warm-up is a step, not a leak; a leak moves
    the median slope, those do not.  Not judged, and said so, for a
    sanitizer build, whose allocator keeps freed memory in quarantine on
    purpose;
  * its fd count returns to the starting one once the clients are gone
    (taken after one console session: libuv opens a reserve fd on a loop's
    first stream);
  * valid requests got the answer they should (every unexpected outcome is
    counted and sampled in the report); no request went unanswered;
  * afterwards the recorded VM is served intact (QMP, HMP, metrics).
The worst query-version round trip is reported, not asserted (a shared
machine's scheduler is in it), as are RSS under load, CPU time and the
count of every kind of request and outcome.

Usage: bench/soak.py [--build build] [--duration 600] [--warmup 60]
         [--clients 32] [--roles KIND,...] [--vcpus 16] [--think-ms 20]
         [--quiet-every 60] [--quiet-settle 3] [--rss-limit-kib 1024]
         [--json bench/soak-latest.json] [--markdown bench/soak-latest.md]
scripts/soak.sh builds first and runs it (--asan: on the ASan+UBSan build
in build-asan/, as scripts/test.sh builds it).  Not part of CI or test.sh.
"""
import argparse
import collections
import gc
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
RECORDED_SRC = os.path.join(FIXTURES, "recorded-linux-6.18")
PROC_DIRS = [os.path.join(FIXTURES, d) for d in
             ("proc-linux-6.18", "proc-linux-3.10", "proc-meminfo-only")]
CLK_TCK = os.sysconf("SC_CLK_TCK")
BALLOON = "/machine/peripheral-anon/device[0]"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")
IO_TIMEOUT = 60.0          # a reply later than this is "unanswered"

sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import recording  # noqa: E402  (scripts/recording.py: the stats-file format)
from qstest import QMP  # noqa: E402  (the QMP client of the integration tests)

# The mix of 32 clients; --clients N takes the first N of this list, cycled.
ROLES = ["qmp", "bad-qmp", "hmp", "metrics", "vmm", "agent", "bad-agent", "probe",
         "qmp", "bad-qmp", "hmp", "metrics", "idle-http", "events", "pipeline", "churn",
         "qmp", "bad-qmp", "hmp", "metrics", "vmm", "bad-agent", "churn", "qmp",
         "bad-qmp", "hmp", "metrics", "qmp", "bad-qmp", "hmp", "qmp", "qmp"]


def vcpu_path(i):
    return f"/machine/unattached/device[{i}]"


# ---- what each client process keeps ----------------------------------------

class Pause(Exception):
    """The driver takes a quiet sample: the client drops what it holds."""


class Client:
    """One client process's view: its config, counters and a stop flag."""

    def __init__(self, cfg, role, index, stop, pause, held):
        self.cfg, self.role, self.index, self.stop = cfg, role, index, stop
        self.pause, self.held = pause, held
        self.rng = random.Random(cfg["seed"] * 1000 + index)
        self.count = collections.Counter()
        self.unexpected = collections.Counter()
        self.samples = []
        self.latencies = []

    def ok(self, kind, n=1):
        self.count[f"{self.role}/{kind}"] += n

    def bad(self, kind, what):
        key = f"{self.role}/{kind}"
        self.unexpected[key] += 1
        if len(self.samples) < 8:
            self.samples.append(f"{key}: {what}"[:400])

    def stopping(self):
        return self.stop.is_set()

    def hold(self):
        """At a quiet point, unwinds the client (its connections close, a
        VMM removes its vCPUs, the agent is stopped) to client_main."""
        if self.pause.is_set() and not self.stop.is_set():
            raise Pause()

    def held_until_resumed(self):
        """Sends nothing, holds nothing, until the quiet sample is taken."""
        gc.collect()
        with self.held.get_lock():
            self.held.value += 1
        while self.pause.is_set() and not self.stop.is_set():
            time.sleep(0.05)
        with self.held.get_lock():
            self.held.value -= 1

    def think(self, scale=1.0):
        """Pauses like a client between requests; False once stopping."""
        return self.wait(self.rng.expovariate(1000.0 / (self.cfg["think_ms"] * scale)))

    def wait(self, seconds):
        stopped = self.stop.wait(seconds)
        self.hold()
        return not stopped and not self.stop.is_set()

    def qmp(self, negotiate=True):
        return QMP(self.cfg["qmp"], negotiate=negotiate, timeout=IO_TIMEOUT)

    def result(self):
        return {"role": self.role, "index": self.index, "count": dict(self.count),
                "unexpected": dict(self.unexpected), "samples": self.samples,
                "latencies": self.latencies}


def expect_return(c, q, kind, name, args=None, check=None):
    """Runs one valid command; an error or a wrong answer is unexpected."""
    r = q.cmd(name, args)
    if "return" not in r:
        c.bad(kind, f"{name} {json.dumps(args)[:200]} -> {json.dumps(r)[:200]}")
        return None
    if check:
        why = check(r["return"])
        if why:
            c.bad(kind, f"{name} {json.dumps(args)[:200]}: {why}")
            return None
    c.ok(kind)
    return r["return"]


def expect_error(c, q, kind, name, args=None, fds=None):
    r = q.cmd(name, args, fds=fds)
    if "error" not in r:
        c.bad(kind, f"{name} {json.dumps(args)[:200]} should fail -> {json.dumps(r)[:200]}")
        return None
    c.ok(kind)
    c.ok("error:" + r["error"].get("class", "?"))
    return r["error"]


def sync(q, tag):
    """Sends query-name with id tag and reads up to its reply; returns the
    other replies seen on the way (error replies to what was sent before)."""
    q.send_raw(json.dumps({"execute": "query-name", "id": tag}))
    seen = []
    while True:
        r = q.recv()
        if r.get("id") == tag:
            return seen
        seen.append(r)


# ---- valid QMP ---------------------------------------------------------------

def stats_check(target, vcpus, names, providers):
    def check(results):
        for res in results:
            if providers is not None and res["provider"] not in providers:
                return f"provider {res['provider']} not asked for"
            if target == "vcpu" and vcpus is not None and res.get("qom-path") not in vcpus:
                return f"vCPU {res.get('qom-path')} not asked for"
            if names is not None and res["provider"] == "kvm":
                extra = {s["name"] for s in res["stats"]} - set(names)
                if extra:
                    return f"stats {sorted(extra)} not asked for"
        if (target == "vcpu" and vcpus is None and names is None
                and (providers is None or "kvm" in providers)):
            paths = {r.get("qom-path") for r in results if r["provider"] == "kvm"}
            missing = {vcpu_path(i) for i in range(c_vcpus)} - paths
            if missing:
                return f"recorded vCPUs missing: {sorted(missing)[:3]}"
        return None
    return check


c_vcpus = 16                 # set from the config in each process


def random_query_stats(c):
    rng = c.rng
    target = rng.choice(["vm", "vcpu", "vcpu", "vcpu"])
    args = {"target": target}
    vcpus = names = providers = None
    if target == "vcpu" and rng.random() < 0.5:
        vcpus = [vcpu_path(rng.randrange(c_vcpus + 16)) for _ in range(rng.randint(0, 4))]
        args["vcpus"] = vcpus
    if rng.random() < 0.6:
        provs = []
        for _ in range(rng.randint(0, 3)):
            p = {"provider": rng.choice(["kvm", "kvm", "balloon"])}
            if rng.random() < 0.6:
                p["names"] = rng.sample(["exits", "halt_exits", "guest_mode", "halt_wait_hist",
                                         "halt_wait_ns", "remote_tlb_flush", "stat-free-memory",
                                         "last-update", "nosuch"], rng.randint(0, 3))
            provs.append(p)
        args["providers"] = provs
        providers = [p["provider"] for p in provs]
        kvm_names = [p.get("names") for p in provs if p["provider"] == "kvm"]
        if kvm_names and all(n is not None for n in kvm_names):
            names = sorted({n for ns in kvm_names for n in ns})
    return args, stats_check(target, vcpus, names, providers)


def one_valid_qmp(c, q):
    rng = c.rng
    pick = rng.random()
    if pick < 0.40:
        args, check = random_query_stats(c)
        expect_return(c, q, "query-stats", "query-stats", args, check)
    elif pick < 0.50:
        args = rng.choice([None, {"provider": "kvm"}, {"provider": "balloon"}])
        expect_return(c, q, "query-stats-schemas", "query-stats-schemas", args)
    elif pick < 0.58:
        cmdline = rng.choice(["info stats vcpu exits,halt_exits", "info stats vm",
                              "info stats -a vcpu exits", "info stats -b vcpu halt_wait_hist",
                              "info balloon", "info version", "help", "info stats vm * balloon",
                              "nosuch command"])
        args = {"command-line": cmdline}
        if rng.random() < 0.5:
            args["cpu-index"] = rng.randrange(c_vcpus)
        expect_return(c, q, "human-monitor-command", "human-monitor-command", args,
                      lambda r: None if isinstance(r, str) else "not a string")
    elif pick < 0.66:
        path = rng.choice([vcpu_path(rng.randrange(c_vcpus)), BALLOON, "/machine"])
        expect_return(c, q, "qom-list", "qom-list", {"path": path})
    elif pick < 0.72:
        expect_return(c, q, "qom-get", "qom-get",
                      {"path": vcpu_path(rng.randrange(c_vcpus)), "property": "stats-id"})
    elif pick < 0.76:
        r = q.cmd("qom-get", {"path": BALLOON, "property": "guest-stats"})
        c.ok("qom-get guest-stats" if "return" in r else "qom-get guest-stats (no stats yet)")
    elif pick < 0.79:
        expect_return(c, q, "qom-set", "qom-set", {"path": BALLOON, "property":
                      "guest-stats-polling-interval", "value": rng.choice([1, 2, 3])})
    elif pick < 0.84:
        expect_return(c, q, "query-stats-failures", "query-stats-failures")
    elif pick < 0.87:
        r = q.cmd("query-balloon")
        c.ok("query-balloon" if "return" in r else "query-balloon (error)")
    else:
        name = rng.choice(["query-version", "query-name", "query-commands", "query-status",
                           "query-qmp-schema"])
        expect_return(c, q, name, name)


def role_qmp(c):
    while not c.stopping():
        q = c.qmp()
        c.ok("session")
        for _ in range(c.rng.randint(10, 300)):
            if not c.think():
                break
            one_valid_qmp(c, q)
        q.close()


def role_churn(c):
    while c.think(5):
        q = c.qmp()
        one_valid_qmp(c, q)
        c.ok("session")
        q.close()


def role_pipeline(c):
    while c.wait(c.rng.uniform(1, 5)):
        q = c.qmp()
        n = c.rng.randint(50, 300)
        reqs = [json.dumps({"execute": "query-stats", "arguments": {"target": "vcpu"}, "id": i})
                for i in range(n)]
        q.send_raw("".join(reqs))
        c.stop.wait(c.rng.uniform(0.2, 2))     # replies pile up meanwhile
        for i in range(n):
            r = q.recv()
            if r.get("id") != i or "return" not in r:
                c.bad("pipelined query-stats", f"reply {i}: {json.dumps(r)[:200]}")
                break
        else:
            c.ok("pipelined query-stats", n)
        q.close()


def role_events(c):
    while c.wait(0):
        q = c.qmp()
        c.ok("session")
        q.sock.settimeout(1.0)
        until = time.monotonic() + c.rng.uniform(30, 90)
        while time.monotonic() < until and not c.stopping():
            c.hold()
            if c.rng.random() < 0.1:
                c.stop.wait(c.rng.uniform(2, 6))  # a slow reader: events queue up
            try:
                line = q.recv_line()
            except socket.timeout:
                continue
            msg = json.loads(line)
            if msg.get("event") == "STATS_SCHEMA_CHANGED":
                if set(msg["data"]) != {"provider", "target"}:
                    c.bad("event", line.decode()[:200])
                c.ok("STATS_SCHEMA_CHANGED")
                q.send_raw(json.dumps({"execute": "query-stats-schemas", "id": "refetch"}))
            elif msg.get("id") == "refetch":
                c.ok("query-stats-schemas" if "return" in msg else "schemas error")
            else:
                c.bad("event", line.decode()[:200])
        q.close()


def role_probe(c):
    q = c.qmp()
    req = json.dumps({"execute": "query-version"}).encode()
    while c.wait(0.1):
        t0 = time.monotonic()
        q.send_raw(req)
        r = q.recv()
        dt = time.monotonic() - t0
        if "return" not in r:
            c.bad("query-version", json.dumps(r)[:200])
        else:
            c.ok("query-version")
            c.latencies.append((round(time.time(), 3), round(dt * 1000, 3)))
    q.close()


# ---- invalid QMP ---------------------------------------------------------------

BAD_REQUESTS = [
    ("missing argument", b'{"execute": "query-stats"}'),
    ("unknown command", b'{"execute": "nosuch"}'),
    ("bad enum", b'{"execute": "query-stats", "arguments": {"target": "nosuch"}}'),
    ("wrong type", b'{"execute": "query-stats", "arguments": {"target": "vcpu", "vcpus": "x"}}'),
    ("extra argument", b'{"execute": "query-stats", "arguments": {"target": "vm", "x": 1}}'),
    ("bad provider", b'{"execute": "query-stats", "arguments": {"target": "vm", '
                     b'"providers": [{"provider": "nosuch"}]}}'),
    ("names not a list", b'{"execute": "query-stats", "arguments": {"target": "vm", '
                         b'"providers": [{"provider": "kvm", "names": 3}]}}'),
    ("no such object", b'{"execute": "qom-get", "arguments": {"path": "/nosuch", "property": "x"}}'),
    ("bad qom-set", b'{"execute": "qom-set", "arguments": {"path": "' + BALLOON.encode() +
                    b'", "property": "guest-stats-polling-interval", "value": "soon"}}'),
    ("bad cpu-index", b'{"execute": "human-monitor-command", "arguments": '
                      b'{"command-line": "info stats vcpu", "cpu-index": 999}}'),
    ("not an object", b'[1, 2, 3]'),
    ("a string", b'"execute"'),
    ("no execute", b'{"exec": "query-name"}'),
    ("execute not a string", b'{"execute": 42}'),
    ("stray brace", b'}'),
    ("bad bytes", b'\xff\xfe{"execute": \x01}'),
    ("bad literal", b'{"execute": tru}'),
    ("arguments not an object", b'{"execute": "query-name", "arguments": []}'),
    ("second negotiation", b'{"execute": "qmp_capabilities"}'),
    ("bad schema provider", b'{"execute": "query-stats-schemas", "arguments": {"provider": "x"}}'),
    ("closefd unknown", b'{"execute": "closefd", "arguments": {"fdname": "nosuch"}}'),
    ("getfd without fd", b'{"execute": "getfd", "arguments": {"fdname": "x"}}'),
    ("remove unknown vcpu", b'{"execute": "remove-stats-fd", "arguments": '
                            b'{"target": "vcpu", "qom-path": "/nosuch"}}'),
    ("add-stats-fd unknown fd", b'{"execute": "add-stats-fd", "arguments": {"fdname": "x", '
                                b'"provider": "kvm", "target": "vcpu", "qom-path": "/x"}}'),
    ("huge number id", b'{"execute": "query-name", "id": 1e999999}'),
    ("big integer id", b'{"execute": "query-name", "id": 123456789012345678901234567890}'),
    ("unknown provider for fd", b'{"execute": "add-stats-fd", "arguments": {"fdname": "x", '
                                b'"provider": "nosuch", "target": "vm"}}'),
]


def huge_requests(rng):
    """Inputs that cost the daemon work and memory: each must be refused or
    answered within the budgets, and the memory given back."""
    kind = rng.choice(["deep", "deep object", "many tokens", "long string", "reply too big",
                       "big reply"])
    if kind == "deep":                # balanced, so the stream is whole again after it
        n = rng.randint(1100, 5000)
        return kind, b"[" * n + b"]" * n
    if kind == "deep object":
        return kind, b'{"a": ' * 2000 + b"1" + b"}" * 2000
    if kind == "many tokens":
        return kind, b'{"execute": "query-name", "id": [' + b"0," * (1 << 21) + b"0]}"
    if kind == "long string":
        return kind, (b'{"execute": "query-name", "id": "' + b"x" * rng.randint(1 << 20, 6 << 20)
                      + b'"}')
    if kind == "reply too big":   # 400000 balloon results: past the 16 MiB reply ceiling
        return kind, (b'{"execute": "query-stats", "arguments": {"target": "vm", "providers": ['
                      + b", ".join([b'{"provider": "balloon"}'] * 400000) + b"]}}")
    return kind, (b'{"execute": "query-stats", "arguments": {"target": "vcpu", "providers": ['
                  + b", ".join([b'{"provider": "kvm"}'] * rng.randint(5, 30)) + b"]}}")


def bad_in_session(c, q, n):
    """Invalid requests on a negotiated session; after each, query-name must
    still be answered (the session survives its client's mistakes)."""
    for i in range(n):
        if not c.think(3):
            return
        rng = c.rng
        if rng.random() < 0.05:
            kind, payload = huge_requests(rng)
        else:
            kind, payload = rng.choice(BAD_REQUESTS)
        q.send_raw(payload + b"\n")
        try:
            replies = sync(q, f"s{i}")
        except EOFError:
            c.ok(f"{kind} (session closed)")
            return
        for r in replies:
            if "error" in r:
                c.ok("error:" + r["error"].get("class", "?"))
        c.ok(kind if replies else f"{kind} (no reply)")


def bad_connection(c):
    """One connection used badly, then abandoned."""
    rng = c.rng
    kind = rng.choice(["partial then close", "garbage then close", "unread replies",
                       "no negotiation", "commands before negotiation", "long partial string",
                       "fds with other commands"])
    q = c.qmp(negotiate=kind not in ("no negotiation", "commands before negotiation"))
    if kind == "partial then close":
        req = b'{"execute": "query-stats", "arguments": {"target": "vcpu"}}'
        q.send_raw(req[:rng.randrange(1, len(req))])
    elif kind == "garbage then close":
        q.send_raw(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096))))
    elif kind == "unread replies":
        q.send_raw(b'{"execute": "query-stats", "arguments": {"target": "vcpu"}}\n' *
                   rng.randint(1, 400))
    elif kind == "long partial string":
        q.send_raw(b'{"execute": "query-name", "id": "' + b"y" * rng.randint(1, 900000))
    elif kind == "commands before negotiation":
        r = q.cmd("query-stats", {"target": "vm"})
        if "error" not in r:
            c.bad(kind, json.dumps(r)[:200])
    elif kind == "fds with other commands":   # unclaimed batches replace each other
        fds = [os.memfd_create("soak-stray") for _ in range(rng.randint(1, 5))]
        q.cmd("query-name", fds=fds)
        q.cmd("query-version", fds=fds[:1])
        for fd in fds:
            os.close(fd)
    elif kind == "no negotiation":            # the daemon must close it after 10 s
        t0 = time.monotonic()
        q.sock.settimeout(30)
        try:
            data = q.sock.recv(4096)
            while data:
                data = q.sock.recv(4096)
            c.ok("negotiation deadline closes")
            c.latencies.append(("negotiation-close", round(time.monotonic() - t0, 2)))
        except socket.timeout:
            c.bad(kind, "not closed within 30 s")
    c.ok(kind)
    q.close()


def role_bad_qmp(c):
    while c.think(10):
        if c.rng.random() < 0.5:
            q = c.qmp()
            bad_in_session(c, q, c.rng.randint(5, 60))
            q.close()
        else:
            bad_connection(c)


# ---- HMP -------------------------------------------------------------------------

HMP_VALID = ["info stats vm", "info stats vcpu", "info stats vcpu exits,halt_exits",
             "info stats vcpu * kvm", "info stats vm * balloon", "info stats -a vcpu exits",
             "info stats -b vcpu halt_wait_hist", "help", "info version", "info balloon",
             "cpu 5", "qom-list /machine/unattached/device[2]", "",
             "qom-get /machine/unattached/device[2] stats-id",
             f"qom-get {BALLOON} guest-stats-polling-interval", "info stats vcpu exits"]
HMP_INVALID = [b"foo", b"info", b"info nosuch", b"info stats", b"info stats nosuch",
               b"info stats vcpu exits nosuch", b"cpu 99", b"cpu (1+", b"cpu 1/0",
               b"cpu " + b"(" * 300 + b"1" + b")" * 300, b"qom-get /nosuch x",
               f"qom-set {BALLOON} guest-stats-polling-interval abc".encode(),
               b"\x00\x01\x02 garbage", b"\xff\xfe info stats", b"x" * 200000,
               b"info stats -z vm", b"cpu -1", b"cpu 18446744073709551616"]
PROMPT = b"(qstats) "


class Hmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect(path)
        self.buf = b""
        self.read_prompt()

    def read_prompt(self):
        while not self.buf.endswith(PROMPT):
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError(self.buf[-200:])
            self.buf += data
        out, self.buf = self.buf, b""
        return out

    def line(self, text):
        self.sock.sendall(text + b"\n")
        return self.read_prompt()


def role_hmp(c):
    while not c.stopping():
        h = Hmp(c.cfg["hmp"])
        c.ok("session")
        for _ in range(c.rng.randint(5, 150)):
            if not c.think(2):
                break
            valid = c.rng.random() < 0.7
            line = c.rng.choice(HMP_VALID).encode() if valid else c.rng.choice(HMP_INVALID)
            if c.rng.random() < 0.02:              # leave mid-output
                h.sock.sendall(b"info stats -a vcpu\n")
                c.ok("left mid-output")
                break
            try:
                h.line(line)
                c.ok("valid line" if valid else "invalid line")
            except EOFError as e:
                if valid:
                    c.bad("valid line", f"{line!r}: console closed after {e}")
                else:
                    c.ok("invalid line (console closed)")
                break
        h.sock.close()


# ---- metrics -----------------------------------------------------------------

def http_raw(addr, request, read=True):
    s = socket.create_connection(addr, timeout=IO_TIMEOUT)
    try:
        s.sendall(request)
        if not read:
            return None, b""
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data


def check_body(status, body, openmetrics, head):
    if status != 200:
        return f"status {status}"
    if head:
        return None
    if b"qstats_kvm_vcpu_exits_total{" not in body:
        return "no qstats_kvm_vcpu_exits_total"
    if openmetrics and not body.endswith(b"# EOF\n"):
        return "OpenMetrics without # EOF"
    return None


METRICS_BAD = [
    ("404", b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("404", b"GET /metrics/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("404", b"GET /metricsX HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("POST", b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
             b"Connection: close\r\n\r\nabc"),
    ("DELETE", b"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    ("garbage", b"BLAH\r\n\r\n"),
    ("binary", bytes(range(256)) + b"\r\n\r\n"),
    ("HTTP/0.9", b"GET /metrics\r\n\r\n"),
    ("huge header", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 200000 + b"\r\n\r\n"),
    ("many headers", b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n"),
    ("bad Accept", b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: ;;;,,q=x/*;version=\r\n"
                   b"Connection: close\r\n\r\n"),
    ("query string", b"GET /metrics?a=b&&=&%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
]
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def one_scrape(c, addr):
    rng = c.rng
    pick = rng.random()
    if pick < 0.45:
        om, head = rng.random() < 0.4, rng.random() < 0.1
        req = (f"{'HEAD' if head else 'GET'} /metrics HTTP/1.1\r\nHost: soak\r\n"
               + (f"Accept: {OPENMETRICS}\r\n" if om else "") + "Connection: close\r\n\r\n")
        status, data = http_raw(addr, req.encode())
        kind = ("HEAD" if head else "GET") + (" OpenMetrics" if om else " plain")
        why = check_body(status, data, om, head)
        c.bad(kind, why) if why else c.ok(kind)
    elif pick < 0.60:                   # keep-alive: several scrapes on one connection
        conn = http.client.HTTPConnection(*addr, timeout=IO_TIMEOUT)
        for _ in range(rng.randint(2, 5)):
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            body = r.read()
            why = check_body(r.status, body, False, False)
            c.bad("keep-alive GET", why) if why else c.ok("keep-alive GET")
        conn.close()
    elif pick < 0.70:                   # half a request, then gone
        http_raw(addr, b"GET /metrics HTTP/1.1\r\nHo"[:rng.randint(1, 26)], read=False)
        c.ok("half request then close")
    else:
        kind, req = rng.choice(METRICS_BAD)
        status, _ = http_raw(addr, req)
        c.ok(f"{kind} -> {status}")


def role_metrics(c):
    addr = tuple(c.cfg["metrics"])
    while c.think(10):
        one_scrape(c, addr)


def role_idle_http(c):
    """Connections that say nothing: the server must close them (idle
    timeout 15 s) and keep serving everyone else meanwhile."""
    addr = tuple(c.cfg["metrics"])
    while c.wait(0):
        socks = []
        for _ in range(c.rng.randint(1, 8)):
            s = socket.create_connection(addr, timeout=1)
            if c.rng.random() < 0.5:
                s.sendall(b"GET /metrics HTTP/1.1\r\n")
            socks.append((s, time.monotonic()))
        c.ok("idle connections opened", len(socks))
        deadline = time.monotonic() + 40
        while socks and time.monotonic() < deadline and not c.stopping():
            c.hold()
            for s, t0 in list(socks):
                try:
                    if s.recv(4096) == b"":
                        socks.remove((s, t0))
                        s.close()
                        c.ok("closed by server idle timeout")
                        c.latencies.append(("idle-close", round(time.monotonic() - t0, 2)))
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    socks.remove((s, t0))
                    s.close()
                    c.ok("reset by server")
        if socks and not c.stopping():
            c.bad("idle connection", f"{len(socks)} still open after 40 s")
        for s, _ in socks:
            s.close()


# ---- balloon agents ------------------------------------------------------------

def role_agent(c):
    agent = os.path.join(c.cfg["build"], "qstats-guest-agent")
    q = c.qmp()
    expect_return(c, q, "qom-set interval", "qom-set", {"path": BALLOON, "property":
                  "guest-stats-polling-interval", "value": 1})
    q.close()
    alive = True
    while alive:
        argv = [agent, "--connect", "unix:" + c.cfg["balloon"], "--proc",
                c.rng.choice(PROC_DIRS)]
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c.ok("agent started")
        try:
            alive = c.wait(c.rng.uniform(2, 20))
        finally:
            if p.poll() is None:
                p.send_signal(c.rng.choice([signal.SIGKILL, signal.SIGTERM]))
            p.wait()
            c.ok("agent killed")
        alive = alive and c.wait(c.rng.uniform(0, 2))


def records(pairs):
    return b"".join(struct.pack("<HQ", t, v) for t, v in pairs)


def role_bad_agent(c):
    while c.wait(c.rng.uniform(0.5, 5)):
        rng = c.rng
        kind = rng.choice(["garbage", "too long", "answer unasked", "stall", "second agent",
                           "unknown tags", "partial record", "empty answer", "vanish"])
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(c.cfg["balloon"])
        try:
            if kind == "garbage":
                s.sendall(bytes(rng.randrange(256) for _ in range(rng.randint(1, 300))))
            elif kind == "too long":
                s.sendall(struct.pack("<I", rng.randint(161, (1 << 32) - 1)) + b"\0" * 20)
            elif kind == "answer unasked":
                ans = records([(0, 1), (1, 2)])
                s.sendall((struct.pack("<I", len(ans)) + ans) * 2)
            elif kind == "stall":
                s.sendall(struct.pack("<I", 160) + b"\0" * 15)
                c.stop.wait(6)
            elif kind == "second agent":
                c.stop.wait(rng.uniform(0, 1))
            elif kind in ("unknown tags", "partial record", "empty answer"):
                if kind == "unknown tags":
                    ans = records([(rng.randrange(40), rng.getrandbits(64)) for _ in range(16)])
                elif kind == "partial record":
                    ans = records([(4, 1 << 30), (5, 1 << 31)]) + b"\x07\x00\x01"
                else:
                    ans = b""
                s.sendall(struct.pack("<I", len(ans)) + ans)
                for _ in range(rng.randint(0, 3)):   # answer the next requests too
                    if s.recv(1) != b"\x01":
                        break
                    s.sendall(struct.pack("<I", len(ans)) + ans)
            c.ok(kind)
        except (OSError, socket.timeout) as e:
            c.ok(f"{kind} ({type(e).__name__})")
        s.close()


# ---- a VMM handing over vCPU stats fds ---------------------------------------------

class Vmm:
    def __init__(self, c):
        self.c = c
        self.q = c.qmp()
        roles = c.cfg["roles"]
        self.ordinal = [i for i, r in enumerate(roles) if r == "vmm"].index(c.index)
        base = c.cfg["vcpus"] + 8 * self.ordinal      # paths of its own, after the recorded
        self.paths = [vcpu_path(base + i) for i in range(8)]
        self.spare = [vcpu_path(1000 + 10 * self.ordinal + i) for i in range(4)]
        self.owned = {}                  # qom path -> (memfd, StatsFile)
        with open(os.path.join(c.cfg["recording"], "vcpu0.bin"), "rb") as f:
            self.template = f.read()
        self.vm_swapped = False

    def memfd(self, data, name="soak-vcpu"):
        fd = os.memfd_create(name)
        os.write(fd, data)
        return fd

    def hand_over(self, fd, path, kind, refused=False, target="vcpu"):
        r = self.q.cmd("getfd", {"fdname": "soak"}, fds=[fd])
        if "return" not in r:
            self.c.bad(kind, f"getfd: {r}")
            return False
        args = {"fdname": "soak", "provider": "kvm", "target": target}
        if path:
            args["qom-path"] = path
        if refused:
            expect_error(self.c, self.q, kind, "add-stats-fd", args)
            return False
        return expect_return(self.c, self.q, kind, "add-stats-fd", args) is not None

    def add(self):
        free = [p for p in self.paths if p not in self.owned]
        if not free:
            return
        path = self.c.rng.choice(free)
        data = recording.with_id(self.template, "kvm-soak/vcpu-" + path.split("[")[1][:-1])
        fd = self.memfd(data)
        if self.hand_over(fd, path, "add-stats-fd"):
            self.owned[path] = (fd, recording.StatsFile(data))
        else:
            os.close(fd)

    def remove(self, path):
        fd, _ = self.owned.pop(path)
        expect_return(self.c, self.q, "remove-stats-fd", "remove-stats-fd",
                      {"target": "vcpu", "qom-path": path})
        os.close(fd)

    def advance(self):
        for fd, f in self.owned.values():
            recording.idle_guest(f, 1.0)
            f.write_data(fd)
        if self.owned:
            path = self.c.rng.choice(list(self.owned))
            expect_return(self.c, self.q, "query-stats own vcpu", "query-stats",
                          {"target": "vcpu", "vcpus": [path]},
                          lambda r: None if len(r) == 1 and r[0]["qom-path"] == path
                          else f"{len(r)} results")

    def fail_one(self):
        """A handed-over file that stops reading: skipped, listed, removed."""
        if not self.owned:
            return
        path = self.c.rng.choice(list(self.owned))
        os.ftruncate(self.owned[path][0], 0)
        expect_return(self.c, self.q, "query-stats skips failing", "query-stats",
                      {"target": "vcpu", "vcpus": [path]},
                      lambda r: f"{len(r)} results for a failing file" if r else None)
        expect_return(self.c, self.q, "query-stats-failures lists it", "query-stats-failures",
                      None, lambda r: None if any(f.get("qom-path") == path for f in r)
                      else f"{path} not in {json.dumps(r)[:200]}")
        self.remove(path)

    def refused(self):
        rng, c = self.c.rng, self.c
        kind = rng.choice(["pipe", "malformed", "other schema", "taken path", "recorded path",
                           "empty memfd", "stray batch"])
        if kind == "pipe":
            r, w = os.pipe()
            self.hand_over(r, self.spare[3], "refused pipe", refused=True)
            os.close(r)
            os.close(w)
        elif kind == "malformed":
            data = bytearray(self.template)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(24)] = rng.randrange(256)
            fd = self.memfd(bytes(data))
            r = self.q.cmd("getfd", {"fdname": "m"}, fds=[fd])
            r = self.q.cmd("add-stats-fd", {"fdname": "m", "provider": "kvm", "target": "vcpu",
                                            "qom-path": self.spare[0]})
            if "return" in r:           # a mutation that kept the file valid
                expect_return(c, self.q, "remove mutated", "remove-stats-fd",
                              {"target": "vcpu", "qom-path": self.spare[0]})
            c.ok("malformed file" + (" (accepted)" if "return" in r else ""))
            os.close(fd)
        elif kind == "other schema":
            d = recording.build([("exits", 0, 0, 1, 0, 0)], [1], b"soak/other")
            fd = self.memfd(d)
            self.hand_over(fd, self.spare[1], "refused other schema", refused=True)
            os.close(fd)
        elif kind == "taken path" and self.owned:
            fd = self.memfd(self.template)
            self.hand_over(fd, rng.choice(list(self.owned)), "refused taken path", refused=True)
            os.close(fd)
        elif kind == "recorded path":
            fd = self.memfd(self.template)
            self.hand_over(fd, vcpu_path(rng.randrange(c_vcpus)), "refused recorded path",
                           refused=True)
            os.close(fd)
        elif kind == "empty memfd":
            fd = os.memfd_create("soak-empty")
            self.hand_over(fd, self.spare[2], "refused empty file", refused=True)
            os.close(fd)
        elif kind == "stray batch":   # fds on other commands; getfd takes the first
            fds = [self.memfd(b"x") for _ in range(rng.randint(1, 4))]
            self.q.cmd("query-name", fds=fds)
            self.q.cmd("query-name", fds=fds[:1])
            expect_return(c, self.q, "getfd stray", "getfd", {"fdname": "stray"})
            expect_return(c, self.q, "closefd stray", "closefd", {"fdname": "stray"})
            for fd in fds:
                os.close(fd)

    def swap_vm(self):
        """Replaces the VM's file with a memfd copy, or puts the recording's back."""
        src = os.path.join(self.c.cfg["recording"], "vm.bin")
        if self.vm_swapped:
            fd = os.open(src, os.O_RDONLY)
            kind = "vm restored"
        else:
            with open(src, "rb") as f:
                fd = self.memfd(f.read(), "soak-vm")
            kind = "vm replaced"
        if self.hand_over(fd, None, kind, target="vm"):
            self.vm_swapped = not self.vm_swapped
        os.close(fd)

    def step(self):
        rng = self.c.rng
        pick = rng.random()
        if pick < 0.30:
            self.add()
        elif pick < 0.55 and self.owned:
            self.remove(rng.choice(list(self.owned)))
        elif pick < 0.75:
            self.advance()
        elif pick < 0.82:
            self.fail_one()
        elif pick < 0.97:
            self.refused()
        elif self.ordinal == 0:         # one VMM owns the VM's file
            self.swap_vm()
        if rng.random() < 0.02:          # a reconnecting VMM: its fds stay registered
            self.q.close()
            self.q = self.c.qmp()
            self.c.ok("reconnect")

    def finish(self):
        for path in list(self.owned):
            self.remove(path)
        if self.vm_swapped:
            self.swap_vm()
        self.q.close()


def role_vmm(c):
    v = Vmm(c)
    try:
        while c.think(5):
            v.step()
    finally:
        v.finish()


ROLE_FNS = {"qmp": role_qmp, "churn": role_churn, "pipeline": role_pipeline,
            "events": role_events, "probe": role_probe, "bad-qmp": role_bad_qmp,
            "hmp": role_hmp, "metrics": role_metrics, "idle-http": role_idle_http,
            "agent": role_agent, "bad-agent": role_bad_agent, "vmm": role_vmm}


def client_main(cfg, role, index, stop, pause, held, out):
    global c_vcpus
    c_vcpus = cfg["vcpus"]
    c = Client(cfg, role, index, stop, pause, held)
    fn = ROLE_FNS[role]
    while not c.stopping():
        paused = False
        try:
            fn(c)
        except Pause:
            paused = True         # its frames, and so its sockets, are gone after this
        except Exception as e:  # noqa: BLE001 - every failure is reported
            # A valid client loses its connection or its answer: unexpected,
            # unless the soak is already over (the daemon died or stops).
            if not c.stopping():
                c.bad("exception", f"{type(e).__name__}: {e}\n"
                      + traceback.format_exc(limit=3)[-600:])
                c.wait(1)
        if paused:
            c.held_until_resumed()
    out.put(c.result())


# ---- the daemon and its samples ---------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f if ":" in line)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return {"rss_kib": int(st["VmRSS"].split()[0]), "hwm_kib": int(st["VmHWM"].split()[0]),
            "threads": int(st["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "cpu_s": (int(fields[11]) + int(fields[12])) / CLK_TCK}


def fd_kinds(pid):
    """What the daemon's fds are, by kind (socket, memfd, file path ...)."""
    kinds = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds[re.sub(r"\[\d+\]$", "", target)] += 1
    return kinds


def release_kept_buffers(cfg):
    """One query-stats whose reply passes 2 MiB: the buffers the daemon keeps
    after a large request (up to QS_KEEP_BYTES, 1 MiB, each: the results, the
    reply) grow past that and are given back, so that every quiet sample
    starts from the same state whatever the clients asked last."""
    q = QMP(cfg["qmp"], timeout=IO_TIMEOUT)
    req = {"target": "vcpu", "providers": [{"provider": "kvm"}]}
    one = len(json.dumps(q.ok("query-stats", req)))
    req["providers"] *= max(2, -(-(2 << 20) // max(one, 1)))
    q.ok("query-stats", req)
    q.close()


def quiet_sample(cfg, pid, pause, held, nclients, settle):
    """Holds every client with nothing open, lets the daemon settle and
    takes its RSS: the figure to compare over time, free of in-flight
    requests and of what the last ones left in the kept buffers."""
    t0 = time.monotonic()
    pause.set()
    while held.value < nclients and time.monotonic() - t0 < 30:
        time.sleep(0.1)
    n_held = held.value
    release_kept_buffers(cfg)
    time.sleep(settle)
    rss = []
    for _ in range(3):
        s = proc_sample(pid)
        rss.append(s["rss_kib"])
        time.sleep(0.5)
    pause.clear()
    return {"rss_kib": int(statistics.median(rss)), "fds": s["fds"], "held": n_held,
            "paused_s": round(time.monotonic() - t0, 1)}


def is_sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def start_daemon(cfg, tmp):
    argv = [os.path.join(cfg["build"], "qstatsd"), "--recorded", cfg["recording"],
            "--qmp", "unix:" + cfg["qmp"], "--hmp", "unix:" + cfg["hmp"],
            "--balloon", "unix:" + cfg["balloon"],
            "--metrics", "%s:%d" % tuple(cfg["metrics"]), "--name", "soak"]
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    err = open(os.path.join(tmp, "stderr"), "w")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=err, env=env)
    deadline = time.monotonic() + 60
    while not all(os.path.exists(cfg[k]) for k in ("qmp", "hmp", "balloon")):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"qstatsd did not start: {open(err.name).read()}")
        time.sleep(0.05)
    return p, argv, err.name


def final_state(cfg):
    """What the daemon answers once the traffic is gone."""
    out = {}
    q = QMP(cfg["qmp"], timeout=IO_TIMEOUT)
    r = q.ok("query-stats", {"target": "vcpu", "providers": [{"provider": "kvm"}]})
    out["vcpus"] = sorted({x["qom-path"] for x in r}, key=lambda p: int(p.split("[")[1][:-1]))
    out["failures"] = q.ok("query-stats-failures")
    out["vm_stats"] = len(q.ok("query-stats", {"target": "vm",
                                               "providers": [{"provider": "kvm"}]})[0]["stats"])
    q.close()
    status, body = http_raw(tuple(cfg["metrics"]),
                            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out["metrics_status"] = status
    out["metrics_bytes"] = len(body)
    h = Hmp(cfg["hmp"])
    out["hmp_answers"] = b"exits (cumulative)" in h.line(b"info stats vcpu exits")
    h.sock.close()
    return out


def wait_fds(pid, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        n = len(os.listdir(f"/proc/{pid}/fd"))
        if n <= want or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def window(samples, t0, t1):
    return [s["rss_kib"] for s in samples if t0 <= s["t"] < t1]


def theil_sen(quiet):
    """KiB per second: the median of the slopes between every two quiet
    samples, which a sample lifted by a kept buffer, or a one-time step,
    does not move, whereas a steady leak does."""
    slopes = [(b["rss_kib"] - a["rss_kib"]) / (b["t"] - a["t"])
              for i, a in enumerate(quiet) for b in quiet[i + 1:] if b["t"] > a["t"]]
    return statistics.median(slopes) if slopes else None


def slope_kib_per_min(samples, t0):
    pts = [(s["t"], s["rss_kib"]) for s in samples if s["t"] >= t0]
    if len(pts) < 3:
        return None
    mt = statistics.fmean(p[0] for p in pts)
    mr = statistics.fmean(p[1] for p in pts)
    den = sum((p[0] - mt) ** 2 for p in pts)
    return 60 * sum((p[0] - mt) * (p[1] - mr) for p in pts) / den if den else None


def stderr_summary(path):
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    kinds = collections.Counter(re.sub(r"\d+", "N", ln)[:110] for ln in lines)
    return lines, kinds


def run(args):
    tmp = tempfile.mkdtemp(prefix="qstats-soak-")
    rec = recording.make(RECORDED_SRC, os.path.join(tmp, "recording"), args.vcpus)
    cfg = {"build": os.path.abspath(args.build), "recording": rec, "vcpus": args.vcpus,
           "qmp": os.path.join(tmp, "qmp.sock"), "hmp": os.path.join(tmp, "hmp.sock"),
           "balloon": os.path.join(tmp, "balloon.sock"),
           "metrics": ["127.0.0.1", free_port()], "think_ms": args.think_ms,
           "seed": args.seed, "clients": args.clients,
           "roles": [args.roles[i % len(args.roles)] for i in range(args.clients)]}
    sanitized = is_sanitized(os.path.join(cfg["build"], "qstatsd"))
    proc, argv, err_path = start_daemon(cfg, tmp)
    pid = proc.pid
    # libuv opens a reserve fd (/dev/null, for running out of fds) on a
    # loop's first stream: one console session first, so the baseline has it.
    Hmp(cfg["hmp"]).sock.close()
    time.sleep(1)
    base = proc_sample(pid)
    recorded = recording.Recording(rec)

    base_fd_kinds = fd_kinds(pid)
    stop, pause, held, out = mp.Event(), mp.Event(), mp.Value("i", 0), mp.Queue()
    roles = cfg["roles"]
    procs = [mp.Process(target=client_main, args=(cfg, r, i, stop, pause, held, out),
                        daemon=True) for i, r in enumerate(roles)]
    for p in procs:
        p.start()
    t_start = time.monotonic()
    cfg["t0_wall"] = time.time()
    samples, quiet, died_at = [], [], None
    next_tick, next_quiet = t_start, args.warmup
    while True:
        now = time.monotonic() - t_start
        if proc.poll() is not None:
            died_at = now
            break
        last = now >= args.duration - args.quiet_settle - 2
        if now >= next_quiet or last:
            q = quiet_sample(cfg, pid, pause, held, len(procs), args.quiet_settle)
            q["t"] = round(now, 1)
            quiet.append(q)
            next_quiet += args.quiet_every
            next_tick = time.monotonic()
            if args.progress:
                print(f"soak: {now:5.0f} s  quiet RSS {q['rss_kib']} KiB  fds {q['fds']}  "
                      f"({q['held']}/{len(procs)} clients held)", flush=True)
            if last:
                break
            continue
        if now >= args.duration:
            break
        try:
            s = proc_sample(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        s["t"] = round(now, 2)
        samples.append(s)
        recorded.advance(1.0)
        if args.progress and len(samples) % args.progress == 0:
            print(f"soak: {now:5.0f} s  RSS {s['rss_kib']} KiB  fds {s['fds']}  "
                  f"CPU {s['cpu_s']:.1f} s", flush=True)
        next_tick += 1.0
        time.sleep(max(0.0, next_tick - time.monotonic()))
    t_traffic = time.monotonic() - t_start
    stop.set()
    results = []
    deadline = time.monotonic() + 120
    while len(results) < len(procs) and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=1))
        except Exception:  # noqa: BLE001 - queue.Empty: keep waiting
            pass
    for p in procs:
        p.join(5)
    stragglers = [f"{roles[i]}#{i}" for i, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.terminate()

    end = {"died_at": died_at, "stragglers": stragglers, "quiet": quiet}
    if died_at is None:
        end["fds_after"] = wait_fds(pid, base["fds"], 40)
        after = fd_kinds(pid)
        end["fds_gained"] = dict(after - base_fd_kinds)
        end["fds_lost"] = dict(base_fd_kinds - after)
        end["sample_after"] = proc_sample(pid)
        try:
            end["final"] = final_state(cfg)
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            end["final_error"] = f"{type(e).__name__}: {e}"
        proc.send_signal(signal.SIGTERM)
        try:
            end["exit_code"] = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            end["exit_code"] = "did not stop on SIGTERM in 120 s"
    else:
        end["exit_code"] = proc.returncode
    lines, kinds = stderr_summary(err_path)
    return cfg, argv, sanitized, base, samples, results, end, lines, kinds, t_traffic, tmp


# ---- the report ----------------------------------------------------------------------

def merge(results):
    count, unexpected, samples = collections.Counter(), collections.Counter(), []
    latencies, extra = [], collections.defaultdict(list)
    for r in results:
        count.update(r["count"])
        unexpected.update(r["unexpected"])
        samples += r["samples"]
        for item in r["latencies"]:
            if isinstance(item[0], str):
                extra[item[0]].append(item[1])
            else:
                latencies.append(item)
    return count, unexpected, samples, latencies, extra


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else None


def git_commit():
    try:
        return subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def analyse(args, cfg, argv, sanitized, base, samples, results, end, lines, kinds, t_traffic):
    count, unexpected, samples_bad, lat, extra = merge(results)
    w = min(60.0, max(1.0, (args.duration - args.warmup) / 2))
    first = window(samples, args.warmup, args.warmup + w)
    last = window(samples, args.duration - w, args.duration + 1)
    load_growth = (statistics.median(last) - statistics.median(first)) if first and last else None
    quiet = end["quiet"]
    half = len(quiet) // 2
    early, late = quiet[:half], quiet[half:]
    floor_early = min((q["rss_kib"] for q in early), default=None)
    floor_late = min((q["rss_kib"] for q in late), default=None)
    trend = theil_sen(quiet)
    growth = trend * (quiet[-1]["t"] - quiet[0]["t"]) if trend is not None else None
    reports = [ln for ln in lines if any(m in ln for m in SANITIZER_MARKS)]
    final = end.get("final", {})
    want_vcpus = [vcpu_path(i) for i in range(args.vcpus)]
    lat_ms = [x[1] for x in lat]
    worst = max(lat, key=lambda x: x[1]) if lat else None
    checks = [
        ("the daemon never died", end["died_at"] is None,
         "alive for %.0f s of traffic" % t_traffic if end["died_at"] is None
         else "died at %.1f s, exit %s" % (end["died_at"], end["exit_code"])),
        ("exit 0 on SIGTERM", end["exit_code"] == 0, f"exit code {end['exit_code']}"),
        ("no sanitizer report on stderr", not reports,
         ("%s build; " % ("ASan+UBSan" if sanitized else "plain (no sanitizer)"))
         + (f"{len(reports)} report lines: {reports[0][:200]}" if reports else "none")),
    ]
    if sanitized:
        checks.append(("RSS growth after warm-up < %d KiB" % args.rss_limit_kib, True,
                       "not judged: ASan's quarantine keeps freed memory (trend times span "
                       "%s KiB)" % ("-" if growth is None else "%+.0f" % growth)))
    else:
        checks.append(("RSS growth after warm-up < %d KiB" % args.rss_limit_kib,
                       growth is not None and growth < args.rss_limit_kib,
                       "quiet RSS trend %+.1f KiB/min over %.0f-%.0f s: %+.0f KiB (quiet RSS "
                       "%.2f to %.2f MiB)" % (60 * trend, quiet[0]["t"], quiet[-1]["t"], growth,
                                             min(q["rss_kib"] for q in quiet) / 1024,
                                             max(q["rss_kib"] for q in quiet) / 1024)
                       if growth is not None else "fewer than two quiet samples"))
    checks += [
        ("fds back to the starting count", end.get("fds_after") == base["fds"],
         f"{base['fds']} at start, {end.get('fds_after')} after the clients left"
         + (f"; gained {end['fds_gained']}" if end.get("fds_gained") else "")
         + (f"; lost {end['fds_lost']}" if end.get("fds_lost") else "")),
        ("valid requests answered as they should", not unexpected and not end["stragglers"],
         "unexpected outcomes: %d%s" % (sum(unexpected.values()),
                                       f", clients stuck: {end['stragglers']}"
                                       if end["stragglers"] else "")),
        ("the recorded VM served intact afterwards",
         final.get("vcpus") == want_vcpus and final.get("failures") == []
         and final.get("metrics_status") == 200 and final.get("hmp_answers") is True,
         end.get("final_error") or "%d vCPUs, %d failing sources, metrics %s, HMP %s" % (
             len(final.get("vcpus", [])), len(final.get("failures", [])),
             final.get("metrics_status"), "ok" if final.get("hmp_answers") else "no")),
    ]
    rss = [s["rss_kib"] for s in samples]
    cpu_s = samples[-1]["cpu_s"] - base["cpu_s"] if samples else 0
    return {
        "what": "bench/soak.py: qstatsd under mixed valid and invalid traffic",
        "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "commit": git_commit(),
        "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                 "load_end": open("/proc/loadavg").read().split()[:3]},
        "config": {"duration_s": args.duration, "warmup_s": args.warmup,
                   "clients": args.clients, "roles": dict(collections.Counter(
                       args.roles[i % len(args.roles)] for i in range(args.clients))),
                   "vcpus": args.vcpus, "think_ms": args.think_ms, "seed": args.seed,
                   "quiet_every_s": args.quiet_every, "quiet_settle_s": args.quiet_settle,
                   "sanitized": sanitized, "argv": argv},
        "ok": all(ok for _, ok, _ in checks),
        "paused_s": sum(q["paused_s"] for q in quiet),
        "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in checks],
        "rss": {"start_kib": base["rss_kib"], "max_kib": max(rss) if rss else None,
                "hwm_kib": samples[-1]["hwm_kib"] if samples else None,
                "quiet": quiet, "growth_kib": growth, "quiet_floor_early_kib": floor_early,
                "quiet_floor_late_kib": floor_late,
                "quiet_last_minus_first_kib": (quiet[-1]["rss_kib"] - quiet[0]["rss_kib"]
                                               if len(quiet) >= 2 else None),
                "quiet_min_kib": min((q["rss_kib"] for q in quiet), default=None),
                "quiet_max_kib": max((q["rss_kib"] for q in quiet), default=None),
                "load_window_s": w,
                "load_first_median_kib": statistics.median(first) if first else None,
                "load_last_median_kib": statistics.median(last) if last else None,
                "load_growth_kib": load_growth,
                "load_slope_kib_per_min": slope_kib_per_min(samples, args.warmup),
                "after_clients_kib": end.get("sample_after", {}).get("rss_kib")},
        "fds": {"start": base["fds"], "max": max((s["fds"] for s in samples), default=None),
                "after": end.get("fds_after")},
        "threads_max": max((s["threads"] for s in samples), default=None),
        "cpu": {"seconds": round(cpu_s, 1),
                "percent_of_a_core": round(100 * cpu_s / t_traffic, 1) if t_traffic else None},
        "query_version_ms": {"n": len(lat_ms), "median": pct(lat_ms, 50), "p99": pct(lat_ms, 99),
                             "p999": pct(lat_ms, 99.9), "max": worst[1] if worst else None,
                             "over_1s": sum(1 for x in lat_ms if x > 1000),
                             "worst_at_s": round(worst[0] - cfg["t0_wall"]) if worst else None},
        "idle_http_close_s": {"n": len(extra["idle-close"]),
                              "max": max(extra["idle-close"], default=None)},
        "negotiation_close_s": {"n": len(extra["negotiation-close"]),
                                "max": max(extra["negotiation-close"], default=None)},
        "requests": dict(sorted(count.items())),
        "requests_total": sum(count.values()),
        "unexpected": dict(sorted(unexpected.items())),
        "unexpected_samples": samples_bad[:20],
        "final": final,
        "stderr": {"lines": len(lines), "kinds": kinds.most_common(25),
                   "sanitizer_lines": reports[:40]},
        "samples": samples,
    }


def markdown(r):
    c = r["config"]
    out = ["## Soak", "",
           f"Written by `bench/soak.py` on {r['when']}; qstats {r['commit']}; "
           f"{r['host']['cpus']} CPUs, kernel {r['host']['kernel']}, load at the end "
           f"{' '.join(r['host']['load_end'])}.", "",
           f"{c['duration_s']} s of traffic ({c['warmup_s']} s warm-up) from {c['clients']} "
           f"client processes against one `qstatsd` "
           f"({'ASan+UBSan build' if c['sanitized'] else 'RelWithDebInfo build'}) on a "
           f"{c['vcpus']}-vCPU recorded VM advanced every second, with QMP, HMP, balloon and "
           "metrics listeners. Clients: " + ", ".join(f"{n} {k}" for k, n in c["roles"].items())
           + " (the docstring of bench/soak.py says what each does). A quiet sample (every "
           f"{c['quiet_every_s']:g} s after the warm-up, and at the end) holds every client "
           "with nothing open (connections closed, the VMMs' vCPUs removed, the agent "
           f"stopped), leaves the daemon alone {c['quiet_settle_s']:g} s and reads its RSS; "
           f"the quiet samples took {r['paused_s']:.0f} s of the run.", "",
           "| check | result | detail |", "|---|---|---|"]
    for ch in r["checks"]:
        out.append(f"| {ch['check']} | **{'pass' if ch['ok'] else 'FAIL'}** | {ch['detail']} |")
    rs, q = r["rss"], r["query_version_ms"]

    def kib(v):
        return "-" if v is None else f"{v / 1024:.2f} MiB"
    out += ["", "| figure | value |", "|---|---:|",
            f"| RSS at start | {kib(rs['start_kib'])} |",
            "| quiet RSS (clients held, %g s settle) at %s s | %s MiB |" % (
                c["quiet_settle_s"], ", ".join("%.0f" % q["t"] for q in rs["quiet"]),
                ", ".join("%.2f" % (q["rss_kib"] / 1024) for q in rs["quiet"])),
            "| quiet RSS growth after warm-up: trend (Theil-Sen) times the span | %s |" % (
                "-" if rs["growth_kib"] is None else "%+.0f KiB" % rs["growth_kib"]),
            "| lowest quiet RSS, earlier / later half | %s |" % (
                "-" if rs["quiet_floor_late_kib"] is None else "%s / %s" % (
                    kib(rs["quiet_floor_early_kib"]), kib(rs["quiet_floor_late_kib"]))),
            "| quiet RSS, last sample minus first | %s |" % (
                "-" if rs["quiet_last_minus_first_kib"] is None
                else "%+d KiB" % rs["quiet_last_minus_first_kib"]),
            "| clients held at each quiet sample | %s |" % ", ".join(
                "%d/%d" % (q["held"], c["clients"]) for q in rs["quiet"]),
            f"| RSS under load, median of the first / last {rs['load_window_s']:.0f} s after "
            f"warm-up | {kib(rs['load_first_median_kib'])} / {kib(rs['load_last_median_kib'])} |",
            f"| RSS under load, max (sampled each second) / VmHWM | {kib(rs['max_kib'])} / "
            f"{kib(rs['hwm_kib'])} |",
            f"| RSS once the clients left | {kib(rs['after_clients_kib'])} |",
            f"| fds at start / max / after | {r['fds']['start']} / {r['fds']['max']} / "
            f"{r['fds']['after']} |",
            f"| daemon CPU | {r['cpu']['seconds']} s ({r['cpu']['percent_of_a_core']}% of a "
            "core) |",
            f"| requests and actions, all clients | {r['requests_total']} |",
            f"| query-version round trip, every 100 ms: median / p99 / max | "
            f"{q['median']} / {q['p99']} / {q['max']} ms ({q['n']} probes, "
            f"{q['over_1s']} over 1 s; worst at {q['worst_at_s']} s) |",
            f"| idle HTTP connections closed by the server after | up to "
            f"{r['idle_http_close_s']['max']} s ({r['idle_http_close_s']['n']}) |",
            f"| un-negotiated QMP sessions closed after | up to "
            f"{r['negotiation_close_s']['max']} s ({r['negotiation_close_s']['n']}) |",
            f"| stderr lines (rate-limited peer logs) | {r['stderr']['lines']} |"]
    by_role = collections.defaultdict(list)
    for k, n in r["requests"].items():
        role, kind = k.split("/", 1)
        by_role[role].append(f"{kind} {n}")
    out += ["", "Traffic (count per client kind and outcome):", "",
            "| clients | outcomes |", "|---|---|"]
    for role, items in sorted(by_role.items()):
        out.append(f"| {role} | {', '.join(items)} |")
    if r["unexpected"]:
        out += ["", "Unexpected outcomes:", ""]
        out += [f"- `{k}`: {n}" for k, n in r["unexpected"].items()]
        out += ["", "```"] + r["unexpected_samples"] + ["```"]
    out += ["", "Most frequent stderr lines (digits as N):", "", "```"]
    out += [f"{n:6d}  {k}" for k, n in r["stderr"]["kinds"][:12]] + ["```", ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--roles", type=lambda v: v.split(","), default=ROLES,
                    help="comma-separated client kinds, cycled to --clients "
                         "(default: the mix of 32 above)")
    ap.add_argument("--vcpus", type=int, default=16)
    ap.add_argument("--think-ms", type=float, default=20,
                    help="mean pause between a client's requests (default 20)")
    ap.add_argument("--rss-limit-kib", type=int, default=1024)
    ap.add_argument("--quiet-every", type=float, default=60,
                    help="seconds between quiet samples after warm-up (default 60)")
    ap.add_argument("--quiet-settle", type=float, default=3,
                    help="seconds the daemon is left alone before a quiet sample")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--progress", type=int, default=30,
                    help="print a sample every N seconds (0: never)")
    ap.add_argument("--json", default=os.path.join(REPO, "bench", "soak-latest.json"))
    ap.add_argument("--markdown", default=os.path.join(REPO, "bench", "soak-latest.md"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (stderr, recording)")
    args = ap.parse_args()
    unknown = set(args.roles) - set(ROLE_FNS)
    if unknown:
        ap.error(f"unknown client kinds {sorted(unknown)}; known: {sorted(ROLE_FNS)}")
    if args.duration <= args.warmup + args.quiet_settle + 5 or args.quiet_every <= 0:
        ap.error("--duration must be longer than --warmup, --quiet-every positive")
    (cfg, argv, sanitized, base, samples, results, end, lines, kinds, t_traffic,
     tmp) = run(args)
    r = analyse(args, cfg, argv, sanitized, base, samples, results, end, lines, kinds, t_traffic)
    with open(args.json, "w") as f:
        json.dump(r, f, indent=1)
    md = markdown(r)
    with open(args.markdown, "w") as f:
        f.write(md)
    print(md)
    print(f"soak: {'PASS' if r['ok'] else 'FAIL'}; results in {args.json}, {args.markdown}"
          + (f"; daemon files in {tmp}" if args.keep or not r["ok"] else ""))
    if r["ok"] and not args.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
