"""What a scrape selects, how it is compressed, and the exporter's own
health, end to end: the real qstatsd serving a recorded VM with --metrics.

Every selection of the query string (provider, target, name, repeated,
combined, unknown) must show exactly the families that query-stats-schemas
over QMP gives for it (names by the rules test_metrics_prometheus already
encodes), pass promtool, and match QMP in the JSON API; a typo or a broken
percent-escape is a 400 with a one-line reason.  gzip is served exactly
when asked for, and decompresses to the plain body.  --metrics-select sets
the default a request's own parameters replace; bad values of it or of
--metrics-vcpus stop qstatsd with the reason.  The health families count
scrapes and samples, carry the version, and follow a recorded vCPU file
that breaks and comes back as QMP query-stats-failures does."""
import atexit
import gzip
import json
import subprocess

from qstest import QSTATSD, run_module
from test_metrics_prometheus import HEALTH_TYPES, MetricsDaemon, expected_families, fetch, \
    fetch_text, free_port, promtool_check, samples, type_line_name, types

_shared = []


def daemon():
    """One recorded 2-vCPU VM for the tests that do not change it."""
    if not _shared:
        _shared.append(MetricsDaemon(recorded=2))
        atexit.register(_shared[0].stop)
    return _shared[0]


def scrape(d, query="", headers=None, path="/metrics"):
    status, h, body = fetch_text(d.base + path + ("?" + query if query else ""), headers)
    assert status == 200, (query, status, body)
    return h, body


def non_health(body):
    return {name: t for name, t in types(body).items() if name not in HEALTH_TYPES}


def expected_type_names(d, keep):
    return {type_line_name(fam, sample) for fam, sample in expected_families(d, keep).items()}


def qmp_schemas(d):
    q = d.qmp()
    try:
        return q.ok("query-stats-schemas")
    finally:
        q.close()


# (query string, which (provider, target, stat name) it keeps)
SELECTIONS = [
    ("provider=kvm", lambda p, t, n: p == "kvm"),
    ("target=vm", lambda p, t, n: t == "vm"),
    ("target=vcpu", lambda p, t, n: t == "vcpu"),
    ("target=vm&target=vcpu", lambda p, t, n: True),
    ("name=exits", lambda p, t, n: n == "exits"),
    ("name=exits&name=halt_wait_hist&name=blocking&name=max_mmu_rmap_size",
     lambda p, t, n: n in ("exits", "halt_wait_hist", "blocking", "max_mmu_rmap_size")),
    ("provider=kvm&target=vcpu&name=exits&name=pages_4k",
     lambda p, t, n: p == "kvm" and t == "vcpu" and n in ("exits", "pages_4k")),
    ("provider=kvm&target=vm&name=pages_4k&name=exits",
     lambda p, t, n: p == "kvm" and t == "vm" and n in ("exits", "pages_4k")),
    ("provider=kvm&provider=nosuch&name=halt_exits",
     lambda p, t, n: p == "kvm" and n == "halt_exits"),
    ("name=halt%5Fwait%5Fns", lambda p, t, n: n == "halt_wait_ns"),   # escapes decoded
    ("provider=nosuch", lambda p, t, n: False),
    ("name=nosuch", lambda p, t, n: False),
    ("target=nosuch", lambda p, t, n: False),
    ("provider=nosuch&name=exits", lambda p, t, n: False),
]


def test_every_selection_shows_exactly_the_families_its_schemas_give():
    d = daemon()
    providers = {s["provider"] for s in qmp_schemas(d)}
    assert providers == {"kvm"}, providers          # expected_families knows kvm's names
    for query, keep in SELECTIONS:
        _, body = scrape(d, query)
        want = expected_type_names(d, lambda t, n: keep("kvm", t, n))
        assert set(non_health(body)) == want, (query, set(non_health(body)) ^ want)
        # the health families are always there, whatever is selected
        assert {k: v for k, v in types(body).items() if k in HEALTH_TYPES} == HEALTH_TYPES
        # every selected family has its samples (one per vCPU for target vcpu)
        for fam, sample in expected_families(d, lambda t, n: keep("kvm", t, n)).items():
            got = {lb.get("vcpu") for name, lb, _ in samples(body) if name == sample}
            assert got == ({"0", "1"} if "_vcpu_" in fam else {None}), (query, fam, got)
        promtool_check(body)
    _, everything = scrape(d)
    assert set(non_health(everything)) == expected_type_names(d, None)


def test_json_api_selects_as_qmp_filters():
    d = daemon()
    q = d.qmp()
    try:
        for query, keep in SELECTIONS:
            _, body = scrape(d, query, path="/api/v1/schemas")
            api = json.loads(body)
            assert isinstance(api["generation"], int)
            want = [{**s, "stats": [st for st in s["stats"]
                                    if keep(s["provider"], s["target"], st["name"])]}
                    for s in q.ok("query-stats-schemas")
                    if any(keep(s["provider"], s["target"], st["name"]) for st in s["stats"])]
            got = [s for s in api["schemas"] if s["stats"]]
            assert got == want, (query, got, want)
            if "name=" in query:     # a name selection leaves no empty schema
                assert got == api["schemas"], (query, api["schemas"])
            _, body = scrape(d, query, path="/api/v1/stats")
            api = json.loads(body)
            for target in ("vm", "vcpu"):
                full = q.ok("query-stats", {"target": target})
                want = [{**r, "stats": [st for st in r["stats"]
                                        if keep(r["provider"], target, st["name"])]}
                        for r in full]
                want = [r for r in want if r["stats"]]
                assert api[target] == want, (query, target, api[target], want)
    finally:
        q.close()


