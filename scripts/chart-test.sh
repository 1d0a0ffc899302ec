#!/usr/bin/env bash
# Offline validation of the Helm chart charts/chorus: install | run (the default)
#
#   scripts/chart-test.sh           # install the tools if needed, then run every check below
#   scripts/chart-test.sh install   # only install: helm, and a venv with kubernetes-validate,
#                                   # PyYAML and checkov; prints $CHORUS_CACHE/bin/helm last
#
# `run` checks, and fails on the first stage that fails:
#   1. helm lint --strict with each ci/*.yaml, for the oldest and newest Kubernetes supported
#   2. helm template of each ci/*.yaml piped to kubernetes-validate --strict, for the same two
#      versions (KUBE_OLDEST, KUBE_NEWEST)
#   3. checkov on everything rendered (config and justified skips: charts/chorus/.checkov.yaml)
#   4. each ci-invalid/*.yaml must make helm template fail with a schema error containing the
#      file's `# expect:` line
#   5. the chart unit tests (charts/chorus/unittest/test_chart.py)
# It needs no cluster and no network once the tools are cached.
#
# Environment: HELM_VERSION, KUBE_VALIDATE_VERSION, CHECKOV_VERSION, PYYAML_VERSION (pins below),
# KUBE_OLDEST, KUBE_NEWEST, CHORUS_CACHE.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHORUS_LOG_TAG=chart-test
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
HELM_MODULE="helm.sh/helm/v4"
KUBE_VALIDATE_VERSION="${KUBE_VALIDATE_VERSION:-1.37.0}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
PYYAML_VERSION="${PYYAML_VERSION:-6.0.3}"
# The chart's kubeVersion is >=1.30.0-0 (the gateway's preStop sleep action); 1.37 is the
# newest schema kubernetes-validate 1.37.0 ships.
KUBE_OLDEST="${KUBE_OLDEST:-1.30.0}"
KUBE_NEWEST="${KUBE_NEWEST:-1.37.0}"

CHART="$(cd "$SCRIPT_DIR/../charts/chorus" && pwd)"
BIN_DIR="$CHORUS_CACHE/bin"
HELM="$BIN_DIR/helm"
VENV="$CHORUS_CACHE/venv-k8s"
VENV_STAMP="$VENV/.chorus-pins"
VENV_PINS="kubernetes-validate==$KUBE_VALIDATE_VERSION PyYAML==$PYYAML_VERSION checkov==$CHECKOV_VERSION"

# The module version go install built into the binary (helm's own `version` prints only vN.M).
helm_installed_version() {
  [ -x "$HELM" ] || return 0
  go version -m "$HELM" 2>/dev/null | awk -v m="$HELM_MODULE" '$1 == "mod" && $2 == m { print $3 }'
}

install_helm() {
  local start
  if [ "$(helm_installed_version)" = "$HELM_VERSION" ]; then
    log "helm $HELM_VERSION already installed at $HELM"
    return 0
  fi
  need_cmd go
  start=$(now_s)
  mkdir -p "$BIN_DIR" "$CHORUS_CACHE/go"
  log "go install $HELM_MODULE/cmd/helm@$HELM_VERSION -> $BIN_DIR (module and build caches under $CHORUS_CACHE/go)"
  GOBIN="$BIN_DIR" \
    GOPATH="$CHORUS_CACHE/go" \
    GOMODCACHE="$CHORUS_CACHE/go/mod" \
    GOCACHE="$CHORUS_CACHE/go/build-helm" \
    GOFLAGS="-modcacherw -trimpath" \
    CGO_ENABLED=0 \
    go install -ldflags "-s -w" "$HELM_MODULE/cmd/helm@$HELM_VERSION" >&2 ||
    die "go install of helm $HELM_VERSION failed"
  # Keep the downloaded modules; drop the compiler output, which only a version bump would reuse.
  rm -rf "$CHORUS_CACHE/go/build-helm"
  [ "$(helm_installed_version)" = "$HELM_VERSION" ] || die "installed helm reports $(helm_installed_version), not $HELM_VERSION"
  log "installed helm $HELM_VERSION in $(elapsed "$start")s"
}

install_venv() {
  local start
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV_STAMP" 2>/dev/null)" = "$VENV_PINS" ]; then
    log "venv $VENV already has $VENV_PINS"
    return 0
  fi
  need_cmd python3
  start=$(now_s)
  log "creating $VENV with $VENV_PINS (PyPI)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  # shellcheck disable=SC2086 # one word per pinned requirement
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $VENV_PINS >&2 ||
    die "pip install of $VENV_PINS failed"
  echo "$VENV_PINS" >"$VENV_STAMP"
  log "venv ready in $(elapsed "$start")s"
}

