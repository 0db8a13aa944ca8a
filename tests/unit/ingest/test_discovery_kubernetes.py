"""Kubernetes SD label generation: API objects shaped as the API server serves them (JSON) turned into
target groups with exactly Prometheus's ``__meta_kubernetes_*`` labels; plus the role state machine
(updates, deletes, dependencies) and the connection settings (kubeconfig, in-cluster)."""

import base64
import copy

import pytest

from shardmon.ingest.discovery import TargetGroup, sanitize_label_name
from shardmon.ingest.discovery.kubeclient import (
    KubeConfigError,
    connection_for,
    in_cluster_connection,
    kubeconfig_connection,
    resource_path,
)
from shardmon.ingest.discovery.kubernetes import _RoleState
from shardmon.ingest.discovery.kubernetes_labels import (
    endpoints_group,
    endpointslice_group,
    node_group,
    pod_group,
    service_group,
)
from shardmon.model.sd_config import KubernetesSDConfig
from tests.unit.ingest.kubernetes_objects import (  # noqa: F401
    ENDPOINTS,
    ENDPOINTSLICE,
    NO_OBJECTS,
    NODE,
    NODE_META,
    POD,
    POD_LABELS,
    SERVICE,
    SERVICE_META,
    M,
    _lookup,
)

# --- label names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw,want", [
    ("app.kubernetes.io/name", "app_kubernetes_io_name"),
    ("pod-template-hash", "pod_template_hash"),
    ("already_ok_123", "already_ok_123"),
    ("9lives", "9lives"),  # a leading digit is kept, as strutil.SanitizeLabelName
    ("ünïcode/ключ", "_n_code_____"),  # one "_" per character, multi-byte ones included
    ("", ""),
])
def test_sanitize_label_name_is_prometheus_strutil(raw, want):
    assert sanitize_label_name(raw) == want


# --- node -----------------------------------------------------------------------------------------


def test_node_group_labels_and_address():
    g = node_group(NODE)
    assert g == TargetGroup(
        source="node/worker-1",
        targets=[{
            "__address__": "10.0.1.15:10250",
            "instance": "worker-1",
            M + "node_address_Hostname": "worker-1",
            M + "node_address_InternalIP": "10.0.1.15",
            M + "node_address_ExternalIP": "203.0.113.10",
        }],
        labels={M + "node_provider_id": "aws:///eu-west-1a/i-0a1b2c3d4e5f", **NODE_META},
    )


def test_node_address_preference_order():
    node = copy.deepcopy(NODE)
    node["status"]["addresses"] = [{"type": "Hostname", "address": "worker-1"},
                                   {"type": "ExternalDNS", "address": "w1.example.com"},
                                   {"type": "ExternalIP", "address": "203.0.113.10"}]
    assert node_group(node).targets[0]["__address__"] == "203.0.113.10:10250"
    node["status"]["addresses"] = [{"type": "Hostname", "address": "worker-1"}]
    assert node_group(node).targets[0]["__address__"] == "worker-1:10250"
    node["status"]["addresses"] = [{"type": "InternalIP", "address": "fd00::15"}]
    assert node_group(node).targets[0]["__address__"] == "[fd00::15]:10250"


def test_node_without_address_sends_nothing():
    node = copy.deepcopy(NODE)
    node["status"]["addresses"] = []
    assert node_group(node) is None


# --- pod ------------------------------------------------------------------------------------------


