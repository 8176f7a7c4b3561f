#!/usr/bin/env python3
"""sched_cost.py - what the sched provider adds to a query-stats target vcpu
(issue #12: reading sched for 1,024 threads must not double its cost).

qstatsd --recorded on the same recording of N vCPUs (default 1024, made by
scripts/recording.py make), side by side:

  kvm          the recorded VM alone;
  kvm+sched    the same, plus one thread pidfd per vCPU handed over with
               getfd + add-stats-fd {provider: "sched"}, read from
               taskstats (as root: the kernel answers CAP_NET_ADMIN);
  kvm+sched/proc  the same, started without CAP_NET_ADMIN (setpriv
               --bounding-set -net_admin): the switch counts from
               /proc/TID/status, as an unprivileged daemon reads them.

The threads are real ones, run by tests/integration/sched_threads.c (built
here with cc), in two cases:

  idle    every thread sleeps and never runs: the provider reads
          taskstats (or schedstat) only (providers/sched/thread.c reads
          stat, and from /proc status, only for threads that ran since the
          last query);
  waking  every thread wakes every --wake-ms (default 10) ms: between two
          queries each one ran, so each query also reads stat (and status)
          of every thread: the worst case.

Requests are interleaved one for one (who goes first alternates), the
client and the daemons share one CPU and the threads run on the others, so
that the load hits the daemons alike.  Measured per request: each daemon's
CPU time (its process CPU clock, all threads) and the round-trip latency
(median, p99), for query-stats target vcpu (the figure of the issue, kvm
and sched results together) and target vm (the sched sums read every
thread too).  The ratios kvm+sched / kvm are the figures; nothing is
asserted.  Not root: the taskstats daemon is left out.

Usage: bench/sched_cost.py --build build [--vcpus 1024] [--requests 100]
         [--wake-ms 10] [--json FILE] [--markdown FILE]
--markdown appends the section to FILE (replacing an earlier one of the
same title), so that scripts/bench.sh adds it to bench/results-latest.md.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qmp_latency as ql  # noqa: E402  (Server, interleaved, pinned, recording)

THREADS_SRC = os.path.join(ql.REPO, "tests", "integration", "sched_threads.c")
TITLE = "## Cost of the sched provider (vCPU threads read from taskstats or /proc)"
PIDFD_THREAD = os.O_EXCL
VCPU = "/machine/unattached/device[%d]"
QUERIES = [
    ("vcpu", b'{"execute": "query-stats", "arguments": {"target": "vcpu"}}\n'),
    ("vm", b'{"execute": "query-stats", "arguments": {"target": "vm"}}\n'),
]
# The daemons with sched: name, command prefix, the source it must report.
SCHED_DAEMONS = [("kvm+sched", (), "taskstats"),
                 ("kvm+sched/proc", ("setpriv", "--bounding-set", "-net_admin"), "/proc")]


def build_threads(tmp):
    out = os.path.join(tmp, "sched_threads")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-pthread", "-o", out, THREADS_SRC],
                   check=True)
    return out


class Threads:
    def __init__(self, binary, spec):
        self.proc = subprocess.Popen([binary, spec], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.tids = []
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
            self.tids.append(int(line))
        if self.proc.poll() is not None:
            raise RuntimeError("sched_threads %s failed" % spec)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def reply(qmp):
    """The next reply; STATS_SCHEMA_CHANGED events (they start with their
    timestamp) are skipped."""
    while True:
        line = qmp._line()
        if not (line.startswith(b'{"timestamp"') and b'"event"' in line):
            return line


def hand_over(server, tids):
    """getfd + add-stats-fd for each thread on a QMP link of its own (the
    schema events it brings stay there)."""
    qmp = ql.Qmp(server.sock_path)
    for i, tid in enumerate(tids):
        fd = os.pidfd_open(tid, PIDFD_THREAD)
        try:
            socket.send_fds(qmp.sock, [b'{"execute": "getfd", "arguments": '
                                                 b'{"fdname": "t"}}\n'], [fd])
        finally:
            os.close(fd)
        line = reply(qmp)
        if not line.startswith(b'{"return"'):
            raise RuntimeError("getfd: %r" % line)
        qmp.sock.sendall(json.dumps(
            {"execute": "add-stats-fd", "arguments": {"provider": "sched", "target": "vcpu",
                                                      "qom-path": VCPU % i, "fdname": "t"}}
        ).encode() + b"\n")
        line = reply(qmp)
        if not line.startswith(b'{"return"'):
            raise RuntimeError("add-stats-fd %d: %r" % (i, line))
    qmp.close()


def loop(servers, payload, args):
    c0 = {s.name: s.cpu_s() for s in servers}
    r = ql.interleaved(servers, payload, args.requests, args.warmup)
    n = args.requests + args.warmup
    for s in servers:
        r[s.name].pop("_last")
        r[s.name]["cpu_ms_per_request"] = 1000.0 * (s.cpu_s() - c0[s.name]) / n
    return r


def start(args, tmp, case, name, wrapper=()):
    sock = os.path.join(tmp, name.replace("/", "-") + ".sock")
    log = os.path.join(tmp, "%s-%s.log" % (name.replace("/", "-"), case))
    return ql.Server(name, [*wrapper, os.path.join(args.build, "qstatsd"), "--recorded",
                            args.rec, "--qmp", "unix:" + sock], sock, log)


def check_daemon(args, server, source):
    """The daemon says it reads `source`, and query-stats target vcpu has a
    kvm and a sched result for every vCPU."""
    with open(server.log.name) as f:
        said = f.read()
    _, line = server.qmp.request(QUERIES[0][1])
    results = len(json.loads(line)["return"])
    if "switch counts from " + source not in said or results != 2 * args.vcpus:
        raise RuntimeError("%s: %d results for %d vCPUs, %s wanted: %s"
                           % (server.name, results, args.vcpus, source, said))


def give_threads(args, server, tids, source):
    """Hands the threads over, then checks the daemon."""
    hand_over(server, tids)
    # a fresh link: the old one has the schema events of the hand-over
    server.qmp.close()
    server.qmp = ql.Qmp(server.sock_path)
    check_daemon(args, server, source)


def run_case(args, tmp, binary, case, spec):
    servers, threads = [], None
    try:
        threads = Threads(binary, spec)
        with ql.pinned(args.cpu):
            servers.append(start(args, tmp, case, "kvm"))
            for name, wrapper, source in args.sched_daemons:
                servers.append(start(args, tmp, case, name, wrapper))
                give_threads(args, servers[-1], threads.tids, source)
            out = {"case": case, "threads": spec, "queries": {},
                   "daemons": [s.name for s in servers]}
            for what, payload in QUERIES:
                out["queries"][what] = loop(servers, payload, args)
            return out
    finally:
        ql.stop_all(servers)
        if threads:
            threads.stop()


# ---- the micro-VM: real KVM vCPU threads (where /dev/kvm exists) ------------

KVM_ONLY = b'{"execute": "query-stats", "arguments": {"target": "vcpu", ' \
    b'"providers": [{"provider": "kvm"}]}}\n'


def main_thread_cpu_s(pid):
    """The CPU time of a process's main thread (the loop that answers
    QMP), leaving out the micro-VM's vCPU threads: its schedstat run time,
    exact once it sleeps (another process's thread clock is not ours to
    read)."""
    with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
        return int(f.read().split()[0]) / 1e9


def microvm_daemon(args, tmp, name, wrapper, source):
    """qstatsd --vcpus N: its vCPU threads registered with sched at start."""
    server = ql.Server(name, [*wrapper, os.path.join(args.build, "qstatsd"), "--vcpus",
                              str(args.vcpus), "--qmp", "unix:" + os.path.join(tmp, "vm.sock")],
                       os.path.join(tmp, "vm.sock"),
                       os.path.join(tmp, name.replace("/", "-") + ".log"))
    try:
        check_daemon(args, server, source)
    except Exception:
        ql.stop_all([server])
        raise
    return server


def microvm_case(args, tmp):
    """Per daemon, query-stats target vcpu with providers [kvm] and with all
    (kvm and sched), interleaved, --gap apart so that every vCPU thread ran
    in between (the micro-VM's timer wakes each one at least 5 times a
    second); the main thread's CPU time around each request."""
    rows = []
    for name, wrapper, source in args.sched_daemons:
        server = microvm_daemon(args, tmp, name.replace("kvm+sched", "micro-VM"), wrapper, source)
        try:
            cpu = {"kvm": [], "all": []}
            pair = [("kvm", KVM_ONLY), ("all", QUERIES[0][1])]
            for i in range(args.warmup + args.requests):
                for what, payload in pair if i % 2 == 0 else pair[::-1]:   # who goes first alternates
                    time.sleep(args.gap)
                    c0 = main_thread_cpu_s(server.proc.pid)
                    server.qmp.request(payload)
                    time.sleep(0.01)               # the loop back asleep: all counted
                    if i >= args.warmup:
                        cpu[what].append(main_thread_cpu_s(server.proc.pid) - c0)
            rows.append({"daemon": name.replace("kvm+sched", "micro-VM"), "source": source,
                         "kvm_ms": 1000 * sum(cpu["kvm"]) / len(cpu["kvm"]),
                         "all_ms": 1000 * sum(cpu["all"]) / len(cpu["all"])})
        finally:
            ql.stop_all([server])
    return rows


