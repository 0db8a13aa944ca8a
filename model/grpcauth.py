"""The web config on gRPC: TLS and basic authentication for every gRPC listener (shards, querier), TLS
and credentials for every gRPC client inside Shardmon. The only module besides the listed edges that
builds gRPC credentials.

Servers (:func:`add_port`, :func:`server_interceptors`):

- ``tls_server_config`` gives the certificate and key; ``client_auth_type: RequireAndVerifyClientCert``
  (and ``RequireAnyClientCert``) makes the listener require a client certificate signed by
  ``client_ca_file`` (mTLS). gRPC servers cannot ask for a certificate without requiring it, so
  ``RequestClientCert`` and ``VerifyClientCertIfGiven`` ask none there; ``min_version``, ``max_version``,
  ``cipher_suites`` and ``curve_preferences`` are not applied to gRPC (gRPC's own TLS 1.2/1.3 settings).
- ``basic_auth_users``: every call must carry ``authorization: Basic ...`` metadata with a user's right
  password, else it ends ``UNAUTHENTICATED``, counted in
  ``shardmon_<component>_auth_failures_total{listener="grpc",reason}``. This applies to the shards'
  internal gRPC as well as the querier's: with TLS only (no client certificates required), the
  password is what keeps a stranger from writing to or reading a shard.

Clients (:func:`channel`): TLS from a Prometheus ``tls_config`` (``ca_file``/``ca``, ``cert_file``/``key_file``
for mTLS, ``server_name`` as the name the certificate must carry), and ``basic_auth`` sent as metadata
on every call (the password file, if any, read at each call, as Prometheus reads credential files).
"""

from __future__ import annotations

import logging
import ssl
from collections import namedtuple
from collections.abc import Sequence

import grpc

from shardmon.model.errors import ConfigError, UnauthenticatedError
from shardmon.model.grpcstatus import status_of
from shardmon.model.http_config import BasicAuth, HTTPClientConfig, TLSConfig
from shardmon.model.httpclient import authorization_from_config
from shardmon.model.httpserver import auth_failures, verifier_of
from shardmon.model.webconfig import WebConfig, server_key_pair

log = logging.getLogger(__name__)


# -- servers ---------------------------------------------------------------------------------------


def _system_cas() -> bytes:
    paths = ssl.get_default_verify_paths()
    if not paths.cafile:
        raise ConfigError("web_config_file: tls_server_config.client_ca_file: required for gRPC listeners "
                          "(no system CA bundle found to verify client certificates with)")
    with open(paths.cafile, "rb") as f:
        return f.read()


def server_credentials(web_config: WebConfig) -> grpc.ServerCredentials:
    """gRPC server credentials of ``tls_server_config`` (the web config must have TLS)."""
    try:
        key, chain, ca, require = server_key_pair(web_config)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"web_config_file: tls_server_config: {exc}") from None
    t = web_config.tls_server_config
    if t.client_auth_type in ("RequestClientCert", "VerifyClientCertIfGiven"):
        log.warning("gRPC listeners ask for no client certificate with client_auth_type %s (gRPC can only "
                    "require one: use RequireAndVerifyClientCert for mTLS)", t.client_auth_type)
    if require and ca is None:
        ca = _system_cas()
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=ca if require else None,
                                       require_client_auth=require)


def add_port(server, address: str, web_config: WebConfig | None, field: str) -> None:
    """Listen on ``address``: TLS when the web config has it, else plain; ConfigError naming ``field``."""
    if web_config is not None and web_config.tls:
        bound = server.add_secure_port(address, server_credentials(web_config))
    else:
        bound = server.add_insecure_port(address)
    if bound == 0:
        raise ConfigError(f"{field}: cannot listen on {address}")


