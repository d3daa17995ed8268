#!/bin/sh
# Step "rootfs" of the guest image recipe: a configured Debian bookworm root
# filesystem for ARCH (arm64|amd64) as a tar file, built offline from Debian's
# packages with mmdebstrap (foreign arches run through binfmt_misc qemu-user).
#   rootfs.sh ARCH PACKAGES_FILE OUT_TAR
set -eu
arch="$1"; pkgs_file="$2"; out="$3"
pkgs=$(grep -v '^[[:space:]]*#' "$pkgs_file" | grep -v '^[[:space:]]*$' | tr '\n' ',' | sed 's/,$//')
mmdebstrap --arch="$arch" --variant=minbase --mode=root --format=tar \
  --include="$pkgs" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --aptopt='APT::Install-Recommends "false"' \
  bookworm "$out.partial" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
mv "$out.partial" "$out"
