#!/usr/bin/env bash
# The project's one test command (README: `make test`). On a fresh Debian 12 machine it
# installs what is missing (Python tools, RT), starts RT and moto on 127.0.0.1 unless
# they already run, then runs every test: unit, real-RT adapter, DynamoDB-on-moto,
# end-to-end through the local gateway (in-process, and the binary for crash tests),
# faults, load, the OpenAPI document, the template checks and the web board in a headless
# Chromium; then schemathesis against
# the gateway's OpenAPI document (scripts/schemathesis.sh). It fails if either fails.
# Services this run started are stopped when it ends; ones already running are left alone.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN_DIR=${RUN_DIR:-$ROOT/.run}
mkdir -p "$RUN_DIR"

# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
trap services_stop EXIT
services_prerequisites
# The web board's browser test (tests/tests/board.rs) drives Debian's Chromium.
bash scripts/chromium.sh
services_start rt moto
export PATH="$ROOT/.venv/bin:$PATH"

# The load test holds ~1,000 sockets in one process (500 clients and their server ends).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Tests that kill the gateway run its binary, and schemathesis mints its key with
# rt-relay-keys: build both first.
cargo build -q -p rt-relay-gateway -p rt-relay-tools --bins

status=0
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$RUN_DIR/cargo-test.log" || status=$?
# Sum cargo's per-binary "test result:" lines, so the run ends on one total (the last of
# cargo's own lines is a doc-test binary's "0 passed", which says nothing).
read -r passed failed < <(awk '/^test result:/ {
    for (i = 2; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
  END { print p + 0, f + 0 }' "$RUN_DIR/cargo-test.log")
# Schemathesis only on a full run (arguments select tests: then skip it).
if [ $# -eq 0 ]; then
  st=0
  bash scripts/schemathesis.sh || st=$?
  [ "$status" = 0 ] && status=$st
fi
[ "$passed" -gt 0 ] || { echo "test.sh: no test ran" >&2; [ "$status" = 0 ] && status=1; }
echo "total: $passed passed, $failed failed"
exit "$status"
