#!/usr/bin/env bash
# Runs the Rust test suite with DynamoDB Local up, so the store contract suite also runs against
# DynamoDB (PLUNK_TEST_DYNAMODB_ENDPOINT); DynamoDB Local is stopped however the tests end.
#
#   infra/scripts/test.sh [extra args for cargo nextest run / cargo test]
#
# Needs node_modules (make tools). Port: PLUNK_DYNAMODB_PORT, else a free one, so a DynamoDB Local
# left running elsewhere (e.g. on the usual 8008) neither blocks this run nor leaks data into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ -z "${PLUNK_DYNAMODB_PORT:-}" ]]; then
    PLUNK_DYNAMODB_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
export PLUNK_DYNAMODB_PORT
export PLUNK_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$PLUNK_DYNAMODB_PORT"

trap 'infra/scripts/dynamodb-local.sh stop' EXIT
infra/scripts/dynamodb-local.sh start
echo "test: DynamoDB Local on $PLUNK_TEST_DYNAMODB_ENDPOINT"

if cargo nextest --version >/dev/null 2>&1; then
    # nextest prints one line per test and a "Summary [...] N tests run: N passed" line.
    cargo nextest run --workspace --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test --workspace --doc
else
    cargo test --workspace --no-fail-fast "$@"
fi