BAD_QUERIES = {
    "names=exits": "unknown parameter 'names'",
    "name=exits&tagret=vm": "unknown parameter 'tagret'",
    "%zz": "percent-escape",
    "%4": "percent-escape",
    "name=%zz": "percent-escape",
    "name=%4": "percent-escape",
    "name=exits&provider=kvm%": "percent-escape",
    "name=%00": "percent-escape",
}


def test_a_typo_or_a_bad_escape_is_a_400_with_a_one_line_reason():
    d = daemon()
    for query, why in BAD_QUERIES.items():
        status, h, body = fetch(d.url + "?" + query)
        text = body.decode()
        assert status == 400, (query, status, text[:300])
        assert h["Content-Type"].startswith("text/plain"), (query, h)
        assert text.strip() and "\n" not in text.rstrip("\n"), (query, text)
        assert why in text, (query, text)
        for path in ("/api/v1/schemas", "/api/v1/stats"):
            status, h, body = fetch(d.base + path + "?" + query)
            assert status == 400, (path, query, status, body[:300])
            assert h["Content-Type"] == "application/json", (path, h)
            err = json.loads(body)
            assert list(err) == ["error"] and why in err["error"], (path, query, err)
            assert "\n" not in err["error"]
    # and the daemon serves on
    scrape(d)


def without_moving_lines(body):
    """The exposition less the sample lines of the exporter's own families,
    whose values move from one scrape to the next."""
    return [l for l in body.splitlines() if not l.startswith("qstats_exporter_")]


