"""Service discovery configuration: ``file_sd_configs``, ``http_sd_configs`` and ``kubernetes_sd_configs``.

Field names, defaults and checks are Prometheus's (``discovery/file``, ``discovery/http``,
``discovery/kubernetes`` and ``common/config.HTTPClientConfig``). Like every Shardmon config model,
these forbid unknown fields, so a Prometheus option Shardmon does not implement (``oauth2``,
``http_headers``, ``attach_metadata.namespace``, role ``ingress``...) is refused at load time, not
silently ignored. Durations are held as int milliseconds.

This module must not import :mod:`model.config` at import time (that module imports this one); the
duration parser is imported lazily.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator


class _SDModel(BaseModel):
    # The same settings as model.config._Model (not imported: model.config imports this module).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True)


def _positive_duration(value: Any) -> int:
    from model.config import parse_duration_ms  # lazily: model.config imports this module

    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"not a valid duration string: {value!r} (write it as a string like \"30s\")")
    ms = parse_duration_ms(value)
    if ms <= 0:
        raise ValueError("refresh_interval must be greater than 0")
    return ms


#: A refresh interval: a Prometheus duration string in the YAML, milliseconds (> 0) in Python.
RefreshInterval = Annotated[int, BeforeValidator(_positive_duration)]


# --- common/config.HTTPClientConfig (the subset Shardmon implements) -------------------------------


class BasicAuth(_SDModel):
    """``basic_auth``: sets ``Authorization: Basic ...`` on every request."""

    username: str = ""
    username_file: str | None = None
    password: SecretStr = Field(SecretStr(""), description="A secret: never logged, printed or echoed.")
    password_file: str | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> BasicAuth:
        if self.username and self.username_file:
            raise ValueError("at most one of basic_auth username & username_file must be configured")
        if self.password and self.password_file:
            raise ValueError("at most one of basic_auth password & password_file must be configured")
        return self


class Authorization(_SDModel):
    """``authorization``: sets ``Authorization: <type> <credentials>`` on every request."""

    type: str = Field("Bearer", description="The authentication type (default Bearer).")
    credentials: SecretStr | None = Field(None, description="A secret: never logged, printed or echoed.")
    credentials_file: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Authorization:
        if self.type.strip().lower() == "basic":
            raise ValueError('authorization type cannot be set to "basic", use "basic_auth" instead')
        if self.credentials and self.credentials_file:
            raise ValueError("at most one of authorization credentials & credentials_file must be configured")
        return self


TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class TLSConfig(_SDModel):
    """``tls_config``: CA, client certificate, server name and verification of a TLS connection."""

    ca: str | None = Field(None, description="PEM text of the CA certificate(s).")
    ca_file: str | None = None
    cert: str | None = Field(None, description="PEM text of the client certificate.")
    cert_file: str | None = None
    key: str | None = Field(None, description="PEM text of the client key.")
    key_file: str | None = None
    server_name: str | None = Field(None, description="The name the server certificate must be valid for.")
    insecure_skip_verify: bool = Field(False, description="Disable validation of the server certificate.")
    min_version: TLSVersion | None = None
    max_version: TLSVersion | None = None

    @model_validator(mode="after")
    def _check(self) -> TLSConfig:
        for a, b in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
            if getattr(self, a) and getattr(self, b):
                raise ValueError(f"at most one of {a} and {b} must be configured")
        has_cert = bool(self.cert or self.cert_file)
        has_key = bool(self.key or self.key_file)
        if has_cert and not has_key:
            raise ValueError("exactly one of key or key_file must be configured when a client certificate is configured")
        if has_key and not has_cert:
            raise ValueError("exactly one of cert or cert_file must be configured when a client key is configured")
        return self


class HTTPClientConfig(_SDModel):
    """Prometheus's ``<http_config>``, inlined into the SD configs that talk HTTP."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: SecretStr | None = Field(None, description="Deprecated form of authorization.credentials (a secret).")
    bearer_token_file: str | None = Field(None, description="Deprecated form of authorization.credentials_file.")
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    follow_redirects: bool = True
    enable_http2: bool = Field(True, description="Accepted for compatibility; requests use HTTP/1.1.")
    proxy_url: str | None = Field(None, description="An http:// proxy for the requests.")

    @model_validator(mode="after")
    def _http_client(self) -> HTTPClientConfig:
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("at most one of bearer_token & bearer_token_file must be configured")
        if (self.bearer_token or self.bearer_token_file) and self.basic_auth is not None:
            raise ValueError("at most one of basic_auth, bearer_token & bearer_token_file must be configured")
        if self.authorization is not None:
            if self.bearer_token or self.bearer_token_file:
                raise ValueError("authorization is not compatible with bearer_token & bearer_token_file")
            if self.basic_auth is not None:
                raise ValueError("at most one of basic_auth, oauth2 & authorization must be configured")
        if self.proxy_url is not None:
            scheme = urllib.parse.urlsplit(self.proxy_url).scheme
            if scheme not in ("http", "https"):
                raise ValueError(f"proxy_url: unsupported scheme {scheme!r} (http or https)")
        return self

    def is_default_http_config(self) -> bool:
        """Whether no HTTP client field differs from its default (Kubernetes SD forbids a custom one
        together with ``kubeconfig_file`` or without ``api_server``)."""
        names = set(HTTPClientConfig.model_fields)
        return all(getattr(self, n) == HTTPClientConfig.model_fields[n].get_default(call_default_factory=True)
                   for n in names)


# --- file_sd_configs -------------------------------------------------------------------------------

_FILE_SD_NAME = re.compile(r"^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$")


class FileSDConfig(_SDModel):
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


class KubernetesNamespaces(_SDModel):
    """``namespaces``: which namespaces to watch (all when both fields are empty)."""

    own_namespace: bool = Field(False, description="Also the namespace Shardmon runs in (in-cluster only).")
    names: list[str] = Field(default_factory=list)


class KubernetesSelector(_SDModel):
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


class KubernetesAttachMetadata(_SDModel):
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
