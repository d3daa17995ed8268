#!/usr/bin/env bash
# The syscall-heavy probe-cost runs (issue 17), on this machine or inside a
# guest (it needs only bash, coreutils, bpftool, bpftrace and qfc-probe):
#
#   bash dd_cost.sh OUT REPS COUNT QFC_PROBE
#
# `dd if=/dev/zero of=/dev/null bs=1 count=COUNT`, REPS interleaved rounds of:
# untraced; qfc-probe's writepath probe at each attach point (tp-btf, raw,
# syscalls), targeting dd; bpftrace's write enter/exit latency histogram.
# Raw results only, summarized on the host by dd_cost_table.py:
# - OUT/dd.tsv: `mode rep wall_ns` per run;
# - OUT/dd-MODE-REP/: qfc-probe's output (session.json has the programs' run
#   counts and run times: every session enables BPF statistics);
# - OUT/bt-dd-REP.{txt,before.json,after.json}: bpftrace's output and
#   `bpftool prog show -j` around the window (kernel.bpf_stats_enabled=1);
# - OUT/fentry.txt: what bpftrace says when asked for fentry (kfunc) on the
#   write syscall;
# - OUT/machine.txt: kernel, architecture, load averages at start and end.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 OUT REPS COUNT QFC_PROBE" >&2; exit 2; }
OUT=$1 REPS=$2 COUNT=$3 PROBE=$4
. "$(dirname "$0")/lib.sh"
mkdir -p "$OUT"
DD="exec dd if=/dev/zero of=/dev/null bs=1 count=$COUNT status=none"
BTSCRIPT='tracepoint:syscalls:sys_enter_write /pid == $1/ { @s[tid] = nsecs; }
tracepoint:syscalls:sys_exit_write /@s[tid]/ { @us = hist((nsecs - @s[tid]) / 1000); delete(@s[tid]); }'
STATS0=$(cat /proc/sys/kernel/bpf_stats_enabled)
trap 'echo "$STATS0" >/proc/sys/kernel/bpf_stats_enabled' EXIT
{ echo "kernel $(uname -r)"; echo "arch $(uname -m)"; echo "cpus $(nproc)"
  echo "count $COUNT"; echo "reps $REPS"
  echo "load_start $(cut -d' ' -f1-3 /proc/loadavg)"; } >"$OUT/machine.txt"

run_dd() { # mode rep -> appends "mode rep wall_ns" to dd.tsv
  local mode=$1 rep=$2 t0 t1 dpid
  coproc D { bash -c "echo \$\$; read -r _; $DD"; }
  read -r dpid <&"${D[0]}"
  case $mode in
    tp-btf|raw|syscalls) probe_start "dd-$mode-$rep" "$dpid" --probes writepath --writepath-attach "$mode" ;;
    bpftrace)
      echo 1 >/proc/sys/kernel/bpf_stats_enabled
      bpftrace -e "$BTSCRIPT" "$dpid" >"$OUT/bt-dd-$rep.txt" 2>&1 & BTP=$!
      wait_for "$OUT/bt-dd-$rep.txt" Attaching "${PROBE_READY_S:-60}"; sleep 0.5
      bpftool prog show -j >"$OUT/bt-dd-$rep.before.json" ;;
  esac
  t0=$(now_ns); echo go >&"${D[1]}"; wait "$D_PID" 2>/dev/null || true; t1=$(now_ns)
  case $mode in
    tp-btf|raw|syscalls) probe_stop ;;
    bpftrace)
      bpftool prog show -j >"$OUT/bt-dd-$rep.after.json"
      kill -INT "$BTP"; wait "$BTP" || true
      echo "$STATS0" >/proc/sys/kernel/bpf_stats_enabled ;;
  esac
  echo "$mode $rep $(( t1 - t0 ))" >>"$OUT/dd.tsv"
}
: >"$OUT/dd.tsv"
for rep in $(seq 1 "$REPS"); do
  for mode in none tp-btf raw syscalls bpftrace; do
    log "dd count=$COUNT round $rep/$REPS: $mode"
    run_dd "$mode" "$rep"
  done
done
echo "load_end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
# fentry/fexit: what the kernel says (bpftrace's kfunc probe needs the same
# trampolines qfc-probe would).
case $(uname -m) in aarch64) sys=__arm64_sys_write ;; *) sys=__x64_sys_write ;; esac
{ echo "symbol $sys"
  timeout "${FENTRY_TIMEOUT_S:-120}" bpftrace -e "kfunc:vmlinux:$sys { @x = count(); exit(); }" 2>&1 </dev/null | head -5 || true
} >"$OUT/fentry.txt"
