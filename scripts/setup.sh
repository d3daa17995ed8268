#!/usr/bin/env bash
# Installs everything qfc-lab needs on Debian bookworm, idempotently.
#
#   scripts/setup.sh            install system packages and cached tools
#
# Slow artefacts (bpf-linker, guest images, cross sysroots) are cached under
# $QFC_LAB_CACHE (default /var/cache/qfc-lab); delete that folder to rebuild.
set -euo pipefail

CACHE="${QFC_LAB_CACHE:-/var/cache/qfc-lab}"
mkdir -p "$CACHE"
log() { printf '[setup] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- disk ----------------------------------------------------------------
# A cold start writes about 15 GB for the test suite (the debug build 8, the
# guests' cross-builds 4, guest images 2, the tests' scratch files 1) and
# about 11 GB for the main job (the release build instead of the debug one);
# see docs/BENCHMARKS.md, "Build footprint". Stop now, with the figures,
# rather than with ENOSPC half-way through a build.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$TARGET"
if [ "${QFC_LAB_TEST_TOOLS:-0}" = 1 ]; then build_gb=8 profile=debug; else build_gb=4 profile=release; fi
[ -d "$TARGET/$profile/deps" ] && build_gb=1
cache_gb=6
[ -d "$CACHE/cross/target" ] && [ -d "$CACHE/images/rootfs" ] && cache_gb=1
free_gb() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'; }
if [ "$(stat -c %d "$TARGET")" = "$(stat -c %d "$CACHE")" ]; then
  disk_dirs=("$TARGET") disk_need=($((build_gb + cache_gb + 1)))
else
  disk_dirs=("$TARGET" "$CACHE") disk_need=($((build_gb + 1)) "$cache_gb")
fi
for i in "${!disk_dirs[@]}"; do
  have=$(free_gb "${disk_dirs[$i]}")
  if [ "$have" -lt "${disk_need[$i]}" ]; then
    log "only $have GB free on the disk of ${disk_dirs[$i]}; this run needs about ${disk_need[$i]} GB there."
    log "Free space (cargo clean; guest images of old recipes under $CACHE/images), or set CARGO_TARGET_DIR or QFC_LAB_CACHE to a bigger disk."
    exit 1
  fi
done

# --- apt ---------------------------------------------------------------
BACKPORTS=/etc/apt/sources.list.d/qfc-lab-backports.sources
if [ ! -f "$BACKPORTS" ]; then
  log "adding bookworm-backports (QEMU 10 lives there)"
  as_root tee "$BACKPORTS" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  APT_UPDATED=0
fi
# rustc-web 1.96 and libllvm22 are security updates: they live only in
# bookworm-security. A root filesystem made with debootstrap or mmdebstrap
# lists the main suite alone (found on a fresh mmdebstrap bookworm: "Unable
# to locate package libllvm22"), so add the suite when no source names it.
SECURITY=/etc/apt/sources.list.d/qfc-lab-security.sources
if ! grep -rqs 'bookworm-security' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding bookworm-security (rustc-web 1.96 and LLVM 22 live there)"
  as_root tee "$SECURITY" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

PKGS=(
  # eBPF toolchain (see docs/ARCHITECTURE.md, probes)
  rustc-web cargo-web rust-web-src bpftool libllvm22
  # peers used as cross-check oracles
  bpftrace linux-perf strace
  # detached debug info of libc, found by build-id (issue 12: libc frames named as perf names them)
  libc6-dbg
  # the no-frame-pointer known-answer library of probes/tests/unwind.rs
  gcc
  # reference node: RocksDB linked from Debian, bindgen needs libclang
  librocksdb-dev libclang-dev pkg-config
  # the independent parsers of lab/tests/stats_outputs.rs (a venv, below)
  python3-venv
  # misc
  jq curl ca-certificates e2fsprogs busybox-static cpio zstd procps tar
  openssh-client openssh-server
  # guest images (vm/recipe): foreign-arch mmdebstrap, module index, initramfs
  arch-test kmod
)
# qemu-img (guest disks) is in qemu-utils, which qemu-system-* only recommend:
# a fresh machine with --no-install-recommends lacks it (found on a fresh
# mmdebstrap bookworm: "qemu-img is missing").
BPO_PKGS=(qemu-system-arm qemu-system-x86 qemu-user-static qemu-utils)
PKGS+=(mmdebstrap docker.io)
# The aarch64 guest's binaries are cross-built on other hosts; an aarch64
# host builds them natively.
if [ "$(uname -m)" != aarch64 ]; then
  PKGS+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)
