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
# 3. syscall-heavy overhead: `dd if=/dev/zero of=/dev/null bs=1
#    count=1000000` wall time with the writepath probe (targeting dd) and
#    with a bpftrace write enter/exit histogram script, each divided by the
#    time without tracing (median of REPS runs each).
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
log() { printf '[bench] %s\n' "$*" >&2; }
wait_for() { # file pattern timeout_s
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: timed out waiting for '$2' in $1" >&2; return 1
}
now_ns() { date +%s%N; }

# qfc-probe driven through a fifo: probe_start NAME PID ARGS...; probe_stop
probe_start() {
  local name=$1 pid=$2; shift 2
  rm -f "$OUT/$name.ctl"; mkfifo "$OUT/$name.ctl"
  "$T/qfc-probe" --pid "$pid" --out "$OUT/$name" --control stdin "$@" <"$OUT/$name.ctl" >"$OUT/$name.log" 2>"$OUT/$name.err" &
  PROBE_PID=$!
  exec 7>"$OUT/$name.ctl"
  wait_for "$OUT/$name.log" '^ready' 60
  echo "phase run" >&7
  wait_for "$OUT/$name.log" '^phase run' 30
}
probe_stop() {
  echo stop >&7; exec 7>&-
  wait "$PROBE_PID"
}

# ---------------------------------------------------------------- 1. fsync
log "1/3 fsync count vs bpftrace"
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
log "2/3 on-CPU top frames vs perf (20 s at 499 Hz)"
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
log "3/3 dd bs=1 count=1000000: none / writepath / bpftrace ($REPS runs each)"
DD='exec dd if=/dev/zero of=/dev/null bs=1 count=1000000 status=none'
BTSCRIPT='tracepoint:syscalls:sys_enter_write /pid == $1/ { @s[tid] = nsecs; }
tracepoint:syscalls:sys_exit_write /@s[tid]/ { @us = hist((nsecs - @s[tid]) / 1000); delete(@s[tid]); }'
run_dd() { # mode -> prints wall ns of dd
  local mode=$1 t0 t1
  coproc D { bash -c "read -r _; $DD"; }
  local dpid=$D_PID
  case $mode in
    writepath) probe_start "dd-$RANDOM" "$dpid" --probes writepath --writepath-attach syscalls ;;
    writepath_raw) probe_start "ddraw-$RANDOM" "$dpid" --probes writepath --writepath-attach raw ;;
    bpftrace)
      bpftrace -e "$BTSCRIPT" "$dpid" >"$OUT/bpftrace-dd.txt" 2>&1 & BTP=$!
      wait_for "$OUT/bpftrace-dd.txt" Attaching 60; sleep 0.5 ;;
  esac
  t0=$(now_ns); echo go >&"${D[1]}"; wait "$dpid" 2>/dev/null || true; t1=$(now_ns)
  case $mode in
    writepath|writepath_raw) probe_stop ;;
    bpftrace) kill -INT "$BTP"; wait "$BTP" || true ;;
  esac
  echo $(( t1 - t0 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$OUT/dd-times.tsv"
for _ in $(seq 1 "$REPS"); do
  for mode in none writepath writepath_raw bpftrace; do
    printf '%s\t%s\n' "$mode" "$(run_dd $mode)" >>"$OUT/dd-times.tsv"
  done
done
m_none=$(awk '$1=="none"{print $2}' "$OUT/dd-times.tsv" | median)
m_wp=$(awk '$1=="writepath"{print $2}' "$OUT/dd-times.tsv" | median)
m_bt=$(awk '$1=="bpftrace"{print $2}' "$OUT/dd-times.tsv" | median)
m_raw=$(awk '$1=="writepath_raw"{print $2}' "$OUT/dd-times.tsv" | median)
wp_writes=$(python3 -c "
import json,glob
fs=sorted(glob.glob('$OUT/dd-*/run/writepath.json'))
d=json.load(open(fs[-1])); print(sum(r['count'] for r in d['rows'] if r['syscall']=='write'))")

{
  echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs)"
  echo
  echo "| check | qfc-probe | reference | verdict |"
  echo "|---|---:|---:|---|"
  echo "| fsync+fdatasync calls of a 300-fdatasync workload | $ours_fsync | bpftrace: $bt_fsync | $([ "$ours_fsync" = "$bt_fsync" ] && [ "$ours_fsync" = 300 ] && echo equal || echo DIFFERENT) |"
  echo "| on-CPU top-frame shares, max difference | see table | perf + inferno collapse | $([ $oncpu_ok = yes ] && echo 'within 2 pp' || echo 'MORE than 2 pp') |"
  awk -v n="$m_none" -v w="$m_wp" -v b="$m_bt" -v r="$m_raw" 'BEGIN {
    printf "| dd bs=1 count=1000000 wall time (median of runs) | %.3f s with writepath | %.3f s without; %.3f s with bpftrace | |\n", w/1e9, n/1e9, b/1e9;
    printf "| dd slowdown (traced / untraced) | **%.2fx** (target <= 1.5x) | bpftrace write enter/exit hist: **%.2fx** | %s |\n", w/n, b/n, (w/n <= 1.5 ? "meets target" : "ABOVE target");
    printf "| dd slowdown, writepath on raw_syscalls sys_enter/sys_exit instead | %.2fx | | alternative attach point |\n", r/n }'
  echo "| write() calls seen by writepath in the last dd run | $wp_writes | dd did 1000000 | $([ "$wp_writes" = 1000000 ] && echo exact || echo check) |"
  echo
  echo "On-CPU top frames (process \`probe-workload mix\`, 20 s, 499 Hz):"
  echo
  cat "$OUT/oncpu-compare.md"
} >"$OUT/results.md"
cat "$OUT/results.md"
