#!/usr/bin/env bash
# Benchmarks qstats on this machine, with or without /dev/kvm: a
# RelWithDebInfo build in build/, then
#   1. bench/query_bench: the query-stats hot path in-process (registry and a
#      whole QMP request without sockets), ns per query and per stat, heap
#      allocations per query after warm-up; vCPU stats from the micro-VM
#      where KVM is usable, from the recorded VM's files where it is not;
#   2. callgrind instruction counts per query (recorded VM's files; skipped
#      with QS_BENCH_CALLGRIND=0 or without valgrind);
#   3. bench/qmp_latency.py over QMP sockets, interleaved requests:
#      - every host: qstatsd --recorded on recorded VMs of 2, 16, 64 and 1024
#        vCPUs against bench/qmp_floor (the same preads and reply bytes, no
#        JSON work), ratios qstatsd/floor;
#      - KVM hosts only: QEMU (-accel kvm) against qstatsd's micro-VM,
#        ratios QEMU/qstatsd;
#   4. bench/scrape_cost.py: a Prometheus scrape of the metrics endpoint on
#      recorded VMs of 64 and 1024 vCPUs (bytes plain and gzip'd, samples,
#      daemon CPU per scrape, QMP query-version latency during scrapes),
#      against issue #14's goals; appended to the markdown results.
# Timings are reported, never asserted.  Installs any missing Debian package
# first (QEMU only where /dev/kvm exists).  Arguments go to qmp_latency.py
# (e.g. --requests 50, --recorded 2,64, --smp 1,4 --big '').
# Results: bench/results-latest.md (says what ran, the host and its load),
# bench/results-latest.json, bench/results-latest-hotpath.json,
# bench/results-latest-scrape.json.
# QS_BUILD_DIR overrides the build directory (default build).
# A quick run: QS_BENCH_CALLGRIND=0 scripts/bench.sh --requests 50
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do
    case $a in
    -h|--help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        echo
        exec python3 bench/qmp_latency.py --help ;;
    esac
done
# The load before this script adds its own: the machine may be shared.
QS_BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
export QS_BENCH_LOAD_START

. scripts/deps.sh
pkgs="$QS_BUILD_PKGS python3"
[ -e /dev/kvm ] && pkgs="$pkgs qemu-system-x86"
[ "${QS_BENCH_CALLGRIND:-1}" != 0 ] && pkgs="$pkgs valgrind"
qs_install $pkgs

build=${QS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_SANITIZE=OFF -DQS_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target qstatsd query_bench qmp_floor

echo "== hot path, in-process (allocations counted after warm-up)"
"$build"/bench/query_bench --vcpus 64,1024 --json bench/results-latest-hotpath.json

cg=(--callgrind-not-run "QS_BENCH_CALLGRIND=0")
if [ "${QS_BENCH_CALLGRIND:-1}" != 0 ]; then
    if command -v valgrind >/dev/null; then
        echo "== callgrind: instructions per query (deterministic)"
        bench/callgrind_query.sh "$build"/bench/query_bench | tee bench/results-latest-callgrind.txt
        cg=(--callgrind bench/results-latest-callgrind.txt)
    else
        cg=(--callgrind-not-run "valgrind not installed")
    fi
fi

echo "== QMP: qstatsd against the floor (recorded VMs), and against QEMU where KVM is usable"
python3 bench/qmp_latency.py --build "$build" --markdown bench/results-latest.md \
    --hotpath bench/results-latest-hotpath.json "${cg[@]}" "$@"
echo "== sched provider: its cost next to kvm's (1024 real threads)"
python3 bench/sched_cost.py --build "$build" --markdown bench/results-latest.md --json bench/results-latest-sched.json

echo "== metrics endpoint: the cost of a scrape (recorded VMs)"
python3 bench/scrape_cost.py --build "$build" --json bench/results-latest-scrape.json \
    --markdown-append bench/results-latest.md
echo "== results: bench/results-latest.md, bench/results-latest.json"
