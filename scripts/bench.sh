#!/usr/bin/env bash
# The project's benchmark command (README: `make bench`; docs/PERFORMANCE.md). Not part of
# `make test`. Like scripts/test.sh it installs what is missing and starts RT and moto on
# 127.0.0.1 unless they already run; then it builds the release binaries and runs the four
# benchmark binaries (tests/src/bin/*_bench.rs), each bounded in time, and prints ONE table
# of ratios, each of two things measured side by side in this run. Everything stays on
# loopback. The table is also written to .run/bench/table.md.
#
#   scripts/bench.sh                 everything (about 15 min on 2 cores, after the build)
#   BENCH_ONLY="paging cold_start" scripts/bench.sh     a subset
#   BENCH_QUICK=1 scripts/bench.sh   small sizes, for trying the command out
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN_DIR=${RUN_DIR:-$ROOT/.run}
OUT="$RUN_DIR/bench"
mkdir -p "$OUT"

# shellcheck source=scripts/services.sh
. "$ROOT/scripts/services.sh"
trap services_stop EXIT
services_prerequisites
services_start rt moto

# 10,000 WebSocket clients live in one child process and their server sockets in the
# bench process: each needs a little over 10,000 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "bench.sh: the open-file limit is $(ulimit -n); the 10,000-client fan-out needs about 12,000 (ulimit -n)" >&2
  exit 1
fi

BENCHES=" ${BENCH_ONLY:-create paging fanout sharded_fanout cold_start} "
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR="$TARGET_DIR/release"

# The one release profile ([profile.release] in Cargo.toml), as cargo lambda and `sam build`
# use it. First what is measured, in one build so that it shares one feature resolution:
# every function (the workspace's default members, which is what `sam build` resolves
# features over) and the hello-world baseline; then the benchmark programs, which pull in
# the gateway and test crates (their features do not reach the binaries built above).
functions=()
for dir in functions/*/; do functions+=(-p "$(basename "$dir")"); done
echo "bench.sh: building release binaries (incremental; the first build takes several minutes)" >&2
cargo build --release --bins -p hello-lambda "${functions[@]}" >&2
benches=()
for name in create paging fanout sharded_fanout cold_start; do
  case "$BENCHES" in *" $name "*) ;; *) continue ;; esac
  bin=${name}_bench
  [ "$name" = fanout ] && bin=gateway_fanout_bench
  benches+=(--bin "$bin")
done
cargo build --release -p rt-relay-tests "${benches[@]}" >&2

if [ -n "${BENCH_QUICK:-}" ]; then
  paging_args=(--large 2000 --samples 3); cold_args=(--runs 3 --bin-dir "$BIN_DIR"); create_args=(--creates 10)
  fanout_args=(--sizes "100,1000" --rounds 1 --latency-ms 2)
  sharded_args=(--connections 5000 --latency-ms 2)
else
  # Own time per page is ~0.1 ms: 11 samples keep its median steady on a busy machine.
  paging_args=(--samples 11); cold_args=(--bin-dir "$BIN_DIR"); create_args=(); fanout_args=(); sharded_args=()
fi

failed=0
run() { # name, time limit in seconds, args...
  local name=$1 limit=$2; shift 2
  case "$BENCHES" in *" $name "*) ;; *) return 0 ;; esac
  local bin="$BIN_DIR/${name}_bench"
  [ "$name" = fanout ] && bin="$BIN_DIR/gateway_fanout_bench"
  echo "bench.sh: $name (at most ${limit} s)" >&2
  local t0=$SECONDS
  if timeout --kill-after=10 "$limit" "$bin" "$@" >"$OUT/$name.rows" 2> >(sed -u "s/^/  /" >&2); then
    echo "bench.sh: $name done in $((SECONDS - t0)) s" >&2
  else
    local rc=$?
    failed=1
    echo "| $name | the $name bench failed (exit $rc after $((SECONDS - t0)) s; see its output above) | | | **no** | |" >>"$OUT/$name.rows"
  fi
}
rm -f "$OUT"/*.rows
run create 600 "${create_args[@]}"
run paging 1200 "${paging_args[@]}"
run fanout 900 "${fanout_args[@]}"
# 100,000 registered connections, 1, 4 and 16 shards through moto's SQS (its own queues).
run sharded_fanout 1200 "${sharded_args[@]}"
run cold_start 900 "${cold_args[@]}"

# `[profile.release]` of Cargo.toml on one line.
profile() {
  awk '/^\[/ { p = ($0 == "[profile.release]") } p && /=/ { sub(/ *#.*/, ""); printf "%s%s", sep, $0; sep = ", " }' "$ROOT/Cargo.toml"
}

machine() {
  local cpu mem
  cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
  mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $mem RAM; $(uname -sr); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "Toolchain: $(rustc --version); release profile (Cargo.toml): $(profile). Services on 127.0.0.1: RT $(dpkg-query -W -f='${Version}' request-tracker5 2>/dev/null || echo '?') (REST 2.0, SQLite), moto $("$ROOT/.venv/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')."
  echo "Run: $(date -u '+%Y-%m-%d %H:%M UTC'), ${BENCH_ONLY:+BENCH_ONLY=\"$BENCH_ONLY\" }${BENCH_QUICK:+BENCH_QUICK=1 }scripts/bench.sh"
}

{
  machine
  echo
  printf '%s\n' "| # | figure | ratio | target | met | measured side by side |" "|---|---|---|---|---|---|"
  for name in create paging fanout cold_start; do
    if [ -f "$OUT/$name.rows" ]; then grep '^|' "$OUT/$name.rows" || true; fi
  done
  if [ -f "$OUT/sharded_fanout.rows" ]; then
    printf '\nSharded fan-out (issue 11): time until the last connection has the notification\n\n'
    grep '^|' "$OUT/sharded_fanout.rows" || true
  fi
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
exit "$failed"
