"""Compatibility with QEMU, on any host: QEMU 7.2 is the oracle, live
(qemu-system-x86_64 under KVM where /dev/kvm works, else under TCG) and
recorded (tests/fixtures/qemu-7.2-qmp-transcript.json, captured on the KVM
host whose stats files are tests/fixtures/recorded-linux-6.18).

Every exchange is classified by whether QEMU's answer carries KVM
statistics (a stats result, a schema, an HMP stat line):
- exchanges without statistics -- the greeting, negotiation, every protocol
  and argument error, HMP errors, the balloon's QOM properties and
  query-balloon, query-status, filters that select nothing -- are compared
  LIVE with a QEMU on this machine, against qstatsd on the recorded VM;
  raw protocol replies byte for byte;
- stats-bearing exchanges are compared with the TRANSCRIPT, qstatsd serving
  the recorded VM of the same host, so stat name sets must match exactly;
  requests the transcript lacks are compared with QEMU's filters applied to
  the transcript's unfiltered answers (qemu_oracle.derived, itself checked
  on the transcript's filtered exchanges and on a live QEMU under KVM);
- a QEMU under TCG has no KVM statistics at all: every stats request is
  also sent to it and to a qstatsd without a VM, whose replies must be equal;
- where KVM works, a live QEMU under KVM and qstatsd on the micro-VM (the
  same kernel) answer every exchange alike, stats included.

Rules (issue 2): errors must carry the same class and desc byte for byte;
successes must have the same structure (keys per object, JSON types, number
of results per provider/target), the same stat NAME SETS per result, and the
same schema fields per stat name.  Values and list order are free.

Known deliberate differences, and how the rules absorb them:
- Order: qstatsd answers in natural order, QEMU reverses every list
  (results, stats, schemas, histogram buckets): everything is compared as a
  multiset; histograms only by length.
- vCPU QOM paths: qstatsd's vCPU i is /machine/unattached/device[i], QEMU
  numbers its QOM children non-contiguously (device[0], device[2]): paths
  are mapped by cpu-index, both in requests and in replies.
- The balloon lives at /machine/peripheral/balloon0 in QEMU (-device
  virtio-balloon-pci,id=balloon0) and at /machine/peripheral-anon/device[0]
  in qstatsd.
- Balloon guest-stats: QEMU 7.2 reports 10 keys, qstatsd all 16 (qstats
  follows QEMU 9.2+: docs/qemu-behaviour.md#balloon-records): QEMU's keys
  must be a subset of qstatsd's, every one unset (18446744073709551615, no
  guest driver / no agent).
- `query-balloon` / `info balloon`: the balloon size is the guest memory
  size, which differs (QEMU -m 256, the micro-VM a few MiB): value free.
- QEMU 7.2 predates provider/target `cryptodev` (8.0) and has no `balloon`
  provider: its enum error for those is an expected difference when qstatsd
  answers [] (marked XFAIL with its reason; any other answer fails).
- The greeting's version and package are each program's own; QEMU offers
  the `oob` capability (its QMP monitor runs in an I/O thread), qstatsd
  offers none, so enabling it is refused (both XFAIL with their reason).
"""
import json
import os
import re
import shutil
import tempfile

from qstest import QMP, Daemon, need_kvm, run_module
from qemu_oracle import BALLOON_PATH as QEMU_BALLOON, TRANSCRIPT, LiveQemu, carries_stats, \
    derived, transcript_full, without_qstats_providers

OUR_BALLOON = "/machine/peripheral-anon/device[0]"
VCPUS = 2
UNSET = 18446744073709551615
BALLOON_KEYS = {"stat-" + k for k in (
    "swap-in", "swap-out", "major-faults", "minor-faults", "free-memory", "total-memory",
    "available-memory", "disk-caches", "htlb-pgalloc", "htlb-pgfail", "oom-kills",
    "alloc-stalls", "async-scans", "direct-scans", "async-reclaims", "direct-reclaims")}


# --------------------------------------------------------------------------
# Spaces: requests are written with <vcpu N> and <balloon> tokens and
# translated per peer; replies are translated back before comparing.

class Space:
    def __init__(self, name, vcpu_paths, balloon):
        self.name = name
        self.to_peer = {f"<vcpu {i}>": p for i, p in enumerate(vcpu_paths)}
        self.to_peer["<balloon>"] = balloon
        self.from_peer = {p: t for t, p in self.to_peer.items()}

    def _map(self, obj, table):
        if isinstance(obj, str):
            return table.get(obj, obj)
        if isinstance(obj, list):
            return [self._map(x, table) for x in obj]
        if isinstance(obj, dict):
            return {k: self._map(v, table) for k, v in obj.items()}
        return obj

    def request(self, args):
        return self._map(args, self.to_peer)

    def canon(self, reply):
        return self._map(reply, self.from_peer)


def transcript_cpu_paths():
    cpus = next(e["reply"]["return"] for e in TRANSCRIPT
                if e.get("request", {}).get("execute") == "query-cpus-fast")
    return [c["qom-path"] for c in sorted(cpus, key=lambda c: c["cpu-index"])]


TRANSCRIPT_SPACE = Space("transcript", transcript_cpu_paths(), QEMU_BALLOON)
OUR_SPACE = Space("qstatsd", [f"/machine/unattached/device[{i}]" for i in range(VCPUS)], OUR_BALLOON)
TRANSCRIPT_FULL = transcript_full(TRANSCRIPT_SPACE.canon)


# --------------------------------------------------------------------------
# Comparison by rule.  Each function returns a list of problems ([] = match).

