"""The human monitor of the real qstatsd on the recorded VM (the KVM host
whose QEMU 7.2 answers are tests/fixtures/qemu-7.2-qmp-transcript.json):
`info stats` over the unix console, over stdio and through QMP
human-monitor-command, compared line by line (values free, stat names
exact) with the transcript's HMP exchanges and with QEMU's filters applied
to them; every line without statistics (errors, `cpu N`, `info balloon`,
filters that select nothing) byte for byte with a live QEMU, under KVM or
TCG; every `info stats` line with a QEMU under TCG (no KVM stats) and a
qstatsd without a VM; where KVM works, the stats lines with a live QEMU
under KVM and the micro-VM.  Also the console's prompt, banner, per-client
current CPU, socket mode and cleanup; quit over stdio."""
import os
import pty
import re
import select
import shutil
import socket
import stat
import subprocess
import tempfile
import time

from qstest import QSTATSD, Daemon, need_kvm, run_module
from qemu_oracle import TRANSCRIPT, LiveQemu, carries_stats, derived, transcript_full, \
    without_qstats_providers

PROMPT = b"(qstats) "
STAT = re.compile(r"^    (\S+) \(([^)]*)\): (.*)$")


def transcript_hmp():
    return [(e["request"]["arguments"]["command-line"], e["reply"]["return"])
            for e in TRANSCRIPT if str(e.get("tag", "")).startswith("hmp: ")]


def value_shape(v):
    if v in ("yes", "no"):
        return "bool"
    if re.fullmatch(r"\d+", v):
        return "scalar"
    items = re.findall(r"\[(\d+)\]=\d+ ", v)
    assert "".join(f"[{i}]=" for i in items) == re.sub(r"=\d+ ", "=", v), v
    assert [int(i) for i in items] == list(range(1, len(items) + 1)), v
    return f"list{len(items)}"


def shape(text):
    """Lines with values replaced by their form; every line must end CRLF."""
    assert text == "" or text.endswith("\r\n"), repr(text[-40:])
    out = []
    for line in text.split("\r\n")[:-1]:
        assert "\n" not in line and "\r" not in line, repr(line)
        m = STAT.match(line)
        out.append(("stat", m[1], m[2], value_shape(m[3])) if m else ("line", line))
    return out


def natural(qemu_shape):
    """QEMU 7.2 prints each result's stats in reverse descriptor order; the
    qstats prints them in natural order (docs/qemu-behaviour.md#ordering):
    reverse every run of stat lines."""
    out, run = [], []
    for item in qemu_shape + [None]:
        if item is not None and item[0] == "stat":
            run.append(item)
            continue
        out += reversed(run)
        run = []
        if item is not None:
            out.append(item)
    return out


class Console:
    """A unix-socket monitor client, as `socat - UNIX-CONNECT:PATH` is."""

    def __init__(self, path, retry=True):
        deadline = time.time() + 10
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(path)
            try:
                self.banner = self.until_prompt()
                return
            except EOFError:
                # as told: "try again later" (the daemon may not have seen
                # the last tests' consoles close yet)
                self.sock.close()
                if not retry or time.time() > deadline:
                    raise
                time.sleep(0.1)

    def until_prompt(self):
        buf = b""
        while not buf.endswith(PROMPT):
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError(f"console closed after {buf!r}")
            buf += data
        return buf[:-len(PROMPT)].decode()

    def run(self, line):
        self.sock.sendall(line.encode() + b"\n")
        return self.until_prompt()

    def close(self):
        self.sock.close()


# One daemon (one recorded VM) for the whole module: a unix console and the
# stdio console on the same interpreter.  The last test quits it.
TMP = tempfile.mkdtemp(prefix="qstats-hmp-")
HMP = os.path.join(TMP, "hmp.sock")
D = Daemon("--hmp", "unix:" + HMP, "--hmp", "stdio", recorded=2, stdin=subprocess.PIPE)
D.wait_for_socket(HMP)


def hmc(q, line):
    return q.ok("human-monitor-command", {"command-line": line})


def same_shape(ours, qemu):
    """Line by line with values free, stats in natural order; the stat
    names are the same kernel's, so they must be equal."""
    a, b = shape(ours), natural(shape(qemu))
    assert a == b, ([x for x in a if x not in b], [x for x in b if x not in a], len(a), len(b))


