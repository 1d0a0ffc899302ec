#!/usr/bin/env bash
# Chorus benchmarks (`make bench`): memory per idle connection, fan-out throughput and server
# CPU per delivered message, send→deliver latency at a fixed rate, presence and unread counts
# in a room of 10 000 members. Each bench runs against a fresh `chorus standalone` (own
# temporary data dir) driven by chorus-loadgen on this machine.
# The standalone bench server runs with every per-connection and per-room rate limit raised far
# above the load (--send-rate/--send-burst, --event-rate/--event-burst, --room-rate/--room-burst
# 1000000): the fan-out benches send as fast as they can into one room, which the default room
# rate (200 entries/s, CHORUS_ROOM_RATE) would cap, and 10 000 members joining a public room
# are 10 000 log entries of that room. The figures measure the server's work, not its limits.
# `presence` (chorus-loadgen presence): an owner creates a public room, an observer joins it,
# then N members (one connection each) join it, then `who` pages while everyone is online,
# then churn (some members leave and join again). It reports the joins, the observer's presence
# diffs, the frames every connection received, `who` latency, and the server's RSS and CPU.
# `unread` (chorus-loadgen unread): N members join a public room, the owner sends M messages,
# every member marks a random one read; it reports how fast the marks are accepted and stored,
# and `rooms` latency for members and for one user in 100 rooms, checking every unread count
# (a wrong one fails the bench).
# `subjects` measures the NATS delivery bus's subject design instead (ADR 0005): it starts a
# fresh nats-server of its own through scripts/nats.sh (installed first if needed) and stops
# it afterwards; no Chorus server is involved.
# `cluster` measures the local cluster of scripts/cluster.sh instead (NATS, Cassandra, 2 routers,
# 2 gateways on this machine). It is not in the default list: it needs Java, Maven and Go for
# the services and takes 6 to 10 minutes. It uses a cluster that is already up as it is (its
# gateways need CHORUS_SEND_RATE, CHORUS_SEND_BURST and CHORUS_MAX_IN_FLIGHT far above the
# defaults; the load generator stops when the announced rate limit is too low), or starts one
# (keyspace $BENCH_CLUSTER_KEYSPACE, gateway limits raised for the load) and stops it again at
# the end. Steps through fixed total send rates (senders on gateway :8081, receivers
# on :8082, so every message crosses router, Cassandra and NATS) for send→deliver latency and
# the highest sustained rate; then kill -9s router-1 under load for the failover time, and
# restores it with `scripts/cluster.sh up`. Each step uses fresh rooms (lgc-*), which stay in
# the database.
# `tracing` runs the fan-out bench three times against a local OpenTelemetry Collector
# (scripts/otelcol.sh, debug exporter at basic verbosity): tracing off, on at the default
# sample ratio 0.01, and on at 1 (every message traced), for the cost of OTLP export.
# The output is meant to be pasted into docs/benchmarks.md.
#
# Environment (defaults in parentheses; BENCH_QUICK=1 shrinks them for a sanity run):
#   BENCH_QUICK=1             small sizes: 500 idle conns, 100 subscribers, 200 messages,
#                             subjects: 2000 rooms, 20000 messages, cluster: 20 rooms at 200
#                             and 500 msgs/s for 4 s, no priming, a failover at 100 msgs/s,
#                             presence: 500 members, 200 who, churn 50; unread: 500 members,
#                             100 messages, 200 + 100 rooms requests
#   BENCH_IDLE_CONNS          idle connections (10000)
#   BENCH_FANOUT_SUBS         fan-out subscribers (1000)
#   BENCH_FANOUT_MSGS         fan-out messages, sent as fast as the window allows (2000)
#   BENCH_FANOUT_WINDOW       un-acked sends in flight (64)
#   BENCH_LATENCY_SUBS        latency bench subscribers (1000)
#   BENCH_LATENCY_RATE        latency bench send rate, messages/s (50)
#   BENCH_LATENCY_SECS        latency bench duration, seconds (20)
#   BENCH_BODY_BYTES          message body size (64)
#   BENCH_PRESENCE_MEMBERS    presence: members joining the room, one connection each (10000)
#   BENCH_PRESENCE_WHO        presence: `who` requests (limit 100, random `after`) (1000)
#   BENCH_PRESENCE_CHURN      presence: members that leave and join again (1000)
#   BENCH_UNREAD_MEMBERS      unread: members of the room, one connection each (10000)
#   BENCH_UNREAD_MSGS         unread: messages the owner sends before the marks (1000)
#   BENCH_UNREAD_ROOMS_REQS   unread: `rooms` requests of random members (2000)
#   BENCH_UNREAD_MULTI_ROOMS  unread: rooms of the user in many rooms (100)
#   BENCH_UNREAD_MULTI_REQS   unread: `rooms` requests of that user (500)
#   BENCH_UNREAD_SUBSCRIBED   unread: 1 keeps the members subscribed to the room, so they
#                             receive every join entry, message and receipt; 0 makes each leave
#                             right after its join (members who receive nothing) (1)
#   BENCH_JOIN_WINDOW         presence, unread: joins in flight at once (200)
#   BENCH_SUBJECTS_ROOMS      subjects: rooms with subscribers (100000)
#   BENCH_SUBJECTS_MSGS       subjects: messages per fan-out scenario, round-robin over rooms (200000)
#   BENCH_SUBJECTS_GATEWAYS   subjects: simulated gateways sharing the rooms (2)
#   BENCH_SUBJECTS_RATE       subjects: publish rate of the paced pass, messages/s (50000; 0 skips it)
#   BENCH_SUBJECTS_PAYLOAD    subjects: payload bytes per message (200, about a msg frame)
#   BENCH_SUBJECTS_NATS_PORT  subjects: nats-server client port (15222; monitoring on port + 1000)
#   BENCH_CLUSTER_RATES       cluster: total send rates to step through, msgs/s
#                             ("1000 2000 3000 5000 7500 10000"; above the goal rate, stops
#                             after 2 unsustained steps in a row)
#   BENCH_CLUSTER_SECS        cluster: measured seconds per step (20), after 2 s of warm-up
#   BENCH_CLUSTER_ROOMS       cluster: rooms, one sender and one receiver connection each (100)
#   BENCH_CLUSTER_MAX_P99_MS  cluster: a step is sustained when deliveries keep up with >= 95% of
#                             the rate, nothing is refused or lost, and p99 <= this (1000)
#   BENCH_CLUSTER_GOAL_RATE   cluster: the rate the goal is checked at (5000; goal p99 <= 20 ms)
#   BENCH_CLUSTER_PRIME_SECS  cluster: an unreported run at the first rate first, so that the
#                             JVM has compiled Cassandra's hot paths (60; 0 skips)
#   BENCH_CLUSTER_COMPARE     cluster: 1 repeats the goal rate without client_msg_id, to show
#                             what the idempotency records cost (1; quick: 0)
#   BENCH_CLUSTER_FAILOVER_RATE  cluster: failover run's rate (500), over
#                             BENCH_CLUSTER_FAILOVER_ROOMS (50) rooms for BENCH_CLUSTER_FAILOVER_SECS
#                             (20); router-1 is killed BENCH_CLUSTER_KILL_AFTER (5) s in
#   BENCH_CLUSTER_KEYSPACE    cluster: keyspace when the bench starts the cluster (chorus_bench)
#   BENCH_CLUSTER_JWT_SECRET  cluster: the secret of a running cluster that was started with
#                             CHORUS_JWT_SECRET (default: the generated .chorus-cluster/jwt-secret)
#   BENCH_SKIP_BUILD=1        use the existing target/release binaries
#   BENCH_TRACING_SUBS        tracing bench subscribers (the fan-out's)
#   BENCH_TRACING_MSGS        tracing bench messages per run (the fan-out's)
#   BENCH_ONLY="idle fanout latency subjects presence unread tracing"  run a subset (or
#                             "cluster")
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    d_idle=500 d_subs=100 d_msgs=200 d_lat_subs=100 d_lat_rate=50 d_lat_secs=4
    d_subj_rooms=2000 d_subj_msgs=20000
    d_cl_rates="200 500" d_cl_secs=4 d_cl_rooms=20 d_cl_prime=0 d_cl_compare=0
    d_fo_rate=100 d_fo_rooms=10 d_fo_secs=12 d_fo_kill=3
    d_pr_members=500 d_pr_who=200 d_pr_churn=50
    d_un_members=500 d_un_msgs=100 d_un_rooms_reqs=200 d_un_multi_reqs=100
