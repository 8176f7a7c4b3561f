#!/usr/bin/env bash
# Builds qstats and runs the whole test suite twice: a normal build, then
# again under AddressSanitizer + UndefinedBehaviorSanitizer; then a short
# libFuzzer run of the two input parsers (and every past finding replayed).
# Installs any missing Debian package first.  Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
qs_install $QS_BUILD_PKGS $QS_TEST_PKGS

jobs=$(nproc)
run_suite() {
    local dir=$1; shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600
}

echo "== build and test (RelWithDebInfo)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== build and test (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DQS_SANITIZE=ON
echo "== fuzz smoke (libFuzzer: stats-file reader and QMP input, plus past findings)"
run_suite build-fuzz -DCMAKE_C_COMPILER=clang -DQS_FUZZ=ON -DQS_TESTS=OFF -DQS_BENCH=OFF
