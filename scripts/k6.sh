#!/usr/bin/env bash
# k6 for the load tests in loadtest/k6: installs the pinned k6 v2 and prints its path.
#
#   scripts/k6.sh            # builds k6 into $CHORUS_CACHE/bin (no-op when that version is
#                            # there); prints $CHORUS_CACHE/bin/k6 as the last line on stdout
#   K6=$(scripts/k6.sh) && "$K6" run loadtest/k6/smoke.js
#
# k6 is built from the Go module proxy (module go.k6.io/k6/v2), with GOPATH, the module cache
# and the build cache under $CHORUS_CACHE/go. Nothing else is downloaded.
#
# Environment: K6_VERSION (default below), CHORUS_CACHE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHORUS_LOG_TAG=k6
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

# k6 v2 lives at the /v2 module path; go.k6.io/k6 without it stops at v1. v2.2.0 is the newest
# v2 whose source the proxy here serves (it knows v2.3.0 but answers 403 for its zip).
K6_VERSION="${K6_VERSION:-v2.2.0}"
K6_MODULE="go.k6.io/k6/v2"

K6_BIN_DIR="$CHORUS_CACHE/bin"
K6_BIN="$K6_BIN_DIR/k6"

# The module version the build recorded in the binary, e.g. v2.2.0 (empty when absent).
installed_version() {
  [ -x "$K6_BIN" ] || return 0
  go version -m "$K6_BIN" 2>/dev/null |
    awk -v m="$K6_MODULE" '($1 == "mod" || $1 == "dep") && $2 == m { print $3 }'
}

do_install() {
  local start src
  if [ "$(installed_version)" = "$K6_VERSION" ]; then
    log "k6 $K6_VERSION already installed at $K6_BIN"
    return 0
  fi
  need_cmd go
  start=$(now_s)
  src="$CHORUS_CACHE/go/k6-build"
  mkdir -p "$K6_BIN_DIR" "$src"
  # Not `go install go.k6.io/k6/v2@VERSION`: go install looks up the module's deprecation in
  # the proxy's version list, which the proxy answers with 404 for the /v2 path, and then
  # fails. Building the module as the dependency of a throw-away main module pins the same
  # version without that lookup; downloads are still checked against the checksum database.
  rm -f "$src/go.sum"
  printf 'module chorus.local/k6build\n\ngo 1.26.0\n\nrequire %s %s\n' \
    "$K6_MODULE" "$K6_VERSION" >"$src/go.mod"
  log "go build $K6_MODULE@$K6_VERSION -> $K6_BIN (GOPATH, module and build caches under $CHORUS_CACHE/go)"
  # The build cache is k6's own (build-k6), so that the cleanup below never pulls the rug
  # from under a concurrent go install of another tool that shares the module cache.
  (
    cd "$src"
    GOPATH="$CHORUS_CACHE/go" \
      GOMODCACHE="$CHORUS_CACHE/go/mod" \
      GOCACHE="$CHORUS_CACHE/go/build-k6" \
      GOFLAGS="-modcacherw -trimpath -mod=mod" \
      CGO_ENABLED=0 \
      go build -ldflags "-s -w" -o "$K6_BIN.tmp" "$K6_MODULE" >&2
  ) || die "go build of $K6_MODULE@$K6_VERSION failed"
  mv -f "$K6_BIN.tmp" "$K6_BIN"
  # Keep the downloaded modules (a rebuild needs no network); drop the compiler output, which
  # only the next version bump would reuse.
  rm -rf "$CHORUS_CACHE/go/build-k6"
  [ "$(installed_version)" = "$K6_VERSION" ] ||
    die "the built k6 records module version '$(installed_version)', not $K6_VERSION"
  log "installed $("$K6_BIN" version 2>/dev/null | head -n 1) in $(elapsed "$start")s"
}

case "${1:-install}" in
  install)
    with_lock "$CHORUS_CACHE/locks/k6-install.lock" do_install
    echo "$K6_BIN"
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
