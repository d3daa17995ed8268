#!/usr/bin/env bash
# Overhead of the probes on the reference node (docs/BENCHMARKS.md,
# issues 4, 12 and 17): the probes (PROBES, default all five) with
# frame-pointer user stacks (`fp`) and with copied stacks unwound by DWARF
# (`dwarf`), each against no probes, in one run.
#
# Load: a closed transaction loop (`qfc-load --tx-closed`, one client per
# account, back to back; a refused transfer waits 100 ms), so that the
# node is saturated and its throughput can move: a fixed open-loop rate
# would be met with and without probes and its ratio would be 1.000 by
# construction. Blocks every BLOCK_MS (default 50) ms: at 250 ms the block
# gas limit (about 1,430 transfers per block) caps throughput near 6,000/s
# whatever the CPU does, and the loop measures that cap instead.
#
# Design: paired windows. This machine's speed drifts by up to 2x over
# minutes (a fixed CPU loop took 0.44 to 0.99 CPU-s from one run to the
# next), so runs minutes apart cannot be compared to 3%. Instead each
# block is one fresh node under one continuous load: after WARM seconds
# (default 20: a fresh node is faster until its first flushes and
# compactions, some 15 s in) it is measured in four windows of W seconds,
# off, on, on, off in odd blocks and on, off, off, on in even ones. (One
# node for the whole bench does not do: its database grows under the
# load, and its compactions make it slower and noisier by the minute.)
# The probes are attached (a fresh qfc-probe) and detached (qfc-probe
# stopped) between windows, never inside one. Blocks of the modes
# alternate, the order rotating from round to round.
#
# A drift that is linear over a block hits both sides alike; one that is
# not (a node that slows down fast at first, then less) biases
# off-on-on-off against the probes and on-off-off-on for them, and a pair
# of blocks, one of each, cancels it. So BLOCKS is even, a block's figure
# is its two `on` windows over its two `off` windows, a pair's is the
# geometric mean of its two blocks', and the result is the median over
# pairs with a distribution-free 95% interval of that median (order
# statistics), by node_overhead_table.py. Beside it, the figure adjusted
# for the compactions: the node shares its one core with its RocksDB
# background threads, whose share swings from a few percent to half from
# one window to the next and moves throughput with it; the summary fits
# each pair's log(on / off) against log(foreground share on / off) and
# gives the fit at equal shares, with a bootstrap interval.
#
# Per window, and per second within it: transactions accepted by the node
# (its `qfc_transactions_total` plus `qfc_mempool_size`, from its metrics
# endpoint), the node's CPU time (utime + stime from /proc, all
# threads) and that of its RocksDB background threads (rocksdb:*). Per
# window, qfc-probe's CPU time. Per probe session, from its
# session.json (one probe window over its `on` windows), the kernel's
# count (bpf_stats) of the programs' run time over the node's CPU time.
# The summary gives each figure over whole windows and over a window's
# median second, which a stall of a second or two moves far less.
#
#   cargo build --release -p refnode -p loadgen -p probes --bins
#   sudo bash probes/bench/node_overhead.sh [OUT_DIR]   # W=10 BLOCKS=12 WARM=20 ACCOUNTS=256 BLOCK_MS=50 MODES="fp dwarf" PROBES=...
#
# PIN=1 (the default with two CPUs or more) pins the node to CPU 0 and
# the load generator and qfc-probe to CPU 1 (taskset), so that the node's
# throughput is bounded by one core of its own and not by how the
# scheduler splits both cores between it and its load.
# The probes' programs run on the node's core, in its context; qfc-probe's
# own work shows in its CPU time.
#
# Writes OUT_DIR/results.md (node_overhead_table.py's summary of the raw
# files beside it: run.json, windows.tsv, seconds.tsv, bpf.tsv) and the
# probes' sessions; with DOCS=1 also the table into docs/BENCHMARKS.md
# between the `node_overhead.sh` markers (MARKER=NAME: the `NAME` markers).
#
# CYCLES=N (1, the default, or an even number dividing BLOCKS) measures N
# blocks of each mode on one node after its warm-up instead of one: less
# time spent starting and warming nodes, so more blocks an hour. A node
# holds whole pairs of blocks, so a pair never spans two nodes.
set -euo pipefail
cd "$(dirname "$0")/../.."
T="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}"
OUT="${1:-/tmp/qfc-node-overhead}"
# Pinned by default where there are two CPUs or more (PIN=0: not pinned).
PIN="${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}"
if [ "$PIN" = 1 ]; then NODE_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1); else NODE_CPU=() LOAD_CPU=(); fi
W="${W:-10}" BLOCKS="${BLOCKS:-12}" ACCOUNTS="${ACCOUNTS:-256}" USTACK="${USTACK:-16384}" BLOCK_MS="${BLOCK_MS:-50}"
PROBES="${PROBES:-fsync,bio,offcpu,writepath,oncpu}" MODES="${MODES:-fp dwarf}"
WARM="${WARM:-20}" SETTLE="${SETTLE:-2}" CYCLES="${CYCLES:-1}"
for b in qfc-refnode qfc-load qfc-probe; do
  [ -x "$T/$b" ] || { echo "node_overhead: $T/$b missing: run cargo build --release -p refnode -p loadgen -p probes --bins" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "node_overhead: needs root (eBPF)" >&2; exit 1; }