def test_pod_group_one_target_per_container_port_and_init_container():
    g = pod_group(POD)
    assert g.source == "pod/shop/web-7d4b9c6f5-x2x9z"
    assert g.labels == {**POD_LABELS, M + "namespace": "shop"}

    def port_target(addr, container, cid, image, pname, pnum):
        return {
            "__address__": addr,
            M + "pod_container_name": container,
            M + "pod_container_id": cid,
            M + "pod_container_image": image,
            M + "pod_container_port_name": pname,
            M + "pod_container_port_number": pnum,
            M + "pod_container_port_protocol": "TCP",
            M + "pod_container_init": "false",
        }

    assert g.targets == [
        port_target("10.244.1.23:8080", "web", "containerd://9a8b7c", "nginx:1.25", "http", "8080"),
        port_target("10.244.1.23:9113", "web", "containerd://9a8b7c", "nginx:1.25", "metrics", "9113"),
        port_target("10.244.1.23:9901", "envoy", "containerd://6d5e4f", "envoyproxy/envoy:v1.30", "admin", "9901"),
        {
            "__address__": "10.244.1.23",
            M + "pod_container_name": "init-db",
            M + "pod_container_id": "containerd://1f2e3d",
            M + "pod_container_image": "busybox:1.36",
            M + "pod_container_init": "true",
        },
    ]


def test_pod_label_set_of_one_target_is_group_plus_target():
    ls = pod_group(POD).label_sets()[0]
    assert ls["__address__"] == "10.244.1.23:8080"
    assert ls[M + "pod_name"] == "web-7d4b9c6f5-x2x9z" and ls[M + "namespace"] == "shop"


def test_pod_details_ready_unknown_no_controller_no_ip():
    pod = copy.deepcopy(POD)
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    assert pod_group(pod).labels[M + "pod_ready"] == "false"
    del pod["status"]["conditions"]
    assert pod_group(pod).labels[M + "pod_ready"] == "unknown"
    pod["metadata"]["ownerReferences"][0]["controller"] = False
    assert M + "pod_controller_kind" not in pod_group(pod).labels
    pod["status"]["podIP"] = ""
    assert pod_group(pod) == TargetGroup("pod/shop/web-7d4b9c6f5-x2x9z", [], {})  # starting: no targets


def test_pod_ipv6_portless_target_is_bracketed():
    pod = copy.deepcopy(POD)
    pod["status"]["podIP"] = "fd00:10:244:1::17"
    targets = pod_group(pod).targets
    assert targets[0]["__address__"] == "[fd00:10:244:1::17]:8080"
    assert targets[-1]["__address__"] == "[fd00:10:244:1::17]"


def test_pod_with_node_metadata():
    g = pod_group(POD, NODE)
    assert g.labels == {**POD_LABELS, M + "namespace": "shop", **NODE_META}


# --- service --------------------------------------------------------------------------------------


def test_service_group_one_target_per_port():
    g = service_group(SERVICE)
    common = {M + "service_port_protocol": "TCP", M + "service_type": "ClusterIP",
              M + "service_cluster_ip": "10.96.12.34"}
    assert g == TargetGroup(
        source="svc/shop/web",
        targets=[
            {"__address__": "web.shop.svc:80", M + "service_port_name": "http", M + "service_port_number": "80",
             **common},
            {"__address__": "web.shop.svc:9113", M + "service_port_name": "metrics",
             M + "service_port_number": "9113", **common},
        ],
        labels=SERVICE_META,
    )


