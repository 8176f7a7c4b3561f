"""Stats of another process's VM through fd passing, the path a foreign VMM
takes: its stats fds (KVM_GET_STATS_FD in a real VMM) go to a real
`qstatsd --no-vm` with getfd (the fd in the SCM_RIGHTS data of the same
message) + add-stats-fd over the QMP unix socket.

Without KVM the foreign VMM is this test: memfds holding the recorded VM's
files (tests/fixtures/recorded-linux-6.18, made 4-vCPU by
scripts/recording.py), handed over, then rewritten in place between queries
as a running guest's would be; every value qstatsd reports is compared with
the memfd's own contents, u64 extremes included.  Also vCPUs coming and
going while clients query, remove-stats-fd, hostile fds (pipe, write-only
fd, malformed memfds: refused naming the broken rule, and not kept), a
regular file holding a recording (accepted, as `--recorded` accepts it),
`info stats` and /metrics on handed-over fds, and a leak check of the
daemon (LeakSanitizer in the ASan build, valgrind otherwise).

Where /dev/kvm works, examples/vmm-attach (a real external VMM with its own
KVM VM) does the same hand-over, and what qstatsd reports is compared with
the VMM's own reading of its fds."""
import atexit
import json
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from qstest import ASAN, BUILD, Daemon, QMP, QSTATSD, RECORDED, build_option, \
    free_port, memfd_with, need_kvm, recording, run_module, skip

VMM = os.path.join(BUILD, "examples", "vmm-attach")
NVCPUS = 4
U64_MAX = 2**64 - 1


def vcpu_path(i):
    return f"/machine/unattached/device[{i}]"


PATHS = [vcpu_path(i) for i in range(NVCPUS)]


HAVE_MHD = build_option("MHD_FOUND") == "1"


def contents(fd):
    """The stats file an fd holds right now, read back through the fd."""
    return recording.StatsFile(os.pread(fd, os.fstat(fd).st_size, 0))


def recorded_files(nvcpus):
    """{"vm": bytes, 0: bytes, ...}: an nvcpus recording made from the fixture."""
    tmp = tempfile.mkdtemp(prefix="qstats-vmm-")
    try:
        rec = recording.Recording(recording.make(RECORDED, tmp, nvcpus))
        out = {}
        for which in ["vm", *range(nvcpus)]:
            with open(rec.file(which), "rb") as f:
                out[which] = f.read()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def hand_over(q, fd, name, target="vcpu", path=None):
    """getfd + add-stats-fd (kvm) on q; returns add-stats-fd's reply."""
    return q.hand_over(fd, name, target, path)


class MemfdVmm:
    """The foreign VMM played by the test: one memfd per stats file of a
    recorded VM, handed over as a VMM hands over its KVM stats fds and
    rewritten in place (one pwrite of the data block) as the kernel updates
    a running guest's.  The test keeps its own copy of each fd, so what it
    writes is what the daemon's pread sees."""

    def __init__(self, qmp_path, nvcpus=NVCPUS):
        self.fds = {w: memfd_with(data) for w, data in recorded_files(nvcpus).items()}
        self.nvcpus = nvcpus
        self.q = QMP(qmp_path)
        for which in self.fds:
            self.add(which)

    def add(self, which):
        if which == "vm":
            r = hand_over(self.q, self.fds["vm"], "stats-vm", "vm")
        else:
            r = hand_over(self.q, self.fds[which], f"stats-{which}", "vcpu", vcpu_path(which))
        assert r == {"return": {}}, (which, r)

    def remove(self, which):
        args = {"target": "vm"} if which == "vm" else \
            {"target": "vcpu", "qom-path": vcpu_path(which)}
        return self.q.cmd("remove-stats-fd", args)

    def read(self, which):
        return contents(self.fds[which])

    def write(self, which, f):
        f.write_data(self.fds[which])

    def update(self, which, **values):
        f = self.read(which)
        for name, v in values.items():
            f.set(name, v)
        self.write(which, f)

    def advance(self, seconds, vcpus=None):
        """As recording.Recording.advance, on the memfds."""
        for i in range(self.nvcpus) if vcpus is None else vcpus:
            f = self.read(i)
            recording.idle_guest(f, seconds)
            self.write(i, f)

    def close(self):
        self.q.close()
        for fd in self.fds.values():
            os.close(fd)


