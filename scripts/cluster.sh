#!/usr/bin/env bash
# A local Chorus cluster on this machine: up | down | status | logs [NAME...] | clean
#
#   scripts/cluster.sh up       # build, start NATS + Cassandra, migrate, 2 routers, 2 gateways; print how to connect
#   scripts/cluster.sh down     # stop gateways, routers, Cassandra, NATS (no-op when nothing runs)
#   scripts/cluster.sh status   # each process and whether it is alive and ready; exit 0 all up, 3 all stopped, 1 mixed
#   scripts/cluster.sh logs     # tail -F every log (or only NAME..., e.g. router-1 gateway-8081)
#   scripts/cluster.sh clean    # down, then delete .chorus-cluster (data, logs, generated secret)
#
# Processes (all on loopback):
#   nats-server   :$CLUSTER_NATS_PORT (4222), monitoring :$NATS_HTTP_PORT (port + 4000)
#   cassandra     :$CLUSTER_CQL_PORT (9042), storage :$CASSANDRA_STORAGE_PORT (7000), JMX $CASSANDRA_JMX_PORT (off)
#   router-1      gRPC :7001, health and metrics :9101
#   router-2      gRPC :7002, health and metrics :9102
#   gateway-8081  WebSocket, health and metrics :8081
#   gateway-8082  WebSocket, health and metrics :8082
#
# Everything lives in $CLUSTER_DIR (.chorus-cluster in the repository): logs/ (one file per
# process, plus links to the NATS and Cassandra logs), run/ (pid files), services/ (NATS and
# Cassandra data), jwt-secret (generated when CHORUS_JWT_SECRET is not set; mode 0600).
#
# Environment: CLUSTER_NATS_PORT (4222), CLUSTER_CQL_PORT (9042), CLUSTER_KEYSPACE (chorus),
# CLUSTER_SKIP_BUILD (0; 1 uses the existing target/release/chorus), CLUSTER_START_TIMEOUT
# (60, seconds per process), CLUSTER_DIR, CHORUS_JWT_SECRET (at least 32 bytes), CARGO;
# passed on to scripts/nats.sh and scripts/cassandra.sh: NATS_HTTP_PORT, CASSANDRA_STORAGE_PORT,
# CASSANDRA_JMX_PORT, CASSANDRA_HEAP, ...; other CHORUS_* variables (CHORUS_LOG,
# CHORUS_MEMBER_TTL, ...) reach the routers and gateways.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CHORUS_LOG_TAG=cluster
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

CLUSTER_DIR="${CLUSTER_DIR:-$REPO_ROOT/.chorus-cluster}"
LOG_DIR="$CLUSTER_DIR/logs"
PID_DIR="$CLUSTER_DIR/run"
SECRET_FILE="$CLUSTER_DIR/jwt-secret"
# The gateways' secret, as a SHA-256 fingerprint: tells a later `up` whether it matches.
SECRET_PRINT="$PID_DIR/jwt-secret.sha256"
CLUSTER_START_TIMEOUT="${CLUSTER_START_TIMEOUT:-60}"
CLUSTER_KEYSPACE="${CLUSTER_KEYSPACE:-chorus}"
CARGO="${CARGO:-cargo}"
CHORUS_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/chorus"
HOST=127.0.0.1

# NATS and Cassandra through their own scripts, with their run dirs inside the cluster's.
CLUSTER_NATS_PORT="${CLUSTER_NATS_PORT:-${NATS_PORT:-4222}}"
CLUSTER_CQL_PORT="${CLUSTER_CQL_PORT:-${CASSANDRA_PORT:-9042}}"
export NATS_PORT="$CLUSTER_NATS_PORT"
export NATS_HTTP_PORT="${NATS_HTTP_PORT:-$((CLUSTER_NATS_PORT + 4000))}"
export CASSANDRA_PORT="$CLUSTER_CQL_PORT"
export CASSANDRA_JMX_PORT="${CASSANDRA_JMX_PORT:-off}"
export CHORUS_RUN_DIR="$CLUSTER_DIR/services"
NATS_URL="nats://$HOST:$CLUSTER_NATS_PORT"
CQL_ADDR="$HOST:$CLUSTER_CQL_PORT"

# name grpc-port http-port
ROUTERS=("router-1 7001 9101" "router-2 7002 9102")
GATEWAY_PORTS=(8081 8082)

