#!/usr/bin/env python3
"""Recorded VMs: KVM binary-stats files saved from a real host, laid out as
`qstatsd --recorded DIR` reads them (DIR/vm.bin, DIR/vcpu0.bin ...).

This is the one place outside the C reader that knows the kernel's file
format (header, id, descriptors, data block; see providers/kvm/binary_stats.c).
Tests, benchmarks and scripts/run.sh use it to

  make     an N-vCPU recording from a source one (vCPU i is a copy of source
           vCPU i mod n, its id renumbered), and
  advance  a recording in place the way an idle guest's counters move
           (exits, halts, halt wait time and its histogram, interrupts grow;
           the guest_mode/blocking booleans flip), so that "values move
           between two queries" holds on real descriptors, once or, with
  replay,  as time passes.

Command line:
  recording.py make SRC DST N       copy SRC's recording into DST with N vCPUs
  recording.py advance DIR [SECONDS] advance every vCPU by SECONDS (default 1)
  recording.py replay DIR [SECONDS] advance every SECONDS (default 1), as time
                                    passes, until killed: a recorded VM that moves
  recording.py show FILE            print the decoded file as JSON
"""
import json
import math
import os
import shutil
import struct
import sys
import time

HEADER = struct.Struct("=6I")          # flags name_size num_desc id_off desc_off data_off
DESC = struct.Struct("=IhHII")         # flags exponent size offset bucket_size
TYPES = ["cumulative", "instant", "peak", "linear-hist", "log-hist"]
UNITS = ["none", "bytes", "seconds", "cycles", "boolean"]
TIMER_HZ = 100                          # an idle guest's tick, as the micro-VM's


class Desc:
    """One descriptor: where its values live in the data block."""

    def __init__(self, name, flags, exponent, size, offset, bucket_size):
        self.name, self.flags, self.exponent = name, flags, exponent
        self.size, self.offset, self.bucket_size = size, offset, bucket_size

    @property
    def type(self):
        t = self.flags & 0xF
        return TYPES[t] if t < len(TYPES) else f"type{t}"

    @property
    def unit(self):
        u = (self.flags >> 4) & 0xF
        return UNITS[u] if u < len(UNITS) else f"unit{u}"


