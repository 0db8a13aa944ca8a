"""Shardmon's ingest on a Ray cluster: joining it, listing its alive nodes, and what a process running
on one of its nodes (the coordinator, a scraper) tells about itself: the node's address and id, and its
own ``/metrics`` served on a free port there.

The scrapers' samples never go through Ray (they go to the shards over gRPC); Ray runs the actors and
restarts them. Ray is imported only here, in the coordinator's modules (:mod:`shardmon.ingest.coordinator`,
:mod:`shardmon.ingest.coordinator_checkpoint`) and in the ingest service (:mod:`shardmon.ingest.service`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import ray

from shardmon.ingest.rayauth import token_auth_env
from shardmon.model.config import Config
from shardmon.model.httpserver import metrics_app, serve_in_thread

log = logging.getLogger(__name__)

#: The Ray namespace of Shardmon's actors (and of the coordinator's checkpoint).
NAMESPACE = "shardmon"


def connect_ray(address: str = "local", token_file: str | None = None) -> None:
    """Join (or, with ``"local"``, start) the Ray cluster the scrapers run on.

    A cluster address is either the head's GCS address (``host:6379``; this machine must then be a node
    of the cluster, as with ``ray start --address``) or a Ray Client address (``ray://host:10001``,
    from a machine that is no node, as the compose file's ingest container). A cluster is joined with
    Ray's token authentication (:mod:`shardmon.ingest.rayauth`; ``token_file``: ``ingest.ray_auth_token_file``);
    a local Ray stays on loopback without it.
    """
    if ray.is_initialized():
        return
    if address == "local":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    else:
        env = token_auth_env(token_file)
        os.environ.update(env)
        if env:
            # Ray read its configuration when it was imported: make it see RAY_AUTH_MODE now (as Ray's
            # own enabling of token auth does).
            from ray._raylet import Config as _RayConfig

            _RayConfig.initialize("")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict = {"namespace": NAMESPACE, "log_to_driver": False}
    if address == "local":
        # Keep a local Ray on loopback and quiet (see MEASURED.md). Only for a Ray of our own: on a
        # cluster this would make the driver look for a node on 127.0.0.1.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        kwargs.update(include_dashboard=False, object_store_memory=128 * 1024 * 1024, _node_ip_address="127.0.0.1")
    if not address.startswith("ray://"):
        kwargs["configure_logging"] = False  # Not a Ray Client option.
    ray.init(address=address, **kwargs)


def connect_service(config: Config, stop: threading.Event | None) -> tuple[threading.Event, threading.Event]:
    """Join Ray (:func:`connect_ray`) for a service process (``shardmon ingest``, ``shardmon ruler``): returns
    its ``stop`` and ``reload`` events. Without a ``stop`` of the caller's, the process's signals drive them:
    SIGHUP sets ``reload`` and wakes ``stop``'s waiter (installed first: a reload asked during start-up must
    not kill the process); SIGTERM and SIGINT set ``stop``, installed once Ray is joined, because ``ray.init``
    replaces SIGTERM's handler with its own, which exits the driver at once (the service would never stop
    its actors, flush, or shut its local Ray down)."""
    reload_requested = threading.Event()
    own = stop is None
    stop = threading.Event() if stop is None else stop
    if own:
        def on_sighup(*_) -> None:
            reload_requested.set()
            stop.set()

        signal.signal(signal.SIGHUP, on_sighup)
    connect_ray(config.ingest.ray_address, config.ingest.ray_auth_token_file)
    if own:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return stop, reload_requested


def alive_nodes() -> list[dict]:
    """The alive nodes' ``ray.nodes()`` records; none when the GCS does not answer (busy or restarting:
    the callers then leave the choice to Ray)."""
    try:
        return [n for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # noqa: BLE001 - the GCS busy or restarting: Ray's own choice then.
        log.warning("could not list the Ray nodes: %s", exc)
        return []


def node_ip() -> str:
    """The address of this Ray node (loopback for a local Ray)."""
    try:
        return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray.
        return "127.0.0.1"


def node_id() -> str:
    """The id of this Ray node; "" outside Ray."""
    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray there is no node.
        return ""


def serve_own_metrics(component: str, config: Config) -> str:
    """Expose this process's prometheus_client metrics on a free port of this node, behind the web
    config (TLS, basic auth) like every listener; returns host:port."""
    address, _ = serve_in_thread(metrics_app(component, config.web_config()), f"{node_ip()}:0",
                                 f"{component} /metrics", config.web_config(), name=f"{component}-metrics")
    return address