def stats_of(result):
    return {s["name"]: s["value"] for s in result["stats"]}


def reported(f):
    """What query-stats must answer for stats file f, in descriptor order:
    its values, a boolean-unit stat as QEMU gives it (true when its first
    word is not zero)."""
    out = {}
    for d in f.descs:
        v = f.get(d.name)
        if d.unit == "boolean":
            v = (v[0] if isinstance(v, list) else v) != 0
        out[d.name] = v
    return out


def typed(stats):
    """Order, names, JSON types and values: True == 1 must not pass."""
    return [(k, type(v).__name__, v) for k, v in stats.items()]


def kvm_vcpus(q, **args):
    return [r for r in q.ok("query-stats", {"target": "vcpu", **args}) if r["provider"] == "kvm"]


def kvm_vm(q):
    (vm,) = q.ok("query-stats", {"target": "vm"})
    assert vm["provider"] == "kvm" and "qom-path" not in vm, vm
    return vm


def qom_devices(q):
    return sorted(e["name"] for e in q.ok("qom-list", {"path": "/machine/unattached"})
                  if e["type"] == "child<kvm-vcpu>")


def daemon_fds(d):
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def hmc(q, line, cpu=None):
    args = {"command-line": line}
    if cpu is not None:
        args["cpu-index"] = cpu
    return q.ok("human-monitor-command", args)


def assert_matches_memfds(q, vmm, vcpus=None):
    """query-stats for the VM and every vCPU equals the memfds, stat by stat."""
    vcpus = list(range(vmm.nvcpus)) if vcpus is None else vcpus
    assert typed(stats_of(kvm_vm(q))) == typed(reported(vmm.read("vm")))
    got = kvm_vcpus(q)
    assert [r["qom-path"] for r in got] == [vcpu_path(i) for i in vcpus]
    for i, r in zip(vcpus, got):
        assert typed(stats_of(r)) == typed(reported(vmm.read(i))), f"vCPU {i}"


D = Daemon(no_vm=True)
M = MemfdVmm(D.qmp_path)


@atexit.register
def _stop_when_imported():
    """Other tests import this module's helpers: its daemon must not outlive
    them (as __main__, the end of the file stops it, checking its log)."""
    if not D.stderr.closed:
        M.close()
        D.stop()


def test_handed_over_memfds_show_in_query_stats_schemas_qom_and_info_stats():
    q = D.qmp()
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS
    assert list(stats_of(kvm_vm(q))) == [d.name for d in M.read("vm").descs]
    assert [(s["provider"], s["target"]) for s in q.ok("query-stats-schemas")] == \
        [("kvm", "vm"), ("kvm", "vcpu")]
    schema = {s["target"]: [x["name"] for x in s["stats"]] for s in q.ok("query-stats-schemas")}
    assert schema["vcpu"] == [d.name for d in M.read(0).descs]
    assert qom_devices(q) == [f"device[{i}]" for i in range(NVCPUS)]
    for i in range(NVCPUS):
        assert q.ok("qom-get", {"path": PATHS[i], "property": "stats-id"}) == M.read(i).id
    out = hmc(q, "info stats vcpu")
    assert out.startswith("provider: kvm\r\n") and "halt_exits (cumulative): " in out, out


def test_every_value_equals_the_memfds_contents_while_the_vmm_rewrites_them():
    """Rounds of an idle guest's counters moving, then rounds where every
    word of every file is rewritten (u64 extremes among them): after each,
    every stat of the VM and of every vCPU equals the memfd's contents."""
    q = D.qmp()
    rng = random.Random(20261129)
    assert_matches_memfds(q, M)
    exits = [M.read(i).get("exits") for i in range(NVCPUS)]
    for _ in range(5):
        M.advance(rng.choice([0.01, 0.3, 2.5]))
        assert_matches_memfds(q, M)
    assert all(M.read(i).get("exits") > exits[i] for i in range(NVCPUS))
    extremes = [U64_MAX, 2**63, 2**63 - 1, 2**32, 1, 0]
    for _ in range(4):
        for which in ["vm", *range(NVCPUS)]:
            f = M.read(which)
            f.data = [rng.choice(extremes) if rng.random() < 0.5 else rng.getrandbits(64)
                      for _ in f.data]
            M.write(which, f)
        assert_matches_memfds(q, M)
    # A names filter reads the same words.
    M.update(2, exits=U64_MAX, blocking=1)
    filtered = kvm_vcpus(q, providers=[{"provider": "kvm", "names": ["exits", "blocking"]}])
    assert len(filtered) == NVCPUS
    for i, r in enumerate(filtered):
        f = M.read(i)
        assert stats_of(r) == {"exits": f.get("exits"), "blocking": f.get("blocking") != 0}
    assert stats_of(kvm_vcpus(q)[2])["exits"] == U64_MAX
    assert stats_of(kvm_vcpus(q)[2])["blocking"] is True


