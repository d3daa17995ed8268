#!/usr/bin/env bash
# The README's first command on a freshly made Debian bookworm (issue 13),
# as a new user would run it, timed step by step. Needs root and mmdebstrap.
#
#   bash scripts/fresh-machine.sh [ROOT]        (default ROOT=/srv/fresh-bookworm)
#   bash scripts/fresh-machine.sh --ci [ROOT]   CI's `.ci/run` instead, cold (issue 13)
#
# Method: `mmdebstrap --variant=debootstrap bookworm ROOT` (required +
# important packages, the main suite only), used as a chroot with its own
# /proc and /sys (no tracefs, no binfmt_misc mounted; this host's aarch64
# binfmt entry is removed first, so qfc-lab must register it itself), /dev
# bound, and this repository's committed HEAD cloned into /opt/qfc-lab. No init system runs
# in a chroot, so policy-rc.d keeps package scripts from starting daemons
# (docker.io's) in the host's namespaces. A network that re-signs HTTPS
# (this farm's egress CA) is trusted as the host trusts it: the host's
# /usr/local/share/ca-certificates/*.crt are copied in, nothing else.
# Each command of the README line is printed with its start time (PS4).
set -euo pipefail
MODE=readme
if [ "${1:-}" = --ci ]; then MODE=ci; shift; fi
R=${1:-/srv/fresh-bookworm}
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$R/bin/bash" ]; then
  echo "== mmdebstrap $(date -u +%T)"
  mmdebstrap --variant=debootstrap bookworm "$R" http://deb.debian.org/debian
fi
# The root is a mount point of its own (a bind onto itself), as on a real
# machine: dockerd's `docker import` remounts / inside its chroot and fails
# with "remount /, flags: 0x84000: invalid argument" when / is a plain
# directory (found by the first --ci measurement: the container tests failed).
mountpoint -q "$R" || mount --bind "$R" "$R"
mountpoint -q "$R/proc" || mount -t proc proc "$R/proc"
mountpoint -q "$R/sys" || mount -t sysfs sysfs "$R/sys"
mountpoint -q "$R/dev" || mount --rbind /dev "$R/dev"
# dockerd (services.sh, for the container target's tests) needs the cgroup2 hierarchy.
mountpoint -q "$R/sys/fs/cgroup" || mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
cp /etc/resolv.conf "$R/etc/resolv.conf"
mkdir -p "$R/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
printf '#!/bin/sh\nexit 101\n' > "$R/usr/sbin/policy-rc.d"; chmod +x "$R/usr/sbin/policy-rc.d"
[ -d "$R/opt/qfc-lab" ] || git clone -q "$REPO" "$R/opt/qfc-lab"
git -C "$R/opt/qfc-lab" log --oneline -1
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64; fi
echo "== start $MODE $(date -u +%T)"
rc=0
if [ "$MODE" = ci ]; then
  # CI's entry point unchanged, on an empty /var/cache/qfc-lab, empty ~/.cargo
  # and no apt packages from earlier runs; every output line gets its UTC time.
  chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c 'cd /opt/qfc-lab && bash .ci/run' 2>&1 \
    | awk '{ print strftime("[%H:%M:%S]", systime(), 1), $0; fflush() }' || rc=$?
  echo "== end $(date -u +%T) rc=$rc"
  exit $rc
fi
chroot "$R" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  bash -c 'cd /opt/qfc-lab && export PS4="+ [\$(date -u +%T)] " && set -x &&
    bash scripts/setup.sh && cargo build --release && target/release/qfc-lab run scenarios/compaction.toml &&
    target/release/qfc-lab verify "$(ls -d runs/compaction-* | tail -n1)"' || rc=$?
echo "== end $(date -u +%T) rc=$rc"
exit $rc
