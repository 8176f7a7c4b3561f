"""Compatibility with QEMU: the stats-related exchanges of the QEMU 7.2
reference transcript (tests/fixtures/qemu-7.2-qmp-transcript.json) are
replayed against the real qstatsd and compared with what QEMU answered;
where qemu-system-x86_64 is installed, the same requests, plus extra ones,
go to a live QEMU on this very kernel and to qstatsd side by side.

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
- The transcript was recorded on a host kernel whose stat set may differ
  from this machine's.  This machine's set is read straight from /dev/kvm
  (independently of qstatsd) and the transcript's names are adjusted by that
  kernel delta, which is printed.  Against a live QEMU on this kernel the
  name sets must be EQUAL, with no adjustment.
"""
import fcntl
import json
import os
import re
import shutil
import struct
import tempfile

from qstest import FIXTURES, Daemon, need_kvm, run_module, skip
from qemu_oracle import BALLOON_PATH as QEMU_BALLOON, LiveQemu, qemu_binary

need_kvm()

OUR_BALLOON = "/machine/peripheral-anon/device[0]"
VCPUS = 2
UNSET = 18446744073709551615
BALLOON_KEYS = {"stat-" + k for k in (
    "swap-in", "swap-out", "major-faults", "minor-faults", "free-memory", "total-memory",
    "available-memory", "disk-caches", "htlb-pgalloc", "htlb-pgfail", "oom-kills",
    "alloc-stalls", "async-scans", "direct-scans", "async-reclaims", "direct-reclaims")}

with open(os.path.join(FIXTURES, "qemu-7.2-qmp-transcript.json")) as f:
    TRANSCRIPT = json.load(f)


# --------------------------------------------------------------------------
# This kernel's stat names, read from /dev/kvm without qstatsd

KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_GET_STATS_FD = 0xAE01, 0xAE41, 0xAECE


def stats_fd_names(fd):
    _flags, name_size, num_desc, _id, desc_offset, _data = struct.unpack("<6I", os.pread(fd, 24, 0))
    size = 16 + name_size
    raw = os.pread(fd, size * num_desc, desc_offset)
    return [raw[i * size + 16:(i + 1) * size].split(b"\0")[0].decode() for i in range(num_desc)]


def kernel_stat_names():
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    fds = [kvm]
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
        fds.append(vm)
        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
        fds.append(vcpu)
        out = {}
        for target, fd in (("vm", vm), ("vcpu", vcpu)):
            sfd = fcntl.ioctl(fd, KVM_GET_STATS_FD, 0)
            fds.append(sfd)
            out[target] = set(stats_fd_names(sfd))
        return out
    finally:
        for fd in reversed(fds):
            os.close(fd)


class KernelDelta:
    """How the transcript host's kvm stat set differs from this kernel's."""

    def __init__(self, recorded_schemas, here):
        recorded = {s["target"]: {e["name"] for e in s["stats"]} for s in recorded_schemas}
        self.missing = {t: recorded[t] - here[t] for t in here}   # recorded there, absent here
        self.extra = {t: here[t] - recorded[t] for t in here}     # here only
        self.sizes = {t: (len(recorded[t]), len(here[t])) for t in here}

    def expected(self, names, target, wanted=None):
        """The name set this kernel must show for `names` recorded there."""
        if target not in self.missing:
            return set(names)
        extra = {n for n in self.extra[target] if wanted is None or n in wanted}
        return (set(names) - self.missing[target]) | extra

    def describe(self):
        return "; ".join(f"{t}: {a} stats there, {b} here, only there {sorted(self.missing[t])}, "
                         f"only here {sorted(self.extra[t])}" for t, (a, b) in self.sizes.items())


class NoDelta:
    """A live QEMU on this very kernel: names must be equal as they are."""

    def expected(self, names, target, wanted=None):
        return set(names)


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


def wanted_names(args, provider):
    """The names filter of a query-stats request for `provider` (None = all)."""
    reqs = [r for r in (args.get("providers") or []) if r.get("provider") == provider]
    if not args.get("providers") or any("names" not in r for r in reqs):
        return None
    return {n for r in reqs for n in r["names"]}


