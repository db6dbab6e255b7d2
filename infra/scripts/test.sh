#!/usr/bin/env bash
# Runs the Rust test suite with the emulators up, so the contract suites also run against the AWS
# adapters; both emulators are stopped however the tests end.
#
#   - DynamoDB Local: the store contract suite (PLUNK_TEST_DYNAMODB_ENDPOINT).
#   - moto's server: the queue (SQS) and blob (S3) contract suites (PLUNK_TEST_AWS_ENDPOINT).
#   - Chromium and playwright-core: the hosted-page browser tests (crates/local/tests/browser.rs
#     runs tests/browser/*.test.mjs); PLUNK_TEST_BROWSER=1 makes a missing browser a failure.
#
#   infra/scripts/test.sh [extra args for cargo nextest run / cargo test]
#   infra/scripts/test.sh -p plunk-messaging      # one package (its doctests too)
#
# Needs node_modules, .venv and Chromium (make tools). Ports: PLUNK_DYNAMODB_PORT and PLUNK_MOTO_PORT, else
# free ones, so an emulator left running elsewhere (e.g. on the usual 8008 / 5005) neither blocks
# this run nor leaks data into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [[ -z "${PLUNK_DYNAMODB_PORT:-}" ]]; then
    PLUNK_DYNAMODB_PORT="$(free_port)"
fi
if [[ -z "${PLUNK_MOTO_PORT:-}" ]]; then
    PLUNK_MOTO_PORT="$(free_port)"
    while [[ "$PLUNK_MOTO_PORT" == "$PLUNK_DYNAMODB_PORT" ]]; do
        PLUNK_MOTO_PORT="$(free_port)"
    done
fi
export PLUNK_DYNAMODB_PORT PLUNK_MOTO_PORT
export PLUNK_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$PLUNK_DYNAMODB_PORT"
export PLUNK_TEST_AWS_ENDPOINT="http://127.0.0.1:$PLUNK_MOTO_PORT"
export PLUNK_TEST_BROWSER=1

# Each stop runs even if the other fails; the script keeps the tests' exit status.
trap 'infra/scripts/moto.sh stop || true; infra/scripts/dynamodb-local.sh stop || true' EXIT
infra/scripts/dynamodb-local.sh start
echo "test: DynamoDB Local on $PLUNK_TEST_DYNAMODB_ENDPOINT"
infra/scripts/moto.sh start
echo "test: moto on $PLUNK_TEST_AWS_ENDPOINT"

# The whole workspace unless packages are named (-p/--package): with --workspace, cargo would
# ignore them. Doctests run for the same packages.
scope=(--workspace)
packages=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        -p | --package) packages+=("${args[i]}" "${args[i + 1]:-}") ;;
        -p* | --package=*) packages+=("${args[i]}") ;;
    esac
done
if ((${#packages[@]})); then
    scope=()
fi

# Every guarded table records the partition patterns it let through; after a whole-workspace run,
# a last test checks that no function is granted a partition its code never uses.
export PLUNK_ACCESS_RECORD="$(mktemp)"
check_access_coverage() {
    if ((${#packages[@]} == 0)) && [[ $# -eq 0 ]]; then
        cargo run -q -p plunk-store --example access_coverage -- "$PLUNK_ACCESS_RECORD"
    fi
}

if cargo nextest --version >/dev/null 2>&1; then
    # nextest prints one line per test and a "Summary [...] N tests run: N passed" line.
    cargo nextest run "${scope[@]}" --no-fail-fast "$@"
    # nextest does not run doctests.
    cargo test "${scope[@]}" "${packages[@]}" --doc
else
    cargo test "${scope[@]}" --no-fail-fast "$@"
fi
check_access_coverage "$@"