def jtype(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer" if 0 <= v <= UNSET else "integer out of u64"
    if isinstance(v, list):
        return f"list[{len(v)}]" + ("" if all(jtype(x) == "integer" for x in v) else " (non-u64)")
    return type(v).__name__


def stats_problems(ours, theirs, where):
    probs = []
    for s in ours + theirs:
        if set(s) != {"name", "value"}:
            probs.append(f"{where}: stat keys {sorted(s)}")
    a = {s["name"]: s["value"] for s in ours}
    b = {s["name"]: s["value"] for s in theirs}
    if len(a) != len(ours):
        probs.append(f"{where}: duplicate stat names in qstatsd's result")
    if set(a) != set(b):
        probs.append(f"{where}: names only in qstatsd {sorted(set(a) - set(b))}, "
                     f"only in QEMU {sorted(set(b) - set(a))}")
    for n in sorted(set(a) & set(b)):
        if jtype(a[n]) != jtype(b[n]):
            probs.append(f"{where}: {n} is {jtype(a[n])} in qstatsd, {jtype(b[n])} in QEMU")
    return probs


def group(items, key):
    out = {}
    for x in items:
        out.setdefault(key(x), []).append(x)
    return out


def grouped_problems(ours, theirs, key, pair_fn, what):
    """Pairs the items of both lists by key; items sharing a key (a provider
    requested twice) are paired by their stat names, as order is free."""
    if not isinstance(ours, list) or not isinstance(theirs, list):
        return [f"{what}: expected lists, got {jtype(ours)} / {jtype(theirs)}"]
    ga, gb = group(ours, key), group(theirs, key)
    for g in (ga, gb):
        for k in g:
            g[k].sort(key=lambda x: sorted(s.get("name", "") for s in x.get("stats", [])))
    counts_a = {k: len(v) for k, v in ga.items()}
    counts_b = {k: len(v) for k, v in gb.items()}
    if counts_a != counts_b:
        return [f"{what} per key: qstatsd {counts_a}, QEMU {counts_b}"]
    probs = []
    for k in ga:
        for x, y in zip(ga[k], gb[k]):
            if set(x) != set(y):
                probs.append(f"{k}: keys {sorted(x)} vs {sorted(y)}")
            else:
                probs += pair_fn(k, x, y)
    return probs


def query_stats_problems(ours, theirs):
    return grouped_problems(ours, theirs, lambda r: (r.get("provider"), r.get("qom-path")),
                            lambda k, x, y: stats_problems(x["stats"], y["stats"], f"{k}"),
                            "results")


def schemas_problems(ours, theirs):
    def pair(k, x, y):
        a = {e["name"]: e for e in x["stats"]}
        b = {e["name"]: e for e in y["stats"]}
        probs = []
        if set(a) != set(b):
            probs.append(f"{k}: names only in qstatsd {sorted(set(a) - set(b))}, "
                         f"only in QEMU {sorted(set(b) - set(a))}")
        for n in sorted(set(a) & set(b)):
            if a[n] != b[n]:
                probs.append(f"{k}: schema of {n}: qstatsd {a[n]}, QEMU {b[n]}")
        return probs
    return grouped_problems(ours, theirs, lambda s: (s.get("provider"), s.get("target")),
                            pair, "schemas")


STAT_LINE = re.compile(r"^    (\S+) \(([^)]*)\): (.*)$")


def hmp_value(v):
    if v in ("yes", "no"):
        return "<bool>"
    if re.fullmatch(r"-?\d+", v):
        return "<n>"
    items = re.findall(r"\[(\d+)\]=-?\d+ ", v)
    if items and re.sub(r"\[\d+\]=-?\d+ ", "", v) == "":
        return f"<list {len(items)}>"
    return v


def hmp_lines(text):
    """Lines with the values replaced by a placeholder of their form."""
    if text and not text.endswith("\r\n"):
        return ["<no final CRLF>"]
    out = []
    for line in text.split("\r\n")[:-1]:
        m = STAT_LINE.match(line)
        if m:
            out.append(f"    {m[1]} ({m[2]}): {hmp_value(m[3])}")
        else:
            out.append(re.sub(r"^(balloon: actual=)\d+$", r"\1<n>", line))
    return out


def hmp_problems(ours, theirs):
    la, lb = sorted(hmp_lines(ours)), sorted(hmp_lines(theirs))
    if la == lb:
        return []
    return ["lines differ: qstatsd " + json.dumps(sorted(set(la) - set(lb)))[:600] +
            " QEMU " + json.dumps(sorted(set(lb) - set(la)))[:600] +
            (f" (counts {len(la)} vs {len(lb)})" if set(la) == set(lb) else "")]


def guest_stats_problems(ours, theirs):
    probs = []
    if set(ours) != {"stats", "last-update"} or set(theirs) != {"stats", "last-update"}:
        return [f"keys {sorted(ours)} vs {sorted(theirs)}"]
    if jtype(ours["last-update"]) != jtype(theirs["last-update"]):
        probs.append("last-update types differ")
    if set(ours["stats"]) != BALLOON_KEYS:
        probs.append(f"qstatsd's keys are not the contract's 16: {sorted(ours['stats'])}")
    if not set(theirs["stats"]) <= set(ours["stats"]):
        probs.append(f"QEMU keys missing in qstatsd: {sorted(set(theirs['stats']) - set(ours['stats']))}")
    for who, d in (("qstatsd", ours), ("QEMU", theirs)):
        bad = {k: v for k, v in d["stats"].items() if v != UNSET}
        if bad:
            probs.append(f"{who}: set values without a guest driver: {bad}")
    return probs


def success_problems(cmd, args, ours, theirs):
    if cmd == "query-stats":
        return query_stats_problems(ours, theirs)
    if cmd == "query-stats-schemas":
        return schemas_problems(ours, theirs)
    if cmd == "human-monitor-command":
        return hmp_problems(ours, theirs)
    if cmd == "query-balloon":
        return [] if {k: jtype(v) for k, v in ours.items()} == {k: jtype(v) for k, v in theirs.items()} \
            else [f"{ours} vs {theirs}"]
    if cmd == "qom-get" and args.get("property") == "guest-stats":
        return guest_stats_problems(ours, theirs)
    return [] if ours == theirs else [f"{ours!r} vs {theirs!r}"]    # qom-set, query-status...


# Deliberate differences that turn a mismatch into an expected failure.
ENUM_UNKNOWN_TO_72 = re.compile(r"Parameter '(provider|target)' does not accept value '(cryptodev|balloon)'")


def expected_difference(ours, theirs):
    err = theirs.get("error", {})
    if ENUM_UNKNOWN_TO_72.fullmatch(err.get("desc", "")) and ours == {"return": []}:
        value = ENUM_UNKNOWN_TO_72.fullmatch(err["desc"])[2]
        return (f"QEMU 7.2 has no {value!r} enum value "
                f"({'cryptodev came in 8.0' if value == 'cryptodev' else 'balloon is a qstats provider'}); "
                "qstatsd accepts it and, having no such results, answers []")
    return None


def compare(cmd, args, ours, theirs):
    """(status, detail): MATCH, XFAIL (documented difference) or FAIL."""
    if "error" in ours or "error" in theirs:
        if ours.get("error") == theirs.get("error") and "error" in ours:
            return "MATCH", "error: " + ours["error"]["desc"]
        why = expected_difference(ours, theirs)
        if why:
            return "XFAIL", why
        return "FAIL", f"qstatsd {json.dumps(ours)[:300]} / QEMU {json.dumps(theirs)[:300]}"
    if set(ours) != {"return"} or set(theirs) != {"return"}:
        return "FAIL", f"reply keys {sorted(ours)} vs {sorted(theirs)}"
    probs = success_problems(cmd, args or {}, ours["return"], theirs["return"])
    if probs:
        return "FAIL", "; ".join(probs)
    return "MATCH", summary(cmd, ours["return"])


def summary(cmd, ret):
    if cmd == "query-stats":
        return f"{len(ret)} results" + "".join(
            f", {r['provider']}{' ' + r['qom-path'] if 'qom-path' in r else ''}:{len(r['stats'])}"
            for r in ret)
    if cmd == "query-stats-schemas":
        return ", ".join(f"{s['provider']}/{s['target']}:{len(s['stats'])}" for s in ret) or "[]"
    if cmd == "human-monitor-command":
        return f"{ret.count(chr(10))} lines"
    return json.dumps(ret)[:60]


def greeting_problems(ours, theirs):
    """Same structure; version numbers and package are each program's own."""
    probs = []
    if set(ours) != {"QMP"} or set(theirs) != {"QMP"}:
        return [f"keys {sorted(ours)} vs {sorted(theirs)}"]
    a, b = ours["QMP"], theirs["QMP"]
    if set(a) != set(b) or set(a) != {"version", "capabilities"}:
        return [f"QMP keys {sorted(a)} vs {sorted(b)}"]
    if set(a["version"]) != set(b["version"]) or set(a["version"]) != {"qemu", "package"}:
        probs.append(f"version keys {sorted(a['version'])} vs {sorted(b['version'])}")
    elif list(a["version"]["qemu"]) != list(b["version"]["qemu"]) or \
            not all(jtype(v) == "integer" for v in a["version"]["qemu"].values()) or \
            not isinstance(a["version"]["package"], str):
        probs.append(f"version {a['version']} vs {b['version']}")
    if a["capabilities"] != [] or not set(b["capabilities"]) <= {"oob"}:
        probs.append(f"capabilities {a['capabilities']} vs {b['capabilities']}")
    return probs


ENABLE_OOB = '{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}'


def compare_raw(text, ours, theirs):
    """Raw reply lines: equal bytes, or a documented difference."""
    if ours == theirs:
        return "MATCH", ours[:100]
    if text == "<greeting>":
        probs = greeting_problems(json.loads(ours), json.loads(theirs))
        if probs:
            return "FAIL", "; ".join(probs)
        if json.loads(theirs)["QMP"]["capabilities"]:
            return "XFAIL", ("version and package differ; QEMU offers 'oob' (its QMP monitor "
                             "runs in an I/O thread), qstatsd offers none")
        return "MATCH", "version and package differ"
    if text == ENABLE_OOB and json.loads(theirs) == {"return": {}} and \
            json.loads(ours) == {"error": {"class": "GenericError", "desc": "Capability oob not available"}}:
        return "XFAIL", "qstatsd offers no OOB capability (see the greeting), QEMU does"
    return "FAIL", f"qstatsd {ours[:300]!r} / QEMU {theirs[:300]!r}"


# --------------------------------------------------------------------------
# Exchanges: (label, balloon?, command, canonical args, reference reply or
# None, carries stats?)

def is_balloon(req):
    cmd, args = req["execute"], req.get("arguments", {})
    return cmd == "query-balloon" or (cmd in ("qom-get", "qom-set") and args.get("path") == QEMU_BALLOON) \
        or (cmd == "human-monitor-command" and args["command-line"] == "info balloon")


def is_stats(req):
    cmd, args = req["execute"], req.get("arguments", {})
    if cmd in ("query-stats", "query-stats-schemas"):
        return True
    return cmd == "human-monitor-command" and re.match(r"(info stats|cpu)\b", args["command-line"])


def transcript_exchanges():
    out = []
    for i, e in enumerate(TRANSCRIPT):
        req = e.get("request")
        if not req or not (is_stats(req) or is_balloon(req)):
            continue
        args = TRANSCRIPT_SPACE.canon(req.get("arguments"))
        reply = TRANSCRIPT_SPACE.canon(e["reply"])
        out.append((f"#{i} {e['tag']}", is_balloon(req), req["execute"], args, reply,
                    carries_stats(req["execute"], reply)))
    return out


def qs(**args):
    return ("query-stats", args)


def hmp(line):
    return ("human-monitor-command", {"command-line": line})


def balloon_set(value, prop="guest-stats-polling-interval"):
    return ("qom-set", {"path": "<balloon>", "property": prop, "value": value})


# Requests beyond the transcript whose answers carry no statistics.
EXTRA = [
    ("missing target", qs()),
    ("bad enum in nested list", qs(target="vm", providers=[{"provider": "kvm"}, {"provider": "nope"}])),
    ("unexpected member in nested list", qs(target="vm", providers=[{"provider": "kvm", "names": [], "foo": True}])),
    ("missing member in nested list", qs(target="vm", providers=[{"names": ["exits"]}])),
    ("wrong type: target", qs(target=1)),
    ("wrong type: target null", qs(target=None)),
    ("wrong type: providers", qs(target="vm", providers={"provider": "kvm"})),
    ("wrong type: providers[0]", qs(target="vm", providers=[None])),
    ("wrong type: provider", qs(target="vm", providers=[{"provider": True}])),
    ("wrong type: names", qs(target="vm", providers=[{"provider": "kvm", "names": "exits"}])),
    ("wrong type: names[1] too big", qs(target="vm", providers=[{"provider": "kvm", "names": ["a", 18446744073709551616]}])),
    ("wrong type: vcpus", qs(target="vcpu", vcpus=None)),
    ("wrong type: vcpus[1]", qs(target="vcpu", vcpus=["<vcpu 0>", 7])),
    ("vcpus with target vm", qs(target="vm", vcpus=[])),
    ("unexpected top-level member", qs(target="vm", zzz=1)),
    ("arguments not an object", ("query-stats", [])),
    ("vcpus filter: only unknown paths", qs(target="vcpu", vcpus=["/machine/unattached/device[99]"])),
    ("vcpus filter: a partial path", qs(target="vcpu", vcpus=["device[0]"])),
    ("empty providers", qs(target="vm", providers=[])),
    ("empty vcpus", qs(target="vcpu", vcpus=[], providers=[{"provider": "kvm"}])),
    ("empty names vm", qs(target="vm", providers=[{"provider": "kvm", "names": []}])),
    ("unknown names only", qs(target="vcpu", providers=[{"provider": "kvm", "names": ["nope"]}])),
    ("unknown names, provider twice", qs(target="vm", providers=[{"provider": "kvm", "names": ["nope"]},
                                                                 {"provider": "kvm", "names": []}])),
    ("schemas: wrong type", ("query-stats-schemas", {"provider": 5})),
    ("schemas: bad enum", ("query-stats-schemas", {"provider": "nope"})),
    ("schemas: unexpected member", ("query-stats-schemas", {"foo": 1})),
    ("target cryptodev (QEMU 8.0+)", qs(target="cryptodev")),
    ("provider cryptodev (QEMU 8.0+)", qs(target="vm", providers=[{"provider": "cryptodev"}])),
    ("provider balloon (qstats)", qs(target="vm", providers=[{"provider": "balloon"}])),
    ("schemas balloon (qstats)", ("query-stats-schemas", {"provider": "balloon"})),
    ("query-status", ("query-status", None)),
    ("query-status: unexpected member", ("query-status", {"x": 1})),
    ("hmp vm unknown name", hmp("info stats vm nosuch")),
    ("hmp vcpu unknown names, provider kvm", hmp("info stats vcpu nosuch,nope kvm")),
    ("hmp provider unknown", hmp("info stats vm * xen")),
    ("hmp target missing", hmp("info stats")),
    ("hmp too many arguments", hmp("info stats vm a b c")),
    ("hmp cpu out of range", hmp("cpu 2")),
    ("hmp cpu negative", hmp("cpu -1")),
    ("hmp cpu not a number", hmp("cpu x")),
    ("hmp cpu 1", hmp("cpu 1")),
    ("hmp unknown command", hmp("foo")),
    ("hmp unknown info", hmp("info foo")),
    ("hmp cpu-index out of range", ("human-monitor-command", {"command-line": "info stats vm nosuch",
                                                              "cpu-index": 5})),
]

# Requests beyond the transcript whose answers carry statistics.
EXTRA_STATS = [
    ("names filter vm", qs(target="vm", providers=[{"provider": "kvm", "names": ["pages_4k", "nope", "pages_2m"]}])),
    ("names filter vcpu", qs(target="vcpu", providers=[{"provider": "kvm", "names": [
        "exits", "halt_wait_hist", "guest_mode", "halt_wait_ns", "halt_exits"]}])),
    ("vcpus filter: QEMU's real second vCPU", qs(target="vcpu", vcpus=["<vcpu 1>"])),
    ("vcpus filter: both, one unknown, one partial", qs(target="vcpu", vcpus=[
        "<vcpu 1>", "/machine/unattached/device[99]", "device[0]", "<vcpu 0>"],
        providers=[{"provider": "kvm", "names": ["exits"]}])),
    ("providers twice vcpu", qs(target="vcpu", providers=[{"provider": "kvm", "names": ["exits"]},
                                                          {"provider": "kvm", "names": ["halt_exits", "nope"]}])),
    ("providers twice vm, one empty", qs(target="vm", providers=[{"provider": "kvm"},
                                                                 {"provider": "kvm", "names": []},
                                                                 {"provider": "kvm", "names": ["pages_4k"]}])),
    ("schemas kvm", ("query-stats-schemas", {"provider": "kvm"})),
    ("hmp vcpu histogram and bool", hmp("info stats vcpu halt_wait_hist,guest_mode")),
    ("hmp vm names with an empty item", hmp("info stats vm pages_4k,,nope kvm")),
    ("hmp vm all, provider kvm", hmp("info stats vm * kvm")),
    ("hmp vcpu names, provider kvm", hmp("info stats vcpu exits,halt_wait_ns kvm")),
]

EXTRA_BALLOON = [
    ("balloon interval negative", balloon_set(-1)),
    ("balloon interval too big", balloon_set(4294967296)),
    ("balloon interval float", balloon_set(1.5)),
    ("balloon interval string", balloon_set("x")),
    ("balloon interval above INT64_MAX", balloon_set(18446744073709551615)),
    ("balloon guest-stats not writable", balloon_set(1, "guest-stats")),
    ("balloon interval set 5", balloon_set(5)),
    ("balloon interval read back", ("qom-get", {"path": "<balloon>", "property": "guest-stats-polling-interval"})),
    ("balloon interval set 0", balloon_set(0)),
    ("balloon guest-stats", ("qom-get", {"path": "<balloon>", "property": "guest-stats"})),
    ("balloon unknown property", ("qom-get", {"path": "<balloon>", "property": "nope"})),
    ("balloon unknown property set", balloon_set(1, "stats-polling-interval")),
    ("query-balloon", ("query-balloon", None)),
    ("query-balloon: unexpected member", ("query-balloon", {"x": 1})),
]


def extra_exchanges():
    return [(label, False, cmd, args, None, False) for label, (cmd, args) in EXTRA] + \
        [(label, False, cmd, args, None, True) for label, (cmd, args) in EXTRA_STATS] + \
        [(label, True, cmd, args, None, False) for label, (cmd, args) in EXTRA_BALLOON]


# Raw protocol text, each session on a fresh connection to both peers
# (QEMU serves one QMP client at a time); every reply line is compared byte
# for byte.  (session, negotiate first?, texts)
PROTOCOL = [
    ("capabilities negotiation mode", False, [
        '{"execute": "query-status"}',
        '{"execute": "query-stats", "arguments": {"target": "vm"}, "id": 1}',
        '{"execute": "nosuch"}',
        '{"exec-oob": "qmp_capabilities"}',
        '{"execute": "qmp_capabilities", "arguments": {"enable": ["nope"]}, "id": "e"}',
        '{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}',
        '{"execute": "qmp_capabilities", "arguments": {"foo": 1}}',
        '{"execute": "qmp_capabilities", "arguments": []}',
        '{"foo": 1}',
        '[1]',
        '{"execute": "qmp_capabilities", "arguments": {"enable": []}, "id": {"z": 1, "y": [{"q": 1, "p": 2}]}}',
        '{"execute": "qmp_capabilities"}',
        '{"execute": "qmp_capabilities", "id": 7}',
        '{"execute": "query-status"}',
    ]),
    ("command mode", True, [
        '{"exec-oob": "query-status"}',
        '{"exec-oob": "query-status", "id": 3}',
        '{"exec-oob": "query-status", "execute": "query-status"}',
        '{"execute": "query-status", "exec-oob": "query-status"}',
        '{"exec-oob": 5}',
        '{"execute": "query-status", "foo": 1, "bar": 2, "baz": 3}',
        '{"foo": 1, "bar": 2, "execute": 5, "arguments": 1, "id": 4}',
        '{"execute": 5, "arguments": 1}',
        '{"execute": "query-status", "arguments": 1, "exec-oob": 1}',
        '{"execute": "query-status", "control": {}}',
        '{"arguments": {}, "id": 1}',
        '{}',
        '"str"',
        '5\n',
        'null\n',
        '[]',
        '{"execute": "query-status", "arguments": {"x": 1}}',
        '{"execute": "query-status"}',
        '{"execute": "query-status", "id": 1}',
        '{"execute": "query-status", "id": null}',
        '{"execute": "query-status", "id": "\\u0001\\u00e9\\ud83d\\ude00\\u007f/\\n"}',
        '{"execute": "query-status", "id": [1e3, 0.1, 1e300, -0.0, 1.5e-7, 18446744073709551616]}',
        '{"execute": "human-monitor-command", "arguments": {"command-line": "info stats \\u00e9"}}',
        '{"execute": "query-stats", "arguments": {"target": "\\u00e9"}}',
        '{"execute": "query-status", "id": -1}',
        '{"execute": "query-status", "id": true}',
        '{"execute": "query-status", "id": [1, 2, 3, {}]}',
        '{"execute": "query-status", "id": {"b": 1, "a": 2}}',
        '{"execute": "nosuch", "id": {"k": {"j": 1, "i": 2}}}',
        '{"execute": "query-stats", "arguments": {"target": "x"}, "id": "a"}',
        '{"execute": "query-name"}',
        '{"execute": "qmp_capabilities", "id": 7}',
        '{"execute": "human-monitor-command"}',
        '{"execute": "human-monitor-command", "arguments": {"command-line": "info stats nosuch", "cpu-index": -1}}',
        '{"execute": "qom-list", "arguments": {"path": "/nonexist"}}',
        '{"execute": "qom-get", "arguments": {"path": "/nonexist", "property": "x"}, "id": 2}',
        '{"execute": "getfd", "arguments": {"fdname": "x"}}',
        '{"execute": "closefd", "arguments": {"fdname": "x"}}',
        "{'execute': 'query-status', 'id': 'single'}",
        '{"execute": "query-status",}',
        '{"execute": "query-version", "id": 1, "id": 2}',
        '{"execute": "query-status", "id": tru}',
        '{"a": [1, nul]}',
        '[truex]',
        '[' + 'x' * 300 + ']',
        '{"execute" "query-status"}',
        '{"execute": "query-status" "id": 1}',
        '{"a": 1x}',
        '[1 -2]',
        "[[1] ['x']]",
        '{"a": {tru: 1}, "b": [1,]}',
        '{"a": {false: 1}}',
        "{'k': 1, 2: 3}",
        '{,}',
    ]),
    ("enabling oob", False, [ENABLE_OOB]),
]


# --------------------------------------------------------------------------
# Peers and the report table

class Peer:
    """One QMP endpoint in its own path space; qstatsd's answers lose the
    results of qstats-only providers (QSTATS_ONLY) when `ours`."""

    def __init__(self, qmp, space, ours=False):
        self.qmp, self.space, self.ours = qmp, space, ours

    def ask(self, cmd, args):
        reply = self.qmp.cmd(cmd, self.space.request(args))
        if self.ours:
            reply = without_qstats_providers(cmd, args, reply)
        return self.space.canon(reply)


class Table:
    def __init__(self, title):
        self.title, self.rows = title, []

    def add(self, label, status, detail):
        self.rows.append((label, status, detail))

    def show(self):
        print(f"\n== {self.title}")
        width = max(len(r[0]) for r in self.rows)
        for label, status, detail in self.rows:
            print(f"  {label:<{width}}  {status:<5}  {detail[:160] if status != 'FAIL' else detail}")
        counts = {s: sum(1 for r in self.rows if r[1] == s) for s in ("MATCH", "XFAIL", "FAIL")}
        print(f"  -- {len(self.rows)} exchanges: {counts['MATCH']} match, "
              f"{counts['XFAIL']} expected differences, {counts['FAIL']} fail")

    def check(self):
        failed = [r[0] for r in self.rows if r[1] == "FAIL"]
        assert not failed, f"{self.title}: mismatches in {failed}"


def show_and_check(tables, footer):
    for t in tables:
        t.show()
    print(f"\n{footer}")
    for t in tables:
        t.check()


class Qstatsd:
    """A fresh pair of daemons per replay, so that balloon state (the polling
    interval the transcript sets) starts as QEMU's does: one qstatsd for the
    kvm exchanges, one with a balloon channel for the balloon ones (its
    `balloon` provider would add results to every query-stats vm).  Both
    serve the recorded VM, or the micro-VM (micro=True, after need_kvm)."""

    def __init__(self, micro=False):
        vm = {"vcpus": VCPUS} if micro else {"recorded": VCPUS}
        self.dir = tempfile.mkdtemp(prefix="qstats-compat-")
        self.kvm = Daemon(**vm)
        try:
            self.balloon = Daemon("--balloon", "unix:" + os.path.join(self.dir, "balloon.sock"), **vm)
        except BaseException:
            self.kvm.stop()
            raise
        self.peers = {False: Peer(self.kvm.qmp(), OUR_SPACE, ours=True),
                      True: Peer(self.balloon.qmp(), OUR_SPACE, ours=True)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        rcs = (self.kvm.stop(), self.balloon.stop())
        shutil.rmtree(self.dir, ignore_errors=True)
        assert rcs == (0, 0), f"qstatsd exit codes {rcs}"


def replay(title, exchanges, ours, theirs):
    """theirs is a Peer, or None to use each exchange's reference reply.
    Returns the table and QEMU's replies by label."""
    table, replies = Table(title), {}
    for label, balloon, cmd, args, reference, _ in exchanges:
        mine = ours[balloon].ask(cmd, args)
        ref = reference if theirs is None else theirs.ask(cmd, args)
        replies[label] = ref
        table.add(label, *compare(cmd, args, mine, ref))
    return table, replies


def replay_protocol(qemu, our_path):
    table = Table(f"protocol, byte for byte: live {qemu.describe()} vs qstatsd")
    for session, negotiate, texts in PROTOCOL:
        theirs = qemu.reconnect(negotiate=negotiate)
        ours = QMP(our_path, negotiate=negotiate)
        try:
            table.add(f"{session}: <greeting>", *compare_raw("<greeting>", json.dumps(ours.greeting),
                                                             json.dumps(theirs.greeting)))
            for text in texts:
                lines = []
                for q in (ours, theirs):
                    q.send_raw(text)
                    lines.append(q.recv_reply_line().decode())
                table.add(f"{session}: {text.strip()[:70]}", *compare_raw(text, *lines))
        finally:
            ours.close()
    qemu.reconnect()
    return table


# --------------------------------------------------------------------------
# Tests

def recorded(key):
    """The first transcript exchange with this tag, or this exact request."""
    e = next(e for e in TRANSCRIPT if key in (e.get("tag"), e.get("request")))
    return e["request"]["execute"], TRANSCRIPT_SPACE.canon(e["request"].get("arguments")), \
        TRANSCRIPT_SPACE.canon(e["reply"])


def mutated(reply, fn):
    copy = json.loads(json.dumps(reply))
    fn(copy)
    return copy


def reverse_everything(obj):
    """QEMU's order, reversed once more: lists of results, stats, buckets."""
    if isinstance(obj, list):
        return [reverse_everything(x) for x in reversed(obj)]
    if isinstance(obj, dict):
        return {k: reverse_everything(v) for k, v in obj.items()}
    return obj


def test_comparator_rejects_each_kind_of_difference():
    # The rules must not be vacuous: every kind of difference they exist
    # for is caught, and only order and values are let through.
    def status(tag, fn):
        cmd, args, reply = recorded(tag)
        return compare(cmd, args, mutated(reply, fn), reply)[0]

    def stat(reply, i, name):
        return next(s for s in reply["return"][i]["stats"] if s["name"] == name)

    def bump_values(r):
        for res in r["return"]:
            for s in res["stats"]:
                s["value"] = [x + 1 for x in s["value"]] if isinstance(s["value"], list) \
                    else s["value"] if isinstance(s["value"], bool) else s["value"] + 7
    vcpu = {"execute": "query-stats", "arguments": {"target": "vcpu"}}
    schemas = {"execute": "query-stats-schemas"}
    cases = [
        ("MATCH", vcpu, lambda r: r.update(reverse_everything(r))),
        ("MATCH", vcpu, bump_values),
        ("FAIL", vcpu, lambda r: r["return"][0]["stats"].pop()),
        ("FAIL", vcpu, lambda r: r["return"].pop()),
        ("FAIL", vcpu, lambda r: stat(r, 0, "guest_mode").update(value=0)),
        ("FAIL", vcpu, lambda r: stat(r, 1, "halt_wait_hist")["value"].pop()),
        ("FAIL", vcpu, lambda r: stat(r, 1, "exits").update(value=-1)),
        ("FAIL", vcpu, lambda r: r["return"][0].pop("qom-path")),
        ("FAIL", vcpu, lambda r: stat(r, 0, "exits").update(name="exitz")),
        ("FAIL", "query-stats vm duplicate provider request", lambda r: r["return"].pop()),
        ("FAIL", "query-stats vm duplicate provider request", lambda r: r["return"][1]["stats"].pop()),
        ("MATCH", schemas, lambda r: r.update(reverse_everything(r))),
        ("FAIL", schemas, lambda r: stat(r, 0, "halt_wait_ns").update(exponent=-6)),
        ("FAIL", schemas, lambda r: stat(r, 0, "halt_wait_ns").pop("unit")),
        ("FAIL", schemas, lambda r: stat(r, 0, "guest_mode").update(type="peak")),
        ("FAIL", schemas, lambda r: r["return"][1].update(target="vcpu")),
        ("FAIL", schemas, lambda r: r["return"][1]["stats"].pop()),
        ("FAIL", "error: bad provider", lambda r: r["error"].update(desc=r["error"]["desc"] + ".")),
        ("FAIL", "error: bad provider", lambda r: r["error"].update({"class": "CommandNotFound"})),
        ("FAIL", "error: bad provider", lambda r: r.update({"return": []}) or r.pop("error")),
        ("FAIL", "query-stats vcpu empty vcpus list", lambda r: r.update(
            {"return": [{"provider": "kvm", "stats": []}]})),
        ("XFAIL", "error: provider unknown to 7.2", lambda r: r.update({"return": []}) or r.pop("error")),
        ("FAIL", "error: provider unknown to 7.2", lambda r: r.update(
            {"return": [{"provider": "cryptodev", "target": "cryptodev", "stats": []}]}) or r.pop("error")),
        ("MATCH", "hmp: info stats vcpu", lambda r: r.update(
            {"return": re.sub(r"\d+\r\n", "999\r\n", r["return"])})),
        ("FAIL", "hmp: info stats vcpu", lambda r: r.update(
            {"return": r["return"].replace("(cumulative, ns)", "(cumulative)", 1)})),
        ("FAIL", "hmp: info stats vcpu", lambda r: r.update(
            {"return": r["return"].replace("[32]=0 ", "", 1)})),
        ("FAIL", "hmp: info stats vcpu", lambda r: r.update(
            {"return": r["return"].split("\r\n", 2)[0] + "\r\n" + r["return"].split("\r\n", 2)[2]})),
        ("FAIL", "hmp: info stats vcpu * kvm", lambda r: r.update({"return": "provider: kvm\r\n" + r["return"]})),
        ("FAIL", "hmp: info stats nosuch", lambda r: r.update({"return": "invalid stats target nosuch\n"})),
        ("FAIL", "hmp: cpu 1", lambda r: r.update({"return": "invalid CPU index\r\n"})),
        ("MATCH", "hmp: info balloon", lambda r: r.update({"return": "balloon: actual=2\r\n"})),
        ("FAIL", "qom-set", lambda r: r.update({"return": None})),
    ]
    for want, tag, fn in cases:
        got = status(tag, fn)
        assert got == want, (tag, want, got, fn)

    # guest-stats: qstatsd must have all 16 keys, QEMU's a subset, all unset
    cmd, args, reply = recorded("qom-get guest-stats (no guest driver)")
    ours = {"return": {"stats": {k: UNSET for k in BALLOON_KEYS}, "last-update": 0}}
    assert compare(cmd, args, ours, reply)[0] == "MATCH"
    for fn in (lambda o: o["return"]["stats"].pop("stat-oom-kills"),
               lambda o: o["return"]["stats"].update({"stat-swap-in": 0}),
               lambda o: o["return"].pop("last-update"),
               lambda o: o["return"].update({"last-update": True})):
        assert compare(cmd, args, mutated(ours, fn), reply)[0] == "FAIL", fn

    # raw protocol lines: bytes, so member order counts; the greeting by structure
    err = '{"id": 3, "error": {"class": "GenericError", "desc": "QMP input member \'x\' is unexpected"}}'
    assert compare_raw("{}", err, err)[0] == "MATCH"
    swapped = json.dumps({k: v for k, v in reversed(json.loads(err).items())})
    assert json.loads(swapped) == json.loads(err) and compare_raw("{}", swapped, err)[0] == "FAIL"
    assert compare_raw("{}", err.replace(": 3", ":3"), err)[0] == "FAIL"
    qemu = json.dumps(TRANSCRIPT[0]["greeting"])
    ours = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 1, "major": 0}, "package": "qstats 0.1.0"},
                    "capabilities": []}}
    assert compare_raw("<greeting>", json.dumps(ours), qemu)[0] == "XFAIL"
    assert compare_raw("<greeting>", json.dumps(ours), qemu.replace('["oob"]', "[]"))[0] == "MATCH"
    for fn in (lambda g: g["QMP"]["version"].pop("package"),
               lambda g: g["QMP"].update(capabilities=["oob"]),
               lambda g: g["QMP"]["version"]["qemu"].update(major="0"),
               lambda g: g["QMP"].update(extra=1)):
        assert compare_raw("<greeting>", json.dumps(mutated(ours, fn)), qemu)[0] == "FAIL", fn
    refused = '{"error": {"class": "GenericError", "desc": "Capability oob not available"}}'
    assert compare_raw(ENABLE_OOB, refused, '{"return": {}}')[0] == "XFAIL"
    assert compare_raw(ENABLE_OOB, '{"return": {}}', refused)[0] == "FAIL"

    # the classification: stats results, schemas and stat lines, nothing else
    assert [carries_stats(*recorded(t)[::2]) for t in (
        "query-stats vcpu filtered by qom-path", "query-stats vcpu empty names list", "query-stats-schemas",
        "hmp: info stats vcpu exits", "hmp: cpu 1", "hmp: info stats nosuch", "hmp: info balloon",
        "qom-get guest-stats (no guest driver)")] == [True, False, True, True, False, False, False, False]


