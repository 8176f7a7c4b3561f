"""A VMM's own provider, seen everywhere with no qstats file changed:
examples/custom-provider.c, copied out of the tree and compiled against the
installed libqstats through pkg-config only (test_embed's install and build
helpers), registers "virtio-net" (device-wide rx/tx counters, drops, a
linear histogram of received packet sizes, per-queue packet counts) and
moves its counters on a timer.  Checked: query-qmp-schema's StatsProvider
gains the name while a name nobody registered keeps QEMU's exact error;
query-stats-schemas and query-stats (filters, totals that are the sums of
the queues and of the buckets); HMP `info stats` through
human-monitor-command and the example's HMP socket (QEMU's format, values
between two queries around it, -b bounds of 256-byte buckets); the metrics
endpoint (counters, a histogram with le buckets whose _sum is rx_bytes;
`promtool check metrics`); `qstats top --once` from the build (rates, the
histogram's mean and percentiles); and a clean exit on quit, SIGTERM and
start-up failure (LeakSanitizer in the ASan build, valgrind otherwise).
Nothing here needs /dev/kvm."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from qstest import QMP, run_module, skip
from test_client import QSTATS
from test_embed import TMP, assert_no_leak_or_memory_error, example_cmd, uses_installed_library
from test_top import count, parse_top, row

PROVIDER = "virtio-net"
NQUEUES = 2
BUCKET = 256
COUNTERS = ["rx_packets", "rx_bytes", "rx_drops", "tx_packets", "tx_bytes"]
QUEUES = [f"{d}_queue_{i}_packets" for i in range(NQUEUES) for d in ("rx", "tx")]
NAMES = COUNTERS + ["rx_bytes_hist"] + QUEUES
BYTES = {"rx_bytes", "tx_bytes", "rx_bytes_hist"}
UNREGISTERED = "Parameter 'provider' does not accept value '{}'"


class Example:
    """examples/custom-provider with its QMP and HMP sockets in a temp dir
    and its metrics endpoint on a free loopback port (self.port)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.qmp = os.path.join(self.dir, "qmp.sock")
        self.hmp = os.path.join(self.dir, "hmp.sock")
        cmd, env = example_cmd("custom-provider", "unix:" + self.qmp, "unix:" + self.hmp,
                                "127.0.0.1:0")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        m = re.fullmatch(r"metrics on port (\d+)\n", line)
        assert m, (line, self.proc.stderr.read() if not line else "")
        self.port = int(m[1])
        assert self.proc.stdout.readline() == "ready\n"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0]:
            self.proc.kill()
            self.proc.wait()

    def finish(self):
        rc = self.proc.wait(60)
        err = self.proc.stderr.read()
        assert rc == 0, f"custom-provider exited {rc}:\n{err}"
        assert_no_leak_or_memory_error(err)
        assert not os.path.exists(self.qmp) and not os.path.exists(self.hmp)


def values(q, names=None):
    """The provider's stats for target vm as {name: value}."""
    req = {"provider": PROVIDER}
    if names is not None:
        req["names"] = names
    res = q.ok("query-stats", {"target": "vm", "providers": [req]})
    assert len(res) == 1 and res[0] == {"provider": PROVIDER, "stats": res[0]["stats"]}, res
    return {s["name"]: s["value"] for s in res[0]["stats"]}


def traffic_seen(q, since=None):
    """The provider's values once its timer has moved every counter (past
    `since`, values seen before), so that what a test compares is not all
    zeros."""
    deadline = time.time() + 60
    while True:
        v = values(q)
        if all(v[n] > (since or {}).get(n, 0) for n in COUNTERS + QUEUES):
            return v
        assert time.time() < deadline, v
        time.sleep(0.05)


def assert_consistent(v):
    """One snapshot: device totals are the sums of the queues, every
    received packet is in one bucket of the size histogram."""
    assert list(v) == NAMES, list(v)
    assert v["rx_packets"] == sum(v[f"rx_queue_{i}_packets"] for i in range(NQUEUES)), v
    assert v["tx_packets"] == sum(v[f"tx_queue_{i}_packets"] for i in range(NQUEUES)), v
    hist = v["rx_bytes_hist"]
    assert len(hist) == 8 and sum(hist) == v["rx_packets"], v
    # each packet's size is at least its bucket's lower bound
    assert v["rx_bytes"] >= sum(BUCKET * i * n for i, n in enumerate(hist)), v


