"""STATS_SCHEMA_CHANGED end to end: the real `qstatsd --no-vm --metrics`
given a foreign VMM's stats fds (memfds holding the recorded VM, handed
over with getfd + add-stats-fd as test_vmm_attach does) tells negotiated
QMP sessions, in QEMU's event shape, whenever what query-stats-schemas
answers changes: fds added or removed, a balloon stat reported for the
first time.  The JSON API's schema generation moves exactly then, and
never on queries, scrapes, value rewrites, refused commands or a source
that fails and recovers; a session that has not negotiated hears nothing;
changes that one read of commands makes are told once per target."""
import json
import os
import time

from qstest import run_module
from test_balloon import Balloon, FakeAgent
from test_metrics_prometheus import MetricsDaemon, fetch, free_port
from test_vmm_attach import MemfdVmm, hand_over, memfd_with, recorded_files, vcpu_path

EVENT = "STATS_SCHEMA_CHANGED"


def generation(base):
    status, _, body = fetch(base + "/api/v1/schemas")
    assert status == 200, body
    return json.loads(body)["generation"]


def drain(q, quiet=1.0, first=None):
    """Every STATS_SCHEMA_CHANGED q receives until none came for quiet s
    (for the first one, up to first s when given: one is expected)."""
    out = []
    while True:
        ev = q.wait_event(EVENT, timeout=first if first and not out else quiet)
        if ev is None:
            return out
        out.append(ev)


def check_shape(ev):
    assert set(ev) == {"timestamp", "event", "data"}, ev
    assert ev["event"] == EVENT
    ts = ev["timestamp"]
    assert set(ts) == {"seconds", "microseconds"}, ts
    assert all(type(v) is int for v in ts.values()), ts
    assert 0 <= ts["microseconds"] < 1_000_000, ts
    assert abs(ts["seconds"] + ts["microseconds"] / 1e6 - time.time()) < 60, ts
    assert set(ev["data"]) == {"provider", "target"}, ev
    return ev["data"]["provider"], ev["data"]["target"]


def told(q, expected=True):
    """[(provider, target)] of the events q was sent, shapes checked; when
    none is expected, a quiet second is enough to say none came."""
    return [check_shape(ev) for ev in drain(q, first=10 if expected else None)]


def nothing_arrived(q):
    """Nothing at all was sent to q's socket (not even an event)."""
    q.sock.setblocking(False)
    try:
        q.sock.recv(4096)           # bytes, or b"" when closed: not silent
        return False
    except BlockingIOError:
        return True
    finally:
        q.sock.settimeout(q.timeout)


def test_hand_over_and_removal_tell_negotiated_sessions_and_move_the_generation():
    with MetricsDaemon(no_vm=True) as d:
        listener = d.qmp()
        silent = d.qmp(negotiate=False)     # greeted, never negotiates
        g = generation(d.base)
        vmm = MemfdVmm(d.qmp_path, nvcpus=4)
        events = told(listener)
        # one event per target at least, no more than one per change
        assert {e for e in events} == {("kvm", "vm"), ("kvm", "vcpu")}, events
        assert 2 <= len(events) <= 5, events
        assert events[0] == ("kvm", "vm"), events     # the VM's fd went first
        g2 = generation(d.base)
        assert g2 != g, (g, g2)
        assert nothing_arrived(silent), "an event reached a session that did not negotiate"
        # the handing-over session is negotiated too: it hears them as well
        assert any(e["event"] == EVENT for e in vmm.q.events + drain(vmm.q, 0.3))
        schemas = listener.ok("query-stats-schemas", {"provider": "kvm"})
        assert sorted(s["target"] for s in schemas) == ["vcpu", "vm"], schemas
        # removing: a vCPU, then the VM
        for which, target in ((3, "vcpu"), ("vm", "vm")):
            assert vmm.remove(which) == {"return": {}}
            assert told(listener) == [("kvm", target)], which
            g3 = generation(d.base)
            assert g3 != g2, which
            g2 = g3
        assert [s["target"] for s in listener.ok("query-stats-schemas")] == ["vcpu"]
        # adding the VM back
        vmm.add("vm")
        assert told(listener) == [("kvm", "vm")]
        assert generation(d.base) != g2
        assert nothing_arrived(silent)
        vmm.close()
        listener.close()
        silent.close()