else
    d_idle=10000 d_subs=1000 d_msgs=2000 d_lat_subs=1000 d_lat_rate=50 d_lat_secs=20
    d_subj_rooms=100000 d_subj_msgs=200000
    d_cl_rates="1000 2000 3000 5000 7500 10000" d_cl_secs=20 d_cl_rooms=100 d_cl_prime=60
    d_cl_compare=1
    d_fo_rate=500 d_fo_rooms=50 d_fo_secs=20 d_fo_kill=5
    d_pr_members=10000 d_pr_who=1000 d_pr_churn=1000
    d_un_members=10000 d_un_msgs=1000 d_un_rooms_reqs=2000 d_un_multi_reqs=500
fi
IDLE_CONNS=${BENCH_IDLE_CONNS:-$d_idle}
FANOUT_SUBS=${BENCH_FANOUT_SUBS:-$d_subs}
FANOUT_MSGS=${BENCH_FANOUT_MSGS:-$d_msgs}
FANOUT_WINDOW=${BENCH_FANOUT_WINDOW:-64}
LAT_SUBS=${BENCH_LATENCY_SUBS:-$d_lat_subs}
LAT_RATE=${BENCH_LATENCY_RATE:-$d_lat_rate}
LAT_SECS=${BENCH_LATENCY_SECS:-$d_lat_secs}
BODY_BYTES=${BENCH_BODY_BYTES:-64}
SUBJ_ROOMS=${BENCH_SUBJECTS_ROOMS:-$d_subj_rooms}
SUBJ_MSGS=${BENCH_SUBJECTS_MSGS:-$d_subj_msgs}
SUBJ_GATEWAYS=${BENCH_SUBJECTS_GATEWAYS:-2}
SUBJ_RATE=${BENCH_SUBJECTS_RATE:-50000}
SUBJ_PAYLOAD=${BENCH_SUBJECTS_PAYLOAD:-200}
SUBJ_NATS_PORT=${BENCH_SUBJECTS_NATS_PORT:-15222}
CL_RATES=${BENCH_CLUSTER_RATES:-$d_cl_rates}
CL_SECS=${BENCH_CLUSTER_SECS:-$d_cl_secs}
CL_ROOMS=${BENCH_CLUSTER_ROOMS:-$d_cl_rooms}
CL_MAX_P99_MS=${BENCH_CLUSTER_MAX_P99_MS:-1000}
CL_GOAL_RATE=${BENCH_CLUSTER_GOAL_RATE:-5000}
CL_PRIME_SECS=${BENCH_CLUSTER_PRIME_SECS:-$d_cl_prime}
CL_COMPARE=${BENCH_CLUSTER_COMPARE:-$d_cl_compare}
FO_RATE=${BENCH_CLUSTER_FAILOVER_RATE:-$d_fo_rate}
FO_ROOMS=${BENCH_CLUSTER_FAILOVER_ROOMS:-$d_fo_rooms}
FO_SECS=${BENCH_CLUSTER_FAILOVER_SECS:-$d_fo_secs}
FO_KILL=${BENCH_CLUSTER_KILL_AFTER:-$d_fo_kill}
PR_MEMBERS=${BENCH_PRESENCE_MEMBERS:-$d_pr_members}
PR_WHO=${BENCH_PRESENCE_WHO:-$d_pr_who}
PR_CHURN=${BENCH_PRESENCE_CHURN:-$d_pr_churn}
UN_MEMBERS=${BENCH_UNREAD_MEMBERS:-$d_un_members}
UN_MSGS=${BENCH_UNREAD_MSGS:-$d_un_msgs}
UN_ROOMS_REQS=${BENCH_UNREAD_ROOMS_REQS:-$d_un_rooms_reqs}
UN_MULTI_ROOMS=${BENCH_UNREAD_MULTI_ROOMS:-100}
UN_MULTI_REQS=${BENCH_UNREAD_MULTI_REQS:-$d_un_multi_reqs}
UN_SUBSCRIBED=${BENCH_UNREAD_SUBSCRIBED:-1}
JOIN_WINDOW=${BENCH_JOIN_WINDOW:-200}
TR_SUBS=${BENCH_TRACING_SUBS:-$FANOUT_SUBS}
TR_MSGS=${BENCH_TRACING_MSGS:-$FANOUT_MSGS}
ONLY=${BENCH_ONLY:-idle fanout latency subjects presence unread tracing}
LAT_MSGS=$(awk -v r="$LAT_RATE" -v s="$LAT_SECS" 'BEGIN { printf "%d", r * s }')

CHORUS=target/release/chorus
LOADGEN=target/release/chorus-loadgen

die() {
    echo "bench: $*" >&2
    exit 1
}

for b in $ONLY; do
    case $b in
    idle | fanout | latency | subjects | presence | unread | tracing | cluster) ;;
    *) die "unknown bench '$b' in BENCH_ONLY (idle, fanout, latency, subjects, presence, unread, tracing, cluster)" ;;
    esac
done
# Only `subjects` runs without the chorus server.
NEED_CHORUS=0
for b in $ONLY; do
    [[ $b == subjects ]] || NEED_CHORUS=1
done

# ---------------------------------------------------------------------------------------------
# Build.
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    echo "building release binaries..." >&2
    packages=(-p chorus-loadgen)
    if [[ $NEED_CHORUS == 1 ]]; then packages+=(-p chorus); fi
    cargo build --release "${packages[@]}" >&2 || die "release build failed"
fi
[[ -x $LOADGEN ]] || die "missing $LOADGEN (build it first)"
[[ $NEED_CHORUS == 0 || -x $CHORUS ]] || die "missing $CHORUS (build it first)"

# ---------------------------------------------------------------------------------------------
# Open files: every connection is a descriptor in the server and one in the load generator.
# (presence and unread also open an owner, an observer, a poster and a many-rooms user.)
max_conns=$IDLE_CONNS
for n in "$FANOUT_SUBS" "$LAT_SUBS" $((PR_MEMBERS + 8)) $((UN_MEMBERS + 8)); do
    if ((n > max_conns)); then max_conns=$n; fi
done
need_nofile=$((max_conns + 1024))
want_nofile=65536
if ((need_nofile > want_nofile)); then want_nofile=$need_nofile; fi
soft=$(ulimit -Sn)
if [[ $soft == unlimited ]] || ((soft >= want_nofile)); then
    :
elif ! ulimit -n "$want_nofile" 2>/dev/null; then
    # Could not raise the hard limit (no CAP_SYS_RESOURCE, e.g. in a container): use what the
    # hard limit allows if that is still enough for this run.
    hard=$(ulimit -Hn)
    if [[ $hard == unlimited ]] || ((hard >= need_nofile)); then
        ulimit -n "$hard" ||
            die "cannot raise the open-files limit (ulimit -n) to the hard limit $hard"
        echo "bench: warning: could not raise ulimit -n to $want_nofile; using the hard limit" \
            "$hard, enough for $max_conns connections" >&2
    else
        die "cannot raise the open-files limit (ulimit -n) to $want_nofile (hard limit $hard," \
            "need >= $need_nofile for $max_conns connections): run as root with" \
            "CAP_SYS_RESOURCE, raise the hard limit (/etc/security/limits.conf, systemd" \
            "LimitNOFILE, docker --ulimit nofile=65536:65536), or lower the BENCH_* sizes"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Scratch space, server lifecycle, cleanup.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/chorus-bench.XXXXXX")
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CHORUS_JWT_SECRET=$SECRET
SERVER_PID=""
# Extra arguments for the next start_server (the tracing bench's exporter settings).
SERVER_ARGS=()
OTELCOL_PID=""
LG_PID=""
NATS_STARTED=0
FAILED=()

