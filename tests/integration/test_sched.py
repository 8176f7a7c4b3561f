"""The sched provider on real threads, without KVM: a small C program
(sched_threads.c, built here with cc) runs busy, sleeping and exiting
threads, the test hands their thread pidfds to the real qstatsd
(getfd + add-stats-fd {provider: "sched"}) and checks what the provider
reads against the kernel's own /proc reading taken just before and just
after each query: run_ns grows for a busy thread and not for a sleeping
one, wait_ns grows by at least the peer's run time for two busy threads
pinned to one CPU and by no more than other work's time for one alone
(measured on that CPU from /proc/stat, so a loaded machine does not fool
it), an exited thread drops out with its fds closed, every refusal
(not a pidfd, a process pidfd, an exited thread, a thread outside the
daemon's PID namespace or hidden from it by hidepid, a path already
bound), query-cpus-fast in the shape of a live QEMU 7.2's reply, HMP,
metrics (promtool) and `qstats top --once`.  The micro-VM's own threads
are covered by test_qmp_stats.test_vcpu_values_move_on_the_live_micro_vm."""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

from qstest import BUILD, Daemon, QMP, QSTATSD, free_port, run_module
from qemu_oracle import LiveQemu
from test_top import parse_top, row

HERE = os.path.dirname(os.path.abspath(__file__))
QSTATS = os.path.join(BUILD, "qstats")
PIDFD_THREAD = os.O_EXCL              # linux/pidfd.h
VCPU = "/machine/unattached/device[%d]"
SCHED = {"providers": [{"provider": "sched"}]}
CUMULATIVE = ("run_ns", "wait_ns", "timeslices", "voluntary_switches", "involuntary_switches")
ALL_STATS = CUMULATIVE + ("last_cpu",)
USER_HZ = os.sysconf("SC_CLK_TCK")

# Where the provider reads the switch counts (qs_sched_provider_source):
# taskstats where the kernel answers the daemon (CAP_NET_ADMIN, which these
# tests have as root), /proc/TID/status where it does not (the capability
# dropped from the bounding set: setpriv execs qstatsd without it).
SOURCES = {"taskstats": (), "proc": ("setpriv", "--bounding-set", "-net_admin")}
SOURCE_LOG = {"taskstats": "switch counts from taskstats\n",
              "proc": "switch counts from /proc/TID/status ("}


def kernel_answers_taskstats():
    """Whether the kernel answers this (root) process's taskstats request
    for its own PID: asked here independently of the daemon, which must
    then use taskstats exactly when this says yes (a network namespace of
    its own, for one, has no taskstats: the daemon reads /proc there)."""
    def request(sock, family, cmd, attr, payload):
        a = struct.pack("HH", 4 + len(payload), attr) + payload
        a += b"\0" * (-len(a) % 4)
        sock.send(struct.pack("IHHII", 20 + len(a), family, 1, 0, 0) +
                  struct.pack("BBH", cmd, 1, 0) + a)
        return sock.recv(65536)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16) as sock:   # GENERIC
            reply = request(sock, 0x10, 3, 2, b"TASKSTATS\0")   # ctrl GETFAMILY, NAME
            pos = 20
            while pos + 4 <= len(reply):
                length, kind = struct.unpack_from("HH", reply, pos)
                if kind == 1:                                     # FAMILY_ID
                    family = struct.unpack_from("H", reply, pos + 4)[0]
                    break
                pos += max(4, (length + 3) & ~3)
            else:
                return False
            reply = request(sock, family, 1, 1, struct.pack("I", os.getpid()))  # GET, PID
            return struct.unpack_from("H", reply, 4)[0] == family
    except OSError:
        return False


def expected_source(wanted):
    """The source a daemon started for `wanted` must report here."""
    return wanted if kernel_answers_taskstats() else "proc"

_helper = []


def helper():
    """sched_threads, compiled once per run into a temp dir."""
    if not _helper:
        out = os.path.join(tempfile.mkdtemp(prefix="qstats-sched-"), "sched_threads")
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-Wall", "-Werror", "-pthread", "-o", out,
                        os.path.join(HERE, "sched_threads.c")], check=True)
        _helper.append(out)
    return _helper[0]