def is_filtered(cmd, args):
    if cmd == "query-stats":
        return set(args) != {"target"}
    if cmd == "query-stats-schemas":
        return bool(args)
    words = args["command-line"].split() if cmd == "human-monitor-command" else []
    return words[:2] == ["info", "stats"] and len(words) > 3


def test_derived_references_reproduce_the_transcripts_filtered_answers():
    # derived() answers the requests the transcript lacks; here it must
    # give every filtered request the transcript has from its unfiltered ones.
    checked = Table("transcript's filtered answers vs derived from its unfiltered ones")
    for label, _, cmd, args, reply, stats in transcript_exchanges():
        if is_filtered(cmd, args) and (stats or reply == {"return": []}):
            checked.add(label, *compare(cmd, args, derived(cmd, args, TRANSCRIPT_FULL), reply))
    show_and_check([checked], f"{len(checked.rows)} filtered transcript answers derived")
    assert len(checked.rows) >= 9, len(checked.rows)
    # and a wrong derivation is caught: the filter must matter
    cmd, args, reply = recorded("query-stats vm names filter")
    assert compare(cmd, args, TRANSCRIPT_FULL(cmd, {"target": "vm"}), reply)[0] == "FAIL"


def test_transcript_replayed_against_qstatsd_on_the_recorded_vm():
    # The recording and the transcript come from one host: stat name sets
    # must be equal, with no adjustment.
    references = [(label, False, cmd, args, derived(cmd, args, TRANSCRIPT_FULL), True)
                  for label, (cmd, args) in EXTRA_STATS]
    with Qstatsd() as ours:
        transcript, _ = replay("QEMU 7.2 transcript vs qstatsd on the recorded VM",
                               transcript_exchanges(), ours.peers, None)
        extra, _ = replay("stats requests beyond the transcript vs QEMU's filters applied to the "
                          "transcript (derived)", references, ours.peers, None)
    n_stats = sum(1 for e in transcript_exchanges() if e[5])
    show_and_check([transcript, extra],
                   f"against the transcript: {len(transcript.rows)} exchanges ({n_stats} stats-bearing), "
                   f"{len(extra.rows)} more against references derived from it")
    assert len(transcript.rows) >= 25 and n_stats >= 15, (len(transcript.rows), n_stats)


