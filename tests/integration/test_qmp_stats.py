"""query-stats / query-stats-schemas against the real qstatsd over a real
QMP socket, on a recorded VM (real descriptors from a Linux 6.18 host) so
that it runs on any machine: the answer is exactly the recorded stat set
and values, a file rewritten in place is seen at the next query, values
move between two queries by exactly what the recording advanced, every
filter shape, every argument error text (docs/qemu-behaviour.md#filters,
docs/qemu-behaviour.md#argument-errors).  Where /dev/kvm works, the values
of the live micro-VM move too."""
import os
import resource
import time

from qstest import Daemon, need_kvm, run_module

VCPU0 = "/machine/unattached/device[0]"
VCPU1 = "/machine/unattached/device[1]"
MOVED = ("exits", "halt_exits", "halt_wait_ns", "irq_injections")

_shared = []


def daemon():
    """One recorded 2-vCPU VM for the tests that only read it."""
    if not _shared:
        _shared.append(Daemon(recorded=2))
    return _shared[0]


def stats_of(result):
    return {s["name"]: s["value"] for s in result["stats"]}


def qmp_value(f, desc):
    """How query-stats shows one recorded value: histograms as the bucket
    list, booleans as JSON booleans, everything else as the integer."""
    v = f.get(desc.name)
    return bool(v) if desc.unit == "boolean" else v


def expected_stats(f):
    return [{"name": d.name, "value": qmp_value(f, d)} for d in f.descs]


def expected_schema(f):
    """query-stats-schemas' entries for a file's descriptors, by QEMU's rules:
    no unit for plain counts, a base only with a non-zero exponent."""
    types = {"cumulative": "cumulative", "instant": "instant", "peak": "peak",
             "linear-hist": "linear-histogram", "log-hist": "log2-histogram"}
    out = []
    for d in f.descs:
        s = {"name": d.name, "type": types[d.type]}
        if d.unit != "none":
            s["unit"] = d.unit
        if d.exponent:
            s["base"] = 2 if (d.flags >> 8) & 0xF == 1 else 10
        s["exponent"] = d.exponent
        if d.bucket_size:
            s["bucket-size"] = d.bucket_size
        out.append(s)
    return out


def test_recorded_vm_answers_with_exactly_the_recorded_stats_and_schemas():
    d = Daemon(recorded=3)
    try:
        q = d.qmp()
        rec = d.recording
        vm = q.ok("query-stats", {"target": "vm"})
        assert vm == [{"provider": "kvm", "stats": expected_stats(rec.load("vm"))}], vm
        vcpus = q.ok("query-stats", {"target": "vcpu"})
        assert vcpus == [{"provider": "kvm", "qom-path": f"/machine/unattached/device[{i}]",
                          "stats": expected_stats(rec.load(i))} for i in range(3)], vcpus
        assert len(vcpus[0]["stats"]) == 47 and len(vm[0]["stats"]) == 16
        schemas = q.ok("query-stats-schemas")
        assert schemas == [
            {"provider": "kvm", "target": "vm", "stats": expected_schema(rec.load("vm"))},
            {"provider": "kvm", "target": "vcpu", "stats": expected_schema(rec.load(0))}]
        for i in range(3):
            assert q.ok("qom-get", {"path": f"/machine/unattached/device[{i}]",
                                    "property": "stats-id"}) == rec.load(i).id
    finally:
        assert d.stop() == 0


def test_a_file_rewritten_in_place_is_seen_at_the_next_query():
    with Daemon(recorded=2) as d:
        q = d.qmp()
        hist = [0] * 32
        hist[7] = 5
        d.recording.update(1, exits=123456789, guest_mode=1, halt_wait_hist=hist)
        d.recording.update("vm", pages_4k=4242, max_mmu_rmap_size=2**63 + 1)
        one = q.ok("query-stats", {"target": "vcpu", "vcpus": [VCPU1]})
        assert stats_of(one[0])["exits"] == 123456789
        assert stats_of(one[0])["guest_mode"] is True
        assert stats_of(one[0])["halt_wait_hist"] == hist
        assert one[0]["stats"] == expected_stats(d.recording.load(1))
        vm = stats_of(q.ok("query-stats", {"target": "vm"})[0])
        assert (vm["pages_4k"], vm["max_mmu_rmap_size"]) == (4242, 2**63 + 1)
        # the other vCPU's file was not touched, nor is its answer
        zero = q.ok("query-stats", {"target": "vcpu", "vcpus": [VCPU0]})
        assert zero[0]["stats"] == expected_stats(d.recording.load(0))
        assert stats_of(zero[0])["exits"] != 123456789


