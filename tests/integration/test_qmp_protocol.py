"""The QMP protocol of qstatsd over real sockets: greeting, negotiation,
envelope and parse errors with QEMU's texts
(docs/qemu-behaviour.md#qmp-protocol), the line format, query-status as
QEMU 7.2 answers it, many clients at once, misbehaving clients that hurt
only themselves, TCP and unix listeners,
quit and signals; `--recorded DIR` and how a bad recording stops the
daemon before it listens.  The daemon serves a recorded VM (real Linux
6.18 descriptors), so this runs on any machine; the micro-VM's own
shutdown and the daemon without /dev/kvm are tested where they can be."""
import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

from qstest import QMP, QSTATSD, RECORDED, Daemon, need_kvm, recording, run_module, skip


def raw(q, data):
    q.send_raw(data)
    return q.recv()


def err(desc, cls="GenericError"):
    return {"error": {"class": cls, "desc": desc}}


def test_greeting_and_reply_lines_have_qemus_format():
    with Daemon(recorded=1) as d:
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
    with Daemon(recorded=1) as d:
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
    # without the oob capability, exec-oob is an unknown member (as QEMU 7.2)
    ('{"execute":"query-version","exec-oob":"x"}', err("QMP input member 'exec-oob' is unexpected")),
    ('{"exec-oob":"query-version"}', err("QMP input member 'exec-oob' is unexpected")),
    ('{"execute":"nosuch","id":5}', dict(err("The command nosuch has not been found", "CommandNotFound"), id=5)),
    ('{"execute":"query-name","arguments":{"x":1}}', err("Parameter 'x' is unexpected")),
]


def test_envelope_and_parse_errors_keep_the_connection():
    with Daemon(recorded=1) as d:
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
    with Daemon("--name", "guest-1", recorded=1) as d:
        q = d.qmp()
        names = {c["name"] for c in q.ok("query-commands")}
        assert {"qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
                "query-name", "quit", "query-stats", "query-stats-schemas", "qom-list",
                "qom-get", "qom-set", "human-monitor-command", "getfd", "closefd",
                "add-stats-fd", "remove-stats-fd", "query-balloon", "query-status"} <= names
        schema = q.ok("query-qmp-schema")
        cmds = {e["name"]: e for e in schema if e["meta-type"] == "command"}
        assert set(cmds) == names
        enums = {e["name"]: e["values"] for e in schema if e["meta-type"] == "enum"}
        assert enums["StatsProvider"] == ["kvm", "cryptodev", "balloon", "sched"]
        assert q.ok("query-name") == {"name": "guest-1"}
        assert q.ok("query-version")["qemu"]["major"] >= 0


def test_many_clients_at_once():
    with Daemon(recorded=4) as d:
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
    with Daemon(recorded=2) as d:
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
    with Daemon(recorded=1) as d:
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
    with Daemon(recorded=1) as d:
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
    with Daemon(recorded=64) as d:
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


def test_the_memory_of_large_requests_goes_back_once_they_are_served():
    # glibc raises its mmap threshold to the size of each large block freed,
    # so the buffers of the next large requests came from the heap and stayed
    # resident: 22 MiB more after these three (found by bench/soak.py).  ASan's
    # quarantine keeps freed memory on purpose: off for this daemon.
    saved = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=0"
    try:
        d = Daemon(recorded=2)
    finally:
        if saved is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = saved
    with d:
        q = d.qmp()
        before = rss_kib(d.proc.pid)
        for mib in (8, 6, 4):
            r = q.cmd("query-name", id="x" * (mib << 20))
            assert r["return"] == {} and len(r["id"]) == mib << 20
        assert q.ok("query-name") == {}
        grown = rss_kib(d.proc.pid) - before
        assert grown < 4 * 1024, f"the daemon kept {grown} KiB after its large requests"


