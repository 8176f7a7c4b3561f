#!/usr/bin/env bash
# Soak: qstatsd for 10 minutes (by default) under 32 clients of mixed valid
# and invalid QMP, HMP, metrics and balloon-agent traffic, with vCPU stats
# fds handed over and removed, on a 16-vCPU recorded VM (bench/soak.py says
# what each client does).  Checks that the daemon never dies, that stderr
# holds no sanitizer report, that its RSS grows less than 1 MiB after the
# warm-up and that its fds come back; reports RSS, fds, CPU, request counts
# and the worst query-version round trip.  Not part of CI or test.sh.
#
#   scripts/soak.sh                        RelWithDebInfo build in build/, 600 s
#   scripts/soak.sh --asan --duration 180  the ASan+UBSan build in build-asan/
#                                          (Debug, as scripts/test.sh builds it)
#
# Other arguments go to bench/soak.py (--duration, --warmup, --clients,
# --roles, --vcpus, --think-ms ...).  Results: bench/soak-latest.md and
# .json (bench/soak-asan-latest.* for --asan).  QS_BUILD_DIR overrides the
# build directory.  Runs without /dev/kvm; installs missing Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."
asan=0
args=()
for a in "$@"; do
    case $a in
    --asan) asan=1 ;;
    -h|--help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        echo
        exec python3 bench/soak.py --help ;;
    *) args+=("$a") ;;
    esac
done

. scripts/deps.sh
qs_install $QS_BUILD_PKGS python3

if [ "$asan" = 1 ]; then
    build=${QS_BUILD_DIR:-build-asan}
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DQS_SANITIZE=ON >/dev/null
    out=bench/soak-asan-latest
else
    build=${QS_BUILD_DIR:-build}
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQS_SANITIZE=OFF >/dev/null
    out=bench/soak-latest
fi
cmake --build "$build" -j"$(nproc)" --target qstatsd qstats-guest-agent
exec python3 bench/soak.py --build "$build" --json "$out.json" --markdown "$out.md" "${args[@]}"
