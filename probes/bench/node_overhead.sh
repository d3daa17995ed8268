#!/usr/bin/env bash
# Overhead of the probes on the reference node (docs/BENCHMARKS.md,
# issues 4, 12 and 17), every mode in one run: no probes (`off`), the
# probes (PROBES, default all five) with frame-pointer user stacks (`fp`)
# and with copied stacks unwound by DWARF (`dwarf`). Modes are interleaved (off, fp, dwarf, off,
# fp, dwarf, ...) RUNS times, the order rotating from round to round, each
# run on a fresh node, so that drift hits every mode alike; the figures are
# medians over the runs.
#
# Load: a closed transaction loop (`qfc-load --tx-closed`, one client per
# account, back to back; a refused transfer waits 100 ms), so that the
# node is saturated and its throughput can move: a fixed open-loop rate
# would be met with and without probes and its ratio would be 1.000 by
# construction. Blocks every BLOCK_MS (default 50) ms: at 250 ms the block
# gas limit (about 1,430 transfers per block) caps throughput near 6,000/s
# whatever the CPU does, and the loop measures that cap instead.
#
# Per run: answered transactions per second, the node's CPU time (utime +
# stime from /proc) per 1,000 answered transactions, and the probe
# process's CPU time over the load (from its /proc stat before and after);
# the kernel's count of the programs' run time over the node's CPU time
# (qfc-probe's session.json, `windows[].cost`); and, to tell the machine
# from the probes, the time stolen from the node's CPU and a fixed CPU loop
# timed on it just before the run. MODES="off dwarf" runs a subset.
#
#   cargo build --release -p refnode -p loadgen -p probes --bins
#   sudo bash probes/bench/node_overhead.sh [OUT_DIR]   # D=20 RUNS=5 ACCOUNTS=256 BLOCK_MS=50 PROBES=...
#
# PIN=1 pins the node to CPU 0 and the load generator and qfc-probe to CPU 1
# (taskset), so that the node's throughput is bounded by one core of its own
# and not by how the scheduler splits both cores between it and its load,
# which moves the unpinned runs by 10-20%. The probes' programs run on the
# node's core, in its context; qfc-probe's own work shows in its CPU time.
#
# Writes OUT_DIR/results.md and every raw summary; with DOCS=1 also the
# table into docs/BENCHMARKS.md between the `node_overhead.sh` markers.
set -euo pipefail
cd "$(dirname "$0")/../.."
T="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}"
OUT="${1:-/tmp/qfc-node-overhead}"
PIN="${PIN:-0}"
if [ "$PIN" = 1 ]; then NODE_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1); else NODE_CPU=() LOAD_CPU=(); fi
D="${D:-20}" RUNS="${RUNS:-5}" ACCOUNTS="${ACCOUNTS:-256}" USTACK="${USTACK:-16384}" BLOCK_MS="${BLOCK_MS:-50}" PROBES="${PROBES:-fsync,bio,offcpu,writepath,oncpu}"
MODES="${MODES:-off fp dwarf}"
for b in qfc-refnode qfc-load qfc-probe; do
  [ -x "$T/$b" ] || { echo "node_overhead: $T/$b missing: run cargo build --release -p refnode -p loadgen -p probes --bins" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "node_overhead: needs root (eBPF)" >&2; exit 1; }
