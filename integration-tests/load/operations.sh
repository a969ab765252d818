#!/usr/bin/env bash
# What logging and metrics cost under load: findOne by _id through the
# standalone binary with request logs off (RUST_LOG=warn, the baseline),
# text logs, JSON logs (both to a file, through the non-blocking writer),
# and metrics on. A fresh server per setting; ROUNDS rounds, settings
# interleaved so machine noise spreads over all of them.
#
#   bash integration-tests/load/operations.sh          # 64 connections, 10 s, 2 rounds
#   ROUNDS=3 DURATION=5 bash integration-tests/load/operations.sh
source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-2}"
cargo build --release --quiet --example standalone

# name|RUST_LOG|--log-format|extra TOML
settings=(
  "logs off (RUST_LOG=warn)|warn|text|"
  "text request logs|info|text|"
  "JSON request logs|info|json|"
  "metrics on, logs off|warn|text|metrics_listen = \"127.0.0.1:0\""
)

run_setting() {
  local name=$1 level=$2 format=$3 extra=$4 pid
  write_config "$extra"
  RUST_LOG="$level" "$root/target/release/examples/standalone" --config "$work/config.toml" \
    --listen "127.0.0.1:$API_PORT" --log-format "$format" > "$work/banner.txt" 2> "$work/server.log" &
  pid=$!
  wait_for "http://127.0.0.1:$API_PORT/"
  load_tasks
  run_wrk "$name" "$base/findOne" "{$ns,\"filter\":{\"_id\":500}}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  echo
  echo "round $round of $ROUNDS (findOne by _id; ratios against logs off)"
  print_header
  for setting in "${settings[@]}"; do
    IFS='|' read -r name level format extra <<< "$setting"
    run_setting "$name" "$level" "$format" "$extra"
  done
done
