#!/bin/sh
# Builds the no-frame-pointer known-answer program (issue 12) into DIR:
# libqfcnofp.so and nofp, both -O2 -fomit-frame-pointer
# -fno-optimize-sibling-calls, with .eh_frame (or, with `no-tables`,
# without unwind tables and stripped: bad input). One place for the flags,
# used by probes/tests/unwind.rs (gcc, this host) and
# lab/tests/run_targets.rs (aarch64-linux-gnu-gcc, for the aarch64 guest).
#   sh build.sh CC DIR [no-tables]
set -eu
CC=$1 DIR=$2 KIND=${3:-tables}
HERE=$(cd "$(dirname "$0")" && pwd)
FLAGS="-O2 -g -fomit-frame-pointer -fno-optimize-sibling-calls"
NOTABLES=""
[ "$KIND" = no-tables ] && NOTABLES="-fno-asynchronous-unwind-tables -fno-unwind-tables"
# shellcheck disable=SC2086
"$CC" $FLAGS $NOTABLES -fPIC -shared -o "$DIR/libqfcnofp.so" "$HERE/nofp_lib.c"
if [ "$KIND" = no-tables ]; then
  STRIP=$(echo "$CC" | sed 's/gcc$/strip/')
  "$STRIP" --strip-all "$DIR/libqfcnofp.so"
fi
# shellcheck disable=SC2086
"$CC" $FLAGS -o "$DIR/nofp" "$HERE/nofp_main.c" -L"$DIR" -lqfcnofp '-Wl,-rpath,$ORIGIN'
