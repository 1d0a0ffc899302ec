#!/usr/bin/env bash
# Chorus benchmarks (`make bench`): memory per idle connection, fan-out throughput and server
# CPU per delivered message, send→deliver latency at a fixed rate. Each bench runs against a
# fresh `chorus standalone` (own temporary data dir) driven by chorus-loadgen on this machine.
# `subjects` measures the NATS delivery bus's subject design instead (ADR 0005): it starts a
# fresh nats-server of its own through scripts/nats.sh (installed first if needed) and stops
# it afterwards; no Chorus server is involved.
# The output is meant to be pasted into docs/benchmarks.md.
#
# Environment (defaults in parentheses; BENCH_QUICK=1 shrinks them for a sanity run):
#   BENCH_QUICK=1             small sizes: 500 idle conns, 100 subscribers, 200 messages,
#                             subjects: 2000 rooms, 20000 messages
#   BENCH_IDLE_CONNS          idle connections (10000)
#   BENCH_FANOUT_SUBS         fan-out subscribers (1000)
#   BENCH_FANOUT_MSGS         fan-out messages, sent as fast as the window allows (2000)
#   BENCH_FANOUT_WINDOW       un-acked sends in flight (64)
#   BENCH_LATENCY_SUBS        latency bench subscribers (1000)
#   BENCH_LATENCY_RATE        latency bench send rate, messages/s (50)
#   BENCH_LATENCY_SECS        latency bench duration, seconds (20)
#   BENCH_BODY_BYTES          message body size (64)
#   BENCH_SUBJECTS_ROOMS      subjects: rooms with subscribers (100000)
#   BENCH_SUBJECTS_MSGS       subjects: messages per fan-out scenario, round-robin over rooms (200000)
#   BENCH_SUBJECTS_GATEWAYS   subjects: simulated gateways sharing the rooms (2)
#   BENCH_SUBJECTS_RATE       subjects: publish rate of the paced pass, messages/s (50000; 0 skips it)
#   BENCH_SUBJECTS_PAYLOAD    subjects: payload bytes per message (200, about a msg frame)
#   BENCH_SUBJECTS_NATS_PORT  subjects: nats-server client port (15222; monitoring on port + 1000)
#   BENCH_SKIP_BUILD=1        use the existing target/release binaries
#   BENCH_ONLY="idle fanout latency subjects"  run a subset
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    d_idle=500 d_subs=100 d_msgs=200 d_lat_subs=100 d_lat_rate=50 d_lat_secs=4
    d_subj_rooms=2000 d_subj_msgs=20000
else
    d_idle=10000 d_subs=1000 d_msgs=2000 d_lat_subs=1000 d_lat_rate=50 d_lat_secs=20
    d_subj_rooms=100000 d_subj_msgs=200000
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
ONLY=${BENCH_ONLY:-idle fanout latency subjects}
LAT_MSGS=$(awk -v r="$LAT_RATE" -v s="$LAT_SECS" 'BEGIN { printf "%d", r * s }')

CHORUS=target/release/chorus
LOADGEN=target/release/chorus-loadgen

die() {
    echo "bench: $*" >&2
    exit 1
}

for b in $ONLY; do
    case $b in
    idle | fanout | latency | subjects) ;;
    *) die "unknown bench '$b' in BENCH_ONLY (idle, fanout, latency, subjects)" ;;
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
max_conns=$IDLE_CONNS
for n in "$FANOUT_SUBS" "$LAT_SUBS"; do
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
    if [[ $NATS_STARTED == 1 ]]; then
        bench_nats clean >/dev/null 2>&1 || true
    fi
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
        --send-rate 1000000 --send-burst 1000000 \
        --max-in-flight $((FANOUT_WINDOW > 32 ? FANOUT_WINDOW * 2 : 64)) \
        --max-connections $((max_conns + 1000)) \
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

for b in $ONLY; do
    case $b in
    idle) bench_idle ;;
    fanout) bench_fanout ;;
    latency) bench_latency ;;
    subjects) bench_subjects ;;
    esac
done

if ((${#FAILED[@]} > 0)); then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all benches completed"
