#!/usr/bin/env bash
# Installs Debian's Chromium for the web board's browser test (tests/tests/board.rs drives it
# headless over the DevTools protocol; no WebDriver, no browser download). Idempotent: prints
# nothing when it is there. CHROMIUM names another binary to use instead.
set -euo pipefail
BIN=${CHROMIUM:-/usr/bin/chromium}
[ -x "$BIN" ] && exit 0
command -v apt-get >/dev/null || { echo "chromium.sh: please install Chromium (Debian: apt-get install chromium)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "chromium.sh: please install (as root): apt-get install chromium" >&2; exit 1; }
echo "chromium.sh: installing chromium from Debian's packages" >&2
apt-get update -qq
# fonts-dejavu-core: the page's text in the screenshots (a bare system has no fonts).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
[ -x "$BIN" ] || { echo "chromium.sh: $BIN is still missing after the install" >&2; exit 1; }
