#!/usr/bin/env bash
# The Grafana dashboards (charts/chorus/dashboards/*.json) against a real Prometheus scraping a
# real local cluster under load: every query of every panel must return data.
#
#   scripts/with-test-services.sh bash scripts/dashboards-test.sh
#
# Needs the services with-test-services.sh starts (CHORUS_TEST_NATS_URL, CHORUS_TEST_CQL). It:
#   1. starts Prometheus (Debian's package, scripts/prometheus.sh) on a free loopback port,
#      scraping every second the four processes below under the jobs chorus-gateway and
#      chorus-router;
#   2. migrates a fresh keyspace and starts 2 routers and 2 gateways (the second with a low
#      send rate, so that some sends are refused with rate_limited) with their own subject
#      prefix, on free loopback ports;
#   3. runs loadtest/k6/rooms.js against both gateways, and in the middle SIGKILLs router-2 and
#      starts it again: rooms move and come back, calls fail, clients get `unavailable`;
#   4. runs every panel's queries (scripts/dashboards_check.py) over the run's time range, with
#      $namespace as .* and $__rate_interval as 10s, and fails naming each query that returned
#      no series or only NaN. It prints how many dashboards, panels and queries it checked.
# Everything it started is stopped on exit; the keyspace is dropped.
#
# Environment: CHORUS_BIN (dist/chorus when present, else target/debug/chorus),
# DASHBOARDS_LOAD_SECS (30), CHORUS_CACHE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
CHORUS_LOG_TAG=dashboards
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

if [ -z "${CHORUS_BIN:-}" ]; then
  CHORUS_BIN="$REPO/dist/chorus"
  [ -x "$CHORUS_BIN" ] || CHORUS_BIN="$REPO/target/debug/chorus"
fi
[ -x "$CHORUS_BIN" ] || die "no chorus binary at $CHORUS_BIN (make dist, or set CHORUS_BIN)"
: "${CHORUS_TEST_NATS_URL:?run under scripts/with-test-services.sh}"
: "${CHORUS_TEST_CQL:?run under scripts/with-test-services.sh}"
LOAD_SECS="${DASHBOARDS_LOAD_SECS:-30}"
PROMETHEUS=/usr/bin/prometheus

bash "$SCRIPT_DIR/prometheus.sh" >/dev/null
[ -x "$PROMETHEUS" ] || die "no Prometheus at $PROMETHEUS after scripts/prometheus.sh"
K6=$(bash "$SCRIPT_DIR/k6.sh" | tail -n 1)

work=$(mktemp -d "${TMPDIR:-/tmp}/chorus-dashboards.XXXXXX")
run_id="d$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
keyspace="dash_$run_id"
pids=()
declare -A pid_of

# shellcheck disable=SC2317 # reached through the trap only
cleanup() {
  local rc=$? pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -f "$f" ] && show_log_tail "$f" 15
    done
    grep -s '^NO DATA' "$work/check.out" >&2 || true
    log "FAILED: ${CHORUS_DIE_REASON:-exit $rc}"
  fi
  drop_keyspace >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Drops the run's keyspace through the cqlsh-less route the tests use: the Python driver in
# scripts/cassandra.sh's venv.
drop_keyspace() {
  local py="$CHORUS_CACHE/venv/bin/python"
  [ -x "$py" ] || return 0
  "$py" - "$CHORUS_TEST_CQL" "$keyspace" <<'PY'
import sys
from cassandra.cluster import Cluster
host, port = sys.argv[1].rsplit(":", 1)
s = Cluster([host], port=int(port)).connect()
s.execute(f"DROP KEYSPACE IF EXISTS {sys.argv[2]}")
PY
}

# free_ports N: N distinct ports that are free now, below the kernel's ephemeral range. A port
# the kernel handed out (bind to port 0) could be taken again by any outgoing connection (a
# NATS or CQL client, a Prometheus scrape) before the process meant to listen on it starts;
# ports below that range are never handed out that way. router-2 gets its ports back after
# the SIGKILL for the same reason.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
lo, hi = (20000, low - 1) if low > 21000 else (1024, 65535)
chosen = set()
while len(chosen) < int(sys.argv[1]):
    port = random.randint(lo, hi)
    if port in chosen:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    chosen.add(port)
print(" ".join(map(str, chosen)))
PY
}

# start NAME ARGS...: chorus ARGS in the background, output in $work/NAME.log.
start() {
  local name=$1
  shift
  "$CHORUS_BIN" "$@" </dev/null >"$work/$name.log" 2>&1 9>&- &
  pid_of[$name]=$!
  pids+=("$!")
}

