"""The ``kubernetes_metrics`` section: the Kubernetes metrics API service (``shardmon k8s-api``).

Its serving and authentication fields carry the names of Metrics Server's / kube-apiserver's flags
(``--tls-cert-file`` is ``tls_cert_file``); ``rules``, ``externalRules`` and ``resourceRules`` are
prometheus-adapter's configuration keys, taken unchanged, so an adapter config can be pasted in (or named
by ``config_file``). Absent section: no Kubernetes metrics API is served.
"""

from __future__ import annotations

from pydantic import Field

from shardmon.model.adapter_config import (
    DEFAULT_RESOURCE_RULES,
    AdapterConfig,
    DiscoveryRule,
    ResourceRules,
    load_adapter_config,
)
from shardmon.model.addresses import HostPort
from shardmon.model.config_base import ConfigModel
from shardmon.model.errors import ConfigError
from shardmon.model.units import Duration


class KubernetesMetricsConfig(ConfigModel):
    """The Kubernetes metrics APIs served from Shardmon (metrics.k8s.io, custom.metrics.k8s.io,
    external.metrics.k8s.io), as Metrics Server and prometheus-adapter serve them to the API aggregator."""

    listen_address: HostPort = Field(
        "127.0.0.1:9195", description="host:port of the HTTPS listener (what the APIService's Service points at).")
    tls_cert_file: str | None = Field(
        None, description="Serving certificate (PEM; Metrics Server's --tls-cert-file). Absent: a self-signed "
        "certificate is generated at start, as Metrics Server does.")
    tls_private_key_file: str | None = Field(
        None, description="Key of tls_cert_file (PEM; --tls-private-key-file).")
    client_ca_file: str | None = Field(
        None, description="CA bundle that verifies client certificates (--client-ca-file): a verified client "
        "certificate authenticates its Common Name as the user and its Organizations as groups.")
    requestheader_client_ca_file: str | None = Field(
        None, description="CA bundle that verifies the API aggregator's front-proxy client certificate "
        "(--requestheader-client-ca-file); with it, the user named in requestheader_username_headers is trusted.")
    requestheader_allowed_names: list[str] = Field(
        default_factory=list, description="Common names allowed for the front-proxy client certificate "
        "(--requestheader-allowed-names); empty: any name verified by requestheader_client_ca_file.")
    requestheader_username_headers: list[str] = Field(
        default_factory=lambda: ["X-Remote-User"], description="Headers holding the user of a front-proxied "
        "request (--requestheader-username-headers).")
    requestheader_group_headers: list[str] = Field(
        default_factory=lambda: ["X-Remote-Group"], description="Headers holding its groups "
        "(--requestheader-group-headers).")
    requestheader_extra_headers_prefix: list[str] = Field(
        default_factory=lambda: ["X-Remote-Extra-"], description="Header prefixes of its extra attributes "
        "(--requestheader-extra-headers-prefix).")
    token_auth_file: str | None = Field(
        None, description="Static bearer tokens in kube-apiserver's --token-auth-file format "
        "(CSV: token,user,uid,\"group1,group2\").")
    authentication_token_webhook: bool = Field(
        False, description="Check bearer tokens not in token_auth_file with a TokenReview against the Kubernetes "
        "API server (kubeconfig or in-cluster credentials), as delegated authentication does.")
    anonymous_auth: bool = Field(
        False, description="Serve requests that carry no credentials as system:anonymous (--anonymous-auth); "
        "refused with 401 otherwise.")
    kubeconfig: str | None = Field(
        None, description="Kubeconfig of the Kubernetes API server, to list nodes, pods and other objects for "
        "label selectors (as prometheus-adapter does) and for token reviews.")
    in_cluster: bool = Field(
        False, description="Use the pod's service account (in-cluster credentials) instead of kubeconfig.")
    metrics_relist_interval: Duration = Field(
        60_000, description="How often the series behind the custom and external rules are re-listed from the "
        "shards (prometheus-adapter's --metrics-relist-interval, whose default is 10m).")
    config_file: str | None = Field(
        None, description="A prometheus-adapter configuration file, read unchanged (relative: to this "
        "configuration file's folder); its rules, externalRules and resourceRules apply where this section does "
        "not set them.")
    rules: list[DiscoveryRule] | None = Field(
        None, description="prometheus-adapter's custom metrics rules (seriesQuery, seriesFilters, resources, "
        "name, metricsQuery), unchanged.")
    externalRules: list[DiscoveryRule] | None = Field(  # noqa: N815 (prometheus-adapter's key)
        None, description="prometheus-adapter's external metrics rules, unchanged.")
    resourceRules: ResourceRules | None = Field(  # noqa: N815 (prometheus-adapter's key)
        None, description="prometheus-adapter's resource metrics rules (cpu, memory, window), unchanged. Absent: "
        "the adapter's documented defaults (container_cpu_usage_seconds_total / node_cpu_usage_seconds_total, "
        "container_memory_working_set_bytes / node_memory_working_set_bytes).")


    def adapter_config(self) -> AdapterConfig:
        """The rules in force: this section's ``rules``, ``externalRules`` and ``resourceRules``, each (when
        absent) from ``config_file``, and the adapter's default resource rules when neither sets them.
        Raises ConfigError naming ``kubernetes_metrics.config_file`` and the field path in the file."""
        from_file = AdapterConfig()
        if self.config_file:
            try:
                from_file = load_adapter_config(self.config_file)
            except ConfigError as exc:
                raise ConfigError(f"kubernetes_metrics.config_file: {exc}") from None
        return AdapterConfig(
            rules=self.rules if self.rules is not None else from_file.rules,
            externalRules=self.externalRules if self.externalRules is not None else from_file.externalRules,
            resourceRules=self.resourceRules or from_file.resourceRules or DEFAULT_RESOURCE_RULES,
        )


__all__ = ["KubernetesMetricsConfig"]
