"""vCPU aggregation of the metrics endpoint, end to end on the real
qstatsd: recorded VMs of 64 and 1024 vCPUs (scripts/recording.py make)
in the default view, a 4-vCPU recording whose vCPUs are made to differ
with --metrics-vcpus all=0, and crafted stats files (recording.build)
handed over as memfds for the kinds the real recording lacks on vCPUs
(instants, peaks, linear histograms).

Every aggregated sample is checked against the per-vCPU values QMP
query-stats reports in the same state: counters, instants and histogram
buckets summed, peaks the maximum, booleans the number of vCPUs where
true; its HELP says which rule made it; VM-level stats are never touched.
The default view keeps 64 vCPUs in full detail and 1024 under 60,000
samples.  Text format through promtool, OpenMetrics by comparison with it."""
import gzip
import os
import re

from qstest import recording, run_module
from test_metrics_prometheus import HEALTH_TYPES, OM_ACCEPT, MetricsDaemon, expected_families, \
    fetch, fetch_text, promtool_check, samples, type_line_name
from test_vmm_attach import hand_over, memfd_with, vcpu_path

RULES = {"sum": "Aggregated: summed over the VM's vCPUs.",
         "max": "Aggregated: the maximum over the VM's vCPUs.",
         "count": "Aggregated: the number of vCPUs for which it is true."}


def scrape(d, accept=None):
    status, h, body = fetch_text(d.url, {"Accept": accept} if accept else None)
    assert status == 200, (status, body[:500])
    return body


def helps(body):
    return dict(re.findall(r"^# HELP (\S+) (.*)$", body, re.M))


def family_of(d, target, stat):
    """(family, sample name, TYPE-line name) of one stat, by the naming
    rules test_metrics_prometheus.expected_families encodes."""
    ((fam, sample),) = expected_families(d, lambda t, n: t == target and n == stat).items()
    return fam, sample, type_line_name(fam, sample)


def qmp_values(d, target):
    """{qom-path or None: {stat: value}} of provider kvm."""
    q = d.qmp()
    try:
        res = q.ok("query-stats", {"target": target, "providers": [{"provider": "kvm"}]})
        schemas = q.ok("query-stats-schemas", {"provider": "kvm"})
    finally:
        q.close()
    (schema,) = [s for s in schemas if s["target"] == target]
    return {r.get("qom-path"): {s["name"]: s["value"] for s in r["stats"]} for r in res}, \
        schema["stats"]


def scale(st):
    """What one raw unit of the stat is in the exposition's base unit."""
    if st.get("unit") in ("seconds", "bytes", "cycles") and st.get("exponent"):
        return st.get("base", 10) ** st["exponent"]
    return 1


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def by_name(body, name):
    return [(lb, v) for n, lb, v in samples(body) if n == name]


def is_hist(st):
    return st["type"].endswith("histogram")


def check_aggregated(d, body, values, schema, aggregated_kinds):
    """Every vCPU family of body against the per-vCPU values QMP gave:
    aggregated (one sample, no vcpu label, HELP naming the rule) when its
    kind is in aggregated_kinds, else one sample per vCPU."""
    help_of = helps(body)
    vcpus = list(values.values())
    for st in schema:
        name = st["name"]
        fam, sample, type_name = family_of(d, "vcpu", name)
        kind = ("histograms" if is_hist(st) else "booleans" if st.get("unit") == "boolean"
                else "counters" if st["type"] == "cumulative" else "gauges")
        if kind not in aggregated_kinds:
            got = {lb["vcpu"] for lb, _ in by_name(body, sample)}
            assert len(got) == len(vcpus), (name, got)
            assert "Aggregated" not in help_of[type_name], (name, help_of[type_name])
            continue
        per = [v[name] for v in vcpus]
        if is_hist(st):
            rule = "sum"
            buckets = [sum(col) for col in zip(*per)]
            got = by_name(body, fam + "_bucket")
            assert all(set(lb) == {"vm", "le"} for lb, _ in got), got
            got.sort(key=lambda lv: float(lv[0]["le"]))
            assert got[-1][0]["le"] == "+Inf" and got[-1][1] == sum(buckets), (name, got)
            cum, want = 0, []
            for b in buckets[:-1]:
                cum += b
                want.append(cum)
            assert [v for _, v in got[:-1]] == want, (name, got, buckets)
            count = by_name(body, fam + "_count")
            assert count == [({"vm": "itest"}, float(sum(buckets)))], (name, count)
            if name == "halt_wait_hist":
                (sum_lb, sum_v), = by_name(body, fam + "_sum")
                want_sum = sum(v["halt_wait_ns"] for v in vcpus) * 1e-9
                assert sum_lb == {"vm": "itest"} and close(sum_v, want_sum), (sum_v, want_sum)
        else:
            if st.get("unit") == "boolean":
                rule, want = "count", sum(1 for v in per if v)
            elif st["type"] == "peak":
                rule, want = "max", max(per) * scale(st)
            else:
                rule, want = "sum", sum(per) * scale(st)
            got = by_name(body, sample)
            assert len(got) == 1 and got[0][0] == {"vm": "itest"}, (name, got)
            assert close(got[0][1], want), (name, got, want, per)
        assert help_of[type_name].endswith(" " + RULES[rule]), (name, help_of[type_name])


