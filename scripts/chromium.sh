#!/usr/bin/env bash
# Installs Debian's Chromium for the web app's browser tests (clients/e2e) and prints its path.
#
# Idempotent: a no-op when /usr/bin/chromium is already there. Installs only from Debian's
# packages (never a browser downloaded by a test tool). Needs root, or sudo without a password.
#
# Usage: CHROMIUM=$(scripts/chromium.sh)    # last line on stdout is the path
set -euo pipefail

export CHORUS_LOG_TAG=chromium
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

install_chromium() {
  if [ -x "$CHROMIUM_BIN" ]; then
    return 0
  fi
  need_cmd apt-get
  log "installing Debian package chromium"
  local start
  start=$(now_s)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
    die "apt-get update failed (run as root, or with passwordless sudo)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >&2 ||
    die "apt-get install chromium failed"
  [ -x "$CHROMIUM_BIN" ] || die "chromium installed but $CHROMIUM_BIN is missing"
  log "installed in $(elapsed "$start") s"
}

# Two concurrent runs (say, two test suites) must not run apt-get at once.
mkdir -p "$CHORUS_CACHE"
with_lock "$CHORUS_CACHE/chromium.lock" install_chromium
log "$("$CHROMIUM_BIN" --version 2>/dev/null || echo 'chromium (version unknown)')"
echo "$CHROMIUM_BIN"