def compare_with_transcript(run_line):
    for line, qemu in transcript_hmp():
        if line == "info balloon":
            continue        # needs --balloon; see test_info_balloon_with_a_balloon
        ours = run_line(line)
        try:
            same_shape(ours, qemu)
        except AssertionError as e:
            raise AssertionError(f"{line}: {e}\n{ours}\n--- QEMU:\n{qemu}") from None


def test_console_matches_qemu_transcript_line_by_line():
    c = Console(HMP)
    assert c.banner == "qstats 0.1.0 monitor - type 'help' for more information\r\n"
    compare_with_transcript(c.run)
    # error lines are byte-identical
    assert c.run("info stats nosuch") == "invalid stats target nosuch\r\n"
    assert c.run("info stats") == ("stats: string expected\r\n"
                                   "Try \"help info stats\" for more information\r\n")
    assert c.run("foo") == "unknown command: 'foo'\r\n"
    c.close()


def test_human_monitor_command_matches_qemu_transcript():
    q = D.qmp()
    compare_with_transcript(lambda line: hmc(q, line))
    assert hmc(q, "info stats vm * nosuchprovider") == "invalid stats provider nosuchprovider\r\n"
    q.close()


# Lines whose answers carry statistics: compared in shape (values free,
# natural order) with QEMU's filters applied to the transcript's answers,
# and with a live QEMU where KVM works.
STATS_LINES = [
    "info stats vm", "info stats vcpu", "info stats vm * kvm", "info stats vcpu *",
    "info stats vcpu halt_wait_hist,guest_mode,exits", "info stats vm pages_4k,,nosuch kvm",
]

# Lines whose answers carry no statistics: byte for byte with a live QEMU.
PLAIN_LINES = [
    "info stats vm nosuch", "info stats vcpu nosuch,nope kvm", "info stats nosuch",
    "info stats vm * xen", "info stats", "info stats vm a b c", "info stats vm \"open",
    "info stats VM", "info stats vm * KVM", "info stats vm * kvm extra", "info stats vm ,",
    "cpu 5", "cpu 2", "cpu -1", "cpu", "cpu x", "cpu 1 2", "cpu 1", "cpu 0", "cpu 0x1", "cpu 1+0",
    "cpu 3/0", "cpu (1", "cpu 99999999999999999999",
    "foo", "info foo", "help nosuch", "help info nosuch", "help cpu", "", "  info stats vm nosuch  ",
    "qom-list", "qom-list /nonexist", "qom-get /nonexist x", "qom-get", "qom-set /p x",
    "quit x", "info balloon", "info balloon x",
]


def test_stats_lines_match_qemus_filters_applied_to_the_transcript():
    q = D.qmp()
    full = transcript_full()
    for line in STATS_LINES:
        qemu = derived("human-monitor-command", {"command-line": line}, full)["return"]
        assert carries_stats("human-monitor-command", {"return": qemu}), line
        try:
            same_shape(hmc(q, line), qemu)
        except AssertionError as e:
            raise AssertionError(f"{line}: {e}") from None
    q.close()


def test_lines_without_stats_match_a_live_qemu_byte_for_byte():
    with LiveQemu(vcpus=2, mem_mb=128, balloon=False) as qemu:
        ours = D.qmp()
        for line in PLAIN_LINES:
            a, b = hmc(ours, line), hmc(qemu.q, line)
            assert a == b, (qemu.describe(), line, a, b)
            assert not carries_stats("human-monitor-command", {"return": b}), line
        ours.close()
        print(f"{len(PLAIN_LINES)} lines compared live with {qemu.describe()}")


def test_info_stats_without_kvm_stats_prints_what_qemu_under_tcg_prints():
    # QEMU under TCG has no KVM stats, nor has qstatsd without a VM: every
    # info stats line must print the same there (nothing, or the error).
    lines = [ln for ln in STATS_LINES + PLAIN_LINES + [ln for ln, _ in transcript_hmp()]
             if ln.startswith("info stats")]
    with LiveQemu(vcpus=2, mem_mb=128, balloon=False, accel="tcg") as qemu, \
            Daemon(no_vm=True) as d:
        ours = d.qmp()
        for line in lines:
            a, b = hmc(ours, line), hmc(qemu.q, line)
            assert a == b, (qemu.describe(), line, a, b)
        assert [hmc(ours, ln) for ln in STATS_LINES] == [""] * len(STATS_LINES)
        ours.close()
        print(f"{len(lines)} info stats lines compared live with {qemu.describe()}")


