"""Checks of the kustomize builds that a platform engineer relies on (argv[1]: the directory
with build-base.yaml, build-dev.yaml, build-production.yaml). Each check is also run on a copy
broken on purpose and must fail there, so none can pass vacuously. Ends with `N passed, N
failed`."""

import copy
import sys

import yaml

work = sys.argv[1]
builds = {b: [d for d in yaml.safe_load_all(open(f"{work}/build-{b}.yaml")) if d]
          for b in ("base", "dev", "production")}


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def env_of_job(docs):
    c = one(docs, "Job", "chorus-migrate")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c["env"]}


def check_dev(docs):
    assert {d["metadata"].get("namespace") for d in docs} == {"chorus-dev"}, "dev: everything in chorus-dev"
    assert one(docs, "StatefulSet", "chorus-router")["spec"]["replicas"] == 1
    assert one(docs, "HorizontalPodAutoscaler", "chorus-gateway")["spec"]["minReplicas"] == 1
    nats = one(docs, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]
    assert "--jetstream" in nats["args"], "dev NATS without JetStream: membership needs it"
    np = one(docs, "NetworkPolicy", "nats")["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert np == {"app.kubernetes.io/name": "chorus"}, "dev NATS open beyond Chorus"
    svc = one(docs, "Service", "nats")
    assert svc["spec"]["ports"][0]["port"] == 4222
    scylla = one(docs, "ScyllaCluster", "scylla")
    assert one(docs, "ConfigMap", "chorus-router")["data"]["CHORUS_CQL_CONTACT_POINTS"] == f"{scylla['metadata']['name']}-client:9042"
    for cm in ("chorus-gateway", "chorus-router"):
        assert one(docs, "ConfigMap", cm)["data"]["CHORUS_NATS_URL"] == "nats://nats:4222"


def check_production(docs):
    assert {d["metadata"].get("namespace") for d in docs} == {"chorus"}
    assert one(docs, "StatefulSet", "chorus-router")["spec"]["replicas"] == 3
    hpa = one(docs, "HorizontalPodAutoscaler", "chorus-gateway")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    cql = one(docs, "ConfigMap", "chorus-router")["data"]["CHORUS_CQL_CONTACT_POINTS"]
    assert cql == env_of_job(docs)["CHORUS_CQL_CONTACT_POINTS"], "the migration and the routers use different databases"
    for cm in ("chorus-gateway", "chorus-router"):
        assert one(docs, "ConfigMap", cm)["data"]["CHORUS_NATS_URL"] == "nats://nats.nats.svc:4222"
    spread = one(docs, "StatefulSet", "chorus-router")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert any(c["topologyKey"] == "topology.kubernetes.io/zone" for c in spread)


def check_base_is_the_chart(docs):
    sts = one(docs, "StatefulSet", "chorus-router")["spec"]
    assert sts["podManagementPolicy"] == "Parallel"
    headless = one(docs, "Service", "chorus-router-headless")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    rt_np = one(docs, "NetworkPolicy", "chorus-router")["spec"]["ingress"]
    assert any(r.get("from") for r in rt_np), "routers take gRPC from anyone"
    job = one(docs, "Job", "chorus-migrate")
    assert not any(k.startswith("helm.sh/") for k in job["metadata"].get("annotations", {})), "a Helm hook left in the base"
    labels = one(docs, "Deployment", "chorus-gateway")["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "kustomize"


def mutate(docs, fn):
    docs = copy.deepcopy(docs)
    fn(docs)
    return docs


CHECKS = [
    (check_dev, "dev", lambda d: one(d, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]["args"].remove("--jetstream")),
    (check_production, "production", lambda d: one(d, "ConfigMap", "chorus-router")["data"].update(CHORUS_CQL_CONTACT_POINTS="other:9042")),
    (check_base_is_the_chart, "base", lambda d: one(d, "Job", "chorus-migrate")["metadata"].setdefault("annotations", {}).update({"helm.sh/hook": "pre-install"})),
]

passed = failed = 0
for check, build, breakage in CHECKS:
    try:
        check(builds[build])
        try:
            check(mutate(builds[build], breakage))
        except AssertionError:
            pass
        else:
            raise AssertionError("accepted a build broken on purpose: the check cannot fail")
    except (AssertionError, KeyError) as e:
        failed += 1
        print(f"FAIL {check.__name__}[{build}]: {type(e).__name__}: {e}")
    else:
        passed += 1
        print(f"ok   {check.__name__}[{build}]")
print(f"k8s overlay checks: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
