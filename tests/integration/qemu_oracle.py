"""A live QEMU used as the oracle of the compatibility tests: the real
qemu-system-x86_64 under KVM, with the vCPU count of the QEMU 7.2
reference transcript and a virtio-balloon device, reachable over QMP on a
unix socket.  No disk and no kernel: the BIOS finds nothing to boot and
idles, which is all the stats commands need (and the balloon has no guest
driver, like in the transcript)."""
import os
import shutil
import subprocess
import tempfile
import time

from qstest import QMP

BALLOON_ID = "balloon0"
BALLOON_PATH = "/machine/peripheral/" + BALLOON_ID


def qemu_binary():
    return shutil.which("qemu-system-x86_64")


class LiveQemu:
    """qemu-system-x86_64 -accel kvm -M pc -smp N with QMP on a private socket."""

    def __init__(self, vcpus=2, mem_mb=256, timeout=30):
        binary = qemu_binary()
        if not binary:
            raise RuntimeError("qemu-system-x86_64 is not installed")
        self.dir = tempfile.mkdtemp(prefix="qstats-qemu-")
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.stderr_path = os.path.join(self.dir, "stderr")
        cmd = [binary, "-accel", "kvm", "-M", "pc", "-smp", str(vcpus), "-m", str(mem_mb),
               "-display", "none", "-nodefaults",
               "-device", f"virtio-balloon-pci,id={BALLOON_ID}",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        try:
            self._wait_for_socket(timeout)
            self.q = QMP(self.qmp_path)
            self.version = self.q.greeting["QMP"]["version"]["qemu"]
            # vCPU QOM paths by cpu-index: QEMU numbers its QOM children
            # non-contiguously (device[0], device[2], ...).
            cpus = self.q.ok("query-cpus-fast")
            self.vcpu_paths = [c["qom-path"] for c in sorted(cpus, key=lambda c: c["cpu-index"])]
        except BaseException:
            self.stop()
            raise

    def _wait_for_socket(self, timeout):
        deadline = time.time() + timeout
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited with {self.proc.returncode}: {self.log()}")
            if time.time() > deadline:
                raise RuntimeError("QEMU did not create its QMP socket")
            time.sleep(0.05)

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self):
        if getattr(self, "q", None):
            self.q.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
