"""scripts/run.sh, the README's first command, on a terminal (tmux): without
/dev/kvm (hidden by scripts/without-kvm.sh) it says first that the VM is
recorded, then gives the console on a 4-vCPU recorded VM whose values are
the recording's; where /dev/kvm works it starts the live micro-VM.  quit
stops the daemon and the agent and removes the sockets."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

from qstest import BUILD, QMP, RECORDED, free_port, kvm_usable, need_kvm, recording, \
    run_module, skip

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))


class RunScript:
    """scripts/run.sh in a detached tmux session of its own."""

    def __init__(self, *prefix):
        if not shutil.which("tmux"):
            skip("tmux is not installed")     # scripts/deps.sh installs it
        self.dir = tempfile.mkdtemp(prefix="qstats-run-")
        # a tmux server of its own: one just killed may still hold a reused name
        self.server = os.path.basename(self.dir)
        self.metrics = f"127.0.0.1:{free_port()}"
        env = (f"QSTATS_BUILD={BUILD} QSTATS_RUN_DIR={self.dir} "
               f"QSTATS_METRICS={self.metrics}")
        cmd = " ".join([*prefix, os.path.join(SRC, "scripts/run.sh")])
        self.tmux("new-session", "-d", "-x", "200", "-y", "60",
                  f"cd {SRC} && env {env} {cmd}; echo EXIT=$?; sleep 600")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-f", "/dev/null", "-L", self.server, *args],
                              check=True, capture_output=True, text=True).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-S", "-200")

    def wait_for(self, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.screen()
            if text in out:
                return out
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared:\n{self.screen()}")

    def type(self, line):
        self.tmux("send-keys", "-l", line)
        self.tmux("send-keys", "Enter")

    def close(self):
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def vcpu_exits(q, path):
    r = q.ok("query-stats", {"target": "vcpu", "vcpus": [path],
                             "providers": [{"provider": "kvm", "names": ["exits"]}]})
    return r[0]["stats"][0]["value"]


def quit_cleanly(r):
    r.type("quit")
    r.wait_for("EXIT=0")
    for sock in ("qmp.sock", "balloon.sock"):
        assert not os.path.exists(os.path.join(r.dir, sock)), sock
    # nothing it started is left: the agent, the recording's replay
    for what in (f"qstats-guest-agent --connect unix:{r.dir}", f"recording.py replay {r.dir}"):
        left = subprocess.run(["pgrep", "-f", what], capture_output=True, text=True).stdout
        assert not left.strip(), f"run.sh left {what!r} behind: {left}"


def test_without_kvm_run_sh_says_the_vm_is_recorded_and_gives_its_console():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        skip("needs root and unshare to hide /dev/kvm")
    r = RunScript(os.path.join(SRC, "scripts/without-kvm.sh"))
    try:
        out = r.wait_for("(qstats) ")
        first = out.strip().splitlines()[0]
        assert first.startswith("VM:") and "RECORDED" in first, out
        assert "recorded on a Linux 6.18 KVM host" in out and "moves them every second" in out, out
        assert "micro-VM" in out, out         # and where the live one is found
        # The web page's address, and the page there.
        page = next(l.split()[2] for l in out.splitlines() if l.startswith("web page:"))
        assert page == f"http://{r.metrics}/", out
        with urllib.request.urlopen(page, timeout=30) as resp:
            assert b'<script type="module" src="/app.js">' in resp.read()
        r.type("info stats vcpu exits,halt_exits")
        out = r.wait_for("halt_exits (cumulative)")
        # The recorded values, moved on as an idle guest's would be: they
        # started at the recording's and grow while we watch.
        start = recording.StatsFile.load(os.path.join(RECORDED, "vcpu0.bin"))
        shown = int(re.search(r"    exits \(cumulative\): (\d+)", out).group(1))
        assert shown >= start.get("exits"), out
        q = QMP(os.path.join(r.dir, "qmp.sock"))
        path = "/machine/unattached/device[0]"
        first = vcpu_exits(q, path)
        deadline = time.time() + 20
        while vcpu_exits(q, path) <= first:
            assert time.time() < deadline, "the recorded VM's exits never moved"
            time.sleep(0.2)
        q.close()
        r.type("info stats -a vm pages_4k")
        r.wait_for("pages_4k (instant)")
        # The recording is the daemon's: four vCPUs under QEMU's paths.
        rec = recording.Recording(os.path.join(r.dir, "recording"))
        assert rec.nvcpus == 4
        r.type("info stats -a vcpu exits")
        out = r.wait_for("/machine/unattached/device[3]")
        quit_cleanly(r)
    finally:
        r.close()


def test_with_kvm_run_sh_starts_the_live_micro_vm():
    need_kvm("run.sh's live micro-VM")
    assert kvm_usable()
    r = RunScript()
    try:
        out = r.wait_for("(qstats) ")
        assert out.strip().splitlines()[0].startswith("VM:") and "micro-VM" in out, out
        assert "RECORDED" not in out, out
        r.type("info stats vcpu exits")
        r.wait_for("exits (cumulative)")
        quit_cleanly(r)
    finally:
        r.close()


if __name__ == "__main__":
    run_module(globals())
