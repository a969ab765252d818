#!/usr/bin/env bash
# Load from outside: wrk against the standalone binary (embedded engine)
# and, in the same run, against the project's own server loop answering a
# fixed JSON body (examples/fixed_json.rs). Prints req/s, p50 and p99 for
# each scenario and the ratio to the fixed handler.
#
#   bash integration-tests/load/wrk.sh            # 64 connections, 10 s each
#   CONNECTIONS=32 DURATION=20 bash integration-tests/load/wrk.sh
#   RUST_LOG=warn bash integration-tests/load/wrk.sh   # without request logs
#
# Needs wrk (Debian package `wrk`). Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
THREADS="${THREADS:-2}"
API_PORT="${API_PORT:-18080}"
FIXED_PORT="${FIXED_PORT:-18090}"
export API_KEY="load-test-key-0123456789abcdefghijklmnopqrstuvwxyz"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet --example standalone --example fixed_json

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.toml" <<TOML
app_id = "data-load"
[[data_sources]]
name = "mongodb-atlas"
uri = "memory"
[[api_keys]]
name = "load"
key = "$API_KEY"
TOML

"$root/target/release/examples/fixed_json" "127.0.0.1:$FIXED_PORT" > "$work/fixed.log" 2>&1 &
pids+=($!)
"$root/target/release/examples/standalone" --config "$work/config.toml" \
  --listen "127.0.0.1:$API_PORT" > "$work/api.log" 2>&1 &
pids+=($!)

base="http://127.0.0.1:$API_PORT/app/data-load/endpoint/data/v1/action"
for _ in $(seq 1 100); do
  if curl -sf -o /dev/null "http://127.0.0.1:$FIXED_PORT/" &&
     curl -s -o /dev/null "http://127.0.0.1:$API_PORT/"; then break; fi
  sleep 0.1
done

# 1,000 documents to read and update.
docs=$(python3 -c 'import json; print(json.dumps([{"_id": i, "text": "task %d" % i, "done": False, "n": 0} for i in range(1000)]))')
curl -sf -o /dev/null "$base/insertMany" -H "apiKey: $API_KEY" -H 'Content-Type: application/json' \
  -d "{\"dataSource\":\"mongodb-atlas\",\"database\":\"load\",\"collection\":\"tasks\",\"documents\":$docs}"

ns='"dataSource":"mongodb-atlas","database":"load","collection":"tasks"'
# name|url|body (empty body: GET)
scenarios=(
  "fixed JSON handler (baseline)|http://127.0.0.1:$FIXED_PORT/|"
  "findOne by _id|$base/findOne|{$ns,\"filter\":{\"_id\":500}}"
  "insertOne|$base/insertOne|{$ns,\"document\":{\"text\":\"new task\",\"done\":false}}"
  "updateOne \$inc by _id|$base/updateOne|{$ns,\"filter\":{\"_id\":7},\"update\":{\"\$inc\":{\"n\":1}}}"
  "find {done: false} limit 10|$base/find|{$ns,\"filter\":{\"done\":false},\"limit\":10}"
)

# Latency as milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

printf '\nwrk: %s connections, %s threads, %s s per scenario (RUST_LOG=%s)\n\n' \
  "$CONNECTIONS" "$THREADS" "$DURATION" "${RUST_LOG:-info}"
printf '%-32s %12s %10s %10s %8s %10s\n' scenario req/s p50_ms p99_ms ratio p99_ratio
baseline_rps=""; baseline_p99=""
for scenario in "${scenarios[@]}"; do
  IFS='|' read -r name url body <<< "$scenario"
  if [ -z "$body" ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")
  else
    out=$(BODY="$body" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
      -s "$root/integration-tests/load/post.lua" "$url")
  fi
  if echo "$out" | grep -q "Non-2xx"; then
    echo "$out" >&2
    echo "error: $name answered non-2xx statuses" >&2
    exit 1
  fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  if [ -z "$baseline_rps" ]; then baseline_rps=$rps; baseline_p99=$p99; fi
  ratio=$(awk -v a="$rps" -v b="$baseline_rps" 'BEGIN {printf "%.2f", a / b}')
  p99_ratio=$(awk -v a="$p99" -v b="$baseline_p99" 'BEGIN {printf "%.2f", a / b}')
  printf '%-32s %12.0f %10s %10s %8s %10s\n' "$name" "$rps" "$p50" "$p99" "$ratio" "$p99_ratio"
done