def test_live_qemu_and_qstatsd_on_the_recorded_vm_answer_alike_where_no_stats_are_involved():
    plain = [e for e in transcript_exchanges() + extra_exchanges() if not e[5]]
    stats = [e for e in transcript_exchanges() + extra_exchanges() if e[5]]
    with LiveQemu(vcpus=VCPUS) as qemu, Qstatsd() as ours:
        print(f"live {qemu.describe()}, vCPU paths {qemu.vcpu_paths}")
        assert len(qemu.vcpu_paths) == VCPUS
        protocol = replay_protocol(qemu, ours.kvm.qmp_path)     # leaves qemu.q a new connection
        theirs = Peer(qemu.q, Space("qemu", qemu.vcpu_paths, QEMU_BALLOON))
        table, replies = replay(f"exchanges without statistics: live {qemu.describe()} vs qstatsd "
                                "on the recorded VM", plain, ours.peers, theirs)
        # The classification, checked on the oracle: no stats in the answers
        # compared here; the stats-bearing requests are valid (no error) and
        # answered with stats exactly where QEMU has KVM.
        for label, _, cmd, *_ in plain:
            assert not carries_stats(cmd, replies[label]), (label, replies[label])
        for label, _, cmd, args, _, _ in stats:
            r = theirs.ask(cmd, args)
            assert "return" in r and carries_stats(cmd, r) == (qemu.accel == "kvm"), (label, r)
        footer = (f"compared live with {qemu.describe()}: {len(protocol.rows) + len(table.rows)} "
                  f"exchanges ({len(protocol.rows)} protocol lines byte for byte, {len(table.rows)} "
                  f"by the rules); {len(stats)} stats-bearing ones were answered "
                  f"{'with' if qemu.accel == 'kvm' else 'without'} stats by QEMU and are compared "
                  "with the transcript (test_transcript_replayed_against_qstatsd_on_the_recorded_vm)")
    show_and_check([protocol, table], footer)
    assert len(protocol.rows) >= 50 and len(table.rows) >= 60, (len(protocol.rows), len(table.rows))


