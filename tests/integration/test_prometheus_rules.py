"""The Prometheus rules of packaging/prometheus/: Debian's promtool checks
both rule files and runs their unit tests (packaging/prometheus/tests/*.yml);
broken copies of the rules (a value, a threshold, a `for`, an alert's name,
the aggregation across vCPUs) must make those unit tests fail, so every rule
is really pinned by them.  Then the rules meet the real qstatsd: a recorded
VM and the real qstats-guest-agent (on the fixtures' /proc) scraped over
HTTP; every metric and label the rules read must be in that scrape (a
renamed family breaks this test), and promtool evaluates the rules over the
scraped series themselves, expecting one series per VM with the values the
test's guest activity implies (and the alerts silent for a quiet guest,
firing for an exit storm and an OOM kill made here).  promtool is installed
by scripts/deps.sh, so its absence is a failure, not a skip."""
import glob
import math
import os
import re
import shutil
import subprocess
import tempfile
import time

from qstest import BUILD, FIXTURES, Daemon, recording, run_module
from test_metrics_prometheus import free_port, http

HERE = os.path.dirname(os.path.abspath(__file__))
PROM = os.path.normpath(os.path.join(HERE, "../../packaging/prometheus"))
RULE_FILES = ["qstats.rules.yml", "qstats.alerts.yml"]
AGENT = os.path.join(BUILD, "qstats-guest-agent")
VM = "itest"
JOB = "qstats"
SCRAPE = 15                 # seconds of guest activity between two scrapes


def promtool(*args, cwd=None):
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: scripts/deps.sh installs it (Debian package prometheus)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def unit_test_files(root=PROM):
    files = sorted(glob.glob(os.path.join(root, "tests", "*.yml")))
    assert files, f"no promtool unit tests in {root}/tests"
    return files


# --- the rule files, read as text (the project has no YAML library) --------

RULE_LINE = re.compile(r"^(\s*)- (record|alert): (\S+)\s*$")
EXPR_LINE = re.compile(r"^(\s*)expr:\s*(.*)$")
FOR_LINE = re.compile(r"^(\s*)for:\s*(\S+)\s*$")


def parse_rules(text):
    """The rules of one file: kind, name, expr (one line), and where the
    rule and its expr are (line spans), for reading and for mutating."""
    lines = text.split("\n")
    rules = []
    for i, line in enumerate(lines):
        m = RULE_LINE.match(line)
        if m:
            rules.append({"kind": m[2], "name": m[3], "start": i})
    for r, nxt in zip(rules, rules[1:] + [None]):
        r["end"] = nxt["start"] if nxt else len(lines)
        for j in range(r["start"] + 1, r["end"]):
            m = EXPR_LINE.match(lines[j])
            if not m:
                continue
            indent = len(m[1])
            if m[2] in ("|", "|-", ">", ">-"):
                k = j + 1
                while k < r["end"] and (not lines[k].strip() or
                                        len(lines[k]) - len(lines[k].lstrip()) > indent):
                    k += 1
                body = [ln.strip() for ln in lines[j + 1:k]]
            else:
                k, body = j + 1, [m[2]]
            r["expr"] = " ".join(b for b in body if b)
            r["expr_span"] = (j, k, indent)
            break
        assert "expr" in r, f"rule {r['name']} has no expr"
    return rules


def all_rules(root=PROM):
    out = {}
    for f in RULE_FILES:
        with open(os.path.join(root, f)) as fh:
            out[f] = parse_rules(fh.read())
    return out


def metric_names(expr):
    """The scraped metric names an expression reads (not recorded series,
    whose names carry a level: prefix)."""
    return set(re.findall(r"(?<![\w:])qstats_\w+(?![\w:])", expr))


def label_names(expr):
    """Labels the expression groups by, drops or selects on."""
    names = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    names |= set(re.findall(r"\{\s*(\w+)\s*[!=]~?", expr))
    return names