def test_info_stats_reads_the_handed_over_memfds():
    q = D.qmp()
    values = [0, 12345, 2**63, U64_MAX]
    for i in range(NVCPUS):
        M.update(i, exits=values[i], blocking=i % 2)
    for i in range(NVCPUS):
        out = hmc(q, "info stats vcpu exits,blocking", i)
        assert out == ("provider: kvm\r\n"
                       f"    blocking (instant, boolean): {'yes' if i % 2 else 'no'}\r\n"
                       f"    exits (cumulative): {values[i]}\r\n"), (i, out)
    M.update("vm", mmu_cache_miss=987654321)
    out = hmc(q, "info stats vm mmu_cache_miss")
    assert out == "provider: kvm\r\n    mmu_cache_miss (cumulative): 987654321\r\n", out


def test_remove_stats_fd_takes_vcpu3_and_the_vm_away_and_they_can_come_back():
    q = D.qmp()
    before = daemon_fds(D)
    assert M.remove(3) == {"return": {}}
    assert daemon_fds(D) == before - 1, "the daemon kept the removed vCPU's fd"
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS[:3]
    assert qom_devices(q) == ["device[0]", "device[1]", "device[2]"]
    r = q.cmd("qom-get", {"path": PATHS[3], "property": "stats-id"})
    assert r["error"] == {"class": "DeviceNotFound",
                          "desc": f"Device '{PATHS[3]}' not found"}
    assert M.remove(3)["error"] == {"class": "GenericError", "desc":
                                    f"No KVM stats fd registered for vCPU '{PATHS[3]}'"}
    assert M.remove("vm") == {"return": {}}
    assert q.ok("query-stats", {"target": "vm"}) == []
    assert M.remove("vm")["error"] == {"class": "GenericError",
                                       "desc": "No KVM stats fd registered for target 'vm'"}
    # Rewritten while nobody reads them, then handed over again: read afresh.
    M.advance(1.0, vcpus=[3])
    M.update("vm", mmu_cache_miss=42)
    M.add(3)
    M.add("vm")
    assert daemon_fds(D) == before
    assert_matches_memfds(q, M)


def refused(q, fd, name, fds_before, d=D):
    """add-stats-fd of fd must fail, the daemon must not keep the fd, the
    name must be gone from the session and the daemon must keep answering."""
    r = hand_over(q, fd, name, path=vcpu_path(7))
    os.close(fd)
    assert r["error"]["class"] == "GenericError", r
    assert daemon_fds(d) == fds_before, "refused fd still open in the daemon"
    gone = q.cmd("closefd", {"fdname": name})
    assert gone["error"]["desc"] == f"File descriptor named '{name}' not found"
    assert [x["qom-path"] for x in kvm_vcpus(q)] == PATHS
    return r["error"]["desc"]


