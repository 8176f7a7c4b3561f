"""query-stats / query-stats-schemas against the real qstatsd on a real
micro-VM over a real QMP socket: values move, every filter shape, every
argument error text (qemu-reference.md §1.4, §2.2, §7.1)."""
import resource
import time

from qstest import Daemon, need_kvm, run_module

need_kvm()
D = Daemon(vcpus=2)
VCPU0 = "/machine/unattached/device[0]"
VCPU1 = "/machine/unattached/device[1]"


def stats_of(result):
    return {s["name"]: s["value"] for s in result["stats"]}


def test_vcpu_values_move_between_two_queries():
    q = D.qmp()
    first = q.ok("query-stats", {"target": "vcpu"})
    time.sleep(0.5)
    second = q.ok("query-stats", {"target": "vcpu"})
    assert [r["qom-path"] for r in second] == [VCPU0, VCPU1]
    for a, b in zip(first, second):
        a, b = stats_of(a), stats_of(b)
        for name in ("exits", "halt_exits", "halt_wait_ns", "irq_injections"):
            assert b[name] > a[name], (name, a[name], b[name])
        assert sum(b["halt_wait_hist"]) > sum(a["halt_wait_hist"])
        assert isinstance(b["guest_mode"], bool)


def test_results_carry_the_full_schema_stat_set_in_descriptor_order():
    q = D.qmp()
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
    q = D.qmp()
    assert len(q.ok("query-stats-schemas", {"provider": "kvm"})) == 2
    assert q.ok("query-stats-schemas", {"provider": "cryptodev"}) == []


def test_filter_shapes():
    q = D.qmp()
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
    q = D.qmp()
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
        d = Daemon(vcpus=1)
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
        D.stop()