class Threads:
    """A process running the threads SPEC... describes (see sched_threads.c)."""

    def __init__(self, *specs):
        self.proc = subprocess.Popen([helper(), *specs], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        lines = []
        while True:
            line = self.proc.stdout.readline()
            assert line, f"sched_threads {specs} failed"
            if line.strip() == "ready":
                break
            lines.append(int(line))
        self.tids = lines

    def pidfd(self, i):
        return os.pidfd_open(self.tids[i], PIDFD_THREAD)

    def end(self, i):
        self.proc.stdin.write(f"end {i}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == f"ended {i}"
        # pthread_join returns when the TID is cleared, a moment before the
        # kernel releases the task: wait until /proc no longer has it
        deadline = time.time() + 10
        while os.path.exists(f"/proc/{self.proc.pid}/task/{self.tids[i]}"):
            assert time.time() < deadline, f"thread {self.tids[i]} never went away"
            time.sleep(0.01)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def hand_over(q, fd, path, close=True):
    """getfd + add-stats-fd {provider: "sched"}: the reply of the latter."""
    try:
        assert q.cmd("getfd", {"fdname": "vcpu-thread"}, fds=[fd]) == {"return": {}}
    finally:
        if close:
            os.close(fd)
    return q.cmd("add-stats-fd", {"provider": "sched", "target": "vcpu", "qom-path": path,
                                  "fdname": "vcpu-thread"})


def hand_over_all(q, threads, paths=None):
    for i in range(len(threads.tids)):
        r = hand_over(q, threads.pidfd(i), paths[i] if paths else VCPU % i)
        assert r == {"return": {}}, r


def stats_of(result):
    return {s["name"]: s["value"] for s in result["stats"]}


def sched_results(q, target="vcpu", **filters):
    """{qom-path (None for the VM): {stat: value}} of provider sched."""
    r = q.ok("query-stats", {"target": target, **SCHED, **filters})
    assert all(x["provider"] == "sched" for x in r), r
    return {x.get("qom-path"): stats_of(x) for x in r}


def proc_reading(tid):
    """The kernel's own values for a thread, as the provider names them."""
    base = f"/proc/{tid}/task/{tid}/"
    with open(base + "schedstat") as f:
        run, wait, slices = (int(x) for x in f.read().split())
    with open(base + "status") as f:
        status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    with open(base + "stat") as f:
        stat = f.read()
    return {"run_ns": run, "wait_ns": wait, "timeslices": slices,
            "voluntary_switches": int(status["voluntary_ctxt_switches"]),
            "involuntary_switches": int(status["nonvoluntary_ctxt_switches"]),
            "last_cpu": int(stat[stat.rindex(")") + 2:].split()[36])}


def daemon_fds(pid):
    """What each fd of a process refers to."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return out


def is_pidfd(link):
    return link in ("anon_inode:[pidfd]",) or link.startswith("pidfd:")


def fds_of_thread(pid, tid):
    return [x for x in daemon_fds(pid) if x.startswith(f"/proc/{tid}/task/{tid}/")]


def cpu_busy_ticks(cpu):
    """Ticks CPU `cpu` spent on anything but idle and iowait (/proc/stat)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return sum(v[:8]) - v[3] - v[4]
    raise AssertionError(f"no cpu{cpu} in /proc/stat")


class Pinned:
    """The test process and the daemon's threads kept off one CPU, so that
    on it only the threads under test (and other work) run."""

    def __init__(self, daemon_pid, cpu):
        self.pids = [daemon_pid]
        self.cpu = cpu

    def __enter__(self):
        self.old = os.sched_getaffinity(0)
        others = self.old - {self.cpu}
        if not others:              # one CPU: /proc/stat counts us as other work
            return self
        os.sched_setaffinity(0, others)
        for pid in self.pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), others)
        return self

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.old)


def measured_cpu():
    """The CPU the threads under test are pinned to."""
    return max(os.sched_getaffinity(0))


def over_window(q, threads, cpu, seconds=1.5):
    """Growth of each thread's sched stats and of CPU `cpu`'s busy time
    (ns) over a window, from two queries."""
    a, busy_a = sched_results(q), cpu_busy_ticks(cpu)
    t0 = time.monotonic()
    time.sleep(seconds)
    b, busy_b = sched_results(q), cpu_busy_ticks(cpu)
    elapsed = (time.monotonic() - t0) * 1e9
    grew = [{k: b[VCPU % i][k] - a[VCPU % i][k] for k in CUMULATIVE}
            for i in range(len(threads.tids))]
    return grew, (busy_b - busy_a) * 1e9 / USER_HZ, elapsed


