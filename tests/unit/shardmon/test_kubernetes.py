"""deploy/kubernetes, the Kubernetes deployment, checked offline: no cluster, no network.

`kubectl kustomize` (Debian's kubectl) builds it; every object is validated against the Kubernetes
schemas kubernetes-validate bundles; the APIService registrations, RBAC, Services, probes and addresses
are checked against each other; the embedded shardmon.yml loads with Shardmon's own loader, every
Shardmon container's command passes its --check against it, and its scrape jobs relabel real-shaped
Node and Pod objects into the targets a Kubernetes user expects. The KubeRay overlay
(deploy/kubernetes-kuberay) is built and validated too, its RayCluster's pod templates as PodTemplateSpecs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tlsutil import make_certs

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "deploy" / "kubernetes"
KUBERAY = ROOT / "deploy" / "kubernetes-kuberay"
NAMESPACE = "shardmon"
MOUNT = "/etc/shardmon"
REQUESTHEADER_CA = "requestheader_client_ca_file: /var/run/secrets/shardmon/requestheader/requestheader-client-ca-file"
# The oldest Kubernetes the manifests need (the StatefulSet's apps.kubernetes.io/pod-index label), and the
# newest whose schemas kubernetes-validate bundles.
OLDEST_KUBERNETES = "1.28.0"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def kustomize(path: Path) -> list[dict]:
    if shutil.which("kubectl") is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not installed (scripts/setup.sh installs Debian's kubectl)")
        pytest.skip("kubectl is not installed (scripts/setup.sh installs Debian's kubectl)")
    proc = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return kustomize(BASE)


def find(objects, kind: str, name: str | None = None, namespace: str | None = NAMESPACE) -> list[dict]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def one(objects, kind: str, name: str, namespace: str | None = NAMESPACE) -> dict:
    found = find(objects, kind, name, namespace)
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} found"
    return found[0]


def workloads(objects) -> list[dict]:
    return [o for o in objects if o["kind"] in WORKLOADS]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def workload_of(objects, service: dict) -> dict:
    matches = [w for w in workloads(objects) if w["metadata"]["namespace"] == service["metadata"]["namespace"]
               and selects(service["spec"].get("selector", {}), w["spec"]["template"]["metadata"]["labels"])]
    assert len(matches) == 1, f"Service {service['metadata']['name']} selects {len(matches)} workloads"
    return matches[0]


def container_port(workload: dict, name: str) -> int:
    for c in pod_spec(workload)["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == name:
                return p["containerPort"]
    raise AssertionError(f"{workload['metadata']['name']} has no container port {name!r}")


def service_port(service: dict, port: int) -> dict:
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert ports, f"Service {service['metadata']['name']} has no port {port}"
    return ports[0]


def shardmon_containers(objects) -> list[tuple[dict, dict]]:
    return [(w, c) for w in workloads(objects) for c in pod_spec(w)["containers"]
            if c["image"].split(":")[0].rsplit("/", 1)[-1] == "shardmon"]


@pytest.fixture(scope="module")
def config_files(objects, tmp_path_factory) -> Path:
    """The ConfigMap's files, written out as the pods see them under /etc/shardmon."""
    cms = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("shardmon-config-")]
    assert len(cms) == 1
    folder = tmp_path_factory.mktemp("etc-shardmon")
    for name, text in cms[0]["data"].items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def config(config_files):
    from shardmon.model.config import load_config

    return load_config(config_files / "shardmon.yml")


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


# --- the build and its schemas -------------------------------------------------------------------------


