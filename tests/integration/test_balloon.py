"""The balloon provider end to end: the real qstatsd with --balloon on a
unix socket, the real qstats-guest-agent reading this machine's /proc, and
fake agents written here that misbehave on purpose.  Everything is observed
through QMP (qom-get / qom-set / qom-list, query-stats, query-stats-schemas,
query-balloon, info balloon), as an operator would see it."""
import json
import os
import resource
import socket
import struct
import subprocess
import time

from qstest import BUILD, FIXTURES, Daemon, run_module, skip

AGENT = os.path.join(BUILD, "qstats-guest-agent")
PATH = "/machine/peripheral-anon/device[0]"
UNSET = 18446744073709551615
KEYS = ["stat-swap-in", "stat-swap-out", "stat-major-faults", "stat-minor-faults",
        "stat-free-memory", "stat-total-memory", "stat-available-memory",
        "stat-disk-caches", "stat-htlb-pgalloc", "stat-htlb-pgfail", "stat-oom-kills",
        "stat-alloc-stalls", "stat-async-scans", "stat-direct-scans",
        "stat-async-reclaims", "stat-direct-reclaims"]

assert os.access(AGENT, os.X_OK), f"{AGENT} is not built"   # always built: no optional dependency


def memtotal_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


class Balloon(Daemon):
    """qstatsd without a VM (so no /dev/kvm needed) and with a balloon channel."""

    def __init__(self, *args):
        import tempfile
        self.sock_dir = tempfile.mkdtemp(prefix="qstats-balloon-")
        self.balloon_path = os.path.join(self.sock_dir, "balloon.sock")
        super().__init__("--balloon", "unix:" + self.balloon_path, *args, no_vm=True)
        self.wait_for_socket(self.balloon_path)
        self.q = self.qmp()
        self.agents = []

    def agent(self, *args):
        p = subprocess.Popen([AGENT, "--connect", "unix:" + self.balloon_path, *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.agents.append(p)
        return p

    def stats(self):
        return self.q.ok("qom-get", {"path": PATH, "property": "guest-stats"})

    def set_interval(self, v):
        return self.q.cmd("qom-set", {"path": PATH, "property": "guest-stats-polling-interval",
                                      "value": v})

    def wait_stats(self, pred, timeout=8, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.stats()
            if pred(s):
                return s
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {self.stats()}")

    def balloon_log(self):
        return [l for l in self.log().splitlines() if "balloon:" in l]

    def __exit__(self, *exc):
        for p in self.agents:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stderr.close()
        self.q.close()
        self.proc.terminate()
        self.proc.wait(30)
        log = self.log()
        rc = self.stop()
        import shutil
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if exc[0] is None:
            # A clean shutdown, and nothing the sanitizers would complain of.
            assert rc == 0, (rc, log)
            assert "Sanitizer" not in log and "runtime error" not in log, log


class FakeAgent:
    """A scripted agent on a raw socket."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)

    def answer(self, records):
        body = b"".join(struct.pack("<HQ", t, v) for t, v in records)
        self.s.sendall(struct.pack("<I", len(body)) + body)

    def send(self, data):
        self.s.sendall(data)

    def dropped(self, timeout=10):
        """True when the daemon closes the connection within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(64):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def test_real_agent_reports_this_machines_memory():
    with Balloon() as d:
        d.agent()
        assert d.set_interval(1) == {"return": {}}
        s = d.wait_stats(lambda s: s["stats"]["stat-total-memory"] != UNSET,
                         what="stat-total-memory")
        assert sorted(s["stats"]) == sorted(KEYS)
        assert s["stats"]["stat-total-memory"] == memtotal_bytes()
        assert abs(s["last-update"] - time.time()) <= 3, s["last-update"]
        assert 0 < s["stats"]["stat-free-memory"] <= memtotal_bytes()
        assert 0 < s["stats"]["stat-available-memory"] <= memtotal_bytes()
        first = s["last-update"]
        # Polling every second: last-update keeps moving.
        d.wait_stats(lambda s: s["last-update"] >= first + 2, what="last-update to advance")


def test_query_stats_shows_provider_balloon():
    with Balloon() as d:
        d.agent()
        d.wait_stats(lambda s: s["last-update"] > 0, what="the initial report")
        res = d.q.ok("query-stats", {"target": "vm"})
        balloon = [r for r in res if r["provider"] == "balloon"]
        assert len(balloon) == 1, res
        assert "qom-path" not in balloon[0]
        stats = {s["name"]: s["value"] for s in balloon[0]["stats"]}
        assert stats["total-memory"] == memtotal_bytes()
        assert abs(stats["last-update"] - time.time()) <= 3
        assert all(v != UNSET for v in stats.values())
        # names filter and provider filter
        res = d.q.ok("query-stats", {"target": "vm", "providers": [
            {"provider": "balloon", "names": ["total-memory"]}]})
        assert res == [{"provider": "balloon",
                        "stats": [{"name": "total-memory", "value": memtotal_bytes()}]}], res
        assert d.q.ok("query-stats", {"target": "vcpu", "providers": [
            {"provider": "balloon"}]}) == []
        schemas = d.q.ok("query-stats-schemas", {"provider": "balloon"})
        assert len(schemas) == 1 and schemas[0]["target"] == "vm", schemas
        by_name = {s["name"]: s for s in schemas[0]["stats"]}
        assert len(by_name) == 17
        assert by_name["total-memory"] == {"name": "total-memory", "type": "instant",
                                           "unit": "bytes", "exponent": 0}
        assert by_name["swap-in"]["type"] == "cumulative" and by_name["swap-in"]["unit"] == "bytes"
        assert by_name["major-faults"] == {"name": "major-faults", "type": "cumulative",
                                           "exponent": 0}
        assert by_name["last-update"]["unit"] == "seconds"


def test_killing_the_agent_stops_last_update_only():
    with Balloon() as d:
        agent = d.agent()
        d.set_interval(1)
        first = d.wait_stats(lambda s: s["last-update"] > 0, what="the first report")
        d.wait_stats(lambda s: s["last-update"] >= first["last-update"] + 1,
                     what="an answer to a poll")
        agent.kill()
        agent.wait()
        time.sleep(0.3)
        frozen = d.stats()
        time.sleep(2.5)
        later = d.stats()
        assert later == frozen, (frozen, later)
        assert later["stats"]["stat-total-memory"] == memtotal_bytes()
        # Everything else still answers.
        assert d.q.ok("query-version")["qemu"]["major"] >= 0
        assert any(r["provider"] == "balloon" for r in d.q.ok("query-stats", {"target": "vm"}))
        assert any("disconnected" in l for l in d.balloon_log()), d.log()
        # A new agent resumes the polling without touching the interval.
        d.agent()
        d.wait_stats(lambda s: s["last-update"] > later["last-update"] + 1,
                     what="polling to resume")


def test_hostile_agents_are_dropped_and_qmp_keeps_answering():
    with Balloon() as d:
        good = d.agent()
        d.wait_stats(lambda s: s["stats"]["stat-total-memory"] != UNSET, what="first report")
        good.kill()
        good.wait()
        time.sleep(0.2)
        attacks = {
            "garbage": lambda a: a.send(b"GET / HTTP/1.1\r\nHost: qstats\r\n\r\n"),
            "oversize": lambda a: a.send(struct.pack("<I", 0xFFFFFFFF) + b"\0" * 64),
            "17 records": lambda a: a.answer([(i % 16, 1) for i in range(17)]),
            "unsolicited": lambda a: (a.answer([(5, 1)]), a.answer([(5, 2)])),
            "stalled": lambda a: a.send(struct.pack("<I", 20) + b"\x05\x00\x01"),
        }
        for name, attack in attacks.items():
            n = len(d.balloon_log())
            before = d.stats()["stats"]
            a = FakeAgent(d.balloon_path)
            attack(a)
            t0 = time.time()
            # QMP answers at once while the agent is being dealt with.
            assert d.q.ok("qom-get", {"path": PATH, "property": "guest-stats-polling-interval"}) == 0
            assert time.time() - t0 < 1
            assert a.dropped(timeout=10), name
            a.close()
            time.sleep(0.1)
            log = d.balloon_log()[n:]
            drops = [l for l in log if "dropping" in l]
            assert len(drops) == 1, (name, log)
            # The stats the last good answer left are intact (the unsolicited
            # case's first answer was a valid one and counts).
            after = d.stats()["stats"]
            if name == "unsolicited":
                assert after["stat-total-memory"] == 1, after
            else:
                assert after == before, name
        # A second agent while one is connected is refused, the first kept.
        first = FakeAgent(d.balloon_path)
        first.answer([(5, 42)])
        d.wait_stats(lambda s: s["stats"]["stat-total-memory"] == 42, what="fake report")
        n = len(d.balloon_log())
        second = FakeAgent(d.balloon_path)
        assert second.dropped(timeout=5)
        assert any("refusing a second" in l for l in d.balloon_log()[n:])
        assert d.set_interval(1) == {"return": {}}
        first.s.settimeout(3)
        assert first.s.recv(1) == b"\x01"       # still the one being polled
        first.close()
        second.close()
        # And a real agent is welcome afterwards.
        d.agent()
        d.wait_stats(lambda s: s["stats"]["stat-total-memory"] == memtotal_bytes(),
                     what="real agent after the attacks")
        assert d.proc.poll() is None


def test_out_of_fds_an_agent_waits_without_a_log_flood():
    # An agent connecting while the daemon has no fd left stays pending,
    # which keeps the listening socket readable: the loop used to spin on
    # it, logging "accept failed" at full speed.
    with Balloon() as d:
        pid = d.proc.pid
        held = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (held + 1, held + 1))
        filler = d.qmp(negotiate=False)          # takes the last fd
        agent = FakeAgent(d.balloon_path)
        time.sleep(0.5)
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            before = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        time.sleep(2)
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            after = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
        assert after - before < 20, after - before      # under 10% of a core
        failures = [l for l in d.balloon_log() if "accept failed" in l]
        assert len(failures) == 1, failures
        filler.close()
        # an fd is free again: the waiting agent is taken and its report used
        agent.answer([(5, 7)])
        d.wait_stats(lambda s: s["stats"]["stat-total-memory"] == 7, what="report after EMFILE")
        agent.close()


def test_agent_waits_and_reconnects_across_daemon_restarts():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="qstats-agent-")
    path = os.path.join(tmp, "balloon.sock")
    agent = subprocess.Popen([AGENT, "--connect", "unix:" + path],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(2):
            time.sleep(0.5)                  # the agent is backing off meanwhile
            d = Daemon("--balloon", "unix:" + path, no_vm=True)
            q = d.qmp()
            deadline = time.time() + 10
            while time.time() < deadline:
                s = q.ok("qom-get", {"path": PATH, "property": "guest-stats"})
                if s["stats"]["stat-total-memory"] == memtotal_bytes():
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("agent did not report to the new daemon")
            q.close()
            d.stop()
            assert not os.path.exists(path), "socket not unlinked on shutdown"
        assert agent.poll() is None, "agent exited when the daemon went away"
    finally:
        agent.kill()
        agent.wait()
        agent.stderr.close()
        os.rmdir(tmp)


def test_agent_with_an_older_kernels_proc_leaves_stats_unset():
    with Balloon() as d:
        d.agent("--proc", os.path.join(FIXTURES, "proc-linux-3.10"))
        s = d.wait_stats(lambda s: s["last-update"] > 0, what="report")["stats"]
        assert s["stat-total-memory"] == 1016232 * 1024
        assert s["stat-available-memory"] == UNSET
        assert s["stat-oom-kills"] == UNSET
        names = {x["name"] for r in d.q.ok("query-stats", {"target": "vm"})
                 if r["provider"] == "balloon" for x in r["stats"]}
        assert "total-memory" in names and "available-memory" not in names


def test_qom_error_texts_match_qemu():
    with Balloon() as d:
        def err(v):
            r = d.set_interval(v)
            assert "error" in r, (v, r)
            assert r["error"]["class"] == "GenericError"
            return r["error"]["desc"]
        typ = "Invalid parameter type for 'guest-stats-polling-interval', expected: integer"
        assert err(1.5) == typ
        assert err("2") == typ
        assert err(-1) == "timer value must be greater than zero"
        assert err(4294967296) == "timer value is too big"
        r = d.q.cmd("qom-set", {"path": PATH, "property": "guest-stats", "value": 1})
        assert r["error"]["desc"] == "Property 'virtio-balloon-device.guest-stats' is not writable"
        r = d.q.cmd("qom-get", {"path": PATH, "property": "stats-polling-interval"})
        assert r["error"]["desc"] == \
            "Property 'virtio-balloon-pci.stats-polling-interval' not found"
        r = d.q.cmd("qom-get", {"path": "/machine/peripheral-anon/device[9]",
                                "property": "guest-stats"})
        assert r["error"] == {"class": "DeviceNotFound",
                              "desc": "Device '/machine/peripheral-anon/device[9]' not found"}
        props = {p["name"]: p["type"] for p in d.q.ok("qom-list", {"path": PATH})}
        assert props["guest-stats"] == "guest statistics"
        assert props["guest-stats-polling-interval"] == "int"
        assert d.set_interval(4294967295) == {"return": {}}
        assert d.q.ok("qom-get", {"path": PATH, "property": "guest-stats-polling-interval"}) \
            == 4294967295


def test_interval_above_int64_is_a_type_error():
    """QEMU parses 2^64-1 as an unsigned number and then refuses it for the
    int property; it is not a JSON error."""
    with Balloon() as d:
        for v in (9223372036854775808, 18446744073709551615):
            r = d.set_interval(v)
            assert r.get("error", {}).get("desc") == \
                "Invalid parameter type for 'guest-stats-polling-interval', expected: integer", r


def test_reference_transcript_balloon_exchanges():
    """QEMU 7.2's balloon exchanges replayed (its device lived at
    /machine/peripheral/balloon0 with 10 stats and 256 MiB; ours has 16
    stats and reports 256 MiB with --no-vm)."""
    with open(os.path.join(FIXTURES, "qemu-7.2-qmp-transcript.json")) as f:
        transcript = json.load(f)
    entries = [e for e in transcript
               if "balloon" in json.dumps(e.get("request", ""))]
    assert len(entries) >= 6, [e["tag"] for e in entries]
    with Balloon() as d:
        for e in entries:
            req = json.loads(json.dumps(e["request"]).replace("/machine/peripheral/balloon0",
                                                               PATH))
            got = d.q.cmd(req["execute"], req.get("arguments"))
            want = e["reply"]
            if "guest-stats" == req.get("arguments", {}).get("property"):
                # every key QEMU 7.2 had, with the same unset value
                for k, v in want["return"]["stats"].items():
                    assert got["return"]["stats"][k] == v, (e["tag"], k)
                assert got["return"]["last-update"] == want["return"]["last-update"]
                assert len(got["return"]["stats"]) == 16
            else:
                assert got == want, (e["tag"], got, want)


if __name__ == "__main__":
    run_module(globals())
