"""Shared helpers for the integration tests: start the real qstatsd from
this build (on a recorded VM whose files the test advances, or on the
micro-VM where /dev/kvm works), talk QMP to it over a real socket, and skip
(exit 77) with a clear message where the machine lacks what a test needs.
Only micro-VM tests may skip for want of /dev/kvm (scripts/test.sh checks
the skips against tests/skips-allowed)."""
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../scripts"))
import recording  # noqa: E402  (scripts/recording.py: the stats-file format)

BUILD = os.environ.get("QSTATS_BUILD", os.path.join(HERE, "../../build"))
FIXTURES = os.environ.get("QS_FIXTURES", os.path.join(HERE, "../fixtures"))
RECORDED = os.path.join(FIXTURES, "recorded-linux-6.18")   # VM + 2 vCPUs, real host
QSTATSD = os.path.join(BUILD, "qstatsd")
SKIP = 77
KVM_GET_API_VERSION = 0xAE00


class Skip(Exception):
    """Raised by skip(): the test did not run, for the reason given."""


def skip(why):
    raise Skip(why)


def kvm_usable():
    """Whether /dev/kvm opens and answers (not merely exists)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION) == 12
    except OSError:
        return False
    finally:
        os.close(fd)


def build_option(key):
    """A CMake cache entry of the build under test ("" when unset)."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return ""


ASAN = build_option("QS_SANITIZE").upper() in ("ON", "1", "TRUE", "YES")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memfd_with(data, name="stats"):
    """A memfd holding data: what a VMM hands over in place of a KVM stats fd."""
    fd = os.memfd_create(name)
    os.write(fd, data)
    return fd


def need_kvm(what="the micro-VM"):
    """For tests of the micro-VM itself: they skip where KVM is missing."""
    if not kvm_usable():
        skip(f"/dev/kvm is not usable on this machine: {what} cannot run")


class QMP:
    """A QMP client: one JSON reply per line; events are kept aside in
    self.events (oldest first) while waiting for replies."""

    def __init__(self, path=None, addr=None, negotiate=True, timeout=10):
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = addr
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.sock.connect(target)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            assert self.cmd("qmp_capabilities") == {"return": {}}

    def recv_line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def recv(self):
        while True:
            msg = json.loads(self.recv_line())
            if "event" not in msg:
                return msg
            self.events.append(msg)

    def recv_reply_line(self):
        """The raw text of the next reply (events are kept aside)."""
        while True:
            line = self.recv_line()
            if not line.startswith(b'{"timestamp"') or b'"event"' not in line:
                return line
            self.events.append(json.loads(line))

    def wait_event(self, name, timeout=10):
        """The oldest kept event called name, taken out of self.events; reads
        more (replies then would be lost: call it between commands) until
        timeout.  None when none came."""
        deadline = time.time() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                msg = json.loads(self.recv_line())
            except socket.timeout:
                return None
            finally:
                self.sock.settimeout(self.timeout)
            assert "event" in msg, f"a reply nobody asked for: {msg}"
            self.events.append(msg)

    def send_raw(self, data, fds=None):
        if isinstance(data, str):
            data = data.encode()
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.sendall(data)

    def cmd(self, name, args=None, id=None, fds=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        if id is not None:
            req["id"] = id
        self.send_raw(json.dumps(req), fds)
        return self.recv()

    def ok(self, name, args=None):
        r = self.cmd(name, args)
        assert "return" in r, f"{name} {args}: {r}"
        return r["return"]

    def hand_over(self, fd, name, target="vcpu", path=None):
        """getfd with fd in SCM_RIGHTS, then add-stats-fd for the kvm
        provider; returns add-stats-fd's reply."""
        assert self.cmd("getfd", {"fdname": name}, fds=[fd]) == {"return": {}}
        args = {"fdname": name, "provider": "kvm", "target": target}
        if path:
            args["qom-path"] = path
        return self.cmd("add-stats-fd", args)

    def close(self):
        self.sock.close()


class Daemon:
    """A real qstatsd with a QMP unix socket in a private temp dir."""

    def __init__(self, *args, vcpus=None, recorded=None, no_vm=False, extra_qmp=(),
                 stdin=subprocess.DEVNULL, wrapper=()):
        """recorded=N: a recorded VM of N vCPUs in the daemon's temp dir
        (self.recording, moved with advance()); vcpus=N: the micro-VM (call
        need_kvm() first); no_vm: stats only from handed-over fds.
        wrapper: a command that execs qstatsd (e.g. setpriv), so that
        self.proc is still the daemon."""
        assert [vcpus is not None, recorded is not None, no_vm].count(True) == 1, \
            "choose one of vcpus=, recorded=, no_vm="
        self.dir = tempfile.mkdtemp(prefix="qstats-test-")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.recording = None
        cmd = [*wrapper, QSTATSD, "--qmp", "unix:" + self.qmp_path]
        if recorded is not None:
            path = recording.make(RECORDED, os.path.join(self.dir, "recording"), recorded)
            self.recording = recording.Recording(path)
            cmd += ["--recorded", path]
        elif no_vm:
            cmd += ["--no-vm"]
        else:
            cmd += ["--vcpus", str(vcpus)]
        for q in extra_qmp:
            cmd += ["--qmp", q]
        cmd += list(args)
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        try:
            self.wait_for_socket(self.qmp_path)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def wait_for_socket(self, path, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qstatsd exited with {self.proc.returncode}: {self.log()}")
            if os.path.exists(path):
                return
            time.sleep(0.02)
        raise RuntimeError(f"qstatsd did not create {path}")

    def qmp(self, **kw):
        return QMP(self.qmp_path, **kw)

    def advance(self, seconds=1.0, vcpus=None):
        """Moves the recorded VM's counters as an idle guest's would."""
        self.recording.advance(seconds, vcpus)

    def rss_kib(self):
        """The daemon's resident memory (VmRSS), in KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log(self):
        self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.stderr.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("qstatsd did not stop on signal")
        rc = self.proc.returncode
        log = self.log()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        for bad in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert bad not in log, f"qstatsd sanitizer report:\n{log}"
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Runner:
    """Runs test_* functions of a module, printing a closing summary line."""

    def __init__(self, tests):
        self.tests = tests

    def run(self):
        passed = failed = skipped = 0
        for fn in self.tests:
            name = fn.__name__
            try:
                fn()
                print(f"PASS {name}")
                passed += 1
            except Skip as e:
                # One line per skip, reason included: scripts/test.sh lists
                # them and fails on any not in tests/skips-allowed.
                print(f"SKIP {name}: {e}")
                skipped += 1
            except Exception as e:  # noqa: BLE001 - report every failure
                import traceback
                traceback.print_exc()
                print(f"FAIL {name}: {e!r}")
                failed += 1
        print(f"{passed} passed, {failed} failed, {skipped} skipped")
        if failed:
            sys.exit(1)
        if skipped and not passed:
            sys.exit(SKIP)


def run_module(globs):
    tests = [v for k, v in sorted(globs.items(), key=lambda kv: kv[1].__code__.co_firstlineno
                                  if callable(kv[1]) and hasattr(kv[1], "__code__") else 0)
             if k.startswith("test_") and callable(v)]
    Runner(tests).run()
