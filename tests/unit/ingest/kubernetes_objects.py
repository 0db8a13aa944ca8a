"""Kubernetes API objects as `kubectl get -o json` shows them, and the `__meta_kubernetes_*` labels
Prometheus gives their targets: the fixtures of the Kubernetes SD tests."""

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "worker-1",
        "uid": "4f6b1c32-9a0e-4d57-9d7a-3f1f2b9c0e11",
        "resourceVersion": "48213",
        "labels": {
            "kubernetes.io/hostname": "worker-1",
            "kubernetes.io/os": "linux",
            "node-role.kubernetes.io/worker": "",
            "topology.kubernetes.io/zone": "eu-west-1a",
        },
        "annotations": {
            "node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true",
        },
    },
    "spec": {"podCIDR": "10.244.1.0/24", "providerID": "aws:///eu-west-1a/i-0a1b2c3d4e5f"},
    "status": {
        "addresses": [
            {"type": "Hostname", "address": "worker-1"},
            {"type": "InternalIP", "address": "10.0.1.15"},
            {"type": "InternalIP", "address": "10.0.1.16"},
            {"type": "ExternalIP", "address": "203.0.113.10"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "conditions": [{"type": "Ready", "status": "True"}],
        "nodeInfo": {"kubeletVersion": "v1.30.2"},
    },
}

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-7d4b9c6f5-x2x9z",
        "namespace": "shop",
        "uid": "b1946ac9-2a4c-4c8e-9d47-5b2f0e6c7d10",
        "resourceVersion": "51007",
        "labels": {"app.kubernetes.io/name": "web", "pod-template-hash": "7d4b9c6f5"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9113"},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c6f5",
             "uid": "0c7e2f6a-1111-2222-3333-444455556666", "controller": True, "blockOwnerDeletion": True},
        ],
    },
    "spec": {
        "nodeName": "worker-1",
        "initContainers": [{"name": "init-db", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
        "containers": [
            {"name": "web", "image": "nginx:1.25",
             "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                       {"name": "metrics", "containerPort": 9113, "protocol": "TCP"}]},
            {"name": "envoy", "image": "envoyproxy/envoy:v1.30",
             "ports": [{"name": "admin", "containerPort": 9901, "protocol": "TCP"}]},
        ],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "True"},
            {"type": "ContainersReady", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
        ],
        "hostIP": "10.0.1.15",
        "podIP": "10.244.1.23",
        "podIPs": [{"ip": "10.244.1.23"}, {"ip": "fd00:10:244:1::17"}],
        "initContainerStatuses": [{"name": "init-db", "containerID": "containerd://1f2e3d"}],
        "containerStatuses": [
            {"name": "web", "containerID": "containerd://9a8b7c", "ready": True},
            {"name": "envoy", "containerID": "containerd://6d5e4f", "ready": True},
        ],
    },
}

SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "labels": {"app.kubernetes.io/name": "web"},
        "annotations": {"prometheus.io/probe": "true"},
    },
    "spec": {
        "type": "ClusterIP",
        "clusterIP": "10.96.12.34",
        "clusterIPs": ["10.96.12.34"],
        "selector": {"app.kubernetes.io/name": "web"},
        "ports": [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "port": 9113, "targetPort": "metrics", "protocol": "TCP"},
        ],
    },
}

ENDPOINTS = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}},
    "subsets": [
        {
            "addresses": [
                {"ip": "10.244.1.23", "nodeName": "worker-1",
                 "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-7d4b9c6f5-x2x9z",
                               "uid": "b1946ac9-2a4c-4c8e-9d47-5b2f0e6c7d10"}},
            ],
            "notReadyAddresses": [
                {"ip": "10.244.2.7", "hostname": "web-1", "nodeName": "worker-2",
                 "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-7d4b9c6f5-q8r7s"}},
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    ],
}

ENDPOINTSLICE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {
        "name": "web-8kq2p",
        "namespace": "shop",
        "generateName": "web-",
        "labels": {"kubernetes.io/service-name": "web",
                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
        "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:00:00Z"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "controller": True}],
    },
    "addressType": "IPv4",
    "endpoints": [
        {"addresses": ["10.244.1.23"], "conditions": {"ready": True, "serving": True, "terminating": False},
         "nodeName": "worker-1", "zone": "eu-west-1a",
         "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-7d4b9c6f5-x2x9z"}},
        {"addresses": ["10.244.2.7"], "conditions": {"ready": False, "serving": False, "terminating": True},
         "hostname": "web-1", "nodeName": "worker-2", "deprecatedTopology": {"kubernetes.io/hostname": "worker-2"},
         "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-7d4b9c6f5-q8r7s"}},
    ],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
}

M = "__meta_kubernetes_"

# Every target of POD (and every endpoints target backed by it) carries these.
POD_LABELS = {
    M + "pod_name": "web-7d4b9c6f5-x2x9z",
    M + "pod_ip": "10.244.1.23",
    M + "pod_ipv4": "10.244.1.23",
    M + "pod_ipv6": "fd00:10:244:1::17",
    M + "pod_ready": "true",
    M + "pod_phase": "Running",
    M + "pod_node_name": "worker-1",
    M + "pod_host_ip": "10.0.1.15",
    M + "pod_uid": "b1946ac9-2a4c-4c8e-9d47-5b2f0e6c7d10",
    M + "pod_controller_kind": "ReplicaSet",
    M + "pod_controller_name": "web-7d4b9c6f5",
    M + "pod_label_app_kubernetes_io_name": "web",
    M + "pod_labelpresent_app_kubernetes_io_name": "true",
    M + "pod_label_pod_template_hash": "7d4b9c6f5",
    M + "pod_labelpresent_pod_template_hash": "true",
    M + "pod_annotation_prometheus_io_scrape": "true",
    M + "pod_annotationpresent_prometheus_io_scrape": "true",
    M + "pod_annotation_prometheus_io_port": "9113",
    M + "pod_annotationpresent_prometheus_io_port": "true",
}

SERVICE_META = {
    M + "namespace": "shop",
    M + "service_name": "web",
    M + "service_label_app_kubernetes_io_name": "web",
    M + "service_labelpresent_app_kubernetes_io_name": "true",
    M + "service_annotation_prometheus_io_probe": "true",
    M + "service_annotationpresent_prometheus_io_probe": "true",
}

NODE_META = {
    M + "node_name": "worker-1",
    M + "node_label_kubernetes_io_hostname": "worker-1",
    M + "node_labelpresent_kubernetes_io_hostname": "true",
    M + "node_label_kubernetes_io_os": "linux",
    M + "node_labelpresent_kubernetes_io_os": "true",
    M + "node_label_node_role_kubernetes_io_worker": "",
    M + "node_labelpresent_node_role_kubernetes_io_worker": "true",
    M + "node_label_topology_kubernetes_io_zone": "eu-west-1a",
    M + "node_labelpresent_topology_kubernetes_io_zone": "true",
    M + "node_annotation_node_alpha_kubernetes_io_ttl": "0",
    M + "node_annotationpresent_node_alpha_kubernetes_io_ttl": "true",
    M + "node_annotation_volumes_kubernetes_io_controller_managed_attach_detach": "true",
    M + "node_annotationpresent_volumes_kubernetes_io_controller_managed_attach_detach": "true",
}


def _lookup(*objs):
    by_key = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}
    return lambda ns, name: by_key.get((ns, name))


NO_OBJECTS = _lookup()

