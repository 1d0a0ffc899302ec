#!/usr/bin/env bash
# Installs every tool the test suite uses: install | start | stop
#
#   scripts/install-tools.sh install   # all of them, one after another, in the foreground
#   scripts/install-tools.sh start     # the same in the background at low priority (nice 10),
#                                      # output to $CHORUS_CACHE/logs/install-tools.log
#   scripts/install-tools.sh stop      # ends a background run (its whole process group)
#
# Each tool is installed by its own script (nats.sh, cassandra.sh, prometheus.sh, otelcol.sh,
# k6.sh, chart-test.sh, k8s-test.sh, chromium.sh), so each install stays idempotent, cached
# under $CHORUS_CACHE and serialized by that script's lock. `make test` calls `start` first:
# on a fresh machine the downloads and Go builds (helm, k6, the collector, nats-server,
# kustomize: about ten minutes one after another) then overlap the Rust builds instead of
# following them. Every stage of the suite still runs its own tools' installs: those wait on
# the same locks and find the tools installed, or install them themselves (and report why)
# when the background run failed. With a warm cache every install is a no-op.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHORUS_LOG_TAG=install-tools
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

PID_FILE="$CHORUS_CACHE/run/install-tools.pid"
LOG_FILE="$CHORUS_CACHE/logs/install-tools.log"

# In the order the suite needs them: the services of `unit` first, the chart's tools last.
install_all() {
  local start tool
  start=$(now_s)
  for tool in nats cassandra prometheus otelcol k6 chromium chart k8s; do
    case "$tool" in
      nats) bash "$SCRIPT_DIR/nats.sh" install ;;
      cassandra) bash "$SCRIPT_DIR/cassandra.sh" install ;;
      prometheus) bash "$SCRIPT_DIR/prometheus.sh" ;;
      otelcol) bash "$SCRIPT_DIR/otelcol.sh" ;;
      k6) bash "$SCRIPT_DIR/k6.sh" ;;
      chromium) bash "$SCRIPT_DIR/chromium.sh" ;;
      chart) bash "$SCRIPT_DIR/chart-test.sh" install ;;
      k8s) bash "$SCRIPT_DIR/k8s-test.sh" install ;;
    esac >/dev/null || die "installing $tool failed (see above)"
  done
  log "every tool installed in $(elapsed "$start")s"
}

case "${1:-install}" in
  install) install_all ;;
  start)
    mkdir -p "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
    if [ -f "$PID_FILE" ] && pid_alive "$(cat "$PID_FILE")" install-tools; then
      log "already running (pid $(cat "$PID_FILE"))"
      exit 0
    fi
    # setsid: its own process group, so `stop` reaches the Go builds and pip it started.
    # </dev/null and 9>&-: it holds no terminal and none of our lock fds.
    setsid nice -n 10 bash "$SCRIPT_DIR/install-tools.sh" install </dev/null >"$LOG_FILE" 2>&1 9>&- &
    echo "$!" >"$PID_FILE"
    log "installing the test tools in the background (pid $!, log $LOG_FILE)"
    ;;
  stop)
    if [ -f "$PID_FILE" ]; then
      pid=$(cat "$PID_FILE")
      if pid_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        log "stopped the background install (pid $pid)"
      fi
      rm -f "$PID_FILE"
    fi
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