# scripts/nats.sh on the subjects bench's own ports (so it never meets the tests' 14222).
bench_nats() {
    NATS_PORT=$SUBJ_NATS_PORT NATS_HTTP_PORT=$((SUBJ_NATS_PORT + 1000)) bash scripts/nats.sh "$@"
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench: server $SERVER_PID did not stop within 15 s; killing it" >&2
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

cleanup() {
    exec 3>&-
    if [[ -n $LG_PID ]] && kill -0 "$LG_PID" 2>/dev/null; then
        kill -TERM "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" 2>/dev/null || true
    fi
    stop_server
    if [[ -n $OTELCOL_PID ]]; then
        kill -TERM "$OTELCOL_PID" 2>/dev/null || true
        wait "$OTELCOL_PID" 2>/dev/null || true
    fi
    if [[ $NATS_STARTED == 1 ]]; then
        bench_nats clean >/dev/null 2>&1 || true
    fi
    if declare -F cluster_cleanup >/dev/null; then cluster_cleanup; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME: a fresh server on a fresh data dir; sets SERVER_PID, URL, SERVER_LOG.
start_server() {
    local name=$1 data=$TMP/data-$1 port="" line
    mkdir -p "$data"
    SERVER_LOG=$TMP/server-$name.err
    "$CHORUS" standalone --listen 127.0.0.1:0 --data-dir "$data" \
        --send-rate 1000000 --send-burst 1000000 --event-rate 1000000 --event-burst 1000000 \
        --room-rate 1000000 --room-burst 1000000 \
        --max-in-flight $((FANOUT_WINDOW > 32 ? FANOUT_WINDOW * 2 : 64)) \
        --max-connections $((max_conns + 1000)) "${SERVER_ARGS[@]}" \
        >"$TMP/server-$name.out" 2>"$SERVER_LOG" &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        line=$(grep -m1 '^chorus standalone listening on http://' "$TMP/server-$name.out" || true)
        if [[ -n $line ]]; then
            port=${line##*:}
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $port ]]; then
        echo "--- server stderr ---" >&2
        tail -n 20 "$SERVER_LOG" >&2 || true
        die "server did not start (no listening line within 30 s)"
    fi
    URL=ws://127.0.0.1:$port/v1/ws
}

# Server log lines at WARN or worse (the server's own complaints during a bench).
server_complaints() {
    local n
    n=$(grep -cE ' (WARN|ERROR) |"level":"(WARN|ERROR)"' "$SERVER_LOG" || true)
    if ((n > 0)); then
        echo "  server logged $n WARN/ERROR lines, first ones:"
        grep -E ' (WARN|ERROR) |"level":"(WARN|ERROR)"' "$SERVER_LOG" | head -n 5 | sed 's/^/    /'
    fi
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Value of KEY in a key=value file.
kv() { sed -n "s/^$1=//p" "$2" | head -n 1; }

# ---------------------------------------------------------------------------------------------
# The machine.
echo "== Chorus benchmarks =="
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
echo "cpu:      $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "memory:   $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:   $(uname -sr)"
echo "rustc:    $(rustc --version 2>/dev/null || echo unknown)"
echo "nofile:   $(ulimit -n)"
echo "mode:     $([[ $QUICK == 1 ]] && echo 'QUICK (reduced sizes)' || echo full)"
echo "note:     server and load generator share this machine"
echo

# ---------------------------------------------------------------------------------------------
# 1. Memory per idle connection.
bench_idle() {
    echo "== 1. memory per idle connection =="
    start_server idle
    sleep 1
    local before after rc=0 room=idle-$RANDOM$RANDOM
    before=$(rss_kib "$SERVER_PID")
    mkfifo "$TMP/idle.in"
    "$LOADGEN" --url "$URL" idle --conns "$IDLE_CONNS" --room "$room" --hold-secs 1800 \
        <"$TMP/idle.in" >"$TMP/idle.out" 2>"$TMP/idle.err" &
    LG_PID=$!
    exec 3>"$TMP/idle.in" # the load generator holds its connections until this closes
    local ready=""
    while kill -0 "$LG_PID" 2>/dev/null; do
        ready=$(grep -m1 '^ready ' "$TMP/idle.out" || true)
        [[ -n $ready ]] && break
        sleep 0.2
    done
    if [[ -n $ready ]]; then
        sleep 2
        after=$(rss_kib "$SERVER_PID")
    fi
    exec 3>&-
    wait "$LG_PID" || rc=$?
    LG_PID=""
    if [[ -z $ready ]]; then
        echo "  FAILED: the load generator did not get its connections ready (exit $rc):"
        sed 's/^/    /' "$TMP/idle.err"
        FAILED+=(idle)
    else
        local delta=$((after - before))
        echo "  loadgen: $ready"
        awk -v n="$IDLE_CONNS" -v b="$before" -v a="$after" -v d="$delta" 'BEGIN {
            printf "  idle connections: %d, server RSS before=%d KiB after=%d KiB (+%d KiB), " \
                   "per_connection=%.0f bytes = %.2f KiB (goal <= 6 KiB)\n",
                   n, b, a, d, d * 1024 / n, d / n }'
        sed 's/^/  loadgen: /' "$TMP/idle.out" | grep -v '^  loadgen: ready ' || true
        if ((rc != 0)); then
            echo "  FAILED: load generator exit $rc:"
            sed 's/^/    /' "$TMP/idle.err"
            FAILED+=(idle)
        fi
    fi
    server_complaints
    stop_server
    echo
}

# run_fanout NAME ARGS...: a fan-out run on a fresh server; results in $TMP/NAME.out.
run_fanout() {
    local name=$1 rc=0
    shift
    start_server "$name"
    "$LOADGEN" --url "$URL" fanout --room "$name-$RANDOM$RANDOM" --body-bytes "$BODY_BYTES" \
        --server-pid "$SERVER_PID" --clk-tck "$(getconf CLK_TCK)" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    if [[ ! -s $TMP/$name.out ]] || ((rc != 0)); then
        echo "  FAILED: load generator exit $rc:"
        sed 's/^/    /' "$TMP/$name.err"
        FAILED+=("$name")
    fi
    server_complaints
    stop_server
    return 0
}

# A compact dump of the raw results, four per line.
raw_results() {
    [[ -s $1 ]] || return 0
    echo "  raw:"
    paste -d' ' - - - - <"$1" | sed 's/[[:space:]]*$//; s/^/    /'
}

# ---------------------------------------------------------------------------------------------
# 2. Fan-out throughput and server CPU per delivered message.
bench_fanout() {
    echo "== 2. fan-out throughput =="
    echo "  $FANOUT_SUBS subscribers in one room, 1 sender, $FANOUT_MSGS messages of" \
        "$BODY_BYTES B as fast as possible (window $FANOUT_WINDOW un-acked sends)"
    run_fanout fanout --subscribers "$FANOUT_SUBS" --messages "$FANOUT_MSGS" \
        --window "$FANOUT_WINDOW"
    local f=$TMP/fanout.out
    if [[ -s $f ]]; then
        echo "  delivered $(kv delivered "$f") of $(kv expected_deliveries "$f")" \
            "(gaps=$(kv gaps "$f") dups=$(kv dups "$f") reorders=$(kv reorders "$f"))" \
            "in $(kv deliver_duration_ms "$f") ms: $(kv delivered_per_sec "$f") msgs/s delivered"
        echo "  sends: $(kv sent "$f") sent, $(kv acked "$f") acked in" \
            "$(kv send_duration_ms "$f") ms ($(kv send_rate_achieved "$f") sends/s)"
        echo "  server CPU: $(kv server_cpu_ms "$f") ms from first send to last delivery =" \
            "$(kv server_cpu_us_per_delivery "$f") µs per delivered message (goal <= 1.5 µs);" \
            "load generator CPU $(kv loadgen_cpu_ms "$f") ms"
        echo "  latency under full load: p50=$(kv latency_p50_us "$f") µs" \
            "p99=$(kv latency_p99_us "$f") µs max=$(kv latency_max_us "$f") µs" \
            "($(kv latency_samples "$f") samples)"
        raw_results "$f"
    fi
    echo
}

# ---------------------------------------------------------------------------------------------
# 3. Latency at a fixed rate.
bench_latency() {
    echo "== 3. send→deliver latency at a fixed rate =="
    echo "  $LAT_SUBS subscribers, 1 sender at $LAT_RATE msgs/s for $LAT_SECS s" \
        "($LAT_MSGS messages of $BODY_BYTES B)"
    run_fanout latency --subscribers "$LAT_SUBS" --messages "$LAT_MSGS" --rate "$LAT_RATE" \
        --timeout-secs $((LAT_SECS + 120))
    local f=$TMP/latency.out
    if [[ -s $f ]]; then
        echo "  delivered $(kv delivered "$f") of $(kv expected_deliveries "$f")" \
            "(gaps=$(kv gaps "$f") dups=$(kv dups "$f") reorders=$(kv reorders "$f"))"
        echo "  latency over $(kv latency_samples "$f") deliveries:" \
            "p50=$(kv latency_p50_us "$f") µs p90=$(kv latency_p90_us "$f") µs" \
            "p99=$(kv latency_p99_us "$f") µs p99.9=$(kv latency_p999_us "$f") µs" \
            "max=$(kv latency_max_us "$f") µs (goal p99 <= 5000 µs)"
        echo "  breakdown: first subscriber reached p50=$(kv first_delivery_latency_p50_us "$f") µs" \
            "p99=$(kv first_delivery_latency_p99_us "$f") µs; sender's ack" \
            "p50=$(kv ack_latency_p50_us "$f") µs p99=$(kv ack_latency_p99_us "$f") µs" \
            "(the rest is the spread of one message over all subscribers)"
        echo "  server CPU: $(kv server_cpu_ms "$f") ms =" \
            "$(kv server_cpu_us_per_delivery "$f") µs per delivered message"
        raw_results "$f"
    fi
    echo
}

# ---------------------------------------------------------------------------------------------
# 4. Delivery subjects: per-room NATS subscriptions against a wildcard and per-gateway subjects.

# One row of the fan-out table: NAME KEY-PREFIX FILE.
subjects_row() {
    local label=$1 k=$2 f=$3 lossy
    lossy=$(($(kv "${k}_lagged_events" "$f") + $(kv "${k}_client_slow_consumer_events" "$f")))
    printf '    %-12s %10s %10s %8s %9s %6s %9s %10s %11s %9s\n' "$label" \
        "$(kv "${k}_publish_per_sec" "$f")" "$(kv "${k}_receive_per_sec" "$f")" \
        "$(kv "${k}_received_per_published" "$f")" "$(kv "${k}_lost" "$f")" "$lossy" \
        "$(kv "${k}_server_subs" "$f")" "$(kv "${k}_server_cpu_ms" "$f")" \
        "$(kv "${k}_server_cpu_us_per_published" "$f")" "$(kv "${k}_loadgen_cpu_ms" "$f")"
}

subjects_table() {
    local pass=$1 f=$2
    printf '    %-12s %10s %10s %8s %9s %6s %9s %10s %11s %9s\n' design publish/s received/s \
        recv/pub lost loss-ev subs srv-cpu-ms srv-µs/pub lg-cpu-ms
    subjects_row per-room "${pass}_rooms" "$f"
    subjects_row wildcard "${pass}_wildcard" "$f"
    subjects_row per-gateway "${pass}_gateway" "$f"
}

bench_subjects() {
    local http=$((SUBJ_NATS_PORT + 1000)) url pid rc=0 f=$TMP/subjects.out
    echo "== 4. delivery subjects at $SUBJ_ROOMS rooms (NATS) =="
    # A fresh server: its memory figures must not include an earlier run's heap.
    bench_nats clean >/dev/null 2>&1 || true
    bench_nats install >&2 || die "could not install nats-server (scripts/nats.sh install)"
    NATS_STARTED=1
    url=$(bench_nats start | tail -n 1) || die "could not start nats-server on port $SUBJ_NATS_PORT"
    local run_dir=${CHORUS_RUN_DIR:-${CHORUS_CACHE:-${HOME:-/root}/.cache/chorus}/run}
    pid=$(tr -dc '0-9' <"$run_dir/nats-$SUBJ_NATS_PORT/nats-server.pid")
    sleep 1
    "$LOADGEN" subjects --nats-url "$url" --nats-monitor "127.0.0.1:$http" --nats-pid "$pid" \
        --clk-tck "$(getconf CLK_TCK)" --rooms "$SUBJ_ROOMS" --messages "$SUBJ_MSGS" \
        --gateways "$SUBJ_GATEWAYS" --paced-rate "$SUBJ_RATE" --payload-bytes "$SUBJ_PAYLOAD" \
        >"$f" 2>"$TMP/subjects.err" || rc=$?
    bench_nats clean >/dev/null 2>&1 || true
    NATS_STARTED=0
    if [[ ! -s $f ]] || ((rc != 0)); then
        echo "  FAILED: load generator exit $rc:"
        sed 's/^/    /' "$TMP/subjects.err"
        FAILED+=(subjects)
        echo
        return 0
    fi
    echo "  nats-server $(kv nats_version "$f") (fresh, 127.0.0.1:$SUBJ_NATS_PORT), subjects like" \
        "$(kv subject_example "$f") ($(kv subject_bytes "$f") B), payload $(kv payload_bytes "$f") B"
    echo "  memory, one gateway holding every room, a subscription per room (NatsBus::subscribe," \
        "$(kv subscribe_concurrency "$f") in flight):"
    echo "    $(kv mem_rooms_subscriptions "$f") subscriptions in $(kv mem_rooms_subscribe_ms "$f") ms" \
        "($(kv mem_rooms_subscribes_per_sec "$f") /s)"
    echo "    gateway RSS $(kv mem_rooms_rss_before_kib "$f") -> $(kv mem_rooms_rss_after_kib "$f") KiB" \
        "(+$(kv mem_rooms_rss_delta_kib "$f") KiB) = $(kv mem_rooms_gateway_bytes_per_sub "$f") B per subscription"
    echo "    nats-server mem $(kv mem_rooms_server_mem_before_kib "$f") ->" \
        "$(kv mem_rooms_server_mem_after_kib "$f") KiB (+$(kv mem_rooms_server_mem_delta_kib "$f") KiB," \
        "subsz +$(kv mem_rooms_server_subs_delta "$f")) = $(kv mem_rooms_server_bytes_per_sub "$f") B per subscription"
    echo "  memory, the same interest as one wildcard subscription: gateway RSS" \
        "+$(kv mem_wildcard_rss_delta_kib "$f") KiB, nats-server mem +$(kv mem_wildcard_server_mem_delta_kib "$f") KiB" \
        "(subsz +$(kv mem_wildcard_server_subs_delta "$f"))"
    echo "  fan-out: $(kv gateways "$f") gateways share the rooms (room i on gateway i mod" \
        "$(kv gateways "$f")); $(kv messages "$f") messages round-robin over the rooms, published" \
        "from another client; per-room and wildcard publish through NatsBus::publish"
    echo "  (loss-ev: the bus's Lagged events or client slow-consumer events; srv: nats-server" \
        "utime+stime; lg: this load generator, publisher and gateways together)"
    echo "   as fast as possible:"
    subjects_table fanout "$f"
    if [[ -n $(kv paced_rate "$f") ]]; then
        echo "   paced at $(kv paced_rate "$f") messages/s:"
        subjects_table paced "$f"
    fi
    raw_results "$f"
    echo
}

# ---------------------------------------------------------------------------------------------
# 5. The local cluster (scripts/cluster.sh): latency by rate, highest sustained rate, failover.

CLUSTER_DIR_B=${CLUSTER_DIR:-$PWD/.chorus-cluster}
CLUSTER_STARTED=0 # this bench started the cluster, so it stops it
CLUSTER_BROKEN=0  # a router was killed and is not back yet

# scripts/cluster.sh with the bench's settings: the existing release binary, gateway limits far
# above the load (the defaults allow 10 sends/s per connection), and the cluster's own secret.
bench_cluster_sh() {
    local keyspace=()
    [[ $CLUSTER_STARTED == 1 ]] && keyspace=(CLUSTER_KEYSPACE="${BENCH_CLUSTER_KEYSPACE:-chorus_bench}")
    if [[ -n ${BENCH_CLUSTER_JWT_SECRET:-} ]]; then
        env CHORUS_JWT_SECRET="$BENCH_CLUSTER_JWT_SECRET" "${keyspace[@]}" CLUSTER_SKIP_BUILD=1 \
            CHORUS_SEND_RATE=1000000 CHORUS_SEND_BURST=1000000 CHORUS_MAX_IN_FLIGHT=4096 \
            bash scripts/cluster.sh "$@"
    else
        env -u CHORUS_JWT_SECRET "${keyspace[@]}" CLUSTER_SKIP_BUILD=1 \
            CHORUS_SEND_RATE=1000000 CHORUS_SEND_BURST=1000000 CHORUS_MAX_IN_FLIGHT=4096 \
            bash scripts/cluster.sh "$@"
    fi
}

cluster_cleanup() {
    if [[ $CLUSTER_BROKEN == 1 && $CLUSTER_STARTED == 0 ]]; then
        echo "bench: restarting the killed router (scripts/cluster.sh up)" >&2
        bench_cluster_sh up >/dev/null 2>&1 || true
    fi
    if [[ $CLUSTER_STARTED == 1 ]]; then
        echo "bench: stopping the cluster this bench started (scripts/cluster.sh down)" >&2
        bench_cluster_sh down >/dev/null 2>&1 || true
        CLUSTER_STARTED=0
    fi
    CLUSTER_BROKEN=0
}

# run_cluster NAME ARGS...: one chorus-loadgen cluster run; results in $TMP/NAME.out; 0 if the
# load generator succeeded.
run_cluster() {
    local name=$1 rc=0 d=$CLUSTER_DIR_B
    shift
    local nats_pid cql_pid
    nats_pid=$(cat "$d/services/nats-${CLUSTER_NATS_PORT:-4222}/nats-server.pid" 2>/dev/null || echo 0)
    cql_pid=$(cat "$d/services/cassandra-${CLUSTER_CQL_PORT:-9042}/cassandra.pid" 2>/dev/null || echo 0)
    CHORUS_JWT_SECRET=$CLUSTER_SECRET "$LOADGEN" cluster \
        --send-url ws://127.0.0.1:8081/v1/ws --recv-url ws://127.0.0.1:8082/v1/ws \
        --body-bytes "$BODY_BYTES" --clk-tck "$(getconf CLK_TCK)" \
        --watch-pid "cassandra=$cql_pid" --watch-pid "nats=$nats_pid" \
        --watch-pid "router-1=$(cat "$d/run/router-1.pid")" \
        --watch-pid "router-2=$(cat "$d/run/router-2.pid")" \
        --watch-pid "gw-a=$(cat "$d/run/gateway-8081.pid")" \
        --watch-pid "gw-b=$(cat "$d/run/gateway-8082.pid")" \
        --metrics router-1=127.0.0.1:9101 --metrics router-2=127.0.0.1:9102 \
        --metrics gw-a=127.0.0.1:8081 --metrics gw-b=127.0.0.1:8082 \
        "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    return $rc
}

# CQL requests the cluster's Cassandra has completed (its system_views.thread_pools), or "".
cql_requests() {
    CHORUS_RUN_DIR=$CLUSTER_DIR_B/services CASSANDRA_PORT=${CLUSTER_CQL_PORT:-9042} \
        bash scripts/cassandra.sh cql "SELECT completed_tasks FROM system_views.thread_pools \
            WHERE name = 'Native-Transport-Requests'" 2>/dev/null | tr -dc '0-9' || true
}

cluster_header() {
    printf '    %6s %8s %6s %6s %7s %7s %7s %7s | %4s %4s %4s %4s %4s %4s %4s %5s %5s | %6s %5s %7s | %s\n' \
        target achieved p50 p90 p99 max ack-p50 ack-p99 cas r1 r2 gwA gwB nats lg other busy \
        append batch cql/msg sustained
}

# cluster_row LABEL FILE CQL_BEFORE CQL_AFTER SUSTAINED: one line of the table.
cluster_row() {
    local f=$2 append batch per_msg
    append=$(awk -v a="$(kv m.router-1.chorus_store_append_seconds.mean "$f")" \
        -v b="$(kv m.router-2.chorus_store_append_seconds.mean "$f")" \
        'BEGIN { printf "%.1f", (a + b) / 2 * 1000 }')
    batch=$(awk -v a="$(kv m.router-1.chorus_router_batch_size.mean "$f")" \
        -v b="$(kv m.router-2.chorus_router_batch_size.mean "$f")" \
        'BEGIN { printf "%.2f", (a + b) / 2 }')
    per_msg=$(awk -v a="$3" -v b="$4" -v n="$(kv sent "$f")" \
        'BEGIN { if (a == "" || b == "" || n == 0) print "?"; else printf "%.2f", (b - a) / n }')
    printf '    %6s %8s %6s %6s %7s %7s %7s %7s | %4s %4s %4s %4s %4s %4s %4s %5s %5s | %6s %5s %7s | %s\n' \
        "$1" "$(kv deliver_rate "$f")" "$(us_ms "$(kv latency_p50_us "$f")")" \
        "$(us_ms "$(kv latency_p90_us "$f")")" "$(us_ms "$(kv latency_p99_us "$f")")" \
        "$(us_ms "$(kv latency_max_us "$f")")" "$(us_ms "$(kv ack_latency_p50_us "$f")")" \
        "$(us_ms "$(kv ack_latency_p99_us "$f")")" "$(kv cpu.cassandra_pct "$f")" \
        "$(kv cpu.router-1_pct "$f")" "$(kv cpu.router-2_pct "$f")" "$(kv cpu.gw-a_pct "$f")" \
        "$(kv cpu.gw-b_pct "$f")" "$(kv cpu.nats_pct "$f")" "$(kv cpu.loadgen_pct "$f")" \
        "$(kv cpu.others_pct "$f")" "$(kv machine_busy_pct "$f")%" "$append" "$batch" "$per_msg" "$5"
}

# cassandra_events FILE: the memtable flushes and compactions of the message tables that
# Cassandra logged during the run in FILE, in seconds from the end of its warm-up.
cassandra_events() {
    local f=$1 start warm end line ts ms took out=()
    start=$(kv start_unix_ms "$f")
    [[ -n $start ]] || return 0
    warm=$(awk -v s="$start" -v w="$(kv warmup_secs "$f")" 'BEGIN { printf "%.0f", s + w * 1000 }')
    end=$(awk -v s="$start" -v w="$(kv warmup_secs "$f")" -v d="$(kv duration_secs "$f")" \
        'BEGIN { printf "%.0f", s + (w + d) * 1000 + 2000 }')
    while IFS= read -r line; do
        ts=$(awk '{ print $3 " " $4 }' <<<"$line" | tr , .)
        ms=$(date -d "$ts" +%s%3N 2>/dev/null) || continue
        ((ms >= start && ms <= end)) || continue
        ms=$(awk -v m="$ms" -v w="$warm" 'BEGIN { printf "%+.1f", (m - w) / 1000 }')
        case $line in
        *"Writing Memtable-messages"*) out+=("flush messages ${ms}s") ;;
        *"Writing Memtable-sends"*) out+=("flush sends ${ms}s") ;;
        *Compacted*)
            took=$(sed -n 's/.* in \([0-9,]*\)ms\..*/\1/p' <<<"$line" | tr -d ,)
            out+=("compaction $(awk -v m="$ms" -v t="${took:-0}" \
                'BEGIN { printf "%+.1f..%+.1fs", m - t / 1000, m }')")
            ;;
        esac
    done < <(grep -E 'Writing Memtable-(messages|sends)@|Compacted \(.*/(messages|sends)-' \
        "$CLUSTER_DIR_B/logs/cassandra.log" 2>/dev/null || true)
    ((${#out[@]} > 0)) && echo "${out[*]}"
    return 0
}

# Milliseconds from microseconds, one decimal.
us_ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
# kv, with 0 for a key that is absent (a counter that never moved is not reported).
kv0() {
    local v
    v=$(kv "$1" "$2")
    echo "${v:-0}"
}

bench_cluster() {
    local st=0 f rate rc sustained best="" misses=0 goal_line=""
    echo "== 5. cluster: send→deliver latency by rate, highest sustained rate, failover =="
    bash scripts/cluster.sh status >/dev/null 2>&1 || st=$?
    case $st in
    0) echo "  using the running cluster as it is (scripts/cluster.sh status: all up)" ;;
    3)
        CLUSTER_STARTED=1
        echo "  starting a cluster (scripts/cluster.sh up, keyspace ${BENCH_CLUSTER_KEYSPACE:-chorus_bench});" \
            "it is stopped again at the end"
        ;;
    *) echo "  the cluster is partly up: scripts/cluster.sh up starts the rest, and it stays up" ;;
    esac
    if [[ $st != 0 ]] && ! bench_cluster_sh up >"$TMP/cluster-up.log" 2>&1; then
        echo "  FAILED: scripts/cluster.sh up:"
        tail -n 20 "$TMP/cluster-up.log" | sed 's/^/    /'
        FAILED+=(cluster)
        return 0
    fi
    CLUSTER_SECRET=${BENCH_CLUSTER_JWT_SECRET:-$(tr -d ' \n' <"$CLUSTER_DIR_B/jwt-secret" 2>/dev/null)}
    if [[ -z $CLUSTER_SECRET ]]; then
        echo "  FAILED: no secret: set BENCH_CLUSTER_JWT_SECRET to the running cluster's"
        FAILED+=(cluster)
        return 0
    fi
    sleep 2
    # Where each log stood, to show only what this bench made the cluster log.
    local n log_at=()
    for n in router-1 router-2 gateway-8081 gateway-8082; do
        log_at+=("$(wc -l <"$CLUSTER_DIR_B/logs/$n.log" 2>/dev/null || echo 0)")
    done

    echo "  $CL_ROOMS rooms; a sender per room on ws://127.0.0.1:8081, a receiver per room on" \
        "ws://127.0.0.1:8082; $BODY_BYTES B bodies, each send with a client_msg_id; sends paced" \
        "evenly; 2 s warm-up, then $CL_SECS s measured per step"
    if ((CL_PRIME_SECS > 0)); then
        rate=${CL_RATES%% *}
        run_cluster cluster-prime --rooms "$CL_ROOMS" --senders "$CL_ROOMS" --rate "$rate" \
            --duration-secs "$CL_PRIME_SECS" || true
        echo "  (first an unreported ${CL_PRIME_SECS} s run at $rate msgs/s, for the JIT and caches)"
    fi
    echo "  latency in ms over the measured messages; CPU in % of one core over the measured" \
        "sending (cas: Cassandra, r1/r2: routers, gwA/gwB: gateways, lg: load generator," \
        "other: everything else on the machine)"
    cluster_header
    local cql_before cql_after
    cql_before=$(cql_requests)
    for rate in $CL_RATES; do
        f=$TMP/cluster-$rate.out
        rc=0
        run_cluster "cluster-$rate" --rooms "$CL_ROOMS" --senders "$CL_ROOMS" --rate "$rate" \
            --duration-secs "$CL_SECS" || rc=$?
        cql_after=$(cql_requests)
        if [[ ! -s $f ]]; then
            echo "    $rate: FAILED (load generator exit $rc):"
            sed 's/^/      /' "$TMP/cluster-$rate.err"
            FAILED+=("cluster-$rate")
            ((rate >= CL_GOAL_RATE)) && misses=$((misses + 1))
            ((misses >= 2)) && break
            cql_before=$cql_after
            continue
        fi
        sustained=$(awk -v t="$rate" -v d="$(kv deliver_rate "$f")" -v p="$(kv latency_p99_us "$f")" \
            -v m="$CL_MAX_P99_MS" -v rc="$rc" \
            'BEGIN { print (rc == 0 && d >= 0.95 * t && p <= m * 1000) ? "yes" : "no" }')
        cluster_row "$rate" "$f" "$cql_before" "$cql_after" "$sustained"
        cql_before=$cql_after
        if ((rc != 0)); then
            echo "      load generator: $(tail -n 1 "$TMP/cluster-$rate.err")"
        fi
        if [[ $sustained == yes ]]; then
            best=$rate
            misses=0
        elif ((rate >= CL_GOAL_RATE)); then
            misses=$((misses + 1))
        fi
        if [[ $rate == "$CL_GOAL_RATE" ]]; then
            goal_line=$(awk -v p="$(kv latency_p99_us "$f")" -v s="$sustained" -v r="$rate" 'BEGIN {
                printf "goal p99 <= 20 ms at %d msgs/s: p99 %.1f ms, %s", r, p / 1000,
                    (p <= 20000 && s == "yes") ? "met" : "not met" }')
        fi
        ((misses >= 2)) && break
    done
    # The same load without client_msg_id: no idempotency record is read or written, so the
    # difference is what exactly-once sends cost (a comparison, not a supported mode).
    if [[ $CL_COMPARE == 1 && -s $TMP/cluster-$CL_GOAL_RATE.out ]]; then
        f=$TMP/cluster-nocmid.out
        rc=0
        run_cluster cluster-nocmid --rooms "$CL_ROOMS" --senders "$CL_ROOMS" \
            --rate "$CL_GOAL_RATE" --duration-secs "$CL_SECS" --no-client-msg-id || rc=$?
        cql_after=$(cql_requests)
        if [[ -s $f ]]; then
            cluster_row "$CL_GOAL_RATE*" "$f" "$cql_before" "$cql_after" "(comparison)"
            echo "      * the same without client_msg_id (no idempotency read or record per message)"
        else
            echo "    comparison without client_msg_id: FAILED (load generator exit $rc)"
        fi
    fi
    echo "  (append: the routers' mean chorus_store_append_seconds, ms; batch: their mean" \
        "chorus_router_batch_size; cql/msg: requests Cassandra's native transport completed per" \
        "message sent, warm-up included)"
    for rate in $CL_RATES; do
        f=$TMP/cluster-$rate.out
        [[ -s $f ]] || continue
        echo "  $rate msgs/s, p99 by second of sending (ms): $(kv latency_p99_by_second_ms "$f" | tr ',' ' ')"
        local events
        events=$(cassandra_events "$f")
        [[ -n $events ]] && echo "    Cassandra, in s from the end of the warm-up: $events"
        local extra
        extra=$(grep -E '^(refused\.|m\.gw-.\.chorus_gateway_(router|not_owner)_retries|m\.gw-.\.chorus_gateway_errors|m\.router-.\.chorus_router_room_overloaded)' "$f" |
            tr '\n' ' ' || true)
        [[ -n $extra ]] && echo "    also: $extra"
    done
    echo "  highest sustained rate: ${best:-none of these} msgs/s (delivered >= 95% of the rate, nothing" \
        "refused, missing or out of order, p99 <= $CL_MAX_P99_MS ms)"
    [[ -n $goal_line ]] && echo "  $goal_line"

    # Failover: kill -9 router-1 under load; per room, kill → first ack again.
    f=$TMP/cluster-failover.out
    echo "  failover: $FO_RATE msgs/s over $FO_ROOMS rooms for 2 + $FO_SECS s; router-1 gets" \
        "kill -9 $FO_KILL s after the first send"
    CLUSTER_BROKEN=1
    rc=0
    run_cluster cluster-failover --rooms "$FO_ROOMS" --senders "$FO_ROOMS" --rate "$FO_RATE" \
        --duration-secs "$FO_SECS" --kill-pid-file "$CLUSTER_DIR_B/run/router-1.pid" \
        --kill-after-secs "$FO_KILL" || rc=$?
    if bench_cluster_sh up >"$TMP/cluster-restore.log" 2>&1; then
        CLUSTER_BROKEN=0
        echo "  restored: $(grep -m1 'started router-1' "$TMP/cluster-restore.log" | sed 's/^\[[^]]*\] //')"
    else
        echo "  FAILED to restore the cluster (scripts/cluster.sh up):"
        tail -n 10 "$TMP/cluster-restore.log" | sed 's/^/    /'
        FAILED+=(cluster-restore)
    fi
    if [[ -s $f ]]; then
        echo "    rooms whose acks paused >= $(kv stall_threshold_ms "$f") ms: $(kv failover_rooms_affected "$f")" \
            "of $FO_ROOMS; the others' longest pause: $(kv failover_unaffected_stall_max_ms "$f") ms"
        echo "    kill → first ack again: min $(kv failover_first_ack_min_ms "$f") ms," \
            "p50 $(kv failover_first_ack_p50_ms "$f") ms, max $(kv failover_first_ack_max_ms "$f") ms"
        echo "    kill → first delivery again (other gateway): p50" \
            "$(kv failover_first_delivery_p50_ms "$f") ms, max $(kv failover_first_delivery_max_ms "$f") ms"
        echo "    sent $(kv sent "$f"), acked $(kv acked "$f"), refused $(kv refused "$f")," \
            "acked but not delivered $(kv missing "$f"), gaps $(kv gaps "$f");" \
            "gateway retries: $(kv0 m.gw-a.chorus_gateway_router_retries_total "$f") after" \
            "router errors, $(kv0 m.gw-a.chorus_gateway_not_owner_retries_total "$f") not-owner"
        # The two waits of a crash: the ring drops the router once its membership entry
        # expires; then the new owner waits out the old session before it claims a slot.
        local kill_ms ring_line ring_ms
        kill_ms=$(kv kill_unix_ms "$f")
        ring_line=$(tail -n +"$((log_at[2] + 1))" "$CLUSTER_DIR_B/logs/gateway-8081.log" |
            grep -m1 'ring changed .*routers=\["router-2"\]' || true)
        if [[ -n $kill_ms && -n $ring_line ]]; then
            ring_ms=$(date -d "${ring_line%% *}" +%s%3N 2>/dev/null || echo "")
            [[ -n $ring_ms ]] && echo "    ring without router-1 (gateway-8081 log):" \
                "$((ring_ms - kill_ms)) ms after the kill; router-2 claimed" \
                "$(kv0 m.router-2.chorus_router_slot_claims_total "$f") slots, waiting" \
                "$(kv0 m.router-2.chorus_router_slot_claim_seconds.mean "$f") s on average" \
                "(chorus_router_slot_claim_seconds)"
        fi
    fi
    if [[ ! -s $f ]] || ((rc != 0)); then
        echo "    FAILED: load generator exit $rc:"
        sed 's/^/      /' "$TMP/cluster-failover.err"
        FAILED+=(cluster-failover)
    fi
    local i=0 lines c
    for n in router-1 router-2 gateway-8081 gateway-8082; do
        lines=$(tail -n +"$((log_at[i] + 1))" "$CLUSTER_DIR_B/logs/$n.log" 2>/dev/null |
            grep -E ' (WARN|ERROR) ' || true)
        i=$((i + 1))
        c=$(grep -c . <<<"$lines" || true)
        echo "  $n.log: ${c:-0} WARN/ERROR lines during the bench"
        [[ -n $lines ]] && head -n 3 <<<"$lines" | cut -c1-240 | sed 's/^/    /'
    done
    if [[ -s $TMP/cluster-$CL_GOAL_RATE.out ]]; then
        echo "  raw results of the $CL_GOAL_RATE msgs/s step:"
        raw_results "$TMP/cluster-$CL_GOAL_RATE.out"
    fi
    cluster_cleanup
    echo
}

