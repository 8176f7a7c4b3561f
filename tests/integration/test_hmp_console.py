"""The human monitor of the real qstatsd on a real micro-VM: `info stats` over
the unix console, over stdio and through QMP human-monitor-command, compared
line by line (values free) with the HMP exchanges QEMU 7.2 gave in
tests/fixtures/qemu-7.2-qmp-transcript.json and with a live QEMU on this
kernel (byte for byte for every error text); the console's prompt, banner,
per-client current CPU, socket mode and cleanup; quit over stdio."""
import json
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

from qstest import FIXTURES, QSTATSD, Daemon, need_kvm, run_module

need_kvm()

PROMPT = b"(qstats) "
STAT = re.compile(r"^    (\S+) \(([^)]*)\): (.*)$")


def transcript_hmp():
    with open(os.path.join(FIXTURES, "qemu-7.2-qmp-transcript.json")) as f:
        entries = json.load(f)
    return [(e["request"]["arguments"]["command-line"], e["reply"]["return"])
            for e in entries if str(e.get("tag", "")).startswith("hmp: ")]


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

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.banner = self.until_prompt()

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


# One daemon (one micro-VM) for the whole module: a unix console and the
# stdio console on the same interpreter.  The last test quits it.
TMP = tempfile.mkdtemp(prefix="qstats-hmp-")
HMP = os.path.join(TMP, "hmp.sock")
D = Daemon("--hmp", "unix:" + HMP, "--hmp", "stdio", vcpus=2, stdin=subprocess.PIPE)
D.wait_for_socket(HMP)


def hmc(q, line):
    return q.ok("human-monitor-command", {"command-line": line})


def blocks(sh):
    """[(header lines, stat lines)] split at every non-stat line."""
    out = []
    for item in sh:
        if item[0] == "stat" and out:
            out[-1][1].append(item)
        else:
            out.append(([item] if item[0] != "stat" else [], [item] if item[0] == "stat" else []))
    return out


def same_shape(ours, qemu, same_kernel=False):
    """Line by line with values free.  The stat set is the kernel's (the
    transcript's host kernel had a few stats this one may lack), so stats
    are compared on the names both have, which must be nearly all -- or
    all of them, against a QEMU running on this very kernel."""
    a, b = blocks(shape(ours)), blocks(natural(shape(qemu)))
    assert [h for h, _ in a] == [h for h, _ in b]
    for (_, sa), (_, sb) in zip(a, b):
        common = {x[1] for x in sa} & {x[1] for x in sb}
        need = max(len(sa), len(sb)) * (1 if same_kernel else 0.9)
        assert len(common) >= need, (sorted(common), sa, sb)
        assert [x for x in sa if x[1] in common] == [x for x in sb if x[1] in common]


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


# Lines whose output must equal a live QEMU's: byte for byte when
# EXACT, else in shape (values free, natural order).
LIVE = [
    ("info stats vm", False), ("info stats vcpu", False), ("info stats vm * kvm", False),
    ("info stats vcpu halt_wait_hist,guest_mode,exits", False),
    ("info stats vm pages_4k,,nosuch kvm", False),
    ("info stats vm nosuch", True), ("info stats nosuch", True), ("info stats vm * xen", True),
    ("info stats", True), ("info stats vm a b c", True), ("info stats vm \"open", True),
    ("cpu 5", True), ("cpu -1", True), ("cpu", True), ("cpu x", True), ("cpu 1 2", True),
    ("foo", True), ("info foo", True), ("help nosuch", True), ("help info nosuch", True),
    ("help cpu", True), ("qom-list", True), ("qom-list /nonexist", True),
    ("qom-get /nonexist x", True), ("qom-get", True), ("qom-set /p x", True),
    ("quit x", True), ("info balloon", True),
]


def test_matches_a_live_qemu():
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("SKIP part: qemu-system-x86_64 is not installed")
        return
    tmp = tempfile.mkdtemp(prefix="qstats-hmp-qemu-")
    sock = os.path.join(tmp, "qmp.sock")
    proc = subprocess.Popen([qemu, "-M", "pc", "-accel", "kvm", "-smp", "2", "-m", "128",
                             "-nodefaults", "-display", "none",
                             "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not os.path.exists(sock):
            assert proc.poll() is None and time.time() < deadline, "QEMU did not start"
            time.sleep(0.05)
        from qstest import QMP
        theirs, ours = QMP(sock), D.qmp()
        for line, exact in LIVE:
            a, b = hmc(ours, line), hmc(theirs, line)
            if exact:
                assert a == b, (line, a, b)
            else:
                same_shape(a, b, same_kernel=True)
        theirs.close()
        ours.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def exits_of(text):
    m = re.fullmatch(r"provider: kvm\r\n    exits \(cumulative\): (\d+)\r\n", text)
    assert m, repr(text)
    return int(m[1])


def qmp_exits(q, path):
    r = q.ok("query-stats", {"target": "vcpu", "vcpus": [path],
                             "providers": [{"provider": "kvm", "names": ["exits"]}]})
    return r[0]["stats"][0]["value"]


def test_each_console_client_has_its_own_current_cpu():
    q = D.qmp()
    a, b = Console(HMP), Console(HMP)
    assert a.run("cpu 2") == "invalid CPU index\r\n"
    assert a.run("cpu 1") == ""
    # Each monitor's value lies between two QMP reads of its own vCPU.
    for con, vcpu in ((a, "device[1]"), (b, "device[0]")):
        qom = "/machine/unattached/" + vcpu
        before = qmp_exits(q, qom)
        mine = exits_of(con.run("info stats vcpu exits"))
        after = qmp_exits(q, qom)
        assert before <= mine <= after, (vcpu, before, mine, after)
    a.close()
    # b is unaffected by a's disconnect
    assert b.run("info stats vcpu exits kvm").startswith("    exits (cumulative): ")
    b.close()
    q.close()


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
