#!/usr/bin/env bash
# Instructions per query under callgrind, counted only inside the function
# of interest (--toggle-collect), with vCPUs backed by the recorded VM's
# files (query_bench --source fixtures) so that the count does not depend on
# a running VM and is the same with or without /dev/kvm.  Divides by the
# number of calls, which query_bench makes iters + iters/10 + 5 times
# (warm-up included).
# Usage: bench/callgrind_query.sh path/to/query_bench
set -euo pipefail
bin=$1
iters=200
calls=$((iters + iters / 10 + 5))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {   # layer function vcpus
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect="$2" \
        "$bin" --source fixtures --vcpus "$3" --iters "$iters" --only "$1" >/dev/null 2>"$out/log" ||
        { cat "$out/log"; return 1; }
    local ir
    ir=$(awk '/^totals:/ { print $2 }' "$out/cg")
    awk -v ir="$ir" -v calls="$calls" -v what="$1 $2" -v n="$3" 'BEGIN {
        printf "%-40s %5d vCPUs: %12.0f instructions per query\n", what, n, ir / calls }'
}
echo "# vCPU stats: recorded VM files (tests/fixtures/recorded-linux-6.18), KVM not used"
for n in 64 1024; do
    run registry qs_registry_query_stats "$n"
    run request-vcpu qs_qmp_session_handle_text "$n"
done
