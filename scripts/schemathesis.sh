#!/usr/bin/env bash
# Runs schemathesis against the local gateway's OpenAPI document (docs/openapi.json, served
# at /openapi.json): property-based requests generated from the document with a seed
# (printed, so a failure can be replayed with SCHEMATHESIS_SEED) and a bounded number of
# cases per operation, with EVERY check schemathesis has: no 5xx, answers true to the
# document (status codes, content types, headers, bodies, `Allow`), invalid input refused,
# schema-valid input accepted, missing headers and auth refused, undocumented methods
# refused. The seed changes on every run and is printed, so a failure can be replayed.
# scripts/schemathesis_hooks.py keeps positive cases within the rules the document states in
# words (opaque cursors, one request per Idempotency-Key, byte limits). POST /tickets
# creates real RT tickets.
#
# Called by scripts/test.sh after `cargo test`, with RT's and moto's variables exported
# and the gateway binary built. Starts its own gateway process on free loopback ports with
# its own tables and checkpoint, stops it (by pid) and deletes the tables when done.
#
# Environment: SCHEMATHESIS_SEED (default `random`: a new one each run; a number replays),
# SCHEMATHESIS_CHECKS (default `all`; or a comma-separated list), SCHEMATHESIS_MAX_EXAMPLES
# per operation (default 150), SCHEMATHESIS_MAX_SECONDS bound on the whole run (default 1800).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN_DIR=${RUN_DIR:-$ROOT/.run}
VENV=${VENV:-$ROOT/.venv}
SEED=${SCHEMATHESIS_SEED:-random}
[ "$SEED" = random ] && SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
CHECKS=${SCHEMATHESIS_CHECKS:-all}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-150}
MAX_SECONDS=${SCHEMATHESIS_MAX_SECONDS:-1800}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
mkdir -p "$RUN_DIR"

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
: "${RT_URL:?RT_URL is not set: run through scripts/test.sh}"
: "${RT_TOKEN:?RT_TOKEN is not set: run through scripts/test.sh}"
: "${AWS_ENDPOINT_URL:?AWS_ENDPOINT_URL is not set: run through scripts/test.sh}"
[ -x "$BIN/rt-relay-gateway" ] || { log "$BIN/rt-relay-gateway is missing: cargo build -p rt-relay-gateway"; exit 1; }
[ -x "$VENV/bin/schemathesis" ] || { log "schemathesis is missing: bash scripts/tools.sh"; exit 1; }

PREFIX="st-$(date +%s)-$$-"
CHECKPOINT="$RUN_DIR/schemathesis-checkpoint.json"
OUT="$RUN_DIR/schemathesis-gateway.out"
REPORT_DIR="$RUN_DIR/schemathesis-report"
rm -f "$CHECKPOINT"
rm -rf "$REPORT_DIR"
# Emptied now, not by the child's redirection: the wait below must not read the last run's URL.
: >"$OUT"

