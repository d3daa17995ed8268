#!/usr/bin/env bash
# Builds the Debian bookworm minbase root filesystem (this host's Debian
# architecture) that container
# images of the lab start FROM, and imports it into the local Docker engine.
# No registry is reachable from the lab's machines, so the base comes from
# Debian packages (mmdebstrap) and is cached as a tarball.
#
#   vm/container/base.sh TAG [CACHE_DIR]
#
# Idempotent: reuses $CACHE_DIR/bookworm-<arch>-node-base.tar and skips the
# import when TAG already exists. Runtime libraries of the nodes (RocksDB 7.8
# for the reference node, which links Debian's librocksdb dynamically) are
# installed here, so the image needs no package manager at build time.
set -euo pipefail
TAG="${1:?usage: base.sh TAG [CACHE_DIR]}"
CACHE="${2:-${QFC_LAB_CACHE:-/var/cache/qfc-lab}/images/container}"
DOCKER="${DOCKER:-/usr/bin/docker}"
ARCH="$(dpkg --print-architecture)"
TAR="$CACHE/bookworm-$ARCH-node-base.tar"
PKGS="librocksdb7.8,ca-certificates,procps,tini"
mkdir -p "$CACHE"
if [ ! -s "$TAR" ]; then
  mmdebstrap --arch="$ARCH" --variant=minbase --mode=root --format=tar \
    --include="$PKGS" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm "$TAR.tmp" http://deb.debian.org/debian
  mv "$TAR.tmp" "$TAR"
fi
if ! "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  "$DOCKER" import --change 'CMD ["/bin/bash"]' "$TAR" "$TAG" >/dev/null
fi
"$DOCKER" image inspect --format '{{.Id}}' "$TAG"