def differing_vcpus(d, n):
    """Gives each vCPU of d's recording its own values, all kinds."""
    for i in range(n):
        f = d.recording.load(i)
        hist = [0] * 32
        hist[5 + i] = 10 * (i + 1)
        hist[20] = i
        poll = [(j * (i + 3)) % 7 for j in range(32)]
        d.recording.update(i, exits=1000 * (i + 1) + 7 * i, halt_exits=3 ** i,
                           halt_wait_ns=123456789 * (i + 1), pf_fixed=i * i,
                           blocking=i % 2, guest_mode=int(i == n - 1),
                           halt_wait_hist=hist, halt_poll_success_hist=poll,
                           halt_poll_fail_hist=[f.get("halt_poll_fail_hist")[j] + i
                                                for j in range(32)])


def test_64_vcpus_default_view_keeps_every_vcpu_family_in_detail():
    with MetricsDaemon(recorded=64) as d:
        body = scrape(d)
        want = {str(i) for i in range(64)}
        fams = expected_families(d, lambda t, n: t == "vcpu")
        help_of = helps(body)
        for fam, sample in fams.items():
            got = {lb.get("vcpu") for lb, _ in by_name(body, sample)}
            assert got == want, (fam, sorted(got - want), sorted(want - got))
            assert "Aggregated" not in help_of[type_line_name(fam, sample)]
        assert "Aggregated" not in body
        promtool_check(body)


def test_1024_vcpus_default_view_stays_under_60000_samples():
    with MetricsDaemon(recorded=1024) as d:
        d.advance(1.0)               # histogram buckets and halt time grow
        body = scrape(d)
        got = samples(body)
        assert len(got) < 60000, len(got)
        (reported,) = [v for n, _, v in got if n == "qstats_exporter_samples"]
        assert reported == len(got), (reported, len(got))
        # the count the aggregated families no longer tell
        assert [v for n, _, v in got if n == "qstats_vm_vcpus"] == [1024]
        all_vcpus = {str(i) for i in range(1024)}
        values, schema = qmp_values(d, "vcpu")
        assert len(values) == 1024
        check_aggregated(d, body, values, schema, {"histograms"})
        for fam, sample in expected_families(d, lambda t, n: t == "vcpu").items():
            got_vcpus = {lb.get("vcpu") for lb, _ in by_name(body, sample)}
            if sample.endswith("_bucket"):
                assert got_vcpus == {None}, fam
            else:
                assert got_vcpus == all_vcpus, fam
        promtool_check(body)
        # what Prometheus is sent: gzip'd, well under 1 MiB
        status, h, gz = fetch(d.url, headers={"Accept-Encoding": "gzip"})
        assert status == 200 and h["Content-Encoding"] == "gzip"
        assert len(gz) < 1 << 20, len(gz)
        assert len(gzip.decompress(gz)) > len(gz)


def test_aggregates_follow_each_kinds_rule_against_query_stats():
    with MetricsDaemon("--metrics-vcpus", "all=0", recorded=4) as d:
        differing_vcpus(d, 4)
        d.recording.update("vm", max_mmu_rmap_size=17, pages_4k=5)
        body = scrape(d)
        values, schema = qmp_values(d, "vcpu")
        assert len(values) == 4
        assert len({v["exits"] for v in values.values()}) == 4     # they do differ
        assert sum(1 for v in values.values() if v["blocking"]) == 2
        check_aggregated(d, body, values, schema,
                         {"counters", "gauges", "booleans", "histograms"})
        promtool_check(body)
        # the VM's own stats are not aggregated: its peak is its value
        vm_values, vm_schema = qmp_values(d, "vm")
        help_of = helps(body)
        for st in vm_schema:
            fam, sample, type_name = family_of(d, "vm", st["name"])
            ((lb, v),) = by_name(body, sample)
            assert lb == {"vm": "itest"} and v == vm_values[None][st["name"]], (st, lb, v)
            assert "Aggregated" not in help_of[type_name]
        assert by_name(body, "qstats_kvm_vm_max_mmu_rmap_size") == [({"vm": "itest"}, 17.0)]
        check_openmetrics_matches_text(d, body)