# ---------------------------------------------------------------------------------------------
# 6 and 7. A room of many members: presence, read marks and unread counts.

# run_members NAME MODE ARGS...: one chorus-loadgen presence/unread run on a fresh server;
# results in $TMP/NAME.out.
run_members() {
    local name=$1 mode=$2 rc=0
    shift 2
    start_server "$name"
    "$LOADGEN" --url "$URL" "$mode" --room "$name-$RANDOM$RANDOM" --join-window "$JOIN_WINDOW" \
        --server-pid "$SERVER_PID" --clk-tck "$(getconf CLK_TCK)" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    if [[ ! -s $TMP/$name.out ]] || ((rc != 0)); then
        echo "  FAILED: load generator exit $rc:"
        grep -v -E '^(presence|unread): ' "$TMP/$name.err" | tail -n 20 | sed 's/^/    /'
        FAILED+=("$name")
    fi
    server_complaints
    stop_server
    return 0
}

# Bytes as MB with one decimal.
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
# "p50 … / p99 … / max … ms" of the latency KEY in FILE.
lat_ms() {
    echo "p50 $(us_ms "$(kv "$1_p50_us" "$2")") / p99 $(us_ms "$(kv "$1_p99_us" "$2")") /" \
        "max $(us_ms "$(kv "$1_max_us" "$2")") ms"
}
# The frames a phase delivered to all members, by type: PHASE FILE.
fanout_line() {
    local p=$1 f=$2
    echo "presence $(kv "${p}_fanout_presence_frames" "$f") frames" \
        "($(mb "$(kv "${p}_fanout_presence_bytes" "$f")")), msg $(kv "${p}_fanout_msg_frames" "$f")" \
        "($(mb "$(kv "${p}_fanout_msg_bytes" "$f")")), receipts $(kv "${p}_fanout_receipts_frames" "$f")" \
        "($(mb "$(kv "${p}_fanout_receipts_bytes" "$f")")), other $(kv "${p}_fanout_other_frames" "$f")"
}
# The observer's diffs of a phase: PHASE FILE.
diffs_line() {
    local p=$1 f=$2
    echo "$(kv "${p}_diff_frames" "$f") diff frames, $(kv "${p}_diff_bytes" "$f") B in all," \
        "largest $(kv "${p}_diff_max_bytes" "$f") B, at most $(kv "${p}_diff_max_joined" "$f")" \
        "joined / $(kv "${p}_diff_max_left" "$f") left names in one, $(kv "${p}_diff_truncated" "$f")" \
        "truncated, $(kv "${p}_diff_names" "$f") names in all"
}

