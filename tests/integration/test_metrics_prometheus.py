"""The metrics endpoint end to end: the real qstatsd serving a recorded VM
(real Linux 6.18 descriptors) with --metrics on loopback, checked by
Debian's promtool (text format), by raw HTTP (OpenMetrics negotiation,
HEAD, 404) and by a real Prometheus server started here with a generated
config, while the test advances the recording like an idle guest: its
query API must see rate() of every vCPU's exit counter and, over the
halt-wait histogram, the histogram_quantile that the advanced bucket's
bounds give.  Expected metric names come from query-stats-schemas over
QMP, so a kernel with other stats is checked just the same.  A Prometheus
with its default scrape settings is also put behind a byte-for-byte proxy
here, which shows that it is sent gzip.

The helpers of the other metrics tests live here too (MetricsDaemon,
fetch, samples, promtool_check, expected_families)."""
import atexit
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPConnection

from qstest import Daemon, QSTATSD, free_port, run_module, skip
from test_top import grown_log2_bucket

OM_ACCEPT = ("application/openmetrics-text;version=1.0.0,"
             "application/openmetrics-text;version=0.0.1;q=0.75,"
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
TEXT_CTYPE = "text/plain; version=0.0.4; charset=utf-8"
OM_CTYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def http(url, method="GET", accept=None, timeout=5):
    req = urllib.request.Request(url, method=method)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def fetch(url, method="GET", headers=None, timeout=30):
    """One request with exactly the headers given (no Accept-Encoding of
    the client's own): (status, headers, body bytes as sent)."""
    u = urllib.parse.urlsplit(url)
    conn = HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest(method, u.path + ("?" + u.query if u.query else ""),
                        skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def fetch_text(url, headers=None):
    """GET, gunzipping a gzip'd body: (status, headers, text)."""
    status, h, body = fetch(url, headers=headers)
    if h.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return status, h, body.decode()


SAMPLE_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
HEALTH_TYPES = {"qstats_build_info": "gauge", "qstats_exporter_scrapes_total": "counter",
                "qstats_exporter_sources_failing": "gauge", "qstats_exporter_samples": "gauge",
                "qstats_exporter_scrape_duration_seconds": "gauge", "qstats_vm_vcpus": "gauge"}


def samples(body):
    """[(sample name, {label: value}, value)] of an exposition's sample lines."""
    out = []
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def types(body):
    """{family as its TYPE line names it: type}."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))


def promtool_check(body):
    """promtool check metrics (the text format 0.0.4, its linter included)."""
    if not shutil.which("promtool"):
        skip("promtool (Debian package prometheus) is not installed")
    chk = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                         capture_output=True, timeout=60)
    assert chk.returncode == 0, chk.stdout + chk.stderr


class MetricsDaemon(Daemon):
    """qstatsd with --metrics on a free loopback port (recorded=2 and
    --name itest unless told otherwise; args are more options)."""

    def __init__(self, *args, name="itest", **vm):
        self.port = free_port()
        try:
            super().__init__("--metrics", f"127.0.0.1:{self.port}", "--name", name, *args,
                             **(vm or {"recorded": 2}))
            self.base = f"http://127.0.0.1:{self.port}"
            self.url = self.base + "/metrics"
            self.wait_for_http()
        except BaseException:
            if getattr(self, "proc", None):     # never leave a daemon behind
                self.proc.kill()
                self.proc.wait()
            raise

    def wait_for_http(self):
        deadline = time.time() + 10
        while True:
            try:
                http(self.url)
                return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("metrics endpoint never answered: " + self.log())
                time.sleep(0.05)


_shared = []


def daemon():
    """One daemon for all tests of this file."""
    if not _shared:
        _shared.append(MetricsDaemon())
        atexit.register(_shared[0].stop)
    return _shared[0]


def expected_families(d, keep=None):
    """Metric family -> sample name that must exist, from the live schemas,
    by the naming rules of exporter/qs-exporter.h; keep(target, stat name)
    says which stats a selection shows (None: all)."""
    q = d.qmp()
    schemas = q.ok("query-stats-schemas", {"provider": "kvm"})
    q.close()
    seconds = ["_ns", "_nsec", "_us", "_usec", "_ms", "_msec", "_s", "_sec", "_secs", "_seconds"]
    unit_sfx = {"seconds": seconds, "bytes": ["_b", "_bytes", "_kb", "_kib", "_mb", "_mib", "_gb", "_gib"],
                "cycles": ["_cycles"]}
    out = {}
    for sch in schemas:
        for st in sch["stats"]:
            if keep and not keep(sch["target"], st["name"]):
                continue
            stem = re.sub(r"[^a-zA-Z0-9_]", "_", st["name"])
            unit = st.get("unit")
            if st["type"] == "cumulative" and stem.endswith("_total"):
                stem = stem[:-6]
            for sfx in unit_sfx.get(unit, []):
                if stem.lower().endswith(sfx) and len(stem) > len(sfx):
                    stem = stem[:-len(sfx)]
                    break
            fam = f"qstats_kvm_{sch['target']}_{stem}"
            if unit in unit_sfx:
                fam += "_" + unit
            sample = {"cumulative": fam + "_total", "instant": fam, "peak": fam}.get(
                st["type"], fam + "_bucket")
            out[fam] = sample
    assert keep or len(out) > 20, schemas
    return out


def type_line_name(fam, sample):
    """The name a family's TYPE line has in the text format: a counter's is
    its sample name (with _total), others' the family's."""
    return sample if sample.endswith("_total") else fam


def test_live_scrape_passes_promtool_and_has_every_kvm_stat():
    if not shutil.which("promtool"):
        skip("promtool (Debian package prometheus) is not installed")
    d = daemon()
    status, headers, body = http(d.url)
    assert status == 200 and headers["Content-Type"] == TEXT_CTYPE, (status, headers)
    chk = subprocess.run(["promtool", "check", "metrics"], input=body, text=True,
                         capture_output=True, timeout=30)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    for fam, sample in expected_families(d).items():
        assert re.search(rf"^{sample}{{", body, re.M), f"no samples of {fam}"
    # text format: a counter's TYPE names the sample; vCPU label per vCPU
    assert types["qstats_kvm_vcpu_exits_total"] == "counter"
    assert types["qstats_kvm_vcpu_halt_wait_seconds_total"] == "counter"
    assert types["qstats_kvm_vcpu_halt_wait_hist_seconds"] == "histogram"
    for v in ("0", "1"):
        assert f'qstats_kvm_vcpu_exits_total{{vm="itest",vcpu="{v}"}} ' in body
    assert re.search(r'^qstats_kvm_vcpu_halt_wait_hist_seconds_bucket\{vm="itest",vcpu="0",'
                     r'le="1e-09"\} \d+$', body, re.M)
    assert re.search(r'^qstats_kvm_vcpu_halt_wait_hist_seconds_sum\{vm="itest",vcpu="0"\} ',
                     body, re.M)
    assert "# HELP qstats_kvm_vcpu_exits_total VM exits of this vCPU, all reasons." in body


def test_openmetrics_negotiated_head_and_404():
    d = daemon()
    status, headers, body = http(d.url, accept=OM_ACCEPT)
    assert status == 200 and headers["Content-Type"] == OM_CTYPE, headers
    assert body.endswith("\n# EOF\n")
    # OpenMetrics: bare counter family name, UNIT matching its suffix
    assert ("# HELP qstats_kvm_vcpu_halt_wait_seconds Time the halted vCPU slept waiting "
            "for a wake-up.\n# TYPE qstats_kvm_vcpu_halt_wait_seconds counter\n"
            "# UNIT qstats_kvm_vcpu_halt_wait_seconds seconds\n"
            "qstats_kvm_vcpu_halt_wait_seconds_total{") in body
    status, headers, body = http(d.url, method="HEAD")
    assert status == 200 and body == "" and headers["Content-Type"] == TEXT_CTYPE
    assert int(headers["Content-Length"]) > 1000
    status, _, _ = http(f"http://127.0.0.1:{d.port}/nosuch")   # "/" is the web page
    assert status == 404
    status, _, _ = http(f"http://127.0.0.1:{d.port}/metrics/x")
    assert status == 404


def test_non_loopback_metrics_address_refused():
    port = free_port()
    r = subprocess.run([QSTATSD, "--no-vm", "--metrics", f"0.0.0.0:{port}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "without --allow-remote" in r.stderr, r.stderr


def prom_query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, _, body = http(url)
    assert status == 200, body
    reply = json.loads(body)
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def run_prometheus(target, check, interval="1s", timeout="1s"):
    """A real Prometheus scraping target (HOST:PORT) every interval, its
    query API's base URL handed to check(base); its log shown on failure."""
    if not shutil.which("prometheus"):
        skip("prometheus (Debian package) is not installed")
    tmp = tempfile.mkdtemp(prefix="qstats-prom-")
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(f"global:\n  scrape_interval: {interval}\n"
                + (f"  scrape_timeout: {timeout}\n" if timeout else "")
                + "scrape_configs:\n  - job_name: qstats\n    static_configs:\n"
                f"      - targets: ['{target}']\n")
    web = free_port()
    base = f"http://127.0.0.1:{web}"
    log = open(os.path.join(tmp, "log"), "w")
    prom = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{web}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        check(base)
    except BaseException:
        log.flush()
        print(open(os.path.join(tmp, "log")).read()[-4000:])
        raise
    finally:
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_prometheus_scrapes_rate_and_histogram_quantile():
    d = daemon()
    run_prometheus(f"127.0.0.1:{d.port}", lambda base: check_prometheus(base, d))


class HeaderProxy:
    """A transparent TCP proxy on loopback in front of upstream_port:
    bytes go through unchanged both ways, and the head (up to the blank
    line) of the first request and of the first response of every
    connection is kept, so a test sees what a client really sent and got."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.requests, self.responses = [], []
        self.lock = threading.Lock()
        self.closing = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while not self.closing:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream), timeout=30)
            threading.Thread(target=self.pump, args=(client, up, self.requests),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(up, client, self.responses),
                             daemon=True).start()

    def pump(self, src, dst, heads):
        head, kept = b"", False
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not kept:
                    head += data
                    if b"\r\n\r\n" in head:
                        with self.lock:
                            heads.append(head.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
                        kept = True
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def heads(self):
        with self.lock:
            return list(self.requests), list(self.responses)

    def close(self):
        self.closing = True
        self.lsock.close()


def header_of(head, name):
    """The value of header name in an HTTP head, or None."""
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def test_prometheus_with_default_scrape_settings_is_sent_gzip():
    # Nothing in the config asks for compression (only the interval is
    # shortened): Prometheus asks for gzip on its own, and qstatsd must
    # answer with it.
    d = daemon()
    proxy = HeaderProxy(d.port)

    def check(base):
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.5)
            try:
                targets = json.loads(http(f"{base}/api/v1/targets")[2])["data"]["activeTargets"]
            except OSError:
                continue
            if targets and targets[0]["health"] == "up" and proxy.heads()[1]:
                break
        else:
            raise AssertionError(f"no healthy scrape through the proxy: {proxy.heads()}")
        assert targets[0]["lastError"] == "", targets
        requests, responses = proxy.heads()
        assert requests and all(r.startswith("GET /metrics ") for r in requests), requests
        assert all("gzip" in header_of(r, "Accept-Encoding") for r in requests), requests
        assert all(r.startswith("HTTP/1.1 200") for r in responses), responses
        assert all(header_of(r, "Content-Encoding") == "gzip" for r in responses), responses
        assert all(header_of(r, "Vary") == "Accept-Encoding" for r in responses), responses
        # ... and what it decompressed is the exposition (the scrapes counted)
        got = prom_query(base, "qstats_exporter_scrapes_total")
        assert got and float(got[0]["value"][1]) >= 1, got

    try:
        run_prometheus(f"127.0.0.1:{proxy.port}", check, timeout=None)
    finally:
        proxy.close()


def check_prometheus(base, d):
    before = d.recording.load(0)
    deadline = time.time() + 60
    rates = quant = None
    while time.time() < deadline:
        d.advance(0.5)          # the guest runs between scrapes
        time.sleep(0.5)
        try:
            rates = prom_query(base, "rate(qstats_kvm_vcpu_exits_total[5s])")
            quant = prom_query(base, "histogram_quantile(0.5, "
                               "rate(qstats_kvm_vcpu_halt_wait_hist_seconds_bucket[5s]))")
        except OSError:
            continue        # not listening yet
        done_rates = len(rates) == 2 and all(float(r["value"][1]) > 0 for r in rates)
        done_quant = len(quant) == 2 and all(0 < float(r["value"][1]) < float("inf")
                                             for r in quant)
        if done_rates and done_quant:
            break
    else:
        raise AssertionError(f"Prometheus never saw the data: rates={rates} quantiles={quant}")
    # every halt fell in one bucket [lo, hi): its median is the midpoint,
    # by Prometheus' linear interpolation inside the bucket
    lo, hi = grown_log2_bucket(before, d.recording.load(0))
    for r in quant:
        assert abs(float(r["value"][1]) - (lo + hi) / 2) < 1e-9, (r, lo, hi)
    assert sorted(r["metric"]["vcpu"] for r in rates) == ["0", "1"], rates
    assert all(r["metric"]["vm"] == "itest" and r["metric"]["job"] == "qstats" for r in rates)
    # The scrape itself is healthy (Prometheus asks for OpenMetrics first).
    targets = json.loads(http(f"{base}/api/v1/targets")[2])["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets
    assert targets[0]["lastError"] == "", targets
    # Every family of the live schemas is queryable.
    names = {r["metric"]["__name__"] for r in
             prom_query(base, 'group by (__name__) ({__name__=~"qstats_kvm_.+"})')}
    missing = [s for s in expected_families(d).values() if s not in names]
    assert not missing, missing


if __name__ == "__main__":
    run_module(globals())