def test_service_external_name_and_load_balancer():
    svc = copy.deepcopy(SERVICE)
    svc["spec"] = {"type": "ExternalName", "externalName": "db.example.com",
                   "ports": [{"port": 5432, "protocol": "TCP"}]}
    assert service_group(svc).targets == [{
        "__address__": "web.shop.svc:5432", M + "service_port_name": "", M + "service_port_number": "5432",
        M + "service_port_protocol": "TCP", M + "service_type": "ExternalName",
        M + "service_external_name": "db.example.com",
    }]
    svc["spec"] = {"type": "LoadBalancer", "clusterIP": "10.96.0.9", "loadBalancerIP": "198.51.100.7",
                   "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}
    t = service_group(svc).targets[0]
    assert t[M + "service_loadbalancer_ip"] == "198.51.100.7" and t[M + "service_cluster_ip"] == "10.96.0.9"


# --- endpoints ------------------------------------------------------------------------------------

EP_GROUP_LABELS = {
    **SERVICE_META,
    M + "endpoints_name": "web",
    M + "endpoints_label_app_kubernetes_io_name": "web",
    M + "endpoints_labelpresent_app_kubernetes_io_name": "true",
}


def _container(name, image, pname, pnum, init="false"):
    return {M + "pod_container_name": name, M + "pod_container_image": image,
            M + "pod_container_port_name": pname, M + "pod_container_port_number": pnum,
            M + "pod_container_port_protocol": "TCP", M + "pod_container_init": init}


def test_endpoints_group_with_service_and_pod():
    g = endpoints_group(ENDPOINTS, get_service=_lookup(SERVICE), get_pod=_lookup(POD))
    assert g.source == "endpoints/shop/web"
    assert g.labels == EP_GROUP_LABELS
    assert g.targets == [
        {
            "__address__": "10.244.1.23:8080",
            M + "endpoint_port_name": "http",
            M + "endpoint_port_protocol": "TCP",
            M + "endpoint_ready": "true",
            M + "endpoint_address_target_kind": "Pod",
            M + "endpoint_address_target_name": "web-7d4b9c6f5-x2x9z",
            M + "endpoint_node_name": "worker-1",
            **POD_LABELS,
            **_container("web", "nginx:1.25", "http", "8080"),
        },
        {
            "__address__": "10.244.2.7:8080",  # its pod is not known: no pod labels
            M + "endpoint_port_name": "http",
            M + "endpoint_port_protocol": "TCP",
            M + "endpoint_ready": "false",
            M + "endpoint_address_target_kind": "Pod",
            M + "endpoint_address_target_name": "web-7d4b9c6f5-q8r7s",
            M + "endpoint_node_name": "worker-2",
            M + "endpoint_hostname": "web-1",
        },
        # The pod's container ports no endpoint port covers.
        {"__address__": "10.244.1.23:9113", **_container("web", "nginx:1.25", "metrics", "9113"), **POD_LABELS},
        {"__address__": "10.244.1.23:9901", **_container("envoy", "envoyproxy/envoy:v1.30", "admin", "9901"),
         **POD_LABELS},
    ]


def test_endpoints_group_without_service_or_pods():
    g = endpoints_group(ENDPOINTS, get_service=NO_OBJECTS, get_pod=NO_OBJECTS)
    assert g.labels == {M + "namespace": "shop", M + "endpoints_name": "web",
                        M + "endpoints_label_app_kubernetes_io_name": "web",
                        M + "endpoints_labelpresent_app_kubernetes_io_name": "true"}
    assert [t["__address__"] for t in g.targets] == ["10.244.1.23:8080", "10.244.2.7:8080"]
    assert M + "pod_name" not in g.targets[0]


def test_endpoints_node_metadata():
    nodes = {"worker-1": NODE}
    g = endpoints_group(ENDPOINTS, get_service=NO_OBJECTS, get_pod=NO_OBJECTS, get_node=nodes.get)
    assert NODE_META.items() <= g.targets[0].items()
    assert M + "node_name" not in g.targets[1]  # worker-2 unknown


# --- endpointslice --------------------------------------------------------------------------------


def test_endpointslice_group_with_service_and_pod():
    g = endpointslice_group(ENDPOINTSLICE, get_service=_lookup(SERVICE), get_pod=_lookup(POD))
    s = M + "endpointslice_"
    assert g.source == "endpointslice/shop/web-8kq2p"
    assert g.labels == {
        **SERVICE_META,
        s + "address_type": "IPv4",
        s + "name": "web-8kq2p",
        s + "label_kubernetes_io_service_name": "web",
        s + "labelpresent_kubernetes_io_service_name": "true",
        s + "label_endpointslice_kubernetes_io_managed_by": "endpointslice-controller.k8s.io",
        s + "labelpresent_endpointslice_kubernetes_io_managed_by": "true",
        s + "annotation_endpoints_kubernetes_io_last_change_trigger_time": "2024-05-01T10:00:00Z",
        s + "annotationpresent_endpoints_kubernetes_io_last_change_trigger_time": "true",
    }
    port = {s + "port_name": "http", s + "port_protocol": "TCP", s + "port": "8080", s + "port_app_protocol": "http"}
    assert g.targets == [
        {
            "__address__": "10.244.1.23:8080",
            **port,
            s + "endpoint_conditions_ready": "true",
            s + "endpoint_conditions_serving": "true",
            s + "endpoint_conditions_terminating": "false",
            s + "address_target_kind": "Pod",
            s + "address_target_name": "web-7d4b9c6f5-x2x9z",
            s + "endpoint_node_name": "worker-1",
            s + "endpoint_zone": "eu-west-1a",
            **POD_LABELS,
            **_container("web", "nginx:1.25", "http", "8080"),
        },
        {
            "__address__": "10.244.2.7:8080",
            **port,
            s + "endpoint_conditions_ready": "false",
            s + "endpoint_conditions_serving": "false",
            s + "endpoint_conditions_terminating": "true",
            s + "endpoint_hostname": "web-1",
            s + "address_target_kind": "Pod",
            s + "address_target_name": "web-7d4b9c6f5-q8r7s",
            s + "endpoint_node_name": "worker-2",
            s + "endpoint_topology_kubernetes_io_hostname": "worker-2",
            s + "endpoint_topology_present_kubernetes_io_hostname": "true",
        },
        {"__address__": "10.244.1.23:9113", **_container("web", "nginx:1.25", "metrics", "9113"), **POD_LABELS},
        {"__address__": "10.244.1.23:9901", **_container("envoy", "envoyproxy/envoy:v1.30", "admin", "9901"),
         **POD_LABELS},
    ]


def test_endpointslice_port_without_number_and_unknown_service():
    eps = copy.deepcopy(ENDPOINTSLICE)
    eps["ports"] = [{"name": "", "protocol": "TCP"}]
    eps["endpoints"] = eps["endpoints"][:1]
    g = endpointslice_group(eps, get_service=NO_OBJECTS, get_pod=NO_OBJECTS)
    assert M + "service_name" not in g.labels
    t = g.targets[0]
    assert t["__address__"] == "10.244.1.23"
    assert t[M + "endpointslice_port_name"] == "" and M + "endpointslice_port" not in t


def test_endpoints_sidecar_init_container_port_matches():
    pod = copy.deepcopy(POD)
    pod["spec"]["initContainers"] = [{"name": "proxy", "image": "envoy", "restartPolicy": "Always",
                                      "ports": [{"name": "proxy", "containerPort": 8080, "protocol": "TCP"}]}]
    pod["spec"]["containers"][0]["ports"] = [{"name": "metrics", "containerPort": 9113, "protocol": "TCP"}]
    g = endpoints_group(ENDPOINTS, get_service=NO_OBJECTS, get_pod=_lookup(pod))
    t = g.targets[0]
    assert t[M + "pod_container_name"] == "proxy" and t[M + "pod_container_init"] == "true"


# --- the role state: updates, deletes, dependencies ------------------------------------------------


class _Collect:
    def __init__(self):
        self.batches = []

    def __call__(self, groups):
        self.batches.append(list(groups))

    def last(self):
        return {g.source: g for g in self.batches[-1]}


def test_role_state_endpoints_follow_service_and_pod_changes():
    sent = _Collect()
    st = _RoleState("endpoints", False, sent)
    st.expect_syncs(3)
    st.on_event("endpoints", "ADDED", ENDPOINTS)
    st.on_synced()
    st.on_synced()
    assert sent.batches == []  # nothing before every resource is listed
    st.on_synced()
    g = sent.last()["endpoints/shop/web"]
    assert M + "service_name" not in g.labels and M + "pod_name" not in g.targets[0]
    # The service appears: the endpoints group gets its labels.
    st.on_event("service", "ADDED", SERVICE)
    assert sent.last()["endpoints/shop/web"].labels[M + "service_name"] == "web"
    # The pod appears, then changes its labels.
    st.on_event("pod", "ADDED", POD)
    assert sent.last()["endpoints/shop/web"].targets[0][M + "pod_name"] == "web-7d4b9c6f5-x2x9z"
    pod = copy.deepcopy(POD)
    pod["metadata"]["labels"]["version"] = "v2"
    st.on_event("pod", "MODIFIED", pod)
    assert sent.last()["endpoints/shop/web"].targets[0][M + "pod_label_version"] == "v2"
    n = len(sent.batches)
    st.on_event("pod", "MODIFIED", pod)  # no change: nothing sent
    assert len(sent.batches) == n
    st.on_event("endpoints", "DELETED", ENDPOINTS)
    assert sent.last() == {"endpoints/shop/web": TargetGroup("endpoints/shop/web", [], {})}
    st.on_event("service", "MODIFIED", SERVICE)  # nothing depends on it any more
    assert len(sent.batches) == n + 1


def test_role_state_pod_with_node_metadata():
    sent = _Collect()
    st = _RoleState("pod", True, sent)
    st.expect_syncs(2)
    st.on_event("pod", "ADDED", POD)
    st.on_synced()
    st.on_synced()
    assert M + "node_name" not in sent.last()["pod/shop/web-7d4b9c6f5-x2x9z"].labels
    st.on_event("node", "ADDED", NODE)
    assert sent.last()["pod/shop/web-7d4b9c6f5-x2x9z"].labels[M + "node_name"] == "worker-1"


# --- connection settings --------------------------------------------------------------------------


def test_resource_paths():
    assert resource_path("pod", "") == "/api/v1/pods"
    assert resource_path("pod", "shop") == "/api/v1/namespaces/shop/pods"
    assert resource_path("node", "shop") == "/api/v1/nodes"
    assert resource_path("endpointslice", "shop") == "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices"


def test_in_cluster_connection(tmp_path):
    (tmp_path / "token").write_text("tok-1\n")
    (tmp_path / "namespace").write_text("monitoring")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    conn = in_cluster_connection(str(tmp_path), env, own_namespace=True)
    assert conn.server == "https://10.96.0.1:443"
    assert conn.namespace == "monitoring"
    assert conn.settings.request_kwargs()["headers"]["Authorization"] == "Bearer tok-1"
    (tmp_path / "token").write_text("tok-2")  # rotated: read again
    assert conn.settings.request_kwargs()["headers"]["Authorization"] == "Bearer tok-2"
    env6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_connection(str(tmp_path), env6).server == "https://[fd00::1]:6443"
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_connection(str(tmp_path), {})


def test_connection_for_picks_the_configured_source(tmp_path):
    cfg = KubernetesSDConfig(role="pod", api_server="http://127.0.0.1:8001", bearer_token="abc")
    conn = connection_for(cfg)
    assert conn.server == "http://127.0.0.1:8001"
    assert conn.settings.request_kwargs()["headers"]["Authorization"] == "Bearer abc"
    with pytest.raises(KubeConfigError):
        connection_for(KubernetesSDConfig(role="pod"), sa_dir=str(tmp_path), env={})


def test_kubeconfig_connection(tmp_path):
    (tmp_path / "token").write_text("file-token\n")
    ca = "-----BEGIN CERTIFICATE-----\nnot used\n-----END CERTIFICATE-----\n"
    kc = tmp_path / "kubeconfig"
    kc.write_text(f"""
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: other
  cluster: {{server: "http://other:1"}}
- name: local
  cluster:
    server: http://127.0.0.1:6443/
contexts:
- name: dev
  context: {{cluster: local, user: alice, namespace: shop}}
users:
- name: alice
  user: {{tokenFile: token}}
- name: bob
  user: {{client-certificate-data: {base64.b64encode(ca.encode()).decode()}}}
""")
    conn = kubeconfig_connection(str(kc))
    assert conn.server == "http://127.0.0.1:6443"
    assert conn.namespace == "shop"
    assert conn.settings.request_kwargs()["headers"]["Authorization"] == "Bearer file-token"
    kc.write_text(kc.read_text().replace("current-context: dev", "current-context: nope"))
    with pytest.raises(KubeConfigError, match="no context named 'nope'"):
        kubeconfig_connection(str(kc))
