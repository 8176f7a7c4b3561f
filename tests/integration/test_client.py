"""The `qstats` client against a real qstatsd over real sockets: one-shot
HMP lines print exactly what human-monitor-command returns (CRLF turned
into LF), `-c N` and the console's `cpu N` select the vCPU through
cpu-index, `qmp` pretty-prints and exits 1 on an error reply, missing
sockets and a daemon that dies mid-session give clear errors, TCP works,
and replies are matched by id with events skipped (against a scripted QMP
server).  Deterministic values come from a daemon serving a copy of the
recorded VM (tests/fixtures/recorded-linux-6.18, whose two vCPUs differ),
so none of this module needs /dev/kvm."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

from qstest import BUILD, Daemon, run_module

QSTATS = os.path.join(BUILD, "qstats")


def run(sock, *args, input=None, timeout=30):
    return subprocess.run([QSTATS, "-s", sock, *args], capture_output=True, text=True,
                          input=input, timeout=timeout)


def fixture_daemon():
    """A daemon serving a 2-vCPU copy of the recorded VM, which nothing
    advances: its values stay what the files say (exits() reads them)."""
    return Daemon(recorded=2)


def exits(d, cpu):
    return str(d.recording.load(cpu).get("exits"))


def hmc(q, line, cpu=None):
    args = {"command-line": line}
    if cpu is not None:
        args["cpu-index"] = cpu
    return q.ok("human-monitor-command", args)


def test_one_shot_hmp_line_prints_human_monitor_command_output_with_lf():
    with fixture_daemon() as d:
        q = d.qmp()
        cases = [(["info", "stats", "vm"], "info stats vm", None),
                 (["info", "stats", "vcpu"], "info stats vcpu", None),
                 (["-c", "1", "info", "stats", "vcpu"], "info stats vcpu", 1),
                 (["info", "stats", "vcpu", "exits,halt_wait_hist", "kvm"],
                  "info stats vcpu exits,halt_wait_hist kvm", None),
                 # an argument with a space stays one HMP argument
                 (["info", "stats", "vcpu", "exits, halt_exits"],
                  'info stats vcpu "exits, halt_exits"', None),
                 (["info", "stats", "nonsense"], "info stats nonsense", None),
                 (["info", "version"], "info version", None)]
        for argv, line, cpu in cases:
            expect = hmc(q, line, cpu)
            assert "\r\n" in expect
            r = run(d.qmp_path, *argv)
            assert r.returncode == 0 and r.stderr == "", (argv, r)
            assert r.stdout == expect.replace("\r\n", "\n"), (argv, r.stdout, expect)
        assert exits(d, 0) != exits(d, 1)
        assert f"    exits (cumulative): {exits(d, 1)}\n" in run(d.qmp_path, "-c", "1", "info",
                                                                  "stats", "vcpu", "exits").stdout
        assert f"    exits (cumulative): {exits(d, 0)}\n" in run(d.qmp_path, "info", "stats",
                                                                  "vcpu", "exits").stdout
        r = run(d.qmp_path, "-c", "7", "info", "stats", "vcpu")
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr == "qstats: Parameter 'cpu-index' expects a CPU number\n", r.stderr


def test_qmp_pretty_prints_the_reply_and_exits_1_on_an_error_reply():
    with fixture_daemon() as d:
        q = d.qmp()
        req = {"execute": "query-stats", "arguments": {"target": "vcpu"}}
        r = run(d.qmp_path, "qmp", json.dumps(req))
        assert r.returncode == 0, r
        assert r.stdout.startswith('{\n  "return": [\n    {\n'), r.stdout[:80]
        assert json.loads(r.stdout) == q.cmd("query-stats", {"target": "vcpu"})
        # a client id is the caller's and comes back; ours never shows
        r = run(d.qmp_path, "qmp", '{"execute": "query-name", "id": "x7"}')
        assert json.loads(r.stdout) == {"return": {}, "id": "x7"}
        r = run(d.qmp_path, "qmp", "query-stats", '{"target": "vm"}')
        assert json.loads(r.stdout) == q.cmd("query-stats", {"target": "vm"})
        r = run(d.qmp_path, "qmp", '{"execute": "query-stats"}')
        assert r.returncode == 1
        assert json.loads(r.stdout) == {"error": {"class": "GenericError",
                                                  "desc": "Parameter 'target' is missing"}}
        r = run(d.qmp_path, "qmp", '{"execute": "no-such-thing"}')
        assert r.returncode == 1 and json.loads(r.stdout)["error"]["class"] == "CommandNotFound"
        r = run(d.qmp_path, "qmp", "{not json")
        assert r.returncode == 2 and r.stderr.startswith("qstats: invalid JSON: "), r


def test_qmp_prints_unsigned_64_bit_values_exactly():
    tmp = tempfile.mkdtemp(prefix="qstats-client-")
    try:
        with Daemon("--balloon", "unix:" + os.path.join(tmp, "b.sock"), no_vm=True) as d:
            r = run(d.qmp_path, "qmp", "qom-get",
                    '{"path": "/machine/peripheral-anon/device[0]", "property": "guest-stats"}')
            assert r.returncode == 0, r
            assert '"stat-swap-in": 18446744073709551615,\n' in r.stdout, r.stdout
            assert json.loads(r.stdout)["return"]["last-update"] == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_missing_socket_and_refused_connections_are_clear_errors():
    tmp = tempfile.mkdtemp(prefix="qstats-client-")
    missing = os.path.join(tmp, "nothing.sock")
    for argv in (["info", "stats", "vm"], ["hmp"], ["qmp", '{"execute":"query-name"}'],
                 ["top", "--once"]):
        r = run(missing, *argv, input="")
        assert r.returncode == 1 and r.stdout == "", (argv, r)
        assert r.stderr == f"qstats: cannot connect to {missing}: No such file or directory\n"
    # a socket nobody listens on any more
    stale = os.path.join(tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    r = run(stale, "info", "version")
    assert (r.returncode, r.stderr) == (1, f"qstats: cannot connect to {stale}: Connection refused\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(f"tcp:127.0.0.1:{port}", "info", "version")
    assert r.returncode == 1
    assert r.stderr == f"qstats: cannot connect to tcp:127.0.0.1:{port}: Connection refused\n"
    r = subprocess.run([QSTATS, "info", "version"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "QSTATS_SOCKET"})
    assert r.returncode == 2 and "no socket" in r.stderr
    shutil.rmtree(tmp)


def test_usage_help_and_version():
    r = subprocess.run([QSTATS, "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for word in ("hmp", "qmp JSON", "top", "--once", "--log", "-z", "tcp:HOST:PORT"):
        assert word in r.stdout, word
    r = subprocess.run([QSTATS, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("qstats 0.")
    # option errors need no daemon
    for argv, text in ((["top", "-o", "size"], "invalid sort key size"),
                       (["top", "-f", "("], "invalid regex '('"),
                       (["top", "-d", "0"], "invalid interval 0"),
                       (["top", "--bogus"], "invalid option"),
                       (["hmp", "x"], "hmp takes no arguments")):
        r = run("/nonexistent.sock", *argv)
        assert r.returncode == 2 and text in r.stderr, (argv, r.stderr)


def test_tcp_socket():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Daemon(no_vm=True, extra_qmp=[f"tcp:127.0.0.1:{port}"]) as d:
        expect = hmc(d.qmp(), "info version").replace("\r\n", "\n")
        r = run(f"tcp:127.0.0.1:{port}", "info", "version")
        assert (r.returncode, r.stdout) == (0, expect), r


def test_console_without_terminal_keeps_the_cpu_and_stops_at_quit():
    with fixture_daemon() as d:
        script = ("info stats vcpu exits\ncpu 1\ninfo stats vcpu exits\ncpu 9\n"
                  "info stats vcpu exits\ncpu 0\ninfo stats vcpu exits\nquit\ninfo version\n")
        r = run(d.qmp_path, "hmp", input=script)
        assert r.returncode == 0 and r.stderr == "", r
        lines = r.stdout.split("\n")
        shown = [line for line in lines if "exits (cumulative)" in line]
        assert shown == ["    exits (cumulative): " + exits(d, cpu) for cpu in (0, 1, 1, 0)]
        assert "invalid CPU index" in lines
        assert "qstats" not in r.stdout        # nothing ran after quit


def test_console_reports_a_daemon_that_goes_away_mid_session():
    d = fixture_daemon()
    p = subprocess.Popen([QSTATS, "-s", d.qmp_path, "hmp"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p.stdin.write("info version\n")
        p.stdin.flush()
        assert p.stdout.readline().endswith("(qstats)\n")
        d.stop(signal.SIGKILL)
        p.stdin.write("info stats vm\ninfo version\n")
        p.stdin.close()
        assert p.wait(20) == 1
        assert p.stdout.read() == ""
        assert p.stderr.read() == "qstats: connection to qstatsd lost\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


class FakeQmp:
    """A scripted QMP server on a real unix socket: it answers each command
    after an event and a reply to some other id, and records requests."""

    def __init__(self, hang_up_after=None):
        self.dir = tempfile.mkdtemp(prefix="qstats-fake-")
        self.path = os.path.join(self.dir, "qmp.sock")
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.path)
        self.srv.listen(1)
        self.requests = []
        self.hang_up_after = hang_up_after
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.srv.accept()
        f = conn.makefile("rb")
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        dec = json.JSONDecoder()
        buf = ""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk.decode()
            while buf.strip():
                req, end = dec.raw_decode(buf.lstrip())
                buf = buf.lstrip()[end:]
                self.requests.append(req)
                if self.hang_up_after == len(self.requests):
                    conn.sendall(b'{"return": "partial')
                    conn.close()
                    return
                self.answer(conn, req)
        f.close()
        conn.close()

    def answer(self, conn, req):
        out = b'{"event": "BALLOON_CHANGE", "data": {"actual": 1}, ' \
              b'"timestamp": {"seconds": 1, "microseconds": 2}}\r\n'
        out += json.dumps({"return": "not yours\r\n", "id": "other"}).encode() + b"\r\n"
        line = req.get("arguments", {}).get("command-line", "")
        ret = {} if req["execute"] == "qmp_capabilities" else \
            "" if line == "cpu 1" else \
            "invalid CPU index\r\n" if line.startswith("cpu ") else f"ran {line}\r\n"
        out += json.dumps({"return": ret, "id": req.get("id")}).encode() + b"\r\n"
        conn.sendall(out)

    def close(self):
        self.thread.join(5)
        self.srv.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_replies_are_matched_by_id_events_skipped_and_cpu_index_sent():
    fake = FakeQmp()
    r = run(fake.path, "hmp", input="info stats vcpu\ncpu 1\ninfo stats vcpu\ncpu 9\ninfo version\n")
    assert (r.returncode, r.stderr) == (0, ""), r
    assert r.stdout == "ran info stats vcpu\nran info stats vcpu\ninvalid CPU index\nran info version\n"
    fake.thread.join(5)
    reqs = fake.requests
    assert [q["execute"] for q in reqs] == ["qmp_capabilities"] + ["human-monitor-command"] * 5
    assert len({json.dumps(q["id"]) for q in reqs}) == 6          # one id per request
    # `cpu 1` answered nothing, so it took; `cpu 9` was refused and changed nothing
    assert [q["arguments"].get("cpu-index") for q in reqs[1:]] == [None, None, 1, 1, 1]
    fake.close()


def test_a_reply_cut_short_is_a_lost_connection():
    fake = FakeQmp(hang_up_after=2)
    r = run(fake.path, "info", "version")
    fake.close()
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "qstats: connection to qstatsd lost\n")


if __name__ == "__main__":
    run_module(globals())
