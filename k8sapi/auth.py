"""Who a request to the Kubernetes metrics APIs comes from, decided as kube-apiserver's authenticators
decide it, in its order (the first that accepts wins):

1. **front proxy** (``requestheader_client_ca_file``): a client certificate issued by that CA whose
   Common Name is in ``requestheader_allowed_names`` (empty: any) makes the request headers the identity:
   the user from the first non-empty ``requestheader_username_headers``, the groups from every value of
   ``requestheader_group_headers``, extra attributes from ``requestheader_extra_headers_prefix`` headers
   (the key lower-cased and percent-decoded). Without a user header it does not decide. Those headers on
   any other request are never read.
2. **client certificate** (``client_ca_file``): Common Name the user, Organizations the groups.
3. **bearer token**: ``token_auth_file`` (kube-apiserver's CSV ``token,user,uid,"group1,group2"``), then,
   with ``authentication_token_webhook``, a ``TokenReview`` sent to the API server (results kept 10 s,
   as delegated authentication's cache).
4. **anonymous** (``anonymous_auth``): ``system:anonymous`` in ``system:unauthenticated``.

As kube-apiserver's union: an authenticator that fails (a certificate it cannot accept, a token no one
knows) makes the request 401 unless a later one accepts it, and anonymous access is never the fallback
of presented credentials that failed. Every refusal is an :class:`AuthError` with a ``reason`` (the
label of ``shardmon_k8sapi_auth_failures_total``).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from shardmon.ingest.discovery.kubeclient import KubeAPIError, KubeConnection
from shardmon.k8sapi.tls import issued_by, load_ca_bundle
from shardmon.model.errors import ConfigError, UnauthenticatedError
from shardmon.model.k8sapi_config import KubernetesMetricsConfig

log = logging.getLogger(__name__)

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)
    method: str = ""  # requestheader, x509, token_file, webhook, anonymous


class AuthError(UnauthenticatedError):
    """A request refused with 401; ``reason`` says why (the auth failures metric's label)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


#: A TokenReview: the token -> its user, or None when the API server does not authenticate it. Raises
#: on a failed review (the API server unreachable or refusing).
TokenReviewer = Callable[[str], Awaitable[UserInfo | None]]


def read_token_file(path: str) -> dict[str, UserInfo]:
    """kube-apiserver's ``--token-auth-file``: CSV rows ``token,user,uid[,"group1,group2"]``; rows with
    an empty token are skipped (as kube-apiserver does, with a warning); fewer than 3 columns is an error."""
    where = "kubernetes_metrics.token_auth_file"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, skipinitialspace=True))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc}") from None
    tokens: dict[str, UserInfo] = {}
    for n, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) < 3:
            raise ConfigError(f"{where}: {path}: line {n}: a token file must have at least 3 columns (token, user "
                              f"name, unique user identifier), found {len(row)}")
        if not row[0]:
            log.warning("%s: %s: line %d: empty token, skipped", where, path, n)
            continue
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        if row[0] in tokens:
            log.warning("%s: %s: line %d: duplicate token, this one is used", where, path, n)
        tokens[row[0]] = UserInfo(row[1], row[2], groups, method="token_file")
    return tokens


def _cert_user(cert: x509.Certificate, method: str) -> UserInfo:
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return UserInfo(str(cn[0]) if cn else "", groups=orgs, method=method)


def _common_name(cert: x509.Certificate) -> str:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value) if cn else ""