def stats_problems(ours, theirs, where, expected_names):
    probs = []
    for s in ours + theirs:
        if set(s) != {"name", "value"}:
            probs.append(f"{where}: stat keys {sorted(s)}")
    a = {s["name"]: s["value"] for s in ours}
    b = {s["name"]: s["value"] for s in theirs}
    if len(a) != len(ours):
        probs.append(f"{where}: duplicate stat names in qstatsd's result")
    if set(a) != expected_names:
        probs.append(f"{where}: names only in qstatsd {sorted(set(a) - expected_names)}, "
                     f"only in QEMU {sorted(expected_names - set(a))}")
    for n in sorted(set(a) & set(b)):
        if jtype(a[n]) != jtype(b[n]):
            probs.append(f"{where}: {n} is {jtype(a[n])} in qstatsd, {jtype(b[n])} in QEMU")
    return probs


def group(items, key):
    out = {}
    for x in items:
        out.setdefault(key(x), []).append(x)
    return out


def grouped_problems(ours, theirs, key, pair_fn, what, sort_ours=None, sort_theirs=None):
    """Pairs the items of both lists by key; items sharing a key (a provider
    requested twice) are paired by the sort functions, as order is free."""
    if not isinstance(ours, list) or not isinstance(theirs, list):
        return [f"{what}: expected lists, got {jtype(ours)} / {jtype(theirs)}"]
    ga, gb = group(ours, key), group(theirs, key)
    for k in ga:
        ga[k].sort(key=sort_ours or (lambda x: 0))
    for k in gb:
        gb[k].sort(key=sort_theirs or (lambda x: 0))
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


def query_stats_problems(args, ours, theirs, delta):
    target = args.get("target")

    def expected(y):
        names = {s["name"] for s in y["stats"]}
        if y["provider"] != "kvm":
            return names
        return delta.expected(names, target, wanted_names(args, y["provider"]))

    def pair(k, x, y):
        return stats_problems(x["stats"], y["stats"], f"{k}", expected(y))
    return grouped_problems(ours, theirs, lambda r: (r.get("provider"), r.get("qom-path")),
                            pair, "results",
                            sort_ours=lambda x: sorted(s["name"] for s in x["stats"]),
                            sort_theirs=lambda y: sorted(expected(y)))


def schemas_problems(args, ours, theirs, delta):
    def pair(k, x, y):
        a = {e["name"]: e for e in x["stats"]}
        b = {e["name"]: e for e in y["stats"]}
        want = delta.expected(b, x["target"]) if x["provider"] == "kvm" else set(b)
        probs = []
        if set(a) != want:
            probs.append(f"{k}: names only in qstatsd {sorted(set(a) - want)}, "
                         f"only in QEMU {sorted(want - set(a))}")
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
    """(stat name or None, line with its value replaced by a placeholder)."""
    if text and not text.endswith("\r\n"):
        return [(None, "<no final CRLF>")]
    out = []
    for line in text.split("\r\n")[:-1]:
        m = STAT_LINE.match(line)
        if m:
            out.append((m[1], f"    {m[1]} ({m[2]}): {hmp_value(m[3])}"))
        else:
            out.append((None, re.sub(r"^(balloon: actual=)\d+$", r"\1<n>", line)))
    return out


def hmp_problems(args, ours, theirs, delta):
    words = args["command-line"].split()
    target = words[2] if words[:2] == ["info", "stats"] and len(words) > 2 else None
    wanted = None if len(words) < 4 or words[3] == "*" else set(words[3].split(","))
    a, b = hmp_lines(ours), hmp_lines(theirs)
    recorded = {n for n, _ in b if n}
    # A reply without stat lines (an error, nothing matched) has none on any kernel.
    keep = delta.expected(recorded, target, wanted) if target and recorded else recorded
    shown = {n for n, _ in a if n}
    probs = []
    if shown != keep:
        probs.append(f"names only in qstatsd {sorted(shown - keep)}, only in QEMU {sorted(keep - shown)}")
    # Lines of stats only this kernel has cannot be matched to a recorded
    # line; the name check above pins them.
    la = sorted(line for n, line in a if n not in keep - recorded)
    lb = sorted(line for n, line in b if n is None or n in keep)
    if la != lb:
        probs.append("lines differ: qstatsd " + json.dumps(sorted(set(la) - set(lb)))[:600] +
                     " QEMU " + json.dumps(sorted(set(lb) - set(la)))[:600])
    return probs


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


