#!/usr/bin/env bash
# Starts or stops moto's server (an SQS / S3 / SES v2 emulator) for the AWS adapter tests.
#
#   infra/scripts/moto.sh start   # background, waits until it answers
#   infra/scripts/moto.sh stop
#
# moto comes from .venv (moto[server] in infra/requirements.txt): run `make tools` first.
# Port: PLUNK_MOTO_PORT (default 5005). Pid file and log live under TMPDIR (default /tmp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PLUNK_MOTO_PORT:-5005}"
RUN_DIR="${TMPDIR:-/tmp}"
RUN_DIR="${RUN_DIR%/}"
PID_FILE="$RUN_DIR/plunk-moto-$PORT.pid"
LOG_FILE="$RUN_DIR/plunk-moto-$PORT.log"
MOTO_SERVER="$ROOT/.venv/bin/moto_server"

die() {
    echo "moto: $*" >&2
    exit 1
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() {
    # moto's own API answers 200 once the server is up.
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/moto-api/"
}

listening() {
    # Any HTTP response at all: something holds the port.
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
}

start() {
    command -v curl >/dev/null || die "curl not found"
    [[ -x "$MOTO_SERVER" ]] || die "$MOTO_SERVER is missing: run 'make tools' in $ROOT first"

    if running_pid >/dev/null; then
        # Ours, from an earlier start: reuse it (tests use fresh queues and buckets).
        answers && return 0
        die "pid $(cat "$PID_FILE") from an earlier start is not answering on port $PORT; run '$0 stop'"
    fi
    if listening; then
        die "port $PORT is already in use by another process"
    fi

    mkdir -p "$RUN_DIR"
    "$MOTO_SERVER" -H 127.0.0.1 -p "$PORT" >"$LOG_FILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PID_FILE"

    for _ in $(seq 1 60); do
        if answers; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            echo "moto: exited during start-up; log $LOG_FILE:" >&2
            tail -n 30 "$LOG_FILE" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    echo "moto: did not answer on 127.0.0.1:$PORT within 30 s; log $LOG_FILE:" >&2
    tail -n 30 "$LOG_FILE" >&2 || true
    exit 1
}

stop() {
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

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
