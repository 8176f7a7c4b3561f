"""Embedding from the installed library only: `cmake --install` this build
into a temporary prefix, check what lands there (programs that run from
the prefix, libqstats with its SONAME, headers, qstats.pc, the systemd
unit), then compile examples/embed.c from a copy outside the source tree
with nothing but `pkg-config --cflags --libs qstats`, run it against the
installed libqstats on a copy of the recorded VM (the stats files a VMM
would get from KVM_GET_STATS_FD; tests/fixtures/recorded-linux-6.18) and
check that it serves their values over QMP, HMP and metrics, follows their
rewrites, refuses a malformed file naming it, and exits cleanly with no
leak (LeakSanitizer in the ASan build, valgrind otherwise, when installed).
Nothing here needs /dev/kvm."""
import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from qstest import ASAN, BUILD, QMP, RECORDED, build_option, recording, run_module

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HEADERS = ["qstats.h", "qs-core.h", "qs-kvm.h", "qs-balloon.h", "qs-qmp.h", "qs-hmp.h",
           "qs-exporter.h"]


MISSING = [t for t in ("cmake", "pkg-config", "readelf") if not shutil.which(t)]
# The build's own compiler: an ASan libqstats needs the same sanitizer runtime.
CC = build_option("CMAKE_C_COMPILER") or "cc"
VALGRIND = not ASAN and shutil.which("valgrind")
HAVE_MHD = build_option("MHD_FOUND") == "1"
TMP = tempfile.mkdtemp(prefix="qstats-embed-")
atexit.register(shutil.rmtree, TMP, ignore_errors=True)
PREFIX = os.path.join(TMP, "prefix")
PCDIR = os.path.join(PREFIX, "lib", "pkgconfig")


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def install():
    """cmake --install this build into PREFIX, once."""
    assert not MISSING, f"{MISSING} not installed (scripts/deps.sh installs them)"
    if not os.path.isdir(PREFIX):
        run(["cmake", "--install", BUILD, "--prefix", PREFIX])


def pkg_config(*args):
    env = dict(os.environ, PKG_CONFIG_PATH=PCDIR)
    return run(["pkg-config", *args, "qstats"], env=env).split()


def test_install_puts_programs_library_headers_pkgconfig_and_unit_under_the_prefix():
    install()
    programs = ["qstatsd", "qstats-guest-agent"]
    if os.path.exists(os.path.join(BUILD, "qstats")):
        programs.append("qstats")
    for prog in programs:
        path = os.path.join(PREFIX, "bin", prog)
        # Runs from the prefix (RPATH $ORIGIN/../lib), without LD_LIBRARY_PATH.
        env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
        out = run([path, "--version"], env=env)
        assert "0.1.0" in out, (prog, out)
    lib = os.path.join(PREFIX, "lib")
    assert os.path.islink(os.path.join(lib, "libqstats.so"))
    dyn = run(["readelf", "-d", os.path.join(lib, "libqstats.so")])
    assert "Library soname: [libqstats.so.0]" in dyn, dyn
    assert os.path.exists(os.path.join(lib, "libqstats.so.0"))
    for h in HEADERS:
        assert os.path.isfile(os.path.join(PREFIX, "include", "qstats", h)), h

    pc = open(os.path.join(PCDIR, "qstats.pc")).read()
    assert f"prefix={PREFIX}\n" in pc, pc
    assert re.search(r"^Requires: jansson libuv$", pc, re.M), pc
    assert pkg_config("--modversion") == ["0.1.0"]
    cflags = pkg_config("--cflags")
    assert f"-I{PREFIX}/include/qstats" in cflags, cflags
    assert not any(SRC in f for f in cflags), cflags     # nothing from the source tree
    libs = pkg_config("--libs")
    assert f"-L{PREFIX}/lib" in libs and "-lqstats" in libs and "-luv" in libs, libs

    unit = os.path.join(PREFIX, "lib", "systemd", "system", "qstatsd.service")
    text = open(unit).read()
    assert f"ExecStart={PREFIX}/bin/qstatsd " in text, text
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
        # Only complaints about this unit's own syntax count (not the host's systemd state).
        bad = [l for l in r.stderr.splitlines()
               if "qstatsd.service" in l and ("Unknown" in l or "Failed to parse" in l)]
        assert not bad, r.stderr