def check_openmetrics_matches_text(d, text):
    """The OpenMetrics exposition of the same state has the same samples
    (its histograms without _sum have no _count) and the same HELP."""
    om = scrape(d, OM_ACCEPT)
    assert om.endswith("\n# EOF\n")
    units = re.findall(r"^# UNIT (\S+) (\S+)$", om, re.M)
    assert units and all(fam.endswith("_" + u) for fam, u in units), units

    def norm(body):
        out = set()
        for n, lb, v in samples(body.replace("# EOF\n", "")):
            if n in HEALTH_TYPES:
                continue
            if "le" in lb:
                lb = dict(lb, le=str(float(lb["le"])))
            out.add((n, tuple(sorted(lb.items())), v))
        return out

    t, o = norm(text), norm(om)
    assert o <= t, sorted(o - t)[:5]
    missing = {s[0] for s in t - o}
    with_sum = {n[:-4] for n, _, _ in t if n.endswith("_sum")}
    assert all(n.endswith("_count") and n[:-6] not in with_sum for n in missing), missing
    om_help = helps(om)
    for name, h in helps(text).items():
        if "Aggregated" in h:
            bare = name[:-6] if name.endswith("_total") else name
            assert om_help[bare] == h, (name, om_help.get(bare), h)


# ---- crafted vCPU files: kinds the recorded host has only at VM level ----

TYPE = {"cumulative": 0, "instant": 1, "peak": 2, "linear-hist": 3, "log-hist": 4}
UNIT = {"none": 0, "bytes": 1, "seconds": 2, "cycles": 3, "boolean": 4}
CRAFTED = [   # name, type, unit, exponent, size, bucket_size
    ("requests", "cumulative", "none", 0, 1, 0),
    ("queue_depth", "instant", "none", 0, 1, 0),
    ("resident_bytes", "instant", "bytes", 0, 1, 0),
    ("max_latency_ns", "peak", "seconds", -9, 1, 0),
    ("max_queue", "peak", "none", 0, 1, 0),
    ("busy", "instant", "boolean", 0, 1, 0),
    ("latency_hist", "linear-hist", "seconds", -6, 5, 250),
    ("size_hist", "log-hist", "bytes", 0, 8, 0),
]


def crafted_file(i, values):
    descs, data = [], []
    for name, t, u, exp, size, bucket in CRAFTED:
        descs.append((name, TYPE[t] | UNIT[u] << 4, exp, size, 8 * len(data), bucket))
        v = values[name]
        data += v if isinstance(v, list) else [v]
    return recording.build(descs, data, id_=f"kvm-crafted/vcpu-{i}".encode())


def crafted_values(i):
    return {"requests": 100 * (i + 1), "queue_depth": 3 + i, "resident_bytes": 4096 << i,
            "max_latency_ns": [900, 25000, 1300][i], "max_queue": [7, 2, 9][i],
            "busy": int(i != 1), "latency_hist": [i, 2 * i + 1, 0, 5, i * i],
            "size_hist": [j * (i + 1) for j in range(8)]}


def test_handed_over_vcpus_aggregate_instants_peaks_and_linear_histograms():
    # 3 vCPUs: counters at their limit stay per vCPU, booleans and
    # histograms just past theirs are aggregated, gauges always.
    detail = "gauges=0,histograms=2,counters=3,booleans=2"
    with MetricsDaemon("--metrics-vcpus", detail, no_vm=True) as d:
        q = d.qmp()
        fds = []
        for i in range(3):
            fds.append(memfd_with(crafted_file(i, crafted_values(i))))
            assert hand_over(q, fds[-1], f"crafted-{i}", "vcpu", vcpu_path(i)) == \
                {"return": {}}
        body = scrape(d)
        values, schema = qmp_values(d, "vcpu")
        assert [v["max_latency_ns"] for v in values.values()] == [900, 25000, 1300]
        check_aggregated(d, body, values, schema, {"gauges", "booleans", "histograms"})
        # the peak in seconds: the largest, scaled
        fam, sample, _ = family_of(d, "vcpu", "max_latency_ns")
        assert by_name(body, sample) == [({"vm": "itest"}, 25000e-9)], by_name(body, sample)
        assert by_name(body, "qstats_kvm_vcpu_busy") == [({"vm": "itest"}, 2.0)]
        promtool_check(body)
        check_openmetrics_matches_text(d, body)
        # the values are read on every scrape: a rewrite shows at once
        v = crafted_values(0)
        v["max_queue"], v["busy"] = 40, 0
        f = recording.StatsFile(crafted_file(0, v))
        f.write_data(fds[0])
        body = scrape(d)
        assert by_name(body, "qstats_kvm_vcpu_max_queue") == [({"vm": "itest"}, 40.0)]
        assert by_name(body, "qstats_kvm_vcpu_busy") == [({"vm": "itest"}, 1.0)]
        q.close()
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    run_module(globals())
