#!/usr/bin/env python3
"""qmp_latency.py - qstatsd next to QEMU on the same machine, in one run.

For each vCPU count it starts QEMU (an idle BIOS guest, -accel kvm) and
qstatsd (its built-in micro-VM) side by side, and measures over the same QMP
client code, requests interleaved one-for-one so that machine noise hits
both alike:
  * latency (median, p99) and reply size of query-stats target vm, target
    vcpu and query-stats-schemas;
  * query-name, a trivial command: the floor set by the client, the socket
    and the QMP framing, reported so that it can be subtracted by eye;
  * VmRSS at idle and after the query loops, CPU time of all threads while
    idle, and CPU time per query-stats vcpu request (idle rate subtracted).
Results are reported as ratios QEMU / qstatsd, never asserted: this is a
measurement, not a test.  1024 vCPUs is measured for qstatsd alone: QEMU 7.2
caps x86 machines at 255 (pc) or 288 (q35) vCPUs.

The client keeps one socket per server and reads raw lines (no JSON parsing
inside the timed region), so its own cost is a few microseconds.

Usage: bench/qmp_latency.py --build build [--smp 1,4,8,16,64] [--big 1024]
         [--requests 200] [--idle-seconds 3] [--out bench/results-latest.json]
         [--markdown FILE]
"""
import argparse
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

QUERIES = [
    ("vm", b'{"execute": "query-stats", "arguments": {"target": "vm"}}\n'),
    ("vcpu", b'{"execute": "query-stats", "arguments": {"target": "vcpu"}}\n'),
    ("schemas", b'{"execute": "query-stats-schemas"}\n'),
]
TRIVIAL = ("query-name", b'{"execute": "query-name"}\n')


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
                if not line.startswith(b'{"event"'):   # events are not replies
                    return line
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("QMP connection closed")
            self.buf += chunk
            if chunk.endswith(b"\n"):
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
    """A QMP server process (QEMU or qstatsd) and its /proc accounting."""

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
    """n timed requests per server, alternating; returns per-server stats."""
    samples = {s.name: [] for s in servers}
    last = {}
    for i in range(warmup + n):
        for s in servers:
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


def measure(servers, nvcpus, args):
    res = {"vcpus": nvcpus, "servers": {}}
    for s in servers:
        res["servers"][s.name] = {"rss_start_kib": s.rss_kib()}
    time.sleep(args.settle_seconds)              # QEMU: BIOS reaches its idle loop
    t0 = {s.name: s.cpu_s() for s in servers}
    w0 = time.monotonic()
    time.sleep(args.idle_seconds)
    wall = time.monotonic() - w0
    for s in servers:
        r = res["servers"][s.name]
        r["rss_idle_kib"] = s.rss_kib()
        r["idle_cpu_pct"] = 100.0 * (s.cpu_s() - t0[s.name]) / wall

    trivial = interleaved(servers, TRIVIAL[1], args.requests, args.warmup)
    for s in servers:
        trivial[s.name].pop("_last")
        res["servers"][s.name]["query-name"] = trivial[s.name]
    for what, payload in QUERIES:
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


def qemu_argv(args, nvcpus, sock):
    return [args.qemu, "-accel", "kvm", "-M", "pc", "-smp", str(nvcpus), "-m", "256",
            "-display", "none", "-nodefaults", "-qmp", "unix:%s,server=on,wait=off" % sock]


def qstatsd_argv(args, nvcpus, sock):
    return [os.path.join(args.build, "qstatsd"), "--vcpus", str(nvcpus),
            "--qmp", "unix:" + sock]


def run_one(args, tmp, nvcpus, with_qemu):
    servers = []
    try:
        if with_qemu:
            servers.append(Server("qemu", qemu_argv(args, nvcpus, tmp + "/qemu.sock"),
                                  tmp + "/qemu.sock", tmp + "/qemu-%d.log" % nvcpus))
        servers.append(Server("qstatsd", qstatsd_argv(args, nvcpus, tmp + "/qstatsd.sock"),
                              tmp + "/qstatsd.sock", tmp + "/qstatsd-%d.log" % nvcpus))
        return measure(servers, nvcpus, args)
    finally:
        for s in servers:
            s.stop()


