"""The QMP protocol of qstatsd over real sockets: greeting, negotiation,
envelope and parse errors with QEMU's texts (qemu-reference.md §6), the
line format, many clients at once, misbehaving clients that hurt only
themselves, TCP and unix listeners, quit and signals."""
import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time

from qstest import QMP, QSTATSD, Daemon, need_kvm, run_module, skip

need_kvm()


def raw(q, data):
    q.send_raw(data)
    return q.recv()


def err(desc, cls="GenericError"):
    return {"error": {"class": cls, "desc": desc}}


def test_greeting_and_reply_lines_have_qemus_format():
    with Daemon(vcpus=1) as d:
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.qmp_path)
        f = s.makefile("rb")
        line = f.readline()
        assert line.endswith(b"}\r\n")
        g = json.loads(line)
        assert set(g["QMP"]) == {"version", "capabilities"} and g["QMP"]["capabilities"] == []
        assert set(g["QMP"]["version"]["qemu"]) == {"major", "minor", "micro"}
        s.sendall(b'{"execute": "qmp_capabilities", "id": "x"}')
        assert f.readline() == b'{"return": {}, "id": "x"}\r\n'
        s.sendall(b'{"execute":"query-name"}{"execute":"query-version"}')
        assert f.readline() == b'{"return": {}}\r\n'
        assert b'"package": "qstats' in f.readline()
        s.close()


def test_negotiation_mode_rules():
    with Daemon(vcpus=1) as d:
        q = d.qmp(negotiate=False)
        assert raw(q, '{"execute":"query-stats","arguments":{"target":"vm"}}') == \
            err("Expecting capabilities negotiation with 'qmp_capabilities'", "CommandNotFound")
        assert raw(q, '{"execute":"nosuch"}') == \
            err("Expecting capabilities negotiation with 'qmp_capabilities'", "CommandNotFound")
        assert raw(q, '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}') == \
            err("Capability oob not available")
        assert raw(q, '{"execute":"qmp_capabilities","arguments":{"enable":["x"]}}') == \
            err("Parameter 'null' does not accept value 'x'")
        assert q.cmd("qmp_capabilities") == {"return": {}}
        assert q.cmd("qmp_capabilities", id=3) == dict(
            err("Capabilities negotiation is already complete, command ignored", "CommandNotFound"), id=3)


ENVELOPE = [
    ('1', err("QMP input must be a JSON object")),
    ('"abc"', err("QMP input must be a JSON object")),
    ('[1, 2]', err("QMP input must be a JSON object")),
    ('foo', err("JSON parse error, invalid keyword 'foo'")),
    ('{"execute":"query-version","id":1, "id":2}', err("JSON parse error, duplicate key")),
    ('{"execute" "x"}', err("JSON parse error, missing : in object pair")),
    ('{,}', err("JSON parse error, expecting value")),
    ('}', err("JSON parse error, expecting value")),
    ('{"execute":1}', err("QMP input member 'execute' must be a string")),
    ('{"arguments":{}}', err("QMP input lacks member 'execute'")),
    ('{"execute":"query-version","arguments":[]}', err("QMP input member 'arguments' must be an object")),
    ('{"execute":"query-version","foo":1,"id":9}', dict(err("QMP input member 'foo' is unexpected"), id=9)),
    ('{"execute":"query-version","exec-oob":"x"}', err("QMP input member 'execute' clashes with 'exec-oob'")),
    ('{"exec-oob":"query-version"}', err("The command query-version does not support OOB")),
    ('{"execute":"nosuch","id":5}', dict(err("The command nosuch has not been found", "CommandNotFound"), id=5)),
    ('{"execute":"query-name","arguments":{"x":1}}', err("Parameter 'x' is unexpected")),
]


def test_envelope_and_parse_errors_keep_the_connection():
    with Daemon(vcpus=1) as d:
        q = d.qmp()
        for text, expect in ENVELOPE:
            assert raw(q, text + "\n") == expect, text
        # QEMU's single-quoted strings work, and the connection still serves
        assert "return" in raw(q, "{'execute': 'query-stats', 'arguments': {'target': 'vm'}}")
        # and so does the \' escape, in either kind of string
        for text in ("{'execute': 'qom-get', 'arguments': {'path': '/machine', 'property': 'a\\'b'}}",
                     '{"execute": "qom-get", "arguments": {"path": "/machine", "property": "a\\\'b"}}'):
            assert raw(q, text) == err("Property 'container.a'b' not found"), text
        assert q.cmd("query-stats", {"target": "vm"})["return"][0]["provider"] == "kvm"


