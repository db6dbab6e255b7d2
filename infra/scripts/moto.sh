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
SERVICE=moto
PORT="${PLUNK_MOTO_PORT:-5005}"
MOTO_SERVER="$ROOT/.venv/bin/moto_server"
# shellcheck source=lib/service.sh
source "$ROOT/infra/scripts/lib/service.sh"

check() {
    [[ -x "$MOTO_SERVER" ]] || die "$MOTO_SERVER is missing: run 'make tools' in $ROOT first"
}

launch() {
    exec "$MOTO_SERVER" -H 127.0.0.1 -p "$PORT"
}

answers() {
    # moto's own API answers 200 once the server is up.
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/moto-api/"
}

listening() {
    # Any HTTP response at all: something holds the port.
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
}

service_main "$@"