def microvm_table(rows, vcpus):
    out = ["| daemon | switch counts from | CPU µs per request, providers [kvm] / all | "
           "**CPU ratio** | µs more per vCPU thread |", "|---|---|---:|---:|---:|"]
    for r in rows:
        out.append("| %s | %s | %s / %s | **%s** | %.2f |" % (
            r["daemon"], r["source"], ql.us(r["kvm_ms"]), ql.us(r["all_ms"]),
            ql.x(r["all_ms"], r["kvm_ms"]), 1000.0 * (r["all_ms"] - r["kvm_ms"]) / vcpus))
    return "\n".join(out)


def table(runs):
    out = ["| threads | query | daemon | kvm median / p99 µs | with sched median / p99 µs "
           "| latency ratio median | p99 | CPU µs per request kvm / with sched "
           "| **CPU ratio** | reply bytes kvm / with sched |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        for what in ("vcpu", "vm"):
            k = r["queries"][what]["kvm"]
            for name in r["daemons"][1:]:
                s = r["queries"][what][name]
                out.append("| %s | %s | %s | %s / %s | %s / %s | %s | %s | %s / %s | **%s** "
                           "| %d / %d |" % (
                               r["case"], what, name, ql.us(k["median_ms"]), ql.us(k["p99_ms"]),
                               ql.us(s["median_ms"]), ql.us(s["p99_ms"]),
                               ql.x(s["median_ms"], k["median_ms"]),
                               ql.x(s["p99_ms"], k["p99_ms"]), ql.us(k["cpu_ms_per_request"]),
                               ql.us(s["cpu_ms_per_request"]),
                               ql.x(s["cpu_ms_per_request"], k["cpu_ms_per_request"]),
                               k["reply_bytes"], s["reply_bytes"]))
    return "\n".join(out)


def verdict(runs):
    lines = []
    for r in runs:
        k = r["queries"]["vcpu"]["kvm"]["cpu_ms_per_request"]
        for name in r["daemons"][1:]:
            s = r["queries"]["vcpu"][name]["cpu_ms_per_request"]
            lines.append("- %s threads, %s: query-stats target vcpu costs %s the CPU time of "
                         "kvm alone (%s µs more per query, %.2f µs per thread): the goal (under "
                         "2x) %s." % (
                             r["case"], name, ql.x(s, k), ql.us(s - k),
                             1000.0 * (s - k) / r["vcpus"],
                             "holds" if s < 2 * k else "does **not** hold"))
    return "\n".join(lines)


def markdown(res):
    h = res["host"]
    return "\n".join([
        TITLE, "",
        "Written by bench/sched_cost.py on %s (kernel %s): `qstatsd --recorded` on a recording of %d "
        "vCPUs, alone (kvm) and next to the same with a thread pidfd per vCPU handed over: "
        "kvm+sched reads them from taskstats (run as root), kvm+sched/proc from /proc "
        "(started without CAP_NET_ADMIN, as an unprivileged daemon); the threads are real "
        "(tests/integration/sched_threads.c): *idle* ones never run (one taskstats reply or "
        "one schedstat read each), *waking* ones run every %d ms (every query then also "
        "reads stat, and from /proc status, of each thread: the worst case). Requests "
        "interleaved one for one, client and daemons on CPU %s, the threads on the other "
        "CPUs; CPU per request is each daemon's own. Load average %s (the waking threads "
        "count in it); %d timed requests per query after %d warm-up." % (
            h["date"], h["kernel"], res["vcpus"], res["wake_ms"], h["cpu"], h["load"],
            h["requests"], h["warmup"]), "",
        table(res["runs"]), "",
        verdict(res["runs"]), "", *microvm_section(res)])


def microvm_section(res):
    if not res.get("microvm"):
        return ["Not measured on the micro-VM: no /dev/kvm here.", ""]
    return [
        "On the micro-VM, real KVM vCPU threads: `qstatsd --vcpus %d`, whose own vCPU "
        "threads are registered with sched, asked query-stats target vcpu with providers "
        "[kvm] and with all providers, one for one, %.0f ms apart so that every vCPU "
        "thread ran in between; CPU time of the daemon's main thread (the one that "
        "answers) per request, vCPU threads left out; %d requests of each after %d "
        "warm-up." % (res["vcpus"], 1000 * res["gap"], res["host"]["requests"],
                      res["host"]["warmup"]), "",
        microvm_table(res["microvm"], res["vcpus"]), ""]


def write_markdown(path, text):
    """Appends the section, replacing an earlier one of the same title."""
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if TITLE in old:
        head, rest = old.split(TITLE, 1)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else ""
        old = head.rstrip("\n") + "\n" + tail
    with open(path, "w") as f:
        f.write(old.rstrip("\n") + ("\n\n" if old.strip() else "") + text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ql.REPO, "build"))
    ap.add_argument("--vcpus", type=int, default=1024)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--wake-ms", type=int, default=10)
    ap.add_argument("--cases", default="idle,waking")
    ap.add_argument("--gap", type=float, default=0.25,
                    help="seconds between micro-VM requests (every vCPU thread runs)")
    ap.add_argument("--no-microvm", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    args.cpu = cpus[-1]
    others = [c for c in cpus if c != args.cpu] or cpus
    where = "@%d" % others[0] if len(others) == 1 else ""
    specs = {"idle": "sleep%s*%d" % (where, args.vcpus),
             "waking": "tick:%d%s*%d" % (args.wake_ms, where, args.vcpus)}

    tmp = tempfile.mkdtemp(prefix="qstats-sched-cost-")
    try:
        binary = build_threads(tmp)
        args.rec = ql.recording.make(ql.RECORDED_SRC, os.path.join(tmp, "rec"), args.vcpus)
        args.sched_daemons = SCHED_DAEMONS if os.geteuid() == 0 else SCHED_DAEMONS[1:]
        load = ql.loadavg()
        runs = []
        for case in args.cases.split(","):
            print("== sched cost: %s threads (%s)" % (case, specs[case]), flush=True)
            r = run_case(args, tmp, binary, case, specs[case])
            r["vcpus"] = args.vcpus
            runs.append(r)
        microvm = None
        if not args.no_microvm and os.access("/dev/kvm", os.R_OK | os.W_OK):
            print("== sched cost: micro-VM of %d vCPUs" % args.vcpus, flush=True)
            microvm = microvm_case(args, tmp)
        res = {"vcpus": args.vcpus, "wake_ms": args.wake_ms, "runs": runs,
               "microvm": microvm, "gap": args.gap,
               "host": {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": args.cpu,
                        "kernel": os.uname().release,
                        "load": "%s at start, %s at end" % (load, ql.loadavg()),
                        "requests": args.requests, "warmup": args.warmup}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = markdown(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.markdown:
        write_markdown(args.markdown, text)


if __name__ == "__main__":
    main()
