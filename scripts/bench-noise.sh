#!/usr/bin/env bash
# The lab's own noise and the noise-aware diff on real repeated runs (issue 15).
# A bench, not a CI test: about 35 minutes on 2 cores, local target, the
# reference node. Writes everything under OUT and prints the tables that
# docs/BENCHMARKS.md records ("Real repeated runs").
#
#   bash scripts/bench-noise.sh [OUT] [N]      (default /var/tmp/qfc-lab-noise, 5)
#
# 1. fsync-policy off, on (--set node.refnode.synced_commit=true) and off
#    again, each --repeat N; diff off/on and off/off2, each with the gate.
# 2. steady --repeat N.
# 3. Every JSON output validated against docs/schema/ (scripts/validate-schemas.py).
# 4. The coefficient of variation of the key figures (summary/summary.json).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/var/tmp/qfc-lab-noise}
N=${2:-5}
L=${QFC_LAB:-target/release/qfc-lab}
PY="${QFC_LAB_CACHE:-/var/cache/qfc-lab}/pyenv/bin/python"
[ -x "$L" ] || { echo "bench-noise: $L is missing: cargo build --release (or set QFC_LAB)" >&2; exit 2; }
[ -x "$PY" ] || { echo "bench-noise: $PY is missing: bash scripts/setup.sh" >&2; exit 2; }
rm -rf "$OUT" && mkdir -p "$OUT"
step() { # name, then the command; prints its exit code and wall time
  local name=$1; shift
  local t0; t0=$(date +%s)
  "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
  local rc=$?
  echo "| $name | $rc | $(( $(date +%s) - t0 )) s |"
}
echo "| step | exit | time |"
echo "|---|---:|---:|"
step fsync-off  "$L" run scenarios/fsync-policy.toml --repeat "$N" --out "$OUT/fsync-off"
step fsync-on   "$L" run scenarios/fsync-policy.toml --repeat "$N" --set node.refnode.synced_commit=true --out "$OUT/fsync-on"
step fsync-off2 "$L" run scenarios/fsync-policy.toml --repeat "$N" --out "$OUT/fsync-off2"
step steady     "$L" run scenarios/steady.toml --repeat "$N" --out "$OUT/steady"
step diff-off-on   "$L" diff "$OUT/fsync-off" "$OUT/fsync-on" --fail-on-regression 10% --out "$OUT/diff-off-on"
step diff-off-off2 "$L" diff "$OUT/fsync-off" "$OUT/fsync-off2" --fail-on-regression 10% --out "$OUT/diff-off-off2"
echo
echo "## Significant after Benjamini-Hochberg"
for d in diff-off-on diff-off-off2; do
  "$PY" - "$OUT/$d/diff.json" "$d" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
sig = [c for c in d["comparisons"] if c["outcome"] == "significant"]
print(f"- {sys.argv[2]}: {len(d['comparisons'])} figures compared, {len(sig)} significant; regressions: {len(d['regressions'])}")
for c in sig:
    print(f"  - {c['phase'] or 'run'}: {c['figure']}: {c['median_a']:.4g} -> {c['median_b']:.4g} {c['unit']} (p = {c['test']['p']:.4f}, adjusted {c['p_adjusted']:.4f})")
PY
done
echo
echo "## JSON Schemas"
"$PY" scripts/validate-schemas.py "$OUT"/fsync-off "$OUT"/fsync-on "$OUT"/fsync-off2 "$OUT"/steady "$OUT"/diff-off-on "$OUT"/diff-off-off2 >"$OUT/schemas.json"
echo "validate-schemas.py exit $?: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["validated"]), "files,", len(d["errors"]), "errors")' "$OUT/schemas.json")"
echo
echo "## Run-to-run noise (coefficient of variation over $N repetitions)"
echo
echo "| scenario | phase | figure | n | median | CV |"
echo "|---|---|---|---:|---:|---:|"
for s in fsync-off fsync-on steady; do
  "$PY" - "$OUT/$s/summary/summary.json" "$s" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
key = re.compile(r"^(fsync\.per_block|fsync\.p99_us|offcpu\.share\{reason=disk\}|offcpu\.disk_write_stall|"
                 r"(hashing|crypto|log_formatting|rocksdb|allocator|network|node|kernel|other)|"
                 r"oncpu\.(self_)?share\{area=.*\}|load\.[a-z_]+\.p99_ms)$")
for f in d["figures"]:
    if not key.match(f["figure"]):
        continue
    v = f["variation"]
    cv = {"cv": lambda: f"{v['cv']*100:.1f}%" + (" (noisy)" if v["noisy"] else ""),
          "no-variation": lambda: "0 (no variation)",
          "single-run": lambda: "n/a (one run)",
          "zero-mean": lambda: f"undefined (mean 0, sd {v['sd']:.3g})"}[v["kind"]]()
    print(f"| {sys.argv[2]} | {f['phase'] or 'run'} | `{f['figure']}` | {f['n']} | {f['median']:.4g} {f['unit']} | {cv} |")
PY
done