command -v jq >/dev/null || { echo "node_overhead: jq missing (scripts/setup.sh installs it)" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT"
log() { printf '[overhead] %s\n' "$*" >&2; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

NODE="" PROBE=""
cleanup() {
  [ -n "$PROBE" ] && kill "$PROBE" 2>/dev/null || true
  [ -n "$NODE" ] && kill "$NODE" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
# A fresh node (empty chain) for every run: with one node for all runs the
# chain and its database grow under the runs, and the later runs of every
# round were slower than the earlier ones.
start_node() { # name
  rm -f "$OUT/ports.json"
  "${NODE_CPU[@]}" "$T/qfc-refnode" --dev --datadir "$OUT/data-$1" --rpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --p2p-port 0 --lab-p2p-host 127.0.0.1 --lab-ports-file "$OUT/ports.json" \
    --lab-block-interval-ms "$BLOCK_MS" --log-level info >"$OUT/node-$1.log" 2>&1 &
  NODE=$!
  for _ in $(seq 100); do [ -s "$OUT/ports.json" ] && break; sleep 0.1; done
  [ -s "$OUT/ports.json" ] || { echo "node_overhead: the node did not start (see $OUT/node-$1.log)" >&2; exit 1; }
  RPC=$(jq -r .rpc "$OUT/ports.json")
}
stop_node() { # name
  kill "$NODE" 2>/dev/null || true
  wait "$NODE" 2>/dev/null || true
  NODE=""
  rm -rf "$OUT/data-$1"
}
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# Time stolen by the hypervisor from the node's CPU (CPU 0 when pinned,
# else all CPUs), in ticks: the 8th field of /proc/stat's cpu line.
STEAL_CPU=$([ "$PIN" = 1 ] && echo cpu0 || echo cpu)
steal() { awk -v c="$STEAL_CPU" '$1 == c { print $9 }' /proc/stat; }
# The machine's speed just before a run: CPU-seconds of a fixed pure-CPU
# loop on the node's CPU. A run-to-run change in it is the machine (the
# hypervisor's placement, a busy neighbour), not the node or the probes.
calibrate() {
  "${NODE_CPU[@]}" python3 -c 'import time
t = time.process_time(); x = 0
for i in range(3_000_000): x ^= i * 2654435761 & 0xffffffff
print(f"{time.process_time() - t:.4f}")'
}

run_load() { # name: one closed-loop phase; records the node's CPU ticks
  local before after s0
  calibrate >"$OUT/$1.calib"
  s0=$(steal)
  before=$(ticks "$NODE")
  "${LOAD_CPU[@]}" "$T/qfc-load" --rpc "$RPC" --tx-closed --tx-accounts "$ACCOUNTS" --sample-receipts 0 \
    --duration-s "$D" --floor-ms 0 --seed 7 --phase "$1" --out "$OUT/$1" >"$OUT/$1.json" 2>"$OUT/$1.err"
  after=$(ticks "$NODE")
  echo $(( after - before )) >"$OUT/$1.node_ticks"
  echo $(( $(steal) - s0 )) >"$OUT/$1.steal_ticks"
}

for i in $(seq 1 "$RUNS"); do
  # The order rotates from round to round (off fp dwarf, fp dwarf off,
  # dwarf off fp, ...), so no mode always runs first or last.
  read -r -a order <<<"$MODES"
  k=$(( (i - 1) % ${#order[@]} ))
  for m in "${order[@]:k}" "${order[@]:0:k}"; do
    n="$m-$i"
    start_node "$n"
    if [ "$m" = off ]; then
      log "run $i: no probes (closed loop, $ACCOUNTS clients, ${D} s)"
      run_load "$n"; echo 0 >"$OUT/$n.probe_ticks"
      stop_node "$n"
      continue
    fi
    log "run $i: probes $PROBES, unwind $m"
    rm -f "$OUT/ctl-$n"; mkfifo "$OUT/ctl-$n"
    "${LOAD_CPU[@]}" "$T/qfc-probe" --pid "$NODE" --out "$OUT/probe-$n" --probes "$PROBES" --unwind "$m" --ustack-bytes "$USTACK" \
      --control stdin <"$OUT/ctl-$n" >"$OUT/probe-$n.log" 2>"$OUT/probe-$n.err" &
    PROBE=$!
    exec 7>"$OUT/ctl-$n"
    for _ in $(seq 600); do grep -q '^ready' "$OUT/probe-$n.log" 2>/dev/null && break; sleep 0.1; done
    grep -q '^ready' "$OUT/probe-$n.log" || { echo "node_overhead: qfc-probe not ready (see $OUT/probe-$n.err)" >&2; exit 1; }
    echo "phase load" >&7
    p0=$(ticks "$PROBE")
    run_load "$n"
    p1=$(ticks "$PROBE")
    echo $(( p1 - p0 )) >"$OUT/$n.probe_ticks"
    echo stop >&7; exec 7>&-
    wait "$PROBE" || { echo "node_overhead: qfc-probe failed (see $OUT/probe-$n.err)" >&2; exit 1; }
    PROBE=""
    stop_node "$n"
  done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { # mode field: one value per run
  for i in $(seq 1 "$RUNS"); do
    n="$1-$i"
    ok=$(jq '.workloads.tx.ok' "$OUT/$n.json")
    case $2 in
      tput) jq '.workloads.tx.throughput_per_s' "$OUT/$n.json" ;;
      node) awk -v t="$(cat "$OUT/$n.node_ticks")" -v hz="$HZ" -v ok="$ok" 'BEGIN { printf "%.4f\n", t / hz * 1000 / ok }' ;;
      probe) awk -v t="$(cat "$OUT/$n.probe_ticks")" -v hz="$HZ" 'BEGIN { printf "%.3f\n", t / hz }' ;;
      refused) jq '[.workloads.tx.errors // {} | to_entries[].value] | add // 0' "$OUT/$n.json" ;;
      steal) awk -v t="$(cat "$OUT/$n.steal_ticks")" -v hz="$HZ" 'BEGIN { printf "%.2f\n", t / hz }' ;;
      calib) cat "$OUT/$n.calib" ;;
      # The kernel's own count (bpf_stats) of the programs' run time over
      # the node's CPU time in the same window: an upper bound of the
      # in-context cost (it also counts programs that fired for qfc-load
      # and qfc-probe on the other CPU), and one that the machine's speed
      # moves for both terms alike.
      bpf) if [ "$1" = off ]; then echo 0; else jq '.windows[0].cost | .bpf_cpu_s / .target_cpu_s' "$OUT/probe-$n/session.json"; fi ;;
    esac
  done
}
{
  echo "Probes \`$PROBES\`. Closed transaction loop ($ACCOUNTS clients, one per account), ${D} s per run, $RUNS runs per mode, interleaved with the order rotating, a fresh node per run; medians. Blocks every $BLOCK_MS ms (the block gas limit then bounds throughput far above what the CPU allows). Stack copy $USTACK bytes in dwarf mode.$([ "$PIN" = 1 ] && echo " Pinned: the node on CPU 0, qfc-load and qfc-probe on CPU 1.") $(date -u +%FT%RZ), $(uname -r), $(nproc) CPUs, load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| mode | tx/s answered (median) | / off | node CPU-s per 1,000 tx (median) | / off | BPF run time / node CPU (kernel's count, median) | probe CPU-s per run (median) | runs: tx/s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  t_off=$(col off tput | median); c_off=$(col off node | median)
  for m in $MODES; do
    t=$(col "$m" tput | median); c=$(col "$m" node | median); p=$(col "$m" probe | median)
    echo "| $m | $t | $(awk -v a="$t" -v b="$t_off" 'BEGIN { printf "%.3f", a / b }') | $c | $(awk -v a="$c" -v b="$c_off" 'BEGIN { printf "%.3f", a / b }') | $(col "$m" bpf | median | awk '{ printf "%.4f", $1 }') | $p | $(col "$m" tput | paste -sd' ') |"
  done
  echo
  echo "Refused by the saturated node (mempool full, per run): $(for m in $MODES; do printf '%s %s; ' "$m" "$(col "$m" refused | paste -sd' ')"; done)"
  echo
  echo "Per run, in run order within each mode: node CPU-s per 1,000 tx; CPU-s stolen by the hypervisor from the node's CPU; CPU-s of a fixed calibration loop on the node's CPU just before the run (the machine's speed)."
  echo
  echo "| mode | node CPU-s per 1,000 tx | BPF run time / node CPU | stolen CPU-s | calibration CPU-s |"
  echo "|---|---|---|---|---|"
  for m in $MODES; do
    echo "| $m | $(col "$m" node | paste -sd' ') | $(col "$m" bpf | awk '{ printf "%.4f ", $1 }' | sed 's/ $//') | $(col "$m" steal | paste -sd' ') | $(col "$m" calib | paste -sd' ') |"
  done
  echo "Targets (issue 12, dwarf): throughput / off >= 0.97; node CPU per 1,000 tx / off <= 1.03."
} | tee "$OUT/results.md"

if [ "${DOCS:-0}" = 1 ]; then
  bash scripts/write-table.sh node_overhead.sh "$OUT/results.md" docs/BENCHMARKS.md
  log "table written into docs/BENCHMARKS.md"
fi
