#!/usr/bin/env python3
"""The Debian packages, built as a user builds them: `dpkg-buildpackage -us
-uc -b` in a copy of the checkout (so the checkout stays clean), then the
.debs unpacked with `dpkg-deb -x` into a temporary root and used from there:
the unpacked qstatsd, qstats client and guest agent (self-contained: linked
with the static archive) serve a short QMP session on a recorded VM,
examples/embed.c as shipped in libqstats-dev compiles against the unpacked
pkg-config file and runs with the unpacked libqstats.so.0, the unit passes `systemd-analyze verify` in a root where
the package is installed, the symbols file lists exactly what the library
exports, and lintian reports no error and no warning.

Run by scripts/test.sh as a step of its own (a package build is too slow to
repeat in the plain and ASan suites):
    python3 tests/packaging/test_packages.py
Every test skips, with the reason, only where dpkg-buildpackage cannot run."""
import atexit
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from qstest import QMP, RECORDED, recording, run_module, skip  # noqa: E402

PACKAGES = {"qstats", "qstats-guest-agent", "libqstats0", "libqstats-dev"}
TMP = tempfile.mkdtemp(prefix="qstats-packages-")
atexit.register(shutil.rmtree, TMP, ignore_errors=True)
ROOT = os.path.join(TMP, "root")
state = {}


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def changelog_version():
    return run(["dpkg-parsechangelog", "-l", os.path.join(SRC, "debian", "changelog"),
                "-S", "Version"]).strip()


def upstream_version():
    return re.sub(r"-[^-]*$", "", changelog_version())


def source_files():
    """The checkout's files as git sees them (tracked, plus new files not
    ignored: uncommitted work is tested too), without build directories."""
    r = subprocess.run(["git", "-C", SRC, "ls-files", "-z", "--cached", "--others",
                        "--exclude-standard"], capture_output=True)
    if r.returncode == 0:
        # obj-*: the build directory of a dpkg-buildpackage run in the checkout.
        return [f for f in r.stdout.decode().split("\0") if f and not f.startswith("obj-")
                and os.path.lexists(os.path.join(SRC, f))]
    out = []
    for top, dirs, files in os.walk(SRC):
        dirs[:] = [d for d in dirs if not (top == SRC and d.startswith(("build", "obj-", ".")))]
        out += [os.path.relpath(os.path.join(top, f), SRC) for f in files]
    return out


def copy_source(dst):
    for rel in source_files():
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        shutil.copy2(os.path.join(SRC, rel), os.path.join(dst, rel), follow_symlinks=False)


def build():
    """Builds the packages once: {package: .deb path}."""
    if "debs" in state:
        return state["debs"]
    if "skip" in state:
        skip(state["skip"])
    if "error" in state:
        raise AssertionError("dpkg-buildpackage failed (its output is shown under the first test)")
    for tool in ("dpkg-buildpackage", "dpkg-checkbuilddeps", "dpkg-deb"):
        if not shutil.which(tool):
            state["skip"] = f"{tool} is not installed: the packages cannot be built here"
            skip(state["skip"])
    src = os.path.join(TMP, "qstats-" + upstream_version())
    copy_source(src)
    r = subprocess.run(["dpkg-checkbuilddeps"], cwd=src, capture_output=True, text=True)
    if r.returncode != 0:
        state["skip"] = ("dpkg-buildpackage cannot run, the Build-Depends are not installed: "
                         + r.stderr.strip())
        skip(state["skip"])
    r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b", f"-j{os.cpu_count() or 1}"],
                       cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1800)
    with open(os.path.join(TMP, "build.log"), "w") as f:
        f.write(r.stdout)
    if r.returncode != 0:
        hint = ("\nThe library's exports and debian/libqstats0.symbols differ: if the change "
                "is meant, run debian/update-symbols on a build and commit the file."
                if "dpkg-gensymbols" in r.stdout else "")
        tail = "\n".join(r.stdout.splitlines()[-80:])
        state["error"] = f"dpkg-buildpackage failed, its last lines:\n{tail}{hint}"
        raise AssertionError(state["error"])
    debs = {}
    for deb in glob.glob(os.path.join(TMP, "*.deb")):
        name = run(["dpkg-deb", "-f", deb, "Package"]).strip()
        if not name.endswith("-dbgsym"):
            debs[name] = deb
    state["debs"] = debs
    state["changes"] = glob.glob(os.path.join(TMP, "*.changes"))
    for name in sorted(debs):
        if name in PACKAGES:
            run(["dpkg-deb", "-x", debs[name], ROOT])
    return debs


def contents(deb):
    """Paths in a .deb, without the leading "./"; symlinks as "path -> target"."""
    out = []
    for line in run(["dpkg-deb", "-c", deb]).splitlines():
        path = line.split(None, 5)[5]
        out.append(path[2:] if path.startswith("./") else path)
    return out


def multiarch():
    return run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).strip()


def libdir():
    return os.path.join(ROOT, "usr", "lib", multiarch())


def unpacked_env():
    return dict(os.environ, LD_LIBRARY_PATH=libdir())


