"""The live web page at / in a real browser: Debian's headless Chromium,
driven over its DevTools protocol (python3-websocket), opens the page of a
real qstatsd on a recorded VM whose files the test advances, and the DOM
must hold the numbers of the very API answers the page received (read back
from the browser's network log): a rate is the delta of two answers over
their monotonic timestamps, a heatmap cell the new samples of one bucket,
a bar a bucket's count, the balloon's stacked memory and the sched wait
share per vCPU the same arithmetic on real reports and real threads.

Also: a stat name carrying markup (handed over in a crafted memfd: the
binary-stats reader accepts any NUL-terminated name) and a VM name with
markup show as text, creating no element and running nothing; the page
makes no request outside the daemon; every response carries the strict
CSP, and the page runs under it without a single violation or error;
without the chart library (--metrics-d3 pointing nowhere) the page says the
charts are unavailable and shows the same numbers in tables.  A screenshot
is left in the build directory (test-artifacts/web-view.png)."""
import base64
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from qstest import BUILD, FIXTURES, Daemon, recording, run_module, skip

AGENT = os.path.join(BUILD, "qstats-guest-agent")
D3 = "/usr/share/javascript/d3/d3.min.js"
ARTIFACTS = os.path.join(BUILD, "test-artifacts")
BALLOON_PATH = "/machine/peripheral-anon/device[0]"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HOSTILE = '<script>window.qsPwned=1</script><img src=x onerror="window.qsPwned=2">'


def vcpu(i):
    return f"/machine/unattached/device[{i}]"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics_daemon(*args, **kw):
    """A Daemon serving metrics on a free port, and the page's base URL.
    Another program may take the port between free_port() and the daemon's
    bind (tests run in parallel): then another port is tried."""
    for _ in range(5):
        port = free_port()
        try:
            d = Daemon("--metrics", f"127.0.0.1:{port}", *args, **kw)
        except RuntimeError as e:
            if "Address already in use" in str(e):
                continue
            raise
        return d, f"http://127.0.0.1:{port}"
    raise AssertionError("no free port for the metrics server after 5 tries")


def websocket_module():
    """python3-websocket (Debian's websocket-client).  A python3 that is
    not Debian's (pyenv, venv) does not see dist-packages: the module is
    pure Python, so Debian's copy is taken from there."""
    try:
        import websocket
    except ImportError:
        dist = "/usr/lib/python3/dist-packages"
        if not os.path.isdir(os.path.join(dist, "websocket")):
            skip("python3-websocket is not installed (scripts/deps.sh installs it)")
        sys.path.append(dist)
        import websocket
    return websocket


