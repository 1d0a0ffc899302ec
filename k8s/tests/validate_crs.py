"""Validates custom resources (argv[2]) against the openAPIV3Schema of their CRDs, read from a
file of CRDs (argv[1], e.g. scylla-operator's deploy/operator.yaml), with jsonschema. A custom
resource whose CRD is not in the file fails: nothing is shipped unvalidated."""

import sys

import jsonschema
import yaml

crds = {}
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d.get("kind") == "CustomResourceDefinition":
        group, kind = d["spec"]["group"], d["spec"]["names"]["kind"]
        for v in d["spec"]["versions"]:
            crds[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]


def strict(schema):
    """Refuses unknown fields, as `kubectl apply --validate=strict` does: every object schema
    with properties gets additionalProperties: false unless it preserves unknown fields."""
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


for k in crds:
    strict(crds[k])
    # metadata is checked by the API server's own rules, not the CRD's schema.
    crds[k].setdefault("properties", {})["metadata"] = {"type": "object"}

failed = checked = 0
for cr in yaml.safe_load_all(open(sys.argv[2])):
    if not cr:
        continue
    key = (cr["apiVersion"], cr["kind"])
    name = f"{cr['kind']} {cr['metadata']['name']}"
    if key not in crds:
        print(f"no CRD for {key} ({name})")
        failed += 1
        continue
    errors = sorted(jsonschema.Draft7Validator(crds[key]).iter_errors(cr), key=lambda e: list(e.path))
    for e in errors:
        print(f"{name}: {'/'.join(map(str, e.path))}: {e.message}")
    failed += bool(errors)
    checked += 1
print(f"custom resources: {checked} checked, {failed} failed")
sys.exit(1 if failed else 0)