def build_example(name):
    """examples/NAME.c, copied out of the tree and compiled against the
    installed library through pkg-config only."""
    exe = os.path.join(TMP, name)
    if os.path.exists(exe):
        return exe
    install()
    src = os.path.join(TMP, name + ".c")
    shutil.copy(os.path.join(SRC, "examples", name + ".c"), src)
    # An ASan libqstats needs the sanitizer runtime in the program too.
    san = ["-fsanitize=address,undefined"] if ASAN else []
    run([CC, "-Wall", "-Wextra", "-Werror", *san, src, "-o", exe,
         *pkg_config("--cflags", "--libs")], cwd=TMP)
    return exe


def example_cmd(name, *args):
    """The command line and environment that run the installed-library
    build of examples/NAME.c (under valgrind where that checks leaks)."""
    cmd = [build_example(name), *args]
    if VALGRIND:
        cmd = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
               "--error-exitcode=99", *cmd]
    return cmd, dict(os.environ, LD_LIBRARY_PATH=os.path.join(PREFIX, "lib"))


def embed_cmd(*args):
    return example_cmd("embed", *args)


def assert_no_leak_or_memory_error(stderr):
    """What LeakSanitizer, ASan and UBSan (the ASan build) or valgrind said
    about an example's run."""
    for bad in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
        assert bad not in stderr, stderr
    if VALGRIND:
        assert "ERROR SUMMARY: 0 errors" in stderr, stderr


