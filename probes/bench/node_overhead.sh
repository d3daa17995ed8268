#!/usr/bin/env bash
# Overhead of the five probes on the reference node, side by side in one run
# (docs/BENCHMARKS.md, issue 4): the same fixed open-loop transaction load,
# RUNS times without and RUNS times with `qfc-probe --pid <node>` (all five
# probes) attached, alternating (off, on, off, on, ...) so drift hits both.
# Per run: achieved throughput (answered tx/s), p99 latency, and the node's
# CPU time (utime + stime from /proc) per 1,000 answered transactions.
#
#   cargo build --release
#   sudo bash probes/bench/node_overhead.sh [OUT_DIR]   # RATE=500 D=30 RUNS=2
#
# Writes OUT_DIR/results.md (the table) and every raw summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
T="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}"
OUT="${1:-/tmp/qfc-node-overhead}"
RATE="${RATE:-500}" D="${D:-30}" RUNS="${RUNS:-2}"
for b in qfc-refnode qfc-load qfc-probe; do
  [ -x "$T/$b" ] || { echo "node_overhead: $T/$b missing: run cargo build --release" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "node_overhead: needs root (eBPF)" >&2; exit 1; }
command -v jq >/dev/null || { echo "node_overhead: jq missing (scripts/setup.sh installs it)" >&2; exit 1; }
bash scripts/services.sh >/dev/null 2>&1 || true
rm -rf "$OUT"; mkdir -p "$OUT"
log() { printf '[overhead] %s\n' "$*" >&2; }

"$T/qfc-refnode" --dev --datadir "$OUT/data" --rpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  --p2p-port 0 --lab-p2p-host 127.0.0.1 --lab-ports-file "$OUT/ports.json" \
  --lab-block-interval-ms 250 --log-level info >"$OUT/node.log" 2>&1 &
NODE=$!
PROBE=""
cleanup() {
  [ -n "$PROBE" ] && kill "$PROBE" 2>/dev/null || true
  kill "$NODE" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$OUT/ports.json" ] && break; sleep 0.1; done
RPC=$(jq -r .rpc "$OUT/ports.json")
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NODE/stat"; }
HZ=$(getconf CLK_TCK)

run_load() { # name
  local before after
  before=$(cpu_ticks)
  "$T/qfc-load" --rpc "$RPC" --tx-rate "$RATE" --tx-accounts 32 --duration-s "$D" \
    --seed 7 --phase "$1" --out "$OUT/$1" >"$OUT/$1.json" 2>"$OUT/$1.err"
  after=$(cpu_ticks)
  echo $(( after - before )) >"$OUT/$1.cpu_ticks"
}

for i in $(seq 1 "$RUNS"); do
  log "run $i: without probes ($RATE tx/s, ${D} s)"
  run_load "off-$i"
  log "run $i: with all five probes"
  rm -f "$OUT/ctl-$i"; mkfifo "$OUT/ctl-$i"
  "$T/qfc-probe" --pid "$NODE" --out "$OUT/probe-$i" --control stdin <"$OUT/ctl-$i" >"$OUT/probe-$i.log" 2>"$OUT/probe-$i.err" &
  PROBE=$!
  exec 7>"$OUT/ctl-$i"
  for _ in $(seq 600); do grep -q '^ready' "$OUT/probe-$i.log" 2>/dev/null && break; sleep 0.1; done
  echo "phase on-$i" >&7
  run_load "on-$i"
  echo stop >&7; exec 7>&-
  wait "$PROBE"; PROBE=""
done

{
  echo "| run | probes | tx/s answered | p99 ms | node CPU s | node CPU ms per 1000 tx |"
  echo "|---|---|---:|---:|---:|---:|"
  for i in $(seq 1 "$RUNS"); do
    for m in off on; do
      n="$m-$i"
      jq -r --arg n "$i" --arg m "$m" --argjson ticks "$(cat "$OUT/$n.cpu_ticks")" --argjson hz "$HZ" \
        '.workloads.tx as $t | "| \($n) | \($m) | \($t.throughput_per_s) | \($t.latency.p99_us / 1000) | \($ticks / $hz) | \(if $t.ok > 0 then ($ticks / $hz * 1000000 / $t.ok | floor) else "n/a" end) |"' "$OUT/$n.json"
    done
  done
  off=$(for i in $(seq 1 "$RUNS"); do jq '.workloads.tx.throughput_per_s' "$OUT/off-$i.json"; done | awk '{ s += $1 } END { print s / NR }')
  on=$(for i in $(seq 1 "$RUNS"); do jq '.workloads.tx.throughput_per_s' "$OUT/on-$i.json"; done | awk '{ s += $1 } END { print s / NR }')
  cpu_off=$(for i in $(seq 1 "$RUNS"); do cat "$OUT/off-$i.cpu_ticks"; done | awk '{ s += $1 } END { print s }')
  cpu_on=$(for i in $(seq 1 "$RUNS"); do cat "$OUT/on-$i.cpu_ticks"; done | awk '{ s += $1 } END { print s }')
  echo
  echo "throughput with probes / without: $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }') (target >= 0.98)"
  echo "node CPU time with probes / without: $(awk -v a="$cpu_on" -v b="$cpu_off" 'BEGIN { printf "%.3f", a / b }')"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/results.md"
