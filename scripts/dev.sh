#!/usr/bin/env bash
# Runs the whole rt-relay product on this machine (`make dev`): Request Tracker, moto
# (DynamoDB + Streams) and the local gateway, which serves the HTTP API, the WebSocket API
# and @connections with the same handler code the Lambda functions run.
#
# Installs what is missing (Python tools into .venv, Debian's RT), starts what is not
# running, builds and starts the gateway, mints an API key with every scope, prints it with
# the URLs, and on Ctrl-C revokes that key and stops everything it started (by pid).
# Services that were already running are left running.
#
# Environment:
#   HTTP_PORT (3000)  WS_PORT (3001)  MANAGEMENT_PORT (3002, @connections)  RT_PORT (8080)
#   MOTO_PORT (5055)
#   PROFILE   debug (default; faster to build) or release
#   TABLE_PREFIX      DynamoDB table (and fan-out queue) name prefix (rt-relay-local-)
#   PUSH_SHARD_OVER   connections pushed inline before sharding (0 here: always shard)
#   RT_API_URL + RT_TOKEN, or RT_API_URL + RT_USERNAME + RT_PASSWORD:
#                     use that RT instead of installing and starting a local one
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export RUN_DIR=${RUN_DIR:-$ROOT/.run}
export RT_PORT=${RT_PORT:-8080}
export MOTO_PORT=${MOTO_PORT:-5055}
HTTP_PORT=${HTTP_PORT:-3000}
WS_PORT=${WS_PORT:-3001}
MANAGEMENT_PORT=${MANAGEMENT_PORT:-3002}
PROFILE=${PROFILE:-debug}
mkdir -p "$RUN_DIR"

log() { printf 'dev.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
http_code() { curl -s -o /dev/null -m 3 -w '%{http_code}' "$@" 2>/dev/null || true; }

case "$PROFILE" in
  debug) CARGO_PROFILE=(); TARGET_DIR=debug ;;
  release) CARGO_PROFILE=(--release); TARGET_DIR=release ;;
  *) die "PROFILE must be debug or release, not '$PROFILE'" ;;
esac

# ---------------------------------------------------------------- what we started

# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
GATEWAY_PID=""
DEV_KEY_ID=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$DEV_KEY_ID" ]; then
    log "revoking this session's API key $DEV_KEY_ID"
    "$KEYS_BIN" revoke "$DEV_KEY_ID" >/dev/null || true
  fi
  if [ -n "$GATEWAY_PID" ] && kill -0 "$GATEWAY_PID" 2>/dev/null; then
    log "stopping the gateway (pid $GATEWAY_PID)"
    kill -TERM "$GATEWAY_PID" 2>/dev/null || true
    # Graceful: sockets get a close frame and $disconnect runs; bounded at 20 s.
    for _ in $(seq 1 200); do kill -0 "$GATEWAY_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$GATEWAY_PID" 2>/dev/null && { log "gateway did not stop; killing it"; kill -KILL "$GATEWAY_PID" 2>/dev/null || true; }
  fi
  services_stop
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- prerequisites

services_prerequisites
command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs; version: rust-version in Cargo.toml), then rerun"