def test_qemu_without_kvm_stats_and_qstatsd_without_a_vm_answer_stats_requests_alike():
    # QEMU under TCG registers no stats provider; qstatsd without a VM has
    # no KVM stats either.  Every stats request must get the same reply,
    # whole: [] for filters, schemas and targets, "" in HMP, or the error.
    requests = [e for e in transcript_exchanges() + extra_exchanges()
                if e[2] in ("query-stats", "query-stats-schemas")
                or e[3] and e[3].get("command-line", "").startswith("info stats")]
    with LiveQemu(vcpus=VCPUS, accel="tcg") as qemu, Daemon(no_vm=True) as d:
        theirs = Peer(qemu.q, Space("qemu", qemu.vcpu_paths, QEMU_BALLOON))
        ours = Peer(d.qmp(), OUR_SPACE, ours=True)
        table = Table(f"stats requests without KVM stats: live {qemu.describe()} vs qstatsd --no-vm")
        for label, _, cmd, args, _, _ in requests:
            a, b = ours.ask(cmd, args), theirs.ask(cmd, args)
            assert not carries_stats(cmd, b), (label, b)
            if a == b:
                table.add(label, "MATCH", json.dumps(a)[:100])
            else:
                why = expected_difference(a, b)
                table.add(label, *(("XFAIL", why) if why else ("FAIL", f"qstatsd {a} / QEMU {b}")))
        ours.qmp.close()
    show_and_check([table], f"compared live with {qemu.describe()}: {len(table.rows)} stats requests")
    assert len(table.rows) >= 50, len(table.rows)


