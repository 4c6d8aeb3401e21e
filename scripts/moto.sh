#!/usr/bin/env bash
# Starts moto (local DynamoDB + DynamoDB Streams) on 127.0.0.1, idempotently.
#
#   scripts/moto.sh start   start unless already answering; prints AWS_* env lines
#   scripts/moto.sh stop    stop the server this script started (by pid)
#   scripts/moto.sh env     print the AWS_* variables
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_DIR=${RUN_DIR:-$ROOT/.run}
MOTO_PORT=${MOTO_PORT:-5055}
VENV=${VENV:-$ROOT/.venv}
mkdir -p "$RUN_DIR"

up() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$MOTO_PORT/moto-api/" ; }
running() { [ -f "$RUN_DIR/moto.pid" ] && kill -0 "$(cat "$RUN_DIR/moto.pid")" 2>/dev/null; }

print_env() {
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT"
  echo "AWS_REGION=us-east-1"
  echo "AWS_DEFAULT_REGION=us-east-1"
  # moto accepts any credentials; these are placeholders, not secrets.
  echo "AWS_ACCESS_KEY_ID=test"
  echo "AWS_SECRET_ACCESS_KEY=test"
}

case "${1:-start}" in
  start)
    if ! up; then
      bash "$ROOT/scripts/tools.sh"
      echo "moto.sh: starting moto on 127.0.0.1:$MOTO_PORT" >&2
      setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN_DIR/moto.log" 2>&1 </dev/null &
      echo $! >"$RUN_DIR/moto.pid"
      for _ in $(seq 1 100); do up && break; running || { tail -20 "$RUN_DIR/moto.log" >&2; exit 1; }; sleep 0.1; done
      up || { echo "moto.sh: moto did not start" >&2; exit 1; }
    fi
    print_env ;;
  stop)
    if running; then kill -- "-$(cat "$RUN_DIR/moto.pid")" 2>/dev/null || kill "$(cat "$RUN_DIR/moto.pid")"; fi
    rm -f "$RUN_DIR/moto.pid" ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
