"""HTTP client settings from a Prometheus ``<http_config>``: the ``Authorization`` header (basic auth,
authorization, bearer token; credential files re-read on every request, as Prometheus does), the TLS
context (CA, client certificate, ``insecure_skip_verify``, ``server_name``, TLS versions), redirects and
an HTTP proxy, as keyword arguments for an aiohttp request."""

from __future__ import annotations

import base64
import functools
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shardmon.model.http_config import BasicAuth, HTTPClientConfig, TLSConfig

USER_AGENT = "Shardmon/0.1"

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


def read_secret_file(path: str) -> str:
    """A credential file's content without surrounding white space (as Prometheus reads them)."""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _load_cert_chain(ctx: ssl.SSLContext, cert_pem: str | None, cert_file: str | None,
                     key_pem: str | None, key_file: str | None) -> None:
    # ssl wants files: inline PEM goes through a private temporary file, removed at once.
    tmp: list[str] = []
    try:
        def as_file(pem: str | None, path: str | None) -> str:
            if path:
                return path
            fd, name = tempfile.mkstemp(suffix=".pem")
            tmp.append(name)
            with os.fdopen(fd, "w") as f:
                f.write(pem or "")
            return name

        ctx.load_cert_chain(as_file(cert_pem, cert_file), as_file(key_pem, key_file))
    finally:
        for name in tmp:
            os.unlink(name)


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """An SSL context for a ``tls_config``."""
    ctx = ssl.create_default_context(cafile=tls.ca_file or None, cadata=tls.ca or None)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert or tls.cert_file:
        _load_cert_chain(ctx, tls.cert, tls.cert_file, tls.key, tls.key_file)
    if tls.min_version:
        ctx.minimum_version = _TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
    return ctx


def basic_auth_value(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def authorization_from_config(cfg: HTTPClientConfig) -> Callable[[], str | None]:
    """A function giving the ``Authorization`` header value of a request (files read each time)."""
    if cfg.basic_auth is not None:
        ba = cfg.basic_auth

        def basic() -> str:
            user = read_secret_file(ba.username_file) if ba.username_file else ba.username
            password = read_secret_file(ba.password_file) if ba.password_file else ba.password.get_secret_value()
            return basic_auth_value(user, password)

        return basic
    kind, credentials, credentials_file = "Bearer", cfg.bearer_token, cfg.bearer_token_file
    if cfg.authorization is not None:
        kind = cfg.authorization.type.strip() or "Bearer"
        credentials, credentials_file = cfg.authorization.credentials, cfg.authorization.credentials_file
    if credentials_file:
        path = credentials_file
        return lambda: f"{kind} {read_secret_file(path)}"
    if credentials:
        value = f"{kind} {credentials.get_secret_value()}"
        return lambda: value
    return lambda: None


@dataclass
class ClientSettings:
    """What every request of one HTTP client carries."""

    authorization: Callable[[], str | None] = field(default=lambda: None)
    ssl: ssl.SSLContext | None = None  # None: aiohttp's default verification for https
    server_hostname: str | None = None
    proxy: str | None = None
    follow_redirects: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_http_config(cls, cfg: HTTPClientConfig) -> ClientSettings:
        tls = cfg.tls_config
        return cls(
            authorization=authorization_from_config(cfg),
            ssl=ssl_context(tls) if tls != TLSConfig() else None,
            server_hostname=tls.server_name or None,
            proxy=cfg.proxy_url,
            follow_redirects=cfg.follow_redirects,
        )

    def request_kwargs(self, extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments of ``aiohttp.ClientSession.request`` (credential files read now)."""
        headers = {"User-Agent": USER_AGENT, **self.headers, **(extra_headers or {})}
        auth = self.authorization()
        if auth:
            headers["Authorization"] = auth
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": self.follow_redirects}
        if self.ssl is not None:
            kwargs["ssl"] = self.ssl
        if self.server_hostname:
            kwargs["server_hostname"] = self.server_hostname
        if self.proxy:
            kwargs["proxy"] = self.proxy
        return kwargs


@dataclass
class InternalClient:
    """How Shardmon calls its own HTTP listeners (``internal_client`` in the configuration): ``https``
    when it has a ``tls_config``, with its ``basic_auth`` credentials."""

    basic_auth: BasicAuth | None = None
    tls: TLSConfig | None = None

    @classmethod
    def from_config(cls, ic) -> InternalClient:
        """From a :class:`shardmon.model.service_config.InternalClientConfig`."""
        return cls(ic.basic_auth, ic.tls_config)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def http_config(self) -> HTTPClientConfig | None:
        """As a scrape's ``<http_config>`` (self-monitoring targets); None when it adds nothing."""
        if self.basic_auth is None and self.tls is None:
            return None
        return HTTPClientConfig(basic_auth=self.basic_auth, tls_config=self.tls or TLSConfig())

    @functools.cached_property
    def settings(self) -> ClientSettings:
        """For aiohttp requests (:meth:`ClientSettings.request_kwargs`)."""
        cfg = self.http_config()
        return ClientSettings.from_http_config(cfg) if cfg is not None else ClientSettings()

    def authorization(self) -> str | None:
        """The ``Authorization`` header value (credential files read now)."""
        return self.settings.authorization()

    def ssl_context(self) -> ssl.SSLContext | None:
        """For blocking clients (urllib); None for plain HTTP."""
        if self.tls is None:
            return None
        ctx = self.settings.ssl or ssl_context(self.tls)
        return ctx
