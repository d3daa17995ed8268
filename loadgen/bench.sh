#!/usr/bin/env bash
# Interleaved benchmark of the load generator against oha on one endpoint
# (issue 18): one reference node on loopback, both tools on the same cores,
# runs interleaved in pairs whose order alternates (qfc-load first, then oha
# first, ...) after a discarded warm-up of each, so that neither tool gains
# from running second. Reports medians and spreads (min-max) over the pairs.
#   1. max req/s: closed loop, C connections, eth_blockNumber, D seconds
#   2. latency at each fixed rate in RATES: qfc-load open loop vs
#      oha -q R --latency-correction, both with 4C connections at most
# Env: PAIRS (default 5), C (16), D (10), RATES ("2000 10000"), PROFILE
# (release: oha is a release build too), OUT (/tmp/qfc-loadgen-bench), DOCS (a BENCHMARKS.md whose
# section between the loadgen-bench markers is replaced by the table; unset:
# table on stdout only). On a guest, lower RATES to what it sustains: each
# qfc-load summary says whether its rate was sustained (column `kept`).
# RPC=HOST:PORT drives a node that is already running instead of starting
# one (`cargo xtask guest-loadgen-bench`: the node in the aarch64 guest);
# NODE_DESC then describes it in the table and MARKERS names the markers.
# Needs: target/$PROFILE/qfc-refnode and qfc-load (cargo build --release -p
# refnode -p loadgen), oha (QFC_LAB_BENCH_TOOLS=1 bash scripts/setup.sh), jq, awk.
set -euo pipefail
T=${CARGO_TARGET_DIR:-target}
PROFILE=${PROFILE:-release}
NODE=${QFC_REFNODE_BIN:-$T/$PROFILE/qfc-refnode}
LOAD=${QFC_LOAD_BIN:-$T/$PROFILE/qfc-load}
OHA=${OHA:-/var/cache/qfc-lab/tools/bin/oha}
OUT=${OUT:-/tmp/qfc-loadgen-bench}
PAIRS=${PAIRS:-5} C=${C:-16} D=${D:-10} RATES=${RATES:-2000 10000}
DOCS=${DOCS:-}
[ "$PAIRS" -ge 1 ] || { echo "PAIRS must be at least 1" >&2; exit 2; }
MARKERS=${MARKERS:-loadgen-bench}
EXTERNAL=${RPC:-}
for bin in $([ -z "$EXTERNAL" ] && echo "$NODE") "$LOAD" "$OHA"; do
  [ -x "$bin" ] || { echo "missing $bin; see the header of $0 for how to build it" >&2; exit 2; }
done
rm -rf "$OUT"; mkdir -p "$OUT"
if [ -n "$EXTERNAL" ]; then
  NODE_DESC=${NODE_DESC:-"the node at $RPC"}
else
  "$NODE" --dev --datadir "$OUT/data" --rpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
    --p2p-port 0 --lab-p2p-host 127.0.0.1 --lab-ports-file "$OUT/ports.json" \
    --lab-block-interval-ms 1000 --log-level warn >"$OUT/node.log" 2>&1 &
  NODE_PID=$!
  trap 'kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [ -s "$OUT/ports.json" ] && break; sleep 0.1; done
  RPC=$(jq -r .rpc "$OUT/ports.json")
  NODE_DESC="one \`qfc-refnode --dev\` on $RPC"
fi
BODY='{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
RES="$OUT/results.tsv"
load1() { cut -d' ' -f1 /proc/loadavg; }

