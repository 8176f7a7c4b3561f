#!/usr/bin/env bash
# Benchmarks qstats on this machine: a RelWithDebInfo build in build/, then
#   1. bench/query_bench: the query-stats hot path in-process (registry and a
#      whole QMP request without sockets), ns per query and per stat, heap
#      allocations per query after warm-up;
#   2. callgrind instruction counts per query (if valgrind is installed;
#      QS_BENCH_CALLGRIND=0 skips it);
#   3. bench/qmp_latency.py: qstatsd and QEMU side by side over QMP sockets,
#      latency, reply size, RSS and idle CPU, reported as ratios.
# Installs any missing Debian package first.  Arguments go to qmp_latency.py
# (e.g. --smp 1,4 --requests 100 --markdown bench/results-sample.md).
# Results: bench/results-latest.json, bench/results-latest-hotpath.json.
# QS_BUILD_DIR overrides the build directory (default build).
set -euo pipefail
cd "$(dirname "$0")/.."
for a in "$@"; do
    case $a in -h|--help) exec python3 bench/qmp_latency.py --help ;; esac
done
. scripts/deps.sh
qs_install $QS_BUILD_PKGS python3 qemu-system-x86 valgrind

build=${QS_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_SANITIZE=OFF -DQS_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target qstatsd query_bench

echo "== hot path, in-process (micro-VM vCPUs; allocations counted after warm-up)"
"$build"/bench/query_bench --vcpus 64,1024 --json bench/results-latest-hotpath.json

if [ "${QS_BENCH_CALLGRIND:-1}" != 0 ] && command -v valgrind >/dev/null; then
    echo "== callgrind: instructions per query (fixture-backed vCPUs, deterministic)"
    bench/callgrind_query.sh "$build"/bench/query_bench
fi

echo "== QMP: qstatsd next to QEMU (interleaved requests; ratios QEMU/qstatsd)"
python3 bench/qmp_latency.py --build "$build" "$@"
