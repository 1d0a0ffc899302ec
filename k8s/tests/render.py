"""Turns `helm template` output (stdin) into the kustomize base (stdout): the resources as the
chart renders them, minus what only Helm understands and the namespace (the overlays set it). The migration Job loses its hook
annotations (kustomize applies it with everything else; k8s/README.md says how to order it),
and `managed-by` says kustomize. Used by scripts/k8s-test.sh (render, and the drift check)."""

import sys

import yaml

HEADER = """\
# GENERATED from charts/chorus with k8s/base/values.yaml by `bash scripts/k8s-test.sh render`.
# Do not edit: change the chart or the values and render again (make test fails when stale).
"""

docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
out = []
for d in docs:
    meta = d["metadata"]
    # The overlays set the namespace (kustomize's `namespace:`).
    meta.pop("namespace", None)
    ann = meta.get("annotations") or {}
    for k in [k for k in ann if k.startswith("helm.sh/")]:
        del ann[k]
    if "annotations" in meta and not ann:
        del meta["annotations"]

    def relabel(labels):
        if not labels:
            return
        labels.pop("helm.sh/chart", None)
        if labels.get("app.kubernetes.io/managed-by") == "Helm":
            labels["app.kubernetes.io/managed-by"] = "kustomize"

    relabel(meta.get("labels"))
    tmpl = d.get("spec", {}).get("template", {})
    relabel(tmpl.get("metadata", {}).get("labels"))
    out.append(d)
out.sort(key=lambda d: (d["kind"], d["metadata"]["name"]))
sys.stdout.write(HEADER)
sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False, width=100))
