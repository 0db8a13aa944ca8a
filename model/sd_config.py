"""Service discovery configuration: ``file_sd_configs``, ``http_sd_configs`` and ``kubernetes_sd_configs``.

Field names, defaults and checks are Prometheus's (``discovery/file``, ``discovery/http``,
``discovery/kubernetes``); the HTTP and Kubernetes entries extend :class:`shardmon.model.http_config.HTTPClientConfig`
(its fields inline, as in ``prometheus.yml``). Like every Shardmon config model, these forbid unknown
fields, so a Prometheus option Shardmon does not implement (``oauth2``, ``http_headers``,
``attach_metadata.namespace``, role ``ingress``...) is refused at load time, not silently ignored.
Durations are held as int milliseconds.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from shardmon.model.config_base import ConfigModel
from shardmon.model.http_config import HTTPClientConfig
from shardmon.model.units import duration_from_yaml


def _positive_duration(value: Any) -> int:
    ms = duration_from_yaml(value, example="30s")
    if ms <= 0:
        raise ValueError("refresh_interval must be greater than 0")
    return ms


#: A refresh interval: a Prometheus duration string in the YAML, milliseconds (> 0) in Python.
RefreshInterval = Annotated[int, BeforeValidator(_positive_duration)]


# --- file_sd_configs -------------------------------------------------------------------------------

_FILE_SD_NAME = re.compile(r"^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$")


class FileSDConfig(ConfigModel):
    """``file_sd_configs`` entry: target groups read from JSON or YAML files."""

    files: list[str] = Field(min_length=1, description="Patterns of files with target groups (.json, .yml, .yaml).")
    refresh_interval: RefreshInterval = Field(300_000, description="Re-read the files this often (default 5m).")

    @field_validator("files", mode="before")
    @classmethod
    def _some(cls, v: Any) -> Any:
        if v is None or v == []:
            raise ValueError("file service discovery config must contain at least one path name")
        return v

    @field_validator("files")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _FILE_SD_NAME.match(name):
                raise ValueError(f"path name {name!r} is not valid for file discovery")
        return v


# --- http_sd_configs -------------------------------------------------------------------------------


class HTTPSDConfig(HTTPClientConfig):
    """``http_sd_configs`` entry: target groups fetched as JSON from an HTTP endpoint."""

    url: str = Field(description="URL from which the target groups are fetched.")
    refresh_interval: RefreshInterval = Field(60_000, description="Re-query the endpoint this often (default 60s).")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v:
            raise ValueError("URL is missing")
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https"):
            raise ValueError("URL scheme must be 'http' or 'https'")
        if not parts.netloc:
            raise ValueError("host is missing in URL")
        return v


# --- kubernetes_sd_configs -------------------------------------------------------------------------

KubernetesRole = Literal["node", "pod", "service", "endpoints", "endpointslice"]
_ROLES = ("node", "pod", "service", "endpoints", "endpointslice")


def _role(value: Any) -> Any:
    if value == "ingress":
        raise ValueError("Kubernetes SD role 'ingress' is not implemented by Shardmon yet")
    if isinstance(value, str) and value not in _ROLES:
        raise ValueError(f"unknown Kubernetes SD role {value!r} (one of: {', '.join(_ROLES)})")
    return value


Role = Annotated[KubernetesRole, BeforeValidator(_role)]


class KubernetesNamespaces(ConfigModel):
    """``namespaces``: which namespaces to watch (all when both fields are empty)."""

    own_namespace: bool = Field(False, description="Also the namespace Shardmon runs in (in-cluster only).")
    names: list[str] = Field(default_factory=list)


class KubernetesSelector(ConfigModel):
    """``selectors`` entry: label and field selectors sent with the list and watch requests of a role."""

    role: Role
    label: str = ""
    field: str = ""

    @field_validator("label", "field")
    @classmethod
    def _selector(cls, v: str, info: Any) -> str:
        # A light check of the selector syntax: comma-separated requirements, none empty.
        if v and any(not part.strip() for part in v.split(",")):
            raise ValueError(f"invalid {info.field_name} selector {v!r}")
        return v


class KubernetesAttachMetadata(ConfigModel):
    """``attach_metadata``: extra metadata attached to targets."""

    node: bool = Field(False, description="Attach node labels (roles pod, endpoints, endpointslice); watches nodes.")


# The selector roles each role accepts (Prometheus's allowedSelectors; node only with attach_metadata.node).
_ALLOWED_SELECTORS: dict[str, tuple[str, ...]] = {
    "node": ("node",),
    "pod": ("pod",),
    "service": ("service",),
    "endpoints": ("pod", "service", "endpoints"),
    "endpointslice": ("pod", "service", "endpointslice"),
}


class KubernetesSDConfig(HTTPClientConfig):
    """``kubernetes_sd_configs`` entry: targets from the Kubernetes API, kept in sync by list + watch."""

    api_server: str | None = Field(None, description="API server URL; absent: in-cluster config.")
    role: Role = Field(description="One of node, pod, service, endpoints, endpointslice.")
    kubeconfig_file: str | None = Field(None, description="Path of a kubeconfig file (server and credentials).")
    namespaces: KubernetesNamespaces = Field(default_factory=KubernetesNamespaces)
    selectors: list[KubernetesSelector] = Field(default_factory=list)
    attach_metadata: KubernetesAttachMetadata = Field(default_factory=KubernetesAttachMetadata)

    @field_validator("api_server")
    @classmethod
    def _api_server(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if "://" not in v:
            v = "https://" + v  # a bare host[:port], as client-go takes it
        parts = urllib.parse.urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"invalid api_server URL {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _kubernetes(self) -> KubernetesSDConfig:
        custom_http = not self.is_default_http_config()
        if self.api_server and self.kubeconfig_file:
            raise ValueError("cannot use 'kubeconfig_file' and 'api_server' simultaneously")
        if self.kubeconfig_file and custom_http:
            raise ValueError("cannot use a custom HTTP client configuration together with 'kubeconfig_file'")
        if not self.api_server and custom_http:
            raise ValueError("to use custom HTTP client configuration please provide the 'api_server' URL explicitly")
        if self.api_server and self.namespaces.own_namespace:
            raise ValueError("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously")
        if self.kubeconfig_file and self.namespaces.own_namespace:
            raise ValueError("cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously")
        allowed = _ALLOWED_SELECTORS[self.role]
        if self.attach_metadata.node and self.role in ("pod", "endpoints", "endpointslice"):
            allowed = (*allowed, "node")
        seen: set[str] = set()
        for sel in self.selectors:
            if sel.role in seen:
                raise ValueError(f"duplicated selector role: {sel.role}")
            seen.add(sel.role)
            if sel.role not in allowed:
                raise ValueError(f"{self.role} role supports only {', '.join(allowed)} selectors")
        return self

    def selector(self, role: str) -> tuple[str, str]:
        """``(label, field)`` selectors for the list/watch requests of ``role`` (empty when none)."""
        for sel in self.selectors:
            if sel.role == role:
                return sel.label, sel.field
        return "", ""