def test_the_kustomization_builds_every_part_of_the_deployment(objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for kind, name in [("Namespace", NAMESPACE), ("StatefulSet", "shard"), ("Service", "shards"),
                       ("Deployment", "querier"), ("Deployment", "receiver"), ("Deployment", "ray-head"),
                       ("Deployment", "ray-worker"), ("Deployment", "ingest"), ("Deployment", "ruler"),
                       ("Deployment", "k8s-api"), ("Service", "k8s-api"), ("DaemonSet", "node-exporter"),
                       ("Deployment", "kube-state-metrics")]:
        assert (kind, name) in names, (kind, name)
    # Everything namespaced is in "shardmon" but the one RoleBinding the aggregator's reader role needs.
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding", "APIService"}
    for o in objects:
        ns = o["metadata"].get("namespace")
        if o["kind"] in cluster_scoped:
            assert ns is None, (o["kind"], o["metadata"]["name"])
        elif o["kind"] == "RoleBinding":
            assert ns == "kube-system", o["metadata"]["name"]
        else:
            assert ns == NAMESPACE, (o["kind"], o["metadata"]["name"])


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
def test_every_object_validates_strictly_against_the_kubernetes_schemas(objects, version):
    import kubernetes_validate  # the test extras install it: validation never skips
    version = kubernetes_validate.latest_version() if version == "latest" else version
    failures = []
    for o in objects:
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{o['kind']}/{o['metadata']['name']} at {list(exc.path)}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_the_validator_catches_a_misspelt_field(objects):
    import kubernetes_validate  # the test extras install it: validation never skips
    broken = yaml.safe_load(yaml.safe_dump(one(objects, "StatefulSet", "shard")))
    container = pod_spec(broken)["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, OLDEST_KUBERNETES, strict=True)


def test_every_shardmon_container_runs_the_one_retaggable_image_with_the_config_mounted(objects):
    containers = shardmon_containers(objects)
    assert len(containers) >= 8
    for w, c in containers:
        assert c["image"] == "shardmon:latest", (w["metadata"]["name"], c["image"])  # kustomize's images:
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        assert MOUNT in mounts and mounts[MOUNT].get("readOnly"), w["metadata"]["name"]
        volume = next(v for v in pod_spec(w)["volumes"] if v["name"] == mounts[MOUNT]["name"])
        assert volume["configMap"]["name"].startswith("shardmon-config-")  # generated, with its hash
        assert c["args"][c["args"].index("--config") + 1] == f"{MOUNT}/shardmon.yml"
        # Ray reads RAY_* variables as settings: no Service links in the environment.
        assert pod_spec(w).get("enableServiceLinks") is False, w["metadata"]["name"]
    # Third-party images are pinned to a version.
    for w in workloads(objects):
        for c in pod_spec(w)["containers"] + pod_spec(w).get("initContainers", []):
            assert re.search(r":[\w.-]+$", c["image"]) and not c["image"].endswith(":latest") \
                or c["image"] == "shardmon:latest", c["image"]


def test_every_long_running_container_has_readiness_and_liveness_probes(objects):
    for w in workloads(objects):
        for c in pod_spec(w)["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, (w["metadata"]["name"], c["name"])


# --- the k8s API service and its registrations -----------------------------------------------------------


def test_the_three_apis_are_registered_with_the_aggregator_at_the_k8s_api_service(objects, config):
    apiservices = {o["metadata"]["name"]: o["spec"] for o in find(objects, "APIService", namespace=None)}
    assert set(apiservices) == {"v1beta1.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io",
                                "v1beta2.custom.metrics.k8s.io", "v1beta1.external.metrics.k8s.io"}
    listen_host, listen_port = host_port(config.kubernetes_metrics.listen_address)
    assert listen_host == "0.0.0.0"
    for name, spec in apiservices.items():
        assert name == f"{spec['version']}.{spec['group']}"
        assert spec["insecureSkipTLSVerify"] is True and "caBundle" not in spec  # the self-signed default
        assert config.kubernetes_metrics.tls_cert_file is None
        ref = spec["service"]
        service = one(objects, "Service", ref["name"], ref["namespace"])
        port = service_port(service, ref.get("port", 443))
        assert port["port"] == 443
        deployment = workload_of(objects, service)
        assert deployment["metadata"]["name"] == "k8s-api"
        assert container_port(deployment, port["targetPort"]) == listen_port
    # The HPA asks custom.metrics.k8s.io for its preferred version: v1beta2.
    assert apiservices["v1beta2.custom.metrics.k8s.io"]["versionPriority"] > \
        apiservices["v1beta1.custom.metrics.k8s.io"]["versionPriority"]


def test_the_k8s_api_service_runs_the_k8s_api_subcommand_with_unauthenticated_https_probes(objects, config):
    deployment = one(objects, "Deployment", "k8s-api")
    (container,) = pod_spec(deployment)["containers"]
    assert container["args"][0] == "k8s-api"
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["scheme"]) == (path, "HTTPS")
        assert container_port(deployment, get["port"]) == host_port(config.kubernetes_metrics.listen_address)[1]
    km = config.kubernetes_metrics
    assert km.in_cluster and km.kubeconfig is None and not km.anonymous_auth
    # The front-proxy CA file the config names is where the init container writes it, in a shared volume.
    ca = Path(km.requestheader_client_ca_file)
    (init,) = pod_spec(deployment)["initContainers"]
    assert str(ca) in init["args"][0] and "extension-apiserver-authentication" in init["args"][0]
    for c in (init, container):
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert mounts.get(str(ca.parent)) == "requestheader", c["name"]


def test_the_k8s_api_account_has_the_rbac_of_an_aggregated_api_server(objects):
    sa = pod_spec(one(objects, "Deployment", "k8s-api"))["serviceAccountName"]
    one(objects, "ServiceAccount", sa)
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}

    def bound(kind: str, role_kind: str, role: str, namespace=None) -> list[dict]:
        return [b for b in find(objects, kind, namespace=namespace)
                if b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role}
                and subject in b["subjects"]]

    assert bound("ClusterRoleBinding", "ClusterRole", "system:auth-delegator")
    assert bound("RoleBinding", "Role", "extension-apiserver-authentication-reader", "kube-system")
    readable = set()
    for b in find(objects, "ClusterRoleBinding", namespace=None):
        if subject in b["subjects"] and b["roleRef"]["kind"] == "ClusterRole":
            for role in find(objects, "ClusterRole", b["roleRef"]["name"], None):
                for rule in role["rules"]:
                    if "" in rule.get("apiGroups", []) and "list" in rule["verbs"]:
                        readable.update(rule["resources"])
    assert {"nodes", "pods", "namespaces"} <= readable
    reader = one(objects, "ClusterRole", "system:aggregated-metrics-reader", None)
    for verb in ("view", "edit", "admin"):
        assert reader["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{verb}"] == "true"
    assert reader["rules"] == [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"],
                                "verbs": ["get", "list", "watch"]}]


