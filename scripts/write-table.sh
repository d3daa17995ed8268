#!/usr/bin/env bash
# Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
# in DOC with the contents of TABLE: how every bench script writes its
# table into docs/BENCHMARKS.md. The markers must exist (add them where the
# table belongs); nothing is appended silently.
#   bash scripts/write-table.sh NAME TABLE DOC
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 NAME TABLE DOC" >&2; exit 2; }
name=$1 table=$2 doc=$3
begin="<!-- $name:begin -->" end="<!-- $name:end -->"
grep -qxF "$begin" "$doc" && grep -qxF "$end" "$doc" ||
  { echo "$doc has no $begin ... $end markers; add them where the table belongs" >&2; exit 2; }
tmp=$(mktemp "$doc.XXXXXX")
awk -v b="$begin" -v e="$end" -v t="$table" '
  $0 == b { print; while ((getline l < t) > 0) print l; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' "$doc" >"$tmp"
mv "$tmp" "$doc"
