#!/usr/bin/env bash
# `make bench`: performance figures, printed (never asserted). Described in docs/benchmarks.md.
#
#   1. upsert-hot-path (crates/bench): POST /contacts through the whole router in process, one
#      request at a time, over the embedded SQLite store; and the same upserts on the store alone.
#   2. Load test: `plunk serve` on a fresh data directory, driven by wrk over 64 connections:
#      POST /contacts (a new contact per request), then GET /contacts/:id.
#   3. send-accept (crates/bench): POST /v1/send in process over the embedded store and queues.
#   4. pacing: the global send pace on a simulated clock (1-8 consumers), then the real router,
#      worker and consumer loop on the wall clock at 14/s (BENCH_PACING_EMAILS take ~N/14 s).
#   5. faults: randomised fault schedules around the send worker; fails on a duplicate or lost email.
#   6. send-cost: DynamoDB units, SQS requests and provider calls per email, priced.
#   7. track-accept (crates/bench): POST /v1/track in process; then track-load against plunk serve
#      over 64 connections with public keys, and the events stored compared with the 200s.
#   8. feedback-order: 100,000 SES notifications (10 % duplicates) shuffled through the real feedback
#      worker by 4 concurrent workers, compared with the in-order run; fails on any mismatch.
#   9. template-fuzz: generated templates and data through the syntax check and every render; fails
#      on any panic; prints the slowest render.
#  10. hostile-traffic: normal mail from 3 projects on plunk serve, alone, then beside a 4th project
#      sending every hostile request (BENCH_HOSTILE_SECONDS each, 600): send wait p50/p99 of both,
#      delivered, peak memory, panics; fails on undelivered mail, a panic or a hostile 5xx.
#  11. webhook-isolation: one project's healthy webhook receiver alone, then beside another
#      project's receiver that hangs (BENCH_WEBHOOK_SECONDS each, 60): the healthy deliveries'
#      latency p50/p99 in both runs and the hanging receiver's attempts in flight.
#  12. campaign-fanout: a campaign fanned out to BENCH_FANOUT_RECIPIENTS (1,000,000) contacts:
#      CPU seconds, queue requests and table units per recipient, the busiest partition at the
#      send rate; then BENCH_FANOUT_CRASHES (1,000) fan-outs crashed at random operations and
#      resumed: fails on a recipient missing or sent twice.
#  13. segment-cost: a full segment pass over BENCH_SEGMENT_CONTACTS (100,000) contacts (10 filters),
#      then a simulated day of upkeep of 10 DYNAMIC segments, priced for a 1,000,000-contact
#      project with 100,000 contact changes and 1,000,000 events a day, with how stale counts get.
#  14. campaign-fairness: a BENCH_FAIRNESS_CONTACTS (100,000)-recipient campaign draining at 14/s
#      on the wall clock (BENCH_FAIRNESS_SECONDS, 180) with transactional mail of three projects
#      beside it and a second project's campaign started a minute in: transactional wait p50/p99,
#      the second campaign's first-email wait, each campaign's share once both run.
#  15. workflow-timers: BENCH_WORKFLOW_EXECUTIONS (10,000) workflow executions waiting on a DELAY
#      that ends in one minute: the tick of that minute queues them, the engine advances them;
#      fails unless all of them advance; prints time and table units per advanced step.
#  16. workflow-faults: BENCH_WORKFLOW_FAULT_SCHEDULES (10,000) randomised fault schedules over a
#      workflow of every step type (duplicate and concurrent deliveries, crashes before and after
#      each store operation and after the webhook answered, failing webhooks, lost deletes, a
#      worker outage); fails on a step run twice, an email queued twice or an execution not ended.
#  17. workflow-latency: against plunk serve (section 2's server), /v1/track with the public key to
#      the email of the workflow's first SEND_EMAIL in the outbox, BENCH_WORKFLOW_LATENCY_N (200)
#      events one every 250 ms; p50/p99. Its cost per step and per email is a column of send-cost.
#
# Load is spread over 16 projects (a project allows at most 30,000 requests a minute); the
# summary reports non-2xx responses so 429s (or anything else) would show.
#
# Settings (environment): BENCH_N (hot-path requests per phase, 20000), BENCH_DURATION (wrk run
# length, 10s), BENCH_CONNECTIONS (64), BENCH_THREADS (wrk threads, 2), BENCH_PROJECTS (16),
# BENCH_SEND_N (send-accept requests per phase, 5000), BENCH_PACING_EMAILS (wall-clock pacing run,
# 2000; 0 skips it), BENCH_FAULT_SCHEDULES (10000), BENCH_COST_EMAILS (1000), BENCH_FEEDBACK_N
# (feedback notifications, 100000), BENCH_FEEDBACK_EMAILS (10000), BENCH_FUZZ_CASES (100000),
# BENCH_HOSTILE_SECONDS (600; 0 skips it), BENCH_WEBHOOK_SECONDS (60), BENCH_FAIRNESS_CONTACTS
# (100000), BENCH_FAIRNESS_SECONDS (180).
# Needs curl and jq; installs wrk with apt-get when missing. Exits 1 after the summary when a
# send-pipeline check failed (a duplicate or lost email, a pacing window over the rate) or the
# feedback order check found a mismatch.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/plunk-target}"
N="${BENCH_N:-20000}"
DURATION="${BENCH_DURATION:-10s}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
THREADS="${BENCH_THREADS:-2}"
PROJECTS="${BENCH_PROJECTS:-16}"
SEND_N="${BENCH_SEND_N:-5000}"
export BENCH_PACING_EMAILS="${BENCH_PACING_EMAILS:-2000}"
FAULT_SCHEDULES="${BENCH_FAULT_SCHEDULES:-10000}"
COST_EMAILS="${BENCH_COST_EMAILS:-1000}"
FEEDBACK_N="${BENCH_FEEDBACK_N:-100000}"
FEEDBACK_EMAILS="${BENCH_FEEDBACK_EMAILS:-10000}"
FUZZ_CASES="${BENCH_FUZZ_CASES:-100000}"
HOSTILE_SECONDS="${BENCH_HOSTILE_SECONDS:-600}"
WEBHOOK_SECONDS="${BENCH_WEBHOOK_SECONDS:-60}"
FANOUT_RECIPIENTS="${BENCH_FANOUT_RECIPIENTS:-1000000}"
FANOUT_CRASHES="${BENCH_FANOUT_CRASHES:-1000}"
WORKFLOW_FAULT_SCHEDULES="${BENCH_WORKFLOW_FAULT_SCHEDULES:-10000}"
WORKFLOW_LATENCY_N="${BENCH_WORKFLOW_LATENCY_N:-200}"
IDS_PER_PROJECT=125

