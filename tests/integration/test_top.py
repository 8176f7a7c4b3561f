"""The interactive parts of the `qstats` client, driven on a real terminal
(tmux: send-keys, capture-pane) against a real qstatsd: console completion
(commands, stat names learnt from the schemas, the providers the daemon has
stats from at the time of Tab, QOM paths), `cpu N`, history and Ctrl-D; `top` on a recorded VM whose guest the test keeps
running (positive rates, the o/f/v/p/s keys change the screen, resizes
redraw, `q`, SIGTERM, Ctrl-C and a dying daemon all leave the alternate
screen and restore the shell), histogram count/mean/p50/p99 of the last
interval computed from the bucket bounds (on a crafted stats file whose
buckets the test moves, and on the recorded halt_wait_hist), unit
scaling, and the batch modes --once and --log parsed and checked."""
import contextlib
import csv
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from qstest import RECORDED, Daemon, recording, run_module, skip
from test_client import QSTATS, fixture_daemon

STATUS_KEYS = "o sort  f filter  v vcpu  p provider  s interval  q quit"


class Pane:
    """A program in a detached tmux session of its own (private server),
    followed by `EXIT=<status>` so that the test sees how it ended."""

    count = 0

    def __init__(self, argv, width=200, height=50, env=None):
        if not shutil.which("tmux"):
            skip("tmux (Debian package tmux) is not installed")
        Pane.count += 1
        self.server = f"qstats-test-{os.getpid()}-{Pane.count}"
        self.home = tempfile.mkdtemp(prefix="qstats-home-")
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        cmd = f"HOME={self.home} {envs} {shlex.join(argv)}; echo EXIT=$?; exec sleep 600"
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), cmd)
        self.socket_path = self.fmt("#{socket_path}")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-f", "/dev/null", "-L", self.server, *args],
                              capture_output=True, text=True, check=True).stdout

    def keys(self, *keys, literal=False):
        self.tmux("send-keys", "-t", "0", *(["-l"] if literal else []), *keys)

    def type(self, text):
        self.keys(text, literal=True)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "0")

    def fmt(self, what):
        return self.tmux("display", "-p", "-t", "0", what).strip()

    def wait(self, pred, what, timeout=15):
        deadline = time.time() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{s}")
            time.sleep(0.05)

    def wait_text(self, text, timeout=15):
        return self.wait(lambda s: text in s, repr(text), timeout)

    def complete(self, typed, want):
        """Types `typed` at the console, presses Tab and waits until the
        prompt line reads `want` (the console's line after its prompt)."""
        self.type(typed)
        self.keys("Tab")
        return self.wait(lambda s: prompt_line(s) == "(qstats) " + want, repr(want))

    def program_pid(self):
        shell = int(self.fmt("#{pane_pid}"))
        with open(f"/proc/{shell}/task/{shell}/children") as f:
            kids = f.read().split()
        return int(kids[0])

    def close(self):
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)
        if os.path.basename(self.socket_path) == self.server:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


def prompt_line(screen):
    lines = [line for line in screen.split("\n") if line.startswith("(qstats)")]
    return lines[-1].rstrip() if lines else ""


@contextlib.contextmanager
def frozen(pid):
    """The daemon stopped (every thread), so that no query reads a data
    block while it is being rewritten."""
    def stopped(task):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in "tT"
        except FileNotFoundError:        # a thread that ended stops nothing
            return True

    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.time() + 10
        while not all(stopped(t) for t in os.listdir(f"/proc/{pid}/task")):
            assert time.time() < deadline, "qstatsd did not stop on SIGSTOP"
            time.sleep(0.001)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class GuestRunning:
    """The recorded VM's guest at work while the test watches: every
    `period` seconds its files advance by `period` seconds of an idle
    guest (scripts/recording.py), as the micro-VM's counters would."""

    def __init__(self, d, period=0.1):
        self.d, self.period = d, period
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.error = None

    def run(self):
        try:
            while not self.done.wait(self.period):
                with frozen(self.d.proc.pid):
                    self.d.advance(self.period)
        except BaseException as e:  # noqa: BLE001 - reported by __exit__
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(30)
        if self.error and not exc[0]:
            raise self.error