def test_stats_lines_match_a_live_qemu_under_kvm():
    need_kvm("the micro-VM (its stats lines compared live with QEMU under KVM on one kernel)")
    with LiveQemu(vcpus=2, mem_mb=128, balloon=False, accel="kvm") as qemu, \
            Daemon(vcpus=2) as d:
        ours = d.qmp()
        for line in STATS_LINES:
            mine = without_qstats_providers("human-monitor-command", {},
                                            {"return": hmc(ours, line)})["return"]
            try:
                same_shape(mine, hmc(qemu.q, line))
            except AssertionError as e:
                raise AssertionError(f"{line}: {e}") from None
        ours.close()


def exits_of(text):
    m = re.fullmatch(r"provider: kvm\r\n    exits \(cumulative\): (\d+)\r\n", text)
    assert m, repr(text)
    return int(m[1])


def qmp_exits(q, path):
    r = q.ok("query-stats", {"target": "vcpu", "vcpus": [path],
                             "providers": [{"provider": "kvm", "names": ["exits"]}]})
    return r[0]["stats"][0]["value"]


def test_each_console_client_has_its_own_current_cpu():
    # vCPU 1 runs ahead of vCPU 0, so each console's value tells which
    # vCPU it read.
    D.advance(3.0, vcpus=[1])
    q = D.qmp()
    a, b = Console(HMP), Console(HMP)
    assert a.run("cpu 2") == "invalid CPU index\r\n"
    assert a.run("cpu 1") == ""
    vcpu0, vcpu1 = (qmp_exits(q, f"/machine/unattached/device[{i}]") for i in (0, 1))
    assert vcpu1 > vcpu0, (vcpu0, vcpu1)
    assert exits_of(a.run("info stats vcpu exits")) == vcpu1
    assert exits_of(b.run("info stats vcpu exits")) == vcpu0
    a.close()
    # b is unaffected by a's disconnect, and reads its vCPU as it moves
    D.advance(1.0)
    assert b.run("info stats vcpu exits kvm") == \
        f"    exits (cumulative): {qmp_exits(q, '/machine/unattached/device[0]')}\r\n"
    assert qmp_exits(q, "/machine/unattached/device[0]") > vcpu0
    b.close()
    q.close()


def test_seventeenth_console_is_refused_and_a_huge_line_is_dropped_alone():
    consoles = [Console(HMP) for _ in range(16)]   # (waiting for others' to close)
    extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    extra.settimeout(10)
    extra.connect(HMP)
    refusal = b""
    while True:                      # a line saying why, then the end
        data = extra.recv(1 << 16)
        if not data:
            break
        refusal += data
    extra.close()
    assert refusal == b"qstats: too many monitor sessions (limit 16); try again later\r\n"
    # a line of 3 MiB (over the 1 MiB limit): said once, then the line's
    # end ends it; the console and the others live on
    c = consoles[0]
    c.sock.sendall(b"info stats vm " + b"x" * (3 << 20) + b"\n")
    assert c.until_prompt() == "line too long\r\n"
    assert c.run("info version").endswith(" (qstats)\r\n"), "the console broke"
    assert consoles[1].run("info version") == c.run("info version"), "another console broke"
    consoles.pop().close()           # a place is free again, once the daemon saw it
    late = Console(HMP)
    assert late.run("info version") == c.run("info version")
    for k in consoles + [late]:
        k.close()


def test_extensions_show_every_vcpu_and_bucket_bounds():
    c = Console(HMP)
    out = c.run("info stats -a vcpu exits")
    assert re.fullmatch(r"provider: kvm\r\nqom-path: /machine/unattached/device\[0\]\r\n"
                        r"    exits \(cumulative\): \d+\r\n"
                        r"provider: kvm\r\nqom-path: /machine/unattached/device\[1\]\r\n"
                        r"    exits \(cumulative\): \d+\r\n", out), out
    out = c.run("info stats -b vcpu halt_wait_hist kvm")
    assert out.startswith("    halt_wait_hist (log2-histogram, ns): [0,1)ns=")
    assert re.search(r" \[1,2\)ns=\d+ \[2,4\)ns=\d+ ", out), out
    assert re.search(r" \[1\.07s,\+inf\)=\d+ \r\n$", out), out
    # off by default: plain output is QEMU's
    assert "[1]=" in c.run("info stats vcpu halt_wait_hist kvm")
    c.close()


