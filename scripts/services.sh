#!/usr/bin/env bash
# Starts what the tests and the lab need at run time, idempotently:
# tracefs (aya, bpftrace), binfmt_misc (guest image builds), dockerd (container target).
set -euo pipefail
log() { printf '[services] %s\n' "$*" >&2; }

if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null && log "mounted tracefs" || log "could not mount tracefs"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || log "could not mount binfmt_misc"
fi
# Guest images for aarch64 run arm64 maintainer scripts through qemu-user.
if [ -e /proc/sys/fs/binfmt_misc/register ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
   && [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] && [ "$(uname -m)" != aarch64 ]; then
  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register 2>/dev/null \
    && log "registered qemu-aarch64 in binfmt_misc" || log "could not register qemu-aarch64 in binfmt_misc"
fi
if command -v dockerd >/dev/null && ! /usr/bin/docker info >/dev/null 2>&1; then
  log "starting dockerd"
  mkdir -p /var/log/qfc-lab
  nohup dockerd >/var/log/qfc-lab/dockerd.log 2>&1 &
  for _ in $(seq 1 30); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 1; done
  /usr/bin/docker info >/dev/null 2>&1 && log "dockerd is up" || log "dockerd did not come up: see /var/log/qfc-lab/dockerd.log"
fi