# ---- console --------------------------------------------------------------

def test_console_completes_keeps_the_cpu_has_history_and_ends_on_ctrl_d():
    with fixture_daemon() as d:
        p = Pane([QSTATS, "-s", d.qmp_path, "hmp"])
        try:
            p.wait_text("(qstats)")
            p.complete("info st", "info stats")
            # a stat name learnt from the schemas
            p.complete("vcpu halt_ex", "info stats vcpu halt_exits")
            p.keys("Enter")
            p.wait_text("    halt_exits (cumulative): 100")
            p.type("info stats vcpu halt_wa")    # ambiguous: the candidates are listed
            p.keys("Tab")
            s = p.wait_text("halt_wakeup")
            assert re.search(r"halt_wait_hist +halt_wait_ns +halt_wakeup", s), s
            p.keys("C-u")
            for line in ("cpu 1", "info stats vcpu exits"):
                p.type(line)
                p.keys("Enter")
            p.wait_text("    exits (cumulative): 400")        # vCPU 1's value
            p.complete("qom-get /mach", "qom-get /machine/")
            p.complete("u", "qom-get /machine/unattached/")     # unattached, not peripheral*
            p.complete("device[1", "qom-get /machine/unattached/device[1]")
            line = "qom-get /machine/unattached/device[1] stats-id"
            p.complete("st", line)
            p.keys("Enter")
            p.wait_text('"kvm-5884/vcpu-1"')
            p.keys("Up")
            p.wait(lambda s: prompt_line(s) == "(qstats) " + line, "history")
            p.keys("C-u", "C-d")
            p.wait_text("EXIT=0")
            with open(os.path.join(p.home, ".qstats_history")) as f:
                assert "info\\040stats\\040vcpu\\040exits" in f.read()
        finally:
            p.close()


def providers_with_stats(q, target):
    return sorted({s["provider"] for s in q.ok("query-stats-schemas", {})
                   if s["target"] == target and s["stats"]})


