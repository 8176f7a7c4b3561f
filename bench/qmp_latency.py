#!/usr/bin/env python3
"""qmp_latency.py - qstatsd over QMP sockets against yardsticks measured on
the same machine, in the same run, by the same client.

A latency in milliseconds says little on its own (it depends on the machine,
its load and the VM's size), so every figure is reported as a ratio to
something measured alongside it:

  floor  (every host) qstatsd --recorded DIR on recorded VMs of 2, 16, 64 and
         1024 vCPUs (scripts/recording.py make, from the real host recording
         in tests/fixtures/recorded-linux-6.18), next to bench/qmp_floor on
         the same DIR: a server that only reads the request line, preads the
         stats files qstatsd preads for it and sends qstatsd's own reply
         bytes (captured from qstatsd first).  Ratios qstatsd/floor: what
         qstatsd's parsing, registry walk, JSON encoding and event loop cost
         on top of the syscalls and bytes every server must spend.
  qemu   (only where /dev/kvm is usable) QEMU (an idle BIOS guest, -accel
         kvm) next to qstatsd's micro-VM, for 1, 4, 8, 16 and 64 vCPUs, and
         qstatsd alone at 1024 (QEMU 7.2 caps x86 machines at 255 or 288
         vCPUs).  Ratios QEMU/qstatsd.

In both, requests are interleaved one-for-one (who goes first alternates),
so that machine noise hits both servers alike; in the floor part the client
and both servers also share one CPU (--pin-cpu).  Measured are:
  * latency (median, p99) and reply size of query-stats target vm, target
    vcpu, query-stats-schemas and query-name (a trivial command);
  * VmRSS at idle and after the query loops, CPU time of all threads while
    idle, and CPU time per request (idle rate subtracted).
Nothing is asserted: this is a measurement, not a test.  The results (JSON,
and markdown with --markdown) say which parts ran, why a part did not, the
host, and the machine's load while measuring.

The client keeps one socket per server and reads raw lines (no JSON parsing
inside the timed region).  Its cost and the kernel's wake-ups are in every
latency of both servers alike (most of the floor's round trip); CPU time per
request is the server's own.

Usage: bench/qmp_latency.py --build build [--recorded 2,16,64,1024]
         [--smp 1,4,8,16,64] [--big 1024] [--requests 200] [--idle-seconds 3]
         [--out bench/results-latest.json] [--markdown FILE]
         [--hotpath FILE] [--callgrind FILE | --callgrind-not-run WHY]
"""
import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDED_SRC = os.path.join(REPO, "tests", "fixtures", "recorded-linux-6.18")
KVM_GET_API_VERSION = 0xAE00

sys.path.insert(0, os.path.join(REPO, "scripts"))
import recording  # noqa: E402  (scripts/recording.py: recorded VMs)

# (name, request line, stats files qstatsd preads for it: the floor's --answer)
QUERIES = [
    ("query-name", b'{"execute": "query-name"}\n', "none"),
    ("vm", b'{"execute": "query-stats", "arguments": {"target": "vm"}}\n', "vm"),
    ("vcpu", b'{"execute": "query-stats", "arguments": {"target": "vcpu"}}\n', "vcpus"),
    ("schemas", b'{"execute": "query-stats-schemas"}\n', "none"),
]
TABLE_ORDER = ["vm", "vcpu", "schemas", "query-name"]


