#!/usr/bin/env bash
# The kustomize manifests in k8s/, validated offline: run (the default) | render | install
#
#   scripts/k8s-test.sh           # install the tools if needed, then every check below
#   scripts/k8s-test.sh render    # regenerate k8s/base/chorus.yaml from the chart
#   scripts/k8s-test.sh install   # only install kustomize (and what chart-test.sh installs)
#
# `run` fails on the first stage that fails:
#   1. k8s/base/chorus.yaml is what the chart renders with k8s/base/values.yaml today (the base
#      is the chart, so the two cannot drift);
#   2. kustomize build of the base and of every overlay;
#   3. kubernetes-validate --strict of each build for the oldest and newest Kubernetes the
#      chart supports (1.30 and 1.37), except custom resources, which
#   4. are validated against their CRD's schema: the ScyllaCluster of the dev overlay against
#      scylla-operator's CRD (module github.com/scylladb/scylla-operator from the Go module
#      proxy, its deploy/operator.yaml), with Python jsonschema;
#   5. checkov on every overlay's build, with the chart's justified skips (charts/chorus/.checkov.yaml);
#   6. the overlays keep what matters: namespaces, replicas, the NATS and CQL endpoints.
#
# kustomize is built from the Go module proxy (sigs.k8s.io/kustomize/kustomize/v5) into
# $CHORUS_CACHE/bin; helm and the validators come from scripts/chart-test.sh install.
#
# Environment: KUSTOMIZE_VERSION, SCYLLA_OPERATOR_VERSION (pins below), CHORUS_CACHE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
CHORUS_LOG_TAG=k8s-test
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.7.1}"
# The newest scylla-operator release whose go.mod the checksum database knows (1.16 and later
# are refused by it here); its ScyllaCluster CRD (scylla.scylladb.com/v1) is the one the dev
# overlay targets.
SCYLLA_OPERATOR_VERSION="${SCYLLA_OPERATOR_VERSION:-v1.14.0}"
KUBE_VERSIONS=(1.30.0 1.37.0)
BIN_DIR="$CHORUS_CACHE/bin"
KUSTOMIZE="$BIN_DIR/kustomize"
HELM="$BIN_DIR/helm"
VENV="$CHORUS_CACHE/venv-k8s"
K8S="$REPO/k8s"
OVERLAYS=(dev production)

go_env() {
  GOPATH="$CHORUS_CACHE/go" GOMODCACHE="$CHORUS_CACHE/go/mod" GOFLAGS="-modcacherw" "$@"
}

install_kustomize() {
  local have
  have=$(go version -m "$KUSTOMIZE" 2>/dev/null | awk '$1 == "mod" { print $3 }' || true)
  if [ "$have" = "$KUSTOMIZE_VERSION" ]; then
    log "kustomize $KUSTOMIZE_VERSION already installed at $KUSTOMIZE"
    return 0
  fi
  need_cmd go
  mkdir -p "$BIN_DIR"
  log "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION -> $BIN_DIR"
  go_env env GOBIN="$BIN_DIR" GOCACHE="$CHORUS_CACHE/go/build-kustomize" \
    go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2 ||
    die "go install of kustomize $KUSTOMIZE_VERSION failed"
  rm -rf "$CHORUS_CACHE/go/build-kustomize"
}

# Prints the directory of the scylla-operator module (downloaded once into the module cache).
scylla_operator_dir() {
  local dir
  dir=$(go_env go mod download -json "github.com/scylladb/scylla-operator@$SCYLLA_OPERATOR_VERSION" |
    "$VENV/bin/python" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit("go mod download: %s" % d.get("Error")))') ||
    die "could not download github.com/scylladb/scylla-operator@$SCYLLA_OPERATOR_VERSION"
  echo "$dir"
}

install() {
  bash "$SCRIPT_DIR/chart-test.sh" install >/dev/null
  with_lock "$CHORUS_CACHE/locks/kustomize-install.lock" install_kustomize
}

render_base() {
  "$HELM" template chorus "$REPO/charts/chorus" --skip-tests --namespace chorus --kube-version 1.30.0 \
    -f "$K8S/base/values.yaml" | "$VENV/bin/python" "$K8S/tests/render.py"
}

run() {
  local start work overlay v crd_dir
  start=$(now_s)
  work=$(mktemp -d "${TMPDIR:-/tmp}/chorus-k8s.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -rf '$work'" RETURN

  render_base >"$work/base.yaml"
  if ! diff -u "$K8S/base/chorus.yaml" "$work/base.yaml" >"$work/drift.diff"; then
    head -n 40 "$work/drift.diff" >&2
    die "k8s/base/chorus.yaml differs from the chart's rendering: run 'bash scripts/k8s-test.sh render'"
  fi
  log "1. k8s/base/chorus.yaml matches the chart"

  "$KUSTOMIZE" build "$K8S/base" >"$work/build-base.yaml"
  for overlay in "${OVERLAYS[@]}"; do
    "$KUSTOMIZE" build "$K8S/overlays/$overlay" >"$work/build-$overlay.yaml" ||
      die "kustomize build k8s/overlays/$overlay failed"
  done
  log "2. kustomize build of base, ${OVERLAYS[*]}"

  crd_dir=$(scylla_operator_dir)
  for build in base "${OVERLAYS[@]}"; do
    "$VENV/bin/python" "$K8S/tests/split.py" "$work/build-$build.yaml" "$work/$build-core.yaml" "$work/$build-crs.yaml"
    for v in "${KUBE_VERSIONS[@]}"; do
      "$VENV/bin/kubernetes-validate" --strict --kubernetes-version "$v" "$work/$build-core.yaml" >"$work/validate.log" 2>&1 || {
        cat "$work/validate.log" >&2
        die "kubernetes-validate --strict ($v) refused the $build build"
      }
    done
    "$VENV/bin/python" "$K8S/tests/validate_crs.py" "$crd_dir/deploy/operator.yaml" "$work/$build-crs.yaml" ||
      die "custom resources of the $build build do not match their CRDs"
  done
  log "3-4. every build valid for Kubernetes ${KUBE_VERSIONS[*]}; custom resources valid against scylla-operator $SCYLLA_OPERATOR_VERSION's CRDs"

  mkdir -p "$work/lint"
  # The overlays (the base alone has no namespace; as the chart's rendering it is linted by
  # chart-test.sh).
  for overlay in "${OVERLAYS[@]}"; do cp "$work/build-$overlay.yaml" "$work/lint/"; done
  "$VENV/bin/checkov" --config-file "$REPO/charts/chorus/.checkov.yaml" -d "$work/lint" >"$work/checkov.out" 2>&1 ||
    { cat "$work/checkov.out" >&2; die "checkov found problems in the kustomize builds (above)"; }
  log "5. checkov: $(grep -m1 'Passed checks' "$work/checkov.out")"

  "$VENV/bin/python" "$K8S/tests/test_overlays.py" "$work" ||
    die "the overlays' checks failed"
  log "6. overlay checks passed"
  log "k8s checks passed in $(elapsed "$start")s"
}

case "${1:-run}" in
  install) install ;;
  render)
    install
    render_base >"$K8S/base/chorus.yaml"
    log "wrote k8s/base/chorus.yaml"
    ;;
  run)
    install
    run
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