for port in "$HTTP_PORT" "$WS_PORT" "$MANAGEMENT_PORT"; do
  [ "$(http_code "http://127.0.0.1:$port/")" = 000 ] || die "port $port is in use; set HTTP_PORT / WS_PORT / MANAGEMENT_PORT"
done

# ---------------------------------------------------------------- RT

if [ -n "${RT_API_URL:-}" ] && { [ -n "${RT_TOKEN:-}" ] || { [ -n "${RT_USERNAME:-}" ] && [ -n "${RT_PASSWORD:-}" ]; }; }; then
  log "using the RT at $RT_API_URL (from the environment)"
  RT_SHOWN_URL=$RT_API_URL
  if [ -n "${RT_TOKEN:-}" ]; then RT_LOGIN="API token"; else RT_LOGIN="user $RT_USERNAME"; fi
elif [ -n "${RT_API_URL:-}" ]; then
  die "RT_API_URL is set but neither RT_TOKEN nor RT_USERNAME and RT_PASSWORD are"
else
  services_start rt
  export RT_API_URL="$RT_URL/REST/2.0/"
  RT_SHOWN_URL=$RT_URL
  RT_LOGIN="$RT_USERNAME / $RT_PASSWORD"
fi

# ---------------------------------------------------------------- moto

services_start moto

# ---------------------------------------------------------------- gateway

log "building the gateway and rt-relay-keys ($PROFILE)"
(cd "$ROOT" && cargo build -q -p rt-relay-gateway -p rt-relay-tools "${CARGO_PROFILE[@]}")

export GATEWAY_HTTP_ADDR="127.0.0.1:$HTTP_PORT"
export GATEWAY_WS_ADDR="127.0.0.1:$WS_PORT"
export GATEWAY_MANAGEMENT_ADDR="127.0.0.1:$MANAGEMENT_PORT"
export GATEWAY_CHECKPOINT=${GATEWAY_CHECKPOINT:-$RUN_DIR/stream-checkpoint.json}
# Every batch goes through the sharded path (the fan-out queue in moto and its workers),
# as a large deployment's would; set PUSH_SHARD_OVER=2000 for the deployed default.
export PUSH_SHARD_OVER=${PUSH_SHARD_OVER:-0}
export TABLE_PREFIX=${TABLE_PREFIX:-rt-relay-local-}
export RUST_LOG=${RUST_LOG:-info}

"$ROOT/target/$TARGET_DIR/rt-relay-gateway" &
GATEWAY_PID=$!

# Up means answering; a request without a key must get the authorizer's 401.
for _ in $(seq 1 300); do
  [ "$(http_code "http://127.0.0.1:$HTTP_PORT/notifications")" = 401 ] && break
  kill -0 "$GATEWAY_PID" 2>/dev/null || { GATEWAY_PID=""; die "the gateway exited during start-up (see above)"; }
  sleep 0.1
done
[ "$(http_code "http://127.0.0.1:$HTTP_PORT/notifications")" = 401 ] || die "the gateway did not answer (401 without a key) within 30 s"

# ---------------------------------------------------------------- API key

# The gateway has created the keys table. The key is printed below, once; only its hash is
# stored, and it is revoked when this script stops.
KEYS_BIN="$ROOT/target/$TARGET_DIR/rt-relay-keys"
API_KEY=$("$KEYS_BIN" mint --name "make dev $(date -u +%Y-%m-%dT%H:%M:%SZ)" --scopes all 2>/dev/null) \
  || die "could not mint an API key (try: $KEYS_BIN list)"
DEV_KEY_ID=$(printf '%s' "$API_KEY" | cut -d_ -f2)

cat <<EOF

rt-relay is running locally
  HTTP API       http://127.0.0.1:$HTTP_PORT   (POST/GET /tickets, GET /tickets/{id}, GET /notifications)
  WebSocket API  ws://127.0.0.1:$WS_PORT/?api_key=<key>
  Board          http://127.0.0.1:$HTTP_PORT/   (open it in a browser and give it the API key)
  API key        $API_KEY
                 (every scope; send it as 'Authorization: Bearer <key>'; revoked when this stops)
  RT             $RT_SHOWN_URL   (login: $RT_LOGIN)
  DynamoDB       $AWS_ENDPOINT_URL (moto), tables ${TABLE_PREFIX}*

  try: export RT_RELAY_KEY=$API_KEY
       curl -s -X POST http://127.0.0.1:$HTTP_PORT/tickets -H "authorization: Bearer \$RT_RELAY_KEY" \\
         -H 'content-type: application/json' \\
         -d '{"title":"Problema no Login","description":"Usuário não consegue fazer login no sistema."}'
       cargo run -q -p rt-relay-gateway --example listen -- "ws://127.0.0.1:$WS_PORT/?api_key=\$RT_RELAY_KEY"
  keys: target/$TARGET_DIR/rt-relay-keys list | mint --name NAME --scopes tickets:read,... | revoke KEY_ID

Ctrl-C stops everything this script started.
EOF

wait "$GATEWAY_PID"
