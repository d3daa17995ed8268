#!/usr/bin/env bash
# Issue 12's oracle: qfc-probe's on-CPU stacks in `dwarf` mode against
# `perf record --call-graph dwarf` on the same process and window, the
# reference node under scenarios/fsync-policy.toml's load with synced
# commit on (`--lab-synced-commit`, 500 ms blocks, 16 accounts), at RATE
# tx/s (default 2,000, not the scenario's 300: the two samplers are
# independent, so each needs thousands of samples for its shares to sit
# within a point of the truth; 300 tx/s keeps the node at 5% CPU, about 25
# samples a second). Both sample at HZ with cpu-clock; perf copies 65,528
# bytes of stack per sample (its maximum), qfc-probe USTACK bytes (default
# its maximum, 65,536) and goes on along the frame-pointer chain where its
# copy ends.
#
#   cargo build --release -p refnode -p loadgen -p probes --bins && cargo build -p probes --bins
#   sudo bash probes/bench/oracle_dwarf.sh [OUT_DIR]   # D=60 HZ=499 USTACK=65536 RATE=2000 PERF_SCOPE=task|cpu
#
# `probe-bench inclusive` then compares the inclusive (any-frame) shares
# of perf's 20 heaviest functions and of their heaviest immediate callers
# (limit 2 percentage points) and the heaviest leaves by name. Writes
# OUT_DIR/results.md; with DOCS=1 also docs/BENCHMARKS.md between the
# `oracle_dwarf.sh` markers. Exits 1 when the comparison fails (the table
# is written either way).
set -euo pipefail
cd "$(dirname "$0")/../.."
R="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}"
PB="${CARGO_TARGET_DIR:-target}/debug/probe-bench"
OUT="${1:-/tmp/qfc-oracle-dwarf}"
D="${D:-60}" HZ="${HZ:-499}" USTACK="${USTACK:-65536}" RATE="${RATE:-2000}" PERF_SCOPE="${PERF_SCOPE:-task}"
for b in "$R/qfc-refnode" "$R/qfc-load" "$R/qfc-probe" "$PB"; do
  [ -x "$b" ] || { echo "oracle_dwarf: $b missing: see the header of $0" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "oracle_dwarf: needs root (eBPF, perf)" >&2; exit 1; }
for t in perf jq; do
  command -v "$t" >/dev/null || { echo "oracle_dwarf: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
rm -rf "$OUT"; mkdir -p "$OUT"
log() { printf '[oracle] %s\n' "$*" >&2; }

"$R/qfc-refnode" --dev --datadir "$OUT/data" --rpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  --p2p-port 0 --lab-p2p-host 127.0.0.1 --lab-ports-file "$OUT/ports.json" \
  --lab-block-interval-ms 500 --lab-synced-commit --log-level info >"$OUT/node.log" 2>&1 &
NODE=$!
PROBE="" PERF="" LOAD=""
cleanup() {
  for p in $PERF $PROBE $LOAD; do kill "$p" 2>/dev/null || true; done
  kill "$NODE" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$OUT/ports.json" ] && break; sleep 0.1; done
RPC=$(jq -r .rpc "$OUT/ports.json")

log "load: $RATE tx/s over 16 accounts for $((D + 15)) s (synced commit on)"
"$R/qfc-load" --rpc "$RPC" --tx-rate "$RATE" --tx-accounts 16 --sample-receipts 0 --floor-ms 0 \
  --duration-s $((D + 15)) --seed 3 --phase load --out "$OUT/load" >"$OUT/load.json" 2>"$OUT/load.err" &
LOAD=$!
sleep 8   # funding done, the load running

mkfifo "$OUT/ctl"
"$R/qfc-probe" --pid "$NODE" --probes oncpu --hz "$HZ" --unwind dwarf --ustack-bytes "$USTACK" \
  --out "$OUT/ours" --control stdin <"$OUT/ctl" >"$OUT/probe.log" 2>"$OUT/probe.err" &
PROBE=$!
exec 7>"$OUT/ctl"
for _ in $(seq 600); do grep -q '^ready' "$OUT/probe.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready' "$OUT/probe.log" || { echo "oracle_dwarf: qfc-probe not ready (see $OUT/probe.err)" >&2; exit 1; }
log "window: $D s, qfc-probe (dwarf, $USTACK B) and perf (dwarf, 65528 B) at $HZ Hz"
# task: per-task events on the node (`-p`); cpu: per-CPU events on every
# CPU (`-a`, as qfc-probe samples), the node's samples picked at script time.
case "$PERF_SCOPE" in
  task) PERF_TARGET=(-p "$NODE") PERF_PICK=() ;;
  cpu) PERF_TARGET=(-a) PERF_PICK=(--pid "$NODE") ;;
  *) echo "oracle_dwarf: PERF_SCOPE is task or cpu, not $PERF_SCOPE" >&2; exit 2 ;;
esac
perf record -F "$HZ" -e cpu-clock --call-graph dwarf,65528 "${PERF_TARGET[@]}" -o "$OUT/perf.data" >"$OUT/perf-record.log" 2>&1 &
PERF=$!
echo "phase run" >&7
sleep "$D"
kill -INT "$PERF"; wait "$PERF" || true; PERF=""
echo stop >&7; exec 7>&-
wait "$PROBE"; PROBE=""
wait "$LOAD" || true; LOAD=""

log "perf script (unwinding perf's copies; this takes a while)"
perf script --no-inline "${PERF_PICK[@]}" -i "$OUT/perf.data" >"$OUT/perf.script" 2>"$OUT/perf-script.err"
"$PB" collapse-perf "$OUT/perf.script" >"$OUT/perf.folded"
ok=yes
{
  echo "Reference node (release), synced commit on, $RATE tx/s; one ${D} s window at $HZ Hz. $(date -u +%FT%RZ), $(uname -r), $(nproc) CPUs, $(perf --version)."
  echo "qfc-probe: \`--unwind dwarf --ustack-bytes $USTACK\`; perf: \`perf record -e cpu-clock --call-graph dwarf,65528 ${PERF_TARGET[*]/$NODE/<node>}\`."
  echo
  "$PB" inclusive "$OUT/ours/run/oncpu.folded" "$OUT/perf.folded" --top 20 --callers 2 --max-pp 2 || ok=no
} >"$OUT/results.md" 2>"$OUT/compare.err"
cat "$OUT/results.md"
[ "$ok" = yes ] || cat "$OUT/compare.err" >&2

if [ "${DOCS:-0}" = 1 ]; then
  bash scripts/write-table.sh oracle_dwarf.sh "$OUT/results.md" docs/BENCHMARKS.md
  log "table written into docs/BENCHMARKS.md"
fi
[ "$ok" = yes ]