def success_problems(cmd, args, ours, theirs, delta):
    if cmd == "query-stats":
        return query_stats_problems(args, ours, theirs, delta)
    if cmd == "query-stats-schemas":
        return schemas_problems(args, ours, theirs, delta)
    if cmd == "human-monitor-command":
        return hmp_problems(args, ours, theirs, delta)
    if cmd == "query-balloon":
        return [] if {k: jtype(v) for k, v in ours.items()} == {k: jtype(v) for k, v in theirs.items()} \
            else [f"{ours} vs {theirs}"]
    if cmd == "qom-get" and args.get("property") == "guest-stats":
        return guest_stats_problems(ours, theirs)
    return [] if ours == theirs else [f"{ours!r} vs {theirs!r}"]    # qom-set, polling interval


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


def compare(cmd, args, ours, theirs, delta):
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
    probs = success_problems(cmd, args or {}, ours["return"], theirs["return"], delta)
    if probs:
        return "FAIL", "; ".join(probs)
    return "MATCH", summary(cmd, ours["return"])


def summary(cmd, ret):
    if cmd == "query-stats":
        return f"{len(ret)} results, " + ", ".join(
            f"{r['provider']}{' ' + r['qom-path'] if 'qom-path' in r else ''}:{len(r['stats'])}" for r in ret)
    if cmd == "query-stats-schemas":
        return ", ".join(f"{s['provider']}/{s['target']}:{len(s['stats'])}" for s in ret) or "[]"
    if cmd == "human-monitor-command":
        return f"{ret.count(chr(10))} lines"
    return json.dumps(ret)[:60]


# --------------------------------------------------------------------------
# Exchanges

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
    """[(label, balloon?, command, canonical args, recorded reply)]"""
    out = []
    for i, e in enumerate(TRANSCRIPT):
        req = e.get("request")
        if not req or not (is_stats(req) or is_balloon(req)):
            continue
        args = TRANSCRIPT_SPACE.canon(req.get("arguments"))
        out.append((f"#{i} {e['tag']}", is_balloon(req), req["execute"], args,
                    TRANSCRIPT_SPACE.canon(e["reply"])))
    return out


def qs(**args):
    return ("query-stats", args)


def hmp(line):
    return ("human-monitor-command", {"command-line": line})


def balloon_set(value, prop="guest-stats-polling-interval"):
    return ("qom-set", {"path": "<balloon>", "property": prop, "value": value})


# Requests beyond the transcript; QEMU and qstatsd must answer them alike.
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
    ("names filter vm", qs(target="vm", providers=[{"provider": "kvm", "names": ["pages_4k", "nope", "pages_2m"]}])),
    ("names filter vcpu", qs(target="vcpu", providers=[{"provider": "kvm", "names": [
        "exits", "halt_wait_hist", "guest_mode", "halt_wait_ns", "halt_exits"]}])),
    ("vcpus filter: QEMU's real second vCPU", qs(target="vcpu", vcpus=["<vcpu 1>"])),
    ("vcpus filter: both, one unknown, one partial", qs(target="vcpu", vcpus=[
        "<vcpu 1>", "/machine/unattached/device[99]", "device[0]", "<vcpu 0>"],
        providers=[{"provider": "kvm", "names": ["exits"]}])),
    ("vcpus filter: only unknown paths", qs(target="vcpu", vcpus=["/machine/unattached/device[99]"])),
    ("empty providers", qs(target="vm", providers=[])),
    ("empty vcpus", qs(target="vcpu", vcpus=[], providers=[{"provider": "kvm"}])),
    ("empty names vm", qs(target="vm", providers=[{"provider": "kvm", "names": []}])),
    ("unknown names only", qs(target="vcpu", providers=[{"provider": "kvm", "names": ["nope"]}])),
    ("providers twice vcpu", qs(target="vcpu", providers=[{"provider": "kvm", "names": ["exits"]},
                                                          {"provider": "kvm", "names": ["halt_exits", "nope"]}])),
    ("providers twice vm, one empty", qs(target="vm", providers=[{"provider": "kvm"},
                                                                 {"provider": "kvm", "names": []},
                                                                 {"provider": "kvm", "names": ["pages_4k"]}])),
    ("schemas kvm", ("query-stats-schemas", {"provider": "kvm"})),
    ("schemas: wrong type", ("query-stats-schemas", {"provider": 5})),
    ("schemas: bad enum", ("query-stats-schemas", {"provider": "nope"})),
    ("schemas: unexpected member", ("query-stats-schemas", {"foo": 1})),
    ("target cryptodev (QEMU 8.0+)", qs(target="cryptodev")),
    ("provider cryptodev (QEMU 8.0+)", qs(target="vm", providers=[{"provider": "cryptodev"}])),
    ("provider balloon (qstats)", qs(target="vm", providers=[{"provider": "balloon"}])),
    ("schemas balloon (qstats)", ("query-stats-schemas", {"provider": "balloon"})),
    ("hmp vcpu histogram and bool", hmp("info stats vcpu halt_wait_hist,guest_mode")),
    ("hmp vm names with an empty item", hmp("info stats vm pages_4k,,nope kvm")),
    ("hmp vm unknown name", hmp("info stats vm nosuch")),
    ("hmp cpu out of range", hmp("cpu 2")),
    ("hmp vcpu all, provider kvm", hmp("info stats vcpu * kvm")),
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
]