def test_nothing_else_moves_the_generation_or_sends_an_event():
    with MetricsDaemon(no_vm=True) as d:
        listener = d.qmp()
        vmm = MemfdVmm(d.qmp_path, nvcpus=2)
        told(listener)
        g = generation(d.base)
        q = d.qmp()
        dup = memfd_with(recorded_files(1)[0])
        null = os.open("/dev/null", os.O_RDONLY)
        actions = {
            "query-stats": lambda: (q.ok("query-stats", {"target": "vm"}),
                                    q.ok("query-stats", {"target": "vcpu"})),
            "query-stats-schemas": lambda: q.ok("query-stats-schemas"),
            "info stats": lambda: q.ok("human-monitor-command",
                                       {"command-line": "info stats vcpu"}),
            "scrapes": lambda: [fetch(d.base + p) for p in
                                ("/metrics", "/metrics?target=vm", "/api/v1/stats",
                                 "/api/v1/schemas?name=exits")],
            "values rewritten": lambda: vmm.advance(1.0),
            "vCPU already there": lambda: hand_over(q, dup, "dup", "vcpu", vcpu_path(0)),
            "remove unknown": lambda: q.cmd("remove-stats-fd",
                                            {"target": "vcpu", "qom-path": vcpu_path(9)}),
            "bad fd": lambda: hand_over(q, null, "null", "vcpu", vcpu_path(7)),
        }
        for what, act in actions.items():
            r = act()
            if what in ("vCPU already there", "remove unknown", "bad fd"):
                assert "error" in r, (what, r)
            assert told(listener, expected=False) == [], what
            assert generation(d.base) == g, what
        # a source that fails and recovers is not a schema change
        data = os.pread(vmm.fds[1], os.fstat(vmm.fds[1]).st_size, 0)
        os.ftruncate(vmm.fds[1], 64)
        q.ok("query-stats", {"target": "vcpu"})
        assert len(q.ok("query-stats-failures")) == 1
        os.pwrite(vmm.fds[1], data, 0)
        q.ok("query-stats", {"target": "vcpu"})
        assert q.ok("query-stats-failures") == []
        assert told(listener, expected=False) == [] and generation(d.base) == g
        os.close(dup)
        os.close(null)
        q.close()
        vmm.close()
        listener.close()


def test_changes_of_one_read_are_told_once_per_target():
    # Three hand-overs arrive in one write: the changes they make within
    # that loop iteration become one event per (provider, target).
    with MetricsDaemon(no_vm=True) as d:
        listener = d.qmp()
        q = d.qmp()
        files = recorded_files(2)
        fds = {w: memfd_with(data) for w, data in files.items()}
        for w, fd in fds.items():
            assert q.cmd("getfd", {"fdname": f"fd-{w}"}, fds=[fd]) == {"return": {}}
        g = generation(d.base)
        lines = [{"execute": "add-stats-fd",
                  "arguments": {"fdname": "fd-vm", "provider": "kvm", "target": "vm"}}]
        lines += [{"execute": "add-stats-fd",
                   "arguments": {"fdname": f"fd-{i}", "provider": "kvm", "target": "vcpu",
                                 "qom-path": vcpu_path(i)}} for i in (0, 1)]
        q.send_raw("".join(json.dumps(x) + "\n" for x in lines))
        for _ in lines:
            assert q.recv() == {"return": {}}
        assert told(listener) == [("kvm", "vm"), ("kvm", "vcpu")]
        assert generation(d.base) != g
        assert len(q.ok("query-stats", {"target": "vcpu"})) == 2
        for fd in fds.values():
            os.close(fd)
        q.close()
        listener.close()


def test_a_balloon_stat_reported_for_the_first_time_is_told():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Balloon("--metrics", f"127.0.0.1:{port}") as d:
        listener = d.qmp()
        g = generation(base)
        agent = FakeAgent(d.balloon_path)
        agent.answer([(5, 42)])                    # total memory, first seen
        assert told(listener) == [("balloon", "vm")]
        g2 = generation(base)
        assert g2 != g
        (schema,) = listener.ok("query-stats-schemas", {"provider": "balloon"})
        assert "total-memory" in [s["name"] for s in schema["stats"]], schema
        assert d.set_interval(1) == {"return": {}}
        told(listener, expected=False)
        # the same stat again: nothing new
        assert agent.s.recv(1) == b"\x01"          # the device asks
        agent.answer([(5, 43)])
        d.wait_stats(lambda s: s["stats"]["stat-total-memory"] == 43, what="second report")
        assert told(listener, expected=False) == [] and generation(base) == g2
        # another stat, first seen
        assert agent.s.recv(1) == b"\x01"
        agent.answer([(5, 44), (4, 10)])
        assert told(listener) == [("balloon", "vm")]
        assert generation(base) != g2
        (schema,) = listener.ok("query-stats-schemas", {"provider": "balloon"})
        assert "free-memory" in [s["name"] for s in schema["stats"]], schema
        agent.close()
        listener.close()


if __name__ == "__main__":
    run_module(globals())
