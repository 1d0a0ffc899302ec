#!/usr/bin/env bash
# Runs a command with the real services the test suite uses, started on loopback test ports
# and stopped afterwards (also on failure):
#   nats-server on $CHORUS_TEST_NATS_PORT (default 14222) -> CHORUS_TEST_NATS_URL
# Installs them first if needed (cached under ~/.cache/chorus; see scripts/README.md).
#
#   scripts/with-test-services.sh cargo test --workspace
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${CHORUS_TEST_NATS_PORT:-14222}
nats() { NATS_PORT=$port NATS_HTTP_PORT=$((port + 1000)) bash scripts/nats.sh "$@"; }
nats install
trap 'nats clean >/dev/null 2>&1 || true' EXIT
CHORUS_TEST_NATS_URL=$(nats start | tail -n 1)
export CHORUS_TEST_NATS_URL
"$@"