def hand_over(q, path, target, qom_path=None):
    """A VMM's stats fd for the kvm provider, as add-stats-fd takes it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        assert q.cmd("getfd", {"fdname": "f"}, fds=[fd]) == {"return": {}}
    finally:
        os.close(fd)
    args = {"fdname": "f", "provider": "kvm", "target": target}
    if qom_path:
        args["qom-path"] = qom_path
    assert q.cmd("add-stats-fd", args) == {"return": {}}


def test_console_completes_the_providers_the_daemon_has_stats_from_at_each_tab():
    # Providers are names, not a closed list: the console offers those
    # query-stats-schemas has for the target when Tab is pressed, never a
    # StatsProvider value with no stats (sched, cryptodev here).
    tmp = tempfile.mkdtemp(prefix="qstats-providers-")
    d = Daemon("--balloon", "unix:" + os.path.join(tmp, "b.sock"), no_vm=True)
    p = Pane([QSTATS, "-s", d.qmp_path, "hmp"])
    try:
        q = d.qmp()
        p.wait_text("(qstats)")
        assert providers_with_stats(q, "vm") == ["balloon"]
        p.complete("info stats vm * ", "info stats vm * balloon")    # the one with VM stats
        p.keys("C-u")
        # a VMM hands over its stats fds while the console runs
        hand_over(q, os.path.join(RECORDED, "vm.bin"), "vm")
        hand_over(q, os.path.join(RECORDED, "vcpu0.bin"), "vcpu", "/machine/unattached/device[0]")
        assert providers_with_stats(q, "vm") == ["balloon", "kvm"]
        assert providers_with_stats(q, "vcpu") == ["kvm"]
        p.type("info stats vm * ")
        p.keys("Tab")
        s = p.wait(lambda s: re.search(r"^balloon +kvm *$", s, re.M), "both providers listed")
        assert "sched" not in s and "cryptodev" not in s, s
        p.keys("C-u")
        p.complete("info stats vcpu exits ", "info stats vcpu exits kvm")
        p.keys("Enter")
        p.wait_text("    exits (cumulative): " +
                    str(recording.StatsFile.load(os.path.join(RECORDED, "vcpu0.bin")).get("exits")))
        q.close()
    finally:
        p.close()
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_console_on_a_terminal_reports_a_daemon_that_went_away():
    d = fixture_daemon()
    p = Pane([QSTATS, "-s", d.qmp_path, "hmp"])
    try:
        p.wait_text("(qstats)")
        d.stop(signal.SIGKILL)
        p.type("info stats vm")
        p.keys("Enter")
        s = p.wait_text("EXIT=1")
        assert "qstats: connection to qstatsd lost" in s, s
    finally:
        p.close()


# ---- top: parsing the screen ------------------------------------------------

def parse_top(screen):
    """(header, [(name, where, value, rate, histogram)], status)."""
    lines = screen.split("\n")
    hi = next(i for i, line in enumerate(lines) if line.startswith("qstats top - "))
    titles = lines[hi + 1]
    v_end = titles.index("VALUE/TOTAL") + len("VALUE/TOTAL")
    r_end = titles.index("RATE/s") + len("RATE/s")
    rows = []
    for line in lines[hi + 2:]:
        if not re.match(r"^\S+ +\S+/\S+ ", line):
            break
        rows.append((line.split()[0], line.split()[1], line[v_end - 14:v_end].strip(),
                     line[r_end - 14:r_end].strip(), line[r_end + 2:].strip()))
    status = [line for line in lines if line.strip()][-1]
    return lines[hi], rows, status


def count(text):
    m = re.fullmatch(r"(-?[\d.]+)([kMGTPE]?)", text)
    assert m, text
    return float(m[1]) * 1000 ** " kMGTPE".index(m[2] or " ")


def row(rows, name):
    return next(r for r in rows if r[0] == name)


def exits_rate_positive(screen):
    try:
        _, rows, _ = parse_top(screen)
        rate = row(rows, "exits")[3]
        return rate not in ("", "-") and count(rate) > 0
    except (StopIteration, ValueError):
        return False


def header_has(p, text):
    return p.wait(lambda s: text in parse_top(s)[0] if "qstats top - " in s else False, text)


def test_top_on_a_running_vm_keys_change_the_screen_and_q_restores_the_terminal():
    with Daemon(recorded=2) as d, GuestRunning(d):
        p = Pane([QSTATS, "-s", d.qmp_path, "top", "-d", "1"])
        try:
            s = p.wait(exits_rate_positive, "a positive exits rate")
            assert p.fmt("#{alternate_on}") == "1"
            header, rows, status = parse_top(s)
            assert "sort: rate" in header and "vcpu: all of 2" in header, header
            assert status == STATUS_KEYS
            by_rate = [r[0] for r in rows]
            p.keys("o")
            header_has(p, "sort: total")
            p.keys("o")
            s = header_has(p, "sort: name")
            by_name = [r[0] for r in parse_top(s)[1]]
            assert by_name == sorted(by_name) and by_name != by_rate, (by_name, by_rate)
            p.type("f^halt_")
            p.wait(lambda s: "filter regex (empty clears): ^halt_" in s, "the filter prompt")
            p.keys("Enter")
            s = header_has(p, "filter: ^halt_")
            names = [r[0] for r in parse_top(s)[1]]
            assert len(names) >= 5 and all(n.startswith("halt_") for n in names), names
            p.keys("f", "Enter")
            header_has(p, "filter: none")
            for sel in ("0 of 2", "1 of 2", "all of 2"):
                p.keys("v")
                header_has(p, "vcpu: " + sel)
            # p cycles through the providers that have stats: kvm only here
            p.keys("p")
            s = header_has(p, "provider: kvm")
            assert {r[1].split("/")[0] for r in parse_top(s)[1]} == {"kvm"}
            p.keys("p")
            header_has(p, "provider: all")
            p.type("s0.5")
            p.keys("Enter")
            header_has(p, "interval: 0.5s")
            p.tmux("resize-window", "-t", "0", "-x", "100", "-y", "20")
            s = p.wait(lambda s: len(s.rstrip("\n").split("\n")) == 20 and
                       s.rstrip("\n").split("\n")[-1].startswith("o sort"), "a redraw at 100x20")
            assert max(len(line) for line in s.split("\n")) <= 100
            p.keys("q")
            s = p.wait_text("EXIT=0")
            assert p.fmt("#{alternate_on}") == "0"
            assert "qstats top" not in s, s
        finally:
            p.close()


def test_top_restores_the_terminal_on_sigterm_ctrl_c_and_a_lost_daemon():
    with fixture_daemon() as d:
        for how in ("SIGTERM", "C-c"):
            p = Pane([QSTATS, "-s", d.qmp_path, "top", "-d", "0.5"])
            try:
                p.wait_text("qstats top - ")
                assert p.fmt("#{alternate_on}") == "1"
                if how == "SIGTERM":
                    os.kill(p.program_pid(), signal.SIGTERM)
                else:
                    p.keys("C-c")
                s = p.wait_text("EXIT=0")
                assert p.fmt("#{alternate_on}") == "0" and "qstats top" not in s, (how, s)
            finally:
                p.close()
    d = fixture_daemon()
    p = Pane([QSTATS, "-s", d.qmp_path, "top", "-d", "0.3"])
    try:
        p.wait_text("qstats top - ")
        d.stop(signal.SIGKILL)
        s = p.wait_text("EXIT=1")
        assert "qstats: connection to qstatsd lost" in s, s
        assert p.fmt("#{alternate_on}") == "0"
    finally:
        p.close()


def test_top_v_key_sums_all_vcpus_or_shows_one():
    with fixture_daemon() as d:         # vCPU 0: 200 exits, vCPU 1: 400
        p = Pane([QSTATS, "-s", d.qmp_path, "top", "-d", "5", "-f", "^exits$"])
        try:
            for sel, value in (("all of 2", "600"), ("0 of 2", "200"), ("1 of 2", "400"),
                               ("all of 2", "600")):
                s = header_has(p, "vcpu: " + sel)
                assert parse_top(s)[1] == [("exits", "kvm/vcpu", value, "-", "")], s
                p.keys("v")
            p.keys("q")
            p.wait_text("EXIT=0")
        finally:
            p.close()


# ---- histograms and units ------------------------------------------------------

HIST_DESCS = [
    ("wait_hist", 0x04 | 0x20, -9, 32, 0, 0),       # log2 histogram, ns
    ("size_hist", 0x03 | 0x10, 0, 8, 256, 512),     # linear histogram, bytes, 512 per bucket
    ("pages", 0x01 | 0x10 | 0x100, 12, 1, 320, 0),  # instant, bytes * 2^12
    ("busy", 0x00 | 0x30, 0, 1, 328, 0),            # cumulative, cycles
    ("flag", 0x01 | 0x40, 0, 1, 336, 0),            # instant, boolean
]


def hist_values(wait):
    size = [0, 50, 50, 0, 0, 0, 0, 0]                 # [512,1024) and [1024,1536)
    return wait + size + [262144, 1234567, 1]


def test_histograms_show_count_mean_and_percentiles_of_the_last_interval():
    wait = [0] * 32
    wait[10] = 50                                    # log2 bucket 11: [512, 1024) ns
    wait[20] = 50                                    # log2 bucket 21: [2^19, 2^20) ns
    data = recording.build(HIST_DESCS, hist_values(wait))
    with Daemon(no_vm=True) as d:
        fd = os.memfd_create("hist")
        os.write(fd, data)
        q = d.qmp()
        assert q.cmd("getfd", {"fdname": "h"}, fds=[fd]) == {"return": {}}
        assert q.cmd("add-stats-fd", {"fdname": "h", "provider": "kvm", "target": "vcpu",
                                      "qom-path": "/machine/unattached/device[0]"}) == {"return": {}}
        p = Pane([QSTATS, "-s", d.qmp_path, "top", "-d", "2.5", "-o", "name"])
        try:
            # the first screen has no previous sample: the whole histogram
            s = p.wait_text("qstats top - ")
            rows = parse_top(s)[1]
            assert row(rows, "wait_hist")[2:] == ("100", "-", "mean 394 us  p50 1.02 us  p99 1.04 ms")
            assert row(rows, "size_hist")[2:] == ("100", "-", "mean 1 KiB  p50 1 KiB  p99 1.49 KiB")
            assert row(rows, "pages")[2:4] == ("1 GiB", "")
            assert row(rows, "busy")[2:4] == ("1.23 Mcycles", "-")
            assert row(rows, "flag")[2:4] == ("yes", "")
            # 100 samples land in log2 bucket 6, [16, 32) ns, during the interval
            wait[5] = 100
            os.pwrite(fd, recording.build(HIST_DESCS, hist_values(wait)), 0)
            s = p.wait(lambda s: row(parse_top(s)[1], "wait_hist")[2] == "200", "new samples")
            name, where, value, rate, dist = row(parse_top(s)[1], "wait_hist")
            assert dist == "mean 24 ns  p50 24 ns  p99 31.8 ns", dist
            assert 85 < count(rate) * 2.5 < 115, rate          # 100 samples in ~2.5 s
            assert row(parse_top(s)[1], "size_hist")[4] == "-"     # nothing new there
            # below a nanosecond, core's unit steps go on to picoseconds:
            # 100 samples in log2 bucket 1, [0, 1) ns
            wait[0] = 100
            os.pwrite(fd, recording.build(HIST_DESCS, hist_values(wait)), 0)
            s = p.wait(lambda s: row(parse_top(s)[1], "wait_hist")[2] == "300", "sub-ns samples")
            dist = row(parse_top(s)[1], "wait_hist")[4]
            assert dist == "mean 500 ps  p50 500 ps  p99 990 ps", dist
            p.keys("q")
            p.wait_text("EXIT=0")
        finally:
            p.close()
            os.close(fd)


# ---- batch modes ------------------------------------------------------------------

SECONDS = {"ps": 1e-12, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(text):
    """A time as top shows it ("12.6 ms") in seconds."""
    m = re.fullmatch(r"([\d.]+) (ps|ns|us|ms|s)", text)
    assert m, text
    return float(m[1]) * SECONDS[m[2]]


def grown_log2_bucket(before, after, name="halt_wait_hist"):
    """(lower, upper) in seconds of the one bucket of a log2 histogram that
    gained samples between two StatsFiles of a vCPU (KVM's rule: bucket k
    is [2^(k-1), 2^k) units of 10^exponent s)."""
    grew = [k for k, (x, y) in enumerate(zip(before.get(name), after.get(name))) if y > x]
    assert len(grew) == 1 and grew[0] >= 1, grew
    unit = 10.0 ** before.by_name[name].exponent
    return 2 ** (grew[0] - 1) * unit, 2 ** grew[0] * unit


def close_to(shown, want):
    """top shows 3 significant digits."""
    return abs(seconds(shown) - want) <= 0.005 * want


def test_once_and_log_on_a_running_recorded_vm():
    with Daemon(recorded=2) as d:
        before = d.recording.load(0)
        with GuestRunning(d):
            once = subprocess.run([QSTATS, "-s", d.qmp_path, "top", "--once", "-d", "1"],
                                  capture_output=True, text=True, timeout=30)
            log = subprocess.run([QSTATS, "-s", d.qmp_path, "top", "--log", "-n", "3",
                                  "-d", "0.4"], capture_output=True, text=True, timeout=30)
        after = d.recording.load(0)
        nstats = len(d.recording.load("vm").descs) + len(after.descs)

    assert once.returncode == 0 and once.stderr == "", once
    assert "\x1b" not in once.stdout
    header, rows, _ = parse_top(once.stdout)
    assert "interval: 1s" in header and "vcpu: all of 2" in header, header
    assert count(row(rows, "exits")[3]) > 0 and count(row(rows, "halt_exits")[3]) > 0
    assert re.fullmatch(r"[\d.]+ (ps|ns|us|ms|s)/s", row(rows, "halt_wait_ns")[3])
    # every halt of the guest fell in one bucket [lo, hi): the mean and
    # median of the interval are its midpoint, p99 is 99% of the way through
    lo, hi = grown_log2_bucket(before, after)
    dist = row(rows, "halt_wait_hist")[4]
    m = re.fullmatch(r"mean (.+)  p50 (.+)  p99 (.+)", dist)
    assert m, dist
    assert close_to(m[1], (lo + hi) / 2) and close_to(m[2], (lo + hi) / 2), (dist, lo, hi)
    assert close_to(m[3], lo + 0.99 * (hi - lo)), (dist, lo, hi)
    assert row(rows, "halt_poll_success_hist")[4] == "-"        # nothing new there
    assert len(rows) == nstats        # every recorded stat, no screen limit

    assert log.returncode == 0 and log.stderr == "", log
    table = list(csv.DictReader(io.StringIO(log.stdout)))
    assert len(table) == 3
    cols = log.stdout.split("\n")[0].split(",")
    assert cols[0] == "timestamp" and "exits" in cols and "halt_wait_hist" in cols, cols
    stamps = [float(t["timestamp"]) for t in table]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60, stamps
    grew = {n: after.get(n) - before.get(n) for n in ("exits", "halt_exits", "halt_wait_ns")}
    for t in table:
        halts = float(t["halt_exits"])
        assert halts > 0 and float(t["halt_wait_ns"]) > 0, t
        # every advance moves these in the same proportions, and the rates
        # of one interval come from the same two samples (the log prints
        # rates to 3 decimals: halts is within 0.0005)
        for name in ("exits", "halt_wait_ns"):
            per_halt = grew[name] / grew["halt_exits"]
            assert abs(float(t[name]) - halts * per_halt) <= 0.001 * per_halt, (name, t)
        assert abs(float(t["irq_injections"]) - halts) <= 0.001, t


def test_log_skips_all_zero_rows_with_z():
    with fixture_daemon() as d:           # static values: every rate is 0
        base = [QSTATS, "-s", d.qmp_path, "top", "--log", "-n", "2", "-d", "0.2",
                "-f", "^(exits|halt_exits)$"]
        r = subprocess.run(base, capture_output=True, text=True, timeout=30)
        lines = r.stdout.strip().split("\n")
        assert lines[0] == "timestamp,exits,halt_exits" and len(lines) == 3, lines
        assert all(line.endswith(",0,0") for line in lines[1:]), lines
        r = subprocess.run(base + ["-z"], capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stdout) == (0, "timestamp,exits,halt_exits\n"), r
        # instant values are values, not rates
        r = subprocess.run([QSTATS, "-s", d.qmp_path, "top", "--once", "-d", "0.2", "--vcpu",
                            "1", "-f", "^exits$"], capture_output=True, text=True, timeout=30)
        header, rows, _ = parse_top(r.stdout)
        assert "vcpu: 1 of 2" in header and rows == [("exits", "kvm/vcpu", "400", "0", "")]


if __name__ == "__main__":
    run_module(globals())