def source_daemon(source):
    """qstatsd --no-vm started to read the threads from `source` (with or
    without CAP_NET_ADMIN); it says which it reads, and that must be
    `source` wherever the kernel answers taskstats, /proc elsewhere."""
    assert os.geteuid() == 0, "these tests need root: taskstats needs CAP_NET_ADMIN"
    d = Daemon(no_vm=True, wrapper=SOURCES[source])
    deadline = time.time() + 10           # said once the servers listen
    while "switch counts from" not in d.log() and time.time() < deadline:
        time.sleep(0.02)
    log = d.log()
    if SOURCE_LOG[expected_source(source)] not in log:
        d.stop()
        raise AssertionError(f"{source}: {log}")
    return d


def bytes_read(pid):
    """rchar of /proc/PID/io: what the process read through read(2) and
    pread(2) (files, the QMP socket), not what it received over netlink."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


# ---- what the provider reads -------------------------------------------------

def test_run_ns_grows_for_a_busy_thread_and_not_for_a_sleeping_one():
    with Daemon(recorded=2) as d, Threads("busy", "sleep") as t:
        q = d.qmp()
        hand_over_all(q, t)
        # one query-stats target vcpu: kvm and sched under the same paths
        both = q.ok("query-stats", {"target": "vcpu"})
        paths = {p: sorted(r["provider"] for r in both if r["qom-path"] == p)
                 for p in (VCPU % 0, VCPU % 1)}
        assert paths == {VCPU % 0: ["kvm", "sched"], VCPU % 1: ["kvm", "sched"]}, both
        first = sched_results(q)
        deadline = time.time() + 30
        while True:
            time.sleep(0.3)
            second = sched_results(q)
            busy = second[VCPU % 0]["run_ns"] - first[VCPU % 0]["run_ns"]
            if busy >= 100_000_000 or time.time() > deadline:
                break
        assert busy >= 100_000_000, (first, second)
        assert second[VCPU % 0]["timeslices"] >= first[VCPU % 0]["timeslices"]
        # the sleeper never ran: none of its counters moved
        assert second[VCPU % 1] == first[VCPU % 1], (first, second)
        assert second[VCPU % 1] == proc_reading(t.tids[1])


def test_values_equal_procs_own_reading_taken_around_the_query():
    """The kernel updates a running thread's times at ticks and switches:
    each value the daemon reports lies between /proc's reading just before
    and just after the query; the VM's sums between the sums.  So from
    taskstats as from /proc."""
    for source in SOURCES:
        values_bracketed_by_proc(source)


def values_bracketed_by_proc(source):
    cpu = measured_cpu()
    with source_daemon(source) as d, \
            Threads(f"busy@{cpu}", f"busy@{cpu}", "sleep", "tick:5") as t:
        q = d.qmp()
        hand_over_all(q, t)
        for _ in range(8):
            time.sleep(0.1)
            before = [proc_reading(tid) for tid in t.tids]
            got = sched_results(q)
            vm = sched_results(q, "vm")[None]
            after = [proc_reading(tid) for tid in t.tids]
            for i in range(len(t.tids)):
                r = got[VCPU % i]
                for k in CUMULATIVE:
                    assert before[i][k] <= r[k] <= after[i][k], (i, k, before[i], r, after[i])
            for k in CUMULATIVE:
                assert sum(b[k] for b in before) <= vm[k] <= sum(a[k] for a in after), (k, vm)
            assert got[VCPU % 0]["last_cpu"] == got[VCPU % 1]["last_cpu"] == cpu, got
            assert got[VCPU % 2] == before[2] == after[2]      # the sleeper, exactly
        assert set(vm) == set(CUMULATIVE), vm                  # no sum of last_cpu


def test_taskstats_spares_the_status_file_of_each_thread_that_ran():
    """Threads that run between queries (every 5 ms, queries 50 ms apart):
    from /proc the daemon rereads each one's status (1.4 KiB of text the
    kernel formats anew), from taskstats only its stat (for last_cpu), so
    it reads well under one status file per thread and query."""
    status_bytes = None
    per_thread_query = {}
    for source in SOURCES:
        with source_daemon(source) as d, Threads(*["tick:5"] * 4) as t:
            q = d.qmp()
            hand_over_all(q, t)
            with open(f"/proc/{t.tids[0]}/task/{t.tids[0]}/status", "rb") as f:
                status_bytes = len(f.read())
            sched_results(q)
            before, slices = bytes_read(d.proc.pid), sched_results(q)
            for _ in range(10):
                time.sleep(0.05)
                got = sched_results(q)
            ran = all(got[VCPU % i]["timeslices"] > slices[VCPU % i]["timeslices"] + 5
                      for i in range(4))
            assert ran, (slices, got)
            per_thread_query[source] = (bytes_read(d.proc.pid) - before) / 40
    print(f"  bytes read per thread and query: {per_thread_query} (status: {status_bytes})")
    assert per_thread_query["proc"] > status_bytes, (per_thread_query, status_bytes)
    if expected_source("taskstats") == "taskstats":
        assert per_thread_query["taskstats"] < status_bytes / 2, (per_thread_query, status_bytes)
    else:                                 # no taskstats here: both read status
        assert per_thread_query["taskstats"] > status_bytes, (per_thread_query, status_bytes)


def test_wait_ns_grows_for_two_threads_on_one_cpu_and_not_for_one_alone():
    """Two busy threads pinned to one CPU: while one runs the other waits,
    so each one's wait grows by at least (most of) the other's run,
    whatever else loads the machine.  One busy thread alone there waits
    only while other work runs on that CPU, which /proc/stat measures: on
    an idle CPU its wait stays near zero."""
    cpu = measured_cpu()
    with Daemon(no_vm=True) as d, Threads(f"busy@{cpu}", f"busy@{cpu}") as pair, \
            Pinned(d.proc.pid, cpu):
        q = d.qmp()
        hand_over_all(q, pair)
        time.sleep(0.2)
        (a, b), busy, elapsed = over_window(q, pair, cpu)
        for me, other in ((a, b), (b, a)):
            assert me["wait_ns"] >= 0.7 * other["run_ns"], (a, b)
            assert me["wait_ns"] >= 0.25 * elapsed, (a, b, elapsed)
            assert me["involuntary_switches"] > 0, (a, b)
        pair_ratio = min(a["wait_ns"] / a["run_ns"], b["wait_ns"] / b["run_ns"])
        pair.end(0)
        pair.end(1)

        with Threads(f"busy@{cpu}") as alone:
            assert hand_over(q, alone.pidfd(0), VCPU % 0) == {"return": {}}
            time.sleep(0.2)
            (me,), busy, elapsed = over_window(q, alone, cpu)
            others = max(0.0, busy - me["run_ns"])
            slack = 0.05 * elapsed + 3e9 / USER_HZ
            assert me["wait_ns"] <= others + slack, (me, others, busy, elapsed)
            assert me["run_ns"] > 0.2 * elapsed, (me, elapsed)
            # other work explains the alone thread's wait; the pair's waits
            # exceed what it explains by the peer's run (~1x its own run)
            alone_ratio = me["wait_ns"] / me["run_ns"]
            print(f"  wait/run: pair {pair_ratio:.2f}, alone {alone_ratio:.2f} "
                  f"(other work {others / elapsed:.0%} of CPU {cpu})")


def test_an_exited_thread_drops_out_and_its_fds_are_closed():
    """Whichever the source.  qstatsd watches the pidfds, so the thread's
    files close and the schema-changed event goes out at once, before any
    query; and a query never reports it (taskstats names a TID, so there the
    pidfd says the thread is gone; /proc's files say ESRCH)."""
    for source in SOURCES:
        exited_threads_drop_out(source)


def exited_threads_drop_out(source):
    with source_daemon(source) as d, Threads("sleep", "sleep", "sleep") as t:
        q = d.qmp()
        hand_over_all(q, t)
        pid = d.proc.pid
        pidfds = sum(map(is_pidfd, daemon_fds(pid)))
        assert all(len(fds_of_thread(pid, tid)) == 3 for tid in t.tids)
        while q.wait_event("STATS_SCHEMA_CHANGED", timeout=0.3):
            pass                                       # the hand-over's, all of them
        t.end(1)
        deadline = time.time() + 5                     # no query asked meanwhile
        while fds_of_thread(pid, t.tids[1]) and time.time() < deadline:
            time.sleep(0.01)
        assert fds_of_thread(pid, t.tids[1]) == [], "files of the exited thread still open"
        ev = q.wait_event("STATS_SCHEMA_CHANGED", timeout=5)
        assert ev and ev["data"] == {"provider": "sched", "target": "vcpu"}, (ev, q.events)
        r = q.cmd("query-stats", {"target": "vcpu", **SCHED})
        assert "return" in r, r                        # no error for the one gone
        assert sorted(x["qom-path"] for x in r["return"]) == [VCPU % 0, VCPU % 2]
        assert fds_of_thread(pid, t.tids[1]) == []
        assert sum(map(is_pidfd, daemon_fds(pid))) == pidfds - 1
        assert [c["qom-path"] for c in q.ok("query-cpus-fast")] == [VCPU % 0, VCPU % 2]
        assert sched_results(q, "vm")[None]["timeslices"] == \
            sum(proc_reading(t.tids[i])["timeslices"] for i in (0, 2))
        r = q.cmd("remove-stats-fd", {"target": "vcpu", "qom-path": VCPU % 1, "provider": "sched"})
        assert r["error"]["desc"] == f"No thread registered for vCPU '{VCPU % 1}'", r
        with Threads("sleep", "sleep") as t2:
            # the path is free again for a thread that lives
            assert hand_over(q, t2.pidfd(0), VCPU % 1) == {"return": {}}
            assert sorted(sched_results(q)) == [VCPU % 0, VCPU % 1, VCPU % 2]
            # a VMM replacing a vCPU thread: the path of one that exited is
            # free at once, no query needed in between
            t2.end(0)
            assert hand_over(q, t2.pidfd(1), VCPU % 1) == {"return": {}}
            assert fds_of_thread(pid, t2.tids[0]) == []
            assert [c["thread-id"] for c in q.ok("query-cpus-fast")] == \
                [t.tids[0], t2.tids[1], t.tids[2]]
            # remove-stats-fd closes the thread's pidfd and files at once
            assert q.ok("remove-stats-fd", {"target": "vcpu", "qom-path": VCPU % 1,
                                            "provider": "sched"}) == {}
            assert fds_of_thread(pid, t2.tids[1]) == []
            assert sum(map(is_pidfd, daemon_fds(pid))) == pidfds - 1
        # the whole VM gone: no sched results, no sched schemas, no error
        t.end(0)
        t.end(2)
        assert q.ok("query-stats", {"target": "vm", **SCHED}) == []
        assert q.ok("query-stats", {"target": "vcpu", **SCHED}) == []
        assert q.ok("query-stats-schemas", {"provider": "sched"}) == []
        assert sum(map(is_pidfd, daemon_fds(pid))) == pidfds - 3
        assert q.ok("query-cpus-fast") == []


# ---- refusals ----------------------------------------------------------------

def refused(q, fd, path, close=True):
    r = hand_over(q, fd, path, close)
    assert "error" in r and r["error"]["class"] == "GenericError", r
    return r["error"]["desc"]


def test_each_refusal_names_its_reason_and_keeps_no_fd():
    with Daemon(no_vm=True) as d, Threads("sleep", "sleep", "sleep") as t:
        q = d.qmp()
        assert hand_over(q, t.pidfd(0), VCPU % 0) == {"return": {}}
        before = sorted(daemon_fds(d.proc.pid))
        rd, wr = os.pipe()
        assert refused(q, rd, VCPU % 1) == "The file descriptor is not a pidfd"
        os.close(wr)
        with open(f"/proc/{t.proc.pid}/stat") as f:      # a /proc file is no pidfd either
            assert refused(q, os.dup(f.fileno()), VCPU % 1) == "The file descriptor is not a pidfd"
        assert refused(q, os.pidfd_open(t.proc.pid), VCPU % 1) == (
            "The pidfd names a process; a vCPU needs a thread pidfd "
            "(pidfd_open(tid, PIDFD_THREAD))")
        gone = t.pidfd(1)                                # taken while it lived
        t.end(1)
        assert refused(q, gone, VCPU % 1) == "The thread has exited"
        assert refused(q, t.pidfd(2), VCPU % 0) == \
            f"A thread is already registered at '{VCPU % 0}'"
        r = q.cmd("getfd", {"fdname": "vcpu-thread"}, fds=[t.pidfd(2)])
        r = q.cmd("add-stats-fd", {"provider": "sched", "target": "vm", "fdname": "vcpu-thread"})
        assert r["error"]["desc"] == "Provider 'sched' takes vCPU threads: use target 'vcpu'", r
        # nothing was kept: the daemon's fds and results are as before
        assert sorted(daemon_fds(d.proc.pid)) == before
        assert list(sched_results(q)) == [VCPU % 0]
        assert [c["thread-id"] for c in q.ok("query-cpus-fast")] == [t.tids[0]]


class NamespacedDaemon:
    """qstatsd --no-vm started behind a wrapper command (unshare, setpriv):
    its QMP socket in a temp dir the wrapped daemon may write."""

    def __init__(self, wrapper):
        self.dir = tempfile.mkdtemp(prefix="qstats-ns-")
        os.chmod(self.dir, 0o777)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen([*wrapper, QSTATSD, "--no-vm", "--qmp",
                                      "unix:" + self.qmp_path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 20
        while not os.path.exists(self.qmp_path):
            assert self.proc.poll() is None, f"{wrapper}: {self.log()}"
            assert time.time() < deadline, "qstatsd did not start"
            time.sleep(0.05)
        self.q = QMP(self.qmp_path)

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def close(self):
        try:
            self.q.cmd("quit")
        except (OSError, EOFError):
            pass
        self.q.close()
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        log = self.log()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert rc == 0 and "Sanitizer" not in log and "runtime error:" not in log, (rc, log)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def as_root_or_in_a_user_namespace(*unshare_args):
    """unshare with the given namespaces: as root, or else inside an
    unprivileged user namespace of its own."""
    if os.geteuid() == 0:
        return ["unshare", *unshare_args]
    return ["unshare", "--user", "--map-root-user", *unshare_args]


def test_a_thread_outside_the_daemons_pid_namespace_is_refused():
    """qstatsd in a PID namespace of its own (a container) cannot name a
    thread of the host: its fdinfo says Pid 0, and the hand-over fails."""
    wrapper = as_root_or_in_a_user_namespace("--pid", "--fork", "--mount-proc")
    with Threads("sleep") as t, NamespacedDaemon(wrapper) as d:
        with open(f"/proc/{d.proc.pid}/task/{d.proc.pid}/children") as f:
            inside = int(f.read().split()[0])              # qstatsd, pid 1 in there
        assert os.readlink(f"/proc/{inside}/ns/pid") != os.readlink("/proc/self/ns/pid")
        assert refused(d.q, t.pidfd(0), VCPU % 0) == \
            "The thread is not visible in qstatsd's PID namespace"
        assert d.q.ok("query-stats", {"target": "vcpu", **SCHED}) == []
        assert not any(is_pidfd(x) for x in daemon_fds(inside))


def test_a_thread_the_daemon_may_not_read_is_refused():
    """qstatsd as an unprivileged user with /proc mounted hidepid=invisible:
    the thread (root's) is in its PID namespace but its /proc files are not
    there for the daemon, which says so."""
    assert os.geteuid() == 0, "this test needs root: it mounts /proc with hidepid"
    script = ('mount -t proc -o hidepid=invisible proc /proc && '
              'exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"')
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    with Threads("sleep") as t, NamespacedDaemon(wrapper) as d:
        tid = t.tids[0]
        desc = refused(d.q, t.pidfd(0), VCPU % 0)
        assert desc == (f"Cannot read the thread's statistics: /proc/{tid}/task/{tid}/schedstat: "
                        "No such file or directory"), desc
        assert d.q.ok("query-stats", {"target": "vcpu", **SCHED}) == []
        assert d.q.ok("query-cpus-fast") == []


def test_a_recycled_tid_is_never_read_through_taskstats():
    """taskstats names threads by TID.  In a PID namespace of their own
    (where nothing else takes TIDs), a handed-over thread exits and a new
    process is given its TID on purpose (ns_last_pid): the daemon drops
    the vCPU and never reports the newcomer under its path."""
    assert os.geteuid() == 0, "this test needs root: it sets ns_last_pid"
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable,
                        os.path.abspath(__file__), "--recycled-tid-inside"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "recycled TID not read" in r.stdout, (r.stdout, r.stderr)


def recycled_tid_inside():
    """The test above, as PID 1 of the new namespace."""
    with source_daemon("taskstats") as d, Threads("sleep", "sleep") as t:
        q = d.qmp()
        hand_over_all(q, t)
        assert sorted(sched_results(q)) == [VCPU % 0, VCPU % 1]
        victim = t.tids[1]
        t.end(1)
        for _ in range(20):
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(victim - 1))
            impostor = subprocess.Popen(["sleep", "60"])
            if impostor.pid == victim:
                break
            impostor.kill()
            impostor.wait()
        assert impostor.pid == victim, (impostor.pid, victim)
        try:
            assert sorted(sched_results(q)) == [VCPU % 0]
            assert [c["thread-id"] for c in q.ok("query-cpus-fast")] == [t.tids[0]]
            assert sorted(sched_results(q, "vm")) == [None]
        finally:
            impostor.kill()
            impostor.wait()
    print("recycled TID not read")


# ---- query-cpus-fast, HMP, metrics, top --------------------------------------

def key_shape(text):
    """Each CPU's keys in order, props' keys in order, and the value types."""
    reply = json.loads(text, object_pairs_hook=list)
    (_, cpus), = reply
    return [[(k, type(v).__name__ if k != "props" else [(pk, type(pv).__name__) for pk, pv in v])
             for k, v in cpu] for cpu in cpus]


def test_query_cpus_fast_lists_exactly_the_handed_over_vcpus_in_qemu_72s_shape():
    with Daemon(recorded=2) as d, Threads("sleep", "sleep") as t:
        q = d.qmp()
        assert q.ok("query-cpus-fast") == []          # kvm stats alone name no thread
        assert hand_over(q, t.pidfd(1), VCPU % 1) == {"return": {}}
        assert q.ok("query-cpus-fast") == [
            {"thread-id": t.tids[1], "props": {"core-id": 1, "thread-id": 0, "socket-id": 0},
             "qom-path": VCPU % 1, "cpu-index": 1, "target": "x86_64"}]
        assert hand_over(q, t.pidfd(0), VCPU % 0) == {"return": {}}
        q.send_raw('{"execute": "query-cpus-fast"}')
        ours = q.recv_reply_line().decode()
        cpus = json.loads(ours)["return"]
        assert [(c["qom-path"], c["thread-id"], c["cpu-index"]) for c in cpus] == \
            [(VCPU % 0, t.tids[0], 0), (VCPU % 1, t.tids[1], 1)]
    with LiveQemu(vcpus=2, accel="tcg", balloon=False) as qemu:
        qemu.q.send_raw('{"execute": "query-cpus-fast"}')
        theirs = qemu.q.recv_reply_line().decode()
    assert key_shape(ours) == key_shape(theirs), (ours, theirs)
    # the same numbering: core-id is cpu-index on QEMU's -smp N as here
    for c in json.loads(theirs)["return"] + cpus:
        assert c["props"]["core-id"] == c["cpu-index"], c


def hmp(q, line, cpu=None):
    args = {"command-line": line}
    if cpu is not None:
        args["cpu-index"] = cpu
    return q.ok("human-monitor-command", args)


def hmp_lines(reading, names):
    units = {"run_ns": "cumulative, ns", "wait_ns": "cumulative, ns", "last_cpu": "instant"}
    return "".join(f"    {n} ({units.get(n, 'cumulative')}): {reading[n]}\r\n" for n in names)


def test_hmp_info_stats_shows_each_vcpu_thread_and_the_vm_sums_in_ns():
    # sleeping threads: their values stand still, so HMP must equal /proc
    with Daemon(recorded=2) as d, Threads("sleep", "sleep") as t:
        q = d.qmp()
        hand_over_all(q, t)
        readings = [proc_reading(tid) for tid in t.tids]
        for cpu in (0, 1):
            assert hmp(q, "info stats vcpu * sched", cpu) == hmp_lines(readings[cpu], ALL_STATS)
        assert hmp(q, "info stats vcpu wait_ns,last_cpu sched", 1) == \
            hmp_lines(readings[1], ("wait_ns", "last_cpu"))
        sums = {k: readings[0][k] + readings[1][k] for k in CUMULATIVE}
        assert hmp(q, "info stats vm * sched") == hmp_lines(sums, CUMULATIVE)
        # without a provider, QEMU's form: a "provider:" line per provider
        text = hmp(q, "info stats vcpu run_ns,exits", 0)
        assert "provider: sched\r\n" + hmp_lines(readings[0], ("run_ns",)) in text, text
        assert "provider: kvm\r\n    exits (cumulative): " in text, text


def test_metrics_have_sched_counters_per_vcpu_and_pass_promtool():
    port = free_port()
    with Daemon("--metrics", f"127.0.0.1:{port}", "--name", "vm1", recorded=2) as d, \
            Threads("sleep", "sleep") as t:
        q = d.qmp()
        hand_over_all(q, t)
        readings = [proc_reading(tid) for tid in t.tids]
        deadline = time.time() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                assert time.time() < deadline, d.log()
                time.sleep(0.05)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    for fam in ("run_seconds", "wait_seconds", "timeslices", "voluntary_switches",
                "involuntary_switches"):
        assert types[f"qstats_sched_vcpu_{fam}_total"] == "counter", fam
        assert types[f"qstats_sched_vm_{fam}_total"] == "counter", fam
    assert types["qstats_sched_vcpu_last_cpu"] == "gauge"
    for i, r in enumerate(readings):
        m = re.search(rf'^qstats_sched_vcpu_wait_seconds_total{{vm="vm1",vcpu="{i}"}} (\S+)$',
                      body, re.M)
        assert m and abs(float(m[1]) - r["wait_ns"] / 1e9) <= 1e-9 * max(1, r["wait_ns"] / 1e6), \
            (m and m[0], r)
        m = re.search(rf'^qstats_sched_vcpu_timeslices_total{{vm="vm1",vcpu="{i}"}} (\d+)$',
                      body, re.M)
        assert m and int(m[1]) == r["timeslices"], (m and m[0], r)
    m = re.search(r'^qstats_sched_vm_run_seconds_total{vm="vm1"} (\S+)$', body, re.M)
    assert m and abs(float(m[1]) * 1e9 - sum(r["run_ns"] for r in readings)) < 1000, m
    assert re.search(r'^qstats_kvm_vcpu_exits_total{vm="vm1",vcpu="1"} ', body, re.M)
    if shutil.which("promtool"):
        chk = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                             capture_output=True, timeout=30)
        assert chk.returncode == 0, chk.stdout + chk.stderr


def test_top_once_shows_wait_ns_as_time_per_second():
    """Two threads contending for one CPU each wait about half the time:
    top shows run_ns and wait_ns as rates in a time unit per second."""
    cpu = measured_cpu()
    with Daemon(recorded=2) as d, Threads(f"busy@{cpu}", f"busy@{cpu}") as t:
        q = d.qmp()
        hand_over_all(q, t)
        r = subprocess.run([QSTATS, "-s", d.qmp_path, "top", "--once", "-d", "1", "-p", "sched",
                            "--vcpu", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r
    header, rows, _ = parse_top(r.stdout)
    assert "provider: sched" in header and "vcpu: 0 of 2" in header, header
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for name in ("run_ns", "wait_ns"):
        _, where, total, rate, _ = next(x for x in rows if x[0] == name and x[1] == "sched/vcpu")
        m = re.fullmatch(r"([\d.]+) (ns|us|ms|s)/s", rate)
        assert m, (name, rate, r.stdout)
        # a share of one second per second, never above one; the thread
        # always wants to run, so it runs or waits, and waits at least
        # while its peer runs
        share = float(m[1]) * scale[m[2]]
        assert (0.1 if name == "wait_ns" else 0) < share < 1.2, (name, rate, r.stdout)
        assert re.fullmatch(r"[\d.]+ (ns|us|ms|s)", total), (name, total)
    assert row(rows, "last_cpu")[2] == str(cpu), rows
    assert not any(x[1].startswith("kvm/") for x in rows), rows


if __name__ == "__main__":
    if sys.argv[1:] == ["--recycled-tid-inside"]:
        recycled_tid_inside()
    else:
        run_module(globals())
