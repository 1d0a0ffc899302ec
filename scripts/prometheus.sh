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

install_debian_packages "$PROMTOOL_BIN" prometheus
log "$("$PROMTOOL_BIN" --version 2>&1 | head -n 1)"
echo "$PROMTOOL_BIN"