def test_vcpu_values_move_between_two_queries_by_what_the_guest_did():
    with Daemon(recorded=2) as d:
        q = d.qmp()
        before = [d.recording.load(i) for i in range(2)]
        first = q.ok("query-stats", {"target": "vcpu"})
        d.advance(0.5)
        after = [d.recording.load(i) for i in range(2)]
        second = q.ok("query-stats", {"target": "vcpu"})
        assert [r["qom-path"] for r in second] == [VCPU0, VCPU1]
        for i, (a, b) in enumerate(zip(first, second)):
            a, b = stats_of(a), stats_of(b)
            fa, fb = before[i], after[i]
            for name in MOVED:
                grew = fb.get(name) - fa.get(name)
                assert grew > 0 and b[name] - a[name] == grew, (i, name, a[name], b[name], grew)
            gained = [k for k, (x, y) in enumerate(zip(a["halt_wait_hist"], b["halt_wait_hist"]))
                      if y != x]
            assert len(gained) == 1, gained
            k = gained[0]
            assert b["halt_wait_hist"][k] - a["halt_wait_hist"][k] == \
                fb.get("halt_wait_hist")[k] - fa.get("halt_wait_hist")[k] > 0
            assert b["guest_mode"] is (not a["guest_mode"]) is bool(fb.get("guest_mode"))
            # and nothing else moved but what the recording wrote
            assert b == {s["name"]: s["value"] for s in expected_stats(fb)}


def test_vcpu_values_move_on_the_live_micro_vm():
    """kvm stats move, and the sched provider has each vCPU's thread: the
    threads run (run_ns, timeslices grow) under the same QOM paths."""
    need_kvm("the micro-VM's guest timer")
    kvm = {"providers": [{"provider": "kvm"}]}
    sched = {"providers": [{"provider": "sched"}]}
    with Daemon(vcpus=2) as d:
        q = d.qmp()
        first = q.ok("query-stats", {"target": "vcpu", **kvm})
        first_sched = q.ok("query-stats", {"target": "vcpu", **sched})
        deadline = time.time() + 30
        while True:
            time.sleep(0.5)
            second = q.ok("query-stats", {"target": "vcpu", **kvm})
            second_sched = q.ok("query-stats", {"target": "vcpu", **sched})
            moved = [all(stats_of(b)[n] > stats_of(a)[n] for n in MOVED) and
                     sum(stats_of(b)["halt_wait_hist"]) > sum(stats_of(a)["halt_wait_hist"])
                     for a, b in zip(first, second)]
            ran = [stats_of(b)["run_ns"] > stats_of(a)["run_ns"] and
                   stats_of(b)["timeslices"] > stats_of(a)["timeslices"]
                   for a, b in zip(first_sched, second_sched)]
            if (all(moved) and all(ran)) or time.time() > deadline:
                break
        assert [r["qom-path"] for r in second] == [VCPU0, VCPU1]
        assert [r["qom-path"] for r in second_sched] == [VCPU0, VCPU1]
        assert all(moved), (first, second)
        assert all(ran), (first_sched, second_sched)
        assert all(isinstance(stats_of(r)["guest_mode"], bool) for r in second)
        cpus = q.ok("query-cpus-fast")
        assert [c["qom-path"] for c in cpus] == [VCPU0, VCPU1]
        for c in cpus:
            assert os.path.exists(f"/proc/{d.proc.pid}/task/{c['thread-id']}"), c


def test_results_carry_the_full_schema_stat_set_in_descriptor_order():
    q = daemon().qmp()
    schemas = q.ok("query-stats-schemas")
    assert [(s["provider"], s["target"]) for s in schemas] == [("kvm", "vm"), ("kvm", "vcpu")]
    vm_names = [s["name"] for s in schemas[0]["stats"]]
    vcpu_names = [s["name"] for s in schemas[1]["stats"]]
    vm = q.ok("query-stats", {"target": "vm"})
    assert len(vm) == 1 and "qom-path" not in vm[0] and vm[0]["provider"] == "kvm"
    assert [s["name"] for s in vm[0]["stats"]] == vm_names
    for r in q.ok("query-stats", {"target": "vcpu"}):
        assert [s["name"] for s in r["stats"]] == vcpu_names
    kinds = {s["name"]: s for s in schemas[1]["stats"]}
    assert kinds["halt_wait_ns"] == {"name": "halt_wait_ns", "type": "cumulative",
                                     "unit": "seconds", "base": 10, "exponent": -9}
    assert kinds["halt_wait_hist"]["type"] == "log2-histogram"
    assert kinds["exits"] == {"name": "exits", "type": "cumulative", "exponent": 0}
    assert kinds["guest_mode"]["unit"] == "boolean"


def test_schema_provider_filter():
    q = daemon().qmp()
    assert len(q.ok("query-stats-schemas", {"provider": "kvm"})) == 2
    assert q.ok("query-stats-schemas", {"provider": "cryptodev"}) == []


