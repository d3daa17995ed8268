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
#    recorded (bpftrace kfunc probe).
# 4. the reference node's saturated throughput and CPU per 1,000
#    transactions, probes off / fp / dwarf, REPS interleaved runs
#    (node_overhead.sh; needs release builds; NODE=0 skips it).
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
log "1/4 fsync count vs bpftrace"
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
log "2/4 on-CPU top frames vs perf (20 s at 499 Hz)"
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
log "3/4 dd bs=1 count=1000000: none / writepath tp-btf, raw, syscalls / bpftrace ($REPS runs each)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DD='exec dd if=/dev/zero of=/dev/null bs=1 count=1000000 status=none'
BTSCRIPT='tracepoint:syscalls:sys_enter_write /pid == $1/ { @s[tid] = nsecs; }
tracepoint:syscalls:sys_exit_write /@s[tid]/ { @us = hist((nsecs - @s[tid]) / 1000); delete(@s[tid]); }'
STATS0=$(cat /proc/sys/kernel/bpf_stats_enabled)
trap 'echo "$STATS0" >/proc/sys/kernel/bpf_stats_enabled' EXIT
# Per-program cost of bpftrace's programs over one window: ids from before.json
# still present after, name sys_enter_write / sys_exit_write.
bt_cost() { # before.json after.json -> "enter_runs enter_ns exit_runs exit_ns"
  python3 - "$1" "$2" <<'PY'
import json, sys
b = {p["id"]: p for p in json.load(open(sys.argv[1]))}
out = {}
for p in json.load(open(sys.argv[2])):
    if p["id"] in b and p.get("name") in ("sys_enter_write", "sys_exit_write"):
        q = b[p["id"]]
        out[p["name"]] = (p.get("run_cnt", 0) - q.get("run_cnt", 0), p.get("run_time_ns", 0) - q.get("run_time_ns", 0))
e, x = out.get("sys_enter_write", (0, 0)), out.get("sys_exit_write", (0, 0))
print(e[0], e[1], x[0], x[1])
PY
}
run_dd() { # mode rep -> prints "mode wall_ns enter_runs enter_ns exit_runs exit_ns events"
  local mode=$1 rep=$2 t0 t1 dpid
  coproc D { bash -c "echo \$\$; read -r _; $DD"; }
  read -r dpid <&"${D[0]}"
  case $mode in
    tp-btf|raw|syscalls) probe_start "dd-$mode-$rep" "$dpid" --probes writepath --writepath-attach "$mode" ;;
    bpftrace)
      echo 1 >/proc/sys/kernel/bpf_stats_enabled
      bpftrace -e "$BTSCRIPT" "$dpid" >"$OUT/bt-dd-$rep.txt" 2>&1 & BTP=$!
      wait_for "$OUT/bt-dd-$rep.txt" Attaching 60; sleep 0.5
      bpftool prog show -j >"$OUT/bt-dd-$rep.before.json" ;;
  esac
  t0=$(now_ns); echo go >&"${D[1]}"; wait "$D_PID" 2>/dev/null || true; t1=$(now_ns)
  case $mode in
    tp-btf|raw|syscalls)
      probe_stop
      python3 - "$OUT/dd-$mode-$rep" "$mode" $(( t1 - t0 )) <<'PY'
import json, sys
d, mode, wall = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(d + "/session.json"))
assert s["attach"]["writepath"] == mode, s["attach"]
c = s["windows"][0]["cost"]["programs"]
en = [v for k, v in c.items() if k.startswith("writepath_enter")][0]
ex = [v for k, v in c.items() if k.startswith("writepath_exit")][0]
w = json.load(open(d + "/run/writepath.json"))
ev = sum(r["count"] for r in w["rows"] if r["syscall"] == "write")
print(mode, wall, en["runs"], en["run_time_ns"], ex["runs"], ex["run_time_ns"], ev)
PY
      ;;
    bpftrace)
      bpftool prog show -j >"$OUT/bt-dd-$rep.after.json"
      kill -INT "$BTP"; wait "$BTP" || true
      echo "$STATS0" >/proc/sys/kernel/bpf_stats_enabled
      ev=$(python3 -c "
import re, sys
print(sum(int(m.group(1)) for m in re.finditer(r'^\[[^\n]*?[\])]\s+(\d+)\s+\|', open(sys.argv[1]).read(), re.M)))" "$OUT/bt-dd-$rep.txt")
      echo "bpftrace $(( t1 - t0 )) $(bt_cost "$OUT/bt-dd-$rep.before.json" "$OUT/bt-dd-$rep.after.json") $ev" ;;
    none) echo "none $(( t1 - t0 )) 0 0 0 0 0" ;;
  esac
}
: >"$OUT/dd.tsv"
for rep in $(seq 1 "$REPS"); do
  for mode in none tp-btf raw syscalls bpftrace; do
    run_dd "$mode" "$rep" >>"$OUT/dd.tsv"
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
# fentry/fexit: what the kernel says (bpftrace's kfunc probe needs the same trampolines).
fentry=$(timeout 30 bpftrace -e 'kfunc:vmlinux:__x64_sys_write { @x = count(); exit(); }' 2>&1 </dev/null | grep -o 'ERROR: kfunc.*' | head -1 | tr '"' "'" | sed 's/|/\\|/g' || true)
[ -n "$fentry" ] || fentry="(no output)"

