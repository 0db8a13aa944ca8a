"""Prometheus's ``<http_config>`` (``common/config.HTTPClientConfig``, the subset Shardmon implements).

:class:`HTTPClientConfig` holds its fields once: ``scrape_configs`` entries, ``http_sd_configs`` and
``kubernetes_sd_configs`` entries extend it (its fields are inline in each, as in ``prometheus.yml``),
and ``--http.config.file`` of the command-line clients is one. :class:`BasicAuth`,
:class:`Authorization` and :class:`TLSConfig` are its parts, also used alone (the shards' gRPC TLS,
``internal_client``, a Redis's ``redis_tls_config``). Field names, defaults and checks are Prometheus's,
in its words; an option Shardmon does not implement (``oauth2``, ``http_headers``...) is refused.
"""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shardmon.model.config_base import ConfigModel


class BasicAuth(ConfigModel):
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


class Authorization(ConfigModel):
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


class TLSConfig(ConfigModel):
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


class HTTPClientConfig(ConfigModel):
    """Prometheus's ``<http_config>``: the base of every config entry that makes HTTP requests."""

    basic_auth: BasicAuth | None = Field(None, description="Basic authentication of every request.")
    authorization: Authorization | None = Field(None, description="The Authorization header of every request.")
    bearer_token: SecretStr | None = Field(None, description="Deprecated form of authorization.credentials (a secret).")
    bearer_token_file: str | None = Field(None, description="Deprecated form of authorization.credentials_file.")
    tls_config: TLSConfig = Field(default_factory=TLSConfig, description="TLS of https:// requests.")
    follow_redirects: bool = Field(True, description="Follow HTTP 3xx redirects.")
    enable_http2: bool = Field(True, description="Accepted for compatibility; Shardmon's HTTP clients use HTTP/1.1.")
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

    def http_client_config(self) -> HTTPClientConfig:
        """Only the ``<http_config>`` fields of this entry (authentication, TLS, redirects, proxy), as a
        plain :class:`HTTPClientConfig` (comparable with the default one, small to pickle)."""
        if type(self) is HTTPClientConfig:
            return self
        return HTTPClientConfig(**{name: getattr(self, name) for name in HTTPClientConfig.model_fields})

    def is_default_http_config(self) -> bool:
        """Whether no HTTP client field differs from its default (Kubernetes SD forbids a custom one
        together with ``kubeconfig_file`` or without ``api_server``)."""
        return all(getattr(self, n) == field.get_default(call_default_factory=True)
                   for n, field in HTTPClientConfig.model_fields.items())


