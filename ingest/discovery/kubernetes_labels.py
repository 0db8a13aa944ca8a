"""``kubernetes_sd_configs``' target groups: Kubernetes API objects turned into the groups Prometheus's
``discovery/kubernetes`` makes of them.

The label builders (:func:`node_group`, :func:`pod_group`, :func:`service_group`,
:func:`endpoints_group`, :func:`endpointslice_group`) turn API objects (the JSON the API server
serves) into target groups with exactly Prometheus's ``__meta_kubernetes_*`` labels, sources and
target addresses; label and annotation keys are sanitized with :func:`sanitize_label_name`. Pure
functions: what they look up (a service, a pod, a node) they get through the callables they are given,
so :mod:`shardmon.ingest.discovery.kubernetes` knows what each group depends on.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from typing import Any

from shardmon.ingest.discovery.kubeclient import join_host_port, object_key
from shardmon.ingest.discovery.targetgroup import ADDRESS, TargetGroup, sanitize_label_name

log = logging.getLogger(__name__)

META = "__meta_kubernetes_"
NAMESPACE_LABEL = META + "namespace"
PRESENT = "true"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # on every EndpointSlice, the Service it belongs to

Obj = Mapping[str, Any]
GetNamespaced = Callable[[str, str], Obj | None]  # (namespace, name) -> object or None
GetNode = Callable[[str], Obj | None]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def string_of(value: Any) -> str:
    """A field of an API object as a label value: "" when it is absent."""
    return "" if value is None else str(value)


def _bool(value: Any) -> str:
    return "true" if value else "false"


def object_meta_labels(ls: dict[str, str], meta: Obj, role: str) -> dict[str, str]:
    """``<role>_name``, ``<role>_label_*``, ``<role>_labelpresent_*``, ``<role>_annotation_*`` and
    ``<role>_annotationpresent_*`` (Prometheus's ``addObjectMetaLabels``)."""
    prefix = f"{META}{role}_"
    ls[prefix + "name"] = string_of(meta.get("name"))
    for k, v in (meta.get("labels") or {}).items():
        ln = sanitize_label_name(k)
        ls[f"{prefix}label_{ln}"] = string_of(v)
        ls[f"{prefix}labelpresent_{ln}"] = PRESENT
    for k, v in (meta.get("annotations") or {}).items():
        ln = sanitize_label_name(k)
        ls[f"{prefix}annotation_{ln}"] = string_of(v)
        ls[f"{prefix}annotationpresent_{ln}"] = PRESENT
    return ls


def node_meta_labels(node: Obj) -> dict[str, str]:
    """The node labels ``attach_metadata: {node: true}`` adds."""
    return object_meta_labels({}, _meta(node), "node")


def source_of(role: str, obj: Obj) -> str:
    meta = _meta(obj)
    name, ns = string_of(meta.get("name")), string_of(meta.get("namespace"))
    prefix = {"node": "node", "pod": "pod", "service": "svc", "endpoints": "endpoints",
              "endpointslice": "endpointslice"}[role]
    return f"node/{name}" if role == "node" else f"{prefix}/{ns}/{name}"


# --- node ------------------------------------------------------------------------------------------

_NODE_ADDRESS_ORDER = ("InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "LegacyHostIP", "Hostname")


def node_address(node: Obj) -> tuple[str | None, dict[str, list[str]]]:
    """The address to scrape (first of the preferred type) and all addresses by type."""
    by_type: dict[str, list[str]] = {}
    for a in (node.get("status") or {}).get("addresses") or []:
        by_type.setdefault(string_of(a.get("type")), []).append(string_of(a.get("address")))
    for t in _NODE_ADDRESS_ORDER:
        if t in by_type:
            return by_type[t][0], by_type
    return None, by_type


def node_group(node: Obj) -> TargetGroup | None:
    """One target per node: the kubelet port of its preferred address; ``instance`` = node name.
    ``None`` when the node has no address (nothing is sent)."""
    meta = _meta(node)
    name = string_of(meta.get("name"))
    labels = {META + "node_provider_id": string_of((node.get("spec") or {}).get("providerID"))}
    object_meta_labels(labels, meta, "node")
    addr, by_type = node_address(node)
    if addr is None:
        log.warning("kubernetes_sd: no node address found for node %s", name)
        return None
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    target = {ADDRESS: join_host_port(addr, int(port)), "instance": name}
    for t, addrs in by_type.items():
        target[sanitize_label_name(META + "node_address_" + t)] = addrs[0]
    return TargetGroup(f"node/{name}", [target], labels)


# --- pod -------------------------------------------------------------------------------------------


def pod_ready(pod: Obj) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return string_of(cond.get("status")).lower()
    return "unknown"


def _ip_family(text: str) -> int | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return 4  # as Go's To4()
    return ip.version


def pod_labels(pod: Obj) -> dict[str, str]:
    """The pod labels every target of a pod gets (also attached to endpoints targets backed by it)."""
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    ls = {
        META + "pod_ip": string_of(status.get("podIP")),
        META + "pod_ready": pod_ready(pod),
        META + "pod_phase": string_of(status.get("phase")),
        META + "pod_node_name": string_of(spec.get("nodeName")),
        META + "pod_host_ip": string_of(status.get("hostIP")),
        META + "pod_uid": string_of(meta.get("uid")),
    }
    # The first IPv4 and the first IPv6 of status.podIPs (dual stack).
    for entry in status.get("podIPs") or []:
        ip = string_of(entry.get("ip"))
        family = _ip_family(ip) if ip else None
        if family == 4:
            ls.setdefault(META + "pod_ipv4", ip)
        elif family == 6:
            ls.setdefault(META + "pod_ipv6", ip)
    object_meta_labels(ls, meta, "pod")
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") is True:
            if ref.get("kind"):
                ls[META + "pod_controller_kind"] = string_of(ref["kind"])
            if ref.get("name"):
                ls[META + "pod_controller_name"] = string_of(ref["name"])
            break
    return ls


def _containers(pod: Obj) -> list[tuple[Obj, bool]]:
    spec = pod.get("spec") or {}
    return [(c, False) for c in spec.get("containers") or []] + [(c, True) for c in spec.get("initContainers") or []]


def _container_id(pod: Obj, name: str, init: bool) -> str:
    status = pod.get("status") or {}
    for cs in status.get("initContainerStatuses" if init else "containerStatuses") or []:
        if cs.get("name") == name:
            return string_of(cs.get("containerID"))
    return ""


def pod_group(pod: Obj, node: Obj | None = None) -> TargetGroup:
    """One target per declared container port (init containers too), one port-less target per container
    without ports. An empty group while the pod has no IP. ``node``: attach its metadata."""
    meta, status = _meta(pod), pod.get("status") or {}
    source = f"pod/{string_of(meta.get('namespace'))}/{string_of(meta.get('name'))}"
    pod_ip = string_of(status.get("podIP"))
    if not pod_ip:
        return TargetGroup.empty(source)
    labels = pod_labels(pod)
    labels[NAMESPACE_LABEL] = string_of(meta.get("namespace"))
    if node is not None:
        labels.update(node_meta_labels(node))
    targets = []
    for c, init in _containers(pod):
        name = string_of(c.get("name"))
        common = {
            META + "pod_container_name": name,
            META + "pod_container_id": _container_id(pod, name, init),
            META + "pod_container_image": string_of(c.get("image")),
        }
        ports = c.get("ports") or []
        if not ports:
            addr = pod_ip
            if _ip_family(pod_ip) == 6 and ":" in pod_ip:
                addr = f"[{ipaddress.ip_address(pod_ip)}]"
            targets.append({ADDRESS: addr, **common, META + "pod_container_init": _bool(init)})
            continue
        for port in ports:
            number = string_of(port.get("containerPort"))
            targets.append({
                ADDRESS: join_host_port(pod_ip, number),
                **common,
                META + "pod_container_port_number": number,
                META + "pod_container_port_name": string_of(port.get("name")),
                META + "pod_container_port_protocol": string_of(port.get("protocol")),
                META + "pod_container_init": _bool(init),
            })
    return TargetGroup(source, targets, labels)


# --- service ---------------------------------------------------------------------------------------


def service_labels(svc: Obj) -> dict[str, str]:
    """Namespace and the service's object metadata labels (attached to endpoints groups too)."""
    meta = _meta(svc)
    return object_meta_labels({NAMESPACE_LABEL: string_of(meta.get("namespace"))}, meta, "service")


def service_group(svc: Obj) -> TargetGroup:
    """One target per service port, addressed ``<name>.<namespace>.svc:<port>``."""
    meta, spec = _meta(svc), svc.get("spec") or {}
    name, ns = string_of(meta.get("name")), string_of(meta.get("namespace"))
    svc_type = string_of(spec.get("type"))
    targets = []
    for port in spec.get("ports") or []:
        number = string_of(port.get("port"))
        t = {
            ADDRESS: join_host_port(f"{name}.{ns}.svc", number),
            META + "service_port_name": string_of(port.get("name")),
            META + "service_port_number": number,
            META + "service_port_protocol": string_of(port.get("protocol")),
            META + "service_type": svc_type,
        }
        if svc_type == "ExternalName":
            t[META + "service_external_name"] = string_of(spec.get("externalName"))
        else:
            t[META + "service_cluster_ip"] = string_of(spec.get("clusterIP"))
        if svc_type == "LoadBalancer":
            t[META + "service_loadbalancer_ip"] = string_of(spec.get("loadBalancerIP"))
        targets.append(t)
    return TargetGroup(f"svc/{ns}/{name}", targets, service_labels(svc))


# --- endpoints and endpointslice ---------------------------------------------------------------------


class _SeenPods:
    """Pods met through endpoint addresses, with the endpoint ports already made targets of."""

    def __init__(self) -> None:
        self.pods: dict[str, tuple[Obj, list[int | None]]] = {}

    def add(self, pod: Obj, port: int | None) -> None:
        key = object_key(pod)
        if key not in self.pods:
            self.pods[key] = (pod, [])
        self.pods[key][1].append(port)

    def extra_targets(self) -> list[dict[str, str]]:
        """Targets for the container ports of the seen pods that no endpoint port covered."""
        out = []
        for pod, ports in self.pods.values():
            pod_ip = string_of((pod.get("status") or {}).get("podIP"))
            if not pod_ip:
                continue
            for c, init in _containers(pod):
                for cport in c.get("ports") or []:
                    if cport.get("containerPort") in ports:
                        continue
                    number = string_of(cport.get("containerPort"))
                    target = {
                        ADDRESS: join_host_port(pod_ip, number),
                        META + "pod_container_name": string_of(c.get("name")),
                        META + "pod_container_image": string_of(c.get("image")),
                        META + "pod_container_port_name": string_of(cport.get("name")),
                        META + "pod_container_port_number": number,
                        META + "pod_container_port_protocol": string_of(cport.get("protocol")),
                        META + "pod_container_init": _bool(init),
                    }
                    out.append({**target, **pod_labels(pod)})
        return out


def _pod_of(ref: Obj | None, get_pod: GetNamespaced) -> Obj | None:
    if not ref or ref.get("kind") != "Pod":
        return None
    return get_pod(string_of(ref.get("namespace")), string_of(ref.get("name")))


def _container_port_labels(target: dict[str, str], pod: Obj, port: int | None, protocol: str | None) -> None:
    # The labels of the container port an endpoint port matches (the last container wins on a tie,
    # as Prometheus's loop breaks only out of the port loop). protocol None: the container port's.
    if port is None:
        return
    for c, init in _containers(pod):
        for cport in c.get("ports") or []:
            if cport.get("containerPort") == port:
                target[META + "pod_container_name"] = string_of(c.get("name"))
                target[META + "pod_container_image"] = string_of(c.get("image"))
                target[META + "pod_container_port_name"] = string_of(cport.get("name"))
                target[META + "pod_container_port_number"] = str(port)
                target[META + "pod_container_port_protocol"] = string_of(cport.get("protocol") if protocol is None else protocol)
                target[META + "pod_container_init"] = _bool(init)
                break


def endpoints_group(eps: Obj, *, get_service: GetNamespaced, get_pod: GetNamespaced,
                    get_node: GetNode | None = None) -> TargetGroup:
    """One target per address and port of every subset (not-ready addresses with ready "false"), with
    the pod's labels for addresses backed by a known pod, plus one target per other container port of
    those pods; the service's labels on the group. ``get_node``: attach node metadata."""
    meta = _meta(eps)
    ns, name = string_of(meta.get("namespace")), string_of(meta.get("name"))
    labels = {NAMESPACE_LABEL: ns}
    svc = get_service(ns, name)
    if svc is not None:
        labels.update(service_labels(svc))
    object_meta_labels(labels, meta, "endpoints")
    targets: list[dict[str, str]] = []
    seen = _SeenPods()

    def add(addr: Obj, port: Obj, ready: str) -> None:
        number = port.get("port")
        target = {
            ADDRESS: join_host_port(string_of(addr.get("ip")), string_of(number)),
            META + "endpoint_port_name": string_of(port.get("name")),
            META + "endpoint_port_protocol": string_of(port.get("protocol")),
            META + "endpoint_ready": ready,
        }
        ref = addr.get("targetRef")
        if ref:
            target[META + "endpoint_address_target_kind"] = string_of(ref.get("kind"))
            target[META + "endpoint_address_target_name"] = string_of(ref.get("name"))
        if addr.get("nodeName") is not None:
            target[META + "endpoint_node_name"] = string_of(addr["nodeName"])
        if addr.get("hostname"):
            target[META + "endpoint_hostname"] = string_of(addr["hostname"])
        if get_node is not None:
            node_name = addr.get("nodeName")
            if node_name is None and ref and ref.get("kind") == "Node":
                node_name = ref.get("name")
            node = get_node(string_of(node_name)) if node_name is not None else None
            if node is not None:
                target.update(node_meta_labels(node))
        pod = _pod_of(ref, get_pod)
        if pod is None:
            targets.append(target)
            return
        target.update(pod_labels(pod))
        _container_port_labels(target, pod, number, string_of(port.get("protocol")))
        seen.add(pod, number)
        targets.append(target)

    for subset in eps.get("subsets") or []:
        for port in subset.get("ports") or []:
            for addr in subset.get("addresses") or []:
                add(addr, port, "true")
            for addr in subset.get("notReadyAddresses") or []:
                add(addr, port, "false")
    targets.extend(seen.extra_targets())
    return TargetGroup(f"endpoints/{ns}/{name}", targets, labels)


def endpointslice_group(eps: Obj, *, get_service: GetNamespaced, get_pod: GetNamespaced,
                        get_node: GetNode | None = None) -> TargetGroup:
    """One target per endpoint address and slice port (discovery.k8s.io/v1), with the pod's labels for
    endpoints backed by a known pod, plus one target per other container port of those pods; the
    labels of the service named by ``kubernetes.io/service-name`` on the group."""
    meta = _meta(eps)
    ns, name = string_of(meta.get("namespace")), string_of(meta.get("name"))
    labels = {NAMESPACE_LABEL: ns, META + "endpointslice_address_type": string_of(eps.get("addressType"))}
    object_meta_labels(labels, meta, "endpointslice")
    svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if svc_name is not None:
        svc = get_service(ns, string_of(svc_name))
        if svc is not None:
            labels.update(service_labels(svc))
    targets: list[dict[str, str]] = []
    seen = _SeenPods()
    p = META + "endpointslice_"

    def add(addr: str, ep: Obj, port: Obj) -> None:
        number = port.get("port")
        target = {ADDRESS: join_host_port(addr, string_of(number)) if number is not None else addr}
        if port.get("name") is not None:
            target[p + "port_name"] = string_of(port["name"])
        if port.get("protocol") is not None:
            target[p + "port_protocol"] = string_of(port["protocol"])
        if number is not None:
            target[p + "port"] = string_of(number)
        if port.get("appProtocol") is not None:
            target[p + "port_app_protocol"] = string_of(port["appProtocol"])
        conditions = ep.get("conditions") or {}
        for cond in ("ready", "serving", "terminating"):
            if conditions.get(cond) is not None:
                target[f"{p}endpoint_conditions_{cond}"] = _bool(conditions[cond])
        if ep.get("hostname") is not None:
            target[p + "endpoint_hostname"] = string_of(ep["hostname"])
        ref = ep.get("targetRef")
        if ref:
            target[p + "address_target_kind"] = string_of(ref.get("kind"))
            target[p + "address_target_name"] = string_of(ref.get("name"))
        if ep.get("nodeName") is not None:
            target[p + "endpoint_node_name"] = string_of(ep["nodeName"])
        if ep.get("zone") is not None:
            target[p + "endpoint_zone"] = string_of(ep["zone"])
        for k, v in (ep.get("deprecatedTopology") or {}).items():
            ln = sanitize_label_name(k)
            target[f"{p}endpoint_topology_{ln}"] = string_of(v)
            target[f"{p}endpoint_topology_present_{ln}"] = PRESENT
        if get_node is not None:
            node_name = ref.get("name") if ref and ref.get("kind") == "Node" else ep.get("nodeName")
            node = get_node(string_of(node_name)) if node_name is not None else None
            if node is not None:
                target.update(node_meta_labels(node))
        pod = _pod_of(ref, get_pod)
        if pod is None:
            targets.append(target)
            return
        target.update(pod_labels(pod))
        _container_port_labels(target, pod, number, None)
        seen.add(pod, number)
        targets.append(target)

    for ep in eps.get("endpoints") or []:
        for port in eps.get("ports") or []:
            for addr in ep.get("addresses") or []:
                add(string_of(addr), ep, port)
    targets.extend(seen.extra_targets())
    return TargetGroup(f"endpointslice/{ns}/{name}", targets, labels)
