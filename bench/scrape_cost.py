#!/usr/bin/env python3
"""scrape_cost.py - what one Prometheus scrape of qstatsd's metrics
endpoint costs on large VMs, against issue #14's goals.

For each recorded VM (scripts/recording.py make, from the real host
recording in tests/fixtures/recorded-linux-6.18; 64 and 1024 vCPUs by
default), `qstatsd --recorded DIR --metrics` in its default view, scraped
the way a Prometheus server does (its Accept header, Accept-Encoding: gzip):

  * bytes of the exposition plain and gzip'd, and its samples (lines, and
    what qstats_exporter_samples says);
  * daemon CPU per scrape: utime + stime of the whole process from
    /proc/PID/stat over N back-to-back scrapes, divided by N (the idle
    rate measured before is subtracted; it is ~0);
  * the exporter's own qstats_exporter_scrape_duration_seconds (gather and
    render, before gzip), median;
  * QMP responsiveness: a separate client process sends query-version in a
    closed loop on its own QMP connection, first with no scrapes, then while
    this process scrapes back to back; median, p99.9 and worst round trip
    of both.  The daemon serves QMP and HTTP from one loop thread, so a
    query-version that arrives during a scrape waits for it: the worst
    latency during scrapes should not exceed the baseline by more than one
    scrape's CPU time ("a scrape never blocks QMP longer than its own CPU
    time").  Also counted: the requests delayed beyond the worst round trip
    without scrapes, and by how much (about one per scrape is expected, by
    up to the scrape's wall time: its CPU time on an idle host, more where
    other work preempts the daemon's loop thread mid-scrape).

Goals (issue #14): 1024 vCPUs default view < 60,000 samples, < 1 MiB gzip'd,
< 50 ms daemon CPU per scrape; 64 vCPUs < 5 ms per scrape.  They are
reported as met or missed; nothing is asserted (timings vary with the
machine and its load, which the results state).

Usage: bench/scrape_cost.py [--build build] [--vcpus 64,1024] [--scrapes 200]
         [--json FILE] [--markdown FILE] [--markdown-append FILE]
"""
import argparse
import gzip
import json
import multiprocessing
import os
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
sys.path.insert(0, os.path.join(REPO, "scripts"))
import recording  # noqa: E402  (scripts/recording.py: recorded VMs)
from qmp_latency import Qmp, cpu_model, loadavg  # noqa: E402  (the benchmarks' QMP client)

# What a Prometheus 2.x server sends with every scrape.
PROM_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
               "application/openmetrics-text;version=0.0.1;q=0.75,"
               "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
GOALS = {  # vCPUs: (samples, gzip bytes, CPU ms per scrape); None: no goal
    64: (None, None, 5.0),
    1024: (60000, 1 << 20, 50.0),
}
VERSION_REQ = b'{"execute": "query-version"}\n'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path="/metrics", headers=()):
    """One HTTP/1.0 GET on a fresh connection (as Prometheus' scrapes are
    short-lived here): (status line, {header: value}, body bytes)."""
    req = "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s\r\n" % (
        path, "".join("%s: %s\r\n" % h for h in headers))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(req.encode())
        chunks = []
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs, body


def preemptions(pid):
    """Times the kernel took the CPU from the process's threads
    (nonvoluntary_ctxt_switches summed over /proc/PID/task)."""
    n = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    n += int(line.split()[1])
    return n


