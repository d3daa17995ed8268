#!/usr/bin/env bash
# The whole test suite, from a fresh Debian bookworm machine: installs what is
# missing (scripts/setup.sh), starts services, builds, runs every test.
# Tests that need root, BPF, QEMU or Docker and cannot run here are reported
# as ignored with the reason, never as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
# QFC_LAB_TEST_TOOLS=1: set-up also builds the test runner (cargo-nextest).
QFC_LAB_TEST_TOOLS=1 bash scripts/setup.sh
bash scripts/services.sh
export PATH="${QFC_LAB_CACHE:-/var/cache/qfc-lab}/tools/bin:$PATH"
# Default members only: probes-ebpf is built for bpfel by probes/build.rs, never for the host.
# One build for everything: every binary (qfc-lab, qfc-refnode, qfc-probe,
# xtask) and the test targets, with the test build's features. A plain
# `cargo build --bins` resolved features without the dev-dependencies, so
# nextest's build compiled the workspace and part of its dependencies a
# second time (about 5 minutes on a cold machine).
cargo build --bins --tests
# xtask was built just above with the workspace's features; `cargo xtask`
# (cargo run -p xtask) would resolve features for xtask alone and rebuild
# part of its dependencies (2 minutes on a cold machine), so run the binary.
xtask() { "${CARGO_TARGET_DIR:-target}/debug/xtask" "$@"; }
# No import cycle between files anywhere in the workspace (xtask/src/cycles.rs): lists them all, fails when one exists.
xtask cycles
# The aarch64 guest image (vm/recipe): seconds from the cache, minutes when cold.
# The guest's aarch64 qfc-refnode and qfc-probe (vm/src/cross.rs): seconds
# when cargo's cache under the same directory is warm, about 20 minutes cold.
if command -v qemu-system-aarch64 >/dev/null; then
  xtask image-build --arch aarch64 >/dev/null
  xtask cross --arch aarch64 >/dev/null
  # qfc-lab itself for the guest: the lab runs inside an aarch64 guest too (run_targets).
  xtask cross --arch aarch64 --bin lab:qfc-lab >/dev/null
fi
# The x86_64 guest image (about a minute cold): the same recipe for the host's arch.
if command -v qemu-system-x86_64 >/dev/null; then
  xtask image-build --arch x86_64 >/dev/null
fi
cargo nextest run --no-fail-fast "$@"