def test_a_client_that_leaves_before_its_output_does_not_stop_the_daemon():
    # The console then writes to a socket whose peer is gone: that write
    # fails (EPIPE) and must cost the client its session, not the daemon its
    # life (SIGPIPE killed qstatsd here; found by bench/soak.py).
    for _ in range(10):                # fewer than the 16 consoles allowed at once
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(HMP)
        s.sendall(b"info stats -a vcpu\n" * 50)
        s.close()
    c = Console(HMP)
    for _ in range(3):
        assert exits_of(c.run("info stats vcpu exits")) >= 0
    c.close()
    assert D.proc.poll() is None, f"qstatsd exited with {D.proc.returncode}"


def test_info_balloon_with_a_balloon():
    # No VM needed: without one the balloon reports the default 256 MiB.
    tmp = tempfile.mkdtemp(prefix="qstats-hmp-")
    path = os.path.join(tmp, "hmp.sock")
    d = Daemon("--hmp", "unix:" + path, "--balloon", "unix:" + os.path.join(tmp, "b.sock"),
               no_vm=True)
    try:
        d.wait_for_socket(path)
        c = Console(path)
        assert c.run("info balloon") == "balloon: actual=256\r\n"
        c.close()
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def read_until(f, marker, timeout=10):
    buf, deadline = b"", time.time() + timeout
    while marker not in buf:
        left = deadline - time.time()
        assert left > 0 and select.select([f], [], [], left)[0], f"no {marker!r} in {buf!r}"
        data = os.read(f.fileno(), 1 << 16)
        if not data:
            break
        buf += data
    return buf


def test_stdio_console():
    out = D.proc.stdout
    assert read_until(out, PROMPT).endswith(b"information\r\n" + PROMPT)
    qemu = dict(transcript_hmp())["info stats vcpu"]
    D.proc.stdin.write(b"info stats vcpu\n")
    D.proc.stdin.flush()
    ours = read_until(out, PROMPT)
    assert ours.endswith(PROMPT)
    same_shape(ours[:-len(PROMPT)].decode(), qemu)
    # two lines in one write: two answers, each followed by the prompt
    D.proc.stdin.write(b"cpu 1\ninfo stats vcpu exits kvm\n")
    D.proc.stdin.flush()
    both = read_until(out, b"\r\n" + PROMPT)
    assert re.fullmatch(rb"\(qstats\)     exits \(cumulative\): \d+\r\n\(qstats\) ", both), both


def test_stdio_on_a_terminal_shows_each_line_end_once():
    # The terminal's own ONLCR adds the \r: the console must not add another.
    master, slave = pty.openpty()
    proc = subprocess.Popen([QSTATSD, "--no-vm", "--hmp", "stdio"], stdin=slave, stdout=slave,
                            stderr=subprocess.DEVNULL, close_fds=True)
    os.close(slave)
    try:
        with os.fdopen(master, "rb", buffering=0) as tty:
            assert read_until(tty, PROMPT).endswith(b"information\r\n" + PROMPT)
            os.write(master, b"info version\n")
            out = read_until(tty, b"\r\n" + PROMPT)
            assert out == b"info version\r\n0.1.0 (qstats)\r\n" + PROMPT, out   # echo, answer
            os.write(master, b"quit\n")
            assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_quit_on_stdio_stops_the_daemon_and_removes_the_socket():
    assert stat.S_IMODE(os.stat(HMP).st_mode) == 0o600
    c = Console(HMP)
    D.proc.stdin.write(b"quit\n")
    D.proc.stdin.flush()
    assert D.proc.wait(30) == 0
    assert D.proc.stdout.read() == b""        # nothing after quit, not even a prompt
    assert not os.path.exists(HMP)
    c.sock.settimeout(5)
    assert c.sock.recv(100) == b""            # the unix client sees the close
    c.close()
    D.stop()
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    try:
        run_module(globals())
    finally:
        D.stop()
        shutil.rmtree(TMP, ignore_errors=True)