def proc_cpu_s(pid):
    """utime + stime of the whole process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def prober(path, ready, stop, out):
    """Child process: query-version round trips until stop is set."""
    q = Qmp(path)
    samples = []
    ready.set()
    while not stop.is_set():
        ns, line = q.request(VERSION_REQ)
        if not line.startswith(b'{"return"'):
            raise RuntimeError("query-version answered %r" % line[:200])
        samples.append(ns)
    out.send(samples)
    out.close()


def probe_while(path, work, min_seconds):
    """Latencies (ns) of query-version from another process while work()
    runs in this one (and at least min_seconds)."""
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    rx, tx = ctx.Pipe(duplex=False)
    p = ctx.Process(target=prober, args=(path, ready, stop, tx))
    p.start()
    if not ready.wait(60):
        p.kill()
        raise RuntimeError("the QMP prober did not start")
    t0 = time.monotonic()
    work()
    left = min_seconds - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)
    stop.set()
    samples = rx.recv()
    p.join(30)
    return samples


def summary_ms(ns):
    s = sorted(ns)
    return {"n": len(s), "median_ms": statistics.median(s) / 1e6,
            "p99_ms": s[min(len(s) - 1, int(len(s) * 0.99))] / 1e6,
            "p999_ms": s[min(len(s) - 1, int(len(s) * 0.999))] / 1e6, "max_ms": s[-1] / 1e6}


def delayed_ms(ns, threshold_ms):
    """The round trips longer than threshold_ms: how many, median, worst."""
    d = sorted(x / 1e6 for x in ns if x / 1e6 > threshold_ms)
    return {"threshold_ms": threshold_ms, "count": len(d),
            "median_ms": statistics.median(d) if d else 0.0, "max_ms": d[-1] if d else 0.0}


def exporter_value(body, name):
    for line in body.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def measure(args, tmp, nvcpus):
    rec = recording.make(RECORDED_SRC, os.path.join(tmp, "rec-%d" % nvcpus), nvcpus)
    sock = os.path.join(tmp, "qmp-%d.sock" % nvcpus)
    port = free_port()
    log = open(os.path.join(tmp, "qstatsd-%d.log" % nvcpus), "wb")
    proc = subprocess.Popen([os.path.join(args.build, "qstatsd"), "--recorded", rec,
                             "--qmp", "unix:" + sock, "--metrics", "127.0.0.1:%d" % port],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        Qmp(sock).close()                         # up and serving QMP
        prom = (("Accept", PROM_ACCEPT), ("Accept-Encoding", "gzip"))
        deadline = time.monotonic() + 30
        while True:
            try:
                http_get(port, headers=prom)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        res = {"vcpus": nvcpus}
        # sizes and samples: the text format plain, and both formats gzip'd
        status, hdrs, plain = http_get(port)
        assert status.endswith("200 OK"), status
        text = plain.decode()
        res["bytes_plain"] = len(plain)
        res["samples"] = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
        res["samples_reported"] = exporter_value(text, "qstats_exporter_samples")
        _, hdrs, gz = http_get(port, headers=(("Accept-Encoding", "gzip"),))
        assert hdrs.get("content-encoding") == "gzip", hdrs
        res["bytes_gzip"] = len(gz)
        _, hdrs, gz_om = http_get(port, headers=prom)
        assert hdrs.get("content-encoding") == "gzip", hdrs
        res["bytes_gzip_openmetrics"] = len(gz_om)
        res["bytes_plain_openmetrics"] = len(gzip.decompress(gz_om))
        # CPU per scrape, as Prometheus scrapes (OpenMetrics, gzip)
        n = args.scrapes if nvcpus <= 256 else max(10, args.scrapes // 4)
        for _ in range(5):
            http_get(port, headers=prom)
        c0, w0 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle_rate = (proc_cpu_s(proc.pid) - c0) / (time.monotonic() - w0)
        durations = []
        c0, w0 = proc_cpu_s(proc.pid), time.monotonic()
        for _ in range(n):
            _, _, body = http_get(port, headers=prom)
            durations.append(exporter_value(gzip.decompress(body).decode(),
                                            "qstats_exporter_scrape_duration_seconds"))
        wall = time.monotonic() - w0
        cpu = proc_cpu_s(proc.pid) - c0 - idle_rate * wall
        res["scrapes"] = n
        res["cpu_ms_per_scrape"] = 1000.0 * max(0.0, cpu) / n
        res["wall_ms_per_scrape"] = 1000.0 * wall / n
        res["scrape_duration_ms_median"] = 1000.0 * statistics.median(durations)
        res["idle_cpu_pct"] = 100.0 * idle_rate
        # QMP latency without and during scrapes
        res["qmp_idle"] = summary_ms(probe_while(sock, lambda: None, args.probe_seconds))

        def scrapes():
            for _ in range(n):
                http_get(port, headers=prom)
        p0 = preemptions(proc.pid)
        during = probe_while(sock, scrapes, args.probe_seconds)
        res["daemon_preempted"] = preemptions(proc.pid) - p0
        res["qmp_during_scrapes"] = summary_ms(during)
        res["qmp_delayed"] = delayed_ms(during, res["qmp_idle"]["max_ms"])
        return res
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(rec, ignore_errors=True)


def verdict(value, limit):
    if limit is None:
        return "-"
    return ("**met** (< %s)" if value < limit else "**missed** (goal < %s)") % (
        "{:,}".format(limit) if isinstance(limit, int) else limit)


def markdown(results):
    h = results["host"]
    lines = ["## Metrics endpoint: cost of a scrape (bench/scrape_cost.py)", "",
             "`qstatsd --recorded DIR --metrics` on recordings made by `scripts/recording.py "
             "make` from `tests/fixtures/recorded-linux-6.18`, default view, scraped as "
             "Prometheus does (OpenMetrics Accept header, Accept-Encoding: gzip), one "
             "connection per scrape. CPU per scrape is the daemon's utime + stime "
             "(/proc/PID/stat) over back-to-back scrapes divided by their number. QMP "
             "latency is query-version round trips from a separate client process, in a "
             "closed loop, without scrapes and while scraping back to back; a request that "
             "arrives during a scrape waits for it (one loop thread), for the scrape's wall "
             "time, which exceeds its CPU time when other work preempts the daemon (counted "
             "as the daemon's involuntary context switches). Host: %s, %d "
             "CPUs, kernel %s; load average at start %s, at end %s. Timings are "
             "measurements, not assertions." % (h["cpu"], h["cpus"], h["kernel"],
                                                 h["load_start"], h["load_end"]), ""]
    if results.get("not_run"):
        return "\n".join(lines + ["Not run: " + results["not_run"], ""])
    lines += ["| vCPUs | samples (reported) | text bytes plain / gzip | OpenMetrics bytes "
              "plain / gzip | daemon CPU ms per scrape | wall ms per scrape | "
              "scrape_duration median ms |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        lines.append("| %d | %s (%s) | %s / %s | %s / %s | %.2f | %.2f | %.2f |" % (
            r["vcpus"], "{:,}".format(r["samples"]), "{:,}".format(int(r["samples_reported"])),
            "{:,}".format(r["bytes_plain"]), "{:,}".format(r["bytes_gzip"]),
            "{:,}".format(r["bytes_plain_openmetrics"]),
            "{:,}".format(r["bytes_gzip_openmetrics"]),
            r["cpu_ms_per_scrape"], r["wall_ms_per_scrape"], r["scrape_duration_ms_median"]))
    lines += ["", "| vCPUs | QMP query-version without scrapes: median / p99.9 / worst ms | "
              "during scrapes: median / p99.9 / worst ms | scrapes meanwhile | delayed beyond "
              "the worst without: count, median / worst ms | daemon CPU ms per scrape | daemon "
              "preempted meanwhile |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        a, b, d = r["qmp_idle"], r["qmp_during_scrapes"], r["qmp_delayed"]
        lines.append("| %d | %.3f / %.3f / %.3f (n=%d) | %.3f / %.3f / %.3f (n=%d) | %d | "
                     "%d, %.2f / %.2f | %.2f | %d times |" % (
                         r["vcpus"], a["median_ms"], a["p999_ms"], a["max_ms"], a["n"],
                         b["median_ms"], b["p999_ms"], b["max_ms"], b["n"], r["scrapes"],
                         d["count"], d["median_ms"], d["max_ms"], r["cpu_ms_per_scrape"],
                         r["daemon_preempted"]))
    lines += ["", "Against the goals of issue #14:", "",
              "| vCPUs | samples | gzip'd bytes | daemon CPU per scrape | QMP blocked at most "
              "one scrape's CPU |", "|---:|---|---|---|---|"]
    for r in results["runs"]:
        samples_goal, gz_goal, cpu_goal = GOALS.get(r["vcpus"], (None, None, None))
        extra = r["qmp_during_scrapes"]["max_ms"] - r["qmp_idle"]["median_ms"]
        cpu = r["cpu_ms_per_scrape"]
        lines.append("| %d | %s | %s | %s | %s: worst extra wait %.2f ms %s %.2f ms of CPU; "
                     "the median delayed request waited %.2f ms |" % (
                         r["vcpus"], verdict(r["samples"], samples_goal),
                         verdict(r["bytes_gzip_openmetrics"], gz_goal),
                         verdict(round(cpu, 2), cpu_goal),
                         "**met**" if extra <= cpu else "**missed**", extra,
                         "<=" if extra <= cpu else ">", cpu, r["qmp_delayed"]["median_ms"]))
    return "\n".join(lines) + "\n"


def host():
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": os.uname().release,
            "load_start": loadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--vcpus", default="64,1024")
    ap.add_argument("--scrapes", type=int, default=200,
                    help="scrapes per measurement (a quarter above 256 vCPUs, at least 10)")
    ap.add_argument("--idle-seconds", type=float, default=1.0)
    ap.add_argument("--probe-seconds", type=float, default=2.0,
                    help="the least time each QMP latency phase lasts")
    ap.add_argument("--json", help="write the results as JSON to this file")
    ap.add_argument("--markdown", help="write the markdown section to this file")
    ap.add_argument("--markdown-append", help="append the markdown section to this file")
    args = ap.parse_args()
    results = {"host": host(), "runs": []}
    probe = subprocess.run([os.path.join(args.build, "qstatsd"), "--no-vm", "--metrics",
                            "127.0.0.1:0", "--help"], capture_output=True, text=True)
    if "--metrics" not in probe.stdout + probe.stderr:
        results["not_run"] = "this qstatsd has no --metrics"
    with tempfile.TemporaryDirectory(prefix="qs-scrape-") as tmp:
        for n in (int(x) for x in args.vcpus.split(",") if x) \
                if not results.get("not_run") else ():
            print("== scrape cost: %d vCPUs" % n, file=sys.stderr, flush=True)
            try:
                results["runs"].append(measure(args, tmp, n))
            except Exception as e:
                with open(os.path.join(tmp, "qstatsd-%d.log" % n), errors="replace") as f:
                    print(f.read()[-2000:], file=sys.stderr)
                raise RuntimeError("%d vCPUs: %s" % (n, e)) from e
    results["host"]["load_end"] = loadavg()
    text = markdown(results)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.markdown_append:
        with open(args.markdown_append, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
