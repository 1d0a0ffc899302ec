#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's packages (for `promtool check metrics` in the
# metrics test, and a real Prometheus for the dashboard tests) and prints promtool's path.
#
# Idempotent: a no-op when /usr/bin/promtool is there. Needs root, or sudo without a password.
# The package's own service is not started: tests run their own Prometheus on a test port.
#
# Usage: PROMTOOL=$(scripts/prometheus.sh)    # last line on stdout is promtool's path
set -euo pipefail

CHORUS_LOG_TAG=prometheus
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

PROMTOOL_BIN="${PROMTOOL_BIN:-/usr/bin/promtool}"

install_prometheus() {
  if [ -x "$PROMTOOL_BIN" ]; then
    return 0
  fi
  need_cmd apt-get
  log "installing Debian package prometheus"
  local start
  start=$(now_s)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
    die "apt-get update failed (run as root, or with passwordless sudo)"
  # policy-rc.d-free environments (containers) cannot start the packaged service; that is
  # fine, and its failure must not fail the install.
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq \
    --no-install-recommends prometheus >&2 || [ -x "$PROMTOOL_BIN" ] ||
    die "apt-get install prometheus failed"
  [ -x "$PROMTOOL_BIN" ] || die "prometheus installed but $PROMTOOL_BIN is missing"
  log "installed in $(elapsed "$start") s"
}

mkdir -p "$CHORUS_CACHE"
with_lock "$CHORUS_CACHE/prometheus.lock" install_prometheus
log "$("$PROMTOOL_BIN" --version 2>&1 | head -n 1)"
echo "$PROMTOOL_BIN"