def test_pipe_write_only_fd_and_malformed_memfds_are_refused_naming_the_rule():
    q = D.qmp()
    before = daemon_fds(D)
    real = recorded_files(1)[0]
    head = recording.StatsFile(real)
    tmp = tempfile.mkdtemp(prefix="qstats-refused-")
    try:
        rd, wr = os.pipe()
        os.close(wr)
        assert refused(q, rd, "pipe", before) == \
            "KVM stats: failed to read stats header: Illegal seek"
        path = os.path.join(tmp, "vcpu0.bin")
        with open(path, "wb") as f:
            f.write(real)
        assert refused(q, os.open(path, os.O_WRONLY), "wronly", before) == \
            "KVM stats: failed to read stats header: Bad file descriptor"
        with open(os.path.join(tmp, "json"), "w") as f:      # the same file, decoded
            json.dump(head.decoded(), f)
        desc = refused(q, os.open(os.path.join(tmp, "json"), os.O_RDONLY), "json", before)
        assert re.fullmatch(r"KVM stats: name size \d+ is out of range \(1\.\.\d+\)", desc), desc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    assert refused(q, memfd_with(real[:20]), "short", before) == \
        "KVM stats: failed to read stats header: expected 24 actual 20"
    no_names = real[:4] + (0).to_bytes(4, "little") + real[8:]
    desc = refused(q, memfd_with(no_names), "noname", before)
    assert desc.startswith("KVM stats: name size 0 is out of range (1.."), desc
    desc = refused(q, memfd_with(recording.with_id(real, "xen-1/vcpu-0")), "badid", before)
    assert desc == 'KVM stats: id "xen-1/vcpu-0" does not start with "kvm"', desc
    # Cut inside the data block: the descriptor whose values end it is named.
    cut = head.data_offset + 8 * head.words - 12
    last = max(head.descs, key=lambda d: d.offset + 8 * d.size)
    desc = refused(q, memfd_with(real[:cut]), "cut", before)
    assert desc == (f"KVM stats: descriptor {head.descs.index(last)} ({last.name}): values "
                    f"end at byte {8 * head.words} of the data block, but only "
                    f"{8 * head.words - 12} bytes can be read at offset {head.data_offset}"), desc
    dup = recording.build([("a", 0, 0, 1, 0, 0), ("a", 0, 0, 1, 8, 0)], [1, 2])
    desc = refused(q, memfd_with(dup), "dup", before)
    assert desc == "KVM stats: descriptor 1 (a): duplicate name (also descriptor 0)", desc
    assert_matches_memfds(q, M)