class Qmp:
    """One persistent QMP connection; request() returns (ns, reply line)."""

    def __init__(self, path, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError("no QMP socket at " + path)
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        # recv() would malloc a fresh 1 MiB per call; whether glibc serves
        # that from the heap or by mmap depends on what the process freed
        # before, and round trips differed by 2x with the history.  One
        # buffer, received into, costs the same in every run.
        self.chunk = memoryview(bytearray(1 << 20))
        self.buf = bytearray()
        self.lines = []
        self.greeting = self._line()
        _, reply = self.request(b'{"execute": "qmp_capabilities"}\n')
        if b'"return"' not in reply:
            raise RuntimeError("negotiation failed: %r" % reply[:200])

    def _line(self):
        # Only one request is in flight, so a reply is complete when a chunk
        # ends a line; the buffer is split then, not searched per chunk
        # (a 2 MB reply arrives in many chunks).
        while True:
            while self.lines:
                line = self.lines.pop(0)
                if b'"event": ' not in line[:64]:       # events ({"timestamp"..., "event") are not replies
                    return line
            n = self.sock.recv_into(self.chunk)
            if not n:
                raise RuntimeError("QMP connection closed")
            self.buf += self.chunk[:n]
            if self.chunk[n - 1] == 10:              # b"\n"
                self.lines = bytes(self.buf).splitlines(keepends=True)
                self.buf.clear()

    def request(self, payload):
        t0 = time.perf_counter_ns()
        self.sock.sendall(payload)
        line = self._line()
        return time.perf_counter_ns() - t0, line

    def close(self):
        self.sock.close()


class Server:
    """A QMP server process (QEMU, qstatsd or the floor) and its /proc
    accounting."""

    def __init__(self, name, argv, sock_path, log_path):
        self.name = name
        self.sock_path = sock_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.qmp = Qmp(sock_path)
        except Exception:
            self.stop()
            raise

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_s(self):
        """CPU time of all threads: the kernel's process CPU clock (ns
        resolution), or utime + stime from /proc (clock ticks) without it."""
        try:
            return time.clock_gettime(((~self.proc.pid) << 3) | 2)   # CPUCLOCK_SCHED
        except OSError:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # fields[0] is field 3 (state): utime and stime are fields 14, 15.
            return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.qmp.sock.sendall(b'{"execute": "quit"}\n')
            except Exception:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def summarize(samples_ns):
    s = sorted(samples_ns)
    return {
        "median_ms": statistics.median(s) / 1e6,
        "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))] / 1e6,
        "max_ms": s[-1] / 1e6,
        "n": len(s),
    }


def interleaved(servers, payload, n, warmup):
    """n timed requests per server, one each in turn, the first of each
    turn alternating (caches and scheduling favour neither)."""
    samples = {s.name: [] for s in servers}
    last = {}
    for i in range(warmup + n):
        for s in servers if i % 2 == 0 else servers[::-1]:
            ns, line = s.qmp.request(payload)
            if i >= warmup:
                samples[s.name].append(ns)
            last[s.name] = line
    out = {}
    for s in servers:
        if not last[s.name].startswith(b'{"return"'):
            raise RuntimeError("%s answered %r" % (s.name, last[s.name][:300]))
        out[s.name] = dict(summarize(samples[s.name]),
                           reply_bytes=len(last[s.name]))
        out[s.name]["_last"] = last[s.name]
    return out


def check_vcpu_reply(name, line, nvcpus):
    """The vcpu answer must have one result per vCPU; returns stats per vCPU."""
    ret = json.loads(line)["return"]
    if len(ret) != nvcpus:
        print("warning: %s answered %d vCPU results for %d vCPUs"
              % (name, len(ret), nvcpus), file=sys.stderr)
    return len(ret[0]["stats"]) if ret else 0


def measure(servers, nvcpus, args, settle):
    res = {"vcpus": nvcpus, "servers": {}}
    for s in servers:
        res["servers"][s.name] = {"rss_start_kib": s.rss_kib()}
    time.sleep(settle)                           # QEMU: BIOS reaches its idle loop
    t0 = {s.name: s.cpu_s() for s in servers}
    w0 = time.monotonic()
    time.sleep(args.idle_seconds)
    wall = time.monotonic() - w0
    for s in servers:
        r = res["servers"][s.name]
        r["rss_idle_kib"] = s.rss_kib()
        r["idle_cpu_pct"] = 100.0 * (s.cpu_s() - t0[s.name]) / wall

    for what, payload, _ in QUERIES:
        c0 = {s.name: s.cpu_s() for s in servers}
        w0 = time.monotonic()
        r = interleaved(servers, payload, args.requests, args.warmup)
        wall = time.monotonic() - w0
        for s in servers:
            last = r[s.name].pop("_last")
            n = args.requests + args.warmup
            # The guest's own idle cost over the loop is not the request's.
            idle = res["servers"][s.name]["idle_cpu_pct"] / 100.0 * wall
            r[s.name]["cpu_ms_per_request"] = 1000.0 * max(0.0, s.cpu_s() - c0[s.name] - idle) / n
            if what == "vcpu":
                r[s.name]["stats_per_vcpu"] = check_vcpu_reply(s.name, last, nvcpus)
            res["servers"][s.name][what] = r[s.name]
    for s in servers:
        res["servers"][s.name]["rss_after_kib"] = s.rss_kib()
    return res


def stop_all(servers):
    for s in servers:
        s.stop()


# ---- part "floor": qstatsd on recorded VMs against bench/qmp_floor --------

def floor_answers(qstatsd, workdir):
    """qstatsd's reply to each query, saved as the floor's --answer files."""
    argv = []
    for what, payload, reads in QUERIES:
        _, reply = qstatsd.qmp.request(payload)
        if not reply.startswith(b'{"return"'):
            raise RuntimeError("qstatsd answered %s with %r" % (what, reply[:300]))
        req, rep = os.path.join(workdir, what + ".request"), os.path.join(workdir, what + ".reply")
        with open(req, "wb") as f:
            f.write(payload)
        with open(rep, "wb") as f:
            f.write(reply)
        argv += ["--answer", reads, req, rep]
    return argv


@contextlib.contextmanager
def pinned(cpu):
    """This process, and the servers it starts meanwhile, on one CPU.

    Left to the scheduler, a server may spend a whole loop on the slower of
    two CPUs (another program's, or a busy SMT sibling) or apart from the
    client (each round trip then pays a cross-CPU wake-up, an idle exit in
    a VM), and that state lasts: one server measured 2-3x slower than the
    other in the same interleaved loop.  With client and both servers on one
    CPU, whatever slows that CPU slows both alike."""
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def floor_cpu(args):
    """The CPU of the floor part (--pin-cpu), None for no pinning."""
    if args.pin_cpu == "none":
        return None
    return int(args.pin_cpu) if args.pin_cpu != "auto" else max(os.sched_getaffinity(0))


def run_floor(args, tmp, nvcpus):
    with pinned(floor_cpu(args)):
        return run_floor_pinned(args, tmp, nvcpus)


def run_floor_pinned(args, tmp, nvcpus):
    rec = recording.make(RECORDED_SRC, os.path.join(tmp, "rec-%d" % nvcpus), nvcpus)
    workdir = os.path.join(tmp, "floor-%d" % nvcpus)
    os.makedirs(workdir, exist_ok=True)
    servers = []
    try:
        servers.append(Server("qstatsd", [os.path.join(args.build, "qstatsd"), "--recorded", rec,
                                          "--qmp", "unix:" + tmp + "/qstatsd.sock"],
                              tmp + "/qstatsd.sock", tmp + "/qstatsd-%d.log" % nvcpus))
        answers = floor_answers(servers[0], workdir)
        servers.append(Server("floor", [os.path.join(args.build, "bench", "qmp_floor"),
                                        "--socket", tmp + "/floor.sock", "--recording", rec]
                              + answers,
                              tmp + "/floor.sock", tmp + "/floor-%d.log" % nvcpus))
        return measure(servers, nvcpus, args, args.floor_settle_seconds)
    finally:
        stop_all(servers)
        shutil.rmtree(rec, ignore_errors=True)


# ---- part "qemu": QEMU against qstatsd's micro-VM (KVM only) ---------------

def qemu_argv(args, nvcpus, sock):
    return [args.qemu, "-accel", "kvm", "-M", "pc", "-smp", str(nvcpus), "-m", "256",
            "-display", "none", "-nodefaults", "-qmp", "unix:%s,server=on,wait=off" % sock]


def run_qemu(args, tmp, nvcpus, with_qemu):
    servers = []
    try:
        if with_qemu:
            servers.append(Server("qemu", qemu_argv(args, nvcpus, tmp + "/qemu.sock"),
                                  tmp + "/qemu.sock", tmp + "/qemu-%d.log" % nvcpus))
        servers.append(Server("qstatsd", [os.path.join(args.build, "qstatsd"), "--vcpus",
                                          str(nvcpus), "--qmp", "unix:" + tmp + "/qstatsd.sock"],
                              tmp + "/qstatsd.sock", tmp + "/qstatsd-%d.log" % nvcpus))
        return measure(servers, nvcpus, args, args.settle_seconds)
    finally:
        stop_all(servers)


# ---- markdown -------------------------------------------------------------

def ratio(a, b):
    return a / b if b else float("nan")


def x(a, b):
    """a/b as "12x", "1.4x" or "0.35x": two significant digits below 10."""
    r = ratio(a, b)
    return "%.0fx" % r if r >= 9.95 else "%.1fx" % r if r >= 0.995 else "%.2fx" % r


def us(ms):
    v = ms * 1000.0
    return "%.0f" % v if v >= 100 else "%.1f" % v


def floor_tables(runs):
    out = ["| vCPUs | query | qstatsd median / p99 µs | floor median / p99 µs "
           "| qstatsd/floor median | p99 | reply bytes (both) "
           "| CPU µs per request qstatsd / floor | CPU ratio |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        d, f = r["servers"]["qstatsd"], r["servers"]["floor"]
        for what in TABLE_ORDER:
            dm, fm = d[what], f[what]
            out.append("| %d | %s | %s / %s | %s / %s | **%s** | %s | %d | %s / %s | %s |" % (
                r["vcpus"], what, us(dm["median_ms"]), us(dm["p99_ms"]), us(fm["median_ms"]),
                us(fm["p99_ms"]), x(dm["median_ms"], fm["median_ms"]),
                x(dm["p99_ms"], fm["p99_ms"]), dm["reply_bytes"],
                us(dm["cpu_ms_per_request"]), us(fm["cpu_ms_per_request"]),
                x(dm["cpu_ms_per_request"], fm["cpu_ms_per_request"])))
    out += ["", "| vCPUs | RSS after queries MiB qstatsd / floor | RSS ratio "
            "| idle CPU % of a core qstatsd / floor |", "|---:|---:|---:|---:|"]
    for r in runs:
        d, f = r["servers"]["qstatsd"], r["servers"]["floor"]
        out.append("| %d | %.1f / %.1f | %s | %.2f / %.2f |" % (
            r["vcpus"], d["rss_after_kib"] / 1024, f["rss_after_kib"] / 1024,
            x(d["rss_after_kib"], f["rss_after_kib"]), d["idle_cpu_pct"], f["idle_cpu_pct"]))
    return "\n".join(out)


def qemu_tables(runs):
    out = ["| vCPUs | query | QEMU median / p99 ms | qstatsd median / p99 ms "
           "| QEMU/qstatsd median | p99 | reply bytes QEMU / qstatsd |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        q, d = r["servers"].get("qemu"), r["servers"]["qstatsd"]
        for what in TABLE_ORDER:
            dm = d[what]
            if q:
                qm = q[what]
                out.append("| %d | %s | %.3f / %.3f | %.3f / %.3f | **%s** | %s | %d / %d |" % (
                    r["vcpus"], what, qm["median_ms"], qm["p99_ms"], dm["median_ms"],
                    dm["p99_ms"], x(qm["median_ms"], dm["median_ms"]),
                    x(qm["p99_ms"], dm["p99_ms"]), qm["reply_bytes"], dm["reply_bytes"]))
            else:
                out.append("| %d | %s | n/a | %.3f / %.3f | n/a | n/a | - / %d |" % (
                    r["vcpus"], what, dm["median_ms"], dm["p99_ms"], dm["reply_bytes"]))
    out += ["", "| vCPUs | RSS idle MiB QEMU / qstatsd | RSS after queries MiB QEMU / qstatsd "
            "| idle CPU % of a core QEMU / qstatsd | CPU ms per vcpu query (minus idle) QEMU / qstatsd |",
            "|---:|---:|---:|---:|---:|"]
    for r in runs:
        q, d = r["servers"].get("qemu"), r["servers"]["qstatsd"]

        def pair(key, scale=1.0, fmt="%.1f"):
            qs = (fmt % (q[key] * scale)) if q else "n/a"
            return "%s / %s" % (qs, fmt % (d[key] * scale))

        cpu = "%s / %.3f" % ("%.3f" % q["vcpu"]["cpu_ms_per_request"] if q else "n/a",
                             d["vcpu"]["cpu_ms_per_request"])
        out.append("| %d | %s | %s | %s | %s |" % (
            r["vcpus"], pair("rss_idle_kib", 1 / 1024), pair("rss_after_kib", 1 / 1024),
            pair("idle_cpu_pct", 1.0, "%.2f"), cpu))
    return "\n".join(out)


SOURCES = {"microvm": "micro-VM", "fixtures": "recorded VM files"}


def hotpath_table(rows):
    out = ["| vCPU stats from | layer | query | vCPUs | stats | median / p99 µs "
           "| ns per stat | allocations per query | reply bytes |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %s | %s | %d | %d | %.1f / %.1f | %s | %s | %s |" % (
            SOURCES.get(r.get("source"), r.get("source", "?")), r["layer"], r["what"], r["vcpus"], r["stats"],
            r["median_us"], r["p99_us"], "%.1f" % r["ns_per_stat"] if r["stats"] else "-",
            "%.2f" % r["allocs_per_query"] if r["allocs_per_query"] >= 0 else "n/a",
            r["reply_bytes"] or "-"))
    return "\n".join(out)


def markdown(results):
    h, p = results["host"], results["parts"]
    load = h["load"]
    lines = [
        "# qstatsd benchmark results", "",
        "Written by `scripts/bench.sh` (bench/qmp_latency.py) on %s; qstats %s." % (
            h["date"], h["qstats"]), "",
        "Host: %s, %d CPUs, kernel %s; %s." % (h["cpu"], h["cpus"], h["kernel"],
                                               h["qemu"] or "no QEMU installed"), "",
        "What ran:", "",
        "- KVM: **%s**" % p["kvm"],
        "- qstatsd vs floor (recorded VMs, every host): **%s**" % p["floor"],
        "- QEMU vs qstatsd (micro-VM, KVM hosts only): **%s**" % p["qemu"],
        "- hot path in-process (query_bench): **%s**" % p["hotpath"],
        "- callgrind instruction counts: **%s**" % p["callgrind"], "",
        "Load: this machine (%d CPUs) may be shared with other work. Load average "
        "(1/5/15 min) %s. Share of all CPUs busy while measuring: %s. Requests are interleaved one for one "
        "(who goes first alternates), so load hits both servers of a pair alike: "
        "the ratios are the figures to compare; absolute times vary with the load and "
        "with where the scheduler places client and server (same CPU or not)." % (
            h["cpus"], "; ".join("%s: %s" % (k, v) for k, v in load.items()),
            "; ".join("%s %.0f%%, of which %.0f%% other work than this benchmark" % (
                k, v["busy_pct"], v["others_pct"]) for k, v in h["cpu_use"].items()) or "n/a"), "",
        "%d timed requests per query and server after %d warm-up." % (h["requests"], h["warmup"]),
    ]
    if results["floor_runs"]:
        lines += ["", "## Without KVM: qstatsd on recorded VMs against the floor", "",
                  "`qstatsd --recorded DIR` on recordings of N vCPUs made by "
                  "`scripts/recording.py make` from `tests/fixtures/recorded-linux-6.18`, "
                  "next to `bench/qmp_floor` on the same DIR: it reads the request line, "
                  "preads the same stats files (the VM's for target vm, every vCPU's for "
                  "target vcpu, none for schemas and query-name) and sends qstatsd's own "
                  "reply bytes, with no JSON parsing or encoding. A ratio of 1x would "
                  "mean qstatsd costs nothing beyond the syscalls and the bytes. "
                  "Latency is a round trip from the same Python client, whose own cost "
                  "and the kernel's wake-ups are in both columns alike; CPU per request "
                  "is the server's own (all its threads). The client and both servers "
                  "share one CPU (--pin-cpu), so that the scheduler's placement favours "
                  "neither. This part runs the same with or without /dev/kvm.", "",
                  floor_tables(results["floor_runs"])]
    lines += ["", "## With KVM: QEMU against qstatsd's micro-VM", ""]
    if results["qemu_runs"] and p["qemu"].startswith("not run"):
        lines += ["QEMU %s.  `qstatsd --vcpus N` (its built-in micro-VM) alone:" % p["qemu"],
                  "", qemu_tables(results["qemu_runs"])]
    elif results["qemu_runs"]:
        lines += ["QEMU (`-accel kvm -M pc -smp N`, idle BIOS guest) next to "
                  "`qstatsd --vcpus N` (its built-in micro-VM); the rows without QEMU "
                  "are qstatsd alone (QEMU 7.2's x86 machines stop at 255/288 vCPUs). "
                  "Not pinned to a CPU: both run vCPU threads.", "",
                  qemu_tables(results["qemu_runs"])]
    else:
        lines += ["Not run: %s." % p["qemu"].split(": ", 1)[-1]]
    if results.get("hotpath"):
        lines += ["", "## Hot path in-process (query_bench)", "",
                  "The query without sockets: the registry alone, and a whole QMP request "
                  "(parse, validate, query, encode) on a socket-less session.", "",
                  hotpath_table(results["hotpath"])]
    if results.get("callgrind"):
        lines += ["", "## Instructions per query (callgrind)", "", "```",
                  results["callgrind"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


# ---- host facts -------------------------------------------------------------

def kvm_status():
    """(usable, why): /dev/kvm must open and answer KVM_GET_API_VERSION."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, "/dev/kvm: %s" % e.strerror
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as e:
        return False, "/dev/kvm: KVM_GET_API_VERSION: %s" % e.strerror
    finally:
        os.close(fd)
    if version != 12:
        return False, "/dev/kvm: API version %d, not 12" % version
    return True, "/dev/kvm opens, API version 12"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_sample():
    """(busy, total) jiffies of the whole machine from /proc/stat, and the
    CPU seconds of this benchmark: the client and its reaped children (every
    server of a finished run)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    t = os.times()
    return sum(v) - idle, sum(v), t.user + t.system + t.children_user + t.children_system


def machine_use(t0):
    """% of all CPUs busy since t0, and the part of it that was not this
    benchmark (other work on a shared machine)."""
    b1, t1, own1 = cpu_sample()
    total = max(1, t1 - t0[1])
    busy = 100.0 * (b1 - t0[0]) / total
    own = 100.0 * (own1 - t0[2]) * CLK_TCK / total
    return {"busy_pct": busy, "others_pct": max(0.0, busy - own)}


def cpu_model():
    """The host CPU's model name ("" where /proc/cpuinfo does not say)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        return ""


def host_info(args):
    def run(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ""
    cpu = cpu_model()
    load = {}
    if os.environ.get("QS_BENCH_LOAD_START"):      # set by scripts/bench.sh
        load["when bench.sh started"] = os.environ["QS_BENCH_LOAD_START"]
    load["QMP part start"] = loadavg()
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "qemu": run([args.qemu, "--version"]).splitlines()[0] if shutil.which(args.qemu) else None,
        "qstats": run(["git", "-C", REPO, "describe", "--always", "--dirty"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "requests": args.requests,
        "warmup": args.warmup,
        "load": load,
        "cpu_use": {},
    }


def part_notes(args, kvm_ok, kvm_why, have_qemu):
    """What each part will do, and why a part does not run."""
    hot = {"microvm": "ran, vCPU stats from the micro-VM",
           "fixtures": "ran, vCPU stats from the recorded VM's files"}
    parts = {
        "kvm": ("yes (%s)" if kvm_ok else "no (%s)") % kvm_why,
        "floor": ("ran, %s vCPUs; %s" % (
            args.recorded.replace(",", ", "),
            "client and both servers on CPU %d" % floor_cpu(args)
            if floor_cpu(args) is not None else "not pinned to a CPU"))
        if args.recorded else "not run: --recorded ''",
        "hotpath": "not run (bench/qmp_latency.py alone)",
        "callgrind": "not run" + (": " + args.callgrind_not_run if args.callgrind_not_run
                                  else " (bench/qmp_latency.py alone)"),
    }
    if not kvm_ok:
        parts["qemu"] = "not run: no usable /dev/kvm (%s)" % kvm_why
    elif not (args.smp or args.big):
        parts["qemu"] = "not run: --smp '' --big ''"
    elif not have_qemu or not args.smp:
        why = "%s not found" % args.qemu if not have_qemu else "--smp ''"
        parts["qemu"] = "not run: %s; qstatsd's micro-VM measured alone at %s vCPUs" % (
            why, ", ".join(n for n in (args.smp + "," + args.big).split(",") if n))
    else:
        parts["qemu"] = "ran, %s vCPUs; qstatsd alone at %s" % (
            args.smp.replace(",", ", "), args.big.replace(",", ", ") or "none")
    if args.hotpath:
        with open(args.hotpath) as f:
            rows = json.load(f)
        src = sorted({r.get("source", "?") for r in rows})
        parts["hotpath"] = "; ".join(hot.get(s, "ran, " + s) for s in src)
    if args.callgrind:
        parts["callgrind"] = "ran, vCPU stats from the recorded VM's files"
    return parts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--recorded", default="2,16,64,1024",
                    help="vCPU counts of the recorded VMs, qstatsd vs floor ('' for none)")
    ap.add_argument("--smp", default="1,4,8,16,64",
                    help="vCPU counts, QEMU vs qstatsd micro-VM, KVM only ('' for none)")
    ap.add_argument("--big", default="1024",
                    help="vCPU counts for qstatsd's micro-VM alone, KVM only ('' for none)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=3.0)
    ap.add_argument("--settle-seconds", type=float, default=5.0,
                    help="wait before the idle measurement, QEMU part (BIOS boot)")
    ap.add_argument("--floor-settle-seconds", type=float, default=0.5)
    ap.add_argument("--pin-cpu", default="auto",
                    help="CPU for the client and both servers of the floor part "
                    "(auto: the highest this process may use; none: no pinning)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results-latest.json"))
    ap.add_argument("--markdown", help="also write the results as markdown to this file")
    ap.add_argument("--hotpath", help="query_bench --json output, included in the results")
    ap.add_argument("--callgrind", help="callgrind_query.sh output, included in the results")
    ap.add_argument("--callgrind-not-run", help="why callgrind did not run (for the results)")
    args = ap.parse_args()

    kvm_ok, kvm_why = kvm_status()
    have_qemu = shutil.which(args.qemu) is not None
    results = {"host": host_info(args), "parts": part_notes(args, kvm_ok, kvm_why, have_qemu),
               "floor_runs": [], "qemu_runs": []}
    if args.hotpath:
        with open(args.hotpath) as f:
            results["hotpath"] = json.load(f)
    if args.callgrind:
        with open(args.callgrind) as f:
            results["callgrind"] = f.read()
    for k, v in results["parts"].items():
        print("qmp_latency: %s: %s" % (k, v), file=sys.stderr)

    plan = [("floor", int(n), False) for n in args.recorded.split(",") if n]
    if kvm_ok:
        plan += [("qemu", int(n), have_qemu) for n in args.smp.split(",") if n]
        plan += [("qemu", int(n), False) for n in args.big.split(",") if n]
    busy = {}
    with tempfile.TemporaryDirectory(prefix="qs-bench-") as tmp:
        for part, nvcpus, with_qemu in plan:
            if part not in busy:
                busy[part] = cpu_sample()
                if part != "floor":
                    results["host"]["load"]["%s part start" % part] = loadavg()
            print("== %s: %d vCPUs%s" % (
                part, nvcpus, " (qstatsd alone)" if part == "qemu" and not with_qemu else ""),
                file=sys.stderr, flush=True)
            try:
                if part == "floor":
                    results["floor_runs"].append(run_floor(args, tmp, nvcpus))
                else:
                    results["qemu_runs"].append(run_qemu(args, tmp, nvcpus, with_qemu))
            except Exception as e:
                for log in sorted(os.listdir(tmp)):
                    if log.endswith("-%d.log" % nvcpus):
                        with open(os.path.join(tmp, log), errors="replace") as f:
                            print("%s: %s" % (log, f.read()[-2000:]), file=sys.stderr)
                raise RuntimeError("%s, %d vCPUs: %s" % (part, nvcpus, e)) from e
            results["host"]["cpu_use"][part + " part"] = machine_use(busy[part])
    results["host"]["load"]["end"] = loadavg()
    text = markdown(results)
    print(text)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