bench_presence() {
    local f=$TMP/presence.out
    echo "== 6. presence at $PR_MEMBERS members =="
    echo "  one public room; an observer joins first, then $PR_MEMBERS members (one connection" \
        "each) join, $JOIN_WINDOW joins in flight; then $PR_WHO \`who\` pages; then $PR_CHURN" \
        "members leave and join again. Every connection counts the frames it receives by type."
    run_members presence presence --members "$PR_MEMBERS" --who-requests "$PR_WHO" \
        --churn "$PR_CHURN"
    if [[ -s $f ]]; then
        echo "  joins: $(kv join_samples "$f") in $(kv join_ms "$f") ms ($(kv join_per_sec "$f") /s)," \
            "each $(lat_ms join "$f")"
        echo "  observer: online = $((PR_MEMBERS + 1)) (members + observer)" \
            "$(kv join_online_reached_ms "$f") ms after the first join; $(diffs_line join "$f")"
        echo "  delivered to the members during the joins: $(fanout_line join "$f"); the last" \
            "$(kv join_deliveries_done_ms "$f") ms after the first join"
        echo "  who (limit 100, random after): $(lat_ms who "$f") over $(kv who_samples "$f")" \
            "requests, $(kv who_wrong "$f") wrong pages"
        if [[ -n $(kv churn_leave_ms "$f") ]]; then
            echo "  churn: $PR_CHURN leaves in $(kv churn_leave_ms "$f") ms, the observer's count" \
                "down $(kv churn_low_reached_ms "$f") ms after the first; $PR_CHURN joins again in" \
                "$(kv churn_join_ms "$f") ms, the count back $(kv churn_back_reached_ms "$f") ms" \
                "after the first ($(kv churn_total_ms "$f") ms in all)"
            echo "    observer: $(diffs_line churn "$f")"
            echo "    delivered to the members: $(fanout_line churn "$f")"
        fi
        echo "  server RSS: $(kv start_server_rss_kib "$f") KiB at start," \
            "$(kv connected_server_rss_kib "$f") connected, $(kv join_server_rss_kib "$f") joined," \
            "$(kv end_server_rss_kib "$f") at the end"
        echo "  server CPU: joins $(kv join_server_cpu_ms "$f") ms, who $(kv who_server_cpu_ms "$f")" \
            "ms, churn $(kv0 churn_server_cpu_ms "$f") ms; $(kv end_server_cpu_ms "$f") ms since it" \
            "started; load generator $(kv loadgen_cpu_ms "$f") ms"
        raw_results "$f"
    fi
    echo
}