def test_introspection_commands():
    with Daemon("--name", "guest-1", vcpus=1) as d:
        q = d.qmp()
        names = {c["name"] for c in q.ok("query-commands")}
        assert {"qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
                "query-name", "quit", "query-stats", "query-stats-schemas", "qom-list",
                "qom-get", "qom-set", "human-monitor-command", "getfd", "closefd",
                "add-stats-fd", "remove-stats-fd", "query-balloon"} <= names
        schema = q.ok("query-qmp-schema")
        cmds = {e["name"]: e for e in schema if e["meta-type"] == "command"}
        assert set(cmds) == names
        enums = {e["name"]: e["values"] for e in schema if e["meta-type"] == "enum"}
        assert enums["StatsProvider"] == ["kvm", "cryptodev", "balloon"]
        assert q.ok("query-name") == {"name": "guest-1"}
        assert q.ok("query-version")["qemu"]["major"] >= 0


def test_many_clients_at_once():
    with Daemon(vcpus=4) as d:
        errors = []

        def client():
            try:
                q = d.qmp()
                for _ in range(20):
                    r = q.ok("query-stats", {"target": "vcpu"})
                    assert len(r) == 4
                q.close()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors


def test_misbehaving_clients_affect_only_themselves():
    with Daemon(vcpus=2) as d:
        good = d.qmp()
        # 1: a client that floods requests and never reads a reply
        flood = d.qmp()
        req = b'{"execute":"query-stats","arguments":{"target":"vcpu"}}' * 2000
        flood.sock.setblocking(False)
        try:
            for _ in range(50):
                flood.sock.send(req)
        except BlockingIOError:
            pass
        # 2: an endless unterminated object
        endless = d.qmp()
        endless.sock.sendall(b'{"execute": "query-stats", "arguments": {"x": "' + b"a" * (4 << 20))
        # 3: garbage bytes and an abrupt close
        junk = d.qmp()
        junk.sock.sendall(bytes(range(256)) * 64)
        junk.close()
        # 4: nesting beyond QEMU's limit
        deep = d.qmp()
        deep.send_raw("[" * 1100 + "]" * 1100 + "\n")
        assert deep.recv() == err("JSON nesting depth limit exceeded")
        assert deep.cmd("query-name") == {"return": {}}
        start = time.time()
        for _ in range(20):
            assert len(good.ok("query-stats", {"target": "vcpu"})) == 2
        assert time.time() - start < 10
        flood.close()
        endless.close()
        assert d.proc.poll() is None


