#!/usr/bin/env bash
# Fuzzes every input parser of qstats for a while: builds the libFuzzer
# targets of tests/fuzz/ (clang, ASan + UBSan, in build-fuzz/), runs each
# for SECONDS from its seed corpus, and reports per target how many inputs
# it ran and what it found.  Each finding is copied to
# tests/fuzz/crashes/<target>-<hash>, where ctest replays it
# (fuzz.<target>.reproducers) once committed.  Exits 1 if anything was
# found.
#
#   scripts/fuzz.sh SECONDS [TARGET...]     (TARGET: kvm_stats, hmp_line, ...)
#
# Targets run side by side, QS_FUZZ_JOBS at a time (default: the number of
# CPUs).  Inputs that found new coverage stay in build-fuzz/tests/fuzz/
# work-<target>/, so that the next run goes on from there.  After a
# finding the target is restarted for the rest of its time (at most
# QS_FUZZ_RESTARTS times, default 5), so that one bug does not end the run.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 SECONDS [TARGET...]" >&2; exit 2; }
[[ ${1:-} =~ ^[0-9]+$ ]] || usage
seconds=$1; shift
all=(kvm_stats qmp_input balloon_records hmp_line metrics_request)
targets=("${@:-${all[@]}}")
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown target: $t (one of: ${all[*]})" >&2; exit 2; }
done
build=${QS_FUZZ_BUILD:-build-fuzz}
jobs=${QS_FUZZ_JOBS:-$(nproc)}
restarts=${QS_FUZZ_RESTARTS:-5}

. scripts/deps.sh
qs_install $QS_BUILD_PKGS clang
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DQS_FUZZ=ON -DQS_TESTS=OFF \
      -DQS_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

dir=$build/tests/fuzz
crashes=tests/fuzz/crashes

# One target for its time; writes its report line to $dir/report-<target>.
fuzz_one() {
    local t=$1 work=$dir/work-$t arts=$dir/artifacts-$t log=$dir/fuzz-$t.log
    local end=$((SECONDS + seconds)) execs=0 runs=0 found=()
    mkdir -p "$work" "$arts"
    : >"$log"
    while :; do
        local left=$((end - SECONDS))
        ((left > 0)) || break
        rm -f "$arts"/*
        local rc=0
        "$dir/fuzz_$t" "$work" "tests/fuzz/corpus/$t" -max_total_time="$left" \
            -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$arts/" >>"$log" 2>&1 || rc=$?
        local n
        n=$(grep -a 'stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
        execs=$((execs + ${n:-0}))
        for a in "$arts"/crash-* "$arts"/leak-* "$arts"/timeout-* "$arts"/oom-*; do
            [ -f "$a" ] || continue
            local kind=${a##*/}; kind=${kind%%-*}
            local dest=$crashes/$t-$kind-$(sha1sum "$a" | cut -c1-16)
            cp "$a" "$dest"
            found+=("$dest")
        done
        # Marks this run's end in the log, so that the next count is its own.
        echo "== fuzz.sh: run ended (rc $rc)" >>"$log"
        sed -i 's/^stat::number_of_executed_units/counted::number_of_executed_units/' "$log"
        ((rc != 0 && ++runs <= restarts)) || break
    done
    local line="$t: $execs inputs in ${seconds}s"
    if ((${#found[@]})); then
        line+=", ${#found[@]} finding(s):"
        local f
        for f in "${found[@]}"; do line+=" $f"; done
    else
        line+=", no findings"
    fi
    echo "$line" >"$dir/report-$t"
}

echo "== fuzzing ${targets[*]} for ${seconds}s each, $jobs at a time (logs: $dir/fuzz-<target>.log)"
running=0
for t in "${targets[@]}"; do
    rm -f "$dir/report-$t"
    fuzz_one "$t" &
    if ((++running >= jobs)); then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

status=0
echo "== results"
for t in "${targets[@]}"; do
    if [ -f "$dir/report-$t" ]; then
        cat "$dir/report-$t"
        grep -q "finding(s)" "$dir/report-$t" && status=1
    else
        echo "$t: did not report (see $dir/fuzz-$t.log)"
        status=1
    fi
done
if ((status)); then
    echo "Replay a finding: $dir/fuzz_<target> tests/fuzz/crashes/<file>; commit it as a reproducer."
fi
exit $status