def grew(before, after):
    """Every counter and bucket of `after` is at least `before`'s."""
    for name in NAMES:
        b, a = before[name], after[name]
        assert (all(x <= y for x, y in zip(b, a)) if isinstance(a, list) else b <= a), name


def test_provider_appears_in_the_qmp_schema_and_an_unregistered_name_keeps_qemus_error():
    with Example() as e:
        q = QMP(e.qmp, timeout=30)
        assert uses_installed_library(e.proc.pid), "the example did not load the installed library"
        schema = q.ok("query-qmp-schema")
        enums = {s["name"]: s["values"] for s in schema if s["meta-type"] == "enum"}
        assert enums["StatsProvider"] == ["kvm", "cryptodev", "balloon", "sched", PROVIDER]
        for name in ("virtio-nett", "virtio_net", "Virtio-net", "nosuch"):
            r = q.cmd("query-stats", {"target": "vm", "providers": [{"provider": name}]})
            assert r["error"] == {"class": "GenericError", "desc": UNREGISTERED.format(name)}, r
            r = q.cmd("query-stats-schemas", {"provider": name})
            assert r["error"] == {"class": "GenericError", "desc": UNREGISTERED.format(name)}, r
        # a built-in name nobody registered here is valid and answers nothing
        assert q.ok("query-stats", {"target": "vm", "providers": [{"provider": "kvm"}]}) == []
        assert q.ok("query-stats-schemas", {"provider": "kvm"}) == []
        assert q.cmd("quit") == {"return": {}}
    e.finish()


def test_schemas_and_values_of_the_virtio_net_provider_over_qmp():
    with Example() as e:
        q = QMP(e.qmp, timeout=30)
        schemas = q.ok("query-stats-schemas", {"provider": PROVIDER})
        assert schemas == q.ok("query-stats-schemas")     # the only provider
        assert [(s["provider"], s["target"]) for s in schemas] == [(PROVIDER, "vm")]
        stats = {s["name"]: s for s in schemas[0]["stats"]}
        assert list(stats) == NAMES
        for name, s in stats.items():
            want = {"name": name, "type": "cumulative", "exponent": 0}
            if name in BYTES:
                want["unit"] = "bytes"
            if name == "rx_bytes_hist":
                want.update({"type": "linear-histogram", "bucket-size": BUCKET})
            assert s == want, s

        first = traffic_seen(q)
        assert_consistent(first)
        every = q.ok("query-stats", {"target": "vm"})         # no filter: the same result
        assert len(every) == 1 and list(every[0]) == ["provider", "stats"], every
        assert every[0]["provider"] == PROVIDER and len(every[0]["stats"]) == len(NAMES)
        later = traffic_seen(q, since=first)          # the timer keeps the traffic going
        assert_consistent(later)
        grew(first, later)
        hist = later["rx_bytes_hist"]
        assert hist[0] > 0 and hist[5] > 0, hist     # ACKs [0,256), 1514-byte frames
        assert later["tx_bytes"] == 66 * later["tx_packets"]

        # QEMU's filters: names in schema order whatever the request's order,
        # an empty list or target vcpu gives no result
        assert list(values(q, ["rx_bytes_hist", "rx_drops", "nosuch"])) == \
            ["rx_drops", "rx_bytes_hist"]
        assert q.ok("query-stats", {"target": "vm", "providers": [
            {"provider": PROVIDER, "names": []}]}) == []
        assert q.ok("query-stats", {"target": "vcpu"}) == []
        twice = q.ok("query-stats", {"target": "vm", "providers": [
            {"provider": PROVIDER, "names": ["rx_drops"]}, {"provider": PROVIDER}]})
        assert [len(r["stats"]) for r in twice] == [1, len(NAMES)]
        assert q.cmd("quit") == {"return": {}}
    e.finish()


def hmp_lines(v, with_provider):
    """`info stats vm` lines for the values v, in QEMU's format."""
    lines = [f"provider: {PROVIDER}"] if with_provider else []
    for name, val in v.items():
        unit = ", B" if name in BYTES else ""
        if isinstance(val, list):
            buckets = "".join(f"[{i + 1}]={n} " for i, n in enumerate(val))
            lines.append(f"    {name} (linear-histogram{unit}, bucket size={BUCKET}): {buckets}")
        else:
            lines.append(f"    {name} (cumulative{unit}): {val}")
    return lines


