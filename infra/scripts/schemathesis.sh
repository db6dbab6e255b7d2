#!/usr/bin/env bash
# Property-based tests of the whole API: builds `plunk`, starts `plunk serve` on a fresh data
# directory and a free port, creates a project, checks /openapi.json with openapi-spec-validator,
# and runs Schemathesis against it with that project's secret key, the stateful phase following
# the document's links (create → read, update, delete …). The server and its data are removed
# however the run ends.
#
#   infra/scripts/schemathesis.sh [extra schemathesis run options]
#
# Environment (all optional):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   SCHEMATHESIS_PHASES        default examples,coverage,fuzzing,stateful
#   SCHEMATHESIS_SEED          default fixed, so a CI failure reproduces; set "random" to explore
#   SCHEMATHESIS_TIMEOUT       hard limit for the whole run in seconds (default 600)
# Needs .venv (make tools) and the Rust toolchain.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plunk-target}"
VENV="$ROOT/.venv"
[[ -x "$VENV/bin/schemathesis" ]] || { echo "schemathesis: $VENV is missing: run 'make tools'" >&2; exit 1; }

MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-100}"
PHASES="${SCHEMATHESIS_PHASES:-examples,coverage,fuzzing,stateful}"
SEED="${SCHEMATHESIS_SEED:-20260301}"
TIMEOUT="${SCHEMATHESIS_TIMEOUT:-600}"
CHECKS=not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance

cargo build --quiet -p plunk-local --bin plunk
PLUNK="$CARGO_TARGET_DIR/debug/plunk"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/plunk-schemathesis.XXXXXX")"
SERVER_PID=""
# shellcheck disable=SC2329  # called by the EXIT trap
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

server_log() {
    echo "--- plunk serve log (last 40 lines) ---" >&2
    tail -n 40 "$WORK/server.log" >&2 || true
}

export PLUNK_DATA_DIR="$WORK/data"
mkdir -p "$PLUNK_DATA_DIR"

# The project exists before the server starts, so no key lookup can be cached as unknown.
KEY="$("$PLUNK" project create --name schemathesis --rate-limit 30000 --json \
    | "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["secretKey"])')"
[[ "$KEY" == sk_* ]] || { echo "schemathesis: 'plunk project create' gave no secret key" >&2; exit 1; }

# A port the kernel just handed out and released; the race with other processes is negligible here.
PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

"$PLUNK" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null --max-time 2 "$BASE/openapi.json"; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "schemathesis: plunk serve exited during start-up" >&2
        server_log
        exit 1
    fi
    sleep 0.2
done
curl -fsS -o /dev/null --max-time 2 "$BASE/openapi.json" \
    || { echo "schemathesis: $BASE/openapi.json did not answer within 20 s" >&2; server_log; exit 1; }

curl -fsS --max-time 10 "$BASE/openapi.json" -o "$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json" \
    || { echo "schemathesis: /openapi.json is not a valid OpenAPI document" >&2; exit 1; }

seed_args=(--seed "$SEED")
[[ "$SEED" == random ]] && seed_args=()

echo "schemathesis: $BASE (phases $PHASES, max $MAX_EXAMPLES examples, seed $SEED)"
status=0
# Run inside the scratch directory: Schemathesis and Hypothesis keep state (.schemathesis/,
# .hypothesis/) in the working directory, and read schemathesis.toml from it. A failure prints a
# curl command that reproduces it.
cd "$WORK"
cat > schemathesis.toml <<'TOML'
# Longer link chains, so the stateful phase reaches reads, updates and deletes of what it created.
[phases.stateful]
max-steps = 40
TOML
timeout "$TIMEOUT" "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
    --url "$BASE" \
    --header "Authorization: Bearer $KEY" \
    --checks "$CHECKS" \
    --phases "$PHASES" \
    --max-examples "$MAX_EXAMPLES" \
    "${seed_args[@]}" \
    --workers 2 \
    --request-timeout 10 \
    --generation-database none \
    "$@" || status=$?

if [[ $status -ne 0 ]]; then
    [[ $status -eq 124 ]] && echo "schemathesis: stopped after ${TIMEOUT} s" >&2
    server_log
fi
exit "$status"
