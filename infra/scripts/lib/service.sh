# Shared start/stop logic for the emulators the tests run in the background (DynamoDB Local,
# moto). A script sources this file after setting:
#   SERVICE   short name for messages and file names
#   PORT      port it listens on (127.0.0.1)
# and defining:
#   launch      starts the service in the foreground (it is put in the background here)
#   answers     succeeds once the service answers requests
#   listening   succeeds if anything at all answers on the port
# Pid file and log live under TMPDIR (default /tmp).

RUN_DIR="${TMPDIR:-/tmp}"
RUN_DIR="${RUN_DIR%/}"
PID_FILE="$RUN_DIR/plunk-$SERVICE-$PORT.pid"
LOG_FILE="$RUN_DIR/plunk-$SERVICE-$PORT.log"

die() {
    echo "$SERVICE: $*" >&2
    exit 1
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Starts the service unless this script already did, and waits up to 30 s for it to answer.
start_service() {
    command -v curl >/dev/null || die "curl not found"
    if running_pid >/dev/null; then
        # Ours, from an earlier start: reuse it (tests use fresh tables, queues and buckets).
        answers && return 0
        die "pid $(cat "$PID_FILE") from an earlier start is not answering on port $PORT; run '$0 stop'"
    fi
    if listening; then
        die "port $PORT is already in use by another process"
    fi

    mkdir -p "$RUN_DIR"
    launch >"$LOG_FILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PID_FILE"

    for _ in $(seq 1 60); do
        if answers; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            echo "$SERVICE: exited during start-up; log $LOG_FILE:" >&2
            tail -n 30 "$LOG_FILE" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    echo "$SERVICE: did not answer on 127.0.0.1:$PORT within 30 s; log $LOG_FILE:" >&2
    tail -n 30 "$LOG_FILE" >&2 || true
    exit 1
}

# Stops the service this script started (nothing to do when none runs).
stop_service() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
}

# Dispatches `start` / `stop`; `check` runs first on start (prerequisites).
service_main() {
    case "${1:-}" in
        start)
            check
            start_service
            ;;
        stop) stop_service ;;
        *)
            echo "usage: $0 start|stop" >&2
            exit 2
            ;;
    esac
}
