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

install_debian_packages "$CHROMIUM_BIN" chromium fonts-dejavu-core
log "$("$CHROMIUM_BIN" --version 2>/dev/null || echo 'chromium (version unknown)')"
echo "$CHROMIUM_BIN"