def test_every_service_account_a_pod_or_binding_names_exists(objects):
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in find(objects, "ServiceAccount")}
    for w in workloads(objects):
        name = pod_spec(w).get("serviceAccountName")
        assert name and (NAMESPACE, name) in accounts, w["metadata"]["name"]
    for b in [o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]:
        for s in b["subjects"]:
            if s["kind"] == "ServiceAccount" and s["namespace"] == NAMESPACE:
                assert (NAMESPACE, s["name"]) in accounts, b["metadata"]["name"]
        if b["roleRef"]["kind"] == "ClusterRole" and not b["roleRef"]["name"].startswith("system:"):
            one(objects, "ClusterRole", b["roleRef"]["name"], None)


# --- the shards --------------------------------------------------------------------------------------------


def test_one_shard_pod_per_configured_node_at_its_stable_dns_name(objects, config):
    sts = one(objects, "StatefulSet", "shard")
    headless = one(objects, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert selects(headless["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"])
    nodes = config.shards.nodes
    assert sts["spec"]["replicas"] == len(nodes) and [n.id for n in nodes] == list(range(len(nodes)))
    grpc, metrics = container_port(sts, "grpc"), container_port(sts, "metrics")
    for n in nodes:
        name = f"{sts['metadata']['name']}-{n.id}.{headless['metadata']['name']}.{NAMESPACE}.svc"
        assert n.address == f"{name}:{grpc}" and n.metrics_address == f"{name}:{metrics}"
    shard = next(c for c in pod_spec(sts)["containers"] if c["name"] == "shard")
    assert shard["args"][:3] == ["shard", "--id", "$(SHARD_ID)"]
    (env,) = [e for e in shard["env"] if e["name"] == "SHARD_ID"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert shard["readinessProbe"]["grpc"] == {"port": grpc, "service": "shardmon.v1.Shard"}


def test_each_shard_pod_has_its_own_redis_with_aof_on_its_own_volume(objects, config):
    sts = one(objects, "StatefulSet", "shard")
    redis = next(c for c in pod_spec(sts)["containers"] if c["name"] == "redis")
    assert re.fullmatch(r"redis:\d+(\.\d+)*(-alpine)?", redis["image"])  # the official image
    args = redis["args"]
    assert args[0] == "redis-server" and args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--bind") + 1] == "127.0.0.1"
    port = int(args[args.index("--port") + 1])
    for n in config.shards.nodes:
        assert n.redis_url == f"redis://127.0.0.1:{port}/0"  # the pod's own Redis
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in redis["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == args[args.index("--dir") + 1] == "/data"


# --- the other services: addresses, Services, Ray --------------------------------------------------------


@pytest.mark.parametrize("name, addresses", [
    ("querier", lambda c: [c.querier.http_address, c.querier.grpc_address]),
    ("receiver", lambda c: [c.receiver.http_address, c.receiver.pushgateway_address]),
    ("ingest", lambda c: [c.ingest.http_address]),
    ("ruler", lambda c: [c.rules.http_address]),
])
def test_a_service_binds_the_name_the_others_reach_it_at(objects, config, name, addresses):
    deployment = one(objects, "Deployment", name)
    service = one(objects, "Service", name)
    assert workload_of(objects, service) is deployment
    # Inside the pod its hostname is its own address; elsewhere the name is the Service's.
    assert pod_spec(deployment)["hostname"] == name
    for address in addresses(config):
        host, port = host_port(address)
        assert host == name
        assert container_port(deployment, service_port(service, port)["targetPort"]) == port


def test_the_ray_drivers_and_nodes_meet_at_the_ray_head_service_with_one_token(objects, config):
    head_service = one(objects, "Service", "ray-head")
    head = one(objects, "Deployment", "ray-head")
    assert workload_of(objects, head_service) is head
    host, client_port = host_port(config.ingest.ray_address.removeprefix("ray://"))
    assert host == "ray-head" and container_port(head, service_port(head_service, client_port)["targetPort"]) \
        == client_port
    args = pod_spec(head)["containers"][0]["args"]
    assert args[args.index("--num-cpus") + 1] == "0", "scrapers belong on the workers"
    gcs = int(args[args.index("--port") + 1])
    worker = pod_spec(one(objects, "Deployment", "ray-worker"))["containers"][0]["args"]
    assert worker[worker.index("--address") + 1] == f"ray-head:{gcs}"
    service_port(head_service, gcs)
    token = Path(config.ingest.ray_auth_token_file)
    for name in ("ray-head", "ray-worker", "ingest", "ruler"):
        spec = pod_spec(one(objects, "Deployment", name))
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volume = next(v for v in spec["volumes"] if v["name"] == mounts[str(token.parent)])
        assert volume["secret"]["secretName"] == "shardmon-ray-auth", name
        assert "items" not in volume["secret"]  # the key is the file's name
    assert token.name == "auth_token"


def test_the_scrapers_account_may_discover_and_scrape_the_cluster(objects):
    for name in ("ray-head", "ray-worker"):
        assert pod_spec(one(objects, "Deployment", name))["serviceAccountName"] == "shardmon-scraper"
    (binding,) = [b for b in find(objects, "ClusterRoleBinding", namespace=None)
                  if {"kind": "ServiceAccount", "name": "shardmon-scraper", "namespace": NAMESPACE} in b["subjects"]]
    role = one(objects, "ClusterRole", binding["roleRef"]["name"], None)
    granted = {(g, r, v) for rule in role["rules"] for g in rule.get("apiGroups", [None])
               for r in rule.get("resources", rule.get("nonResourceURLs", [])) for v in rule["verbs"]}
    for resource in ("nodes", "pods", "services", "endpoints"):
        assert {("", resource, "list"), ("", resource, "watch")} <= granted, resource
    assert ("discovery.k8s.io", "endpointslices", "watch") in granted
    assert ("", "nodes/proxy", "get") in granted and (None, "/metrics", "get") in granted


# --- the configuration -------------------------------------------------------------------------------------


def test_the_configmap_is_deploy_kubernetes_shardmon_yml_and_its_rules_check(config_files):
    from shardmon.cli_rules import check_rule_files

    assert (config_files / "shardmon.yml").read_text() == (BASE / "shardmon.yml").read_text()
    assert check_rule_files([str(config_files / "rules.yml")]) == 0


def _has_subcommand(name: str) -> bool:
    from shardmon.cli import parser

    sub = next(a for a in parser()._actions if a.dest == "command")
    return name in sub.choices


def test_every_shardmon_container_command_passes_its_check(objects, config_files, capsys):
    from shardmon.cli import main

    # The k8s-api pod's front-proxy CA is written by its init container at start: a stand-in CA here.
    text = (config_files / "shardmon.yml").read_text()
    ca_path = REQUESTHEADER_CA.split(": ", 1)[1]
    assert ca_path in text
    make_certs(config_files / "certs")
    k8s_api_config = config_files / "k8s-api.yml"
    # and its service account exists only in the pod: a kubeconfig with a token stands in for it.
    assert "in_cluster: true" in text
    kubeconfig = config_files / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://kubernetes.default.svc:443",
                                                "certificate-authority": str(config_files / "certs" / "ca.crt")}}],
        "users": [{"name": "u", "user": {"token": "service-account-token"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    k8s_api_config.write_text(text.replace(ca_path, str(config_files / "certs" / "ca.crt"))
                              .replace("in_cluster: true", f"kubeconfig: {kubeconfig}"))
    checked = set()
    for w, c in shardmon_containers(objects):
        assert _has_subcommand(c["args"][0]), c["args"]
        own = k8s_api_config if c["args"][0] == "k8s-api" else config_files / "shardmon.yml"
        replicas = w["spec"].get("replicas", 1) if w["kind"] == "StatefulSet" else 1
        for ordinal in range(replicas):
            argv = [a.replace("$(SHARD_ID)", str(ordinal)).replace(f"{MOUNT}/shardmon.yml", str(own))
                    for a in c["args"]]
            argv.insert(argv.index("--") if "--" in argv else len(argv), "--check")
            code = main(argv)
            out, err = capsys.readouterr()
            assert code == 0, f"{w['metadata']['name']}: {err}"
            assert out.startswith(f"{own}: OK: "), out
        checked.add(c["args"][0])
    assert {"shard", "querier", "receiver", "ray-node", "ingest", "ruler", "k8s-api"} <= checked


def _node(name: str, ip: str) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}


def _targets(config, job: str, group) -> list:
    from shardmon.ingest.target import populate_target

    (sc,) = [s for s in config.scrape_configs if s.job_name == job]
    return [t for t in (populate_target(sc, ls) for ls in group.label_sets()) if t is not None]


@pytest.mark.parametrize("job, path", [("kubernetes-nodes", "/metrics"),
                                       ("kubernetes-nodes-cadvisor", "/metrics/cadvisor"),
                                       ("kubernetes-nodes-resource", "/metrics/resource")])
def test_the_kubelet_jobs_scrape_each_node_through_the_api_server_proxy(config, job, path):
    from shardmon.ingest.discovery.kubernetes_labels import node_group

    (target,) = _targets(config, job, node_group(_node("node-a", "10.0.0.5")))
    assert target.url == f"https://kubernetes.default.svc:443/api/v1/nodes/node-a/proxy{path}"
    assert target.labels.get("node") == "node-a" and target.labels.get("instance") == "node-a"
    (sc,) = [s for s in config.scrape_configs if s.job_name == job]
    assert sc.tls_config.ca_file == f"{SA_DIR}/ca.crt" and not sc.tls_config.insecure_skip_verify
    assert sc.authorization.credentials_file == f"{SA_DIR}/token"


def test_the_resource_metrics_series_have_one_source(config):
    """cAdvisor and the kubelet's resource endpoint both expose container_cpu_usage_seconds_total and
    container_memory_working_set_bytes: the cadvisor job drops its copies, so sums are not doubled."""
    from shardmon.ingest.relabel import process

    jobs = {s.job_name: s for s in config.scrape_configs}
    for name in ("container_cpu_usage_seconds_total", "container_memory_working_set_bytes"):
        series = {"__name__": name, "container": "web", "namespace": "shop", "pod": "web-0"}
        assert process(series, jobs["kubernetes-nodes-cadvisor"].metric_relabel_configs) is None
        assert process(series, jobs["kubernetes-nodes-resource"].metric_relabel_configs) is not None
    kept = {"__name__": "container_network_receive_bytes_total", "pod": "web-0"}
    assert process(kept, jobs["kubernetes-nodes-cadvisor"].metric_relabel_configs) is not None
    # The resource rules read that job's series.
    rules = config.kubernetes_metrics.resourceRules
    for resource in ("cpu", "memory"):
        for query in ("containerQuery", "nodeQuery"):
            assert 'job="kubernetes-nodes-resource"' in getattr(getattr(rules, resource), query), (resource, query)


def _pod(annotations: dict, phase: str = "Running") -> dict:
    return {"metadata": {"name": "web-7d4b9", "namespace": "shop", "uid": "u1", "labels": {"app": "web"},
                         "annotations": annotations},
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]},
                {"name": "sidecar", "image": "proxy:1"}]},
            "status": {"podIP": "10.1.2.3", "phase": phase, "hostIP": "10.0.0.5"}}