def checkout_listing():
    return sorted(os.listdir(SRC)) + sorted(os.listdir(os.path.join(SRC, "debian")))


CHECKOUT_BEFORE = checkout_listing()


def test_dpkg_buildpackage_builds_the_four_packages_and_leaves_the_checkout_alone():
    debs = build()
    assert set(debs) == PACKAGES, sorted(debs)
    for name, deb in debs.items():
        assert run(["dpkg-deb", "-f", deb, "Version"]).strip() == changelog_version(), name
    assert checkout_listing() == CHECKOUT_BEFORE, "the build wrote into the checkout"


def test_each_package_holds_its_own_files():
    debs = build()
    ma = multiarch()
    expect = {
        "qstats": ["usr/bin/qstatsd", "usr/bin/qstats", "lib/systemd/system/qstatsd.service",
                   "usr/share/man/man8/qstatsd.8.gz", "usr/share/man/man1/qstats.1.gz",
                   "usr/lib/sysusers.d/qstats.conf",
                   "usr/share/qstats/prometheus/qstats.rules.yml",
                   "usr/share/qstats/prometheus/qstats.alerts.yml"],
        "qstats-guest-agent": ["usr/bin/qstats-guest-agent",
                               "usr/share/man/man8/qstats-guest-agent.8.gz"],
        "libqstats0": [f"usr/lib/{ma}/libqstats.so.0 -> libqstats.so.{upstream_version()}"],
        "libqstats-dev": ["usr/include/qstats/qstats.h", "usr/include/qstats/qs-core.h",
                          f"usr/lib/{ma}/libqstats.so -> libqstats.so.0",
                          f"usr/lib/{ma}/pkgconfig/qstats.pc",
                          "usr/share/doc/libqstats-dev/examples/embed.c"],
    }
    files = {name: contents(deb) for name, deb in debs.items()}
    for name, paths in expect.items():
        missing = [p for p in paths if p not in files[name]]
        assert not missing, f"{name} lacks {missing}"
    # Headers and the development link only in -dev; programs only where they belong.
    owners = {}
    for name, paths in files.items():
        for p in paths:
            if p and not p.endswith("/"):
                assert p not in owners, f"{p} is in {owners[p]} and {name}"
                owners[p] = name
    assert not [p for p in files["libqstats0"] if "/include/" in p or p.endswith(".so -> ")]
    assert "usr/bin/qstats-guest-agent" not in files["qstats"]
    for prog in ("usr/bin/qstatsd", "usr/bin/qstats", "usr/bin/qstats-guest-agent"):
        dyn = run(["readelf", "-d", os.path.join(ROOT, prog)])
        assert "RUNPATH" not in dyn and "RPATH" not in dyn, (prog, dyn)
        # linked with the static archive: they use internals that the
        # shared library, which exports only the embedding API, does not
        assert "libqstats.so" not in dyn, (prog, dyn)
    for name in ("qstats", "qstats-guest-agent"):
        depends = run(["dpkg-deb", "-f", debs[name], "Depends"])
        assert "libqstats0" not in depends, (name, depends)
    dev = run(["dpkg-deb", "-f", debs["libqstats-dev"], "Depends"])
    assert f"libqstats0 (= {changelog_version()})" in dev, dev


def exported_symbols(lib):
    out = run(["nm", "-D", "--defined-only", lib])
    return {line.split()[-1] for line in out.splitlines() if line.split()[-2] in "TDBRVWi"}


def test_symbols_file_lists_exactly_the_exports_of_the_shipped_library():
    debs = build()
    lib = os.path.realpath(os.path.join(libdir(), "libqstats.so.0"))
    ctl = os.path.join(TMP, "control")
    run(["dpkg-deb", "-e", debs["libqstats0"], ctl])
    with open(os.path.join(ctl, "symbols")) as f:
        shipped = {l.split()[0].split("@")[0] for l in f if l.startswith(" ")}
    with open(os.path.join(SRC, "debian", "libqstats0.symbols")) as f:
        committed = {l.split()[0].split("@")[0] for l in f if l.startswith(" ")}
    exports = exported_symbols(lib)
    assert exports and shipped == exports and committed == exports, (
        f"not in the symbols file: {sorted(exports - committed)}; "
        f"not exported: {sorted(committed - exports)}")


def test_unpacked_programs_print_the_package_version():
    build()
    for prog in ("qstatsd", "qstats", "qstats-guest-agent"):
        out = run([os.path.join(ROOT, "usr", "bin", prog), "--version"], env=unpacked_env())
        assert out == f"{prog} {upstream_version()}\n", out