def test_unix_socket_is_private_and_tcp_is_loopback_only():
    with Daemon(recorded=1, extra_qmp=["tcp:127.0.0.1:0"]) as d:
        assert stat.S_IMODE(os.stat(d.qmp_path).st_mode) == 0o600
    with socket.socket() as probe:        # a port free now (not in anyone's TIME-WAIT)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Daemon(recorded=1, extra_qmp=[f"tcp:127.0.0.1:{port}"]) as d:
        q = QMP(addr=("127.0.0.1", port))
        assert q.ok("query-stats", {"target": "vm"})[0]["provider"] == "kvm"
        r = q.cmd("getfd", {"fdname": "x"})
        assert "unix socket" in r["error"]["desc"]
    p = subprocess.run([QSTATSD, "--no-vm", "--qmp", "tcp:0.0.0.0:0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "--allow-remote" in p.stderr


def test_a_second_daemon_cannot_take_over_a_live_socket_and_cleans_up():
    with Daemon(recorded=1) as d:
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
    d = Daemon(recorded=2)
    q = d.qmp()
    assert q.cmd("quit") == {"return": {}}
    assert d.proc.wait(20) == 0
    assert not os.path.exists(d.qmp_path)
    d.stop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        d = Daemon(recorded=2)
        path = d.qmp_path
        assert d.stop(sig=sig) == 0
        assert not os.path.exists(path)


def test_the_micro_vm_is_torn_down_on_quit_and_signals():
    need_kvm("the micro-VM's vCPU threads")
    for how in ("quit", signal.SIGTERM):
        d = Daemon(vcpus=2)
        try:
            # the main thread and one host thread per vCPU at least
            assert len(os.listdir(f"/proc/{d.proc.pid}/task")) >= 3
            if how == "quit":
                assert d.qmp().cmd("quit") == {"return": {}}
            else:
                d.proc.send_signal(how)
            assert d.proc.wait(20) == 0, d.log()
            assert not os.path.exists(d.qmp_path)
        finally:
            d.stop()


def test_quit_from_a_client_that_hangs_up_without_reading_the_reply():
    # The reply cannot be delivered, but the quit must still happen: it
    # used to wait for some other client's next reply and then kill that
    # client's session instead.
    d = Daemon(recorded=1)
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
    with Daemon(recorded=64) as d:
        q = d.qmp()
        names = [s["name"] for s in q.ok("query-stats-schemas")[1]["stats"]]
        first = q.ok("query-stats", {"target": "vcpu"})
        d.advance(0.5, vcpus=range(0, 64, 2))        # the even vCPUs ran
        second = q.ok("query-stats", {"target": "vcpu"})
        assert [r["qom-path"] for r in second] == [f"/machine/unattached/device[{i}]" for i in range(64)]
        for i, (a, b) in enumerate(zip(first, second)):
            assert [s["name"] for s in b["stats"]] == names
            va = {s["name"]: s["value"] for s in a["stats"]}
            vb = {s["name"]: s["value"] for s in b["stats"]}
            assert vb["exits"] == d.recording.load(i).get("exits")
            assert (vb["exits"] > va["exits"]) == (i % 2 == 0), (i, va["exits"], vb["exits"])


def qemu_lines(*texts):
    """QEMU 7.2's raw reply lines (without CRLF) to texts sent one a line
    after qmp_capabilities: no machine, TCG, a QMP monitor on stdio is all
    these requests need."""
    binary = shutil.which("qemu-system-x86_64")
    if not binary:
        skip("qemu-system-x86_64 (Debian package qemu-system-x86) is not installed")
    text = "".join(t + "\n" for t in ['{"execute": "qmp_capabilities"}', *texts,
                                       '{"execute": "quit"}'])
    p = subprocess.run([binary, "-accel", "tcg", "-M", "none", "-display", "none", "-nodefaults",
                        "-qmp", "stdio"], input=text.encode(), capture_output=True, timeout=60)
    lines = [line for line in p.stdout.split(b"\r\n") if line and b'"event"' not in line]
    assert json.loads(lines[0])["QMP"]["version"]["qemu"]["major"] == 7, lines
    assert len(lines) == len(texts) + 3, lines
    return lines[2:2 + len(texts)]


def qstatsd_lines(d, *texts):
    """qstatsd's raw reply lines to the same texts, on a fresh session."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.qmp_path)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    assert f.readline() == b'{"return": {}}\r\n'
    out = []
    for t in texts:
        s.sendall(t.encode() + b"\n")
        line = f.readline()
        assert line.endswith(b"\r\n"), line
        out.append(line[:-2])
    s.close()
    return out


def test_envelope_errors_are_qemu_7_2s():
    texts = [t for t, _ in ENVELOPE]
    want = qemu_lines(*texts)
    with Daemon(recorded=1) as d:
        got = qstatsd_lines(d, *texts)
    for t, w, g in zip(texts, want, got):
        # byte for byte: QEMU 7.2 puts "id" first in an error reply and
        # last in a success reply (its QDict order); so does qstatsd
        assert g == w, (t, w, g)


def test_query_status_answers_as_qemu_7_2_does():
    texts = ['{"execute": "query-status", "id": 4}',
             '{"execute": "query-status"}',
             '{"execute": "query-status", "arguments": {"x": 1}}']
    want = qemu_lines(*texts)
    with Daemon(recorded=1) as d:
        assert qstatsd_lines(d, *texts) == want
        assert json.loads(want[1]) == {"return": {"status": "running", "singlestep": False,
                                                  "running": True}}
        # the reply is what the schema that qstatsd publishes promises
        schema = {e["name"]: e for e in d.qmp().ok("query-qmp-schema")}
        ret = schema[schema["query-status"]["ret-type"]]
        assert [m["name"] for m in ret["members"]] == ["running", "singlestep", "status"]
        run_states = next(schema[m["type"]] for m in ret["members"] if m["name"] == "status")
        assert "running" in run_states["values"]


def run_qstatsd(*args):
    """qstatsd with the given options and a QMP and an HMP socket in a
    fresh directory: (exit status, stderr, what it left in the directory)."""
    where = tempfile.mkdtemp(prefix="qstats-start-")
    try:
        p = subprocess.run([QSTATSD, *args, "--qmp", "unix:" + os.path.join(where, "qmp.sock"),
                            "--hmp", "unix:" + os.path.join(where, "hmp.sock")],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stderr, os.listdir(where)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_recorded_conflicts_with_the_built_in_vm_options():
    rec = RECORDED
    for args, other in ((["--recorded", rec, "--vcpus", "2"], "--vcpus"),
                        (["--vcpus", "2", "--recorded", rec], "--vcpus"),
                        (["--recorded", rec, "--no-vm"], "--no-vm"),
                        (["--no-vm", "--recorded", rec], "--no-vm")):
        rc, err, left = run_qstatsd(*args)
        assert rc == 1 and left == [], (args, rc, left)
        assert err == f"qstatsd: --recorded replaces the built-in VM: it cannot be combined " \
                      f"with {other}\n", (args, err)


def truncate_data(path, keep):
    """Cuts a stats file `keep` bytes into its data block."""
    f = recording.StatsFile.load(path)
    os.truncate(path, f.data_offset + keep)
    return f


def zero_name_size(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    header = list(recording.HEADER.unpack_from(data))
    header[1] = 0                       # flags, name_size, ...
    recording.HEADER.pack_into(data, 0, *header)
    with open(path, "wb") as f:
        f.write(data)


def retag_id(path, new_id):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(recording.with_id(data, new_id))


def test_a_bad_recording_stops_the_daemon_naming_the_file_and_the_rule():
    top = tempfile.mkdtemp(prefix="qstats-badrec-")
    try:
        def case(name, nvcpus=3):
            return recording.make(RECORDED, os.path.join(top, name), nvcpus)

        def msg(path, rule):
            return f"qstatsd: --recorded: {path}: {rule}"

        cases = []
        missing = os.path.join(top, "nosuch")
        cases.append((missing, msg(missing, "No such file or directory")))
        d = case("no-vm-bin")
        os.unlink(os.path.join(d, "vm.bin"))
        cases.append((d, msg(d + "/vm.bin", "No such file or directory")))
        d = case("gap")
        os.unlink(os.path.join(d, "vcpu1.bin"))
        cases.append((d, msg(d, "vcpu1.bin is missing (vCPU files are numbered contiguously "
                                "from vcpu0.bin)")))
        d = case("no-vcpus", 1)
        os.unlink(os.path.join(d, "vcpu0.bin"))
        cases.append((d, msg(d, "vcpu0.bin is missing")))
        d = case("a-directory")
        os.unlink(os.path.join(d, "vcpu0.bin"))
        os.mkdir(os.path.join(d, "vcpu0.bin"))
        cases.append((d, msg(d + "/vcpu0.bin", "KVM stats: failed to read stats header: "
                                               "Is a directory")))
        d = case("truncated")
        f = truncate_data(os.path.join(d, "vcpu2.bin"), 100)
        last = max(f.descs, key=lambda x: x.offset + 8 * x.size)
        cases.append((d, msg(d + "/vcpu2.bin", f"KVM stats: descriptor {f.descs.index(last)} "
                                               f"({last.name}): values end at byte "
                                               f"{8 * f.words} of the data block, but only 100 "
                                               f"bytes can be read at offset {f.data_offset}")))
        d = case("bad-header")
        zero_name_size(os.path.join(d, "vm.bin"))
        cases.append((d, msg(d + "/vm.bin", "KVM stats: name size 0 is out of range")))
        d = case("not-kvm")
        retag_id(os.path.join(d, "vcpu1.bin"), "xen/vcpu-1")
        cases.append((d, msg(d + "/vcpu1.bin", 'KVM stats: id "xen/vcpu-1" does not start '
                                               'with "kvm"')))
        for path, want in cases:
            rc, err, left = run_qstatsd("--recorded", path)
            assert rc == 1, (path, rc, err)
            assert err.startswith(want) and err.count("\n") == 1, (want, err)
            assert left == [], (path, left)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_recorded_start_up_reports_the_vm_it_serves():
    with Daemon(recorded=5) as d:
        assert d.qmp().ok("query-name") == {}
        assert f"qstatsd: recorded VM from {d.recording.path}: 5 vCPUs" in d.log()
        assert "kvm provider unavailable" not in d.log()


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