GATEWAY_PID=""
cleanup() {
  if [ -n "$GATEWAY_PID" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
    kill -TERM "$GATEWAY_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$GATEWAY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$GATEWAY_PID" 2>/dev/null || true
  fi
  # The run's tables: best effort, through moto's DynamoDB API.
  for t in tickets notifications connections idempotency api-keys; do
    curl -s -o /dev/null -m 5 -X POST "$AWS_ENDPOINT_URL" \
      -H 'content-type: application/x-amz-json-1.0' -H 'x-amz-target: DynamoDB_20120810.DeleteTable' \
      -H "authorization: AWS4-HMAC-SHA256 Credential=${AWS_ACCESS_KEY_ID:-test}/20260101/${AWS_REGION:-us-east-1}/dynamodb/aws4_request, SignedHeaders=host, Signature=0" \
      -d "{\"TableName\":\"${PREFIX}${t}\"}" || true
  done
  rm -f "$CHECKPOINT"
}
trap cleanup EXIT

# A webhook secret, so POST /webhooks/rt is served (without one it answers 404) and refuses
# unsigned or badly signed requests as the document says. Fresh per run, never printed.
WEBHOOK_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
RT_API_URL="${RT_URL%/}/REST/2.0/" RT_TOKEN="$RT_TOKEN" TABLE_PREFIX="$PREFIX" GATEWAY_CHECKPOINT="$CHECKPOINT" \
  GATEWAY_HTTP_ADDR=127.0.0.1:0 GATEWAY_WS_ADDR=127.0.0.1:0 GATEWAY_MANAGEMENT_ADDR=127.0.0.1:0 RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN/rt-relay-gateway" >"$OUT" 2>"$RUN_DIR/schemathesis-gateway.log" </dev/null &
GATEWAY_PID=$!
URL=""
for _ in $(seq 1 600); do
  URL=$(awk '/^ *HTTP API /{print $3; exit}' "$OUT" 2>/dev/null || true)
  [ -n "$URL" ] && break
  kill -0 "$GATEWAY_PID" 2>/dev/null || { log "the gateway exited during start-up:"; tail -n 30 "$RUN_DIR/schemathesis-gateway.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { log "the gateway printed no URL within 60 s"; exit 1; }
[ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$URL/openapi.json")" = 200 ] || { log "$URL/openapi.json does not answer 200"; exit 1; }

# With API keys enforced, mint one for this run's tables and send it with every request.
auth=()
code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$URL/notifications")
if [ "$code" = 401 ] || [ "$code" = 403 ]; then
  [ -x "$BIN/rt-relay-keys" ] || { log "the gateway wants an API key but $BIN/rt-relay-keys is missing"; exit 1; }
  KEY=$(TABLE_PREFIX="$PREFIX" "$BIN/rt-relay-keys" mint --name schemathesis --scopes all)
  auth=(--header "Authorization: Bearer $KEY")
  log "the gateway enforces API keys; minted one for this run"
fi

log "gateway at $URL (tables ${PREFIX}*); schemathesis $("$VENV/bin/schemathesis" --version | awk '{print $NF}'), up to $MAX_EXAMPLES cases per operation"
log "seed $SEED (replay: SCHEMATHESIS_SEED=$SEED bash scripts/schemathesis.sh)"
# `--checks all`: name them, so the log says what "all" was for this schemathesis version.
ALL_CHECKS=$("$VENV/bin/schemathesis" run --help | tr -s ' \n' ' ' \
  | sed -n 's/.*--checks.*\[possible values: \([^]]*\)\].*--exclude-checks.*/\1/p' \
  | tr -d ' ' | tr ',' '\n' | grep -vx all | paste -sd, -)
[ "$CHECKS" = all ] && log "checks: all $(printf '%s' "$ALL_CHECKS" | tr ',' '\n' | grep -c .) ($ALL_CHECKS)" || log "checks: $CHECKS"
status=0
# From $RUN_DIR, where schemathesis keeps its cache (.schemathesis/), outside the tree.
cd "$RUN_DIR"
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$ROOT/scripts${PYTHONPATH:+:$PYTHONPATH}" \
  timeout --kill-after=30 "$MAX_SECONDS" \
  "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$URL/openapi.json" \
    --url "$URL" \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --generation-database none \
    --checks "$CHECKS" \
    --phases examples,coverage,fuzzing \
    --workers 1 \
    --request-timeout 40 \
    --suppress-health-check too_slow,filter_too_much \
    --no-color \
    --report junit,json --report-dir "$REPORT_DIR" \
    "${auth[@]}" || status=$?

# Summary from the JSON report: cases per operation, and the run's floor of 1,000 cases.
MIN_CASES=${SCHEMATHESIS_MIN_CASES:-1000}
if report=$(ls "$REPORT_DIR"/json-*.json 2>/dev/null | head -n 1) && [ -n "$report" ]; then
  "$VENV/bin/python" - "$report" "$MIN_CASES" <<'PY' || { [ "$status" = 0 ] && status=1; }
import json, sys
report = json.load(open(sys.argv[1]))
floor = int(sys.argv[2])
generated = report["test_cases"]["generated"]
print(f"schemathesis summary: {generated} cases generated, {report['test_cases']['with_failures']} with failures, "
      f"{report['operations']['tested']}/{report['operations']['total']} operations tested, seed {report['seed']}, "
      f"{report['running_time']:.0f} s")
for op, phases in sorted(report.get("valid_rates", {}).items()):
    accepted = sum(p.get("accepted", 0) for p in phases.values())
    rejected = sum(p.get("rejected", 0) for p in phases.values())
    print(f"  {op:<22} accepted {accepted:>4}, rejected {rejected:>4} (schemathesis's valid-rate counts)")
if generated < floor:
    print(f"schemathesis summary: FAILED: fewer than {floor} cases ran")
    sys.exit(1)
PY
else
  log "no JSON report was written"
  [ "$status" = 0 ] && status=1
fi
[ "$status" = 0 ] && log "passed" || log "FAILED (exit $status); the gateway's log: $RUN_DIR/schemathesis-gateway.log"
exit "$status"