fi

missing=()
for p in "${PKGS[@]}" "${BPO_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  as_root apt-get update -q
  export DEBIAN_FRONTEND=noninteractive
  bpo=() ; plain=()
  for p in "${missing[@]}"; do
    if printf '%s\n' "${BPO_PKGS[@]}" | grep -qx "$p"; then bpo+=("$p"); else plain+=("$p"); fi
  done
  [ "${#plain[@]}" -eq 0 ] || as_root apt-get install -y -q --no-install-recommends "${plain[@]}"
  [ "${#bpo[@]}" -eq 0 ] || as_root apt-get install -y -q --no-install-recommends -t bookworm-backports "${bpo[@]}"
fi

# --- bpf-linker against Debian's LLVM 22 -----------------------------
TOOLS="$CACHE/tools"
if [ ! -x "$TOOLS/bin/bpf-linker" ]; then
  log "building bpf-linker 0.13.0 (2-3 minutes, once)"
  LLVM="$CACHE/llvm22"
  mkdir -p "$LLVM/lib"
  so=$(ls /usr/lib/"$(gcc -print-multiarch)"/libLLVM.so.22* | head -n1)
  ln -sf "$so" "$LLVM/lib/libLLVM.so"
  LLVM_PREFIX="$LLVM" cargo install bpf-linker@0.13.0 --locked --root "$TOOLS" \
    --no-default-features --features llvm-22
fi

# --- cargo-nextest: the test runner of scripts/test.sh (test set-up only) ---
# The suite's test groups (.config/nextest.toml) need nextest. Debian has no
# package of it, so it is built from crates.io, pinned, once: only when the
# test command asks (QFC_LAB_TEST_TOOLS=1) and no cargo-nextest is on PATH.
if [ "${QFC_LAB_TEST_TOOLS:-0}" = 1 ] && ! command -v cargo-nextest >/dev/null \
   && [ ! -x "$TOOLS/bin/cargo-nextest" ]; then
  # --debug: a test runner's own speed does not matter; it builds in about
  # half the time of a release build (docs/BENCHMARKS.md, cold CI).
  log "building cargo-nextest 0.9.143 (3-4 minutes on 2 cores, once)"
  cargo install cargo-nextest@0.9.143 --locked --debug --root "$TOOLS"
fi

# --- oha: the reference of the load generator's benchmark (opt-in) ---
# loadgen/bench.sh compares qfc-load with oha. Building oha takes 25-30
# minutes on 2 shared cores, so only with QFC_LAB_BENCH_TOOLS=1.
if [ "${QFC_LAB_BENCH_TOOLS:-0}" = 1 ] && [ ! -x "$TOOLS/bin/oha" ]; then
  log "building oha 1.16.0 (25-30 minutes on 2 cores, once)"
  CARGO_TARGET_DIR="$CACHE/build/oha" cargo install oha@1.16.0 --locked --root "$TOOLS"
fi

# --- Python parsers this project did not write (lab/tests/stats_outputs.rs) ---
# junitparser reads the JUnit XML of verdicts, prometheus_client's OpenMetrics
# parser reads the figures, scipy is the peer of the exact rank test, and
# jsonschema validates real bundles against docs/schema/ (lab/tests/run_local.rs).
# Pinned, with what they pull in; the venv is rebuilt only when the pins change.
PYENV="$CACHE/pyenv"
PY_PINS="junitparser==3.2.0 prometheus_client==0.21.1 scipy==1.14.1 numpy==2.2.6 jsonschema==4.23.0 attrs==24.2.0 jsonschema-specifications==2024.10.1 referencing==0.35.1 rpds-py==0.21.0"
if [ "$(cat "$PYENV/.pins" 2>/dev/null)" != "$PY_PINS" ]; then
  log "building the Python venv $PYENV ($PY_PINS)"
  rm -rf "$PYENV"
  /usr/bin/python3 -m venv "$PYENV"
  # shellcheck disable=SC2086 # the pins are words
  "$PYENV/bin/pip" install -q --disable-pip-version-check $PY_PINS
  echo "$PY_PINS" >"$PYENV/.pins"
fi

# --- tracefs (aya and bpftrace need it) -------------------------------
if [ ! -d /sys/kernel/tracing/events ]; then
  as_root mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || log "could not mount tracefs"
fi

log "done; tools in $TOOLS/bin"