bench_unread() {
    local f=$TMP/unread.out how=subscribed extra=()
    if [[ $UN_SUBSCRIBED == 0 ]]; then
        how="each leaving right after its join"
        extra=(--unsubscribe)
    fi
    echo "== 7. read marks and unread counts at $UN_MEMBERS members =="
    echo "  one public room; $UN_MEMBERS members (one connection each, $how) join; the" \
        "owner sends $UN_MSGS messages of $BODY_BYTES B; every member marks a random one read" \
        "(500 in flight); then \`rooms\` of random members, and of one user in $UN_MULTI_ROOMS rooms"
    run_members unread unread --members "$UN_MEMBERS" --messages "$UN_MSGS" \
        --rooms-requests "$UN_ROOMS_REQS" --multi-rooms "$UN_MULTI_ROOMS" \
        --multi-requests "$UN_MULTI_REQS" --body-bytes "$BODY_BYTES" "${extra[@]}"
    if [[ -s $f ]]; then
        echo "  joins: $(kv join_samples "$f") in $(kv join_ms "$f") ms ($(kv join_per_sec "$f") /s);" \
            "delivered meanwhile: $(fanout_line join "$f")"
        if [[ $UN_SUBSCRIBED == 0 ]]; then
            echo "  messages: $UN_MSGS sent in $(kv send_ms "$f") ms (nobody subscribed)"
        else
            echo "  messages: $UN_MSGS sent in $(kv send_ms "$f") ms; $(kv send_delivered "$f") of" \
                "$(kv send_expected_deliveries "$f") deliveries after $(kv send_deliveries_done_ms "$f") ms"
        fi
        echo "  read marks: $(kv read_samples "$f") accepted in $(kv read_ms "$f") ms" \
            "($(kv read_per_sec "$f") ok/s), each $(lat_ms read "$f"), $(kv read_errors "$f") refused"
        echo "    shown by \`rooms\` for all $(kv read_stored_sample "$f") sampled members" \
            "$(kv read_stored_max_ms "$f") ms after the last ok"
        if [[ $UN_SUBSCRIBED != 0 ]]; then
            echo "    delivered to the members: $(fanout_line read "$f"); the last" \
                "$(kv read_deliveries_done_ms "$f") ms after the last ok"
        fi
        echo "  rooms, a member (1 room): $(lat_ms rooms "$f") over $(kv rooms_samples "$f")" \
            "requests, $(kv rooms_wrong "$f") wrong"
        if [[ -n $(kv multi_rooms_samples "$f") ]]; then
            echo "  rooms, a user in $(kv multi_rooms "$f") rooms: $(lat_ms multi_rooms "$f") over" \
                "$(kv multi_rooms_samples "$f") requests, $(kv multi_rooms_wrong "$f") wrong" \
                "(all right $(kv multi_settled_ms "$f") ms after the setup)"
        fi
        echo "  server RSS: $(kv start_server_rss_kib "$f") KiB at start," \
            "$(kv connected_server_rss_kib "$f") connected, $(kv join_server_rss_kib "$f") joined," \
            "$(kv read_server_rss_kib "$f") after the marks, $(kv end_server_rss_kib "$f") at the end"
        echo "  server CPU: joins $(kv join_server_cpu_ms "$f") ms, messages $(kv send_server_cpu_ms "$f")" \
            "ms, marks $(kv read_server_cpu_ms "$f") ms, member rooms $(kv rooms_server_cpu_ms "$f") ms;" \
            "$(kv end_server_cpu_ms "$f") ms since it started; load generator $(kv loadgen_cpu_ms "$f") ms"
        raw_results "$f"
    fi
    echo
}

