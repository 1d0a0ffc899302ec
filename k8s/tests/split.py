"""Splits a kustomize build (argv[1]) into the built-in Kubernetes kinds (argv[2], for
kubernetes-validate) and the custom resources (argv[3], for validate_crs.py)."""

import sys

import yaml

# API groups of custom resources this repository's manifests may contain.
CUSTOM_GROUPS = ("scylla.scylladb.com", "monitoring.coreos.com")

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if d["apiVersion"].split("/")[0] not in CUSTOM_GROUPS]
crs = [d for d in docs if d["apiVersion"].split("/")[0] in CUSTOM_GROUPS]
yaml.safe_dump_all(core, open(sys.argv[2], "w"), sort_keys=False)
yaml.safe_dump_all(crs, open(sys.argv[3], "w"), sort_keys=False)