class Embedded:
    """examples/embed serving a fresh copy of the recorded VM with nvcpus
    vCPUs (self.recording, rewritten in place by the test)."""

    def __init__(self, metrics, nvcpus=3):
        self.dir = tempfile.mkdtemp(dir=TMP)
        self.recording = recording.Recording(
            recording.make(RECORDED, os.path.join(self.dir, "recording"), nvcpus))
        self.qmp = os.path.join(self.dir, "qmp.sock")
        self.hmp = os.path.join(self.dir, "hmp.sock")
        args = [self.recording.path, self.qmp, self.hmp]
        if metrics:
            args.append("127.0.0.1:0")
        cmd, env = embed_cmd(*args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.port = None
        line = self.proc.stdout.readline()
        if line.startswith("metrics on port "):
            self.port = int(line.split()[-1])
            line = self.proc.stdout.readline()
        assert line == "ready\n", (line, self.proc.stderr.read() if not line else "")

    def finish(self):
        rc = self.proc.wait(60)
        err = self.proc.stderr.read()
        assert rc == 0, f"embed exited {rc}:\n{err}"
        assert_no_leak_or_memory_error(err)
        assert not os.path.exists(self.qmp) and not os.path.exists(self.hmp)


def uses_installed_library(pid):
    with open(f"/proc/{pid}/maps") as f:
        libs = {line.split()[-1] for line in f if "libqstats.so" in line}
    return libs and all(p.startswith(PREFIX + "/") for p in libs)


def vcpu_paths(n):
    return [f"/machine/unattached/device[{i}]" for i in range(n)]


def assert_serves_the_files(q, rec):
    """The VM's and every vCPU's counters equal the recording's files."""
    vm = {s["name"]: s["value"] for s in q.ok("query-stats", {"target": "vm"})[0]["stats"]}
    assert vm["mmu_cache_miss"] == rec.load("vm").get("mmu_cache_miss")
    vcpus = q.ok("query-stats", {"target": "vcpu", "providers": [
        {"provider": "kvm", "names": ["exits", "halt_exits", "halt_wait_hist"]}]})
    assert [r["qom-path"] for r in vcpus] == vcpu_paths(rec.nvcpus)
    for i, r in enumerate(vcpus):
        f = rec.load(i)
        assert {s["name"]: s["value"] for s in r["stats"]} == \
            {n: f.get(n) for n in ("exits", "halt_exits", "halt_wait_hist")}, i


def test_embed_built_from_installed_headers_serves_the_recorded_vm_over_qmp_hmp_metrics():
    e = Embedded(metrics=HAVE_MHD)
    rec = e.recording
    try:
        q = QMP(e.qmp, timeout=30)
        assert uses_installed_library(e.proc.pid), "embed did not load the installed library"
        assert q.ok("query-name") == {"name": "embedded"}
        assert_serves_the_files(q, rec)
        before = rec.load(2).get("exits")
        rec.advance(1.5)                   # read at every query: seen at once
        rec.update("vm", mmu_cache_miss=rec.load("vm").get("mmu_cache_miss") + 5)
        assert rec.load(2).get("exits") > before
        assert_serves_the_files(q, rec)
        for i in range(rec.nvcpus):
            assert q.ok("qom-get", {"path": vcpu_paths(rec.nvcpus)[i], "property": "stats-id"}) == \
                rec.load(i).id
        names = [(s["provider"], s["target"]) for s in q.ok("query-stats-schemas")]
        assert ("kvm", "vcpu") in names and ("balloon", "vm") in names, names
        assert q.ok("qom-get", {"path": "/machine/peripheral-anon/device[0]",
                                "property": "guest-stats-polling-interval"}) == 0
        out = q.ok("human-monitor-command", {"command-line": "info stats vcpu exits",
                                             "cpu-index": 2})
        assert out == f"provider: kvm\r\n    exits (cumulative): {rec.load(2).get('exits')}\r\n"
        with socket.socket(socket.AF_UNIX) as h:
            h.settimeout(30)
            h.connect(e.hmp)
            h.sendall(b"info stats vm mmu_cache_miss\n")
            want = f"mmu_cache_miss (cumulative): {rec.load('vm').get('mmu_cache_miss')}".encode()
            text = b""
            while want not in text:
                chunk = h.recv(65536)
                assert chunk, text
                text += chunk
        if e.port:
            body = urllib.request.urlopen(f"http://127.0.0.1:{e.port}/metrics",
                                          timeout=30).read().decode()
            m = re.search(r'^qstats_kvm_vcpu_halt_exits_total\{vm="embedded",vcpu="2"\} (\d+)$',
                          body, re.M)
            assert m and int(m.group(1)) == rec.load(2).get("halt_exits"), body[:1000]
        assert q.cmd("quit") == {"return": {}}
    except BaseException:
        e.proc.kill()
        raise
    e.finish()


def test_embed_stops_cleanly_on_sigterm():
    e = Embedded(metrics=False, nvcpus=2)
    q = QMP(e.qmp, timeout=30)
    assert len(q.ok("query-stats", {"target": "vcpu"})) == 2
    time.sleep(0.1)
    e.proc.send_signal(signal.SIGTERM)
    e.finish()


def test_embed_refuses_a_missing_or_malformed_stats_file_naming_it_and_exits_1():
    d = tempfile.mkdtemp(dir=TMP)
    rec = recording.make(RECORDED, os.path.join(d, "recording"), 2)
    with open(os.path.join(rec, "vcpu1.bin"), "r+b") as f:
        f.truncate(100)                        # inside the descriptors
    qmp = os.path.join(d, "qmp.sock")
    cases = [(rec, f"embed: {rec}/vcpu1.bin: KVM stats: failed to read stats descriptors: "),
             (os.path.join(d, "nothing"), f"embed: {d}/nothing/vm.bin: No such file or directory\n")]
    for stats_dir, message in cases:
        cmd, env = embed_cmd(stats_dir, qmp)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert (r.returncode, r.stdout) == (1, ""), (stats_dir, r)
        assert message in r.stderr, (message, r.stderr)
        for bad in ("ERROR: LeakSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
            assert bad not in r.stderr, r.stderr
        assert not os.path.exists(qmp)


if __name__ == "__main__":
    run_module(globals())
