#!/usr/bin/env bash
# Runs a command as if this machine had no /dev/kvm: in a private mount
# namespace, /dev is replaced by a tmpfs holding every entry of the real
# /dev except kvm.  For developers on a KVM host who want to see what the
# suite does on the machines without it (needs root and unshare):
#     scripts/without-kvm.sh scripts/test.sh
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (mount namespaces)" >&2; exit 1; }
exec unshare --mount --propagation private bash -c '
set -euo pipefail
old=$(mktemp -d /tmp/qs-realdev.XXXXXX)
mount --rbind /dev "$old"
mount -t tmpfs -o mode=755 qs-dev /dev
for e in "$old"/* "$old"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=${e##*/}
    case $n in kvm|pts|ptmx) continue;; esac
    if [ -L "$e" ]; then cp -a "$e" /dev/
    elif [ -d "$e" ]; then mkdir "/dev/$n" && mount --rbind "$e" "/dev/$n"
    else touch "/dev/$n" && mount --bind "$e" "/dev/$n"
    fi
done
# Terminals (tmux, the console tests) need a devpts of their own here.
mkdir /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
exec "$@"' qs-without-kvm "$@"
