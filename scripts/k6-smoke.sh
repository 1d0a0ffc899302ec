#!/usr/bin/env bash
# The k6 smoke test (loadtest/k6/smoke.js) against a fresh `chorus standalone`, then the
# commands of the chart's `helm test` pod against the same server.
#
#   bash scripts/k6-smoke.sh        # fails when either fails; the last stdout lines sum up
#
# Starts the server on a free loopback port (--listen 127.0.0.1:0, the bound address read from
# its output) with a temporary data dir and a newly generated 32-byte secret, waits for
# /readyz, runs the smoke, and stops the server and deletes the data dir whatever happens.
# Installs k6 with scripts/k6.sh when needed. The secret reaches the server and k6 through
# the environment only.
#
# Environment: CHORUS_BIN (target/debug/chorus), K6_SMOKE_READY_TIMEOUT (30 s), SMOKE_* (the
# smoke's own parameters, see loadtest/k6/smoke.js), K6_ARGS (extra `k6 run` arguments, e.g.
# "-o experimental-prometheus-rw"), CHORUS_CACHE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
CHORUS_LOG_TAG=k6-smoke
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

CHORUS_BIN="${CHORUS_BIN:-$REPO/target/debug/chorus}"
READY_TIMEOUT="${K6_SMOKE_READY_TIMEOUT:-30}"
[ -x "$CHORUS_BIN" ] || die "no chorus binary at $CHORUS_BIN (cargo build, or set CHORUS_BIN)"

K6=$(bash "$SCRIPT_DIR/k6.sh" | tail -n 1)
[ -x "$K6" ] || die "scripts/k6.sh did not produce k6"

work=$(mktemp -d "${TMPDIR:-/tmp}/chorus-k6-smoke.XXXXXX")
server_pid=""
# Stops the server and deletes the work dir; the EXIT trap runs it.
# shellcheck disable=SC2317 # reached through the trap only
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ] && pid_alive "$server_pid"; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      pid_alive "$server_pid" || break
      sleep 0.1
    done
    pid_alive "$server_pid" && kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ]; then
    show_log_tail "$work/server.log" 20
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CHORUS_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export CHORUS_JWT_SECRET

start=$(now_s)
# 9>&-: the k6 install lock (see with_lock) must not be inherited; it is released already,
# but a server must never hold a lock fd of ours.
CHORUS_LOG="${CHORUS_LOG:-info}" "$CHORUS_BIN" standalone \
  --listen 127.0.0.1:0 --data-dir "$work/data" --web=false \
  </dev/null >"$work/server.out" 2>"$work/server.log" 9>&- &
server_pid=$!

url=""
deadline=$(($(date +%s) + READY_TIMEOUT))
until [ -n "$url" ] && [ "$(http_get 127.0.0.1 "${url##*:}" /readyz 2>/dev/null || true)" != "" ]; do
  pid_alive "$server_pid" || die "chorus standalone exited during start-up"
  [ "$(date +%s)" -lt "$deadline" ] || die "chorus standalone not ready after ${READY_TIMEOUT}s"
  [ -n "$url" ] || url=$(sed -n 's/^chorus standalone listening on //p' "$work/server.out" | head -n 1)
  sleep 0.1
done
log "chorus standalone ready on $url (data $work/data) after $(elapsed "$start")s"

k6_rc=0
# shellcheck disable=SC2086 # K6_ARGS is a list of words on purpose
CHORUS_URL="$url" K6_NO_USAGE_REPORT=true K6_AUTO_EXTENSION_RESOLUTION=false \
  "$K6" run --quiet --summary-export "$work/summary.json" ${K6_ARGS:-} \
  "$REPO/loadtest/k6/smoke.js" >&2 || k6_rc=$?

if [ -f "$work/summary.json" ] && command -v python3 >/dev/null 2>&1; then
  figures=$(python3 - "$work/summary.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
def count(name):
    return int(m.get(name, {}).get("count", 0))
lat = m.get("chorus_send_to_deliver", {})
print(
    "sent %d, acked %d, delivered %d, missing %d, unacked %d, gaps %d, duplicates %d, "
    "errors %d, connection failures %d; send->deliver p50 %.1f ms, p95 %.1f ms, max %.1f ms"
    % (count("chorus_msgs_sent"), count("chorus_msgs_acked"), count("chorus_msgs_delivered"),
       count("chorus_msgs_missing"), count("chorus_msgs_unacked"), count("chorus_seq_gaps"),
       count("chorus_seq_duplicates"), count("chorus_errors"), count("chorus_conn_failures"),
       lat.get("med", 0), lat.get("p(95)", 0), lat.get("max", 0)))
PY
  )
else
  figures="no summary"
fi

# The chart's `helm test` pod, its containers' commands run here in the pod's order against
# the same server, with the env the pod sets (CHORUS_URL, CHORUS_JWT_SECRET): the chart's
# round trip works with the binary the image ships. Run twice, as `helm test` may be: the
# second send must be answered `duplicate` and the room must still hold one message.
helm_test_rc=0
helm_test_pod() {
  local helm py pass cmds line out
  helm=$(bash "$SCRIPT_DIR/chart-test.sh" install | tail -n 1)
  py="$CHORUS_CACHE/venv-k8s/bin/python"
  "$helm" template chat "$REPO/charts/chorus" --namespace chorus --kube-version 1.37.0 \
    -f "$REPO/charts/chorus/ci/minimal.yaml" \
    --show-only templates/tests/test-roundtrip.yaml >"$work/test-pod.yaml" ||
    { log "helm template of the test pod failed"; return 1; }
  # One line per container, init containers first: its args, shell-quoted.
  cmds=$("$py" - "$work/test-pod.yaml" <<'PY'
import shlex, sys, yaml
pod = yaml.safe_load(open(sys.argv[1]))
spec = pod["spec"]
for c in spec.get("initContainers", []) + spec["containers"]:
    names = {e["name"] for e in c.get("env", [])}
    assert {"CHORUS_URL", "CHORUS_JWT_SECRET"} <= names, f"{c['name']}: env {sorted(names)}"
    print(shlex.join(c["args"]))
PY
  ) || { log "the rendered test pod is not what this check expects"; return 1; }
  for pass in 1 2; do
    while IFS= read -r line; do
      eval "set -- $line"
      out=$(CHORUS_URL="$url" timeout 90 "$CHORUS_BIN" "$@" 2>&1) ||
        { log "helm test pod, pass $pass: chorus $line failed: $out"; return 1; }
      log "helm test pod, pass $pass: chorus $1 -> $out"
      case "$1 $pass" in
        "send 1") [[ "$out" != *duplicate* ]] || { log "the first send was a duplicate"; return 1; } ;;
        "send 2") [[ "$out" == *duplicate* ]] || { log "the rerun's send was not answered duplicate"; return 1; } ;;
        tail*) [[ "$out" == *"helm test round trip"* ]] || { log "tail did not print the message"; return 1; } ;;
      esac
    done <<<"$cmds"
  done
}
helm_test_pod || helm_test_rc=$?

if [ "$k6_rc" -eq 0 ]; then
  echo "k6 smoke passed in $(elapsed "$start")s: $figures"
else
  echo "k6 smoke FAILED (k6 exit $k6_rc) in $(elapsed "$start")s: $figures"
fi
if [ "$helm_test_rc" -eq 0 ]; then
  echo "the chart's helm test round trip passed twice against $CHORUS_BIN"
else
  echo "the chart's helm test round trip FAILED against $CHORUS_BIN"
fi
[ "$k6_rc" -eq 0 ] && exit "$helm_test_rc"
exit "$k6_rc"
