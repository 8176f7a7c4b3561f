#!/usr/bin/env bash
# Installs the Debian packages qstats builds, runs and tests with, if any is
# missing.  Sourced by run.sh, test.sh and bench.sh so a fresh Debian machine
# needs nothing but these scripts.
set -euo pipefail

QS_BUILD_PKGS="gcc cmake make pkg-config libjansson-dev libuv1-dev libcmocka-dev libmicrohttpd-dev libedit-dev zlib1g-dev"
# What qstatsd uses at run time beside its libraries: the web page's charts
# (d3.js, read from /usr/share/javascript).
QS_RUN_PKGS="libjs-d3"
# The web page's test drives Debian's headless Chromium over its DevTools
# protocol (python3-websocket).
QS_TEST_PKGS="python3 qemu-system-x86 prometheus socat valgrind tmux clang
    build-essential debhelper dpkg-dev lintian groff-base mandoc man-db systemd
    chromium python3-websocket $QS_RUN_PKGS"

qs_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}