def test_a_regular_file_holding_a_recorded_vcpu_is_served_live_as_with_recorded():
    """add-stats-fd checks the contents, not the kind of file: a recording
    on disk is as good a source as a memfd, as `qstatsd --recorded` has it."""
    q = D.qmp()
    tmp = tempfile.mkdtemp(prefix="qstats-file-")
    try:
        rec = recording.Recording(recording.make(RECORDED, tmp, 1))
        fd = os.open(rec.file(0), os.O_RDONLY)
        try:
            assert hand_over(q, fd, "file", path=vcpu_path(5)) == {"return": {}}
        finally:
            os.close(fd)
        for step in range(2):
            (r,) = kvm_vcpus(q, vcpus=[vcpu_path(5)])
            assert typed(stats_of(r)) == typed(reported(rec.load(0))), step
            rec.advance(1.0)
        assert q.cmd("remove-stats-fd", {"target": "vcpu", "qom-path": vcpu_path(5)}) == \
            {"return": {}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS


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
    data = recorded_files(1)[0]
    for path, desc in cases.items():
        fd = memfd_with(data)
        r = hand_over(q, fd, "p", path=path)
        os.close(fd)
        assert r == {"error": {"class": "GenericError", "desc": desc}}, (path, r)
    assert daemon_fds(D) == before
    assert qom_devices(q) == [f"device[{i}]" for i in range(NVCPUS)]
    assert q.ok("qom-get", {"path": PATHS[0], "property": "stats-id"}) == M.read(0).id


def test_getfd_without_an_fd_is_refused_and_the_daemon_keeps_answering():
    q = D.qmp()
    r = q.cmd("getfd", {"fdname": "nothing"})
    assert r["error"] == {"class": "GenericError",
                          "desc": "No file descriptor supplied via SCM_RIGHTS"}
    r = q.cmd("add-stats-fd", {"fdname": "nothing", "provider": "kvm", "target": "vcpu",
                               "qom-path": vcpu_path(7)})
    assert r["error"]["desc"] == "File descriptor named 'nothing' not found"
    assert len(kvm_vcpus(q)) == NVCPUS


def test_built_file_with_u64_extremes_is_answered_exactly_in_qmp_and_hmp():
    """A valid stats file whose values are 2^64-1 and 2^63, as the only VM
    and vCPU of a fresh daemon (so that its schema is the one HMP uses)."""
    descs = [("max_u64", 0x00, 0, 1, 0, 0), ("two_63", 0x01, 0, 1, 8, 0),
             ("wait_hist", 0x04 | 0x20, -9, 4, 16, 0)]           # log2 hist, seconds
    values = [U64_MAX, 2**63, U64_MAX, 2**63, 0, 1]
    expect = {"max_u64": U64_MAX, "two_63": 2**63, "wait_hist": [U64_MAX, 2**63, 0, 1]}
    path = vcpu_path(9)
    with Daemon(no_vm=True) as d:
        q = d.qmp()
        for target in ("vcpu", "vm"):
            fd = memfd_with(recording.build(descs, values, b"kvm-test/vcpu-9"))
            r = hand_over(q, fd, "extremes", target, path if target == "vcpu" else None)
            os.close(fd)
            assert r == {"return": {}}, r
            q.send_raw(json.dumps({"execute": "query-stats", "arguments": {"target": target}}))
            raw = q.recv_reply_line().decode()
            assert "18446744073709551615" in raw and "9223372036854775808" in raw, raw
            (res,) = json.loads(raw)["return"]
            assert stats_of(res) == expect
            out = hmc(q, f"info stats {target}", 9 if target == "vcpu" else None)
            assert "max_u64 (cumulative): 18446744073709551615\r\n" in out, out
            assert "two_63 (instant): 9223372036854775808\r\n" in out, out
        assert q.cmd("remove-stats-fd", {"target": "vcpu", "qom-path": path}) == {"return": {}}
        assert q.cmd("remove-stats-fd", {"target": "vm"}) == {"return": {}}
        assert q.ok("query-stats", {"target": "vcpu"}) == []
        assert q.ok("query-stats", {"target": "vm"}) == []


def scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()


def metric(body, target, name):
    """{vcpu label: value} of one kvm series (the VM's under key None)."""
    pat = rf'^qstats_kvm_{target}_{name}\{{([^}}]*)\}} (\S+)$'
    out = {}
    for labels, value in re.findall(pat, body, re.M):
        m = re.search(r'vcpu="(\d+)"', labels)
        out[int(m.group(1)) if m else None] = int(value)
    return out


def test_metrics_see_handed_over_memfds_and_follow_their_rewrites():
    if not HAVE_MHD:
        skip("built without libmicrohttpd: no metrics endpoint")
    port = free_port()
    with Daemon("--metrics", f"127.0.0.1:{port}", no_vm=True) as d:
        vmm = MemfdVmm(d.qmp_path)
        try:
            for step in range(2):
                body = scrape(port)
                assert metric(body, "vcpu", "halt_exits_total") == \
                    {i: vmm.read(i).get("halt_exits") for i in range(NVCPUS)}, (step, body[:2000])
                assert metric(body, "vm", "mmu_cache_miss_total") == \
                    {None: vmm.read("vm").get("mmu_cache_miss")}, (step, body[:2000])
                vmm.advance(2.0)
                vmm.update("vm", mmu_cache_miss=vmm.read("vm").get("mmu_cache_miss") + 7)
            assert vmm.remove(3) == {"return": {}}
            assert sorted(metric(scrape(port), "vcpu", "halt_exits_total")) == [0, 1, 2]
        finally:
            vmm.close()


def churn(qmp_path, vmm, rounds):
    """vCPU 3 removed and added `rounds` times while vCPU 0 runs on and 4
    clients query: each sees 3 or 4 vCPUs, never an error, and vCPU 0's
    exits never going back."""
    stop = threading.Event()
    problems = []
    seen = {3: 0, 4: 0}

    def client():
        q = QMP(qmp_path)
        last = 0
        while not stop.is_set():
            got = kvm_vcpus(q)
            paths = [r["qom-path"] for r in got]
            if paths not in (PATHS, PATHS[:3]):
                problems.append(paths)
            seen[len(paths)] = seen.get(len(paths), 0) + 1
            exits = stats_of(got[0])["exits"]
            if exits < last:
                problems.append(("exits went back", last, exits))
            last = exits
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
            assert vmm.remove(3) == {"return": {}}
            vmm.advance(0.01, vcpus=[0])
            time.sleep(0.002)             # let the clients see both states
            vmm.add(3)
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
    churn(D.qmp_path, M, 50)
    assert_matches_memfds(D.qmp(), M)


def test_no_leak_after_churn_and_refused_fds():
    """The same churn against a daemon whose exit is leak-checked: this
    build's LeakSanitizer when it is the ASan build, valgrind otherwise."""
    tmp = tempfile.mkdtemp(prefix="qstats-leak-")
    sock = os.path.join(tmp, "qmp.sock")
    cmd = [QSTATSD, "--no-vm", "--qmp", "unix:" + sock]
    if not ASAN:
        assert os.access("/usr/bin/valgrind", os.X_OK), \
            "the leak check needs valgrind outside the ASan build (scripts/deps.sh)"
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
        vmm = MemfdVmm(sock)
        churn(sock, vmm, 20 if not ASAN else 50)
        rd, wr = os.pipe()
        for bad in (memfd_with(b"not a stats file"), rd, memfd_with(vmm.read(0).data_block())):
            assert "error" in hand_over(vmm.q, bad, "bad", path=vcpu_path(8))
            os.close(bad)
        os.close(wr)
        kept = memfd_with(b"x")                   # left in the session for teardown
        assert vmm.q.cmd("getfd", {"fdname": "kept"}, fds=[kept]) == {"return": {}}
        os.close(kept)
        vmm.close()
    finally:
        proc.terminate()
        rc = proc.wait(120)
    log = open(errpath).read()
    shutil.rmtree(tmp, ignore_errors=True)
    assert rc == 0, f"qstatsd exited {rc}:\n{log}"
    for bad in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
        assert bad not in log, log
    if not ASAN:   # valgrind did check the whole run
        assert "ERROR SUMMARY: 0 errors" in log, log


# ---- examples/vmm-attach: a real external VMM with its own KVM VM ----------

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


REAL = {}


def real_vmm():
    """A --no-vm daemon with examples/vmm-attach attached, shared by the
    tests below; only where KVM works, since the example creates a VM."""
    need_kvm("examples/vmm-attach (it creates a KVM VM)")
    if not REAL:
        assert os.access(VMM, os.X_OK), f"{VMM} is not built"
        REAL["d"] = Daemon(no_vm=True)
        REAL["v"] = Vmm(REAL["d"].qmp_path)
    return REAL["d"], REAL["v"]


def test_vmm_attach_example_hands_over_its_kvm_vm_and_its_guest_moves_the_stats():
    d, _ = real_vmm()
    q = d.qmp()
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS
    assert "mmu_cache_miss" in stats_of(kvm_vm(q))
    assert qom_devices(q) == [f"device[{i}]" for i in range(NVCPUS)]
    assert q.ok("qom-get", {"path": PATHS[2], "property": "stats-id"}).startswith("kvm-")
    first = stats_of(kvm_vcpus(q)[0])
    time.sleep(0.35)
    second = stats_of(kvm_vcpus(q)[0])
    for name in ("halt_exits", "halt_wakeup", "irq_injections", "halt_wait_ns"):
        assert second[name] > first[name], (name, first[name], second[name])


def test_vmm_attach_values_equal_its_own_reading_while_paused_and_vcpu3_comes_back():
    d, v = real_vmm()
    q = d.qmp()
    assert v.cmd("pause") == {"return": "paused"}
    try:
        own = v.cmd("dump")
        vm = stats_of(kvm_vm(q))
        vcpus = [stats_of(r) for r in kvm_vcpus(q)]
        again = v.cmd("dump")
    finally:
        assert v.cmd("resume") == {"return": "running"}
    assert own["ok"] and own == again, "stats moved while paused"
    assert vm == own["vm"]
    assert len(vcpus) == NVCPUS
    for mine, theirs in zip(own["vcpus"], vcpus):
        assert list(mine) == list(theirs)             # same stats, same order
        assert mine == theirs                         # booleans compare as 0/1
    assert vcpus[0]["halt_exits"] > 0
    assert v.cmd("remove 3") == {"return": {}}
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS[:3]
    assert v.cmd("add 3") == {"return": {}}
    assert [r["qom-path"] for r in kvm_vcpus(q)] == PATHS


if __name__ == "__main__":
    try:
        run_module(globals())
    finally:
        M.close()
        D.stop()
        if REAL:
            REAL["v"].quit()
            REAL["d"].stop()
