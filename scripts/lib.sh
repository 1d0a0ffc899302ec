# shellcheck shell=bash
# Shared helpers for scripts/nats.sh and scripts/cassandra.sh. Source it; do not run it.
#
# Environment:
#   CHORUS_CACHE    where downloads and builds are cached (default ~/.cache/chorus)
#   CHORUS_RUN_DIR  where running instances keep config, data, logs and pid files
#                   (default $CHORUS_CACHE/run)

CHORUS_CACHE="${CHORUS_CACHE:-${HOME:-/root}/.cache/chorus}"
CHORUS_RUN_DIR="${CHORUS_RUN_DIR:-$CHORUS_CACHE/run}"
CHORUS_LOG_TAG="${CHORUS_LOG_TAG:-chorus}"
export CHORUS_CACHE CHORUS_RUN_DIR

# Logging goes to stderr so that the last line on stdout stays machine-readable.
log() { printf '[%s %s] %s\n' "$CHORUS_LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
# die keeps its reason in CHORUS_DIE_REASON, so that an EXIT trap that prints logs first can
# repeat it last, where a CI log's tail shows it.
CHORUS_DIE_REASON=""
die() {
  CHORUS_DIE_REASON="$*"
  log "ERROR: $*"
  exit 1
}

need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "required command not found: $c"
  done
}

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    return 1
  fi
}

# Seconds since the epoch, with a fraction, for timing.
now_s() { date +%s.%N; }
# elapsed START -> "12.3"
elapsed() { awk -v s="$1" -v e="$(now_s)" 'BEGIN { printf "%.1f", e - s }'; }

# port_open HOST PORT: true when a TCP connect succeeds within one second.
port_open() {
  # shellcheck disable=SC2016 # $1/$2 expand in the inner bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# wait_for_port HOST PORT TIMEOUT_SECONDS: polls until the port accepts connections.
wait_for_port() {
  local host="$1" port="$2" limit="${3:-30}" start
  start=$(date +%s)
  until port_open "$host" "$port"; do
    if [ $(($(date +%s) - start)) -ge "$limit" ]; then
      return 1
    fi
    sleep 0.2
  done
}

# http_get HOST PORT PATH: prints the response body (curl if present, else bash /dev/tcp).
http_get() {
  local host="$1" port="$2" path="$3"
  if command -v curl >/dev/null 2>&1; then
    curl -fsS --max-time 2 "http://$host:$port$path"
  else
    # shellcheck disable=SC2016 # $1..$3 expand in the inner bash
    timeout 2 bash -c '
      exec 3<>"/dev/tcp/$1/$2" || exit 1
      printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$3" "$1" >&3
      sed "1,/^\r\{0,1\}$/d" <&3' _ "$host" "$port" "$path"
  fi
}

# pid_alive PID [PATTERN]: the process exists, is not a zombie and, when PATTERN is
# given, its command line contains PATTERN (guards against a recycled pid).
# A process counts as alive while any of its threads is: a JVM's main thread can be
# a zombie while its other threads are still shutting down and holding ports.
pid_alive() {
  local pid="$1" pattern="${2:-}" stat cmdline live=0
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  for stat in /proc/"$pid"/task/*/stat; do
    # field 3 (state) follows the ")" that closes the command name
    case "$(sed 's/.*) //' "$stat" 2>/dev/null | cut -c1)" in
      "" | Z | X) ;;
      *)
        live=1
        break
        ;;
    esac
  done
  [ "$live" -eq 1 ] || return 1
  if [ -n "$pattern" ]; then
    # (no "| grep -q" here: under pipefail an early grep exit fails the pipeline)
    cmdline=$(cat /proc/"$pid"/cmdline /proc/"$pid"/task/*/cmdline 2>/dev/null | tr '\0' ' ')
    [[ "$cmdline" == *"$pattern"* ]] || return 1
  fi
}

# pid_from_file FILE [PATTERN]: prints the pid when the file names a live process;
# removes a stale file and prints nothing otherwise.
pid_from_file() {
  local file="$1" pattern="${2:-}" pid
  [ -f "$file" ] || return 0
  pid=$(tr -dc '0-9' <"$file")
  if pid_alive "$pid" "$pattern"; then
    echo "$pid"
  else
    rm -f "$file"
  fi
}

# stop_pid_file FILE NAME GRACE_SECONDS [PATTERN]: SIGTERM, wait up to GRACE, then
# SIGKILL; removes FILE. Succeeds (and says so) when nothing was running.
stop_pid_file() {
  local file="$1" name="$2" grace="$3" pattern="${4:-}" pid waited=0
  pid=$(pid_from_file "$file" "$pattern")
  if [ -z "$pid" ]; then
    rm -f "$file"
    log "$name is not running"
    return 0
  fi
  log "stopping $name (pid $pid, SIGTERM, up to ${grace}s)"
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid"; do
    if [ "$waited" -ge $((grace * 5)) ]; then
      warn "$name did not exit after ${grace}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
    waited=$((waited + 1))
  done
  rm -f "$file"
  log "$name stopped"
}

# with_lock FILE CMD...: runs CMD while holding an exclusive flock on FILE, so that two
# concurrent installs or starts of the same thing do not trip over each other.
with_lock() {
  local file="$1"
  shift
  mkdir -p "$(dirname "$file")"
  if command -v flock >/dev/null 2>&1; then
    (
      flock -x 9
      "$@"
    ) 9>"$file"
  else
    "$@"
  fi
}

# show_log_tail FILE [LINES]: prints the end of a log file to stderr, for failures.
show_log_tail() {
  local file="$1" lines="${2:-40}"
  if [ -f "$file" ]; then
    log "last $lines lines of $file:"
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
  fi
}

# Installs Debian packages (as root, or with passwordless sudo) unless BINARY is already
# executable, under a lock so two concurrent runs never run apt-get at once. A package's own
# service failing to start (no init system in a container) does not fail the install as long
# as BINARY is there afterwards.
#   install_debian_packages /usr/bin/chromium chromium fonts-dejavu-core
install_debian_packages() {
  local binary=$1
  shift
  mkdir -p "$CHORUS_CACHE"
  with_lock "$CHORUS_CACHE/apt.lock" _install_debian_packages "$binary" "$@"
}

_install_debian_packages() {
  local binary=$1 start
  shift
  [ -x "$binary" ] && return 0
  need_cmd apt-get
  log "installing Debian packages: $*"
  start=$(now_s)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
    die "apt-get update failed (run as root, or with passwordless sudo)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$@" >&2 || [ -x "$binary" ] || die "apt-get install $* failed"
  [ -x "$binary" ] || die "$* installed but $binary is missing"
  log "installed in $(elapsed "$start") s"
}