class StatsFile:
    """A KVM binary-stats file read from bytes; values can be changed and
    the data block written back in place with one pwrite."""

    def __init__(self, data):
        (self.flags, self.name_size, n, self.id_offset, self.desc_offset,
         self.data_offset) = HEADER.unpack_from(data, 0)
        self.id = data[self.id_offset:self.id_offset + self.name_size].split(b"\0")[0].decode()
        self.descs = []
        stride = DESC.size + self.name_size
        for i in range(n):
            at = self.desc_offset + i * stride
            name = data[at + DESC.size:at + stride].split(b"\0")[0].decode()
            self.descs.append(Desc(name, *DESC.unpack_from(data, at)))
        self.words = max((d.offset // 8 + d.size for d in self.descs), default=0)
        self.data = list(struct.unpack_from(f"={self.words}Q", data, self.data_offset))
        self.by_name = {d.name: d for d in self.descs}

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    def get(self, name):
        d = self.by_name[name]
        v = self.data[d.offset // 8:d.offset // 8 + d.size]
        return v if d.type.endswith("hist") else v[0]

    def set(self, name, value):
        d = self.by_name[name]
        values = value if isinstance(value, list) else [value]
        assert len(values) == d.size, (name, len(values), d.size)
        self.data[d.offset // 8:d.offset // 8 + d.size] = [int(v) & (2**64 - 1) for v in values]

    def add(self, name, delta):
        if name in self.by_name:
            self.set(name, self.get(name) + delta)

    def data_block(self):
        return struct.pack(f"={self.words}Q", *self.data)

    def write_data(self, fd):
        """The data block in place, one pwrite (a reader sees whole words)."""
        os.pwrite(fd, self.data_block(), self.data_offset)

    def decoded(self):
        return {"id": self.id, "stats": [
            {"name": d.name, "type": d.type, "unit": d.unit, "exponent": d.exponent,
             "size": d.size, "bucket_size": d.bucket_size, "value": self.get(d.name)}
            for d in self.descs]}


def build(descs, values, id_=b"kvm-test/vcpu-0", name_size=48):
    """A stats file as the kernel lays it out: descs are (name, flags,
    exponent, size, offset, bucket_size) tuples, values the data block."""
    desc_off = HEADER.size + name_size
    data_off = desc_off + len(descs) * (DESC.size + name_size)
    out = HEADER.pack(0, name_size, len(descs), HEADER.size, desc_off, data_off)
    out += id_.ljust(name_size, b"\0")
    for name, flags, exponent, size, offset, bucket_size in descs:
        out += DESC.pack(flags, exponent, size, offset, bucket_size)
        out += name.encode().ljust(name_size, b"\0")
    return out + struct.pack(f"={len(values)}Q", *values)


def with_id(data, new_id):
    """The same file under another id (kept within name_size bytes)."""
    f = StatsFile(data)
    raw = new_id.encode()[:f.name_size - 1].ljust(f.name_size, b"\0")
    return data[:f.id_offset] + raw + data[f.id_offset + f.name_size:]


def source_vcpus(src):
    n = 0
    while os.path.exists(os.path.join(src, f"vcpu{n}.bin")):
        n += 1
    if not n or not os.path.exists(os.path.join(src, "vm.bin")):
        raise ValueError(f"{src} is not a recording (vm.bin, vcpu0.bin ...)")
    return n


def make(src, dst, nvcpus):
    """Writes an nvcpus recording into dst (created if needed) from src."""
    nsrc = source_vcpus(src)
    os.makedirs(dst, exist_ok=True)
    shutil.copyfile(os.path.join(src, "vm.bin"), os.path.join(dst, "vm.bin"))
    vm_id = StatsFile.load(os.path.join(dst, "vm.bin")).id
    for i in range(nvcpus):
        with open(os.path.join(src, f"vcpu{i % nsrc}.bin"), "rb") as f:
            data = f.read()
        with open(os.path.join(dst, f"vcpu{i}.bin"), "wb") as f:
            f.write(with_id(data, f"{vm_id}/vcpu-{i}"))
    return dst


def idle_guest(f, seconds, hz=TIMER_HZ):
    """Moves one vCPU file's stats as `seconds` of an idle guest would: a
    timer interrupt wakes the halted vCPU hz times a second."""
    ticks = max(1, round(seconds * hz))
    for name in ("halt_exits", "irq_exits", "irq_injections", "halt_wakeup",
                 "halt_attempted_poll", "halt_poll_fail"):
        f.add(name, ticks)
    f.add("exits", 2 * ticks)
    wait = f.by_name.get("halt_wait_ns")
    if wait:
        f.add("halt_wait_ns", round(seconds * 0.99 / 10 ** wait.exponent))
    hist = f.by_name.get("halt_wait_hist")
    if hist and hist.type == "log-hist":
        tick_raw = 1.0 / hz / 10 ** (wait.exponent if wait else -9)
        bucket = min(hist.size - 1, int(math.log2(tick_raw)) + 1)
        buckets = f.get("halt_wait_hist")
        buckets[bucket] += ticks
        f.set("halt_wait_hist", buckets)
    for name in ("guest_mode", "blocking"):
        if name in f.by_name:
            f.set(name, 1 - (f.get(name) & 1))


class Recording:
    """A recording directory whose files are kept open for rewriting."""

    def __init__(self, path):
        self.path = path
        self.nvcpus = source_vcpus(path)

    def file(self, which):
        """which: "vm" or a vCPU index."""
        return os.path.join(self.path, "vm.bin" if which == "vm" else f"vcpu{which}.bin")

    def load(self, which):
        return StatsFile.load(self.file(which))

    def store(self, which, f):
        fd = os.open(self.file(which), os.O_WRONLY)
        try:
            f.write_data(fd)
        finally:
            os.close(fd)

    def update(self, which, **values):
        """Rewrites the named stats of one file in place."""
        f = self.load(which)
        for name, v in values.items():
            f.set(name, v)
        self.store(which, f)
        return f

    def advance(self, seconds=1.0, vcpus=None):
        for i in range(self.nvcpus) if vcpus is None else vcpus:
            f = self.load(i)
            idle_guest(f, seconds)
            self.store(i, f)


def replay(path, interval=1.0):
    """Advances the recording by the time that really passed, every
    interval seconds, until killed (scripts/run.sh's recorded VM)."""
    rec = Recording(path)
    last = time.monotonic()
    while True:
        time.sleep(interval)
        now = time.monotonic()
        rec.advance(now - last)
        last = now


def main(argv):
    if len(argv) == 4 and argv[0] == "make":
        make(argv[1], argv[2], int(argv[3]))
    elif len(argv) in (2, 3) and argv[0] == "advance":
        Recording(argv[1]).advance(float(argv[2]) if len(argv) == 3 else 1.0)
    elif len(argv) in (2, 3) and argv[0] == "replay":
        replay(argv[1], float(argv[2]) if len(argv) == 3 else 1.0)
    elif len(argv) == 2 and argv[0] == "show":
        print(json.dumps(StatsFile.load(argv[1]).decoded(), indent=1))
    else:
        sys.stderr.write(__doc__.split("Command line:\n", 1)[1])
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