def test_annotated_pods_are_scraped_at_their_annotated_port_path_and_scheme(config):
    from shardmon.ingest.discovery.kubernetes_labels import pod_group

    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "9102", "prometheus.io/path": "/stats",
                   "prometheus.io/scheme": "https", "prometheus.io/param_format": "prometheus"}
    targets = _targets(config, "kubernetes-pods", pod_group(_pod(annotations)))
    assert len({t.key for t in targets}) == 1  # one target per pod, whatever its containers and ports
    t = targets[0]
    assert t.url == "https://10.1.2.3:9102/stats?format=prometheus"
    assert {k: t.labels.get(k) for k in ("namespace", "pod", "node", "app")} == \
        {"namespace": "shop", "pod": "web-7d4b9", "node": "node-a", "app": "web"}
    assert _targets(config, "kubernetes-pods", pod_group(_pod({}))) == []
    assert _targets(config, "kubernetes-pods", pod_group(_pod(annotations, phase="Succeeded"))) == []


@pytest.mark.parametrize("job", ["node-exporter", "kube-state-metrics"])
def test_the_exporter_jobs_keep_the_endpoints_of_their_services(objects, config, job):
    (sc,) = [s for s in config.scrape_configs if s.job_name == job]
    keep = sc.relabel_configs[0]
    assert keep.action == "keep" and keep.source_labels == [
        "__meta_kubernetes_service_name", "__meta_kubernetes_endpoint_port_name"]
    service, port_name = keep.regex.split(";")
    assert port_name in {p["name"] for p in one(objects, "Service", service)["spec"]["ports"]}
    assert sc.kubernetes_sd_configs[0].namespaces.names == [NAMESPACE]