def ratio(a, b):
    return a / b if b else float("nan")


def table(results):
    """Human-readable tables (markdown) from the results."""
    out = []
    out.append("| vCPUs | query | QEMU median / p99 ms | qstatsd median / p99 ms "
               "| QEMU/qstatsd median | p99 | reply bytes QEMU / qstatsd |")
    out.append("|---:|---|---:|---:|---:|---:|---:|")
    for r in results["runs"]:
        q, d = r["servers"].get("qemu"), r["servers"]["qstatsd"]
        for what in ["vm", "vcpu", "schemas", "query-name"]:
            dm = d[what]
            if q:
                qm = q[what]
                out.append("| %d | %s | %.3f / %.3f | %.3f / %.3f | **%.1fx** | %.1fx | %d / %d |" % (
                    r["vcpus"], what, qm["median_ms"], qm["p99_ms"], dm["median_ms"],
                    dm["p99_ms"], ratio(qm["median_ms"], dm["median_ms"]),
                    ratio(qm["p99_ms"], dm["p99_ms"]), qm["reply_bytes"], dm["reply_bytes"]))
            else:
                out.append("| %d | %s | n/a | %.3f / %.3f | n/a | n/a | - / %d |" % (
                    r["vcpus"], what, dm["median_ms"], dm["p99_ms"], dm["reply_bytes"]))
    out.append("")
    out.append("| vCPUs | RSS idle MiB QEMU / qstatsd | RSS after queries MiB QEMU / qstatsd "
               "| idle CPU % of a core QEMU / qstatsd | CPU ms per vcpu query (minus idle) QEMU / qstatsd |")
    out.append("|---:|---:|---:|---:|---:|")
    for r in results["runs"]:
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


def host_info(args):
    def run(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "qemu": run([args.qemu, "--version"]).splitlines()[0] if shutil.which(args.qemu) else None,
        "qstats": run(["git", "-C", REPO, "describe", "--always", "--dirty"]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "requests": args.requests,
        "warmup": args.warmup,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--smp", default="1,4,8,16,64")
    ap.add_argument("--big", default="1024", help="vCPU counts for qstatsd alone ('' for none)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=3.0)
    ap.add_argument("--settle-seconds", type=float, default=5.0)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results-latest.json"))
    ap.add_argument("--markdown", help="also write the tables to this file")
    args = ap.parse_args()

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("qmp_latency: /dev/kvm is not usable; nothing to measure", file=sys.stderr)
        return 77
    have_qemu = shutil.which(args.qemu) is not None
    if not have_qemu:
        print("qmp_latency: %s not found: qstatsd measured alone" % args.qemu, file=sys.stderr)
    results = {"host": host_info(args), "runs": []}
    with tempfile.TemporaryDirectory(prefix="qs-bench-") as tmp:
        plan = [(int(n), have_qemu) for n in args.smp.split(",") if n]
        plan += [(int(n), False) for n in args.big.split(",") if n]
        for nvcpus, with_qemu in plan:
            print("== %d vCPUs%s" % (nvcpus, "" if with_qemu else " (qstatsd alone)"),
                  file=sys.stderr, flush=True)
            try:
                results["runs"].append(run_one(args, tmp, nvcpus, with_qemu))
            except Exception as e:
                for log in sorted(os.listdir(tmp)):
                    if log.endswith("-%d.log" % nvcpus):
                        with open(os.path.join(tmp, log), errors="replace") as f:
                            print("%s: %s" % (log, f.read()[-2000:]), file=sys.stderr)
                raise RuntimeError("%d vCPUs: %s" % (nvcpus, e)) from e
    text = table(results)
    print(text)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            h = results["host"]
            f.write("# qstatsd vs QEMU: sample results\n\n"
                    "Measured by `scripts/bench.sh` on %s (%s, %d CPUs, kernel %s), "
                    "%s; qstats %s; %d timed requests per query after %d warm-up, "
                    "QEMU and qstatsd interleaved one request each.\n\n"
                    % (h["date"], h["cpu"], h["cpus"], h["kernel"], h["qemu"], h["qstats"],
                       h["requests"], h["warmup"]))
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