def test_filter_shapes():
    q = daemon().qmp()
    qs = lambda **a: q.ok("query-stats", a)  # noqa: E731
    assert qs(target="vm", providers=[]) == []
    assert qs(target="vcpu", vcpus=[]) == []
    assert qs(target="vcpu", vcpus=["device[0]", "/machine/unattached/device[9]"]) == []
    assert [r["qom-path"] for r in qs(target="vcpu", vcpus=[VCPU1])] == [VCPU1]
    assert qs(target="vcpu", providers=[{"provider": "kvm", "names": []}]) == []
    assert qs(target="vm", providers=[{"provider": "kvm", "names": ["nope"]}]) == []
    assert qs(target="vm", providers=[{"provider": "cryptodev"}]) == []
    assert qs(target="cryptodev") == []
    r = qs(target="vm", providers=[{"provider": "kvm", "names": ["pages_4k", "max_mmu_rmap_size", "nope"]}])
    assert [s["name"] for s in r[0]["stats"]] == [n for n in [s["name"] for s in r[0]["stats"]]
                                                  if n in ("pages_4k", "max_mmu_rmap_size")]
    assert sorted(stats_of(r[0])) == ["max_mmu_rmap_size", "pages_4k"]
    twice = qs(target="vm", providers=[{"provider": "kvm"}, {"provider": "kvm"}])
    assert len(twice) == 2 and [s["name"] for s in twice[0]["stats"]] == [s["name"] for s in twice[1]["stats"]]
    both = qs(target="vcpu", vcpus=[VCPU0, VCPU1], providers=[{"provider": "kvm", "names": ["exits"]}])
    assert [list(stats_of(r)) for r in both] == [["exits"], ["exits"]]


ERRORS = [
    ({}, "Parameter 'target' is missing"),
    ({"target": "nosuch"}, "Parameter 'target' does not accept value 'nosuch'"),
    ({"target": 1}, "Invalid parameter type for 'target', expected: string"),
    ({"target": "vm", "providers": [{"provider": "xyz"}]}, "Parameter 'provider' does not accept value 'xyz'"),
    ({"target": "vm", "providers": [{"names": []}]}, "Parameter 'providers[0].provider' is missing"),
    ({"target": "vm", "providers": [{"provider": "kvm", "foo": 1}]}, "Parameter 'providers[0].foo' is unexpected"),
    ({"target": "vm", "providers": {}}, "Invalid parameter type for 'providers', expected: array"),
    ({"target": "vm", "providers": [{"provider": "kvm", "names": ["a", 1]}]},
     "Invalid parameter type for 'providers[0].names[1]', expected: string"),
    ({"target": "vm", "providers": [{"provider": "kvm", "names": None}]},
     "Invalid parameter type for 'providers[0].names', expected: array"),
    ({"target": "vm", "vcpus": [VCPU0]}, "Parameter 'vcpus' is unexpected"),
    ({"target": "vcpu", "vcpus": "x"}, "Invalid parameter type for 'vcpus', expected: array"),
    ({"target": "vcpu", "vcpus": [1]}, "Invalid parameter type for 'vcpus[0]', expected: string"),
    ({"target": "vm", "zzz": 1}, "Parameter 'zzz' is unexpected"),
]


def test_argument_errors_have_qemus_texts_and_echo_the_id():
    q = daemon().qmp()
    for i, (args, text) in enumerate(ERRORS):
        r = q.cmd("query-stats", args, id={"n": i})
        assert r == {"error": {"class": "GenericError", "desc": text}, "id": {"n": i}}, (args, r)
    r = q.cmd("query-stats-schemas", {"provider": "nosuch"}, id=7)
    assert r["error"]["desc"] == "Parameter 'provider' does not accept value 'nosuch'" and r["id"] == 7


def test_a_huge_provider_list_is_answered_even_on_a_small_stack():
    # The length of "providers" is the client's to choose: 200000 requests
    # (1.2M JSON tokens, under QEMU's limit) once took 1.6 MB of stack and
    # crashed a daemon whose stack is 1 MiB.
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, hard))
    try:
        d = Daemon(recorded=1)
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))
    try:
        q = d.qmp(timeout=60)
        provs = ", ".join(['{"provider": "cryptodev"}'] * 200000)
        q.send_raw('{"execute": "query-stats", "arguments": {"target": "vm", '
                   '"providers": [%s]}, "id": 1}' % provs)
        assert q.recv() == {"return": [], "id": 1}
        assert len(q.ok("query-stats", {"target": "vm"})) == 1
    finally:
        assert d.stop() == 0


if __name__ == "__main__":
    try:
        run_module(globals())
    finally:
        for d in _shared:
            d.stop()