def test_unpacked_daemon_serves_qmp_and_the_client_reads_it():
    build()
    work = tempfile.mkdtemp(dir=TMP)
    sock = os.path.join(work, "qmp.sock")
    rec = recording.make(RECORDED, os.path.join(work, "recording"), 2)
    qstatsd = os.path.join(ROOT, "usr", "bin", "qstatsd")
    err = open(os.path.join(work, "stderr"), "w+")
    proc = subprocess.Popen([qstatsd, "--recorded", rec, "--qmp", "unix:" + sock],
                            env=unpacked_env(), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 30
        while not os.path.exists(sock):
            assert proc.poll() is None and time.time() < deadline, open(err.name).read()
            time.sleep(0.05)
        with open(f"/proc/{proc.pid}/maps") as f:     # self-contained: no libqstats.so
            libs = {l.split()[-1] for l in f if "libqstats.so" in l}
        assert not libs, libs
        q = QMP(sock, timeout=30)
        assert q.greeting["QMP"]["version"]["package"] == f"qstats {upstream_version()}"
        major, minor, micro = (int(x) for x in upstream_version().split(".")[:3])
        assert q.ok("query-version")["qemu"] == {"major": major, "minor": minor,
                                                 "micro": micro}
        vcpus = q.ok("query-stats", {"target": "vcpu", "providers": [
            {"provider": "kvm", "names": ["exits"]}]})
        assert [v["qom-path"] for v in vcpus] == ["/machine/unattached/device[0]",
                                                  "/machine/unattached/device[1]"], vcpus
        assert all(v["stats"][0]["name"] == "exits" for v in vcpus), vcpus
        out = run([os.path.join(ROOT, "usr", "bin", "qstats"), "-s", sock, "info", "stats",
                   "vcpu", "exits"], env=unpacked_env())
        assert re.fullmatch(r"provider: kvm\n    exits \(cumulative\): \d+\n", out), out
        assert q.cmd("quit") == {"return": {}}
        assert proc.wait(30) == 0, open(err.name).read()
        assert not os.path.exists(sock)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_embed_example_compiles_against_the_unpacked_dev_package_and_runs():
    build()
    pcdir = os.path.join(libdir(), "pkgconfig")
    env = dict(os.environ, PKG_CONFIG_PATH=pcdir)
    # The .pc says prefix=/usr; pointed at the unpacked root it must give
    # flags inside that root only.
    flags = run(["pkg-config", f"--define-variable=prefix={ROOT}/usr", "--cflags", "--libs",
                 "qstats"], env=env).split()
    assert f"-I{ROOT}/usr/include/qstats" in flags and f"-L{libdir()}" in flags, flags
    assert "-lqstats" in flags and not any(SRC in f for f in flags), flags
    src = os.path.join(ROOT, "usr", "share", "doc", "libqstats-dev", "examples", "embed.c")
    exe = os.path.join(TMP, "embed")
    run(["cc", "-Wall", "-Wextra", "-Werror", src, "-o", exe, *flags], cwd=TMP)
    ldd = run(["ldd", exe], env=unpacked_env())
    assert re.search(rf"libqstats\.so\.0 => {re.escape(libdir())}/libqstats\.so\.0 ", ldd), ldd
    # and runs with it: the recorded VM over QMP, then quit
    work = tempfile.mkdtemp(dir=TMP)
    sock = os.path.join(work, "qmp.sock")
    rec = recording.make(RECORDED, os.path.join(work, "recording"), 2)
    proc = subprocess.Popen([exe, rec, sock], env=unpacked_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not os.path.exists(sock):
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
            time.sleep(0.05)
        q = QMP(sock, timeout=30)
        vcpus = q.ok("query-stats", {"target": "vcpu", "providers": [
            {"provider": "kvm", "names": ["exits"]}]})
        assert len(vcpus) == 2 and vcpus[0]["stats"][0]["name"] == "exits", vcpus
        assert q.cmd("quit") == {"return": {}}
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_installed_unit_passes_systemd_analyze_verify():
    debs = build()
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing (package systemd)"
    # A root where the qstats package is installed beside the host's own
    # units (the targets the unit's default dependencies name).
    root = os.path.join(TMP, "verify-root")
    run(["dpkg-deb", "-x", debs["qstats"], root])
    run(["cp", "-an", "/lib/systemd/system/.", os.path.join(root, "lib", "systemd", "system")])
    # Documentation=man:qstatsd(8) is checked with man(1): the page in the package.
    env = dict(os.environ, MANPATH=os.path.join(root, "usr", "share", "man"))
    r = subprocess.run(["systemd-analyze", "verify", f"--root={root}", "qstatsd.service"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (
        r.returncode, r.stdout, r.stderr)
    with open(os.path.join(root, "lib", "systemd", "system", "qstatsd.service")) as f:
        unit = f.read()
    assert re.search(r"^ExecStart=/usr/bin/qstatsd ", unit, re.M), unit
    assert "SupplementaryGroups=kvm" in unit
    with open(os.path.join(root, "usr", "lib", "sysusers.d", "qstats.conf")) as f:
        assert re.search(r"^g kvm - -$", f.read(), re.M)


def test_lintian_reports_no_error_and_no_warning():
    build()
    assert shutil.which("lintian"), "lintian is missing (package lintian)"
    r = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info", *state["changes"]],
                       capture_output=True, text=True, timeout=600)
    tags = [l for l in r.stdout.splitlines() if re.match(r"[EWIPXCO]: ", l)]
    print("lintian:", *tags or ["no tags"], sep="\n    ")
    bad = [l for l in tags if l[0] in "EW"]
    assert r.returncode == 0 and not bad, r.stdout + r.stderr


if __name__ == "__main__":
    run_module(globals())
