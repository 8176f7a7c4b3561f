#!/usr/bin/env bash
# Builds qstats and starts qstatsd in the foreground on a 4-vCPU micro-VM
# (or, where /dev/kvm is missing, on a 4-vCPU VM recorded on a real KVM
# host), with QMP on a unix socket (path printed), the human console on this
# terminal, a balloon channel with a guest agent beside it, and the metrics
# endpoint with its live web page.  Extra arguments go to qstatsd.  Ctrl-C (or `quit`) stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
qs_install $QS_BUILD_PKGS $QS_RUN_PKGS python3

# QSTATS_BUILD=DIR runs the programs already built there (the tests do).
build=${QSTATS_BUILD:-build}
if [ -z "${QSTATS_BUILD:-}" ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
fi

dir=${QSTATS_RUN_DIR:-/tmp/qstats-${USER:-$(id -un)}}
rm -f "$dir/qmp.sock"
mkdir -p "$dir"
qmp="$dir/qmp.sock"
balloon="$dir/balloon.sock"
metrics=${QSTATS_METRICS:-127.0.0.1:9464}
# --vcpus N among the extra arguments sizes either kind of VM.
vcpus=4 args=() replay_pid=""
while (($#)); do
    case $1 in
        --vcpus) vcpus=${2:?--vcpus needs a number}; shift 2;;
        --vcpus=*) vcpus=${1#--vcpus=}; shift;;
        *) args+=("$1"); shift;;
    esac
done
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    vm=(--vcpus "$vcpus")
    echo "VM:             the built-in micro-VM, $vcpus vCPUs on /dev/kvm (its numbers move live)"
else
    rm -rf "$dir/recording"
    python3 scripts/recording.py make tests/fixtures/recorded-linux-6.18 "$dir/recording" "$vcpus"
    vm=(--recorded "$dir/recording")
    echo "VM:             RECORDED - this machine has no usable /dev/kvm.  The KVM numbers are"
    echo "                real binary-stats files recorded on a Linux 6.18 KVM host"
    echo "                (tests/fixtures/recorded-linux-6.18, copied to $vcpus vCPUs in $dir/recording);"
    echo "                this script moves them every second as an idle guest's would"
    echo "                (python3 scripts/recording.py replay $dir/recording)."
    echo "                On a KVM host this script runs the live micro-VM instead."
    python3 scripts/recording.py replay "$dir/recording" 1 &
    replay_pid=$!
fi
echo "QMP socket:     $qmp      (try: $build/qstats -s $qmp info stats vcpu)"
echo "web page:       http://$metrics/      (live charts; JSON at /api/v1/stats, /api/v1/schemas)"
echo "metrics:        http://$metrics/metrics"
echo "balloon agent:  $balloon"

agent_pid=""
if [ -x "$build"/qstats-guest-agent ]; then
    "$build"/qstats-guest-agent --connect "unix:$balloon" >"$dir/agent.log" 2>&1 &
    agent_pid=$!
fi
# Once QMP is up, poll the guest's memory statistics every 2 s (QEMU's
# default is off), so guest-stats, query-stats and info balloon stay fresh.
(for _ in $(seq 100); do
     [ -S "$qmp" ] && break
     sleep 0.1
 done
 "$build"/qstats -s "$qmp" qmp '{"execute":"qom-set","arguments":{"path":"/machine/peripheral-anon/device[0]","property":"guest-stats-polling-interval","value":2}}' >/dev/null 2>&1) &
cleanup() {
    for pid in $agent_pid $replay_pid; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"$build"/qstatsd "${vm[@]}" --name qstats-demo --qmp "unix:$qmp" --hmp stdio \
    --balloon "unix:$balloon" --metrics "$metrics" ${args[@]+"${args[@]}"}
