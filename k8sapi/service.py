"""The ``shardmon k8s-api`` process: the Kubernetes metrics APIs on the HTTPS listener of
``kubernetes_metrics.listen_address``, answered by the data side's provider (prometheus-adapter's rules
over the querier's engine and the shard fan-out), until SIGTERM or SIGINT.

:func:`start` builds and starts everything and returns a :class:`Running` (its bound address, and
``stop()``); :func:`serve` is the process's main coroutine. A provider may be handed in (tests of the
HTTP side); otherwise it is built here from the configuration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from shardmon.ingest.discovery.kubeclient import KubeConnection, in_cluster_connection, kubeconfig_connection
from shardmon.k8sapi.auth import Authenticator, token_reviewer
from shardmon.k8sapi.provider import MetricsProvider
from shardmon.k8sapi.server import KubernetesMetricsAPI
from shardmon.k8sapi.tls import server_context
from shardmon.model.config import Config
from shardmon.model.errors import ConfigError
from shardmon.model.k8sapi_config import KubernetesMetricsConfig
from shardmon.model.shutdown import wait_until_stopped

log = logging.getLogger(__name__)


def section(config: Config) -> KubernetesMetricsConfig:
    """The ``kubernetes_metrics`` section; a ConfigError when it is missing."""
    if config.kubernetes_metrics is None:
        raise ConfigError("kubernetes_metrics: the section is missing, so there are no Kubernetes metrics APIs to serve")
    return config.kubernetes_metrics


def kube_connection(cfg: KubernetesMetricsConfig) -> KubeConnection | None:
    """The Kubernetes API server's connection (``kubeconfig`` or ``in_cluster``), None without either."""
    if cfg.kubeconfig:
        return kubeconfig_connection(cfg.kubeconfig)
    if cfg.in_cluster:
        return in_cluster_connection()
    return None


def build_authenticator(cfg: KubernetesMetricsConfig, session: aiohttp.ClientSession | None) -> Authenticator:
    """The authenticator of ``cfg``, with TokenReviews over the API server's connection when asked for."""
    reviewer = None
    if cfg.authentication_token_webhook:
        conn = kube_connection(cfg)
        if conn is not None and session is not None:
            reviewer = token_reviewer(conn, session)
    return Authenticator(cfg, reviewer)


@dataclass
class Running:
    address: str  # host:port bound
    runner: web.AppRunner
    session: aiohttp.ClientSession | None
    provider: MetricsProvider
    owns_provider: bool

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()
        close = getattr(self.provider, "close", None)
        if self.owns_provider and close is not None:
            close()


def _split(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def build_provider_of(config: Config) -> MetricsProvider:
    """The data side: the engine over the shards (``querier/server.py``'s ``build``) and
    prometheus-adapter's rules over it (``k8sapi/adapter.py``, imported here only, when the process starts)."""
    from shardmon.k8sapi.adapter import build_provider  # the data side's module (another floor's work)
    from shardmon.querier.server import build

    engine, fanout = build(config)
    return build_provider(config, engine, fanout)


async def start(config: Config, provider: MetricsProvider | None = None, *, address: str | None = None) -> Running:
    """Start the HTTPS listener (on ``address`` instead of ``listen_address`` when given, e.g. port 0).
    Configuration errors (certificates, CA bundles, token file, the address) raise before anything runs."""
    cfg = section(config)
    ctx = server_context(cfg)
    session = aiohttp.ClientSession() if cfg.authentication_token_webhook else None
    owns = provider is None
    try:
        authenticator = build_authenticator(cfg, session)
        if provider is None:
            provider = build_provider_of(config)
    except BaseException:
        if session is not None:
            await session.close()
        raise
    api = KubernetesMetricsAPI(provider, authenticator)
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    address = address or str(cfg.listen_address)
    host, port = _split(address)
    try:
        await web.TCPSite(runner, host, port, ssl_context=ctx).start()
    except OSError as exc:
        await Running(address, runner, session, provider, owns).stop()
        raise ConfigError(f"kubernetes_metrics.listen_address: cannot listen on {address}: "
                          f"{exc.strerror or exc}") from exc
    bound_host, bound_port = runner.addresses[0][:2]
    return Running(f"{bound_host}:{bound_port}", runner, session, provider, owns)


async def serve(config: Config, *, stop=None) -> None:
    """``shardmon k8s-api``: serve until ``stop`` is set (or SIGTERM/SIGINT), then close everything."""
    running = await start(config)
    log.info("Kubernetes metrics APIs serving HTTPS on %s", running.address)
    try:
        await wait_until_stopped(stop)
    finally:
        await running.stop()


__all__ = ["Running", "build_authenticator", "build_provider_of", "kube_connection", "section", "serve", "start"]