# --------------------------------------------------------------------------
# Peers and the report table

class Peer:
    """One QMP endpoint in its own path space."""

    def __init__(self, qmp, space):
        self.qmp, self.space = qmp, space

    def ask(self, cmd, args):
        return self.space.canon(self.qmp.cmd(cmd, self.space.request(args)))


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
        print(f"  -- {counts['MATCH']} match, {counts['XFAIL']} expected differences, {counts['FAIL']} fail")

    def check(self):
        failed = [r[0] for r in self.rows if r[1] == "FAIL"]
        assert not failed, f"{self.title}: mismatches in {failed}"


class Qstatsd:
    """A fresh pair of daemons per replay, so that balloon state (the polling
    interval the transcript sets) starts as QEMU's does: one qstatsd for the
    kvm exchanges, one with a balloon channel for the balloon ones (its
    `balloon` provider would add results to every query-stats vm)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="qstats-compat-")
        self.kvm = Daemon(vcpus=VCPUS)
        try:
            self.balloon = Daemon("--balloon", "unix:" + os.path.join(self.dir, "balloon.sock"),
                                  vcpus=VCPUS)
        except BaseException:
            self.kvm.stop()
            raise
        self.peers = {False: Peer(self.kvm.qmp(), OUR_SPACE), True: Peer(self.balloon.qmp(), OUR_SPACE)}

    def __enter__(self):
        return self.peers

    def __exit__(self, *exc):
        rcs = (self.kvm.stop(), self.balloon.stop())
        shutil.rmtree(self.dir, ignore_errors=True)
        assert rcs == (0, 0), f"qstatsd exit codes {rcs}"


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
        return compare(cmd, args, mutated(reply, fn), reply, NoDelta())[0]

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
        ("MATCH", schemas, lambda r: r.update(reverse_everything(r))),
        ("FAIL", schemas, lambda r: stat(r, 0, "halt_wait_ns").update(exponent=-6)),
        ("FAIL", schemas, lambda r: stat(r, 0, "halt_wait_ns").pop("unit")),
        ("FAIL", schemas, lambda r: stat(r, 0, "guest_mode").update(type="peak")),
        ("FAIL", schemas, lambda r: r["return"][1].update(target="vcpu")),
        ("FAIL", "error: bad provider", lambda r: r["error"].update(desc=r["error"]["desc"] + ".")),
        ("FAIL", "error: bad provider", lambda r: r["error"].update({"class": "CommandNotFound"})),
        ("FAIL", "error: bad provider", lambda r: r.update({"return": []}) or r.pop("error")),
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
        ("MATCH", "hmp: info balloon", lambda r: r.update({"return": "balloon: actual=2\r\n"})),
    ]
    for want, tag, fn in cases:
        got = status(tag, fn)
        assert got == want, (tag, want, got, fn)

    # guest-stats: qstatsd must have all 16 keys, QEMU's a subset, all unset
    cmd, args, reply = recorded("qom-get guest-stats (no guest driver)")
    ours = {"return": {"stats": {k: UNSET for k in BALLOON_KEYS}, "last-update": 0}}
    assert compare(cmd, args, ours, reply, NoDelta())[0] == "MATCH"
    for fn in (lambda o: o["return"]["stats"].pop("stat-oom-kills"),
               lambda o: o["return"]["stats"].update({"stat-swap-in": 0}),
               lambda o: o["return"].pop("last-update"),
               lambda o: o["return"].update({"last-update": True})):
        assert compare(cmd, args, mutated(ours, fn), reply, NoDelta())[0] == "FAIL", fn


def test_kernel_delta_adjusts_only_the_names_the_kernels_differ_in():
    cmd, args, reply = recorded({"execute": "query-stats-schemas"})
    here = {s["target"]: {e["name"] for e in s["stats"]} for s in reply["return"]}
    here["vcpu"] = (here["vcpu"] - {"exits"}) | {"new_stat"}
    delta = KernelDelta(reply["return"], here)
    assert delta.missing == {"vm": set(), "vcpu": {"exits"}}
    assert delta.expected({"exits", "halt_exits"}, "vcpu", {"exits", "halt_exits"}) == {"halt_exits"}
    assert delta.expected({"halt_exits"}, "vcpu") == {"halt_exits", "new_stat"}
    assert delta.expected({"pages_4k"}, "vm") == {"pages_4k"}
    cmd, args, reply = recorded("query-stats vcpu names filter (libvirt haltpoll request)")
    assert compare(cmd, args, reply, reply, delta)[0] == "MATCH"      # new_stat not asked for
    cmd, args, reply = recorded({"execute": "query-stats", "arguments": {"target": "vcpu"}})
    assert compare(cmd, args, reply, reply, delta)[0] == "FAIL"       # exits still there, new_stat absent


def test_kernel_stat_set_read_directly_matches_qstatsds_schema():
    # The independent oracle the transcript comparison relies on.
    here = kernel_stat_names()
    with Daemon(vcpus=VCPUS) as d:
        schemas = d.qmp().ok("query-stats-schemas", {"provider": "kvm"})
    assert {s["target"]: {e["name"] for e in s["stats"]} for s in schemas} == here
    assert "exits" in here["vcpu"] and "pages_4k" in here["vm"]


def replay(title, exchanges, ours, theirs, delta):
    """theirs is a Peer, or None to use the recorded reply."""
    table = Table(title)
    for label, balloon, cmd, args, recorded in exchanges:
        mine = ours[balloon].ask(cmd, args)
        ref = recorded if theirs is None else theirs.ask(cmd, args)
        table.add(label, *compare(cmd, args, mine, ref, delta))
    return table


def test_transcript_replayed_against_qstatsd():
    recorded_schemas = next(e["reply"]["return"] for e in TRANSCRIPT
                            if e.get("request") == {"execute": "query-stats-schemas"})
    delta = KernelDelta(recorded_schemas, kernel_stat_names())
    print(f"kernel delta (transcript host vs this kernel, read from /dev/kvm): {delta.describe()}")
    # Stats known to both kernels must be nearly all of them, or the
    # transcript says little about this machine.
    for t, (there, here) in delta.sizes.items():
        assert len(delta.missing[t]) + len(delta.extra[t]) <= max(there, here) // 10, delta.describe()
    with Qstatsd() as ours:
        table = replay("QEMU 7.2 transcript vs qstatsd", transcript_exchanges(), ours, None, delta)
    table.show()
    assert len(table.rows) >= 25, len(table.rows)
    table.check()


def extra_exchanges():
    out = [(label, False, cmd, args, None) for label, (cmd, args) in EXTRA]
    return out + [(label, True, cmd, args, None) for label, (cmd, args) in EXTRA_BALLOON]


def test_live_qemu_and_qstatsd_answer_alike():
    if not qemu_binary():
        skip("qemu-system-x86_64 is not installed: the live QEMU comparison is not run")
    with LiveQemu(vcpus=VCPUS) as qemu, Qstatsd() as ours:
        print(f"live QEMU {qemu.version['major']}.{qemu.version['minor']}.{qemu.version['micro']}, "
              f"vCPU paths {qemu.vcpu_paths}")
        assert len(qemu.vcpu_paths) == VCPUS
        theirs = Peer(qemu.q, Space("qemu", qemu.vcpu_paths, QEMU_BALLOON))
        # The extra requests follow on the same peers: the balloon state
        # the transcript left behind is the same on both sides.
        tables = [replay("transcript requests: live QEMU vs qstatsd", transcript_exchanges(),
                         ours, theirs, NoDelta()),
                  replay("extra requests: live QEMU vs qstatsd", extra_exchanges(),
                         ours, theirs, NoDelta())]
    for t in tables:
        t.show()
    for t in tables:
        t.check()


if __name__ == "__main__":
    run_module(globals())
