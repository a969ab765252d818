#!/usr/bin/env bash
# Load from outside: wrk against the standalone binary (embedded engine)
# and, in the same run, against the project's own server loop answering a
# fixed JSON body (examples/fixed_json.rs). Prints req/s, p50, p99, the
# ratios to the fixed handler, and each server's CPU time per request.
#
# The standalone is built with `--features mimalloc`; findOne and
# insertOne also run against a build with the system allocator, so the
# allocator's effect shows in the same run.
#
#   bash integration-tests/load/wrk.sh            # 64 connections, 10 s each
#   CONNECTIONS=32 DURATION=20 bash integration-tests/load/wrk.sh
#   RUST_LOG=warn bash integration-tests/load/wrk.sh   # without request logs
source "$(dirname "$0")/common.sh"
FIXED_PORT="${FIXED_PORT:-18090}"
SYSTEM_PORT="${SYSTEM_PORT:-18081}"
# Both builds keep their artefacts in target/release (features are part of
# cargo's artefact hashes), so switching between them only relinks.
cargo build --release --quiet --example standalone
cp "$root/target/release/examples/standalone" "$work/standalone-system-allocator"
cargo build --release --quiet --features mimalloc --example standalone --example fixed_json

write_config
"$root/target/release/examples/fixed_json" "127.0.0.1:$FIXED_PORT" > "$work/fixed.log" 2>&1 &
fixed_pid=$!
pids+=("$fixed_pid")
"$root/target/release/examples/standalone" --config "$work/config.toml" \
  --listen "127.0.0.1:$API_PORT" > "$work/api.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")
wait_for "http://127.0.0.1:$FIXED_PORT/"
wait_for "http://127.0.0.1:$API_PORT/"
load_tasks

echo "(RUST_LOG=${RUST_LOG:-info})"
print_header
run_wrk "fixed JSON handler (baseline)" "http://127.0.0.1:$FIXED_PORT/" "" "$fixed_pid"
run_wrk "findOne by _id" "$base/findOne" "{$ns,\"filter\":{\"_id\":500}}" "$api_pid"
run_wrk "insertOne" "$base/insertOne" "{$ns,\"document\":{\"text\":\"new task\",\"done\":false}}" "$api_pid"
run_wrk "updateOne \$inc by _id" "$base/updateOne" "{$ns,\"filter\":{\"_id\":7},\"update\":{\"\$inc\":{\"n\":1}}}" "$api_pid"
run_wrk "find {done: false} limit 10" "$base/find" "{$ns,\"filter\":{\"done\":false},\"limit\":10}" "$api_pid"
kill "$api_pid"; wait "$api_pid" 2>/dev/null || true

# The same standalone with the system allocator (a fresh server, so its
# collection starts as the first one did).
"$work/standalone-system-allocator" --config "$work/config.toml" \
  --listen "127.0.0.1:$SYSTEM_PORT" > "$work/api-system.log" 2>&1 &
system_pid=$!
pids+=("$system_pid")
base="http://127.0.0.1:$SYSTEM_PORT/app/data-load/endpoint/data/v1/action"
wait_for "http://127.0.0.1:$SYSTEM_PORT/"
load_tasks
run_wrk "findOne by _id, system allocator" "$base/findOne" "{$ns,\"filter\":{\"_id\":500}}" "$system_pid"
run_wrk "insertOne, system allocator" "$base/insertOne" "{$ns,\"document\":{\"text\":\"new task\",\"done\":false}}" "$system_pid"