START_SECONDS=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/plunk-bench.XXXXXX")"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }
die() {
    log "$*"
    exit 1
}

SUDO=""
[[ "$(id -u)" == 0 ]] || SUDO="sudo"
apt_install() {
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# ---- build -------------------------------------------------------------------------------------
# `--profile bench` writes to $CARGO_TARGET_DIR/release (cargo names the bench profile's directory
# `release`); the binaries are copied out at once so a concurrent release build cannot swap them.
log "building (profile bench)"
(cd "$ROOT" && cargo build --profile bench -p plunk-bench -p plunk-local)
mkdir -p "$WORK/bin"
for b in upsert-hot-path send-accept track-accept track-load pacing faults send-cost feedback-order template-fuzz hostile-traffic webhook-isolation campaign-fanout campaign-fairness segment-cost workflow-timers workflow-faults workflow-latency plunk; do
    cp "$CARGO_TARGET_DIR/release/$b" "$WORK/bin/"
done
PLUNK="$WORK/bin/plunk"

# ---- 1. in-process hot path --------------------------------------------------------------------
log "upsert-hot-path, $N requests a phase"
"$WORK/bin/upsert-hot-path" "$N" | tee "$WORK/hot-path.txt"

# ---- 3-6. the send pipeline, in process --------------------------------------------------------
# A failed check is reported in the summary (and by the exit status) rather than stopping the run.
FAILED_CHECKS=""
run_check() {
    local name=$1
    shift
    log "$name"
    if ! "$WORK/bin/$name" "$@" | tee "$WORK/$name.txt"; then
        FAILED_CHECKS="$FAILED_CHECKS $name"
    fi
}
run_check send-accept "$SEND_N"
run_check track-accept "$SEND_N"
run_check send-cost "$COST_EMAILS"
run_check faults "$FAULT_SCHEDULES"
log "pacing (the wall-clock part sends $BENCH_PACING_EMAILS emails at 14/s)"
run_check pacing
run_check feedback-order "$FEEDBACK_N" "$FEEDBACK_EMAILS"
run_check template-fuzz "$FUZZ_CASES"
run_check webhook-isolation "$WEBHOOK_SECONDS"
log "campaign-fanout: $FANOUT_RECIPIENTS recipients, $FANOUT_CRASHES crash runs"
BENCH_FANOUT_RECIPIENTS="$FANOUT_RECIPIENTS" BENCH_FANOUT_CRASHES="$FANOUT_CRASHES" run_check campaign-fanout
run_check segment-cost
log "campaign-fairness: ${BENCH_FAIRNESS_SECONDS:-180} s on the wall clock"
run_check campaign-fairness
run_check workflow-timers
log "workflow-faults: $WORKFLOW_FAULT_SCHEDULES schedules"
run_check workflow-faults "$WORKFLOW_FAULT_SCHEDULES"
if [[ "$HOSTILE_SECONDS" -gt 0 ]]; then
    log "hostile-traffic: two runs of $HOSTILE_SECONDS s"
    run_check hostile-traffic "$PLUNK" "$HOSTILE_SECONDS"
fi

# ---- 2. load test against plunk serve ----------------------------------------------------------
command -v curl >/dev/null || apt_install curl
command -v jq >/dev/null || apt_install jq
command -v wrk >/dev/null || apt_install wrk

export PLUNK_DATA_DIR="$WORK/data"
log "creating $PROJECTS projects"
: >"$WORK/keys.txt"
: >"$WORK/public-keys.txt"
for i in $(seq 1 "$PROJECTS"); do
    "$PLUNK" project create --name "bench-$i" --rate-limit 30000 --json >"$WORK/project.json"
    jq -r .secretKey "$WORK/project.json" >>"$WORK/keys.txt"
    jq -r .publicKey "$WORK/project.json" >>"$WORK/public-keys.txt"
done

log "starting plunk serve"
# Every connection comes from 127.0.0.1: the per-source limit of public keys (120 a minute by
# default) would make the /v1/track load test measure 429s.
PLUNK_PUBLIC_REQUESTS_PER_SOURCE=1000000000 RUST_LOG=warn "$PLUNK" serve --bind 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
BASE_URL=""
for _ in $(seq 1 100); do
    BASE_URL="$(sed -n 's|^Serving the API at \(http://[^ ]*\).*|\1|p' "$WORK/serve.out")"
    [[ -n "$BASE_URL" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "plunk serve exited: $(cat "$WORK/serve.err")"
    sleep 0.1
done
[[ -n "$BASE_URL" ]] || die "plunk serve did not report its address"
curl -sf -o /dev/null "$BASE_URL/health" || die "$BASE_URL/health does not answer"
log "server at $BASE_URL"

# run_wrk NAME SCRIPT ARG: one wrk run; its output goes to the terminal and $WORK/NAME.txt.
run_wrk() {
    local name=$1 script=$2 arg=$3
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/infra/bench/$script" \
        "$BASE_URL" -- "$arg" | tee "$WORK/$name.txt"
    kill -0 "$SERVER_PID" 2>/dev/null || die "plunk serve died during $name: $(tail -5 "$WORK/serve.err")"
}

# Warm-up (not reported): connections, key cache, SQLite pages.
log "warm-up: 2 s of POST /contacts"
wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s "$ROOT/infra/bench/post_contacts.lua" \
    "$BASE_URL" -- "$WORK/keys.txt" >"$WORK/warmup.txt"

log "load test: POST /contacts (new contact each request)"
run_wrk post post_contacts.lua "$WORK/keys.txt"

# Ids for the GET test: the newest contacts of each project, each with its own project's key.
log "collecting $IDS_PER_PROJECT contact ids per project"
: >"$WORK/ids.txt"
while read -r key; do
    curl -sf -H "Authorization: Bearer $key" "$BASE_URL/contacts?limit=100" >"$WORK/page.json"
    cursor="$(jq -r '.data.nextCursor // empty' "$WORK/page.json")"
    jq -r --arg k "$key" '.data.items[] | "\($k) \(.id)"' "$WORK/page.json" >>"$WORK/ids.txt"
    if [[ -n "$cursor" ]]; then
        curl -sf -G -H "Authorization: Bearer $key" --data-urlencode "cursor=$cursor" \
            --data-urlencode "limit=$((IDS_PER_PROJECT - 100))" "$BASE_URL/contacts" \
            | jq -r --arg k "$key" '.data.items[] | "\($k) \(.id)"' >>"$WORK/ids.txt"
    fi
done <"$WORK/keys.txt"
IDS=$(wc -l <"$WORK/ids.txt")
[[ "$IDS" -gt 0 ]] || die "no contact ids collected"

log "load test: GET /contacts/:id over $IDS ids"
run_wrk get get_contact.lua "$WORK/ids.txt"

log "load test: POST /v1/track with public keys (track-load, every response awaited)"
"$WORK/bin/track-load" "$BASE_URL" "$WORK/public-keys.txt" "${DURATION%s}" "$CONNECTIONS" | tee "$WORK/track.txt"
TRACK_OK=$(sed -n 's/^RESULT.* ok200=\([0-9]*\).*/\1/p' "$WORK/track.txt")

log "workflow-latency: $WORKFLOW_LATENCY_N sign-ups, /v1/track to the outbox"
"$PLUNK" project create --name "bench-workflows" --rate-limit 30000 --json >"$WORK/project.json"
if ! "$WORK/bin/workflow-latency" "$BASE_URL" "$(jq -r .secretKey "$WORK/project.json")" \
    "$(jq -r .publicKey "$WORK/project.json")" "$WORK/data/outbox" "$WORKFLOW_LATENCY_N" | tee "$WORK/workflow-latency.txt"; then
    FAILED_CHECKS="$FAILED_CHECKS workflow-latency"
fi

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
SERVER_WARNINGS=$(grep -c . "$WORK/serve.err" || true)
# Events the server stored (the events partitions of the embedded store), after it stopped.
TRACK_STORED=$(python3 - "$WORK/data/plunk.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM items WHERE pk GLOB 'PROJECT#*#EVENTS' "
                 "AND json_extract(body, '$.name') = 'page_view'").fetchone()[0])
PY
)
if [[ "$TRACK_STORED" != "$TRACK_OK" ]]; then
    FAILED_CHECKS="$FAILED_CHECKS track-load(stored $TRACK_STORED events for $TRACK_OK 200s)"
fi

# ---- summary -----------------------------------------------------------------------------------
field() { sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p" "$WORK/$1.txt"; }
row() {
    printf '%-26s %9s %9s %9s %9s %7s %7s\n' "$1" "$(field "$2" rps)" "$(field "$2" p50_ms)" \
        "$(field "$2" p99_ms)" "$(field "$2" requests)" "$(field "$2" non2xx)" "$(field "$2" socket_errors)"
}

cat <<EOF

==================================== plunk bench summary ====================================
$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), \
commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+changes'), profile bench

1. In process: whole router over embedded SQLite (file, WAL), one request at a time (µs)
$(sed -n '/^phase/,$p' "$WORK/hot-path.txt")

2. Load test: plunk serve (SQLite, RUST_LOG=warn), wrk -t$THREADS -c$CONNECTIONS -d$DURATION,
   $PROJECTS projects (keys rotating per request), GET over $IDS ids
$(printf '%-26s %9s %9s %9s %9s %7s %7s' test req/s "p50 ms" "p99 ms" requests non2xx sockerr)
$(row "POST /contacts (create)" post)
$(row "GET /contacts/:id" get)
$(row "POST /v1/track (public key)" track)
   /v1/track: $TRACK_OK responses 200, $TRACK_STORED events stored
   server log lines at warn or above: $SERVER_WARNINGS

3. In process: POST /v1/send over embedded SQLite and queues, one request at a time (µs)
$(sed -n '/^phase/,$p' "$WORK/send-accept.txt")

4. Pacing at 14/s: simulated 600 s (paused tokio clock), then wall clock
$(sed -n '/^1a\./,$p' "$WORK/pacing.txt")

5. Faults: $(sed -n 's/^faults: //p' "$WORK/faults.txt")
$(sed -n '/^email status/,/^schedules stuck/p' "$WORK/faults.txt")

3b. In process: POST /v1/track over embedded SQLite with its change feed, one request at a time (µs)
$(sed -n '/^phase/,$p' "$WORK/track-accept.txt")

6. Send cost per email and per million emails (AWS us-east-1 on-demand prices, SES excluded)
$(sed -n '/^per email/,/^floor:/p' "$WORK/send-cost.txt")

7. Feedback order: $FEEDBACK_N SES notifications over $FEEDBACK_EMAILS emails, in order vs shuffled + duplicates
$(sed -n '/^run /,/^mismatches/p' "$WORK/feedback-order.txt")

8. Template fuzz: $(sed -n 's/^template fuzz: //p' "$WORK/template-fuzz.txt")
$(sed -n '/^  panics/,$p' "$WORK/template-fuzz.txt")

9. Hostile traffic beside normal mail (plunk serve, profile bench)
$(if [[ -f "$WORK/hostile-traffic.txt" ]]; then sed -n '/^  alone/,$p' "$WORK/hostile-traffic.txt"; else echo "   skipped (BENCH_HOSTILE_SECONDS=0)"; fi)

10. Webhook deliveries of one project beside another project's hanging receiver ($WEBHOOK_SECONDS s a run)
$(sed -n '/^  alone/,$p' "$WORK/webhook-isolation.txt")

11. Campaign fan-out (in process, embedded store) and crash/resume
$(sed -n '/^fan-out:/,$p' "$WORK/campaign-fanout.txt")

12. Segments: a full pass, and a day of upkeep priced (in process, embedded store, metered)
$(grep -v '^setup:' "$WORK/segment-cost.txt")

13. Priority and fairness while a large campaign drains (in process, wall clock, 14/s)
$(grep -v '^setup:' "$WORK/campaign-fairness.txt")

14. Workflow timers: executions due in one minute advanced in its tick (in process, metered)
$(grep -v '^setup:' "$WORK/workflow-timers.txt")

15. Workflows: each step once under $WORKFLOW_FAULT_SCHEDULES fault schedules (in process, simulated clock)
$(sed -n 's/^workflow-faults: //p' "$WORK/workflow-faults.txt")
$(sed -n '/^execution ended/,$p' "$WORK/workflow-faults.txt")

16. Workflows: /v1/track (public key) to the first SEND_EMAIL's email in the outbox (plunk serve, one every 250 ms)
$(printf '%9s %9s %9s %9s %9s %7s' emails "p50 ms" "p90 ms" "p99 ms" "max ms" missing)
$(printf '%9s %9s %9s %9s %9s %7s' "$(field workflow-latency emails)" "$(field workflow-latency p50_ms)" \
    "$(field workflow-latency p90_ms)" "$(field workflow-latency p99_ms)" "$(field workflow-latency max_ms)" \
    "$(field workflow-latency missing)")
   (cost per workflow step and email: the "workflow email" column of section 6)

failed checks:${FAILED_CHECKS:- none}
total time: $((SECONDS - START_SECONDS)) s (including the build)
==============================================================================================
EOF
if [[ -n "$FAILED_CHECKS" ]]; then
    log "failed:$FAILED_CHECKS (see above)"
    exit 1
fi