python3 - "$OUT/dd.tsv" >"$OUT/cost.md" <<PY
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r[0], []).append([float(x) for x in r[1:]])
med = lambda xs: statistics.median(xs)
none = med([r[0] for r in by["none"]])
print("Load average (1, 5, 15 min) at start: $LOAD_START; at end: $LOAD_END (the absolute times depend on the machine and its load: compare only within this table).")
print()
print("| attach point | dd wall (median) | vs untraced | enter ns/run | exit ns/run | runs per write (enter) | BPF ns per write (enter + exit) | writes seen |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
print(f"| none | {none/1e9:.3f} s | 1.00x | | | | | |")
names = {"tp-btf": "qfc-probe writepath, tp_btf sys_enter/sys_exit",
         "raw": "qfc-probe writepath, raw tracepoints sys_enter/sys_exit",
         "syscalls": "qfc-probe writepath, 8 syscalls:sys_{enter,exit}_* tracepoints (auto's first choice)",
         "bpftrace": "bpftrace 0.17, syscalls:sys_{enter,exit}_write, hist of latency"}
for m in ["tp-btf", "raw", "syscalls", "bpftrace"]:
    rs = by.get(m, [])
    if not rs:
        continue
    wall = med([r[0] for r in rs])
    en = med([r[2] / r[1] for r in rs if r[1]])
    ex = med([r[4] / r[3] for r in rs if r[3]])
    per_write = med([(r[2] + r[4]) / r[5] for r in rs if r[5]])
    runs_w = med([r[1] / r[5] for r in rs if r[5]])
    ev = min(int(r[5]) for r in rs)
    print(f"| {names[m]} | {wall/1e9:.3f} s | {wall/none:.2f}x | {en:.0f} | {ex:.0f} | {runs_w:.2f} | **{per_write:.0f}** | {ev} (min over runs) |")
print("| fentry/fexit on \`__x64_sys_write\` | refused | | | | | | bpftrace: $fentry |")
PY
ours_w=$(python3 -c "
import statistics
rs=[l.split() for l in open('$OUT/dd.tsv') if l.split()[0]=='syscalls']
print(min(int(r[6]) for r in rs))")

# ---------------------------------------------------------------- 4. node
# The node's saturated throughput and CPU per 1,000 transactions with the
# probes off, in fp and in dwarf mode (node_overhead.sh, its own table and
# markers in docs/BENCHMARKS.md); it needs release builds, and NODE=0 skips it.
node_line="skipped: NODE=0"
if [ "${NODE:-1}" = 1 ]; then
  R="$(dirname "$T")/release"
  if [ -x "$R/qfc-refnode" ] && [ -x "$R/qfc-load" ] && [ -x "$R/qfc-probe" ]; then
    log "4/4 node closed loop: off / fp / dwarf ($REPS runs each, node_overhead.sh)"
    if DOCS="${DOCS:-1}" RUNS="$REPS" bash "$HERE/node_overhead.sh" "$OUT/node" >"$OUT/node.log" 2>&1; then
      node_line="see \"Closed loop: off, fp and dwarf in one run\" ($OUT/node/results.md)"
    else
      node_line="FAILED (see $OUT/node.log)"
    fi
  else
    node_line="skipped: no release qfc-refnode, qfc-load and qfc-probe under $R (cargo build --release -p refnode -p loadgen -p probes --bins)"
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
