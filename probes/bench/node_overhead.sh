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
# compactions, some 15 s in) it is measured in four windows of W seconds:
# off, on, on, off, or on, off, off, on, the two alternating from block to
# block of a mode. (One node for the whole bench does not do: its
# database grows under the load, and its compactions make it slower and
# noisier by the minute.) The probes are attached (a
# fresh qfc-probe) and detached (qfc-probe stopped) between windows, never
# inside one. A drift that is linear over a block hits both sides alike;
# the alternation cancels, over pairs of blocks, a drift that is not (a
# first window that is faster than the rest biases off-on-on-off against
# the probes and on-off-off-on for them). The figure of a block is its two
# `on` windows over its two `off` windows; the result is the median over
# BLOCKS blocks per mode, with a distribution-free 95% interval of that
# median (order statistics). Blocks of the modes alternate, the order
# rotating from round to round.
#
# Per window: transactions accepted by the node (its `qfc_transactions_total`
# plus `qfc_mempool_size`, from its metrics endpoint, at both ends), the
# node's CPU time (utime + stime from /proc, all threads), qfc-probe's CPU
# time. Per probe session, from its session.json (one probe window over
# its `on` windows): the kernel's count
# (bpf_stats) of the programs' run time over the node's CPU time.
#
#   cargo build --release -p refnode -p loadgen -p probes --bins
#   sudo bash probes/bench/node_overhead.sh [OUT_DIR]   # W=10 BLOCKS=12 WARM=20 ACCOUNTS=256 BLOCK_MS=50 MODES="fp dwarf" PROBES=...
#
# PIN=1 (the default with two CPUs or more) pins the node to CPU 0 and the load generator and qfc-probe to CPU 1
# (taskset), so that the node's throughput is bounded by one core of its own
# and not by how the scheduler splits both cores between it and its load.
# The probes' programs run on the node's core, in its context; qfc-probe's
# own work shows in its CPU time.
#
# Writes OUT_DIR/results.md, OUT_DIR/windows.tsv (every window) and the
# probes' sessions; with DOCS=1 also the table into docs/BENCHMARKS.md
# between the `node_overhead.sh` markers.
set -euo pipefail
cd "$(dirname "$0")/../.."
T="${CARGO_TARGET_DIR:-target}/${PROFILE:-release}"
OUT="${1:-/tmp/qfc-node-overhead}"
# Pinned by default where there are two CPUs or more (PIN=0: not pinned).
PIN="${PIN:-$([ "$(nproc)" -ge 2 ] && echo 1 || echo 0)}"
if [ "$PIN" = 1 ]; then NODE_CPU=(taskset -c 0) LOAD_CPU=(taskset -c 1); else NODE_CPU=() LOAD_CPU=(); fi
W="${W:-10}" BLOCKS="${BLOCKS:-12}" ACCOUNTS="${ACCOUNTS:-256}" USTACK="${USTACK:-16384}" BLOCK_MS="${BLOCK_MS:-50}"
PROBES="${PROBES:-fsync,bio,offcpu,writepath,oncpu}" MODES="${MODES:-fp dwarf}"
WARM="${WARM:-20}" SETTLE="${SETTLE:-2}"
for b in qfc-refnode qfc-load qfc-probe; do
  [ -x "$T/$b" ] || { echo "node_overhead: $T/$b missing: run cargo build --release -p refnode -p loadgen -p probes --bins" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "node_overhead: needs root (eBPF)" >&2; exit 1; }
for c in jq curl python3; do
  command -v "$c" >/dev/null || { echo "node_overhead: $c missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
for m in $MODES; do
  case $m in fp | dwarf | auto) ;; *) echo "node_overhead: MODES: unknown unwind mode $m (fp, dwarf, auto)" >&2; exit 1 ;; esac
