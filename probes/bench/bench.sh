#!/usr/bin/env bash
# Cross-checks and overhead of the qfc-lab probes, as recorded in
# docs/BENCHMARKS.md. Run as root from the workspace root after
# `cargo build -p probes`:
#
#   bash probes/bench/bench.sh [OUT_DIR]        # default /tmp/qfc-probe-bench
#
# Writes OUT_DIR/results.md (a markdown table) and the raw outputs.
# 1. fsync count: qfc-probe vs bpftrace on one workload (300 fdatasync).
# 2. on-CPU top-frame shares: qfc-probe vs `perf record` + inferno's perf
#    collapser, same process, same window, 499 Hz, 20 s.
# 3. syscall-heavy overhead and per-event cost (issue 17): `dd
#    if=/dev/zero of=/dev/null bs=1 count=1000000` wall time with the
#    writepath probe at each attach point (tp-btf, raw, syscalls; targeting
#    dd) and with a bpftrace write enter/exit histogram script, each divided
#    by the time without tracing, and the programs' run counts and run
#    times from the kernel's BPF statistics (ours from session.json, which
#    enables them with BPF_ENABLE_STATS; bpftrace's from `bpftool prog show`
#    with kernel.bpf_stats_enabled=1 for its runs). Modes interleaved, REPS
#    runs each, medians. fentry/fexit: the refusal of this kernel is
#    recorded (bpftrace kfunc probe). The runs are dd_cost.sh and the table
#    dd_cost_table.py, the same two that `cargo xtask guest-probe-cost`
#    runs inside the aarch64 guest.
# 4. the reference node's saturated throughput and CPU per 1,000
#    transactions, fp and dwarf each against no probes, with the two stack
#    probes, NODE_BLOCKS (default 32) paired blocks per mode, eight to a
#    node, as the table between the node_overhead.sh markers is documented
#    (node_overhead.sh, about 55 minutes; needs release builds; NODE=0
#    skips it).
# 5. the aarch64 guest's per-event cost beside bpftrace's: stage 3's runs
#    inside the guest, on the bench flavour of the image (`xtask
#    guest-probe-cost`, its own table and markers; needs target/debug/xtask
#    and qemu-system-aarch64; GUEST=0 skips it).
# The cost table is also written into docs/BENCHMARKS.md between the
# `bench.sh:probe-cost` markers (DOCS=0 to skip).
set -euo pipefail
T="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}/debug"
OUT="${1:-/tmp/qfc-probe-bench}"
REPS="${REPS:-5}"
HERE="$(cd "$(dirname "$0")" && pwd)"
for b in qfc-probe probe-workload probe-bench; do
  [ -x "$T/$b" ] || { echo "bench: $T/$b missing: run cargo build -p probes first" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench: needs root (eBPF, perf)" >&2; exit 1; }
bash "$HERE/../../scripts/services.sh" >/dev/null 2>&1 || true
rm -rf "$OUT"; mkdir -p "$OUT"
PROBE="$T/qfc-probe"
. "$HERE/lib.sh"

# ---------------------------------------------------------------- 1. fsync
log "1/5 fsync count vs bpftrace"
coproc W { "$T/probe-workload" fdatasync --count 300 --file "$OUT/fsync-file"; }
read -r _ wpid <&"${W[0]}"
bpftrace -e "tracepoint:syscalls:sys_enter_fsync,tracepoint:syscalls:sys_enter_fdatasync /pid == $wpid/ { @calls = count(); }" >"$OUT/bpftrace-fsync.txt" 2>&1 &
BT=$!
wait_for "$OUT/bpftrace-fsync.txt" Attaching 60
probe_start fsync "$wpid" --probes fsync
echo go >&"${W[1]}"; read -r _done <&"${W[0]}"
probe_stop
kill -INT "$BT"; wait "$BT" || true
eval "exec ${W[1]}>&-"; wait "$W_PID" 2>/dev/null || true
ours_fsync=$(python3 -c "import json,sys; d=json.load(open('$OUT/fsync/run/fsync.json')); print(sum(r['count'] for r in d['rows'] if r['tgid']==$wpid))")
bt_fsync=$(sed -n 's/^@calls: //p' "$OUT/bpftrace-fsync.txt")
log "fsync: qfc-probe $ours_fsync, bpftrace $bt_fsync (workload did 300)"

# ---------------------------------------------------------------- 2. oncpu
log "2/5 on-CPU top frames vs perf (20 s at 499 Hz)"
coproc M { "$T/probe-workload" mix --ms 20000; }
read -r _ mpid <&"${M[0]}"
probe_start oncpu "$mpid" --probes oncpu --hz 499
perf record -F 499 -e cpu-clock -g --call-graph fp -p "$mpid" -o "$OUT/perf.data" >"$OUT/perf-record.log" 2>&1 &
PERF=$!
sleep 2
echo go >&"${M[1]}"; read -r _done <&"${M[0]}"
kill -INT "$PERF"; wait "$PERF" || true
probe_stop
eval "exec ${M[1]}>&-"; wait "$M_PID" 2>/dev/null || true
perf script -i "$OUT/perf.data" >"$OUT/perf.script" 2>/dev/null
"$T/probe-bench" collapse-perf "$OUT/perf.script" >"$OUT/perf.folded"
oncpu_ok=yes
"$T/probe-bench" compare "$OUT/oncpu/run/oncpu.folded" "$OUT/perf.folded" --comm probe-workload --top 5 --max-pp 2 >"$OUT/oncpu-compare.md" || oncpu_ok=no

# ---------------------------------------------------------------- 3. dd
log "3/5 dd bs=1 count=1000000: none / writepath tp-btf, raw, syscalls / bpftrace ($REPS runs each)"
bash "$HERE/dd_cost.sh" "$OUT/dd" "$REPS" 1000000 "$PROBE"
ours_w=$(python3 "$HERE/dd_cost_table.py" "$OUT/dd")
cp "$OUT/dd/cost.md" "$OUT/cost.md"

# ---------------------------------------------------------------- 4. node
# The node's saturated throughput and CPU per 1,000 transactions with the
# probes off, in fp and in dwarf mode (node_overhead.sh, its own table and
# markers in docs/BENCHMARKS.md); it needs release builds, and NODE=0 skips it.
node_line="skipped: NODE=0"
if [ "${NODE:-1}" = 1 ]; then
  R="$(dirname "$T")/release"
  if [ -x "$R/qfc-refnode" ] && [ -x "$R/qfc-load" ] && [ -x "$R/qfc-probe" ]; then
    log "4/5 node closed loop: fp and dwarf against off (${NODE_BLOCKS:-32} paired blocks each, node_overhead.sh)"
    if DOCS="${DOCS:-1}" PROBES=oncpu,offcpu W=10 BLOCKS="${NODE_BLOCKS:-32}" CYCLES=8 bash "$HERE/node_overhead.sh" "$OUT/node" >"$OUT/node.log" 2>&1; then
      node_line="see \"Closed loop, paired: fp and dwarf against no probes\" ($OUT/node/results.md)"
    else
      node_line="FAILED (see $OUT/node.log)"
    fi
  else
    node_line="skipped: no release qfc-refnode, qfc-load and qfc-probe under $R (cargo build --release -p refnode -p loadgen -p probes --bins)"
  fi
fi

# ---------------------------------------------------------------- 5. guest
guest_line="skipped: GUEST=0"
if [ "${GUEST:-1}" = 1 ]; then
  X="$(dirname "$T")/debug/xtask"
  if [ -x "$X" ] && command -v qemu-system-aarch64 >/dev/null; then
    log "5/5 the aarch64 guest: dd_cost.sh inside it, beside bpftrace ($REPS runs each, xtask guest-probe-cost)"
    gdocs=(); [ "${DOCS:-1}" = 1 ] && gdocs=(--docs)
    if "$X" guest-probe-cost --reps "$REPS" --out "$OUT/guest" "${gdocs[@]}" >"$OUT/guest.log" 2>&1; then
      guest_line="see \"The aarch64 guest: ns per event beside bpftrace's\" ($OUT/guest/guest/cost.md)"
    else
      guest_line="FAILED (see $OUT/guest.log)"
    fi
  else
    guest_line="skipped: no $X (cargo build -p xtask) or no qemu-system-aarch64 (scripts/setup.sh)"
  fi
fi

{
  echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs)"
  echo
  echo "| check | qfc-probe | reference | verdict |"
  echo "|---|---:|---:|---|"
  echo "| fsync+fdatasync calls of a 300-fdatasync workload | $ours_fsync | bpftrace: $bt_fsync | $([ "$ours_fsync" = "$bt_fsync" ] && [ "$ours_fsync" = 300 ] && echo equal || echo DIFFERENT) |"
  echo "| on-CPU top-frame shares, max difference | see table | perf + inferno collapse | $([ $oncpu_ok = yes ] && echo 'within 2 pp' || echo 'MORE than 2 pp') |"
  echo "| write() calls seen by writepath (syscalls attach), every dd run | $ours_w | dd did 1000000 | $([ "$ours_w" = 1000000 ] && echo exact || echo check) |"
  echo "| node throughput and CPU per 1,000 tx, probes off / fp / dwarf (closed loop) | $node_line | | |"
  echo "| the aarch64 guest's BPF ns per write, each attach point and bpftrace | $guest_line | | |"
  echo
  echo "dd bs=1 count=1000000 ($REPS interleaved runs per mode, medians; BPF statistics on in every traced run):"
  echo
  cat "$OUT/cost.md"
  echo
  echo "On-CPU top frames (process \`probe-workload mix\`, 20 s, 499 Hz):"
  echo
  cat "$OUT/oncpu-compare.md"
} >"$OUT/results.md"
cat "$OUT/results.md"

if [ "${DOCS:-1}" = 1 ]; then
  DOC="$HERE/../../docs/BENCHMARKS.md"
  { echo "Written by \`REPS=$REPS bash probes/bench/bench.sh\` (debug \`qfc-probe\`; the eBPF programs are always release builds)."
    echo; cat "$OUT/results.md"; } >"$OUT/doc-block.md"
  bash "$HERE/../../scripts/write-table.sh" bench.sh:probe-cost "$OUT/doc-block.md" "$DOC"
  log "docs/BENCHMARKS.md updated"
fi