def parse_hmp(text):
    """{name: value} from `info stats` lines; the lines as they were."""
    v = {}
    for line in text.split("\r\n"):
        m = re.fullmatch(r"    (\S+) \([^)]*\): (.*)", line)
        if m:
            v[m[1]] = ([int(x) for x in re.findall(r"\[\d+\]=(\d+)", m[2])]
                       if m[2].startswith("[") else int(m[2]))
    return v


def assert_between(before, shown, after):
    for name in before:
        b, s, a = before[name], shown[name], after[name]
        if isinstance(s, list):
            assert all(x <= y <= z for x, y, z in zip(b, s, a)), (name, b, s, a)
        else:
            assert b <= s <= a, (name, b, s, a)


def hmp_socket_command(path, line):
    """One command on the example's HMP socket: its output, with "\r\n"."""
    with socket.socket(socket.AF_UNIX) as h:
        h.settimeout(30)
        h.connect(path)
        text = b""
        while not text.endswith(b"(qstats) "):
            chunk = h.recv(65536)
            assert chunk, text
            text += chunk
        h.sendall(line.encode() + b"\n")
        out = b""
        while not out.endswith(b"(qstats) "):
            chunk = h.recv(65536)
            assert chunk, out
            out += chunk
    return out.decode()[:-len("(qstats) ")]


def test_info_stats_shows_the_provider_through_human_monitor_command_and_the_hmp_socket():
    with Example() as e:
        q = QMP(e.qmp, timeout=30)
        traffic_seen(q)
        for line, with_provider in (("info stats vm * virtio-net", False),
                                    ("info stats vm", True)):
            before = values(q)
            out = q.ok("human-monitor-command", {"command-line": line})
            after = values(q)
            shown = parse_hmp(out)
            assert_consistent(shown)
            assert_between(before, shown, after)
            assert out == "\r\n".join(hmp_lines(shown, with_provider)) + "\r\n", out

        before = values(q)
        out = hmp_socket_command(e.hmp, "info stats vm * virtio-net")
        after = values(q)
        shown = parse_hmp(out)
        assert_consistent(shown)
        assert_between(before, shown, after)
        assert out == "\r\n".join(hmp_lines(shown, False)) + "\r\n", out

        out = q.ok("human-monitor-command", {"command-line": "info stats -b vm rx_bytes_hist"})
        bounds = re.findall(r"(\[[^=]+)=\d+ ", out.split("\r\n")[1])
        assert bounds == ["[0,256)B", "[256,512)B", "[512,768)B", "[0.75,1)KiB", "[1,1.25)KiB",
                          "[1.25,1.5)KiB", "[1.5,1.75)KiB", "[1.75KiB,+inf)"], out
        # HMP's own word for a provider nobody registered, as QEMU's
        assert hmp_socket_command(e.hmp, "info stats vm rx_drops virtio-nett") == \
            "invalid stats provider virtio-nett\r\n"
        e.proc.send_signal(signal.SIGTERM)
    e.finish()