def test_token_count_limit_is_qemus():
    # QEMU refuses a value of more than 2^21 JSON tokens (checked against
    # QEMU 7.2 with these very texts); without the limit a 60 MB request
    # of 15M names held the loop for 25 s and the daemon at 1.4 GiB.
    def request(names):
        # 23 tokens before the names, 2 per name but the first, 5 after
        return ('{"execute": "query-stats", "arguments": {"target": "vm", "providers": '
                '[{"provider": "kvm", "names": [' + ", ".join(['"a"'] * names) + "]}]}}")
    with Daemon(vcpus=1) as d:
        q = d.qmp(timeout=60)
        # a whole value always has an odd number of tokens: 2^21 - 1 is the most
        assert raw(q, request((2**21 - 1 - 27) // 2)) == {"return": []}
        assert raw(q, request((2**21 + 1 - 27) // 2)) == err("JSON token count limit exceeded")
        assert raw(q, "[" + "1," * 2**20 + "1]") == err("JSON token count limit exceeded")
        assert q.cmd("query-name") == {"return": {}}


def main_thread_cpu_ticks(pid):
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_out_of_fds_the_listener_waits_instead_of_spinning():
    # A pending connection the daemon cannot accept (EMFILE) keeps the
    # listening socket readable; the loop used to spin on it at full speed.
    with Daemon(vcpus=1) as d:
        held = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (held + 4, held + 4))
        clients = [d.qmp(negotiate=False) for _ in range(4)]
        pending = []
        for _ in range(4):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.qmp_path)
            pending.append(s)
        time.sleep(0.5)
        before = main_thread_cpu_ticks(d.proc.pid)
        time.sleep(2)
        assert main_thread_cpu_ticks(d.proc.pid) - before < 20     # under 10% of a core
        for q in clients:
            assert q.cmd("qmp_capabilities") == {"return": {}}
            q.close()
        # fds are free again: the waiting clients are served
        pending[0].settimeout(5)
        assert b'"QMP"' in pending[0].recv(4096)
        for s in pending:
            s.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_client_that_does_not_read_replies_cannot_grow_the_daemon():
    with Daemon(vcpus=64) as d:
        good = d.qmp()
        before = rss_kib(d.proc.pid)
        flood = d.qmp()
        flood.sock.setblocking(False)
        req = b'{"execute":"query-stats","arguments":{"target":"vcpu"}}' * 1000  # ~140 MB of replies
        sent = 0
        deadline = time.time() + 5
        while sent < len(req) and time.time() < deadline:
            try:
                sent += flood.sock.send(req[sent:])
            except BlockingIOError:
                time.sleep(0.05)
        time.sleep(1)
        grown = rss_kib(d.proc.pid) - before
        assert grown < 48 * 1024, f"daemon grew by {grown} KiB for a client that does not read"
        assert len(good.ok("query-stats", {"target": "vcpu"})) == 64
        # the held-back requests are still served once the client reads
        flood.sock.setblocking(True)
        flood.sock.settimeout(30)
        for _ in range(3):
            assert len(flood.recv()["return"]) == 64
        flood.close()


def test_unix_socket_is_private_and_tcp_is_loopback_only():
    with Daemon(vcpus=1, extra_qmp=["tcp:127.0.0.1:0"]) as d:
        assert stat.S_IMODE(os.stat(d.qmp_path).st_mode) == 0o600
    port = 47000 + os.getpid() % 1000
    with Daemon(vcpus=1, extra_qmp=[f"tcp:127.0.0.1:{port}"]) as d:
        q = QMP(addr=("127.0.0.1", port))
        assert q.ok("query-stats", {"target": "vm"})[0]["provider"] == "kvm"
        r = q.cmd("getfd", {"fdname": "x"})
        assert "unix socket" in r["error"]["desc"]
    p = subprocess.run([QSTATSD, "--vcpus", "1", "--qmp", "tcp:0.0.0.0:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--allow-remote" in p.stderr


def test_a_second_daemon_cannot_take_over_a_live_socket_and_cleans_up():
    with Daemon(vcpus=1) as d:
        p = subprocess.run([QSTATSD, "--no-vm", "--qmp", "unix:" + d.qmp_path],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "another process is listening there" in p.stderr, p.stderr
        assert d.qmp().ok("query-name") == {}            # the first one still answers
        # a start-up failure removes the sockets it had already created
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        mine = os.path.join(d.dir, "other.sock")
        p = subprocess.run([QSTATSD, "--no-vm", "--qmp", "unix:" + mine, "--metrics",
                            "127.0.0.1:%d" % busy.getsockname()[1]],
                           capture_output=True, text=True, timeout=30)
        busy.close()
        assert p.returncode == 1 and "Address already in use" in p.stderr, p.stderr
        assert not os.path.exists(mine)
        assert os.path.exists(d.qmp_path)


def test_quit_and_signals_shut_down_cleanly():
    d = Daemon(vcpus=2)
    q = d.qmp()
    assert q.cmd("quit") == {"return": {}}
    assert d.proc.wait(20) == 0
    assert not os.path.exists(d.qmp_path)
    d.stop()
    for sig in ("SIGINT", "SIGTERM"):
        d = Daemon(vcpus=2)
        path = d.qmp_path
        assert d.stop(sig=getattr(__import__("signal"), sig)) == 0
        assert not os.path.exists(path)


def test_quit_from_a_client_that_hangs_up_without_reading_the_reply():
    # The reply cannot be delivered, but the quit must still happen: it
    # used to wait for some other client's next reply and then kill that
    # client's session instead.
    d = Daemon(vcpus=1)
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.qmp_path)
    assert b"QMP" in s.recv(4096)
    s.sendall(b'{"execute": "qmp_capabilities"}{"execute": "quit"}')
    s.close()
    try:
        assert d.proc.wait(20) == 0
    finally:
        d.stop()


def test_sixty_four_vcpus_answer_with_the_full_stat_set():
    with Daemon(vcpus=64) as d:
        q = d.qmp()
        names = [s["name"] for s in q.ok("query-stats-schemas")[1]["stats"]]
        first = q.ok("query-stats", {"target": "vcpu"})
        time.sleep(0.5)
        second = q.ok("query-stats", {"target": "vcpu"})
        assert [r["qom-path"] for r in second] == [f"/machine/unattached/device[{i}]" for i in range(64)]
        moved = 0
        for a, b in zip(first, second):
            assert [s["name"] for s in b["stats"]] == names
            va = {s["name"]: s["value"] for s in a["stats"]}
            vb = {s["name"]: s["value"] for s in b["stats"]}
            moved += vb["exits"] > va["exits"]
        assert moved == 64


def test_without_dev_kvm_the_daemon_says_so_once_and_serves_the_rest():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip("needs root and unshare to hide /dev/kvm in a private mount namespace")
    d = tempfile.mkdtemp(prefix="qstats-nokvm-")
    sock = os.path.join(d, "qmp.sock")
    # An empty tmpfs over /dev, in a mount namespace of the daemon's own.
    script = f'mount -t tmpfs none /dev && exec {QSTATSD} --vcpus 2 --qmp unix:{sock} --name nokvm'
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            if os.path.exists(sock) or p.poll() is not None:
                break
            time.sleep(0.05)
        q = QMP(sock)
        assert q.ok("query-stats", {"target": "vcpu"}) == []
        assert q.ok("query-stats-schemas") == []
        assert q.ok("query-name") == {"name": "nokvm"}
        assert q.ok("human-monitor-command", {"command-line": "info stats vm"}) == ""
        assert q.cmd("quit") == {"return": {}}
        assert p.wait(20) == 0
        err = p.stderr.read()
        assert err.count("kvm provider unavailable") == 1, err
        assert "/dev/kvm" in err
    finally:
        if p.poll() is None:
            p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    run_module(globals())
