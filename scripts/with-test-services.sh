#!/usr/bin/env bash
# Runs a command with the real services the test suite uses, started on loopback test ports
# and stopped afterwards (also on failure):
#   nats-server on $CHORUS_TEST_NATS_PORT (default 14222)  -> CHORUS_TEST_NATS_URL
#   Cassandra 5.0 on $CHORUS_TEST_CQL_PORT (default 19042)  -> CHORUS_TEST_CQL
#     (storage port $CHORUS_TEST_CQL_STORAGE_PORT, default 17000; no JMX;
#      heap $CHORUS_TEST_CASSANDRA_HEAP, default 512M)
#   promtool (Debian's prometheus package)                    -> CHORUS_PROMTOOL
#   an OpenTelemetry Collector (built by scripts/otelcol.sh)  -> CHORUS_OTELCOL
# Installs them first if needed (cached under ~/.cache/chorus; see scripts/README.md).
# Cassandra starts in the background while NATS installs and starts.
#
#   scripts/with-test-services.sh cargo test --workspace
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${CHORUS_TEST_NATS_PORT:-14222}
cql_port=${CHORUS_TEST_CQL_PORT:-19042}
nats() { NATS_PORT=$port NATS_HTTP_PORT=$((port + 1000)) bash scripts/nats.sh "$@"; }
cassandra() {
  # Test keyspaces are created and dropped by the dozen: skipping the flush of the schema
  # tables after each change halves the time a schema change takes (the commit log still
  # has it; this node's data is thrown away anyway).
  CASSANDRA_PORT=$cql_port \
    CASSANDRA_STORAGE_PORT=${CHORUS_TEST_CQL_STORAGE_PORT:-17000} \
    CASSANDRA_JMX_PORT=off \
    CASSANDRA_HEAP=${CHORUS_TEST_CASSANDRA_HEAP:-512M} \
    CASSANDRA_JVM_EXTRA_OPTS="-Dcassandra.test.flush_local_schema_changes=false ${CASSANDRA_JVM_EXTRA_OPTS:-}" \
    bash scripts/cassandra.sh "$@"
}

tmp=$(mktemp -d)
cleanup() {
  nats clean >/dev/null 2>&1 || true
  cassandra clean >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

(cassandra install && cassandra start) >"$tmp/cql" &
cql_start=$!
nats install
CHORUS_PROMTOOL=$(bash scripts/prometheus.sh | tail -n 1)
CHORUS_OTELCOL=$(bash scripts/otelcol.sh | tail -n 1)
CHORUS_TEST_NATS_URL=$(nats start | tail -n 1)
if ! wait "$cql_start"; then
  echo "with-test-services: cassandra did not start (see the log above)" >&2
  exit 1
fi
CHORUS_TEST_CQL=$(tail -n 1 "$tmp/cql")
export CHORUS_TEST_NATS_URL CHORUS_TEST_CQL CHORUS_PROMTOOL CHORUS_OTELCOL
"$@"