def test_rule_files_pass_promtool_check():
    r = promtool("check", "rules", *RULE_FILES, cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    found = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", r.stdout)]
    rules = all_rules()
    # promtool's count per file equals what this test reads from it, so
    # the checks below see every rule.
    assert found == [len(rules[f]) for f in RULE_FILES], (found, r.stdout)
    kinds = {r_["kind"] for f in rules.values() for r_ in f}
    assert kinds == {"record", "alert"}, kinds


def test_recording_rule_names_follow_level_metric_operations():
    for rule in all_rules()["qstats.rules.yml"]:
        assert rule["kind"] == "record", rule["name"]
        level, metric, ops = (rule["name"].split(":") + ["", ""])[:3]
        assert level == "vm" and metric.startswith("qstats_") and ops, rule["name"]


def test_alerts_have_severity_summary_description_and_documented_thresholds():
    with open(os.path.join(PROM, "qstats.alerts.yml")) as f:
        text = f.read()
    lines = text.split("\n")
    header = "\n".join(ln for ln in lines if ln.startswith("#"))
    for rule in parse_rules(text):
        block = "\n".join(lines[rule["start"]:rule["end"]])
        assert re.search(r"^\s+severity: (critical|warning|info)\s*$", block, re.M), rule["name"]
        assert re.search(r"^\s+summary: \S", block, re.M), rule["name"]
        assert re.search(r"^\s+description: \S", block, re.M), rule["name"]
        assert re.search(r"^\s+for: \d+[smh]\s*$", block, re.M), rule["name"]
        # The file's comments say why each alert's threshold is what it is.
        assert f"# {rule['name']}:" in header, rule["name"]
        threshold = re.search(r">\s*(\d+)\s*$", rule["expr"])
        assert threshold, rule["expr"]


def test_promtool_unit_tests_pass():
    files = unit_test_files()
    r = promtool("test", "rules", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(files), r.stdout


# --- mutants: broken rules the unit tests must reject -----------------------

def quoted(expr):
    return "'" + expr.replace("'", "''") + "'"


def with_expr(text, rule, expr):
    lines = text.split("\n")
    j, k, indent = rule["expr_span"]
    lines[j:k] = [" " * indent + "expr: " + quoted(expr)]
    return "\n".join(lines)


def mutants():
    """(what, file, new text) for each way of breaking the rules that the
    unit tests must notice."""
    for f in RULE_FILES:
        with open(os.path.join(PROM, f)) as fh:
            text = fh.read()
        for rule in parse_rules(text):
            name, expr = rule["name"], rule["expr"]
            if rule["kind"] == "record":
                yield f"{name}: every value + 1", f, with_expr(text, rule, f"({expr}) + 1")
                continue
            lines = text.split("\n")
            renamed = lines[:]
            renamed[rule["start"]] = renamed[rule["start"]].replace(name, name + "Broken")
            yield f"{name} renamed", f, "\n".join(renamed)
            m = re.match(r"^(.*>\s*)(\d+(?:\.\d+)?)$", expr)
            lower = float(m[2]) * 0.9 if float(m[2]) > 0 else -1
            yield (f"{name}: threshold 10% lower", f,
                   with_expr(text, rule, f"{m[1]}{lower:g}"))
            for i in range(rule["start"], rule["end"]):
                fm = FOR_LINE.match(lines[i])
                if fm and not re.fullmatch(r"0+[smh]?", fm[2]):
                    shorter = lines[:]
                    shorter[i] = fm[1] + "for: 0m"
                    yield f"{name}: no `for`", f, "\n".join(shorter)
    with open(os.path.join(PROM, "qstats.rules.yml")) as fh:
        text = fh.read()
    assert "without (vcpu)" in text and '{vcpu!=""}' in text
    yield ("per-vCPU series not summed", "qstats.rules.yml",
           text.replace("without (vcpu)", "without (cpu)"))
    yield ("an aggregated series counted as one vCPU", "qstats.rules.yml",
           text.replace('{vcpu!=""}', ""))


def test_unit_tests_fail_when_a_rule_is_broken():
    tmp = tempfile.mkdtemp(prefix="qstats-rules-")
    try:
        copy = os.path.join(tmp, "prometheus")
        shutil.copytree(PROM, copy)
        files = unit_test_files(copy)
        r = promtool("test", "rules", *files)
        assert r.returncode == 0, "the unmodified copy must pass:\n" + r.stdout + r.stderr
        survivors = []
        count = 0
        for what, f, text in mutants():
            count += 1
            path = os.path.join(copy, f)
            with open(os.path.join(PROM, f)) as fh:
                original = fh.read()
            with open(path, "w") as fh:
                fh.write(text)
            try:
                assert promtool("check", "rules", path).returncode == 0, what
                if promtool("test", "rules", *files).returncode == 0:
                    survivors.append(what)
            finally:
                with open(path, "w") as fh:
                    fh.write(original)
        n_rules = sum(len(v) for v in all_rules().values())
        assert count > n_rules, count
        assert not survivors, f"the unit tests pass with these rules broken: {survivors}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- the real daemon ---------------------------------------------------------

class ScrapedVM:
    """qstatsd on a recorded VM with --metrics and --balloon, the real guest
    agent reporting a copy of a fixture /proc."""

    def __init__(self, proc_fixture, vcpus=2):
        assert os.access(AGENT, os.X_OK), f"{AGENT} is not built"
        self.tmp = tempfile.mkdtemp(prefix="qstats-rules-vm-")
        self.proc_dir = os.path.join(self.tmp, "proc")
        shutil.copytree(os.path.join(FIXTURES, proc_fixture), self.proc_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.instance = f"127.0.0.1:{self.port}"
        balloon = os.path.join(self.tmp, "balloon.sock")
        self.agent = None
        self.d = Daemon("--metrics", self.instance, "--name", VM,
                        "--balloon", "unix:" + balloon, recorded=vcpus)
        try:
            self.d.wait_for_socket(balloon)
            self.agent = subprocess.Popen([AGENT, "--connect", "unix:" + balloon,
                                           "--proc", self.proc_dir],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.wait_scrape(lambda s: "qstats_balloon_vm_last_update_age_seconds" in s.names,
                             "the agent's first report")
        except BaseException:
            self.close()
            raise

    def scrape(self):
        status, _, body = http(self.url)
        assert status == 200, (status, body[:500])
        return Scrape(body)

    def wait_scrape(self, pred, what, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                s = self.scrape()
                if pred(s):
                    return s
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.d.log()}")
            time.sleep(0.1)

    def poll_every_second(self):
        q = self.d.qmp()
        q.ok("qom-set", {"path": "/machine/peripheral-anon/device[0]",
                         "property": "guest-stats-polling-interval", "value": 1})
        q.close()

    def close(self):
        if self.agent:
            if self.agent.poll() is None:
                self.agent.kill()
            self.agent.wait()
            self.agent.stderr.close()
        self.d.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


class Scrape:
    """One exposition in the text format: samples keyed by name and labels,
    and each sample name's kind (counter-like values grow, gauges do not)."""

    def __init__(self, body):
        self.samples = {}
        self.types = {}
        for line in body.splitlines():
            if line.startswith("# TYPE "):
                _, _, fam, kind = line.split()
                self.types[fam] = kind
            elif line and not line.startswith("#"):
                m = SAMPLE.match(line)
                assert m, line
                self.samples[(m[1], m[2] or "{}")] = float(m[3])
        self.names = {name for name, _ in self.samples}

    def grows(self, name):
        if self.types.get(name) == "counter":
            return True
        return any(self.types.get(name[:-len(s)]) == "histogram"
                   for s in ("_bucket", "_sum", "_count") if name.endswith(s))

    def series(self, name):
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def labels_of(self, name):
        return {k for labels in self.series(name)
                for k in re.findall(r"(\w+)=\"", labels)}


def test_every_metric_and_label_the_rules_read_is_in_a_real_scrape():
    with ScrapedVM("proc-linux-6.18") as vm:
        scrape = vm.scrape()
    used = set()
    for rules in all_rules().values():
        for rule in rules:
            names = metric_names(rule["expr"])
            used |= names
            missing = sorted(n for n in names if n not in scrape.names)
            assert not missing, f"the rules read metrics qstatsd does not export: {missing}"
            have = set().union(*(scrape.labels_of(n) for n in names)) if names else set()
            for name in names:
                assert "vm" in scrape.labels_of(name), (name, scrape.labels_of(name))
            # a label the rule groups by or selects on is on one of its metrics
            absent = label_names(rule["expr"]) - have
            assert not absent, (f"{rule.get('record') or rule.get('alert')}: uses labels "
                                f"{sorted(absent)}, its metrics have {have}")
    assert len(used) >= 10, used


# --- the rules evaluated by promtool over real scraped series ----------------

def series_text(name, labels, instance):
    inner = labels[1:-1]
    extra = f'job="{JOB}",instance="{instance}"'
    return f"{name}{{{inner + ',' if inner else ''}{extra}}}"


def input_series(before, after, names, instance, steps=40):
    """promtool input series from two real scrapes SCRAPE seconds apart:
    counters and histograms keep growing as they did between the scrapes,
    gauges keep the later value."""
    out = []
    for name in sorted(names):
        series = after.series(name)
        assert series, f"{name} not in the scrape"
        for labels, v in sorted(series.items()):
            step = v - before.samples.get((name, labels), v) if after.grows(name) else 0
            start = v - step if after.grows(name) else v
            out.append(f"      - series: {quoted(series_text(name, labels, instance))}\n"
                       f"        values: '{start!r}+{step!r}x{steps}'\n")
    return "".join(out)


def close_to(rule, value):
    """A promtool check that the recorded series exists with exactly the
    per-VM labels and a value within 1e-9 (relative) of value."""
    if value == 0:
        return f"abs({rule}) < bool 1e-12"
    return f"abs({rule} - {value!r}) / {abs(value)!r} < bool 1e-9"


def unit_test(name, series, expected, alerts, instance):
    """One promtool test: expected maps a recorded series to its value
    (None: no series), alerts maps an alert name to whether it fires."""
    labels = f'{{instance="{instance}",job="{JOB}",vm="{VM}"}}'
    exprs = []
    for rule, value in expected.items():
        if value is None:
            exprs.append(f"      - expr: {quoted(rule)}\n        eval_time: 10m\n"
                         f"        exp_samples: []\n")
        else:
            exprs.append(f"      - expr: {quoted(close_to(rule, value))}\n"
                         f"        eval_time: 10m\n        exp_samples:\n"
                         f"          - labels: {quoted(labels)}\n            value: 1\n")
    # Alerts through their ALERTS series (labels and state; the annotation
    # texts are pinned by the unit tests).
    for alert, fires in alerts.items():
        exp = " []"
        if fires:
            exp = ("\n          - labels: " + quoted(
                f'ALERTS{{alertname="{alert}",alertstate="firing",severity="warning",'
                f'instance="{instance}",job="{JOB}",vm="{VM}"}}') + "\n            value: 1")
        selector = quoted('ALERTS{alertname="%s"}' % alert)
        exprs.append(f"      - expr: {selector}\n"
                     f"        eval_time: 10m\n        exp_samples:{exp}\n")
    return (f"  - name: {quoted(name)}\n    interval: {SCRAPE}s\n    input_series:\n"
            f"{series}    promql_expr_test:\n{''.join(exprs)}")


def run_unit_tests(tests):
    tmp = tempfile.mkdtemp(prefix="qstats-rules-real-")
    try:
        path = os.path.join(tmp, "real.yml")
        with open(path, "w") as f:
            f.write("rule_files:\n")
            for rf in RULE_FILES:
                f.write(f"  - {quoted(os.path.join(PROM, rf))}\n")
            f.write("evaluation_interval: 1m\ntests:\n" + "".join(tests))
        r = promtool("test", "rules", path)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def meminfo_bytes(proc_dir, key):
    with open(os.path.join(proc_dir, "meminfo")) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return None


def vmstat(proc_dir, key):
    with open(os.path.join(proc_dir, "vmstat")) as f:
        for line in f:
            k, v = line.split()
            if k == key:
                return int(v)
    return None


def guest_memory(proc_dir):
    """(total, available) as the rules should see them, from the /proc the
    agent reports: MemAvailable, else free + page cache."""
    total = meminfo_bytes(proc_dir, "MemTotal")
    avail = meminfo_bytes(proc_dir, "MemAvailable")
    if avail is None:
        avail = meminfo_bytes(proc_dir, "MemFree") + \
            vmstat(proc_dir, "nr_file_pages") * os.sysconf("SC_PAGE_SIZE")
    return total, avail


def used_metric_names():
    return set().union(*(metric_names(r["expr"]) for rules in all_rules().values()
                         for r in rules))


def add_polls(rec, successes):
    """Halt polls that succeed on each vCPU (advance() only adds attempts)."""
    for i, n in enumerate(successes):
        f = rec.load(i)
        rec.update(i, halt_successful_poll=f.get("halt_successful_poll") + n)


def memory_expectations(proc_dir):
    total, avail = guest_memory(proc_dir)
    return {"vm:qstats_balloon_vm_memory_available:bytes": avail,
            "vm:qstats_balloon_vm_memory_used:bytes": total - avail,
            "vm:qstats_balloon_vm_memory_available:ratio": avail / total}


def test_rules_on_real_scrapes_give_one_series_per_vm_and_alert_on_trouble():
    nvcpus = 3
    with ScrapedVM("proc-linux-6.18", vcpus=nvcpus) as vm:
        rec = vm.d.recording
        names = used_metric_names() & vm.scrape().names
        # A quiet guest: SCRAPE seconds of an idle guest, some polls succeed.
        s1 = vm.scrape()
        rec.advance(SCRAPE)
        successes = [300 * (i + 1) for i in range(nvcpus)]
        add_polls(rec, successes)
        s2 = vm.wait_scrape(lambda s: s.samples != s1.samples, "the advanced recording")
        # Trouble: every vCPU exits 2,000,000 more times (133k/s), and the
        # guest OOM-kills a process (its /proc changes, the agent reports it).
        oom = ("qstats_balloon_vm_oom_kills_total", '{vm="itest"}')
        kills = s2.samples[oom]
        for i in range(nvcpus):
            rec.update(i, exits=rec.load(i).get("exits") + 2_000_000)
        path = os.path.join(vm.proc_dir, "vmstat")
        with open(path) as f:
            text = f.read()
        assert re.search(r"^oom_kill \d+$", text, re.M)
        with open(path, "w") as f:
            f.write(re.sub(r"^oom_kill \d+$", f"oom_kill {int(kills) + 1}", text, flags=re.M))
        vm.poll_every_second()
        s3 = vm.wait_scrape(lambda s: s.samples.get(oom) == kills + 1, "the OOM kill")
        memory, instance = memory_expectations(vm.proc_dir), vm.instance

    hz = recording.TIMER_HZ
    ticks = hz * SCRAPE                     # halts (and poll attempts) per vCPU
    quiet = {
        "vm:qstats_kvm_vcpu_exits:rate1m": 2 * hz * nvcpus,
        "vm:qstats_kvm_vcpu_exits:rate5m": 2 * hz * nvcpus,
        "vm:qstats_kvm_vcpus:count": nvcpus,
        "vm:qstats_kvm_vcpu_exits:avg_rate5m": 2 * hz,
        "vm:qstats_kvm_vcpu_halt_successful_poll_per_attempted_poll:ratio_rate5m":
            sum(successes) / (ticks * nvcpus),
        # advance() sleeps each vCPU 99% of the time, one halt per tick.
        "vm:qstats_kvm_vcpu_halt_wait_hist_seconds:mean5m": 0.99 / hz,
        **memory,
    }
    storm = dict(quiet)
    storm.update({"vm:qstats_kvm_vcpu_exits:rate1m": 2_000_000 * nvcpus / SCRAPE,
                  "vm:qstats_kvm_vcpu_exits:rate5m": 2_000_000 * nvcpus / SCRAPE,
                  "vm:qstats_kvm_vcpu_exits:avg_rate5m": 2_000_000 / SCRAPE,
                  # no halts between these scrapes
                  "vm:qstats_kvm_vcpu_halt_successful_poll_per_attempted_poll:ratio_rate5m": None,
                  "vm:qstats_kvm_vcpu_halt_wait_hist_seconds:mean5m": None})
    assert set(quiet) == {r["name"] for r in all_rules()["qstats.rules.yml"]}
    run_unit_tests([
        unit_test("a quiet guest, scraped", input_series(s1, s2, names, instance), quiet,
                  {"QstatsExitStorm": False, "QstatsGuestOOMKills": False,
                   "QstatsBalloonStatsStale": False}, instance),
        unit_test("an exit storm and an OOM kill, scraped", input_series(s2, s3, names, instance),
                  storm, {"QstatsExitStorm": True, "QstatsGuestOOMKills": True,
                          "QstatsBalloonStatsStale": False}, instance),
    ])


def test_memory_rules_fall_back_to_free_plus_caches_for_a_guest_without_memavailable():
    with ScrapedVM("proc-linux-3.10", vcpus=1) as vm:
        s = vm.scrape()
        proc_dir, instance = vm.proc_dir, vm.instance
        assert "qstats_balloon_vm_available_memory_bytes" not in s.names, sorted(s.names)
        names = used_metric_names() & s.names
        expected = memory_expectations(proc_dir)
    assert not math.isclose(expected["vm:qstats_balloon_vm_memory_available:bytes"],
                            meminfo_bytes(os.path.join(FIXTURES, "proc-linux-3.10"), "MemFree"))
    run_unit_tests([unit_test("a guest without MemAvailable, scraped",
                              input_series(s, s, names, instance), expected,
                              {"QstatsBalloonStatsStale": False}, instance)])


if __name__ == "__main__":
    run_module(globals())
