# shellcheck shell=bash
# The local services' start-up, sourced by scripts/test.sh, scripts/bench.sh and
# scripts/dev.sh: installs what RT and moto need, starts each on 127.0.0.1 unless it already
# runs, exports its variables, and stops (by pid, through its own script) only what this
# shell started.
#
#   . "$ROOT/scripts/services.sh"     needs ROOT (the project); RUN_DIR defaults to $ROOT/.run
#   services_prerequisites            curl, python3 and venv (apt-get, as root), Python tools
#   services_start rt moto            start each unless running; export its variables; its
#                                     env lines are also kept in $RUN_DIR/<service>.env
#   services_stop                     stop what services_start started (from an EXIT trap)

RUN_DIR=${RUN_DIR:-$ROOT/.run}
SERVICES_STARTED=()

services_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

services_prerequisites() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { services_log "please install: ${missing[*]}"; return 1; }
    [ "$(id -u)" = 0 ] || { services_log "please install (as root): apt-get install ${missing[*]}"; return 1; }
    services_log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  bash "$ROOT/scripts/tools.sh"
}

services_start() {
  local svc
  mkdir -p "$RUN_DIR"
  for svc in "$@"; do
    if [ ! -f "$RUN_DIR/$svc.pid" ] || ! kill -0 "$(cat "$RUN_DIR/$svc.pid")" 2>/dev/null; then
      SERVICES_STARTED+=("$svc")
    fi
    bash "$ROOT/scripts/$svc.sh" start >"$RUN_DIR/$svc.env"
    set -a
    # shellcheck disable=SC1090
    . "$RUN_DIR/$svc.env"
    set +a
  done
}

services_stop() {
  local svc
  for svc in "${SERVICES_STARTED[@]}"; do
    services_log "stopping $svc"
    bash "$ROOT/scripts/$svc.sh" stop || true
  done
  SERVICES_STARTED=()
}