def test_every_scrape_job_a_kubernetes_user_expects_is_configured(config):
    jobs = {s.job_name: s for s in config.scrape_configs}
    assert {"kubernetes-apiservers", "kubernetes-nodes", "kubernetes-nodes-cadvisor", "kubernetes-nodes-resource",
            "node-exporter", "kube-state-metrics", "kubernetes-pods"} <= set(jobs)
    for sc in jobs.values():
        for sd in sc.kubernetes_sd_configs:
            assert sd.api_server is None and sd.kubeconfig_file is None  # in-cluster, the pod's account
    assert jobs["kube-state-metrics"].honor_labels


# --- the KubeRay alternative -------------------------------------------------------------------------------

# The fields of KubeRay's RayCluster (ray.io/v1) the overlay uses, as its CRD names them.
RAYCLUSTER_SPEC = {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling", "authOptions",
                   "autoscalerOptions", "headServiceAnnotations", "suspend"}
HEAD_GROUP = {"rayStartParams", "template", "serviceType", "headService", "enableIngress"}
WORKER_GROUP = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template",
                "idleTimeoutSeconds", "numOfHosts", "scaleStrategy", "suspend"}


def test_the_kuberay_overlay_replaces_the_ray_deployments_with_a_raycluster(objects):
    import kubernetes_validate  # the test extras install it: validation never skips
    overlay = kustomize(KUBERAY)
    assert not find(overlay, "Deployment", "ray-head") and not find(overlay, "Deployment", "ray-worker")
    (cluster,) = find(overlay, "RayCluster")
    assert cluster["apiVersion"] == "ray.io/v1"
    spec = cluster["spec"]
    assert set(spec) <= RAYCLUSTER_SPEC and set(spec["headGroupSpec"]) <= HEAD_GROUP
    for group in spec["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP and {"groupName", "minReplicas", "maxReplicas", "template"} <= set(group)
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    templates = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    for template in templates:
        # A RayCluster's pod templates are core PodTemplateSpecs: validated as such.
        wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t", "namespace": NAMESPACE},
                   "template": template}
        kubernetes_validate.validate(wrapped, OLDEST_KUBERNETES, strict=True)
        c = template["spec"]["containers"][0]
        assert c["image"] == "shardmon:latest"
        assert any(v.get("configMap", {}).get("name", "").startswith("shardmon-config-")
                   for v in template["spec"]["volumes"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"].endswith("/auth_token")
    # The Service ray-head of the base selects the RayCluster's head pod, so ingest.ray_address holds.
    head_service = one(overlay, "Service", "ray-head")
    assert selects(head_service["spec"]["selector"], spec["headGroupSpec"]["template"]["metadata"]["labels"])
    for o in overlay:
        if o["kind"] != "RayCluster":
            kubernetes_validate.validate(o, OLDEST_KUBERNETES, strict=True)