def test_live_qemu_on_kvm_and_qstatsd_on_the_micro_vm_answer_alike():
    need_kvm("the micro-VM (its stats compared live with QEMU under KVM on one kernel)")
    exchanges = transcript_exchanges() + extra_exchanges()
    with LiveQemu(vcpus=VCPUS, accel="kvm") as qemu, Qstatsd(micro=True) as ours:
        print(f"live {qemu.describe()}, vCPU paths {qemu.vcpu_paths}")
        theirs = Peer(qemu.q, Space("qemu", qemu.vcpu_paths, QEMU_BALLOON))
        table, replies = replay(f"every exchange: live {qemu.describe()} vs qstatsd on the micro-VM",
                                exchanges, ours.peers, theirs)
        for label, _, cmd, _, _, stats in exchanges:
            assert carries_stats(cmd, replies[label]) == stats, ("classification", label, replies[label])
        # derived() on a live QEMU: its filtered answers from its unfiltered ones
        model = Table(f"stats requests beyond the transcript: live {qemu.describe()} vs derived "
                      "from its unfiltered answers")
        for label, (cmd, args) in EXTRA_STATS:
            model.add(label, *compare(cmd, args, derived(cmd, args, theirs.ask), replies[label]))
    show_and_check([table, model], f"compared live with {qemu.describe()}: {len(table.rows)} exchanges, "
                   "stats included, on one kernel")


if __name__ == "__main__":
    run_module(globals())
