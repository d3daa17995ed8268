#!/usr/bin/env bash
# Side-by-side benchmark of the load generator against oha on one endpoint:
# a reference node on loopback, the same cores, one run. Results go to
# $OUT (default /tmp/qfc-loadgen-bench) and a table on stdout.
#   1. max req/s: closed loop, C connections, eth_blockNumber, D seconds
#   2. latency at a fixed rate R req/s: qfc-load open loop vs oha -q R --latency-correction
# Needs: target/debug/qfc-refnode and qfc-load (cargo build -p refnode -p loadgen),
# oha (scripts/setup.sh installs it into /var/cache/qfc-lab/tools/bin), jq.
set -euo pipefail
T=${CARGO_TARGET_DIR:-target}
PROFILE=${PROFILE:-debug}
NODE=${QFC_REFNODE_BIN:-$T/$PROFILE/qfc-refnode}
LOAD=${QFC_LOAD_BIN:-$T/$PROFILE/qfc-load}
OHA=${OHA:-/var/cache/qfc-lab/tools/bin/oha}
OUT=${OUT:-/tmp/qfc-loadgen-bench}
C=${C:-16} D=${D:-10} R=${R:-2000}
rm -rf "$OUT"; mkdir -p "$OUT"
"$NODE" --dev --datadir "$OUT/data" --rpc-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 \
  --p2p-port 0 --lab-p2p-host 127.0.0.1 --lab-ports-file "$OUT/ports.json" \
  --lab-block-interval-ms 1000 --log-level warn >"$OUT/node.log" 2>&1 &
NODE_PID=$!
trap 'kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/ports.json" ] && break; sleep 0.1; done
RPC=$(jq -r .rpc "$OUT/ports.json")
BODY='{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
oha_run() { "$OHA" --no-tui --output-format json -m POST -H 'content-type: application/json' -d "$BODY" "$@" "http://$RPC/"; }

echo "== max req/s, closed loop, $C connections, ${D}s, eth_blockNumber on $RPC"
"$LOAD" --rpc "$RPC" --closed --concurrency "$C" --mix eth_blockNumber=1 --duration-s "$D" --out "$OUT/max" >"$OUT/max.json"
oha_run -c "$C" -z "${D}s" >"$OUT/oha-max.json"
ours=$(jq '.workloads.rpc.throughput_per_s' "$OUT/max.json")
theirs=$(jq '.summary.requestsPerSec' "$OUT/oha-max.json")
echo "qfc-load: $ours req/s   oha: $theirs req/s   ratio: $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2f", a / b }')"

echo "== latency at $R req/s, ${D}s, max $((C * 4)) in flight (ms)"
"$LOAD" --rpc "$RPC" --rpc-rate "$R" --concurrency $((C * 4)) --mix eth_blockNumber=1 --duration-s "$D" --out "$OUT/fixed" >"$OUT/fixed.json"
oha_run -c $((C * 4)) -q "$R" -z "${D}s" --latency-correction >"$OUT/oha-fixed.json"
printf '%-10s %8s %8s %8s %8s %8s %8s\n' tool ok p50 p90 p99 p99.9 max
jq -r '.workloads.rpc | [ "qfc-load", .ok, (.latency | .p50_us, .p90_us, .p99_us, .p999_us, .max_us | . / 1000) ] | @tsv' "$OUT/fixed.json" |
  awk -F'\t' '{ printf "%-10s %8d %8.3f %8.3f %8.3f %8.3f %8.3f\n", $1, $2, $3, $4, $5, $6, $7 }'
jq -r '[ "oha", (.statusCodeDistribution."200" // 0), (.latencyPercentiles | .p50, .p90, .p99, ."p99.9" | . * 1000), (.summary.slowest * 1000) ] | @tsv' "$OUT/oha-fixed.json" |
  awk -F'\t' '{ printf "%-10s %8d %8.3f %8.3f %8.3f %8.3f %8.3f\n", $1, $2, $3, $4, $5, $6, $7 }'
