#!/usr/bin/env bash
# Runs a command with the real services the test suite uses, started on loopback test ports
# and stopped afterwards (also on failure):
#   nats-server on $CHORUS_TEST_NATS_PORT (default 14222)  -> CHORUS_TEST_NATS_URL
#   Cassandra 5.0 on $CHORUS_TEST_CQL_PORT (default 19042)  -> CHORUS_TEST_CQL
#     (storage port $CHORUS_TEST_CQL_STORAGE_PORT, default 17000; no JMX;
#      heap $CHORUS_TEST_CASSANDRA_HEAP, default 512M)
#   a second Cassandra that requires a login (PasswordAuthenticator) on
#     $CHORUS_TEST_CQL_LOGIN_PORT (default 19043; storage port 17001), with a role made
#     for the tests                                           -> CHORUS_TEST_CQL_LOGIN,
#                          CHORUS_TEST_CQL_LOGIN_USER, CHORUS_TEST_CQL_LOGIN_PASSWORD
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
login_port=${CHORUS_TEST_CQL_LOGIN_PORT:-19043}
# The node whose clients must log in: its own ports, a smaller heap (it holds a few keyspaces).
cassandra_login() {
  CASSANDRA_PORT=$login_port \
    CASSANDRA_STORAGE_PORT=${CHORUS_TEST_CQL_LOGIN_STORAGE_PORT:-17001} \
    CASSANDRA_JMX_PORT=off CASSANDRA_AUTH=password CASSANDRA_HEAP=384M \
    CASSANDRA_JVM_EXTRA_OPTS="-Dcassandra.test.flush_local_schema_changes=false" \
    bash scripts/cassandra.sh "$@"
}

tmp=$(mktemp -d)
cleanup() {
  nats clean >/dev/null 2>&1 || true
  cassandra clean >/dev/null 2>&1 || true
  cassandra_login clean >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

(cassandra install && cassandra start) >"$tmp/cql" &
cql_start=$!
# The login node starts once the jars are there (the install lock serializes the two).
(cassandra install >/dev/null && cassandra_login start) >"$tmp/cql-login" &
cql_login_start=$!
nats install
CHORUS_PROMTOOL=$(bash scripts/prometheus.sh | tail -n 1)
CHORUS_OTELCOL=$(bash scripts/otelcol.sh | tail -n 1)
CHORUS_TEST_NATS_URL=$(nats start | tail -n 1)
if ! wait "$cql_start"; then
  echo "with-test-services: cassandra did not start (see the log above)" >&2
  exit 1
fi
CHORUS_TEST_CQL=$(tail -n 1 "$tmp/cql")
if ! wait "$cql_login_start"; then
  echo "with-test-services: the Cassandra that requires a login did not start (see the log above)" >&2
  exit 1
fi
CHORUS_TEST_CQL_LOGIN=$(tail -n 1 "$tmp/cql-login")
CHORUS_TEST_CQL_LOGIN_USER=chorus_test
CHORUS_TEST_CQL_LOGIN_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# As the node's default superuser; the password reaches the driver through the environment.
# (Dropped first: a node left over from an interrupted run keeps the role of that run.)
cassandra_login cql "DROP ROLE IF EXISTS $CHORUS_TEST_CQL_LOGIN_USER" \
  "CREATE ROLE $CHORUS_TEST_CQL_LOGIN_USER WITH LOGIN = true AND PASSWORD = '$CHORUS_TEST_CQL_LOGIN_PASSWORD'" >/dev/null
export CHORUS_TEST_NATS_URL CHORUS_TEST_CQL CHORUS_PROMTOOL CHORUS_OTELCOL
export CHORUS_TEST_CQL_LOGIN CHORUS_TEST_CQL_LOGIN_USER CHORUS_TEST_CQL_LOGIN_PASSWORD
"$@"