class Authenticator:
    """The decision above for one configuration (CA bundles and the token file read once, at start)."""

    def __init__(self, cfg: KubernetesMetricsConfig, token_reviewer: TokenReviewer | None = None,
                 *, review_ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.front_proxy_cas = (load_ca_bundle(cfg.requestheader_client_ca_file, "requestheader_client_ca_file")
                                if cfg.requestheader_client_ca_file else None)
        self.client_cas = load_ca_bundle(cfg.client_ca_file, "client_ca_file") if cfg.client_ca_file else None
        self.tokens = read_token_file(cfg.token_auth_file) if cfg.token_auth_file else {}
        if cfg.authentication_token_webhook and token_reviewer is None:
            raise ConfigError("kubernetes_metrics.authentication_token_webhook: true, but no connection to the "
                              "Kubernetes API server to send TokenReviews to (set kubeconfig or in_cluster)")
        self.token_reviewer = token_reviewer if cfg.authentication_token_webhook else None
        self.review_ttl_s, self.clock = review_ttl_s, clock
        self._reviews: dict[bytes, tuple[float, UserInfo | None]] = {}

    async def authenticate(self, cert: x509.Certificate | None, headers: Mapping[str, str] | object) -> UserInfo:
        """The user of a request: its verified client certificate (None without one) and its headers (a
        multi-dict with ``getall``, as aiohttp's, or a plain mapping). Raises AuthError."""
        errors: list[AuthError] = []
        if cert is not None and self.front_proxy_cas is not None:
            user = self._front_proxy(cert, headers, errors)
            if user is not None:
                return user
        if cert is not None and self.client_cas is not None:
            if issued_by(cert, self.client_cas):
                return _cert_user(cert, "x509")
            errors.append(AuthError("the client certificate is not issued by client_ca_file's CA",
                                    "certificate_not_accepted"))
        token = _bearer(headers)
        if token is not None:
            user = await self._token(token, errors)
            if user is not None:
                return user
        if errors:
            raise errors[0]
        if self.cfg.anonymous_auth:
            return UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,), method="anonymous")
        raise AuthError("Unauthorized", "no_credentials")

    def _front_proxy(self, cert: x509.Certificate, headers, errors: list[AuthError]) -> UserInfo | None:
        assert self.front_proxy_cas is not None
        if not issued_by(cert, self.front_proxy_cas):
            errors.append(AuthError("the client certificate is not issued by requestheader_client_ca_file's CA",
                                    "certificate_not_accepted"))
            return None
        allowed = self.cfg.requestheader_allowed_names
        cn = _common_name(cert)
        if allowed and cn not in allowed:
            errors.append(AuthError(f"x509: subject with cn={cn} is not in the allowed list",
                                    "front_proxy_name_not_allowed"))
            return None
        name = next((v for h in self.cfg.requestheader_username_headers for v in _values(headers, h) if v), "")
        if not name:
            return None  # not this authenticator's request: the next ones decide
        groups = tuple(v for h in self.cfg.requestheader_group_headers for v in _values(headers, h))
        extra: dict[str, list[str]] = {}
        for prefix in self.cfg.requestheader_extra_headers_prefix:
            p = prefix.lower()
            for key in _keys(headers):
                if key.lower().startswith(p) and len(key) > len(p):
                    k = urllib.parse.unquote(key[len(p):].lower())
                    extra.setdefault(k, []).extend(_values(headers, key))
        return UserInfo(name, groups=groups, extra={k: tuple(dict.fromkeys(v)) for k, v in extra.items()},
                        method="requestheader")

    async def _token(self, token: str, errors: list[AuthError]) -> UserInfo | None:
        user = self.tokens.get(token)
        if user is not None:
            return user
        if self.token_reviewer is not None:
            key = hashlib.sha256(token.encode()).digest()
            now = self.clock()
            hit = self._reviews.get(key)
            if hit is not None and hit[0] > now:
                user = hit[1]
            else:
                try:
                    user = await self.token_reviewer(token)
                except Exception as exc:  # noqa: BLE001 - any failure of the review: 401, counted, logged
                    log.warning("TokenReview failed: %s: %s", type(exc).__name__, exc)
                    errors.append(AuthError("Unauthorized", "token_review_failed"))
                    return None
                if len(self._reviews) >= 4096:
                    self._reviews = {k: v for k, v in self._reviews.items() if v[0] > now}
                    if len(self._reviews) >= 4096:
                        self._reviews.clear()
                self._reviews[key] = (now + self.review_ttl_s, user)
            if user is not None:
                return user
        errors.append(AuthError("invalid bearer token", "invalid_token"))
        return None


def token_reviewer(conn: KubeConnection, session: aiohttp.ClientSession, *, timeout_s: float = 10.0) -> TokenReviewer:
    """A :data:`TokenReviewer` posting ``authentication.k8s.io/v1`` TokenReviews over ``conn`` (the
    Kubernetes client of service discovery: a kubeconfig or the pod's service account)."""
    url = conn.server + "/apis/authentication.k8s.io/v1/tokenreviews"

    async def review(token: str) -> UserInfo | None:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        kwargs = conn.settings.request_kwargs({"Accept": "application/json", "Content-Type": "application/json"})
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s), **kwargs) as resp:
            if resp.status != 201 and resp.status != 200:
                raise KubeAPIError(resp.status, (await resp.text())[:300])
            doc = await resp.json(content_type=None)
        st = doc.get("status") or {}
        if not st.get("authenticated"):
            return None
        u = st.get("user") or {}
        extra = {str(k): tuple(str(x) for x in v or ()) for k, v in (u.get("extra") or {}).items()}
        return UserInfo(str(u.get("username", "")), str(u.get("uid", "")), tuple(u.get("groups") or ()), extra,
                        method="webhook")

    return review


def _values(headers, name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    lowered = {k.lower(): v for k, v in headers.items()}
    v = lowered.get(name.lower())
    return [] if v is None else [v]


def _keys(headers) -> list[str]:
    return list(dict.fromkeys(headers.keys()))


def _bearer(headers) -> str | None:
    """The bearer token of the Authorization header (None without one; an empty token is none)."""
    value = next(iter(_values(headers, "Authorization")), "")
    parts = value.strip().split(" ", 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    token = parts[1].strip()
    return token or None


__all__ = ["ANONYMOUS", "AUTHENTICATED", "AuthError", "Authenticator", "TokenReviewer", "UNAUTHENTICATED", "UserInfo",
           "read_token_file", "token_reviewer"]