def http(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Browser:
    """Headless Chromium with one page, driven over the DevTools protocol.
    Network events are kept: every request the page makes, and the bodies
    of the API answers it received."""

    def __init__(self):
        exe = shutil.which("chromium")
        if not exe:
            skip("chromium is not installed (scripts/deps.sh installs chromium and "
                 "python3-websocket)")
        ws = websocket_module()
        self.profile = tempfile.mkdtemp(prefix="qstats-chromium-")
        args = [exe, "--headless", "--disable-gpu", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", "--no-first-run",
                "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--window-size=1200,2600", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")      # Chromium refuses root otherwise
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            port = self.devtools_port()
            page = None
            deadline = time.time() + 60
            while not page and time.time() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                            timeout=30) as r:
                    page = next((t for t in json.load(r) if t["type"] == "page"), None)
                time.sleep(0.1)
            assert page, "Chromium opened no page"
            self.ws = ws.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                           suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self.next_id = 0
        self.events = []
        self.requests = {}          # requestId -> url
        self.responses = {}         # requestId -> response
        self.bodies = []            # [(requestId, url, json)] of /api/v1/stats, in order
        self.pending = []           # requestIds whose body is to be read
        self.errors = []
        self.call("Network.enable", {"maxTotalBufferSize": 64 << 20,
                                     "maxResourceBufferSize": 8 << 20})
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")

    def devtools_port(self):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                with open(self.log.name) as f:
                    skip(f"chromium cannot run here (exit {self.proc.returncode}): "
                         f"{f.read()[-500:]}")
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("Chromium did not open its DevTools port")

    def call(self, method, params=None):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.on_event(msg)

    def on_event(self, msg):
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Network.requestWillBeSent":
            self.requests[p["requestId"]] = p["request"]["url"]
        elif m == "Network.responseReceived":
            self.responses[p["requestId"]] = p["response"]
        elif m == "Network.loadingFinished":
            url = self.requests.get(p["requestId"], "")
            if "/api/v1/stats" in url:
                self.pending.append(p["requestId"])
        elif m == "Runtime.exceptionThrown":
            self.errors.append(p["exceptionDetails"].get("exception", {}).get(
                "description", p["exceptionDetails"].get("text")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning"):
            self.errors.append(" ".join(str(a.get("value", a.get("description")))
                                        for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            self.errors.append(f"{p['entry'].get('url', '')}: {p['entry']['text']}")

    def pump(self):
        """Handles the events that arrived, reading API bodies as they finish."""
        self.ws.settimeout(0.05)
        try:
            while True:
                self.on_event(json.loads(self.ws.recv()))
        except Exception:  # noqa: BLE001 - a timeout: nothing more for now
            pass
        finally:
            self.ws.settimeout(60)
        while self.pending:
            rid = self.pending.pop(0)
            body = self.call("Network.getResponseBody", {"requestId": rid})
            text = base64.b64decode(body["body"]).decode() if body["base64Encoded"] \
                else body["body"]
            self.bodies.append((rid, self.requests[rid], json.loads(text)))

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, timeout=60, what=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.pump()
            v = self.evaluate(expr)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or expr}; "
                             f"page errors: {self.errors}")

    def open(self, url):
        self.call("Page.navigate", {"url": url})
        self.wait("document.readyState === 'complete'", what="the page to load")

    def polls(self):
        return int(self.evaluate("Number(document.body.dataset.polls || 0)"))

    def wait_polls(self, n, timeout=60):
        """Until the page has drawn n more answers than now."""
        target = self.polls() + n
        self.wait(f"Number(document.body.dataset.polls || 0) >= {target}", timeout,
                  what=f"{n} more polls")
        self.pump()

    def screenshot(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = self.call("Page.captureScreenshot", {"format": "png",
                                                    "captureBeyondViewport": True})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def stats_answers(self):
        """{monotonic timestamp: /api/v1/stats answer} the page received."""
        self.pump()
        return {b["timestamp"]["monotonic"]: b for _, _, b in self.bodies}

    def close(self):
        if getattr(self, "ws", None):
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- what the page shows, read from its DOM -----------------------------

# The marks of a chart with the data d3 bound to them, and the tables.
READ_PAGE = r"""(() => {
  const datum = (el) => (globalThis.d3 ? d3.select(el).datum() : null);
  const series = (sel) => [...document.querySelectorAll(sel)].map((p) => ({
    key: p.dataset.series || p.dataset.layer,
    points: (datum(p).points || []).map((q) => ({t: q.t, v: q.v, delta: q.delta, dt: q.dt,
                                                 y: q.y, y0: q.y0}))}));
  const cells = (sel) => [...document.querySelectorAll(sel)].map((r) => ({
    bucket: Number(r.dataset.bucket), count: Number(r.dataset.count),
    t: r.dataset.t === undefined ? null : Number(r.dataset.t),
    rate: datum(r) && datum(r).rate}));
  const table = (id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) =>
    [...tr.cells].map((td) => ({text: td.textContent, value: td.dataset.value,
                               key: td.dataset.key})));
  const text = (id) => document.getElementById(id).textContent;
  return {
    rates: series("#rate-chart path.series"), rateUnit: document.getElementById("rate-caption").dataset.unit,
    heat: cells("#hist-heatmap rect.cell"), bars: cells("#hist-dist rect.bar"),
    memory: series("#mem-chart path.layer"), sched: series("#sched-chart path.series"),
    rateTable: table("rate-table"), histTable: table("hist-table"),
    memTable: table("mem-table"), schedTable: table("sched-table"),
    vm: text("ov-vm"), providers: text("ov-providers"), vcpus: text("ov-vcpus"),
    collected: Number(document.getElementById("ov-collected").dataset.monotonic),
    status: text("status"), memStatus: text("mem-status"), schedStatus: text("sched-status"),
    p50: text("hist-p50"), p99: text("hist-p99"), count: text("hist-count"),
    noCharts: !document.getElementById("no-charts").hidden,
    svgs: document.querySelectorAll("svg").length,
  };
})()"""


def read_page(b):
    return b.evaluate(READ_PAGE)


def pick(b, input_id, value):
    """Types a name into a picker as a user would (the input event)."""
    b.evaluate(f"""(() => {{ const e = document.getElementById({json.dumps(input_id)});
        e.value = {json.dumps(value)}; e.dispatchEvent(new Event('input')); }})()""")


def values(answer, target, provider, name):
    """{qom-path or "vm": value} of one stat in an API answer."""
    out = {}
    for r in answer[target]:
        if r["provider"] == provider:
            for s in r["stats"]:
                if s["name"] == name:
                    out[r.get("qom-path", "vm")] = s["value"]
    return out


def previous(answers, t):
    """The answer the page had before the one at monotonic t."""
    earlier = [m for m in answers if m < t]
    assert earlier, f"no answer before {t}"
    return answers[max(earlier)]


def check_rates(page, answers, provider, name, scale, target="vcpu"):
    """Every drawn point of every series is the delta of two consecutive
    answers the page received over their monotonic interval (per vCPU; the
    sum over vCPUs).  Returns the deltas of the points checked."""
    deltas = []
    assert page["rates"], "no rate series drawn"
    for s in page["rates"]:
        for p in s["points"]:
            if p["v"] is None:
                continue
            b = answers[p["t"]]
            a = previous(answers, p["t"])
            vb, va = values(b, target, provider, name), values(a, target, provider, name)
            if s["key"] == "sum":
                delta = sum(vb[k] - va[k] for k in vb if k in va)
            else:
                delta = vb[s["key"]] - va[s["key"]]
            dt = b["timestamp"]["monotonic"] - a["timestamp"]["monotonic"]
            assert p["delta"] == delta, (s["key"], p, delta)
            assert math.isclose(p["dt"], dt, rel_tol=1e-12), (p, dt)
            assert math.isclose(p["v"], delta * scale / dt, rel_tol=1e-9), (s["key"], p, delta, dt)
            deltas.append((s["key"], delta))
    return deltas


PIDFD_THREAD = os.O_EXCL       # linux/pidfd.h (Linux 6.9)


def start_sched_threads(q, n, procs):
    """n real processes that run and sleep in turn, each one's thread
    handed over as a vCPU's (thread pidfd, add-stats-fd provider sched);
    they are appended to procs, for the caller to kill."""
    code = ("import time\nwhile True:\n t = time.time()\n while time.time() - t < 0.01: pass\n"
            " time.sleep(0.05)\n")
    for i in range(n):
        p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        fd = os.pidfd_open(p.pid, PIDFD_THREAD)
        try:
            assert q.cmd("getfd", {"fdname": f"t{i}"}, fds=[fd]) == {"return": {}}
            r = q.cmd("add-stats-fd", {"fdname": f"t{i}", "provider": "sched",
                                       "target": "vcpu", "qom-path": vcpu(i)})
            assert r == {"return": {}}, r
        finally:
            os.close(fd)


def test_the_page_charts_the_numbers_of_the_api_answers_it_received():
    tmp = tempfile.mkdtemp(prefix="qstats-web-")
    balloon = os.path.join(tmp, "balloon.sock")
    procs = []
    try:
        d, base = metrics_daemon("--balloon", f"unix:{balloon}", "--name", "web-test",
                                 recorded=2)
        with d, Browser() as b:
            d.wait_for_socket(balloon)
            q = d.qmp()
            start_sched_threads(q, 2, procs)
            procs.append(subprocess.Popen([AGENT, "--connect", f"unix:{balloon}", "--proc",
                                           os.path.join(FIXTURES, "proc-linux-6.18")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            q.ok("qom-set", {"path": BALLOON_PATH, "property": "guest-stats-polling-interval",
                             "value": 1})
            b.open(base + "/")
            b.wait_polls(2)
            # The recorded VM moves one idle second per vCPU between polls.
            d.advance(1.0)
            b.wait_polls(2)
            d.advance(1.0)
            b.wait_polls(2)
            b.wait("document.querySelectorAll('#mem-chart path.layer').length === 3 && "
                   "document.getElementById('mem-status').textContent"
                   ".startsWith('The guest reported')", what="the balloon's reports")
            page = read_page(b)
            answers = b.stats_answers()

            assert page["vm"] == "web-test" and page["vcpus"] == "2", page
            providers = [s["provider"] for s in json.loads(http(base + "/api/v1/schemas")[2])
                         ["schemas"]]
            assert page["providers"] == ", ".join(dict.fromkeys(providers)), page["providers"]
            assert set(providers) == {"kvm", "balloon", "sched"}, providers
            assert "no answer" not in page["status"], page["status"]

            # exits: events per second; the recording adds 200 per idle second.
            assert page["rateUnit"] == "/s"
            assert [s["key"] for s in page["rates"]] == ["sum", vcpu(0), vcpu(1)]
            deltas = check_rates(page, answers, "kvm", "exits", 1)
            # Each vCPU file is rewritten whole (one pwrite): its delta is
            # whole; a poll may fall between the two files, so the sum's is not.
            assert [d for k, d in deltas if k == vcpu(1) and d] == [200, 200], deltas
            assert sum(d for k, d in deltas if k == "sum") == 800, deltas
            last = page["rates"][0]["points"][-1]
            row = page["rateTable"][0]
            assert row[0]["key"] == "sum" and float(row[1]["value"]) == last["v"], (row, last)

            # halt_wait_ns: time per second (0.99 s of halt per idle second and
            # vCPU, 1.98 s/s for the two: the axis is in s/s).
            pick(b, "rate-name", "halt_wait_ns")
            b.wait("document.getElementById('rate-caption').dataset.unit === 's/s'",
                   what="halt_wait_ns in s/s")
            page = read_page(b)
            deltas = check_rates(page, b.stats_answers(), "kvm", "halt_wait_ns", 1e-9)
            assert (vcpu(0), 990000000) in deltas, deltas

            # The heatmap: a cell per (interval, bucket) with new samples, their
            # count the bucket's growth between the two answers (both vCPUs).
            answers = b.stats_answers()
            assert page["heat"], "no heatmap cells"
            for c in page["heat"]:
                hb = values(answers[c["t"]], "vcpu", "kvm", "halt_wait_hist")
                ha = values(previous(answers, c["t"]), "vcpu", "kvm", "halt_wait_hist")
                assert c["count"] == sum(hb[k][c["bucket"]] - ha[k][c["bucket"]] for k in hb)
            # 100 timer ticks of 10 ms per vCPU per idle second, twice, for two
            # vCPUs: all in bucket [8.39 ms, 16.8 ms).
            assert {c["bucket"] for c in page["heat"]} == {24}, page["heat"]
            assert sum(c["count"] for c in page["heat"]) == 400, page["heat"]
            # The distribution: each bar a bucket of the latest answer, summed.
            latest = values(answers[page["collected"]], "vcpu", "kvm", "halt_wait_hist")
            summed = [sum(v[j] for v in latest.values()) for j in range(32)]
            assert page["bars"] and all(bar["count"] == summed[bar["bucket"]]
                                        for bar in page["bars"]), (page["bars"], summed)
            assert page["count"] == str(sum(summed))
            assert page["p50"].endswith(" ms") and page["p99"].endswith(" ms"), page

            # Balloon: used + caches + free stacked, from the guest's report.
            layers = {s["key"]: s["points"] for s in page["memory"]}
            assert list(layers) == ["used", "caches", "free"], layers
            for i, p in enumerate(layers["used"]):
                vm = values(answers[p["t"]], "vm", "balloon", "total-memory")["vm"], \
                    values(answers[p["t"]], "vm", "balloon", "free-memory")["vm"], \
                    values(answers[p["t"]], "vm", "balloon", "disk-caches")["vm"]
                total, free, caches = vm
                assert p["v"] == total - free - caches
                assert layers["caches"][i]["v"] == caches and layers["free"][i]["v"] == free
                assert layers["free"][i]["y0"] == layers["caches"][i]["y0"] + \
                    layers["caches"][i]["y"]
            assert page["memStatus"].startswith("The guest reported"), page["memStatus"]

            # sched: wait_ns over the interval, as a share of wall time per vCPU.
            assert [s["key"] for s in page["sched"]] == [vcpu(0), vcpu(1)], page["sched"]
            for s in page["sched"]:
                for p in s["points"]:
                    if p["v"] is None:
                        continue
                    b_, a_ = answers[p["t"]], previous(answers, p["t"])
                    delta = values(b_, "vcpu", "sched", "wait_ns")[s["key"]] - \
                        values(a_, "vcpu", "sched", "wait_ns")[s["key"]]
                    dt = b_["timestamp"]["monotonic"] - a_["timestamp"]["monotonic"]
                    assert p["delta"] == delta
                    assert math.isclose(p["v"], delta * 1e-9 / dt * 100, rel_tol=1e-9)
            assert [r[0]["text"] for r in page["schedTable"]] == ["vCPU 0", "vCPU 1"]

            # Staleness: the guest stops reporting; the page says so.
            procs[-1].kill()
            b.wait("document.getElementById('mem-status').textContent.startsWith('Stale')",
                   timeout=90, what="the balloon's staleness warning")
            b.screenshot(os.path.join(ARTIFACTS, "web-view.png"))

            # Nothing but the daemon was asked for anything.
            outside = [u for u in b.requests.values()
                       if not u.startswith(base + "/") and not u.startswith("data:")]
            assert not outside, outside
            urls = set(b.requests.values())
            assert {base + "/", base + "/javascript/d3/d3.min.js", base + "/app.js",
                    base + "/api/v1/stats", base + "/api/v1/schemas"} <= urls, urls
            for r in b.responses.values():
                if r["url"].startswith(base):
                    headers = {k.lower(): v for k, v in r["headers"].items()}
                    assert headers.get("content-security-policy") == CSP, r
            # The page ran under that policy without a violation or an error.
            assert not b.errors, b.errors
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def test_stat_and_vm_names_with_markup_show_as_text_and_run_nothing():
    """A foreign VMM chooses its stat names and the operator the VM name:
    the binary-stats reader takes any NUL-terminated name, so markup gets
    through QMP to the page, which must show it as text."""
    hist = "<b>hist</b><style>body{display:none}</style>"
    data = recording.build(
        [(HOSTILE, 0x00, 0, 1, 0, 0),          # cumulative, no unit
         (hist, 0x04 | 0x20, -9, 8, 8, 0)],    # log2 histogram of ns
        [5, 0, 1, 2, 3, 0, 0, 0, 0], id_=b"kvm-hostile", name_size=128)
    fd = os.memfd_create("hostile-stats")
    os.write(fd, data)
    try:
        d, base = metrics_daemon("--name", "<i>vm</i>&amp;", no_vm=True)
        with d, Browser() as b:
            q = d.qmp()
            assert q.cmd("getfd", {"fdname": "h"}, fds=[fd]) == {"return": {}}
            r = q.cmd("add-stats-fd", {"fdname": "h", "provider": "kvm", "target": "vm"})
            assert r == {"return": {}}, r
            names = [s["name"] for sc in q.ok("query-stats-schemas", {"provider": "kvm"})
                     for s in sc["stats"]]
            assert names == [HOSTILE, hist], names
            b.open(base + "/")
            b.wait_polls(2)
            pick(b, "rate-name", HOSTILE)
            pick(b, "hist-name", hist)
            b.wait_polls(1)
            page = b.evaluate(r"""(() => ({
              vmName: document.getElementById('vm-name').textContent,
              rateCaption: document.getElementById('rate-caption').textContent,
              histCaption: document.getElementById('hist-caption').textContent,
              options: [...document.querySelectorAll('datalist option')].map((o) => o.value),
              scripts: [...document.scripts].map((s) => s.getAttribute('src')),
              images: document.images.length,
              bold: document.querySelectorAll('main b, main i, h1 i, main style').length,
              styles: document.querySelectorAll('style').length,
              pwned: window.qsPwned === undefined ? null : window.qsPwned,
              visible: getComputedStyle(document.body).display,
              rows: document.querySelectorAll('#rate-table tbody tr').length,
              bars: [...document.querySelectorAll('#hist-dist rect.bar')].map((r) => Number(r.dataset.count)),
            }))()""")
            assert page["vmName"] == "<i>vm</i>&amp;", page
            assert page["rateCaption"] == f"kvm vm {HOSTILE}: rate of a cumulative statistic, in /s"
            assert page["histCaption"].startswith(f"kvm vm {hist}: log2-histogram"), page
            assert HOSTILE in page["options"] and hist in page["options"], page["options"]
            assert page["scripts"] == ["/javascript/d3/d3.min.js", "/app.js"], page
            assert page["images"] == 0 and page["bold"] == 0 and page["styles"] == 0, page
            assert page["pwned"] is None and page["visible"] == "block", page
            assert page["rows"] == 1 and page["bars"] == [1, 2, 3], page
            assert not b.errors, b.errors
    finally:
        os.close(fd)


def test_without_d3_the_page_says_charts_are_unavailable_and_shows_tables():
    missing = "/nonexistent/qstats-test/d3.min.js"
    d, base = metrics_daemon("--metrics-d3", missing, recorded=2)
    with d:
        status, _, _ = http(base + "/javascript/d3/d3.min.js")
        assert status == 404
        assert f"qstats: the web page shows tables only, without charts: {missing}: " \
            "No such file or directory" in d.log(), d.log()
        with Browser() as b:
            b.open(base + "/")
            b.wait_polls(2)
            d.advance(1.0)
            b.wait_polls(2)
            page = read_page(b)
            answers = b.stats_answers()
            assert page["noCharts"] and page["svgs"] == 0, page
            assert "no answer" not in page["status"], page["status"]
            # The table's rates are the same arithmetic on the same answers.
            rows = {r[0]["key"]: r for r in page["rateTable"]}
            assert set(rows) == {"sum", vcpu(0), vcpu(1)}, rows
            t = page["collected"]
            b_, a_ = answers[t], previous(answers, t)
            dt = b_["timestamp"]["monotonic"] - a_["timestamp"]["monotonic"]
            for key, row in rows.items():
                vb, va = values(b_, "vcpu", "kvm", "exits"), values(a_, "vcpu", "kvm", "exits")
                delta = sum(vb[k] - va[k] for k in vb) if key == "sum" else vb[key] - va[key]
                assert int(row[2]["value"]) == delta, (row, delta)
                assert math.isclose(float(row[1]["value"]), delta / dt, rel_tol=1e-9)
            hist = values(b_, "vcpu", "kvm", "halt_wait_hist")
            for r in page["histTable"]:
                assert int(r[1]["value"]) == sum(v[int(r[0]["key"])] for v in hist.values())
            assert page["histTable"], page
            # The page's own files, d3's only reference gone: the failed script
            # load is the one error the browser reports.
            assert all("d3.min.js" in e for e in b.errors), b.errors


def test_page_files_are_served_read_only_under_the_csp():
    d, base = metrics_daemon(recorded=1)
    with d:
        for path, ctype in [("/", "text/html; charset=utf-8"),
                            ("/index.html", "text/html; charset=utf-8"),
                            ("/app.js", "text/javascript; charset=utf-8"),
                            ("/style.css", "text/css; charset=utf-8"),
                            ("/javascript/d3/d3.min.js", "text/javascript; charset=utf-8"),
                            ("/api/v1/stats", "application/json")]:
            status, headers, body = http(base + path)
            assert status == 200 and headers["Content-Type"] == ctype, (path, status, headers)
            assert headers["Content-Security-Policy"] == CSP, (path, headers)
            assert headers["X-Content-Type-Options"] == "nosniff"
        with open(D3, "rb") as f:
            assert http(base + "/javascript/d3/d3.min.js")[2] == f.read()
        index = http(base + "/")[2].decode()
        assert "<script>" not in index and "<style" not in index and " style=" not in index
        assert "http:" not in index and "https:" not in index and "//" not in index.replace(
            "http-equiv", ""), "the page names no other origin"
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = http(base + "/", method)
            assert status == 405 and headers["Allow"] == "GET, HEAD", (method, status)
        status, _, body = http(base + "/api/v1/nosuch")
        assert status == 404 and json.loads(body) == {"error": "no such API path"}
        schemas = json.loads(http(base + "/api/v1/schemas")[2])
        assert schemas["name"] == "qstats" and isinstance(schemas["generation"], int)


if __name__ == "__main__":
    run_module(globals())