def scrape(port):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    types, helps, samples = {}, {}, {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
        elif line.startswith("# HELP "):
            _, _, fam, text = line.split(" ", 3)
            helps[fam] = text
        else:
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return body, types, helps, samples


FAMILY = "qstats_virtio_net_vm_"
HIST = FAMILY + "rx_bytes_hist_bytes"


def test_metrics_endpoint_has_counters_and_a_histogram_with_le_buckets():
    with Example() as e:
        q = QMP(e.qmp, timeout=30)
        before = traffic_seen(q)
        _, types, helps, samples = scrape(e.port)
        after = values(q)
        # text format 0.0.4: a counter's TYPE names its sample, "_total" included
        want = {FAMILY + n + "_total": "counter" for n in COUNTERS + QUEUES}
        want[HIST] = "histogram"
        provider_types = {k: v for k, v in types.items() if k.startswith(FAMILY)}
        assert provider_types == want, types
        assert types["qstats_build_info"] == "gauge", types   # exporter health follows
        assert helps[HIST] == "Sizes of the packets delivered to the guest.", helps
        assert helps[FAMILY + "rx_bytes_total"] == "Bytes delivered to the guest.", helps

        def sample(fam, suffix="", labels=""):
            return samples[f'{fam}{suffix}{{vm="custom"{labels}}}']

        shown = {n: sample(FAMILY + n + "_total") for n in COUNTERS + QUEUES}
        les = [str(BUCKET * i) for i in range(1, 8)] + ["+Inf"]
        cumulative = [sample(HIST, "_bucket", f',le="{le}"') for le in les]
        assert sorted(k for k in samples if k.startswith(HIST + "_bucket")) == \
            sorted(f'{HIST}_bucket{{vm="custom",le="{le}"}}' for le in les)
        shown["rx_bytes_hist"] = [int(c - p) for c, p in zip(cumulative, [0] + cumulative[:-1])]
        shown = {n: shown[n] for n in NAMES}
        assert_consistent(shown)
        assert_between(before, shown, after)
        # one snapshot: _count is the +Inf bucket and rx_packets, _sum is rx_bytes
        assert sample(HIST, "_count") == cumulative[-1] == shown["rx_packets"]
        assert sample(HIST, "_sum") == shown["rx_bytes"]
        assert q.cmd("quit") == {"return": {}}
    e.finish()


def test_promtool_accepts_the_metrics_of_the_custom_provider():
    if not shutil.which("promtool"):
        skip("promtool (Debian package prometheus) is not installed")
    with Example() as e:
        traffic_seen(QMP(e.qmp, timeout=30))
        body = scrape(e.port)[0]
        chk = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                             capture_output=True, timeout=60)
        assert chk.returncode == 0, chk.stdout + chk.stderr
        assert f"# TYPE {HIST} histogram" in body
        e.proc.send_signal(signal.SIGTERM)
    e.finish()


def test_top_once_shows_rates_and_the_size_histogram_of_the_provider():
    with Example() as e:
        top = subprocess.run([QSTATS, "-s", e.qmp, "top", "--once", "-d", "1"],
                             capture_output=True, text=True, timeout=60)
        assert top.returncode == 0 and top.stderr == "", top
        header, rows, _ = parse_top(top.stdout)
        assert "vm: custom" in header and "provider: all" in header, header
        assert sorted(r[0] for r in rows) == sorted(NAMES), rows
        assert {r[1] for r in rows} == {f"{PROVIDER}/vm"}, rows
        for name in ("rx_packets", "tx_packets") + tuple(QUEUES):
            assert count(row(rows, name)[3]) > 0, row(rows, name)
        for name in ("rx_bytes", "tx_bytes"):
            assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)", row(rows, name)[2]), row(rows, name)
            assert re.fullmatch(r"[\d.]+ (B|KiB|MiB)/s", row(rows, name)[3]), row(rows, name)
        hist = row(rows, "rx_bytes_hist")
        # the histogram gains one sample per received packet
        assert hist[2] == row(rows, "rx_packets")[2] and hist[3] == row(rows, "rx_packets")[3]
        m = re.fullmatch(r"mean ([\d.]+ (?:B|KiB))  p50 ([\d.]+ (?:B|KiB))  p99 ([\d.]+ (?:B|KiB))",
                         hist[4])
        assert m, hist

        only = subprocess.run([QSTATS, "-s", e.qmp, "top", "--once", "-d", "0.3", "-p", PROVIDER,
                               "-f", "^rx_queue_"], capture_output=True, text=True, timeout=60)
        header, rows, _ = parse_top(only.stdout)
        assert f"provider: {PROVIDER}" in header, header
        assert sorted(r[0] for r in rows) == [f"rx_queue_{i}_packets" for i in range(NQUEUES)]
        assert subprocess.run([QSTATS, "-s", e.qmp, "quit"], capture_output=True,
                              timeout=60).returncode == 0
    e.finish()


def test_a_start_up_failure_is_reported_and_torn_down_without_leaks():
    d = tempfile.mkdtemp(dir=TMP)
    qmp = os.path.join(d, "qmp.sock")
    hmp = os.path.join(d, "nothing", "hmp.sock")          # a directory that does not exist
    cmd, env = example_cmd("custom-provider", "unix:" + qmp, "unix:" + hmp, "127.0.0.1:0")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert (r.returncode, r.stdout) == (1, ""), r
    assert f"custom-provider: Failed to bind socket to {hmp}: No such file or directory\n" \
        in r.stderr, r.stderr
    assert_no_leak_or_memory_error(r.stderr)
    assert not os.path.exists(qmp)          # the QMP socket it had opened is gone


if __name__ == "__main__":
    run_module(globals())