# wait_ready NAME PORT: /readyz answers 200 on PORT (http_get fails on any other status).
wait_ready() {
  local name=$1 port=$2 deadline=$(($(date +%s) + 60))
  until http_get 127.0.0.1 "$port" /readyz >/dev/null 2>&1; do
    pid_alive "${pid_of[$name]}" || die "$name exited during start-up"
    [ "$(date +%s)" -lt "$deadline" ] || die "$name not ready within 60 s"
    sleep 0.2
  done
}

export CHORUS_JWT_SECRET
CHORUS_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CHORUS_NATS_URL="$CHORUS_TEST_NATS_URL" CHORUS_CLUSTER_PREFIX="$run_id" \
  CHORUS_MEMBER_TTL=2s CHORUS_SESSION_TTL=2s CHORUS_CLOCK_DRIFT=250ms \
  CHORUS_CQL_CONTACT_POINTS="$CHORUS_TEST_CQL" CHORUS_CQL_KEYSPACE="$keyspace" NO_COLOR=1

read -r r1_grpc r1_http r2_grpc r2_http gw1 gw2 prom <<<"$(free_ports 7)"

# 1. Prometheus first, so it sees the routers start (their first slot claims).
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: chorus-gateway
    static_configs:
      - targets: ["127.0.0.1:$gw1", "127.0.0.1:$gw2"]
  - job_name: chorus-router
    static_configs:
      - targets: ["127.0.0.1:$r1_http", "127.0.0.1:$r2_http"]
EOF
"$PROMETHEUS" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom" >"$work/prometheus.log" 2>&1 &
pid_of[prometheus]=$!
pids+=("$!")
start_s=$(date +%s)
deadline=$((start_s + 30))
until http_get 127.0.0.1 "$prom" /-/ready >/dev/null 2>&1; do
  pid_alive "${pid_of[prometheus]}" || die "Prometheus exited during start-up"
  [ "$(date +%s)" -lt "$deadline" ] || die "Prometheus not ready within 30 s"
  sleep 0.2
done
log "Prometheus $("$PROMETHEUS" --version 2>&1 | head -n 1 | awk '{ print $3 }') on 127.0.0.1:$prom, scraping every 1 s"

# 2. The cluster.
"$CHORUS_BIN" migrate >"$work/migrate.log" 2>&1 || die "chorus migrate failed: $(cat "$work/migrate.log")"
router() {
  start "$1" router --name "$1" --grpc-listen "127.0.0.1:$2" --http-listen "127.0.0.1:$3"
}
router router-1 "$r1_grpc" "$r1_http"
router router-2 "$r2_grpc" "$r2_http"
start gateway-1 gateway --listen "127.0.0.1:$gw1"
start gateway-2 gateway --listen "127.0.0.1:$gw2" --send-rate 2 --send-burst 2
for p in "router-1 $r1_http" "router-2 $r2_http" "gateway-1 $gw1" "gateway-2 $gw2"; do
  # shellcheck disable=SC2086 # two words on purpose
  wait_ready $p
done
log "cluster up: routers :$r1_http :$r2_http, gateways :$gw1 :$gw2 (keyspace $keyspace, prefix $run_id)"

# 3. Load, with a router killed and restarted in the middle.
CHORUS_URL="http://127.0.0.1:$gw1,http://127.0.0.1:$gw2" K6_NO_USAGE_REPORT=true \
  K6_AUTO_EXTENSION_RESOLUTION=false ROOMS_COUNT=20 ROOMS_PER_CONN=3 ROOMS_RATE=4 \
  ROOMS_MSGS=$((LOAD_SECS * 4 / 3)) ROOMS_SEND_DELAY=1s \
  "$K6" run --quiet "$REPO/loadtest/k6/rooms.js" >"$work/k6.log" 2>&1 &
k6_pid=$!
pids+=("$k6_pid")
sleep $((LOAD_SECS / 3))
log "SIGKILL router-2 under load, then start it again"
kill -KILL "${pid_of[router-2]}"
wait "${pid_of[router-2]}" 2>/dev/null || true
sleep 4
router router-2 "$r2_grpc" "$r2_http"
wait_ready router-2 "$r2_http"
k6_rc=0
wait "$k6_pid" || k6_rc=$?
log "k6 load done (exit $k6_rc; the router kill makes some sends fail, which is the point here)"
# Two more scrapes after the load.
sleep 3
end_s=$(date +%s)

# 4. Every panel's queries over the run.
python3 "$SCRIPT_DIR/dashboards_check.py" --prometheus "http://127.0.0.1:$prom" \
  --start "$start_s" --end "$end_s" "$REPO"/charts/chorus/dashboards/*.json |
  tee "$work/check.out" ||
  die "dashboards_check.py failed: $(tail -n 1 "$work/check.out")"