# One run of one tool; appends: exp tool pair req/s p50 p90 p99 p99.9 max(ms) load1 kept floor_p50 floor_p99(ms)
run() { # exp tool pair rate(0 = closed) seconds
  local exp=$1 tool=$2 pair=$3 rate=$4 secs=$5 f="$OUT/$1-$2-$3.json" la
  la=$(load1)
  if [ "$tool" = qfc-load ]; then
    if [ "$rate" = 0 ]; then
      "$LOAD" --rpc "$RPC" --closed --concurrency "$C" --mix eth_blockNumber=1 --duration-s "$secs" --out "$OUT/run" >"$f"
    else
      "$LOAD" --rpc "$RPC" --rpc-rate "$rate" --concurrency $((C * 4)) --mix eth_blockNumber=1 --duration-s "$secs" --out "$OUT/run" >"$f"
    fi
    jq -r --arg e "$exp" --arg p "$pair" --arg la "$la" '.workloads.rpc as $w | [ $e, "qfc-load", $p, $w.throughput_per_s,
      ($w.latency | .p50_us, .p90_us, .p99_us, .p999_us, .max_us | . / 1000), $la,
      (if $w.pacing == null then "-" elif $w.pacing.sustained then "yes" else "NO" end),
      (.floor.latency.p50_us // 0) / 1000, (.floor.latency.p99_us // 0) / 1000 ] | @tsv' "$f" >>"$RES"
  else
    if [ "$rate" = 0 ]; then
      "$OHA" --no-tui --output-format json -m POST -H 'content-type: application/json' -d "$BODY" -c "$C" -z "${secs}s" "http://$RPC/" >"$f"
    else
      "$OHA" --no-tui --output-format json -m POST -H 'content-type: application/json' -d "$BODY" -c $((C * 4)) -q "$rate" \
        -z "${secs}s" --latency-correction "http://$RPC/" >"$f"
    fi
    jq -r --arg e "$exp" --arg p "$pair" --arg la "$la" '[ $e, "oha", $p, .summary.requestsPerSec,
      (.latencyPercentiles | .p50, .p90, .p99, ."p99.9" | . * 1000), .summary.slowest * 1000, $la, "-", 0, 0 ] | @tsv' "$f" >>"$RES"
  fi
}

echo "== warm-up (discarded): 3 s of each tool on $RPC"
run warmup qfc-load 0 0 3; run warmup oha 0 0 3
for exp in max $RATES; do
  rate=$exp; [ "$exp" = max ] && rate=0
  for pair in $(seq "$PAIRS"); do
    if [ $((pair % 2)) = 1 ]; then order="qfc-load oha"; else order="oha qfc-load"; fi
    for tool in $order; do
      echo "== $exp pair $pair: $tool (load average $(load1))"
      run "$exp" "$tool" "$pair" "$rate" "$D"
    done
  done
done

# Median and min-max of column $3 for experiment $1 and tool $2.
stat() {
  awk -F'\t' -v e="$1" -v t="$2" -v c="$3" '$1 == e && $2 == t { print $c }' "$RES" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      f = (v[NR] >= 1000) ? "%.0f" : "%.3f"
      printf f " (" f "-" f ")\n", m, v[1], v[NR] }'
}
median() { stat "$@" | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), $PAIRS interleaved pairs (order alternating, after a"
  echo "discarded warm-up), C=$C, D=${D} s, PROFILE=$PROFILE, $NODE_DESC;"
  echo "load average (1 min) at the start of each run: $(awk -F'\t' '$1 != "warmup" { print $10 }' "$RES" | sort -g | sed -n '1p;$p' | paste -sd- -)."
  echo "Medians over the pairs, (min-max) beside them; latencies in ms."
  echo
  echo "| figure | qfc-load | oha | qfc-load / oha (medians) |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| max req/s, closed loop, $C connections | $(stat max qfc-load 4) | $(stat max oha 4) | $(ratio "$(median max qfc-load 4)" "$(median max oha 4)") |"
  for r in $RATES; do
    for col in 5:p50 7:p99 8:p99.9; do
      n=${col%%:*} name=${col#*:}
      echo "| $r req/s: $name | $(stat "$r" qfc-load "$n") | $(stat "$r" oha "$n") | $(ratio "$(median "$r" qfc-load "$n")" "$(median "$r" oha "$n")") |"
    done
    echo "| $r req/s: achieved req/s | $(stat "$r" qfc-load 4) | $(stat "$r" oha 4) | |"
    echo "| $r req/s: qfc-load's instrument floor p50 / p99 | $(stat "$r" qfc-load 12) / $(stat "$r" qfc-load 13) | | |"
    echo "| $r req/s: qfc-load kept its schedule | $(awk -F'\t' -v e="$r" '$1 == e && $2 == "qfc-load" { print $11 }' "$RES" | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }') | | |"
  done
} >"$OUT/table.md"
cat "$OUT/table.md"
echo "(every run: $RES)"

if [ -n "$DOCS" ]; then
  bash "$(dirname "$0")/../scripts/write-table.sh" "$MARKERS" "$OUT/table.md" "$DOCS"
  echo "table written into $DOCS"
fi
