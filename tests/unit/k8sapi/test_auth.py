"""Authentication decisions of the Kubernetes metrics APIs, in kube-apiserver's order, with certificates
made by the test (the TLS handshake itself is the integration test's)."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from shardmon.k8sapi.auth import Authenticator, AuthError, read_token_file
from shardmon.model.errors import ConfigError
from shardmon.model.k8sapi_config import KubernetesMetricsConfig
from tests.k8sapi_support import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def config(pki, **kw) -> KubernetesMetricsConfig:
    base = {"client_ca_file": pki.path("ca.crt"), "requestheader_client_ca_file": pki.path("front-proxy-ca.crt"),
            "requestheader_allowed_names": ["front-proxy-client"]}
    return KubernetesMetricsConfig(**{**base, **kw})


def auth(authn: Authenticator, cert=None, **headers):
    h = CIMultiDict()
    for k, v in headers.items():
        for one in v if isinstance(v, list) else [v]:
            h.add(k.replace("_", "-"), one)
    return asyncio.run(authn.authenticate(cert, h))


def refused(authn: Authenticator, cert=None, **headers) -> str:
    with pytest.raises(AuthError) as info:
        auth(authn, cert, **headers)
    return info.value.reason


def test_front_proxy_certificate_makes_the_headers_the_identity(pki):
    a = Authenticator(config(pki))
    user = auth(a, pki.cert("front-proxy-client"), X_Remote_User="jane", X_Remote_Group=["dev", "ops"],
                X_Remote_Extra_Scopes=["a", "b"], **{"X-Remote-Extra-Acme.com%2Fproject": "p1"})
    assert (user.name, user.groups, user.method) == ("jane", ("dev", "ops"), "requestheader")
    assert user.extra == {"scopes": ("a", "b"), "acme.com/project": ("p1",)}


def test_front_proxy_name_must_be_allowed(pki):
    a = Authenticator(config(pki))
    assert refused(a, pki.cert("other-proxy"), X_Remote_User="jane") == "front_proxy_name_not_allowed"
    anyone = Authenticator(config(pki, requestheader_allowed_names=[]))
    assert auth(anyone, pki.cert("other-proxy"), X_Remote_User="jane").name == "jane"


def test_front_proxy_certificate_without_a_user_header_falls_through(pki):
    # The requestheader authenticator does not decide; the client-CA one refuses the certificate: 401.
    a = Authenticator(config(pki, anonymous_auth=True))
    assert refused(a, pki.cert("front-proxy-client")) == "certificate_not_accepted"
    # Without client_ca_file nothing refuses it, so anonymous access (when on) applies, as kube-apiserver.
    b = Authenticator(config(pki, client_ca_file=None, anonymous_auth=True))
    assert auth(b, pki.cert("front-proxy-client")).name == "system:anonymous"


def test_headers_are_never_trusted_with_a_client_ca_certificate(pki):
    a = Authenticator(config(pki))
    user = auth(a, pki.cert("admin"), X_Remote_User="someone-else", X_Remote_Group="system:masters")
    assert (user.name, user.groups, user.method) == ("kubernetes-admin", ("system:masters",), "x509")


def test_headers_without_any_certificate_are_ignored(pki):
    a = Authenticator(config(pki))
    assert refused(a, None, X_Remote_User="jane") == "no_credentials"
    anon = Authenticator(config(pki, anonymous_auth=True))
    user = auth(anon, None, X_Remote_User="jane")
    assert (user.name, user.groups) == ("system:anonymous", ("system:unauthenticated",))


def test_a_certificate_of_neither_ca_is_refused(pki):
    a = Authenticator(config(pki, anonymous_auth=True))
    assert refused(a, pki.cert("rogue")) == "certificate_not_accepted"


def test_bearer_tokens_from_the_token_file(pki, tmp_path):
    f = tmp_path / "tokens.csv"
    f.write_text('t1,alice,uid-1,"dev,ops"\n,empty,uid-0\nt2,bob,uid-2\n')
    a = Authenticator(config(pki, token_auth_file=str(f), anonymous_auth=True))
    user = auth(a, None, Authorization="Bearer t1")
    assert (user.name, user.uid, user.groups, user.method) == ("alice", "uid-1", ("dev", "ops"), "token_file")
    assert auth(a, None, Authorization="Bearer t2").groups == ()
    # A wrong token is a 401 even with anonymous access on: presented credentials never fall back to it.
    assert refused(a, None, Authorization="Bearer nope") == "invalid_token"
    # A client certificate comes before the token.
    assert auth(a, pki.cert("admin"), Authorization="Bearer t1").name == "kubernetes-admin"
    # Basic credentials are no bearer token: anonymous.
    assert auth(a, None, Authorization="Basic YTpi").name == "system:anonymous"


def test_token_file_errors_name_the_field(tmp_path):
    f = tmp_path / "tokens.csv"
    f.write_text("t1,alice\n")
    with pytest.raises(ConfigError, match=r"kubernetes_metrics.token_auth_file: .*line 1: .*at least 3 columns"):
        read_token_file(str(f))
    with pytest.raises(ConfigError, match="kubernetes_metrics.token_auth_file: cannot read"):
        read_token_file(str(tmp_path / "missing.csv"))


def test_token_reviews_are_asked_then_kept_for_a_while(pki):
    from shardmon.k8sapi.auth import UserInfo

    asked: list[str] = []
    now = [0.0]

    async def review(token: str):
        asked.append(token)
        if token == "boom":
            raise OSError("connection refused")
        return UserInfo("system:serviceaccount:kube-system:hpa", "u", ("system:serviceaccounts",),
                        method="webhook") if token == "sa" else None

    a = Authenticator(config(pki, authentication_token_webhook=True), review, clock=lambda: now[0])
    assert auth(a, None, Authorization="Bearer sa").name == "system:serviceaccount:kube-system:hpa"
    assert auth(a, None, Authorization="Bearer sa").method == "webhook"
    assert refused(a, None, Authorization="Bearer bad") == "invalid_token"
    assert refused(a, None, Authorization="Bearer bad") == "invalid_token"
    assert asked == ["sa", "bad"]
    now[0] = 11.0
    auth(a, None, Authorization="Bearer sa")
    assert asked == ["sa", "bad", "sa"]
    assert refused(a, None, Authorization="Bearer boom") == "token_review_failed"


def test_the_webhook_needs_a_connection(pki):
    with pytest.raises(ConfigError, match="authentication_token_webhook"):
        Authenticator(config(pki, authentication_token_webhook=True))


def test_bad_ca_bundles_name_the_field(tmp_path, pki):
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="kubernetes_metrics.requestheader_client_ca_file"):
        Authenticator(config(pki, requestheader_client_ca_file=str(bad)))
    with pytest.raises(ConfigError, match="kubernetes_metrics.client_ca_file"):
        Authenticator(config(pki, client_ca_file=str(tmp_path / "missing.crt")))
