# Shared by the load scripts (sourced): settings, the temporary directory and
# its clean-up, the standalone's configuration, and one wrk run printed as a
# table row. Needs wrk (Debian package `wrk`). Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$(pwd)
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
THREADS="${THREADS:-2}"
API_PORT="${API_PORT:-18080}"
export API_KEY="load-test-key-0123456789abcdefghijklmnopqrstuvwxyz"
ns='"dataSource":"mongodb-atlas","database":"load","collection":"tasks"'
base="http://127.0.0.1:$API_PORT/app/data-load/endpoint/data/v1/action"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The standalone's configuration; extra TOML lines in $1.
write_config() {
  cat > "$work/config.toml" <<TOML
app_id = "data-load"
${1:-}
[[data_sources]]
name = "mongodb-atlas"
uri = "memory"
[[api_keys]]
name = "load"
key = "$API_KEY"
TOML
}

# Waits until something answers HTTP at $1.
wait_for() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "nothing answers at $1" >&2
  exit 1
}

# 1,000 documents to read and update.
load_tasks() {
  local docs
  docs=$(python3 -c 'import json; print(json.dumps([{"_id": i, "text": "task %d" % i, "done": False, "n": 0} for i in range(1000)]))')
  curl -sf -o /dev/null "$base/insertMany" -H "apiKey: $API_KEY" -H 'Content-Type: application/json' \
    -d "{$ns,\"documents\":$docs}"
}

# Latency as milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

print_header() {
  printf '\nwrk: %s connections, %s threads, %s s per scenario\n\n' \
    "$CONNECTIONS" "$THREADS" "$DURATION"
  printf '%-36s %12s %10s %10s %8s %10s %12s\n' scenario req/s p50_ms p99_ms ratio p99_ratio cpu_us/req
  baseline_rps=""; baseline_p99=""
}

# CPU seconds process $1 has used so far (user + system), in clock ticks.
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# One wrk run: name, URL, body (empty: GET), and the pid of the server
# (optional) whose CPU time per request is printed: on a shared machine
# that figure moves less than req/s, which also pays for wrk's own CPU and
# for whatever else runs. The first run of a table is the baseline of its
# ratios.
run_wrk() {
  local name=$1 url=$2 body=$3 pid=${4:-} out rps p50 p99 ratio p99_ratio ticks requests cpu="-"
  if [ -n "$pid" ]; then ticks=$(cpu_ticks "$pid"); fi
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
  if [ -n "$pid" ]; then
    ticks=$(( $(cpu_ticks "$pid") - ticks ))
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
  if [ -z "$baseline_rps" ]; then baseline_rps=$rps; baseline_p99=$p99; fi
  ratio=$(awk -v a="$rps" -v b="$baseline_rps" 'BEGIN {printf "%.2f", a / b}')
  p99_ratio=$(awk -v a="$p99" -v b="$baseline_p99" 'BEGIN {printf "%.2f", a / b}')
  printf '%-36s %12.0f %10s %10s %8s %10s %12s\n' "$name" "$rps" "$p50" "$p99" "$ratio" "$p99_ratio" "$cpu"
}
