#!/usr/bin/env bash
# The OpenTelemetry Collector for the trace tests: builds it once and prints its path.
#
#   scripts/otelcol.sh       # builds $CHORUS_CACHE/bin/otelcol-chorus (no-op when it matches
#                            # scripts/otelcol-builder.yaml); prints its path as the last line
#
# The collector is built by its own builder (ocb, go.opentelemetry.io/collector/cmd/builder)
# from the components listed in scripts/otelcol-builder.yaml, all from the Go module proxy,
# with GOPATH and the module cache under $CHORUS_CACHE/go. Nothing else is downloaded. A fresh
# build takes about a minute and a half on 2 cores.
#
# Environment: OTELCOL_VERSION (the builder's version, default below), CHORUS_CACHE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHORUS_LOG_TAG=otelcol
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

OTELCOL_VERSION="${OTELCOL_VERSION:-v0.165.0}"
CONFIG="$SCRIPT_DIR/otelcol-builder.yaml"
BIN_DIR="$CHORUS_CACHE/bin"
OCB="$BIN_DIR/ocb"
BIN="$BIN_DIR/otelcol-chorus"
# What the installed binary was built from: the builder's version and the config's checksum.
STAMP="$BIN.stamp"

wanted_stamp() {
  printf '%s %s\n' "$OTELCOL_VERSION" "$(sha256sum "$CONFIG" | cut -d' ' -f1)"
}

go_env() {
  GOPATH="$CHORUS_CACHE/go" \
    GOMODCACHE="$CHORUS_CACHE/go/mod" \
    GOCACHE="$CHORUS_CACHE/go/build-otelcol" \
    GOFLAGS="-modcacherw -trimpath" \
    CGO_ENABLED=0 \
    "$@"
}

do_install() {
  local start src
  if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$(wanted_stamp)" ]; then
    log "collector already built at $BIN ($OTELCOL_VERSION)"
    return 0
  fi
  need_cmd go
  start=$(now_s)
  mkdir -p "$BIN_DIR"
  if [ "$(go version -m "$OCB" 2>/dev/null | awk '$1 == "mod" { print $3 }')" != "$OTELCOL_VERSION" ]; then
    log "go install go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION -> $OCB"
    go_env env GOBIN="$BIN_DIR" go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION" >&2 ||
      die "go install of the collector builder $OTELCOL_VERSION failed"
    mv -f "$BIN_DIR/builder" "$OCB"
  fi
  src="$CHORUS_CACHE/go/otelcol-build"
  rm -rf "$src"
  mkdir -p "$src"
  cp "$CONFIG" "$src/builder.yaml"
  log "building the collector from $CONFIG (module cache under $CHORUS_CACHE/go)"
  (cd "$src" && go_env "$OCB" --config builder.yaml >"$src/build.log" 2>&1) || {
    tail -n 30 "$src/build.log" >&2
    die "the collector build failed (log above)"
  }
  mv -f "$src/build/otelcol-chorus" "$BIN"
  wanted_stamp >"$STAMP"
  # Keep the downloaded modules (a rebuild needs no network); drop the compiler output.
  rm -rf "$CHORUS_CACHE/go/build-otelcol" "$src"
  log "built $BIN ($OTELCOL_VERSION) in $(elapsed "$start")s"
}

case "${1:-install}" in
  install)
    with_lock "$CHORUS_CACHE/locks/otelcol-install.lock" do_install
    echo "$BIN"
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