def test_gzip_exactly_when_asked_for_and_equal_to_the_plain_body():
    d = daemon()
    for accept in (None, "text/plain;version=0.0.4",
                   "application/openmetrics-text;version=1.0.0"):
        base = {"Accept": accept} if accept else {}
        status, h, plain = fetch(d.url, headers=base)
        assert status == 200 and "Content-Encoding" not in h, h
        assert h["Vary"] == "Accept-Encoding", h
        for coding in ("gzip", "gzip, deflate, br", "deflate;q=0.5, gzip;q=0.1", "*", "GZIP"):
            status, h, body = fetch(d.url, headers={**base, "Accept-Encoding": coding})
            assert status == 200, status
            assert h["Content-Encoding"] == "gzip" and h["Vary"] == "Accept-Encoding", (coding, h)
            assert int(h["Content-Length"]) == len(body)
            assert body[:2] == b"\x1f\x8b", coding
            unzipped = gzip.decompress(body).decode()
            assert without_moving_lines(unzipped) == without_moving_lines(plain.decode()), coding
            assert len(body) < len(plain) / 3, (len(body), len(plain))
        for coding in ("gzip;q=0", "identity", "deflate", "*;q=0", "br, *;q=0"):
            status, h, body = fetch(d.url, headers={**base, "Accept-Encoding": coding})
            assert status == 200 and "Content-Encoding" not in h, (coding, h)
            assert h["Vary"] == "Accept-Encoding", h
            assert without_moving_lines(body.decode()) == without_moving_lines(plain.decode())
    # HEAD: the headers of the gzip'd GET, no body
    status, h, body = fetch(d.url, method="HEAD", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and body == b"", (status, body)
    assert h["Content-Encoding"] == "gzip" and h["Vary"] == "Accept-Encoding", h
    assert 1000 < int(h["Content-Length"]) < len(plain), h
    status, h, body = fetch(d.url, method="HEAD")
    assert status == 200 and body == b"" and "Content-Encoding" not in h, h
    # the JSON API is compressed alike
    status, h, body = fetch(d.base + "/api/v1/schemas", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and h["Content-Encoding"] == "gzip", h
    assert json.loads(gzip.decompress(body))["schemas"]
    # an error is one plain line, whatever the client accepts
    status, h, body = fetch(d.url + "?names=x", headers={"Accept-Encoding": "gzip"})
    assert status == 400 and b"unknown parameter" in body, (status, h, body)


def test_metrics_select_sets_the_default_a_request_replaces():
    with MetricsDaemon("--metrics-select", "provider=kvm&name=exits", recorded=2) as d:
        _, body = scrape(d)
        assert non_health(body) == {"qstats_kvm_vcpu_exits_total": "counter"}, non_health(body)
        assert sorted(lb["vcpu"] for n, lb, _ in samples(body)
                      if n == "qstats_kvm_vcpu_exits_total") == ["0", "1"]
        promtool_check(body)
        # a request's own parameters replace the default (not narrow it)
        _, body = scrape(d, "name=halt_exits")
        assert non_health(body) == {"qstats_kvm_vcpu_halt_exits_total": "counter"}
        _, body = scrape(d, "target=vm")
        assert set(non_health(body)) == expected_type_names(d, lambda t, n: t == "vm")
        _, body = scrape(d, "provider=kvm")
        assert set(non_health(body)) == expected_type_names(d, None)
        # the JSON API has the same default
        api = json.loads(scrape(d, path="/api/v1/schemas")[1])
        assert [(s["target"], [st["name"] for st in s["stats"]]) for s in api["schemas"]
                if s["stats"]] == [("vcpu", ["exits"])], api
        api = json.loads(scrape(d, path="/api/v1/stats")[1])
        assert api["vm"] == [] and [r["stats"] for r in api["vcpu"]] == \
            [[{"name": "exits", "value": r["stats"][0]["value"]}] for r in api["vcpu"]]


def test_invalid_metrics_select_or_vcpus_stop_qstatsd_naming_the_problem():
    cases = [
        (["--metrics-select", "names=exits"], "unknown parameter 'names'"),
        (["--metrics-select", "name=%zz"], "percent-escape"),
        (["--metrics-select", "provider=kvm&%4"], "percent-escape"),
        (["--metrics-vcpus", "cpus=3"], "unknown kind 'cpus'"),
        (["--metrics-vcpus", "counters=x"], "counters=x"),
        (["--metrics-vcpus", "counters=-1"], "counters=-1"),
        (["--metrics-vcpus", "counters=5,histograms"], "histograms"),
        (["--metrics-vcpus", "gauges=99999999999"], "gauges=99999999999"),
    ]
    for args, why in cases:
        r = subprocess.run([QSTATSD, "--no-vm", "--metrics", f"127.0.0.1:{free_port()}", *args],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert why in r.stderr and "--metrics" in r.stderr, (args, r.stderr)
    # and valid ones start
    for args in (["--metrics-select", "provider=kvm&target=vm"],
                 ["--metrics-vcpus", "all=all,histograms=0"]):
        with MetricsDaemon(*args, recorded=1) as d:
            scrape(d)


def health(body):
    return {name: (lb, v) for name, lb, v in samples(body) if name in HEALTH_TYPES}


def test_health_families_count_scrapes_samples_and_carry_the_version():
    d = daemon()
    version = subprocess.run([QSTATSD, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    last = None
    for query, accept in [("", None), ("name=exits", None), ("provider=nosuch", None),
                          ("", "application/openmetrics-text;version=1.0.0")]:
        _, body = scrape(d, query, headers={"Accept": accept} if accept else None)
        h = health(body)
        assert h["qstats_build_info"] == ({"vm": "itest", "version": version}, 1.0), h
        n = h["qstats_exporter_scrapes_total"][1]
        assert last is None or n == last + 1, (last, n)
        last = n
        assert h["qstats_exporter_samples"][1] == len(samples(body)), (query, accept)
        assert h["qstats_exporter_sources_failing"][1] == 0
        assert 0 < h["qstats_exporter_scrape_duration_seconds"][1] < 60
        assert all(lb["vm"] == "itest" for lb, _ in h.values())
    # other paths are not scrapes
    scrape(d, path="/api/v1/stats")
    fetch(d.url + "?names=x")
    _, body = scrape(d)
    assert health(body)["qstats_exporter_scrapes_total"][1] == last + 1


def test_sources_failing_follows_a_broken_vcpu_file_as_query_stats_failures():
    with MetricsDaemon(recorded=2) as d:
        q = d.qmp()
        path = d.recording.file(1)
        with open(path, "rb") as f:
            saved = f.read()
        _, body = scrape(d)
        assert health(body)["qstats_exporter_sources_failing"][1] == 0
        assert q.ok("query-stats-failures") == []
        with open(path, "r+b") as f:       # same file, as qstatsd holds it open
            f.truncate(100)
        _, body = scrape(d)                 # this scrape meets the failure
        assert health(body)["qstats_exporter_sources_failing"][1] == 1, health(body)
        vcpus = {lb.get("vcpu") for n, lb, _ in samples(body) if n.startswith("qstats_kvm_vcpu")}
        assert vcpus == {"0"}, vcpus
        (failure,) = q.ok("query-stats-failures")
        assert failure["provider"] == "kvm" and failure["target"] == "vcpu", failure
        assert failure["qom-path"] == "/machine/unattached/device[1]", failure
        _, body = scrape(d)
        assert health(body)["qstats_exporter_sources_failing"][1] == 1
        promtool_check(body)
        with open(path, "r+b") as f:
            f.write(saved)
        _, body = scrape(d)                 # this scrape reads it again
        assert health(body)["qstats_exporter_sources_failing"][1] == 0, health(body)
        vcpus = {lb.get("vcpu") for n, lb, _ in samples(body) if n.startswith("qstats_kvm_vcpu")}
        assert vcpus == {"0", "1"}, vcpus
        assert q.ok("query-stats-failures") == []
        q.close()


if __name__ == "__main__":
    run_module(globals())