nats() { bash "$SCRIPT_DIR/nats.sh" "$@"; }
cassandra() { bash "$SCRIPT_DIR/cassandra.sh" "$@"; }

# A path as the user should type it: relative when under the current directory.
show_path() {
  case "$1" in
    "$PWD"/*) echo "./${1#"$PWD"/}" ;;
    *) echo "$1" ;;
  esac
}

# Every chorus process is recognised by its command line (guards against recycled pids).
router_pattern() { echo "chorus router --name $1 "; }
gateway_pattern() { echo "chorus gateway --listen $HOST:$1 "; }

# ---------------------------------------------------------------------------- secret

# Sets SECRET and SECRET_SOURCE (env or file), generating the file on first use.
load_secret() {
  if [ -n "${CHORUS_JWT_SECRET:-}" ]; then
    local bytes
    bytes=$(printf '%s' "$CHORUS_JWT_SECRET" | wc -c)
    [ "$bytes" -ge 32 ] || die "CHORUS_JWT_SECRET is $bytes bytes; it must be at least 32 (or unset it to use a generated one)"
    SECRET="$CHORUS_JWT_SECRET"
    SECRET_SOURCE="env"
    return 0
  fi
  if [ -s "$SECRET_FILE" ]; then
    SECRET=$(tr -d ' \n' <"$SECRET_FILE")
    [ "${#SECRET}" -ge 32 ] || die "$SECRET_FILE holds fewer than 32 bytes: delete it to generate a new secret"
  else
    mkdir -p "$CLUSTER_DIR"
    SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (
      umask 077
      printf '%s\n' "$SECRET" >"$SECRET_FILE.tmp"
    )
    mv -f "$SECRET_FILE.tmp" "$SECRET_FILE"
    log "generated a JWT secret in $(show_path "$SECRET_FILE") (mode 0600; reused by the next up)"
  fi
  chmod 600 "$SECRET_FILE"
  SECRET_SOURCE="file"
}

fingerprint() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------------------- processes

pid_file() { echo "$PID_DIR/$1.pid"; }
log_file() { echo "$LOG_DIR/$1.log"; }

# running NAME PATTERN: prints the pid of our live process NAME, nothing otherwise.
running() { pid_from_file "$(pid_file "$1")" "$2"; }

# A running process whose binary was rebuilt since it started.
warn_if_stale() {
  local name="$1" pid="$2" exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  if [[ "$exe" == *" (deleted)" ]]; then
    warn "$name (pid $pid) runs an older build of chorus; 'make down && make up' restarts it on the new one"
  fi
}

# spawn NAME SECRET_OR_EMPTY ARGS...: starts chorus ARGS in its own session, output
# to logs/NAME.log, pid in run/NAME.pid. Only a gateway gets the secret, through the
# environment (a command line is visible to every user in ps).
spawn() {
  local name="$1" secret="$2" log pid
  shift 2
  log=$(log_file "$name")
  printf -- '---- %s scripts/cluster.sh: starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
  (
    if [ -n "$secret" ]; then
      export CHORUS_JWT_SECRET="$secret"
    else
      unset CHORUS_JWT_SECRET
    fi
    # Plain text in the log files, without terminal colour codes.
    export NO_COLOR=1
    # setsid: own session, so the process outlives the calling terminal or make.
    # 9>&-: do not hand the cluster lock (fd 9, see with_lock) down.
    exec setsid "$CHORUS_BIN" "$@" </dev/null >>"$log" 2>&1 9>&-
  ) &
  pid=$!
  echo "$pid" >"$(pid_file "$name")"
  log "started $name (pid $pid), log $(show_path "$log")"
}

# wait_http NAME PATTERN PORT PATH EXPECT: polls http://HOST:PORT/PATH until its body
# contains EXPECT; dies with the log tail if the process exits or the timeout passes.
wait_http() {
  local name="$1" pattern="$2" port="$3" path="$4" expect="$5" pid body limit
  pid=$(cat "$(pid_file "$name")" 2>/dev/null || true)
  limit=$(($(date +%s) + CLUSTER_START_TIMEOUT))
  while :; do
    body=$(http_get "$HOST" "$port" "$path" 2>/dev/null || true)
    if [[ "$body" == *"$expect"* ]] && pid_alive "$pid" "$pattern"; then
      return 0
    fi
    if ! pid_alive "$pid"; then
      show_log_tail "$(log_file "$name")" 30
      rm -f "$(pid_file "$name")"
      die "$name exited during start-up (log $(show_path "$(log_file "$name")"))"
    fi
    if [ "$(date +%s)" -ge "$limit" ]; then
      show_log_tail "$(log_file "$name")" 30
      die "$name: http://$HOST:$port$path did not answer '$expect' within ${CLUSTER_START_TIMEOUT}s (pid $pid still running; 'make down' stops it)"
    fi
    sleep 0.1
  done
}

ensure_port_free() {
  local name="$1" port
  shift
  for port in "$@"; do
    if port_open "$HOST" "$port"; then
      die "cannot start $name: port $HOST:$port is in use by another process (not one of ours: no live pid file in $(show_path "$PID_DIR"))"
    fi
  done
}

start_router() {
  local name="$1" grpc="$2" http="$3" pattern pid
  pattern=$(router_pattern "$name")
  pid=$(running "$name" "$pattern")
  if [ -n "$pid" ]; then
    log "$name already running (pid $pid)"
    warn_if_stale "$name" "$pid"
    return 0
  fi
  ensure_port_free "$name" "$grpc" "$http"
  spawn "$name" "" router --name "$name" \
    --grpc-listen "$HOST:$grpc" --http-listen "$HOST:$http" \
    --nats-url "$NATS_URL" --cql-contact-points "$CQL_ADDR" --cql-keyspace "$CLUSTER_KEYSPACE"
}

start_gateway() {
  local port="$1" name="gateway-$1" pattern pid
  pattern=$(gateway_pattern "$port")
  pid=$(running "$name" "$pattern")
  if [ -n "$pid" ]; then
    log "$name already running (pid $pid)"
    warn_if_stale "$name" "$pid"
    return 0
  fi
  ensure_port_free "$name" "$port"
  spawn "$name" "$SECRET" gateway --listen "$HOST:$port" --nats-url "$NATS_URL"
}

# ---------------------------------------------------------------------------- up

# Links the NATS and Cassandra logs into logs/, so that every log is in one folder.
link_service_logs() {
  ln -sfn "../services/nats-$CLUSTER_NATS_PORT/nats-server.log" "$LOG_DIR/nats.log"
  ln -sfn "../services/cassandra-$CLUSTER_CQL_PORT/logs/system.log" "$LOG_DIR/cassandra.log"
}

# Fails before anything starts when a port of a router or gateway that is not running is
# taken by another process.
check_ports() {
  local r name grpc http port
  for r in "${ROUTERS[@]}"; do
    read -r name grpc http <<<"$r"
    [ -n "$(running "$name" "$(router_pattern "$name")")" ] || ensure_port_free "$name" "$grpc" "$http"
  done
  for port in "${GATEWAY_PORTS[@]}"; do
    [ -n "$(running "gateway-$port" "$(gateway_pattern "$port")")" ] || ensure_port_free "gateway-$port" "$port"
  done
}

# The gateways must run with the secret this `up` prints.
check_gateway_secret() {
  local any=0 port
  for port in "${GATEWAY_PORTS[@]}"; do
    [ -z "$(running "gateway-$port" "$(gateway_pattern "$port")")" ] || any=1
  done
  if [ "$any" -eq 1 ] && [ -f "$SECRET_PRINT" ] && [ "$(cat "$SECRET_PRINT")" != "$(fingerprint "$SECRET")" ]; then
    die "the running gateways use another JWT secret than this up would (CHORUS_JWT_SECRET changed?): 'make down' first, or run with the secret they were started with"
  fi
}

do_up() {
  local start r name grpc http port svc_pid migrate_out line
  start=$(now_s)
  mkdir -p "$LOG_DIR" "$PID_DIR" "$CHORUS_RUN_DIR"
  load_secret
  check_gateway_secret
  local state
  if state=$(do_status 2>/dev/null); then
    log "the cluster is already up:"
    printf '%s\n' "$state" | sed 's/^/    /' >&2
    print_connect
    return 0
  fi

  check_ports
  if [ "${CLUSTER_SKIP_BUILD:-0}" = 1 ] && [ ! -x "$CHORUS_BIN" ]; then
    die "CLUSTER_SKIP_BUILD=1 but $CHORUS_BIN does not exist"
  fi
  # NATS and Cassandra install and start while the binary builds (the secret is not theirs).
  (
    unset CHORUS_JWT_SECRET
    nats start >/dev/null
  ) &
  local nats_pid=$!
  (
    unset CHORUS_JWT_SECRET
    cassandra start >/dev/null
  ) &
  svc_pid=$!
  local built=0
  if [ "${CLUSTER_SKIP_BUILD:-0}" = 1 ]; then
    log "CLUSTER_SKIP_BUILD=1: using $(show_path "$CHORUS_BIN") as it is"
    built=1
  else
    log "building: $CARGO build --release --locked -p chorus"
    if (cd "$REPO_ROOT" && "$CARGO" build --release --locked -p chorus); then
      built=1
    fi
  fi
  local nats_ok=1 cql_ok=1
  wait "$nats_pid" || nats_ok=0
  wait "$svc_pid" || cql_ok=0
  link_service_logs
  [ "$built" -eq 1 ] || die "the build failed (NATS and Cassandra may be running: 'make down' stops them)"
  [ "$nats_ok" -eq 1 ] || die "nats-server did not start (see above; log $(show_path "$LOG_DIR/nats.log"))"
  [ "$cql_ok" -eq 1 ] || die "cassandra did not start (see above; log $(show_path "$LOG_DIR/cassandra.log"))"

  log "migrating keyspace $CLUSTER_KEYSPACE on $CQL_ADDR"
  printf -- '---- %s scripts/cluster.sh: chorus migrate\n' "$(date -u +%FT%TZ)" >>"$LOG_DIR/migrate.log"
  if ! migrate_out=$(env -u CHORUS_JWT_SECRET NO_COLOR=1 "$CHORUS_BIN" migrate \
    --cql-contact-points "$CQL_ADDR" --cql-keyspace "$CLUSTER_KEYSPACE" 2>>"$LOG_DIR/migrate.log"); then
    show_log_tail "$LOG_DIR/migrate.log" 20
    die "chorus migrate failed"
  fi
  printf '%s\n' "$migrate_out" >>"$LOG_DIR/migrate.log"
  while IFS= read -r line; do log "$line"; done <<<"$migrate_out"

  # Routers first, then gateways (gateways would also wait for routers to join the ring).
  for r in "${ROUTERS[@]}"; do
    read -r name grpc http <<<"$r"
    start_router "$name" "$grpc" "$http"
  done
  fingerprint "$SECRET" >"$SECRET_PRINT"
  for port in "${GATEWAY_PORTS[@]}"; do
    start_gateway "$port"
  done
  for r in "${ROUTERS[@]}"; do
    read -r name grpc http <<<"$r"
    wait_http "$name" "$(router_pattern "$name")" "$http" /readyz ready
    log "$name ready: gRPC $HOST:$grpc, http://$HOST:$http/readyz"
  done
  for port in "${GATEWAY_PORTS[@]}"; do
    wait_http "gateway-$port" "$(gateway_pattern "$port")" "$port" /healthz ok
    log "gateway-$port ready: ws://$HOST:$port/v1/ws"
  done
  log "cluster up in $(elapsed "$start")s"
  print_connect
}

print_connect() {
  local exe secret_line token_cmd port
  exe=$(show_path "$CHORUS_BIN")
  if [ "$SECRET_SOURCE" = env ]; then
    secret_line="from CHORUS_JWT_SECRET in your environment"
    token_cmd="TOKEN=\$($exe token --user alice)"
  else
    secret_line="$SECRET  (kept in $(show_path "$SECRET_FILE"); the next 'make up' reuses it)"
    token_cmd="TOKEN=\$(CHORUS_JWT_SECRET=$SECRET $exe token --user alice)"
  fi
  echo
  echo "  Chorus cluster: 2 routers, 2 gateways; NATS $NATS_URL, Cassandra $CQL_ADDR (keyspace $CLUSTER_KEYSPACE)"
  echo
  echo "  JWT secret:   $secret_line"
  echo "  get a token:  $token_cmd"
  for port in "${GATEWAY_PORTS[@]}"; do
    if [ "$port" = "${GATEWAY_PORTS[0]}" ]; then
      printf '  connect:      '
    else
      printf '                '
    fi
    echo "websocat -H \"Authorization: Bearer \$TOKEN\" ws://$HOST:$port/v1/ws"
  done
  echo '  then send:    {"type":"join","id":1,"room":"general","since":0}'
  echo '                {"type":"send","id":2,"room":"general","client_msg_id":"c-1","body":"hello"}'
  echo
  echo "  logs:         $(show_path "$LOG_DIR")/  (bash scripts/cluster.sh logs)"
  echo "  status:       bash scripts/cluster.sh status"
  echo "  stop:         make down"
  echo
}

# ---------------------------------------------------------------------------- down

do_down() {
  local r name grpc http port
  if [ ! -d "$PID_DIR" ] && [ ! -d "$CHORUS_RUN_DIR" ]; then
    log "nothing to stop: no cluster in $(show_path "$CLUSTER_DIR")"
    return 0
  fi
  # Gateways first (clients get 1001 and reconnect elsewhere), then routers (they hand
  # their rooms over and close their sessions), then the services they depend on.
  for port in "${GATEWAY_PORTS[@]}"; do
    stop_pid_file "$(pid_file "gateway-$port")" "gateway-$port" 15 "$(gateway_pattern "$port")"
  done
  for r in "${ROUTERS[@]}"; do
    read -r name grpc http <<<"$r"
    stop_pid_file "$(pid_file "$name")" "$name" 15 "$(router_pattern "$name")"
  done
  rm -f "$SECRET_PRINT"
  cassandra stop
  nats stop
}

# ---------------------------------------------------------------------------- status

# Exit 0 when everything is up and ready, 3 when everything is stopped, 1 otherwise.
do_status() {
  local up=0 down=0 r name grpc http port pid body
  if nats status; then up=$((up + 1)); else down=$((down + 1)); fi
  if cassandra status; then up=$((up + 1)); else down=$((down + 1)); fi
  for r in "${ROUTERS[@]}"; do
    read -r name grpc http <<<"$r"
    pid=$(running "$name" "$(router_pattern "$name")")
    if [ -z "$pid" ]; then
      echo "$name: stopped"
      down=$((down + 1))
      continue
    fi
    body=$(http_get "$HOST" "$http" /readyz 2>/dev/null || true)
    if [[ "$body" == ready* ]]; then
      echo "$name: running, pid $pid, ready, gRPC $HOST:$grpc, http://$HOST:$http"
      up=$((up + 1))
    else
      echo "$name: pid $pid alive but not ready (${body:-no answer on http://$HOST:$http/readyz})"
    fi
  done
  for port in "${GATEWAY_PORTS[@]}"; do
    name="gateway-$port"
    pid=$(running "$name" "$(gateway_pattern "$port")")
    if [ -z "$pid" ]; then
      echo "$name: stopped"
      down=$((down + 1))
      continue
    fi
    body=$(http_get "$HOST" "$port" /readyz 2>/dev/null || true)
    if [[ "$body" == ready* ]]; then
      echo "$name: running, pid $pid, ready, ws://$HOST:$port/v1/ws"
      up=$((up + 1))
    else
      echo "$name: pid $pid alive but not ready (${body:-no answer on http://$HOST:$port/readyz})"
    fi
  done
  local total=$((2 + ${#ROUTERS[@]} + ${#GATEWAY_PORTS[@]}))
  if [ "$up" -eq "$total" ]; then
    return 0
  elif [ "$down" -eq "$total" ]; then
    return 3
  fi
  return 1
}

# ---------------------------------------------------------------------------- logs

do_logs() {
  local files=() n
  if [ $# -eq 0 ]; then
    for n in "$LOG_DIR"/*.log; do
      [ -e "$n" ] && files+=("$n")
    done
  else
    for n in "$@"; do
      [ -e "$LOG_DIR/$n.log" ] || die "no log $(show_path "$LOG_DIR")/$n.log (have: $(find "$LOG_DIR" -maxdepth 1 -name '*.log' -printf '%f ' 2>/dev/null | sed 's/\.log / /g'))"
      files+=("$LOG_DIR/$n.log")
    done
  fi
  [ ${#files[@]} -gt 0 ] || die "no logs in $(show_path "$LOG_DIR"): run 'make up' first"
  exec tail -n 20 -F "${files[@]}"
}

do_clean() {
  do_down
  rm -rf "$CLUSTER_DIR"
  log "removed $(show_path "$CLUSTER_DIR")"
}

usage() {
  # the comment block at the top of this file
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

cmd="${1:-}"
[ $# -eq 0 ] || shift
case "$cmd" in
  up) with_lock "$CLUSTER_DIR/cluster.lock" do_up ;;
  down) with_lock "$CLUSTER_DIR/cluster.lock" do_down ;;
  status) do_status ;;
  logs) do_logs "$@" ;;
  clean) with_lock "$CLUSTER_DIR/cluster.lock" do_clean ;;
  *) usage ;;
esac
