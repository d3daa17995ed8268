# Helpers shared by the probe benches (sourced, not run): bench.sh on this
# machine, dd_cost.sh here and inside a guest. Needs bash, coreutils, grep.
# The caller sets OUT (output directory) and PROBE (the qfc-probe binary);
# PROBE_WRAP, an array, runs it under a prefix (e.g. `taskset -c 1`).
log() { printf '[bench] %s\n' "$*" >&2; }
wait_for() { # file pattern timeout_s
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "bench: timed out waiting for '$2' in $1" >&2; return 1
}
now_ns() { date +%s%N; }

# qfc-probe driven through a fifo: probe_start NAME PID ARGS... starts it
# on PID writing OUT/NAME, and opens its phase `run`; probe_stop stops it.
# PROBE_PID is its process while it runs, empty otherwise.
PROBE_PID=""
probe_start() {
  local name=$1 pid=$2; shift 2
  rm -f "$OUT/$name.ctl"; mkfifo "$OUT/$name.ctl"
  ${PROBE_WRAP[@]+"${PROBE_WRAP[@]}"} "$PROBE" --pid "$pid" --out "$OUT/$name" --control stdin "$@" <"$OUT/$name.ctl" >"$OUT/$name.log" 2>"$OUT/$name.err" &
  PROBE_PID=$! PROBE_CTL="$OUT/$name.ctl"
  exec 7>"$PROBE_CTL"
  wait_for "$OUT/$name.log" '^ready' "${PROBE_READY_S:-60}"
  echo "phase run" >&7
  wait_for "$OUT/$name.log" '^phase run' 30
}
probe_stop() {
  echo stop >&7; exec 7>&-
  wait "$PROBE_PID" || { echo "bench: qfc-probe failed (see ${PROBE_CTL%.ctl}.err)" >&2; return 1; }
  PROBE_PID=""
  rm -f "$PROBE_CTL"
}
