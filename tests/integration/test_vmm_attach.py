"""Stats of another process's VM through fd passing: examples/vmm-attach (a
real external VMM with its own KVM VM) hands its VM and vCPU stats fds to a
real `qstatsd --no-vm` with getfd + add-stats-fd over the QMP unix socket.
Also hostile fds (pipe, regular file, malformed memfds, no fd at all), a
crafted stats file carrying the u64 extremes, and vCPUs coming and going
while clients query, ending with a leak check of the daemon (LeakSanitizer
in the ASan build, valgrind otherwise)."""
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

from qstest import BUILD, FIXTURES, QMP, QSTATSD, Daemon, need_kvm, run_module, skip

need_kvm()
VMM = os.path.join(BUILD, "examples", "vmm-attach")
if not os.access(VMM, os.X_OK):
    skip(f"{VMM} is not built")
NVCPUS = 4
PATHS = [f"/machine/unattached/device[{i}]" for i in range(NVCPUS)]
U64_MAX = 2**64 - 1


def cmake_cache(key):
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


ASAN = cmake_cache("QS_SANITIZE").upper() in ("ON", "1", "TRUE", "YES")
HAVE_MHD = cmake_cache("MHD_FOUND") == "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vmm:
    """examples/vmm-attach driven over its stdin line protocol."""

    def __init__(self, qmp_path, *args):
        self.proc = subprocess.Popen([VMM, "--qmp", qmp_path, "--vcpus", str(NVCPUS), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        ready = self.read()
        assert ready == {"return": "ready", "vcpus": NVCPUS}, (ready, self.proc.stderr.read())

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("vmm-attach ended: " + self.proc.stderr.read())
        return json.loads(line)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read()

    def quit(self):
        assert self.cmd("quit") == {"return": "bye"}
        assert self.proc.wait(20) == 0, self.proc.stderr.read()


def stats_of(result):
    return {s["name"]: s["value"] for s in result["stats"]}


def kvm_vcpus(q):
    return [r for r in q.ok("query-stats", {"target": "vcpu"}) if r["provider"] == "kvm"]


def qom_devices(q):
    return sorted(e["name"] for e in q.ok("qom-list", {"path": "/machine/unattached"})
                  if e["type"] == "child<kvm-vcpu>")


def daemon_fds(d):
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def stats_file(values, descs=None, id_=b"kvm-test/vcpu-9", name_size=48):
    """A KVM binary-stats file as the kernel lays it out: header, id,
    descriptors, data.  descs: (name, flags, size, offset) tuples."""
    if descs is None:
        descs = [("max_u64", 0x00, 1, 0), ("two_63", 0x01, 1, 8),
                 ("wait_hist", 0x04 | 0x20, len(values) - 2, 16)]   # log2 hist, seconds
    desc_off = 24 + name_size
    data_off = desc_off + len(descs) * (16 + name_size)
    out = struct.pack("=6I", 0, name_size, len(descs), 24, desc_off, data_off)
    out += id_.ljust(name_size, b"\0")
    for name, flags, size, offset in descs:
        exponent = -9 if flags & 0xF0 == 0x20 else 0
        out += struct.pack("=IhHII", flags, exponent, size, offset, 0)
        out += name.encode().ljust(name_size, b"\0")
    return out + struct.pack(f"={len(values)}Q", *values)


def memfd_with(data):
    fd = os.memfd_create("crafted-stats")
    os.write(fd, data)
    return fd


def hand_over(q, fd, name, target="vcpu", path=None):
    """getfd with fd in SCM_RIGHTS, then add-stats-fd; returns that reply."""
    assert q.cmd("getfd", {"fdname": name}, fds=[fd]) == {"return": {}}
    args = {"fdname": name, "provider": "kvm", "target": target}
    if path:
        args["qom-path"] = path
    return q.cmd("add-stats-fd", args)


D = Daemon(no_vm=True)
V = Vmm(D.qmp_path)


def test_handed_over_vm_and_vcpus_show_in_query_stats_info_stats_and_qom():
    q = D.qmp()
    vcpus = kvm_vcpus(q)
    assert [r["qom-path"] for r in vcpus] == PATHS
    vm = q.ok("query-stats", {"target": "vm"})
    assert [r["provider"] for r in vm] == ["kvm"] and "qom-path" not in vm[0]
    assert "mmu_cache_miss" in stats_of(vm[0])
    assert [(s["provider"], s["target"]) for s in q.ok("query-stats-schemas")] == \
        [("kvm", "vm"), ("kvm", "vcpu")]
    assert qom_devices(q) == [f"device[{i}]" for i in range(NVCPUS)]
    out = q.ok("human-monitor-command", {"command-line": "info stats vcpu"})
    assert out.startswith("provider: kvm\r\n") and "halt_exits" in out, out
    assert q.ok("qom-get", {"path": PATHS[2], "property": "stats-id"}).startswith("kvm-")


def test_the_vmms_guest_runs_so_vcpu0_stats_move():
    q = D.qmp()
    first = stats_of(kvm_vcpus(q)[0])
    time.sleep(0.35)
    second = stats_of(kvm_vcpus(q)[0])
    for name in ("halt_exits", "halt_wakeup", "irq_injections", "halt_wait_ns"):
        assert second[name] > first[name], (name, first[name], second[name])


def test_values_equal_the_vmms_own_reading_while_its_vcpus_are_paused():
    q = D.qmp()
    assert V.cmd("pause") == {"return": "paused"}
    try:
        own = V.cmd("dump")
        vm = stats_of(q.ok("query-stats", {"target": "vm"})[0])
        vcpus = [stats_of(r) for r in kvm_vcpus(q)]
        again = V.cmd("dump")
    finally:
        assert V.cmd("resume") == {"return": "running"}
    assert own["ok"] and own == again, "stats moved while paused"
    assert vm == own["vm"]
    assert len(vcpus) == NVCPUS
    for mine, theirs in zip(own["vcpus"], vcpus):
        assert list(mine) == list(theirs)             # same stats, same order
        assert mine == theirs                         # booleans compare as 0/1
    assert vcpus[0]["halt_exits"] > 0


def test_removing_vcpu3_leaves_three_and_it_can_come_back():
    q = D.qmp()
    assert q.cmd("remove-stats-fd", {"target": "vcpu", "qom-path": PATHS[3]}) == {"return": {}}
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS[:3]
    assert qom_devices(q) == ["device[0]", "device[1]", "device[2]"]
    r = q.cmd("qom-get", {"path": PATHS[3], "property": "stats-id"})
    assert r["error"] == {"class": "DeviceNotFound",
                          "desc": f"Device '{PATHS[3]}' not found"}
    again = q.cmd("remove-stats-fd", {"target": "vcpu", "qom-path": PATHS[3]})
    assert again["error"] == {"class": "GenericError", "desc":
                              f"No KVM stats fd registered for vCPU '{PATHS[3]}'"}
    assert V.cmd("add 3") == {"return": {}}
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS


def refused(q, fd, name, fds_before, d=D):
    """add-stats-fd of fd must fail, the daemon must not keep the fd, the
    name must be gone from the session and the daemon must keep answering."""
    r = hand_over(q, fd, name, path="/machine/unattached/device[7]")
    os.close(fd)
    assert r["error"]["class"] == "GenericError", r
    assert daemon_fds(d) == fds_before, "refused fd still open in the daemon"
    gone = q.cmd("closefd", {"fdname": name})
    assert gone["error"]["desc"] == f"File descriptor named '{name}' not found"
    assert [x["qom-path"] for x in kvm_vcpus(q)] == PATHS
    return r["error"]["desc"]


def test_pipe_regular_file_and_malformed_memfds_are_refused_with_clear_errors():
    q = D.qmp()
    before = daemon_fds(D)
    rd, wr = os.pipe()
    os.close(wr)
    assert refused(q, rd, "pipe", before) == \
        "KVM stats: failed to read stats header: Illegal seek"
    path = os.path.join(FIXTURES, "kvm-binary-stats-decoded.json")
    desc = refused(q, os.open(path, os.O_RDONLY), "file", before)
    assert desc.startswith("KVM stats: name size ") and "out of range" in desc, desc
    good = stats_file([1, 2, 3, 4])
    desc = refused(q, memfd_with(good[:20]), "short", before)
    assert desc == "KVM stats: failed to read stats header: expected 24 actual 20", desc
    desc = refused(q, memfd_with(stats_file([1, 2, 3, 4], id_=b"xen-1")), "badid", before)
    assert desc == 'KVM stats: id "xen-1" does not start with "kvm"', desc
    past_end = [("a", 0, 1, 0), ("b", 0, 1, 4096)]
    desc = refused(q, memfd_with(stats_file([1, 2], past_end)), "pastend", before)
    assert "descriptor 1 (b): values end at byte 4104" in desc, desc
    dup = [("a", 0, 1, 0), ("a", 0, 1, 8)]
    desc = refused(q, memfd_with(stats_file([1, 2], dup)), "dup", before)
    assert "duplicate name" in desc, desc


def test_vcpu_paths_in_use_or_not_canonical_are_refused():
    """A handed-over vCPU gets a path of its own: not a registered vCPU,
    not a container, not below an object, nothing QOM could not address."""
    q = D.qmp()
    before = daemon_fds(D)
    cases = {
        PATHS[1]: f"A vCPU is already registered at '{PATHS[1]}'",
        "/machine": "QOM path '/machine' is already in use (type 'container')",
        "/machine/unattached":
            "QOM path '/machine/unattached' is already in use (type 'container')",
        PATHS[0] + "/x": f"QOM path '{PATHS[0]}/x' is below '{PATHS[0]}', "
                         "which is not a container (type 'kvm-vcpu')",
        "/": "Parameter 'qom-path' expects an absolute QOM path",
        "machine/x": "Parameter 'qom-path' expects an absolute QOM path",
        "/machine//x": "Parameter 'qom-path' expects an absolute QOM path",
        "/machine/x/": "Parameter 'qom-path' expects an absolute QOM path",
    }
    for path, desc in cases.items():
        fd = memfd_with(stats_file([1, 2, 3, 4]))
        r = hand_over(q, fd, "p", path=path)
        os.close(fd)
        assert r == {"error": {"class": "GenericError", "desc": desc}}, (path, r)
    assert daemon_fds(D) == before
    assert qom_devices(q) == [f"device[{i}]" for i in range(NVCPUS)]
    assert q.ok("qom-get", {"path": PATHS[0], "property": "stats-id"}).startswith("kvm-")


def test_getfd_without_an_fd_is_refused_and_the_daemon_keeps_answering():
    q = D.qmp()
    r = q.cmd("getfd", {"fdname": "nothing"})
    assert r["error"] == {"class": "GenericError",
                          "desc": "No file descriptor supplied via SCM_RIGHTS"}
    r = q.cmd("add-stats-fd", {"fdname": "nothing", "provider": "kvm", "target": "vcpu",
                               "qom-path": "/machine/unattached/device[7]"})
    assert r["error"]["desc"] == "File descriptor named 'nothing' not found"
    assert len(kvm_vcpus(q)) == NVCPUS


def test_crafted_stats_file_with_u64_extremes_is_answered_exactly():
    """A valid stats file whose values are 2^64-1 and 2^63, as the only VM
    and vCPU of a fresh daemon (so that its schema is the one HMP uses)."""
    values = [U64_MAX, 2**63, U64_MAX, 2**63, 0, 1]
    expect = {"max_u64": U64_MAX, "two_63": 2**63, "wait_hist": [U64_MAX, 2**63, 0, 1]}
    path = "/machine/unattached/device[9]"
    with Daemon(no_vm=True) as d:
        q = d.qmp()
        for target in ("vcpu", "vm"):
            fd = memfd_with(stats_file(values))
            r = hand_over(q, fd, "extremes", target, path if target == "vcpu" else None)
            os.close(fd)
            assert r == {"return": {}}, r
            q.send_raw(json.dumps({"execute": "query-stats", "arguments": {"target": target}}))
            raw = q.recv_line().decode()
            assert "18446744073709551615" in raw and "9223372036854775808" in raw, raw
            (res,) = json.loads(raw)["return"]
            assert stats_of(res) == expect
            hmp = {"command-line": f"info stats {target}"}
            if target == "vcpu":
                hmp["cpu-index"] = 9
            out = q.ok("human-monitor-command", hmp)
            assert "max_u64 (cumulative): 18446744073709551615\r\n" in out, out
            assert "two_63 (instant): 9223372036854775808\r\n" in out, out
        assert q.cmd("remove-stats-fd", {"target": "vcpu", "qom-path": path}) == {"return": {}}
        assert q.cmd("remove-stats-fd", {"target": "vm"}) == {"return": {}}
        assert q.ok("query-stats", {"target": "vcpu"}) == []
        assert q.ok("query-stats", {"target": "vm"}) == []


def test_handed_over_vcpus_show_in_metrics():
    if not HAVE_MHD:
        skip("built without libmicrohttpd: no metrics endpoint")
    port = free_port()
    with Daemon("--metrics", f"127.0.0.1:{port}", no_vm=True) as d:
        vmm = Vmm(d.qmp_path)
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) \
                .read().decode()
        finally:
            vmm.quit()
    found = set(re.findall(r'^qstats_kvm_vcpu_halt_exits_total\{[^}]*vcpu="(\d+)"', body, re.M))
    assert found == {str(i) for i in range(NVCPUS)}, body[:2000]
    assert re.search(r"^qstats_kvm_vm_mmu_cache_miss_total\{", body, re.M), body[:2000]


def churn(qmp_path, vmm, rounds):
    """vCPU 3 removed and added `rounds` times while 4 clients query."""
    stop = threading.Event()
    problems = []
    seen = {3: 0, 4: 0}

    def client():
        q = QMP(qmp_path)
        while not stop.is_set():
            paths = [r["qom-path"] for r in kvm_vcpus(q)]
            if paths not in (PATHS, PATHS[:3]):
                problems.append(paths)
            seen[len(paths)] = seen.get(len(paths), 0) + 1
            for cmd, args in (("query-stats-schemas", None),
                              ("qom-list", {"path": "/machine/unattached"}),
                              ("human-monitor-command", {"command-line": "info stats vcpu"}),
                              ("query-stats", {"target": "vcpu", "vcpus": [PATHS[3]]})):
                r = q.cmd(cmd, args)
                if "return" not in r:
                    problems.append((cmd, r))
        q.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(rounds):
            assert vmm.cmd("remove 3") == {"return": {}}
            time.sleep(0.002)             # let the clients see both states
            assert vmm.cmd("add 3") == {"return": {}}
            time.sleep(0.002)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not problems, problems[:5]
    # The clients really overlapped the churn: they saw both states.
    assert seen[3] > 0 and seen[4] > 0, seen
    return seen


def test_vcpus_added_and_removed_while_four_clients_query():
    churn(D.qmp_path, V, 50)
    assert [r["qom-path"] for r in kvm_vcpus(D.qmp())] == PATHS


def test_no_leak_after_churn_and_refused_fds():
    """The same churn against a daemon whose exit is leak-checked: this
    build's LeakSanitizer when it is the ASan build, valgrind otherwise."""
    tmp = tempfile.mkdtemp(prefix="qstats-leak-")
    sock = os.path.join(tmp, "qmp.sock")
    cmd = [QSTATSD, "--no-vm", "--qmp", "unix:" + sock]
    if not ASAN:
        if not os.access("/usr/bin/valgrind", os.X_OK):
            skip("neither an ASan build nor valgrind")
        cmd = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
               "--error-exitcode=99", *cmd]
    errpath = os.path.join(tmp, "stderr")
    with open(errpath, "w") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 60
        while not os.path.exists(sock):
            assert proc.poll() is None and time.time() < deadline, open(errpath).read()
            time.sleep(0.05)
        vmm = Vmm(sock)
        churn(sock, vmm, 20 if not ASAN else 50)
        q = QMP(sock)
        rd, wr = os.pipe()
        for bad in (memfd_with(b"not a stats file"), rd, memfd_with(b"x")):
            hand_over(q, bad, "bad", path="/machine/unattached/device[8]")
            os.close(bad)
        os.close(wr)
        kept = memfd_with(b"x")                   # left in the session for teardown
        assert q.cmd("getfd", {"fdname": "kept"}, fds=[kept]) == {"return": {}}
        os.close(kept)
        vmm.quit()
    finally:
        proc.terminate()
        rc = proc.wait(60)
    log = open(errpath).read()
    assert rc == 0, f"qstatsd exited {rc}:\n{log}"
    for bad in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
        assert bad not in log, log
    if not ASAN:   # valgrind did check the whole run
        assert "ERROR SUMMARY: 0 errors" in log, log


if __name__ == "__main__":
    try:
        run_module(globals())
    finally:
        V.quit()
        D.stop()
