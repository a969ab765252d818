#!/usr/bin/env bash
# Load from outside: wrk against the standalone binary (embedded engine)
# and, in the same run, against the project's own server loop answering a
# fixed JSON body (examples/fixed_json.rs). Prints req/s, p50 and p99 for
# each scenario and the ratio to the fixed handler.
#
#   bash integration-tests/load/wrk.sh            # 64 connections, 10 s each
#   CONNECTIONS=32 DURATION=20 bash integration-tests/load/wrk.sh
#   RUST_LOG=warn bash integration-tests/load/wrk.sh   # without request logs
source "$(dirname "$0")/common.sh"
FIXED_PORT="${FIXED_PORT:-18090}"
cargo build --release --quiet --example standalone --example fixed_json

write_config
"$root/target/release/examples/fixed_json" "127.0.0.1:$FIXED_PORT" > "$work/fixed.log" 2>&1 &
pids+=($!)
"$root/target/release/examples/standalone" --config "$work/config.toml" \
  --listen "127.0.0.1:$API_PORT" > "$work/api.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$FIXED_PORT/"
wait_for "http://127.0.0.1:$API_PORT/"
load_tasks

echo "(RUST_LOG=${RUST_LOG:-info})"
print_header
run_wrk "fixed JSON handler (baseline)" "http://127.0.0.1:$FIXED_PORT/" ""
run_wrk "findOne by _id" "$base/findOne" "{$ns,\"filter\":{\"_id\":500}}"
run_wrk "insertOne" "$base/insertOne" "{$ns,\"document\":{\"text\":\"new task\",\"done\":false}}"
run_wrk "updateOne \$inc by _id" "$base/updateOne" "{$ns,\"filter\":{\"_id\":7},\"update\":{\"\$inc\":{\"n\":1}}}"
run_wrk "find {done: false} limit 10" "$base/find" "{$ns,\"filter\":{\"done\":false},\"limit\":10}"
