#!/bin/sh
# Downloads Debian bookworm .debs for a foreign ARCH without
# `dpkg --add-architecture`: a private apt configuration (own sources list,
# lists and cache under APT_DIR) resolves and fetches them.
#   fetch-debs.sh ARCH APT_DIR OUT_DIR PKG...
# Prints one "name version file" line per package on stdout.
set -eu
arch="$1"; aptdir="$2"; out="$3"; shift 3
mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial" "$aptdir/etc/preferences.d" "$out"
cat > "$aptdir/etc/sources.list" <<SRC
deb [arch=$arch] http://deb.debian.org/debian bookworm main
deb [arch=$arch] http://deb.debian.org/debian bookworm-updates main
deb [arch=$arch] http://deb.debian.org/debian-security bookworm-security main
SRC
cat > "$aptdir/etc/apt.conf" <<CONF
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Dir::Etc::SourceList "$aptdir/etc/sources.list";
Dir::Etc::SourceParts "/nonexistent";
Dir::Etc::Preferences "/nonexistent";
Dir::Etc::PreferencesParts "$aptdir/etc/preferences.d";
Dir::State::Lists "$aptdir/lists";
Dir::State::status "/dev/null";
Dir::Cache "$aptdir/cache";
Dir::Cache::Archives "$aptdir/archives";
Debug::NoLocking "true";
CONF
export APT_CONFIG="$aptdir/etc/apt.conf"
mkdir -p "$aptdir/cache"
# The lists are fetched once and kept, so the versions they name (which feed
# the image key) stay put until someone asks for a refresh (QFC_APT_REFRESH=1).
if [ "${QFC_APT_REFRESH:-0}" = 1 ] || [ -z "$(find "$aptdir/lists" -maxdepth 1 -name '*Packages*' 2>/dev/null | head -n1)" ]; then
  apt-get -q update >&2
fi
cd "$out"
for p in "$@"; do
  # The kernel metapackage names the versioned image package it depends on.
  if [ "$p" = "linux-image-$arch" ]; then
    p=$(apt-cache depends "$p" | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
    [ -n "$p" ] || { echo "cannot resolve linux-image-$arch to a kernel package" >&2; exit 1; }
  fi
  v=$(apt-cache policy "$p" | sed -n 's/^  Candidate: //p')
  [ -n "$v" ] && [ "$v" != "(none)" ] || { echo "no candidate for $p ($arch) in Debian bookworm" >&2; exit 1; }
  pick() {
    for f in "${p}_"*"_${arch}.deb" "${p}_"*"_all.deb"; do
      [ -f "$f" ] && [ "$(dpkg-deb -f "$f" Version)" = "$v" ] && { echo "$f"; return 0; }
    done
    return 1
  }
  f=$(pick || true)
  if [ -z "$f" ]; then
    apt-get -q -o APT::Sandbox::User=root download "$p=$v" >&2
    f=$(pick) || { echo "downloaded $p=$v but cannot find its .deb in $out" >&2; exit 1; }
  fi
  echo "$p $v $f"
done
