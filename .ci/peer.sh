#!/usr/bin/env bash
# Installs and runs the MongoDB test peer for the MongoBackend integration tests.
#
# The peer is SecantusDB, a MongoDB wire-protocol server written in Python
# (PyPI package SecantusDB), installed into a virtual environment at
# .venv-peer under the repository root. Needs only python3 (3.11+) and pip.
#
#   bash .ci/peer.sh start    install if needed, start on 127.0.0.1:${PEER_PORT:-27217},
#                             wait until it answers `hello` (at most 60 s), and print
#                             MONGODB_URI=... on standard output (all else goes to stderr)
#   bash .ci/peer.sh stop     stop it (SIGTERM, then SIGKILL after 10 s) and remove its data
#   bash .ci/peer.sh status   say whether it runs; exit 1 if it does not
#
# Typical use:
#   export DATA_API_TEST_MONGODB_URI="$(bash .ci/peer.sh start | sed -n 's/^MONGODB_URI=//p')"
#   cargo test ...
#   bash .ci/peer.sh stop
#
# Its log, PID file and the path of its data directory live in target/peer/.

set -euo pipefail

readonly PEER_VERSION="0.7.0b3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly PORT="${PEER_PORT:-27217}"
readonly HOST="127.0.0.1"
readonly VENV="$ROOT/.venv-peer"
readonly STATE="$ROOT/target/peer"
readonly PID_FILE="$STATE/secantusd.pid"
readonly LOG_FILE="$STATE/secantusd.log"
readonly STORAGE_FILE="$STATE/storage-path"
readonly PORT_FILE="$STATE/port"
readonly CONFIG_FILE="$STATE/secantusd.toml"
readonly START_TIMEOUT=60
readonly STOP_TIMEOUT=10

log() { printf 'peer: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

uri() { printf 'mongodb://%s:%s/?directConnection=true' "$HOST" "$PORT"; }

# The PID in the PID file, if that process is still our peer.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled PID: the process must be secantusd-py.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'secantusd-py' || return 1
    printf '%s\n' "$pid"
}

# Exit status 0 when something at HOST:PORT answers `hello` with ok: 1.
# Speaks OP_MSG over a raw socket, so it needs nothing beyond the standard library.
hello_ok() {
    "$VENV/bin/python" - "$HOST" "$PORT" <<'PY'
import socket, struct, sys

def cstring(s):
    return s.encode() + b"\0"

def bson_doc(elements):
    body = b"".join(elements) + b"\0"
    return struct.pack("<i", len(body) + 4) + body

def int32(name, value):
    return b"\x10" + cstring(name) + struct.pack("<i", value)

def string(name, value):
    data = cstring(value)
    return b"\x02" + cstring(name) + struct.pack("<i", len(data)) + data

def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data

def ok_field(doc):
    # Walk the top-level elements of a BSON document looking for "ok".
    pos, end = 4, struct.unpack_from("<i", doc)[0] - 1
    sizes = {0x01: 8, 0x08: 1, 0x10: 4, 0x12: 8, 0x09: 8, 0x11: 8, 0x07: 12, 0x0A: 0}
    while pos < end:
        kind = doc[pos]
        name_end = doc.index(b"\0", pos + 1)
        name = doc[pos + 1:name_end].decode()
        pos = name_end + 1
        if kind == 0x01:
            value = struct.unpack_from("<d", doc, pos)[0]
        elif kind == 0x10:
            value = struct.unpack_from("<i", doc, pos)[0]
        elif kind == 0x12:
            value = struct.unpack_from("<q", doc, pos)[0]
        else:
            value = None
        if name == "ok":
            return value
        if kind in sizes:
            pos += sizes[kind]
        elif kind in (0x02, 0x0D, 0x0E):
            pos += 4 + struct.unpack_from("<i", doc, pos)[0]
        elif kind in (0x03, 0x04):
            pos += struct.unpack_from("<i", doc, pos)[0]
        elif kind == 0x05:
            pos += 5 + struct.unpack_from("<i", doc, pos)[0]
        else:
            return None
    return None

host, port = sys.argv[1], int(sys.argv[2])
command = bson_doc([int32("hello", 1), string("$db", "admin")])
body = struct.pack("<I", 0) + b"\0" + command
header = struct.pack("<iiii", 16 + len(body), 1, 0, 2013)
try:
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(header + body)
        length, _, _, opcode = struct.unpack("<iiii", read_exact(sock, 16))
        reply = read_exact(sock, length - 16)
    if opcode != 2013 or reply[4] != 0:
        sys.exit(1)
    sys.exit(0 if ok_field(reply[5:]) == 1 else 1)
except (OSError, ValueError, struct.error, IndexError):
    sys.exit(1)
PY
}

install() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('SecantusDB') != '$PEER_VERSION')" 2>/dev/null; then
        return
    fi
    log "installing SecantusDB==$PEER_VERSION into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "SecantusDB==$PEER_VERSION" >&2 \
        || die "pip install SecantusDB==$PEER_VERSION failed"
}

start() {
    if ! [[ "$PORT" =~ ^[0-9]+$ ]] || (( PORT < 1 || PORT > 65535 )); then
        die "PEER_PORT must be a TCP port number (1-65535), got '$PORT'"
    fi
    local pid
    if pid="$(running_pid)"; then
        local running_port
        running_port="$(cat "$PORT_FILE" 2>/dev/null || true)"
        if [[ "$running_port" != "$PORT" ]]; then
            die "already running on port ${running_port:-?} (pid $pid); stop it first"
        fi
        log "already running (pid $pid)"
        printf 'MONGODB_URI=%s\n' "$(uri)"
        return
    fi
    mkdir -p "$STATE"
    install
    if hello_ok; then
        die "something else already answers on $HOST:$PORT; stop it or set PEER_PORT"
    fi

    local storage
    storage="$(mktemp -d "${TMPDIR:-/tmp}/secantus-peer.XXXXXX")"
    printf '%s\n' "$storage" >"$STORAGE_FILE"
    # An explicit, empty configuration: no secantusd.toml found elsewhere applies.
    : >"$CONFIG_FILE"
    log "starting secantusd-py on $HOST:$PORT (log: $LOG_FILE)"
    local started=$SECONDS
    "$VENV/bin/secantusd-py" --config "$CONFIG_FILE" --host "$HOST" --port "$PORT" \
        --storage-path "$storage" </dev/null >"$LOG_FILE" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    printf '%s\n' "$PORT" >"$PORT_FILE"

    while ! hello_ok; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "secantusd-py exited before answering; its log:"
            cat "$LOG_FILE" >&2 || true
            cleanup
            exit 1
        fi
        if (( SECONDS - started >= START_TIMEOUT )); then
            log "secantusd-py did not answer hello within ${START_TIMEOUT}s; its log:"
            cat "$LOG_FILE" >&2 || true
            stop
            exit 1
        fi
        sleep 0.2
    done
    log "ready after $(( SECONDS - started ))s (pid $pid)"
    printf 'MONGODB_URI=%s\n' "$(uri)"
}

# Removes the data directory and the PID file.
cleanup() {
    if [[ -f "$STORAGE_FILE" ]]; then
        local storage
        storage="$(cat "$STORAGE_FILE")"
        # Only ever remove a directory this script made.
        if [[ "$storage" == */secantus-peer.* && -d "$storage" ]]; then
            rm -rf -- "$storage"
        fi
        rm -f "$STORAGE_FILE"
    fi
    rm -f "$PID_FILE" "$PORT_FILE" "$CONFIG_FILE"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        cleanup
        return
    fi
    log "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if (( waited >= STOP_TIMEOUT * 10 )); then
            log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$(( waited + 1 ))
    done
    cleanup
    log "stopped"
}

status() {
    local pid
    if pid="$(running_pid)"; then
        local running_port
        running_port="$(cat "$PORT_FILE" 2>/dev/null || printf '%s' "$PORT")"
        log "running (pid $pid, port $running_port)"
        printf 'MONGODB_URI=mongodb://%s:%s/?directConnection=true\n' "$HOST" "$running_port"
    else
        log "not running"
        exit 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: bash .ci/peer.sh start|stop|status" >&2
        exit 2
        ;;
esac
