#!/usr/bin/env bash
# The clients' part of `make test`, run inside scripts/with-test-services.sh (it needs the
# nats-server and Cassandra those start, for the cluster test):
#   1. the SDK (clients/js): npm ci, dist/ up to date with the sources, unit tests on it;
#   2. the SDK against a real cluster whose gateway drains (clients/js/integration);
#   3. the web app's browser tests in Debian Chromium (clients/e2e), against the chorus
#      binary that `cargo test` built. Screenshots go to clients/e2e/screenshots/.
# npm's cache lives under $CHORUS_CACHE/npm, so a CI cache of that one directory covers it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHORUS_LOG_TAG=clients
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need_cmd node npm
export npm_config_cache="$CHORUS_CACHE/npm" npm_config_fund=false npm_config_audit=false \
  npm_config_update_notifier=false npm_config_loglevel=error

CHORUS_BIN="${CHORUS_BIN:-$PWD/target/debug/chorus}"
[ -x "$CHORUS_BIN" ] || die "no chorus binary at $CHORUS_BIN (cargo build -p chorus)"
export CHORUS_BIN

log "SDK: npm ci, check-dist, unit tests"
(
  cd clients/js
  npm ci
  # dist/ as committed must be what the sources build to; the tests then run against it as
  # it is. (`npm test` would rebuild it in place first: the new mtimes make cargo rebuild the
  # gateway, which embeds dist/, in every profile: minutes for the same bytes.)
  npm run --silent check-dist
  node --test test/*.test.mjs
)

if [ -n "${CHORUS_TEST_NATS_URL:-}" ] && [ -n "${CHORUS_TEST_CQL:-}" ]; then
  log "SDK: a draining cluster gateway"
  (cd clients/js && npm run --silent integration)
else
  die "CHORUS_TEST_NATS_URL / CHORUS_TEST_CQL unset: run through scripts/with-test-services.sh"
fi

log "web app: browser tests in Chromium"
CHROMIUM=$(bash scripts/chromium.sh | tail -n 1)
export CHROMIUM
(
  cd clients/e2e
  npm ci
  npm test
)