def _deny(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that ends every call UNAUTHENTICATED."""

    error = UnauthenticatedError(message)

    async def abort(request_or_iterator, context):
        await context.abort(status_of(error), str(error))  # UNAUTHENTICATED, by the one status table

    kind = (handler.request_streaming, handler.response_streaming)
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[kind]
    return make(abort, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class BasicAuthInterceptor(grpc.aio.ServerInterceptor):
    """Ends calls without a right ``authorization: Basic`` metadata UNAUTHENTICATED (bcrypt off the
    event loop, results cached, as on HTTP)."""

    def __init__(self, component: str, web_config: WebConfig) -> None:
        self._verifier = verifier_of(web_config)
        self._failures = auth_failures(component)

    async def intercept_service(self, continuation, handler_call_details):
        header = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                header = value
        why = await self._verifier.check(header)
        handler = await continuation(handler_call_details)
        if not why or handler is None:
            return handler
        self._failures.labels("grpc", why).inc()
        return _deny(handler, "unauthorized: missing or wrong basic auth credentials (authorization metadata)")


def server_interceptors(component: str, web_config: WebConfig | None) -> list:
    """The interceptors of a gRPC server of ``component`` (``grpc.aio.server(interceptors=...)``)."""
    if web_config is None or not web_config.auth:
        return []
    return [BasicAuthInterceptor(component, web_config)]


# -- clients ---------------------------------------------------------------------------------------


def _read(path: str | None, pem: str | None) -> bytes | None:
    if path:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise ConfigError(f"tls_config: cannot read {path}: {exc.strerror}") from None
    return pem.encode() if pem else None


def channel_credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    """Channel credentials of a ``tls_config``: its CA (else the system's), its client certificate."""
    if tls.insecure_skip_verify:
        raise ConfigError("tls_config.insecure_skip_verify: not supported for gRPC (grpcio cannot skip "
                          "certificate verification); give ca_file (and server_name) instead")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file, tls.ca),
        private_key=_read(tls.key_file, tls.key),
        certificate_chain=_read(tls.cert_file, tls.cert),
    )


class _Details(namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                       "compression")), grpc.ClientCallDetails):
    pass


class _SyncAuth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, authorization) -> None:
        self._authorization = authorization

    def _details(self, d):
        md = [*(d.metadata or ()), ("authorization", self._authorization())]
        return _Details(d.method, d.timeout, md, d.credentials, getattr(d, "wait_for_ready", None),
                        getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


class _AsyncAuthBase:
    def __init__(self, authorization) -> None:
        self._authorization = authorization

    def _details(self, d):
        md = grpc.aio.Metadata(*(d.metadata or ()), ("authorization", self._authorization()))
        return grpc.aio.ClientCallDetails(d.method, d.timeout, md, d.credentials, d.wait_for_ready)


class _AsyncAuthUnary(_AsyncAuthBase, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


class _AsyncAuthStream(_AsyncAuthBase, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, client_call_details, request):
        return await continuation(self._details(client_call_details), request)


def _authorization(basic_auth: BasicAuth | None):
    if basic_auth is None:
        return None
    return authorization_from_config(HTTPClientConfig(basic_auth=basic_auth))


def channel(address: str, *, tls: TLSConfig | None = None, basic_auth: BasicAuth | None = None,
            options: Sequence[tuple[str, object]] = (), aio: bool = False):
    """A gRPC channel to ``address``: TLS with ``tls`` (None: plain), ``basic_auth`` on every call."""
    opts = list(options)
    if tls is not None and tls.server_name:
        opts.append(("grpc.ssl_target_name_override", tls.server_name))
    auth = _authorization(basic_auth)
    if aio:
        interceptors = [_AsyncAuthUnary(auth), _AsyncAuthStream(auth)] if auth else None
        if tls is not None:
            return grpc.aio.secure_channel(address, channel_credentials(tls), options=opts, interceptors=interceptors)
        return grpc.aio.insecure_channel(address, options=opts, interceptors=interceptors)
    ch = (grpc.secure_channel(address, channel_credentials(tls), options=opts) if tls is not None
          else grpc.insecure_channel(address, options=opts))
    return grpc.intercept_channel(ch, _SyncAuth(auth)) if auth else ch
