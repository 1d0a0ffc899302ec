"""Unit tests of the Chorus chart: assertions on what `helm template` renders.

Run by scripts/chart-test.sh as `python test_chart.py CHART_DIR` with HELM pointing at the helm
binary and PyYAML installed. Each check is a function of the rendered documents that raises
AssertionError. So that no check can pass vacuously, each one is also run against a copy of
the documents broken on purpose (MUTANTS below) and must fail there: a check that accepts its
mutant is reported as a failure too.

Prints one line per test and ends with `N passed, N failed`; exits 1 on any failure.
"""

import copy
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

CHART = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
HELM = os.environ.get("HELM", "helm")
KUBE_VERSION = os.environ.get("KUBE_VERSION", "1.30.0")
RELEASE, NAMESPACE = "chat", "chorus-test"
FULL = f"{RELEASE}-chorus"


# ---------------------------------------------------------------- rendering


class RenderError(Exception):
    pass


def render(values_files=(), extra=None):
    """`helm template` with the ci/ files named and an extra values dict; returns the docs."""
    args = [HELM, "template", RELEASE, CHART, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for f in values_files:
        args += ["-f", os.path.join(CHART, "ci", f)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        yaml.safe_dump(extra or {}, tmp)
    args += ["-f", tmp.name]
    try:
        out = subprocess.run(args, capture_output=True, text=True)
    finally:
        os.unlink(tmp.name)
    if out.returncode != 0:
        raise RenderError(out.stderr.strip())
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def one(docs, kind, name):
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def gateway(docs):
    return one(docs, "Deployment", f"{FULL}-gateway")


def router(docs):
    return one(docs, "StatefulSet", f"{FULL}-router")


def pod_specs(docs):
    """(description, pod spec) of every workload, the helm test pod included."""
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f'{d["kind"]}/{d["metadata"]["name"]}', d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield f'Pod/{d["metadata"]["name"]}', d["spec"]


def containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", duration)
    assert m, f"not a duration: {duration}"
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


# ---------------------------------------------------------------- checks


def check_grace_period_covers_drain(docs):
    dep = gateway(docs)
    spec = dep["spec"]["template"]["spec"]
    cm = one(docs, "ConfigMap", f"{FULL}-gateway")["data"]
    (c,) = spec["containers"]
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    need = pre_stop + seconds(cm["CHORUS_DRAIN_WINDOW"]) + seconds(cm["CHORUS_DRAIN_TIMEOUT"])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > need, f"grace period {grace}s does not exceed preStop + drain window + drain timeout = {need}s"


def check_gateway_readiness_is_readyz(docs):
    (c,) = gateway(docs)["spec"]["template"]["spec"]["containers"]
    probe = c["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz", f"gateway readiness probe is {probe['path']}, not /readyz (503 while draining)"
    assert probe["port"] == "http"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", "gateway liveness must not use /readyz"


def check_gateway_prestop_sleep(docs):
    (c,) = gateway(docs)["spec"]["template"]["spec"]["containers"]
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert sleep > 0, "gateway has no preStop delay"


def check_router_statefulset(docs):
    sts = router(docs)
    headless = one(docs, "Service", f"{FULL}-router-headless")
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "router podManagementPolicy is not Parallel"
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"], "StatefulSet serviceName is not the headless Service"
    assert headless["spec"].get("clusterIP") == "None", "router Service is not headless"
    assert headless["spec"].get("publishNotReadyAddresses") is True, "headless Service does not publish not-ready addresses"
    assert headless["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"], "headless Service does not select the routers"


def check_router_identity(docs):
    sts = router(docs)
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    env = c["env"]
    names = [e["name"] for e in env]
    byname = env_of(c)
    assert byname["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "POD_NAME is not the pod name"
    assert byname["CHORUS_ROUTER_NAME"]["value"] == "$(POD_NAME)", "router name is not the pod name"
    grpc = next(p["containerPort"] for p in c["ports"] if p["name"] == "grpc")
    want = f"http://$(POD_NAME).{sts['spec']['serviceName']}.{NAMESPACE}.svc:{grpc}"
    assert byname["CHORUS_ADVERTISE_URL"]["value"] == want, f"advertise URL {byname['CHORUS_ADVERTISE_URL']['value']} != {want}"
    # $(VAR) expands only from variables defined earlier in the list
    assert names.index("POD_NAME") < names.index("CHORUS_ROUTER_NAME"), "POD_NAME must come before its uses"
    assert names.index("POD_NAME") < names.index("CHORUS_ADVERTISE_URL"), "POD_NAME must come before its uses"
    cm = one(docs, "ConfigMap", f"{FULL}-router")["data"]
    assert cm["CHORUS_GRPC_LISTEN"] == f"0.0.0.0:{grpc}", "router gRPC does not listen on 0.0.0.0"
    assert cm["CHORUS_HTTP_LISTEN"].startswith("0.0.0.0:"), "router HTTP does not listen on 0.0.0.0"


def check_router_pdb_and_no_hpa(docs):
    pdb = one(docs, "PodDisruptionBudget", f"{FULL}-router")
    assert pdb["spec"].get("maxUnavailable") == 1, "router PDB maxUnavailable is not 1"
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["kind"] != "StatefulSet", "an HPA scales the routers"


def check_migration_hook(docs):
    job = one(docs, "Job", f"{FULL}-migrate")
    ann = job["metadata"].get("annotations", {})
    hooks = set(ann.get("helm.sh/hook", "").split(","))
    assert {"pre-install", "pre-upgrade"} <= hooks, f"migration Job hooks are {hooks}"
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["args"] == ["migrate"], f"migration runs {c['args']}"
    # a pre-install hook runs before the release's ConfigMaps and ServiceAccount exist
    assert "envFrom" not in c, "migration Job reads a ConfigMap that does not exist yet on install"
    sa = spec.get("serviceAccountName")
    if sa:
        acct = one(docs, "ServiceAccount", sa)
        assert "pre-install" in acct["metadata"].get("annotations", {}).get("helm.sh/hook", ""), \
            f"migration ServiceAccount {sa} is not a hook: it does not exist yet on install"
    env = env_of(c)
    for var in ("CHORUS_CQL_CONTACT_POINTS", "CHORUS_CQL_KEYSPACE", "CHORUS_CQL_REPLICATION"):
        assert var in env, f"migration Job lacks {var}"


def check_no_session_affinity(docs):
    for svc in find(docs, "Service"):
        aff = svc["spec"].get("sessionAffinity", "None")
        assert aff == "None", f'Service {svc["metadata"]["name"]} has sessionAffinity {aff}'


def check_hardened_containers(docs):
    specs = list(pod_specs(docs))
    assert specs, "no workloads rendered"
    for what, spec in specs:
        psc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, f"{what} mounts a service account token"
        for c in containers(spec):
            sc = c.get("securityContext", {})
            where = f"{what} container {c['name']}"
            non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            assert non_root is True, f"{where} is not runAsNonRoot"
            assert uid not in (None, 0), f"{where} runs as uid {uid}"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where} has a writable root filesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where} allows privilege escalation"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{where} does not drop ALL capabilities"
            assert not sc.get("capabilities", {}).get("add"), f"{where} adds capabilities"
            assert c.get("resources", {}).get("requests"), f"{where} has no resource requests"


def check_helm_test_round_trip(docs):
    pods = [d for d in find(docs, "Pod") if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    assert len(pods) == 1, f"{len(pods)} helm test pods"
    spec = pods[0]["spec"]
    sends = [c for c in containers(spec) if c["args"][0] == "send"]
    tails = [c for c in containers(spec) if c["args"][0] == "tail"]
    assert sends and tails, "the helm test pod does not both send and tail"
    assert all(c in spec.get("initContainers", []) for c in sends), "sends must finish before the tail starts"
    tail = tails[0]["args"]
    assert tail[tail.index("--since") + 1] == "0", "tail does not read the room from the start"
    assert int(tail[tail.index("--limit") + 1]) == len(sends), "tail --limit is not the number of messages sent"
    rooms = {c["args"][c["args"].index("--room") + 1] for c in sends + tails}
    assert len(rooms) == 1, f"send and tail use different rooms {rooms}"
    svc = one(docs, "Service", f"{FULL}-gateway")
    for c in sends + tails:
        env = env_of(c)
        url = env["CHORUS_URL"]["value"]
        assert url == f"http://{FULL}-gateway.{NAMESPACE}.svc:{svc['spec']['ports'][0]['port']}", f"test pod dials {url}"
        assert "secretKeyRef" in env["CHORUS_JWT_SECRET"]["valueFrom"], "test pod has no JWT secret to mint a token"
    assert spec.get("activeDeadlineSeconds"), "the helm test pod has no deadline"


def check_jwt_secret_only_where_needed(docs):
    for what, spec in pod_specs(docs):
        for c in containers(spec):
            has = "CHORUS_JWT_SECRET" in env_of(c)
            wanted = what.startswith("Deployment/") or what.startswith("Pod/")
            assert has == wanted, f"{what} container {c['name']}: JWT secret {'given' if has else 'missing'}"
    for cm in find(docs, "ConfigMap"):
        assert "CHORUS_JWT_SECRET" not in cm["data"], f"JWT secret in ConfigMap {cm['metadata']['name']}"


def check_gateway_config(docs):
    dep = gateway(docs)
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["gateway"]
    cm = one(docs, "ConfigMap", f"{FULL}-gateway")["data"]
    port = next(p["containerPort"] for p in c["ports"] if p["name"] == "http")
    assert cm["CHORUS_LISTEN"] == f"0.0.0.0:{port}", "gateway does not listen on 0.0.0.0 at its container port"
    assert c["envFrom"][0]["configMapRef"]["name"] == cm_name(docs, "gateway")


def cm_name(docs, component):
    return f"{FULL}-{component}"


DASHBOARDS = ("overview", "gateway", "router", "storage")
CATALOGUE = os.path.join(CHART, "..", "..", "docs", "operations", "metrics.md")


def dashboards(docs):
    """The dashboards the chart ships, by name, parsed from their ConfigMaps."""
    out = {}
    for cm in find(docs, "ConfigMap"):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") is None:
            continue
        ((key, text),) = cm["data"].items()
        out[key] = yaml.safe_load(text)  # JSON is YAML
    return out


def panels_of(dash):
    for p in dash["panels"]:
        if p["type"] != "row":
            yield p
        yield from (q for q in p.get("panels", []) if q["type"] != "row")


def check_dashboards(docs):
    dash = dashboards(docs)
    assert sorted(dash) == sorted(f"chorus-{n}.json" for n in DASHBOARDS), f"dashboards shipped: {sorted(dash)}"
    uids = [d["uid"] for d in dash.values()]
    assert sorted(uids) == sorted(f"chorus-{n}" for n in DASHBOARDS), f"uids are not the fixed ones: {uids}"
    documented = set(re.findall(r"`(chorus_[a-z_]+)`", open(CATALOGUE).read()))
    for name, d in dash.items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus", name
        panels = list(panels_of(d))
        assert panels, f"{name} has no panels"
        for p in panels:
            assert p["datasource"]["uid"] == "${datasource}", f"{name}: panel {p['title']!r} does not use $datasource"
            assert p["targets"], f"{name}: panel {p['title']!r} has no query"
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", f"{name}: a query of {p['title']!r} does not use $datasource"
                for metric in re.findall(r"\b(chorus_[a-z_]+?)(?:_bucket|_sum|_count)?\b", t["expr"]):
                    assert metric in documented, f"{name}: {p['title']!r} uses {metric}, not in docs/operations/metrics.md"


# ---------------------------------------------------------------- mutants
# Each mutant breaks the documents the way a regression would; its check must then fail.


def check_cql_login(docs):
    """With cql.auth on (full.yaml), the routers and the migration Job, and nothing else, get
    the login from the Secret by reference; with it off (minimal.yaml), nobody gets one."""
    values = yaml.safe_load(open(os.path.join(CHART, "ci", "full.yaml")))["cql"]["auth"]
    # On or off by the routers (test_cql_login_follows_values pins which file turns it on).
    enabled = "CHORUS_CQL_USERNAME" in env_of(_router_container(docs))
    for what, spec in pod_specs(docs):
        for c in containers(spec):
            env = env_of(c)
            wanted = enabled and (what.startswith("StatefulSet/") or what.startswith("Job/"))
            for var, key in (("CHORUS_CQL_USERNAME", values["usernameKey"]), ("CHORUS_CQL_PASSWORD", values["passwordKey"])):
                where = f"{what} container {c['name']}"
                if not wanted:
                    assert var not in env, f"{where} gets {var}"
                    continue
                assert var in env, f"{where} lacks {var}"
                ref = env[var].get("valueFrom", {}).get("secretKeyRef", {})
                assert ref == {"name": values["existingSecret"], "key": key}, f"{where}: {var} is {env[var]}"
    for cm in find(docs, "ConfigMap"):
        for var in ("CHORUS_CQL_USERNAME", "CHORUS_CQL_PASSWORD"):
            assert var not in cm.get("data", {}), f"{var} in ConfigMap {cm['metadata']['name']}"


def _gw_container(docs):
    return gateway(docs)["spec"]["template"]["spec"]["containers"][0]


def _router_container(docs):
    return router(docs)["spec"]["template"]["spec"]["containers"][0]


def _hardcode_datasource(data):
    """A dashboard whose last query names a fixed datasource instead of the variable."""
    ((key, text),) = data.items()
    dash = json.loads(text)
    list(panels_of(dash))[-1]["targets"][-1]["datasource"]["uid"] = "prometheus"
    data[key] = json.dumps(dash)


def _set(fn):
    def mutate(docs):
        docs = copy.deepcopy(docs)
        fn(docs)
        return docs
    return mutate


MUTANTS = {
    check_grace_period_covers_drain: _set(lambda d: gateway(d)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20)),
    check_gateway_readiness_is_readyz: _set(lambda d: _gw_container(d)["readinessProbe"]["httpGet"].update(path="/healthz")),
    check_gateway_prestop_sleep: _set(lambda d: _gw_container(d).pop("lifecycle")),
    check_router_statefulset: _set(lambda d: router(d)["spec"].update(podManagementPolicy="OrderedReady")),
    check_router_identity: _set(lambda d: _router_container(d)["env"].reverse()),
    check_router_pdb_and_no_hpa: _set(lambda d: one(d, "PodDisruptionBudget", f"{FULL}-router")["spec"].update(maxUnavailable=2)),
    check_migration_hook: _set(lambda d: one(d, "Job", f"{FULL}-migrate")["metadata"]["annotations"].update({"helm.sh/hook": "post-install"})),
    check_no_session_affinity: _set(lambda d: one(d, "Service", f"{FULL}-gateway")["spec"].update(sessionAffinity="ClientIP")),
    check_hardened_containers: _set(lambda d: _router_container(d)["securityContext"].update(readOnlyRootFilesystem=False)),
    check_helm_test_round_trip: _set(lambda d: d.remove(find(d, "Pod")[0])),
    check_jwt_secret_only_where_needed: _set(lambda d: _router_container(d)["env"].append({"name": "CHORUS_JWT_SECRET", "value": "x"})),
    check_gateway_config: _set(lambda d: one(d, "ConfigMap", f"{FULL}-gateway")["data"].update(CHORUS_LISTEN="127.0.0.1:8080")),
    check_dashboards: _set(lambda d: _hardcode_datasource(one(d, "ConfigMap", f"{FULL}-dashboard-router")["data"])),
    check_cql_login: _set(lambda d: _gw_container(d)["env"].append({"name": "CHORUS_CQL_PASSWORD", "value": "x"})),
}

DOC_CHECKS = list(MUTANTS)


# ---------------------------------------------------------------- tests over renderings


def pod_checksum(docs, kind, name):
    return one(docs, kind, name)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_checksum_follows_config():
    base = render(["minimal.yaml"])
    gw_change = render(["minimal.yaml"], {"gateway": {"env": {"CHORUS_SEND_RATE": "5"}}})
    rt_change = render(["minimal.yaml"], {"router": {"sessionTTL": "6s"}})
    shared_change = render(["minimal.yaml"], {"nats": {"url": "nats://other:4222"}})
    g, r = ("Deployment", f"{FULL}-gateway"), ("StatefulSet", f"{FULL}-router")
    assert pod_checksum(base, *g) != pod_checksum(gw_change, *g), "a gateway setting did not change the gateway checksum"
    assert pod_checksum(base, *r) == pod_checksum(gw_change, *r), "a gateway setting rolled the routers"
    assert pod_checksum(base, *r) != pod_checksum(rt_change, *r), "a router setting did not change the router checksum"
    assert pod_checksum(base, *g) == pod_checksum(rt_change, *g), "a router setting rolled the gateways"
    assert pod_checksum(base, *g) != pod_checksum(shared_change, *g), "nats.url did not roll the gateways"
    assert pod_checksum(base, *r) != pod_checksum(shared_change, *r), "nats.url did not roll the routers"
    assert re.fullmatch(r"[0-9a-f]{64}", pod_checksum(base, *g))


def test_too_short_grace_period_is_refused():
    try:
        render(["minimal.yaml"], {"gateway": {"terminationGracePeriodSeconds": 25}})  # 5 + 10 + 10 = 25
    except RenderError as e:
        assert "must be larger than" in str(e), str(e)
    else:
        raise AssertionError("a grace period equal to preStop + window + timeout rendered")
    docs = render(["minimal.yaml"], {"gateway": {"terminationGracePeriodSeconds": 26}})
    assert gateway(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 26


def test_default_grace_period():
    docs = render(["minimal.yaml"], {"gateway": {"drainWindowSeconds": 30, "drainTimeoutSeconds": 20, "preStopSleepSeconds": 7}})
    assert gateway(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 7 + 30 + 20 + 5
    check_grace_period_covers_drain(docs)


def test_reserved_env_is_refused():
    reserved = (("gateway", "CHORUS_LISTEN"), ("gateway", "CHORUS_JWT_SECRET"), ("router", "CHORUS_ROUTER_NAME"),
                ("router", "CHORUS_CQL_USERNAME"), ("router", "CHORUS_CQL_PASSWORD"))
    for component, var in reserved:
        try:
            render(["minimal.yaml"], {component: {"env": {var: "x"}}})
        except RenderError as e:
            assert "is set by the chart" in str(e), str(e)
        else:
            raise AssertionError(f"{component}.env.{var} was accepted")


def test_cql_login_follows_values():
    assert "CHORUS_CQL_USERNAME" in env_of(_router_container(render(["full.yaml"]))), "full.yaml turns cql.auth on"
    assert "CHORUS_CQL_USERNAME" not in env_of(_router_container(render(["minimal.yaml"])))


def test_optional_resources_follow_values():
    minimal = render(["minimal.yaml"])
    full = render(["full.yaml"])
    for kind, n in (("ServiceMonitor", 2), ("PrometheusRule", 1), ("NetworkPolicy", 3), ("HorizontalPodAutoscaler", 1)):
        assert not find(minimal, kind), f"minimal.yaml rendered a {kind}"
        assert len(find(full, kind)) == n, f"full.yaml rendered {len(find(full, kind))} {kind}, not {n}"
    assert "replicas" not in gateway(full)["spec"], "the Deployment sets replicas although the HPA owns them"
    assert gateway(minimal)["spec"]["replicas"] == 2
    assert one(full, "ConfigMap", f"{FULL}-gateway")["data"]["CHORUS_WEB"] == "true"
    assert one(minimal, "ConfigMap", f"{FULL}-gateway")["data"]["CHORUS_WEB"] == "false"
    nomig = render(["no-migration-no-pdb.yaml"])
    assert not find(nomig, "Job") and not find(nomig, "PodDisruptionBudget")
    assert "lifecycle" not in gateway(nomig)["spec"]["template"]["spec"]["containers"][0]


def test_dashboards_follow_values():
    off = render(["minimal.yaml"], {"metrics": {"dashboards": {"enabled": False}}})
    assert not dashboards(off), "dashboards.enabled=false still rendered dashboards"
    custom = render(["minimal.yaml"], {"metrics": {"dashboards": {
        "label": "example.com/dashboard", "labelValue": "chorus", "namespace": "grafana",
        "annotations": {"grafana_folder": "Chorus"}}}})
    cms = [c for c in find(custom, "ConfigMap") if "example.com/dashboard" in c["metadata"]["labels"]]
    assert len(cms) == len(DASHBOARDS), f"{len(cms)} ConfigMaps carry the custom label"
    for c in cms:
        assert c["metadata"]["labels"]["example.com/dashboard"] == "chorus"
        assert c["metadata"]["namespace"] == "grafana"
        assert c["metadata"]["annotations"] == {"grafana_folder": "Chorus"}
    assert all(c["metadata"]["namespace"] == NAMESPACE for c in find(render(["minimal.yaml"]), "ConfigMap"))


def test_tracing_reaches_gateways_and_routers():
    off = render(["minimal.yaml"])
    for component in ("gateway", "router"):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in one(off, "ConfigMap", f"{FULL}-{component}")["data"]
    on = render(["minimal.yaml"], {"tracing": {"otlpEndpoint": "http://otel:4317", "sampleRatio": 0.5, "clientParent": True}})
    for component in ("gateway", "router"):
        data = one(on, "ConfigMap", f"{FULL}-{component}")["data"]
        assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4317", component
        assert data["CHORUS_TRACE_SAMPLE_RATIO"] == "0.5", component
    assert one(on, "ConfigMap", f"{FULL}-gateway")["data"]["CHORUS_TRACE_CLIENT_PARENT"] == "true"
    assert "CHORUS_TRACE_CLIENT_PARENT" not in one(on, "ConfigMap", f"{FULL}-router")["data"]


def test_servicemonitors_match_services():
    docs = render(["full.yaml"])
    services = find(docs, "Service")
    for sm in find(docs, "ServiceMonitor"):
        sel = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if sel.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, f'ServiceMonitor {sm["metadata"]["name"]} selects {len(matched)} Services'
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in ports, f'ServiceMonitor {sm["metadata"]["name"]} scrapes port {ep["port"]}, not on its Service'
    rule = one(docs, "PrometheusRule", FULL)
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "ChorusRouterSessionNotRenewing" in alerts and len(alerts) == len(set(alerts))
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
            assert r["expr"].count("(") == r["expr"].count(")"), f'unbalanced expression in {r["alert"]}'


def test_router_netpol_admits_only_gateways_on_grpc():
    docs = render(["full.yaml"])
    np = one(docs, "NetworkPolicy", f"{FULL}-router")
    grpc_rules = [r for r in np["spec"]["ingress"] if any(p["port"] == "grpc" for p in r.get("ports", []))]
    assert len(grpc_rules) == 1
    (peer,) = grpc_rules[0]["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def make_doc_test(check, files):
    def test():
        docs = render(files)
        check(docs)
        mutant = MUTANTS[check](docs)
        try:
            check(mutant)
        except AssertionError:
            return
        raise AssertionError(f"{check.__name__} accepted a mutant broken on purpose: the check cannot fail")
    test.__name__ = f"{check.__name__}[{'+'.join(files)}]"
    return test


def all_tests():
    tests = []
    for files in (["minimal.yaml"], ["full.yaml"]):
        tests += [make_doc_test(c, files) for c in DOC_CHECKS]
    tests += [
        test_checksum_follows_config,
        test_too_short_grace_period_is_refused,
        test_default_grace_period,
        test_reserved_env_is_refused,
        test_cql_login_follows_values,
        test_optional_resources_follow_values,
        test_servicemonitors_match_services,
        test_router_netpol_admits_only_gateways_on_grpc,
        test_dashboards_follow_values,
        test_tracing_reaches_gateways_and_routers,
    ]
    return tests


def main():
    passed = failed = 0
    for test in all_tests():
        try:
            test()
        except (AssertionError, RenderError, KeyError, StopIteration) as e:
            failed += 1
            print(f"FAIL {test.__name__}: {type(e).__name__}: {e}")
        else:
            passed += 1
            print(f"ok   {test.__name__}")
    print(f"chart unit tests: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