done
rm -rf "$OUT"; mkdir -p "$OUT"
log() { printf '[overhead] %s\n' "$*" >&2; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
HZ=$(getconf CLK_TCK)

NODE="" PROBE="" LOAD=""
cleanup() {
  for p in "$PROBE" "$LOAD" "$NODE"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
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
# Transactions the node has accepted so far: in blocks plus in the mempool.
accepted() {
  curl -sf --max-time 5 "http://$METRICS/metrics" |
    awk '$1 == "qfc_transactions_total" { t = $2 } $1 == "qfc_mempool_size" { m = $2 } END { if (t == "") exit 1; print t + m }'
}
now() { date +%s.%N; }

window() { # block mode side: one measured window, appended to windows.tsv
  local t0 a0 n0 p0 t1 a1 n1 p1
  t0=$(now) a0=$(accepted) n0=$(ticks "$NODE") p0=$(ticks "$PROBE")
  sleep "$W"
  t1=$(now) a1=$(accepted) n1=$(ticks "$NODE") p1=$(ticks "$PROBE")
  kill -0 "$LOAD" 2>/dev/null || { echo "node_overhead: qfc-load ended early (see $OUT/load-$2-$1.err)" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" $(( a1 - a0 )) $(( n1 - n0 )) $(( p1 - p0 )) >>"$OUT/windows.tsv"
}

attach() { # name: a fresh qfc-probe on the node, its window `on` open
  rm -f "$OUT/ctl-$1"; mkfifo "$OUT/ctl-$1"
  "${LOAD_CPU[@]}" "$T/qfc-probe" --pid "$NODE" --out "$OUT/probe-$1" --probes "$PROBES" --unwind "$MODE" --ustack-bytes "$USTACK" \
    --control stdin <"$OUT/ctl-$1" >"$OUT/probe-$1.log" 2>"$OUT/probe-$1.err" &
  PROBE=$!
  exec 7>"$OUT/ctl-$1"
  for _ in $(seq 600); do grep -q '^ready' "$OUT/probe-$1.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$OUT/probe-$1.log" || { echo "node_overhead: qfc-probe not ready (see $OUT/probe-$1.err)" >&2; exit 1; }
  # One probe window over the session's `on` windows: a phase boundary
  # renders the window it closes, work that a run does a few times, not
  # all along.
  echo "phase on" >&7
  sleep "$SETTLE"
}
detach() { # name
  echo stop >&7; exec 7>&-
  wait "$PROBE" || { echo "node_overhead: qfc-probe failed (see $OUT/probe-$1.err)" >&2; exit 1; }
  PROBE=""
  rm -f "$OUT/ctl-$1"
  sleep "$SETTLE"
}

block() { # index mode pattern: a fresh node under one load, four windows, the probes attached for the `on` ones
  local k=0 side n="$2-$1"
  MODE=$2
  start_node "$n"
  "${LOAD_CPU[@]}" "$T/qfc-load" --rpc "$RPC" --tx-closed --tx-accounts "$ACCOUNTS" --sample-receipts 0 \
    --duration-s 86400 --floor-ms 0 --seed 7 --phase load --out "$OUT/load-$n" >"$OUT/load-$n.json" 2>"$OUT/load-$n.err" &
  LOAD=$!
  sleep "$WARM"
  for side in $3; do
    if [ "$side" = on ] && [ -z "$PROBE" ]; then k=$(( k + 1 )); attach "$2-$1-$k"; fi
    if [ "$side" = off ] && [ -n "$PROBE" ]; then detach "$2-$1-$k"; fi
    window "$1" "$2" "$side"
  done
  if [ -n "$PROBE" ]; then detach "$2-$1-$k"; fi
  kill "$LOAD" 2>/dev/null || true; wait "$LOAD" 2>/dev/null || true; LOAD=""
  stop_node "$n"
}

printf 'block\tmode\tside\tseconds\taccepted\tnode_ticks\tprobe_ticks\n' >"$OUT/windows.tsv"
read -r -a order <<<"$MODES"
for i in $(seq 1 "$BLOCKS"); do
  k=$(( (i - 1) % ${#order[@]} ))
  if [ $(( i % 2 )) = 1 ]; then pattern="off on on off"; else pattern="on off off on"; fi
  for m in "${order[@]:k}" "${order[@]:0:k}"; do
    log "block $i, $m: $pattern (${W} s windows)"
    block "$i" "$m" "$pattern"
  done
done

# The kernel's count of the programs' run time over the node's CPU time,
# per block's `on` side (an upper bound of the in-context cost: it also counts
# programs that fired for qfc-load and qfc-probe on the other CPU).
for f in "$OUT"/probe-*/session.json; do
  n=$(basename "$(dirname "$f")"); n=${n#probe-}; n=${n%-*}
  jq -r --arg n "$n" '.windows[] | select(.phase == "on") | [$n, .phase, (.cost.bpf_cpu_s // "nan"), (.cost.target_cpu_s // "nan")] | @tsv' "$f"
done >"$OUT/bpf.tsv"

python3 - "$OUT" "$HZ" "$MODES" "$PROBES" "$W" "$BLOCKS" "$ACCOUNTS" "$BLOCK_MS" "$USTACK" "$PIN" "$LOAD_START" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%RZ)" "$(uname -r)" "$(nproc)" <<'EOF' | tee "$OUT/results.md"
import csv, math, statistics, sys
out, hz, modes, probes, w, blocks, accounts, block_ms, ustack, pin, load0, load1, when, kernel, cpus = sys.argv[1:]
hz = float(hz)
rows = list(csv.DictReader(open(f"{out}/windows.tsv"), delimiter="\t"))
bpf = {}
for line in open(f"{out}/bpf.tsv"):
    name, _, b, t = line.rstrip("\n").split("\t")
    if b != "nan" and t != "nan" and float(t) > 0:
        bpf.setdefault(name, []).append(float(b) / float(t))

def median_ci(xs):
    """Median and a distribution-free 95% interval: the order statistics
    x(k) and x(n+1-k) with the largest k such that P(Bin(n, 1/2) < k) <= 0.025."""
    xs = sorted(xs)
    n = len(xs)
    k, cum = 0, 0.0
    while True:
        p = math.comb(n, k) / 2 ** n
        if cum + p > 0.025:
            break
        cum += p
        k += 1
    lo, hi = (xs[k - 1], xs[n - k]) if k >= 1 else (float("nan"), float("nan"))
    return statistics.median(xs), lo, hi, 1 - 2 * cum if k >= 1 else float("nan")

per_mode = {}
for m in modes.split():
    blocks_m = {}
    for r in rows:
        if r["mode"] == m:
            s = blocks_m.setdefault(r["block"], {"on": [0, 0, 0, 0], "off": [0, 0, 0, 0]})[r["side"]]
            s[0] += float(r["seconds"]); s[1] += int(r["accepted"]); s[2] += int(r["node_ticks"]); s[3] += int(r["probe_ticks"])
    res = []
    for b, s in sorted(blocks_m.items(), key=lambda kv: int(kv[0])):
        on, off = s["on"], s["off"]
        t_on, t_off = on[1] / on[0], off[1] / off[0]
        c_on, c_off = on[2] / hz * 1000 / on[1], off[2] / hz * 1000 / off[1]
        res.append({"block": b, "t_on": t_on, "t_off": t_off, "tr": t_on / t_off, "cr": c_on / c_off,
                    "c_on": c_on, "c_off": c_off, "probe_cpu_per_s": on[3] / hz / on[0]})
    per_mode[m] = res

print(f"Probes `{probes}`. Closed transaction loop ({accounts} clients, one per account), blocks every {block_ms} ms. "
      f"Paired design: per block a fresh node under one load, after a warm-up, four {w} s windows, off, on, on, off or "
      f"on, off, off, on in turn (the probes attached and detached between windows); {blocks} blocks per mode, the modes alternating. "
      f"Stack copy {ustack} bytes in dwarf mode."
      + (" Pinned: the node on CPU 0, qfc-load and qfc-probe on CPU 1." if pin == "1" else "")
      + f" {when}, {kernel}, {cpus} CPUs, load average at the start {load0}, at the end {load1}.")
print()
print("| mode | throughput on / off (median of blocks) | 95% interval | node CPU-s per 1,000 tx on / off (median) | 95% interval | "
      "BPF run time / node CPU (kernel's count, median of blocks) | qfc-probe CPU-s per s (median) | tx/s off, median of blocks |")
print("|---|---:|---|---:|---|---:|---:|---:|")
for m, res in per_mode.items():
    if not res:
        continue
    tr = median_ci([r["tr"] for r in res]); cr = median_ci([r["cr"] for r in res])
    names = {f"{m}-{r['block']}" for r in res}
    k = [x for n, xs in bpf.items() if n in names for x in xs]
    print(f"| {m} | {tr[0]:.3f} | {tr[1]:.3f} to {tr[2]:.3f} ({tr[3]:.1%}) | {cr[0]:.3f} | {cr[1]:.3f} to {cr[2]:.3f} ({cr[3]:.1%}) | "
          f"{statistics.median(k) if k else float('nan'):.4f} | {statistics.median(r['probe_cpu_per_s'] for r in res):.4f} | "
          f"{statistics.median(r['t_off'] for r in res):.0f} |")
print()
print("Per block, in block order: throughput on / off; node CPU per 1,000 tx on / off; tx/s off.")
print()
print("| mode | throughput on / off | CPU per 1,000 tx on / off | tx/s off |")
print("|---|---|---|---|")
for m, res in per_mode.items():
    cols = [" ".join(format(r[k], f) for r in res) for k, f in (("tr", ".3f"), ("cr", ".3f"), ("t_off", ".0f"))]
    print(f"| {m} | {cols[0]} | {cols[1]} | {cols[2]} |")
print()
for m, res in per_mode.items():
    if not res or m != "dwarf":
        continue
    tr = median_ci([r["tr"] for r in res]); cr = median_ci([r["cr"] for r in res])
    def verdict(med, lo, hi, bar, ge):
        if math.isnan(lo):
            return f"median {'meets' if (med >= bar if ge else med <= bar) else 'misses'} it; too few blocks for an interval"
        if ge:
            return "met, interval above the bar" if lo >= bar else ("missed, interval below the bar" if hi < bar else f"median {'meets' if med >= bar else 'misses'} it, interval straddles it")
        return "met, interval below the bar" if hi <= bar else ("missed, interval above the bar" if lo > bar else f"median {'meets' if med <= bar else 'misses'} it, interval straddles it")
    print(f"Targets (issue 12, dwarf): throughput / off >= 0.97: {verdict(*tr[:3], 0.97, True)}; "
          f"node CPU per 1,000 tx / off <= 1.03: {verdict(*cr[:3], 1.03, False)}.")
EOF

if [ "${DOCS:-0}" = 1 ]; then
  bash scripts/write-table.sh node_overhead.sh "$OUT/results.md" docs/BENCHMARKS.md
  log "table written into docs/BENCHMARKS.md"
fi
