#!/usr/bin/env bash
# Builds qstats and runs the whole test suite twice: a normal build, then
# again under AddressSanitizer + UndefinedBehaviorSanitizer; then a short
# libFuzzer run of every input parser (and every past finding replayed).
# Installs any missing Debian package first.  Ends with the list of skipped
# tests and why; exits non-zero if any test fails or if a test skips that is
# not a micro-VM test listed in tests/skips-allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
qs_install $QS_BUILD_PKGS $QS_TEST_PKGS

jobs=$(nproc)
failed=()
logs=()
run_suite() {
    local dir=$1; shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600 || failed+=("$dir")
    logs+=("$dir/Testing/Temporary/LastTest.log")
}

if [ -c /dev/kvm ]; then kvm="with /dev/kvm: micro-VM tests run too"
else kvm="without /dev/kvm: micro-VM tests skip, everything else runs on recorded VMs"; fi
echo "== $kvm"
echo "== build and test (RelWithDebInfo)"
run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== build and test (ASan + UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DQS_SANITIZE=ON
# The Debian packages: built once from a copy of the tree, then used unpacked
# (tests/packaging/test_packages.py); too slow to repeat in both suites.
echo "== Debian packages (dpkg-buildpackage, the unpacked programs, lintian)"
python3 tests/packaging/test_packages.py || failed+=("packages")
echo "== fuzz smoke (libFuzzer: every input parser, plus past findings)"
run_suite build-fuzz -DCMAKE_C_COMPILER=clang -DQS_FUZZ=ON -DQS_TESTS=OFF -DQS_BENCH=OFF

echo "== skipped tests ($kvm)"
python3 tests/skip_report.py tests/skips-allowed "${logs[@]}" || failed+=("skips")
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all tests passed"