do_install() {
  install_helm
  install_venv
}

# schema_has VERSION: kubernetes-validate ships the strict schemas of that Kubernetes version.
schema_has() {
  local dir
  dir=$("$VENV/bin/python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')
  [ -d "$dir/kubernetes-json-schema/v$1-local-strict" ]
}

do_run() {
  local start work f name v out failed=0 expect
  start=$(now_s)
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  for v in "$KUBE_OLDEST" "$KUBE_NEWEST"; do
    schema_has "$v" || die "kubernetes-validate $KUBE_VALIDATE_VERSION has no schema for Kubernetes $v"
  done
  log "helm $HELM_VERSION, kubernetes-validate $KUBE_VALIDATE_VERSION, checkov $CHECKOV_VERSION; Kubernetes $KUBE_OLDEST (oldest) and $KUBE_NEWEST (newest)"

  log "1/5 helm lint --strict"
  for f in "$CHART"/ci/*.yaml; do
    for v in "$KUBE_OLDEST" "$KUBE_NEWEST"; do
      "$HELM" lint --strict "$CHART" --kube-version "$v" -f "$f" >"$work/lint.out" 2>&1 ||
        { cat "$work/lint.out" >&2; die "helm lint --strict failed with ci/$(basename "$f") on Kubernetes $v"; }
    done
    log "  lint ok: ci/$(basename "$f")"
  done

  log "2/5 helm template | kubernetes-validate --strict"
  mkdir -p "$work/rendered"
  for f in "$CHART"/ci/*.yaml; do
    name=$(basename "$f" .yaml)
    for v in "$KUBE_OLDEST" "$KUBE_NEWEST"; do
      out="$work/rendered/$name-$v.yaml"
      "$HELM" template chat "$CHART" --namespace chorus --kube-version "$v" -f "$f" >"$out" ||
        die "helm template failed with ci/$name.yaml on Kubernetes $v"
      # CRDs (ServiceMonitor, PrometheusRule) have no schema there: a warning, not an error.
      if ! "$VENV/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$v" "$out" >"$work/kv.out" 2>&1; then
        cat "$work/kv.out" >&2
        die "ci/$name.yaml does not validate against Kubernetes $v (errors above)"
      fi
      grep -v "Couldn't find schema for kind \(ServiceMonitor\|PrometheusRule\) with api version monitoring.coreos.com/v1" "$work/kv.out" >&2 || true
      log "  valid on Kubernetes $v: ci/$name.yaml ($(grep -c '^kind:' "$out") objects)"
    done
  done

  log "3/5 checkov on the rendered manifests (.checkov.yaml)"
  "$VENV/bin/checkov" --config-file "$CHART/.checkov.yaml" -d "$work/rendered" >"$work/checkov.out" 2>&1 ||
    { cat "$work/checkov.out" >&2; die "checkov found problems (above)"; }
  log "  $(grep -m1 'Passed checks' "$work/checkov.out")"

  log "4/5 ci-invalid/*.yaml must fail the schema"
  for f in "$CHART"/ci-invalid/*.yaml; do
    name=$(basename "$f")
    expect=$(sed -n 's/^# expect: //p' "$f" | head -n1)
    [ -n "$expect" ] || die "ci-invalid/$name has no '# expect: <part of the error>' line"
    if "$HELM" template chat "$CHART" --kube-version "$KUBE_NEWEST" -f "$f" >/dev/null 2>"$work/err"; then
      warn "ci-invalid/$name rendered, but must fail the schema"
      failed=1
      continue
    fi
    if grep -q "values don't meet the specifications of the schema" "$work/err" && grep -qF -- "$expect" "$work/err"; then
      log "  rejected: ci-invalid/$name: $(grep -F -- "$expect" "$work/err" | head -n1 | sed 's/^ *- //')"
    else
      cat "$work/err" >&2
      warn "ci-invalid/$name failed, but not with a schema error containing: $expect"
      failed=1
    fi
  done
  [ "$failed" -eq 0 ] || die "some ci-invalid files were not rejected as they should be"

  log "5/5 chart unit tests"
  HELM="$HELM" KUBE_VERSION="$KUBE_OLDEST" "$VENV/bin/python" "$CHART/unittest/test_chart.py" "$CHART" ||
    die "chart unit tests failed"
  log "chart checks passed in $(elapsed "$start")s"
}

cmd="${1:-run}"
case "$cmd" in
  install)
    with_lock "$CHORUS_CACHE/locks/chart-tools.lock" do_install
    echo "$HELM"
    ;;
  run)
    with_lock "$CHORUS_CACHE/locks/chart-tools.lock" do_install
    do_run
    ;;
  *)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
    ;;
esac