# ---------------------------------------------------------------------------------------------
# 8. Tracing overhead: the fan-out with OTLP export off, sampled at 0.01, and at 1.
bench_tracing() {
    echo "== 8. tracing overhead (OTLP export to a local collector) =="
    echo "  $TR_SUBS subscribers in one room, 1 sender, $TR_MSGS messages of $BODY_BYTES B" \
        "as fast as possible (window $FANOUT_WINDOW), per run"
    local otelcol port mode f
    otelcol=$(bash scripts/otelcol.sh | tail -n 1) || die "scripts/otelcol.sh failed"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$TMP/otelcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$port
exporters:
  debug:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
YAML
    "$otelcol" --config "$TMP/otelcol.yaml" >"$TMP/otelcol.log" 2>&1 &
    OTELCOL_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    printf '  %-12s %12s %14s %20s %14s %14s\n' tracing "sends/s" "delivered/s" \
        "server CPU µs/deliv" "ack p50 µs" "ack p99 µs"
    for mode in off 0.01 1; do
        if [[ $mode == off ]]; then
            SERVER_ARGS=()
        else
            SERVER_ARGS=(--otlp-endpoint "http://127.0.0.1:$port" --trace-sample-ratio "$mode")
        fi
        run_fanout "tracing-$mode" --subscribers "$TR_SUBS" --messages "$TR_MSGS" \
            --window "$FANOUT_WINDOW"
        f=$TMP/tracing-$mode.out
        if [[ -s $f ]]; then
            printf '  %-12s %12s %14s %20s %14s %14s\n' "$mode" "$(kv send_rate_achieved "$f")" \
                "$(kv delivered_per_sec "$f")" "$(kv server_cpu_us_per_delivery "$f")" \
                "$(kv ack_latency_p50_us "$f")" "$(kv ack_latency_p99_us "$f")"
        fi
    done
    SERVER_ARGS=()
    kill -TERM "$OTELCOL_PID" 2>/dev/null || true
    wait "$OTELCOL_PID" 2>/dev/null || true
    OTELCOL_PID=""
    echo "  spans the collector received: $(grep -o '"spans": [0-9]*' "$TMP/otelcol.log" |
        awk '{ s += $2 } END { print s + 0 }')"
    echo
}

for b in $ONLY; do
    case $b in
    idle) bench_idle ;;
    fanout) bench_fanout ;;
    latency) bench_latency ;;
    subjects) bench_subjects ;;
    presence) bench_presence ;;
    unread) bench_unread ;;
    tracing) bench_tracing ;;
    cluster) bench_cluster ;;
    esac
done

if ((${#FAILED[@]} > 0)); then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all benches completed"