for c in jq curl python3; do
  command -v "$c" >/dev/null || { echo "node_overhead: $c missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
[ $(( BLOCKS % 2 )) = 0 ] && [ "$BLOCKS" -gt 0 ] || { echo "node_overhead: BLOCKS=$BLOCKS: give an even number above 0 (the result is over pairs of blocks, one of each pattern)" >&2; exit 1; }
{ [ "$CYCLES" = 1 ] || [ $(( CYCLES % 2 )) = 0 ]; } && [ "$CYCLES" -gt 0 ] && [ $(( BLOCKS % CYCLES )) = 0 ] ||
  { echo "node_overhead: CYCLES=$CYCLES: give 1 or an even number that divides BLOCKS=$BLOCKS (a node holds whole pairs of blocks)" >&2; exit 1; }
for m in $MODES; do
  case $m in fp | dwarf | auto) ;; *) echo "node_overhead: MODES: unknown unwind mode $m (fp, dwarf, auto)" >&2; exit 1 ;; esac
done
rm -rf "$OUT"; mkdir -p "$OUT"
# qfc-probe is started and stopped by lib.sh's probe_start and probe_stop
# (its phase `run` spans a session's `on` windows: a phase boundary renders
# the window it closes, work that a run does a few times, not all along).
# shellcheck source=lib.sh
. probes/bench/lib.sh
PROBE="$T/qfc-probe" PROBE_WRAP=("${LOAD_CPU[@]}")
log() { printf '[overhead] %s\n' "$*" >&2; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
HZ=$(getconf CLK_TCK)

NODE="" LOAD=""
cleanup() {
  for p in "$PROBE_PID" "$LOAD" "$NODE"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

start_node() { # name
  rm -f "$OUT/ports.json"
  "${NODE_CPU[@]}" "$T/qfc-refnode" --dev --datadir "$OUT/data-$1" --rpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --p2p-port 0 --lab-p2p-host 127.0.0.1 --lab-ports-file "$OUT/ports.json" \
    --lab-block-interval-ms "$BLOCK_MS" --log-level info >"$OUT/node-$1.log" 2>&1 &
  NODE=$!
  for _ in $(seq 100); do [ -s "$OUT/ports.json" ] && break; sleep 0.1; done
  [ -s "$OUT/ports.json" ] || { echo "node_overhead: the node did not start (see $OUT/node-$1.log)" >&2; exit 1; }
  RPC=$(jq -r .rpc "$OUT/ports.json") METRICS=$(jq -r .metrics "$OUT/ports.json")
}
stop_node() { # name
  kill "$NODE" 2>/dev/null || true
  wait "$NODE" 2>/dev/null || true
  NODE=""
  rm -rf "$OUT/data-$1"
}
ticks() { if [ -n "$1" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
# CPU ticks of the node's RocksDB background threads (flushes and
# compactions, threads named rocksdb:*): the covariate of the adjusted
# figure (node_overhead_table.py). Their CPU comes and goes in bursts of
# seconds and takes the node's one core from the transactions.
# One read of all threads' stat files (a thread that ends meanwhile is
# skipped); the thread name is field 2, in parentheses.
bg_ticks() {
  { cat /proc/"$NODE"/task/*/stat 2>/dev/null || true; } | awk '$2 ~ /^\(rocksdb:/ { s += $14 + $15 } END { print s + 0 }'
}
# Transactions the node has accepted so far: in blocks plus in the mempool.
accepted() {
  curl -sf --max-time 5 "http://$METRICS/metrics" |
    awk '$1 == "qfc_transactions_total" { t = $2 } $1 == "qfc_mempool_size" { m = $2 } END { if (t != "") printf "%d\n", t + m }' || true
}
# A reading that failed ends the bench: an empty one would read as 0 in a
# window's arithmetic and give a wrong figure, not a missing one.
counts() { # what value...
  local what=$1; shift
  for v in "$@"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "node_overhead: no $what (from the node's metrics at $METRICS and /proc; see $OUT/node-*.log)" >&2; exit 1; }
  done
}
now() { date +%s.%N; }

WINDOW=0
window() { # block mode side: one measured window (number WINDOW), appended to windows.tsv, and its seconds to seconds.tsv
  WINDOW=$(( WINDOW + 1 ))
  local t0 a0 n0 p0 g0 t1 a1 n1 p1 g1 j tb ab nb gb
  t0=$(now) a0=$(accepted) n0=$(ticks "$NODE") p0=$(ticks "$PROBE_PID") g0=$(bg_ticks)
  counts "count at the start of a window" "$a0" "$n0" "$p0" "$g0"
  t1=$t0 a1=$a0 n1=$n0 g1=$g0
  for j in $(seq 1 "$W"); do
    sleep "$(awk -v t0="$t0" -v j="$j" -v t="$(now)" 'BEGIN { d = t0 + j - t; printf "%.3f", (d > 0 ? d : 0) }')"
    tb=$(now) ab=$(accepted) nb=$(ticks "$NODE") gb=$(bg_ticks)
    counts "count in second $j of a window" "$ab" "$nb" "$gb"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$WINDOW" "$1" "$2" "$3" "$j" \
      "$(awk -v a="$t1" -v b="$tb" 'BEGIN { printf "%.3f", b - a }')" $(( ab - a1 )) $(( nb - n1 )) $(( gb - g1 )) >>"$OUT/seconds.tsv"
    t1=$tb a1=$ab n1=$nb g1=$gb
  done
  p1=$(ticks "$PROBE_PID")
  counts "probe CPU count at the end of a window" "$p1"
  kill -0 "$LOAD" 2>/dev/null || { echo "node_overhead: qfc-load ended early (see $OUT/load-$2-$1.err)" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$WINDOW" "$1" "$2" "$3" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" $(( a1 - a0 )) $(( n1 - n0 )) $(( p1 - p0 )) $(( g1 - g0 )) >>"$OUT/windows.tsv"
}

node_up() { # name: a fresh node under one load, warmed up
  start_node "$1"
  "${LOAD_CPU[@]}" "$T/qfc-load" --rpc "$RPC" --tx-closed --tx-accounts "$ACCOUNTS" --sample-receipts 0 \
    --duration-s 86400 --floor-ms 0 --seed 7 --phase load --out "$OUT/load-$1" >"$OUT/load-$1.json" 2>"$OUT/load-$1.err" &
  LOAD=$!
  sleep "$WARM"
}
node_down() { # name
  kill "$LOAD" 2>/dev/null || true; wait "$LOAD" 2>/dev/null || true; LOAD=""
  stop_node "$1"
}
block() { # index mode pattern: four windows of the running node, the probes attached for the `on` ones
  local k=0 side n="$2-$1"
  for side in $3; do
    if [ "$side" = on ] && [ -z "$PROBE_PID" ]; then
      k=$(( k + 1 ))
      probe_start "probe-$n-$k" "$NODE" --probes "$PROBES" --unwind "$2" --ustack-bytes "$USTACK"
      sleep "$SETTLE"
    fi
    if [ "$side" = off ] && [ -n "$PROBE_PID" ]; then probe_stop; sleep "$SETTLE"; fi
    window "$1" "$2" "$side"
  done
  if [ -n "$PROBE_PID" ]; then probe_stop; sleep "$SETTLE"; fi
}

jq -n --arg hz "$HZ" --arg modes "$MODES" --arg probes "$PROBES" --arg w "$W" --arg blocks "$BLOCKS" --arg warm "$WARM" \
  --arg cycles "$CYCLES" --arg accounts "$ACCOUNTS" --arg block_ms "$BLOCK_MS" --arg ustack "$USTACK" --arg pin "$PIN" --arg load_start "$LOAD_START" \
  --arg started "$(date -u +%FT%RZ)" --arg kernel "$(uname -r)" --arg cpus "$(nproc)" \
  '{hz: $hz, modes: $modes, probes: $probes, w: $w, blocks: $blocks, cycles: $cycles, warm: $warm, accounts: $accounts, block_ms: $block_ms,
    ustack: $ustack, pin: $pin, load_start: $load_start, started: $started, kernel: $kernel, cpus: $cpus}' >"$OUT/run.json"
printf 'window\tblock\tmode\tside\tseconds\taccepted\tnode_ticks\tprobe_ticks\tbg_ticks\n' >"$OUT/windows.tsv"
printf 'window\tblock\tmode\tside\tsecond\tseconds\taccepted\tnode_ticks\tbg_ticks\n' >"$OUT/seconds.tsv"
read -r -a order <<<"$MODES"
for first in $(seq 1 "$CYCLES" "$BLOCKS"); do
  node="node-$first"
  log "blocks $first to $(( first + CYCLES - 1 )) on a fresh node (${WARM} s warm-up)"
  node_up "$node"
  for i in $(seq "$first" $(( first + CYCLES - 1 ))); do
    k=$(( (i - 1) % ${#order[@]} ))
    if [ $(( i % 2 )) = 1 ]; then pattern="off on on off"; else pattern="on off off on"; fi
    for m in "${order[@]:k}" "${order[@]:0:k}"; do
      log "block $i, $m: $pattern (${W} s windows)"
      block "$i" "$m" "$pattern"
    done
  done
  node_down "$node"
done

# The kernel's count of the programs' run time over the node's CPU time,
# per block's `on` side (an upper bound of the in-context cost: it also counts
# programs that fired for qfc-load and qfc-probe on the other CPU).
for f in "$OUT"/probe-*/session.json; do
  n=$(basename "$(dirname "$f")"); n=${n#probe-}; n=${n%-*}
  jq -r --arg n "$n" '.windows[] | select(.phase == "run") | [$n, .phase, (.cost.bpf_cpu_s // "nan"), (.cost.target_cpu_s // "nan")] | @tsv' "$f"
done >"$OUT/bpf.tsv"

jq --arg e "$(date -u +%FT%RZ)" --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" '.ended = $e | .load_end = $l' "$OUT/run.json" >"$OUT/run.json.tmp"
mv "$OUT/run.json.tmp" "$OUT/run.json"
python3 probes/bench/node_overhead_table.py "$OUT" | tee "$OUT/results.md"

if [ "${DOCS:-0}" = 1 ]; then
  bash scripts/write-table.sh "${MARKER:-node_overhead.sh}" "$OUT/results.md" docs/BENCHMARKS.md
  log "table written into docs/BENCHMARKS.md"
fi
